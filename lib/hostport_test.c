/* Unit tests for host:port parsing. */
#include "hostport.h"
#include "test.h"

int
main(void)
{
	char host[MC_HOST_MAX + 1];
	uint16_t port = 0;
	const char *err = NULL;
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", ":25", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:25x", "::1:25", "[::1]25", "[::1", "[]:25", "a:b:c",
	};

	CHECK(mc_hostport_parse("127.0.0.1:2525", host, &port, &err) == 0 &&
	      port == 2525);
	CHECK_STR(host, "127.0.0.1");
	CHECK(mc_hostport_parse("[::1]:24", host, &port, &err) == 0 && port == 24);
	CHECK_STR(host, "::1");
	CHECK(mc_hostport_parse("mx.example.org:25", host, &port, &err) == 0);
	CHECK_STR(host, "mx.example.org");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(mc_hostport_parse(bad[i], host, &port, &err) == -1 && err != NULL);
	return mc_test_done();
}
