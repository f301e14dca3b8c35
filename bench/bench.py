#!/usr/bin/python3
"""Benchmarks of the mail cluster side by side with Postfix + Dovecot.

Started by bench/run (which installs packages and builds binaries; this
file only measures). In one run it starts OUR local cluster
(deploy/local/cluster: controller, relay-1, node-1, private Postgres and
Redis) and THEIRS (bench/theirs.py: a private Postfix MX delivering over
LMTP to a private Dovecot, maildir), both on loopback, applies the same
load to both and prints a table: for every figure the median of the runs
with min and max, and the ratio ours/theirs.

Figures (bench/README.md says what each one means):
  1. SMTP acceptance and end-to-end delivery rate (smtp-source, 20 sessions,
     10 KB messages; delivered = visible by IMAP STATUS).
  2. Latency of one message from the MX's 250 to visible over IMAP
     (a selected session polling NOOP), p50/p90/p99.
  3. IMAP on a big mailbox (filled by smtp-source on both): SELECT,
     UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE), single-message
     BODY.PEEK[] fetches, SEARCH HEADER SUBJECT and SEARCH SUBJECT.
  4. Memory: RSS (and PSS) of each system idle and under load (peak
     during figure 1), per daemon idle for ours.
  5. Config propagation (ours only): mailctl account add --wait and
     alias add --wait with 3 mailbox nodes, and the publish -> applied
     time read from the daemons' logs.
  6. Scaling (ours only): a directory of 100,000 accounts, bulk-inserted
     into the controller's Postgres (see bulk_accounts); snapshot apply on
     a fresh node, restart of a node, delta latency with 100k present.

Every load loop is bounded in count and time; only processes started
here (recorded PIDs) are ever stopped; everything is torn down in a
finally block, also on failure or SIGTERM.

Standard library only; run with /usr/bin/python3.
"""

import argparse
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

from probes import (DOMAIN, BenchError, ForeignCpu, Sampler, exists_of,
                    log, mem_kb, mem_of, parse_ts, pct, ppid_map, process_tree,
                    read_lines, send_one, smtp_source, stat)
from systems import ROOT, Ours, TheirsSystem

NEEDLE = "needle-xyzzy"

# Counts per mode. --runs overrides "runs".
FULL = dict(runs=3, rate_msgs=2000, sessions=20, size=10240, latency_msgs=50,
            fill=10000, needles=10, body_fetches=1000, prop_nodes=3,
            prop_samples=10, accounts=100000, delta_samples=5)
SMOKE = dict(runs=1, rate_msgs=20, sessions=20, size=10240, latency_msgs=10,
             fill=100, needles=3, body_fetches=20, prop_nodes=1,
             prop_samples=3, accounts=1000, delta_samples=2)

# ------------------------------------------------------------------ figures

class Bench:
    def __init__(self, args, cfg):
        self.args = args
        self.cfg = cfg
        self.work = args.work
        self.ours = Ours(self.work, args.base_port, args.mc_bin)
        self.theirs = TheirsSystem(self.work, args.base_port)
        self.systems = [self.ours, self.theirs]
        self.rows = []      # (section, label, unit, ours stat, theirs stat, note)
        self.checks = []    # (ok, text)
        self.raw = {}

    def check(self, ok, text):
        self.checks.append((bool(ok), text))
        log("%s: %s" % ("ok" if ok else "FAILED", text))
        return ok

    def row(self, section, label, unit, ours, theirs, note="", expect="both"):
        """expect: which columns must hold a figure ("both", "ours",
        "theirs"); the other is n/a by design."""
        self.rows.append((section, label, unit, ours, theirs, note, expect))

    def ours_row(self, section, label, unit, ours, note=""):
        self.row(section, label, unit, ours, None, note, expect="ours")

    def users(self):
        c = self.cfg
        u = {}
        for i in range(1, c["runs"] + 1):
            u["rate%d@%s" % (i, DOMAIN)] = "rate-pw-%d-bench" % i
            u["lat%d@%s" % (i, DOMAIN)] = "lat-pw-%d-bench" % i
        u["big@" + DOMAIN] = "big-pw-bench"
        return u

    # ---- setup ----

    def ports_free(self):
        p = self.args.base_port
        ports = [p, p + 1, p + 10, p + 21, p + 41, p + 61, p + 71, p + 81,
                 p + 91, p + 101, p + 111, p + 121, p + 150, p + 151, p + 152]
        for port in ports:
            s = socket.socket()
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
            except OSError:
                raise BenchError("port %d is in use (another bench or test running?)" % port)
            finally:
                s.close()

    def setup(self):
        self.ports_free()
        users = self.users()
        log("starting ours in %s (base port %d, MC_BIN=%s)"
            % (self.ours.dir, self.args.base_port, self.args.mc_bin))
        t = time.monotonic()
        self.ours.up(nodes=1, relays=1)
        self.raw["ours_up_s"] = time.monotonic() - t
        self.ours.mailctl("domain", "add", DOMAIN, "--wait")
        for addr, pw in sorted(users.items()):
            self.ours.add_account(addr, pw, wait=False)
        self.ours.mailctl("domain", "list")  # the controller answers
        self.wait_version_applied()
        log("starting theirs in %s (smtp %d, imap %d, lmtp %d)"
            % (self.theirs.t.work, self.theirs.t.smtp_port, self.theirs.t.imap_port,
               self.theirs.t.lmtp_port))
        self.theirs.up(users)
        for s in self.systems:
            c = s.imap("big@" + DOMAIN)
            n = c.messages()
            c.close()
            self.check(n == 0, "%s: IMAP login works, empty mailbox" % s.name)

    def wait_version_applied(self, timeout=300):
        deadline = time.monotonic() + timeout
        while True:
            st = self.ours.mailctl("status")
            live = [n for n in st["nodes"] if n.get("live")]
            if live and all(n["applied_version"] >= st["version"] for n in live):
                return st["version"]
            if time.monotonic() > deadline:
                raise BenchError("nodes did not reach version %d" % st["version"])
            time.sleep(0.1)

    # ---- figure 4a: idle memory ----

    def idle_memory(self, label):
        time.sleep(3)  # settle
        kids = ppid_map()
        out = {}
        for s in self.systems:
            g = s.groups(kids)
            out[s.name] = {k: {"rss": mem_of(v), "pss": mem_of(v, True), "procs": len(v)}
                           for k, v in g.items()}
        per = {}
        for name in self.ours.members():
            pid = self.ours.pid(name)
            per[name] = mem_kb(pid) if pid else None
        out["ours_per_daemon"] = per
        self.raw["memory_" + label] = out
        return out

    # ---- figure 1 ----

    def rate_run(self, s, run):
        c = self.cfg
        addr = "rate%d@%s" % (run, DOMAIN)
        n = c["rate_msgs"]
        imap = s.imap(addr)
        base = imap.messages()
        sampler = Sampler(s.groups)
        sampler.start()
        timeout = 120 + n * 0.5
        t0 = time.monotonic()
        th, done = smtp_source(s.mx(), addr, n, c["sessions"], c["size"],
                               timeout=timeout)
        t_deliv = None
        count = base
        deadline = t0 + timeout
        while t_deliv is None and time.monotonic() < deadline:
            count = imap.messages()
            if count >= base + n:
                t_deliv = time.monotonic()
                break
            if done.get("rc") not in (None, 0):
                break
            time.sleep(0.02)
        th.join(timeout)
        peak = sampler.finish()
        time.sleep(1)
        final = imap.messages() - base
        imap.close()
        ok = done.get("rc") == 0 and t_deliv is not None and final == n
        self.check(ok, "%s run %d: smtp-source rc=%s, %d/%d messages visible%s"
                   % (s.name, run, done.get("rc"), final, n,
                      "" if ok else "\n" + done.get("out", "")[-1500:]))
        if not ok:
            return None
        acc = done["t_end"] - t0
        dlv = t_deliv - t0
        log("%s run %d: accepted %d in %.2fs (%.0f/s), delivered in %.2fs (%.0f/s)"
            % (s.name, run, n, acc, n / acc, dlv, n / dlv))
        return {"accept_rate": n / acc, "deliver_rate": n / dlv,
                "accept_s": acc, "deliver_s": dlv,
                "peak": {"%s/%s" % k: v for k, v in peak.items()}}

    # ---- figure 2 ----

    def latency_run(self, s, run):
        c = self.cfg
        addr = "lat%d@%s" % (run, DOMAIN)
        imap = s.imap(addr)
        untagged = imap.cmd("SELECT INBOX")
        exists = exists_of(untagged) or 0
        lat, data_s = [], []
        for k in range(c["latency_msgs"]):
            t250, d = send_one(s.mx(), addr, "latency %d" % k, c["size"], k)
            deadline = t250 + 120
            while True:
                n = exists_of(imap.cmd("NOOP"))
                if n is not None:
                    exists = n
                if exists >= k + 1:
                    lat.append(time.monotonic() - t250)
                    data_s.append(d)
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.001)
        imap.close()
        ok = len(lat) == c["latency_msgs"]
        self.check(ok, "%s run %d: %d/%d single messages visible"
                   % (s.name, run, len(lat), c["latency_msgs"]))
        if not ok:
            return None
        r = {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
             "data_p50": pct(data_s, 50)}
        log("%s run %d: 250->visible p50 %.1f ms p90 %.1f ms p99 %.1f ms; "
            "DATA->250 p50 %.1f ms" % (s.name, run, r["p50"] * 1e3, r["p90"] * 1e3,
                                      r["p99"] * 1e3, r["data_p50"] * 1e3))
        return r

    # ---- figure 3 ----

    def fill(self, s):
        c = self.cfg
        addr = "big@" + DOMAIN
        for k in range(c["needles"]):
            send_one(s.mx(), addr, "%s %d" % (NEEDLE, k), c["size"], 100000 + k)
        bulk = c["fill"] - c["needles"]
        timeout = 180 + c["fill"] * 0.3
        t0 = time.monotonic()
        th, done = smtp_source(s.mx(), addr, bulk, c["sessions"], c["size"],
                               subject="bench fill", timeout=timeout)
        th.join(timeout + 10)
        imap = s.imap(addr)
        deadline = t0 + timeout
        n = imap.messages()
        while n < c["fill"] and time.monotonic() < deadline:
            time.sleep(0.5)
            n = imap.messages()
        t = time.monotonic() - t0
        imap.close()
        self.raw.setdefault("fill_s", {})[s.name] = t
        return self.check(done.get("rc") == 0 and n == c["fill"],
                          "%s: big mailbox filled with %d/%d messages in %.1fs"
                          % (s.name, n, c["fill"], t))

    def imap_run(self, s, run):
        c = self.cfg
        imap = s.imap("big@" + DOMAIN)
        r = {}
        t = time.monotonic()
        untagged = imap.cmd("SELECT INBOX")
        r["select"] = time.monotonic() - t
        ok = self.check(exists_of(untagged) == c["fill"],
                        "%s run %d: SELECT shows %s/%d messages"
                        % (s.name, run, exists_of(untagged), c["fill"]))
        t = time.monotonic()
        untagged = imap.cmd("UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)")
        r["fetch_env"] = time.monotonic() - t
        uids = []
        for u in untagged:
            m = re.search(rb"UID (\d+)", u[0])
            if m and b" FETCH " in u[0]:
                uids.append(int(m.group(1)))
        ok &= self.check(len(uids) == c["fill"], "%s run %d: FETCH 1:* returned %d/%d"
                         % (s.name, run, len(uids), c["fill"]))
        rnd = random.Random(4242 + run)
        picks = [rnd.choice(sorted(uids)) for _ in range(c["body_fetches"])] if uids else []
        short = 0
        t = time.monotonic()
        for uid in picks:
            got = imap.cmd("UID FETCH %d BODY.PEEK[]" % uid)
            if not any(len(p) >= c["size"] for u in got for p in u[1::2]):
                short += 1
        r["bodies"] = time.monotonic() - t
        ok &= self.check(picks and short == 0, "%s run %d: %d body fetches, %d short"
                         % (s.name, run, len(picks), short))
        for key, q in (("search_header", "UID SEARCH HEADER SUBJECT %s" % NEEDLE),
                       ("search_subject", "UID SEARCH SUBJECT %s" % NEEDLE)):
            t = time.monotonic()
            untagged = imap.cmd(q)
            r[key] = time.monotonic() - t
            found = sum(len(u[0].split()) - 2 for u in untagged
                        if u[0].startswith(b"* SEARCH"))
            ok &= self.check(found == c["needles"], "%s run %d: %s found %d/%d"
                             % (s.name, run, q.split()[2] + " " + q.split()[3],
                                found, c["needles"]))
        imap.close()
        log("%s run %d: SELECT %.1f ms, FETCH 1:* %.0f ms, %d bodies %.0f ms, "
            "SEARCH HEADER %.0f ms, SEARCH SUBJECT %.0f ms"
            % (s.name, run, r["select"] * 1e3, r["fetch_env"] * 1e3, len(picks),
               r["bodies"] * 1e3, r["search_header"] * 1e3, r["search_subject"] * 1e3))
        return r if ok else None

    # ---- figure 5 ----

    APPLIED_RE = re.compile(r"cfgsync (?:delta applied|snapshot loaded) version=\d+ -> (\d+)")
    # Logged by lib/cfgsync.c once directory.json is written (on a worker
    # thread, after the change is applied in memory); the heartbeat that
    # `mailctl --wait` waits for goes out right after.
    PERSISTED_RE = re.compile(r"cfgsync directory saved version=(\d+)")

    def log_apply_ms(self, version, persisted=False):
        """publish -> applied on every member for `version`, from the logs:
        the controller's 'delta published ... to=V' and each member's first
        'delta applied'/'snapshot loaded' reaching V (persisted: its first
        'directory saved' line reaching V, once directory.json is
        written)."""
        pattern = self.PERSISTED_RE if persisted else self.APPLIED_RE
        t_pub = None
        for line in read_lines(self.ours.log_path("controller")):
            if "delta published" in line and re.search(r"\bto=%d\b" % version, line):
                t_pub = parse_ts(line)
        if t_pub is None:
            log("no 'delta published ... to=%d' in the controller's log" % version)
            return None
        worst = 0.0
        for name in self.ours.members()[1:]:
            t_app = None
            for line in read_lines(self.ours.log_path(name)):
                m = pattern.search(line)
                # Versions only grow in a log, so the first line reaching
                # `version` is its apply. It may precede the controller's
                # line by a few ms: that line is written after the send.
                if m and int(m.group(1)) >= version:
                    t_app = parse_ts(line)
                    break
            if t_app is None:
                log("no apply of version %d in %s's log" % (version, name))
                return None
            worst = max(worst, t_app - t_pub, 0.0)
        return worst

    def propagation(self):
        c = self.cfg
        while len(self.ours.env.get("MC_NODES", "").split()) < c["prop_nodes"]:
            log("adding a mailbox node")
            self.ours.cluster("add-node")
        nodes = len(self.ours.env["MC_NODES"].split())
        add, alias, logms, persisted = [], [], [], []
        for k in range(c["prop_samples"]):
            t = time.monotonic()
            r = self.ours.add_account("prop%d@%s" % (k, DOMAIN), "prop-pw-%d-bench" % k)
            add.append(time.monotonic() - t)
            logms.append(self.log_apply_ms(r.get("version", 0)))
            persisted.append(self.log_apply_ms(r.get("version", 0), persisted=True))
            t = time.monotonic()
            self.ours.mailctl("alias", "add", "palias%d@%s" % (k, DOMAIN),
                              "prop%d@%s" % (k, DOMAIN), "--wait", "--wait-timeout", "300")
            alias.append(time.monotonic() - t)
        self.check(len(add) == c["prop_samples"] and
                   all(v is not None for v in logms + persisted),
                   "propagation: %d account adds and alias adds with --wait on %d nodes"
                   % (len(add), nodes))
        self.raw["propagation"] = {"nodes": nodes, "account_add_wait_s": add,
                                   "alias_add_wait_s": alias, "log_apply_s": logms,
                                   "log_persisted_s": persisted}
        sec = "5. Config propagation (%d mailbox nodes + 1 relay)" % nodes
        self.ours_row(sec, "mailctl account add --wait", "ms", stat_ms(add),
                 "includes mailctl's argon2id + SCRAM hashing and its 100 ms status poll")
        self.ours_row(sec, "mailctl alias add --wait", "ms", stat_ms(alias),
                 "no hashing; 100 ms status poll")
        self.ours_row(sec, "publish -> applied on every member (logs)", "ms",
                 stat_ms([v for v in logms if v is not None]),
                 "controller's 'delta published' line to the last member's 'delta applied' line (1 ms clock; "
                      "the controller logs after sending, so this can read 0)")
        self.ours_row(sec, "publish -> applied and saved on every member (logs)", "ms",
                      stat_ms([v for v in persisted if v is not None]),
                      "to the last member's 'directory saved' line (directory.json "
                      "written on a worker); the ack to the controller follows")

    # ---- figure 6 ----

    def psql(self, sql, timeout=600):
        psql = "psql"
        cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
        if cands:
            psql = cands[-1]
        p = subprocess.run([psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                            self.ours.env["MC_PG_CONNINFO"]],
                           input=sql, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout)
        if p.returncode != 0:
            raise BenchError("psql: %s" % p.stderr[-2000:])
        return p.stdout

    @staticmethod
    def shard_of(local_key, domain, shard_count):
        """controller/account.c shard_of: FNV-1a of 'local@domain'."""
        h = 2166136261
        for ch in (local_key + "@" + domain).encode():
            h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
        return h % shard_count

    def bulk_accounts(self, n):
        """The cheapest honest way to a directory of n accounts, done the
        way the controller commits one mutation (controller/db.c
        ctrl_change): with the controller stopped, ONE transaction inserts
        the rows (shard computed as controller/account.c does, the argon2id
        hash and SCRAM verifier of one account made by mailctl reused for
        every row), bumps cluster.version by one and records one change_log
        row (kind 2 account, op 0 upsert) per account at that version. The
        controller is started again and reads that version as published;
        running members learn it from their next heartbeat and, having no
        delta for it, fetch a snapshot. Returns (insert_s, version)."""
        tmpl = "tmpl@" + DOMAIN
        self.ours.add_account(tmpl, "template-pw-bench")
        row = self.psql("SELECT a.password_hash, a.scram_sha256, a.domain_id, c.shard_count"
                        " FROM accounts a JOIN domains d ON d.id = a.domain_id,"
                        " cluster c WHERE d.name = '%s' AND a.local_key = 'tmpl'"
                        % DOMAIN).strip().split("|")
        pw_hash, scram, domain_id, shard_count = row[0], row[1], int(row[2]), int(row[3])
        lines = ["BEGIN;",
                 "CREATE TEMP TABLE bench_before AS SELECT coalesce(max(id), 0) AS id FROM accounts;",
                 "COPY accounts (domain_id, local_part, local_key, password_hash, shard,"
                 " scram_sha256) FROM STDIN;"]
        for i in range(n):
            local = "bulk%06d" % i
            lines.append("%d\t%s\t%s\t%s\t%d\t%s" % (domain_id, local, local, pw_hash,
                                                     self.shard_of(local, DOMAIN, shard_count),
                                                     scram))
        lines += ["\\.",
                  "UPDATE cluster SET version = version + 1;",
                  "INSERT INTO change_log (version, kind, object_id, op)"
                  " SELECT (SELECT version FROM cluster), 2, id, 0 FROM accounts"
                  " WHERE id > (SELECT id FROM bench_before);",
                  "COMMIT;",
                  "SELECT version FROM cluster;"]
        log("stopping the controller; bulk insert of %d accounts" % n)
        self.ours.cluster("stop-daemon", "controller")
        t = time.monotonic()
        out = self.psql("\n".join(lines) + "\n")
        insert_s = time.monotonic() - t
        version = int(out.strip().splitlines()[-1])
        self.ours.cluster("start-daemon", "controller")
        return insert_s, version

    def snapshot_log_s(self, name, since_line):
        """From the member's log after line `since_line`: (seconds from
        'state ... -> syncing' to 'snapshot loaded' (request, transfer,
        decode, load in memory), seconds from there to 'directory saved'
        (directory.json written), accounts in the snapshot)."""
        lines = read_lines(self.ours.log_path(name))[since_line:]
        t0 = t1 = t2 = None
        accounts = None
        for line in lines:
            if t0 is None and re.search(r"cfgsync state \S+ -> syncing", line):
                t0 = parse_ts(line)
            m = re.search(r"cfgsync snapshot loaded .* accounts=(\d+)", line)
            if m and t0 is not None:
                accounts = int(m.group(1))
                t1 = parse_ts(line)
            if t1 is not None and re.search(r"cfgsync directory saved", line):
                t2 = parse_ts(line)
                break
        timeouts = sum(1 for line in lines if "no reply in time" in line or
                       "unreachable (timeout)" in line)
        self.raw.setdefault("sync_timeouts", {})[name] = timeouts
        if t0 is None or t1 is None or t2 is None:
            return None, None, accounts
        return t1 - t0, t2 - t1, accounts

    def wait_applied(self, version, names=None, timeout=900):
        """Seconds until every live member (or those named) reports
        applied_version >= version in mailctl status."""
        t = time.monotonic()
        while True:
            st = self.ours.mailctl("status")
            want = [x for x in st["nodes"] if x.get("live") and
                    (names is None or x["name"] in names)]
            if want and (names is None or len(want) == len(names)) and \
                    all(x["applied_version"] >= version for x in want):
                return time.monotonic() - t
            if time.monotonic() - t > timeout:
                raise BenchError("members did not apply version %d" % version)
            time.sleep(0.2)  # the controller serves one request at a time

    def scaling(self):
        c = self.cfg
        n = c["accounts"]
        members = self.ours.members()[1:]
        marks = {m: len(read_lines(self.ours.log_path(m))) for m in members}
        insert_s, version = self.bulk_accounts(n)
        catchup = self.wait_applied(version, members)
        run_fetch, run_save, acc = self.snapshot_log_s("node-1", marks["node-1"])
        total = n + len(self.ours.passwords)
        self.check(acc is not None and acc >= n,
                   "scaling: node-1 loaded a snapshot with %s accounts (>= %d)" % (acc, n))
        # A fresh node: registers, fetches the whole snapshot, applies it.
        version = self.ours.mailctl("status")["version"]
        t = time.monotonic()
        self.ours.cluster("add-node", timeout=900)
        fresh_live = time.monotonic() - t
        fresh = self.ours.env["MC_NODES"].split()[-1]
        fresh_applied = fresh_live + self.wait_applied(version, [fresh])
        fresh_fetch, fresh_save, fresh_acc = self.snapshot_log_s(fresh, 0)
        self.check(fresh_acc is not None and fresh_acc >= n,
                   "scaling: fresh %s loaded %s accounts" % (fresh, fresh_acc))
        # A restart: node-1 reloads its saved directory.json.
        time.sleep(2)  # let the shard moves of the new node settle
        version = self.ours.mailctl("status")["version"]
        self.ours.cluster("stop-daemon", "node-1")
        t = time.monotonic()
        self.ours.cluster("start-daemon", "node-1", timeout=900)
        restart_live = time.monotonic() - t
        restart_applied = restart_live + self.wait_applied(version, ["node-1"])
        time.sleep(2)
        rss_big = {m: mem_kb(self.ours.pid(m)) for m in self.ours.members()}
        delta, delta_log, delta_saved = [], [], []
        for k in range(c["delta_samples"]):
            t = time.monotonic()
            r = self.ours.add_account("delta%d@%s" % (k, DOMAIN), "delta-pw-%d-bench" % k)
            delta.append(time.monotonic() - t)
            delta_log.append(self.log_apply_ms(r.get("version", 0)))
            delta_saved.append(self.log_apply_ms(r.get("version", 0), persisted=True))
        self.check(len(delta) == c["delta_samples"] and
                   all(v is not None for v in delta_log + delta_saved),
                   "scaling: %d account adds --wait with %d accounts present"
                   % (len(delta), total))
        nmem = len(self.ours.members()) - 1
        self.raw["scaling"] = {
            "accounts": n, "insert_s": insert_s, "catchup_s": catchup,
            "running_snapshot_fetch_load_s": run_fetch, "running_snapshot_save_s": run_save,
            "fresh_live_s": fresh_live, "fresh_applied_s": fresh_applied,
            "fresh_fetch_load_s": fresh_fetch, "fresh_save_s": fresh_save,
            "restart_live_s": restart_live, "restart_applied_s": restart_applied,
            "delta_wait_s": delta, "delta_log_s": delta_log, "delta_saved_s": delta_saved,
            "rss_kb_with_directory": rss_big}
        sec = "6. Scaling: directory of %d accounts (%d members)" % (n, nmem)
        self.ours_row(sec, "bulk insert (one transaction, controller stopped)", "s",
                      stat([insert_s]), "COPY of %d rows + version bump + change_log" % n)
        self.ours_row(sec, "running members catch up after the bulk change", "s",
                      stat([catchup]), "controller start -> all applied (mailctl status); "
                      "includes 1-2 heartbeats (1 s) before a snapshot is asked for")
        self.ours_row(sec, "running node-1: snapshot request -> loaded (log)", "s",
                      stat([run_fetch]), "request, transfer, decode, load in memory")
        self.ours_row(sec, "running node-1: loaded -> saved (log)", "s",
                      stat([run_save]), "directory.json written (fsync) on a worker; "
                      "the node serves with the new directory meanwhile")
        self.ours_row(sec, "fresh node: cluster add-node until live", "s",
                      stat([fresh_live]), "live = registered and heartbeating")
        self.ours_row(sec, "fresh node: start until it applied the directory", "s",
                      stat([fresh_applied]), "mailctl status applied_version")
        self.ours_row(sec, "fresh node: snapshot request -> loaded (log)", "s",
                      stat([fresh_fetch]), "")
        self.ours_row(sec, "fresh node: loaded -> saved (log)", "s", stat([fresh_save]), "")
        self.ours_row(sec, "node-1 restart (saved directory.json) until applied", "s",
                      stat([restart_applied]), "")
        self.ours_row(sec, "delta: account add --wait", "ms", stat_ms(delta),
                      "%d samples, %d accounts present" % (len(delta), total))
        self.ours_row(sec, "delta: publish -> applied on every member (logs)", "ms",
                      stat_ms([v for v in delta_log if v is not None]), "")
        self.ours_row(sec, "delta: publish -> applied and saved on every member (logs)", "ms",
                      stat_ms([v for v in delta_saved if v is not None]),
                      "each delta rewrites the whole directory.json (on a worker)")
        for m in ("controller", "relay-1", "node-1"):
            self.ours_row(sec, "RSS of %s with the directory loaded" % m, "MB",
                          stat([rss_big.get(m, 0) / 1024.0]), "")

    # ---- the whole run ----

    def system_pids(self, kids):
        pids = []
        for s in self.systems:
            try:
                pids += s.groups(kids)["all"]
            except Exception:
                pass
        # Postgres sessions and Redis of ours, Postfix/Dovecot children.
        return process_tree(pids, kids)

    def phase(self, text):
        log("%s (load average %s)" % (text, sh("cut -d' ' -f1-3 /proc/loadavg")))

    def run(self):
        c = self.cfg
        self.setup()
        idle = self.idle_memory("idle")

        self.phase("figure 1: rates (%d runs x %d messages)" % (c["runs"], c["rate_msgs"]))
        rates = {s.name: [] for s in self.systems}
        for run in range(1, c["runs"] + 1):
            for s in self.systems:
                rates[s.name].append(self.rate_run(s, run))
        self.raw["rates"] = rates

        self.phase("figure 2: latency (%d runs x %d messages)" % (c["runs"], c["latency_msgs"]))
        lats = {s.name: [] for s in self.systems}
        for run in range(1, c["runs"] + 1):
            for s in self.systems:
                lats[s.name].append(self.latency_run(s, run))
        self.raw["latency"] = lats

        self.phase("figure 3: IMAP on a %d-message mailbox" % c["fill"])
        imaps = {s.name: [] for s in self.systems}
        filled = {s.name: self.fill(s) for s in self.systems}
        for run in range(1, c["runs"] + 1):
            for s in self.systems:
                imaps[s.name].append(self.imap_run(s, run) if filled[s.name] else None)
        self.raw["imap"] = imaps
        after = self.idle_memory("after_load")

        self.rate_rows(rates, lats, imaps)
        self.memory_rows(idle, after, rates)

        self.phase("figure 5: config propagation")
        self.propagation()
        self.phase("figure 6: scaling to %d accounts" % c["accounts"])
        self.scaling()

        hits = self.ours.sanitizer_reports()
        self.check(not hits, "no sanitizer report in our daemons' logs%s"
                   % ("" if not hits else ":\n" + "\n".join(hits[:20])))
        missing = [r[1] for r in self.rows if r[6] in ("both", "ours") and r[3] is None]
        self.check(self.rows and not missing, "every figure of ours was produced%s"
                   % ("" if not missing else ": missing " + ", ".join(missing)))
        missing = [r[1] for r in self.rows if r[6] in ("both", "theirs") and r[4] is None]
        self.check(self.rows and not missing, "every figure of theirs was produced%s"
                   % ("" if not missing else ": missing " + ", ".join(missing)))

    def rate_rows(self, rates, lats, imaps):
        c = self.cfg

        def col(d, key, scale=1.0):
            return {n: stat([r[key] * scale if r else None for r in d[n]]) for n in d}

        sec = ("1. SMTP rates: %d x %d KB messages, %d sessions (smtp-source)"
               % (c["rate_msgs"], c["size"] // 1024, c["sessions"]))
        for label, key in (("acceptance rate", "accept_rate"),
                           ("end-to-end delivery rate (visible in IMAP)", "deliver_rate")):
            v = col(rates, key)
            self.row(sec, label, "msg/s", v["ours"], v["theirs"])
        sec = "2. Latency MX 250 -> visible over IMAP (%d messages, one at a time)" % c["latency_msgs"]
        for key in ("p50", "p90", "p99"):
            v = col(lats, key, 1e3)
            self.row(sec, key, "ms", v["ours"], v["theirs"])
        v = col(lats, "data_p50", 1e3)
        self.row(sec, "SMTP DATA -> 250 (p50)", "ms", v["ours"], v["theirs"],
                 "the durable write before the 250")
        sec = "3. IMAP on a %d-message mailbox" % c["fill"]
        for label, key, unit, scale in (
                ("SELECT INBOX", "select", "ms", 1e3),
                ("UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)", "fetch_env", "ms", 1e3),
                ("%d x UID FETCH n BODY.PEEK[] (one per command)" % c["body_fetches"],
                 "bodies", "s", 1.0),
                ("UID SEARCH HEADER SUBJECT", "search_header", "ms", 1e3),
                ("UID SEARCH SUBJECT", "search_subject", "ms", 1e3)):
            v = col(imaps, key, scale)
            self.row(sec, label, unit, v["ours"], v["theirs"])
        fill = self.raw.get("fill_s", {})
        self.row(sec, "time to fill the mailbox (SMTP to visible)", "s",
                 stat([fill.get("ours")]), stat([fill.get("theirs")]), "one fill each")

    def memory_rows(self, idle, after, rates):
        mb = 1 / 1024.0
        sec = "4. Memory (MB; ours = controller + relay + node unless said)"
        o, t = idle["ours"], idle["theirs"]
        self.row(sec, "RSS idle", "MB", stat([o["daemons"]["rss"] * mb]),
                 stat([t["all"]["rss"] * mb]),
                 "theirs: Postfix master+children, Dovecot master+children (%d procs)"
                 % t["all"]["procs"])
        self.row(sec, "RSS idle incl. Postgres + Redis", "MB", stat([o["all"]["rss"] * mb]),
                 stat([t["all"]["rss"] * mb]), "ours incl. %d Postgres procs + Redis"
                 % o["postgres"]["procs"])
        self.row(sec, "PSS idle", "MB", stat([o["daemons"]["pss"] * mb]),
                 stat([t["all"]["pss"] * mb]), "shared pages split between processes")
        self.row(sec, "PSS idle incl. Postgres + Redis", "MB", stat([o["all"]["pss"] * mb]),
                 stat([t["all"]["pss"] * mb]))

        def peak(name, key):
            return stat([r["peak"].get(key, 0) * mb if r else None for r in rates[name]])

        self.row(sec, "RSS peak under load (figure 1)", "MB", peak("ours", "daemons/rss"),
                 peak("theirs", "all/rss"))
        self.row(sec, "RSS peak under load incl. Postgres + Redis", "MB",
                 peak("ours", "all/rss"), peak("theirs", "all/rss"))
        self.row(sec, "PSS peak under load", "MB", peak("ours", "daemons/pss"),
                 peak("theirs", "all/pss"))
        self.row(sec, "PSS peak under load incl. Postgres + Redis", "MB",
                 peak("ours", "all/pss"), peak("theirs", "all/pss"))
        self.row(sec, "RSS idle after figures 1-3", "MB",
                 stat([after["ours"]["daemons"]["rss"] * mb]),
                 stat([after["theirs"]["all"]["rss"] * mb]),
                 "theirs: %d procs (idle smtpd, lmtp, imap processes wait to be reused)"
                 % after["theirs"]["all"]["procs"])
        self.row(sec, "PSS idle after figures 1-3", "MB",
                 stat([after["ours"]["daemons"]["pss"] * mb]),
                 stat([after["theirs"]["all"]["pss"] * mb]))
        for name, kb in sorted(idle["ours_per_daemon"].items()):
            self.row(sec, "idle RSS of %s (target < 15 MB)" % name, "MB",
                     stat([kb * mb if kb else None]), None, expect="ours")
        self.row(sec, "idle RSS of Postgres (all its processes)", "MB",
                 stat([o["postgres"]["rss"] * mb]), None, expect="ours")
        self.row(sec, "idle RSS of Redis", "MB", stat([o["redis"]["rss"] * mb]), None,
                 expect="ours")
        self.row(sec, "idle RSS of Postfix (master + children)", "MB", None,
                 stat([t["postfix"]["rss"] * mb]), expect="theirs")
        self.row(sec, "idle RSS of Dovecot (master + children)", "MB", None,
                 stat([t["dovecot"]["rss"] * mb]), expect="theirs")


def stat_ms(values):
    return stat([v * 1e3 for v in values if v is not None])


# ------------------------------------------------------------------- output

def fmt(v):
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    return "%.2f" % v


def cell(s):
    if s is None:
        return "n/a"
    if s["n"] == 1:
        return fmt(s["median"])
    return "%s [%s–%s]" % (fmt(s["median"]), fmt(s["min"]), fmt(s["max"]))


def table(rows):
    out = []
    section = None
    for sec, label, unit, o, t, note, _ in rows:
        if sec != section:
            section = sec
            out += ["", "### " + sec, "",
                    "| figure | unit | ours: median [min–max] | theirs: median [min–max] "
                    "| ours/theirs | note |",
                    "|---|---|---|---|---|---|"]
        ratio = "n/a"
        if o is not None and t is not None and t["median"]:
            ratio = "%.2f" % (o["median"] / t["median"])
        out.append("| %s | %s | %s | %s | %s | %s |"
                   % (label, unit, cell(o), cell(t), ratio, note))
    return "\n".join(out) + "\n"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, universal_newlines=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine():
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
    return {
        "nproc": sh("nproc"),
        "cpu": cpu,
        "kernel": sh("uname -r"),
        "memory": sh("free -h | sed -n 2p"),
        "disk": sh("df -h /var/tmp | tail -1") + "; " + sh(
            "lsblk -dno NAME,ROTA,SIZE,MODEL 2>/dev/null | head -3 | tr '\\n' ';'"),
        "postfix": sh("postconf -d mail_version 2>/dev/null | cut -d' ' -f3"),
        "dovecot": sh("dovecot --version"),
        "postgres": sh("ls /usr/lib/postgresql | tail -1"),
        "commit": binaries_commit(),
    }


def binaries_commit():
    """The commit the binaries in MC_BIN were built from: the source folder
    named by its CMakeCache.txt, a git checkout (flagged when it has
    uncommitted changes) or an export with a COMMIT file."""
    src = ROOT
    mc_bin = os.environ.get("MC_BIN", "")
    try:
        with open(os.path.join(mc_bin, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_HOME_DIRECTORY:INTERNAL="):
                    src = line.split("=", 1)[1].strip()
    except OSError:
        pass
    if os.path.exists(os.path.join(src, "COMMIT")):
        with open(os.path.join(src, "COMMIT")) as f:
            return f.read().strip()[:12] + " (clean export in %s)" % src
    commit = sh("git -C %s rev-parse --short=12 HEAD" % src)
    dirty = sh("git -C %s status --porcelain --untracked-files=no" % src)
    return commit + (" + uncommitted changes in %s" % src if dirty else "")


def report(bench, mach, load_before, load_after, elapsed, others):
    lines = ["# Benchmark run %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "",
             "- mode: %s, runs: %d, wall time %.0f s"
             % ("smoke" if bench.args.smoke else "full", bench.cfg["runs"], elapsed),
             "- machine: %s CPUs (%s), kernel %s" % (mach["nproc"], mach["cpu"], mach["kernel"]),
             "- memory: %s" % mach["memory"],
             "- disk: %s" % mach["disk"],
             "- Postfix %s, Dovecot %s, Postgres %s; ours: commit %s, binaries %s"
             % (mach["postfix"], mach["dovecot"], mach["postgres"], mach["commit"],
                bench.args.mc_bin),
             "- load average before: %s; after: %s (the benchmark's own load included)"
             % (load_before, load_after),
             "- CPU used by other processes during the run: %s"
             % (", ".join("%s %.1f s" % kv for kv in others[:8] if kv[1] >= 0.5)
                or "none above 0.5 s")]
    return "\n".join(lines) + "\n" + table(bench.rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--out")
    ap.add_argument("--json")
    ap.add_argument("--base-port", type=int)
    ap.add_argument("--work")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--mc-bin", default=os.environ.get("MC_BIN", os.path.join(ROOT, "build")))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=N",
                    help="override one count, e.g. --set fill=2000 (keys: %s)"
                    % ", ".join(sorted(FULL)))
    args = ap.parse_args()
    cfg = dict(SMOKE if args.smoke else FULL)
    if args.runs:
        cfg["runs"] = args.runs
    for kv in args.set:
        k, _, v = kv.partition("=")
        if k not in cfg or not v.isdigit() or int(v) < 1:
            ap.error("--set %s: unknown key or not a positive number" % kv)
        cfg[k] = int(v)
    if cfg["needles"] >= cfg["fill"]:
        ap.error("needles must be fewer than fill")
    if args.base_port is None:
        args.base_port = 32010 if args.smoke else 25010
    if args.work is None:
        args.work = "/var/tmp/mc-bench-%d" % args.base_port
    args.work = os.path.abspath(args.work)

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    bench = Bench(args, cfg)
    # A run killed earlier may have left its systems up in the same folder.
    bench.ours.down()
    bench.theirs.down()
    if os.path.isdir(args.work):
        shutil.rmtree(args.work)
    os.makedirs(args.work)
    os.chmod(args.work, 0o755)

    os.environ["MC_BIN"] = args.mc_bin
    load_before = sh("cut -d' ' -f1-3 /proc/loadavg")
    foreign = ForeignCpu(bench.system_pids)
    foreign.start()
    start = time.monotonic()
    failed_with = None
    try:
        bench.run()
    except KeyboardInterrupt as e:
        failed_with = "interrupted (%s)" % e
    except Exception as e:  # report, tear down, fail
        import traceback
        traceback.print_exc()
        failed_with = "%s: %s" % (type(e).__name__, e)
    finally:
        log("tearing down")
        try:
            bench.ours.down()
        finally:
            bench.theirs.down()
    if failed_with:
        bench.check(False, "bench ran to the end: " + failed_with)
    elapsed = time.monotonic() - start
    others = foreign.finish()
    bench.raw["foreign_cpu_s"] = others
    load_after = sh("cut -d' ' -f1-3 /proc/loadavg")
    text = report(bench, machine(), load_before, load_after, elapsed, others)
    print(text, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cfg": cfg, "raw": bench.raw,
                       "rows": [list(r) for r in bench.rows],
                       "checks": bench.checks}, f, indent=1, default=str)
    passed = sum(1 for ok, _ in bench.checks if ok)
    failed = len(bench.checks) - passed
    if args.keep or failed:
        log("kept %s (logs of both systems)" % args.work)
    else:
        shutil.rmtree(args.work, ignore_errors=True)
    for ok, text in bench.checks:
        if not ok:
            print("FAILED: " + text)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
