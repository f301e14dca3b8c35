"""Runs the C protocol checks (controller_proto) against a fresh cluster
with no daemons but the controller: versions, delta topics, snapshots,
registration. See controller_proto.c."""

import os
import subprocess

from harness import Cluster, MC_BIN, log, run_tests


def proto_checks(c):
    tool = os.environ.get("MC_CONTROLLER_PROTO") or os.path.join(
        MC_BIN, "tests", "integration", "controller_proto")
    env = dict(os.environ)
    env.update(c.env)
    p = subprocess.run([tool], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=120)
    log(p.stdout.rstrip())
    assert p.returncode == 0, "controller_proto failed (exit %d)" % p.returncode
    assert " 0 failed" in p.stdout


if __name__ == "__main__":
    run_tests(Cluster(base_port=17560, nodes=0, relays=0),
              [("controller protocol checks", proto_checks)])
