/* Unit tests for mailctl: option parsing, sizes and output formats,
 * password line reading and hashing, and the controller exchange (exit
 * codes, --wait success and timeout) against a fake controller: a REP
 * socket on an ipc:// path served by a thread with canned answers. */
#include "cli.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <argon2.h>
#include <nng/protocol/reqrep0/rep.h>

#include "mem.h"
#include "rpc.h"
#include "test.h"

static void
test_size_parse(void)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t bytes;
	} cases[] = {
	        {"0", 0, 0},
	        {"unlimited", 0, 0},
	        {"1024", 0, 1024},
	        {"100B", 0, 100},
	        {"1K", 0, 1024},
	        {"10m", 0, 10ull << 20},
	        {"2G", 0, 2ull << 30},
	        {"1GiB", 0, 1ull << 30},
	        {"3gb", 0, 3ull << 30},
	        {"1T", 0, 1ull << 40},
	        {"18446744073709551615", 0, UINT64_MAX},
	        {"18446744073709551616", -1, 0},
	        {"16777216T", -1, 0},
	        {"", -1, 0},
	        {"G", -1, 0},
	        {"1.5G", -1, 0},
	        {"-1", -1, 0},
	        {" 1", -1, 0},
	        {"1X", -1, 0},
	        {"1KX", -1, 0},
	        {"1 K", -1, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t bytes = 42;
		const char *error = NULL;
		int ret = cli_size_parse(cases[i].in, &bytes, &error);

		CHECK(ret == cases[i].ret);
		if (ret == 0 && cases[i].ret == 0)
			CHECK(bytes == cases[i].bytes);
		if (ret < 0)
			CHECK(error != NULL);
		if (ret != cases[i].ret)
			fprintf(stderr, "size case '%s'\n", cases[i].in);
	}
}

static void
test_formats(void)
{
	char buf[CLI_FMT_SIZE];
	int64_t now = 1700000000000;
	json_t *j;

	CHECK_STR(cli_format_quota(0, buf), "unlimited");
	CHECK_STR(cli_format_quota(1024, buf), "1 KiB");
	CHECK_STR(cli_format_size(0, buf), "0 B");
	CHECK_STR(cli_format_size(100, buf), "100 B");
	CHECK_STR(cli_format_size(1024, buf), "1 KiB");
	CHECK_STR(cli_format_size(1536, buf), "1.5 KiB");
	CHECK_STR(cli_format_size(500ull << 20, buf), "500 MiB");
	CHECK_STR(cli_format_size(10ull << 30, buf), "10 GiB");
	CHECK_STR(cli_format_size(UINT64_MAX, buf), "16.0 EiB");
	CHECK_STR(cli_format_age(now, 0, buf), "never");
	CHECK_STR(cli_format_age(now, now - 500, buf), "0.5s ago");
	CHECK_STR(cli_format_age(now, now + 500, buf), "0.0s ago");
	CHECK_STR(cli_format_age(now, now - 30000, buf), "30s ago");
	CHECK_STR(cli_format_age(now, now - 5 * 60000, buf), "5m ago");
	CHECK_STR(cli_format_age(now, now - 3 * 3600000, buf), "3h ago");
	CHECK_STR(cli_format_age(now, now - 3 * 86400000LL, buf), "3d ago");
	CHECK_STR(cli_format_time(0, buf), "-");
	j = cli_json_str("ok\xff\xfe!");
	CHECK(j != NULL && strcmp(json_string_value(j), "ok?" "?!") == 0);
	json_decref(j);
	j = cli_json_str("caf\xc3\xa9");
	CHECK(j != NULL && strcmp(json_string_value(j), "caf\xc3\xa9") == 0);
	json_decref(j);
}

static int
parse(struct cli_args *a, const char *const *words, const char **error_r)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = (char *)"mailctl";
	for (; *words != NULL; words++)
		argv[argc++] = (char *)*words;
	argv[argc] = NULL;
	return cli_args_parse(a, argc, argv, error_r);
}

static void
test_args(void)
{
	struct cli_args a;
	const char *error = NULL;

	CHECK(parse(&a,
	            (const char *[]){"--json", "domain", "rm", "x.org",
	                             "--force", "--url=tcp://h:1", "--timeout",
	                             "250", NULL},
	            &error) == 0);
	CHECK(a.json && a.force && a.timeout_ms == 250);
	CHECK_STR(a.url, "tcp://h:1");
	CHECK(a.npos == 3);
	CHECK_STR(a.pos[2], "x.org");
	CHECK(a.used == CLI_OPT_FORCE);
	CHECK(!a.wait && a.wait_timeout_s == CLI_DEFAULT_WAIT_TIMEOUT_S);
	cli_args_fini(&a);

	CHECK(parse(&a,
	            (const char *[]){"account", "add", "--quota", "2G",
	                             "--wait-timeout=5", "--", "-odd", NULL},
	            &error) == 0);
	CHECK(a.has_quota && a.quota_bytes == 2ull << 30);
	CHECK(a.wait && a.wait_timeout_s == 5);
	CHECK(a.used == (CLI_OPT_QUOTA | CLI_OPT_WAIT));
	CHECK(a.npos == 3);
	CHECK_STR(a.pos[2], "-odd");
	CHECK(a.timeout_ms == CLI_DEFAULT_TIMEOUT_MS);
	cli_args_fini(&a);

	CHECK(parse(&a, (const char *[]){"-h", NULL}, &error) == 0 && a.help);
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"status", "--frob", NULL}, &error) <
	      0);
	CHECK(strstr(error, "--frob") != NULL);
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"status", "-x", NULL}, &error) < 0);
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"status", "--url", NULL}, &error) < 0);
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"status", "--url=", NULL}, &error) <
	      0);
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"status", "--json=yes", NULL},
	            &error) < 0);
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"--timeout", "0", NULL}, &error) < 0);
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"--quota", "lots", NULL}, &error) < 0);
	cli_args_fini(&a);
}

/* Feed text through a pipe to cli_password_read_line. */
static int
read_line_from(const char *text, size_t len, char *buf, size_t *len_r)
{
	const char *error = NULL;
	int fds[2], ret;

	if (pipe(fds) < 0)
		abort();
	if (write(fds[1], text, len) != (ssize_t)len)
		abort();
	close(fds[1]);
	ret = cli_password_read_line(fds[0], buf, CLI_PASSWORD_MAX + 2, len_r,
	                             &error);
	close(fds[0]);
	if (ret < 0)
		CHECK(error != NULL);
	return ret;
}

static void
test_password(void)
{
	char buf[CLI_PASSWORD_MAX + 2], *big = mc_malloc(CLI_PASSWORD_MAX + 3);
	char *hash = NULL, *hash2 = NULL;
	const char *error = NULL;
	size_t len = 0;

	CHECK(read_line_from("s3cret\n", 7, buf, &len) == 0 && len == 6);
	CHECK_STR(buf, "s3cret");
	CHECK(read_line_from("s3cret\r\nnext\n", 13, buf, &len) == 0 &&
	      len == 6);
	CHECK(read_line_from("no newline", 10, buf, &len) == 0 && len == 10);
	CHECK(read_line_from("with space \n", 12, buf, &len) == 0 && len == 11);
	CHECK(read_line_from("\n", 1, buf, &len) < 0);
	CHECK(read_line_from("", 0, buf, &len) < 0);
	CHECK(read_line_from("a\0b\n", 4, buf, &len) < 0);
	memset(big, 'x', CLI_PASSWORD_MAX);
	big[CLI_PASSWORD_MAX] = '\n';
	CHECK(read_line_from(big, CLI_PASSWORD_MAX + 1, buf, &len) == 0 &&
	      len == CLI_PASSWORD_MAX);
	big[CLI_PASSWORD_MAX] = 'x';
	big[CLI_PASSWORD_MAX + 1] = '\n';
	CHECK(read_line_from(big, CLI_PASSWORD_MAX + 2, buf, &len) < 0);
	big[CLI_PASSWORD_MAX + 1] = 'x';
	big[CLI_PASSWORD_MAX + 2] = '\n';
	CHECK(read_line_from(big, CLI_PASSWORD_MAX + 3, buf, &len) < 0);
	free(big);

	CHECK(cli_password_hash("correct horse", 13, &hash, &error) == 0);
	CHECK(cli_password_hash("correct horse", 13, &hash2, &error) == 0);
	CHECK(hash != NULL &&
	      strncmp(hash, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
	CHECK(hash != NULL &&
	      argon2id_verify(hash, "correct horse", 13) == ARGON2_OK);
	CHECK(hash != NULL &&
	      argon2id_verify(hash, "correct horsE", 13) != ARGON2_OK);
	CHECK(hash != NULL && hash2 != NULL && strcmp(hash, hash2) != 0);
	free(hash);
	free(hash2);
}

/* ---- fake controller ---- */

enum fake_mode {
	FAKE_OK, /* answer OK with version 7 (status: see fake_applied) */
	FAKE_NOT_FOUND, /* answer NOT_FOUND */
	FAKE_SILENT,    /* never answer */
};

static _Atomic int fake_mode;
static _Atomic unsigned long long fake_applied; /* node "a"'s version */
static _Atomic int fake_stop;
static _Atomic int fake_requests;

static void
fake_status_reply(Mc__Response *resp, Mc__StatusInfo *st, Mc__Node **nodes)
{
	static Mc__Node a = MC__NODE__INIT, b = MC__NODE__INIT;

	a.name = (char *)"a";
	a.kind = MC__NODE_KIND__NODE_KIND_MAILBOX;
	a.live = 1;
	a.applied_version = fake_applied;
	b.name = (char *)"b"; /* down and far behind: never waited for */
	b.kind = MC__NODE_KIND__NODE_KIND_RELAY;
	nodes[0] = &a;
	nodes[1] = &b;
	st->version = 7;
	st->shard_count = 64;
	st->n_nodes = 2;
	st->nodes = nodes;
	resp->body_case = MC__RESPONSE__BODY_STATUS_INFO;
	resp->status_info = st;
}

static void
fake_answer(nng_socket sock, const Mc__Request *req)
{
	Mc__Response resp = MC__RESPONSE__INIT;
	Mc__StatusInfo st = MC__STATUS_INFO__INIT;
	Mc__Domain dom = MC__DOMAIN__INIT;
	Mc__Node *nodes[2];
	nng_msg *msg;

	resp.version = 7;
	if (strcmp(req->token, "tok") != 0) {
		resp.status = MC__STATUS__STATUS_UNAUTHORIZED;
	} else if (fake_mode == FAKE_NOT_FOUND) {
		resp.status = MC__STATUS__STATUS_NOT_FOUND;
		resp.error = (char *)"domain x.org does not exist";
	} else if (req->body_case == MC__REQUEST__BODY_STATUS) {
		fake_status_reply(&resp, &st, nodes);
	} else {
		dom.id = 99;
		dom.name = (char *)"x.org";
		resp.body_case = MC__RESPONSE__BODY_DOMAIN;
		resp.domain = &dom;
	}
	msg = mc_rpc_pack_response(&resp);
	if (nng_sendmsg(sock, msg, 0) != 0)
		nng_msg_free(msg);
}

static void *
fake_controller(void *arg)
{
	nng_socket sock = *(nng_socket *)arg;

	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 50);
	while (!fake_stop) {
		Mc__Request *req;
		nng_msg *msg;

		if (nng_recvmsg(sock, &msg, 0) != 0)
			continue;
		fake_requests++;
		req = mc_rpc_unpack_request(nng_msg_body(msg),
		                            nng_msg_len(msg));
		nng_msg_free(msg);
		if (req != NULL && fake_mode != FAKE_SILENT)
			fake_answer(sock, req);
		if (req != NULL)
			mc__request__free_unpacked(req, NULL);
	}
	return NULL;
}

/* Run fn with stdout and stderr sent to /dev/null (the CLI reports). */
static int
quietly(int (*fn)(struct cli *), struct cli *cli)
{
	int out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY);
	int ret;

	fflush(stdout);
	dup2(null, 1);
	dup2(null, 2);
	ret = fn(cli);
	fflush(stdout);
	dup2(out, 1);
	dup2(err, 2);
	close(out);
	close(err);
	close(null);
	return ret;
}

static void
cli_setup(struct cli *cli, const char *url, const char *token_file)
{
	memset(cli, 0, sizeof(*cli));
	cli->args.url = url;
	cli->args.token_file = token_file;
	cli->args.timeout_ms = 2000;
	cli->args.wait_timeout_s = 1;
}

static int
do_domain_add(struct cli *cli)
{
	Mc__DomainAddReq body = MC__DOMAIN_ADD_REQ__INIT;
	Mc__Request req = MC__REQUEST__INIT;
	Mc__Response *resp;
	int ret;

	body.name = (char *)"x.org";
	req.body_case = MC__REQUEST__BODY_DOMAIN_ADD;
	req.domain_add = &body;
	if ((ret = cli_call(cli, &req, &resp)) != CLI_EXIT_OK)
		return ret;
	ret = cli_mutation_done(cli, resp, "added domain x.org", NULL);
	mc__response__free_unpacked(resp, NULL);
	return ret;
}

static void
test_exchange(const char *url, const char *token_file)
{
	struct cli cli;

	fake_mode = FAKE_OK;
	cli_setup(&cli, url, token_file);
	CHECK(quietly(do_domain_add, &cli) == CLI_EXIT_OK);
	cli_fini(&cli);

	fake_mode = FAKE_NOT_FOUND;
	cli_setup(&cli, url, token_file);
	cli.args.json = true;
	CHECK(quietly(do_domain_add, &cli) == CLI_EXIT_REFUSED);
	cli_fini(&cli);

	/* --wait: node "a" at 7 is enough, "b" is down and ignored. */
	fake_mode = FAKE_OK;
	fake_applied = 7;
	cli_setup(&cli, url, token_file);
	cli.args.wait = true;
	CHECK(quietly(do_domain_add, &cli) == CLI_EXIT_OK);
	cli_fini(&cli);

	/* --wait with "a" stuck at 6: exit 4 after about a second. */
	fake_applied = 6;
	cli_setup(&cli, url, token_file);
	cli.args.wait = true;
	cli.args.json = true;
	CHECK(quietly(do_domain_add, &cli) == CLI_EXIT_WAIT_TIMEOUT);
	cli_fini(&cli);

	/* A controller that never answers: exit 3 after --timeout. */
	fake_mode = FAKE_SILENT;
	cli_setup(&cli, url, token_file);
	cli.args.timeout_ms = 200;
	CHECK(quietly(do_domain_add, &cli) == CLI_EXIT_UNREACHABLE);
	cli_fini(&cli);
	fake_mode = FAKE_OK;

	/* Missing URL or token file, unsupported URL: usage, nothing sent. */
	cli_setup(&cli, NULL, token_file);
	CHECK(quietly(do_domain_add, &cli) == CLI_EXIT_USAGE);
	cli_fini(&cli);
	cli_setup(&cli, url, "/nonexistent/token");
	CHECK(quietly(do_domain_add, &cli) == CLI_EXIT_USAGE);
	cli_fini(&cli);
	cli_setup(&cli, "http://127.0.0.1:1", token_file);
	CHECK(quietly(do_domain_add, &cli) == CLI_EXIT_USAGE);
	cli_fini(&cli);
}

static void
test_controller(void)
{
	char url[128], path[64], token_file[64];
	nng_socket sock;
	pthread_t thread;
	const char *error = NULL;
	struct cli cli;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/mc_cli_test_%d.sock", (int)getpid());
	snprintf(url, sizeof(url), "ipc://%s", path);
	snprintf(token_file, sizeof(token_file), "/tmp/mc_cli_test_%d.tok",
	         (int)getpid());
	f = fopen(token_file, "w");
	fputs("tok\n", f);
	fclose(f);

	/* Nobody listening yet: exit 3 at once. */
	cli_setup(&cli, url, token_file);
	CHECK(quietly(do_domain_add, &cli) == CLI_EXIT_UNREACHABLE);
	cli_fini(&cli);

	CHECK(nng_rep0_open(&sock) == 0);
	CHECK(mc_rpc_listen(sock, url, NULL, &error) == 0);
	pthread_create(&thread, NULL, fake_controller, &sock);
	test_exchange(url, token_file);
	CHECK(fake_requests > 5);
	fake_stop = 1;
	pthread_join(thread, NULL);
	nng_close(sock);
	unlink(path);
	unlink(token_file);
}

int
main(void)
{
	test_size_parse();
	test_formats();
	test_args();
	test_password();
	test_controller();
	nng_fini(); /* so valgrind sees nng's threads gone */
	return mc_test_done();
}
