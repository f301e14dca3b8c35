/* Unit tests for mailctl: option parsing, sizes and output formats,
 * password line reading and hashing, the help text, the checks of route
 * and dkim arguments, zone-file TXT quoting, and the exchanges
 * with the controller (exit codes, --wait success and timeout) and with a
 * relay (the queue commands' output, human and JSON) against a fake peer:
 * a REP socket on an ipc:// path served by a thread with canned answers. */
#include "cli.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <argon2.h>
#include <nng/protocol/reqrep0/rep.h>

#include "hostport.h"
#include "mem.h"
#include "rpc.h"
#include "scram.h"
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

	CHECK(parse(&a,
	            (const char *[]){"queue", "list", "--relay=tcp://r:1",
	                             NULL},
	            &error) == 0);
	CHECK_STR(a.relay_url, "tcp://r:1");
	CHECK(a.used == CLI_OPT_RELAY && a.url == NULL);
	setenv("MAILCTL_RELAY_URL", "tcp://env:2", 1);
	cli_args_env(&a);
	CHECK_STR(a.relay_url, "tcp://r:1"); /* the option wins */
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"queue", "list", NULL}, &error) == 0);
	cli_args_env(&a);
	CHECK_STR(a.relay_url, "tcp://env:2");
	cli_args_fini(&a);
	unsetenv("MAILCTL_RELAY_URL");
	CHECK(parse(&a, (const char *[]){"queue", "list", "--relay", NULL},
	            &error) < 0);
	cli_args_fini(&a);
}

static void
test_queue_id(void)
{
	char out[CLI_QUEUE_ID_LEN + 1];

	CHECK(cli_queue_id_parse("0c9s4x7k2m1hq3z8r5w", out));
	CHECK_STR(out, "0c9s4x7k2m1hq3z8r5w");
	CHECK(cli_queue_id_parse("0C9S4X7K2M1HQ3Z8R5W", out));
	CHECK_STR(out, "0c9s4x7k2m1hq3z8r5w");
	CHECK(cli_queue_id_parse("zzzzzzzzzzzzzzzzzzz", out));
	CHECK(!cli_queue_id_parse("", out));
	CHECK(!cli_queue_id_parse("0c9s4x7k2m1hq3z8r5", out));   /* 18 */
	CHECK(!cli_queue_id_parse("0c9s4x7k2m1hq3z8r5wx", out)); /* 20 */
	CHECK(!cli_queue_id_parse("0c9s4x7k2m1hq3z8r5i", out));  /* no i */
	CHECK(!cli_queue_id_parse("0c9s4x7k2m1hq3z8r5l", out));  /* no l */
	CHECK(!cli_queue_id_parse("0c9s4x7k2m1hq3z8r5o", out));  /* no o */
	CHECK(!cli_queue_id_parse("0c9s4x7k2m1hq3z8r5u", out));  /* no u */
	CHECK(!cli_queue_id_parse("0c9s4x7k2m1hq3z8r5-", out));
	CHECK(!cli_queue_id_parse("../../../etc/passwd", out));
	CHECK(!cli_queue_id_parse("0c9s4x7k2m1hq3z8r5\xc3", out));
}

/* Everything help prints goes through a memory stream. */
static char *
help_text(int which, const struct cli_noun *noun, const struct cli_command *cmd)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (which == 0)
		cli_help_overview(f);
	else if (which == 1)
		cli_help_noun(f, noun);
	else
		cli_help_command(f, noun, cmd);
	fclose(f);
	return text;
}

static void
test_help(void)
{
	const struct cli_noun *q = &cli_queue_noun;
	char *text;

	text = help_text(0, NULL, NULL);
	CHECK(strstr(text, "  queue list [--relay URL]") != NULL);
	CHECK(strstr(text, "  queue show ID [--relay URL]") != NULL);
	CHECK(strstr(text, "  queue retry [ID] [--relay URL]") != NULL);
	CHECK(strstr(text, "  queue delete ID [--relay URL]") != NULL);
	CHECK(strstr(text, "MAILCTL_RELAY_URL") != NULL);
	for (char *p = text, *nl; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		CHECK(nl != NULL && nl - p <= 79); /* fits a terminal */
		if (nl == NULL)
			break;
	}
	free(text);
	text = help_text(1, q, NULL);
	CHECK(strstr(text, "MC_RELAY_1_ADMIN_URL") != NULL);
	CHECK(strstr(text, "queue retry [ID]") != NULL);
	free(text);
	CHECK(q->ncommands == 4);
	for (size_t i = 0; i < q->ncommands; i++) {
		text = help_text(2, q, &q->commands[i]);
		CHECK(strstr(text, "--relay URL") != NULL);
		CHECK(strstr(text, "--json") != NULL);
		CHECK(q->commands[i].options == CLI_OPT_RELAY);
		free(text);
	}
}

/* route add's option checks: a cli with just the options set. */
static int
route_request(const char *name, const char *smarthost, bool mx, const char *tls,
              const char *user, const char *env, const char *file,
              Mc__RouteAddReq *q, char *host)
{
	struct cli cli;
	int out = dup(2), null = open("/dev/null", O_WRONLY), ret;

	memset(&cli, 0, sizeof(cli));
	cli.args.smarthost = smarthost;
	cli.args.mx = mx;
	cli.args.tls_mode = tls;
	cli.args.auth_user = user;
	cli.args.secret_env = env;
	cli.args.secret_file = file;
	mc__route_add_req__init(q);
	fflush(stderr);
	dup2(null, 2); /* the usage errors */
	ret = cli_route_add_request(&cli, name, q, host);
	dup2(out, 2);
	close(out);
	close(null);
	return ret;
}

static void
test_route_args(void)
{
	static const struct {
		const char *name, *smarthost;
		bool mx;
		const char *tls, *user, *env, *file;
		int ret;
	} cases[] = {
	        {"ses", "smtp.example.org:465", false, "implicit", "u", "SES_PASS", NULL,
	         CLI_EXIT_OK},
	        {"ses", "[2001:db8::1]:587", false, NULL, "u", NULL, "/etc/ses", CLI_EXIT_OK},
	        {"ses", "127.0.0.1:25", false, "none", NULL, NULL, NULL, CLI_EXIT_OK},
	        {"direct", NULL, true, NULL, NULL, NULL, NULL, CLI_EXIT_OK},
	        {"Direct", NULL, true, NULL, NULL, NULL, NULL, CLI_EXIT_USAGE},
	        {"x", NULL, false, NULL, NULL, NULL, NULL, CLI_EXIT_USAGE},
	        {"x", "h.test:25", true, NULL, NULL, NULL, NULL, CLI_EXIT_USAGE},
	        {"x", NULL, true, "implicit", NULL, NULL, NULL, CLI_EXIT_USAGE},
	        {"x", NULL, true, NULL, "u", "P", NULL, CLI_EXIT_USAGE},
	        {"x", "h.test", false, NULL, NULL, NULL, NULL, CLI_EXIT_USAGE},
	        {"x", "h.test:99999", false, NULL, NULL, NULL, NULL, CLI_EXIT_USAGE},
	        {"x", "2001:db8::1:25", false, NULL, NULL, NULL, NULL, CLI_EXIT_USAGE},
	        {"x", "-h.test:25", false, NULL, NULL, NULL, NULL, CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, "tls", NULL, NULL, NULL, CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, NULL, "u", NULL, NULL, CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, NULL, NULL, "P", NULL, CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, NULL, NULL, NULL, "/p", CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, NULL, "u", "P", "/p", CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, "none", "u", "P", NULL, CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, NULL, "u u", "P", NULL, CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, NULL, "u", "1P", NULL, CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, NULL, "u", "P-W", NULL, CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, NULL, "u", NULL, "p", CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, NULL, "u", NULL, "/a/../p", CLI_EXIT_USAGE},
	        {"x", "h.test:25", false, NULL, "u", NULL, "/a b", CLI_EXIT_USAGE},
	};
	Mc__RouteAddReq q;
	char host[MC_HOST_MAX + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret = route_request(cases[i].name, cases[i].smarthost, cases[i].mx,
		                        cases[i].tls, cases[i].user, cases[i].env,
		                        cases[i].file, &q, host);

		if (ret != cases[i].ret)
			fprintf(stderr, "route case %zu: got %d\n", i, ret);
		CHECK(ret == cases[i].ret);
	}
	/* What goes out: references only, STARTTLS unless told. */
	CHECK(route_request("ses", "[2001:db8::1]:587", false, NULL, "u", NULL,
	                    "/etc/ses", &q, host) == CLI_EXIT_OK);
	CHECK(q.kind == MC__ROUTE_KIND__ROUTE_KIND_SMARTHOST && q.port == 587 &&
	      q.tls == MC__ROUTE_TLS__ROUTE_TLS_STARTTLS);
	CHECK_STR(q.host, "2001:db8::1");
	CHECK_STR(q.secret_file, "/etc/ses");
	CHECK_STR(q.secret_env, "");
	CHECK(route_request("ses", "smtp.example.org:465", false, "IMPLICIT", "u",
	                    "SES_PASS", NULL, &q, host) == CLI_EXIT_OK);
	CHECK(q.tls == MC__ROUTE_TLS__ROUTE_TLS_IMPLICIT);
	CHECK_STR(q.secret_env, "SES_PASS");
	CHECK(route_request("direct", NULL, true, NULL, NULL, NULL, NULL, &q, host) ==
	      CLI_EXIT_OK);
	CHECK(q.kind == MC__ROUTE_KIND__ROUTE_KIND_MX && q.port == 0);
	CHECK_STR(q.host, "");
}

static void
test_dkim_args(void)
{
	struct cli_args a;
	const char *error = NULL;
	Mc__DkimAlg algs[2];
	size_t n = 9;
	char *txt, big[600];

	CHECK(cli_dkim_alg_parse("both", algs, &n) && n == 2 &&
	      algs[0] == MC__DKIM_ALG__DKIM_ALG_RSA &&
	      algs[1] == MC__DKIM_ALG__DKIM_ALG_ED25519);
	CHECK(cli_dkim_alg_parse("Ed25519", algs, &n) && n == 1 &&
	      algs[0] == MC__DKIM_ALG__DKIM_ALG_ED25519);
	CHECK(cli_dkim_alg_parse("rsa", algs, &n) && n == 1);
	CHECK(!cli_dkim_alg_parse("dsa", algs, &n) && n == 0);
	CHECK(!cli_dkim_alg_parse("", algs, &n));
	CHECK(parse(&a, (const char *[]){"dkim", "create", "x.org", "--rsa-bits",
	                                 "3072", "--selector=s1", "--alg", "rsa", NULL},
	            &error) == 0);
	CHECK(a.rsa_bits == 3072 && a.used == (CLI_OPT_RSA_BITS | CLI_OPT_SELECTOR |
	                                       CLI_OPT_ALG));
	CHECK_STR(a.selector, "s1");
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"dkim", "create", "x", "--rsa-bits", "1024",
	                                 NULL},
	            &error) < 0);
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"route", "add", "r", "--mx", "--tls", "none",
	                                 "--smarthost=h:1", "--auth-user", "u",
	                                 "--secret-env", "E", "--secret-file", "/f",
	                                 NULL},
	            &error) == 0);
	CHECK(a.mx && a.used == (CLI_OPT_MX | CLI_OPT_TLS | CLI_OPT_SMARTHOST |
	                         CLI_OPT_AUTH_USER | CLI_OPT_SECRET_ENV |
	                         CLI_OPT_SECRET_FILE));
	CHECK_STR(a.tls_mode, "none");
	CHECK_STR(a.smarthost, "h:1");
	cli_args_fini(&a);
	CHECK(parse(&a, (const char *[]){"route", "add", "r", "--mx=yes", NULL},
	            &error) < 0);
	cli_args_fini(&a);
	/* TXT texts for zone files: quoted, escaped, 255-octet strings. */
	txt = cli_dns_txt("v=spf1 mx -all");
	CHECK_STR(txt, "\"v=spf1 mx -all\"");
	free(txt);
	txt = cli_dns_txt("a\"b\\c");
	CHECK_STR(txt, "\"a\\\"b\\\\c\"");
	free(txt);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	txt = cli_dns_txt(big);
	CHECK(strlen(txt) == 599 + 8 && txt[256] == '"' && txt[257] == ' ' &&
	      txt[258] == '"' && txt[259 + 255] == '"');
	free(txt);
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

	/* The SCRAM verifier: the published format, 10000 rounds, salted
	 * anew each time; none for a password SASLprep would change. */
	hash = hash2 = NULL;
	CHECK(cli_password_scram("correct horse", 13, &hash, &error) == 0);
	CHECK(cli_password_scram("correct horse", 13, &hash2, &error) == 0);
	CHECK(hash != NULL &&
	      strncmp(hash, "SCRAM-SHA-256$10000:", 20) == 0 &&
	      mc_scram_verifier_valid(hash));
	CHECK(hash != NULL && strchr(hash + 20, '$') != NULL &&
	      strchr(strchr(hash + 20, '$'), ':') != NULL);
	CHECK(hash != NULL && hash2 != NULL && strcmp(hash, hash2) != 0);
	CHECK(hash != NULL && strstr(hash, "correct") == NULL);
	free(hash);
	free(hash2);
	hash = (char *)"unchanged";
	CHECK(cli_password_scram("caf\xc3\xa9", 5, &hash, &error) == 0 &&
	      hash == NULL);
	CHECK(cli_password_scram("tab\there", 8, &hash, &error) == 0 &&
	      hash == NULL);
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
static _Atomic int fake_queue_empty;
/* The last queue request: its body and id (read after the CLI returned,
 * i.e. after the reply was sent). */
static _Atomic int fake_queue_body;
static char fake_queue_id[64];

/* The one message the fake relay knows by id; a second one (null sender)
 * is only listed. */
#define FAKE_QUEUE_ID "0c9s4x7k2m1hq3z8r5w"
#define FAKE_QUEUE_ID2 "0c9s4x7k2m1hq3z8r60"

static Mc__QueueMessage *
fake_queue_message(int which)
{
	static Mc__QueueRecipient r[4];
	static Mc__QueueRecipient *r1[3] = {&r[0], &r[1], &r[2]};
	static Mc__QueueRecipient *r2[1] = {&r[3]};
	static Mc__QueueMessage m[2];
	int64_t now = (int64_t)time(NULL);

	for (size_t i = 0; i < 4; i++)
		mc__queue_recipient__init(&r[i]);
	r[0].address = (char *)"bob@x.org";
	r[0].state = (char *)"delivered";
	r[0].attempts = 1;
	r[1].address = (char *)"carol@y.org";
	r[1].state = (char *)"pending";
	r[1].attempts = 2;
	r[1].next_attempt = now + 270;
	/* A remote server's reply: tab, ESC and a UTF-8 C1 control (CSI). */
	r[1].last_error = (char *)"451 4.3.0\ttry later\x1b[31m\xc2\x9b!";
	r[2].address = (char *)"dave@y.org";
	r[2].state = (char *)"pending";
	r[2].attempts = 2;
	r[2].next_attempt = now + 600;
	r[2].last_error = (char *)"421 busy";
	r[3].address = (char *)"erin@x.org";
	r[3].state = (char *)"pending";
	mc__queue_message__init(&m[0]);
	m[0].id = (char *)FAKE_QUEUE_ID;
	m[0].sender = (char *)"alice@x.org";
	m[0].size = 1536;
	m[0].received = now - 300;
	m[0].n_recipients = 3;
	m[0].recipients = r1;
	mc__queue_message__init(&m[1]);
	m[1].id = (char *)FAKE_QUEUE_ID2;
	m[1].size = 100;
	m[1].received = now - 3 * 3600;
	m[1].n_recipients = 1;
	m[1].recipients = r2;
	return &m[which];
}

static void
fake_queue_reply(Mc__Response *resp, const Mc__Request *req)
{
	static Mc__QueueMessage *msgs[2];
	static Mc__QueueList list;
	const char *id = "";

	fake_queue_body = (int)req->body_case;
	if (req->body_case == MC__REQUEST__BODY_QUEUE_SHOW)
		id = req->queue_show->id;
	else if (req->body_case == MC__REQUEST__BODY_QUEUE_RETRY)
		id = req->queue_retry->id;
	else if (req->body_case == MC__REQUEST__BODY_QUEUE_DELETE)
		id = req->queue_delete->id;
	snprintf(fake_queue_id, sizeof(fake_queue_id), "%s", id);
	if (req->body_case == MC__REQUEST__BODY_QUEUE_LIST) {
		mc__queue_list__init(&list);
		msgs[0] = fake_queue_message(0);
		msgs[1] = fake_queue_message(1);
		list.n_messages = fake_queue_empty ? 0 : 2;
		list.messages = msgs;
		resp->body_case = MC__RESPONSE__BODY_QUEUE_LIST;
		resp->queue_list = &list;
	} else if (*id != '\0' && strcmp(id, FAKE_QUEUE_ID) != 0) {
		resp->status = MC__STATUS__STATUS_NOT_FOUND;
		resp->error = (char *)"no such message in the queue";
	} else if (req->body_case == MC__REQUEST__BODY_QUEUE_SHOW) {
		resp->body_case = MC__RESPONSE__BODY_QUEUE_MESSAGE;
		resp->queue_message = fake_queue_message(0);
	}
}

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
	} else if (req->body_case >= MC__REQUEST__BODY_QUEUE_LIST &&
	           req->body_case <= MC__REQUEST__BODY_QUEUE_DELETE) {
		resp.version = 0; /* relays have no configuration version */
		fake_queue_reply(&resp, req);
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

/* Run fn with stdout and stderr captured (heap strings for the caller). */
static int
captured(int (*fn)(struct cli *), struct cli *cli, char **out_r, char **err_r)
{
	FILE *fo = tmpfile(), *fe = tmpfile();
	int out = dup(1), err = dup(2);
	char **bufs[2] = {out_r, err_r};
	FILE *files[2] = {fo, fe};
	int ret;

	fflush(stdout);
	fflush(stderr);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	ret = fn(cli);
	fflush(stdout);
	fflush(stderr);
	dup2(out, 1);
	dup2(err, 2);
	close(out);
	close(err);
	for (int i = 0; i < 2; i++) {
		long len;

		fseek(files[i], 0, SEEK_END);
		len = ftell(files[i]);
		rewind(files[i]);
		*bufs[i] = mc_malloc((size_t)len + 1);
		if (fread(*bufs[i], 1, (size_t)len, files[i]) != (size_t)len)
			abort();
		fclose(files[i]);
	}
	return ret;
}

static int
run_cmd(struct cli *cli)
{
	return cli->cmd->run(cli);
}

/* Runs "queue VERB OPERANDS..." with the relay at url; the controller URL
 * is deliberately unset. Output in *out_r / *err_r (free both). */
static int
queue_cmd(const char *url, const char *token_file, bool json,
          const char *const *words, char **out_r, char **err_r)
{
	struct cli cli;
	int ret = -1;

	memset(&cli, 0, sizeof(cli));
	cli.args.relay_url = url;
	cli.args.token_file = token_file;
	cli.args.timeout_ms = 2000;
	cli.args.json = json;
	cli.noun = &cli_queue_noun;
	for (size_t i = 0; i < cli_queue_noun.ncommands; i++)
		if (strcmp(cli_queue_noun.commands[i].verb, words[0]) == 0)
			cli.cmd = &cli_queue_noun.commands[i];
	cli.operands = words + 1;
	while (words[1 + cli.noperands] != NULL)
		cli.noperands++;
	if (fake_mode == FAKE_SILENT)
		cli.args.timeout_ms = 200;
	if (cli.cmd != NULL)
		ret = captured(run_cmd, &cli, out_r, err_r);
	cli_fini(&cli);
	return ret;
}

/* Runs of two or more spaces (table padding) become " | ". */
static void
squash(char *s)
{
	char *w = s;

	for (const char *r = s; *r != '\0';) {
		if (r[0] == ' ' && r[1] == ' ') {
			while (*r == ' ')
				r++;
			memcpy(w, " | ", 3);
			w += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

static json_t *
json_doc(const char *text)
{
	json_error_t jerr;

	return json_loads(text, 0, &jerr);
}

static void
test_queue_list(const char *url, const char *tok)
{
	char *out, *err;
	json_t *doc, *m0, *m1, *r;

	CHECK(queue_cmd(url, tok, false, (const char *[]){"list", NULL}, &out,
	                &err) == CLI_EXIT_OK);
	CHECK(fake_queue_body == MC__REQUEST__BODY_QUEUE_LIST);
	squash(out);
	CHECK_STR(out,
	          "ID | AGE | SIZE | SENDER | RECIPIENTS | NEXT ATTEMPT | "
	          "LAST ERROR\n" FAKE_QUEUE_ID " | 5m | 1.5 KiB | "
	          "alice@x.org | 2/3 | in 4m | 451 4.3.0 try later?[31m?"
	          "?!\n" FAKE_QUEUE_ID2 " | 3h | 100 B | <> | 1/1 | now | -\n");
	CHECK_STR(err, "");
	free(out);
	free(err);

	CHECK(queue_cmd(url, tok, true, (const char *[]){"list", NULL}, &out,
	                &err) == CLI_EXIT_OK);
	doc = json_doc(out);
	CHECK(doc != NULL &&
	      json_array_size(json_object_get(doc, "messages")) == 2);
	m0 = json_array_get(json_object_get(doc, "messages"), 0);
	m1 = json_array_get(json_object_get(doc, "messages"), 1);
	CHECK_STR(json_string_value(json_object_get(m0, "id")), FAKE_QUEUE_ID);
	CHECK_STR(json_string_value(json_object_get(m0, "sender")),
	          "alice@x.org");
	CHECK(json_integer_value(json_object_get(m0, "size")) == 1536);
	CHECK(json_integer_value(json_object_get(m0, "received")) > 0);
	CHECK(json_array_size(json_object_get(m0, "recipients")) == 3);
	r = json_array_get(json_object_get(m0, "recipients"), 1);
	CHECK_STR(json_string_value(json_object_get(r, "address")),
	          "carol@y.org");
	CHECK_STR(json_string_value(json_object_get(r, "state")), "pending");
	CHECK(json_integer_value(json_object_get(r, "attempts")) == 2);
	CHECK(json_integer_value(json_object_get(r, "next_attempt")) > 0);
	CHECK_STR(json_string_value(json_object_get(r, "last_error")),
	          "451 4.3.0\ttry later\x1b[31m\xc2\x9b!"); /* escaped */
	r = json_array_get(json_object_get(m0, "recipients"), 0);
	CHECK(json_is_null(json_object_get(r, "last_error")));
	CHECK_STR(json_string_value(json_object_get(m1, "sender")), "");
	json_decref(doc);
	free(out);
	free(err);

	fake_queue_empty = 1;
	CHECK(queue_cmd(url, tok, false, (const char *[]){"list", NULL}, &out,
	                &err) == CLI_EXIT_OK);
	CHECK(strstr(out, "LAST ERROR\n(none)\n") != NULL);
	free(out);
	free(err);
	CHECK(queue_cmd(url, tok, true, (const char *[]){"list", NULL}, &out,
	                &err) == CLI_EXIT_OK);
	doc = json_doc(out);
	CHECK(doc != NULL && json_is_array(json_object_get(doc, "messages")) &&
	      json_array_size(json_object_get(doc, "messages")) == 0);
	json_decref(doc);
	free(out);
	free(err);
	fake_queue_empty = 0;
}

#define SHOW_HEAD                                                              \
	"id:        " FAKE_QUEUE_ID "\nsender:    alice@x.org\n"               \
	"size:      1.5 KiB (1536 bytes)\nreceived:  "

static void
test_queue_show(const char *url, const char *tok)
{
	char *out, *err;
	json_t *doc, *m;

	CHECK(queue_cmd(url, tok, false,
	                (const char *[]){"show", FAKE_QUEUE_ID, NULL}, &out,
	                &err) == CLI_EXIT_OK);
	CHECK_STR(fake_queue_id, FAKE_QUEUE_ID);
	CHECK(strncmp(out, SHOW_HEAD, strlen(SHOW_HEAD)) == 0);
	CHECK(strstr(out, " (5m ago)\n\n") != NULL);
	squash(out);
	CHECK(strstr(out, "\nRECIPIENT | STATE | ATTEMPTS | NEXT ATTEMPT | "
	                  "LAST ERROR\nbob@x.org | delivered | 1 | - | -\n"
	                  "carol@y.org | pending | 2 | ") != NULL);
	CHECK(strstr(out, " (in 4m) | 451 4.3.0 try later?[31m?"
	                  "?!\n"
	                  "dave@y.org | pending | 2 | ") != NULL);
	CHECK(strstr(out, " (in 10m) | 421 busy\n") != NULL);
	free(out);
	free(err);

	CHECK(queue_cmd(url, tok, true,
	                (const char *[]){"show", FAKE_QUEUE_ID, NULL}, &out,
	                &err) == CLI_EXIT_OK);
	doc = json_doc(out);
	m = json_object_get(doc, "message");
	CHECK_STR(json_string_value(json_object_get(m, "id")), FAKE_QUEUE_ID);
	CHECK(json_array_size(json_object_get(m, "recipients")) == 3);
	json_decref(doc);
	free(out);
	free(err);

	/* Not in the queue: the relay says so, exit 1. */
	CHECK(queue_cmd(url, tok, true,
	                (const char *[]){"show", FAKE_QUEUE_ID2, NULL}, &out,
	                &err) == CLI_EXIT_REFUSED);
	doc = json_doc(out);
	CHECK_STR(json_string_value(json_object_get(doc, "status")),
	          "not found");
	CHECK(strstr(err, "no such message") != NULL);
	json_decref(doc);
	free(out);
	free(err);
}

static void
test_queue_change(const char *url, const char *tok)
{
	char *out, *err;

	CHECK(queue_cmd(url, tok, false,
	                (const char *[]){"retry", FAKE_QUEUE_ID, NULL}, &out,
	                &err) == CLI_EXIT_OK);
	CHECK(fake_queue_body == MC__REQUEST__BODY_QUEUE_RETRY);
	CHECK_STR(fake_queue_id, FAKE_QUEUE_ID);
	CHECK_STR(out, FAKE_QUEUE_ID " scheduled for immediate retry\n");
	free(out);
	free(err);
	CHECK(queue_cmd(url, tok, false, (const char *[]){"retry", NULL}, &out,
	                &err) == CLI_EXIT_OK);
	CHECK_STR(fake_queue_id, "");
	CHECK_STR(out, "every queued message scheduled for immediate retry\n");
	free(out);
	free(err);
	CHECK(queue_cmd(url, tok, true, (const char *[]){"retry", NULL}, &out,
	                &err) == CLI_EXIT_OK);
	CHECK_STR(out, "{\n  \"ok\": true\n}\n");
	free(out);
	free(err);
	CHECK(queue_cmd(url, tok, false,
	                (const char *[]){"retry", FAKE_QUEUE_ID2, NULL}, &out,
	                &err) == CLI_EXIT_REFUSED);
	free(out);
	free(err);

	/* Upper case is accepted and sent lower-cased. */
	CHECK(queue_cmd(url, tok, false,
	                (const char *[]){"delete", "0C9S4X7K2M1HQ3Z8R5W", NULL},
	                &out, &err) == CLI_EXIT_OK);
	CHECK(fake_queue_body == MC__REQUEST__BODY_QUEUE_DELETE);
	CHECK_STR(fake_queue_id, FAKE_QUEUE_ID);
	CHECK_STR(out, "deleted " FAKE_QUEUE_ID "\n");
	free(out);
	free(err);
	CHECK(queue_cmd(url, tok, true,
	                (const char *[]){"delete", FAKE_QUEUE_ID, NULL}, &out,
	                &err) == CLI_EXIT_OK);
	CHECK_STR(out, "{\n  \"ok\": true\n}\n");
	free(out);
	free(err);
	CHECK(queue_cmd(url, tok, false,
	                (const char *[]){"delete", FAKE_QUEUE_ID2, NULL}, &out,
	                &err) == CLI_EXIT_REFUSED);
	CHECK(strstr(err, "not found: no such message in the queue") != NULL);
	free(out);
	free(err);
}

/* Usage errors send nothing; a relay away or silent is exit 3. */
static void
test_queue_errors(const char *url, const char *tok, const char *nowhere)
{
	static const char *const bad[][3] = {
	        {"show", "0c9s4x7k2m1hq3z8r5", NULL},
	        {"show", "../0c9s4x7k2m1hq3z8r", NULL},
	        {"retry", "0c9s4x7k2m1hq3z8r5i", NULL},
	        {"delete", "0c9s4x7k2m1hq3z8r5w0", NULL},
	};
	int before = fake_requests;
	char *out, *err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(queue_cmd(url, tok, false, bad[i], &out, &err) ==
		      CLI_EXIT_USAGE);
		CHECK(strstr(err, "invalid queue id") != NULL);
		free(out);
		free(err);
	}
	CHECK(queue_cmd(NULL, tok, true, (const char *[]){"list", NULL}, &out,
	                &err) == CLI_EXIT_USAGE);
	CHECK(strstr(err, "no relay admin URL: use --relay or "
	                  "MAILCTL_RELAY_URL; deploy/local/cluster puts "
	                  "MC_RELAY_1_ADMIN_URL in cluster.env") != NULL);
	CHECK(strstr(out, "\"status\": \"usage\"") != NULL);
	free(out);
	free(err);
	CHECK(fake_requests == before);

	CHECK(queue_cmd(nowhere, tok, false, (const char *[]){"list", NULL},
	                &out, &err) == CLI_EXIT_UNREACHABLE);
	CHECK(strstr(err, "relay unreachable") != NULL);
	free(out);
	free(err);
	fake_mode = FAKE_SILENT;
	CHECK(queue_cmd(url, tok, false,
	                (const char *[]){"delete", FAKE_QUEUE_ID, NULL}, &out,
	                &err) == CLI_EXIT_UNREACHABLE);
	CHECK(strstr(err, "no answer from relay at ") != NULL);
	free(out);
	free(err);
	fake_mode = FAKE_OK;
}

static void
test_queue(const char *url, const char *tok)
{
	char nowhere[128];

	snprintf(nowhere, sizeof(nowhere), "ipc:///tmp/mc_cli_test_%d.none",
	         (int)getpid());
	test_queue_list(url, tok);
	test_queue_show(url, tok);
	test_queue_change(url, tok);
	test_queue_errors(url, tok, nowhere);
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
	test_queue(url, token_file);
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
	test_queue_id();
	test_help();
	test_route_args();
	test_dkim_args();
	test_controller();
	nng_fini(); /* so valgrind sees nng's threads gone */
	return mc_test_done();
}
