/* Trusted networks: the egress listener's list of peers allowed to hand
 * over outbound mail without a client certificate ("egress_trusted =
 * 127.0.0.0/8, ::1/128"). Pure: parsed once at startup, matched per
 * connection; no I/O, no allocation, safe on any thread. */
#ifndef RELAY_TRUSTED_H
#define RELAY_TRUSTED_H

#include <stdbool.h>
#include <stddef.h>

/* A relay trusts a few networks (its mailbox nodes' LAN or VPN); more is
 * a configuration mistake, not a use case. */
#define RELAY_TRUSTED_MAX 64

struct relay_trusted_net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix; /* 0..32 or 0..128 */
};

/* Caller's storage; zero it (or parse into it) before use. */
struct relay_trusted {
	size_t count;
	struct relay_trusted_net nets[RELAY_TRUSTED_MAX];
};

/* Parse a list of networks separated by commas and/or blanks: an IPv4 or
 * IPv6 address with an optional "/prefix" (none: that one address). A
 * network with bits set below its prefix ("10.0.0.1/8") is refused as a
 * likely typo, as is an empty list. -1 with error_r (naming the bad
 * item), and *t unchanged. */
int relay_trusted_parse(const char *text, struct relay_trusted *t,
                        const char **error_r);

/* Whether ip (an address literal as lib/conn reports it: IPv4-mapped
 * IPv6 addresses are shown as IPv4) is in one of the networks. */
bool relay_trusted_match(const struct relay_trusted *t, const char *ip);

#endif
