/* A scripted SMTP/LMTP server for smtp_client_test.c: an mc_listener on
 * 127.0.0.1 port 0 in the test's own loop that plays an exact dialogue.
 * Each step names the line the client must send (a prefix; NULL for the
 * greeting) and what to answer: reply text sent as is, then optionally an
 * action after a '!': "!close" (FIN), "!reset" (RST), "!hang" (say
 * nothing), "!starttls" ("220 ready" and a TLS handshake), "!inject"
 * (the same with a reply pipelined in clear text behind the 220),
 * "!flood" (100 KB without a line end). A reply starting with 354 switches
 * to DATA; the end of data is the step whose expect is ".". Lines past the
 * end of the script: QUIT is answered 221 and closes, anything else is a
 * script error. The server records what it saw for the checks.
 *
 * AUTH (RFC 4954), when auth_user is set: AUTH and the lines of its
 * exchange are answered here, outside the script (PLAIN with or without
 * an initial response, LOGIN, SCRAM-SHA-256 with lib/scram.h's server),
 * and MAIL before a successful AUTH gets 530 5.7.0 (the script's EHLO
 * reply says what is offered). Only "AUTH <mechanism>" is recorded in
 * lines, never what follows it. */
#ifndef SMTP_CLIENT_TEST_SERVER_H
#define SMTP_CLIENT_TEST_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct mc_listener;
struct mc_tls_ctx;

struct test_text {
	char *data;
	size_t len, cap;
};

void test_text_add(struct test_text *t, const void *data, size_t len);
bool test_text_has(const struct test_text *t, const char *s);
void test_text_free(struct test_text *t);

struct test_step {
	const char *expect;
	const char *reply;
};
#define TEST_STEP_END                                                          \
	{                                                                      \
		NULL, NULL                                                     \
	}

struct test_server {
	uv_loop_t *loop;
	struct mc_listener *listener;
	uint16_t port;
	struct mc_tls_ctx *tls; /* for STARTTLS and implicit TLS */
	const struct test_step *script;
	const struct test_step *script2; /* sessions after the first */
	bool implicit_tls;
	unsigned reply_delay_ms; /* answer each line this much later */
	size_t slow;             /* DATA: take this many bytes, pause 1 ms */
	uint64_t drop_after;     /* DATA: reset after this many bytes */
	bool keep_raw;           /* keep the DATA wire form */
	const char *auth_user, *auth_pass; /* AUTH required when set */
	/* Sent instead of the verdict at the end of an exchange, e.g.
	 * "454 4.7.0 try later\r\n". */
	const char *auth_reply;
	bool scram_lie; /* SCRAM: a server signature that is wrong */
	/* observed */
	int accepted, live, tls_ok, tls_failed, quits, pauses;
	int pipelined;   /* lines that arrived before the previous reply */
	int max_backlog; /* most lines received and not yet answered */
	int auth_ok, auth_failed, auth_530;
	struct test_text lines;    /* command lines, each followed by '|' */
	struct test_text content;  /* the last message, unstuffed */
	struct test_text raw;      /* its wire form (keep_raw) */
	struct test_text problems; /* script mismatches and errors */
};

/* Listen on 127.0.0.1 port 0 with the fields set so far; 0 or -1. */
int test_server_start(uv_loop_t *loop, struct test_server *srv);
/* Clear what was observed (between client runs, with no live session). */
void test_server_reset(struct test_server *srv);
/* Stop listening and free the observations; live sessions close
 * themselves when their peer goes. */
void test_server_stop(struct test_server *srv);

#endif
