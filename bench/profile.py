#!/usr/bin/python3
"""Profiles of the IMAP and SMTP paths with perf (bench/RESULTS.md,
"Profiles and the fixes they led to").

  bench/profile.py imap [--n 10000]   a mailbox of N messages (APPEND),
      then perf record on mail-node during ENVELOPE fetches, SEARCH
      SUBJECT and single BODY.PEEK[] fetches; prints server-side times
      (a raw client that does not parse the responses)
  bench/profile.py smtp [--n 2000]    smtp-source -s 20 -l 10240 to the
      relay's MX, perf record on mail-relay and mail-node until all N are
      visible over IMAP; prints the rates

Then: perf report -i OUT/node.data --no-children --sort dso,symbol
Runs a private cluster (tests/integration/harness.py) on base port 26010
(imap) or 26210 (smtp) with the binaries of MC_BIN (default build/), on
loopback only; writes perf data into --out (default /tmp/mc-profile).
Needs root (perf) and perf installed."""

import argparse
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("MC_BIN", os.path.join(HERE, "..", "build"))

from harness import Cluster, add_accounts  # noqa: E402


def perf_start(out, name, pid):
    return subprocess.Popen(["perf", "record", "-g", "-o",
                             os.path.join(out, name + ".data"), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_stop(procs):
    for p in procs:
        p.send_signal(2)
        p.wait(60)


def raw_session(c, commands):
    """One IMAPS session: each command's time and response bytes."""
    host, port = c.imaps()
    s = c.imap_context().wrap_socket(socket.create_connection((host, port)),
                                     server_hostname=host)
    f = s.makefile("rb")
    f.readline()
    times = []
    for i, cmd in enumerate(commands):
        tag = b"p%d" % i
        t0 = time.monotonic()
        s.sendall(tag + b" " + cmd + b"\r\n")
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("connection closed at %r" % cmd)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise SystemExit("%r: %r" % (cmd, line))
                break
        times.append(time.monotonic() - t0)
    s.close()
    return times


def imap(args):
    import test_imap_large as large  # the 10k-mailbox fill of the tests
    large.N = args.n
    c = Cluster(base_port=26010, nodes=1, relays=1)
    c.up()
    try:
        large.setup(c)
        large.test_fill(c)
        login = b'LOGIN "%s" "%s"' % (large.USER.encode(), large.PASSWORD.encode())
        fetch = b"UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)"
        search = b"UID SEARCH SUBJECT 09999"
        bodies = [b"UID FETCH %d BODY.PEEK[]" % i for i in range(1, min(args.n, 1000) + 1)]
        perf = [perf_start(args.out, "node", int(c.env["MC_NODE_1_PID"]))]
        time.sleep(1)
        t = raw_session(c, [login, b"SELECT INBOX"] + [fetch] * 5 + [search] * 5 + bodies)
        perf_stop(perf)
        print("SELECT %.1f ms" % (t[1] * 1e3))
        print("ENVELOPE fetch: %s ms" % " ".join("%.0f" % (x * 1e3) for x in t[2:7]))
        print("SEARCH SUBJECT: %s ms" % " ".join("%.0f" % (x * 1e3) for x in t[7:12]))
        print("%d BODY.PEEK[] fetches: %.3f s" % (len(bodies), sum(t[12:])))
    finally:
        c.down()


def smtp(args):
    import imaplib
    c = Cluster(base_port=26210, nodes=1, relays=1)
    c.up()
    try:
        c.ok("domain", "add", "bench.test")
        add_accounts(c, {"u@bench.test": "pw-profile-1"})
        host, port = c.imaps()
        im = imaplib.IMAP4_SSL(host, port, ssl_context=c.imap_context())
        im.login("u@bench.test", "pw-profile-1")

        def count():
            _, d = im.status("INBOX", "(MESSAGES)")
            return int(d[0].split()[-1].strip(b")"))
        perf = [perf_start(args.out, "relay", int(c.env["MC_RELAY_1_PID"])),
                perf_start(args.out, "node", int(c.env["MC_NODE_1_PID"]))]
        time.sleep(1)
        t0 = time.monotonic()
        subprocess.run(["/usr/sbin/smtp-source", "-s", "20", "-m", str(args.n),
                        "-l", "10240", "-f", "s@example.net", "-t", "u@bench.test",
                        c.env["MC_RELAY_1_MX"]], check=True, timeout=600)
        t1 = time.monotonic()
        while count() < args.n and time.monotonic() - t0 < 600:
            time.sleep(0.05)
        t2 = time.monotonic()
        perf_stop(perf)
        im.logout()
        print("accepted %.0f msg/s, delivered %.0f msg/s (%d messages)"
              % (args.n / (t1 - t0), args.n / (t2 - t0), args.n))
    finally:
        c.down()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path", choices=("imap", "smtp"))
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--out", default="/tmp/mc-profile")
    args = ap.parse_args()
    args.n = args.n or (10000 if args.path == "imap" else 2000)
    os.makedirs(args.out, exist_ok=True)
    (imap if args.path == "imap" else smtp)(args)


if __name__ == "__main__":
    main()
