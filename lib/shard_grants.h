/* The shard leases a mailbox node holds, as granted in heartbeat replies:
 * which shards it may write now and with which fencing epoch. A grant is
 * trusted until the moment its heartbeat was SENT plus the lease TTL minus
 * a safety margin, by the node's own monotonic clock: the controller
 * counts the TTL from when it received the request, which is later, so the
 * node always stops writing before the controller could hand the shard to
 * anyone else. Every reply replaces the whole set: a shard missing from it
 * is revoked at once.
 *
 * Pure bookkeeping, no I/O; not thread-safe (the loop thread owns it). */
#ifndef MC_SHARD_GRANTS_H
#define MC_SHARD_GRANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mc.pb-c.h"

struct mc_shard_grants;

struct mc_shard_grants *mc_shard_grants_new(void);
void mc_shard_grants_free(struct mc_shard_grants **g);

/* Replace the set with the n grants of a reply to a request sent at
 * sent_ms (monotonic milliseconds) carrying ttl_ms. Grants for shards at
 * or above MC_DIRECTORY_MAX_SHARDS or with epoch 0 are ignored. */
void mc_shard_grants_update(struct mc_shard_grants *g,
                            Mc__LeaseGrant *const *grants, size_t n,
                            uint64_t sent_ms, uint32_t ttl_ms);
/* Forget every grant (the controller no longer knows us). */
void mc_shard_grants_clear(struct mc_shard_grants *g);
/* May shard be written at now_ms? Sets *epoch_r when it may. */
bool mc_shard_grants_check(const struct mc_shard_grants *g, uint32_t shard,
                           uint64_t now_ms, uint64_t *epoch_r);
/* Number of shards writable at now_ms. */
size_t mc_shard_grants_count(const struct mc_shard_grants *g, uint64_t now_ms);

/* The safety margin taken off every TTL: a fifth of it, at least 500 ms. */
uint32_t mc_shard_grants_margin(uint32_t ttl_ms);

#endif
