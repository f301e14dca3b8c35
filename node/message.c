/* Per-message metadata for the mailbox store; see message.h. */
#include "message.h"

#include <jansson.h>

#include <strings.h>

#include "imap_format.h"
#include "imf.h"
#include "mime.h"
#include "pool.h"
#include "strbuf.h"

const char *const node_search_fields[] = {"Subject", "From", "To", "Cc", "Bcc",
                                          NULL};

static bool
search_field(const char *name)
{
	for (size_t i = 0; node_search_fields[i] != NULL; i++)
		if (strcasecmp(name, node_search_fields[i]) == 0)
			return true;
	return false;
}

static char *
search_headers(struct mc_pool *pool, const char *data, size_t len)
{
	struct mc_imf_header hdr;
	struct mc_strbuf b;

	mc_imf_header_parse(&hdr, pool, data, len, NULL);
	mc_strbuf_init(&b);
	for (size_t i = 0; i < hdr.count; i++) {
		const struct mc_imf_field *f = &hdr.fields[i];

		if (!search_field(f->name))
			continue;
		mc_strbuf_add(&b, data + f->offset, f->size);
		if (f->size == 0 || data[f->offset + f->size - 1] != '\n')
			mc_strbuf_adds(&b, "\r\n"); /* the last line of a
			                             message without a body */
	}
	mc_strbuf_adds(&b, "\r\n");
	if (!mc_imap_text_ok(b.data, b.len)) {
		mc_strbuf_fini(&b);
		return NULL;
	}
	return mc_strbuf_steal(&b);
}

void
node_message_analyze(const char *data, size_t len,
                     struct node_message_meta *meta_r)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_imf_envelope env;
	struct mc_mime_message mime;
	json_t *json;

	mc_blob_key_of(data, len, meta_r->key);
	mc_imf_envelope_parse(&env, pool, data, len, NULL);
	json = mc_imf_envelope_to_json(&env);
	meta_r->envelope_json = json_dumps(json, JSON_COMPACT);
	meta_r->imap_envelope = mc_imap_envelope_text(meta_r->envelope_json);
	json_decref(json);
	mc_mime_parse(&mime, pool, data, len, NULL);
	json = mc_mime_to_json(&mime);
	meta_r->bodystructure_json = json_dumps(json, JSON_COMPACT);
	json_decref(json);
	meta_r->search_headers = search_headers(pool, data, len);
	mc_pool_free(&pool);
}

void
node_message_meta_fini(struct node_message_meta *meta)
{
	free(meta->envelope_json);
	free(meta->bodystructure_json);
	free(meta->imap_envelope);
	free(meta->search_headers);
	meta->envelope_json = meta->bodystructure_json = NULL;
	meta->imap_envelope = meta->search_headers = NULL;
}
