"""Outbound egress over time: retries, bounces, route changes and address
fallback, with real peers on 127.0.0.1 (test_egress_lib.py: aiosmtpd
smarthosts with STARTTLS, a fake DNS server the relay asks through
dns_servers). Messages are handed to relay-1's egress listener as a
mailbox node does. The relays retry after 1 s at first (MC_RETRY_BASE_MS).

What is shown:
- a smarthost answering 451 makes the message wait: `mailctl queue list`
  and `queue show` (human and --json) give its next attempt and the last
  error; once the smarthost takes mail again it is delivered and leaves
  the queue (c);
- a smarthost answering 550 fails the recipient: the DSN (RFC 3464,
  multipart/report with the recipient, Status 5.7.1 and the smarthost's
  text) reaches the sender's INBOX, read over IMAPS on the node (d);
- route changes apply to the next message with no restart: a new default
  route, a rule for one domain, a route deleted and recreated under the
  same name with another host; and a message waiting on a 451 goes out
  at once through a new default route, not after its backoff (e);
- a smarthost given as a host name whose AAAA address refuses (::1, where
  nothing listens) and whose A address is 127.0.0.1: the IPv4 address
  takes over within the same attempt (f).

Ports: base 31610; relay-1's egress listener 31721; fake DNS 31731, the
smarthosts 31732 and 31733."""

import email
import imaplib
import re
import shutil
import time

from harness import Cluster, add_accounts, run_tests, wait_until
from test_egress_lib import (FakeDns, Smarthost, egress_send, egress_setup,
                             make_cert, message, tempdir, wait_queue_gone,
                             wait_rcpt_error)

BASE = 31610
DNS_PORT = BASE + 121
SH1_PORT = BASE + 122
SH2_PORT = BASE + 123
DOMAIN = "retry.test"
ALICE = "alice@" + DOMAIN
ALICE_PW = "alice password 2"
WAIT = 30

state = {}


def test_setup(c):
    work = state["work"] = tempdir("mc-it-egress-retry-%d-" % BASE)
    cert, key = make_cert(work, ["smart.test", "127.0.0.1"])
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, {ALICE: ALICE_PW})
    c.ok("dkim", "create", DOMAIN, "--wait")
    state["dns"] = FakeDns(DNS_PORT)
    state["sh1"] = Smarthost(SH1_PORT, cert, key)
    state["sh2"] = Smarthost(SH2_PORT, cert, key)
    egress_setup(c, ["dns_servers = 127.0.0.1:%d" % DNS_PORT,
                     "smarthost_tls_ca_file = %s" % cert])
    c.ok("route", "add", "one", "--smarthost", "127.0.0.1:%d" % SH1_PORT)
    c.ok("route", "add", "two", "--smarthost", "127.0.0.1:%d" % SH2_PORT)
    c.ok("route", "default", "one", "--wait")


def send(c, rcpt, subject):
    data = message(ALICE, rcpt, subject)
    return egress_send(c, ALICE, [rcpt], data), data


# ---- (c) 4xx: waits, shows, succeeds later ----

def test_tempfail_waits_then_delivers(c):
    sh = state["sh1"]
    sh.mode = "tempfail"
    before = len(sh.received())
    qid, data = send(c, "wait@remote.test", "tempfail")
    r = wait_rcpt_error(c, qid, WAIT)
    assert r["state"] == "pending", r
    assert r["last_error"] == "451 4.3.0 smarthost busy, try later", r
    assert r["next_attempt"] > time.time() - 1, r
    # The human forms: NEXT ATTEMPT and LAST ERROR columns.
    code, out, err = c.mailctl("queue", "list")
    assert code == 0 and qid in out and "smarthost busy" in out, out
    assert re.search(r"(now|in \d+s)", out), out
    code, out, err = c.mailctl("queue", "show", qid)
    assert code == 0 and "wait@remote.test" in out and "pending" in out, out
    assert "451 4.3.0 smarthost busy" in out, out
    # A second failed attempt (the backoff is short here), then success.
    wait_rcpt_error(c, qid, WAIT, attempts=2)
    sh.mode = "ok"
    got = sh.wait(before + 1, WAIT)[-1]
    assert data in got["data"] and got["rcpts"] == ["wait@remote.test"]
    wait_queue_gone(c, qid, WAIT)
    assert sh.refused >= 2


# ---- (d) 5xx: a DSN in the sender's INBOX ----

def imap_inbox(c):
    host, port = c.imaps()
    m = imaplib.IMAP4_SSL(host, port, ssl_context=c.imap_context())
    m.login(ALICE, ALICE_PW)
    m.select("INBOX")
    return m


def test_permfail_bounces_to_inbox(c):
    sh = state["sh1"]
    sh.mode = "permfail"
    qid, data = send(c, "nobody@remote.test", "will bounce")
    wait_queue_gone(c, qid, WAIT)
    sh.mode = "ok"

    def find_dsn():
        m = imap_inbox(c)
        try:
            typ, ids = m.search(None, "FROM", '"MAILER-DAEMON"')
            if typ != "OK" or not ids[0].split():
                typ, ids = m.search(None, "ALL")
            for num in ids[0].split():
                typ, parts = m.fetch(num, "(RFC822)")
                raw = parts[0][1]
                if b"multipart/report" in raw and b"nobody@remote.test" in raw:
                    return raw
            return None
        finally:
            m.logout()
    raw = wait_until(find_dsn, WAIT, 0.5, "the DSN in %s's INBOX" % ALICE)
    msg = email.message_from_bytes(raw)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    status = [p for p in msg.walk()
              if p.get_content_type() == "message/delivery-status"]
    assert status, "no message/delivery-status part"
    text = raw.decode("utf-8", "replace")
    assert "Final-Recipient: rfc822; nobody@remote.test" in text, text
    assert "Action: failed" in text and "Status: 5.7.1" in text, text
    assert "smarthost refuses this message" in text, text
    assert "Subject: will bounce" in text, text  # the returned headers
    # The null sender, so no bounce loops.
    assert c.mailbox(ALICE), "nothing stored"


# ---- (e) route changes apply to the next message ----

def test_route_changes_apply_at_once(c):
    sh1, sh2 = state["sh1"], state["sh2"]
    n1, n2 = len(sh1.received()), len(sh2.received())
    # new default
    c.ok("route", "default", "two", "--wait")
    send(c, "a@remote.test", "to two")
    sh2.wait(n2 + 1, WAIT)
    # a rule for one domain
    c.ok("route", "rule", "add", "ruled.test", "one", "--wait")
    send(c, "b@ruled.test", "ruled")
    got = sh1.wait(n1 + 1, WAIT)[-1]
    assert got["rcpts"] == ["b@ruled.test"], got
    c.ok("route", "rule", "rm", "ruled.test", "--wait")
    # "two" deleted and recreated with sh1's address: the new settings
    c.ok("route", "rm", "two", "--force", "--wait")
    c.ok("route", "add", "two", "--smarthost", "127.0.0.1:%d" % SH1_PORT)
    c.ok("route", "default", "two", "--wait")
    send(c, "c@remote.test", "recreated two")
    got = sh1.wait(n1 + 2, WAIT)[-1]
    assert got["rcpts"] == ["c@remote.test"], got
    assert len(sh2.received()) == n2 + 1
    # A message waiting on a 451 goes out through a new default route at
    # once (the kick on the directory change), not after its backoff.
    # (Not through a delete and recreate of the default: between the two
    # commands there is no default, and a kick then sends it to its
    # domain's MX, as the configuration then says.)
    sh1.mode = "tempfail"
    qid, _ = send(c, "d@remote.test", "waiting")
    wait_rcpt_error(c, qid, WAIT)
    c.ok("route", "add", "three", "--smarthost", "127.0.0.1:%d" % SH2_PORT)
    t0 = time.monotonic()
    c.ok("route", "default", "three", "--wait")
    got = sh2.wait(n2 + 2, WAIT)[-1]
    assert got["rcpts"] == ["d@remote.test"], got
    assert time.monotonic() - t0 < 10
    wait_queue_gone(c, qid, WAIT)
    sh1.mode = "ok"


# ---- (f) IPv6 unreachable, IPv4 works ----

def test_ipv6_fails_ipv4_works(c):
    dns = state["dns"]
    dns.set("smart.test", "AAAA", ["::1"])  # nothing listens on [::1]
    dns.set("smart.test", "A", ["127.0.0.1"])
    c.ok("route", "add", "named", "--smarthost", "smart.test:%d" % SH2_PORT)
    c.ok("route", "default", "named", "--wait")
    sh2 = state["sh2"]
    n2 = len(sh2.received())
    qid, data = send(c, "e@remote.test", "v6 then v4")
    got = sh2.wait(n2 + 1, WAIT)[-1]
    assert got["rcpts"] == ["e@remote.test"] and got["tls"], got
    wait_queue_gone(c, qid, WAIT)
    assert ("smart.test", "AAAA") in dns.queries
    assert ("smart.test", "A") in dns.queries
    log = c.read_log("relay-1")
    assert re.search(r"conn=\d+ peer=\[::1\]:%d error=" % SH2_PORT, log) or \
        "[::1]" in log, "no IPv6 attempt in the relay's log"
    # One attempt did it: the address fallback is not a retry.
    assert "result=deferred" not in [
        l for l in log.splitlines() if "rcpt=\"e@remote.test\"" in l][0]


def test_teardown(c):
    for k in ("sh1", "sh2", "dns"):
        if k in state:
            state.pop(k).stop()
    if "work" in state:
        shutil.rmtree(state.pop("work"), ignore_errors=True)


if __name__ == "__main__":
    run_tests(Cluster(base_port=BASE, nodes=1, relays=1, script_vars={
        "MC_RETRY_BASE_MS": "1000", "MC_RETRY_MAX_MS": "4000"}), [
        ("setup", test_setup),
        ("451: the message waits (queue shows why and when), then goes",
         test_tempfail_waits_then_delivers),
        ("550: a DSN in the sender's INBOX (IMAP)",
         test_permfail_bounces_to_inbox),
        ("route changes apply to the next attempt without a restart",
         test_route_changes_apply_at_once),
        ("smarthost name: IPv6 refused, IPv4 takes over",
         test_ipv6_fails_ipv4_works),
        ("teardown", test_teardown),
    ])
