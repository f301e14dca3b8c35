/* Trusted networks; see trusted.h. */
#include "trusted.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* "a.b.c.d[/n]" or "v6[/n]" in item (NUL-terminated, no blanks). */
static int
net_parse(const char *item, struct relay_trusted_net *net, const char **error_r)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(item, '/');
	size_t len = slash != NULL ? (size_t)(slash - item) : strlen(item);
	unsigned max, bytes;
	char *end;
	unsigned long prefix;

	if (len == 0 || len >= sizeof(addr))
		goto bad;
	memcpy(addr, item, len);
	addr[len] = '\0';
	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, addr, net->addr) == 1)
		net->family = AF_INET, max = 32;
	else if (inet_pton(AF_INET6, addr, net->addr) == 1)
		net->family = AF_INET6, max = 128;
	else
		goto bad;
	net->prefix = max;
	if (slash != NULL) {
		if (slash[1] < '0' || slash[1] > '9')
			goto bad;
		prefix = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || prefix > max)
			goto bad;
		net->prefix = (unsigned)prefix;
	}
	bytes = max / 8;
	for (unsigned bit = net->prefix; bit < bytes * 8; bit++) {
		if (net->addr[bit / 8] & (0x80u >> (bit % 8))) {
			*error_r =
			        mc_errorf("trusted network \"%.64s\" has host "
			                  "bits set below its prefix",
			                  item);
			return -1;
		}
	}
	return 0;
bad:
	*error_r = mc_errorf("\"%.64s\" is not an IP address or network "
	                     "(address/prefix)",
	                     item);
	return -1;
}

int
relay_trusted_parse(const char *text, struct relay_trusted *t,
                    const char **error_r)
{
	struct relay_trusted out = {.count = 0};
	char item[INET6_ADDRSTRLEN + 8];
	const char *p = text, *start;
	size_t len;

	for (;;) {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		len = (size_t)(p - start);
		if (len >= sizeof(item)) {
			*error_r =
			        mc_errorf("\"%.64s...\" is not an IP address "
			                  "or network",
			                  start);
			return -1;
		}
		if (out.count == RELAY_TRUSTED_MAX) {
			*error_r = mc_errorf("more than %d trusted networks",
			                     RELAY_TRUSTED_MAX);
			return -1;
		}
		memcpy(item, start, len);
		item[len] = '\0';
		if (net_parse(item, &out.nets[out.count], error_r) < 0)
			return -1;
		out.count++;
	}
	if (out.count == 0) {
		*error_r = "the trusted network list is empty";
		return -1;
	}
	*t = out;
	return 0;
}

static bool
net_match(const struct relay_trusted_net *net, const unsigned char *addr)
{
	unsigned full = net->prefix / 8, rest = net->prefix % 8;

	if (memcmp(net->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((net->addr[full] ^ addr[full]) & (0xffu << (8 - rest))) == 0;
}

bool
relay_trusted_match(const struct relay_trusted *t, const char *ip)
{
	unsigned char a4[4], a6[16];
	bool v4 = inet_pton(AF_INET, ip, a4) == 1;
	bool v6 = !v4 && inet_pton(AF_INET6, ip, a6) == 1;

	for (size_t i = 0; i < t->count; i++) {
		const struct relay_trusted_net *net = &t->nets[i];

		if ((v4 && net->family == AF_INET && net_match(net, a4)) ||
		    (v6 && net->family == AF_INET6 && net_match(net, a6)))
			return true;
	}
	return false;
}
