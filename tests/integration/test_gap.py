"""Dropped deltas: with fault injection on, the controller is told to
skip publishing the next deltas (DebugDropDeltasReq through rpc_poke, as
mailctl has no command for it). Nodes must still converge to the new
version by fetching a snapshot, whether they learn of the gap from a
heartbeat reply or from the next delta's from_version."""

from harness import Cluster, dir_domain, rpc_poke, run_tests


def drop_deltas(c, count):
    code, out, err = rpc_poke("--url", c.env["MC_CONTROL_URL"], "--token-file",
                              c.env["MAILCTL_TOKEN_FILE"], "--drop-deltas",
                              str(count))
    assert code == 0 and out.startswith("status=STATUS_OK"), (code, out, err)


def log_sizes(c):
    return {n: len(c.read_log(n)) for n in c.members()}


def new_log_text(c, sizes):
    return {n: c.read_log(n)[sizes[n]:] for n in c.members()}


def converge(c, version, domains):
    took = c.wait_applied(version, timeout=15)
    c.wait_directories(version, timeout=3)
    for n in c.members():
        d = c.directory(n)
        for dom in domains:
            assert dir_domain(d, dom) is not None, (n, dom, d)
    return took


def test_setup(c):
    r = c.ok("domain", "add", "base.test", "--wait")
    c.wait_directories(r["version"], timeout=3)


def test_gap_healed_by_heartbeat(c):
    sizes = log_sizes(c)
    drop_deltas(c, 1)
    r = c.ok("domain", "add", "gap1.test")
    took = converge(c, r["version"], ["gap1.test"])
    print("  dropped delta healed in %.2fs" % took)
    for n, text in new_log_text(c, sizes).items():
        low = text.lower()
        assert "snapshot" in low or "gap" in low, \
            "%s log does not mention the snapshot/gap:\n%s" % (n, text[-2000:])


def test_gap_healed_on_next_delta(c):
    sizes = log_sizes(c)
    drop_deltas(c, 1)
    c.ok("domain", "add", "gap2.test")          # dropped
    r = c.ok("domain", "add", "gap3.test")      # published, from_version gap
    converge(c, r["version"], ["gap2.test", "gap3.test"])
    for n, text in new_log_text(c, sizes).items():
        low = text.lower()
        assert "snapshot" in low or "gap" in low, (n, text[-2000:])


def test_many_dropped_deltas(c):
    drop_deltas(c, 5)
    names = ["many%d.test" % i for i in range(5)]
    for name in names:
        r = c.ok("domain", "add", name)
    converge(c, r["version"], names)


def test_deltas_flow_again(c):
    r = c.ok("domain", "add", "after.test")
    took = c.wait_applied(r["version"], timeout=5)
    assert took <= 1.0, "publishing after the gap is slow: %.2fs" % took


if __name__ == "__main__":
    run_tests(Cluster(base_port=27450, nodes=2, relays=1, fault_injection=True), [
        ("setup", test_setup),
        ("a dropped delta is healed (heartbeat)", test_gap_healed_by_heartbeat),
        ("a dropped delta is healed (next delta)",
         test_gap_healed_on_next_delta),
        ("five dropped deltas are healed", test_many_dropped_deltas),
        ("deltas flow again afterwards", test_deltas_flow_again),
    ])
