"""Outbound routes: `mailctl route add/default/rule add/rule rm/list/rm`
reach the relay's directory.json live (and never the mailbox nodes'),
smarthost secrets travel only as references (an environment variable name
or a file path on the relay), a route that is the default or used by rules
is only removed with --force (which takes the rules along), delete and
recreate under one name gives a new id, and bad arguments are refused
before anything is sent."""

import json

from harness import Cluster, find, run_tests

LIVE_S = 2.0  # a change must be in the relay's directory.json within this
ids = {}


def relay_dir(c):
    return c.directory(c.relay_names()[0])


def settle(c, reply):
    """Wait until every member applied the reply's version and wrote it."""
    c.wait_applied(reply["version"], timeout=LIVE_S)
    c.wait_directories(reply["version"], timeout=LIVE_S)


def route_of(d, name):
    return find(d.get("routes", []), "name", name)


def rule_of(d, domain):
    return find(d.get("route_rules", []), "domain", domain)


def test_add_reaches_the_relay(c):
    r = c.ok("route", "add", "ses",
             "--smarthost", "Email-SMTP.eu-west-1.amazonaws.com:465",
             "--tls", "implicit", "--auth-user", "AKIAEXAMPLE",
             "--secret-env", "SES_PASSWORD")
    assert r["ok"] is True and r["id"] > 0, r
    ids["ses"] = r["id"]
    settle(c, r)
    ses = route_of(relay_dir(c), "ses")
    assert ses == {
        "id": r["id"], "name": "ses", "kind": "smarthost",
        "host": "email-smtp.eu-west-1.amazonaws.com", "port": 465,
        "tls": "implicit", "auth_user": "AKIAEXAMPLE",
        "secret_env": "SES_PASSWORD", "secret_file": "", "default": False,
        "created_at": ses["created_at"]}, ses
    # IPv6 smarthost, STARTTLS by default, the secret in a file.
    r = c.ok("route", "add", "backup", "--smarthost", "[2001:db8::25]:587",
             "--auth-user", "relay@example.net",
             "--secret-file", "/etc/mail/backup.secret")
    ids["backup"] = r["id"]
    r2 = c.ok("route", "add", "direct", "--mx")
    ids["direct"] = r2["id"]
    assert r2["version"] == r["version"] + 1, (r, r2)
    settle(c, r2)
    d = relay_dir(c)
    b = route_of(d, "backup")
    assert (b["host"], b["port"], b["tls"], b["secret_file"], b["secret_env"]) == (
        "2001:db8::25", 587, "starttls", "/etc/mail/backup.secret", ""), b
    m = route_of(d, "direct")
    assert (m["kind"], m["host"], m["port"], m["auth_user"]) == ("mx", "", 0, ""), m
    # Routes are for relays: mailbox nodes never hold them.
    for n in c.node_names():
        nd = c.directory(n)
        assert nd["version"] >= r2["version"], (n, nd["version"])
        assert nd.get("routes", []) == [] and nd.get("route_rules", []) == [], n


def test_default_and_rules_live(c):
    r = c.ok("route", "default", "ses")
    settle(c, r)
    d = relay_dir(c)
    assert route_of(d, "ses")["default"] is True
    assert not route_of(d, "direct")["default"]
    # Moving the default clears the old one in the same version.
    r = c.ok("route", "default", "direct")
    settle(c, r)
    d = relay_dir(c)
    assert route_of(d, "direct")["default"] and not route_of(d, "ses")["default"]
    r = c.ok("route", "default", "ses")
    r = c.ok("route", "rule", "add", "GMail.com", "backup")
    assert r["id"] > 0, r
    ids["rule"] = r["id"]
    r = c.ok("route", "rule", "add", "outlook.com", "direct", "--wait")
    settle(c, r)
    d = relay_dir(c)
    g = rule_of(d, "gmail.com")
    assert g and g["route_id"] == ids["backup"] and g["route"] == "backup", g
    assert rule_of(d, "outlook.com")["route_id"] == ids["direct"]
    # A second rule for a domain replaces the first in place.
    r = c.ok("route", "rule", "add", "gmail.com", "direct")
    assert r["id"] == ids["rule"], (r, ids)
    settle(c, r)
    g = rule_of(relay_dir(c), "gmail.com")
    assert g["route_id"] == ids["direct"], g
    r = c.ok("route", "rule", "add", "gmail.com", "backup")
    settle(c, r)


def test_list(c):
    lst = c.ok("route", "list")
    assert lst["default"] == "ses", lst
    names = [x["name"] for x in lst["routes"]]
    assert sorted(names) == ["backup", "direct", "ses"], names
    ses = find(lst["routes"], "name", "ses")
    assert ses["secret_env"] == "SES_PASSWORD" and ses["default"] is True, ses
    rules = {x["domain"]: x["route"] for x in lst["rules"]}
    assert rules == {"gmail.com": "backup", "outlook.com": "direct"}, rules
    code, out, err = c.mailctl("route", "list")
    assert code == 0, (code, err)
    for text in ("NAME", "TARGET", "email-smtp.eu-west-1.amazonaws.com:465",
                 "[2001:db8::25]:587", "AKIAEXAMPLE (secret env SES_PASSWORD)",
                 "secret file /etc/mail/backup.secret", "RULE DOMAIN",
                 "gmail.com", "default route, ses"):
        assert text in out, (text, out)


def test_rm_refused_without_force(c):
    before = c.status()["version"]
    for name, why in (("ses", "default"), ("backup", "rule"),
                      ("direct", "rule")):
        code, out, err = c.mailctl("--json", "route", "rm", name)
        assert code == 1, (name, code, out, err)
        doc = json.loads(out)
        assert doc["status"] == "conflict" and why in doc["error"], doc
    code, out, err = c.mailctl("route", "rm", "nope")
    assert code == 1 and "does not exist" in err, (code, err)
    assert c.status()["version"] == before


def test_rm_force_takes_the_rules(c):
    r = c.ok("route", "rm", "backup", "--force")
    settle(c, r)
    d = relay_dir(c)
    assert route_of(d, "backup") is None, d["routes"]
    assert rule_of(d, "gmail.com") is None, d["route_rules"]
    assert rule_of(d, "outlook.com") is not None
    r = c.ok("route", "rm", "ses", "--force")
    settle(c, r)
    d = relay_dir(c)
    assert route_of(d, "ses") is None
    assert not any(x["default"] for x in d["routes"]), d["routes"]
    assert c.ok("route", "list")["default"] is None


def test_recreate_gives_a_new_id(c):
    old = ids["direct"]
    c.ok("route", "rule", "rm", "outlook.com")
    rm = c.ok("route", "rm", "direct")
    add = c.ok("route", "add", "direct", "--smarthost", "127.0.0.1:2525",
               "--tls", "none")
    assert add["version"] == rm["version"] + 1, (rm, add)
    assert add["id"] != old, (add, old)
    settle(c, add)
    d = relay_dir(c)
    matches = [x for x in d["routes"] if x["name"] == "direct"]
    assert len(matches) == 1 and matches[0]["id"] == add["id"], matches
    assert matches[0]["kind"] == "smarthost" and matches[0]["port"] == 2525
    assert old not in [x["id"] for x in d["routes"]]
    # Back to back, without waiting in between: the relay ends with the
    # last one only.
    last = None
    for i in range(4):
        c.ok("route", "rm", "direct")
        last = c.ok("route", "add", "direct", "--mx")
    settle(c, last)
    matches = [x for x in relay_dir(c)["routes"] if x["name"] == "direct"]
    assert [x["id"] for x in matches] == [last["id"]], (matches, last)
    code, out, err = c.mailctl("route", "rule", "rm", "outlook.com")
    assert code == 1 and "no route rule" in err, (code, err)


def test_bad_arguments_are_refused(c):
    before = c.status()["version"]
    cases = [
        ("route", "add", "Bad Name", "--mx"),
        ("route", "add", "x"),
        ("route", "add", "x", "--mx", "--smarthost", "h.test:25"),
        ("route", "add", "x", "--mx", "--tls", "implicit"),
        ("route", "add", "x", "--smarthost", "h.test"),
        ("route", "add", "x", "--smarthost", "h.test:0"),
        ("route", "add", "x", "--smarthost", "h_1.test:25"),
        ("route", "add", "x", "--smarthost", "h.test:25", "--tls", "ssl"),
        ("route", "add", "x", "--smarthost", "h.test:25", "--auth-user", "u"),
        ("route", "add", "x", "--smarthost", "h.test:25", "--secret-env", "P"),
        ("route", "add", "x", "--smarthost", "h.test:25", "--auth-user", "u",
         "--secret-env", "P", "--secret-file", "/p"),
        ("route", "add", "x", "--smarthost", "h.test:25", "--auth-user", "u",
         "--secret-env", "hunter2!"),
        ("route", "add", "x", "--smarthost", "h.test:25", "--auth-user", "u",
         "--secret-file", "relative/secret"),
        ("route", "add", "x", "--smarthost", "h.test:25", "--auth-user", "u",
         "--secret-file", "/etc/../shadow"),
        ("route", "add", "x", "--smarthost", "h.test:25", "--tls", "none",
         "--auth-user", "u", "--secret-env", "P"),
        ("route", "default", "x", "--force"),
        ("route", "rule", "add", "not a domain", "x"),
        ("route", "rule", "add", "gmail.com"),
        ("route", "rule"),
        ("route", "rm", "Bad Name"),
    ]
    for args in cases:
        code, out, err = c.mailctl(*args)
        assert code == 2, (args, code, out, err)
        assert "mailctl: error:" in err, (args, err)
    # An unknown route in a rule is the controller's refusal.
    code, out, err = c.mailctl("route", "rule", "add", "gmail.com", "nope")
    assert code == 1 and "does not exist" in err, (code, err)
    assert c.status()["version"] == before


if __name__ == "__main__":
    run_tests(Cluster(base_port=31210, nodes=1, relays=1), [
        ("route add reaches the relay, not mailbox nodes",
         test_add_reaches_the_relay),
        ("default and rules applied live", test_default_and_rules_live),
        ("route list", test_list),
        ("rm refused without --force", test_rm_refused_without_force),
        ("rm --force takes the rules along", test_rm_force_takes_the_rules),
        ("rm + add under one name gives a new id", test_recreate_gives_a_new_id),
        ("bad arguments refused before sending", test_bad_arguments_are_refused),
    ])
