/* Unit tests of relay/trusted (egress_trusted): a table of valid and
 * hostile lists, and matching at prefix boundaries. */
#include <stdio.h>
#include <stdlib.h>

#include "test.h"
#include "trusted.h"

static void
test_parse(void)
{
	static const char *const good[] = {
	        "127.0.0.0/8, ::1/128",
	        "10.0.0.1",
	        "0.0.0.0/0",
	        "::/0",
	        " 192.168.1.0/24,,fd00::/8\t10.1.2.3/32 ",
	        "2001:db8::/32,127.0.0.1/32",
	};
	static const char *const bad[] = {
	        "",
	        " , ",
	        "10.0.0.1/8",
	        "10.0.0.0/33",
	        "::1/129",
	        "10.0.0/8",
	        "localhost",
	        "10.0.0.0/",
	        "10.0.0.0/-1",
	        "10.0.0.0/8x",
	        "10.0.0.0/+8",
	        "fe80::1%eth0",
	        "[::1]",
	        "::1/1",
	        "1.2.3.4/ 8",
	        "2001:db8:0:0:0:0:0:0:1/128",
	        "111111111111111111111111111111111111111111111111111111111",
	};
	struct relay_trusted t = {.count = 0};
	const char *error;
	char many[64 * 16 + 64] = "";
	size_t n = 0;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		error = NULL;
		CHECK(relay_trusted_parse(good[i], &t, &error) == 0);
		if (error != NULL)
			fprintf(stderr, "good[%zu]: %s\n", i, error);
	}
	t.count = 99;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error = NULL;
		CHECK(relay_trusted_parse(bad[i], &t, &error) < 0 &&
		      error != NULL);
		CHECK(t.count == 99); /* unchanged */
	}
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "10.0.0.%d,",
		                      i);
	CHECK(relay_trusted_parse(many, &t, &error) < 0);
}

static void
test_match(void)
{
	struct relay_trusted t;
	const char *error;

	CHECK(relay_trusted_parse("127.0.0.0/8, ::1/128, 192.168.4.0/22, "
	                          "fd12:3400::/23, 10.9.9.9",
	                          &t, &error) == 0);
	CHECK(relay_trusted_match(&t, "127.0.0.1"));
	CHECK(relay_trusted_match(&t, "127.255.255.254"));
	CHECK(!relay_trusted_match(&t, "128.0.0.1"));
	CHECK(relay_trusted_match(&t, "::1"));
	CHECK(!relay_trusted_match(&t, "::2"));
	CHECK(relay_trusted_match(&t, "192.168.4.0"));
	CHECK(relay_trusted_match(&t, "192.168.7.255"));
	CHECK(!relay_trusted_match(&t, "192.168.8.0"));
	CHECK(!relay_trusted_match(&t, "192.168.3.255"));
	CHECK(relay_trusted_match(&t, "fd12:3401:ffff::1"));
	CHECK(relay_trusted_match(&t, "fd12:35ff::1"));
	CHECK(!relay_trusted_match(&t, "fd12:3600::1"));
	CHECK(!relay_trusted_match(&t, "fd12:3300::1"));
	CHECK(relay_trusted_match(&t, "10.9.9.9"));
	CHECK(!relay_trusted_match(&t, "10.9.9.8"));
	/* No family mixing: ::ffff:127.0.0.1 is shown as 127.0.0.1 by
	 * lib/conn; as a literal it matches no IPv4 network. */
	CHECK(!relay_trusted_match(&t, "::ffff:127.0.0.1"));
	CHECK(!relay_trusted_match(&t, "not an address"));
	CHECK(!relay_trusted_match(&t, ""));
	CHECK(relay_trusted_parse("0.0.0.0/0", &t, &error) == 0);
	CHECK(relay_trusted_match(&t, "203.0.113.9"));
	CHECK(!relay_trusted_match(&t, "2001:db8::1"));
}

int
main(void)
{
	test_parse();
	test_match();
	return mc_test_done();
}
