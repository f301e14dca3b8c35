"""Inbound mail on a cluster started with `--blob s3`: message bytes go to
the S3-compatible test server (s3rver, checking every AWS Signature V4
against the cluster's own credentials in DIR/secrets) that the cluster
script runs on BASE+30.

- delivered messages are objects named by their SHA-256 in the bucket,
  byte-identical to what was sent after the trace headers, and nothing
  goes to a local blob folder;
- S3 down (the server stopped): node-1's LMTP answers 4xx, the relay
  accepts and keeps the mail; S3 back: delivered, once each;
- `mailctl account show --json` reports the INBOX count and size."""

import collections
import os
import smtplib
import stat
import time

from harness import Cluster, run_tests, wait_port, wait_until

DOMAIN = "s3.test"
SENDER = "sender@example.net"
WAIT = 60
sent = collections.defaultdict(dict)


def setup(c):
    assert c.env.get("MC_BLOB") == "s3", c.env.get("MC_BLOB")
    assert c.env["MC_BLOB_URL"].startswith("s3://"), c.env["MC_BLOB_URL"]
    for key in ("MC_S3_ACCESS_KEY_FILE", "MC_S3_SECRET_KEY_FILE"):
        mode = stat.S_IMODE(os.stat(c.env[key]).st_mode)
        assert mode == 0o600, "%s mode %o" % (c.env[key], mode)
    version = c.ok("domain", "add", DOMAIN)["version"]
    for user in ("ada", "ben"):
        version = c.ok("account", "add", "%s@%s" % (user, DOMAIN),
                       input="pw-%s-1234\n" % user)["version"]
    c.wait_applied(version, timeout=10)
    wait_port(*c.mx(), timeout=20)


def message(tag, i, size=500):
    body = b"".join(b"%s %d line %04d\r\n" % (tag.encode(), i, n)
                    for n in range(size // 20 + 1))
    return (b"From: <%s>\r\nSubject: %s %d\r\n"
            b"Message-ID: <%s-%d@example.net>\r\n\r\n" % (
                SENDER.encode(), tag.encode(), i, tag.encode(), i)) + body


def send(c, rcpt, tag, i, size=500):
    host, port = c.mx()
    m = message(tag, i, size)
    s = smtplib.SMTP(host, port, timeout=30)
    try:
        assert s.sendmail(SENDER, [rcpt], m) == {}
    finally:
        s.quit()
    sent[rcpt]["<%s-%d@example.net>" % (tag, i)] = m


def check_exactly_once(c, address, settle=2.0):
    """Every message sent to address stored once, byte-identical
    (harness Cluster.check_exactly_once)."""
    return c.check_exactly_once(address, sent[address], WAIT, settle)


def queued(c):
    q = os.path.join(c.env["MC_RELAY_1_STATE_DIR"], "spool", "queue")
    return len([f for f in os.listdir(q) if f.endswith(".env")]) \
        if os.path.isdir(q) else 0


def test_delivered_to_s3(c):
    ada = "ada@" + DOMAIN
    for i in range(5):
        send(c, ada, "s3", i, size=500 + 40000 * i)
    msgs = check_exactly_once(c, ada)
    for m in msgs:
        assert os.path.exists(c.blob_path(m["sha256"])), m
    assert not os.path.exists(os.path.join(c.dir, "blobs")), \
        "a local blob folder exists with --blob s3"
    print("  %d messages stored as S3 objects, byte-identical" % len(msgs))


def lmtp_direct(c, rcpt):
    host, port = c.lmtp()
    s = smtplib.LMTP(host, port, timeout=60)
    try:
        try:
            s.sendmail(SENDER, [rcpt], message("direct", 0))
        except smtplib.SMTPRecipientsRefused as e:
            return e.recipients[rcpt]
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
        return 250, b""
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def test_s3_down(c):
    ada, ben = "ada@" + DOMAIN, "ben@" + DOMAIN
    c.cluster("stop-daemon", "s3")
    try:
        code, text = lmtp_direct(c, ben)
        assert 400 <= code < 500, \
            "node-1's LMTP with S3 down: %d %r (want 4xx)" % (code, text)
        print("  node-1 LMTP with S3 down: %d %s" % (
            code, text.decode(errors="replace")))
        for i in range(10):
            send(c, ada if i % 2 else ben, "down", i)
        time.sleep(3)
        held = queued(c)
        assert held == 10, "the relay's queue holds %d of 10" % held
        assert len(c.mailbox(ben)) == 0, "delivered to ben with S3 down?"
    finally:
        c.cluster("start-daemon", "s3")
    check_exactly_once(c, ada)
    check_exactly_once(c, ben)
    wait_until(lambda: queued(c) == 0, WAIT, 0.2, "an empty relay queue")


def test_account_show(c):
    for address in sorted(sent):
        info = c.ok("account", "show", address)
        inbox = [b for b in info["mailboxes"] if b["name"] == "INBOX"]
        assert len(inbox) == 1, info
        stored = c.mailbox(address)
        assert inbox[0]["messages"] == len(stored) == len(sent[address]), \
            (inbox, len(stored))
        assert inbox[0]["bytes"] == sum(m["size"] for m in stored), \
            (inbox, stored)
        print("  %s: INBOX %d messages, %d bytes" % (
            address, inbox[0]["messages"], inbox[0]["bytes"]))


if __name__ == "__main__":
    run_tests(Cluster(base_port=28110, blob="s3", script_vars={
        "MC_RETRY_BASE_MS": "300", "MC_RETRY_MAX_MS": "1500"}), [
        ("setup: S3 credentials, domain, accounts", setup),
        ("messages stored in S3 byte-identical", test_delivered_to_s3),
        ("S3 down: LMTP 4xx, relay keeps, delivers later", test_s3_down),
        ("mailctl account show counts INBOX", test_account_show),
    ])
