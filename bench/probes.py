"""Measuring tools of the benchmark (bench/bench.py): process trees and
their memory (RSS, PSS), a peak sampler and a sampler of other processes'
CPU, a minimal IMAP client, SMTP with smtplib and smtp-source, and the
statistics helpers. Standard library only."""

import datetime
import os
import re
import smtplib
import socket
import statistics
import subprocess
import threading
import time

SMTP_SOURCE = "/usr/sbin/smtp-source"
DOMAIN = "bench.test"
SENDER = "sender@" + DOMAIN


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes

def read_pid(path):
    try:
        with open(path) as f:
            return int(f.readline().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def ppid_map():
    """{ppid: [pid...]} of every live process (zombies left out)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest[0] in ("Z", "X"):
            continue
        kids.setdefault(int(rest[1]), []).append(int(d))
    return kids


def process_tree(roots, kids):
    """roots and all their descendants, by walking the ppid links."""
    out, todo = [], [p for p in roots if p]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def mem_kb(pid, pss=False):
    """VmRSS (or Pss from smaps_rollup) of pid in KiB; 0 when gone."""
    path = "/proc/%d/%s" % (pid, "smaps_rollup" if pss else "status")
    key = "Pss:" if pss else "VmRSS:"
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def mem_of(pids, pss=False):
    return sum(mem_kb(p, pss) for p in pids)


class Sampler(threading.Thread):
    """Peak of the summed RSS/PSS of process groups, sampled every
    `interval` seconds while running. groups(kids) -> {name: [pids]}."""

    def __init__(self, groups, interval=0.5):
        super().__init__(daemon=True)
        self.groups = groups
        self.interval = interval
        self.stop_ev = threading.Event()
        self.peak = {}

    def sample(self):
        g = self.groups(ppid_map())
        for name, pids in g.items():
            for kind, pss in (("rss", False), ("pss", True)):
                v = mem_of(pids, pss)
                key = (name, kind)
                self.peak[key] = max(self.peak.get(key, 0), v)

    def run(self):
        while not self.stop_ev.is_set():
            self.sample()
            self.stop_ev.wait(self.interval)

    def finish(self):
        self.stop_ev.set()
        self.join(10)
        return self.peak


class ForeignCpu(threading.Thread):
    """Who else used the CPU during the run: every 2 s, the CPU time of
    processes that belong neither to this benchmark (its descendants)
    nor to either system under test (their process groups), summed by
    command name. Short-lived processes are partly missed: a hint for
    RESULTS.md that the machine was shared, not an accounting."""

    def __init__(self, ours_groups):
        super().__init__(daemon=True)
        self.ours_groups = ours_groups  # callable(kids) -> pids of the systems
        self.stop_ev = threading.Event()
        self.prev = {}
        self.cpu = {}
        self.hz = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def ticks():
        out = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    raw = f.read()
                name = raw[raw.index("(") + 1:raw.rindex(")")]
                rest = raw.rsplit(")", 1)[1].split()
                out[int(d)] = (name, int(rest[1]), int(rest[11]) + int(rest[12]))
            except (OSError, ValueError, IndexError):
                continue
        return out

    def sample(self):
        now = self.ticks()
        kids = {}
        for pid, (_, ppid, _) in now.items():
            kids.setdefault(ppid, []).append(pid)
        mine = set(process_tree([os.getpid()], kids))
        try:
            mine |= set(self.ours_groups(kids))
        except Exception:
            pass
        for pid, (name, ppid, t) in now.items():
            if pid in mine or ppid == 2 or pid == 2 or pid not in self.prev:
                continue
            d = t - self.prev[pid]
            if d > 0:
                self.cpu[name] = self.cpu.get(name, 0.0) + d / float(self.hz)
        self.prev = {pid: v[2] for pid, v in now.items()}

    def run(self):
        while not self.stop_ev.wait(2.0):
            self.sample()

    def finish(self):
        self.stop_ev.set()
        self.join(10)
        return sorted(self.cpu.items(), key=lambda kv: -kv[1])


# --------------------------------------------------------------------- IMAP

class ImapError(Exception):
    pass


class Imap:
    """A minimal IMAP client that shows every untagged response with its
    literals: enough for timing, and the same code against both servers."""

    def __init__(self, host, port, context=None, timeout=120):
        sock = socket.create_connection((host, port), timeout)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self.f = sock.makefile("rb")
        self.tag = 0
        greeting = self.readline()
        if not greeting.startswith(b"* OK"):
            raise ImapError("greeting: %r" % greeting)

    def readline(self):
        line = self.f.readline(1 << 20)
        if not line:
            raise ImapError("connection closed")
        return line

    def response(self):
        """One response: [line, literal, line, literal, ..., line]."""
        parts = [self.readline()]
        while True:
            m = re.search(rb"\{(\d+)\}\r\n$", parts[-1])
            if not m:
                return parts
            n = int(m.group(1))
            data = self.f.read(n)
            if len(data) != n:
                raise ImapError("short literal")
            parts.append(data)
            parts.append(self.readline())

    def cmd(self, text):
        """Send one command; return its untagged responses (OK required)."""
        self.tag += 1
        tag = b"b%d" % self.tag
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        untagged = []
        while True:
            r = self.response()
            if r[0].startswith(tag + b" "):
                if not r[0][len(tag) + 1:].startswith(b"OK"):
                    raise ImapError("%s -> %r" % (text.split()[0], r[0]))
                return untagged
            untagged.append(r)

    def login(self, user, password):
        self.cmd('LOGIN "%s" "%s"' % (user, password))

    def messages(self, mailbox="INBOX"):
        for r in self.cmd("STATUS %s (MESSAGES)" % mailbox):
            m = re.search(rb"MESSAGES (\d+)", r[0])
            if m:
                return int(m.group(1))
        raise ImapError("STATUS without MESSAGES")

    def close(self):
        try:
            self.sock.sendall(b"z LOGOUT\r\n")
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


def exists_of(untagged):
    n = None
    for r in untagged:
        m = re.match(rb"\* (\d+) EXISTS", r[0])
        if m:
            n = int(m.group(1))
    return n


# --------------------------------------------------------------------- SMTP

def message(to, subject, size, seq):
    body_line = ("%06d " % seq) + "x" * 70 + "\r\n"
    body = (body_line * (size // len(body_line) + 1))[:size]
    body = body[:body.rfind("\r\n") + 2] if "\r\n" in body else body + "\r\n"
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Date: %s\r\nMessage-ID: <bench.%d.%d@bench.client>\r\n\r\n%s"
            % (SENDER, to, subject,
               time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
               os.getpid(), seq, body)).encode()


def send_one(mx, to, subject, size, seq, timeout=120):
    """One SMTP transaction on a new connection. Returns (t_250, data_s):
    the monotonic time of the 250 after DATA and DATA -> 250 seconds."""
    s = smtplib.SMTP(mx[0], mx[1], local_hostname="bench.client", timeout=timeout)
    try:
        s.ehlo()
        code, resp = s.mail(SENDER)
        if code != 250:
            raise BenchError("MAIL FROM: %d %r" % (code, resp))
        code, resp = s.rcpt(to)
        if code != 250:
            raise BenchError("RCPT TO: %d %r" % (code, resp))
        t0 = time.monotonic()
        code, resp = s.data(message(to, subject, size, seq))
        t = time.monotonic()
        if code != 250:
            raise BenchError("DATA: %d %r" % (code, resp))
        return t, t - t0
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def smtp_source(mx, to, count, sessions, size, subject=None, timeout=600):
    """Runs smtp-source; returns (Popen, {'t_end': ...} filled when done).
    A waiter thread stamps the exit time precisely."""
    cmd = [SMTP_SOURCE, "-s", str(sessions), "-m", str(count), "-l", str(size),
           "-M", "bench.client", "-f", SENDER, "-t", to]
    if subject:
        cmd += ["-S", subject]
    cmd.append("%s:%d" % mx)
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    done = {}

    def wait():
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()  # our own child
            out, _ = p.communicate()
            done["timeout"] = True
        done["t_end"] = time.monotonic()
        done["rc"] = p.returncode
        done["out"] = out.decode(errors="replace")

    th = threading.Thread(target=wait, daemon=True)
    th.start()
    return th, done


# -------------------------------------------------------------------- stats

def stat(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals),
            "max": max(vals), "n": len(vals), "values": vals}


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def parse_ts(line):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z", line)
    if not m:
        return None
    dt = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def read_lines(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []
