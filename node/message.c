/* Per-message metadata for the mailbox store; see message.h. */
#include "message.h"

#include <jansson.h>

#include "imf.h"
#include "mime.h"
#include "pool.h"

void
node_message_analyze(const char *data, size_t len,
                     char key_r[MC_BLOB_KEY_LEN + 1], char **envelope_json_r,
                     char **bodystructure_json_r)
{
	struct mc_pool *pool = mc_pool_new();
	struct mc_imf_envelope env;
	struct mc_mime_message mime;
	json_t *json;

	mc_blob_key_of(data, len, key_r);
	mc_imf_envelope_parse(&env, pool, data, len, NULL);
	json = mc_imf_envelope_to_json(&env);
	*envelope_json_r = json_dumps(json, JSON_COMPACT);
	json_decref(json);
	mc_mime_parse(&mime, pool, data, len, NULL);
	json = mc_mime_to_json(&mime);
	*bodystructure_json_r = json_dumps(json, JSON_COMPACT);
	json_decref(json);
	mc_pool_free(&pool);
}
