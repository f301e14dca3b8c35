#!/usr/bin/python3
"""DKIM signatures made by lib/dkim, checked by an independent verifier.

lib/dkim_sign_tool (a thin command-line front end to lib/dkim) makes RSA
and Ed25519 keys and signs messages; dkimpy (Debian's python3-dkim)
verifies every signature, with a dnsfunc that answers from the TXT
records the tool printed (no DNS, no network). Keys made by the openssl
command (PKCS#1 RSA, PKCS#8 Ed25519) are signed with too, and the p=
values the tool derives are compared with openssl's. Messages: plain,
LF line ends, long folded fields, 8-bit header and body, trailing empty
lines, no body at all, an empty body, no final newline, duplicated and
List-* fields, MIME multipart, dot lines. Each is verified as the relay
puts it on the wire (bare LF -> CRLF, a last partial line ended, as
lib/smtp_client does). Then what must fail: a From added on top (From
is over-signed), a changed body or Subject, a message with no From or
two; and what must not: an unsigned field added.

Usage: test_dkim_verify.py PATH/TO/dkim_sign_tool
Needs python3-dkim and openssl. Prints "N passed, N failed".
"""
import base64
import os
import re
import subprocess
import sys
import tempfile

import dkim

TOOL = sys.argv[1] if len(sys.argv) > 1 else "dkim_sign_tool"
DOMAIN = "example.com"
PASSED = 0
FAILED = 0

# The zone the verifier sees: "<selector>._domainkey.example.com." -> TXT.
RECORDS = {}


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL: %s" % what, flush=True)


def dnsfunc(name, timeout=5):
    return RECORDS.get(name)


def tool(*args, data=None):
    return subprocess.run([TOOL] + list(args), input=data,
                          capture_output=True, timeout=60)


def wire(msg):
    """The message as lib/smtp_client sends it (before dot-stuffing)."""
    out = bytearray()
    cr = mid = False
    for c in msg:
        if c == 0x0A and not cr:
            out += b"\r"
        out.append(c)
        mid = c != 0x0A
        cr = c == 0x0D
    if mid:
        out += b"\n" if cr else b"\r\n"
    return bytes(out)


def verify(signed, idx):
    """dkimpy's verdict on signature idx of signed (False on an error);
    its reason for a failure in WHY[0], for the FAIL line."""
    WHY[0] = ""
    try:
        d = dkim.DKIM(signed, logger=None)
        ok = d.verify(idx=idx, dnsfunc=dnsfunc)
        if not ok:
            WHY[0] = "(dkimpy: signature did not verify)"
        return ok
    except Exception as e:  # dkimpy raises on malformed input
        WHY[0] = "(dkimpy: %r)" % e
        return False


WHY = [""]


def add_key(work, selector, alg, bits=None):
    """Make a key with the tool; publish its record. Returns the key file."""
    path = os.path.join(work, selector + ".pem")
    args = ["keygen", alg] + ([str(bits)] if bits else []) + [path]
    r = tool(*args)
    check(r.returncode == 0, "keygen %s: %s" % (alg, r.stderr))
    record = r.stdout.decode().strip()
    check(record.startswith("v=DKIM1; k=%s; p=" % alg),
          "record for %s: %s" % (alg, record))
    check(oct(os.stat(path).st_mode & 0o777) == "0o600",
          "key file %s is private" % path)
    RECORDS[("%s._domainkey.%s." % (selector, DOMAIN)).encode()] = \
        record.encode()
    return path


def add_openssl_key(work, selector, alg):
    """Make a key with openssl; check the tool's p= against openssl's."""
    path = os.path.join(work, selector + ".pem")
    if alg == "rsa":
        cmd = ["openssl", "genrsa", "-traditional", "-out", path, "2048"]
    else:
        cmd = ["openssl", "genpkey", "-algorithm", "ed25519", "-out", path]
    subprocess.run(cmd, check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout",
                          "-outform", "DER"], check=True,
                         capture_output=True).stdout
    # RSA: p= is the whole SubjectPublicKeyInfo; Ed25519: the raw key,
    # the last 32 octets of it (RFC 8463 4.2).
    expect = base64.b64encode(der if alg == "rsa" else der[-32:]).decode()
    r = tool("pubkey", alg, path)
    got = r.stdout.decode().strip()
    check(r.returncode == 0 and got == expect,
          "pubkey %s of an openssl key: %r != %r" % (alg, got, expect))
    if alg == "rsa":
        check(open(path).read().startswith("-----BEGIN RSA PRIVATE KEY"),
              "openssl wrote a PKCS#1 key")
    RECORDS[("%s._domainkey.%s." % (selector, DOMAIN)).encode()] = \
        ("v=DKIM1; k=%s; p=%s" % (alg, got)).encode()
    return path


def sign(msg, keys, *opts):
    """(returncode, signature fields, stderr) for msg signed with keys,
    [(selector, alg, path)]."""
    specs = ["%s:%s:%s:%s" % (DOMAIN, s, a, p) for s, a, p in keys]
    r = tool("sign", *opts, *specs, data=msg)
    if r.returncode != 0:
        return r.returncode, None, r.stderr.decode()
    out = r.stdout
    check(out.endswith(msg), "the message follows the signatures unchanged")
    return 0, out[:len(out) - len(msg)], r.stderr.decode()


def fields_ok(sigs, n):
    """n DKIM-Signature fields, lines CRLF-ended, at most 78 octets."""
    text = sigs.decode("ascii")
    count = len(re.findall(r"^DKIM-Signature:", text, re.M))
    lines = text.split("\r\n")
    return (count == n and lines[-1] == ""
            and all(len(line) <= 78 and "\n" not in line
                    for line in lines[:-1])
            and all(line[:1] in (" ", "\t") or
                    line.startswith("DKIM-Signature:")
                    for line in lines[:-1]))


MESSAGES = {
    "plain": (
        b"Received: from a.example.net by mx.example.com; "
        b"Mon, 3 Jun 2024 10:15:42 +0200\r\n"
        b"From: Alice Example <alice@example.com>\r\n"
        b"To: Bob <bob@example.org>\r\n"
        b"Subject: Meeting notes\r\n"
        b"Date: Mon, 3 Jun 2024 10:15:42 +0200\r\n"
        b"Message-ID: <5f3c1d2e@example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=UTF-8\r\n"
        b"\r\n"
        b"Hi Bob,\r\n\r\nsee you there.\r\n\r\nAlice\r\n"),
    "lf": (
        b"From: alice@example.com\n"
        b"To: bob@example.org\n"
        b"Subject: LF only\n"
        b"Date: Mon, 3 Jun 2024 10:15:42 +0200\n"
        b"\n"
        b"line one\nline two  \n\n"),
    "folded": (
        b"From: \"Alice Example\"\r\n <alice@example.com>\r\n"
        b"To: a@example.org,\r\n\tb@example.org,\r\n    c@example.org, "
        b"d@example.org, e@example.org, f@example.org, g@example.org\r\n"
        b"Subject: a very long subject line that goes on and on and on and"
        b" on\r\n and on across\r\n\tseveral lines   with \t odd   blanks"
        b"   \r\n"
        b"References: <1@example.com>\r\n <2@example.com>\r\n"
        b" <3@example.com>\r\n"
        b"In-Reply-To: <3@example.com>\r\n"
        b"Date: Mon, 3 Jun 2024 10:15:42 +0200\r\n"
        b"\r\n"
        b"body\r\n"),
    "8bit": (
        "From: J\u00f6rg <joerg@example.com>\r\n"
        "To: b@example.org\r\n"
        "Subject: Gr\u00fc\u00dfe aus K\u00f6ln\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Gr\u00fc\u00dfe, \u00e7a va? \u65e5\u672c\u8a9e\r\n"
    ).encode("utf-8") + b"latin-1: \xe9\xe8\xe0\r\n",
    "trailing-empty-lines": (
        b"From: a@example.com\r\nSubject: t\r\n\r\n"
        b"text\r\n\r\n\r\n  \r\n\t\r\n\r\n"),
    "no-body": b"From: a@example.com\r\nSubject: header only\r\n",
    "no-body-no-newline": b"From: a@example.com\r\nSubject: x",
    "empty-body": b"From: a@example.com\r\nSubject: empty\r\n\r\n",
    "no-final-newline": (
        b"From: a@example.com\r\nSubject: n\r\n\r\nlast line  "),
    "duplicates": (
        b"To: one@example.org\r\n"
        b"fROM: a@example.com\r\n"
        b"Cc: c1@example.org\r\n"
        b"to: two@example.org\r\n"
        b"CC: c2@example.org\r\n"
        b"List-Id: Example list <list.example.com>\r\n"
        b"List-Unsubscribe: <https://example.com/u/1>, "
        b"<mailto:u@example.com>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        b"DKIM-Signature: v=1; a=rsa-sha256; d=old.example; s=x; "
        b"h=from; bh=x; b=x\r\n"
        b"X-Mailer: test\r\n"
        b"\r\n"
        b"body\r\n"),
    "multipart": (
        b"From: a@example.com\r\n"
        b"To: b@example.org\r\n"
        b"Subject: parts\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
        b"\r\n"
        b"preamble\r\n"
        b"--XX\r\n"
        b"Content-Type: text/plain\r\n\r\n"
        b"part one\r\n"
        b"--XX\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        b"AAECAwQFBgcICQ==\r\n"
        b"--XX--\r\n"),
    "dots-and-long-lines": (
        b"From: a@example.com\nSubject: dots\n\n"
        b".\n..\n.hidden\n" + b"x" * 900 + b"\n" + b" \t " * 100 + b"y\n"),
}

RFC8463_MESSAGE = (
    b"From: Joe SixPack <joe@football.example.com>\r\n"
    b"To: Suzie Q <suzie@shopping.example.net>\r\n"
    b"Subject: Is dinner ready?\r\n"
    b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    b"\r\n"
    b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n")
RFC8463_KEY = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n")
RFC8463_B = ("/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus"
             "Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==")


def test_messages(keys):
    for name, msg in MESSAGES.items():
        rc, sigs, err = sign(msg, keys)
        check(rc == 0, "%s: signed (%s)" % (name, err))
        if rc != 0:
            continue
        check(fields_ok(sigs, len(keys)), "%s: well-formed fields" % name)
        signed = wire(sigs + msg)
        for i, (sel, alg, _) in enumerate(keys):
            check(verify(signed, i), "%s: %s signature (%s) verifies %s"
                  % (name, alg, sel, WHY[0]))
        # From is over-signed: h= lists it once more than it occurs.
        h = re.search(rb"h=([^;]*);", sigs).group(1)
        names = [n.strip().lower() for n in re.sub(rb"\s", b"", h).split(b":")]
        check(names.count(b"from") == 2 and names[-1] == b"from",
              "%s: From over-signed in h=%r" % (name, h))


def test_tampering(keys):
    msg = MESSAGES["plain"]
    rc, sigs, err = sign(msg, keys)
    check(rc == 0, "plain signed (%s)" % err)
    if rc != 0:
        return
    cases = [
        ("a From added on top",
         b"From: Mallory <m@evil.example>\r\n" + msg, False),
        ("a From added below",
         msg.replace(b"\r\n\r\n", b"\r\nFrom: m@evil.example\r\n\r\n", 1),
         False),
        ("the body changed", msg.replace(b"see you", b"meet me"), False),
        ("the Subject changed",
         msg.replace(b"Meeting notes", b"Meeting  notes!"), False),
        ("an unsigned field added", b"X-Spam-Score: 0.1\r\n" + msg, True),
        ("blanks changed (relaxed)",
         msg.replace(b"Subject: Meeting notes",
                     b"Subject:   Meeting \t notes  ")
            .replace(b"see you there.", b"see  you\tthere.   "), True),
    ]
    for what, changed, ok in cases:
        signed = sigs + changed
        for i, (sel, alg, _) in enumerate(keys):
            check(verify(signed, i) == ok, "%s: %s signature %s %s"
                  % (what, alg, "verifies" if ok else "fails", WHY[0]))


def test_refusals(keys):
    for what, msg, text in [
            ("no From", b"To: b@example.org\r\n\r\nx\r\n", "no From"),
            ("two From", b"From: a@example.com\r\nFrom: b@example.com\r\n"
             b"\r\nx\r\n", "more than one From"),
            ("empty message", b"", "no From")]:
        rc, sigs, err = sign(msg, keys)
        check(rc == 1 and text in err, "%s refused: rc=%d %s"
              % (what, rc, err.strip()))
    rc, _, err = sign(MESSAGES["plain"], [("x", "ed25519", keys[0][2])])
    check(rc == 1 and "not an Ed25519" in err,
          "an RSA key for ed25519 refused: %s" % err.strip())


def test_options(keys):
    msg = MESSAGES["plain"]
    rc, sigs, err = sign(msg, keys, "-x", "3600", "-i",
                         "alice@mail.example.com", "-q", "-l",
                         "from : to : subject : date : reply-to : from")
    check(rc == 0, "signed with options (%s)" % err)
    if rc != 0:
        return
    text = re.sub(r"\s", "", sigs.decode())
    check("i=alice@mail.example.com;" in text and "q=dns/txt;" in text
          and re.search(r"x=\d+;", text) is not None,
          "options in the tags: %s" % text)
    for i, (sel, alg, _) in enumerate(keys):
        check(verify(wire(sigs + msg), i),
              "options: %s signature verifies %s" % (alg, WHY[0]))


def test_rfc8463(work):
    """RFC 8463 A.3 through the tool: the published b=, and dkimpy agrees."""
    path = os.path.join(work, "brisbane.pem")
    with open(path, "w") as f:
        f.write(RFC8463_KEY)
    RECORDS[b"brisbane._domainkey.football.example.com."] = (
        b"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    r = tool("sign", "-t", "1528637909", "-i", "@football.example.com",
             "-q", "-l",
             "from : to : subject : date : message-id : from : subject : date",
             "football.example.com:brisbane:ed25519:" + path,
             data=RFC8463_MESSAGE)
    check(r.returncode == 0, "RFC 8463 message signed (%s)" % r.stderr)
    text = re.sub(rb"\s", b"", r.stdout.split(b"\r\nFrom:")[0]).decode()
    check(text.endswith("b=" + RFC8463_B), "RFC 8463 b= reproduced: " + text)
    check(verify(r.stdout, 0),
          "RFC 8463 signature verifies with dkimpy " + WHY[0])


def main():
    with tempfile.TemporaryDirectory(prefix="dkim.") as work:
        rsa = add_key(work, "rsa2048", "rsa")
        ed = add_key(work, "ed", "ed25519")
        rsa3072 = add_key(work, "rsa3072", "rsa", 3072)
        orsa = add_openssl_key(work, "orsa", "rsa")
        oed = add_openssl_key(work, "oed", "ed25519")
        both = [("rsa2048", "rsa", rsa), ("ed", "ed25519", ed)]
        test_messages(both)
        test_messages([("ed", "ed25519", ed), ("rsa3072", "rsa", rsa3072),
                       ("orsa", "rsa", orsa), ("oed", "ed25519", oed)])
        test_tampering(both)
        test_refusals(both)
        test_options(both)
        test_rfc8463(work)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
