/* Config sync: the node side of config publishing, shared by mail-node
 * and mail-relay. It owns the daemon's copy of the directory and keeps it
 * at the cluster's version:
 *
 * - at start, loads <state_dir>/directory.json when present, so the daemon
 *   serves its last config while the controller is away;
 * - dials control_url (REQ) and publish_url (SUB, topic 'M' for mailbox
 *   nodes, 'R' for relays) in the background, reconnecting forever;
 * - registers, fetches a snapshot unless already at the cluster version
 *   (and holding a shard count, which only snapshots carry),
 *   applies published deltas (a gap => snapshot), heartbeats every
 *   heartbeat_ms and right after every change, fetches a snapshot when a
 *   heartbeat reports a newer version that no delta delivers within one
 *   heartbeat, re-registers when the controller forgot the node;
 * - saves directory.json after every change and tells the daemon through
 *   on_change.
 *
 * The controller being away, timeouts, error replies and garbage from the
 * network are logged (once per state change, not per retry) and retried;
 * the last directory keeps being served. Relays never keep password
 * hashes and mailbox nodes never keep DKIM private keys: any received are
 * wiped before they reach the directory.
 *
 * Threading: everything runs on the daemon's libuv loop thread; nng
 * completions are handed over internally. */
#ifndef MC_CFGSYNC_H
#define MC_CFGSYNC_H

#include <uv.h>

#include "daemon.h"
#include "directory.h"
#include "mc.pb-c.h"
#include "rpc.h"

struct mc_cfgsync;

struct mc_cfgsync_settings {
	const char *name;        /* node name registered with the controller */
	Mc__NodeKind kind;       /* MAILBOX or RELAY */
	const char *control_url; /* controller REQ/REP endpoint */
	const char *publish_url; /* controller PUB endpoint */
	const char *token;       /* node credential, copied (wiped on free) */
	const char *state_dir;   /* created (0700) when missing */
	struct mc_tls_files tls; /* for tls+tcp:// URLs */
	unsigned request_timeout_ms; /* 0: 2000 */
	/* Mailbox nodes: host:port where relays reach this node's LMTP
	 * listener, published with the shards it owns. NULL or "" for none. */
	const char *lmtp_address;
	/* Relays: the public host name (their MX host name) and the IP
	 * addresses the Internet reaches them at, comma-separated literals,
	 * registered for the MX and A/AAAA records of `mailctl domain dns`.
	 * NULL or "" for none. Checked by mc_cfgsync_start. */
	const char *public_name;
	const char *public_addresses;
	/* Called on the loop thread after the directory changed: a snapshot
	 * or delta was applied, or (once, from the loop right after start)
	 * a saved directory was loaded. dir is the same pointer
	 * mc_cfgsync_directory returns. May be NULL. */
	void (*on_change)(const struct mc_directory *dir, void *ctx);
	void *ctx;
};

/* Fill the connection settings of set from a mail-node or mail-relay
 * config: name, control_url, publish_url and state_dir (required), the
 * tls_* files, and the token read from node_token_file into *token_r
 * (heap memory: mc_secret_free it once mc_cfgsync_start has copied it).
 * kind, on_change and ctx are left to the caller. Strings point into the
 * daemon's config. Returns 0, or -1 with error_r. */
int mc_cfgsync_configure(const struct mc_daemon *d,
                         struct mc_cfgsync_settings *set, char **token_r,
                         const char **error_r);

/* Validate settings, load the saved directory, open the sockets and start
 * syncing on loop. All strings in set are only borrowed for the call.
 * Returns 0 with *sync_r, or -1 with error_r (nothing left behind): bad
 * settings or URL, unusable state_dir, TLS files that cannot be read. */
int mc_cfgsync_start(uv_loop_t *loop, const struct mc_cfgsync_settings *set,
                     struct mc_cfgsync **sync_r, const char **error_r);

/* The directory kept in sync; never NULL. The pointer is valid until
 * mc_cfgsync_close. Its content (and the views its lookups return)
 * changes only in this module's loop callbacks, right before on_change
 * is called: never in the middle of another callback of the daemon. */
/* Mailbox nodes: may this process write shard now, and with which fencing
 * epoch? Grants come with heartbeat replies and lapse on their own when
 * the controller cannot be reached (see shard_grants.h). */
bool mc_cfgsync_shard_epoch(const struct mc_cfgsync *sync, uint32_t shard,
                            uint64_t *epoch_r);

const struct mc_directory *mc_cfgsync_directory(const struct mc_cfgsync *sync);

/* Stop syncing and tear down: closes the sockets at once (waiting briefly
 * for nng callbacks in progress), closes the loop handles, and frees the
 * object in the last close callback, so the loop must run afterwards
 * (mc_daemon_fini does). on_change is not called any more. May be called
 * from on_change. Loop thread only; NULL-safe; sets *sync to NULL. */
void mc_cfgsync_close(struct mc_cfgsync **sync);

#endif
