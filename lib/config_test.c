/* Unit tests for config files and secret files. */
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "test.h"

static const char *const keys[] = {"name", "port", "debug", NULL};

static void
test_parse_ok(void)
{
	struct mc_config *cfg = NULL;
	const char *err = NULL;
	uint64_t port;
	bool debug;

	CHECK(mc_config_parse("# c\n\n name = node-1 \nport=25\r\ndebug = yes\n",
	                      "t", keys, &cfg, &err) == 0);
	CHECK_STR(mc_config_get(cfg, "name", NULL), "node-1");
	CHECK(mc_config_get(cfg, "missing", NULL) == NULL);
	CHECK(mc_config_get_uint(cfg, "port", 0, 1, 65535, &port, &err) == 0 &&
	      port == 25);
	CHECK(mc_config_get_bool(cfg, "debug", false, &debug, &err) == 0 && debug);
	CHECK(mc_config_get_uint(cfg, "port", 0, 100, 200, &port, &err) == -1);
	mc_config_free(&cfg);
	CHECK(cfg == NULL);
}

static void
test_parse_errors(void)
{
	static const char *const bad[] = {
		"name\n",              /* no '=' */
		"nmae = x\n",          /* unknown key: typo */
		"name = a\nname = b\n", /* duplicate */
		"Name = x\n",          /* invalid key */
		" = x\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mc_config *cfg = NULL;
		const char *err = NULL;

		CHECK(mc_config_parse(bad[i], "t", keys, &cfg, &err) == -1);
		CHECK(err != NULL && strstr(err, "t:") == err);
		CHECK(cfg == NULL);
	}
	{
		struct mc_config *cfg = NULL;
		const char *err = NULL;
		uint64_t v;
		bool b;

		CHECK(mc_config_parse("port = -1\ndebug = maybe\n", "t", keys, &cfg,
		                      &err) == 0);
		CHECK(mc_config_get_uint(cfg, "port", 0, 0, 10, &v, &err) == -1);
		CHECK(mc_config_get_bool(cfg, "debug", false, &b, &err) == -1);
		mc_config_free(&cfg);
	}
}

static void
test_secret(void)
{
	char path[] = "/tmp/mc-secret-XXXXXX";
	int fd = mkstemp(path);
	char *s = NULL;
	const char *err = NULL;

	CHECK(fd >= 0);
	CHECK(write(fd, "s3cret\n", 7) == 7);
	close(fd);
	CHECK(mc_secret_read_file(path, &s, &err) == 0);
	CHECK_STR(s, "s3cret");
	CHECK(mc_secret_equal(s, "s3cret"));
	CHECK(!mc_secret_equal(s, "s3cre"));
	CHECK(!mc_secret_equal(s, "s3creT"));
	mc_secret_free(&s);
	CHECK(s == NULL);
	truncate(path, 0);
	CHECK(mc_secret_read_file(path, &s, &err) == -1);
	unlink(path);
	CHECK(mc_secret_read_file(path, &s, &err) == -1);
}

int
main(void)
{
	test_parse_ok();
	test_parse_errors();
	test_secret();
	return mc_test_done();
}
