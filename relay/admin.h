/* The relay's admin socket (admin_url): `mailctl queue list|show|retry|
 * delete` against this relay's queue, authenticated with the cluster's
 * admin token. Served with lib/rpc_server; requests are answered on the
 * loop thread from the delivery scheduler's view of the queue. */
#ifndef RELAY_ADMIN_H
#define RELAY_ADMIN_H

#include <uv.h>

#include "delivery.h"
#include "rpc.h"

struct relay_admin;

/* token is copied (and wiped when freed); d is borrowed and must outlive
 * the admin socket. */
int relay_admin_start(uv_loop_t *loop, const char *url,
                      const struct mc_tls_files *tls, const char *token,
                      struct relay_delivery *d, struct relay_admin **admin_r,
                      const char **error_r);
void relay_admin_close(struct relay_admin *admin, void (*done)(void *arg),
                       void *arg);

#endif
