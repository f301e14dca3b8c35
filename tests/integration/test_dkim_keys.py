"""DKIM keys: `mailctl dkim create/list/rotate/rm` and `mailctl domain dns`.
The controller generates the keys and keeps the private keys sealed in
Postgres (the column holds no PEM); relays get the private keys of active
keys in directory.json, mailbox nodes never do, and no mailctl output or
controller log shows one. The private key a relay holds belongs to the
public key the DNS record publishes (checked with openssl). `domain dns`
gives the MX, SPF, DKIM, DMARC and A records, as a zone snippet and as
JSON, with p= equal to the published public keys."""

import base64
import json
import re
import subprocess
import time

from harness import Cluster, CommandError, find, run_tests

DOMAIN = "dk.test"
LIVE_S = 2.0
state = {}


def settle(c, reply):
    c.wait_applied(reply["version"], timeout=LIVE_S)
    c.wait_directories(reply["version"], timeout=LIVE_S)


def controller_sql(c, sql):
    """Rows of sql on the controller's database (psql)."""
    p = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\x1f",
                        "-v", "ON_ERROR_STOP=1", "-c", sql,
                        c.env["MC_PG_CONNINFO"]],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    if p.returncode != 0:
        raise CommandError("psql: %s" % p.stderr.decode(errors="replace"))
    return [line.split("\x1f") for line in
            p.stdout.decode().split("\n") if line]


def keys_of(d, domain=DOMAIN):
    return [k for k in d.get("dkim_keys", []) if k["domain"] == domain]


def public_of_pem(pem, alg):
    """The p= value of a private key, derived by openssl."""
    p = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"],
                       input=pem.encode(), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    der = p.stdout
    if alg == "ed25519":
        der = der[-32:]  # RFC 8463: the raw key, not the SPKI
    return base64.b64encode(der).decode()


def no_private_keys(*texts):
    for t in texts:
        assert "PRIVATE KEY" not in t, t[:2000]


def test_setup(c):
    c.ok("domain", "add", DOMAIN)
    r = c.ok("alias", "add", "postmaster@" + DOMAIN, "someone@else.test")
    settle(c, r)


def test_create(c):
    code, out, err = c.mailctl("--json", "dkim", "create", DOMAIN)
    assert code == 0, (code, out, err)
    no_private_keys(out, err)
    r = json.loads(out)
    keys = {k["alg"]: k for k in r["keys"]}
    assert sorted(keys) == ["ed25519", "rsa"], r
    month = time.strftime("s%Y%m", time.gmtime())
    assert keys["rsa"]["selector"] == month + "r", keys
    assert keys["ed25519"]["selector"] == month + "e", keys
    assert keys["rsa"]["bits"] == 2048 and keys["rsa"]["active"] is True
    for k in keys.values():
        assert k["dns_name"] == "%s._domainkey.%s" % (k["selector"], DOMAIN), k
        assert k["dns_record"] == "v=DKIM1; k=%s; p=%s" % (k["alg"],
                                                           k["public_key"]), k
    state["first"] = keys
    settle(c, r)
    # A second create is refused: rotation replaces active keys.
    code, out, err = c.mailctl("dkim", "create", DOMAIN)
    assert code == 1 and "rotate" in err, (code, out, err)
    # Human output: the records to publish, no private key.
    code, out, err = c.mailctl("dkim", "create", "other.test")
    assert code == 1 and "does not exist" in err, (code, err)


def test_relay_has_private_keys_node_does_not(c):
    relay = c.relay_names()[0]
    rk = keys_of(c.directory(relay))
    assert len(rk) == 2, rk
    for k in rk:
        want = state["first"][k["alg"]]
        assert k["active"] is True and k["id"] == want["id"], k
        assert k["public_b64"] == want["public_key"], (k, want)
        assert k["private_pem"].startswith("-----BEGIN PRIVATE KEY-----"), k
        # The private key the relay signs with is the published key's.
        assert public_of_pem(k["private_pem"], k["alg"]) == k["public_b64"], k
    for n in c.node_names():
        nk = keys_of(c.directory(n))
        assert len(nk) == 2, (n, nk)
        assert all("private_pem" not in k for k in nk), (n, nk)
        with open(c.state_file(n)) as f:
            no_private_keys(f.read())


def test_database_holds_no_plaintext(c):
    rows = controller_sql(c, "SELECT selector, private_sealed, public_b64 FROM "
                             "dkim_keys ORDER BY id")
    assert len(rows) == 2, rows
    relay_pems = [k["private_pem"] for k in keys_of(c.directory(c.relay_names()[0]))]
    for selector, sealed, public in rows:
        assert sealed.startswith("sb1:"), sealed[:40]
        assert "PRIVATE" not in sealed and "BEGIN" not in sealed
        raw = base64.b64decode(sealed[4:], validate=True)
        # Nonce, ciphertext, tag: nothing of the PEM or its DER shows.
        for pem in relay_pems:
            body = "".join(pem.strip().split("\n")[1:-1])
            der = base64.b64decode(body)
            assert body[:40] not in sealed and der[-32:] not in raw, selector
    log = c.read_log("controller")
    no_private_keys(log)


def test_list(c):
    lst = c.ok("dkim", "list", DOMAIN)["keys"]
    assert len(lst) == 2 and all(k["active"] for k in lst), lst
    all_keys = c.ok("dkim", "list")["keys"]
    assert [k["id"] for k in all_keys] == [k["id"] for k in lst], all_keys
    code, out, err = c.mailctl("dkim", "list", DOMAIN)
    assert code == 0, err
    no_private_keys(out)
    for text in ("SELECTOR", "ALG", "ACTIVE", "DNS RECORD", "rsa-2048", "ed25519",
                 state["first"]["rsa"]["selector"], "v=DKIM1; k=ed25519; p="):
        assert text in out, (text, out)
    code, out, err = c.mailctl("dkim", "list", "nowhere.test")
    assert code == 1, (code, out)


def zone_records(text):
    """(name, type, data) of a zone snippet; TXT strings joined."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith(";"):
            continue
        name, ttl, klass, rtype, data = line.split("\t", 4)
        assert ttl == "3600" and klass == "IN", line
        if rtype == "TXT":
            parts = re.findall(r'"((?:[^"\\]|\\.)*)"', data)
            assert all(len(p) <= 255 for p in parts), data
            data = "".join(parts)
        out.append((name, rtype, data))
    return out


def check_dns(c, active_keys, inactive_keys=()):
    relay = c.relay_names()[0]
    mx = "%s.cluster.test" % relay
    code, out, err = c.mailctl("domain", "dns", DOMAIN)
    assert code == 0, (code, err)
    no_private_keys(out)
    zone = zone_records(out)
    assert (DOMAIN + ".", "MX", "10 %s." % mx) in zone, zone
    assert (DOMAIN + ".", "TXT", "v=spf1 mx -all") in zone, zone
    assert ("_dmarc.%s." % DOMAIN, "TXT",
            "v=DMARC1; p=quarantine; rua=mailto:postmaster@%s" % DOMAIN) in zone
    assert (mx + ".", "A", "127.0.0.1") in zone, zone
    published = {k["selector"]: k for k in keys_of(c.directory(relay))}
    dkim = {n: d for n, t, d in zone if "._domainkey." in n}
    assert len(dkim) == len(active_keys) + len(inactive_keys), dkim
    for sel in list(active_keys) + list(inactive_keys):
        txt = dkim["%s._domainkey.%s." % (sel, DOMAIN)]
        p = re.search(r"; p=(\S+)$", txt).group(1)
        assert p == published[sel]["public_b64"], (sel, p)
    assert "WARNING" not in out, out
    # The same as JSON: names without the dot, TXT unsplit.
    doc = c.ok("domain", "dns", DOMAIN)
    recs = doc["records"]
    assert doc["domain"] == DOMAIN and doc["warnings"] == [], doc
    m = find(recs, "type", "MX")
    assert m == {"name": DOMAIN, "type": "MX", "ttl": 3600, "priority": 10,
                 "value": mx, "comment": m["comment"]}, m
    assert find(recs, "type", "A")["value"] == "127.0.0.1"
    for sel in active_keys:
        rec = find(recs, "name", "%s._domainkey.%s" % (sel, DOMAIN))
        assert rec["type"] == "TXT" and rec["value"].endswith(
            "p=" + published[sel]["public_b64"]), rec
        assert "active" in rec["comment"] and "inactive" not in rec["comment"]
    for sel in inactive_keys:
        rec = find(recs, "name", "%s._domainkey.%s" % (sel, DOMAIN))
        assert "inactive" in rec["comment"], rec


def test_domain_dns(c):
    check_dns(c, [k["selector"] for k in state["first"].values()])
    code, out, err = c.mailctl("domain", "dns", "nowhere.test")
    assert code == 1, (code, out)
    # A domain without keys or postmaster: warnings, in both forms.
    c.ok("domain", "add", "bare.test")
    doc = c.ok("domain", "dns", "bare.test")
    text = " ".join(doc["warnings"])
    assert "dkim create" in text and "postmaster@bare.test" in text, doc
    code, out, err = c.mailctl("domain", "dns", "bare.test")
    assert "; WARNING: bare.test has no DKIM key" in out, out


def test_rotate(c):
    code, out, err = c.mailctl("--json", "dkim", "rotate", DOMAIN)
    assert code == 0, (code, out, err)
    no_private_keys(out, err)
    r = json.loads(out)
    new = {k["alg"]: k for k in r["keys"]}
    old = state["first"]
    assert sorted(new) == ["ed25519", "rsa"], r
    month = time.strftime("s%Y%m", time.gmtime())
    # The month's selectors are taken: the next stem.
    assert new["rsa"]["selector"] == month + "-2r", new
    assert new["ed25519"]["selector"] == month + "-2e", new
    settle(c, r)
    relay = c.relay_names()[0]
    rk = {k["selector"]: k for k in keys_of(c.directory(relay))}
    assert len(rk) == 4, rk
    for k in new.values():
        got = rk[k["selector"]]
        assert got["active"] and got["private_pem"].startswith("-----BEGIN"), got
        assert public_of_pem(got["private_pem"], k["alg"]) == k["public_key"]
    for k in old.values():
        got = rk[k["selector"]]
        # Still published (its DNS record stays), no longer signing.
        assert got["active"] is False and "private_pem" not in got, got
    for n in c.node_names():
        assert all("private_pem" not in k for k in keys_of(c.directory(n))), n
    lst = c.ok("dkim", "list", DOMAIN)["keys"]
    assert [k["active"] for k in lst] == [True, True, False, False], lst
    state["second"] = new
    check_dns(c, [k["selector"] for k in new.values()],
              [k["selector"] for k in old.values()])


def test_rm(c):
    old, new = state["first"], state["second"]
    before = c.status()["version"]
    code, out, err = c.mailctl("dkim", "rm", DOMAIN, new["rsa"]["selector"])
    assert code == 1 and "active" in err, (code, err)
    assert c.status()["version"] == before
    for k in old.values():
        r = c.ok("dkim", "rm", DOMAIN, k["selector"])
    settle(c, r)
    relay = c.relay_names()[0]
    sels = sorted(k["selector"] for k in keys_of(c.directory(relay)))
    assert sels == sorted(k["selector"] for k in new.values()), sels
    for n in c.node_names():
        assert len(keys_of(c.directory(n))) == 2, n
    code, out, err = c.mailctl("dkim", "rm", DOMAIN, old["rsa"]["selector"])
    assert code == 1 and "no DKIM key" in err, (code, err)
    rows = controller_sql(c, "SELECT count(*) FROM dkim_keys")
    assert rows == [["2"]], rows
    check_dns(c, [k["selector"] for k in new.values()])


def test_options(c):
    c.ok("domain", "add", "ed.test")
    r = c.ok("dkim", "create", "ed.test", "--alg", "ed25519",
             "--selector", "mail2026")
    assert [(k["alg"], k["selector"]) for k in r["keys"]] == [
        ("ed25519", "mail2026")], r
    r = c.ok("dkim", "rotate", "ed.test", "--selector", "mail2027")
    assert [(k["alg"], k["selector"]) for k in r["keys"]] == [
        ("ed25519", "mail2027")], r
    settle(c, r)
    relay = c.relay_names()[0]
    ek = [k for k in keys_of(c.directory(relay), "ed.test") if k["active"]]
    assert len(ek) == 1 and ek[0]["alg"] == "ed25519", ek
    code, out, err = c.mailctl("dkim", "create", "ed.test", "--selector",
                               "mail2027")
    assert code == 1, (code, err)
    before = c.status()["version"]
    for args in (("dkim", "create", DOMAIN, "--alg", "dsa"),
                 ("dkim", "create", DOMAIN, "--rsa-bits", "1024"),
                 ("dkim", "create", DOMAIN, "--rsa-bits", "8192"),
                 ("dkim", "create", DOMAIN, "--alg", "ed25519", "--rsa-bits",
                  "3072"),
                 ("dkim", "create", DOMAIN, "--selector", "-bad"),
                 ("dkim", "create", DOMAIN, "--selector", "a_b"),
                 ("dkim", "create", "not a domain"),
                 ("dkim", "rotate", DOMAIN, "--alg", "rsa"),
                 ("dkim", "rm", DOMAIN),
                 ("dkim", "rm", DOMAIN, "bad selector"),
                 ("dkim", "list", DOMAIN, "extra")):
        code, out, err = c.mailctl(*args)
        assert code == 2, (args, code, out, err)
    assert c.status()["version"] == before
    # The domain takes its keys along; every member drops them.
    r = c.ok("domain", "rm", "ed.test")
    settle(c, r)
    for n in c.members():
        assert keys_of(c.directory(n), "ed.test") == [], n


if __name__ == "__main__":
    run_tests(Cluster(base_port=31310, nodes=1, relays=1), [
        ("setup", test_setup),
        ("dkim create", test_create),
        ("private keys on the relay only", test_relay_has_private_keys_node_does_not),
        ("database holds sealed keys only", test_database_holds_no_plaintext),
        ("dkim list", test_list),
        ("domain dns: zone and JSON", test_domain_dns),
        ("dkim rotate", test_rotate),
        ("dkim rm", test_rm),
        ("options and validation", test_options),
    ])
