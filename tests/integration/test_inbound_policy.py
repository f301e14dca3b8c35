"""The relay's MX policy against hostile and mistaken clients: aliases
and catch-all expanded to the right accounts (and a recipient reached twice
in one message stored once), unknown local users 550 5.1.1, other domains
554/550 5.7.1, malformed commands 500/501 with enhanced status codes, VRFY
that does not tell users apart, messages over the size limit 552 5.3.4
(declared with SIZE= and undeclared), a client vanishing mid-DATA stores
nothing, and through all of it the relay keeps serving other sessions.
The relays' limit here is MC_MAX_MESSAGE_SIZE = 1 MiB."""

import hashlib
import os
import smtplib
import socket
import time

from harness import (Cluster, Smtp, run_tests, strip_trace, wait_port,
                     wait_until)

SENDER = "sender@example.net"
MAX_SIZE = 1048576
WAIT = 30


def setup(c):
    steps = [
        ("domain", "add", "pol.test"),
        ("domain", "add", "strict.test"),
        ("account", "add", "alice@pol.test"),
        ("account", "add", "bob@pol.test"),
        ("account", "add", "carol@pol.test"),
        ("account", "add", "dave@strict.test"),
        ("account", "add", "erin@strict.test"),
        ("alias", "add", "info@pol.test", "alice@pol.test", "bob@pol.test"),
        ("alias", "add", "*@pol.test", "carol@pol.test"),
        ("alias", "add", "sales@strict.test", "info@pol.test"),
    ]
    version = 0
    for args in steps:
        pw = "pw-%s-123\n" % args[2] if args[0] == "account" else None
        version = c.ok(*args, input=pw)["version"]
    c.wait_applied(version, timeout=10)
    wait_port(*c.mx(), timeout=20)


def message(tag):
    return (b"From: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@example.net>\r\n"
            b"\r\nbody of %s\r\n" % (SENDER.encode(), tag.encode(),
                                      tag.encode(), tag.encode()))


def send(c, rcpts, data):
    host, port = c.mx()
    s = smtplib.SMTP(host, port, timeout=30)
    try:
        return s.sendmail(SENDER, rcpts, data)
    finally:
        s.quit()


def ids_of(c, address):
    return sorted(m["message_id"] or "" for m in c.mailbox(address))


def wait_ids(c, address, want):
    """Wait until address's INBOX holds exactly the Message-IDs want (a
    list; order ignored) and keeps them for a moment (no late extra)."""
    want = sorted("<%s@example.net>" % w for w in want)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and ids_of(c, address) != want:
        time.sleep(0.2)
    got = ids_of(c, address)
    assert got == want, "%s holds %r, want %r" % (address, got, want)
    return got


def test_aliases_and_catchall(c):
    send(c, ["info@pol.test"], message("to-info"))
    send(c, ["alice@pol.test"], message("to-alice"))
    send(c, ["whoever@pol.test"], message("to-catchall"))
    # alice via the alias and directly: one copy.
    send(c, ["info@pol.test", "alice@pol.test", "ALICE@pol.test"],
         message("twice"))
    # An alias to an alias on another domain.
    send(c, ["sales@strict.test"], message("to-sales"))
    time.sleep(1.5)  # let anything misrouted arrive too
    wait_ids(c, "alice@pol.test", ["to-info", "to-alice", "twice", "to-sales"])
    wait_ids(c, "bob@pol.test", ["to-info", "twice", "to-sales"])
    wait_ids(c, "carol@pol.test", ["to-catchall"])
    wait_ids(c, "dave@strict.test", [])
    # The content is what was sent, for every copy.
    for m in c.mailbox("bob@pol.test"):
        _, _, rest = strip_trace(c.blob(m["sha256"]))
        tag = m["message_id"][1:].split("@")[0]
        assert rest == message(tag), (tag, rest)


def test_unknown_and_foreign(c):
    s = Smtp(*c.mx())
    try:
        assert s.reply()[0] == 220
        assert s.cmd("EHLO client.example.net")[0] == 250
        assert s.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        code, text = s.cmd("RCPT TO:<nobody@strict.test>")
        assert code == 550 and text.startswith("5.1.1"), (code, text)
        code, text = s.cmd("RCPT TO:<someone@foreign.example>")
        assert code in (550, 554) and text.startswith("5.7.1"), (code, text)
        code, text = s.cmd("RCPT TO:<alice@pol.test.evil.example>")
        assert code in (550, 554) and text.startswith("5.7.1"), (code, text)
        code, text = s.cmd("RCPT TO:<dave@strict.test>")
        assert code == 250, (code, text)
        assert s.cmd("DATA")[0] == 354
        s.send(message("after-refusals") + b".\r\n")
        code, text = s.reply()
        assert code == 250, (code, text)
        assert s.cmd("QUIT")[0] == 221
    finally:
        s.close()
    wait_ids(c, "dave@strict.test", ["after-refusals"])
    # smtplib's view: all recipients refused -> no transaction.
    try:
        send(c, ["ghost@strict.test"], message("nobody"))
        raise AssertionError("an unknown user was accepted")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = e.recipients["ghost@strict.test"]
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)


def expect(s, line, codes, enhanced_prefix, what):
    code, text = s.cmd(line)
    assert code in codes and text.startswith(enhanced_prefix), \
        "%s: %r -> %d %r" % (what, line, code, text)


def test_malformed_commands(c):
    s = Smtp(*c.mx())
    try:
        assert s.reply()[0] == 220
        expect(s, "EHLO", (501,), "5.", "EHLO without a domain")
        assert s.cmd("EHLO client.example.net")[0] == 250
        expect(s, "FOO bar", (500,), "5.5.", "unknown command")
        expect(s, b"\x80\xff\x00garbage", (500, 501), "5.", "binary garbage")
        expect(s, "MAIL FROM:<unterminated@example.net", (501,), "5.",
               "MAIL with a broken path")
        expect(s, "MAIL FROM:sender", (501,), "5.", "MAIL without <>")
        expect(s, "RCPT TO:<alice@pol.test>", (503,), "5.5.1",
               "RCPT before MAIL")
        expect(s, "DATA", (503,), "5.5.1", "DATA before MAIL")
        expect(s, "MAIL FROM:<a@example.net> SIZE=abc", (501, 555), "5.",
               "bad SIZE parameter")
        expect(s, "X" * 3000, (500,), "5.", "a 3000-byte command line")
        # VRFY does not tell users apart (RFC 5321 7.3: 252).
        known = s.cmd("VRFY alice@pol.test")
        unknown = s.cmd("VRFY nobody-here@pol.test")
        assert known[0] == unknown[0] and known[0] in (252, 502), \
            (known, unknown)
        assert s.cmd("NOOP")[0] == 250
        # After all that, a transaction still works in the same session
        # (unless the server chose to drop a client that misbehaved).
        code, _ = s.cmd("MAIL FROM:<%s>" % SENDER)
        if code == 250:
            assert s.cmd("RCPT TO:<erin@strict.test>")[0] == 250
            assert s.cmd("DATA")[0] == 354
            s.send(message("after-garbage") + b".\r\n")
            assert s.reply()[0] == 250
            wait_ids(c, "erin@strict.test", ["after-garbage"])
        else:
            print("  note: the session ended after the errors (%d)" % code)
    finally:
        s.close()
    send(c, ["erin@strict.test"], message("new-session"))
    wait_until(lambda: "<new-session@example.net>" in ids_of(
        c, "erin@strict.test"), WAIT, 0.2, "the new session's message")


def big_message(tag, size):
    head = message(tag)
    line = b"b" * 998 + b"\r\n"
    return head + line * (size // len(line) + 1)


def test_oversized(c):
    host, port = c.mx()
    s = smtplib.SMTP(host, port, timeout=60)
    s.ehlo()
    assert s.esmtp_features.get("size") == str(MAX_SIZE), s.esmtp_features
    big = big_message("too-big", MAX_SIZE + 200000)
    try:
        # smtplib declares SIZE= itself when the server offers SIZE.
        s.sendmail(SENDER, ["alice@pol.test"], big)
        raise AssertionError("declared oversize accepted")
    except smtplib.SMTPSenderRefused as e:
        assert e.smtp_code == 552 and e.smtp_error.startswith(b"5.3.4"), e
    s.rset()
    # Undeclared: the whole content goes, then 552; meanwhile another
    # session delivers.
    assert s.mail(SENDER)[0] == 250
    assert s.rcpt("bob@pol.test")[0] == 250
    code, _ = s.docmd("DATA")
    assert code == 354, code
    half = len(big) // 2
    s.send(big[:half])
    send(c, ["carol@pol.test"], message("during-big"))
    s.send(big[half:] + b".\r\n")
    code, text = s.getreply()
    assert code == 552 and text.startswith(b"5.3.4"), (code, text)
    # The same session goes on with a small one.
    assert s.sendmail(SENDER, ["bob@pol.test"], message("after-big")) == {}
    s.quit()
    # A message just under the limit passes.
    fits = big_message("fits", MAX_SIZE - 5000)[:MAX_SIZE - 2000]
    fits = fits[:fits.rfind(b"\r\n") + 2]
    assert send(c, ["carol@pol.test"], fits) == {}
    time.sleep(1)
    wait_ids(c, "bob@pol.test", ["to-info", "twice", "to-sales", "after-big"])
    wait_ids(c, "carol@pol.test", ["to-catchall", "during-big", "fits"])
    # fits arrived whole.
    for m in c.mailbox("carol@pol.test"):
        if m["message_id"] == "<fits@example.net>":
            _, _, rest = strip_trace(c.blob(m["sha256"]))
            assert hashlib.sha256(rest).digest() == \
                hashlib.sha256(fits).digest(), "the 1 MiB message changed"


def test_client_vanishes_mid_data(c):
    """Ten clients drop the connection halfway through DATA, one opens
    and says nothing: nothing is stored, the relay keeps serving."""
    host, port = c.mx()
    idle = socket.create_connection((host, port), timeout=10)
    for i in range(10):
        s = Smtp(host, port)
        assert s.reply()[0] == 220
        assert s.cmd("EHLO quitter.example.net")[0] == 250
        assert s.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
        assert s.cmd("RCPT TO:<dave@strict.test>")[0] == 250
        assert s.cmd("DATA")[0] == 354
        s.send(message("vanished-%d" % i)[:40])
        s.close()
    send(c, ["dave@strict.test"], message("after-vanish"))
    time.sleep(1)
    wait_ids(c, "dave@strict.test", ["after-refusals", "after-vanish"])
    idle.close()
    # The relay's spool keeps nothing half-received (docs/queue.md).
    spool = os.path.join(c.env["MC_RELAY_1_STATE_DIR"], "spool", "incoming")
    assert os.path.isdir(spool), "no spool at %s" % spool
    wait_until(lambda: not os.listdir(spool), 10, 0.2,
               "an empty incoming/ (holds %r)" % os.listdir(spool))


if __name__ == "__main__":
    run_tests(Cluster(base_port=27810, script_vars={
        "MC_RETRY_BASE_MS": "500", "MC_RETRY_MAX_MS": "2000",
        "MC_MAX_MESSAGE_SIZE": str(MAX_SIZE)}), [
        ("setup: domains, accounts, aliases, catch-all", setup),
        ("aliases and catch-all reach the right accounts",
         test_aliases_and_catchall),
        ("unknown user 550 5.1.1, foreign domain 5.7.1",
         test_unknown_and_foreign),
        ("malformed commands 500/501 with enhanced codes",
         test_malformed_commands),
        ("oversized 552 5.3.4; other sessions served", test_oversized),
        ("clients vanishing mid-DATA store nothing",
         test_client_vanishes_mid_data),
    ])
