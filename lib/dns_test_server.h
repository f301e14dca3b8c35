/* A fake DNS server for dns_test.c and mx_connect_test.c: UDP on
 * 127.0.0.1 port 0, in the test's own loop, answering a fixed table with
 * a minimal RFC 1035 message encoder. It is a real network peer for
 * c-ares (no mock of the library): what the resolver sends goes through
 * the kernel and back.
 *
 * Each table entry names a record ("mx.test", TEST_DNS_A, "127.0.0.1";
 * MX data "10 host" and "0 ." for a null MX) or a behaviour for a name
 * (and a type, or 0 for every type): NXDOMAIN, SERVFAIL, REFUSED or DROP
 * (never answer: the resolver times out). A name with records but none of
 * the asked type gets an empty NOERROR answer (NODATA); a name absent
 * from the table gets NXDOMAIN. Names compare case-insensitively. */
#ifndef DNS_TEST_SERVER_H
#define DNS_TEST_SERVER_H

#include <stdint.h>

#include <uv.h>

enum test_dns_kind {
	TEST_DNS_RECORD = 0,
	TEST_DNS_NXDOMAIN,
	TEST_DNS_SERVFAIL,
	TEST_DNS_REFUSED,
	TEST_DNS_DROP,
};

#define TEST_DNS_A 1
#define TEST_DNS_MX 15
#define TEST_DNS_AAAA 28

struct test_dns_entry {
	const char *name; /* NULL ends the table */
	uint16_t type;    /* 0 with a behaviour: every type */
	enum test_dns_kind kind;
	const char *data; /* records only */
};

struct test_dns_server {
	uv_loop_t *loop;
	uv_udp_t udp;
	uint16_t port;
	char address[32]; /* "127.0.0.1:port" for mc_dns_settings */
	const struct test_dns_entry *table;
	/* observed */
	unsigned queries, answered, dropped;
	char last_name[256];
	uint16_t last_type;
};

/* Bind 127.0.0.1 port 0 and serve table (borrowed); 0 or -1. */
int test_dns_start(uv_loop_t *loop, struct test_dns_server *srv,
                   const struct test_dns_entry *table);
/* Close the socket (from the loop). */
void test_dns_stop(struct test_dns_server *srv);

#endif
