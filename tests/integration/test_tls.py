"""Mutual TLS on the control plane (`cluster up --tls`): the controller
listens on tls+tcp://localhost, every member and mailctl holds a
certificate of the cluster CA. Mutations made over TLS reach a node and a
relay; a client without a certificate, with one from another CA, trusting
another CA, naming the controller by a name its certificate lacks, or
speaking plain TCP gets no service; a member with a foreign certificate
cannot join; the controller keeps serving; a relay restarted with
start-daemon and a node added later (its own certificate) catch up."""

import os
import signal
import socket
import stat
import struct
import subprocess
import time

from harness import (Cluster, dir_account, dir_alias, dir_domain, pid_alive,
                     rpc_poke, run_tests, wait_until)

REQ0, SUB0 = 0x30, 0x21
state = {}


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=60)
    return p.returncode, p.stdout


def tls_path(c, name):
    return os.path.join(c.env["MC_TLS_DIR"], name)


def port(c, which):
    """Port of MC_CONTROL_URL or MC_PUBLISH_URL."""
    return int(c.env[which].rsplit(":", 1)[1])


def mailctl_tls(c, *args, url=None, ca=None, cert=None, key=None,
                timeout=30):
    """mailctl with exactly the TLS files given (None = not set at all);
    returns (exit code, stdout, stderr)."""
    e = c.script_env()
    e["MAILCTL_URL"] = url or c.env["MAILCTL_URL"]
    e["MAILCTL_TOKEN_FILE"] = c.env["MAILCTL_TOKEN_FILE"]
    for k, v in (("MAILCTL_TLS_CA", ca), ("MAILCTL_TLS_CERT", cert),
                 ("MAILCTL_TLS_KEY", key)):
        if v is not None:
            e[k] = v
    p = subprocess.run([c.env["MC_MAILCTL"], "--timeout", "3000"] + list(args),
                       env=e, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def expect_exit(want, result, what):
    code, out, err = result
    assert code == want, "%s: exit %d, want %d\nstdout: %s\nstderr: %s" % (
        what, code, want, out, err)
    return err


def domain_names(c):
    doc = c.ok("domain", "list")
    items = doc.get("domains", doc) if isinstance(doc, dict) else doc
    return {d["name"] for d in items}


def foreign_ca(c):
    """A self-made CA outside the cluster and a client certificate it
    signed that looks like mailctl's (same CN, SAN localhost)."""
    if "foreign" in state:
        return state["foreign"]
    d = os.path.join(c.dir, "foreign")
    os.makedirs(d, mode=0o700, exist_ok=True)
    ext = os.path.join(d, "leaf.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = serverAuth, clientAuth\n"
                "subjectAltName = DNS:localhost, DNS:mailctl\n")
    p = {k: os.path.join(d, k) for k in
         ("ca.key", "ca.crt", "client.key", "client.csr", "client.crt")}
    steps = [
        ("genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-out", p["ca.key"]),
        ("req", "-x509", "-new", "-key", p["ca.key"], "-days", "30",
         "-subj", "/CN=mail-cluster local CA", "-out", p["ca.crt"]),
        ("genpkey", "-algorithm", "EC", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-out", p["client.key"]),
        ("req", "-new", "-key", p["client.key"], "-subj", "/CN=mailctl",
         "-out", p["client.csr"]),
        ("x509", "-req", "-in", p["client.csr"], "-CA", p["ca.crt"],
         "-CAkey", p["ca.key"], "-set_serial", "7", "-days", "30",
         "-extfile", ext, "-out", p["client.crt"]),
    ]
    for s in steps:
        rc, out = openssl(*s)
        assert rc == 0, "openssl %s: %s" % (" ".join(s), out)
    # The foreign certificate really is foreign: the cluster CA rejects it.
    rc, out = openssl("verify", "-CAfile", tls_path(c, "ca.crt"),
                      p["client.crt"])
    assert rc != 0, "cluster CA accepts the foreign certificate: " + out
    state["foreign"] = p
    return p


# ---- tests ----------------------------------------------------------------

def test_tls_files_and_configs(c):
    assert c.env.get("MC_TLS") == "yes", c.env.get("MC_TLS")
    for v in ("MC_CONTROL_URL", "MC_PUBLISH_URL", "MAILCTL_URL"):
        assert c.env[v].startswith("tls+tcp://localhost:"), (v, c.env[v])
    state["controller_pid"] = c.pid("controller")
    mode = stat.S_IMODE(os.stat(c.env["MC_TLS_DIR"]).st_mode)
    assert mode & 0o077 == 0, "tls folder mode %o" % mode
    ca = tls_path(c, "ca.crt")
    assert c.env["MAILCTL_TLS_CA"] == ca, c.env["MAILCTL_TLS_CA"]
    for name in ["controller", "mailctl"] + c.members():
        crt, key = tls_path(c, name + ".crt"), tls_path(c, name + ".key")
        mode = stat.S_IMODE(os.stat(key).st_mode)
        assert mode == 0o600, "%s mode %o" % (key, mode)
        rc, out = openssl("verify", "-CAfile", ca, crt)
        assert rc == 0, "%s does not verify: %s" % (crt, out)
        rc, out = openssl("x509", "-in", crt, "-noout", "-subject", "-ext",
                          "subjectAltName")
        assert rc == 0 and name in out, (name, out)
        if name == "controller":
            assert "DNS:localhost" in out, out
        if name == "mailctl":
            continue
        conf = c.env["MC_CONTROLLER_CONFIG"] if name == "controller" else \
            c.env["MC_%s_CONFIG" % name.upper().replace("-", "_")]
        with open(conf) as f:
            text = f.read()
        for line in ("tls_ca_file = " + ca, "tls_cert_file = " + crt,
                     "tls_key_file = " + key):
            assert line in text.splitlines(), (conf, line, text)
        for v in ("MC_CONTROL_URL", "MC_PUBLISH_URL"):
            assert c.env[v] in text, (conf, c.env[v])
    # Sourcing cluster.env alone is enough for mailctl.
    p = subprocess.run(["bash", "-c", '. "$1/cluster.env" && mailctl status',
                        "-", c.dir], env=c.script_env(),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout
    assert "relay-1" in p.stdout and "node-1" in p.stdout, p.stdout


def test_mutations_over_mutual_tls_reach_members(c):
    r = c.ok("domain", "add", "tls.test", "--wait")
    assert r.get("ok") is True, r
    c.ok("account", "add", "carol@tls.test", "--wait",
         input="carol-tls-secret\n")
    r = c.ok("alias", "add", "info@tls.test", "carol@tls.test", "--wait")
    state["version"] = r["version"]
    c.wait_directories(r["version"], timeout=5)
    for name in c.members():
        d = c.directory(name)
        dom = dir_domain(d, "tls.test")
        acct = dir_account(d, "carol@tls.test")
        al = dir_alias(d, "info@tls.test")
        assert dom and acct and al, (name, d)
        assert acct["domain_id"] == dom["id"], (name, acct, dom)
        assert al["destinations"] == ["carol@tls.test"], (name, al)
        if name in c.node_names():
            assert acct.get("password_hash", "").startswith("$argon2id$"), acct
        else:
            assert "password_hash" not in acct, (name, acct)


def test_no_client_certificate_is_refused(c):
    # mailctl does not insist on a client certificate (a controller without
    # tls_ca_file would not ask for one), so it dials; the controller's
    # handshake demands one and aborts: exit 3, unreachable.
    err = expect_exit(3, mailctl_tls(c, "domain", "add", "nocert.test",
                                     ca=tls_path(c, "ca.crt")),
                      "mailctl without a client certificate")
    assert "tls handshake" in err.lower(), err
    # Without a CA to check the controller it refuses locally: exit 2.
    expect_exit(2, mailctl_tls(c, "domain", "add", "nocert.test",
                               cert=tls_path(c, "mailctl.crt"),
                               key=tls_path(c, "mailctl.key")),
                "mailctl without --tls-ca")
    assert "nocert.test" not in domain_names(c)


def test_foreign_ca_certificate_is_refused(c):
    f = foreign_ca(c)
    err = expect_exit(3, mailctl_tls(c, "domain", "add", "foreign.test",
                                     ca=tls_path(c, "ca.crt"),
                                     cert=f["client.crt"],
                                     key=f["client.key"]),
                      "mailctl with a foreign-CA certificate")
    assert "unreachable" in err.lower(), err
    assert "foreign.test" not in domain_names(c)


def test_client_verifies_the_controller(c):
    f = foreign_ca(c)
    # Trusting only another CA, mailctl refuses the real controller.
    expect_exit(3, mailctl_tls(c, "domain", "add", "trust.test",
                               ca=f["ca.crt"], cert=tls_path(c, "mailctl.crt"),
                               key=tls_path(c, "mailctl.key")),
                "mailctl trusting a foreign CA")
    # The controller's certificate names localhost, not 127.0.0.1.
    url = "tls+tcp://127.0.0.1:%d" % port(c, "MC_CONTROL_URL")
    expect_exit(3, mailctl_tls(c, "domain", "add", "name.test", url=url,
                               ca=tls_path(c, "ca.crt"),
                               cert=tls_path(c, "mailctl.crt"),
                               key=tls_path(c, "mailctl.key")),
                "mailctl naming the controller 127.0.0.1")
    names = domain_names(c)
    assert "trust.test" not in names and "name.test" not in names, names


def sp_header(proto):
    return b"\x00SP\x00" + struct.pack(">H", proto) + b"\x00\x00"


def plain_sp_reply(p, proto):
    """Send a plain SP handshake to port p; return the first bytes back."""
    s = socket.create_connection(("127.0.0.1", p), timeout=3)
    s.settimeout(3)
    got = b""
    try:
        s.sendall(sp_header(proto))
        while len(got) < 8:
            chunk = s.recv(8 - len(got))
            if not chunk:
                break
            got += chunk
    except OSError:
        pass  # reset or timeout: no service either way
    finally:
        s.close()
    return got


def test_plain_tcp_gets_no_service(c):
    cp, pp = port(c, "MC_CONTROL_URL"), port(c, "MC_PUBLISH_URL")
    code, out, err = rpc_poke("--url", "tcp://127.0.0.1:%d" % cp, "--timeout",
                              "2000", "--token-file",
                              c.env["MAILCTL_TOKEN_FILE"], "--status")
    assert code == 1 and "status=" not in out, (code, out, err)
    expect_exit(3, mailctl_tls(c, "domain", "add", "plain.test",
                               url="tcp://127.0.0.1:%d" % cp),
                "mailctl over plain tcp://")
    for p, proto in ((cp, REQ0), (pp, SUB0)):
        got = plain_sp_reply(p, proto)
        assert not got.startswith(b"\x00SP"), \
            "port %d answered a plain SP handshake: %r" % (p, got)
    assert "plain.test" not in domain_names(c)


def test_member_with_foreign_certificate_cannot_join(c):
    f = foreign_ca(c)
    name = "rogue-1"
    sdir = os.path.join(c.dir, "state", name)
    os.makedirs(sdir, mode=0o700, exist_ok=True)
    conf = os.path.join(c.dir, "etc", name + ".conf")
    with open(conf, "w") as fh:
        fh.write("name = %s\ncontrol_url = %s\npublish_url = %s\n"
                 "node_token_file = %s\nstate_dir = %s\n"
                 "tls_ca_file = %s\ntls_cert_file = %s\ntls_key_file = %s\n"
                 "log_level = debug\n"
                 % (name, c.env["MC_CONTROL_URL"], c.env["MC_PUBLISH_URL"],
                    c.env["MC_NODE_TOKEN_FILE"], sdir, tls_path(c, "ca.crt"),
                    f["client.crt"], f["client.key"]))
    logf = open(os.path.join(c.dir, "log", name + ".log"), "w")
    proc = subprocess.Popen([c.env["MC_NODE_BIN"], "--config", conf],
                            stdin=subprocess.DEVNULL, stdout=logf,
                            stderr=subprocess.STDOUT)
    try:
        time.sleep(3)
        # Still running: it got past its config and keeps retrying.
        assert proc.poll() is None, "rogue node exited %r" % proc.returncode
        nodes = c.status_nodes(c.status())
        assert name not in nodes, nodes
        path = os.path.join(sdir, "directory.json")
        assert not os.path.exists(path), "rogue node got a directory"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        logf.close()


def test_controller_still_serving(c):
    pid = c.pid("controller")
    assert pid == state["controller_pid"] and pid_alive(pid), \
        (pid, state["controller_pid"])
    st = c.status()
    nodes = c.status_nodes(st)
    for name in c.members():
        assert nodes.get(name, {}).get("live"), (name, nodes)
    r = c.ok("domain", "add", "after.test", "--wait")
    c.wait_directories(r["version"], timeout=5)
    for name in c.members():
        assert dir_domain(c.directory(name), "after.test"), name
    log = c.read_log("controller")
    for bad in ("assert", "abort", "segmentation"):
        assert bad not in log.lower(), "controller log mentions %s" % bad


def test_restarted_relay_catches_up(c):
    c.cluster("stop-daemon", "relay-1")
    assert c.pid("relay-1") == 0, c.pid("relay-1")
    # No --wait: the stopped relay still counts as live for a while.
    r = c.ok("domain", "add", "restart.test")
    c.cluster("start-daemon", "relay-1")
    pid = c.pid("relay-1")
    assert pid_alive(pid), pid
    c.wait_applied(r["version"], timeout=10, names=["relay-1"])
    c.wait_directories(r["version"], timeout=5, names=["relay-1"])
    assert dir_domain(c.directory("relay-1"), "restart.test")


def test_late_tls_node_catches_up(c):
    before = set(c.node_names())
    c.cluster("add-node")
    new = [n for n in c.node_names() if n not in before]
    assert len(new) == 1, (before, c.node_names())
    name = new[0]
    crt, key = tls_path(c, name + ".crt"), tls_path(c, name + ".key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600, key
    rc, out = openssl("verify", "-CAfile", tls_path(c, "ca.crt"), crt)
    assert rc == 0, out
    with open(c.env["MC_%s_CONFIG" % name.upper().replace("-", "_")]) as f:
        assert "tls_cert_file = %s\n" % crt in f.read(), name
    version = c.status()["version"]
    assert version > state["version"], (version, state)
    c.wait_applied(version, timeout=10, names=[name])
    c.wait_directories(version, timeout=5, names=[name])
    d_new, d_old = c.directory(name), c.directory("node-1")
    assert d_new["version"] == d_old["version"] == version, \
        (d_new["version"], d_old["version"], version)
    for kind in ("domains", "accounts", "aliases"):
        a = sorted(o["id"] for o in d_new[kind])
        b = sorted(o["id"] for o in d_old[kind])
        assert a == b, (kind, a, b)
    acct = dir_account(d_new, "carol@tls.test")
    assert acct and acct.get("password_hash", "").startswith("$argon2id$"), acct
    wait_until(lambda: c.status_nodes(c.status()).get(name, {}).get("live"),
               5, 0.1, "%s live" % name)


if __name__ == "__main__":
    run_tests(Cluster(base_port=27610, nodes=1, relays=1, tls=True), [
        ("TLS files, configs and cluster.env", test_tls_files_and_configs),
        ("mutations over mutual TLS reach node and relay",
         test_mutations_over_mutual_tls_reach_members),
        ("no client certificate: refused", test_no_client_certificate_is_refused),
        ("certificate of a foreign CA: refused",
         test_foreign_ca_certificate_is_refused),
        ("mailctl verifies the controller", test_client_verifies_the_controller),
        ("plain tcp:// gets no service", test_plain_tcp_gets_no_service),
        ("member with a foreign certificate cannot join",
         test_member_with_foreign_certificate_cannot_join),
        ("controller still serving", test_controller_still_serving),
        ("relay restarted with start-daemon catches up",
         test_restarted_relay_catches_up),
        ("TLS node added later catches up", test_late_tls_node_catches_up),
    ])
