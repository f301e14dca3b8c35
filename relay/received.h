/* The relay's "Received:" trace header (RFC 5321 4.4), written at the top
 * of every message it queues - inbound from the MX, outbound from the
 * egress listener - with the queue id, so a message can be followed from
 * its headers to the relay's logs. Loop thread (reads the session). */
#ifndef RELAY_RECEIVED_H
#define RELAY_RECEIVED_H

#include <stddef.h>

#include "smtp_server.h"

/* Fits every field at its bound. */
#define RELAY_RECEIVED_SIZE 2048

/* The header, folded, CRLF-terminated, into buf (RELAY_RECEIVED_SIZE):
 * "from <helo> ([ip]) by <hostname> (mail-cluster) with <proto> id <id>",
 * the TLS version and cipher when the session uses TLS, "for <rcpt>"
 * when rcpt is not NULL (give it only for a single recipient: others
 * stay private), and the date. */
void relay_received_header(struct mc_smtp_session *s, const char *hostname,
                           const char *id, const char *rcpt, char *buf,
                           size_t size);

#endif
