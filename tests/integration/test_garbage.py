"""Hostile bytes on the controller's sockets: random bytes and broken SP
frames on the raw TCP control and publish ports, then well-formed nng
requests (through rpc_poke) carrying garbage, empty, truncated, oversized
or unauthenticated protobuf. The controller must answer with an error
status (or drop the message) and keep serving: same PID, mailctl status
works, nodes stay live and keep following changes."""

import os
import random
import socket
import struct
import tempfile
import time

from harness import Cluster, pid_alive, rpc_poke, run_tests

REQ0, REP0, PUB0, SUB0 = 0x30, 0x31, 0x20, 0x21
rng = random.Random(20240521)
state = {}


def sp_header(proto):
    return b"\x00SP\x00" + struct.pack(">H", proto) + b"\x00\x00"


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.settimeout(3)
    return s


def send_and_close(port, data, linger=0.05):
    try:
        s = connect(port)
        try:
            s.sendall(data)
            time.sleep(linger)
        except OSError:
            pass  # the controller hung up on us: fine
        finally:
            s.close()
    except OSError as e:
        raise AssertionError("cannot connect to port %d: %s" % (port, e))


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def varint(b, i):
    shift = v = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return v, i


def pb_fields(b):
    """Top-level fields of a protobuf message: {number: first value}."""
    out, i = {}, 0
    while i < len(b):
        tag, i = varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, v)
    return out


def pb_varint(v):
    out = b""
    while True:
        x = v & 0x7F
        v >>= 7
        if v:
            out += bytes([x | 0x80])
        else:
            return out + bytes([x])


def pb_field_bytes(num, data):
    return pb_varint(num << 3 | 2) + pb_varint(len(data)) + data


def alive(c):
    pid = state["controller_pid"]
    assert pid_alive(pid), "controller (pid %d) died" % pid
    assert c.pid("controller") == pid, "controller was restarted"


def serving(c):
    alive(c)
    st = c.status()
    nodes = c.status_nodes(st)
    for n in c.members():
        assert nodes.get(n, {}).get("live") is True, (n, nodes.get(n))


def test_setup(c):
    state["controller_pid"] = c.pid("controller")
    state["control"] = c.base_port
    state["publish"] = c.base_port + 1
    c.ok("domain", "add", "garbage.test", "--wait")


def test_random_bytes_on_tcp_ports(c):
    for port in (state["control"], state["publish"]):
        for n in (1, 7, 8, 64, 1000, 70000):
            send_and_close(port, bytes(rng.getrandbits(8) for _ in range(n)))
        # Looks like an SP header but names a protocol that does not exist.
        send_and_close(port, b"\x00SP\x00\xff\xff\x00\x00" + b"\x01" * 32)
        # A wrong but existing protocol (PUB talking to REP, REQ to PUB).
        send_and_close(port, sp_header(PUB0 if port == state["control"] else REQ0)
                       + b"\x00" * 16)
        alive(c)
    serving(c)


def test_broken_sp_frames(c):
    for port, proto in ((state["control"], REQ0), (state["publish"], SUB0)):
        hdr = sp_header(proto)
        frames = [
            struct.pack(">Q", 1 << 63),                  # absurd length
            struct.pack(">Q", 0xFFFFFFFFFFFFFFFF),
            struct.pack(">Q", 2 * 1024 * 1024) + b"x" * 1000,   # oversized
            struct.pack(">Q", 100) + b"y" * 10,          # truncated body
            struct.pack(">Q", 0),                        # empty frame
            struct.pack(">Q", 3) + b"abc",               # shorter than a header
            struct.pack(">Q", 4) + b"\x00\x00\x00\x01",  # id without high bit
            b"\x00\x00\x00",                             # truncated length
        ]
        for f in frames:
            send_and_close(port, hdr + f)
        alive(c)
    serving(c)


def sp_request(port, body, req_id=0x80000001):
    """One REQ over a raw SP connection; the Response fields or None."""
    s = connect(port)
    try:
        s.sendall(sp_header(REQ0))
        peer = recv_exact(s, 8)
        assert peer == sp_header(REP0), "unexpected SP header %r" % peer
        payload = struct.pack(">I", req_id) + body
        s.sendall(struct.pack(">Q", len(payload)) + payload)
        try:
            head = recv_exact(s, 8)
        except socket.timeout:
            return None
        if head is None:
            return None
        n = struct.unpack(">Q", head)[0]
        assert n >= 4 and n < 1 << 20, n
        reply = recv_exact(s, n)
        assert reply[:4] == struct.pack(">I", req_id), reply[:4]
        return pb_fields(reply[4:])
    finally:
        s.close()


def test_raw_sp_requests_get_error_status(c):
    replies = 0
    bodies = [b"", b"\xff" * 20, b"\x0a\xff\xff\xff\xff\x0f",
              pb_field_bytes(1, b"not-the-token"),
              pb_field_bytes(1, b"x") + pb_field_bytes(51, b"")]
    bodies += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
               for _ in range(20)]
    for body in bodies:
        fields = sp_request(state["control"], body)
        if fields is not None:
            replies += 1
            status = fields.get(1, 0)
            assert status != 0, "garbage %r got STATUS_OK: %r" % (body[:40], fields)
        alive(c)
    print("  %d of %d raw garbage requests answered with an error" % (
        replies, len(bodies)))
    assert replies > 0, "the controller answered no garbage request at all"
    serving(c)


def poke(c, *args, input=None):
    return rpc_poke("--url", c.env["MC_CONTROL_URL"], "--timeout", "3000",
                    *args, input=input)


def test_rpc_poke_garbage(c):
    answered = 0
    for i in range(40):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4000)))
        code, out, err = poke(c, "--raw", "-", input=data)
        assert code in (0, 1), (code, out, err)
        if code == 0:
            answered += 1
            assert out.startswith("status=") and "STATUS_OK" not in out, out
        alive(c)
    code, out, err = poke(c, "--raw", "-", input=b"")
    assert code in (0, 1) and "STATUS_OK" not in out, (code, out, err)
    print("  %d of 40 random messages answered with an error" % answered)
    assert answered > 0
    serving(c)


def test_truncated_valid_requests(c):
    for kind in ("--status", "--domain-list"):
        code, full, err = rpc_poke("--dump", kind, "--token-file",
                                   c.env["MAILCTL_TOKEN_FILE"], binary=True)
        assert code == 0 and len(full) > 0, (code, err)
        code, out, err = poke(c, "--raw", "-", input=full)
        assert code == 0 and out.startswith("status=STATUS_OK"), (kind, out, err)
        for cut in range(0, len(full)):
            code, out, err = poke(c, "--raw", "-", input=full[:cut])
            assert code in (0, 1), (cut, code, err)
            assert "STATUS_OK" not in out, \
                "%s truncated to %d of %d bytes was accepted: %s" % (
                    kind, cut, len(full), out)
        alive(c)
    serving(c)


def test_oversized_request(c):
    code, out, err = poke(c, "--raw", "-", input=b"\x0a" + b"z" * (2 * 1024 * 1024))
    assert code in (0, 1), (code, out, err)
    assert "STATUS_OK" not in out, out
    serving(c)


def test_missing_and_wrong_tokens(c):
    code, out, err = poke(c, "--status")
    assert code == 0 and out.startswith("status=STATUS_UNAUTHORIZED"), (out, err)
    fd, path = tempfile.mkstemp(prefix="mc-it-token-")
    try:
        os.write(fd, b"f" * 64)
        os.close(fd)
        code, out, err = poke(c, "--status", "--token-file", path)
        assert out.startswith("status=STATUS_UNAUTHORIZED"), (out, err)
        code, out, err = poke(c, "--drop-deltas", "3", "--token-file", path)
        assert out.startswith("status=STATUS_UNAUTHORIZED"), (out, err)
    finally:
        os.unlink(path)
    # Unknown body (a field number from the future) with a valid token.
    token = open(c.env["MAILCTL_TOKEN_FILE"], "rb").read().strip()
    body = pb_field_bytes(1, token) + pb_varint(99 << 3 | 0) + pb_varint(7)
    code, out, err = poke(c, "--raw", "-", input=body)
    assert code == 0 and out.startswith("status=") and "STATUS_OK" not in out, out
    serving(c)


def test_many_idle_connections(c):
    socks = []
    try:
        for _ in range(50):
            socks.append(connect(state["control"]))
        for s in socks[::2]:
            s.sendall(sp_header(REQ0))
        serving(c)
    finally:
        for s in socks:
            s.close()
    serving(c)


def test_still_publishing(c):
    r = c.ok("domain", "add", "after-garbage.test")
    took = c.wait_applied(r["version"], timeout=5)
    assert took <= 1.0, took
    alive(c)


if __name__ == "__main__":
    run_tests(Cluster(base_port=27510, nodes=1, relays=1), [
        ("setup", test_setup),
        ("random bytes on the TCP ports", test_random_bytes_on_tcp_ports),
        ("broken SP frames", test_broken_sp_frames),
        ("raw SP requests with garbage get an error status",
         test_raw_sp_requests_get_error_status),
        ("rpc_poke: random messages", test_rpc_poke_garbage),
        ("rpc_poke: truncated valid requests", test_truncated_valid_requests),
        ("rpc_poke: oversized request", test_oversized_request),
        ("rpc_poke: missing or wrong tokens", test_missing_and_wrong_tokens),
        ("50 idle connections", test_many_idle_connections),
        ("controller still publishes", test_still_publishing),
    ])
