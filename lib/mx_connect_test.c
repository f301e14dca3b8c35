/* mx_connect.h against real sockets on loopback and the fake DNS server
 * of dns_test_server.c: a name whose AAAA (::1) refuses and whose A
 * (127.0.0.1) listens ends up on 127.0.0.1, and the reverse with IPv4
 * preferred; a host that never answers SYNs (a listener whose accept
 * queue is full, so the kernel drops them: local and deterministic, where
 * a "no route" address such as 100::1 would leave the machine here, since
 * this host has an IPv6 default route) times out per attempt and the next
 * host is tried; NXDOMAIN and excluded families are permanent, SERVFAIL
 * temporary; IP literals without DNS; the attempt limit; cancel. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "conn.h"
#include "dns.h"
#include "dns_test_server.h"
#include "listener.h"
#include "mx_connect.h"
#include "test.h"

static uv_loop_t loop;
static struct test_dns_server fake;
static struct mc_dns *dns;
static struct mc_listener *l4, *l6;
static uint16_t port4, port6; /* listening on 127.0.0.1 / [::1] */
static int accepted;

static const struct test_dns_entry table[] = {
        {"v6bad.test", TEST_DNS_AAAA, 0, "::1"},
        {"v6bad.test", TEST_DNS_A, 0, "127.0.0.1"},
        {"v4bad.test", TEST_DNS_A, 0, "127.0.0.1"},
        {"v4bad.test", TEST_DNS_AAAA, 0, "::1"},
        {"v6only.test", TEST_DNS_AAAA, 0, "::1"},
        {"v4only.test", TEST_DNS_A, 0, "127.0.0.1"},
        {"tf.test", 0, TEST_DNS_SERVFAIL, NULL},
        {"silent.test", 0, TEST_DNS_DROP, NULL},
        {"hole.test", TEST_DNS_A, 0, "127.0.0.1"},
        {NULL, 0, 0, NULL},
};

/* ---- The owner of the connection --------------------------------------- */

struct owner {
	struct mc_mx_connect *mx;
	bool done;
	struct mc_conn *conn;
	char host[64], ip[64], errors[MC_MX_CONNECT_ERRORS_MAX];
	size_t host_index;
	uint16_t port;
	unsigned attempts;
	bool permanent;
	int events_after, reads;
};

static void
o_read(struct mc_conn *conn, void *ctx, const char *data, size_t len)
{
	struct owner *o = ctx;

	(void)data;
	o->reads++;
	mc_conn_consume(conn, len);
}

static void
o_event(struct mc_conn *conn, void *ctx, enum mc_conn_event ev,
        const char *error)
{
	struct owner *o = ctx;

	if (o->mx != NULL && mc_mx_connect_event(o->mx, conn, ev, error))
		return;
	CHECK(conn == o->conn); /* only the conn handed over */
	o->events_after++;
}

static const struct mc_conn_callbacks owner_cb = {
        .read = o_read,
        .event = o_event,
};

static void
o_done(const struct mc_mx_connect_result *r, void *ctx)
{
	struct owner *o = ctx;

	o->mx = NULL;
	o->done = true;
	o->conn = r->conn;
	snprintf(o->host, sizeof(o->host), "%s", r->host);
	snprintf(o->ip, sizeof(o->ip), "%s", r->ip);
	snprintf(o->errors, sizeof(o->errors), "%s", r->errors);
	o->host_index = r->host_index;
	o->port = r->port;
	o->attempts = r->attempts;
	o->permanent = r->permanent;
	if (r->conn != NULL)
		CHECK_STR(mc_conn_peer_ip(r->conn), r->ip);
}

static void
tick_cb(uv_timer_t *t)
{
	(void)t;
}

static void
wait_for(bool *flag, uint64_t ms)
{
	uv_timer_t tick;
	uint64_t end;

	uv_timer_init(&loop, &tick);
	uv_timer_start(&tick, tick_cb, 5, 5);
	uv_update_time(&loop);
	end = uv_now(&loop) + ms;
	while (!*flag && uv_now(&loop) < end)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
}

static void
settle(void)
{
	bool never = false;

	wait_for(&never, 50);
}

/* Connect to hosts; the owner's conn (if any) is closed after checks by
 * the caller through finish(). */
static void
run(struct owner *o, const char *const *hosts, size_t n,
    enum mc_mx_connect_family family, unsigned max_attempts)
{
	struct mc_mx_connect_settings set = {
	        .dns = dns,
	        .hosts = hosts,
	        .host_count = n,
	        .port = port4,
	        .family = family,
	        .attempt_timeout_ms = 300,
	        .max_attempts = max_attempts,
	        .cb = &owner_cb,
	        .cb_ctx = o,
	        .log_id = "t1",
	};
	const char *error;

	memset(o, 0, sizeof(*o));
	if (mc_mx_connect_start(&loop, &set, o_done, o, &o->mx, &error) < 0) {
		fprintf(stderr, "start: %s\n", error);
		CHECK(false);
		return;
	}
	CHECK(!o->done);
	wait_for(&o->done, 10000);
	CHECK(o->done);
	if (!o->done)
		return;
	fprintf(stderr,
	        "  -> host=%s ip=%s attempts=%u permanent=%d errors=%s\n",
	        o->host, o->ip, o->attempts, o->permanent, o->errors);
}

static void
owner_close(struct owner *o)
{
	if (o->conn != NULL)
		mc_conn_close(o->conn, NULL);
	o->conn = NULL;
	settle();
}

/* ---- Tests -------------------------------------------------------------- */

static void
test_v6_falls_back_to_v4(void)
{
	const char *hosts[] = {"v6bad.test"};
	struct owner o;
	int before = accepted;

	/* AAAA ::1 refuses on port4 (nobody listens on [::1]:port4). */
	run(&o, hosts, 1, MC_MX_CONNECT_PREFER_IPV6, 0);
	CHECK(o.conn != NULL);
	CHECK_STR(o.ip, "127.0.0.1");
	CHECK_STR(o.host, "v6bad.test");
	CHECK(o.port == port4 && o.host_index == 0);
	CHECK(o.attempts == 2);
	CHECK(strstr(o.errors, "v6bad.test: connect to [::1]") != NULL);
	CHECK(strstr(o.errors, "refused") != NULL ||
	      strstr(o.errors, "not available") != NULL ||
	      strstr(o.errors, "unreachable") != NULL);
	settle();
	CHECK(accepted == before + 1);
	owner_close(&o);
}

static void
test_v4_falls_back_to_v6(void)
{
	char h[64];
	const char *hosts[] = {h};
	struct owner o;

	if (l6 == NULL) {
		fprintf(stderr,
		        "no IPv6 loopback here: reverse case skipped\n");
		return;
	}
	/* 127.0.0.1 refuses on port6; [::1]:port6 listens. */
	snprintf(h, sizeof(h), "v4bad.test:%u", port6);
	run(&o, hosts, 1, MC_MX_CONNECT_PREFER_IPV4, 0);
	CHECK(o.conn != NULL);
	CHECK_STR(o.ip, "::1");
	CHECK(o.port == port6);
	CHECK(o.attempts == 2);
	CHECK(strstr(o.errors, "v4bad.test: connect to 127.0.0.1:") != NULL);
	owner_close(&o);

	/* Preferring IPv6, the first attempt wins. */
	run(&o, hosts, 1, MC_MX_CONNECT_PREFER_IPV6, 0);
	CHECK(o.conn != NULL && o.attempts == 1);
	CHECK_STR(o.ip, "::1");
	CHECK_STR(o.errors, "");
	owner_close(&o);
}

/* A listening socket whose accept queue is full: SYNs are dropped. */
static int
black_hole(uint16_t *port_r, int *filler_r)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), c;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 0) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	*port_r = ntohs(sa.sin_port);
	*filler_r = c;
	return fd;
}

static void
test_timeout_then_next_host(void)
{
	char h1[64], h2[64];
	const char *hosts[] = {h1, h2};
	struct owner o;
	uint16_t hole;
	int filler, fd = black_hole(&hole, &filler);
	uint64_t t0;

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	snprintf(h1, sizeof(h1), "hole.test:%u", hole);
	snprintf(h2, sizeof(h2), "v4only.test:%u", port4);
	uv_update_time(&loop);
	t0 = uv_now(&loop);
	run(&o, hosts, 2, MC_MX_CONNECT_PREFER_IPV6, 0);
	CHECK(o.conn != NULL);
	CHECK(o.host_index == 1);
	CHECK_STR(o.host, "v4only.test");
	CHECK(strstr(o.errors, "hole.test: connect to 127.0.0.1:") != NULL);
	CHECK(strstr(o.errors, "timed out") != NULL);
	/* No AAAA for these hosts is no error. */
	CHECK(strstr(o.errors, "AAAA") == NULL);
	uv_update_time(&loop);
	CHECK(uv_now(&loop) - t0 >= 280);
	owner_close(&o);
	close(filler);
	close(fd);
}

static void
test_failures(void)
{
	const char *nx[] = {"nx.test", "v6only.test"};
	const char *tf[] = {"tf.test"};
	const char *ref[] = {"v6bad.test"};
	char lit[64];
	const char *lits[] = {lit};
	struct owner o;

	/* NXDOMAIN, and only IPv6 where IPv4 is required: permanent. */
	run(&o, nx, 2, MC_MX_CONNECT_IPV4_ONLY, 0);
	CHECK(o.conn == NULL && o.permanent && o.attempts == 0);
	CHECK(strstr(o.errors, "nx.test A: no such domain") != NULL);
	CHECK(strstr(o.errors, "v6only.test A: no record") != NULL);
	CHECK(strstr(o.errors, "AAAA") == NULL); /* not asked */

	run(&o, tf, 1, MC_MX_CONNECT_PREFER_IPV6, 0);
	CHECK(o.conn == NULL && !o.permanent && o.attempts == 0);
	CHECK(strstr(o.errors, "tf.test AAAA") != NULL);
	CHECK(strstr(o.errors, "tf.test A") != NULL);

	/* Refused everywhere: temporary. */
	snprintf(lit, sizeof(lit), "127.0.0.1:%u", port6 != 0 ? port6 : 1);
	run(&o, lits, 1, MC_MX_CONNECT_PREFER_IPV6, 0);
	CHECK(o.conn == NULL && !o.permanent && o.attempts == 1);
	CHECK(strncmp(o.errors, "connect to 127.0.0.1:", 21) == 0);

	/* The attempt limit. */
	run(&o, ref, 1, MC_MX_CONNECT_PREFER_IPV6, 1);
	CHECK(o.conn == NULL && !o.permanent && o.attempts == 1);
	CHECK(strstr(o.errors, "gave up after 1 connection attempts") != NULL);

	/* IPv6 only: the refusing ::1 is all there is. */
	run(&o, ref, 1, MC_MX_CONNECT_IPV6_ONLY, 0);
	CHECK(o.conn == NULL && o.attempts == 1);
}

static void
test_literals(void)
{
	char a[64], b[64];
	const char *hosts[] = {a, b};
	struct mc_mx_connect_settings set = {
	        .hosts = hosts,
	        .host_count = 2,
	        .cb = &owner_cb,
	};
	struct owner o;
	const char *error;

	/* No resolver needed; "[::1]:port" refuses, "127.0.0.1" listens
	 * on the default port given. */
	snprintf(a, sizeof(a), "[::1]:%u", port4);
	snprintf(b, sizeof(b), "127.0.0.1");
	memset(&o, 0, sizeof(o));
	set.port = port4;
	set.cb_ctx = &o;
	CHECK(mc_mx_connect_start(&loop, &set, o_done, &o, &o.mx, &error) == 0);
	wait_for(&o.done, 5000);
	CHECK(o.conn != NULL && o.host_index == 1);
	CHECK_STR(o.ip, "127.0.0.1");
	owner_close(&o);

	/* Names without a resolver, bad hosts, no callbacks. */
	memset(&o, 0, sizeof(o));
	snprintf(b, sizeof(b), "v4only.test");
	CHECK(mc_mx_connect_start(&loop, &set, o_done, &o, &o.mx, &error) < 0);
	CHECK(strstr(error, "resolver") != NULL);
	set.dns = dns;
	snprintf(b, sizeof(b), "bad host");
	CHECK(mc_mx_connect_start(&loop, &set, o_done, &o, &o.mx, &error) < 0);
	snprintf(b, sizeof(b), "host:99999");
	CHECK(mc_mx_connect_start(&loop, &set, o_done, &o, &o.mx, &error) < 0);
	snprintf(b, sizeof(b), "v4only.test:%u", port4);
	set.host_count = 0;
	CHECK(mc_mx_connect_start(&loop, &set, o_done, &o, &o.mx, &error) < 0);
	set.host_count = 2;
	set.cb = NULL;
	CHECK(mc_mx_connect_start(&loop, &set, o_done, &o, &o.mx, &error) < 0);
	settle();
	CHECK(!o.done);
}

static void
test_cancel(void)
{
	const char *slow[] = {"silent.test"};
	char h[64];
	const char *hole_hosts[] = {h};
	struct mc_mx_connect_settings set = {
	        .dns = dns,
	        .hosts = slow,
	        .host_count = 1,
	        .cb = &owner_cb,
	        .attempt_timeout_ms = 5000,
	};
	struct owner o;
	const char *error;
	uint16_t hole;
	int filler, fd = black_hole(&hole, &filler);

	/* During the lookup, before the kick, during an attempt. */
	memset(&o, 0, sizeof(o));
	set.cb_ctx = &o;
	CHECK(mc_mx_connect_start(&loop, &set, o_done, &o, &o.mx, &error) == 0);
	settle();
	mc_mx_connect_cancel(o.mx);
	CHECK(mc_mx_connect_start(&loop, &set, o_done, &o, &o.mx, &error) == 0);
	mc_mx_connect_cancel(o.mx);
	snprintf(h, sizeof(h), "127.0.0.1:%u", hole);
	set.hosts = hole_hosts;
	CHECK(mc_mx_connect_start(&loop, &set, o_done, &o, &o.mx, &error) == 0);
	settle();
	mc_mx_connect_cancel(o.mx);
	wait_for(&o.done, 500);
	CHECK(!o.done);
	close(filler);
	close(fd);
}

/* ---- Setup -------------------------------------------------------------- */

static void
on_accept(struct mc_listener *l, struct mc_conn *conn, void *ctx)
{
	(void)l;
	(void)ctx;
	accepted++;
	mc_conn_close(conn, NULL);
}

static void
closed_cb(void *arg)
{
	*(bool *)arg = true;
}

int
main(void)
{
	const char *error;
	bool closed = false;

	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	if (test_dns_start(&loop, &fake, table) < 0 ||
	    mc_dns_new(&loop,
	               &(struct mc_dns_settings){
	                       .servers = (const char *[]){fake.address},
	                       .server_count = 1,
	                       .timeout_ms = 100,
	                       .tries = 1,
	               },
	               &dns, &error) < 0 ||
	    mc_listener_new(&loop,
	                    &(struct mc_listener_settings){.host = "127.0.0.1"},
	                    on_accept, NULL, &l4, &error) < 0) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	port4 = mc_listener_port(l4);
	if (mc_listener_new(&loop,
	                    &(struct mc_listener_settings){.host = "::1"},
	                    on_accept, NULL, &l6, &error) == 0)
		port6 = mc_listener_port(l6);
	else
		l6 = NULL;

	test_v6_falls_back_to_v4();
	test_v4_falls_back_to_v6();
	test_timeout_then_next_host();
	test_failures();
	test_literals();
	test_cancel();

	mc_listener_close(l4, NULL);
	if (l6 != NULL)
		mc_listener_close(l6, NULL);
	mc_dns_close(dns, closed_cb, &closed);
	wait_for(&closed, 2000);
	CHECK(closed);
	test_dns_stop(&fake);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0);
	return mc_test_done();
}
