"""Submission on the mailbox nodes (issue "Submission and outbound egress",
part 1), with Python's smtplib and imaplib against node-1's submission
(587-style, STARTTLS) and submissions (465-style, implicit TLS) ports,
trusting only the node's own certificate.

The relay's egress listener does not exist yet: the nodes' submission_relay
(MC_SUBMISSION_RELAY at `cluster up`) points at smtp_testd, the project's
SMTP test server on the same engine, which writes every message it accepts
(after fsync, before its 250) to a folder, with its envelope. It accepts
one domain (--domain): REMOTE for most tests, the cluster's own domain for
the test of accounts on node-2's shards.

What is shown:
- AUTH is not offered before STARTTLS (EHLO has no AUTH, AUTH gets 530),
  MAIL before AUTH gets 530 5.7.0; after STARTTLS, AUTH PLAIN and LOGIN
  (with and without an initial response), by full address and bare local
  part; on the 465-style port from the first byte;
- a wrong password gets 535 5.7.8 after a delay that grows (1 s, 2 s),
  the third failure in a session 421;
- AUTH SCRAM-SHA-256 (RFC 5802/7677 over RFC 4954) with a client written
  here: the right password gets 235 and the server-final signature is the
  one the client computes (the server holds the verifier); a wrong
  password and an unknown user get 535 5.7.8 after the penalty delay;
  malformed messages 501 5.5.2, "*" cancels with 501;
- a MAIL FROM, From or Sender that is not the account's gets 553 5.7.1
  (also <>, and an address only a catch-all covers), nothing is stored or
  relayed; an alias of the account is allowed;
- local recipients (accounts, aliases, catch-alls) of node-1's shards are
  stored on node-1 and read over IMAP: Return-Path, Received, the Date and
  Message-ID the node added when missing, then the client's bytes;
- remote recipients reach the relay byte for byte after the Received (and
  added) header fields, with the envelope;
- mixed local + remote: one copy each; relay down: 451, the local copy is
  kept, the client's retry of the same bytes gives 250 with no second
  local copy and one relayed copy;
- accounts on node-2's shards, submitted on node-1, go to the relay;
- SIZE and the content limit (552), unknown local user (550 5.1.1), and
  session ids in the node's log and Received header;
- the relay over STARTTLS and implicit TLS with its certificate verified
  (node-1's config rewritten and node-1 restarted): a wrong CA gets 451.

Ports: base 29510 (node-1 submission 29601, submissions 29611; node-2
29602, 29612), the relay stand-in on 29565."""

import base64
import email.utils
import hashlib
import hmac
import imaplib
import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time

from harness import (MC_BIN, Cluster, add_accounts, imap_ssl_context,
                     port_free, run_tests, strip_trace, wait_port,
                     wait_until)

BASE = 29510
SINK_PORT = BASE + 55
DOMAIN = "sub.test"
REMOTE = "remote.example"
USERS = ["u%02d" % i for i in range(16)]
PASSWORD = "pw-%s-submission"
MAX_MESSAGE = 1000000  # relays; nodes take 64 KiB more
WAIT = 30
MECHS = ["PLAIN", "LOGIN", "SCRAM-SHA-256"]

state = {}  # "alice", "local", "other": addresses picked at setup
SMTPD = os.path.join(MC_BIN, "tests", "integration", "smtp_testd")


def password(address):
    return PASSWORD % address.split("@")[0]


# ---- the relay stand-in ----

class Sink:
    """smtp_testd on SINK_PORT, writing messages to a folder."""

    def __init__(self):
        self.proc = None
        self.work = tempfile.mkdtemp(prefix="mc-it-sink-%d-" % BASE)
        self.seen = set()

    def start(self, domain, *args):
        """(Re)start for domain; args: smtp_testd's TLS options."""
        self.stop()
        self.domain = domain
        self.dir = tempfile.mkdtemp(prefix="msgs.", dir=self.work)
        log = open(os.path.join(self.work, "testd.log"), "a")
        self.proc = subprocess.Popen(
            [SMTPD, "--dir", self.dir, "--domain", domain,
             "--port", str(SINK_PORT)] + list(args),
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
            universal_newlines=True)
        log.close()
        line = self.proc.stdout.readline()
        assert line.startswith("port="), "smtp_testd did not start: %r" % line
        self.seen = set()

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc = None

    def messages(self):
        """[(content bytes, {"MAIL": str, "RCPT": [str], ...})] of the
        current folder, by name."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".eml"):
                continue
            with open(os.path.join(self.dir, name), "rb") as f:
                data = f.read()
            env = {"RCPT": []}
            with open(os.path.join(self.dir, name[:-4] + ".env")) as f:
                for line in f:
                    k, _, v = line.rstrip("\n").partition(" ")
                    if k == "RCPT":
                        env["RCPT"].append(v)
                    else:
                        env[k] = v
            out.append((name, data, env))
        return out

    def new(self):
        """Messages that arrived since the last call."""
        fresh = [(d, e) for n, d, e in self.messages() if n not in self.seen]
        self.seen.update(n for n, _, _ in self.messages())
        return fresh


SINK = Sink()


# ---- clients ----

def submission(c, node="node-1"):
    host, port = c.endpoint(node, "SUBMISSION")
    return host, port


def context(c):
    return imap_ssl_context(c.imap_cert("node-1"))


def smtp_587(c, login=None):
    """smtplib on node-1's 587-style port, after STARTTLS (and AUTH PLAIN
    as login when given)."""
    host, port = submission(c)
    s = smtplib.SMTP(host, port, local_hostname="client.example.net",
                     timeout=WAIT)
    s.starttls(context=context(c))
    s.ehlo("client.example.net")
    if login:
        s.user, s.password = login, password(login)
        code, _ = s.auth("PLAIN", s.auth_plain)
        assert code == 235, code
    return s


def smtp_465(c, login=None):
    host, port = c.endpoint("node-1", "SUBMISSIONS")
    s = smtplib.SMTP_SSL(host, port, local_hostname="client.example.net",
                         context=context(c), timeout=WAIT)
    s.ehlo("client.example.net")
    if login:
        s.login(login, password(login))
    return s


def transaction(s, sender, rcpts, content):
    """MAIL, RCPT..., DATA; returns (code, text) of the first refusal or
    of the end of data."""
    code, text = s.mail(sender)
    if code != 250:
        s.rset()
        return code, text
    for r in rcpts:
        code, text = s.rcpt(r)
        if code != 250:
            s.rset()
            return code, text
    try:
        return s.data(content)
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error


def send(c, sender, rcpts, content, login=None):
    s = smtp_587(c, login or state["alice"])
    try:
        return transaction(s, sender, rcpts, content)
    finally:
        quit_quietly(s)


def quit_quietly(s):
    try:
        s.quit()
    except (smtplib.SMTPException, OSError):
        s.close()


def message(sender, to, subject, msgid=True, date=True, body=b"Hello.\r\n",
            extra=b""):
    head = b"From: Alice <%s>\r\nTo: <%s>\r\nSubject: %s\r\n" % (
        sender.encode(), to.encode(), subject.encode())
    if date:
        head += b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
    if msgid:
        head += b"Message-ID: <%s@client.example.net>\r\n" % \
            subject.replace(" ", "-").encode()
    return head + extra + b"\r\n" + body


# ---- IMAP ----

def imap_inbox(c, address, node="node-1"):
    """Every message of address's INBOX as bytes, read over IMAPS."""
    host, port = c.endpoint(node, "IMAPS")
    im = imaplib.IMAP4_SSL(host, port, ssl_context=imap_ssl_context(
        c.imap_cert(node)), timeout=WAIT)
    try:
        im.login(address, password(address))
        typ, data = im.select("INBOX", readonly=True)
        assert typ == "OK", data
        if int(data[0]) == 0:
            return []
        typ, data = im.fetch("1:*", "(BODY.PEEK[])")
        assert typ == "OK", data
        return [p[1] for p in data if isinstance(p, tuple)]
    finally:
        im.logout()


def find(msgs, needle):
    return [m for m in msgs if needle in m]


# ---- setup ----

def owners(c):
    d = c.directory("relay-1") or {}
    return {s["shard"]: s["node_name"] for s in d.get("shards", [])}


def test_setup(c):
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, {"%s@%s" % (u, DOMAIN): password(u) for u in USERS})
    o = wait_until(lambda: (lambda o: o if len(o) == 64 and
                            set(o.values()) == {"node-1", "node-2"} else None)
                   (owners(c)), 30, 0.2, "shards split between the nodes")
    shards = {a["address"]: a["shard"]
              for a in c.directory("relay-1")["accounts"]}
    mine = sorted(a for a in shards if o[shards[a]] == "node-1")
    theirs = sorted(a for a in shards if o[shards[a]] == "node-2")
    assert len(mine) >= 3 and theirs, (mine, theirs)
    state.update(alice=mine[0], local=mine[1], carol=mine[2], other=theirs[0])
    v = c.ok("alias", "add", "sales@" + DOMAIN, state["alice"])["version"]
    v = c.ok("alias", "add", "team@" + DOMAIN, state["alice"],
             state["carol"])["version"]
    v = c.ok("alias", "add", "fwd@" + DOMAIN, "far@" + REMOTE)["version"]
    v = c.ok("alias", "add", "*@" + DOMAIN, state["local"])["version"]
    c.wait_applied(v, timeout=15)
    for node in ("node-1", "node-2"):
        wait_port(*c.endpoint(node, "SUBMISSION"), timeout=20)
        wait_port(*c.endpoint(node, "SUBMISSIONS"), timeout=20)
        wait_port(*c.endpoint(node, "IMAPS"), timeout=20)
    SINK.start(REMOTE)


# ---- authentication ----

def test_no_auth_before_starttls(c):
    """587 in clear: STARTTLS offered, AUTH neither offered nor accepted,
    MAIL refused; after STARTTLS AUTH PLAIN LOGIN SCRAM-SHA-256, MAIL
    still refused before AUTH."""
    host, port = submission(c)
    s = smtplib.SMTP(host, port, local_hostname="client.example.net",
                     timeout=WAIT)
    try:
        code, _ = s.ehlo()
        assert code == 250
        assert s.has_extn("starttls"), s.esmtp_features
        assert not s.has_extn("auth"), s.esmtp_features
        creds = base64.b64encode(("\0%s\0%s" % (
            state["alice"], password(state["alice"]))).encode()).decode()
        code, text = s.docmd("AUTH", "PLAIN " + creds)
        assert code == 530 and b"5.7.0" in text, (code, text)
        code, text = s.mail(state["alice"])
        assert code == 530 and b"5.7.0" in text, (code, text)
        code, text = s.docmd("AUTH", "SCRAM-SHA-256")
        assert code == 530 and b"5.7.0" in text, (code, text)
        s.starttls(context=context(c))
        s.ehlo("client.example.net")
        assert s.esmtp_features.get("auth", "").split() == MECHS, \
            s.esmtp_features
        assert not s.has_extn("starttls")
        code, text = s.mail(state["alice"])
        assert code == 530 and b"5.7.0" in text, (code, text)
    finally:
        quit_quietly(s)


def test_auth_plain_and_login(c):
    """PLAIN (initial response), PLAIN after a 334, LOGIN with and without
    an initial response, by full address and by bare local part."""
    alice = state["alice"]
    local_part = alice.split("@")[0]
    cases = [("PLAIN", alice, True), ("PLAIN", local_part, False),
             ("LOGIN", alice, True), ("LOGIN", local_part, False)]
    for mech, user, initial in cases:
        s = smtp_587(c)
        try:
            s.user, s.password = user, password(alice)
            obj = s.auth_plain if mech == "PLAIN" else s.auth_login
            code, text = s.auth(mech, obj, initial_response_ok=initial)
            assert code == 235 and b"2.7.0" in text, (mech, user, code, text)
            code, text = s.mail(alice)
            assert code == 250, (mech, code, text)
        finally:
            quit_quietly(s)
    # An unknown mechanism is refused without counting as a failure.
    s = smtp_587(c)
    try:
        code, _ = s.docmd("AUTH", "CRAM-MD5")
        assert code == 504, code
    finally:
        quit_quietly(s)


def test_465_implicit_tls(c):
    """TLS from the first byte; AUTH offered at once; a message to a local
    account over it is stored."""
    s = smtp_465(c)
    try:
        assert s.esmtp_features.get("auth", "").split() == MECHS
        assert not s.has_extn("starttls")
        s.login(state["alice"], password(state["alice"]))
        content = message(state["alice"], state["local"], "over 465")
        code, text = transaction(s, state["alice"], [state["local"]], content)
        assert code == 250, (code, text)
    finally:
        quit_quietly(s)
    msgs = find(imap_inbox(c, state["local"]), b"Subject: over 465\r\n")
    assert len(msgs) == 1, msgs
    _, received, rest = strip_trace(msgs[0])
    assert b"with ESMTPSA" in received, received
    assert rest == content, rest


def test_wrong_password(c):
    """535 5.7.8 after a delay growing with the failures from the peer;
    the third failure in one session ends it with 421."""
    s = smtp_587(c)
    try:
        delays = []
        for _ in range(2):
            s.user, s.password = state["alice"], "not the password"
            t0 = time.monotonic()
            try:
                s.auth("PLAIN", s.auth_plain)
                raise AssertionError("wrong password accepted")
            except smtplib.SMTPAuthenticationError as e:
                assert e.smtp_code == 535 and b"5.7.8" in e.smtp_error, e
            delays.append(time.monotonic() - t0)
        assert delays[0] >= 0.9 and delays[1] >= 1.9 and \
            delays[1] > delays[0] + 0.5, delays
        s.user = "nobody@" + DOMAIN  # unknown user: the same answer
        try:
            s.auth("PLAIN", s.auth_plain)
            raise AssertionError("unknown user accepted")
        except smtplib.SMTPAuthenticationError as e:
            assert e.smtp_code == 421, e
    finally:
        s.close()
    # The right password still works at once.
    t0 = time.monotonic()
    quit_quietly(smtp_587(c, state["alice"]))
    assert time.monotonic() - t0 < 5


def b64(data):
    return base64.b64encode(data).decode()


def scram_auth(s, user, pw, initial=True):
    """AUTH SCRAM-SHA-256 by hand on smtplib session s (after STARTTLS
    and EHLO). Returns (last code, its text, seconds the answer to the
    client-final took, the server-final message or None)."""
    cnonce = b64(os.urandom(18))
    bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"),
                          cnonce)
    first_msg = b64(("n,," + bare).encode())
    if initial:
        code, text = s.docmd("AUTH", "SCRAM-SHA-256 " + first_msg)
    else:
        code, text = s.docmd("AUTH", "SCRAM-SHA-256")
        assert code == 334 and text == b"", (code, text)
        code, text = s.docmd(first_msg)
    assert code == 334, (code, text)
    first = base64.b64decode(text).decode()
    at = dict(x.split("=", 1) for x in first.split(","))
    assert at["r"].startswith(cnonce) and len(at["r"]) > len(cnonce), first
    salted = hashlib.pbkdf2_hmac("sha256", pw.encode(),
                                 base64.b64decode(at["s"]), int(at["i"]))
    ckey = hmac.new(salted, b"Client Key", "sha256").digest()
    skey = hmac.new(salted, b"Server Key", "sha256").digest()
    without = "c=biws,r=" + at["r"]
    authmsg = (bare + "," + first + "," + without).encode()
    sig = hmac.new(hashlib.sha256(ckey).digest(), authmsg, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    t0 = time.monotonic()
    code, text = s.docmd(b64((without + ",p=" + b64(proof)).encode()))
    took = time.monotonic() - t0
    final = None
    if code == 334:
        final = base64.b64decode(text).decode()
        want = "v=" + b64(hmac.new(skey, authmsg, "sha256").digest())
        assert final == want, (final, want)  # the server knew the key
        code, text = s.docmd("")
    return code, text, took, final


def test_auth_scram(c):
    """SCRAM-SHA-256 with and without an initial response, by full address
    and local part: 235 and the server's signature checks out; MAIL
    works after it."""
    alice = state["alice"]
    for user, initial in ((alice, True), (alice.split("@")[0], False)):
        s = smtp_587(c)
        try:
            code, text, _, final = scram_auth(s, user, password(alice),
                                              initial)
            assert code == 235 and b"2.7.0" in text, (user, code, text)
            assert final is not None
            code, text = s.mail(alice)
            assert code == 250, (code, text)
        finally:
            quit_quietly(s)
    assert re.search(r"submission login session=[0-9a-f]{16} user=%s "
                     r"peer=\S+ mech=SCRAM-SHA-256" % re.escape(alice),
                     c.read_log("node-1")), "no SCRAM login in the log"


def test_auth_scram_fails(c):
    """A wrong password and an unknown user: no server-final, 535 5.7.8
    after the penalty delay, as for PLAIN; malformed messages 501 5.5.2;
    "*" cancels (501)."""
    for user, pw in ((state["alice"], "wrong password"),
                     ("nobody@" + DOMAIN, "whatever")):
        s = smtp_587(c)
        try:
            code, text, took, final = scram_auth(s, user, pw)
            assert code == 535 and b"5.7.8" in text, (user, code, text)
            assert final is None and took >= 0.9, (user, final, took)
        finally:
            quit_quietly(s)
    # Each session takes two (the third failure would end it with 421).
    s = smtp_587(c)
    try:
        # Not SCRAM; channel binding, which is not offered.
        for bad in (b"not scram", b"p=tls-unique,,n=x,r=abc"):
            code, text = s.docmd("AUTH", "SCRAM-SHA-256 " + b64(bad))
            assert code == 501 and b"5.5.2" in text, (bad, code, text)
    finally:
        quit_quietly(s)
    s = smtp_587(c)
    try:
        # Not base64; an empty client-first.
        for bad in ("!!!!", "="):
            code, text = s.docmd("AUTH", "SCRAM-SHA-256 " + bad)
            assert code == 501 and b"5.5.2" in text, (bad, code, text)
        code, text = s.docmd("AUTH", "SCRAM-SHA-256")
        assert code == 334, (code, text)
        code, text = s.docmd("*")
        assert code == 501, (code, text)
        # The cancelled exchange left nothing behind: a new one works.
        code, text, _, _ = scram_auth(s, state["alice"],
                                      password(state["alice"]))
        assert code == 235, (code, text)
    finally:
        quit_quietly(s)


# ---- sender policy ----

def test_forged_mail_from(c):
    """Only the account's own address and its aliases: another account,
    a foreign address, <>, an address only the catch-all covers and an
    alias of another account are refused."""
    s = smtp_587(c, state["alice"])
    try:
        for sender in (state["other"], state["local"], "boss@" + REMOTE, "",
                       "whatever@" + DOMAIN, "fwd@" + DOMAIN):
            code, text = s.mail(sender)
            assert code == 553 and b"5.7.1" in text, (sender, code, text)
        code, text = s.mail(state["alice"].upper())
        assert code == 250, (code, text)  # addresses are case-insensitive
        s.rset()
        code, text = s.mail("team@" + DOMAIN)  # alias of alice and carol
        assert code == 250, (code, text)
        s.rset()
    finally:
        quit_quietly(s)


def test_forged_from_header(c):
    """From (every one of them) and Sender must be the account's: else
    553 at the end of data, and nothing is stored or relayed. No From at
    all: 554 5.6.0."""
    alice, local = state["alice"], state["local"]
    before = len(c.mailbox(local))
    SINK.new()
    cases = [
        (b"From: Boss <%s>\r\n" % state["other"].encode(), 553),
        (b"From: <%s>, <%s>\r\n" % (alice.encode(), state["other"].encode()),
         553),
        (b"From: <%s>\r\nFrom: <boss@%s>\r\n" % (alice.encode(),
                                                  REMOTE.encode()), 553),
        (b"From: <%s>\r\nSender: <%s>\r\n" % (alice.encode(),
                                               state["other"].encode()), 553),
        (b"From: <whatever@%s>\r\n" % DOMAIN.encode(), 553),
        (b"To: <%s>\r\n" % local.encode(), 554),
        (b"From: undisclosed:;\r\n", 554),
    ]
    for i, (head, want) in enumerate(cases):
        content = head + b"Subject: forged %d\r\n\r\nbody\r\n" % i
        code, text = send(c, alice, [local, "far@" + REMOTE], content)
        assert code == want, (head, code, text)
        assert (b"5.7.1" if want == 553 else b"5.6.0") in text, text
    time.sleep(0.5)
    assert len(c.mailbox(local)) == before
    assert SINK.new() == []


def test_alias_sender(c):
    """The envelope and From an alias of the account: accepted."""
    content = (b"From: Sales <sales@%s>\r\nTo: <%s>\r\nSubject: from sales\r\n"
               b"\r\nbody\r\n" % (DOMAIN.encode(), state["local"].encode()))
    code, text = send(c, "sales@" + DOMAIN, [state["local"]], content)
    assert code == 250, (code, text)
    msgs = find(imap_inbox(c, state["local"]), b"Subject: from sales\r\n")
    assert len(msgs) == 1
    assert msgs[0].startswith(b"Return-Path: <sales@%s>\r\n" % DOMAIN.encode())


# ---- local delivery ----

def added_fields(rest):
    """(Date value, Message-ID value, the bytes after both) when the
    stored message starts with the two fields the node adds."""
    m = re.match(br"Date: ([^\r\n]*)\r\nMessage-ID: ([^\r\n]*)\r\n", rest)
    assert m, "no added Date and Message-ID: %r" % rest[:300]
    return m.group(1).decode(), m.group(2).decode(), rest[m.end():]


def test_local_delivery_adds_fields(c):
    """No Date, no Message-ID: the node adds both (RFC 5322 date in UTC,
    a random id at its host name) after its Received field; the rest is
    the client's bytes. With both present nothing is added."""
    local = state["local"]
    content = message(state["alice"], local, "bare", msgid=False, date=False,
                      body=b"line one\r\n.starts with a dot\r\n")
    t0 = time.time()
    code, text = send(c, state["alice"], [local], content)
    assert code == 250, (code, text)
    msgs = find(imap_inbox(c, local), b"Subject: bare\r\n")
    assert len(msgs) == 1, msgs
    rp, received, rest = strip_trace(msgs[0])
    assert rp == b"Return-Path: <%s>\r\n" % state["alice"].encode()
    assert re.search(br"by node-1\.cluster\.test with ESMTPSA \(TLSv1\.[23]:",
                     received), received
    date, msgid, tail = added_fields(rest)
    assert tail == content, tail
    assert date.endswith("+0000"), date
    when = email.utils.parsedate_to_datetime(date).timestamp()
    assert abs(when - t0) < 60, (date, t0)
    assert re.match(r"<\d{14}\.[0-9a-f]{16}@node-1\.cluster\.test>$", msgid), \
        msgid
    stored = [m for m in c.mailbox(local) if m["message_id"] == msgid]
    assert len(stored) == 1, stored  # the ENVELOPE has it too

    content = message(state["alice"], local, "complete")
    code, text = send(c, state["alice"], [local], content)
    assert code == 250, (code, text)
    msgs = find(imap_inbox(c, local), b"Subject: complete\r\n")
    assert len(msgs) == 1 and strip_trace(msgs[0])[2] == content


def test_local_aliases_and_catchall(c):
    """team@ (alice and carol), a catch-all address (local) and local
    itself: one copy per account."""
    alice, local, carol = state["alice"], state["local"], state["carol"]
    content = message(alice, "team@" + DOMAIN, "to the team")
    code, text = send(c, alice, ["team@" + DOMAIN, "nobody@" + DOMAIN, local,
                                 carol], content)
    assert code == 250, (code, text)
    for who in (alice, local, carol):
        msgs = find(imap_inbox(c, who), b"Subject: to the team\r\n")
        assert len(msgs) == 1, (who, len(msgs))
        assert strip_trace(msgs[0])[2] == content


def test_unknown_local_user(c):
    """Without a catch-all an unknown user is refused at RCPT; so are
    quoted local parts the directory does not know. (The catch-all is
    removed for this and put back.)"""
    v = c.ok("alias", "rm", "*@" + DOMAIN)["version"]
    c.wait_applied(v, timeout=15)
    try:
        s = smtp_587(c, state["alice"])
        try:
            assert s.mail(state["alice"])[0] == 250
            code, text = s.rcpt("nobody@" + DOMAIN)
            assert code == 550 and b"5.1.1" in text, (code, text)
            code, text = s.rcpt("Postmaster")
            assert code == 550, (code, text)
        finally:
            quit_quietly(s)
    finally:
        v = c.ok("alias", "add", "*@" + DOMAIN, state["local"])["version"]
        c.wait_applied(v, timeout=15)


# ---- the relay ----

def test_remote_to_relay(c):
    """A foreign recipient: the relay gets the envelope and the client's
    bytes after our Received (and the added Date/Message-ID)."""
    SINK.new()
    alice = state["alice"]
    content = message(alice, "far@" + REMOTE, "remote one",
                      body=b"8-bit caf\xc3\xa9\r\n.dot\r\n" + b"x" * 990 +
                      b"\r\n")
    code, text = send(c, alice, ["far@" + REMOTE], content)
    assert code == 250, (code, text)
    got = SINK.new()
    assert len(got) == 1, got
    data, env = got[0]
    assert env["MAIL"] == alice and env["RCPT"] == ["far@" + REMOTE], env
    assert env["8BIT"] == "1", env
    m = re.match(br"(Received:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)", data)
    assert m and b"with ESMTPSA" in m.group(1), data[:300]
    assert data[m.end():] == content, data[m.end():][:300]

    content = message(alice, "far@" + REMOTE, "remote bare", msgid=False,
                      date=False)
    code, text = send(c, alice, ["far@" + REMOTE, "fwd@" + DOMAIN], content)
    assert code == 250, (code, text)
    got = SINK.new()
    assert len(got) == 1, got
    data, env = got[0]
    # fwd@ resolves to far@ too: one recipient at the relay.
    assert env["RCPT"] == ["far@" + REMOTE], env
    m = re.match(br"(Received:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)", data)
    _, msgid, tail = added_fields(data[m.end():])
    assert tail == content and "@node-1.cluster.test>" in msgid, data[:400]


def test_mixed_local_and_remote(c):
    """Local recipients stored here, the rest relayed: one copy each."""
    SINK.new()
    alice, local = state["alice"], state["local"]
    content = message(alice, local, "mixed")
    code, text = send(c, alice, [local, "far@" + REMOTE, "near@" + REMOTE],
                      content)
    assert code == 250, (code, text)
    got = SINK.new()
    assert len(got) == 1 and sorted(got[0][1]["RCPT"]) == \
        ["far@" + REMOTE, "near@" + REMOTE], got
    msgs = find(imap_inbox(c, local), b"Subject: mixed\r\n")
    assert len(msgs) == 1 and strip_trace(msgs[0])[2] == content


def test_relay_down(c):
    """The relay away: 451, nothing relayed; the local copy is stored
    already and kept. The client's retry of the same bytes once the relay
    is back: 250, still one local copy, one relayed copy."""
    alice, local = state["alice"], state["local"]
    SINK.stop()
    content = message(alice, local, "relay down")
    code, text = send(c, alice, [local, "far@" + REMOTE], content)
    assert code == 451 and text[:2] == b"4.", (code, text)
    remote_only = message(alice, "far@" + REMOTE, "relay down 2")
    code, text = send(c, alice, ["far@" + REMOTE], remote_only)
    assert code == 451, (code, text)
    SINK.start(REMOTE)
    for data in (content, remote_only):
        rcpts = [local, "far@" + REMOTE] if data is content else \
            ["far@" + REMOTE]
        code, text = send(c, alice, rcpts, data)
        assert code == 250, (code, text)
    got = SINK.new()
    subjects = sorted(re.search(br"Subject: ([^\r\n]*)", d).group(1)
                      for d, _ in got)
    assert subjects == [b"relay down", b"relay down 2"], subjects
    msgs = find(imap_inbox(c, local), b"Subject: relay down\r\n")
    assert len(msgs) == 1, len(msgs)
    assert "dup=1" in c.read_log("node-1")


def test_other_shard_to_relay(c):
    """An account on node-2's shards, submitted on node-1: relayed (the
    relay delivers it to its owner), not stored by node-1."""
    SINK.start(DOMAIN)
    try:
        alice, other = state["alice"], state["other"]
        before = len(c.mailbox(other))
        content = message(alice, other, "to node-2")
        code, text = send(c, alice, [other], content)
        assert code == 250, (code, text)
        got = SINK.new()
        assert len(got) == 1 and got[0][1]["RCPT"] == [other], got
        assert len(c.mailbox(other)) == before
    finally:
        SINK.start(REMOTE)


# ---- limits and logs ----

def test_size_limits(c):
    """SIZE= over the limit at MAIL, content over it after the data:
    552 5.3.4, nothing stored or relayed."""
    SINK.new()
    s = smtp_587(c, state["alice"])
    try:
        code, text = s.mail(state["alice"], ["SIZE=%d" % (MAX_MESSAGE * 2)])
        assert code == 552 and b"5.3.4" in text, (code, text)
        big = message(state["alice"], "far@" + REMOTE, "too big",
                      body=(b"y" * 998 + b"\r\n") * (MAX_MESSAGE // 1000 + 100))
        code, text = transaction(s, state["alice"], ["far@" + REMOTE], big)
        assert code == 552 and b"5.3.4" in text, (code, text)
    finally:
        quit_quietly(s)
    assert SINK.new() == []


def test_session_ids_in_logs(c):
    """The Received field's id is the session id the node logs for the
    login and the message."""
    content = message(state["alice"], state["local"], "log check")
    code, text = send(c, state["alice"], [state["local"]], content)
    assert code == 250, (code, text)
    msgs = find(imap_inbox(c, state["local"]), b"Subject: log check\r\n")
    _, received, _ = strip_trace(msgs[0])
    sid = re.search(br"\bid ([0-9a-f]{16});", received).group(1).decode()
    log = c.read_log("node-1")
    for what in ("submission login session=%s user=%s" % (sid, state["alice"]),
                 "submission message session=%s user=%s" % (sid, state["alice"]),
                 "submission delivered session=%s rcpt=%s" % (sid,
                                                            state["local"])):
        assert what in log, what


def relay_config(c, **keys):
    """Rewrite node-1's submission_relay_* keys (others kept) and restart
    it."""
    path = c.env["MC_NODE_1_CONFIG"]
    with open(path) as f:
        lines = [l for l in f if not l.startswith("submission_relay_")]
    lines += ["submission_relay_%s = %s\n" % kv for kv in sorted(keys.items())]
    with open(path, "w") as f:
        f.writelines(lines)
    c.cluster("stop-daemon", "node-1")
    c.cluster("start-daemon", "node-1")
    wait_port(*submission(c), timeout=20)


def test_relay_tls(c):
    """submission_relay_tls starttls and implicit, the relay's certificate
    checked against submission_relay_ca_file (with a client certificate
    for mutual TLS): relayed over TLSv1.3; a relay whose certificate the
    CA file does not vouch for gets nothing (451). node-1's IMAP
    certificate (names 127.0.0.1) serves as the relay's."""
    cert, key = c.imap_cert("node-1"), c.env["MC_NODE_1_IMAP_KEY"]
    alice = state["alice"]
    mutual = {"cert_file": cert, "key_file": key}
    cases = [("starttls", [], cert, 250), ("starttls", [], c.imap_cert("node-2"), 451),
             ("implicit", ["--implicit-tls"], cert, 250)]
    try:
        for mode, extra, ca, want in cases:
            SINK.start(REMOTE, "--cert", cert, "--key", key, *extra)
            relay_config(c, tls=mode, ca_file=ca, **mutual)
            content = message(alice, "far@" + REMOTE, "tls %s %d" % (mode, want))
            code, text = send(c, alice, ["far@" + REMOTE], content)
            assert code == want, (mode, ca, code, text)
            got = SINK.new()
            if want == 250:
                assert len(got) == 1 and got[0][1]["TLS"] == "TLSv1.3", got
                assert got[0][0].endswith(content)
            else:
                assert got == [] and text.startswith(b"4.7."), (got, text)
    finally:
        SINK.start(REMOTE)
        relay_config(c)


def main():
    # The cluster checks its own ports, up to IMAPS.
    for port in (SINK_PORT, BASE + 91, BASE + 92, BASE + 101, BASE + 102):
        if not port_free(port):
            raise SystemExit("port %d is in use" % port)
    try:
        run_tests(Cluster(base_port=BASE, nodes=2, script_vars={
            "MC_SUBMISSION_RELAY": "127.0.0.1:%d" % SINK_PORT,
            "MC_MAX_MESSAGE_SIZE": str(MAX_MESSAGE),
            "MC_RETRY_BASE_MS": "500",
        }), [
            ("setup", test_setup),
            ("no AUTH before STARTTLS", test_no_auth_before_starttls),
            ("AUTH PLAIN and LOGIN", test_auth_plain_and_login),
            ("465 implicit TLS", test_465_implicit_tls),
            ("wrong password", test_wrong_password),
            ("AUTH SCRAM-SHA-256", test_auth_scram),
            ("AUTH SCRAM-SHA-256 failures", test_auth_scram_fails),
            ("forged MAIL FROM", test_forged_mail_from),
            ("forged From header", test_forged_from_header),
            ("alias sender", test_alias_sender),
            ("local delivery adds Date and Message-ID",
             test_local_delivery_adds_fields),
            ("local aliases and catch-all", test_local_aliases_and_catchall),
            ("unknown local user", test_unknown_local_user),
            ("remote recipients to the relay", test_remote_to_relay),
            ("mixed local and remote", test_mixed_local_and_remote),
            ("relay down", test_relay_down),
            ("other shard to the relay", test_other_shard_to_relay),
            ("size limits", test_size_limits),
            ("session ids in logs", test_session_ids_in_logs),
            ("relay over TLS", test_relay_tls),
        ])
    finally:
        SINK.stop()
        shutil.rmtree(SINK.work, ignore_errors=True)


if __name__ == "__main__":
    main()
