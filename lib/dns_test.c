/* The resolver of dns.h against the fake DNS server of dns_test_server.c
 * on 127.0.0.1, all in one libuv loop: MX sorted by preference with ties
 * shuffled, the implicit MX of a domain without MX records, a null MX
 * alone and next to real ones, NXDOMAIN, SERVFAIL and a server that never
 * answers (temporary), REFUSED, A and AAAA together and alone, one family
 * failing while the other answers, invalid names refused, a second
 * server tried when the first is silent, cancelled lookups and closing
 * with lookups pending (no callbacks), and callbacks never from inside
 * the call. No test leaves the machine. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dns.h"
#include "dns_test_server.h"
#include "mem.h"
#include "test.h"

static uv_loop_t loop;
static struct test_dns_server fake;
static struct mc_dns *dns;

static const struct test_dns_entry table[] = {
        {"multi.test", TEST_DNS_MX, 0, "20 mx-c.multi.test"},
        {"multi.test", TEST_DNS_MX, 0, "10 mx-a.multi.test"},
        {"multi.test", TEST_DNS_MX, 0, "30 mx-d.multi.test"},
        {"multi.test", TEST_DNS_MX, 0, "10 mx-b.multi.test"},
        {"nomx.test", TEST_DNS_A, 0, "192.0.2.10"},
        {"nullmx.test", TEST_DNS_MX, 0, "0 ."},
        {"halfnull.test", TEST_DNS_MX, 0, "0 ."},
        {"halfnull.test", TEST_DNS_MX, 0, "10 mx.halfnull.test"},
        {"broken.test", 0, TEST_DNS_SERVFAIL, NULL},
        {"refused.test", 0, TEST_DNS_REFUSED, NULL},
        {"silent.test", 0, TEST_DNS_DROP, NULL},
        {"dual.test", TEST_DNS_A, 0, "192.0.2.1"},
        {"dual.test", TEST_DNS_A, 0, "192.0.2.2"},
        {"dual.test", TEST_DNS_AAAA, 0, "2001:db8::1"},
        {"v4only.test", TEST_DNS_A, 0, "192.0.2.5"},
        {"half.test", TEST_DNS_A, 0, "192.0.2.7"},
        {"half.test", TEST_DNS_AAAA, TEST_DNS_SERVFAIL, NULL},
        {"slow6.test", TEST_DNS_A, 0, "192.0.2.8"},
        {"slow6.test", TEST_DNS_AAAA, TEST_DNS_DROP, NULL},
        {NULL, 0, 0, NULL},
};

/* ---- Running lookups --------------------------------------------------- */

struct got {
	bool done;
	int calls;
	enum mc_dns_status status, status_a, status_aaaa;
	char error[700];
	size_t mx_count, addr_count;
	bool implicit;
	char mx[8][64];
	unsigned pref[8];
	char addr[8][MC_DNS_IP_SIZE];
	int family[8];
};

static void
got_cb(const struct mc_dns_result *r, void *ctx)
{
	struct got *g = ctx;

	g->done = true;
	g->calls++;
	g->status = r->status;
	g->status_a = r->status_a;
	g->status_aaaa = r->status_aaaa;
	snprintf(g->error, sizeof(g->error), "%s", r->error ? r->error : "");
	g->mx_count = r->mx_count;
	g->implicit = r->implicit_mx;
	for (size_t i = 0; i < r->mx_count && i < 8; i++) {
		snprintf(g->mx[i], sizeof(g->mx[i]), "%s", r->mx[i].host);
		g->pref[i] = r->mx[i].preference;
	}
	g->addr_count = r->addr_count;
	for (size_t i = 0; i < r->addr_count && i < 8; i++) {
		snprintf(g->addr[i], sizeof(g->addr[i]), "%s", r->addrs[i].ip);
		g->family[i] = r->addrs[i].family;
	}
}

static void
tick_cb(uv_timer_t *t)
{
	(void)t;
}

/* Run the loop until *flag or ms pass (a ticking timer bounds each
 * round). */
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
mx(const char *name, struct got *g)
{
	const char *error;

	memset(g, 0, sizeof(*g));
	if (mc_dns_mx(dns, name, got_cb, g, NULL, &error) < 0) {
		fprintf(stderr, "mx %s: %s\n", name, error);
		CHECK(false);
		return;
	}
	CHECK(!g->done); /* never from inside the call */
	wait_for(&g->done, 5000);
	CHECK(g->done && g->calls == 1);
}

static void
addrs(const char *name, unsigned families, struct got *g)
{
	const char *error;

	memset(g, 0, sizeof(*g));
	if (mc_dns_addrs(dns, name, families, got_cb, g, NULL, &error) < 0) {
		fprintf(stderr, "addrs %s: %s\n", name, error);
		CHECK(false);
		return;
	}
	CHECK(!g->done);
	wait_for(&g->done, 5000);
	CHECK(g->done && g->calls == 1);
}

/* ---- Tests -------------------------------------------------------------- */

static void
test_mx_sorted(void)
{
	struct got g;
	int a_first = 0, b_first = 0;

	for (int i = 0; i < 40; i++) {
		mx("multi.test", &g);
		CHECK(g.status == MC_DNS_OK && !g.implicit);
		CHECK(g.mx_count == 4);
		CHECK(g.pref[0] == 10 && g.pref[1] == 10 && g.pref[2] == 20 &&
		      g.pref[3] == 30);
		CHECK_STR(g.mx[2], "mx-c.multi.test");
		CHECK_STR(g.mx[3], "mx-d.multi.test");
		if (strcmp(g.mx[0], "mx-a.multi.test") == 0 &&
		    strcmp(g.mx[1], "mx-b.multi.test") == 0)
			a_first++;
		else if (strcmp(g.mx[0], "mx-b.multi.test") == 0 &&
		         strcmp(g.mx[1], "mx-a.multi.test") == 0)
			b_first++;
		CHECK(g.error[0] == '\0');
	}
	/* Equal preferences are shuffled (2^-39 to fail by chance). */
	CHECK(a_first + b_first == 40);
	CHECK(a_first > 0 && b_first > 0);
	/* Case and a trailing dot do not matter. */
	mx("MULTI.Test.", &g);
	CHECK(g.status == MC_DNS_OK && g.mx_count == 4);
}

static void
test_mx_special(void)
{
	struct got g;

	mx("nomx.test", &g); /* RFC 5321 5.1 */
	CHECK(g.status == MC_DNS_OK && g.implicit && g.mx_count == 1);
	CHECK_STR(g.mx[0], "nomx.test");
	CHECK(g.pref[0] == 0);

	mx("nullmx.test", &g); /* RFC 7505 */
	CHECK(g.status == MC_DNS_NULL_MX);
	CHECK(mc_dns_status_permanent(g.status));
	CHECK(strstr(g.error, "null MX") != NULL);
	CHECK(g.mx_count == 0);

	mx("halfnull.test", &g); /* the null one next to a real one */
	CHECK(g.status == MC_DNS_OK && g.mx_count == 1);
	CHECK_STR(g.mx[0], "mx.halfnull.test");

	mx("missing.test", &g);
	CHECK(g.status == MC_DNS_NXDOMAIN);
	CHECK(mc_dns_status_permanent(g.status));
	CHECK(strstr(g.error, "missing.test MX: no such domain") != NULL);

	mx("broken.test", &g);
	CHECK(g.status == MC_DNS_TEMPFAIL);
	CHECK(!mc_dns_status_permanent(g.status));
	CHECK(strstr(g.error, "SERVFAIL") != NULL);

	mx("refused.test", &g);
	CHECK(g.status == MC_DNS_TEMPFAIL);
	CHECK(strstr(g.error, "REFUSED") != NULL);
}

static void
test_timeout(void)
{
	struct got g;
	uint64_t t0;
	unsigned before = fake.dropped;

	uv_update_time(&loop);
	t0 = uv_now(&loop);
	mx("silent.test", &g);
	CHECK(g.status == MC_DNS_TEMPFAIL);
	CHECK(strstr(g.error, "silent.test MX: timed out") != NULL);
	uv_update_time(&loop);
	CHECK(uv_now(&loop) - t0 >= 150);  /* 2 tries of 100 ms */
	CHECK(fake.dropped - before == 2); /* it did retry */

	/* A family that never answers does not hide the other's answer. */
	addrs("slow6.test", MC_DNS_A | MC_DNS_AAAA, &g);
	CHECK(g.status == MC_DNS_OK && g.addr_count == 1);
	CHECK(g.status_aaaa == MC_DNS_TEMPFAIL && g.status_a == MC_DNS_OK);
	CHECK(strstr(g.error, "AAAA: timed out") != NULL);
}

static void
test_addrs(void)
{
	struct got g;

	addrs("dual.test", MC_DNS_A | MC_DNS_AAAA, &g);
	CHECK(g.status == MC_DNS_OK && g.addr_count == 3);
	CHECK(g.family[0] == AF_INET6);
	CHECK_STR(g.addr[0], "2001:db8::1");
	CHECK(g.family[1] == AF_INET && g.family[2] == AF_INET);
	CHECK_STR(g.addr[1], "192.0.2.1");
	CHECK_STR(g.addr[2], "192.0.2.2");
	CHECK(g.error[0] == '\0');

	addrs("dual.test", MC_DNS_A, &g);
	CHECK(g.status == MC_DNS_OK && g.addr_count == 2);
	CHECK(g.family[0] == AF_INET);
	addrs("dual.test", MC_DNS_AAAA, &g);
	CHECK(g.status == MC_DNS_OK && g.addr_count == 1);

	addrs("v4only.test", MC_DNS_A | MC_DNS_AAAA, &g);
	CHECK(g.status == MC_DNS_OK && g.addr_count == 1);
	CHECK(g.status_aaaa == MC_DNS_NODATA);
	CHECK_STR(g.error, ""); /* no AAAA is no error */
	addrs("v4only.test", MC_DNS_AAAA, &g);
	CHECK(g.status == MC_DNS_NODATA && g.addr_count == 0);
	CHECK(strstr(g.error, "v4only.test AAAA: no record") != NULL);
	CHECK(mc_dns_status_permanent(g.status));

	addrs("half.test", MC_DNS_A | MC_DNS_AAAA, &g);
	CHECK(g.status == MC_DNS_OK && g.addr_count == 1);
	CHECK(g.status_aaaa == MC_DNS_TEMPFAIL);
	CHECK_STR(g.addr[0], "192.0.2.7");
	addrs("half.test", MC_DNS_AAAA, &g);
	CHECK(g.status == MC_DNS_TEMPFAIL);

	addrs("missing.test", MC_DNS_A | MC_DNS_AAAA, &g);
	CHECK(g.status == MC_DNS_NXDOMAIN);
	CHECK(g.status_a == MC_DNS_NXDOMAIN &&
	      g.status_aaaa == MC_DNS_NXDOMAIN);
	CHECK_STR(g.error, "missing.test AAAA: no such domain (NXDOMAIN); "
	                   "missing.test A: no such domain (NXDOMAIN)");
	addrs("broken.test", MC_DNS_A | MC_DNS_AAAA, &g);
	CHECK(g.status == MC_DNS_TEMPFAIL);
	/* An MX host name with an A record only, asked for MX. */
	addrs("nomx.test", MC_DNS_A, &g);
	CHECK(g.status == MC_DNS_OK && g.addr_count == 1);
}

static void
test_invalid(void)
{
	static const char *const bad[] = {
	        "",
	        ".",
	        "a..b",
	        "a b",
	        "a\nb",
	        "-\\065.test",
	        "caf\xc3\xa9.test",
	        "[192.0.2.1]",
	        "x.test..",
	};
	char longlabel[80], longname[300];
	struct got g;
	const char *error;

	memset(&g, 0, sizeof(g));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		CHECK(!mc_dns_name_valid(bad[i]));
		CHECK(mc_dns_mx(dns, bad[i], got_cb, &g, NULL, &error) < 0);
		CHECK(mc_dns_addrs(dns, bad[i], MC_DNS_A, got_cb, &g, NULL,
		                   &error) < 0);
	}
	CHECK(mc_dns_mx(dns, NULL, got_cb, &g, NULL, &error) < 0);
	memset(longlabel, 'a', 64);
	memcpy(longlabel + 64, ".test", 6);
	CHECK(!mc_dns_name_valid(longlabel));
	CHECK(mc_dns_name_valid(longlabel + 1)); /* 63 is fine */
	for (size_t i = 0; i < 254; i++)
		longname[i] = i % 2 ? '.' : 'a';
	longname[253] = '\0'; /* 253 octets ending in "a" */
	CHECK(mc_dns_name_valid(longname));
	longname[253] = 'a';
	longname[254] = '\0';
	CHECK(!mc_dns_name_valid(longname));
	CHECK(mc_dns_addrs(dns, "dual.test", 0, got_cb, &g, NULL, &error) < 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(!g.done);
}

static void
closed_cb(void *arg)
{
	*(bool *)arg = true;
}

static void
test_cancel_and_close(void)
{
	struct mc_dns_settings set = {
	        .servers = (const char *[]){fake.address},
	        .server_count = 1,
	        .timeout_ms = 100,
	        .tries = 1,
	};
	struct mc_dns *d2;
	struct mc_dns_lookup *lk;
	struct got g1, g2, g3;
	const char *error;
	bool closed = false;

	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	CHECK(mc_dns_mx(dns, "silent.test", got_cb, &g1, &lk, &error) == 0);
	mc_dns_cancel(lk);
	CHECK(mc_dns_mx(dns, "multi.test", got_cb, &g2, &lk, &error) == 0);
	mc_dns_cancel(lk);
	addrs("dual.test", MC_DNS_A, &g3); /* the resolver carries on */
	CHECK(g3.status == MC_DNS_OK);
	wait_for(&closed, 400); /* past the timeout */
	CHECK(!g1.done && !g2.done);

	/* Close with lookups pending: no callbacks, done runs. */
	CHECK(mc_dns_new(&loop, &set, &d2, &error) == 0);
	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	CHECK(mc_dns_mx(d2, "silent.test", got_cb, &g1, NULL, &error) == 0);
	CHECK(mc_dns_addrs(d2, "dual.test", MC_DNS_A | MC_DNS_AAAA, got_cb, &g2,
	                   NULL, &error) == 0);
	mc_dns_close(d2, closed_cb, &closed);
	CHECK(!closed);
	wait_for(&closed, 2000);
	CHECK(closed);
	uv_run(&loop, UV_RUN_NOWAIT);
	CHECK(!g1.done && !g2.done);
}

/* Closing the resolver from inside a callback. */
static struct mc_dns *d3;
static bool d3_closed;

static void
close_in_cb(const struct mc_dns_result *r, void *ctx)
{
	got_cb(r, ctx);
	mc_dns_close(d3, closed_cb, &d3_closed);
}

static void
test_close_in_callback(void)
{
	struct mc_dns_settings set = {
	        .servers = (const char *[]){fake.address},
	        .server_count = 1,
	};
	struct got g1, g2;
	const char *error;

	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	CHECK(mc_dns_new(&loop, &set, &d3, &error) == 0);
	CHECK(mc_dns_addrs(d3, "dual.test", MC_DNS_A, close_in_cb, &g1, NULL,
	                   &error) == 0);
	CHECK(mc_dns_mx(d3, "silent.test", got_cb, &g2, NULL, &error) == 0);
	wait_for(&d3_closed, 3000);
	CHECK(d3_closed && g1.calls == 1 && !g2.done);
}

static void
test_servers(void)
{
	/* The first server is silent (nobody listens on the port after
	 * ours is closed... a bound, never-reading socket is surer). */
	uv_udp_t mute;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char mute_addr[32];
	const char *list[2], *error;
	struct mc_dns *d;
	struct got g;
	bool closed = false;

	uv_udp_init(&loop, &mute);
	uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&ss);
	CHECK(uv_udp_bind(&mute, (struct sockaddr *)&ss, 0) == 0);
	uv_udp_getsockname(&mute, (struct sockaddr *)&ss, &len);
	snprintf(mute_addr, sizeof(mute_addr), "127.0.0.1:%u",
	         ntohs(((struct sockaddr_in *)&ss)->sin_port));
	list[0] = mute_addr;
	list[1] = fake.address;
	CHECK(mc_dns_new(&loop,
	                 &(struct mc_dns_settings){.servers = list,
	                                           .server_count = 2,
	                                           .timeout_ms = 100,
	                                           .tries = 1},
	                 &d, &error) == 0);
	memset(&g, 0, sizeof(g));
	CHECK(mc_dns_mx(d, "multi.test", got_cb, &g, NULL, &error) == 0);
	wait_for(&g.done, 3000);
	CHECK(g.status == MC_DNS_OK && g.mx_count == 4);
	mc_dns_close(d, closed_cb, &closed);
	wait_for(&closed, 2000);
	CHECK(closed);
	uv_close((uv_handle_t *)&mute, NULL);

	/* Settings: literal addresses only. */
	list[0] = "dns.example.test";
	CHECK(mc_dns_new(&loop,
	                 &(struct mc_dns_settings){.servers = list,
	                                           .server_count = 1},
	                 &d, &error) < 0);
	CHECK(strstr(error, "dns.example.test") != NULL);
	list[0] = "127.0.0.1:0";
	CHECK(mc_dns_new(&loop,
	                 &(struct mc_dns_settings){.servers = list,
	                                           .server_count = 1},
	                 &d, &error) < 0);
	list[0] = "::1";
	list[1] = "[::1]:5353";
	CHECK(mc_dns_new(&loop,
	                 &(struct mc_dns_settings){.servers = list,
	                                           .server_count = 2},
	                 &d, &error) == 0);
	closed = false;
	mc_dns_close(d, closed_cb, &closed);
	wait_for(&closed, 2000);
	CHECK(closed);
	/* No list: /etc/resolv.conf (nothing is asked). */
	CHECK(mc_dns_new(&loop, NULL, &d, &error) == 0);
	closed = false;
	mc_dns_close(d, closed_cb, &closed);
	wait_for(&closed, 2000);
	CHECK(closed);
}

int
main(void)
{
	const char *error;
	bool closed = false;

	uv_loop_init(&loop);
	if (test_dns_start(&loop, &fake, table) < 0)
		return 1;
	if (mc_dns_new(&loop,
	               &(struct mc_dns_settings){
	                       .servers = (const char *[]){fake.address},
	                       .server_count = 1,
	                       .timeout_ms = 100,
	                       .tries = 2,
	               },
	               &dns, &error) < 0) {
		fprintf(stderr, "%s\n", error);
		return 1;
	}
	test_mx_sorted();
	test_mx_special();
	test_timeout();
	test_addrs();
	test_invalid();
	test_cancel_and_close();
	test_close_in_callback();
	test_servers();

	mc_dns_close(dns, closed_cb, &closed);
	wait_for(&closed, 2000);
	CHECK(closed);
	test_dns_stop(&fake);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(uv_loop_close(&loop) == 0);
	return mc_test_done();
}
