"""Real IMAP clients against a mailbox node (issue: IMAP, "What it must
show", parts 4 and 5).

mbsync (isync): INBOX synced to a local Maildir over IMAPS with only the
node's certificate trusted (CertificateFile, SystemCertificates no) and
the password from a file (PassCmd "cat FILE"); the local copies are the
stored messages byte for byte (mbsync writes LF line ends). Then, locally:
a new message, a flag, a message marked deleted; on the server: flags set
over IMAP; the second sync carries all of it both ways (APPEND by mbsync,
STORE, EXPUNGE), and a third sync changes nothing.

mutt in batch mode: a message sent with `mutt -s` (the sendmail command
is a stub that keeps the message) has its copy saved to the IMAP Sent
folder (record over IMAPS, no terminal needed); mutt in a pseudo-terminal
(script -qc) opens INBOX over IMAPS and over STARTTLS and pipes a
message to a file, byte-identical to the stored one. Passwords sit in
the muttrc (0600), never on a command line. Every run is bounded by
timeout.

Ports: base 28610 (node-1 IMAP 28681, IMAPS 28691)."""

import atexit
import glob
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

from harness import (Cluster, Imap, add_accounts, mx_send, run_tests,
                     strip_trace, wait_port)

DOMAIN = "clients.test"
SYNC = "sync@" + DOMAIN
MUTT = "mutt@" + DOMAIN
PASSWORDS = {SYNC: "sync pass 1", MUTT: "mutt-pass-1"}
SENDER = "sender@example.net"
RUN_TIMEOUT = 90  # seconds for one client run
work = {}


def setup(c):
    for tool in ("mbsync", "mutt", "script", "timeout"):
        assert shutil.which(tool), "%s is not installed (scripts/deps)" % tool
    c.ok("domain", "add", DOMAIN)
    add_accounts(c, PASSWORDS)
    for ep in (c.mx(), c.imap(), c.imaps()):
        wait_port(*ep, timeout=20)
    work["dir"] = tempfile.mkdtemp(prefix="imap-clients.")
    atexit.register(shutil.rmtree, work["dir"], ignore_errors=True)
    for address in PASSWORDS:
        for i in range(5 if address == SYNC else 2):
            mx_send(c, SENDER, [address], message(address, i))
    c.wait_mailbox(SYNC, 5, timeout=30)
    c.wait_mailbox(MUTT, 2, timeout=30)


def message(address, i, body=None):
    body = body or (b"Message %d for %s.\r\n" % (i, address.encode()) +
                    b"A line with trailing spaces   \r\n" +
                    b"\r\n.a dot line\r\n" +
                    b"x" * 500 + b"\r\n")
    return (b"From: Sender <%s>\r\nTo: <%s>\r\nSubject: client test %d\r\n"
            b"Date: Thu, 03 Dec 2026 08:00:0%d +0000\r\n"
            b"Message-ID: <client-%d-%s>\r\n\r\n" % (
                SENDER.encode(), address.encode(), i, i % 10, i,
                address.encode())) + body


def secret_file(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def run(cmd, timeout=RUN_TIMEOUT, env=None, input=None):
    """Run a client with a time bound; returns (exit code, output)."""
    p = subprocess.run(["timeout", "-k", "5", str(timeout)] + cmd,
                       input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env,
                       stdin=None if input is not None else subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def session(c, address):
    im = Imap(*c.imaps(), context=c.imap_context())
    im.login(address, PASSWORDS[address])
    return im


def server_messages(c, address, mailbox="INBOX"):
    """{uid: (flags set without \\Recent, BODY[])} over IMAP."""
    im = session(c, address)
    try:
        im.select(mailbox, examine=True)
        out = {}
        for _, f in im.fetch("1:*", "(UID FLAGS BODY.PEEK[])"):
            out[int(f["UID"])] = (set(f["FLAGS"]) - {b"\\Recent"},
                                  f["BODY[]"])
        return out
    finally:
        im.close()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def lf(data):
    return data.replace(b"\r\n", b"\n")


def without_tuid(data):
    """mbsync adds an X-TUID header field to the messages it copies (to
    find them again after an interrupted run): not part of the message."""
    return re.sub(br"(?m)^X-TUID: [^\r\n]*\r?\n", b"", data)


# ---- mbsync ----

def isync_version():
    code, out = run(["mbsync", "--version"], timeout=10)
    m = re.search(r"isync (\d+)\.(\d+)", out)
    assert code == 0 and m, out
    return int(m.group(1)), int(m.group(2))


def mbsync_config(c):
    d = work["dir"]
    maildir = os.path.join(d, "Maildir")
    os.makedirs(maildir, exist_ok=True)
    pwfile = secret_file(os.path.join(d, "sync.password"), PASSWORDS[SYNC])
    # isync matches the certificate against DNS names only (not IP
    # addresses): connect as localhost, a name of the node's certificate
    # (it resolves to 127.0.0.1, where the node listens, and maybe ::1
    # first, which mbsync gets refused on and moves past).
    _, port = c.imaps()
    host = "localhost"
    # isync 1.5 renamed SSLType to TLSType; Debian 12 ships 1.4.
    tls_key = "TLSType" if isync_version() >= (1, 5) else "SSLType"
    rc = os.path.join(d, "mbsyncrc")
    with open(rc, "w") as f:
        f.write("""\
IMAPAccount node
Host %(host)s
Port %(port)d
User %(user)s
PassCmd "cat %(pwfile)s"
%(tls_key)s IMAPS
CertificateFile %(cert)s
SystemCertificates no
AuthMechs LOGIN
Timeout 30

IMAPStore node-remote
Account node

MaildirStore local
Path %(maildir)s/
Inbox %(maildir)s/INBOX
SubFolders Verbatim

Channel node
Far :node-remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
Sync All
SyncState *
CopyArrivalDate yes
""" % {"host": host, "port": port, "user": SYNC, "pwfile": pwfile,
       "tls_key": tls_key, "cert": c.imap_cert(), "maildir": maildir})
    work["rc"] = rc
    work["inbox"] = os.path.join(maildir, "INBOX")


def mbsync(c):
    code, out = run(["mbsync", "-c", work["rc"], "-V", "node"])
    assert code == 0, "mbsync exit %d:\n%s" % (code, out[-4000:])
    return out


def local_messages():
    """{path: (maildir flags, bytes without X-TUID)} of the local INBOX
    (new and cur)."""
    out = {}
    for sub in ("new", "cur"):
        for path in glob.glob(os.path.join(work["inbox"], sub, "*")):
            flags = path.rsplit(":2,", 1)[1] if ":2," in path else ""
            with open(path, "rb") as f:
                out[path] = (flags, without_tuid(f.read()))
    return out


def test_mbsync_pull(c):
    mbsync_config(c)
    t0 = time.monotonic()
    out = mbsync(c)
    took = time.monotonic() - t0
    stored = c.mailbox(SYNC)
    blobs = [c.blob(m["sha256"]) for m in stored]
    local = local_messages()
    assert len(local) == len(stored) == 5, (len(local), out[-2000:])
    # Byte for byte, with LF line ends (Maildir is a Unix format), but
    # for mbsync's X-TUID.
    want = {sha(lf(b)): lf(b) for b in blobs}
    for path, (_, data) in sorted(local.items()):
        assert sha(data) in want, "%s is none of the stored messages:\n" \
            "%r\nstored (LF):\n%s" % (path, data[:600], "\n".join(
                repr(w[:600]) for w in want.values()))
    for _, data in local.values():
        assert b"\r" not in data, "CR left in a Maildir file"
    print("  mbsync pulled %d messages in %.2fs" % (len(local), took))


def set_local_flags(path, flags):
    """Rename a Maildir file to cur/ with flags (sorted letters)."""
    base = os.path.basename(path).split(":2,")[0]
    new = os.path.join(work["inbox"], "cur",
                       base + ":2," + "".join(sorted(set(flags))))
    os.rename(path, new)
    return new


def test_mbsync_both_ways(c):
    """Local: a new message, \\Flagged on one, T (deleted) on another.
    Server: \\Seen \\Answered on a third. After a sync each side has the
    other's changes; a third sync is a no-op."""
    server = server_messages(c, SYNC)
    local = local_messages()
    by_content = {sha(lf(body)): uid for uid, (_, body) in server.items()}
    path_of = {by_content[sha(data)]: p for p, (_, data) in local.items()}
    uids = sorted(server)
    flag_uid, trash_uid, seen_uid = uids[0], uids[1], uids[2]
    # Local changes.
    set_local_flags(path_of[flag_uid], local[path_of[flag_uid]][0] + "F")
    set_local_flags(path_of[trash_uid], local[path_of[trash_uid]][0] + "T")
    new_content = lf(message(SYNC, 9, b"Written locally.\r\nBye.\r\n"))
    new_path = os.path.join(work["inbox"], "new",
                            "%d.M1P%d.mctest" % (time.time(), os.getpid()))
    with open(new_path, "wb") as f:
        f.write(new_content)
    # Server change.
    im = session(c, SYNC)
    try:
        im.select("INBOX")
        im.ok("UID", "STORE", str(seen_uid), "+FLAGS", "(\\Seen \\Answered)")
    finally:
        im.close()
    mbsync(c)
    server = server_messages(c, SYNC)
    assert trash_uid not in server, "the locally deleted message is still " \
        "on the server: %r" % sorted(server)
    assert b"\\Flagged" in server[flag_uid][0], server[flag_uid]
    added = [u for u in server if u not in uids]
    assert len(added) == 1, (sorted(server), uids)
    body = without_tuid(server[added[0]][1])
    assert body == new_content.replace(b"\n", b"\r\n"), \
        "the uploaded message differs:\n%r\n%r" % (body, new_content)
    local = local_messages()
    assert len(local) == len(server) == 5, (len(local), len(server))
    seen_local = [fl for p, (fl, data) in local.items()
                  if sha(data) == sha(lf(server[seen_uid][1]))]
    assert seen_local and set("RS") <= set(seen_local[0]), seen_local
    # Idempotent: nothing changes any more.
    before = (server_messages(c, SYNC), local_messages())
    mbsync(c)
    after = (server_messages(c, SYNC), local_messages())
    assert before == after, "a third sync changed something"


# ---- mutt ----

def muttrc(c, address, url, extra=""):
    d = work["dir"]
    sendmail = os.path.join(d, "sendmail-stub")
    with open(sendmail, "w") as f:
        f.write("#!/bin/sh\ncat > %s/sent-by-mutt.eml\n" % d)
    os.chmod(sendmail, stat.S_IRWXU)
    path = os.path.join(d, "muttrc-" + address.split("@")[0])
    secret_file(path, """\
set folder="%(url)s"
set spoolfile="+INBOX"
set imap_user="%(user)s"
set imap_pass="%(password)s"
set imap_authenticators="login"
set ssl_ca_certificates_file="%(cert)s"
set certificate_file="%(dir)s/mutt-certificates"
set ssl_force_tls=yes
set ssl_starttls=yes
set ssl_verify_host=yes
set connect_timeout=20
set timeout=30
set header_cache=""
set message_cachedir=""
set from="%(user)s"
set use_from=yes
set realname="Mutt Test"
set sendmail="%(sendmail)s"
set record="+Sent"
set copy=yes
set move=no
set mark_old=no
set confirmappend=no
set confirmcreate=no
set pipe_decode=no
set wait_key=no
set quit=yes
set beep=no
set mail_check_stats=no
%(extra)s
""" % {"url": url, "user": address, "password": PASSWORDS[address],
       "cert": c.imap_cert(), "dir": d, "sendmail": sendmail,
       "extra": extra})
    return path


def mutt_env():
    env = dict(os.environ)
    env.update({"TERM": "vt100", "HOME": work["dir"], "LANG": "C.UTF-8",
                "COLUMNS": "120", "LINES": "40", "EDITOR": "/bin/true"})
    return env


def test_mutt_batch_send_record(c):
    """`mutt -s SUBJECT ADDRESS < body` without a terminal: the stub
    sendmail gets the message and mutt saves a copy to Sent over IMAPS."""
    host, port = c.imaps()
    rc = muttrc(c, MUTT, "imaps://%s@%s:%d/" % (
        MUTT.replace("@", "%40"), host, port))
    code, out = run(["mutt", "-n", "-F", rc, "-s", "mutt batch subject",
                     "friend@example.org"], env=mutt_env(),
                    input=b"Hello from mutt in batch mode.\n")
    assert code == 0, "mutt exit %d:\n%s" % (code, out[-3000:])
    with open(os.path.join(work["dir"], "sent-by-mutt.eml"), "rb") as f:
        sent = f.read()
    assert b"Subject: mutt batch subject" in sent, sent[:500]
    msgs = server_messages(c, MUTT, "Sent")
    assert len(msgs) == 1, "Sent holds %d messages:\n%s" % (len(msgs), out)
    (flags, body), = msgs.values()
    assert b"Subject: mutt batch subject\r\n" in body, body[:500]
    assert b"Hello from mutt in batch mode.\r\n" in body, body
    assert b"\\Seen" in flags, flags


def mutt_read(c, url, out_file, extra=""):
    """Open url's INBOX in mutt on a pseudo-terminal and pipe the first
    message to out_file; returns the terminal transcript."""
    rc = muttrc(c, MUTT, url, extra)
    push = "push '<first-entry><pipe-message>cat > %s<enter><quit>'" % out_file
    cmd = "mutt -n -F %s -f +INBOX -e \"%s\"" % (rc, push)
    code, out = run(["script", "-qec", cmd, "/dev/null"], env=mutt_env())
    assert code == 0, "mutt (in script) exit %d:\n%s" % (code, out[-3000:])
    return out


def test_mutt_read(c):
    """mutt reads INBOX over IMAPS and over STARTTLS: the piped message is
    the stored one (LF line ends), its subject shows in the index."""
    stored = c.mailbox(MUTT)
    first = c.blob(stored[0]["sha256"])
    host, port = c.imaps()
    cases = [("imaps", "imaps://%s@%s:%d/" % (MUTT.replace("@", "%40"),
                                              host, port))]
    host, port = c.imap()
    cases.append(("starttls", "imap://%s@%s:%d/" % (MUTT.replace("@", "%40"),
                                                    host, port)))
    for what, url in cases:
        out_file = os.path.join(work["dir"], "piped-%s.eml" % what)
        transcript = mutt_read(c, url, out_file)
        assert os.path.exists(out_file), \
            "%s: nothing piped; terminal:\n%s" % (what, transcript[-3000:])
        with open(out_file, "rb") as f:
            got = f.read()
        assert got == lf(first), "%s: piped message differs:\n%r\n%r" % (
            what, got[:400], lf(first)[:400])
        assert b"client test 0" in got and "client test" in transcript, what
        _, _, rest = strip_trace(got.replace(b"\n", b"\r\n"))
        assert rest == message(MUTT, 0), what
    # Reading with pipe-message does not mark anything read or deleted.
    for flags, _ in server_messages(c, MUTT).values():
        assert not flags & {b"\\Deleted", b"\\Seen"}, flags


if __name__ == "__main__":
    run_tests(Cluster(base_port=28610, script_vars={
        "MC_RETRY_BASE_MS": "300", "MC_RETRY_MAX_MS": "1000"}), [
        ("setup: accounts, mail delivered, tools present", setup),
        ("mbsync pulls INBOX byte-identical", test_mbsync_pull),
        ("mbsync both ways: new message, flags, deletion",
         test_mbsync_both_ways),
        ("mutt batch send, copy saved to IMAP Sent",
         test_mutt_batch_send_record),
        ("mutt reads INBOX over IMAPS and STARTTLS", test_mutt_read),
    ])
