"""Crash safety of inbound mail: a message the relay acknowledged with 250
is delivered exactly once, whatever is killed when.

- kill -9 the relay right after the last 250 of a batch (the node up, so
  deliveries are racing the kill), restart it: every message once;
- the same with the node stopped, so the whole batch sits in the queue at
  the kill: the restarted relay delivers what its queue holds;
- kill -9 the node while it takes a batch (some stored, some not, some
  perhaps stored without the relay having heard the 250), restart it:
  nothing lost, nothing twice (the node deduplicates a redelivery: the
  blob carries the relay's queue id).

Messages are counted by Message-ID in the store, and each stored blob is
compared with what was sent. Retries are fast here (MC_RETRY_BASE_MS=300,
MC_RETRY_MAX_MS=1500)."""

import collections
import concurrent.futures
import os
import smtplib

from harness import (Cluster, log, run_tests, wait_port,
                     wait_until)

DOMAIN = "crash.test"
SENDER = "sender@example.net"
WAIT = 60
sent = collections.defaultdict(dict)  # address -> {message-id: content}


def setup(c):
    version = c.ok("domain", "add", DOMAIN)["version"]
    for user in ("kim", "lee", "max"):
        version = c.ok("account", "add", "%s@%s" % (user, DOMAIN),
                       input="pw-%s-1234\n" % user)["version"]
    c.wait_applied(version, timeout=10)
    wait_port(*c.mx(), timeout=20)


def message(tag, i, size):
    body = b"".join(b"%s line %05d %s\r\n" % (tag.encode(), n, b"q" * 60)
                    for n in range(size // 80 + 1))
    return (b"From: <%s>\r\nSubject: %s %d\r\n"
            b"Message-ID: <%s-%d@example.net>\r\n\r\n" % (
                SENDER.encode(), tag.encode(), i, tag.encode(), i)) + body


def send_batch(c, address, tag, count, size=4000, sessions=4):
    """Send count messages over parallel sessions; returns once every one
    got its 250 (the last reply is the moment to kill). The sessions are
    left without QUIT: the caller's kill ends them."""
    host, port = c.mx()
    msgs = [message(tag, i, size) for i in range(count)]
    conns = []

    def run(part):
        s = smtplib.SMTP(host, port, timeout=60)
        conns.append(s)
        for i in part:
            refused = s.sendmail(SENDER, [address], msgs[i])
            assert refused == {}, refused
    parts = [range(k, count, sessions) for k in range(sessions)]
    with concurrent.futures.ThreadPoolExecutor(sessions) as ex:
        for f in [ex.submit(run, p) for p in parts]:
            f.result()
    for i, m in enumerate(msgs):
        sent[address]["<%s-%d@example.net>" % (tag, i)] = m
    return conns


def close_all(conns):
    for s in conns:
        try:
            s.close()
        except OSError:
            pass


def check_exactly_once(c, address, settle=3.0):
    """Every message sent to address stored once, byte-identical
    (harness Cluster.check_exactly_once)."""
    return len(c.check_exactly_once(address, sent[address], WAIT, settle))


def queued(c, name="relay-1"):
    """Messages committed in the relay's queue (docs/queue.md)."""
    q = os.path.join(c.env["MC_%s_STATE_DIR" % name.upper().replace(
        "-", "_")], "spool", "queue")
    return len([f for f in os.listdir(q) if f.endswith(".env")]) \
        if os.path.isdir(q) else 0


def restart_relay(c):
    c.cluster("start-daemon", "relay-1")
    wait_port(*c.mx(), timeout=20)


def test_relay_kill9_racing_deliveries(c):
    addr = "kim@" + DOMAIN
    conns = send_batch(c, addr, "race", 40)
    c.kill9("relay-1")
    close_all(conns)
    stored = len(c.mailbox(addr))
    print("  killed relay-1 after the last 250: %d/40 stored, %d in its queue"
          % (stored, queued(c)))
    restart_relay(c)
    n = check_exactly_once(c, addr)
    print("  after the restart: %d messages, each once" % n)
    wait_until(lambda: queued(c) == 0, WAIT, 0.2, "an empty relay queue")


def test_relay_kill9_with_node_down(c):
    addr = "kim@" + DOMAIN
    before = len(c.mailbox(addr))
    c.cluster("stop-daemon", "node-1")
    conns = send_batch(c, addr, "held", 30)
    c.kill9("relay-1")
    close_all(conns)
    held = queued(c)
    assert held >= 30, "the queue holds %d messages, 30 acknowledged" % held
    assert len(c.mailbox(addr)) == before, "delivered with the node down?"
    restart_relay(c)
    c.cluster("start-daemon", "node-1")
    n = check_exactly_once(c, addr)
    print("  %d held in the queue through kill -9; now %d stored, each once"
          % (held, n))
    wait_until(lambda: queued(c) == 0, WAIT, 0.2, "an empty relay queue")


def test_node_kill9_mid_delivery(c):
    """Queue a batch with the node stopped, start the node and kill it as
    soon as the first messages are stored. Up to 3 rounds until the kill
    lands mid-batch (some stored, not all)."""
    addr = "lee@" + DOMAIN
    mid = False
    for rnd in range(3):
        c.cluster("stop-daemon", "node-1")
        before = len(c.mailbox(addr))
        count = 60
        close_all(send_batch(c, addr, "node%d" % rnd, count, size=30000))
        # Not waiting for "live": the first deliveries are the signal.
        c.cluster("start-daemon", "node-1", "--no-wait")
        wait_until(lambda: len(c.mailbox(addr)) > before, WAIT, 0.01,
                   "the first delivery to the restarted node")
        c.kill9("node-1")
        stored = len(c.mailbox(addr)) - before
        print("  round %d: node-1 killed with %d/%d of the batch stored"
              % (rnd + 1, stored, count))
        c.cluster("start-daemon", "node-1")
        check_exactly_once(c, addr)
        if stored < count:
            mid = True
            break
    assert mid, "the node never got killed mid-batch (deliveries too fast)"
    wait_until(lambda: queued(c) == 0, WAIT, 0.2, "an empty relay queue")


def test_repeated_relay_kills(c):
    """Five kill -9 / restart cycles while a sender keeps sending: every
    message that got its 250 arrives once (those cut off before their 250
    may or may not)."""
    addr = "max@" + DOMAIN
    host, port = c.mx()
    acked = {}
    for cycle in range(5):
        s = smtplib.SMTP(host, port, timeout=30)
        for i in range(8):
            tag = "cycle%d" % cycle
            m = message(tag, i, 2000)
            assert s.sendmail(SENDER, [addr], m) == {}
            acked["<%s-%d@example.net>" % (tag, i)] = m
        c.kill9("relay-1")
        s.close()
        restart_relay(c)
        log("  cycle %d: %d acknowledged so far" % (cycle + 1, len(acked)))
    sent[addr].update(acked)
    n = check_exactly_once(c, addr)
    print("  5 kill -9 cycles: %d messages, each once" % n)


if __name__ == "__main__":
    run_tests(Cluster(base_port=27910, script_vars={
        "MC_RETRY_BASE_MS": "300", "MC_RETRY_MAX_MS": "1500"}), [
        ("setup: domain, accounts, MX listening", setup),
        ("kill -9 relay after the last 250, deliveries racing",
         test_relay_kill9_racing_deliveries),
        ("kill -9 relay holding a batch (node down)",
         test_relay_kill9_with_node_down),
        ("kill -9 node mid-delivery: nothing lost or twice",
         test_node_kill9_mid_delivery),
        ("five kill -9 relay cycles under load", test_repeated_relay_kills),
    ])
