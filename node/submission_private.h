/* Private to the submission service (submission.c: sessions, AUTH,
 * envelope; submission_send.c: a message after its final dot). */
#ifndef NODE_SUBMISSION_PRIVATE_H
#define NODE_SUBMISSION_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deliver.h"
#include "directory.h"
#include "hostport.h"
#include "smtp_client.h"
#include "smtp_server.h"
#include "submission.h"

/* Room kept before the content for Return-Path, Received, Date and
 * Message-ID, so adding them never copies the message. Each part is
 * bounded (addresses 256, names 255 octets): together far below this. */
#define SUB_PREFIX_ROOM 4096
/* Per session: failed AUTH attempts before 421, and messages. */
#define SUB_AUTH_FAILURES_MAX 3
#define SUB_MESSAGES_MAX 100
/* Per message, after alias expansion: local accounts and addresses
 * handed to the relay. An alias expanding further is cut (logged). */
#define SUB_LOCAL_MAX 1000
#define SUB_RELAY_MAX 1000
#define SUB_RESOLVE_MAX 256
/* From and Sender addresses checked per message; more is refused. */
#define SUB_FROM_MAX 100
#define SUB_HELO_MAX 255

struct sub_msg;
struct mc_scram_server;

/* The service: two engines (STARTTLS, implicit TLS) sharing one policy. */
struct node_submission {
	uv_loop_t *loop;
	struct node_submission_settings set; /* strings: ours below */
	char *hostname;
	struct mc_tls_ctx *tls;       /* server side */
	struct mc_tls_ctx *relay_ctx; /* client side, NULL without TLS */
	enum mc_smtp_client_tls_mode relay_tls;
	char relay_host[MC_HOST_MAX + 1]; /* "" without a relay */
	uint16_t relay_port;
	struct mc_smtp_server *server, *server_tls;
	struct sub_msg *msgs; /* messages past the final dot */
	unsigned servers_open;
	bool closing;
	void (*done)(void *arg);
	void *done_arg;
};

enum sub_auth_step {
	AUTH_NONE,
	AUTH_PLAIN,
	AUTH_LOGIN_USER,
	AUTH_LOGIN_PASS,
	AUTH_SCRAM_FIRST, /* waiting for the client-first-message */
	AUTH_SCRAM_FINAL, /* server-first sent: the client-final */
	AUTH_SCRAM_DONE,  /* server-final sent: the client's empty answer */
};

/* A list of addresses, deduplicated case-insensitively. */
struct sub_addr_list {
	char **v;
	size_t count, cap;
};

/* Per session (the engine's user pointer). */
struct sub_sess {
	struct node_submission *sub;
	struct mc_smtp_session *session;
	uint64_t account_id; /* 0 until AUTH succeeded */
	char *user;          /* the account's address */
	unsigned auth_failures, messages;
	enum sub_auth_step auth_step;
	const char *auth_mech; /* static: the mechanism in progress, for logs */
	char *login_user;
	struct mc_scram_server *scram; /* SCRAM-SHA-256 in progress */
	uint64_t scram_account;        /* its account; 0 for an unknown user */
	/* The transaction: */
	struct node_deliver_target *local;
	size_t local_count, local_cap;
	struct sub_addr_list relay;
	char *buf; /* SUB_PREFIX_ROOM octets kept, then the content */
	size_t len, cap;
};

/* Address lists: strings copied, freed with the list. */
bool sub_addr_list_has(const struct sub_addr_list *l, const char *a);
void sub_addr_list_add(struct sub_addr_list *l, const char *a);
void sub_addr_list_free(struct sub_addr_list *l);
/* Frees each target's address and the array. */
void sub_targets_free(struct node_deliver_target *t, size_t n);
/* May the account send as address? Its own address, or an alias (not a
 * catch-all) that resolves to it. */
bool sub_address_allowed(const struct mc_directory *dir, uint64_t account_id,
                         const char *address);

/* data_end: the message of ss's transaction (its data moves out of ss)
 * goes on its way; the reply comes when it is done. */
void node_submission_send(struct node_submission *sub, struct sub_sess *ss);
/* Closing: relay sessions in flight are aborted (their messages get a
 * 451), messages reaching the relay step from now on get one too. */
void node_submission_send_abort(struct node_submission *sub);

#endif
