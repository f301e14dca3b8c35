"""Inbound mail through outages: the relay keeps every message it
acknowledged until the store is back.

- Postgres down (the whole server, with pg_ctl: the controller loses its
  database too): the node answers LMTP with 4xx, the relay still accepts
  mail from its directory and keeps it queued; Postgres back: delivered,
  once each;
- the edge cut off: controller and every mailbox node stopped, the relay
  even restarted meanwhile (from the directory.json it holds): it accepts
  mail for accounts and aliases, refuses unknown users (550 5.1.1) and
  other domains (5.7.1); controller and node back: everything delivered;
- `mailctl queue list|show|delete|retry` against relay-1's admin socket
  while the node is away: held messages listed with their failed attempts,
  a deleted one never arrives, the rest do after `retry`.
Retries are fast here (MC_RETRY_BASE_MS=300, MC_RETRY_MAX_MS=1500)."""

import collections
import os
import smtplib
import time

from harness import (Cluster, Smtp, header_value, run_tests, wait_port,
                     wait_until)

DOMAIN = "out.test"
SENDER = "sender@example.net"
WAIT = 60
sent = collections.defaultdict(dict)  # address -> {message-id: content}


def setup(c):
    version = c.ok("domain", "add", DOMAIN)["version"]
    for user in ("pat", "quinn"):
        version = c.ok("account", "add", "%s@%s" % (user, DOMAIN),
                       input="pw-%s-1234\n" % user)["version"]
    version = c.ok("alias", "add", "team@" + DOMAIN, "pat@" + DOMAIN,
                   "quinn@" + DOMAIN)["version"]
    c.wait_applied(version, timeout=10)
    wait_port(*c.mx(), timeout=20)
    # The path works before anything is broken.
    send(c, "pat@" + DOMAIN, "warmup", 0)
    check_exactly_once(c, "pat@" + DOMAIN, settle=0)


def message(tag, i):
    return (b"From: <%s>\r\nSubject: %s %d\r\n"
            b"Message-ID: <%s-%d@example.net>\r\n\r\nbody %s %d\r\n" % (
                SENDER.encode(), tag.encode(), i, tag.encode(), i,
                tag.encode(), i))


def send(c, rcpt, tag, i, expand=None):
    """One message over the MX; recorded as sent to each final account."""
    host, port = c.mx()
    m = message(tag, i)
    s = smtplib.SMTP(host, port, timeout=30)
    try:
        assert s.sendmail(SENDER, [rcpt], m) == {}
    finally:
        s.quit()
    for a in expand or [rcpt]:
        sent[a]["<%s-%d@example.net>" % (tag, i)] = m


def check_exactly_once(c, address, settle=2.0):
    """Every message sent to address stored once, byte-identical
    (harness Cluster.check_exactly_once)."""
    return len(c.check_exactly_once(address, sent[address], WAIT, settle))


def queued(c):
    q = os.path.join(c.env["MC_RELAY_1_STATE_DIR"], "spool", "queue")
    return len([f for f in os.listdir(q) if f.endswith(".env")]) \
        if os.path.isdir(q) else 0


def lmtp_direct(c, rcpt, tag):
    """One LMTP transaction straight to node-1: (code, text) of the
    recipient's final reply (RCPT refusal or per-recipient DATA reply)."""
    host, port = c.lmtp()
    s = smtplib.LMTP(host, port, timeout=60)
    try:
        try:
            refused = s.sendmail(SENDER, [rcpt], message(tag, 0))
        except smtplib.SMTPRecipientsRefused as e:
            return e.recipients[rcpt]
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
        if rcpt in refused:
            return refused[rcpt]
        return 250, b""
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def test_postgres_down(c):
    pat, quinn = "pat@" + DOMAIN, "quinn@" + DOMAIN
    c.cluster("stop-daemon", "postgres")
    try:
        code, text = lmtp_direct(c, pat, "direct-pg-down")
        assert 400 <= code < 500, \
            "node-1's LMTP with Postgres down: %d %r (want 4xx)" % (code, text)
        print("  node-1 LMTP with Postgres down: %d %s" % (
            code, text.decode(errors="replace")))
        for i in range(10):
            send(c, pat if i % 2 else "team@" + DOMAIN, "pgdown", i,
                 expand=[pat] if i % 2 else [pat, quinn])
        time.sleep(3)  # a few delivery attempts fail meanwhile
        held = queued(c)
        assert held == 10, "the relay's queue holds %d of 10" % held
    finally:
        c.cluster("start-daemon", "postgres")
    check_exactly_once(c, pat)
    check_exactly_once(c, quinn)
    wait_until(lambda: queued(c) == 0, WAIT, 0.2, "an empty relay queue")
    log = c.read_log("relay-1")
    assert "4.3.0" in log or "451" in log, \
        "relay-1's log shows no deferral while Postgres was down"


def refusals(c):
    """RCPT replies for an unknown user and a foreign domain."""
    s = Smtp(*c.mx())
    try:
        assert s.reply()[0] == 220
        assert s.cmd("EHLO cutoff.example.net")[0] == 250
        assert s.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        unknown = s.cmd("RCPT TO:<nobody@%s>" % DOMAIN)
        foreign = s.cmd("RCPT TO:<x@elsewhere.example>")
        s.cmd("QUIT")
        return unknown, foreign
    finally:
        s.close()


def check_refusals(c):
    (ucode, utext), (fcode, ftext) = refusals(c)
    assert ucode == 550 and utext.startswith("5.1.1"), (ucode, utext)
    assert fcode in (550, 554) and ftext.startswith("5.7.1"), (fcode, ftext)


def test_edge_cut_off(c):
    pat, quinn = "pat@" + DOMAIN, "quinn@" + DOMAIN
    before = {a: len(c.mailbox(a)) for a in (pat, quinn)}
    c.cluster("stop-daemon", "controller")
    for n in c.node_names():
        c.cluster("stop-daemon", n)
    try:
        for i in range(5):
            send(c, quinn if i % 2 else "team@" + DOMAIN, "cut", i,
                 expand=[quinn] if i % 2 else [pat, quinn])
        check_refusals(c)
        # A relay restarted while cut off serves from its directory.json.
        c.cluster("stop-daemon", "relay-1")
        c.cluster("start-daemon", "relay-1", "--no-wait")
        wait_port(*c.mx(), timeout=20)
        for i in range(5, 8):
            send(c, pat, "cut", i)
        check_refusals(c)
        time.sleep(2)
        for a in (pat, quinn):
            assert len(c.mailbox(a)) == before[a], "delivered with no node?"
        held = queued(c)
        assert held == 8, "the relay's queue holds %d of 8" % held
    finally:
        c.cluster("start-daemon", "controller")
        for n in c.node_names():
            c.cluster("start-daemon", n)
    check_exactly_once(c, pat)
    check_exactly_once(c, quinn)
    wait_until(lambda: queued(c) == 0, WAIT, 0.2, "an empty relay queue")


def test_queue_commands(c):
    quinn = "quinn@" + DOMAIN
    spool = os.path.join(c.env["MC_RELAY_1_STATE_DIR"], "spool", "queue")
    c.cluster("stop-daemon", "node-1")
    try:
        for i in range(3):
            send(c, quinn, "queued", i)

        def listed():
            msgs = c.ok("queue", "list")["messages"]
            tried = [m for m in msgs
                     if all(r["attempts"] >= 1 for r in m["recipients"])]
            return msgs if len(msgs) == 3 and len(tried) == 3 else None
        msgs = wait_until(listed, 20, 0.3,
                          "3 queued messages with a failed attempt")
        for m in msgs:
            assert m["sender"] == SENDER, m
            assert [r["address"] for r in m["recipients"]] == [quinn], m
            r = m["recipients"][0]
            assert r["state"] == "pending" and r["last_error"], m
        victim = msgs[0]["id"]
        shown = c.ok("queue", "show", victim)["message"]
        assert shown["id"] == victim and shown["recipients"], shown
        with open(os.path.join(spool, victim + ".msg"), "rb") as f:
            mid = header_value(f.read(), "Message-ID")
        assert mid in sent[quinn], (mid, sorted(sent[quinn]))
        assert c.ok("queue", "delete", victim).get("ok") is True
        left = [m["id"] for m in c.ok("queue", "list")["messages"]]
        assert len(left) == 2 and victim not in left, (victim, left)
        code, out, err = c.mailctl("queue", "show", victim)
        assert code != 0, "queue show of a deleted message: %r" % out
        del sent[quinn][mid]
    finally:
        c.cluster("start-daemon", "node-1")
    assert c.ok("queue", "retry").get("ok") is True
    check_exactly_once(c, quinn)
    wait_until(lambda: not c.ok("queue", "list")["messages"], WAIT, 0.3,
               "an empty queue in mailctl queue list")


if __name__ == "__main__":
    run_tests(Cluster(base_port=28010, script_vars={
        "MC_RETRY_BASE_MS": "300", "MC_RETRY_MAX_MS": "1500"}), [
        ("setup: domain, accounts, alias, a first delivery", setup),
        ("Postgres down: LMTP 4xx, relay keeps, delivers later",
         test_postgres_down),
        ("edge cut off: relay accepts known, refuses unknown, delivers later",
         test_edge_cut_off),
        ("mailctl queue list, show, delete, retry", test_queue_commands),
    ])
