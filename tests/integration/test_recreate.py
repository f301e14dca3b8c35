"""Delete and recreate under the same name: objects have immutable ids, so
after `rm` + `add` every node and relay holds the new object (new id, new
password hash) and nothing of the old one, even when both steps reach the
nodes back to back."""

from harness import (Cluster, dir_account, dir_alias, dir_domain, run_tests)


def all_ids(d):
    return {(kind, o["id"]) for kind in ("domains", "accounts", "aliases")
            for o in d.get(kind, [])}


def settle(c, version):
    c.wait_applied(version, timeout=10)
    c.wait_directories(version, timeout=3)


def account_id(c, address):
    return c.ok("account", "show", address)["account"]["id"]


def test_setup(c):
    c.ok("domain", "add", "rec.test")
    c.ok("account", "add", "bob@rec.test", input="bob-old-password\n")
    r = c.ok("alias", "add", "team@rec.test", "bob@rec.test")
    settle(c, r["version"])


def test_account_recreated(c):
    old_id = account_id(c, "bob@rec.test")
    node = c.node_names()[0]
    old_hash = dir_account(c.directory(node), "bob@rec.test")["password_hash"]
    rm = c.ok("account", "rm", "bob@rec.test")
    add = c.ok("account", "add", "bob@rec.test", input="bob-new-password\n")
    assert add["version"] > rm["version"], (rm, add)
    new_id = account_id(c, "bob@rec.test")
    assert new_id != old_id, "recreated account kept id %d" % old_id
    if "id" in add:
        assert add["id"] == new_id, (add, new_id)
    settle(c, add["version"])
    for n in c.members():
        d = c.directory(n)
        acct = dir_account(d, "bob@rec.test")
        assert acct is not None, (n, d)
        assert acct["id"] == new_id, "%s holds account id %d, want %d" % (
            n, acct["id"], new_id)
        assert ("accounts", old_id) not in all_ids(d), (n, old_id)
        matches = [a for a in d["accounts"] if a["address"] == "bob@rec.test"]
        assert len(matches) == 1, (n, matches)
        if n in c.node_names():
            assert acct["password_hash"] != old_hash, n


def alias_id(c, address):
    for a in c.ok("alias", "list")["aliases"]:
        if a["address"] == address:
            return a["id"]
    raise AssertionError("alias %s not listed" % address)


def test_alias_recreated(c):
    old_id = alias_id(c, "team@rec.test")
    c.ok("alias", "rm", "team@rec.test")
    r = c.ok("alias", "add", "team@rec.test", "bob@rec.test", "carol@else.test")
    new_id = alias_id(c, "team@rec.test")
    assert new_id != old_id, "recreated alias kept id %d" % old_id
    settle(c, r["version"])
    for n in c.members():
        d = c.directory(n)
        al = dir_alias(d, "team@rec.test")
        assert al is not None, n
        assert al["id"] == new_id, (n, al, new_id)
        assert al["destinations"] == ["bob@rec.test", "carol@else.test"], (n, al)
        assert ("aliases", old_id) not in all_ids(d), (n, old_id)


def test_domain_recreated(c):
    before = {n: c.directory(n) for n in c.members()}
    old_dom = dir_domain(before[c.members()[0]], "rec.test")
    old_acct = dir_account(before[c.members()[0]], "bob@rec.test")
    rm = c.ok("domain", "rm", "rec.test", "--force")
    add = c.ok("domain", "add", "rec.test")
    assert add["version"] > rm["version"]
    settle(c, add["version"])
    for n in c.members():
        d = c.directory(n)
        dom = dir_domain(d, "rec.test")
        assert dom is not None, (n, d)
        assert dom["id"] != old_dom["id"], "%s holds the old domain id" % n
        if "id" in add:
            assert dom["id"] == add["id"], (n, dom, add)
        assert dir_account(d, "bob@rec.test") is None, \
            "%s still holds bob after domain rm --force" % n
        assert dir_alias(d, "team@rec.test") is None, n
        stale = [o for kind in ("accounts", "aliases") for o in d[kind]
                 if o["domain_id"] == old_dom["id"]]
        assert not stale, (n, stale)
        assert ("accounts", old_acct["id"]) not in all_ids(d), n
    # Recreate the account in the new domain: it belongs to the new id.
    r = c.ok("account", "add", "bob@rec.test", input="bob-third-password\n")
    settle(c, r["version"])
    for n in c.members():
        acct = dir_account(c.directory(n), "bob@rec.test")
        assert acct is not None and acct["domain_id"] != old_dom["id"], (n, acct)
        assert acct["id"] != old_acct["id"], (n, acct)


def test_rapid_flapping(c):
    """rm/add the same account five times without waiting in between."""
    ids = []
    for i in range(5):
        c.ok("account", "rm", "bob@rec.test")
        r = c.ok("account", "add", "bob@rec.test", input="flap-%d\n" % i)
        ids.append(account_id(c, "bob@rec.test"))
    assert len(set(ids)) == 5, ids
    settle(c, r["version"])
    for n in c.members():
        d = c.directory(n)
        matches = [a for a in d["accounts"] if a["address"] == "bob@rec.test"]
        assert [a["id"] for a in matches] == [ids[-1]], (n, matches, ids)


if __name__ == "__main__":
    run_tests(Cluster(base_port=27470, nodes=2, relays=1), [
        ("setup", test_setup),
        ("account deleted and recreated", test_account_recreated),
        ("alias deleted and recreated", test_alias_recreated),
        ("domain deleted (--force) and recreated", test_domain_recreated),
        ("account flapping", test_rapid_flapping),
    ])
