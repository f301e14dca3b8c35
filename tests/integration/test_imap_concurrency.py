"""Several IMAP sessions on one mailbox (issue: IMAP, "What it must show",
part 3): a flag change, an APPEND and an EXPUNGE in one imaplib session
show up in another one on the same INBOX as untagged FETCH / EXISTS /
EXPUNGE after its NOOP, never as an EXPUNGE in the middle of a FETCH,
STORE or SEARCH (RFC 3501 7.4.1); a session in IDLE (RFC 2177, raw TLS
socket) sees a delivery as an untagged EXISTS within about a second
(LMTP straight to the node) and through the relay's MX, and sees other
sessions' flag changes and expunges without asking; another account's
mail never wakes it. Every wait is bounded.

Ports: base 28510 (node-1 IMAP 28581, IMAPS 28591)."""

import imaplib
import re
import time

from harness import (Cluster, Imap, ImapClosed, add_accounts, imap_parse,
                     lmtp_deliver, mx_send, run_tests, wait_port)

DOMAIN = "conc.test"
TWO = "two@" + DOMAIN
OTHER = "other@" + DOMAIN
PASSWORDS = {TWO: "two-pass-1", OTHER: "other-pass-1"}
SENDER = "sender@example.net"
# How soon an idling session must hear of a delivery the node stored
# (LMTP answered 250): "about a second", with room for a busy machine.
IDLE_LATENCY = 2.0
# The same through relay-1's MX (queue, then LMTP).
MX_LATENCY = 30.0
counter = [0]


def message(subject):
    counter[0] += 1
    return (b"From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            b"Message-ID: <conc-%d@example.net>\r\n\r\nbody %d\r\n"
            % (SENDER.encode(), TWO.encode(), subject, counter[0],
               counter[0]))


def setup(c):
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, PASSWORDS)
    for ep in (c.mx(), c.imaps()):
        wait_port(*ep, timeout=20)
    for i in range(4):
        mx_send(c, SENDER, [TWO], message(b"first %d" % i))
    c.wait_mailbox(TWO, 4, timeout=30)


def login(c, address=TWO):
    host, port = c.imaps()
    im = imaplib.IMAP4_SSL(host, port, ssl_context=c.imap_context(),
                           timeout=20)
    im.login(address, PASSWORDS[address])
    return im


def done(*sessions):
    for im in sessions:
        if im.state != "LOGOUT":
            try:
                im.logout()
            except (OSError, imaplib.IMAP4.error):
                pass


def drain(im):
    """Forget the untagged responses imaplib kept so far."""
    for kind in ("FETCH", "EXPUNGE", "EXISTS", "RECENT"):
        im.response(kind)


def untagged_after_noop(im, kind):
    typ, _ = im.noop()
    assert typ == "OK", typ
    _, data = im.response(kind)
    return [d for d in data if d is not None]


def raw_session(c, address=TWO, mailbox="INBOX"):
    im = Imap(*c.imaps(), context=c.imap_context())
    im.login(address, PASSWORDS[address])
    sel = im.select(mailbox)
    return im, sel


def wait_for(im, pattern, timeout):
    """Read responses until one matches pattern (bytes regex); returns
    (the match, seconds waited, the responses read before it). Raises
    AssertionError after timeout seconds."""
    t0 = time.monotonic()
    seen = []
    try:
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                raise TimeoutError()
            im.sock.settimeout(left)
            r = im.read_response()
            m = re.match(pattern, r)
            if m:
                return m, time.monotonic() - t0, seen
            seen.append(r)
    except TimeoutError:
        raise AssertionError("no %r within %.1fs; got %r"
                             % (pattern, timeout, seen))
    finally:
        im.sock.settimeout(im.timeout)


def nothing_for(im, seconds):
    """Assert the server sends nothing for that many seconds."""
    assert not im.pending(seconds), \
        "unexpected: %r" % im.read_response()


# ---- two imaplib sessions ----

def test_flag_change_seen_by_other(c):
    a, b = login(c), login(c)
    try:
        for im in (a, b):
            typ, data = im.select("INBOX")
            assert typ == "OK" and int(data[0]) == 4, data
        drain(b)
        typ, data = a.uid("SEARCH", None, "ALL")
        uids = [int(x) for x in data[0].split()]
        typ, _ = a.uid("STORE", str(uids[0]), "+FLAGS", "(\\Flagged)")
        assert typ == "OK"
        got = untagged_after_noop(b, "FETCH")
        assert any(re.match(rb"1 \(.*\\Flagged", x) for x in got), got
        a.uid("STORE", str(uids[0]), "-FLAGS", "(\\Flagged)")
        got = untagged_after_noop(b, "FETCH")
        assert got and all(b"\\Flagged" not in x for x in got), got
        assert any(x.startswith(b"1 ") for x in got), got
        # \Seen set by reading the message in a.
        a.uid("FETCH", str(uids[1]), "(BODY[])")
        got = untagged_after_noop(b, "FETCH")
        assert any(re.match(rb"2 \(.*\\Seen", x) for x in got), got
        # Nothing changed: NOOP reports nothing.
        assert untagged_after_noop(b, "FETCH") == []
    finally:
        done(a, b)


def test_append_seen_by_other(c):
    a, b = login(c), login(c)
    try:
        a.select("INBOX")
        typ, data = b.select("INBOX")
        n = int(data[0])
        drain(b)
        typ, data = a.append("INBOX", None, None, message(b"appended"))
        assert typ == "OK", data
        got = untagged_after_noop(b, "EXISTS")
        assert got and int(got[-1]) == n + 1, got
        typ, data = b.fetch(str(n + 1), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and b"appended" in data[0][1], data
        # And a delivery through the MX.
        mx_send(c, SENDER, [TWO], message(b"delivered"))
        deadline = time.monotonic() + MX_LATENCY
        while True:
            got = untagged_after_noop(b, "EXISTS")
            if got and int(got[-1]) == n + 2:
                break
            assert time.monotonic() < deadline, \
                "delivery not seen after %.0fs" % MX_LATENCY
            time.sleep(0.1)
    finally:
        done(a, b)


def test_expunge_seen_by_other(c):
    """a expunges message 2; b, still showing it, gets no EXPUNGE during
    FETCH, STORE or SEARCH (sequence numbers would shift under it), then
    "* 2 EXPUNGE" with its NOOP."""
    a = login(c)
    b, sel = raw_session(c)
    try:
        a.select("INBOX")
        n = sel["exists"]
        uids = b.search("ALL", uid=True)
        assert len(uids) == n, (uids, n)
        a.store("2", "+FLAGS", "(\\Deleted)")
        typ, _ = a.expunge()
        assert typ == "OK"
        for cmd in (("FETCH", "1:*", "(FLAGS)"),
                    ("STORE", "1", "+FLAGS", "(\\Answered)"),
                    ("SEARCH", "ALL")):
            r = b.cmd(*cmd)
            assert r.status in ("OK", "NO"), r
            assert not r.untagged_of("EXPUNGE"), \
                "EXPUNGE sent during %s: %r" % (cmd[0], r.untagged)
        r = b.ok("NOOP")
        assert b"* 2 EXPUNGE" in r.untagged, r.untagged
        assert b.search("ALL", uid=True) == uids[:1] + uids[2:]
        # a's own view agrees.
        typ, data = a.uid("SEARCH", None, "ALL")
        assert [int(x) for x in data[0].split()] == uids[:1] + uids[2:]
    finally:
        done(a)
        b.close()


# ---- IDLE ----

def test_idle_delivery(c):
    """IDLE: "+", then a delivery over LMTP straight to the node shows up
    as "* N EXISTS" within IDLE_LATENCY seconds of the LMTP 250; then one
    through relay-1's MX; DONE ends it with a tagged OK."""
    im, sel = raw_session(c)
    try:
        assert "IDLE" in im.capabilities()
        n = sel["exists"]
        tag, _ = im.start("IDLE")
        wait_for(im, rb"\+", 5)
        replies = lmtp_deliver(*c.lmtp(), SENDER, [TWO], message(b"idle 1"))
        assert replies[0][0] == 250, replies
        m, waited, _ = wait_for(im, rb"\* (\d+) EXISTS$", IDLE_LATENCY)
        assert int(m.group(1)) == n + 1, m.group(0)
        print("  LMTP delivery seen in IDLE after %.3fs" % waited)
        t0 = time.monotonic()
        mx_send(c, SENDER, [TWO], message(b"idle 2"))
        m, waited, _ = wait_for(im, rb"\* (\d+) EXISTS$", MX_LATENCY)
        assert int(m.group(1)) == n + 2, m.group(0)
        print("  MX delivery seen in IDLE %.3fs after the SMTP dialogue "
              "started" % (time.monotonic() - t0))
        im.send("DONE\r\n")
        r = im.finish(tag)
        assert r.status == "OK", r
        f = im.fetch("%d:%d" % (n + 1, n + 2),
                     "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [x[1]["BODY[HEADER.FIELDS (SUBJECT)]"] for x in f]
        assert subjects == [b"Subject: idle 1\r\n\r\n",
                            b"Subject: idle 2\r\n\r\n"], subjects
    finally:
        im.close()


def test_idle_sees_other_sessions(c):
    """While idling: another session's STORE shows up as an untagged
    FETCH with the new flags, its APPEND as EXISTS, its EXPUNGE as
    EXPUNGE, each within IDLE_LATENCY seconds."""
    im, sel = raw_session(c)
    a = login(c)
    try:
        n = sel["exists"]
        a.select("INBOX")
        tag, _ = im.start("IDLE")
        wait_for(im, rb"\+", 5)
        a.store("1", "+FLAGS", "(\\Flagged)")
        m, waited, _ = wait_for(im, rb"\* 1 FETCH (.*)$", IDLE_LATENCY)
        flags = imap_parse(m.group(1))[0]
        assert b"\\Flagged" in flags[flags.index(b"FLAGS") + 1], m.group(0)
        print("  flag change seen after %.3fs" % waited)
        a.append("INBOX", None, None, message(b"from a"))
        m, waited, _ = wait_for(im, rb"\* (\d+) EXISTS$", IDLE_LATENCY)
        assert int(m.group(1)) == n + 1, m.group(0)
        a.store("1", "+FLAGS", "(\\Deleted)")
        a.expunge()
        m, waited, _ = wait_for(im, rb"\* 1 EXPUNGE$", IDLE_LATENCY)
        print("  expunge seen after %.3fs" % waited)
        im.send("DONE\r\n")
        r = im.finish(tag)
        assert r.status == "OK", r
        assert im.select("INBOX")["exists"] == n
    finally:
        done(a)
        im.close()


def test_idle_other_account_quiet(c):
    """Mail for another account does not wake an idling session (nor
    show up in it)."""
    im, sel = raw_session(c)
    try:
        tag, _ = im.start("IDLE")
        wait_for(im, rb"\+", 5)
        replies = lmtp_deliver(*c.lmtp(), SENDER, [OTHER],
                               message(b"for the other one"))
        assert replies[0][0] == 250, replies
        nothing_for(im, 1.5)
        im.send("DONE\r\n")
        assert im.finish(tag).status == "OK"
        assert im.status("INBOX", "(MESSAGES)")["MESSAGES"] == sel["exists"]
    finally:
        im.close()


def test_idle_done_only(c):
    """Anything but DONE during IDLE: the server ends IDLE (BAD, or a
    tagged reply) and the session still works, or closes it; it does not
    hang."""
    im, _ = raw_session(c)
    try:
        tag, _ = im.start("IDLE")
        wait_for(im, rb"\+", 5)
        im.send("t99 NOOP\r\n")
        try:
            m, _, seen = wait_for(im, rb"(%s|t99|\*) (OK|NO|BAD|BYE)"
                                  % tag.encode(), 5)
        except ImapClosed:
            return
        try:
            r = im.cmd("NOOP")
        except ImapClosed:
            return
        assert r.status in ("OK", "BAD"), r
    finally:
        im.close()


if __name__ == "__main__":
    run_tests(Cluster(base_port=28510, script_vars={
        "MC_RETRY_BASE_MS": "300", "MC_RETRY_MAX_MS": "1000"}), [
        ("setup: two accounts, four messages", setup),
        ("a flag change shows in the other session after NOOP",
         test_flag_change_seen_by_other),
        ("an APPEND and a delivery show as EXISTS after NOOP",
         test_append_seen_by_other),
        ("an EXPUNGE shows after NOOP, never during FETCH/STORE/SEARCH",
         test_expunge_seen_by_other),
        ("IDLE sees a delivery within about a second",
         test_idle_delivery),
        ("IDLE sees other sessions' STORE, APPEND, EXPUNGE",
         test_idle_sees_other_sessions),
        ("IDLE is not woken by another account's mail",
         test_idle_other_account_quiet),
        ("IDLE interrupted by a command, not DONE", test_idle_done_only),
    ])
