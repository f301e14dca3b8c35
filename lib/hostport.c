/* host:port parsing; see hostport.h. */
#include "hostport.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

int
mc_hostport_parse(const char *s, char *host_r, uint16_t *port_r,
                  const char **error_r)
{
	const char *colon, *host = s;
	size_t hlen;
	char *end;
	unsigned long port;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':') {
			*error_r = mc_errorf("'%s': expected [ipv6]:port", s);
			return -1;
		}
		host = s + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL) {
			*error_r = mc_errorf("'%s': expected host:port (IPv6 in brackets)", s);
			return -1;
		}
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen > MC_HOST_MAX) {
		*error_r = mc_errorf("'%s': missing or overlong host", s);
		return -1;
	}
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port == 0 || port > 65535) {
		*error_r = mc_errorf("'%s': port must be 1-65535", s);
		return -1;
	}
	memcpy(host_r, host, hlen);
	host_r[hlen] = '\0';
	*port_r = (uint16_t)port;
	return 0;
}
