/* One TCP connection on the libuv loop, plaintext or TLS: the plumbing
 * under every mail protocol server and client (SMTP, LMTP, IMAP). A
 * struct mc_conn owns its socket, timers and buffers; the protocol layer
 * (the "owner") gets plaintext through a read callback, writes bytes,
 * switches to TLS (STARTTLS, or implicit TLS from the first byte), and
 * closes. Accepted connections come from lib/listener.h; outgoing ones
 * from mc_conn_connect.
 *
 * Input. The conn keeps received plaintext that the owner has not consumed
 * (at most input_max bytes). The read callback presents all of it; the
 * owner calls mc_conn_consume for what it used, and the rest is presented
 * again with new bytes appended. A line-oriented owner can thus consume
 * whole lines only. If the buffer is full and the owner consumes nothing,
 * the conn fails with MC_CONN_ERROR: owners should bound their own lines
 * below input_max and reply "line too long" themselves.
 *
 * Output. mc_conn_write copies into an output buffer of at most output_max
 * bytes; beyond that it fails. Above output_high the conn is "blocked":
 * mc_conn_output_blocked returns true and the conn stops reading and
 * presenting input, so a client that does not read its replies cannot make
 * us buffer more (STYLE.md: bound output too). An owner working through
 * pipelined input should stop consuming once blocked. When the buffer has
 * drained to half of output_high, MC_CONN_DRAIN is delivered and reading
 * resumes by itself.
 *
 * STARTTLS. Bytes a client pipelined after STARTTLS must not be taken as
 * if they came over TLS (CVE-2011-0411 and kin). mc_conn_start_tls
 * therefore fails while unconsumed input is buffered: the owner consumes
 * the STARTTLS line, discards the rest with mc_conn_discard_input (and
 * whatever its own parser holds), writes its "ready" reply, then calls
 * mc_conn_start_tls - typically all inside the read callback. Implicit
 * TLS (ports 465/993) is the same call right after mc_conn_start.
 *
 * Timers. Every conn has an idle timeout (nothing received or sent for
 * that long; not counted while the owner has paused reading, since then
 * the peer waits for us) and an absolute deadline from mc_conn_start.
 * Either one delivers an event and leaves the conn usable so the owner can
 * write a last reply ("421 4.4.2 timeout") and close; after the deadline
 * no more input is presented.
 *
 * Lifetime. The owner must call mc_conn_close (or mc_conn_abort) exactly
 * once, after which its callbacks are never called again except the close
 * callback, which runs when every libuv handle is closed and the conn has
 * been freed. A graceful close sends what is buffered (and TLS
 * close_notify), shuts down the write side and briefly reads until the
 * peer's EOF so that an unread pipelined command cannot turn our last
 * reply into a connection reset; close_timeout_ms bounds all of it.
 *
 * Callbacks never run from inside an mc_conn_* call: only from the loop.
 * Everything here is for the loop's thread only. */
#ifndef MC_CONN_H
#define MC_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct mc_conn;
struct mc_tls;
struct mc_tls_ctx;

/* A timeout value that disables the timer. */
#define MC_CONN_NO_TIMEOUT UINT64_MAX

/* Zero in any member picks the default given in its comment. */
struct mc_conn_settings {
	size_t input_max;          /* 64 KiB: unconsumed plaintext kept */
	size_t output_max;         /* 1 MiB: mc_conn_write fails beyond */
	size_t output_high;        /* output_max / 4; must be < output_max */
	uint64_t idle_timeout_ms;  /* 300 000 (RFC 5321 section 4.5.3.2) */
	uint64_t deadline_ms;      /* 3 600 000, from mc_conn_start */
	uint64_t close_timeout_ms; /* 10 000, for a graceful close */
};

enum mc_conn_event {
	/* mc_conn_connect succeeded; writes queued before it are sent. */
	MC_CONN_CONNECTED,
	/* The peer will send nothing more (TCP FIN, or TLS close_notify).
	 * Delivered after all input was presented and while not paused.
	 * error is NULL for a clean end, or a note such as "closed without
	 * TLS close_notify". Writing still works (half-close). */
	MC_CONN_EOF,
	/* Output drained below the low-water mark after being blocked. */
	MC_CONN_DRAIN,
	/* Nothing was received or sent for idle_timeout_ms. Re-delivered
	 * every idle period while the owner keeps the conn open. */
	MC_CONN_IDLE_TIMEOUT,
	/* The absolute deadline passed; input is no longer presented. */
	MC_CONN_DEADLINE,
	/* The connection is dead (reset, write error, TLS error, connect
	 * failure, input buffer overflow): error says why. Writes fail from
	 * now on; the owner should close. */
	MC_CONN_ERROR,
};

struct mc_conn_callbacks {
	/* Unconsumed plaintext: data/len is valid during the call only.
	 * Call mc_conn_consume for what was used. Required. */
	void (*read)(struct mc_conn *conn, void *ctx, const char *data,
	             size_t len);
	/* Required. */
	void (*event)(struct mc_conn *conn, void *ctx, enum mc_conn_event ev,
	              const char *error);
};

/* Result of mc_conn_start_tls: status 0 when the handshake completed (the
 * conn now reads and writes through TLS; see mc_conn_tls), -1 when it
 * failed (error says why; the conn is dead and must be closed). During
 * the handshake, failures and timeouts are reported here, not through
 * MC_CONN_ERROR. */
typedef void mc_conn_tls_cb(struct mc_conn *conn, void *ctx, int status,
                            const char *error);
/* Runs once the conn is freed; ctx as given to start/connect. */
typedef void mc_conn_close_cb(void *ctx);

/* Begin serving an accepted conn (see lib/listener.h): store the
 * callbacks and settings (copied), start the timers and reading. -1 with
 * error_r for invalid settings; the conn must then be closed. */
int mc_conn_start(struct mc_conn *conn, const struct mc_conn_settings *set,
                  const struct mc_conn_callbacks *cb, void *ctx,
                  const char **error_r);

/* Connect to ip (an IPv4 or IPv6 literal: resolve names before) and port.
 * The result arrives as MC_CONN_CONNECTED or MC_CONN_ERROR; the idle
 * timeout bounds the attempt. Writes made before are queued. On -1
 * nothing was created. The conn must be closed in every case. */
int mc_conn_connect(uv_loop_t *loop, const char *ip, uint16_t port,
                    const struct mc_conn_settings *set,
                    const struct mc_conn_callbacks *cb, void *ctx,
                    struct mc_conn **conn_r, const char **error_r);

/* --- Input ------------------------------------------------------------ */

/* Mark n of the presented bytes as used (n <= unconsumed bytes). Inside
 * the read callback the data pointer stays valid after this. */
void mc_conn_consume(struct mc_conn *conn, size_t n);
/* Drop every unconsumed byte (before STARTTLS); returns how many. */
size_t mc_conn_discard_input(struct mc_conn *conn);
size_t mc_conn_input_pending(const struct mc_conn *conn);
/* Stop presenting input and reading from the socket (the owner waits for
 * something else, e.g. a queue fsync); resume presents what is buffered
 * from the loop, not from inside the call. Both are idempotent. */
void mc_conn_pause(struct mc_conn *conn);
void mc_conn_resume(struct mc_conn *conn);

/* --- Output ----------------------------------------------------------- */

/* Queue len bytes (copied). During a TLS handshake they are held and
 * encrypted once it completes. -1 with error_r when the buffer would
 * exceed output_max, or the conn failed, is closing, or was never
 * started. */
int mc_conn_write(struct mc_conn *conn, const void *data, size_t len,
                  const char **error_r);
/* True above output_high, until drained to half of it. */
bool mc_conn_output_blocked(const struct mc_conn *conn);
size_t mc_conn_output_pending(const struct mc_conn *conn);

/* --- TLS -------------------------------------------------------------- */

/* Switch a plaintext conn to TLS with ctx (server or client role). For a
 * client, peer_name is the server's name to verify (see mc_tls_new); NULL
 * for a server. cb reports the outcome. -1 with error_r, and no change,
 * when unconsumed input is buffered (count in the text), the conn is not
 * plaintext and open, the peer already closed, or the session cannot be
 * created. ctx may be freed once this returns. */
int mc_conn_start_tls(struct mc_conn *conn, struct mc_tls_ctx *ctx,
                      const char *peer_name, mc_conn_tls_cb *cb,
                      const char **error_r);
/* The TLS session once its handshake completed, else NULL: version,
 * cipher and peer verification for logs and Received headers. Valid
 * until the conn is closed. */
const struct mc_tls *mc_conn_tls(const struct mc_conn *conn);

/* --- Timers ----------------------------------------------------------- */

/* Change the idle timeout (restarted from now) or the deadline (now +
 * ms; clears a passed deadline). 0 picks the default,
 * MC_CONN_NO_TIMEOUT disables. For per-state timeouts (SMTP DATA). */
void mc_conn_set_idle_timeout(struct mc_conn *conn, uint64_t ms);
void mc_conn_set_deadline(struct mc_conn *conn, uint64_t ms);

/* --- Identity --------------------------------------------------------- */

/* Process-unique number for logs ("conn=17"). */
uint64_t mc_conn_id(const struct mc_conn *conn);
/* Peer and local addresses: "192.0.2.1", "2001:db8::1" (IPv4-mapped
 * IPv6 shown as IPv4), ports, and "192.0.2.1:25" / "[2001:db8::1]:25"
 * for logs. Valid while the conn lives. */
const char *mc_conn_peer(const struct mc_conn *conn);
const char *mc_conn_peer_ip(const struct mc_conn *conn);
uint16_t mc_conn_peer_port(const struct mc_conn *conn);
const char *mc_conn_local_ip(const struct mc_conn *conn);
uint16_t mc_conn_local_port(const struct mc_conn *conn);

/* --- Teardown --------------------------------------------------------- */

/* Graceful close (see the top of this file); cb (may be NULL) runs when
 * the conn is freed. Calling either close function twice aborts. */
void mc_conn_close(struct mc_conn *conn, mc_conn_close_cb *cb);
/* Immediate close with a TCP reset, dropping buffered output. For
 * hostile peers; also what tests use to simulate a crash. */
void mc_conn_abort(struct mc_conn *conn, mc_conn_close_cb *cb);

/* --- For lib/listener.c only ------------------------------------------ */

/* Accept one pending connection from a listening stream. on_free(arg) is
 * called when the conn is freed (connection accounting). The conn is not
 * started. */
int mc_conn_accept(uv_stream_t *server, void (*on_free)(void *arg), void *arg,
                   struct mc_conn **conn_r, const char **error_r);
/* True while an accepted conn has been neither started nor closed. */
bool mc_conn_unclaimed(const struct mc_conn *conn);

#endif
