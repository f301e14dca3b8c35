"""Outbound egress on the relay (issue "Submission and outbound egress"):
messages handed to relay-1's egress listener as a mailbox node does
(smtplib on the listener; test_egress_submission.py goes through a node's
submission), DKIM-signed there, and delivered by the relay's scheduler
through a smarthost route or directly to the recipient domain's MX, with
real peers on 127.0.0.1: aiosmtpd smarthosts (STARTTLS with a test
certificate the relay trusts through smarthost_tls_ca_file, AUTH PLAIN/
LOGIN required after TLS on one of them), an aiosmtpd MX, and a fake DNS
server the relay asks through dns_servers (test_egress_lib.py).

What is shown:
- the MX never relays: a foreign recipient gets 554 5.7.1 whatever the
  sender, and it offers no AUTH to get around that (g);
- a smarthost that requires AUTH over STARTTLS gets the message, logged in
  with the secret from the file the route names, then with the one from
  the environment variable it names (a);
- both DKIM signatures (RSA and Ed25519) verify with dkimpy against the
  TXT records of `mailctl dkim list --json`, which match those of
  `mailctl domain dns --json` (b);
- without a route, the recipient domain's MX (from the fake DNS) gets the
  message, over STARTTLS since it offers it (h);
- a submission mixing a local account and a foreign recipient: the local
  copy in the account's INBOX, the foreign one at the smarthost, both
  signed.

Ports: base 31510; relay-1's egress listener 31621; fake DNS 31631, the
smarthosts 31632 (AUTH) and 31633, the MX 31634 (the relay's mx_port)."""

import os
import re
import shutil
import smtplib

import dkim

from harness import Cluster, add_accounts, run_tests, wait_until
from test_egress_lib import (FakeDns, Sink, Smarthost, egress_send,
                             egress_setup, make_cert, message, queue_json,
                             tempdir)

BASE = 31510
DNS_PORT = BASE + 121
AUTH_PORT = BASE + 122
OPEN_PORT = BASE + 123
MX_PORT = BASE + 124
DOMAIN = "example.org"
ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
USER = "relay-user"
SECRET_FILE_PW = "pw-from-the-file-5Jq"
SECRET_ENV_PW = "pw-from-the-env-9Zx"
SECRET_ENV = "EGRESS_TEST_SMARTHOST_PW"
WAIT = 30

state = {}


def test_setup(c):
    work = tempdir("mc-it-egress-%d-" % BASE)
    state["work"] = work
    cert, key = make_cert(work, ["smarthost.test", "127.0.0.1"])
    state["cert"] = cert
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, {ALICE: "alice password 1", BOB: "bob password 1"})
    c.ok("dkim", "create", DOMAIN, "--wait")
    state["dns"] = FakeDns(DNS_PORT)
    state["auth"] = Smarthost(AUTH_PORT, cert, key, user=USER,
                              password=SECRET_ENV_PW)
    state["open"] = Smarthost(OPEN_PORT, cert, key)
    state["mx"] = Sink(MX_PORT, cert, key)
    pw = os.path.join(c.dir, "secrets", "smarthost.pw")
    with open(pw, "w") as f:
        f.write(SECRET_FILE_PW + "\n")
    os.chmod(pw, 0o600)
    state["pw_file"] = pw
    os.environ[SECRET_ENV] = SECRET_ENV_PW
    egress_setup(c, ["dns_servers = 127.0.0.1:%d" % DNS_PORT,
                     "smarthost_tls_ca_file = %s" % cert,
                     "mx_port = %d" % MX_PORT])


def set_default(c, name):
    c.ok("route", "default", name, "--wait")


# ---- (g) the MX is no open relay ----

def test_mx_never_relays(c):
    host, port = c.mx()
    for sender in ("someone@elsewhere.test", ALICE, ""):
        s = smtplib.SMTP(host, port, timeout=20)
        try:
            code, text = s.ehlo("client.example.net")
            assert code == 250 and b"AUTH" not in text.upper(), text
            code, text = s.mail(sender)
            assert code == 250, (code, text)
            code, text = s.rcpt("victim@remote.test")
            assert code == 554 and text.startswith(b"5.7.1"), (code, text)
            code, text = s.docmd("AUTH", "PLAIN AGFsaWNlAHBhc3M=")
            assert code == 502, (code, text)
        finally:
            s.quit()
    assert not [m for m in queue_json(c)
                if any(r["address"] == "victim@remote.test"
                       for r in m["recipients"])]


# ---- (a) AUTH over STARTTLS, secret from a file, then from the env ----

def test_smarthost_auth_secret_file(c):
    c.ok("route", "add", "sh-file", "--smarthost", "127.0.0.1:%d" % AUTH_PORT,
         "--tls", "starttls", "--auth-user", USER, "--secret-file",
         state["pw_file"])
    set_default(c, "sh-file")
    sh = state["auth"]
    sh.password = SECRET_FILE_PW
    before = len(sh.received())
    data = message(ALICE, "carol@remote.test", "auth file")
    egress_send(c, ALICE, ["carol@remote.test"], data)
    got = sh.wait(before + 1, WAIT)[-1]
    assert got["login"] == USER and got["tls"], got
    assert got["from"] == ALICE and got["rcpts"] == ["carol@remote.test"]
    assert data in got["data"], got["data"][:500]
    assert SECRET_FILE_PW not in c.read_log("relay-1")


def test_smarthost_auth_secret_env(c):
    c.ok("route", "add", "sh-env", "--smarthost", "127.0.0.1:%d" % AUTH_PORT,
         "--tls", "starttls", "--auth-user", USER, "--secret-env", SECRET_ENV)
    set_default(c, "sh-env")
    sh = state["auth"]
    sh.password = SECRET_ENV_PW
    before = len(sh.received())
    egress_send(c, ALICE, ["dave@remote.test"],
                message(ALICE, "dave@remote.test", "auth env"))
    got = sh.wait(before + 1, WAIT)[-1]
    assert got["login"] == USER and got["rcpts"] == ["dave@remote.test"]
    assert SECRET_ENV_PW not in c.read_log("relay-1")


def test_connection_reuse(c):
    """Messages one after another to one smarthost share its connection:
    one TCP connection (the client port), one AUTH."""
    sh = state["auth"]
    before = len(sh.received())
    with sh.lock:
        auths = sh.auth_ok
    for i in range(3):
        rcpt = "reuse%d@remote.test" % i
        egress_send(c, ALICE, [rcpt], message(ALICE, rcpt, "reuse %d" % i))
        sh.wait(before + i + 1, WAIT)
    got = sh.received()[before:]
    assert [m["rcpts"] for m in got] == [["reuse%d@remote.test" % i]
                                         for i in range(3)], got
    ports = {m["peer_port"] for m in got}
    assert len(ports) == 1, ports
    assert all(m["login"] == USER and m["tls"] for m in got), got
    with sh.lock:
        assert sh.auth_ok - auths <= 1, (auths, sh.auth_ok)
    assert "reuse" in c.read_log("relay-1")


# ---- (b) DKIM ----

def dkim_zone(c):
    """{b"sel._domainkey.example.org.": b"v=DKIM1; ..."} from mailctl."""
    keys = c.ok("dkim", "list", DOMAIN)["keys"]
    zone = {}
    for k in keys:
        if k["active"]:
            zone[(k["dns_name"].rstrip(".") + ".").encode()] = \
                k["dns_record"].encode()
    recs = c.ok("domain", "dns", DOMAIN)["records"]
    for name, txt in zone.items():
        match = [r for r in recs if r["type"] == "TXT" and
                 (r["name"] + ".").encode() == name]
        assert match and match[0]["value"].encode() == txt, (name, recs)
    return zone


def verify_all(data, zone):
    """The a= of every DKIM signature of data, each checked to verify."""
    d = dkim.DKIM(data)
    algs = []
    sigs = re.findall(br"(?im)^DKIM-Signature:.*?\ba=([a-z0-9-]+)", data)
    for idx in range(len(sigs)):
        ok = d.verify(idx=idx, dnsfunc=lambda name, timeout=5: zone.get(name))
        assert ok, "signature %d (%r) does not verify" % (idx, sigs[idx])
        algs.append(sigs[idx].decode())
    return algs


def test_dkim_signatures_verify(c):
    c.ok("route", "add", "open", "--smarthost", "127.0.0.1:%d" % OPEN_PORT,
         "--tls", "starttls")
    set_default(c, "open")
    sh = state["open"]
    before = len(sh.received())
    egress_send(c, ALICE, ["erin@remote.test"],
                message(ALICE, "erin@remote.test", "dkim check",
                        body="Line one.\r\n.Leading dot\r\n\r\n\r\n"))
    got = sh.wait(before + 1, WAIT)[-1]
    data = got["data"]
    assert data.startswith(b"DKIM-Signature:"), data[:200]
    algs = verify_all(data, dkim_zone(c))
    assert b"\r\nReceived: from node-1.cluster.test ([127.0.0.1])" in data
    assert sorted(algs) == ["ed25519-sha256", "rsa-sha256"], algs
    state["zone"] = zone = dkim_zone(c)
    # Changing the body breaks them (the verifier really checks).
    bad = data.replace(b"Line one.", b"Line 1.")
    try:
        ok = dkim.DKIM(bad).verify(
            idx=0, dnsfunc=lambda name, timeout=5: zone.get(name))
    except dkim.ValidationError:
        ok = False
    assert not ok, "a changed body still verifies"


# ---- (h) direct MX ----

def test_direct_mx(c):
    dns = state["dns"]
    dns.set("mx-domain.test", "MX", ["10 mx1.mx-domain.test."])
    dns.set("mx1.mx-domain.test", "A", ["127.0.0.1"])
    c.ok("route", "add", "direct", "--mx")
    set_default(c, "direct")
    mx = state["mx"]
    before = len(mx.received())
    egress_send(c, ALICE, ["frank@mx-domain.test"],
                message(ALICE, "frank@mx-domain.test", "direct mx"))
    got = mx.wait(before + 1, WAIT)[-1]
    assert got["rcpts"] == ["frank@mx-domain.test"] and got["tls"], got
    assert sorted(verify_all(got["data"], state["zone"])) == \
        ["ed25519-sha256", "rsa-sha256"]
    assert ("mx-domain.test", "MX") in dns.queries
    # No route at all (the default removed): the MX too.
    c.ok("route", "rm", "direct", "--force", "--wait")
    assert c.ok("route", "list")["default"] is None
    egress_send(c, ALICE, ["grace@mx-domain.test"],
                message(ALICE, "grace@mx-domain.test", "no route"))
    got = mx.wait(before + 2, WAIT)[-1]
    assert got["rcpts"] == ["grace@mx-domain.test"], got


# ---- mixed ----

def test_mixed_local_and_foreign(c):
    set_default(c, "open")
    sh = state["open"]
    before = len(sh.received())
    inbox = len(c.mailbox(BOB))
    data = message(ALICE, BOB, "mixed")
    egress_send(c, ALICE, [BOB, "henry@remote.test"], data)
    got = sh.wait(before + 1, WAIT)[-1]
    assert got["rcpts"] == ["henry@remote.test"], got
    msgs = c.wait_mailbox(BOB, inbox + 1, timeout=WAIT)
    stored = c.blob(msgs[-1]["sha256"])
    assert b"\r\nDKIM-Signature:" in stored and data in stored, stored[:400]
    wait_until(lambda: not queue_json(c), WAIT, 0.2, "an empty queue")


def test_teardown(c):
    for k in ("auth", "open", "mx", "dns"):
        if k in state:
            state.pop(k).stop()
    if "work" in state:
        shutil.rmtree(state.pop("work"), ignore_errors=True)


if __name__ == "__main__":
    run_tests(Cluster(base_port=BASE, nodes=1, relays=1, script_vars={
        "MC_RETRY_BASE_MS": "1000", "MC_RETRY_MAX_MS": "5000"}), [
        ("setup", test_setup),
        ("the MX never relays (554 5.7.1, no AUTH)", test_mx_never_relays),
        ("smarthost AUTH over STARTTLS, secret from a file",
         test_smarthost_auth_secret_file),
        ("smarthost AUTH, secret from an environment variable",
         test_smarthost_auth_secret_env),
        ("messages in a row share one smarthost connection",
         test_connection_reuse),
        ("RSA and Ed25519 signatures verify with dkimpy",
         test_dkim_signatures_verify),
        ("direct MX delivery through the fake DNS", test_direct_mx),
        ("local account and foreign recipient in one submission",
         test_mixed_local_and_foreign),
        ("teardown", test_teardown),
    ])
