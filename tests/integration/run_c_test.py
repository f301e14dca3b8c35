"""Runs a C checker program against a fresh cluster that has Postgres and
Redis but no daemons besides the controller: the program gets the
cluster.env variables in its environment and must print a final
"N passed, N failed" line. Usage: run_c_test.py PROGRAM BASE_PORT"""

import os
import subprocess
import sys

from harness import Cluster, log, run_tests


def main():
    program, base_port = sys.argv[1], int(sys.argv[2])

    def checks(c):
        env = dict(os.environ)
        env.update(c.env)
        p = subprocess.run([program], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=300)
        log(p.stdout.rstrip())
        assert p.returncode == 0, "%s failed (exit %d)" % (program, p.returncode)
        assert " 0 failed" in p.stdout

    run_tests(Cluster(base_port=base_port, nodes=0, relays=0),
              [(os.path.basename(program), checks)])


if __name__ == "__main__":
    main()
