"""Inbound mail across two mailbox nodes: the relay delivers each message to
the node that owns the recipient's shard, and when a node stops its shards
move to the other one and delivery goes on.

- shards are split between node-1 and node-2 (leases, published owners);
- mail to accounts on both nodes' shards is stored once each, and the relay
  delivered to both LMTP listeners (its log names each destination);
- node-2 stops cleanly (releasing its leases): node-1 takes every shard
  with a new epoch, and mail to node-2's former accounts is delivered
  through node-1;
- node-2 comes back: the shards spread again and delivery still works;
- the MIME structure of a multipart message is stored with offsets that
  point into the stored blob.
Retries are fast here (MC_RETRY_BASE_MS=300)."""

import smtplib

from harness import Cluster, run_tests, wait_port, wait_until

DOMAIN = "shards.test"
SENDER = "sender@example.net"
USERS = ["u%02d" % i for i in range(24)]
WAIT = 60
state = {"sent": {}}


def owners(c):
    """shard -> (node name, epoch, lmtp address) as relay-1 holds it."""
    d = c.directory("relay-1")
    return {s["shard"]: (s["node_name"], s["epoch"], s["lmtp_address"])
            for s in d.get("shards", [])}


def account_shards(c):
    d = c.directory("relay-1")
    return {a["address"]: a["shard"] for a in d["accounts"]}


def send(c, rcpt, tag):
    host, port = c.mx()
    mid = "<%s-%s@example.net>" % (tag, rcpt.split("@")[0])
    msg = ("From: <%s>\r\nSubject: %s\r\nMessage-ID: %s\r\n\r\nbody\r\n"
           % (SENDER, tag, mid)).encode()
    s = smtplib.SMTP(host, port, timeout=30)
    try:
        assert s.sendmail(SENDER, [rcpt], msg) == {}
    finally:
        s.quit()
    state["sent"].setdefault(rcpt, []).append(mid)


def check_stored(c):
    for rcpt, mids in state["sent"].items():
        msgs = c.wait_mailbox(rcpt, len(mids), timeout=WAIT)
        got = sorted(m["message_id"] for m in msgs)
        assert got == sorted(mids), "%s: stored %r, sent %r" % (rcpt, got, mids)


def test_setup_and_split(c):
    c.ok("domain", "add", DOMAIN)
    version = None
    for u in USERS:
        version = c.ok("account", "add", "%s@%s" % (u, DOMAIN),
                       input="pw-%s-12345\n" % u)["version"]
    c.wait_applied(version, timeout=10)
    wait_port(*c.mx(), timeout=20)

    def split():
        o = owners(c)
        names = {v[0] for v in o.values()}
        return o if len(o) == 64 and names == {"node-1", "node-2"} else None
    o = wait_until(split, 30, 0.2, "shards split between node-1 and node-2")
    lmtp = {"node-1": "%s:%d" % c.lmtp("node-1"),
            "node-2": "%s:%d" % c.lmtp("node-2")}
    for shard, (name, epoch, addr) in o.items():
        assert addr == lmtp[name], (shard, name, addr)
        assert epoch >= 1


def test_delivery_to_both_owners(c):
    shards = account_shards(c)
    o = owners(c)
    on = {"node-1": [], "node-2": []}
    for u in USERS:
        addr = "%s@%s" % (u, DOMAIN)
        on[o[shards[addr]][0]].append(addr)
    assert on["node-1"] and on["node-2"], "24 accounts all on one node: %r" % on
    for addr in on["node-1"] + on["node-2"]:
        send(c, addr, "split")
    check_stored(c)
    log = c.read_log("relay-1")
    for name in ("node-1", "node-2"):
        dest = "dest=lmtp:%s:%d result=delivered" % c.lmtp(name)
        assert dest in log, "relay never delivered to %s" % name
    state["node2_accounts"] = on["node-2"]


def test_failover_when_a_node_stops(c):
    before = owners(c)
    c.cluster("stop-daemon", "node-2")

    def moved():
        o = owners(c)
        return o if all(v[0] == "node-1" for v in o.values()) else None
    after = wait_until(moved, 30, 0.2, "every shard owned by node-1")
    for shard, (name, epoch, _) in after.items():
        if before[shard][0] == "node-2":
            assert epoch > before[shard][1], \
                "shard %d taken over without a new epoch" % shard
    for addr in state["node2_accounts"]:
        send(c, addr, "failover")
    check_stored(c)


def test_node_back_spreads_again(c):
    c.cluster("start-daemon", "node-2")

    def split():
        o = owners(c)
        return o if {v[0] for v in o.values()} == {"node-1", "node-2"} else None
    wait_until(split, 30, 0.2, "shards split again")
    for u in USERS[:8]:
        send(c, "%s@%s" % (u, DOMAIN), "back")
    check_stored(c)


def test_body_structure_stored(c):
    """The node stores each message's MIME structure (lib/mime) with offsets
    into the stored blob, for IMAP FETCH BODYSTRUCTURE and sections."""
    import json
    rcpt = "%s@%s" % (USERS[0], DOMAIN)
    msg = ("From: <%s>\r\nSubject: parts\r\nMessage-ID: <parts@example.net>\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
           "preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           "hello\r\n--b1\r\nContent-Type: application/pdf\r\n"
           "Content-Disposition: attachment; filename=\"a.pdf\"\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b1--\r\n"
           % SENDER).encode()
    host, port = c.mx()
    s = smtplib.SMTP(host, port, timeout=30)
    try:
        assert s.sendmail(SENDER, [rcpt], msg) == {}
    finally:
        s.quit()
    state["sent"].setdefault(rcpt, []).append("<parts@example.net>")
    check_stored(c)
    rows = c.store_sql(
        "select m.bodystructure, m.blob_sha256 from messages m join mailboxes b"
        " on b.id = m.mailbox_id where b.account_id = %d and"
        " m.envelope->>'message_id' = '<parts@example.net>'" % c.account_id(rcpt))
    assert len(rows) == 1 and rows[0][0] is not None, rows
    bs = json.loads(rows[0][0])["root"]
    assert (bs["type"], bs["subtype"]) == ("multipart", "mixed"), bs
    text, pdf = bs["parts"]
    assert (text["type"], text["subtype"]) == ("text", "plain")
    assert (pdf["subtype"], pdf["encoding"]) == ("pdf", "BASE64")
    assert pdf["disposition"]["type"] == "attachment"
    blob = c.blob(rows[0][1])
    assert blob[text["body_offset"]:text["body_offset"] + text["body_size"]] \
        == b"hello", "offsets do not point into the stored blob"


if __name__ == "__main__":
    run_tests(Cluster(base_port=28210, nodes=2, script_vars={
        "MC_RETRY_BASE_MS": "300", "MC_RETRY_MAX_MS": "1500"}), [
        ("setup: shards split between two nodes", test_setup_and_split),
        ("delivery to each shard's owner", test_delivery_to_both_owners),
        ("failover when a node stops", test_failover_when_a_node_stops),
        ("node back: shards spread again", test_node_back_spreads_again),
        ("body structure stored", test_body_structure_stored),
    ])
