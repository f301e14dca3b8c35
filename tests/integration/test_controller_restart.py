"""The controller goes away: killed with SIGKILL, nodes and relays keep
running with the directory they have (also across their own restart), and
once the controller is back they pick up changes within a few seconds."""

import os
import signal
import time

from harness import (Cluster, dir_account, dir_alias, dir_domain, pid_alive,
                     run_tests, wait_until)

state = {}


def holds_objects(d):
    return (d is not None and dir_domain(d, "keep.test") is not None and
            dir_account(d, "carol@keep.test") is not None and
            dir_alias(d, "sales@keep.test") is not None)


def test_setup(c):
    c.ok("domain", "add", "keep.test")
    c.ok("account", "add", "carol@keep.test", input="carol-pw-1\n")
    r = c.ok("alias", "add", "sales@keep.test", "carol@keep.test", "--wait")
    state["version"] = r["version"]
    c.wait_directories(r["version"], timeout=3)
    for n in c.members():
        assert holds_objects(c.directory(n)), n


def test_nodes_keep_serving_without_controller(c):
    pid = c.pid("controller")
    assert pid_alive(pid), pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 5, what="controller gone")
    # Several heartbeat periods with nobody answering.
    time.sleep(4)
    for n in c.members():
        assert pid_alive(c.pid(n)), "%s died without the controller" % n
        d = c.directory(n)
        assert holds_objects(d), "%s lost its directory: %r" % (n, d)
        assert d["version"] == state["version"], (n, d["version"], state)
    code, out, err = c.mailctl("status")
    assert code == 3, "mailctl status with controller dead: exit %d %s" % (
        code, err)


def test_node_restart_without_controller_loads_state(c):
    name = c.node_names()[-1]
    c.cluster("stop-daemon", name)
    assert not c.pid(name)
    c.cluster("start-daemon", name, "--no-wait")
    pid = c.pid(name)
    time.sleep(2)
    assert pid_alive(pid), "%s exited while the controller is away:\n%s" % (
        name, c.read_log(name)[-2000:])
    d = c.directory(name)
    assert holds_objects(d), d
    assert d["version"] == state["version"], (d["version"], state)


def test_controller_restart_resumes_publishing(c):
    c.cluster("start-daemon", "controller")
    assert pid_alive(c.pid("controller"))
    r = c.ok("domain", "add", "back.test")
    assert r["version"] > state["version"], (r, state)
    took = c.wait_applied(r["version"], timeout=10)
    print("  change after restart applied everywhere in %.2fs" % took)
    c.wait_directories(r["version"], timeout=3)
    for n in c.members():
        d = c.directory(n)
        assert dir_domain(d, "back.test") is not None, (n, d)
        assert holds_objects(d), (n, d)
    # And every member is reported live again.
    st = c.status()
    nodes = c.status_nodes(st)
    for n in c.members():
        assert nodes.get(n, {}).get("live") is True, (n, nodes.get(n))
    state["version"] = r["version"]


def test_second_change_is_fast_again(c):
    r = c.ok("alias", "add", "more@back.test", "carol@keep.test")
    took = c.wait_applied(r["version"], timeout=5)
    assert took <= 1.0, "publishing after restart is slow: %.2fs" % took


if __name__ == "__main__":
    run_tests(Cluster(base_port=27430, nodes=2, relays=1), [
        ("setup", test_setup),
        ("nodes keep serving without the controller",
         test_nodes_keep_serving_without_controller),
        ("node restarted while controller away loads its state",
         test_node_restart_without_controller_loads_state),
        ("controller restart resumes publishing",
         test_controller_restart_resumes_publishing),
        ("publishing after restart is live again",
         test_second_change_is_fast_again),
    ])
