/* smtp_testd: a tiny SMTP/LMTP server on lib/smtp_server for the engine's
 * integration test (test_smtp_engine.py), so that real clients (Python
 * smtplib, swaks, Postfix's smtp-source) can be pointed at the engine
 * without a relay or a node. Policy: recipients are accepted when their
 * domain is --domain (else 550 5.1.1); each accepted message is written,
 * exactly as received (dot-unstuffed, CRLF), to DIR/<session>-<n>.eml,
 * fsynced and renamed into place before the 250, with its envelope in
 * <session>-<n>.env. In LMTP mode a recipient whose local part is "full"
 * is accepted at RCPT and refused 452 4.2.2 after DATA. It prints
 * "port=N" once listening and stops cleanly on SIGTERM/SIGINT.
 *
 *   smtp_testd --dir DIR --domain DOMAIN [--port N] [--lmtp]
 *              [--cert FILE --key FILE [--implicit-tls]]
 *              [--max-size BYTES] [--debug] */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <uv.h>

#include "listener.h"
#include "log.h"
#include "mem.h"
#include "smtp_server.h"
#include "tls.h"

struct testd {
	uv_loop_t *loop;
	struct mc_listener *listener;
	struct mc_smtp_server *server;
	struct mc_tls_ctx *tls;
	uv_signal_t sigterm, sigint;
	const char *dir, *domain;
	bool stopping;
};

/* Per session: the message being received. */
struct spool {
	int fd; /* -1 when none */
	unsigned seq;
	bool failed;
	char tmp[4096];
};

static void
spool_drop(struct spool *sp)
{
	if (sp->fd < 0)
		return;
	close(sp->fd);
	unlink(sp->tmp);
	sp->fd = -1;
}

static void
t_connect(struct mc_smtp_session *s, void *ctx)
{
	struct spool *sp = mc_malloc(sizeof(*sp));

	(void)ctx;
	sp->fd = -1;
	mc_smtp_session_set_user(s, sp);
	mc_smtp_session_accept(s);
}

static void
t_rcpt(struct mc_smtp_session *s, void *ctx, const struct mc_smtp_path *to,
       const struct mc_smtp_params *params)
{
	struct testd *d = ctx;

	(void)params;
	if (strcasecmp(to->domain, d->domain) != 0) {
		mc_smtp_session_reply(s, 550, "5.1.1", "User unknown");
		return;
	}
	mc_smtp_session_accept(s);
}

static void
t_data_start(struct mc_smtp_session *s, void *ctx)
{
	struct testd *d = ctx;
	struct spool *sp = mc_smtp_session_user(s);

	sp->seq++;
	sp->failed = false;
	snprintf(sp->tmp, sizeof(sp->tmp), "%s/tmp-%s-%u", d->dir,
	         mc_smtp_session_id(s), sp->seq);
	sp->fd = open(sp->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (sp->fd < 0) {
		mc_smtp_session_reply(s, 451, "4.3.0", "Cannot spool");
		return;
	}
	mc_smtp_session_accept(s);
}

static void
t_data_content(struct mc_smtp_session *s, void *ctx, const void *data,
               size_t len)
{
	struct spool *sp = mc_smtp_session_user(s);

	(void)ctx;
	if (sp->fd >= 0 && !sp->failed &&
	    write(sp->fd, data, len) != (ssize_t)len)
		sp->failed = true; /* answered at the end */
}

static int
write_envelope(const char *path, struct mc_smtp_session *s)
{
	const struct mc_smtp_txn *t = mc_smtp_session_txn(s);
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fprintf(f, "PROTO %s\nHELO %s\nTLS %s\nMAIL %s\n",
	        mc_smtp_session_protocol(s), mc_smtp_session_helo(s),
	        mc_smtp_session_tls(s) ? mc_smtp_session_tls_version(s) : "-",
	        t->mail_from);
	for (size_t i = 0; i < t->rcpt_count; i++)
		fprintf(f, "RCPT %s\n", t->rcpts[i].mailbox);
	fprintf(f, "SIZE %llu\n8BIT %d\n", (unsigned long long)t->size,
	        t->eightbit);
	return fclose(f);
}

/* Durable before the reply: fsync, rename, envelope. */
static int
commit(struct testd *d, struct mc_smtp_session *s, struct spool *sp, char *name,
       size_t size)
{
	char path[4200];

	snprintf(name, size, "%s-%u", mc_smtp_session_id(s), sp->seq);
	if (sp->failed || fsync(sp->fd) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s.env", d->dir, name);
	if (write_envelope(path, s) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s.eml", d->dir, name);
	if (rename(sp->tmp, path) < 0)
		return -1;
	close(sp->fd);
	sp->fd = -1;
	return 0;
}

static void
t_data_end(struct mc_smtp_session *s, void *ctx)
{
	struct testd *d = ctx;
	struct spool *sp = mc_smtp_session_user(s);
	const struct mc_smtp_txn *t = mc_smtp_session_txn(s);
	bool lmtp = mc_smtp_session_mode(s) == MC_SMTP_MODE_LMTP;
	size_t n = lmtp ? t->rcpt_count : 1;
	bool *full = mc_calloc(n, sizeof(bool));
	char name[64], text[128];
	int ok = commit(d, s, sp, name, sizeof(name));

	for (size_t i = 0; lmtp && i < n; i++)
		full[i] = strncasecmp(t->rcpts[i].mailbox, "full@", 5) == 0;
	snprintf(text, sizeof(text), "Ok: queued as %s", name);
	/* t is gone after the last reply. */
	for (size_t i = 0; i < n; i++) {
		if (ok < 0)
			mc_smtp_session_reply(s, 451, "4.3.0", "Cannot store");
		else if (full[i])
			mc_smtp_session_reply(s, 452, "4.2.2", "Mailbox full");
		else
			mc_smtp_session_reply(s, 250, "2.0.0", text);
	}
	free(full);
}

static void
t_txn_end(struct mc_smtp_session *s, void *ctx, enum mc_smtp_txn_end how)
{
	(void)ctx;
	(void)how;
	spool_drop(mc_smtp_session_user(s));
}

static void
t_closed(struct mc_smtp_session *s, void *ctx)
{
	struct spool *sp = mc_smtp_session_user(s);

	(void)ctx;
	if (sp != NULL) {
		spool_drop(sp);
		free(sp);
	}
}

static const struct mc_smtp_policy policy = {
        .connect = t_connect,
        .rcpt = t_rcpt,
        .data_start = t_data_start,
        .data_content = t_data_content,
        .data_end = t_data_end,
        .txn_end = t_txn_end,
        .closed = t_closed,
};

static void
on_accept(struct mc_listener *listener, struct mc_conn *conn, void *ctx)
{
	struct testd *d = ctx;

	(void)listener;
	mc_smtp_server_accept(d->server, conn);
}

static void
on_signal(uv_signal_t *sig, int signum)
{
	struct testd *d = sig->data;

	(void)signum;
	if (d->stopping)
		return;
	d->stopping = true;
	mc_info("smtp_testd stopping");
	mc_listener_close(d->listener, NULL);
	mc_smtp_server_close(d->server, NULL, NULL);
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: smtp_testd --dir DIR --domain DOMAIN "
	                "[--port N] [--lmtp] [--cert FILE --key FILE "
	                "[--implicit-tls]] [--max-size N] [--debug]\n");
	exit(2);
}

static void
parse_args(int argc, char **argv, struct testd *d,
           struct mc_smtp_server_settings *set, uint16_t *port,
           struct mc_tls_settings *tls)
{
	static const struct option opts[] = {
	        {"dir", required_argument, NULL, 'd'},
	        {"domain", required_argument, NULL, 'D'},
	        {"port", required_argument, NULL, 'p'},
	        {"lmtp", no_argument, NULL, 'L'},
	        {"cert", required_argument, NULL, 'c'},
	        {"key", required_argument, NULL, 'k'},
	        {"implicit-tls", no_argument, NULL, 'I'},
	        {"max-size", required_argument, NULL, 's'},
	        {"debug", no_argument, NULL, 'v'},
	        {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			d->dir = optarg;
			break;
		case 'D':
			d->domain = optarg;
			break;
		case 'p':
			*port = (uint16_t)atoi(optarg);
			break;
		case 'L':
			set->mode = MC_SMTP_MODE_LMTP;
			break;
		case 'c':
			tls->cert_file = optarg;
			break;
		case 'k':
			tls->key_file = optarg;
			break;
		case 'I':
			set->implicit_tls = true;
			break;
		case 's':
			set->max_message = strtoull(optarg, NULL, 10);
			break;
		case 'v':
			mc_log_init("smtp_testd", MC_LOG_DEBUG);
			break;
		default:
			usage();
		}
	}
	if (d->dir == NULL || d->domain == NULL || optind != argc)
		usage();
}

int
main(int argc, char **argv)
{
	struct testd d = {0};
	struct mc_smtp_server_settings set;
	struct mc_tls_settings tls = {0};
	struct mc_listener_settings ls = {.host = "127.0.0.1"};
	uv_loop_t loop;
	const char *error;

	signal(SIGPIPE, SIG_IGN);
	mc_log_init("smtp_testd", MC_LOG_INFO);
	mc_smtp_server_settings_init(&set);
	set.hostname = "testd.example.test";
	parse_args(argc, argv, &d, &set, &ls.port, &tls);
	uv_loop_init(&loop);
	d.loop = &loop;
	if (tls.cert_file != NULL &&
	    mc_tls_ctx_new(MC_TLS_SERVER, &tls, &d.tls, &error) < 0)
		goto fail;
	set.tls = d.tls;
	if (mc_smtp_server_new(&loop, &set, &policy, &d, &d.server, &error) <
	            0 ||
	    mc_listener_new(&loop, &ls, on_accept, &d, &d.listener, &error) < 0)
		goto fail;
	uv_signal_init(&loop, &d.sigterm);
	uv_signal_init(&loop, &d.sigint);
	d.sigterm.data = d.sigint.data = &d;
	uv_signal_start(&d.sigterm, on_signal, SIGTERM);
	uv_signal_start(&d.sigint, on_signal, SIGINT);
	printf("port=%u\n", mc_listener_port(d.listener));
	fflush(stdout);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	mc_tls_ctx_free(&d.tls);
	return 0;
fail:
	mc_error("smtp_testd: %s", error);
	mc_tls_ctx_free(&d.tls);
	return 1;
}
