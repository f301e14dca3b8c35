/* The daemon skeleton: command line, config, logging, the libuv loop,
 * signals and teardown; see daemon.h. */
#include "daemon.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <nng/nng.h>

#include "error.h"
#include "log.h"

static void
print_usage(FILE *out, const char *prog, const char *const *known_keys)
{
	fprintf(out,
	        "usage: %s --config FILE\n"
	        "       %s --help | --version\n"
	        "\n"
	        "Runs until SIGTERM or SIGINT, logging to stderr.\n"
	        "Config file: 'key = value' lines, '#' comments. Keys:\n",
	        prog, prog);
	for (; *known_keys != NULL; known_keys++)
		fprintf(out, "  %s\n", *known_keys);
}

/* Returns 0 with *path_r set, 1 when --help/--version was handled, -1 on a
 * usage error (message printed). */
static int
parse_args(struct mc_daemon *d, const char *const *known_keys, int argc,
           char **argv, const char **path_r)
{
	const char *path = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0) {
			print_usage(stdout, d->prog, known_keys);
			return 1;
		} else if (strcmp(a, "--version") == 0) {
			printf("%s %s\n", d->prog, MC_SOFTWARE);
			return 1;
		} else if (strcmp(a, "--config") == 0) {
			if (i + 1 == argc) {
				fprintf(stderr, "%s: --config needs a FILE\n",
				        d->prog);
				goto usage;
			}
			path = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			path = a + 9;
		} else {
			fprintf(stderr, "%s: unexpected argument '%s'\n",
			        d->prog, a);
			goto usage;
		}
	}
	if (path == NULL || *path == '\0') {
		fprintf(stderr, "%s: --config FILE is required\n", d->prog);
		goto usage;
	}
	*path_r = path;
	return 0;
usage:
	fprintf(stderr, "usage: %s --config FILE (see --help)\n", d->prog);
	return -1;
}

int
mc_daemon_init(struct mc_daemon *d, const char *prog,
               const char *const *known_keys, int argc, char **argv)
{
	const char *error, *level_name;
	enum mc_log_level level;
	int rv;

	memset(d, 0, sizeof(*d));
	d->prog = prog;
	mc_log_init(prog, MC_LOG_INFO);
	rv = parse_args(d, known_keys, argc, argv, &d->config_path);
	if (rv != 0) {
		d->exit_code = rv > 0 ? 0 : 2;
		return -1;
	}
	d->exit_code = 1;
	if (mc_config_load(d->config_path, known_keys, &d->cfg, &error) < 0) {
		fprintf(stderr, "%s: %s\n", prog, error);
		return -1;
	}
	level_name = mc_config_get(d->cfg, "log_level", "info");
	if (mc_log_level_parse(level_name, &level) < 0) {
		fprintf(stderr,
		        "%s: %s: log_level '%s' is not debug, info, warn "
		        "or error\n",
		        prog, d->config_path, level_name);
		goto fail;
	}
	mc_log_init(prog, level);
	/* A peer closing a socket must be an error return, not our death. */
	signal(SIGPIPE, SIG_IGN);
	if ((rv = uv_loop_init(&d->loop_storage)) != 0) {
		fprintf(stderr, "%s: event loop: %s\n", prog, uv_strerror(rv));
		goto fail;
	}
	d->loop = &d->loop_storage;
	d->loop_ready = true;
	uv_signal_init(d->loop, &d->sig_term);
	uv_signal_init(d->loop, &d->sig_int);
	d->sig_term.data = d;
	d->sig_int.data = d;
	d->exit_code = 0;
	return 0;
fail:
	mc_config_free(&d->cfg);
	return -1;
}

static void
signal_cb(uv_signal_t *h, int signum)
{
	struct mc_daemon *d = h->data;
	const char *name = signum == SIGTERM ? "TERM" : "INT";

	if (d->stopping) {
		mc_info("signal=%s already stopping", name);
		return;
	}
	mc_info("signal=%s stopping", name);
	mc_daemon_stop(d);
}

int
mc_daemon_run(struct mc_daemon *d, void (*on_stop)(void *ctx), void *ctx)
{
	int rv;

	d->on_stop = on_stop;
	d->stop_ctx = ctx;
	if ((rv = uv_signal_start(&d->sig_term, signal_cb, SIGTERM)) != 0 ||
	    (rv = uv_signal_start(&d->sig_int, signal_cb, SIGINT)) != 0) {
		mc_error("signal handlers error=\"%s\"", uv_strerror(rv));
		/* Let the daemon close what it started, then leave. */
		mc_daemon_fail(d);
		uv_run(d->loop, UV_RUN_DEFAULT);
		return -1;
	}
	/* Signals alone must not keep the loop running once the daemon has
	 * closed everything else. */
	uv_unref((uv_handle_t *)&d->sig_term);
	uv_unref((uv_handle_t *)&d->sig_int);
	mc_info("started version=\"%s\" config=%s", MC_SOFTWARE,
	        d->config_path);
	uv_run(d->loop, UV_RUN_DEFAULT);
	mc_info("stopped");
	return 0;
}

void
mc_daemon_stop(struct mc_daemon *d)
{
	if (d->stopping)
		return;
	d->stopping = true;
	if (d->on_stop != NULL)
		d->on_stop(d->stop_ctx);
}

void
mc_daemon_fail(struct mc_daemon *d)
{
	d->exit_code = 1;
	mc_daemon_stop(d);
}

static void
report_handle(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		mc_error("bug: handle type=%s still open at exit",
		         uv_handle_type_name(uv_handle_get_type(h)));
}

void
mc_daemon_fini(struct mc_daemon *d)
{
	if (d->loop_ready) {
		uv_close((uv_handle_t *)&d->sig_term, NULL);
		uv_close((uv_handle_t *)&d->sig_int, NULL);
		/* Runs the close callbacks of everything closed so far. */
		uv_run(d->loop, UV_RUN_DEFAULT);
		if (uv_loop_close(d->loop) != 0) {
			uv_walk(d->loop, report_handle, NULL);
		} else {
			/* Every module has closed its sockets by now: release
			 * nng's global threads so leak checkers stay quiet. */
			nng_fini();
		}
		d->loop_ready = false;
		d->loop = NULL;
	}
	mc_config_free(&d->cfg);
}

int
mc_daemon_require(const struct mc_daemon *d, const char *key,
                  const char **value_r, const char **error_r)
{
	const char *v = mc_config_get(d->cfg, key, NULL);

	if (v == NULL || *v == '\0') {
		*error_r = mc_errorf("%s: %s is not set", d->config_path, key);
		return -1;
	}
	*value_r = v;
	return 0;
}

int
mc_daemon_secret(const struct mc_daemon *d, const char *key, char **secret_r,
                 const char **error_r)
{
	const char *path;

	if (mc_daemon_require(d, key, &path, error_r) < 0)
		return -1;
	if (mc_secret_read_file(path, secret_r, error_r) < 0) {
		*error_r = mc_errorf("%s: %s", key, *error_r);
		return -1;
	}
	return 0;
}

static const char *
nonempty(const struct mc_daemon *d, const char *key)
{
	const char *v = mc_config_get(d->cfg, key, NULL);

	return v != NULL && *v != '\0' ? v : NULL;
}

int
mc_daemon_tls_files(const struct mc_daemon *d, struct mc_tls_files *tls_r,
                    const char **error_r)
{
	tls_r->ca_file = nonempty(d, "tls_ca_file");
	tls_r->cert_file = nonempty(d, "tls_cert_file");
	tls_r->key_file = nonempty(d, "tls_key_file");
	if ((tls_r->cert_file == NULL) != (tls_r->key_file == NULL)) {
		*error_r = mc_errorf("%s: tls_cert_file and tls_key_file go "
		                     "together",
		                     d->config_path);
		return -1;
	}
	return 0;
}
