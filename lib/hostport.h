/* "host:port" settings for listeners and peers: an IPv4 literal, a
 * bracketed IPv6 literal ("[::1]:24") or, where the caller allows it, a
 * host name. Pure parsing, no DNS. */
#ifndef MC_HOSTPORT_H
#define MC_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>

#define MC_HOST_MAX 255

/* Split s into host (without brackets) and port 1..65535. host_r must
 * hold MC_HOST_MAX + 1 bytes. Returns 0, or -1 with error_r. */
int mc_hostport_parse(const char *s, char *host_r, uint16_t *port_r,
                      const char **error_r);

#endif
