/* `mailctl domain dns`: the DNS records a domain needs, computed from what
 * the controller knows, so nobody types them by hand:
 *
 * - MX: one per relay that registered a public_name, all priority 10
 *   (equal preference: senders spread over the relays);
 * - SPF: "v=spf1 mx -all". The relays that receive the domain's mail are
 *   the hosts that send it (direct MX delivery leaves from the relays'
 *   public addresses), so "mx" authorises exactly them and follows the
 *   MX records when relays come and go, with no address list to keep in
 *   step. Mail leaving through a smarthost comes from the provider's
 *   addresses: a warning says to add the provider's mechanism;
 * - DKIM: one TXT record per key of the domain at
 *   <selector>._domainkey.<domain>: the active keys, and the inactive ones
 *   still in their grace period after a rotation (mail signed before must
 *   keep verifying until `dkim rm`);
 * - DMARC: "_dmarc" TXT "v=DMARC1; p=quarantine;
 *   rua=mailto:postmaster@<domain>": mail failing both SPF and DKIM
 *   alignment goes to spam rather than being rejected outright (safe
 *   while an operator is still moving senders over), aggregate reports go
 *   to the domain's own postmaster;
 * - A / AAAA: the relays' public names to their public_addresses.
 *
 * What cannot be computed (no relay with a public name, no DKIM key, no
 * postmaster address for the reports) comes back as warnings. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "ctrl.h"
#include "dkim.h"
#include "mem.h"

#define CTRL_DNS_TTL 3600
#define CTRL_DNS_MX_PRIORITY 10
#define CTRL_DNS_MAX_RECORDS 256
#define CTRL_DNS_MAX_WARNINGS 16

struct dns_out {
	struct ctrl_req *r;
	Mc__DomainDns *dns;
};

static void
record(struct dns_out *o, const char *name, const char *type, uint32_t priority,
       const char *value, const char *comment)
{
	Mc__DnsRecord *rec;

	if (o->dns->n_records >= CTRL_DNS_MAX_RECORDS)
		return;
	rec = mc_pool_alloc(o->r->pool, sizeof(*rec));
	mc__dns_record__init(rec);
	rec->name = mc_pool_strdup(o->r->pool, name);
	rec->type = (char *)type;
	rec->ttl = CTRL_DNS_TTL;
	rec->priority = priority;
	rec->value = mc_pool_strdup(o->r->pool, value);
	rec->comment = mc_pool_strdup(o->r->pool, comment);
	o->dns->records[o->dns->n_records++] = rec;
}

static void warning(struct dns_out *o, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
warning(struct dns_out *o, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (o->dns->n_warnings >= CTRL_DNS_MAX_WARNINGS)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	o->dns->warnings[o->dns->n_warnings++] =
	        mc_pool_strdup(o->r->pool, buf);
}

/* MX and A/AAAA of the relays that registered a public name. */
static int
relay_records(struct dns_out *o, const char *domain, bool address_pass)
{
	PGresult *res =
	        ctrl_query(o->r,
	                   "SELECT name, public_name,"
	                   " array_to_string(public_addresses, ' ')"
	                   " FROM nodes WHERE kind = 2 AND public_name <> ''"
	                   " ORDER BY public_name, name",
	                   0);
	int n;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	if (n == 0 && !address_pass)
		warning(o,
		        "no relay registered a public_name: the MX, A and AAAA "
		        "records are missing; set public_name and "
		        "public_addresses in each mail-relay's configuration");
	for (int i = 0; i < n; i++) {
		const char *relay = PQgetvalue(res, i, 0),
		           *pub = PQgetvalue(res, i, 1);
		char *addrs = mc_pool_strdup(o->r->pool, PQgetvalue(res, i, 2)),
		     *save = NULL;
		char comment[160];

		/* Two relays under one public name: one record. */
		if (i > 0 && strcmp(pub, PQgetvalue(res, i - 1, 1)) == 0)
			continue;
		if (!address_pass) {
			snprintf(comment, sizeof(comment),
			         "mail for %s goes to relay %s", domain, relay);
			record(o, domain, "MX", CTRL_DNS_MX_PRIORITY, pub,
			       comment);
			continue;
		}
		if (addrs[0] == '\0')
			warning(o,
			        "relay %s (%s) registered no public_addresses: "
			        "its A/AAAA records are missing",
			        relay, pub);
		snprintf(comment, sizeof(comment),
		         "relay %s (publish in the zone of %s)", relay, pub);
		for (char *a = strtok_r(addrs, " ", &save); a != NULL;
		     a = strtok_r(NULL, " ", &save)) {
			unsigned char buf[16];

			record(o, pub,
			       inet_pton(AF_INET, a, buf) == 1 ? "A" : "AAAA",
			       0, a, comment);
		}
	}
	PQclear(res);
	return 0;
}

static int
dkim_records(struct dns_out *o, const char *domain)
{
	Mc__DkimKey **keys;
	int n = ctrl_load_dkim_keys(o->r, CTRL_BY_DOMAIN, domain, false, &keys);

	if (n < 0)
		return -1;
	if (n == 0)
		warning(o, "%s has no DKIM key: run 'mailctl dkim create %s'",
		        domain, domain);
	for (int i = 0; i < n; i++) {
		enum mc_dkim_alg alg =
		        keys[i]->alg == MC__DKIM_ALG__DKIM_ALG_ED25519
		                ? MC_DKIM_ED25519_SHA256
		                : MC_DKIM_RSA_SHA256;
		char *txt = mc_dkim_dns_record(alg, keys[i]->public_b64);
		char name[512], comment[200];

		if (txt == NULL)
			continue;
		snprintf(name, sizeof(name), "%s._domainkey.%s",
		         keys[i]->selector, domain);
		snprintf(comment, sizeof(comment),
		         keys[i]->active
		                 ? "DKIM %s key, active"
		                 : "DKIM %s key, inactive since a rotation: "
		                   "keep it "
		                   "a few days for mail signed before, then "
		                   "'mailctl dkim rm'",
		         mc_dkim_alg_name(alg));
		record(o, name, "TXT", 0, txt, comment);
		free(txt);
	}
	return 0;
}

/* Warnings about what the records cannot cover. */
static int
checks(struct dns_out *o, const char *domain)
{
	PGresult *res = ctrl_query(
	        o->r,
	        "SELECT (SELECT string_agg(name, ', ' ORDER BY name) FROM "
	        "routes"
	        "   WHERE kind = 1 AND (is_default OR id IN"
	        "   (SELECT route_id FROM route_rules))),"
	        " EXISTS (SELECT 1 FROM accounts a JOIN domains d ON d.id = "
	        "a.domain_id"
	        "   WHERE d.name = $1 AND a.local_key = 'postmaster')"
	        " OR EXISTS (SELECT 1 FROM aliases al JOIN domains d ON"
	        "   d.id = al.domain_id WHERE d.name = $1 AND"
	        "   al.local_key IN ('postmaster', '*'))",
	        1, domain);

	if (res == NULL)
		return -1;
	if (!PQgetisnull(res, 0, 0))
		warning(o,
		        "mail leaves through smarthost route(s) %s: add the "
		        "provider's SPF mechanism (such as include:...) before "
		        "-all, "
		        "or that mail fails SPF",
		        PQgetvalue(res, 0, 0));
	if (PQgetvalue(res, 0, 1)[0] != 't')
		warning(o,
		        "postmaster@%s does not exist: DMARC reports sent to "
		        "it "
		        "would bounce; add an account or alias",
		        domain);
	PQclear(res);
	return 0;
}

int
ctrl_domain_dns(struct ctrl_req *r)
{
	char *domain = mc_addr_lower(
	        mc_pool_strdup(r->pool, r->req->domain_dns->name));
	Mc__DomainDns *dns = mc_pool_alloc(r->pool, sizeof(*dns));
	struct dns_out o = {.r = r, .dns = dns};
	char dmarc_name[300], dmarc[400];
	PGresult *res;
	int found;

	mc__domain_dns__init(dns);
	dns->domain = domain;
	dns->records = mc_pool_alloc(r->pool, sizeof(*dns->records) *
	                                              CTRL_DNS_MAX_RECORDS);
	dns->warnings = mc_pool_alloc(r->pool, sizeof(*dns->warnings) *
	                                               CTRL_DNS_MAX_WARNINGS);
	res = ctrl_query(r, "SELECT 1 FROM domains WHERE name = $1", 1, domain);
	if (res == NULL)
		return -1;
	found = PQntuples(res);
	PQclear(res);
	if (found == 0)
		return ctrl_fail(r, MC__STATUS__STATUS_NOT_FOUND,
		                 "domain %s does not exist", domain);
	snprintf(dmarc_name, sizeof(dmarc_name), "_dmarc.%s", domain);
	snprintf(dmarc, sizeof(dmarc),
	         "v=DMARC1; p=quarantine; rua=mailto:postmaster@%s", domain);
	if (relay_records(&o, domain, false) < 0)
		return -1;
	record(&o, domain, "TXT", 0, "v=spf1 mx -all",
	       "SPF: the relays (the MX hosts) send the domain's mail");
	if (dkim_records(&o, domain) < 0)
		return -1;
	record(&o, dmarc_name, "TXT", 0, dmarc,
	       "DMARC: unaligned mail to spam, aggregate reports to "
	       "postmaster");
	if (relay_records(&o, domain, true) < 0 || checks(&o, domain) < 0)
		return -1;
	r->resp->body_case = MC__RESPONSE__BODY_DOMAIN_DNS;
	r->resp->domain_dns = dns;
	return 0;
}
