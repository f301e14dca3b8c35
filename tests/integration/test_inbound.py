"""Inbound mail with real clients: Python's smtplib, swaks (plain and
STARTTLS) and Postfix's smtp-source send to relay-1's MX port; the relay
queues, delivers over LMTP to the node, and every message lands in the
INBOX of its account in the mailbox store. Each stored blob, once the two
trace header fields the cluster adds (Return-Path, Received with the
relay's queue id) are taken off, is byte-identical to what the client put
on the wire: sha256 multisets are compared. smtplib messages are built
here; swaks's come from its transcript, smtp-source's from a recording
proxy in front of the MX. `mailctl account show --json` then reports the
INBOX message count and size the store holds."""

import hashlib
import os
import shutil
import smtplib
import ssl
import subprocess
import tempfile

from harness import (Cluster, Recorder, received_queue_id,
                     run_tests, strip_trace, swaks_sent, wait_port)

DOMAIN = "in.test"
SENDER = "sender@example.net"
SMTP_SOURCE = "/usr/sbin/smtp-source"
WAIT = 30  # seconds a delivery may take, at most
sent = {}  # address -> [content bytes sent], for the account show check


def sha(data):
    return hashlib.sha256(data).hexdigest()


def setup(c):
    c.ok("domain", "add", DOMAIN)
    version = 0
    for user in ("alice", "swaks", "source", "bulk"):
        r = c.ok("account", "add", "%s@%s" % (user, DOMAIN),
                 input="secret-%s-1\n" % user)
        version = r["version"]
    c.wait_applied(version, timeout=10)
    wait_port(*c.mx(), timeout=20)


def check_delivered(c, address, contents, sender=SENDER):
    """Wait for len(contents) messages in address's INBOX; check each
    blob: Return-Path of the sender, a Received naming a queue id, the rest
    equal (as a multiset of hashes) to contents, size = blob length."""
    msgs = c.wait_mailbox(address, len(contents), timeout=WAIT)
    assert len(msgs) == len(contents), \
        "%s: %d messages stored, %d sent" % (address, len(msgs), len(contents))
    got, qids = [], set()
    for m in msgs:
        blob = c.blob(m["sha256"])
        assert m["size"] == len(blob), (m, len(blob))
        rp, received, rest = strip_trace(blob)
        assert rp == ("Return-Path: <%s>\r\n" % sender).encode(), rp
        qid = received_queue_id(received)
        assert qid, "no queue id in %r" % received
        assert qid not in qids, "queue id %s twice" % qid
        qids.add(qid)
        got.append(sha(rest))
    want = sorted(sha(x) for x in contents)
    assert sorted(got) == want, \
        "%s: stored content differs from what was sent:\nstored %r\nsent   %r" \
        % (address, sorted(got), want)
    sent.setdefault(address, []).extend(contents)
    return msgs


# ---- smtplib: byte-exact, built here ----

def smtplib_messages():
    base = (b"From: Sender <%s>\r\n"
            b"To: <alice@%s>\r\n"
            b"Subject: %%s\r\n"
            b"Message-ID: <%%s@example.net>\r\n"
            b"\r\n" % (SENDER.encode(), DOMAIN.encode()))
    msgs = []
    msgs.append(base % (b"plain", b"m1") + b"Hello.\r\n")
    msgs.append(base % (b"dots", b"m2") +
                b".leading dot\r\n..two dots\r\n.\r\n. space\r\nend\r\n")
    msgs.append(base % (b"8bit", b"m3") +
                b"caf\xc3\xa9 \xe2\x9c\x93 8-bit body\r\n" +
                b"y" * 998 + b"\r\n")
    msgs.append(base % (b"empty lines", b"m4") + b"\r\n\r\n\r\nx\r\n\r\n")
    big = b"".join(b"%06d " % i + b"z" * 70 + b"\r\n" for i in range(5000))
    msgs.append(base % (b"big", b"m5") + big)
    # Folded and odd header fields stay as they are.
    msgs.append(b"Received: from elsewhere by example.net; earlier\r\n"
                b"X-Folded: one\r\n\ttwo\r\n  three\r\n" +
                base % (b"folded", b"m6") + b"body\r\n")
    return msgs


def test_smtplib_byte_identical(c):
    host, port = c.mx()
    msgs = smtplib_messages()
    s = smtplib.SMTP(host, port, local_hostname="client.example.net",
                     timeout=30)
    code, _ = s.ehlo()
    assert code == 250, code
    for ext in ("pipelining", "size", "8bitmime", "enhancedstatuscodes"):
        assert s.has_extn(ext), "EHLO does not offer %s" % ext
    for m in msgs:
        refused = s.sendmail(SENDER, ["alice@" + DOMAIN], m,
                             mail_options=["BODY=8BITMIME"])
        assert refused == {}, refused
    s.quit()
    stored = check_delivered(c, "alice@" + DOMAIN, msgs)
    ids = sorted(m["message_id"] for m in stored)
    assert ids == sorted("<m%d@example.net>" % i for i in range(1, 7)), ids
    print("  %d messages byte-identical after the trace headers" % len(msgs))


def test_received_header(c):
    """The trace the relay adds: "from <helo> ([ip])", by its host name,
    the queue id; a UTF-8 sender keeps its bytes in Return-Path."""
    msgs = c.mailbox("alice@" + DOMAIN)
    assert msgs, "no messages from the smtplib test"
    _, received, _ = strip_trace(c.blob(msgs[0]["sha256"]))
    text = received.decode("utf-8", "replace")
    assert "client.example.net" in text and "127.0.0.1" in text, text
    assert "relay-1.cluster.test" in text, text
    assert ";" in text, "no date in Received: %r" % text


# ---- swaks ----

SWAKS_DATA = (b"From: <%s>\n"
              b"To: <swaks@%s>\n"
              b"Subject: swaks %%s\n"
              b"Message-ID: <swaks-%%s@example.net>\n"
              b"\n"
              b"Line one.\n"
              b".dotted line\n"
              b"..\n"
              b"end\n" % (SENDER.encode(), DOMAIN.encode()))


def run(cmd, timeout=120):
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, "%s exit %d:\n%s" % (cmd[0], p.returncode,
                                                    out[-3000:])
    return out


def starttls_offered(c):
    host, port = c.mx()
    s = smtplib.SMTP(host, port, timeout=20)
    try:
        s.ehlo()
        return s.has_extn("starttls")
    finally:
        s.quit()


def test_swaks(c):
    assert shutil.which("swaks"), "swaks is not installed (scripts/deps)"
    host, port = c.mx()
    work = tempfile.mkdtemp(prefix="swaks.")
    cases = [("plain", [])]
    if starttls_offered(c):
        cases.append(("starttls", ["--tls"]))
    else:
        print("  NOTE: relay-1 does not offer STARTTLS on its MX: the swaks "
              "STARTTLS case is skipped (not counted)")
    contents = []
    try:
        for what, extra in cases:
            data = os.path.join(work, what + ".txt")
            with open(data, "wb") as f:
                f.write(SWAKS_DATA % (what.encode(), what.encode()))
            out = run(["swaks", "--server", host, "--port", str(port),
                       "--from", SENDER, "--to", "swaks@" + DOMAIN,
                       "--helo", "swaks.example.net", "--data", "@" + data]
                      + extra)
            if extra:
                assert "TLS started" in out, out[-2000:]
            body = swaks_sent(out)
            assert body.startswith(b"From: <%s>\r\n" % SENDER.encode()), body
            contents.append(body)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    msgs = check_delivered(c, "swaks@" + DOMAIN, contents)
    if len(cases) == 2:
        blobs = [c.blob(m["sha256"]) for m in msgs]
        tls = [b for b in blobs if b"swaks starttls" in b]
        assert len(tls) == 1, "no STARTTLS message"
        _, received, _ = strip_trace(tls[0])
        assert b"ESMTPS" in received or b"TLS" in received, \
            "Received of the STARTTLS message does not say TLS: %r" % received
    print("  swaks: %s delivered byte-identical"
          % " and ".join(w for w, _ in cases))


def test_smtplib_starttls_certificate(c):
    """STARTTLS with the relay's certificate verified (when offered)."""
    cert = c.env.get("MC_RELAY_1_MX_CERT")
    if not starttls_offered(c) or not cert:
        print("  NOTE: no STARTTLS on relay-1's MX: skipped (not counted)")
        return
    host, port = c.mx()
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False  # the certificate names relay-1.cluster.test
    s = smtplib.SMTP(host, port, timeout=20)
    s.ehlo()
    s.starttls(context=ctx)
    s.ehlo()
    assert not s.has_extn("starttls"), "STARTTLS offered inside TLS"
    msg = (b"From: <%s>\r\nTo: <swaks@%s>\r\nSubject: tls verified\r\n"
           b"Message-ID: <tls-1@example.net>\r\n\r\nover TLS\r\n"
           % (SENDER.encode(), DOMAIN.encode()))
    assert s.sendmail(SENDER, ["swaks@" + DOMAIN], msg) == {}
    s.quit()
    before = sent.get("swaks@" + DOMAIN, [])
    sent["swaks@" + DOMAIN] = []
    check_delivered(c, "swaks@" + DOMAIN, before + [msg])


# ---- smtp-source ----

def test_smtp_source(c):
    assert os.access(SMTP_SOURCE, os.X_OK), \
        "smtp-source is not installed (postfix package)"
    host, port = c.mx()
    proxy = Recorder(host, port)
    try:
        run([SMTP_SOURCE, "-m", "20", "-s", "4", "-l", "10240",
             "-f", SENDER, "-t", "source@" + DOMAIN, "-M", "source.example.net",
             "127.0.0.1:%d" % proxy.port], timeout=180)
        contents = proxy.contents()
    finally:
        proxy.close()
    assert len(contents) == 20, "recorded %d messages" % len(contents)
    assert all(len(x) > 10240 for x in contents), [len(x) for x in contents]
    check_delivered(c, "source@" + DOMAIN, contents)
    print("  smtp-source: 20 messages of %d+ bytes over 4 sessions, "
          "byte-identical" % min(len(x) for x in contents))


def test_smtp_source_bulk(c):
    """More load: 100 messages, 10 sessions, 5 kept per connection (-d)."""
    host, port = c.mx()
    proxy = Recorder(host, port)
    try:
        run([SMTP_SOURCE, "-d", "-m", "100", "-s", "10", "-l", "2000",
             "-f", SENDER, "-t", "bulk@" + DOMAIN, "-M", "bulk.example.net",
             "127.0.0.1:%d" % proxy.port], timeout=180)
        contents = proxy.contents()
    finally:
        proxy.close()
    assert len(contents) == 100, "recorded %d messages" % len(contents)
    check_delivered(c, "bulk@" + DOMAIN, contents)


# ---- mailctl account show ----

def test_account_show(c):
    for address, contents in sorted(sent.items()):
        info = c.ok("account", "show", address)
        assert info.get("mailbox_error") is None, info
        boxes = {b["name"]: b for b in info["mailboxes"]}
        assert "INBOX" in boxes, boxes
        stored = c.mailbox(address)
        want_bytes = sum(m["size"] for m in stored)
        inbox = boxes["INBOX"]
        assert inbox["messages"] == len(contents) == len(stored), \
            (address, inbox, len(contents), len(stored))
        assert inbox["bytes"] == want_bytes, (address, inbox, want_bytes)
        # Each stored message is what was sent plus the trace headers.
        assert want_bytes > sum(len(x) for x in contents), address
        for name in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
            assert name in boxes and boxes[name]["messages"] == 0, \
                (name, boxes)
        print("  %s: INBOX %d messages, %d bytes" % (
            address, inbox["messages"], inbox["bytes"]))


if __name__ == "__main__":
    run_tests(Cluster(base_port=27710, script_vars={
        "MC_RETRY_BASE_MS": "500", "MC_RETRY_MAX_MS": "2000"}), [
        ("setup: domain, accounts, MX listening", setup),
        ("smtplib messages stored byte-identical",
         test_smtplib_byte_identical),
        ("the relay's Received header", test_received_header),
        ("swaks plain and STARTTLS", test_swaks),
        ("STARTTLS with the relay's certificate verified",
         test_smtplib_starttls_certificate),
        ("smtp-source 20 messages, 4 sessions, 10 KiB",
         test_smtp_source),
        ("smtp-source 100 messages, 10 sessions", test_smtp_source_bulk),
        ("mailctl account show counts INBOX", test_account_show),
    ])
