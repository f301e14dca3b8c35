/* Shared between the files of lib/mime (mime.c: the tree, mime_params.c:
 * field values, mime_json.c: JSON). Not for other modules. */
#ifndef MC_MIME_PRIVATE_H
#define MC_MIME_PRIVATE_H

#include "mime.h"

/* An RFC 2045 token after optional CFWS, lower-cased (upper-cased when
 * upper), from the pool; NULL when there is none. Advances *pp. */
const char *mc_mime_token(struct mc_pool *pool, const char **pp,
                          const char *end, bool upper);

/* The ";"-separated parameters in [p, end) (anything before the first
 * ';' is skipped), RFC 2231 sections joined; names unique. */
void mc_mime_params_parse(struct mc_pool *pool, const char *p, const char *end,
                          struct mc_mime_param **params_r, size_t *count_r);

/* Content-Language: comma-separated tags, comments dropped. */
void mc_mime_languages_parse(struct mc_pool *pool, const char *p,
                             const char *end, const char ***langs_r,
                             size_t *count_r);

#endif
