"""Peers and helpers for the egress tests (test_egress*.py), all on
127.0.0.1 inside the test process:

- FakeDns: a UDP DNS server (answers built with dnspython, Debian's
  python3-dnspython, which python3-dkim already needs) that the relay asks
  through `dns_servers`: MX, A, AAAA and TXT records the test sets, NXDOMAIN
  for names it does not know, SERVFAIL for names it is told to fail.
- Smarthost: an SMTP server with aiosmtpd (Debian's python3-aiosmtpd):
  STARTTLS with a test certificate, AUTH PLAIN/LOGIN required after TLS,
  each message kept with its envelope and the login used; it can answer
  DATA with a 4xx or 5xx instead ("mode").
- egress_setup: stops relay-1, adds the test's relay settings (dns_servers,
  smarthost_tls_ca_file) to its config and starts it again; egress_send
  hands a message to relay-1's egress listener as a mailbox node does.
- wait_queue_rcpt, queue_json: `mailctl queue list/show --json`.

Not a test module itself (ctest runs test_egress.py, test_egress_retry.py
and test_egress_submission.py).
"""

import json
import os
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from harness import log, wait_port, wait_until


# ---- DNS ----

class FakeDns:
    """records: {name: {"MX": ["10 mx.example."], "A": ["127.0.0.1"], ...}}
    (names lower-case without the trailing dot). Unknown names get
    NXDOMAIN; a known name without the asked type an empty NOERROR."""

    def __init__(self, port):
        self.port = port
        self.records = {}
        self.servfail = set()
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.running = True
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def set(self, name, rdtype, values):
        with self.lock:
            self.records.setdefault(name.lower().rstrip("."), {})[rdtype] = \
                list(values)

    def drop(self, name):
        with self.lock:
            self.records.pop(name.lower().rstrip("."), None)

    def answer(self, query):
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        for q in query.question:
            name = q.name.to_text().lower().rstrip(".")
            rdtype = dns.rdatatype.to_text(q.rdtype)
            with self.lock:
                self.queries.append((name, rdtype))
                if name in self.servfail:
                    resp.set_rcode(dns.rcode.SERVFAIL)
                    continue
                recs = self.records.get(name)
                if recs is None:
                    resp.set_rcode(dns.rcode.NXDOMAIN)
                    continue
                values = recs.get(rdtype, [])
            if values:
                if rdtype == "TXT":
                    values = ['"%s"' % v for v in values]
                resp.answer.append(dns.rrset.from_text_list(
                    q.name, 60, dns.rdataclass.IN, q.rdtype, values))
        return resp

    def serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
                self.sock.sendto(self.answer(query).to_wire(), peer)
            except Exception as e:  # a bad query: no answer, as a server
                log("fake dns: %r" % e)

    def stop(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()


# ---- TLS ----

def make_cert(folder, names):
    """A self-signed certificate for names (DNS names and IP addresses):
    (cert path, key path), with openssl."""
    cert = os.path.join(folder, "smarthost.crt")
    key = os.path.join(folder, "smarthost.key")
    san = ",".join(("IP:%s" % n) if n[0].isdigit() or ":" in n
                   else ("DNS:%s" % n) for n in names)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=%s" % names[0],
                    "-addext", "subjectAltName=" + san],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return cert, key


# ---- the smarthost ----

class SmarthostHandler:
    def __init__(self, host):
        self.host = host

    async def handle_DATA(self, server, session, envelope):
        h = self.host
        with h.lock:
            mode = h.mode
            if mode == "ok":
                h.messages.append({
                    "from": envelope.mail_from,
                    "rcpts": list(envelope.rcpt_tos),
                    "data": envelope.original_content or envelope.content,
                    "login": h.logins.get(id(session)),
                    "tls": session.ssl is not None,
                    "peer": session.peer[0] if session.peer else None,
                    "peer_port": session.peer[1] if session.peer else None,
                })
            else:
                h.refused += 1
        if mode == "tempfail":
            return "451 4.3.0 smarthost busy, try later"
        if mode == "permfail":
            return "550 5.7.1 smarthost refuses this message"
        return "250 2.0.0 accepted by the smarthost"


class Smarthost:
    """aiosmtpd on 127.0.0.1:port. With user/password: AUTH required (only
    after STARTTLS). mode: "ok", "tempfail" (451 to DATA) or "permfail"
    (550 to DATA)."""

    def __init__(self, port, cert, key, user=None, password=None,
                 host="127.0.0.1"):
        self.port = port
        self.user = user
        self.password = password
        self.mode = "ok"
        self.messages = []
        self.refused = 0
        self.logins = {}
        self.auth_failures = 0
        self.auth_ok = 0
        self.lock = threading.Lock()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        kwargs = {"tls_context": ctx, "require_starttls": True}
        if user is not None:
            kwargs.update(auth_required=True, auth_require_tls=True,
                          authenticator=self.authenticate)
        self.controller = Controller(SmarthostHandler(self), hostname=host,
                                     port=port, **kwargs)
        self.controller.start()
        wait_port(host, port)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and
              auth_data.login.decode() == self.user and
              auth_data.password.decode() == self.password)
        with self.lock:
            if ok:
                self.logins[id(session)] = auth_data.login.decode()
                self.auth_ok += 1
            else:
                self.auth_failures += 1
        return AuthResult(success=ok)

    def received(self):
        with self.lock:
            return list(self.messages)

    def wait(self, count, timeout=30):
        return wait_until(lambda: len(self.received()) >= count and
                          self.received(), timeout, 0.1,
                          "%d messages at the smarthost on port %d"
                          % (count, self.port))

    def stop(self):
        self.controller.stop()


class Sink(Smarthost):
    """An MX: plain SMTP on port (STARTTLS offered), no AUTH."""

    def __init__(self, port, cert, key, host="127.0.0.1"):
        self.port = port
        self.user = None
        self.mode = "ok"
        self.messages = []
        self.refused = 0
        self.logins = {}
        self.auth_failures = 0
        self.lock = threading.Lock()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.controller = Controller(SmarthostHandler(self), hostname=host,
                                     port=port, tls_context=ctx)
        self.controller.start()
        wait_port(host, port)


# ---- the cluster's relay ----

def egress_setup(cluster, lines, name="relay-1"):
    """Restart the relay with extra config lines (the test's DNS server,
    its smarthost CA): daemons read their config at start only."""
    cluster.cluster("stop-daemon", name)
    path = cluster.env["MC_%s_CONFIG" % name.upper().replace("-", "_")]
    with open(path, "a") as f:
        f.write("# egress test settings\n")
        for line in lines:
            f.write(line + "\n")
    cluster.cluster("start-daemon", name)
    host, port = egress_address(cluster, name)
    wait_port(host, port)


def egress_address(cluster, name="relay-1"):
    host, port = cluster.env["MC_%s_EGRESS" % name.upper().replace(
        "-", "_")].rsplit(":", 1)
    return host, int(port)


def egress_send(cluster, sender, rcpts, data, name="relay-1"):
    """Hand a message to the relay's egress listener (as a mailbox node's
    submission does); every recipient must be accepted. Returns the queue
    id from the 250 reply."""
    host, port = egress_address(cluster, name)
    s = smtplib.SMTP(host, port, local_hostname="node-1.cluster.test",
                     timeout=30)
    try:
        s.ehlo()
        s.mail(sender)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = s.data(data)
        assert code == 250, (code, text)
        return text.decode().rsplit(" ", 1)[-1]
    finally:
        s.quit()


def queue_json(cluster):
    """The relay's queue as mailctl queue list --json gives it."""
    return cluster.ok("queue", "list")["messages"]


def queue_show(cluster, qid):
    code, out, err = cluster.mailctl("--json", "queue", "show", qid)
    if code != 0:
        return None
    return json.loads(out)["message"]


def wait_queue_gone(cluster, qid, timeout=30):
    wait_until(lambda: qid not in [m["id"] for m in queue_json(cluster)],
               timeout, 0.2, "message %s to leave the queue" % qid)


def wait_rcpt_error(cluster, qid, timeout=30, attempts=1):
    """Wait until the queued message's first recipient has a last_error
    after at least attempts attempts; returns that recipient (dict)."""
    def check():
        m = queue_show(cluster, qid)
        if m is None:
            return None
        r = m["recipients"][0]
        return r if r["attempts"] >= attempts and r["last_error"] else None
    return wait_until(check, timeout, 0.2,
                      "a last error for %s after %d attempts" % (qid, attempts))


def message(sender, to, subject, body="Hello from the egress test.\r\n",
            msgid=None):
    msgid = msgid or "<%s.%d@%s>" % (subject.replace(" ", "-"),
                                    int(time.time() * 1000),
                                    sender.split("@")[1])
    return ("From: Sender <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Date: Thu, 04 Dec 2025 10:00:00 +0000\r\nMessage-ID: %s\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n%s"
            % (sender, to, subject, msgid, body)).encode()


def tempdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)
