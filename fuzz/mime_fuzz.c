/* Fuzz target: a stored message through the MIME parser (lib/mime) and
 * its JSON form, as FETCH BODYSTRUCTURE and BODY[section] would use them.
 * The first byte picks tight or default limits (tight ones reach the
 * depth, parts and header cut-offs with small inputs). Checked on the
 * way: every part lies inside its parent's body and the message, header
 * and body are adjacent, type/subtype/encoding are set, multiparts have
 * parts, the limits hold, section lookup finds what the tree holds, and
 * the JSON serialises. Nothing may crash, leak or read out of bounds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"

#define MUST(cond)                                                             \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "mime_fuzz: %s failed\n", #cond);      \
			abort();                                               \
		}                                                              \
	} while (0)

static size_t
check_part(const struct mc_mime_part *p, size_t lo, size_t hi, size_t depth,
           size_t max_depth)
{
	size_t n = 1, kids = 0;

	MUST(depth < max_depth);
	MUST(p->type != NULL && p->subtype != NULL && p->encoding != NULL);
	MUST(p->header_offset == lo);
	MUST(p->body_offset == p->header_offset + p->header_size);
	MUST(p->body_offset + p->body_size == hi);
	for (size_t i = 0; i < p->param_count; i++)
		MUST(p->params[i].name != NULL && p->params[i].value != NULL);
	if (strcmp(p->type, "multipart") == 0)
		MUST(p->child_count >= 1);
	for (const struct mc_mime_part *c = p->children; c != NULL;
	     c = c->next) {
		MUST(c->parent == p);
		MUST(c->header_offset >= p->body_offset);
		MUST(c->body_offset + c->body_size <= hi);
		n += check_part(c, c->header_offset,
		                c->body_offset + c->body_size, depth + 1,
		                max_depth);
		kids++;
	}
	MUST(kids == p->child_count);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_mime_limits lim;
	struct mc_mime_message m;
	json_t *j;
	char *txt;
	static const char *const sections[] = {"",    "1",   "2",     "1.1",
	                                       "1.2", "2.1", "1.1.1", "3.2.1"};

	mc_mime_limits_default(&lim);
	if (size > 0 && (data[0] & 1)) {
		lim.max_depth = 4;
		lim.max_parts = 8;
		lim.imf.max_header = 256;
		lim.imf.max_fields = 8;
		lim.imf.max_field = 64;
	}
	if (size > 0) {
		data++;
		size--;
	}
	mc_mime_parse(&m, pool, data, size, &lim);
	MUST(m.root != NULL);
	MUST(m.part_count <= lim.max_parts);
	MUST(check_part(m.root, 0, size, 0, lim.max_depth) == m.part_count);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		const struct mc_mime_part *p = mc_mime_find(&m, sections[i]);

		MUST(p == NULL || p->body_offset + p->body_size <= size);
	}
	j = mc_mime_to_json(&m);
	txt = json_dumps(j, JSON_COMPACT);
	MUST(txt != NULL);
	MUST(strstr(txt, "\\u0000") == NULL);
	free(txt);
	json_decref(j);
	mc_pool_free(&pool);
	return 0;
}

struct seed {
	const char *s;
	size_t len;
};

#define SEED(lit)                                                              \
	{                                                                      \
		lit, sizeof(lit) - 1                                           \
	}

static const struct seed seeds[] = {
        SEED("\x00Subject: hi\r\n\r\nline one\r\nline two\r\n"),
        SEED("\x00From: a@example.com\r\n"
             "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
             "preamble\r\n--b1\r\n\r\nplain\r\n--b1\r\n"
             "Content-Type: text/html; charset=utf-8\r\n\r\n<p>x</p>\r\n"
             "--b1--\r\nepilogue\r\n"),
        SEED("\x01"
             "Content-Type: multipart/mixed; boundary=XyZ\n\n--XyZ\n"
             "Content-Type: text/plain; charset=iso-8859-1\n\nsee\n--XyZ\n"
             "Content-Type: application/pdf; name*0*=UTF-8'en'%E2%82%AC;\n"
             " name*1=x.pdf\nContent-Disposition: attachment;"
             " filename*=utf-8''r%C3%A9\nContent-Language: en, de\n"
             "Content-Transfer-Encoding: base64\n\nAAAA\n--XyZ--\n"),
        SEED("\x00"
             "Content-Type: multipart/mixed; boundary=out\r\n\r\n"
             "--out\r\nContent-Type: message/rfc822\r\n\r\n"
             "Subject: inner\r\nFrom: Bob <bob@example.org>\r\n"
             "Content-Type: multipart/digest; boundary=in\r\n\r\n"
             "--in\r\n\r\nSubject: d\r\n\r\none\r\n--in--\r\n--out--\r\n"),
        SEED("\x01"
             "Content-Type: multipart/mixed; boundary=a\r\n\r\n"
             "--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
             "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n"
             "--c\r\n\r\nx\r\n--a\r\n--a\r\n"),
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
