/* Content-transfer decoding (RFC 2045): base64 and quoted-printable, as
 * lenient as mail readers are (junk skipped, soft line breaks joined).
 * Each appends the decoded octets to out. Pure functions. */
#ifndef MC_MIME_DECODE_H
#define MC_MIME_DECODE_H

#include <stddef.h>

#include "strbuf.h"

/* The value of a base64 alphabet character (RFC 4648), -1 for others. */
int mc_mime_base64_value(unsigned char c);
void mc_mime_decode_base64(struct mc_strbuf *out, const char *s, size_t n);
void mc_mime_decode_qp(struct mc_strbuf *out, const char *s, size_t n);

#endif
