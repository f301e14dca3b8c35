/* The daemon skeleton: command line and config errors with their exit
 * codes, the config helpers, and a run stopped by SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "daemon.h"
#include "mem.h"
#include "test.h"

static const char *const keys[] = {
        "name",         "token_file", "tls_ca_file", "tls_cert_file",
        "tls_key_file", "log_level",  NULL,
};

static char dir_path[] = "/tmp/daemon_test.XXXXXX";

static char *
write_file(const char *name, const char *text)
{
	char *path = mc_asprintf("%s/%s", dir_path, name);
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	return path;
}

/* mc_daemon_init with argv; returns the exit code, or -1 when it would
 * proceed (then fini'd). */
static int
init_argv(int argc, char **argv)
{
	struct mc_daemon d;

	if (mc_daemon_init(&d, "daemon_test", keys, argc, argv) < 0) {
		mc_daemon_fini(&d);
		return d.exit_code;
	}
	mc_daemon_fini(&d);
	return -1;
}

static void
test_args(void)
{
	char *good = write_file("good.conf", "name = x\nlog_level = warn\n");
	char *unknown = write_file("unknown.conf", "nmae = x\n");
	char *level = write_file("level.conf", "log_level = loud\n");
	char a0[] = "daemon_test", help[] = "--help", version[] = "--version";
	char config[] = "--config", bogus[] = "--bogus",
	     missing[] = "/nonexistent";
	char *v_help[] = {a0, help, NULL};
	char *v_version[] = {a0, version, NULL};
	char *v_none[] = {a0, NULL};
	char *v_bogus[] = {a0, config, good, bogus, NULL};
	char *v_dangling[] = {a0, config, NULL};
	char *v_missing[] = {a0, config, missing, NULL};
	char *v_unknown[] = {a0, config, unknown, NULL};
	char *v_level[] = {a0, config, level, NULL};
	char *v_good[] = {a0, config, good, NULL};

	CHECK(init_argv(2, v_help) == 0);
	CHECK(init_argv(2, v_version) == 0);
	CHECK(init_argv(1, v_none) == 2);
	CHECK(init_argv(4, v_bogus) == 2);
	CHECK(init_argv(2, v_dangling) == 2);
	CHECK(init_argv(3, v_missing) == 1);
	CHECK(init_argv(3, v_unknown) == 1);
	CHECK(init_argv(3, v_level) == 1);
	CHECK(init_argv(3, v_good) == -1);
	free(good);
	free(unknown);
	free(level);
}

static void
test_helpers(void)
{
	char *tok = write_file("token", "s3cret\n");
	char *text =
	        mc_asprintf("name = x\ntoken_file = %s\ntls_cert_file = c\n"
	                    "log_level = warn\n",
	                    tok);
	char *conf = write_file("helpers.conf", text);
	char a0[] = "daemon_test", config[] = "--config";
	char *argv[] = {a0, config, conf, NULL};
	struct mc_daemon d;
	struct mc_tls_files tls;
	const char *v, *error;
	char *secret = NULL;

	CHECK(mc_daemon_init(&d, "daemon_test", keys, 3, argv) == 0);
	CHECK(mc_daemon_require(&d, "name", &v, &error) == 0);
	CHECK_STR(v, "x");
	CHECK(mc_daemon_require(&d, "tls_ca_file", &v, &error) == -1);
	CHECK(mc_daemon_secret(&d, "token_file", &secret, &error) == 0);
	CHECK_STR(secret, "s3cret");
	mc_secret_free(&secret);
	/* a certificate without its key */
	CHECK(mc_daemon_tls_files(&d, &tls, &error) == -1);
	mc_daemon_fini(&d);
	free(tok);
	free(text);
	free(conf);
}

struct run_state {
	uv_timer_t timer;
	int stops;
};

static void
raise_cb(uv_timer_t *t)
{
	raise(SIGTERM);
}

static void
on_stop(void *ctx)
{
	struct run_state *rs = ctx;

	rs->stops++;
	uv_close((uv_handle_t *)&rs->timer, NULL);
}

static void
test_run(void)
{
	char *conf = write_file("run.conf", "log_level = warn\n");
	char a0[] = "daemon_test", config[] = "--config";
	char *argv[] = {a0, config, conf, NULL};
	struct mc_daemon d;
	struct run_state rs = {.stops = 0};

	CHECK(mc_daemon_init(&d, "daemon_test", keys, 3, argv) == 0);
	uv_timer_init(d.loop, &rs.timer);
	uv_timer_start(&rs.timer, raise_cb, 10, 10);
	CHECK(mc_daemon_run(&d, on_stop, &rs) == 0);
	CHECK(rs.stops == 1);
	CHECK(d.exit_code == 0);
	mc_daemon_fini(&d);
	free(conf);
}

int
main(void)
{
	char cmd[64];

	if (mkdtemp(dir_path) == NULL)
		return 1;
	test_args();
	test_helpers();
	test_run();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir_path);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir_path);
	return mc_test_done();
}
