"""mailctl's contract for scripts: exit 2 for invalid input (checked
before anything is sent), 1 when the controller refuses (duplicate,
unknown object, wrong credential), 3 when the controller cannot be
reached; --wait returns only once every live member applied the change.
Also: the test-only DebugDropDeltasReq is refused without fault_injection."""

import json
import os
import tempfile

from harness import (Cluster, dir_domain, port_free, rpc_poke, run_tests)


def expect(c, code_want, *args, input=None, contains=None, **kw):
    code, out, err = c.mailctl(*args, input=input, **kw)
    assert code == code_want, "mailctl %s: exit %d, want %d\nstdout: %s\nstderr: %s" % (
        " ".join(args), code, code_want, out, err)
    if contains is not None:
        assert contains in err.lower(), "mailctl %s: %r not in %r" % (
            " ".join(args), contains, err)
    return out, err


def test_setup(c):
    c.ok("domain", "add", "err.test")
    c.ok("account", "add", "dave@err.test", input="dave-password\n")
    c.ok("alias", "add", "x@err.test", "dave@err.test", "--wait")


def test_invalid_input_exit_2(c):
    for args in (("domain", "add", "bad_domain.test"),
                 ("domain", "add", "-lead.test"),
                 ("domain", "add", "nodot"),
                 ("domain", "add", "a..b.test"),
                 ("domain", "add", "x" * 64 + ".test"),
                 ("account", "add", "no-at-sign"),
                 ("account", "add", "two@@err.test"),
                 ("account", "add", ".dot@err.test"),
                 ("account", "add", "user@bad_domain"),
                 ("alias", "add", "y@err..test", "dave@err.test"),
                 ("alias", "add", "y@err.test", "not an address"),
                 ("domain", "frobnicate", "err.test"),
                 ("domain", "add")):
        expect(c, 2, *args, input="pw-for-invalid\n")


def test_duplicates_exit_1_exists(c):
    expect(c, 1, "domain", "add", "err.test", contains="exist")
    expect(c, 1, "domain", "add", "ERR.test", contains="exist")
    expect(c, 1, "account", "add", "dave@err.test", input="again-pw\n",
           contains="exist")
    expect(c, 1, "alias", "add", "x@err.test", "dave@err.test",
           contains="exist")
    # The JSON error document says so too.
    code, out, err = c.mailctl("--json", "domain", "add", "err.test")
    assert code == 1, code
    doc = json.loads(out)
    assert doc.get("ok") is False and "exist" in str(doc.get("status", "")), doc


def test_unknown_objects_exit_1(c):
    expect(c, 1, "domain", "rm", "nosuch.test")
    expect(c, 1, "account", "show", "nobody@err.test")
    expect(c, 1, "account", "rm", "nobody@err.test")
    expect(c, 1, "account", "passwd", "nobody@err.test", input="pw-x-1234\n")
    expect(c, 1, "alias", "rm", "nobody@err.test")
    expect(c, 1, "account", "add", "eve@nosuch.test", input="eve-password\n")
    # A domain with accounts is not removed without --force.
    expect(c, 1, "domain", "rm", "err.test")


def test_unreachable_exit_3(c):
    port = c.base_port + 7
    assert port_free(port)
    expect(c, 3, "status", url="tcp://127.0.0.1:%d" % port)
    expect(c, 3, "domain", "add", "new.test", url="tcp://127.0.0.1:%d" % port)


def test_wrong_token_exit_1_unauthorized(c):
    fd, path = tempfile.mkstemp(prefix="mc-it-token-")
    try:
        os.write(fd, b"0" * 64 + b"\n")
        os.close(fd)
        expect(c, 1, "status", token_file=path, contains="unauthorized")
        expect(c, 1, "domain", "add", "wrongtoken.test", token_file=path,
               contains="unauthorized")
        # The node credential is not an admin credential.
        expect(c, 1, "domain", "list", token_file=c.env["MC_NODE_TOKEN_FILE"],
               contains="unauthorized")
    finally:
        os.unlink(path)
    names = [d["name"] for d in c.ok("domain", "list").get("domains", [])]
    assert "wrongtoken.test" not in names, names


def test_wait_returns_after_every_member_applied(c):
    for i in range(3):
        dom = "wait%d.test" % i
        r = c.ok("domain", "add", dom, "--wait")
        # No polling here: --wait promised it is already everywhere.
        st = c.status()
        nodes = c.status_nodes(st)
        for n in c.members():
            assert nodes[n]["applied_version"] >= r["version"], (n, nodes[n], r)
            d = c.directory(n)
            assert d is not None and d["version"] >= r["version"], (n, d and d["version"])
            assert dir_domain(d, dom) is not None, (n, dom)


def test_debug_drop_refused_without_fault_injection(c):
    code, out, err = rpc_poke("--url", c.env["MC_CONTROL_URL"], "--token-file",
                              c.env["MAILCTL_TOKEN_FILE"], "--drop-deltas", "1")
    assert code == 0, (code, out, err)
    assert out.startswith("status=") and not out.startswith("status=STATUS_OK"), out
    r = c.ok("domain", "add", "notdropped.test")
    took = c.wait_applied(r["version"], timeout=5)
    assert took <= 1.0, took


if __name__ == "__main__":
    run_tests(Cluster(base_port=27490, nodes=1, relays=1), [
        ("setup", test_setup),
        ("invalid input: exit 2", test_invalid_input_exit_2),
        ("duplicates: exit 1, 'exists'", test_duplicates_exit_1_exists),
        ("unknown objects: exit 1", test_unknown_objects_exit_1),
        ("controller unreachable: exit 3", test_unreachable_exit_3),
        ("wrong token: exit 1, unauthorized", test_wrong_token_exit_1_unauthorized),
        ("--wait returns after every member applied",
         test_wait_returns_after_every_member_applied),
        ("DebugDropDeltasReq refused without fault injection",
         test_debug_drop_refused_without_fault_injection),
    ])
