/* Private to conn.c and conn_open.c: the layout of struct mc_conn and the
 * state-machine helpers that the creation code (conn_open.c: accept,
 * connect, settings, addresses) shares with the I/O code (conn.c). Not
 * for any other file. */
#ifndef MC_CONN_PRIVATE_H
#define MC_CONN_PRIVATE_H

#include <arpa/inet.h>
#include <stdbool.h>

#include "conn.h"

#define CONN_INPUT_MAX (64 * 1024)
#define CONN_OUTPUT_MAX (1024 * 1024)
#define CONN_IDLE_MS 300000
#define CONN_DEADLINE_MS 3600000
#define CONN_CLOSE_MS 10000
/* One socket read at most; also the TLS ciphertext scratch size. */
#define CONN_READ_CHUNK (64 * 1024)
/* Empty buffers bigger than this are released (idle connections). */
#define CONN_BUF_KEEP (16 * 1024)
#define CONN_HANDLES 4

enum conn_state {
	CONN_NEW,        /* accepted, not started */
	CONN_CONNECTING, /* mc_conn_connect in progress */
	CONN_OPEN,       /* plaintext */
	CONN_HANDSHAKE,  /* TLS handshake in progress */
	CONN_TLS,        /* TLS established */
	CONN_FAILED,     /* dead, waiting for the owner to close */
	CONN_CLOSING,    /* flushing, shutting down, reading to EOF */
	CONN_CLOSED,     /* handles closing */
};

struct conn_buf {
	char *data;
	size_t len, cap;
};

struct mc_conn {
	uv_loop_t *loop;
	uv_tcp_t tcp;
	uv_timer_t idle_timer;
	uv_timer_t deadline_timer; /* also the close timer when closing */
	uv_idle_t kick;            /* deferred work: see kick_cb */
	uv_write_t write_req;
	uv_shutdown_t shutdown_req;
	uv_connect_t connect_req;
	int handles_open;

	enum conn_state state;
	uint64_t id;
	struct mc_conn_settings set;
	struct mc_conn_callbacks cb;
	void *ctx;

	struct mc_tls *tls;
	mc_conn_tls_cb *tls_cb; /* pending handshake result */

	struct conn_buf in; /* plaintext; [in_off, in.len) unconsumed */
	size_t in_off;
	struct conn_buf plain; /* written during the TLS handshake */
	struct conn_buf wq;    /* bytes for the wire, collecting */
	struct conn_buf wf;    /* bytes for the wire, being written */

	bool reading, writing, paused, output_high;
	bool eof_seen, eof_reported, deadline_hit;
	bool tls_closed;      /* close_notify received */
	bool delivering;      /* deliver() is on the stack */
	bool in_callback;     /* the owner's read callback is on the stack */
	bool lingering;       /* closing: reading to the peer's EOF */
	bool io_broken;       /* the socket failed: do not flush */
	bool failure_pending; /* error text waits for kick_cb */
	const char *eof_note;
	char *error;
	uint64_t last_activity;

	mc_conn_close_cb *close_cb;
	void (*on_free)(void *arg);
	void *free_arg;

	char peer_ip[INET6_ADDRSTRLEN], local_ip[INET6_ADDRSTRLEN];
	char peer[INET6_ADDRSTRLEN + 10];
	uint16_t peer_port, local_port;
};

const char *conn_state_name(enum conn_state state);
void conn_set_state(struct mc_conn *conn, enum conn_state state);
/* Record the loop time as the last activity (idle timer). */
void conn_touch(struct mc_conn *conn);
/* Arm the idle timer and the deadline from now. */
void conn_start_timers(struct mc_conn *conn);
/* Start or stop reading from the socket as the state requires. */
void conn_update_reading(struct mc_conn *conn);
/* Hand queued output to libuv when possible. */
void conn_flush(struct mc_conn *conn);
/* The socket failed: record "what: libuv error" for the owner. */
void conn_io_fail(struct mc_conn *conn, const char *what, int uverr);
/* Close every handle; the conn is freed in the last close callback. */
void conn_close_handles(struct mc_conn *conn, bool reset);

#endif
