/* The Received header; see received.h. */
#include "received.h"

#include <stdio.h>
#include <time.h>

void
relay_received_header(struct mc_smtp_session *s, const char *hostname,
                      const char *id, const char *rcpt, char *buf, size_t size)
{
	const char *helo = mc_smtp_session_helo(s);
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	size_t n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	n = (size_t)snprintf(buf, size,
	                     "Received: from %.255s ([%s])\r\n\tby %.255s "
	                     "(mail-cluster) with %s id %s",
	                     helo != NULL ? helo : "unknown",
	                     mc_smtp_session_peer_ip(s), hostname,
	                     mc_smtp_session_protocol(s), id);
	if (n < size && mc_smtp_session_tls(s))
		n += (size_t)snprintf(
		        buf + n, size - n,
		        "\r\n\t(using %s with cipher %s (%d bits))",
		        mc_smtp_session_tls_version(s),
		        mc_smtp_session_tls_cipher(s),
		        mc_smtp_session_tls_bits(s));
	if (n < size && rcpt != NULL)
		n += (size_t)snprintf(buf + n, size - n, "\r\n\tfor <%.512s>",
		                      rcpt);
	if (n < size)
		snprintf(buf + n, size - n, ";\r\n\t%s\r\n", date);
}
