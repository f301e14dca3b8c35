/* Fuzz target: a message as a mailbox node receives it over LMTP, through
 * header splitting, the ENVELOPE and its JSON form and back. The first
 * byte picks tight or default limits (tight ones reach every truncation
 * path with small inputs) and whether the rest is also parsed as one raw
 * address-list value. Checked on the way: limits hold, strings hold no
 * NUL and have the lengths claimed, fields lie inside the header, the JSON
 * never carries \u0000, and the JSON round trip gives back exactly the
 * same envelope. Nothing here may crash, leak or read out of bounds,
 * whatever the bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imf.h"

#define MUST(cond)                                                           \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "imf_fuzz: %s failed\n", #cond);      \
			abort();                                             \
		}                                                            \
	} while (0)

static bool
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
check_list(const struct mc_imf_addr_list *l, size_t max)
{
	MUST(l->count <= max + 1);
	MUST((l->count == 0) == (l->addrs == NULL));
	for (size_t i = 0; i < l->count; i++) {
		const struct mc_imf_address *a = &l->addrs[i];

		/* A NULL host is a group marker and nothing else. */
		if (a->host == NULL)
			MUST(a->name == NULL && a->adl == NULL);
		else
			MUST(a->mailbox != NULL && a->host[0] != '\0');
	}
}

static void
same_list(const struct mc_imf_addr_list *a, const struct mc_imf_addr_list *b)
{
	MUST(a->count == b->count);
	for (size_t i = 0; i < a->count; i++) {
		MUST(same_str(a->addrs[i].name, b->addrs[i].name));
		MUST(same_str(a->addrs[i].adl, b->addrs[i].adl));
		MUST(same_str(a->addrs[i].mailbox, b->addrs[i].mailbox));
		MUST(same_str(a->addrs[i].host, b->addrs[i].host));
	}
}

static void
check_header(const struct mc_imf_header *h, size_t len,
             const struct mc_imf_limits *lim)
{
	MUST(h->size <= len);
	MUST(h->count <= lim->max_fields);
	for (size_t i = 0; i < h->count; i++) {
		const struct mc_imf_field *f = &h->fields[i];

		MUST(f->name[0] != '\0');
		MUST(strlen(f->value) == f->value_len);
		MUST(f->value_len < lim->max_field);
		MUST(f->offset + f->size <= h->size);
		MUST(i == 0 || f->offset >= h->fields[i - 1].offset +
		                                   h->fields[i - 1].size);
	}
}

static void
round_trip(const struct mc_imf_envelope *env, struct mc_pool *pool)
{
	json_t *j = mc_imf_envelope_to_json(env), *back;
	struct mc_imf_envelope e2;
	const char *error;
	char *text = json_dumps(j, JSON_COMPACT);

	MUST(text != NULL);
	/* Without JSON_ALLOW_NUL jansson refuses \u0000, as jsonb does. */
	back = json_loads(text, 0, NULL);
	MUST(back != NULL);
	MUST(mc_imf_envelope_from_json(&e2, pool, back, &error) == 0);
	MUST(same_str(env->date, e2.date));
	MUST(same_str(env->subject, e2.subject));
	MUST(same_str(env->in_reply_to, e2.in_reply_to));
	MUST(same_str(env->message_id, e2.message_id));
	same_list(&env->from, &e2.from);
	same_list(&env->sender, &e2.sender);
	same_list(&env->reply_to, &e2.reply_to);
	same_list(&env->to, &e2.to);
	same_list(&env->cc, &e2.cc);
	same_list(&env->bcc, &e2.bcc);
	json_decref(back);
	json_decref(j);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_pool *pool;
	struct mc_imf_limits lim;
	struct mc_imf_header hdr;
	struct mc_imf_envelope env;
	struct mc_imf_addr_list l;

	if (size < 1)
		return 0;
	mc_imf_limits_default(&lim);
	if (data[0] & 1) {
		lim.max_header = 64 + data[0];
		lim.max_fields = 1 + (data[0] >> 5);
		lim.max_field = 16 + (data[0] >> 2);
		lim.max_addresses = 1 + (data[0] >> 4);
	}
	pool = mc_pool_new();
	mc_imf_header_parse(&hdr, pool, data + 1, size - 1, &lim);
	check_header(&hdr, size - 1, &lim);
	mc_imf_envelope_from_header(&env, pool, &hdr, &lim);
	check_list(&env.from, lim.max_addresses);
	check_list(&env.to, lim.max_addresses);
	check_list(&env.cc, lim.max_addresses);
	check_list(&env.bcc, lim.max_addresses);
	round_trip(&env, pool);
	if (data[0] & 2) {
		mc_imf_addr_parse(&l, pool, (const char *)data + 1, size - 1,
		                  lim.max_addresses);
		check_list(&l, lim.max_addresses);
	}
	mc_pool_free(&pool);
	return 0;
}

/* Seeds: real-world shapes and the nasty corners of the grammar. The
 * first byte of each is the selector described above. */
struct seed {
	const char *s;
	size_t len;
};
#define SEED(s) {s, sizeof(s) - 1}

static const struct seed seeds[] = {
	SEED("\x02Message-ID: <5f3c1d2e@example.com>\r\n"
	     "Date: Mon, 3 Jun 2024 10:15:42 +0200\r\n"
	     "To: Bob Example <bob@example.org>\r\n"
	     "From: Alice Example <alice@example.com>\r\n"
	     "Subject: Meeting notes\r\n"
	     "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
	     "\r\nHi Bob,\r\n"),
	SEED("\x00Received: by mail.example with SMTP id 2adb;\r\n"
	     "        Tue, 04 Jun 2024 01:02:03 -0700 (PDT)\r\n"
	     "In-Reply-To: <5f3c1d2e@example.com>\r\n"
	     "From: \"Doe, John \\\"JJ\\\"\" <john@example.com>\r\n"
	     "Cc: bob@example.org, \"Dan O'Brien\" <dan@example.net>\r\n"
	     "Subject: =?iso-8859-1?Q?R=E9union?=\r\n\r\n"),
	SEED("\x01" "From: a@x.test, B <b@y.test>\nSender: a@x.test\n"
	     "To: undisclosed-recipients:;\nReply-To:\nSubject: R\xe9union\n\n"),
	SEED("\x03To: A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)"
	     "public.example>,\r\n joe@example.org,\r\n John <jdoe@one.test> (my dear "
	     "friend); (the end of the group)\r\n"
	     "Cc: Mary Smith <@node.test,@relay.test:mary@example.net>, , jdoe@test "
	     " . example\r\nBcc: user@[192.168.0.1], \"john doe\"@[IPv6:2001:db8::1]"
	     "\r\n\r\n"),
	SEED("\x02" "From: \"a (b <c [d\r\nTo: ((((\r\nCc: <<<<\r\nBcc: [\r\n"
	     "Reply-To: John <john@x.test, <<j@x.test>> junk; g: a@b; ; x@y\r\n"
	     "Subject: x\r\n y\r\n\tz\r\nBogus\r\n continuation\r\n\r\n"),
	SEED("\x05" "From a@b Mon Jun  3 10:00:00 2024\nSubject : s\r\r\n"
	     "From: \x00@\xff\r\nTo: g1: g2: a@b.test;\r\n"),
};
#define NSEEDS (sizeof(seeds) / sizeof(seeds[0]))

static const uint8_t *seed_ptrs[NSEEDS];
static size_t seed_sizes[NSEEDS];

size_t mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r);

size_t
mc_fuzz_seeds(const uint8_t ***seeds_r, const size_t **sizes_r)
{
	for (size_t i = 0; i < NSEEDS; i++) {
		seed_ptrs[i] = (const uint8_t *)seeds[i].s;
		seed_sizes[i] = seeds[i].len;
	}
	*seeds_r = seed_ptrs;
	*sizes_r = seed_sizes;
	return NSEEDS;
}
