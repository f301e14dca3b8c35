"""A large mailbox over IMAP (issue: IMAP, "What it must show", part 7):
10,000 messages put into one INBOX with IMAP APPEND over one connection
(pipelined with non-synchronising literals when the server offers
LITERAL+ or LITERAL-, one at a time otherwise), then SELECT, `UID FETCH
1:* (UID FLAGS RFC822.SIZE ENVELOPE)`, STATUS, SEARCH, STORE 1:* and a
few BODY[] fetches, each timed and printed. Assertions are about
correctness (10,000 FETCH responses, each UID once, sizes and subjects
those appended, APPENDUIDs ascending) with generous time bounds (this is
a test, not a benchmark): FETCH_BOUND seconds per command, FILL_BOUND for
the whole fill.

Ports: base 28810 (node-1 IMAP 28881, IMAPS 28891)."""

import os
import re
import time

from harness import (Cluster, Imap, ImapLiteral, add_accounts, run_tests,
                     wait_port)

DOMAIN = "large.test"
USER = "big@" + DOMAIN
PASSWORD = "big-pass-1"
N = int(os.environ.get("MC_IMAP_LARGE_N", "10000"))
WINDOW = 200          # APPENDs in flight when pipelining
FILL_BOUND = 420.0    # seconds for all the APPENDs
FETCH_BOUND = 60.0    # seconds for one command over the whole mailbox
state = {"uids": {}, "sizes": {}}  # uid -> i, i -> size


def message(i):
    return (b"From: Bulk Sender <bulk@example.net>\r\n"
            b"To: <%s>\r\n"
            b"Subject: bulk message %05d\r\n"
            b"Date: Fri, 04 Dec 2026 %02d:%02d:%02d +0000\r\n"
            b"Message-ID: <bulk-%05d@example.net>\r\n"
            b"\r\n"
            b"Body of message %05d.\r\n" % (
                USER.encode(), i, (i // 3600) % 24, (i // 60) % 60, i % 60,
                i, i)
            + b"filler " * (i % 50) + b"\r\n")


def setup(c):
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, {USER: PASSWORD})
    wait_port(*c.imaps(), timeout=20)


def session(c):
    im = Imap(*c.imaps(), context=c.imap_context(), timeout=FETCH_BOUND)
    im.login(USER, PASSWORD)
    return im


def appenduid(i, r):
    assert r.status == "OK", "APPEND %d: %r" % (i, r)
    m = re.match(r"APPENDUID (\d+) (\d+)$", r.code, re.I)
    assert m, "APPEND %d: no APPENDUID in %r" % (i, r.line)
    return int(m.group(2))


def fill_pipelined(im, t0):
    """APPENDs with {n+} literals, WINDOW at a time, one connection."""
    uids = []
    i = 0
    while i < N:
        batch = []
        data = b""
        for j in range(i, min(N, i + WINDOW)):
            msg = message(j)
            state["sizes"][j] = len(msg)
            tag = "a%d" % j
            batch.append((j, tag))
            data += b"%s APPEND INBOX {%d+}\r\n%s\r\n" % (
                tag.encode(), len(msg), msg)
        im.send(data)
        for j, tag in batch:
            uids.append((j, appenduid(j, im.finish(tag))))
        i += len(batch)
        assert time.monotonic() - t0 < FILL_BOUND, \
            "only %d of %d appended after %.0fs" % (i, N, FILL_BOUND)
    return uids


def fill_one_by_one(im, t0):
    uids = []
    for j in range(N):
        msg = message(j)
        state["sizes"][j] = len(msg)
        uids.append((j, appenduid(j, im.cmd("APPEND", "INBOX",
                                            ImapLiteral(msg)))))
        if j % 500 == 0:
            assert time.monotonic() - t0 < FILL_BOUND, \
                "only %d of %d appended after %.0fs" % (j, N, FILL_BOUND)
    return uids


def test_fill(c):
    im = session(c)
    try:
        caps = im.capabilities()
        assert "UIDPLUS" in caps, "UIDPLUS not offered: %r" % caps
        pipelined = "LITERAL+" in caps or "LITERAL-" in caps
        assert max(len(message(j)) for j in (0, N - 1)) < 4096  # LITERAL-
        t0 = time.monotonic()
        uids = (fill_pipelined if pipelined else fill_one_by_one)(im, t0)
        took = time.monotonic() - t0
        got = [u for _, u in uids]
        assert len(set(got)) == N, "duplicate APPENDUIDs"
        assert got == sorted(got), "APPENDUIDs not ascending"
        state["uids"] = {u: j for j, u in uids}
        print("  %d APPENDs (%s) in %.1fs: %.0f/s" % (
            N, "pipelined, {n+}" if pipelined else "one by one", took,
            N / took))
    finally:
        im.close()


def timed(what, fn):
    t0 = time.monotonic()
    out = fn()
    took = time.monotonic() - t0
    print("  %-48s %7.3fs" % (what, took))
    assert took < FETCH_BOUND, "%s took %.1fs" % (what, took)
    return out


def test_select_and_fetch_all(c):
    assert len(state["uids"]) == N, "the fill did not complete"
    im = session(c)
    try:
        sel = timed("SELECT INBOX", lambda: im.select("INBOX"))
        assert sel["exists"] == N, sel
        assert sel["uidnext"] > max(state["uids"]), sel
        fetched = timed("UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)",
                        lambda: im.fetch("1:*",
                                         "(UID FLAGS RFC822.SIZE ENVELOPE)",
                                         uid=True))
        assert len(fetched) == N, "%d FETCH responses, want %d" % (
            len(fetched), N)
        seen = set()
        for seq, f in fetched:
            uid = int(f["UID"])
            assert uid in state["uids"] and uid not in seen, uid
            seen.add(uid)
            j = state["uids"][uid]
            assert int(f["RFC822.SIZE"]) == state["sizes"][j], (uid, f)
            assert f["ENVELOPE"][1] == b"bulk message %05d" % j, (uid, f)
            assert f["ENVELOPE"][9] == b"<bulk-%05d@example.net>" % j, f
        assert [s for s, _ in fetched] == list(range(1, N + 1)), \
            "FETCH responses out of sequence order"
        st = timed("STATUS INBOX (MESSAGES UIDNEXT UNSEEN)",
                   lambda: im.status("INBOX", "(MESSAGES UIDNEXT UNSEEN)"))
        assert st["MESSAGES"] == N and st["UNSEEN"] == N, st
        flags = timed("FETCH 1:* (FLAGS)", lambda: im.fetch("1:*", "(FLAGS)"))
        assert len(flags) == N
        hit = timed('UID SEARCH SUBJECT "bulk message 07777"',
                    lambda: im.search("SUBJECT", '"bulk message %05d"'
                                      % (7777 % N), uid=True))
        want = [u for u, j in state["uids"].items() if j == 7777 % N]
        assert hit == want, (hit, want)
        cut = sorted(state["sizes"].values())[N // 2]
        big = timed("SEARCH LARGER %d" % cut,
                    lambda: im.search("LARGER", str(cut)))
        want = sum(1 for s in state["sizes"].values() if s > cut)
        assert len(big) == want and want > 0, (len(big), want)
        timed("STORE 1:* +FLAGS.SILENT (\\Seen)",
              lambda: im.ok("STORE", "1:*", "+FLAGS.SILENT", "(\\Seen)"))
        unseen = timed("SEARCH UNSEEN", lambda: im.search("UNSEEN"))
        assert unseen == [], unseen[:10]
        for seq in (1, N // 2, N):
            f = im.fetch(str(seq), "(UID BODY.PEEK[])")[0][1]
            j = state["uids"][int(f["UID"])]
            assert f["BODY[]"] == message(j), seq
        # A second session selects the big mailbox as quickly.
        other = session(c)
        try:
            sel = timed("SELECT INBOX (second session)",
                        lambda: other.select("INBOX", examine=True))
            assert sel["exists"] == N
        finally:
            other.close()
    finally:
        im.close()


if __name__ == "__main__":
    run_tests(Cluster(base_port=28810), [
        ("setup: account", setup),
        ("fill INBOX with %d APPENDs" % N, test_fill),
        ("SELECT, UID FETCH 1:* of %d messages, SEARCH, STORE" % N,
         test_select_and_fetch_all),
    ])
