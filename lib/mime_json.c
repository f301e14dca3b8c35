/* The MIME tree as JSON (shape in mime.h). Strings follow imf.h's
 * lossless convention: valid UTF-8 as a JSON string, anything else as
 * {"base64": ...}; the helper is repeated here because imf_json.c keeps
 * its own static. */
#include "mime_private.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "mem.h"

#define B64_CHUNK (3u * 16384)

static json_t *
must(json_t *j)
{
	if (j == NULL)
		abort(); /* jansson out of memory, like mc_malloc */
	return j;
}

static json_t *
str_json(const char *s)
{
	size_t n;
	json_t *j;
	char *b64, *o;

	if (s == NULL)
		return must(json_null());
	n = strlen(s);
	if ((j = json_stringn(s, n)) != NULL)
		return j;
	o = b64 = mc_malloc(4 * ((n + 2) / 3) + 1);
	for (size_t i = 0; i < n; i += B64_CHUNK) {
		size_t c = n - i < B64_CHUNK ? n - i : B64_CHUNK;

		o += EVP_EncodeBlock((unsigned char *)o,
		                     (const unsigned char *)s + i, (int)c);
	}
	*o = '\0';
	j = must(json_pack("{s:s}", "base64", b64));
	free(b64);
	return j;
}

static void
add(json_t *obj, const char *key, json_t *val)
{
	if (json_object_set_new(obj, key, must(val)) < 0)
		abort();
}

static void
append(json_t *arr, json_t *val)
{
	if (json_array_append_new(arr, must(val)) < 0)
		abort();
}

static json_t *
params_json(const struct mc_mime_param *p, size_t count)
{
	json_t *arr = must(json_array());

	for (size_t i = 0; i < count; i++) {
		json_t *e = must(json_array());

		append(e, str_json(p[i].name));
		append(e, str_json(p[i].value));
		if (p[i].charset != NULL || p[i].language != NULL) {
			append(e, str_json(p[i].charset));
			append(e, str_json(p[i].language));
		}
		append(arr, e);
	}
	return arr;
}

static json_t *part_json(const struct mc_mime_part *p);

static void
add_children(json_t *o, const struct mc_mime_part *p)
{
	if (strcmp(p->type, "multipart") == 0 && p->children != NULL) {
		json_t *arr = must(json_array());

		for (const struct mc_mime_part *c = p->children; c != NULL;
		     c = c->next)
			append(arr, part_json(c));
		add(o, "parts", arr);
	} else if (p->envelope != NULL && p->children != NULL) {
		add(o, "envelope", mc_imf_envelope_to_json(p->envelope));
		add(o, "message", part_json(p->children));
	}
}

static json_t *
part_json(const struct mc_mime_part *p)
{
	json_t *o = must(json_object()), *v;

	add(o, "type", str_json(p->type));
	add(o, "subtype", str_json(p->subtype));
	add(o, "params", params_json(p->params, p->param_count));
	add(o, "id", str_json(p->id));
	add(o, "description", str_json(p->description));
	add(o, "encoding", str_json(p->encoding));
	add(o, "md5", str_json(p->md5));
	v = json_null();
	if (p->disposition != NULL)
		v = json_pack("{s:o, s:o}", "type", str_json(p->disposition),
		              "params",
		              params_json(p->disp_params, p->disp_param_count));
	add(o, "disposition", v);
	v = json_null();
	if (p->languages != NULL) {
		v = must(json_array());
		for (size_t i = 0; i < p->language_count; i++)
			append(v, str_json(p->languages[i]));
	}
	add(o, "language", v);
	add(o, "location", str_json(p->location));
	add(o, "header_offset", json_integer((json_int_t)p->header_offset));
	add(o, "header_size", json_integer((json_int_t)p->header_size));
	add(o, "body_offset", json_integer((json_int_t)p->body_offset));
	add(o, "body_size", json_integer((json_int_t)p->body_size));
	if (strcmp(p->type, "text") == 0 || (strcmp(p->type, "message") == 0 &&
	                                     strcmp(p->subtype, "rfc822") == 0))
		add(o, "lines", json_integer((json_int_t)p->lines));
	if (p->repaired)
		add(o, "repaired", json_true());
	add_children(o, p);
	return o;
}

json_t *
mc_mime_to_json(const struct mc_mime_message *msg)
{
	return must(json_pack("{s:I, s:o}", "truncated",
	                      (json_int_t)msg->truncated, "root",
	                      part_json(msg->root)));
}
