"""IMAP extensions beyond the base protocol, on a raw TLS client (harness
Imap): CONDSTORE (RFC 7162: HIGHESTMODSEQ, FETCH MODSEQ and CHANGEDSINCE,
STORE UNCHANGEDSINCE with [MODIFIED]), QRESYNC (SELECT ... (QRESYNC ...)
answering VANISHED (EARLIER) and the changed flags, VANISHED instead of
EXPUNGE once enabled), ESEARCH (RFC 4731 RETURN options) and
COMPRESS=DEFLATE (RFC 4978: a session that goes on over raw deflate in
both directions).

Ports: base 28910 (node-1 IMAP 28981, IMAPS 28991)."""

import re
import zlib

from harness import (Cluster, Imap, ImapLiteral, add_accounts, run_tests,
                     wait_port)

DOMAIN = "ext.test"
USER = "ext@" + DOMAIN
PASSWORDS = {USER: "ext-pass-1"}


def session(c):
    im = Imap(*c.imaps(), context=c.imap_context())
    im.ok("LOGIN", USER, '"%s"' % PASSWORDS[USER])
    return im


def fill(im, mailbox, n):
    for i in range(n):
        im.ok("APPEND", mailbox, ImapLiteral(
            b"From: <a@example.net>\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (i, i)))


def setup(c):
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, PASSWORDS)
    wait_port(*c.imaps(), timeout=20)
    im = session(c)
    try:
        im.ok("CREATE", "Ext")
        fill(im, "Ext", 5)
    finally:
        im.close()


def modseq_of(fetch):
    m = re.search(rb"MODSEQ \((\d+)\)", fetch)
    assert m, fetch
    return int(m.group(1))


def test_condstore(c):
    """SELECT (CONDSTORE) reports HIGHESTMODSEQ; every flag change gets a
    higher MODSEQ; CHANGEDSINCE returns only what changed after it;
    UNCHANGEDSINCE refuses a message changed since, with [MODIFIED]."""
    im = session(c)
    try:
        r = im.ok("SELECT", "Ext", "(CONDSTORE)")
        highest = [x for x in r.codes() if x.startswith("HIGHESTMODSEQ ")]
        assert highest, r.codes()
        h0 = int(highest[0].split()[1])
        r = im.ok("FETCH", "1:*", "(UID MODSEQ)")
        mods = {int(re.search(rb"UID (\d+)", f).group(1)): modseq_of(f)
                for f in r.untagged_of("FETCH")}
        assert len(mods) == 5 and max(mods.values()) <= h0, (mods, h0)
        r = im.ok("STORE", "2", "+FLAGS", r"(\Flagged)")
        m2 = modseq_of(r.untagged_of("FETCH")[0])
        assert m2 > h0, (m2, h0)
        r = im.ok("UID", "FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE %d)" % h0)
        fetches = r.untagged_of("FETCH")
        assert len(fetches) == 1 and b"\\Flagged" in fetches[0], fetches
        assert b"MODSEQ" in fetches[0], fetches
        # Message 3 is unchanged since h0: its STORE goes through; 2 is
        # not (changed at m2 > h0): refused and listed in MODIFIED.
        r = im.ok("STORE", "2:3", "(UNCHANGEDSINCE %d)" % h0, "+FLAGS", r"(\Seen)")
        assert "MODIFIED 2" in r.codes(), r.codes()
        flags = {re.match(rb"\* (\d+)", f).group(1): f for f in r.untagged_of("FETCH")}
        assert b"3" in flags and b"\\Seen" in flags[b"3"], flags
        r = im.ok("FETCH", "2", "(FLAGS)")
        assert b"\\Seen" not in r.untagged_of("FETCH")[0], r.untagged
    finally:
        im.close()


def test_qresync(c):
    """A client that knows (UIDVALIDITY, MODSEQ) resynchronises in one
    SELECT: expunged UIDs as VANISHED (EARLIER), flag changes as FETCH;
    afterwards expunges arrive as VANISHED."""
    im = session(c)
    other = session(c)
    try:
        im.ok("ENABLE", "QRESYNC")
        r = im.ok("SELECT", "Ext")
        codes = r.codes()
        validity = [x for x in codes if x.startswith("UIDVALIDITY ")][0].split()[1]
        h0 = int([x for x in codes if x.startswith("HIGHESTMODSEQ ")][0].split()[1])
        r = im.ok("UID", "FETCH", "1:*", "(UID)")
        uids = sorted(int(re.search(rb"UID (\d+)", f).group(1))
                      for f in r.untagged_of("FETCH"))
        im.ok("UNSELECT")
        # Another session changes the mailbox meanwhile.
        other.ok("SELECT", "Ext")
        other.ok("UID", "STORE", str(uids[0]), "+FLAGS", r"(\Answered)")
        other.ok("UID", "STORE", str(uids[-1]), "+FLAGS", r"(\Deleted)")
        other.ok("EXPUNGE")
        r = im.ok("SELECT", "Ext", "(QRESYNC (%s %d))" % (validity, h0))
        vanished = r.untagged_of("VANISHED")
        assert vanished and b"(EARLIER)" in vanished[0] and \
            vanished[0].endswith(b" %d" % uids[-1]), vanished
        fetches = r.untagged_of("FETCH")
        assert any(b"UID %d " % uids[0] in f and b"\\Answered" in f
                   for f in fetches), fetches
        # Now an expunge in the other session is VANISHED here.
        other.ok("UID", "STORE", str(uids[1]), "+FLAGS", r"(\Deleted)")
        other.ok("EXPUNGE")
        r = im.ok("NOOP")
        assert r.untagged_of("VANISHED") and not r.untagged_of("EXPUNGE"), r.untagged
        assert r.untagged_of("VANISHED")[0].endswith(b" %d" % uids[1]), r.untagged
    finally:
        im.close()
        other.close()


def test_esearch(c):
    """SEARCH RETURN (MIN MAX COUNT ALL) answers one ESEARCH line tagged
    with the command's tag; UID SEARCH adds UID; RETURN () means ALL."""
    im = session(c)
    try:
        im.ok("SELECT", "Ext")
        r = im.ok("SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "ALL")
        es = r.untagged_of("ESEARCH")
        assert len(es) == 1 and b'(TAG "%s")' % r.tag.encode() in es[0], es
        n = int(re.search(rb"COUNT (\d+)", es[0]).group(1))
        assert re.search(rb"MIN 1 MAX %d .*ALL 1:%d" % (n, n), es[0]), es
        r = im.ok("UID", "SEARCH", "RETURN", "()", "SUBJECT", "m0")
        es = r.untagged_of("ESEARCH")
        assert len(es) == 1 and b" UID ALL " in es[0], es
        r = im.ok("SEARCH", "RETURN", "(COUNT)", "SUBJECT", "no-such-subject")
        assert r.untagged_of("ESEARCH")[0].endswith(b"COUNT 0"), r.untagged
    finally:
        im.close()


def test_compress(c):
    """COMPRESS DEFLATE: the OK comes in clear, then both directions are
    raw deflate streams; a FETCH of a whole message decompresses to the
    same bytes as without compression."""
    im = session(c)
    try:
        assert b"COMPRESS=DEFLATE" in im.ok("CAPABILITY").untagged[0]
        im.ok("SELECT", "Ext")
        plain = im.ok("FETCH", "1", "(BODY.PEEK[])").untagged_of("FETCH")[0]
        im.ok("COMPRESS", "DEFLATE")
        co = zlib.compressobj(wbits=-15)
        de = zlib.decompressobj(wbits=-15)

        def zcmd(line, tag):
            im.sock.sendall(co.compress(line) + co.flush(zlib.Z_SYNC_FLUSH))
            out = b""
            for _ in range(200):
                if re.search(rb"(^|\r\n)%s (OK|NO|BAD)" % tag, out):
                    return out
                out += de.decompress(im.sock.recv(65536))
            raise AssertionError("no tagged reply: %r" % out[-200:])

        out = zcmd(b"z1 FETCH 1 (BODY.PEEK[])\r\n", b"z1")
        assert out.startswith(plain), (out[:100], plain[:100])
        assert b"z1 OK" in out, out
        out = zcmd(b"z2 COMPRESS DEFLATE\r\n", b"z2")
        assert b"z2 NO [COMPRESSIONACTIVE]" in out, out
        out = zcmd(b"z3 LOGOUT\r\n", b"z3")
        assert b"* BYE" in out and b"z3 OK" in out, out
    finally:
        im.close()


if __name__ == "__main__":
    run_tests(Cluster(base_port=28910), [
        ("setup: account and a mailbox of 5 messages", setup),
        ("CONDSTORE: MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE", test_condstore),
        ("QRESYNC: SELECT resync and VANISHED", test_qresync),
        ("ESEARCH return options", test_esearch),
        ("COMPRESS=DEFLATE session", test_compress),
    ])
