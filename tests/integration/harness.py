"""Shared plumbing for the integration tests (standard library only).

A Cluster starts a whole local cluster with deploy/local/cluster in a fresh
temporary folder on its own base port, reads DIR/cluster.env, runs mailctl
against it and reads the daemons' directory.json state files. It is always
torn down by `run_tests`, which also prints the final "N passed, N failed"
line and sets the exit status. Only PIDs recorded by the cluster script are
ever signalled, and only after checking their command line.

Mail helpers (for the inbound tests): the relays' MX and nodes' LMTP
addresses, SQL against the mailbox store (psql), blob bytes from the file
or S3 test store, a raw SMTP client, and strip_trace to take off the
Return-Path and Received headers the cluster adds to a delivered message.

IMAP helpers (for the IMAP tests): the nodes' IMAP and IMAPS addresses and
certificates, an SSL context trusting a node's certificate, Imap (a raw
client that shows every response line and response code, with literals,
for what imaplib hides or refuses to send), imap_parse for response data
(lists, strings, literals, NIL) and lmtp_deliver (LMTP straight to a node).

Environment: MC_BIN (build folder holding the binaries, set by ctest),
MC_RPC_POKE (path of the rpc_poke tool), MC_KEEP=1 keeps the folder of a
failed run for inspection. A sanitizer report (ASan, UBSan, LSan) in any
daemon log counts as one more failure.
"""

import collections
import glob
import hashlib
import json
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLUSTER = os.path.join(SOURCE_DIR, "deploy", "local", "cluster")
MC_BIN = os.environ.get("MC_BIN", os.path.join(SOURCE_DIR, "build"))


def log(msg):
    print(msg, flush=True)


class CommandError(AssertionError):
    pass


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Poll pred() until it returns a true value; return it, or raise
    AssertionError after timeout seconds (pred's last value in the text)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)"
                                 % (timeout, what, last))
        time.sleep(interval)


def pid_alive(pid):
    """True for a running process (zombies count as dead)."""
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % int(pid)) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError, ValueError):
        return False
    return state not in ("Z", "X")


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def parse_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("export ") or "='" not in line:
                continue
            key, val = line[len("export "):].split("=", 1)
            if val.startswith("'") and val.endswith("'"):
                env[key] = val[1:-1]
    return env


def var_of(name):
    return "MC_" + name.upper().replace("-", "_")


class Cluster:
    def __init__(self, base_port, nodes=1, relays=1, fault_injection=False,
                 tls=False, blob=None, script_vars=None):
        self.base_port = base_port
        self.nodes = nodes
        self.relays = relays
        self.fault_injection = fault_injection
        self.tls = tls  # `up --tls`: mutual TLS on the control plane
        self.blob_backend = blob  # `up --blob file|s3`; None: the default
        # Extra MC_* settings for the script, e.g. {"MC_RETRY_BASE_MS": "500"}.
        self.script_vars = dict(script_vars or {})
        self.dir = None
        self.env = {}
        self.account_ids = {}

    # ---- lifecycle ----

    def script_env(self):
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("MC_") or k.startswith("MAILCTL_"):
                del e[k]
        e["MC_BIN"] = MC_BIN
        e["MC_LOG_LEVEL"] = os.environ.get("MC_LOG_LEVEL", "debug")
        if self.fault_injection:
            e["MC_FAULT_INJECTION"] = "yes"
        e.update(self.script_vars)
        return e

    def cluster(self, *args, check=True, timeout=120):
        cmd = [CLUSTER] + list(args) + ["--dir", self.dir]
        p = subprocess.run(cmd, env=self.script_env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=timeout)
        if check and p.returncode != 0:
            raise CommandError("%s failed (exit %d):\n%s"
                               % (" ".join(args), p.returncode, p.stdout))
        self.reload_env()
        return p

    def clean_leftovers(self):
        """Stop a cluster an earlier, killed run of this module left on
        the same ports (the script checks each PID still is its daemon)."""
        pattern = os.path.join(tempfile.gettempdir(),
                               "mc-it-%d-*" % self.base_port)
        for old in glob.glob(pattern):
            if os.path.exists(os.path.join(old, "cluster.env")):
                log("stopping leftover cluster in %s" % old)
                subprocess.run([CLUSTER, "down", "--purge", "--dir", old],
                               env=self.script_env(), stdin=subprocess.DEVNULL,
                               timeout=120)

    def up(self):
        self.clean_leftovers()
        ports = [self.base_port, self.base_port + 1, self.base_port + 10]
        ports += [self.base_port + 20 + i for i in range(1, self.relays + 1)]
        ports += [self.base_port + 60 + i for i in range(1, self.relays + 1)]
        ports += [self.base_port + 40 + i for i in range(1, self.nodes + 1)]
        ports += [self.base_port + 70 + i for i in range(1, self.nodes + 1)]
        ports += [self.base_port + 80 + i for i in range(1, self.nodes + 1)]
        if self.blob_backend == "s3":
            ports.append(self.base_port + 30)
        for port in ports:
            if not port_free(port):
                raise AssertionError("port %d is in use: a cluster from an "
                                     "earlier run still up?" % port)
        self.dir = tempfile.mkdtemp(prefix="mc-it-%d-" % self.base_port)
        # Postgres runs as its own user and must reach DIR/pg.
        os.chmod(self.dir, 0o755)
        log("cluster dir %s, base port %d" % (self.dir, self.base_port))
        p = self.cluster("up", "--nodes", str(self.nodes), "--relays",
                         str(self.relays), "--base-port", str(self.base_port),
                         *(["--tls"] if self.tls else []),
                         *(["--blob", self.blob_backend]
                           if self.blob_backend else []))
        log(p.stdout.rstrip())

    def reload_env(self):
        path = os.path.join(self.dir, "cluster.env")
        if os.path.exists(path):
            self.env = parse_env(path)

    def down(self):
        """Stop everything; the folder stays (see purge)."""
        if self.dir is None:
            return
        try:
            self.cluster("down")
        except Exception as e:  # the script failed: stop what it recorded
            log("cluster down failed: %s" % e)
            self.kill_recorded()

    def purge(self):
        if self.dir is None:
            return
        try:
            self.cluster("down", "--purge")
        except Exception as e:
            log("cluster down --purge failed: %s" % e)
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    def sanitizer_reports(self):
        """Lines of AddressSanitizer/UBSan/LeakSanitizer reports in the
        daemons' logs (daemons built with -DMC_SANITIZE=ON)."""
        found = []
        for name in ["controller"] + self.members():
            try:
                text = self.read_log(name)
            except (OSError, KeyError):
                continue
            for line in text.splitlines():
                if ("Sanitizer" in line and "ERROR" in line) or \
                        "runtime error:" in line:
                    found.append("%s: %s" % (name, line.strip()))
        return found

    def kill_recorded(self):
        for name in self.members() + ["controller"]:
            pid = self.pid(name)
            cfg = self.env.get(var_of(name) + "_CONFIG", "")
            if pid and pid_alive(pid) and cfg and cfg in self.cmdline(pid):
                os.kill(pid, signal.SIGKILL)

    @staticmethod
    def cmdline(pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                return f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return ""

    # ---- members ----

    def node_names(self):
        return self.env.get("MC_NODES", "").split()

    def relay_names(self):
        return self.env.get("MC_RELAYS", "").split()

    def members(self):
        return self.node_names() + self.relay_names()

    def pid(self, name):
        v = self.env.get(var_of(name) + "_PID", "")
        return int(v) if v else 0

    def log_path(self, name):
        return self.env[var_of(name) + "_LOG"]

    def read_log(self, name):
        with open(self.log_path(name), errors="replace") as f:
            return f.read()

    def state_file(self, name):
        return os.path.join(self.env[var_of(name) + "_STATE_DIR"],
                            "directory.json")

    def directory(self, name):
        """The member's directory.json, or None when it has none yet."""
        try:
            with open(self.state_file(name)) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def tail_logs(self, lines=25):
        out = []
        for name in ["controller"] + self.members():
            try:
                text = self.read_log(name).splitlines()[-lines:]
            except (OSError, KeyError):
                continue
            out.append("---- %s\n%s" % (name, "\n".join(text)))
        return "\n".join(out)

    # ---- mailctl ----

    def mailctl(self, *args, input=None, url=None, token_file=None, timeout=60):
        """Run mailctl; returns (exit code, stdout, stderr)."""
        e = self.script_env()
        e["MAILCTL_URL"] = url or self.env["MAILCTL_URL"]
        e["MAILCTL_TOKEN_FILE"] = token_file or self.env["MAILCTL_TOKEN_FILE"]
        for k in ("MAILCTL_TLS_CA", "MAILCTL_TLS_CERT", "MAILCTL_TLS_KEY"):
            if self.env.get(k):  # set by `up --tls` only
                e[k] = self.env[k]
        if self.env.get("MAILCTL_RELAY_URL"):  # relay-1's admin socket
            e["MAILCTL_RELAY_URL"] = self.env["MAILCTL_RELAY_URL"]
        p = subprocess.run([self.env["MC_MAILCTL"]] + list(args), env=e,
                           input=input if input is not None else "",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args, input=None):
        """mailctl --json ARGS that must succeed; returns the parsed JSON."""
        code, out, err = self.mailctl("--json", *args, input=input)
        if code != 0:
            raise CommandError("mailctl %s: exit %d: %s %s"
                               % (" ".join(args), code, err.strip(), out.strip()))
        try:
            return json.loads(out)
        except ValueError:
            raise CommandError("mailctl %s: not JSON: %r" % (" ".join(args), out))

    def status(self):
        return self.ok("status")

    @staticmethod
    def status_nodes(st):
        return {n["name"]: n for n in st.get("nodes", [])}

    def applied(self):
        """(cluster version, {member: applied_version}) from mailctl status."""
        st = self.status()
        return (st["version"],
                {k: v.get("applied_version", 0)
                 for k, v in self.status_nodes(st).items()})

    def wait_applied(self, version, timeout, names=None):
        """Wait until every member (or names) reports applied_version >=
        version in mailctl status; returns the seconds it took."""
        names = names or self.members()
        t0 = time.monotonic()

        def check():
            _, applied = self.applied()
            behind = {n: applied.get(n) for n in names
                      if (applied.get(n) or 0) < version}
            return True if not behind else None
        wait_until(check, timeout, 0.02, "members at version %d" % version)
        return time.monotonic() - t0

    def wait_directories(self, version, timeout, names=None):
        names = names or self.members()

        def check():
            for n in names:
                d = self.directory(n)
                if d is None or d.get("version", 0) < version:
                    return None
            return True
        wait_until(check, timeout, 0.05,
                   "directory.json files at version %d" % version)

    # ---- mail ----

    def endpoint(self, name, what):
        """(host, port) of relay-N's "MX" or node-N's "LMTP" listener."""
        host, port = self.env[var_of(name) + "_" + what].rsplit(":", 1)
        return host, int(port)

    def mx(self, name="relay-1"):
        return self.endpoint(name, "MX")

    def lmtp(self, name="node-1"):
        return self.endpoint(name, "LMTP")

    def imap(self, name="node-1"):
        """(host, port) of node-N's IMAP listener (STARTTLS)."""
        return self.endpoint(name, "IMAP")

    def imaps(self, name="node-1"):
        """(host, port) of node-N's IMAPS listener (implicit TLS)."""
        return self.endpoint(name, "IMAPS")

    def imap_cert(self, name="node-1"):
        """Path of node-N's self-signed IMAP certificate (DIR/imap-tls)."""
        return self.env[var_of(name) + "_IMAP_CERT"]

    def imap_context(self, name="node-1"):
        """An SSL context that trusts only node-N's IMAP certificate and
        checks the host name (127.0.0.1 is one of its names)."""
        return imap_ssl_context(self.imap_cert(name))

    def kill9(self, name):
        """SIGKILL a recorded daemon (only while its command line still
        names its config file); returns its PID."""
        pid = self.pid(name)
        cfg = self.env.get(var_of(name) + "_CONFIG", "")
        assert pid and pid_alive(pid) and cfg and cfg in self.cmdline(pid), \
            "%s is not running (pid %r)" % (name, pid)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 10, what="%s gone" % name)
        return pid

    def store_sql(self, sql, timeout=30):
        """Rows (lists of strings, None for NULL) of sql run by psql on the
        mailbox store database (mail_store)."""
        psql = shutil.which("psql") or "/usr/bin/psql"
        p = subprocess.run([psql, "-X", "-q", "-A", "-t", "-F", "\x1f",
                            "-P", "null=\x1e", "-v", "ON_ERROR_STOP=1",
                            "-c", sql, self.env["MC_STORE_CONNINFO"]],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if p.returncode != 0:
            raise CommandError("psql %r: exit %d: %s" % (
                sql, p.returncode, p.stderr.decode(errors="replace")))
        rows = []
        for line in p.stdout.decode("utf-8", "replace").split("\n"):
            if line:
                rows.append([None if v == "\x1e" else v
                             for v in line.split("\x1f")])
        return rows

    def account_id(self, address):
        if address not in self.account_ids:
            self.account_ids[address] = int(
                self.ok("account", "show", address)["account"]["id"])
        return self.account_ids[address]

    def mailbox(self, address, name="INBOX"):
        """Messages of one mailbox of an account, by uid: dicts with uid,
        sha256, size, message_id (parsed envelope), delivery_id."""
        rows = self.store_sql(
            "select m.uid, m.blob_sha256, m.size, m.envelope->>'message_id', "
            "m.delivery_id from messages m join mailboxes b on "
            "b.id = m.mailbox_id where b.account_id = %d and b.name = '%s' "
            "order by m.uid" % (self.account_id(address),
                                name.replace("'", "''")))
        return [{"uid": int(r[0]), "sha256": r[1], "size": int(r[2]),
                 "message_id": r[3], "delivery_id": r[4]} for r in rows]

    def wait_mailbox(self, address, count, timeout=30, name="INBOX"):
        """Poll until the mailbox holds at least count messages; returns
        them (AssertionError with the last count after timeout)."""
        def check():
            msgs = self.mailbox(address, name)
            return msgs if len(msgs) >= count else None
        try:
            return wait_until(check, timeout, 0.2,
                              "%d messages in %s of %s" % (count, name, address))
        except AssertionError:
            raise AssertionError("%s of %s holds %d messages, want %d after "
                                 "%.0fs" % (name, address,
                                            len(self.mailbox(address, name)),
                                            count, timeout))

    def check_exactly_once(self, address, want, timeout, settle):
        """Wait until the INBOX of address holds len(want) messages, then
        settle seconds more (a duplicate would show up late); each sent
        Message-ID (the keys of want) must be there exactly once, nothing
        else, and each stored blob after the trace headers byte-identical
        to the sent bytes (want's values). Returns the stored messages."""
        self.wait_mailbox(address, len(want), timeout=timeout)
        time.sleep(settle)
        msgs = self.mailbox(address)
        counts = collections.Counter(m["message_id"] for m in msgs)
        missing = sorted(set(want) - set(counts))
        twice = sorted(k for k, n in counts.items() if n > 1)
        extra = sorted(set(counts) - set(want))
        assert not missing and not twice and not extra, \
            "%s: missing %r, twice %r, unexpected %r" % (address, missing,
                                                         twice, extra)
        for m in msgs:
            _, _, rest = strip_trace(self.blob(m["sha256"]))
            assert hashlib.sha256(rest).digest() == \
                hashlib.sha256(want[m["message_id"]]).digest(), \
                "%s changed on the way" % m["message_id"]
        return msgs

    def blob_path(self, sha):
        if self.env.get("MC_BLOB") == "s3":
            return os.path.join(self.env["MC_S3_DIR"], "data",
                                self.env["MC_S3_BUCKET"],
                                sha + "._S3rver_object")
        return os.path.join(self.env["MC_BLOB_DIR"], sha[0:2], sha[2:4], sha)

    def blob(self, sha):
        """The bytes of a blob; checks they hash to their key."""
        with open(self.blob_path(sha), "rb") as f:
            data = f.read()
        assert hashlib.sha256(data).hexdigest() == sha, \
            "blob %s does not hash to its key" % sha
        return data


# ---- mail helpers ----

def wait_port(host, port, timeout=20):
    """Wait until something accepts TCP connections on host:port."""
    def check():
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_until(check, timeout, 0.1, "a listener on %s:%d" % (host, port))


def strip_trace(blob):
    """Split a stored message into (Return-Path line, Received header with
    its continuation lines, the rest: the bytes the client sent). Raises
    AssertionError when the first two header fields are not those."""
    m = re.match(br"(Return-Path: [^\r\n]*\r\n)"
                 br"(Received:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)", blob)
    assert m, "no Return-Path + Received at the top: %r" % blob[:300]
    return m.group(1), m.group(2), blob[m.end():]


def received_queue_id(received):
    """The queue id in a Received header ("id <queueid>"), or None."""
    m = re.search(br"\bid\s+([0-9a-z]{10,40})\b", received)
    return m.group(1).decode() if m else None


def header_value(data, name):
    """The first value of a header field in a message's header (unfolded
    and stripped), or None."""
    head = data.split(b"\r\n\r\n", 1)[0]
    m = re.search(br"(?im)^" + re.escape(name.encode()) +
                  br":[ \t]*((?:[^\r\n]*)(?:\r\n[ \t][^\r\n]*)*)", head)
    return re.sub(br"\r\n[ \t]+", b" ", m.group(1)).strip().decode(
        "utf-8", "replace") if m else None


class Smtp:
    """A raw SMTP client socket: send bytes, read whole replies."""

    def __init__(self, host, port, timeout=20):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """One complete reply as (code, text of its last line); (0, "")
        when the server closed the connection."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return 0, " | ".join(lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            lines.append(text)
            if text[3:4] != "-":
                code = int(text[:3]) if text[:3].isdigit() else -1
                return code, text[4:]

    def cmd(self, line):
        self.send(line.encode() + b"\r\n" if isinstance(line, str)
                  else line + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def data_contents(stream):
    """The messages in a client's side of an SMTP conversation (commands
    and DATA content, no TLS): each content after its DATA command up to
    the lone dot, dot-unstuffed, with CRLF line ends."""
    out, cur = [], None
    for line in stream.split(b"\r\n"):
        if cur is None:
            if line.strip().upper() == b"DATA":
                cur = []
        elif line == b".":
            out.append(b"".join(x + b"\r\n" for x in cur))
            cur = None
        else:
            cur.append(line[1:] if line.startswith(b".") else line)
    return out


def swaks_sent(transcript):
    """The content swaks put on the wire (from its transcript, plain or
    TLS), dot-unstuffed with CRLF line ends."""
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


class Recorder:
    """A loopback TCP proxy to (host, port) that records what each client
    sends (one bytearray per connection, in accept order), so a test can
    learn exactly what a client such as smtp-source put on the wire.
    Threads are daemons; close() stops accepting."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.streams = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            buf = bytearray()
            with self.lock:
                self.streams.append(buf)
            threading.Thread(target=self._pump, args=(client, buf),
                             daemon=True).start()

    def _pump(self, client, buf):
        try:
            server = socket.create_connection(self.target, timeout=30)
        except OSError:
            client.close()
            return
        socks = [client, server]
        try:
            while True:
                ready, _, _ = select.select(socks, [], [], 120)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        with self.lock:
                            buf.extend(data)
                        server.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            server.close()

    def contents(self):
        """Every message content sent through the proxy so far."""
        with self.lock:
            streams = [bytes(b) for b in self.streams]
        return [m for s in streams for m in data_contents(s)]

    def close(self):
        self.lsock.close()


# ---- IMAP helpers ----

def imap_ssl_context(cafile):
    """A client SSL context trusting only cafile, checking host names."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class ImapLiteral:
    """A literal argument of an Imap command: {n} (synchronising: the
    client waits for the server's "+") or {n+} with plus=True."""

    def __init__(self, data, plus=False):
        self.data = data if isinstance(data, bytes) else data.encode()
        self.plus = plus


class ImapReply:
    """What one command got: the untagged responses (raw bytes of each,
    literals inline after their {n} CRLF), the continuation requests seen,
    and the tagged line split into status (OK/NO/BAD, or "" when the
    connection closed first), code (the response code without brackets,
    e.g. "APPENDUID 1 5", or "") and text."""

    def __init__(self, tag):
        self.tag = tag
        self.untagged = []
        self.continuations = []
        self.status = ""
        self.code = ""
        self.text = ""
        self.line = b""

    def __repr__(self):
        return "<%s %s [%s] %s; %d untagged>" % (
            self.tag, self.status or "(closed)", self.code, self.text,
            len(self.untagged))

    def untagged_of(self, kind):
        """Untagged responses whose first word after "*" (or after the
        number, for "* 3 FETCH") is kind, as raw bytes."""
        out = []
        k = kind.upper().encode()
        for r in self.untagged:
            w = r.split(b" ", 3)
            if len(w) > 1 and w[1].upper() == k:
                out.append(r)
            elif len(w) > 2 and w[1].isdigit() and \
                    w[2].split(b"\r", 1)[0].upper() == k:
                out.append(r)
        return out

    def codes(self):
        """Response codes of the untagged OK/NO/BAD lines and the tagged
        line (without brackets), in order."""
        out = []
        for r in self.untagged + [self.line]:
            m = re.match(br"^\S+ (?:OK|NO|BAD|BYE|PREAUTH) \[([^\]]*)\]", r,
                         re.I)
            if m:
                out.append(m.group(1).decode("utf-8", "replace"))
        return out


class ImapClosed(AssertionError):
    pass


class Imap:
    """A raw IMAP client over TCP, TLS from the start (tls=True) or after
    STARTTLS. Every read is bounded by timeout seconds (socket.timeout).
    Responses are read whole: a line ending in {n} (or ~{n}) takes the
    next n octets and goes on, so each response is one bytes value with
    its literals inline, ready for imap_parse."""

    def __init__(self, host, port, context=None, tls=True, timeout=20,
                 greeting=True):
        self.host, self.port = host, port
        self.context = context
        self.timeout = timeout
        self.raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = self.raw
        if tls:
            self.sock = context.wrap_socket(self.raw, server_hostname=host)
        self.buf = b""
        self.ntag = 0
        self.greeting = self.read_response() if greeting else None

    # ---- bytes ----

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self):
        try:
            chunk = self.sock.recv(1 << 16)
        except ssl.SSLError as e:
            raise ImapClosed("TLS error: %s" % e)
        except (ConnectionResetError, BrokenPipeError) as e:
            raise ImapClosed(str(e))
        if not chunk:
            raise ImapClosed("connection closed by the server")
        self.buf += chunk

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self):
        """One whole response: bytes without the final CRLF, literals
        inline (the {n} CRLF stays in front of each)."""
        out = b""
        while True:
            line = self.read_line()
            out += line
            m = re.search(br"~?\{(\d+)\}$", line)
            if not m:
                return out
            out += b"\r\n" + self.read_exact(int(m.group(1)))

    def pending(self, wait=0.0):
        """True when the server has sent something not read yet (waits
        up to wait seconds for it)."""
        if self.buf:
            return True
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        r, _, _ = select.select([self.sock], [], [], wait)
        return bool(r)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- commands ----

    def next_tag(self):
        self.ntag += 1
        return "t%d" % self.ntag

    def start(self, *parts, tag=None):
        """Send a command (str/bytes parts joined by spaces, ImapLiteral
        parts as literals; a synchronising literal waits for "+") and
        return its tag without reading the completion. Returns (tag,
        reply) where reply already holds what came before each "+"; when
        the server refuses a literal with a tagged reply, reply.status is
        set and the rest of the command is not sent."""
        tag = tag or self.next_tag()
        reply = ImapReply(tag)
        line = tag.encode()
        for p in parts:
            if isinstance(p, ImapLiteral):
                line += b" {%d%s}\r\n" % (len(p.data), b"+" if p.plus else b"")
                self.send(line)
                line = b""
                if not p.plus:
                    while True:
                        r = self.read_response()
                        if r.startswith(b"+"):
                            reply.continuations.append(r)
                            break
                        if self._tagged(reply, r):
                            return tag, reply
                        reply.untagged.append(r)
                self.send(p.data)
            else:
                p = p.encode() if isinstance(p, str) else p
                line += (b" " if line else b"") + p
        self.send(line + b"\r\n")
        return tag, reply

    def _tagged(self, reply, r):
        if not r.startswith(reply.tag.encode() + b" "):
            return False
        reply.line = r
        rest = r[len(reply.tag) + 1:].decode("utf-8", "replace")
        status, _, text = rest.partition(" ")
        reply.status = status.upper()
        m = re.match(r"\[([^\]]*)\]\s*(.*)$", text, re.S)
        if m:
            reply.code, reply.text = m.group(1), m.group(2)
        else:
            reply.text = text
        return True

    def finish(self, tag, reply=None):
        """Read responses up to the tagged one of tag."""
        reply = reply or ImapReply(tag)
        if reply.status:
            return reply
        while True:
            try:
                r = self.read_response()
            except ImapClosed:
                return reply  # status "": closed before the tagged reply
            if self._tagged(reply, r):
                return reply
            if r.startswith(b"+"):
                reply.continuations.append(r)
            else:
                reply.untagged.append(r)

    def cmd(self, *parts):
        """Run one command to its tagged reply; returns the ImapReply."""
        tag, reply = self.start(*parts)
        return self.finish(tag, reply)

    def ok(self, *parts):
        """cmd() that must end in OK."""
        r = self.cmd(*parts)
        assert r.status == "OK", "%s -> %s %r" % (
            " ".join(p if isinstance(p, str) else "<literal>"
                     if isinstance(p, ImapLiteral) else repr(p)
                     for p in parts), r.line, r.untagged[-5:])
        return r

    def login(self, user, password):
        return self.ok("LOGIN", imap_quote(user), imap_quote(password))

    def starttls(self, context=None):
        """STARTTLS (must be OK), then the TLS handshake on this socket.
        Whatever the server sent after its OK in plaintext is an error
        (a response injected before TLS would be trusted after it)."""
        context = context or self.context
        r = self.ok("STARTTLS")
        assert not self.buf and not self.pending(0.2), \
            "plaintext after the STARTTLS OK: %r" % self.buf[:200]
        self.sock = context.wrap_socket(self.raw, server_hostname=self.host)
        return r

    def capabilities(self):
        r = self.ok("CAPABILITY")
        caps = set()
        for u in r.untagged_of("CAPABILITY"):
            caps.update(w.decode().upper() for w in u.split()[2:])
        return caps

    # ---- common commands, parsed ----

    def select(self, mailbox, examine=False):
        """SELECT (or EXAMINE) that must succeed: a dict with exists,
        uidvalidity, uidnext, flags, permanentflags (lists of bytes) and
        access ("READ-WRITE"/"READ-ONLY" from the tagged code)."""
        r = self.ok("EXAMINE" if examine else "SELECT", imap_quote(mailbox))
        out = {"reply": r, "access": r.code.split()[0] if r.code else ""}
        for u in r.untagged:
            m = re.match(br"\* (\d+) EXISTS$", u)
            if m:
                out["exists"] = int(m.group(1))
            m = re.match(br"\* FLAGS (.*)$", u)
            if m:
                out["flags"] = imap_parse(m.group(1))[0]
        for code in r.codes():
            word, _, rest = code.partition(" ")
            if word.upper() in ("UIDVALIDITY", "UIDNEXT"):
                out[word.lower()] = int(rest)
            elif word.upper() == "PERMANENTFLAGS":
                out["permanentflags"] = imap_parse(rest.encode())[0]
        return out

    def append(self, mailbox, content, flags=None, date=None, plus=False):
        """APPEND content; returns the ImapReply (check .status; on OK
        with UIDPLUS .code is "APPENDUID uidvalidity uid")."""
        parts = ["APPEND", imap_quote(mailbox)]
        if flags is not None:
            parts.append("(%s)" % " ".join(flags))
        if date is not None:
            parts.append('"%s"' % date)
        parts.append(ImapLiteral(content, plus=plus))
        return self.cmd(*parts)

    def append_uid(self, mailbox, content, flags=None, date=None):
        """APPEND that must succeed with APPENDUID: (uidvalidity, uid)."""
        r = self.append(mailbox, content, flags, date)
        assert r.status == "OK", "APPEND to %s: %r" % (mailbox, r)
        m = re.match(r"APPENDUID (\d+) (\d+)$", r.code, re.I)
        assert m, "no APPENDUID in %r" % r.line
        return int(m.group(1)), int(m.group(2))

    def search(self, *criteria, uid=False):
        """SEARCH (UID SEARCH) that must succeed: the numbers as a list."""
        r = self.ok(*(["UID"] if uid else []), "SEARCH", *criteria)
        out = []
        for u in r.untagged_of("SEARCH"):
            out += [int(x) for x in u.split()[2:]]
        return out

    def fetch(self, seqset, items, uid=False):
        """FETCH (UID FETCH) that must succeed: [(seq, {ITEM: value})]
        in the order received."""
        r = self.ok(*(["UID"] if uid else []), "FETCH", seqset, items)
        return [imap_fetch_items(u) for u in r.untagged_of("FETCH")]

    def status(self, mailbox, items):
        """STATUS that must succeed: {ITEM: int}."""
        r = self.ok("STATUS", imap_quote(mailbox), items)
        out = {}
        for u in r.untagged_of("STATUS"):
            parsed = imap_parse(u)
            vals = parsed[3]
            for i in range(0, len(vals) - 1, 2):
                out[vals[i].decode().upper()] = int(vals[i + 1])
        return out

    def list(self, reference="", pattern="*", command="LIST"):
        """LIST (or LSUB) that must succeed: {name (str): (attributes
        as a set of lower-case str, delimiter as str or None)}."""
        r = self.ok(command, imap_quote(reference), imap_quote(pattern))
        out = {}
        for u in r.untagged_of(command):
            _, _, attrs, delim, name = imap_parse(u)[:5]
            out[name.decode("utf-8", "replace")] = (
                {a.decode().lower() for a in attrs},
                delim.decode() if delim is not None else None)
        return out


def imap_quote(s):
    """s as an IMAP quoted string."""
    if isinstance(s, bytes):
        s = s.decode()
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def imap_parse(data):
    """Parse IMAP response data into Python values: a parenthesised list
    is a list, an atom, quoted string or literal is bytes, NIL is None.
    An atom keeps its [section] and <partial> ("BODY[HEADER.FIELDS
    (SUBJECT)]<0>"). Returns the list of top-level items."""
    pos = 0
    n = len(data)

    def parse_list(end):
        nonlocal pos
        items = []
        while True:
            while pos < n and data[pos:pos + 1] == b" ":
                pos += 1
            if pos >= n:
                if end is None:
                    return items
                raise ValueError("unbalanced parenthesis in %r" % data[:200])
            c = data[pos:pos + 1]
            if c == b")":
                if end is None:
                    raise ValueError("stray ) at %d in %r" % (pos, data[:200]))
                pos += 1
                return items
            if c == b"(":
                pos += 1
                items.append(parse_list(b")"))
            elif c == b'"':
                pos += 1
                out = bytearray()
                while True:
                    if pos >= n:
                        raise ValueError("unterminated quoted string")
                    ch = data[pos:pos + 1]
                    if ch == b"\\":
                        out += data[pos + 1:pos + 2]
                        pos += 2
                    elif ch == b'"':
                        pos += 1
                        break
                    else:
                        out += ch
                        pos += 1
                items.append(bytes(out))
            elif c in (b"{", b"~") and re.match(br"~?\{\d+\}\r\n",
                                               data[pos:pos + 30]):
                m = re.match(br"~?\{(\d+)\}\r\n", data[pos:pos + 30])
                start = pos + m.end()
                items.append(data[start:start + int(m.group(1))])
                pos = start + int(m.group(1))
            else:
                start = pos
                depth = 0
                while pos < n:
                    ch = data[pos:pos + 1]
                    if ch == b"[":
                        depth += 1
                    elif ch == b"]":
                        depth -= 1
                    elif depth == 0 and ch in (b" ", b"(", b")"):
                        break
                    pos += 1
                atom = data[start:pos]
                items.append(None if atom.upper() == b"NIL" else atom)
    return parse_list(None)


def imap_fetch_items(response):
    """A "* N FETCH (...)" response as (N, {ITEM NAME (upper): value})."""
    items = imap_parse(response)
    assert len(items) >= 4 and items[0] == b"*" and \
        items[2].upper() == b"FETCH", \
        "not a FETCH response: %r" % response[:200]
    pairs = items[3]
    out = {}
    for i in range(0, len(pairs) - 1, 2):
        out[pairs[i].decode("utf-8", "replace").upper()] = pairs[i + 1]
    return int(items[1]), out


def mx_send(cluster, sender, recipients, content, relay="relay-1",
            timeout=30):
    """Send content (bytes, CRLF lines) to a relay's MX with smtplib;
    every recipient must be accepted (the relay then delivers it)."""
    host, port = cluster.mx(relay)
    s = smtplib.SMTP(host, port, local_hostname="client.example.net",
                     timeout=timeout)
    try:
        refused = s.sendmail(sender, recipients, content)
        assert refused == {}, refused
    finally:
        s.quit()


def add_accounts(cluster, accounts, quota=None):
    """Create accounts ({address: password}) with mailctl (their domains
    must exist) and wait until every member applied them."""
    version = 0
    for address, password in sorted(accounts.items()):
        args = ["account", "add", address]
        if quota is not None:
            args += ["--quota", str(quota)]
        version = cluster.ok(*args, input=password + "\n")["version"]
    cluster.wait_applied(version, timeout=15)


def lmtp_deliver(host, port, sender, recipients, content, timeout=30):
    """Deliver content (bytes, CRLF lines) over LMTP; returns the
    per-recipient replies [(code, text)] after the final dot."""
    s = Smtp(host, port, timeout=timeout)
    try:
        code, text = s.reply()
        assert code == 220, (code, text)
        code, text = s.cmd("LHLO test.example.net")
        assert code == 250, (code, text)
        code, text = s.cmd("MAIL FROM:<%s>" % sender)
        assert code == 250, (code, text)
        for r in recipients:
            code, text = s.cmd("RCPT TO:<%s>" % r)
            assert code == 250, (r, code, text)
        code, text = s.cmd("DATA")
        assert code == 354, (code, text)
        body = re.sub(br"(?m)^\.", b"..", content)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        s.send(body + b".\r\n")
        replies = [s.reply() for _ in recipients]
        s.cmd("QUIT")
        return replies
    finally:
        s.close()


# ---- directory.json helpers ----

def find(objs, key, value):
    for o in objs:
        if o.get(key) == value:
            return o
    return None


def dir_domain(d, name):
    return find(d.get("domains", []), "name", name)


def dir_account(d, address):
    return find(d.get("accounts", []), "address", address)


def dir_alias(d, address):
    return find(d.get("aliases", []), "address", address)


def rpc_poke(*args, input=None, timeout=30, binary=False):
    """Run rpc_poke; returns (exit code, stdout, stderr text). input is
    bytes; stdout is text, or bytes with binary=True (for --dump)."""
    tool = os.environ.get("MC_RPC_POKE") or os.path.join(
        MC_BIN, "tests", "integration", "rpc_poke")
    p = subprocess.run([tool] + list(args), input=input or b"",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    out = p.stdout if binary else p.stdout.decode(errors="replace")
    return p.returncode, out, p.stderr.decode(errors="replace")


# ---- runner ----

def run_tests(cluster, tests):
    """Start cluster, run each (name, function(cluster)) in order, always
    tear the cluster down, print "N passed, N failed", exit."""
    passed = failed = 0
    started = time.monotonic()
    # SIGTERM (say, from a test runner) unwinds through the teardown below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        cluster.up()
    except Exception:
        log("FAIL cluster up:\n" + traceback.format_exc())
        if cluster.dir:
            log(cluster.tail_logs())
        failed = len(tests)
        tests = []
    try:
        for name, fn in tests:
            t0 = time.monotonic()
            try:
                fn(cluster)
            except Exception:
                failed += 1
                log("FAIL %s (%.1fs)\n%s" % (name, time.monotonic() - t0,
                                             traceback.format_exc()))
                log(cluster.tail_logs())
            else:
                passed += 1
                log("ok   %s (%.1fs)" % (name, time.monotonic() - t0))
    finally:
        cluster.down()
        reports = cluster.sanitizer_reports()
        if reports:
            failed += 1
            log("FAIL sanitizer reports in daemon logs:\n" + "\n".join(reports))
        if failed > 0 and os.environ.get("MC_KEEP") == "1":
            log("kept %s" % cluster.dir)
        else:
            cluster.purge()
    log("(%.1fs)" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(0 if failed == 0 else 1)
