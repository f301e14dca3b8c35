/* The header block of a message split into unfolded fields, and the IMAP
 * ENVELOPE built from it (see imf.h). The address-list grammar lives in
 * imf_addr.c, the JSON form of the envelope in imf_json.c.
 *
 * The header is read in two passes over at most max_header octets: the
 * first finds where it ends and counts the fields, so the second can fill
 * an array of exactly the right size from the pool, with no reallocation
 * and nothing ever larger than the limits allow. */
#include "imf.h"

#include <string.h>
#include <strings.h>

/* A line of the input: text is [start, end) without its line end, the
 * next line starts at next. */
struct line {
	size_t start, end, next;
};

void
mc_imf_limits_default(struct mc_imf_limits *limits)
{
	limits->max_header = MC_IMF_MAX_HEADER_DEFAULT;
	limits->max_fields = MC_IMF_MAX_FIELDS_DEFAULT;
	limits->max_field = MC_IMF_MAX_FIELD_DEFAULT;
	limits->max_addresses = MC_IMF_MAX_ADDRESSES_DEFAULT;
}

static void
limits_resolve(struct mc_imf_limits *out, const struct mc_imf_limits *in)
{
	mc_imf_limits_default(out);
	if (in == NULL)
		return;
	if (in->max_header > 0)
		out->max_header = in->max_header;
	if (in->max_fields > 0)
		out->max_fields = in->max_fields;
	if (in->max_field > 0)
		out->max_field = in->max_field;
	if (in->max_addresses > 0)
		out->max_addresses = in->max_addresses;
}

/* The line at pos within p[0, limit). false when there is no complete line
 * (no LF before limit) and partial_ok is false. */
static bool
line_at(const unsigned char *p, size_t pos, size_t limit, bool partial_ok,
        struct line *l)
{
	const unsigned char *lf = memchr(p + pos, '\n', limit - pos);

	l->start = pos;
	if (lf == NULL) {
		if (!partial_ok)
			return false;
		l->end = l->next = limit;
		return true;
	}
	l->end = (size_t)(lf - p);
	l->next = l->end + 1;
	if (l->end > pos && p[l->end - 1] == '\r')
		l->end--;
	return true;
}

static bool
is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Pass 1: find the end of the header block, count field starts. Sets
 * hdr->size, has_body, TRUNC_HEADER; *fields_end_r is where the fields
 * stop (the empty line, or hdr->size). */
static size_t
scan_header(struct mc_imf_header *hdr, const unsigned char *p, size_t len,
            size_t max_header, size_t *fields_end_r)
{
	size_t window = len < max_header ? len : max_header;
	size_t pos = 0, starts = 0;
	struct line l;

	while (pos < window) {
		/* A last line without LF is complete only at the very end of
		 * the message, not where the scan window cuts it. */
		if (!line_at(p, pos, window, window == len, &l))
			break;
		if (l.end == l.start) {
			*fields_end_r = pos;
			hdr->size = l.next;
			hdr->has_body = true;
			return starts;
		}
		if (!is_blank(p[pos]))
			starts++;
		pos = l.next;
	}
	if (pos < len)
		hdr->truncated |= MC_IMF_TRUNC_HEADER;
	*fields_end_r = hdr->size = pos;
	return starts;
}

/* Length of the field name at p[0, n) (RFC 5322 ftext: printable ASCII but
 * ':'), and in *colon_r the offset of the colon after it and any blanks
 * (obs-optional); 0 when the line is not a field. */
static size_t
field_name(const unsigned char *p, size_t n, size_t *colon_r)
{
	size_t i = 0, name_len;

	while (i < n && p[i] > ' ' && p[i] < 0x7f && p[i] != ':')
		i++;
	name_len = i;
	while (i < n && is_blank(p[i]))
		i++;
	if (name_len == 0 || i >= n || p[i] != ':')
		return 0;
	*colon_r = i;
	return name_len;
}

/* Copy p[0, n) unfolded: every LF and a CR right before it go (inside a
 * field every line end is a fold); NUL becomes 0x80; blanks trimmed. */
static char *
unfold(struct mc_pool *pool, const unsigned char *p, size_t n, size_t *len_r)
{
	char *out = mc_pool_alloc(pool, n + 1);
	size_t o = 0, s = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' ||
		    (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n'))
			continue;
		out[o++] = p[i] == '\0' ? (char)0x80 : (char)p[i];
	}
	while (s < o && is_blank((unsigned char)out[s]))
		s++;
	while (o > s && is_blank((unsigned char)out[o - 1]))
		o--;
	out[o] = '\0';
	*len_r = o - s;
	return out + s;
}

/* Turn the raw field at p[start, end) (continuation lines included, final
 * line end excluded; first line ends at first_end) into *f. false when it
 * is not a field. */
static bool
make_field(struct mc_imf_field *f, struct mc_pool *pool, const unsigned char *p,
           size_t start, size_t first_end, size_t end, size_t max_field,
           unsigned *truncated)
{
	size_t colon,
	        name_len = field_name(p + start, first_end - start, &colon);
	size_t vstart, vend = end;

	if (name_len == 0)
		return false;
	vstart = start + colon + 1;
	if (end - start > max_field) {
		*truncated |= MC_IMF_TRUNC_FIELD;
		vend = start + max_field;
		if (vend < vstart)
			vend = vstart;
		/* Not a dangling CR where the cut split a fold's CRLF. */
		if (vend > vstart && p[vend - 1] == '\r' && p[vend] == '\n')
			vend--;
	}
	f->name = mc_pool_strndup(pool, (const char *)p + start, name_len);
	f->value = unfold(pool, p + vstart, vend - vstart, &f->value_len);
	f->offset = start;
	return true;
}

void
mc_imf_header_parse(struct mc_imf_header *hdr_r, struct mc_pool *pool,
                    const void *msg, size_t len,
                    const struct mc_imf_limits *limits)
{
	const unsigned char *p = msg;
	struct mc_imf_limits lim;
	size_t fields_end, starts, cap, pos = 0;
	struct line first, l;

	memset(hdr_r, 0, sizeof(*hdr_r));
	limits_resolve(&lim, limits);
	starts = scan_header(hdr_r, p, len, lim.max_header, &fields_end);
	cap = starts < lim.max_fields ? starts : lim.max_fields;
	if (cap > 0)
		hdr_r->fields =
		        mc_pool_alloc(pool, cap * sizeof(*hdr_r->fields));
	while (pos < fields_end) {
		line_at(p, pos, fields_end, true, &first);
		l = first;
		/* Continuation lines belong to the field above them. */
		while (l.next < fields_end && is_blank(p[l.next]))
			line_at(p, l.next, fields_end, true, &l);
		pos = l.next;
		if (is_blank(p[first.start])) {
			hdr_r->skipped++; /* continuation with no field */
			continue;
		}
		if (hdr_r->count == cap) {
			size_t colon;

			if (field_name(p + first.start, first.end - first.start,
			               &colon) == 0) {
				hdr_r->skipped++;
				continue;
			}
			hdr_r->truncated |= MC_IMF_TRUNC_FIELDS;
			break;
		}
		if (!make_field(&hdr_r->fields[hdr_r->count], pool, p,
		                first.start, first.end, l.end, lim.max_field,
		                &hdr_r->truncated)) {
			hdr_r->skipped++;
			continue;
		}
		hdr_r->fields[hdr_r->count++].size = l.next - first.start;
	}
}

const struct mc_imf_field *
mc_imf_header_find(const struct mc_imf_header *hdr, const char *name)
{
	for (size_t i = 0; i < hdr->count; i++) {
		if (strcasecmp(hdr->fields[i].name, name) == 0)
			return &hdr->fields[i];
	}
	return NULL;
}

/* ---- ENVELOPE --------------------------------------------------------- */

enum env_slot {
	ENV_DATE,
	ENV_SUBJECT,
	ENV_FROM,
	ENV_SENDER,
	ENV_REPLY_TO,
	ENV_TO,
	ENV_CC,
	ENV_BCC,
	ENV_IN_REPLY_TO,
	ENV_MESSAGE_ID,
	ENV_SLOTS
};

static const char *const env_names[ENV_SLOTS] = {
        [ENV_DATE] = "Date",
        [ENV_SUBJECT] = "Subject",
        [ENV_FROM] = "From",
        [ENV_SENDER] = "Sender",
        [ENV_REPLY_TO] = "Reply-To",
        [ENV_TO] = "To",
        [ENV_CC] = "Cc",
        [ENV_BCC] = "Bcc",
        [ENV_IN_REPLY_TO] = "In-Reply-To",
        [ENV_MESSAGE_ID] = "Message-ID",
};

static void
env_list(struct mc_imf_addr_list *list, struct mc_pool *pool,
         const struct mc_imf_field *f, size_t max_addresses,
         unsigned *truncated)
{
	memset(list, 0, sizeof(*list));
	if (f == NULL)
		return;
	mc_imf_addr_parse(list, pool, f->value, f->value_len, max_addresses);
	if (list->truncated)
		*truncated |= MC_IMF_TRUNC_ADDRESSES;
}

void
mc_imf_envelope_from_header(struct mc_imf_envelope *env_r, struct mc_pool *pool,
                            const struct mc_imf_header *hdr,
                            const struct mc_imf_limits *limits)
{
	const struct mc_imf_field *slot[ENV_SLOTS] = {NULL};
	struct mc_imf_limits lim;
	size_t max;

	memset(env_r, 0, sizeof(*env_r));
	limits_resolve(&lim, limits);
	max = lim.max_addresses;
	/* One pass; the first field of each name wins (RFC 3501). */
	for (size_t i = 0; i < hdr->count; i++) {
		for (int s = 0; s < ENV_SLOTS; s++) {
			if (slot[s] == NULL && strcasecmp(hdr->fields[i].name,
			                                  env_names[s]) == 0) {
				slot[s] = &hdr->fields[i];
				break;
			}
		}
	}
	env_r->truncated = hdr->truncated;
	env_r->date = slot[ENV_DATE] ? slot[ENV_DATE]->value : NULL;
	env_r->subject = slot[ENV_SUBJECT] ? slot[ENV_SUBJECT]->value : NULL;
	env_r->in_reply_to =
	        slot[ENV_IN_REPLY_TO] ? slot[ENV_IN_REPLY_TO]->value : NULL;
	env_r->message_id =
	        slot[ENV_MESSAGE_ID] ? slot[ENV_MESSAGE_ID]->value : NULL;
	env_list(&env_r->from, pool, slot[ENV_FROM], max, &env_r->truncated);
	env_list(&env_r->sender, pool, slot[ENV_SENDER], max,
	         &env_r->truncated);
	env_list(&env_r->reply_to, pool, slot[ENV_REPLY_TO], max,
	         &env_r->truncated);
	env_list(&env_r->to, pool, slot[ENV_TO], max, &env_r->truncated);
	env_list(&env_r->cc, pool, slot[ENV_CC], max, &env_r->truncated);
	env_list(&env_r->bcc, pool, slot[ENV_BCC], max, &env_r->truncated);
	/* RFC 3501 7.4.2: absent or empty Sender / Reply-To are set to From
	 * by the server. The arrays are shared: they are read-only. */
	if (env_r->sender.count == 0)
		env_r->sender = env_r->from;
	if (env_r->reply_to.count == 0)
		env_r->reply_to = env_r->from;
}

void
mc_imf_envelope_parse(struct mc_imf_envelope *env_r, struct mc_pool *pool,
                      const void *msg, size_t len,
                      const struct mc_imf_limits *limits)
{
	struct mc_imf_header hdr;

	mc_imf_header_parse(&hdr, pool, msg, len, limits);
	mc_imf_envelope_from_header(env_r, pool, &hdr, limits);
}
