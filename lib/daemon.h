/* The daemon skeleton shared by mail-controller, mail-node and mail-relay:
 * command line (--config FILE, --help, --version), the config file with
 * the daemon's list of known keys, logging (the log_level key), the one
 * libuv loop of the process, SIGTERM/SIGINT turned into a call of the
 * daemon's stop function, SIGPIPE ignored, and teardown.
 *
 * A main.c looks like:
 *
 *	struct mc_daemon d;
 *
 *	if (mc_daemon_init(&d, "mail-node", keys, argc, argv) < 0)
 *		return d.exit_code;
 *	... read settings with mc_daemon_require etc., start modules on
 *	    d.loop; on failure: mc_error(...), mc_daemon_fini(&d), return 1 ...
 *	mc_daemon_run(&d, node_stop, &node);   returns when the loop is empty
 *	mc_daemon_fini(&d);
 *	uv_library_shutdown();   -- once per process: libuv's worker threads
 *	return d.exit_code;
 *
 * The stop function is called once, on the loop thread, for the first
 * SIGTERM/SIGINT (or mc_daemon_stop). It must close every handle the
 * daemon put on the loop (asynchronously is fine); the loop then runs out
 * of work and mc_daemon_run returns. The signal handles do not keep the
 * loop alive. Everything here runs on the main thread. */
#ifndef MC_DAEMON_H
#define MC_DAEMON_H

#include <stdbool.h>

#include <uv.h>

#include "config.h"
#include "rpc.h"

#include "version.h"

struct mc_daemon {
	/* Public, valid between a successful mc_daemon_init and
	 * mc_daemon_fini. */
	const char *prog;        /* borrowed from the caller */
	const char *config_path; /* borrowed from argv */
	struct mc_config *cfg;
	uv_loop_t *loop;
	/* Process exit status to return from main: set by mc_daemon_init
	 * when it fails (0 after --help/--version, 2 on a usage error, 1 when
	 * the config cannot be loaded); 0 otherwise, 1 after
	 * mc_daemon_fail. */
	int exit_code;

	/* Private. */
	uv_loop_t loop_storage;
	uv_signal_t sig_term;
	uv_signal_t sig_int;
	bool loop_ready;
	bool stopping;
	void (*on_stop)(void *ctx);
	void *stop_ctx;
};

/* Parse argv, load the config (every key must be in known_keys, a
 * NULL-terminated list that should include "log_level"), initialise
 * logging and the loop, ignore SIGPIPE. prog names the program in logs
 * and usage text and must outlive d. Returns 0 to proceed; -1 when main
 * should return d->exit_code right away (--help/--version printed, or the
 * error was printed to stderr); mc_daemon_fini is then optional. */
int mc_daemon_init(struct mc_daemon *d, const char *prog,
                   const char *const *known_keys, int argc, char **argv);

/* Start the signal handlers and run the loop until nothing is left on it.
 * on_stop(ctx) is called once on the first SIGTERM/SIGINT or
 * mc_daemon_stop; later signals are logged and ignored. Returns 0, or -1
 * (exit_code 1) when the signal handlers could not be set up: on_stop has
 * then been called and the loop run until empty. */
int mc_daemon_run(struct mc_daemon *d, void (*on_stop)(void *ctx), void *ctx);

/* Ask for a clean shutdown from inside the daemon (loop thread only):
 * calls on_stop like a signal would. No-op when already stopping. */
void mc_daemon_stop(struct mc_daemon *d);
/* mc_daemon_stop after a fatal runtime error: also sets exit_code to 1.
 * The reason should have been logged already. */
void mc_daemon_fail(struct mc_daemon *d);

/* Close the signal handles, run the loop until every pending close
 * callback has run, close the loop, shut nng down (nng_fini: every nng
 * socket must be closed by then) and free the config. Handles still open
 * at that point are a bug: they are logged and the loop is leaked.
 * Safe to call after a failed mc_daemon_init. */
void mc_daemon_fini(struct mc_daemon *d);

/* Config helpers. Returned strings are valid until mc_daemon_fini. */

/* A key that must be set and non-empty; -1 with "KEY is not set". */
int mc_daemon_require(const struct mc_daemon *d, const char *key,
                      const char **value_r, const char **error_r);
/* Read the secret file named by key (e.g. "node_token_file"), which must
 * be set. *secret_r is heap memory: release it with mc_secret_free. */
int mc_daemon_secret(const struct mc_daemon *d, const char *key,
                     char **secret_r, const char **error_r);
/* Fill tls_r from tls_ca_file, tls_cert_file and tls_key_file (NULL when
 * absent). tls_cert_file and tls_key_file go together: one without the
 * other is an error. */
int mc_daemon_tls_files(const struct mc_daemon *d, struct mc_tls_files *tls_r,
                        const char **error_r);

#endif
