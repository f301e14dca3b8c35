/* The fake DNS server of dns_test_server.h: parses the question of a
 * query (one, uncompressed, as resolvers send it), finds what the table
 * says and writes the answer records after the echoed question, each
 * owner name a compression pointer to the question (RFC 1035 4.1.4). */
#include "dns_test_server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MSG_MAX 1232

static char rbuf[4096];

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = rbuf;
	buf->len = sizeof(rbuf);
}

/* The question: name (lower-case, dotted), type, and where it ends. */
static int
parse_query(const unsigned char *q, size_t len, char *name, size_t size,
            uint16_t *type_r, size_t *end_r)
{
	size_t off = 12, n = 0;

	if (len < 12 || (q[2] & 0x80) != 0 || q[4] != 0 || q[5] != 1)
		return -1;
	for (;;) {
		unsigned l;

		if (off >= len)
			return -1;
		l = q[off++];
		if (l == 0)
			break;
		if (l > 63 || off + l > len || n + l + 2 > size)
			return -1;
		if (n > 0)
			name[n++] = '.';
		for (unsigned i = 0; i < l; i++)
			name[n++] = (char)tolower(q[off + i]);
		off += l;
	}
	name[n] = '\0';
	if (off + 4 > len)
		return -1;
	*type_r = (uint16_t)(q[off] << 8 | q[off + 1]);
	*end_r = off + 4;
	return 0;
}

static size_t
put_name(unsigned char *p, const char *name)
{
	size_t n = 0;

	while (*name != '\0' && strcmp(name, ".") != 0) {
		const char *dot = strchr(name, '.');
		size_t l = dot != NULL ? (size_t)(dot - name) : strlen(name);

		p[n++] = (unsigned char)l;
		memcpy(p + n, name, l);
		n += l;
		name += l + (dot != NULL ? 1 : 0);
	}
	p[n++] = 0;
	return n;
}

/* One answer record for e at p; its size, 0 if it does not fit. */
static size_t
put_record(unsigned char *p, size_t room, const struct test_dns_entry *e)
{
	unsigned char rdata[300];
	size_t rlen = 0;

	if (e->type == TEST_DNS_A) {
		if (inet_pton(AF_INET, e->data, rdata) != 1)
			return 0;
		rlen = 4;
	} else if (e->type == TEST_DNS_AAAA) {
		if (inet_pton(AF_INET6, e->data, rdata) != 1)
			return 0;
		rlen = 16;
	} else if (e->type == TEST_DNS_MX) {
		unsigned pref = (unsigned)strtoul(e->data, NULL, 10);
		const char *host = strchr(e->data, ' ');

		if (host == NULL || strlen(host + 1) > 250)
			return 0;
		rdata[0] = (unsigned char)(pref >> 8);
		rdata[1] = (unsigned char)pref;
		rlen = 2 + put_name(rdata + 2, host + 1);
	} else {
		return 0;
	}
	if (12 + rlen > room)
		return 0;
	p[0] = 0xc0; /* the question's name, at offset 12 */
	p[1] = 12;
	p[2] = (unsigned char)(e->type >> 8);
	p[3] = (unsigned char)e->type;
	p[4] = 0;
	p[5] = 1; /* IN */
	p[6] = p[7] = p[8] = 0;
	p[9] = 60; /* TTL */
	p[10] = (unsigned char)(rlen >> 8);
	p[11] = (unsigned char)rlen;
	memcpy(p + 12, rdata, rlen);
	return 12 + rlen;
}

/* What the table says for (name, type): a behaviour, or 0 with the
 * records written after the question and counted in *count_r. */
static int
lookup(const struct test_dns_server *srv, const char *name, uint16_t type,
       unsigned char *p, size_t room, size_t *used_r, unsigned *count_r)
{
	bool known = false;

	*used_r = 0;
	*count_r = 0;
	for (const struct test_dns_entry *e = srv->table; e->name; e++) {
		if (strcasecmp(e->name, name) != 0)
			continue;
		known = true;
		if (e->kind != TEST_DNS_RECORD &&
		    (e->type == 0 || e->type == type))
			return e->kind;
	}
	if (!known)
		return TEST_DNS_NXDOMAIN;
	for (const struct test_dns_entry *e = srv->table; e->name; e++) {
		size_t n;

		if (e->kind != TEST_DNS_RECORD || e->type != type ||
		    strcasecmp(e->name, name) != 0)
			continue;
		n = put_record(p + *used_r, room - *used_r, e);
		if (n == 0)
			continue;
		*used_r += n;
		(*count_r)++;
	}
	return TEST_DNS_RECORD;
}

static void
recv_cb(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf,
        const struct sockaddr *addr, unsigned flags)
{
	struct test_dns_server *srv = udp->data;
	const unsigned char *q = (const unsigned char *)buf->base;
	unsigned char out[MSG_MAX];
	size_t end, used;
	unsigned count;
	uint16_t type;
	uv_buf_t b;
	int kind;

	(void)flags;
	if (nread <= 0 || addr == NULL)
		return;
	srv->queries++;
	if (parse_query(q, (size_t)nread, srv->last_name,
	                sizeof(srv->last_name), &type, &end) < 0 ||
	    end > sizeof(out))
		return;
	srv->last_type = type;
	kind = lookup(srv, srv->last_name, type, out + end, sizeof(out) - end,
	              &used, &count);
	if (kind == TEST_DNS_DROP) {
		srv->dropped++;
		return;
	}
	memcpy(out, q, end);
	out[2] = (unsigned char)(0x80 | 0x04 | (q[2] & 0x79)); /* QR AA */
	out[3] = (unsigned char)(0x80 | (kind == TEST_DNS_NXDOMAIN   ? 3
	                                 : kind == TEST_DNS_SERVFAIL ? 2
	                                 : kind == TEST_DNS_REFUSED  ? 5
	                                                             : 0));
	out[6] = (unsigned char)(count >> 8);
	out[7] = (unsigned char)count;
	memset(out + 8, 0, 4); /* no authority, no additional */
	b = uv_buf_init((char *)out, (unsigned)(end + used));
	if (uv_udp_try_send(udp, &b, 1, addr) >= 0)
		srv->answered++;
}

int
test_dns_start(uv_loop_t *loop, struct test_dns_server *srv,
               const struct test_dns_entry *table)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss), r;

	srv->loop = loop;
	srv->table = table;
	uv_udp_init(loop, &srv->udp);
	srv->udp.data = srv;
	uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&ss);
	if ((r = uv_udp_bind(&srv->udp, (struct sockaddr *)&ss, 0)) < 0 ||
	    (r = uv_udp_getsockname(&srv->udp, (struct sockaddr *)&ss, &len)) <
	            0 ||
	    (r = uv_udp_recv_start(&srv->udp, alloc_cb, recv_cb)) < 0) {
		fprintf(stderr, "fake dns: %s\n", uv_strerror(r));
		uv_close((uv_handle_t *)&srv->udp, NULL);
		return -1;
	}
	srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	snprintf(srv->address, sizeof(srv->address), "127.0.0.1:%u", srv->port);
	return 0;
}

void
test_dns_stop(struct test_dns_server *srv)
{
	uv_close((uv_handle_t *)&srv->udp, NULL);
}
