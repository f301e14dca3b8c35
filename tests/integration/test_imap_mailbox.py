"""IMAP mailbox commands on a mailbox node (issue: IMAP, "What it must
show", part 2), with a raw client that sees every response and response
code: LIST with the SPECIAL-USE roles of the store's mailboxes (INBOX,
Sent, Drafts, Trash, Junk, Archive), LIST wildcards, CREATE / RENAME
(with children, and INBOX) / DELETE, SUBSCRIBE / LSUB, STATUS, SELECT /
EXAMINE, APPEND with flags and date (APPENDUID, TRYCREATE), COPY / MOVE
(COPYUID), STORE +FLAGS / -FLAGS / FLAGS / .SILENT, EXPUNGE and UID
EXPUNGE (checked by replaying the EXPUNGE responses), SEARCH (flags,
header and body text, dates, sizes, OR / NOT, sequence and UID sets,
CHARSET), CLOSE / UNSELECT, NAMESPACE, ID, ENABLE, and the quota set with
`mailctl account add --quota`: GETQUOTAROOT / GETQUOTA, APPEND and COPY
over quota refused with NO [OVERQUOTA], nothing stored.

Ports: base 28410 (node-1 IMAP 28481, IMAPS 28491)."""

import imaplib
import os
import re
import time

from harness import (Cluster, Imap, ImapLiteral, add_accounts,
                     imap_fetch_items, imap_parse, imap_quote, mx_send,
                     run_tests, wait_port, wait_until)

DOMAIN = "box.test"
MB = "mb@" + DOMAIN        # the main account
QUOTA = "quota@" + DOMAIN  # 1 MiB quota
REN = "ren@" + DOMAIN      # RENAME INBOX
PASSWORDS = {MB: "mb-pass-1", QUOTA: "quota-pass-1", REN: "ren-pass-1"}
QUOTA_BYTES = 1024 * 1024
SENDER = "sender@example.net"
SPECIAL = {"Sent": "\\sent", "Drafts": "\\drafts", "Trash": "\\trash",
           "Junk": "\\junk", "Archive": "\\archive"}
state = {"delim": "/"}


def setup(c):
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, {MB: PASSWORDS[MB], REN: PASSWORDS[REN]})
    add_accounts(c, {QUOTA: PASSWORDS[QUOTA]}, quota=QUOTA_BYTES)
    for ep in (c.mx(), c.imap(), c.imaps()):
        wait_port(*ep, timeout=20)
    for address, n in ((MB, 3), (REN, 2)):
        for i in range(n):
            mx_send(c, SENDER, [address], message(b"delivered %d" % i))
        c.wait_mailbox(address, n, timeout=30)


def message(subject, body=b"Some text.\r\n", extra=b"",
            date=b"Tue, 01 Dec 2026 10:00:00 +0000"):
    return (b"From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\n"
            b"Message-ID: <%s@example.net>\r\n" % (
                SENDER.encode(), MB.encode(), subject, date,
                re.sub(rb"\W", b"-", subject))
            + extra + b"\r\n" + body)


def session(c, address=MB):
    im = Imap(*c.imaps(), context=c.imap_context())
    im.login(address, PASSWORDS[address])
    return im


def name(*parts):
    return state["delim"].join(parts)


def expect_refused(r, what, statuses=("NO",), code=None):
    assert r.status in statuses, "%s: want %s, got %r" % (what, statuses, r)
    if code:
        assert r.code.split(" ")[0].upper() == code, \
            "%s: want [%s], got %r" % (what, code, r.line)


# ---- LIST, CREATE, RENAME, DELETE, SUBSCRIBE ----

def test_list_special_use(c):
    """LIST "" "*": INBOX and the five special-use mailboxes with their
    RFC 6154 attributes; "%" stops at the delimiter; LIST "" "" gives the
    delimiter; "inbox" matches INBOX in any case."""
    im = session(c)
    try:
        boxes = im.list("", "*")
        assert "INBOX" in boxes, boxes
        for box, attr in SPECIAL.items():
            assert box in boxes, "%s missing from LIST: %r" % (box, boxes)
            assert attr in boxes[box][0], \
                "%s lacks %s: %r" % (box, attr, boxes[box])
        for box, (attrs, _) in boxes.items():
            if box not in SPECIAL:
                assert not attrs & set(SPECIAL.values()), (box, attrs)
        delims = {d for _, d in boxes.values()}
        assert len(delims) == 1 and None not in delims, delims
        state["delim"] = delims.pop()
        r = im.ok("LIST", '""', '""')
        got = r.untagged_of("LIST")
        assert len(got) == 1 and "\\noselect" in got[0].decode().lower(), got
        assert ('"%s"' % state["delim"]).encode() in got[0], got
        assert set(im.list("", "%")) == set(boxes), "no children yet"
        assert set(im.list("", "inbox")) == {"INBOX"}
        assert set(im.list("", "Dra*")) == {"Drafts"}
        assert im.list("", "nothing-like-this*") == {}
        print("  delimiter %r; %s" % (state["delim"], ", ".join(
            "%s %s" % (b, " ".join(sorted(a))) for b, (a, _) in
            sorted(boxes.items()))))
        if "LIST-EXTENDED" in im.capabilities():
            r = im.ok("LIST", "(SPECIAL-USE)", '""', '"*"')
            got = {x.decode().rsplit(" ", 1)[-1].strip('"')
                   for x in r.untagged_of("LIST")}
            assert got == set(SPECIAL), got
    finally:
        im.close()


def test_create_rename_delete(c):
    im = session(c)
    try:
        im.ok("CREATE", imap_quote("Projects"))
        expect_refused(im.cmd("CREATE", imap_quote("Projects")),
                       "CREATE of an existing mailbox")
        expect_refused(im.cmd("CREATE", "INBOX"), "CREATE INBOX")
        im.ok("CREATE", imap_quote(name("Projects", "2026")))
        boxes = im.list("", "Projects*")
        assert set(boxes) == {"Projects", name("Projects", "2026")}, boxes
        assert set(im.list("", "Projects%")) == {"Projects"}, \
            "%% must not match the delimiter"
        assert set(im.list("Projects" + state["delim"], "%")) == \
            {name("Projects", "2026")}
        content = message(b"in a project")
        im.append_uid(name("Projects", "2026"), content)
        im.ok("RENAME", imap_quote(name("Projects", "2026")),
              imap_quote(name("Projects", "2025")))
        boxes = im.list("", "Projects*")
        assert set(boxes) == {"Projects", name("Projects", "2025")}, boxes
        assert im.status(name("Projects", "2025"), "(MESSAGES)") == \
            {"MESSAGES": 1}
        # Children follow their parent.
        im.ok("RENAME", imap_quote("Projects"), imap_quote("Work"))
        assert set(im.list("", "Projects*")) == set()
        assert set(im.list("", "Work*")) == {"Work", name("Work", "2025")}
        im.select(name("Work", "2025"))
        f = im.fetch("1", "(BODY.PEEK[])")
        assert f[0][1]["BODY[]"] == content, f
        im.ok("CLOSE")
        expect_refused(im.cmd("RENAME", imap_quote("Nope"), imap_quote("X")),
                       "RENAME of a missing mailbox")
        im.ok("CREATE", imap_quote("Taken"))
        expect_refused(im.cmd("RENAME", imap_quote("Work"),
                              imap_quote("Taken")),
                       "RENAME onto an existing mailbox")
        im.ok("DELETE", imap_quote("Taken"))
        im.ok("DELETE", imap_quote(name("Work", "2025")))
        expect_refused(im.cmd("DELETE", imap_quote(name("Work", "2025"))),
                       "DELETE twice")
        expect_refused(im.cmd("DELETE", "INBOX"), "DELETE INBOX")
        im.ok("DELETE", imap_quote("Work"))
        assert im.list("", "Work*") == {}
        expect_refused(im.cmd("SELECT", imap_quote("Work")),
                       "SELECT a deleted mailbox")
        # A trailing delimiter is allowed (RFC 3501 6.3.3).
        im.ok("CREATE", imap_quote("Later" + state["delim"]))
        assert "Later" in im.list("", "Later*")
        im.ok("DELETE", imap_quote("Later"))
        # Non-ASCII names in modified UTF-7 (RFC 3501 5.1.3): "Café".
        im.ok("CREATE", imap_quote("Caf&AOk-"))
        assert "Caf&AOk-" in im.list("", "Caf*"), im.list("", "Caf*")
        im.ok("DELETE", imap_quote("Caf&AOk-"))
    finally:
        im.close()


def test_subscribe(c):
    """SUBSCRIBE / UNSUBSCRIBE shown by LSUB (IMAP4rev1) and LIST
    (SUBSCRIBED) (LIST-EXTENDED / IMAP4rev2)."""
    im = session(c)
    try:
        caps = im.capabilities()
        im.ok("CREATE", imap_quote("Lists"))
        im.ok("SUBSCRIBE", imap_quote("Lists"))

        def subscribed():
            seen = []
            if "IMAP4REV1" in caps:
                seen.append(set(im.list("", "*", command="LSUB")))
            if "LIST-EXTENDED" in caps or "IMAP4REV2" in caps:
                r = im.ok("LIST", "(SUBSCRIBED)", '""', '"*"')
                seen.append({imap_unq(x) for x in r.untagged_of("LIST")})
            assert seen, "neither LSUB nor LIST (SUBSCRIBED): %r" % caps
            assert all(s == seen[0] for s in seen), seen
            return seen[0]
        assert "Lists" in subscribed()
        im.ok("UNSUBSCRIBE", imap_quote("Lists"))
        assert "Lists" not in subscribed()
        im.ok("DELETE", imap_quote("Lists"))
    finally:
        im.close()


def imap_unq(list_response):
    """The mailbox name of a LIST response."""
    return imap_parse(list_response)[4].decode()


def test_rename_inbox(c):
    """RENAME INBOX moves its messages to the new name and leaves an
    empty INBOX that still receives mail (RFC 3501 6.3.5)."""
    im = session(c, REN)
    try:
        n = im.status("INBOX", "(MESSAGES)")["MESSAGES"]
        assert n == 2, n
        im.ok("RENAME", "INBOX", imap_quote("Old Inbox"))
        assert im.status("INBOX", "(MESSAGES)") == {"MESSAGES": 0}
        assert im.status("Old Inbox", "(MESSAGES)") == {"MESSAGES": 2}
        assert "INBOX" in im.list("", "*")
    finally:
        im.close()
    mx_send(c, SENDER, [REN], message(b"after rename"))
    c.wait_mailbox(REN, 1, timeout=30)
    im = session(c, REN)
    try:
        assert im.select("INBOX")["exists"] == 1
    finally:
        im.close()


# ---- SELECT, STATUS, APPEND ----

def flag_sets(fetched):
    """{seq: set of flags without \\Recent} of fetch() results."""
    return {seq: set(f["FLAGS"]) - {b"\\Recent"} for seq, f in fetched}


def test_select_examine_status(c):
    im = session(c)
    try:
        st = im.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
        sel = im.select("INBOX")
        assert sel["access"].upper() == "READ-WRITE", sel["reply"]
        assert sel["exists"] == st["MESSAGES"] == 3, (sel, st)
        assert sel["uidvalidity"] == st["UIDVALIDITY"] > 0, (sel, st)
        assert sel["uidnext"] == st["UIDNEXT"], (sel, st)
        for f in (b"\\Seen", b"\\Flagged", b"\\Deleted", b"\\Answered",
                  b"\\Draft"):
            assert f in sel["flags"], sel["flags"]
            assert f in sel["permanentflags"], sel["permanentflags"]
        uids = im.search("ALL", uid=True)
        assert len(uids) == 3 and max(uids) < sel["uidnext"], uids
        flags = flag_sets(im.fetch("1:*", "(FLAGS)"))
        unseen = sum(1 for f in flags.values() if b"\\Seen" not in f)
        assert st["UNSEEN"] == unseen, (st, flags)
        sel = im.select("INBOX", examine=True)
        assert sel["access"].upper() == "READ-ONLY", sel["reply"]
        # Refused, or (as some servers do) OK but without effect.
        r = im.cmd("STORE", "1:*", "+FLAGS", "(\\Flagged \\Deleted)")
        assert r.status in ("NO", "BAD") or \
            (r.status == "OK" and not r.untagged_of("FETCH")), r
        r = im.cmd("EXPUNGE")
        assert r.status in ("NO", "BAD") or \
            (r.status == "OK" and not r.untagged_of("EXPUNGE")), r
        assert flag_sets(im.fetch("1:*", "(FLAGS)")) == flags, \
            "EXAMINE changed flags"
        # A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
        expect_refused(im.cmd("SELECT", imap_quote("No Such Box")),
                       "SELECT of a missing mailbox")
        expect_refused(im.cmd("FETCH", "1", "FLAGS"),
                       "FETCH with nothing selected", ("BAD", "NO"))
        expect_refused(im.cmd("STATUS", imap_quote("No Such Box"),
                              "(MESSAGES)"), "STATUS of a missing mailbox")
        if "STATUS=SIZE" in im.capabilities():
            size = im.status("INBOX", "(SIZE)")["SIZE"]
            im.select("INBOX", examine=True)
            total = sum(int(f["RFC822.SIZE"])
                        for _, f in im.fetch("1:*", "(RFC822.SIZE)"))
            assert size == total, (size, total)
    finally:
        im.close()


def test_append(c):
    """APPEND with flags and an internal date, APPENDUID (UIDPLUS), the
    exact bytes back, keywords when PERMANENTFLAGS has \\*, TRYCREATE for
    a missing mailbox, BAD for a malformed date, LITERAL+."""
    im = session(c)
    try:
        caps = im.capabilities()
        assert "UIDPLUS" in caps, "UIDPLUS not offered: %r" % caps
        draft = message(b"a draft", b"Dear ...\r\n\r\n-- \r\nme\r\n")
        validity, uid = im.append_uid("Drafts", draft,
                                      flags=["\\Draft", "\\Seen"],
                                      date="01-Jan-2026 10:00:00 +0100")
        sel = im.select("Drafts")
        assert sel["uidvalidity"] == validity, (sel, validity)
        f = im.fetch(str(uid), "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])",
                     uid=True)
        assert len(f) == 1, f
        f = f[0][1]
        assert f["BODY[]"] == draft, f["BODY[]"]
        assert int(f["RFC822.SIZE"]) == len(draft), f
        assert {b"\\Draft", b"\\Seen"} <= set(f["FLAGS"]), f["FLAGS"]
        assert internaldate_epoch(f["INTERNALDATE"]) == \
            internaldate_epoch(b"01-Jan-2026 10:00:00 +0100"), \
            f["INTERNALDATE"]
        # No date: now.
        _, uid2 = im.append_uid("Drafts", message(b"undated"))
        f = im.fetch(str(uid2), "(INTERNALDATE FLAGS)", uid=True)[0][1]
        assert abs(internaldate_epoch(f["INTERNALDATE"]) -
                   time.time()) < 600, f
        assert b"\\Seen" not in f["FLAGS"], f
        assert uid2 > uid, (uid, uid2)
        if b"\\*" in sel.get("permanentflags", []):
            _, uid3 = im.append_uid("Drafts", message(b"keyword"),
                                    flags=["$Forwarded", "Custom1"])
            f = im.fetch(str(uid3), "(FLAGS)", uid=True)[0][1]
            assert {b"$Forwarded", b"Custom1"} <= set(f["FLAGS"]), f
        else:
            print("  NOTE: no \\* in PERMANENTFLAGS: keywords not tried")
        r = im.append("No Such Box", message(b"lost"))
        expect_refused(r, "APPEND to a missing mailbox", code="TRYCREATE")
        r = im.append("Drafts", message(b"bad date"),
                      date="01-Foo-2026 10:00:00 +0100")
        expect_refused(r, "APPEND with a bad date", ("BAD",))
        if "LITERAL+" in caps or "LITERAL-" in caps:
            r = im.append("Drafts", message(b"nonsync"), plus=True)
            assert r.status == "OK" and not r.continuations, r
        n = im.status("Drafts", "(MESSAGES)")["MESSAGES"]
        assert n == len(im.search("ALL")), n
    finally:
        im.close()


def internaldate_epoch(value):
    t = imaplib.Internaldate2tuple(b'INTERNALDATE "' + value + b'"')
    assert t, value
    return time.mktime(t)


# ---- COPY, MOVE, STORE, EXPUNGE ----

def copyuid(code):
    """(uidvalidity, [source uids], [destination uids]) of a COPYUID."""
    m = re.match(r"COPYUID (\d+) (\S+) (\S+)$", code, re.I)
    assert m, "no COPYUID in %r" % code
    return int(m.group(1)), uidset(m.group(2)), uidset(m.group(3))


def uidset(text):
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        lo, hi = int(lo), int(hi or lo)
        step = 1 if hi >= lo else -1
        out += list(range(lo, hi + step, step))
    return out


def test_copy_move(c):
    im = session(c)
    try:
        caps = im.capabilities()
        im.select("INBOX")
        uids = im.search("ALL", uid=True)
        assert len(uids) == 3, uids
        im.ok("UID", "STORE", str(uids[0]), "+FLAGS.SILENT", "(\\Flagged)")
        before = {}
        for _, f in im.fetch("%d,%d" % (uids[0], uids[1]),
                             "(UID FLAGS INTERNALDATE BODY.PEEK[])", uid=True):
            before[int(f["UID"])] = f
        r = im.ok("UID", "COPY", "%d,%d" % (uids[0], uids[1]), "Archive")
        validity, src, dst = copyuid(r.code)
        assert sorted(src) == sorted(uids[:2]), (src, uids)
        arch = im.select("Archive")
        assert arch["uidvalidity"] == validity and arch["exists"] == 2, arch
        for s, d in zip(src, dst):
            f = im.fetch(str(d), "(FLAGS INTERNALDATE BODY.PEEK[])",
                         uid=True)[0][1]
            assert f["BODY[]"] == before[s]["BODY[]"], (s, d)
            assert f["INTERNALDATE"] == before[s]["INTERNALDATE"], (s, d)
            assert set(before[s]["FLAGS"]) - {b"\\Recent"} <= \
                set(f["FLAGS"]), (before[s]["FLAGS"], f["FLAGS"])
        im.select("INBOX")
        expect_refused(im.cmd("COPY", "1", imap_quote("No Such Box")),
                       "COPY to a missing mailbox", code="TRYCREATE")
        r = im.ok("UID", "COPY", "999999", "Archive")
        assert "COPYUID" not in r.code.upper(), \
            "UID COPY of no message reports COPYUID: %r" % r.line
        assert "MOVE" in caps, "MOVE not offered: %r" % caps
        r = im.ok("UID", "MOVE", str(uids[2]), "Trash")
        codes = [x for x in r.codes() if x.upper().startswith("COPYUID")]
        assert len(codes) == 1, r.untagged
        _, src, dst = copyuid(codes[0])
        assert src == [uids[2]], src
        expunged = [u for u in r.untagged if re.match(rb"\* \d+ EXPUNGE$", u)]
        assert expunged == [b"* 3 EXPUNGE"], r.untagged
        assert im.search("ALL", uid=True) == uids[:2]
        trash = im.select("Trash")
        assert trash["exists"] == 1, trash
        assert im.search("ALL", uid=True) == dst
        # And back with a sequence-number MOVE.
        im.ok("MOVE", "1", "INBOX")
        im.ok("CLOSE")
        assert im.status("INBOX", "(MESSAGES)") == {"MESSAGES": 3}
    finally:
        im.close()


def fill(im, mailbox, n, prefix):
    """Create mailbox with n appended messages; returns their UIDs."""
    im.ok("CREATE", imap_quote(mailbox))
    return [im.append_uid(mailbox, message(b"%s %d" % (prefix, i)))[1]
            for i in range(n)]


def fetch_flags(response):
    return set(imap_fetch(response)["FLAGS"]) - {b"\\Recent"}


def imap_fetch(response):
    return imap_fetch_items(response)[1]


def test_store(c):
    im = session(c)
    try:
        uids = fill(im, "StoreBox", 4, b"store")
        im.select("StoreBox")
        r = im.ok("STORE", "1", "+FLAGS", "(\\Flagged)")
        got = r.untagged_of("FETCH")
        assert len(got) == 1 and got[0].startswith(b"* 1 FETCH"), r.untagged
        assert fetch_flags(got[0]) == {b"\\Flagged"}, got
        r = im.ok("STORE", "1", "-FLAGS", "(\\Flagged)")
        assert fetch_flags(r.untagged_of("FETCH")[0]) == set(), r.untagged
        r = im.ok("STORE", "2", "+FLAGS.SILENT", "(\\Seen)")
        assert not r.untagged_of("FETCH"), \
            ".SILENT still answered with FETCH: %r" % r.untagged
        f = im.fetch("2", "(FLAGS)")[0][1]
        assert b"\\Seen" in f["FLAGS"], f
        permanent = im.select("StoreBox")["permanentflags"]
        new = ["\\Answered"] + (["$Label1"] if b"\\*" in permanent else [])
        r = im.ok("STORE", "3", "FLAGS", "(%s)" % " ".join(new))
        assert fetch_flags(r.untagged_of("FETCH")[0]) == \
            {x.encode() for x in new}, r.untagged
        r = im.ok("STORE", "3", "FLAGS", "()")
        assert fetch_flags(r.untagged_of("FETCH")[0]) == set(), r.untagged
        # UID STORE: the FETCH responses carry the UID.
        r = im.ok("UID", "STORE", str(uids[3]), "+FLAGS", "(\\Deleted)")
        f = imap_fetch(r.untagged_of("FETCH")[0])
        assert int(f["UID"]) == uids[3] and b"\\Deleted" in f["FLAGS"], f
        r = im.ok("STORE", "1:*", "+FLAGS", "(\\Draft)")
        assert len(r.untagged_of("FETCH")) == 4, r.untagged
        flags = {int(f["UID"]): set(f["FLAGS"]) - {b"\\Recent"}
                 for _, f in im.fetch("1:*", "(UID FLAGS)")}
        assert flags == {uids[0]: {b"\\Draft"},
                         uids[1]: {b"\\Draft", b"\\Seen"},
                         uids[2]: {b"\\Draft"},
                         uids[3]: {b"\\Draft", b"\\Deleted"}}, flags
        # Flags are permanent: another session sees them.
        other = session(c)
        try:
            other.select("StoreBox", examine=True)
            again = {int(f["UID"]): set(f["FLAGS"]) - {b"\\Recent"}
                     for _, f in other.fetch("1:*", "(UID FLAGS)")}
            assert again == flags, (again, flags)
        finally:
            other.close()
    finally:
        im.close()


def replay_expunges(uids, reply):
    """Apply the "* n EXPUNGE" responses of reply to the list uids (in
    sequence order) the way a client must; returns what is left."""
    left = list(uids)
    for u in reply.untagged:
        m = re.match(rb"\* (\d+) EXPUNGE$", u)
        if m:
            n = int(m.group(1))
            assert 1 <= n <= len(left), "EXPUNGE %d of %d" % (n, len(left))
            del left[n - 1]
    return left


def test_expunge(c):
    im = session(c)
    try:
        uids = fill(im, "ExpBox", 6, b"exp")
        im.select("ExpBox")
        r = im.ok("EXPUNGE")
        assert not [u for u in r.untagged if u.endswith(b"EXPUNGE")], r
        im.ok("STORE", "2,4:5", "+FLAGS.SILENT", "(\\Deleted)")
        r = im.ok("EXPUNGE")
        left = replay_expunges(uids, r)
        want = [uids[0], uids[2], uids[5]]
        assert left == want, (left, want, r.untagged)
        assert im.search("ALL", uid=True) == want
        assert [int(f["UID"]) for _, f in im.fetch("1:*", "(UID)")] == want
        # UID EXPUNGE removes only the named \Deleted messages.
        im.ok("STORE", "1:*", "+FLAGS.SILENT", "(\\Deleted)")
        r = im.ok("UID", "EXPUNGE", str(uids[2]))
        left = replay_expunges(want, r)
        assert left == [uids[0], uids[5]], (left, r.untagged)
        assert im.search("DELETED", uid=True) == left
        im.ok("STORE", "1:*", "-FLAGS.SILENT", "(\\Deleted)")
        r = im.ok("UID", "EXPUNGE", "1:*")
        assert replay_expunges(left, r) == left, r.untagged
        assert im.status("ExpBox", "(MESSAGES)") == {"MESSAGES": 2}
    finally:
        im.close()


def test_close_unselect(c):
    """UNSELECT keeps \\Deleted messages, CLOSE expunges them silently,
    CLOSE after EXAMINE does not; then nothing is selected."""
    im = session(c)
    try:
        fill(im, "CloseBox", 3, b"close")
        im.select("CloseBox")
        im.ok("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)")
        assert "UNSELECT" in im.capabilities() or \
            "IMAP4REV2" in im.capabilities(), "UNSELECT not offered"
        r = im.ok("UNSELECT")
        assert not r.untagged_of("EXPUNGE"), r.untagged
        expect_refused(im.cmd("FETCH", "1", "FLAGS"), "FETCH after UNSELECT",
                       ("BAD", "NO"))
        assert im.status("CloseBox", "(MESSAGES)") == {"MESSAGES": 3}
        im.select("CloseBox", examine=True)
        im.ok("CLOSE")
        assert im.status("CloseBox", "(MESSAGES)") == {"MESSAGES": 3}
        im.select("CloseBox")
        r = im.ok("CLOSE")
        assert not [u for u in r.untagged if u.endswith(b"EXPUNGE")], \
            "CLOSE sent EXPUNGE responses: %r" % r.untagged
        assert im.status("CloseBox", "(MESSAGES)") == {"MESSAGES": 2}
        expect_refused(im.cmd("FETCH", "1", "FLAGS"), "FETCH after CLOSE",
                       ("BAD", "NO"))
    finally:
        im.close()


# ---- SEARCH ----

SEARCH_MSGS = [
    # (internal date, Date header, From, To/Cc, Subject, extra headers,
    #  body, flags)
    ("01-Feb-2026 12:00:00 +0000", b"Sun, 01 Feb 2026 12:00:00 +0000",
     b"Ann <ann@example.com>", b"To: <x@box.test>\r\n",
     b"Quarterly report", b"X-Tag: red\r\n",
     b"The budget numbers are inside.\r\n", ["\\Seen"]),
    ("10-Feb-2026 12:00:00 +0000", b"Tue, 10 Feb 2026 12:00:00 +0000",
     b"<bob@example.org>", b"To: <y@box.test>\r\n",
     b"Lunch on friday", b"X-Tag: blue\r\n",
     b"pizza\r\n" + b"filler line to make it large\r\n" * 200, ["\\Flagged"]),
    ("20-Feb-2026 12:00:00 +0000", b"Fri, 20 Feb 2026 12:00:00 +0000",
     b"Ann <ann@example.com>", b"To: <y@box.test>\r\n",
     b"Re: Quarterly REPORT", b"",
     b"The BUDGET looks fine.\r\n", ["\\Seen", "\\Answered"]),
    ("01-Mar-2026 12:00:00 +0000", b"Sun, 01 Mar 2026 12:00:00 +0000",
     b"<carol@example.net>", b"To: <z@box.test>\r\n",
     b"=?UTF-8?Q?caf=C3=A9?= meeting",
     b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
     b"Content-Transfer-Encoding: quoted-printable\r\n",
     b"Meet at the caf=C3=A9 at noon.\r\n", []),
    ("15-Mar-2026 12:00:00 +0000", b"Sun, 15 Mar 2026 12:00:00 +0000",
     b"<bob@example.org>", b"To: <y@box.test>\r\nCc: <ann@example.com>\r\n",
     b"misc", b"", b"nothing to see\r\n", ["\\Deleted", "\\Draft"]),
]


def test_search(c):
    im = session(c)
    try:
        im.ok("CREATE", "SearchBox")
        uids = []
        for idate, date, frm, to, subject, extra, body, flags in SEARCH_MSGS:
            content = (b"From: " + frm + b"\r\n" + to + b"Subject: " +
                       subject + b"\r\nDate: " + date + b"\r\n" + extra +
                       b"\r\n" + body)
            uids.append(im.append_uid("SearchBox", content, flags=flags,
                                      date=idate)[1])
        im.select("SearchBox")
        cases = [
            (["ALL"], {1, 2, 3, 4, 5}),
            (["SEEN"], {1, 3}),
            (["UNSEEN"], {2, 4, 5}),
            (["FLAGGED"], {2}),
            (["ANSWERED"], {3}),
            (["DELETED"], {5}),
            (["UNDELETED"], {1, 2, 3, 4}),
            (["DRAFT"], {5}),
            (["UNDRAFT", "UNANSWERED", "UNFLAGGED"], {1, 4}),
            (["FROM", "ann"], {1, 3}),
            (["FROM", '"ANN@EXAMPLE.COM"'], {1, 3}),
            (["TO", "y@box.test"], {2, 3, 5}),
            (["CC", "ann"], {5}),
            (["SUBJECT", "quarterly"], {1, 3}),
            (["SUBJECT", '"report"'], {1, 3}),
            (["HEADER", "X-Tag", "red"], {1}),
            (["HEADER", "X-Tag", '""'], {1, 2}),
            (["BODY", "budget"], {1, 3}),
            (["BODY", "pizza"], {2}),
            (["TEXT", "ann@example.com"], {1, 3, 5}),
            (["BEFORE", "10-Feb-2026"], {1}),
            (["ON", "10-Feb-2026"], {2}),
            (["SINCE", "20-Feb-2026"], {3, 4, 5}),
            (["SENTBEFORE", "10-Feb-2026"], {1}),
            (["SENTON", "01-Mar-2026"], {4}),
            (["SENTSINCE", "01-Mar-2026"], {4, 5}),
            (["LARGER", "4000"], {2}),
            (["SMALLER", "4000"], {1, 3, 4, 5}),
            (["OR", "FROM", "bob", "SUBJECT", "misc"], {2, 5}),
            (["NOT", "SEEN"], {2, 4, 5}),
            (["NOT", "FROM", "ann"], {2, 4, 5}),
            (["FROM", "ann", "SEEN", "NOT", "ANSWERED"], {1}),
            (["OR", "SEEN", "FLAGGED"], {1, 2, 3}),
            (["(FROM bob)", "(SUBJECT lunch)"], {2}),
            (["OR", "(FROM ann SEEN)", "(DELETED DRAFT)"], {1, 3, 5}),
            (["2:4"], {2, 3, 4}),
            (["2:4", "SEEN"], {3}),
            (["*"], {5}),
            (["1,3,5", "NOT", "DELETED"], {1, 3}),
            (["UID", "%d:%d" % (uids[1], uids[3])], {2, 3, 4}),
            (["UID", "%d,%d" % (uids[0], uids[4])], {1, 5}),
            (["FROM", "nobody-at-all"], set()),
            (["CHARSET", "UTF-8", "SUBJECT", ImapLiteral("caf\xe9")], {4}),
            (["CHARSET", "UTF-8", "BODY", ImapLiteral("caf\xe9")], {4}),
            (["CHARSET", "US-ASCII", "SUBJECT", "meeting"], {4}),
        ]
        failures = []
        for criteria, want in cases:
            got = set(im.search(*criteria))
            if got != want:
                failures.append("SEARCH %s: got %s, want %s" % (
                    " ".join(x if isinstance(x, str) else "{%r}" % x.data
                             for x in criteria), sorted(got), sorted(want)))
            if not isinstance(criteria[-1], ImapLiteral):
                got_uids = set(im.search(*criteria, uid=True))
                if got_uids != {uids[i - 1] for i in want}:
                    failures.append("UID SEARCH %s: got %s" % (
                        " ".join(criteria), sorted(got_uids)))
        assert not failures, "\n".join(failures)
        r = im.cmd("SEARCH", "CHARSET", "KOI9-X", "ALL")
        expect_refused(r, "an unknown charset", code="BADCHARSET")
        expect_refused(im.cmd("SEARCH", "FROBNICATE"), "an unknown key",
                       ("BAD",))
        expect_refused(im.cmd("SEARCH", "BEFORE", "31-Feb-2026x"),
                       "a bad date", ("BAD",))
        print("  %d searches, each also as UID SEARCH" % len(cases))
    finally:
        im.close()


def served_again(c, timeout=30):
    """Wait until a restarted node-1 holds its shard leases again (until
    then a login gets NO [UNAVAILABLE])."""
    def attempt():
        im = Imap(*c.imaps(), context=c.imap_context())
        try:
            r = im.cmd("LOGIN", MB, PASSWORDS[MB])
            return r.status == "OK"
        finally:
            im.close()
    wait_until(attempt, timeout, 0.2, "node-1 serving %s again" % MB)


def test_search_stored_headers(c):
    """SEARCH on Subject/From/To/Cc/Bcc is answered from the header lines
    stored with each message: with node-1 restarted (empty blob cache) and
    the SearchBox blobs moved away, those searches still give the results
    of test_search, while a BODY search cannot (NO [UNAVAILABLE])."""
    rows = c.store_sql(
        "SELECT m.blob_sha256, m.search_headers IS NOT NULL"
        " FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
        " WHERE b.name = 'SearchBox' ORDER BY m.uid")
    assert len(rows) == len(SEARCH_MSGS), rows
    assert all(r[1] == "t" for r in rows), rows
    c.cluster("stop-daemon", "node-1")
    c.cluster("start-daemon", "node-1")
    wait_port(*c.imaps(), timeout=20)
    served_again(c)
    moved = []
    try:
        for sha, _ in rows:
            path = c.blob_path(sha)
            if os.path.exists(path):
                os.rename(path, path + ".away")
                moved.append(path)
        im = session(c)
        try:
            im.select("SearchBox")
            for criteria, want in [
                    (["SUBJECT", "quarterly"], {1, 3}),
                    (["FROM", "ann"], {1, 3}),
                    (["OR", "TO", "z@box.test", "CC", "ann"], {4, 5}),
                    (["HEADER", "subject", "lunch"], {2}),
                    (["CHARSET", "UTF-8", "SUBJECT",
                      ImapLiteral("caf\xe9")], {4}),
                    (["NOT", "FROM", "ann", "UNSEEN"], {2, 4, 5})]:
                got = set(im.search(*criteria))
                assert got == want, (criteria, got, want)
            r = im.cmd("SEARCH", "BODY", "budget")
            expect_refused(r, "BODY without the blobs", code="UNAVAILABLE")
            r = im.cmd("SEARCH", "HEADER", "X-Tag", "red")
            expect_refused(r, "another field without the blobs",
                           code="UNAVAILABLE")
        finally:
            im.close()
    finally:
        for path in moved:
            os.rename(path + ".away", path)


# ---- NAMESPACE, ID, ENABLE ----

def test_namespace_id_enable(c):
    pre = Imap(*c.imaps(), context=c.imap_context())
    try:
        # Only valid once authenticated (RFC 5161): refused, or ignored.
        r = pre.cmd("ENABLE", "CONDSTORE")
        assert r.status in ("BAD", "NO") or (r.status == "OK" and not any(
            b"CONDSTORE" in e.upper() for e in r.untagged_of("ENABLED"))), r
        r = pre.ok("ID", '("name" "mc-integration" "version" "1")')
        ids = r.untagged_of("ID")
        assert len(ids) == 1, r.untagged
    finally:
        pre.close()
    im = session(c)
    try:
        caps = im.capabilities()
        for cap in ("NAMESPACE", "ID", "ENABLE"):
            assert cap in caps, "%s not offered: %r" % (cap, caps)
        r = im.ok("NAMESPACE")
        ns = r.untagged_of("NAMESPACE")
        assert len(ns) == 1, r.untagged
        parsed = imap_parse(ns[0])
        personal = parsed[2]
        assert personal and personal[0][1].decode() == state["delim"], parsed
        im.ok("ID", "NIL")
        r = im.ok("ENABLE", "X-NO-SUCH-EXTENSION")
        for e in r.untagged_of("ENABLED"):
            assert b"X-NO-SUCH-EXTENSION" not in e.upper(), e
        if "CONDSTORE" in caps:
            r = im.ok("ENABLE", "CONDSTORE")
            assert any(b"CONDSTORE" in e.upper()
                       for e in r.untagged_of("ENABLED")), r.untagged
            sel = im.select("INBOX")
            assert any(x.upper().startswith("HIGHESTMODSEQ")
                       for x in sel["reply"].codes()), sel["reply"].untagged
    finally:
        im.close()


# ---- quota ----

def big_message(i, size):
    body = b"".join(b"%06d " % j + b"q" * 72 + b"\r\n"
                    for j in range(size // 80))
    return message(b"big %d" % i, body)


def quota_root(im, mailbox="INBOX"):
    """(root name, used KiB, limit KiB) from GETQUOTAROOT."""
    r = im.ok("GETQUOTAROOT", imap_quote(mailbox))
    roots = r.untagged_of("QUOTAROOT")
    quotas = r.untagged_of("QUOTA")
    assert len(roots) == 1 and quotas, r.untagged
    root = imap_parse(roots[0])[3]
    q = imap_parse(quotas[0])
    assert q[2] == root, (roots, quotas)
    res = q[3]
    i = [x.upper() for x in res[0::3]].index(b"STORAGE")
    return root, int(res[3 * i + 1]), int(res[3 * i + 2])


def test_quota(c):
    """--quota 1M: GETQUOTAROOT shows STORAGE limit 1024 (KiB) and the
    usage; APPEND and COPY that would pass it get NO [OVERQUOTA] and
    store nothing; after EXPUNGE there is room again."""
    im = session(c, QUOTA)
    try:
        caps = im.capabilities()
        assert "QUOTA" in caps or any(x.startswith("QUOTA=") for x in caps), \
            "QUOTA not offered: %r" % caps
        root, used, limit = quota_root(im)
        assert limit == QUOTA_BYTES // 1024, (root, used, limit)
        assert used == 0, used
        r = im.ok("GETQUOTA", imap_quote(root.decode()))
        assert r.untagged_of("QUOTA"), r.untagged
        size = 400 * 1024
        stored = 0
        for i in range(2):
            msg = big_message(i, size)
            im.append_uid("INBOX", msg)
            stored += len(msg)
        _, used, _ = quota_root(im)
        assert abs(used * 1024 - stored) <= 2048, (used, stored)
        r = im.append("INBOX", big_message(2, size))
        expect_refused(r, "APPEND over quota", code="OVERQUOTA")
        im.ok("NOOP")
        assert im.status("INBOX", "(MESSAGES)") == {"MESSAGES": 2}
        im.select("INBOX")
        r = im.cmd("COPY", "1:2", "Archive")
        expect_refused(r, "COPY over quota", code="OVERQUOTA")
        assert im.status("Archive", "(MESSAGES)") == {"MESSAGES": 0}
        _, used_after, _ = quota_root(im)
        assert used_after == used, (used, used_after)
        im.ok("STORE", "1", "+FLAGS.SILENT", "(\\Deleted)")
        im.ok("EXPUNGE")
        im.append_uid("INBOX", big_message(3, size))
        _, used, _ = quota_root(im)
        assert used * 1024 <= QUOTA_BYTES, used
    finally:
        im.close()


if __name__ == "__main__":
    run_tests(Cluster(base_port=28410, script_vars={
        "MC_RETRY_BASE_MS": "300", "MC_RETRY_MAX_MS": "1000"}), [
        ("setup: accounts (one with a quota), mail delivered", setup),
        ("LIST: INBOX and the SPECIAL-USE mailboxes, wildcards",
         test_list_special_use),
        ("CREATE, RENAME (with children), DELETE",
         test_create_rename_delete),
        ("SUBSCRIBE, UNSUBSCRIBE, LSUB", test_subscribe),
        ("RENAME INBOX", test_rename_inbox),
        ("SELECT, EXAMINE, STATUS", test_select_examine_status),
        ("APPEND with flags and date, APPENDUID, TRYCREATE", test_append),
        ("COPY and MOVE with COPYUID", test_copy_move),
        ("STORE +FLAGS, -FLAGS, FLAGS, .SILENT", test_store),
        ("EXPUNGE and UID EXPUNGE", test_expunge),
        ("CLOSE and UNSELECT", test_close_unselect),
        ("SEARCH", test_search),
        ("SEARCH on stored header fields, without the blobs",
         test_search_stored_headers),
        ("NAMESPACE, ID, ENABLE", test_namespace_id_enable),
        ("quota: GETQUOTAROOT, NO [OVERQUOTA]", test_quota),
    ])
