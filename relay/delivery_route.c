/* Routing one recipient with the directory as it is at this attempt
 * (delivery_private.h): a local account goes over LMTP to the node that
 * owns its shard; an address of a local domain without an account
 * failed for good; any other domain goes out through egress, by the
 * route the directory gives its domain now - the rule's, else the
 * default's, else direct MX. Routes are looked up by domain at every
 * attempt and copied into the session, never kept across attempts, so
 * a changed, deleted or recreated route applies to the next attempt.
 * Also the kick: pending recipients whose route changed go at once. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "delivery_private.h"
#include "error.h"

static void
route_wait(struct dl_route *r, bool long_retry, const char *note,
           const char *text)
{
	r->kind = DL_ROUTE_WAITING;
	r->long_retry = long_retry;
	r->enhanced = "4.4.0";
	/* Notes are short ("shard:N", "egress"); the bound keeps gcc sure. */
	snprintf(r->note, sizeof(r->note), "%s%.*s", DL_ROUTE_WAIT,
	         (int)(sizeof(r->note) - sizeof(DL_ROUTE_WAIT)), note);
	snprintf(r->text, sizeof(r->text), "%s", text);
}

/* A short digest of everything in a smarthost route that changes where
 * or how mail goes: part of the note, so a kick notices an edited route
 * (same name and id, new host) as it notices a recreated one (new id). */
static void
route_digest(const struct mc_dir_route *rt, char out[9])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	char text[2048];

	snprintf(text, sizeof(text), "%d|%s|%u|%d|%s|%s|%s", (int)rt->kind,
	         rt->host, (unsigned)rt->port, (int)rt->tls, rt->auth_user,
	         rt->secret_env, rt->secret_file);
	if (EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL) != 1 ||
	    len < 4) {
		snprintf(out, 9, "00000000");
		return;
	}
	snprintf(out, 9, "%02x%02x%02x%02x", md[0], md[1], md[2], md[3]);
}

/* A foreign recipient: the route of its domain now. */
static void
route_egress(const struct mc_directory *dir, const char *domain,
             struct dl_route *r)
{
	const struct mc_dir_route *rt = mc_directory_route_for(dir, domain);
	char digest[9], lower[DL_DEST_SIZE];
	size_t i;

	for (i = 0; domain[i] != '\0' && i + 1 < sizeof(lower); i++)
		lower[i] = (char)tolower((unsigned char)domain[i]);
	lower[i] = '\0';
	r->kind = DL_ROUTE_EGRESS;
	r->domain = domain;
	if (rt != NULL && rt->kind == MC_DIR_ROUTE_SMARTHOST) {
		r->route = rt;
		route_digest(rt, digest);
		snprintf(r->dest, sizeof(r->dest), "smarthost:%llu",
		         (unsigned long long)rt->id);
		snprintf(r->note, sizeof(r->note), "smarthost:%.64s#%llu:%s",
		         rt->name, (unsigned long long)rt->id, digest);
		return;
	}
	/* An MX route, or none: the recipient domain's MX. */
	r->route = rt;
	snprintf(r->dest, sizeof(r->dest), "mx:%.253s", lower);
	snprintf(r->note, sizeof(r->note), "mx:%.250s", lower);
}

void
dl_route_rcpt(const struct relay_delivery *d, const struct mc_directory *dir,
              const char *address, struct dl_route *r)
{
	const struct mc_dir_account *acct;
	const struct mc_dir_shard *sh;
	const char *at, *error;
	unsigned char addr[16];
	char note[DL_DEST_SIZE];

	memset(r, 0, sizeof(*r));
	if (dir == NULL) {
		route_wait(r, false, "directory",
		           "the relay has no directory yet");
		return;
	}
	acct = mc_directory_account(dir, address);
	if (acct == NULL) {
		at = strrchr(address, '@');
		if (at != NULL && mc_directory_has_domain(dir, at + 1)) {
			r->kind = DL_ROUTE_GONE;
			r->enhanced = "5.1.1";
			snprintf(r->text, sizeof(r->text),
			         "mailbox no longer exists");
			return;
		}
		if (at != NULL && at[1] != '\0' && d->egress) {
			route_egress(dir, at + 1, r);
			return;
		}
		/* Without egress (a relay that has none configured) a
		 * foreign recipient waits, and fails only at give_up_s. */
		route_wait(r, true, "egress",
		           "outbound delivery is not configured");
		return;
	}
	sh = mc_directory_shard(dir, acct->shard);
	if (sh == NULL || sh->lmtp_address[0] == '\0') {
		snprintf(note, sizeof(note), "shard:%u", (unsigned)acct->shard);
		route_wait(r, false, note,
		           mc_errorf("no mailbox node serves shard %u yet",
		                     (unsigned)acct->shard));
		return;
	}
	if (mc_hostport_parse(sh->lmtp_address, r->ip, &r->port, &error) < 0 ||
	    (inet_pton(AF_INET, r->ip, addr) != 1 &&
	     inet_pton(AF_INET6, r->ip, addr) != 1)) {
		snprintf(note, sizeof(note), "shard:%u:%.200s",
		         (unsigned)acct->shard, sh->lmtp_address);
		route_wait(
		        r, false, note,
		        mc_errorf(
		                "mailbox node %.64s has no usable LMTP address",
		                sh->node_name));
		return;
	}
	r->kind = DL_ROUTE_NODE;
	r->node_name = sh->node_name;
	r->epoch = sh->epoch;
	snprintf(r->note, sizeof(r->note), "lmtp:%.*s",
	         (int)(sizeof(r->note) - 6), sh->lmtp_address);
	snprintf(r->dest, sizeof(r->dest), "%s", r->note);
}

void
dl_rekick(struct dl_msg *m)
{
	const struct mc_directory *dir = m->d->directory(m->d->ctx);
	struct dl_route route;

	for (size_t i = 0; i < m->env->rcpt_count; i++) {
		struct relay_queue_rcpt *r = &m->env->rcpts[i];

		if (r->state != RELAY_QUEUE_PENDING || r->next_attempt == 0)
			continue;
		dl_route_rcpt(m->d, dir, r->address, &route);
		/* A new route, or the same node under a new lease epoch (the
		 * shard was taken over, e.g. by the node's own restart after
		 * it had answered 451): try again now. */
		if (strcmp(route.note, r->route) != 0 ||
		    (route.kind == DL_ROUTE_NODE && m->epochs != NULL &&
		     m->epochs[i] != 0 && m->epochs[i] != route.epoch))
			r->next_attempt = 0; /* kept in memory until written */
	}
}
