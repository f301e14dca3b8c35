#!/usr/bin/python3
"""The SMTP/LMTP server engine (lib/smtp_server) against real clients.

Starts tests/integration/smtp_testd (a tiny server on the engine that
writes each accepted message to a folder, fsynced before its 250) on a
loopback port and talks to it with Python's smtplib (EHLO, STARTTLS with
a certificate made here by the openssl command, send_message, SMTPUTF8,
SIZE), raw pipelined sockets (PIPELINING, LMTP per-recipient replies,
SMTP smuggling), swaks (a plain and a STARTTLS transaction) and Postfix's
smtp-source (50 messages over 5 sessions, SMTP and LMTP). Every stored
message is compared byte for byte with what the client sent, after
dot-unstuffing with CRLF line ends.

Usage: test_smtp_engine.py PATH/TO/smtp_testd
Needs the Debian packages swaks and postfix (for /usr/sbin/smtp-source;
postfix itself need not run). Prints "N passed, N failed".
"""
import copy
import email.generator
import email.message
import io
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

TESTD = sys.argv[1] if len(sys.argv) > 1 else "smtp_testd"
DOMAIN = "example.test"
HOST = "testd.example.test"
SMTP_SOURCE = "/usr/sbin/smtp-source"
PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL: %s" % what, flush=True)


class Testd:
    """One smtp_testd process with its own message folder."""

    def __init__(self, work, *args):
        self.dir = tempfile.mkdtemp(prefix="msgs.", dir=work)
        self.log = open(os.path.join(self.dir, "..", "testd-%d.log"
                                     % len(os.listdir(work))), "w")
        self.proc = subprocess.Popen(
            [TESTD, "--dir", self.dir, "--domain", DOMAIN] + list(args),
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("port="):
            raise RuntimeError("smtp_testd did not start: %r" % line)
        self.port = int(line.strip().split("=")[1])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = -1
        self.log.close()
        check(code == 0, "smtp_testd exits 0 on SIGTERM (got %s)" % code)

    def messages(self):
        """[(name, content bytes, envelope text)] sorted by name."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".eml"):
                continue
            base = name[:-4]
            with open(os.path.join(self.dir, name), "rb") as f:
                data = f.read()
            with open(os.path.join(self.dir, base + ".env")) as f:
                env = f.read()
            out.append((base, data, env))
        return out

    def wait_messages(self, n, timeout=30):
        end = time.time() + timeout
        while time.time() < end and len(self.messages()) < n:
            time.sleep(0.05)
        return self.messages()

    def clear(self):
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))


def crlf_lines(text):
    """What a client sends for LF-terminated lines: CRLF line ends."""
    return b"".join(line + b"\r\n" for line in text.split(b"\n")[:-1])


def flatten(msg):
    """The bytes smtplib.send_message puts on the wire (unstuffed)."""
    buf = io.BytesIO()
    m = copy.copy(msg)
    del m["Bcc"]
    intl = any(ord(c) > 127 for c in str(m["From"]) + str(m["To"]))
    policy = m.policy.clone(utf8=True) if intl else m.policy
    email.generator.BytesGenerator(buf, policy=policy).flatten(
        m, linesep="\r\n")
    data = buf.getvalue()
    return data if data.endswith(b"\r\n") else data + b"\r\n"


BODY = (b"Subject: dots and bytes\r\n"
        b"From: <alice@example.org>\r\n"
        b"\r\n"
        b".leading dot\r\n"
        b"..two dots\r\n"
        b".\r\n"
        b"caf\xc3\xa9 8-bit line\r\n"
        + b"x" * 990 + b"\r\n"
        b"last line\r\n")


class Raw:
    """A raw client socket for pipelining checks."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def replies(self, n):
        """n complete replies (multi-line ones count once)."""
        out = []
        while len(out) < n:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return out
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            if line[3:4] != b"-":
                out.append(line.decode("utf-8", "replace"))
        return out

    def close(self):
        self.sock.close()


# --- smtplib ---------------------------------------------------------------


def test_smtplib_plain(d, cert):
    s = smtplib.SMTP("127.0.0.1", d.port, local_hostname="client.example",
                     timeout=20)
    code, _ = s.ehlo()
    check(code == 250, "EHLO 250")
    for ext in ("pipelining", "size", "8bitmime", "smtputf8",
                "enhancedstatuscodes", "starttls"):
        check(s.has_extn(ext), "EHLO advertises %s" % ext)
    check(s.esmtp_features.get("size") == "1000000", "SIZE limit advertised")
    refused = s.sendmail("alice@example.org",
                         ["bob@example.test", "carol@elsewhere.example"],
                         BODY, mail_options=["BODY=8BITMIME"])
    check(list(refused) == ["carol@elsewhere.example"]
          and refused["carol@elsewhere.example"][0] == 550,
          "foreign recipient refused with 550, got %r" % refused)
    msg = email.message.EmailMessage()
    msg["From"] = "alice@example.org"
    msg["To"] = "bob@example.test"
    msg["Bcc"] = "hidden@example.test"
    msg["Subject"] = "send_message"
    msg.set_content("Hello.\n.hidden dot\n\nBye.\n")
    s.send_message(msg)
    intl = email.message.EmailMessage()
    intl["From"] = "j\u00f6rg@example.org"
    intl["To"] = "\u00fcnic\u00f6de@example.test"
    intl["Subject"] = "gr\u00fc\u00dfe"
    intl.set_content("Unicode body \u2713\n")
    s.send_message(intl)
    code, text = s.verify("bob@example.test")
    check(code == 252, "VRFY 252 without leaking users")
    s.quit()
    msgs = d.wait_messages(3)
    check(len(msgs) == 3, "3 messages stored, got %d" % len(msgs))
    if len(msgs) != 3:
        return
    by_subject = {}
    for name, data, env in msgs:
        for subj in (b"dots and bytes", b"send_message", b"=?utf-8?"):
            if subj in data.split(b"\r\n\r\n")[0]:
                by_subject[subj] = (data, env)
    first = by_subject.get(b"dots and bytes")
    check(first is not None and first[0] == BODY,
          "8-bit message with dots byte-identical")
    check(first is not None and "RCPT bob@example.test\n" in first[1]
          and "carol" not in first[1] and "PROTO ESMTP\n" in first[1]
          and "HELO client.example\n" in first[1] and "8BIT 1" in first[1],
          "envelope of the first message: %r" % (first and first[1]))
    second = by_subject.get(b"send_message")
    check(second is not None and second[0] == flatten(msg),
          "send_message content byte-identical (Bcc removed)")
    third = [m for m in msgs if "\u00fcnic\u00f6de@example.test"
             in m[2]]
    check(len(third) == 1 and third[0][1] == flatten(intl),
          "SMTPUTF8 message byte-identical with its UTF-8 envelope")
    check(len(third) == 1 and "MAIL j\u00f6rg@example.org\n" in third[0][2],
          "UTF-8 sender kept")


def test_smtplib_starttls(d, cert):
    ctx = ssl.create_default_context(cafile=cert)
    s = smtplib.SMTP("127.0.0.1", d.port, local_hostname="tls.example",
                     timeout=20)
    s.ehlo()
    s.starttls(context=ctx)
    s.ehlo()
    check(not s.has_extn("starttls"), "no STARTTLS offered inside TLS")
    check(s.sock.version() in ("TLSv1.3", "TLSv1.2"), "TLS version")
    s.sendmail("alice@example.org", ["bob@example.test"], BODY)
    try:
        s.starttls(context=ctx)
        check(False, "second STARTTLS refused")
    except smtplib.SMTPException:
        check(True, "second STARTTLS refused")
    s.quit()
    msgs = d.wait_messages(1)
    check(len(msgs) == 1 and msgs[0][1] == BODY,
          "message over STARTTLS byte-identical")
    check(len(msgs) == 1 and "PROTO ESMTPS\n" in msgs[0][2]
          and "TLS TLSv1." in msgs[0][2] and "HELO tls.example" in msgs[0][2],
          "envelope records ESMTPS and TLS: %r" % (msgs and msgs[0][2]))


def test_size(d, cert):
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=20)
    s.ehlo()
    big = (b"y" * 998 + b"\r\n") * 1100
    try:
        # smtplib declares SIZE=<length> itself when SIZE is offered.
        s.sendmail("a@example.org", ["b@example.test"], big)
        check(False, "SIZE above the limit refused at MAIL")
    except smtplib.SMTPSenderRefused as e:
        check(e.smtp_code == 552 and b"5.3.4" in e.smtp_error,
              "SIZE above the limit: 552 5.3.4 at MAIL (%r)" % e.smtp_error)
    # Undeclared: refused after the end of data, and the session goes on.
    check(s.mail("a@example.org")[0] == 250, "MAIL without SIZE")
    check(s.rcpt("b@example.test")[0] == 250, "RCPT")
    code, text = s.data(big)
    check(code == 552 and b"5.3.4" in text,
          "oversized content: 552 5.3.4 after the data (%r)" % text)
    s.sendmail("a@example.org", ["b@example.test"], b"small\r\n")
    s.quit()
    msgs = d.wait_messages(1)
    check(len(msgs) == 1 and msgs[0][1] == b"small\r\n",
          "only the small message stored")


# --- raw sockets -------------------------------------------------------------


def test_pipelining(d, cert):
    r = Raw(d.port)
    check(r.replies(1)[0].startswith("220 "), "banner")
    r.send(b"EHLO pipe.example\r\n")
    check(r.replies(1)[0].startswith("250 "), "EHLO")
    r.send(b"MAIL FROM:<p@example.org>\r\n"
           b"RCPT TO:<one@example.test>\r\n"
           b"RCPT TO:<x@foreign.example>\r\n"
           b"RCPT TO:<two@example.test>\r\n"
           b"DATA\r\n")
    got = r.replies(5)
    codes = [g[:3] for g in got]
    check(codes == ["250", "250", "550", "250", "354"],
          "pipelined MAIL/RCPT/DATA replies in order: %r" % got)
    # Smuggling: only <CRLF>.<CRLF> ends the data.
    r.send(b"Subject: pipe\r\n\r\nbody\n.\nMAIL FROM:<smuggled@evil.example>"
           b"\r\n.\r\nRSET\r\nQUIT\r\n")
    got = r.replies(3)
    check([g[:3] for g in got] == ["250", "250", "221"],
          "end of data, RSET, QUIT: %r" % got)
    r.close()
    msgs = d.wait_messages(1)
    check(len(msgs) == 1 and msgs[0][1] ==
          b"Subject: pipe\r\n\r\nbody\r\n\r\nMAIL FROM:<smuggled@evil.example>"
          b"\r\n", "smuggled MAIL stays content: %r" % (msgs and msgs[0][1]))
    check(len(msgs) == 1 and "RCPT one@example.test\nRCPT two@example.test\n"
          in msgs[0][2], "both good recipients, in order")


def test_lmtp_raw(d, cert):
    r = Raw(d.port)
    check(r.replies(1)[0].endswith("LMTP ready"), "LMTP banner")
    r.send(b"EHLO x\r\nLHLO relay.example\r\n")
    got = r.replies(2)
    check(got[0].startswith("500 5.5.1") and got[1].startswith("250 "),
          "EHLO refused, LHLO accepted in LMTP: %r" % got)
    r.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<one@example.test>\r\n"
           b"RCPT TO:<x@foreign.example>\r\nRCPT TO:<full@example.test>\r\n"
           b"DATA\r\n")
    got = r.replies(5)
    check([g[:3] for g in got] == ["250", "250", "550", "250", "354"],
          "LMTP RCPT replies: %r" % got)
    r.send(b"lmtp body\r\n.\r\n")
    got = r.replies(2)
    check(len(got) == 2 and got[0].startswith("250 2.0.0 Ok: queued as")
          and got[1] == "452 4.2.2 Mailbox full",
          "one reply per accepted recipient, in RCPT order: %r" % got)
    r.send(b"QUIT\r\n")
    check(r.replies(1)[0].startswith("221 "), "QUIT")
    r.close()
    msgs = d.wait_messages(1)
    check(len(msgs) == 1 and msgs[0][1] == b"lmtp body\r\n"
          and "PROTO LMTP\n" in msgs[0][2], "LMTP message stored")


# --- swaks ---------------------------------------------------------------------


def run(cmd, what, timeout=120):
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        check(False, "%s: %s" % (what, e))
        return None
    if p.returncode != 0:
        print(p.stdout.decode(errors="replace")[-2000:])
        print(p.stderr.decode(errors="replace")[-2000:])
    check(p.returncode == 0, "%s exits 0 (got %d)" % (what, p.returncode))
    return p


SWAKS_DATA = (b"Subject: swaks\n"
              b"From: <sender@example.org>\n"
              b"\n"
              b"Line one.\n"
              b".dotted line\n"
              b"..\n"
              b"end\n")


def swaks_sent(transcript):
    """The content swaks put on the wire (from its transcript), unstuffed:
    it sends an empty line of its own before the final dot."""
    lines, inside = [], False
    for line in transcript.split("\n"):
        if line.startswith(("<-  354", "<~  354")):
            inside = True
            continue
        if not inside or not line.startswith((" -> ", " ~> ")):
            continue
        text = line[4:].rstrip("\r")
        if text == ".":
            break
        lines.append(text[1:] if text.startswith(".") else text)
    return "".join(t + "\r\n" for t in lines).encode()


def test_swaks(d, cert, work):
    if shutil.which("swaks") is None:
        check(False, "swaks installed (apt-get install swaks)")
        return
    data = os.path.join(work, "swaks.txt")
    with open(data, "wb") as f:
        f.write(SWAKS_DATA)
    base = ["swaks", "--server", "127.0.0.1", "--port", str(d.port),
            "--from", "sender@example.org", "--to", "rcpt@example.test",
            "--helo", "swaks.example", "--data", "@" + data]
    sent = []
    for what, extra in (("plain", []), ("STARTTLS", ["--tls"])):
        p = run(base + extra, "swaks " + what)
        if p is None:
            return
        out = p.stdout.decode(errors="replace")
        sent.append(swaks_sent(out))
        if extra:
            check("TLS started" in out, "swaks reports TLS started")
        check(sent[-1].startswith(crlf_lines(SWAKS_DATA)),
              "swaks sent the file: %r" % sent[-1])
        msgs = d.wait_messages(len(sent))
        check(len(msgs) == len(sent), "swaks message stored")
    msgs = d.messages()
    check(sorted(m[1] for m in msgs) == sorted(sent),
          "swaks messages byte-identical to what swaks sent")
    check(sorted("ESMTPS" in m[2] for m in msgs) == [False, True],
          "one plain, one ESMTPS")


# --- smtp-source -------------------------------------------------------------------


SOURCE_DATA = (b"From: <source@example.org>\n"
               b"To: <sink@example.test>\n"
               b"Subject: smtp-source\n"
               b"\n"
               b"first body line\n"
               b".starts with a dot\n"
               b"...three\n"
               + b"z" * 700 + b"\n"
               b"last\n")


def smtp_source(d, work, extra, count, sessions):
    data = os.path.join(work, "source.txt")
    with open(data, "wb") as f:
        f.write(SOURCE_DATA)
    cmd = [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(count),
           "-F", data, "-f", "source@example.org", "-t", "sink@example.test",
           "-M", "source.example"] + extra + ["127.0.0.1:%d" % d.port]
    return run(cmd, "smtp-source %s" % " ".join(extra))


def test_smtp_source(d, cert, work, lmtp=False):
    if not os.access(SMTP_SOURCE, os.X_OK):
        check(False, "smtp-source installed (apt-get install postfix)")
        return
    count, sessions = (50, 5) if not lmtp else (20, 2)
    smtp_source(d, work, ["-L"] if lmtp else [], count, sessions)
    msgs = d.wait_messages(count)
    check(len(msgs) == count, "%d messages from smtp-source, got %d"
          % (count, len(msgs)))
    # smtp-source sends "\r\n.\r\n" after the last line: an empty line.
    want = crlf_lines(SOURCE_DATA) + b"\r\n"
    bad = [m[0] for m in msgs if m[1] != want]
    check(not bad, "smtp-source messages byte-identical (bad: %r)" % bad[:3])
    ids = set(m[0].split("-")[0] for m in msgs)
    check(len(ids) == sessions, "%d sessions used, got %d"
          % (sessions, len(ids)))
    proto = "PROTO LMTP\n" if lmtp else "PROTO SMTP\n"  # it sends HELO
    check(all(proto in m[2] and "RCPT sink@example.test\n" in m[2]
              for m in msgs), "smtp-source envelopes")


def make_cert(work):
    cert = os.path.join(work, "cert.pem")
    key = os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=" + HOST, "-addext",
                    "subjectAltName=DNS:%s,IP:127.0.0.1" % HOST],
                   check=True, capture_output=True)
    return cert, key


def main():
    work = tempfile.mkdtemp(prefix="test_smtp_engine.")
    cert, key = make_cert(work)
    tls = ["--cert", cert, "--key", key, "--max-size", "1000000"]
    cases = [
        ("smtplib", tls, lambda d: test_smtplib_plain(d, cert)),
        ("starttls", tls, lambda d: test_smtplib_starttls(d, cert)),
        ("size", tls, lambda d: test_size(d, cert)),
        ("pipelining", tls, lambda d: test_pipelining(d, cert)),
        ("lmtp", ["--lmtp"], lambda d: test_lmtp_raw(d, cert)),
        ("swaks", tls, lambda d: test_swaks(d, cert, work)),
        ("smtp-source", tls, lambda d: test_smtp_source(d, cert, work)),
        ("smtp-source-lmtp", ["--lmtp"],
         lambda d: test_smtp_source(d, cert, work, lmtp=True)),
    ]
    for name, args, fn in cases:
        print("--- %s" % name, flush=True)
        d = Testd(work, *args)
        try:
            fn(d)
        except Exception as e:  # a crash in one case fails only it
            check(False, "%s raised %r" % (name, e))
        finally:
            d.stop()
    if FAILED == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("logs kept in %s" % work)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
