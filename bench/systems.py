"""The two systems under test as bench/bench.py drives them: Ours (the
local cluster of deploy/local/cluster, through the script and mailctl)
and TheirsSystem (Postfix + Dovecot of bench/theirs.py): endpoints,
logins, and the process groups whose memory is measured."""

import glob
import json
import os
import re
import ssl
import subprocess

import theirs as theirs_mod
from probes import DOMAIN, BenchError, Imap, process_tree, read_lines, read_pid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLUSTER = os.path.join(ROOT, "deploy", "local", "cluster")
SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|runtime error:|"
                          r"ERROR: LeakSanitizer|SUMMARY: UndefinedBehaviorSanitizer")


# --------------------------------------------------------------------- ours

def parse_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export ") and "='" in line:
                k, v = line[len("export "):].split("=", 1)
                if v.startswith("'") and v.endswith("'"):
                    env[k] = v[1:-1]
    return env


def var_of(name):
    return "MC_" + name.upper().replace("-", "_")


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


class Ours:
    name = "ours"

    def __init__(self, work, base_port, mc_bin):
        self.dir = os.path.join(work, "ours")
        self.base_port = base_port
        self.mc_bin = mc_bin
        self.env = {}
        self.passwords = {}

    def script_env(self):
        e = {k: v for k, v in os.environ.items()
             if not (k.startswith("MC_") or k.startswith("MAILCTL_"))}
        e["MC_BIN"] = self.mc_bin
        e["MC_WAIT_TIMEOUT"] = os.environ.get("MC_WAIT_TIMEOUT", "120")
        for k in ("MC_LOG_LEVEL", "MC_RETRY_BASE_MS", "MC_RETRY_MAX_MS"):
            if k in os.environ:
                e[k] = os.environ[k]
        return e

    def cluster(self, *args, timeout=300):
        p = subprocess.run([CLUSTER] + list(args) + ["--dir", self.dir],
                           env=self.script_env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=timeout)
        self.reload()
        if p.returncode != 0:
            raise BenchError("cluster %s failed (exit %d):\n%s"
                             % (args[0], p.returncode, p.stdout[-3000:]))
        return p.stdout

    def reload(self):
        path = os.path.join(self.dir, "cluster.env")
        if os.path.exists(path):
            self.env = parse_env(path)

    def up(self, nodes=1, relays=1):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)  # Postgres runs as its own user
        self.cluster("up", "--nodes", str(nodes), "--relays", str(relays),
                     "--base-port", str(self.base_port))

    def down(self):
        if os.path.exists(os.path.join(self.dir, "cluster.env")):
            subprocess.run([CLUSTER, "down", "--dir", self.dir],
                           env=self.script_env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                           timeout=180)

    def mailctl_env(self):
        e = dict(os.environ)
        for k in ("MAILCTL_URL", "MAILCTL_TOKEN_FILE", "MAILCTL_RELAY_URL"):
            e[k] = self.env.get(k, "")
        return e

    def mailctl(self, *args, input=None, timeout=300):
        p = subprocess.run([self.env["MC_MAILCTL"], "--json"] + list(args),
                           env=self.mailctl_env(), input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout)
        if p.returncode != 0:
            raise BenchError("mailctl %s: exit %d %s %s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return json.loads(p.stdout) if p.stdout.strip() else {}

    def add_account(self, addr, password, wait=True):
        args = ["account", "add", addr] + (["--wait", "--wait-timeout", "300"] if wait else [])
        r = self.mailctl(*args, input=password + "\n")
        self.passwords[addr] = password
        return r

    # endpoints
    def mx(self):
        return hostport(self.env["MC_RELAY_1_MX"])

    def imap(self, addr):
        host, port = hostport(self.env["MC_NODE_1_IMAPS"])
        ctx = ssl.create_default_context(cafile=self.env["MC_NODE_1_IMAP_CERT"])
        ctx.check_hostname = False
        c = Imap(host, port, ctx)
        c.login(addr, self.passwords[addr])
        return c

    # processes
    def members(self):
        return ["controller"] + self.env.get("MC_RELAYS", "").split() + \
            self.env.get("MC_NODES", "").split()

    def pid(self, name):
        v = self.env.get(var_of(name) + "_PID", "")
        return int(v) if v.isdigit() else None

    def log_path(self, name):
        return self.env.get(var_of(name) + "_LOG", "")

    def groups(self, kids):
        pg = read_pid(os.path.join(self.env.get("MC_PG_DATA", "/nonexistent"),
                                   "postmaster.pid"))
        redis = self.env.get("MC_REDIS_PID", "")
        daemons = [self.pid(n) for n in self.members() if self.pid(n)]
        g = {"daemons": daemons,
             "postgres": process_tree([pg], kids),
             "redis": [int(redis)] if redis.isdigit() else []}
        g["all"] = g["daemons"] + g["postgres"] + g["redis"]
        return g

    def sanitizer_reports(self):
        hits = []
        for path in glob.glob(os.path.join(self.dir, "log", "*.log")):
            for line in read_lines(path):
                if SANITIZER_RE.search(line):
                    hits.append("%s: %s" % (os.path.basename(path), line))
        return hits


class TheirsSystem:
    name = "theirs"

    def __init__(self, work, base_port):
        self.t = theirs_mod.Theirs(os.path.join(work, "theirs"), base_port + 150,
                                   base_port + 151, base_port + 152, DOMAIN)
        self.passwords = {}

    def up(self, users):
        self.passwords = dict(users)
        self.t.setup(users)
        self.t.start()

    def down(self):
        self.t.stop()

    def mx(self):
        return ("127.0.0.1", self.t.smtp_port)

    def imap(self, addr):
        # Implicit TLS, as ours; the certificate is the one theirs.py made.
        ctx = ssl.create_default_context(
            cafile=os.path.join(self.t.dv, "tls.crt"))
        ctx.check_hostname = False
        c = Imap("127.0.0.1", self.t.imap_port, ctx)
        c.login(addr, self.passwords[addr])
        return c

    def groups(self, kids):
        g = {"postfix": process_tree([self.t.postfix_pid()], kids),
             "dovecot": process_tree([self.t.dovecot_pid()], kids)}
        g["all"] = g["postfix"] + g["dovecot"]
        return g
