"""End to end: a mail client submits on a mailbox node, the node hands the
foreign recipients to relay-1's egress listener (its submission_relay, set
by deploy/local/cluster), the relay signs and sends them through a
smarthost. Python's smtplib on node-1's 587-style port (STARTTLS trusting
the node's certificate, AUTH PLAIN), an aiosmtpd smarthost with STARTTLS
on 127.0.0.1 (test_egress_lib.py), dkimpy for the signatures.

What is shown:
- the message reaches the smarthost from the account's address, with the
  client's bytes after the trace fields the node and the relay added;
- both DKIM signatures (RSA, Ed25519) verify against the records of
  `mailctl dkim list --json`, over the fields the node added too;
- a mixed submission: the local recipient's copy is stored by the node,
  only the foreign one goes out, and the queue ends empty.

Ports: base 31710; node-1's submission 31801, relay-1's egress listener
31821, the smarthost 31832."""

import re
import shutil
import smtplib

import dkim

from harness import (Cluster, add_accounts, imap_ssl_context, run_tests,
                     wait_until)
from test_egress_lib import (Smarthost, egress_setup, make_cert, message,
                             queue_json, tempdir)

BASE = 31710
SH_PORT = BASE + 122
DOMAIN = "e2e.test"
ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
PASSWORDS = {ALICE: "alice e2e password", BOB: "bob e2e password"}
WAIT = 30

state = {}


def test_setup(c):
    work = state["work"] = tempdir("mc-it-egress-e2e-%d-" % BASE)
    cert, key = make_cert(work, ["smarthost.test", "127.0.0.1"])
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, PASSWORDS)
    c.ok("dkim", "create", DOMAIN, "--wait")
    state["sh"] = Smarthost(SH_PORT, cert, key)
    egress_setup(c, ["smarthost_tls_ca_file = %s" % cert])
    c.ok("route", "add", "out", "--smarthost", "127.0.0.1:%d" % SH_PORT)
    c.ok("route", "default", "out", "--wait")


def submit(c, rcpts, data):
    host, port = c.endpoint("node-1", "SUBMISSION")
    s = smtplib.SMTP(host, port, local_hostname="client.example.net",
                     timeout=WAIT)
    try:
        s.starttls(context=imap_ssl_context(c.imap_cert("node-1")))
        s.ehlo("client.example.net")
        s.login(ALICE, PASSWORDS[ALICE])
        refused = s.sendmail(ALICE, rcpts, data)
        assert refused == {}, refused
    finally:
        s.quit()


def zone(c):
    return {(k["dns_name"].rstrip(".") + ".").encode(): k["dns_record"].encode()
            for k in c.ok("dkim", "list", DOMAIN)["keys"] if k["active"]}


def test_client_node_relay_smarthost(c):
    sh = state["sh"]
    data = message(ALICE, "zoe@remote.test", "end to end")
    submit(c, ["zoe@remote.test"], data)
    got = sh.wait(1, WAIT)[-1]
    assert got["from"] == ALICE and got["rcpts"] == ["zoe@remote.test"], got
    raw = got["data"]
    head, _, body = data.partition(b"\r\n\r\n")
    assert body in raw and b"Subject: end to end" in raw, raw[:600]
    assert raw.count(b"\r\nReceived: ") >= 1, raw[:600]
    z = zone(c)
    sigs = re.findall(br"(?im)^DKIM-Signature:.*?\ba=([a-z0-9-]+)", raw)
    assert sorted(sigs) == [b"ed25519-sha256", b"rsa-sha256"], sigs
    d = dkim.DKIM(raw)
    for idx in range(len(sigs)):
        assert d.verify(idx=idx, dnsfunc=lambda n, timeout=5: z.get(n)), idx


def test_mixed_submission(c):
    sh = state["sh"]
    before = len(sh.received())
    inbox = len(c.mailbox(BOB))
    submit(c, [BOB, "yan@remote.test"], message(ALICE, BOB, "mixed e2e"))
    got = sh.wait(before + 1, WAIT)[-1]
    assert got["rcpts"] == ["yan@remote.test"], got
    c.wait_mailbox(BOB, inbox + 1, timeout=WAIT)
    wait_until(lambda: not queue_json(c), WAIT, 0.2, "an empty queue")


def test_teardown(c):
    if "sh" in state:
        state.pop("sh").stop()
    if "work" in state:
        shutil.rmtree(state.pop("work"), ignore_errors=True)


if __name__ == "__main__":
    run_tests(Cluster(base_port=BASE, nodes=1, relays=1), [
        ("setup", test_setup),
        ("client -> node submission -> relay egress -> smarthost, signed",
         test_client_node_relay_smarthost),
        ("mixed local and foreign recipients", test_mixed_submission),
        ("teardown", test_teardown),
    ])
