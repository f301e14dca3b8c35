"""Hostile and broken IMAP input on a mailbox node (issue: IMAP, "What it
must show", part 6), over raw TLS sockets: an unbalanced literal (the
server waits for exactly its octets, then goes on), literals cut off by a
closed connection, huge literals ({999999999999}: NO/BAD [TOOBIG] before
any continuation, and the session goes on), malformed sequence sets and
FETCH items, unknown commands, commands in the wrong state, garbage
bytes, NUL in a literal, overlong lines, deep nesting, plaintext on the
TLS port, commands pipelined behind STARTTLS (must be discarded, never
run inside TLS), a command trickled one byte at a time, many idle
connections. Each answer comes within a bound, and after each case the
node still answers NOOP on new connections (plain and TLS) with the same
PID: no crash, no hang.

Ports: base 28710 (node-1 IMAP 28781, IMAPS 28791)."""

import random
import re
import socket
import ssl
import time

from harness import (Cluster, Imap, ImapClosed, add_accounts, imap_quote,
                     mx_send, pid_alive, run_tests, wait_port)

DOMAIN = "hostile.test"
USER = "target@" + DOMAIN
PASSWORD = "target-pass-1"
SENDER = "sender@example.net"
ANSWER = 10  # seconds any answer may take
state = {}


def setup(c):
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, {USER: PASSWORD})
    for ep in (c.mx(), c.imap(), c.imaps()):
        wait_port(*ep, timeout=20)
    for i in range(3):
        mx_send(c, SENDER, [USER], b"From: <%s>\r\nSubject: m%d\r\n\r\n"
                b"body\r\n" % (SENDER.encode(), i))
    c.wait_mailbox(USER, 3, timeout=30)
    state["pid"] = c.pid("node-1")
    assert pid_alive(state["pid"])


def alive(c, after):
    """The node still runs (same PID) and answers NOOP on a new plain and
    a new TLS connection."""
    pid = c.pid("node-1")
    assert pid == state["pid"] and pid_alive(pid), \
        "node-1 died after %s (pid %r -> %r)" % (after, state["pid"], pid)
    for tls in (True, False):
        ep = c.imaps() if tls else c.imap()
        im = Imap(*ep, context=c.imap_context(), tls=tls, timeout=ANSWER)
        try:
            r = im.cmd("NOOP")
            assert r.status == "OK", "NOOP after %s: %r" % (after, r)
        finally:
            im.close()


def connect(c, login=False, select=False):
    im = Imap(*c.imaps(), context=c.imap_context(), timeout=ANSWER)
    if login:
        im.login(USER, PASSWORD)
    if select:
        im.select("INBOX")
    return im


def answer(im, tag, timeout=ANSWER, continuation=False):
    """Responses up to the tagged reply of tag (or an untagged BAD when
    the server could not find a tag): (status, line, untagged). status is
    "" when the connection closed first, and "+" for a continuation
    request when continuation is set (a command that should have been
    refused before its literal)."""
    im.sock.settimeout(timeout)
    untagged = []
    try:
        while True:
            r = im.read_response()
            if continuation and r.startswith(b"+"):
                return "+", r, untagged
            m = re.match(br"(\S+) (OK|NO|BAD|BYE)\b", r, re.I)
            if m and m.group(1) == tag.encode():
                return m.group(2).decode().upper(), r, untagged
            if m and m.group(1) == b"*" and m.group(2).upper() in (b"BAD",
                                                                  b"BYE"):
                # "* BAD" for a line without a usable tag; "* BYE" then
                # close for a connection the server gives up on.
                if m.group(2).upper() == b"BAD":
                    return "BAD", r, untagged
                untagged.append(r)
                continue
            untagged.append(r)
    except (ImapClosed, ssl.SSLError, ConnectionResetError):
        return "", b"", untagged
    finally:
        im.sock.settimeout(im.timeout)


def send(im, data):
    """Send; False when the server already closed the connection (it may
    give up on a hostile client while it is still sending)."""
    try:
        im.send(data)
        return True
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return False


def expect(im, tag, statuses, what, code=None):
    status, line, untagged = answer(im, tag, continuation=True)
    assert status != "+", "%s: a continuation was offered: %r" % (what, line)
    assert status in statuses, "%s: want %s, got %r %r" % (
        what, statuses, line, untagged[-3:])
    if code and status in ("NO", "BAD"):
        assert b"[" + code.encode() in line.upper(), \
            "%s: no [%s] in %r" % (what, code, line)
    assert not any(u.startswith(b"+") for u in untagged), \
        "%s: a continuation was offered: %r" % (what, untagged)
    return status, line


def still_works(im, what):
    im.send(b"z1 NOOP\r\n")
    status, line, _ = answer(im, "z1")
    assert status == "OK", "the session did not go on after %s: %r" % (
        what, line)


# ---- literals ----

def test_unbalanced_literal(c):
    """{10} then 3 octets and CRLF: the server waits for the other 5
    octets (nothing in between), then runs the command; a literal cut off
    by a closed connection leaves nothing behind."""
    im = connect(c)
    try:
        im.send(b"a1 LOGIN {10}\r\n")
        cont = im.read_response()
        assert cont.startswith(b"+"), cont
        im.send(b"abc\r\n")
        assert not im.pending(1.5), \
            "answered before the literal's 10 octets: %r" % im.read_response()
        im.send(b"defgh " + imap_quote(PASSWORD).encode() + b"\r\n")
        status, line, _ = answer(im, "a1")
        assert status in ("NO", "BAD"), line
        still_works(im, "an unbalanced literal")
        # And a proper login on the same connection.
        im.login(USER, PASSWORD)
    finally:
        im.close()
    alive(c, "an unbalanced literal")
    # Cut off in the middle of a literal, before and after login.
    im = connect(c)
    im.send(b"b1 LOGIN {10}\r\n")
    assert im.read_response().startswith(b"+")
    im.send(b"abc")
    im.close()
    im = connect(c, login=True)
    n = im.status("INBOX", "(MESSAGES)")["MESSAGES"]
    im.send(b"b2 APPEND INBOX {100}\r\n")
    assert im.read_response().startswith(b"+")
    im.send(b"Subject: cut\r\n\r\nonly a part")
    im.close()
    alive(c, "a literal cut off by a closed connection")
    im = connect(c, login=True)
    try:
        assert im.status("INBOX", "(MESSAGES)")["MESSAGES"] == n, \
            "a cut-off APPEND stored something"
    finally:
        im.close()


def test_huge_literal(c):
    """{999999999999}: NO or BAD [TOOBIG] at once, no continuation, and
    the session goes on; a size past 64 bits, a huge non-synchronising
    literal, a huge literal before login: refused within the bound."""
    im = connect(c, login=True)
    try:
        n = im.status("INBOX", "(MESSAGES)")["MESSAGES"]
        im.send(b"h1 APPEND INBOX {999999999999}\r\n")
        expect(im, "h1", ("NO", "BAD"), "APPEND {999999999999}", "TOOBIG")
        still_works(im, "a huge literal")
        im.send(b"h2 APPEND INBOX {99999999999999999999999}\r\n")
        status, _ = expect(im, "h2", ("NO", "BAD", ""),
                           "a literal size past 64 bits")
        if status:
            still_works(im, "a literal size past 64 bits")
        im.send(b"h3 SELECT {99999999}\r\n")
        status, _ = expect(im, "h3", ("NO", "BAD", ""),
                           "SELECT with a 100 MB literal")
        if status:
            still_works(im, "SELECT with a huge literal")
    finally:
        im.close()
    alive(c, "huge synchronising literals")
    # Non-synchronising: the client sends octets at once; RFC 7888 lets
    # the server answer BAD [TOOBIG] and skip them, or close.
    im = connect(c, login=True)
    try:
        im.send(b"h4 APPEND INBOX {999999999999+}\r\n" + b"x" * 4096)
        status, line, _ = answer(im, "h4")
        assert status in ("BAD", "NO", ""), line
        im.send(b"\r\n")
    except OSError:
        pass
    finally:
        im.close()
    alive(c, "a huge non-synchronising literal")
    im = connect(c)
    try:
        im.send(b"h5 LOGIN {999999999999}\r\n")
        expect(im, "h5", ("NO", "BAD", ""), "LOGIN {999999999999}")
    finally:
        im.close()
    im = connect(c, login=True)
    try:
        assert im.status("INBOX", "(MESSAGES)")["MESSAGES"] == n
    finally:
        im.close()
    alive(c, "a huge literal before login")


def test_nul_in_literal(c):
    """NUL is not allowed in a literal (RFC 3501 CHAR8; only literal8 with
    BINARY may carry it): APPEND of such a message is refused, the
    session goes on, nothing is stored."""
    im = connect(c, login=True)
    try:
        n = im.status("INBOX", "(MESSAGES)")["MESSAGES"]
        r = im.append("INBOX", b"Subject: nul\r\n\r\nbefore\x00after\r\n")
        assert r.status in ("NO", "BAD"), r
        still_works(im, "a NUL in a literal")
        assert im.status("INBOX", "(MESSAGES)")["MESSAGES"] == n
    finally:
        im.close()
    alive(c, "a NUL in a literal")


# ---- syntax and state ----

BAD_IN_SELECTED = [
    "FETCH 0:x FLAGS",
    "FETCH 0 FLAGS",
    "FETCH 1:4294967296 FLAGS",
    "FETCH 1,,2 FLAGS",
    "FETCH 1, FLAGS",
    "FETCH -1 FLAGS",
    "FETCH 1:2:3 FLAGS",
    "FETCH x FLAGS",
    "UID FETCH : FLAGS",
    "UID FETCH 0 FLAGS",
    "FETCH 1 (FLAGS",
    "FETCH 1 (FLAGS))",
    "FETCH 1 NOSUCHITEM",
    "FETCH 1 BODY[0]",
    "FETCH 1 BODY[1.0]",
    "FETCH 1 BODY[HEADER.FIELDS]",
    "FETCH 1 BODY[]<4294967296>",
    "FETCH 1 BODY[]<0.0>",
    "FETCH",
    "FETCH 1",
    "STORE 1 +FLAGS (\\Seen",
    "STORE 0 +FLAGS (\\Seen)",
    "STORE 1 FROBFLAGS (\\Seen)",
    "COPY 0:* INBOX",
    "SEARCH 0",
    "SEARCH UID 0",
    "SEARCH NOSUCHKEY",
    "SEARCH BEFORE notadate",
    "SEARCH LARGER -5",
    "SEARCH OR ALL",
    "SEARCH (ALL",
    "EXPUNGE extra",
    "NOOP extra",
    "SELECT",
    "LIST",
    "STATUS INBOX",
    "STATUS INBOX (NOSUCHITEM)",
]


def test_bad_sequence_sets_and_syntax(c):
    """Malformed sequence sets, FETCH items, STORE, SEARCH and arguments
    in the selected state: BAD, each on the same connection, which then
    still answers NOOP."""
    im = connect(c, login=True, select=True)
    failures = []
    try:
        for i, line in enumerate(BAD_IN_SELECTED):
            tag = "s%d" % i
            im.send(("%s %s\r\n" % (tag, line)).encode())
            status, reply, _ = answer(im, tag)
            if status != "BAD":
                failures.append("%s -> %r" % (line, reply))
            if status == "":
                im.close()
                im = connect(c, login=True, select=True)
        # Past the end: BAD or NO (RFC 9051 6.4.5: an invalid number).
        im.send(b"s98 FETCH 99999 FLAGS\r\n")
        status, reply, _ = answer(im, "s98")
        if status not in ("BAD", "NO"):
            failures.append("FETCH 99999 -> %r" % reply)
        still_works(im, "malformed commands")
    finally:
        im.close()
    assert not failures, "not BAD:\n" + "\n".join(failures)
    alive(c, "malformed sequence sets")


def test_unknown_commands_and_state(c):
    """Unknown commands: BAD. Commands that need a login, before it: NO
    or BAD, and no data. Command names are case-insensitive. After login,
    LOGIN, AUTHENTICATE and STARTTLS again: refused."""
    for tag, line, want in (
            ("x1", "FROBNICATE", ("BAD",)),
            ("x2", "SELECT INBOX", ("NO", "BAD")),
            ("x3", "FETCH 1 FLAGS", ("NO", "BAD")),
            ("x4", 'LIST "" "*"', ("NO", "BAD")),
            ("x5", 'STATUS INBOX (MESSAGES)', ("NO", "BAD")),
            ("x6", "GETQUOTAROOT INBOX", ("NO", "BAD")),
            ("x7", "IDLE", ("NO", "BAD")),
            ("x8", "noop", ("OK",)),
            ("x9", "NoOp", ("OK",))):
        # One connection each: a server may drop a client after a few
        # refused commands before login.
        im = connect(c)
        try:
            im.send(("%s %s\r\n" % (tag, line)).encode())
            status, reply, untagged = answer(im, tag)
            assert status in want, "%s: want %s, got %r" % (line, want, reply)
            assert not any(re.match(br"\* (LIST|STATUS|QUOTA|\d+ FETCH)", u)
                           for u in untagged), \
                "%s answered with data before login: %r" % (line, untagged)
        finally:
            im.close()
    # A line without a command, a bad tag, an empty command name.
    for raw in (b"y1\r\n", b"* NOOP\r\n", b"+ NOOP\r\n", b"y2 \r\n",
                b"y(3 NOOP\r\n", b"y{4 NOOP\r\n", b'"y5" NOOP\r\n'):
        im = connect(c)
        try:
            im.send(raw)
            tag = raw.split(b" ")[0].rstrip(b"\r\n").decode()
            status, reply, _ = answer(im, tag)
            assert status == "BAD", "%r: %r" % (raw, reply)
            still_works(im, "a command without a valid tag")
        finally:
            im.close()
    im = connect(c)
    try:
        im.send(b"x10 APPEND INBOX {5}\r\n")
        first = im.read_response()
        if first.startswith(b"+"):
            im.send(b"hello\r\n")
            status, reply, _ = answer(im, "x10")
        else:
            status = first.split(b" ")[1].decode().upper()
        assert status in ("NO", "BAD"), "APPEND before login: %r" % first
        still_works(im, "APPEND before login")
        im.login(USER, PASSWORD)
        for tag, line in (("w1", "FROBNICATE"),
                          ("w2", "LOGIN %s %s" % (imap_quote(USER),
                                                  imap_quote(PASSWORD))),
                          ("w3", "AUTHENTICATE PLAIN"),
                          ("w4", "STARTTLS")):
            im.send(("%s %s\r\n" % (tag, line)).encode())
            status, reply, untagged = answer(im, tag, continuation=True)
            assert status in ("NO", "BAD"), \
                "%s after login: %r" % (line, reply)
        still_works(im, "refused commands after login")
    finally:
        im.close()
    alive(c, "unknown commands and commands in the wrong state")


# ---- garbage, long lines, nesting ----

def garbage_lines():
    rnd = random.Random(4242)
    lines = [b"\x00\x01\x02\x03\r\n",
             b"\xff\xfe\xfd\xfc garbage\r\n",
             b"g1 NOOP\x00\r\n",
             b"g2 LOGIN \"unterminated\r\n",
             b"g3 LOGIN \"bad\\q\" x\r\n",
             b"g4 LOGIN \xc3\xa9\xc3\xa9 x\r\n",
             b"g5 \x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n",
             b"g6 FETCH 1 BODY[\r\n",
             b"\r\r\r\n",
             b"g7 NOOP\rg8 NOOP\r\n"]
    for _ in range(5):
        lines.append(bytes(rnd.randrange(256) for _ in range(300))
                     .replace(b"\n", b"") + b"\r\n")
    return lines


def test_garbage(c):
    """Garbage lines (controls, NUL, 8-bit, TLS records, bare CR,
    random bytes), each on its own connection, before and after login:
    BAD (tagged or untagged) or, at worst, BYE and close; never silence."""
    for logged_in in (False, True):
        for i, line in enumerate(garbage_lines()):
            im = connect(c, login=logged_in)
            try:
                im.send(line)
                im.send(b"k%d NOOP\r\n" % i)
                status, reply, untagged = answer(im, "k%d" % i)
                everything = b" ".join(untagged + [reply])
                assert b"BAD" in everything.upper() or status == "" and \
                    b"BYE" in everything.upper(), \
                    "garbage %r (logged in: %s): %r" % (line[:60], logged_in,
                                                        untagged + [reply])
                if status:
                    # The NOOP behind the garbage line ran or was answered.
                    assert status in ("OK", "BAD"), (line[:60], reply)
            finally:
                im.close()
    alive(c, "garbage lines")


def test_long_lines(c):
    """A 100 KB command line: BAD [TOOBIG] (or BYE and close), bounded,
    before and after login; a megabyte without any line end then a
    closed connection; the node keeps its memory bounded and goes on."""
    for logged_in in (False, True):
        im = connect(c, login=logged_in)
        try:
            send(im, b"l1 NOOP " + b"x" * 100000 + b"\r\n")
            status, reply, untagged = answer(im, "l1")
            assert status == "BAD" or (status == "" and any(
                b"BYE" in u for u in untagged)), (status, reply, untagged)
            if status:
                still_works(im, "a 100 KB line")
        finally:
            im.close()
    im = connect(c, login=True)
    try:
        chunk = b"y" * 65536
        for _ in range(16):
            im.send(chunk)
    except OSError:
        pass  # the server may close on us: fine
    finally:
        im.close()
    alive(c, "overlong lines")


def test_deep_nesting(c):
    """Thousands of nested parentheses, NOTs and ORs: answered (BAD for
    too deep), promptly, without a crash."""
    im = connect(c, login=True, select=True)
    try:
        cases = [b"SEARCH " + b"(" * 5000 + b"ALL" + b")" * 5000,
                 b"SEARCH " + b"NOT " * 5000 + b"ALL",
                 b"SEARCH " + b"OR ALL " * 3000 + b"ALL",
                 b"FETCH 1 " + b"(" * 5000 + b"FLAGS" + b")" * 5000,
                 b"STORE 1 +FLAGS " + b"(" * 5000 + b")" * 5000,
                 b"APPEND INBOX " + b"(" * 5000 + b")" * 5000 + b" {3}"]
        for i, line in enumerate(cases):
            tag = "n%d" % i
            im.send(tag.encode() + b" " + line + b"\r\n")
            t0 = time.monotonic()
            try:
                status, reply, untagged = answer(im, tag, continuation=True)
            except TimeoutError:
                raise AssertionError("no answer to %r... within %ds"
                                     % (line[:40], ANSWER))
            if not status:
                im.close()
                im = connect(c, login=True, select=True)
                continue
            if status == "+":
                # Allowed: refusing only once the literal is read.
                im.send(b"abc\r\n")
                status, reply, untagged = answer(im, tag)
                assert status in ("BAD", "NO", ""), (line[:40], reply)
                if not status:
                    im.close()
                    im = connect(c, login=True, select=True)
                    continue
            assert status in ("BAD", "NO", "OK"), (line[:40], reply)
            assert time.monotonic() - t0 < ANSWER
            still_works(im, "deep nesting")
    finally:
        im.close()
    alive(c, "deep nesting")


# ---- TLS ----

def test_plaintext_on_tls_port(c):
    """IMAP in plaintext on the IMAPS port, and garbage instead of a TLS
    handshake after STARTTLS: the server closes (bounded), goes on."""
    s = socket.create_connection(c.imaps(), timeout=ANSWER)
    try:
        s.sendall(b"a1 NOOP\r\n")
        deadline = time.monotonic() + ANSWER
        got = b""
        while time.monotonic() < deadline:
            data = s.recv(4096)
            if not data:
                break
            got += data
        else:
            raise AssertionError("IMAPS port kept a plaintext client open")
        assert b"a1 OK" not in got, got
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    im = Imap(*c.imap(), context=c.imap_context(), tls=False, timeout=ANSWER)
    try:
        im.ok("STARTTLS")
        im.send(b"b1 NOOP\r\n" + b"\x00" * 100)
        try:
            while True:
                im.read_response()  # until closed
        except ImapClosed:
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        im.close()
    alive(c, "plaintext on TLS")


def test_starttls_injection(c):
    """"a STARTTLS" and "b CAPABILITY" in one packet: the plaintext data
    after STARTTLS is discarded (RFC 9051 / CVE-2011-0411 class), so b is
    answered neither in plaintext nor inside TLS."""
    im = Imap(*c.imap(), context=c.imap_context(), tls=False, timeout=ANSWER)
    try:
        im.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
        line = im.read_response()
        assert line.startswith(b"a OK"), line
        plain = im.buf
        if not plain and im.pending(0.5):
            im.raw.settimeout(1)
            try:
                plain = im.raw.recv(4096, socket.MSG_PEEK)
            except OSError:
                plain = b""
        assert not plain.startswith(b"b ") and b"CAPABILITY" not in plain, \
            "a command pipelined behind STARTTLS ran in plaintext: %r" % plain
        try:
            im.sock = c.imap_context().wrap_socket(im.raw,
                                                   server_hostname="127.0.0.1")
        except (ssl.SSLEOFError, ConnectionResetError) as e:
            # Closing on a client that pipelines behind STARTTLS is safe.
            print("  the server closed the connection (%s)" % e)
            return
        except (ssl.SSLError, OSError) as e:
            raise AssertionError("TLS after STARTTLS with pipelined data "
                                 "failed: %s" % e)
        im.buf = b""
        im.send(b"c NOOP\r\n")
        status, reply, untagged = answer(im, "c")
        assert status == "OK", reply
        assert not any(u.startswith(b"b ") or u.startswith(b"* CAPABILITY")
                       for u in untagged), \
            "the injected command ran inside TLS: %r" % untagged
        im.send(b"d NOOP\r\n")
        status, reply, untagged = answer(im, "d")
        assert status == "OK", reply
    finally:
        im.close()
    alive(c, "a command pipelined behind STARTTLS")


# ---- pacing ----

def test_trickle(c):
    """A login, SELECT and FETCH sent one byte at a time (the command
    reader is resumable across reads) work as usual."""
    im = connect(c)
    try:
        cmds = [b"t1 LOGIN %s %s\r\n" % (imap_quote(USER).encode(),
                                         imap_quote(PASSWORD).encode()),
                b"t2 SELECT INBOX\r\n",
                b"t3 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n"]
        exists = None
        for i, cmd in enumerate(cmds):
            for b in cmd:
                im.send(bytes([b]))
                time.sleep(0.002)
            status, reply, untagged = answer(im, "t%d" % (i + 1))
            assert status == "OK", (cmd, reply)
            for u in untagged:
                m = re.match(br"\* (\d+) EXISTS$", u)
                exists = int(m.group(1)) if m else exists
        assert exists and len([u for u in untagged if b" FETCH " in u]) == \
            exists, (exists, untagged)
        # A literal trickled too.
        im.send(b"t4 STATUS {5}\r\n")
        assert im.read_response().startswith(b"+")
        for b in b"INBOX (MESSAGES)\r\n":
            im.send(bytes([b]))
            time.sleep(0.002)
        status, reply, untagged = answer(im, "t4")
        assert status == "OK" and untagged, (reply, untagged)
    finally:
        im.close()


def test_many_connections(c):
    """100 connections opened at once (half TLS, half plain) and dropped
    without a word; the node goes on."""
    socks = []
    try:
        for i in range(100):
            ep = c.imaps() if i % 2 else c.imap()
            s = socket.create_connection(ep, timeout=ANSWER)
            if i % 2:
                try:
                    s = c.imap_context().wrap_socket(
                        s, server_hostname="127.0.0.1")
                except (ssl.SSLError, OSError):
                    pass  # over the session limit: refused is fine
            socks.append(s)
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
    time.sleep(0.5)
    alive(c, "100 dropped connections")


if __name__ == "__main__":
    run_tests(Cluster(base_port=28710, script_vars={
        "MC_RETRY_BASE_MS": "300", "MC_RETRY_MAX_MS": "1000"}), [
        ("setup: account with mail", setup),
        ("an unbalanced literal, literals cut off",
         test_unbalanced_literal),
        ("huge literals: NO/BAD [TOOBIG], the session goes on",
         test_huge_literal),
        ("NUL in a literal", test_nul_in_literal),
        ("malformed sequence sets and arguments: BAD",
         test_bad_sequence_sets_and_syntax),
        ("unknown commands, commands in the wrong state",
         test_unknown_commands_and_state),
        ("garbage bytes", test_garbage),
        ("overlong lines", test_long_lines),
        ("deep nesting", test_deep_nesting),
        ("plaintext on the TLS port, garbage instead of TLS",
         test_plaintext_on_tls_port),
        ("commands pipelined behind STARTTLS are discarded",
         test_starttls_injection),
        ("a command trickled byte by byte", test_trickle),
        ("many dropped connections", test_many_connections),
    ])
