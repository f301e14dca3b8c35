"""IMAP on a mailbox node, read with Python's imaplib (issue: IMAP, "What it
must show", part 1): mail sent to relay-1's MX with smtplib is read back
over IMAP with STARTTLS (the 143-style port, LOGINDISABLED before TLS) and
over implicit TLS (the 993-style port), trusting only the node's own
certificate (DIR/imap-tls/node-1.crt). UID FETCH BODY[] returns exactly
the stored message (Return-Path + the relay's Received + the bytes the
client sent); ENVELOPE, BODYSTRUCTURE, header fields, sections, partial
fetches and RFC822.SIZE agree with the message; \\Seen follows BODY[] but
not BODY.PEEK[]. Logins: full address, bare local part, AUTHENTICATE PLAIN
when offered; refused before TLS and with a wrong password or unknown
user (NO [AUTHENTICATIONFAILED]).

Ports: base 28310 (node-1 IMAP 28381, IMAPS 28391)."""

import base64
import hashlib
import hmac
import imaplib
import os
import re
import socket
import ssl
import time

from harness import (Imap, add_accounts, imap_parse, imap_ssl_context,
                     imap_quote, mx_send, run_tests, strip_trace, wait_port,
                     Cluster)

DOMAIN = "imap.test"
ALICE = "alice@" + DOMAIN
BOB = "bob@" + DOMAIN
# Quotes, a backslash and spaces: LOGIN must get them through quoting.
PASSWORDS = {ALICE: 'alice "pass" \\ 1', BOB: "bob-pass-2"}
SENDER = "sender@example.net"
WAIT = 30  # seconds a delivery may take, at most

sent = []  # contents sent to alice, in order (uid order)


def setup(c):
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, PASSWORDS)
    wait_port(*c.mx(), timeout=20)
    wait_port(*c.imap(), timeout=20)
    wait_port(*c.imaps(), timeout=20)


def deliver(c, address, content):
    """Send through relay-1's MX, wait until it is stored; returns the
    stored messages of the INBOX (the new one last)."""
    before = len(c.mailbox(address))
    mx_send(c, SENDER, [address], content)
    msgs = c.wait_mailbox(address, before + 1, timeout=WAIT)
    assert len(msgs) == before + 1, msgs
    return msgs


def imaps(c):
    host, port = c.imaps()
    return imaplib.IMAP4_SSL(host, port, ssl_context=c.imap_context(),
                             timeout=20)


def login(c, address=ALICE, user=None):
    im = imaps(c)
    im.login(user or address, PASSWORDS[address])
    return im


def fetch1(im, uid, items):
    """UID FETCH of one message through imaplib: the {ITEM: value} dict
    of its FETCH response (imaplib's pieces glued back and parsed)."""
    typ, data = im.uid("FETCH", str(uid), items)
    assert typ == "OK", (typ, data)
    # imaplib gives each response as pieces: "N (..." starts one, a
    # literal comes as (text up to {n}, octets), the text after it as
    # the next piece.
    responses = []
    for piece in data:
        first = piece[0] if isinstance(piece, tuple) else piece
        if first is None:
            continue
        if re.match(br"^\d+ \(", first) or not responses:
            responses.append(b"")
        if isinstance(piece, tuple):
            responses[-1] += piece[0] + b"\r\n" + piece[1]
        else:
            responses[-1] += piece
    merged = {}
    for raw in responses:
        seq, _, rest = raw.partition(b" ")
        pairs = imap_parse(b"* " + seq + b" FETCH " + rest)[3]
        out = {}
        for i in range(0, len(pairs) - 1, 2):
            out[pairs[i].decode().upper()] = pairs[i + 1]
        if "UID" in out and int(out["UID"]) == int(uid):
            merged.update(out)
    assert merged, "no FETCH response for uid %s: %r" % (uid, data)
    return merged


def done(im):
    """Log out unless done already; imaplib closes the socket either way."""
    if im.state != "LOGOUT":
        try:
            im.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def caps_of(im):
    return {x.upper() for x in im.capabilities}


def message(subject, msgid, body=b"Hello over IMAP.\r\n", extra=b""):
    return (b"From: Sender Example <%s>\r\n"
            b"To: <%s>\r\n"
            b"Subject: %s\r\n"
            b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <%s@example.net>\r\n" % (
                SENDER.encode(), ALICE.encode(), subject, msgid)
            + extra + b"\r\n" + body)


# ---- round trips ----

def test_starttls_round_trip(c):
    """The 143-style port: STARTTLS offered, LOGIN disabled before it;
    after it, LOGIN, SELECT INBOX, UID FETCH BODY[] = the stored bytes =
    Return-Path + Received + what smtplib sent."""
    content = message(b"round trip", b"rt1",
                      b"caf\xc3\xa9 8-bit line\r\n.dot line\r\n" +
                      b"z" * 990 + b"\r\n\r\nlast\r\n",
                      b"Content-Type: text/plain; charset=utf-8\r\n"
                      b"Content-Transfer-Encoding: 8bit\r\n")
    msgs = deliver(c, ALICE, content)
    sent.append(content)
    blob = c.blob(msgs[-1]["sha256"])
    host, port = c.imap()
    with imaplib.IMAP4(host, port, timeout=20) as im:
        caps = caps_of(im)
        assert "STARTTLS" in caps, caps
        assert "LOGINDISABLED" in caps, caps
        assert "IMAP4REV1" in caps or "IMAP4REV2" in caps, caps
        im.starttls(ssl_context=c.imap_context())
        caps = caps_of(im)
        assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps, caps
        typ, _ = im.login(ALICE, PASSWORDS[ALICE])
        assert typ == "OK", typ
        typ, data = im.select("INBOX")
        assert typ == "OK" and int(data[0]) == len(msgs), (typ, data)
        got = fetch1(im, msgs[-1]["uid"], "(BODY.PEEK[])")["BODY[]"]
        assert got == blob, "BODY[] differs from the stored blob"
        rp, received, rest = strip_trace(got)
        assert rp == ("Return-Path: <%s>\r\n" % SENDER).encode(), rp
        assert b"relay-1.cluster.test" in received, received
        assert rest == content, "BODY[] after the trace headers differs " \
            "from what was sent:\n%r\n%r" % (rest[:300], content[:300])
        typ, _ = im.logout()
        assert typ == "BYE", typ


def test_imaps_round_trip(c):
    """The 993-style port: TLS from the first byte, no STARTTLS offered;
    several messages, each UID FETCH BODY[] byte-identical."""
    contents = [message(b"imaps %d" % i, b"tls%d" % i,
                        b"".join(b"line %d of %d\r\n" % (j, i)
                                 for j in range(i * 300)))
                for i in range(1, 4)]
    for content in contents:
        msgs = deliver(c, ALICE, content)
        sent.append(content)
    im = login(c)
    try:
        caps = caps_of(im)
        assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps, caps
        typ, data = im.select("INBOX")
        assert typ == "OK" and int(data[0]) == len(sent), (typ, data)
        typ, data = im.uid("SEARCH", None, "ALL")
        uids = [int(x) for x in data[0].split()]
        assert uids == [m["uid"] for m in msgs], (uids, msgs)
        for m, content in zip(msgs, sent):
            got = fetch1(im, m["uid"], "(BODY.PEEK[])")["BODY[]"]
            assert got == c.blob(m["sha256"]), "uid %d differs" % m["uid"]
            assert strip_trace(got)[2] == content, "uid %d" % m["uid"]
        im.logout()
    finally:
        done(im)


def test_certificate(c):
    """The node presents its own certificate: trusting another one (the
    relay's MX certificate) fails the handshake."""
    other = c.env.get("MC_RELAY_1_MX_CERT")
    assert other, "no relay MX certificate in cluster.env"
    host, port = c.imaps()
    try:
        imaplib.IMAP4_SSL(host, port, ssl_context=imap_ssl_context(other),
                          timeout=20)
    except ssl.SSLCertVerificationError:
        pass
    else:
        raise AssertionError("IMAPS handshake verified with the relay's "
                             "certificate as the only CA")
    # And the right one verifies the name 127.0.0.1 (checked by ssl).
    s = imaps(c)
    peer = s.sock.getpeercert()
    names = [v for k, v in peer.get("subjectAltName", ())]
    assert "127.0.0.1" in names and "node-1.cluster.test" in names, peer
    s.logout()


# ---- logins ----

def test_login_before_starttls_refused(c):
    """Plain connection: LOGINDISABLED, LOGIN and AUTHENTICATE refused
    (NO or BAD), still not authenticated (SELECT refused); then STARTTLS
    on the same connection and LOGIN works."""
    host, port = c.imap()
    im = Imap(host, port, context=c.imap_context(), tls=False)
    try:
        assert im.greeting.startswith(b"* OK"), im.greeting
        caps = im.capabilities()
        assert "LOGINDISABLED" in caps and "STARTTLS" in caps, caps
        assert not any(x.startswith("AUTH=") for x in caps), \
            "SASL mechanisms offered before TLS: %r" % caps
        r = im.cmd("LOGIN", imap_quote(ALICE), imap_quote(PASSWORDS[ALICE]))
        assert r.status in ("NO", "BAD"), r
        plain = base64.b64encode(b"\0" + ALICE.encode() + b"\0" +
                                 PASSWORDS[ALICE].encode()).decode()
        r = im.cmd("AUTHENTICATE", "PLAIN", plain)
        assert r.status in ("NO", "BAD"), r
        r = im.cmd("SELECT", "INBOX")
        assert r.status in ("NO", "BAD"), \
            "SELECT answered before login: %r" % r
        im.starttls()
        caps = im.capabilities()
        assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps, caps
        im.login(ALICE, PASSWORDS[ALICE])
        r = im.ok("SELECT", "INBOX")
        assert r.untagged_of("EXISTS"), r.untagged
        r = im.cmd("STARTTLS")
        assert r.status in ("NO", "BAD"), "second STARTTLS: %r" % r
        im.ok("LOGOUT")
    finally:
        im.close()


def test_bad_credentials(c):
    """Wrong password and unknown user: NO [AUTHENTICATIONFAILED], the
    same answer for both. One connection per attempt (a server may drop
    a client after a few failures); after one failure the connection
    still takes the right password."""
    texts = []
    for user, pw in ((ALICE, "wrong"), ("nobody@" + DOMAIN, "wrong"),
                     (ALICE, PASSWORDS[BOB])):
        im = imaps(c)
        try:
            try:
                im.login(user, pw)
            except imaplib.IMAP4.error as e:
                texts.append(str(e))
                assert "AUTHENTICATIONFAILED" in str(e), str(e)
            else:
                raise AssertionError("LOGIN %s with a wrong password "
                                     "accepted" % user)
            if len(texts) == 1:
                typ, _ = im.login(ALICE, PASSWORDS[ALICE])
                assert typ == "OK"
        finally:
            done(im)
    # Do not tell whether an address exists.
    assert texts[0] == texts[1], texts


def test_login_local_part(c):
    """LOGIN with the bare local part opens the same account."""
    im = login(c, ALICE, user="alice")
    try:
        typ, data = im.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) == len(sent), (typ, data)
        im.logout()
    finally:
        done(im)
    # Bob's account is another one: his INBOX is empty.
    im = login(c, BOB, user="bob")
    try:
        typ, data = im.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) == 0, (typ, data)
        im.logout()
    finally:
        done(im)


def test_authenticate_plain(c):
    """AUTHENTICATE PLAIN (RFC 4616) when offered after TLS; a wrong
    password gets NO [AUTHENTICATIONFAILED]."""
    im = imaps(c)
    try:
        caps = caps_of(im)
        assert "AUTH=PLAIN" in caps, caps
        try:
            im.authenticate("PLAIN", lambda _: b"\0" + ALICE.encode() +
                            b"\0wrong")
        except imaplib.IMAP4.error as e:
            assert "AUTHENTICATIONFAILED" in str(e), str(e)
        else:
            raise AssertionError("AUTHENTICATE PLAIN with a wrong password "
                                 "accepted")
        typ, _ = im.authenticate("PLAIN", lambda _: b"\0" + ALICE.encode() +
                                 b"\0" + PASSWORDS[ALICE].encode())
        assert typ == "OK", typ
        typ, data = im.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) == len(sent), (typ, data)
        im.logout()
    finally:
        done(im)


def scram_login(c, user, password):
    """AUTHENTICATE SCRAM-SHA-256 (RFC 5802/7677) by hand on a raw IMAPS
    socket; returns (final tagged line, seconds the answer took, the
    server-final message or None)."""
    host, port = c.imaps()
    s = c.imap_context().wrap_socket(
        socket.create_connection((host, port), timeout=20),
        server_hostname=host)
    f = s.makefile("rb")
    try:
        assert b"AUTH=SCRAM-SHA-256" in f.readline()
        cnonce = base64.b64encode(os.urandom(18)).decode()
        bare = "n=%s,r=%s" % (user, cnonce)
        s.sendall(b"a AUTHENTICATE SCRAM-SHA-256 " +
                  base64.b64encode(("n,," + bare).encode()) + b"\r\n")
        line = f.readline()
        assert line.startswith(b"+ "), line
        first = base64.b64decode(line[2:].strip()).decode()
        at = dict(x.split("=", 1) for x in first.split(","))
        assert at["r"].startswith(cnonce) and len(at["r"]) > len(cnonce), first
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                     base64.b64decode(at["s"]), int(at["i"]))
        ckey = hmac.new(salted, b"Client Key", "sha256").digest()
        skey = hmac.new(salted, b"Server Key", "sha256").digest()
        without = "c=biws,r=" + at["r"]
        authmsg = (bare + "," + first + "," + without).encode()
        sig = hmac.new(hashlib.sha256(ckey).digest(), authmsg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(ckey, sig))
        t = time.monotonic()
        s.sendall(base64.b64encode((without + ",p=" +
                                    base64.b64encode(proof).decode()).encode())
                  + b"\r\n")
        line = f.readline()
        took = time.monotonic() - t
        final = None
        if line.startswith(b"+ "):
            final = base64.b64decode(line[2:].strip()).decode()
            want = "v=" + base64.b64encode(
                hmac.new(skey, authmsg, "sha256").digest()).decode()
            assert final == want, (final, want)   # the server knew the key
            s.sendall(b"\r\n")
            line = f.readline()
        return line, took, final
    finally:
        s.close()


def test_authenticate_scram(c):
    """AUTHENTICATE SCRAM-SHA-256: the right password logs in and the
    server proves it holds the verifier; a wrong password and an unknown
    user fail the same way, after a delay."""
    line, _, final = scram_login(c, ALICE, PASSWORDS[ALICE])
    assert line.startswith(b"a OK"), line
    assert final is not None
    line, took, final = scram_login(c, ALICE, "wrong")
    assert line.startswith(b"a NO [AUTHENTICATIONFAILED]"), line
    assert final is None and took >= 0.9, (final, took)
    line, took, final = scram_login(c, "nobody@" + ALICE.split("@")[1], "x")
    assert line.startswith(b"a NO [AUTHENTICATIONFAILED]"), line
    assert final is None and took >= 0.9, (final, took)


# ---- FETCH items ----

MULTIPART = (b"From: Alice Example <alice@example.net>\r\n"
             b"Sender: <secretary@example.net>\r\n"
             b"Reply-To: <replies@example.net>\r\n"
             b"To: Alice <" + ALICE.encode() + b">, <bob@example.org>\r\n"
             b"Cc: Carol <carol@example.org>\r\n"
             b"Subject: =?UTF-8?Q?caf=C3=A9?= parts\r\n"
             b"Date: Wed, 02 Dec 2026 11:30:00 +0100\r\n"
             b"Message-ID: <mp1@example.net>\r\n"
             b"In-Reply-To: <earlier@example.net>\r\n"
             b"MIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
             b"\r\n"
             b"preamble\r\n"
             b"--b1\r\n"
             b"Content-Type: text/plain; charset=us-ascii\r\n"
             b"\r\n"
             b"Hello\r\nWorld\r\n"
             b"--b1\r\n"
             b"Content-Type: application/octet-stream; name=\"d.bin\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n"
             b"Content-Disposition: attachment; filename=\"d.bin\"\r\n"
             b"\r\n"
             b"AAECAwQFBgcICQ==\r\n"
             b"--b1--\r\n"
             b"epilogue\r\n")
PART1 = b"Hello\r\nWorld"       # the CRLF before a boundary belongs to it
PART1_MIME = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
PART2 = b"AAECAwQFBgcICQ=="


def low(x):
    return x.lower() if isinstance(x, bytes) else x


def params(lst):
    """A body parameter list as a {name (lower): value} dict."""
    lst = lst or []
    return {lst[i].lower(): lst[i + 1] for i in range(0, len(lst) - 1, 2)}


def test_fetch_items_simple(c):
    """ENVELOPE, BODYSTRUCTURE, BODY.PEEK[HEADER.FIELDS (SUBJECT)],
    RFC822.SIZE, INTERNALDATE, BODY[HEADER] / BODY[TEXT], a partial
    BODY[]<0.100> and the RFC822* items of a one-part message."""
    msgs = c.mailbox(ALICE)
    m = msgs[0]  # the round-trip message: text/plain utf-8, 8bit
    blob = c.blob(m["sha256"])
    head, body = blob.split(b"\r\n\r\n", 1)
    im = login(c)
    try:
        im.select("INBOX")
        f = fetch1(im, m["uid"], "(ENVELOPE BODYSTRUCTURE RFC822.SIZE "
                   "INTERNALDATE FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert int(f["RFC822.SIZE"]) == len(blob) == m["size"], \
            (f["RFC822.SIZE"], len(blob))
        key = [k for k in f if k.startswith("BODY[HEADER.FIELDS")]
        assert key, f.keys()
        assert f[key[0]] == b"Subject: round trip\r\n\r\n", f[key[0]]
        env = f["ENVELOPE"]
        assert env[0] == b"Tue, 01 Dec 2026 10:00:00 +0000", env[0]
        assert env[1] == b"round trip", env[1]
        assert env[2] == [[b"Sender Example", None, b"sender",
                           b"example.net"]], env[2]
        assert env[3] == env[2] and env[4] == env[2], \
            "Sender and Reply-To default to From: %r" % env
        assert env[5] == [[None, None, b"alice", DOMAIN.encode()]], env[5]
        assert env[6] is None and env[7] is None and env[8] is None, env
        assert env[9] == b"<rt1@example.net>", env[9]
        bs = f["BODYSTRUCTURE"]
        assert low(bs[0]) == b"text" and low(bs[1]) == b"plain", bs
        assert params(bs[2]).get(b"charset", b"").lower() == b"utf-8", bs
        assert low(bs[5]) == b"8bit", bs
        assert int(bs[6]) == len(body), (bs, len(body))
        assert int(bs[7]) == body.count(b"\r\n"), (bs, body.count(b"\r\n"))
        t = imaplib.Internaldate2tuple(b'INTERNALDATE "%s"' %
                                       f["INTERNALDATE"])
        assert t and abs(time.mktime(t) - time.time()) < 3600, \
            f["INTERNALDATE"]
        f = fetch1(im, m["uid"], "(BODY.PEEK[HEADER] BODY.PEEK[TEXT] "
                   "BODY.PEEK[]<0.100> RFC822.HEADER)")
        assert f["BODY[HEADER]"] == head + b"\r\n\r\n", f["BODY[HEADER]"]
        assert f["BODY[TEXT]"] == body, "BODY[TEXT] differs"
        assert f["BODY[]<0>"] == blob[:100], f["BODY[]<0>"]
        assert f["RFC822.HEADER"] == head + b"\r\n\r\n"
        # A partial fetch past the end is empty, not an error.
        f = fetch1(im, m["uid"], "(BODY.PEEK[]<%d.10>)" % (len(blob) + 5))
        assert f["BODY[]<%d>" % (len(blob) + 5)] in (b"", None), f
        im.logout()
    finally:
        done(im)


def test_fetch_items_default_mime(c):
    """A message without MIME headers: text/plain; charset=us-ascii, 7bit
    (RFC 2045 defaults) in BODYSTRUCTURE and BODY."""
    content = (b"From: <%s>\r\nTo: <%s>\r\nSubject: no mime\r\n"
               b"Message-ID: <nomime@example.net>\r\n\r\n"
               b"line one\r\nline two\r\n"
               % (SENDER.encode(), ALICE.encode()))
    msgs = deliver(c, ALICE, content)
    sent.append(content)
    im = login(c)
    try:
        im.select("INBOX")
        f = fetch1(im, msgs[-1]["uid"], "(BODYSTRUCTURE BODY ENVELOPE)")
        for item in ("BODYSTRUCTURE", "BODY"):
            bs = f[item]
            assert low(bs[0]) == b"text" and low(bs[1]) == b"plain", (item, bs)
            assert params(bs[2]).get(b"charset", b"").lower() == \
                b"us-ascii", bs
            assert low(bs[5]) == b"7bit", bs
            assert int(bs[6]) == len(b"line one\r\nline two\r\n"), bs
            assert int(bs[7]) == 2, bs
        env = f["ENVELOPE"]
        assert env[0] is None, "no Date header: ENVELOPE date is NIL: %r" % env
        im.logout()
    finally:
        done(im)


def test_fetch_items_multipart(c):
    """A multipart/mixed message: BODYSTRUCTURE (parts, parameters,
    disposition), ENVELOPE with Sender, Reply-To, To, Cc, In-Reply-To and
    an encoded-word subject (returned as is), BODY[1], BODY[1.MIME],
    BODY[2], and BINARY[2] when the server offers BINARY."""
    msgs = deliver(c, ALICE, MULTIPART)
    sent.append(MULTIPART)
    uid = msgs[-1]["uid"]
    im = login(c)
    try:
        im.select("INBOX")
        f = fetch1(im, uid, "(BODYSTRUCTURE ENVELOPE BODY.PEEK[1] "
                   "BODY.PEEK[1.MIME] BODY.PEEK[2])")
        env = f["ENVELOPE"]
        assert env[1] == b"=?UTF-8?Q?caf=C3=A9?= parts", env[1]
        assert env[2] == [[b"Alice Example", None, b"alice",
                           b"example.net"]], env
        assert env[3] == [[None, None, b"secretary", b"example.net"]], env
        assert env[4] == [[None, None, b"replies", b"example.net"]], env
        assert env[5] == [[b"Alice", None, b"alice", DOMAIN.encode()],
                          [None, None, b"bob", b"example.org"]], env[5]
        assert env[6] == [[b"Carol", None, b"carol", b"example.org"]], env[6]
        assert env[7] is None, env
        assert env[8] == b"<earlier@example.net>", env
        assert env[9] == b"<mp1@example.net>", env
        bs = f["BODYSTRUCTURE"]
        parts = []
        for x in bs:  # body-type-mpart = 1*body SP media-subtype ...
            if not isinstance(x, list):
                break
            parts.append(x)
        assert len(parts) == 2, bs
        subtype = bs[len(parts)]
        assert low(subtype) == b"mixed", bs
        assert params(bs[len(parts) + 1]).get(b"boundary") == b"b1", bs
        p1, p2 = parts
        assert (low(p1[0]), low(p1[1])) == (b"text", b"plain"), p1
        # Lines: "World" before the boundary has no CRLF of its own;
        # counting it or not are both seen in servers.
        assert int(p1[6]) == len(PART1) and int(p1[7]) in (1, 2), p1
        assert (low(p2[0]), low(p2[1])) == \
            (b"application", b"octet-stream"), p2
        assert params(p2[2]).get(b"name") == b"d.bin", p2
        assert low(p2[5]) == b"base64" and int(p2[6]) == len(PART2), p2
        disp = p2[8] if len(p2) > 8 else None
        assert disp and low(disp[0]) == b"attachment" and \
            params(disp[1]).get(b"filename") == b"d.bin", p2
        assert f["BODY[1]"] == PART1, f["BODY[1]"]
        assert f["BODY[1.MIME]"] == PART1_MIME, f["BODY[1.MIME]"]
        assert f["BODY[2]"] == PART2, f["BODY[2]"]
        if "BINARY" in caps_of(im):
            f = fetch1(im, uid, "(BINARY.PEEK[2] BINARY.SIZE[2])")
            assert f["BINARY[2]"] == bytes(range(10)), f
            assert int(f["BINARY.SIZE[2]"]) == 10, f
        im.logout()
    finally:
        done(im)


def test_seen_flag(c):
    """BODY.PEEK[] leaves \\Seen alone, BODY[] sets it (and says so with
    FLAGS in its FETCH response or the next one); EXAMINE never sets it."""
    msgs = c.mailbox(ALICE)
    a, b = msgs[1]["uid"], msgs[2]["uid"]
    im = login(c)
    try:
        im.select("INBOX", readonly=True)
        fetch1(im, a, "(BODY[])")  # read-only: no \Seen
        im.close()
        im.select("INBOX")
        flags = fetch1(im, a, "(FLAGS)")["FLAGS"]
        assert b"\\Seen" not in flags, "EXAMINE set \\Seen: %r" % flags
        fetch1(im, a, "(BODY.PEEK[])")
        flags = fetch1(im, a, "(FLAGS)")["FLAGS"]
        assert b"\\Seen" not in flags, "BODY.PEEK set \\Seen: %r" % flags
        fetch1(im, b, "(BODY[])")
        flags = fetch1(im, b, "(FLAGS)")["FLAGS"]
        assert b"\\Seen" in flags, "BODY[] did not set \\Seen: %r" % flags
        im.close()
        typ, data = im.status("INBOX", "(MESSAGES UNSEEN)")
        assert typ == "OK", data
        m = re.search(rb"UNSEEN (\d+)", data[0])
        assert m and int(m.group(1)) == len(msgs) - 1, data
        im.logout()
    finally:
        done(im)


if __name__ == "__main__":
    run_tests(Cluster(base_port=28310, script_vars={
        "MC_RETRY_BASE_MS": "300", "MC_RETRY_MAX_MS": "1000"}), [
        ("setup: domain, accounts, MX and IMAP listening", setup),
        ("STARTTLS port: LOGIN after TLS, BODY[] = delivered bytes",
         test_starttls_round_trip),
        ("IMAPS port: several messages byte-identical", test_imaps_round_trip),
        ("the node presents its own certificate", test_certificate),
        ("LOGIN and AUTHENTICATE refused before STARTTLS",
         test_login_before_starttls_refused),
        ("wrong password, unknown user: NO [AUTHENTICATIONFAILED]",
         test_bad_credentials),
        ("LOGIN with the bare local part", test_login_local_part),
        ("AUTHENTICATE PLAIN", test_authenticate_plain),
        ("AUTHENTICATE SCRAM-SHA-256", test_authenticate_scram),
        ("FETCH items of a one-part message", test_fetch_items_simple),
        ("FETCH items without MIME headers", test_fetch_items_default_mime),
        ("FETCH items of a multipart message", test_fetch_items_multipart),
        ("\\Seen after BODY[], not after BODY.PEEK[] or EXAMINE",
         test_seen_flag),
    ])
