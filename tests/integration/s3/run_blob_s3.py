#!/usr/bin/env python3
"""Runs blob_s3_test (lib/blob_s3_test.c) against a real S3-compatible server.

Starts two instances of the test server (server.js: @20minutes/s3rver,
installed by `npm ci` in this folder) on 127.0.0.1 with OS-chosen ports,
each in its own temporary data folder, each with the bucket "mcbucket":

- strict: verifies every AWS Signature V4 (credentials S3RVER/S3RVER);
  blob_s3_test uses it for path-style traffic and for the wrong-secret and
  unknown-key refusals;
- lenient: accepts any well-formed signature; used for virtual-host style
  (bucket.s3.localhost), which the fork cannot verify (it signs the bucket
  into the canonical URI), and read back path-style.

Then runs `blob_s3_test STRICT LENIENT_PATH LENIENT_VHOST`, passes its
output through (it ends with "N passed, N failed") and returns its exit
status. The servers are stopped by closing their stdin, then by signalling
their PIDs (only the processes started here). Standard library only.

usage: run_blob_s3.py PATH_TO_BLOB_S3_TEST
"""

import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.js")
MODULE = os.path.join(HERE, "node_modules", "@20minutes", "s3rver")
BUCKET = "mcbucket"
START_TIMEOUT = 30
TEST_TIMEOUT = 300


def start_server(node, data_dir, lenient):
    args = [node, SERVER]
    if lenient:
        args.append("--allow-mismatched-signatures")
    args += [data_dir, "localhost", BUCKET]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    line = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(b"port="):
                return proc, int(line[5:])
            if not line:
                break
        if proc.poll() is not None:
            break
    stop_server(proc)
    raise RuntimeError("test S3 server did not start: %r" % line)


def stop_server(proc):
    if proc.poll() is None:
        try:
            proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for f in (proc.stdin, proc.stdout):
        if f is not None and not f.closed:
            f.close()


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    test_binary = sys.argv[1]
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        print("run_blob_s3: node not found (scripts/deps installs it)")
        print("0 passed, 1 failed")
        return 1
    if not os.path.isdir(MODULE):
        print("run_blob_s3: %s is missing: run `npm ci` in %s "
              "(scripts/deps does it)" % (MODULE, HERE))
        print("0 passed, 1 failed")
        return 1
    tmp = tempfile.mkdtemp(prefix="blob_s3.")
    servers = []
    try:
        strict, strict_port = start_server(node, os.path.join(tmp, "strict"),
                                           False)
        servers.append(strict)
        lenient, lenient_port = start_server(
            node, os.path.join(tmp, "lenient"), True)
        servers.append(lenient)
        args = [test_binary,
                "http://127.0.0.1:%d" % strict_port,
                "http://127.0.0.1:%d" % lenient_port,
                "http://s3.localhost:%d" % lenient_port]
        print("run_blob_s3: " + " ".join(args), flush=True)
        try:
            result = subprocess.run(args, timeout=TEST_TIMEOUT)
            return result.returncode
        except subprocess.TimeoutExpired:
            print("run_blob_s3: blob_s3_test timed out")
            print("0 passed, 1 failed")
            return 1
    except RuntimeError as e:
        print("run_blob_s3: %s" % e)
        print("0 passed, 1 failed")
        return 1
    finally:
        for proc in servers:
            stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
