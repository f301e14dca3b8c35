/* mailctl internals shared by the per-noun files: the parsed command line
 * (struct cli_args), the command tables each noun exports, the connection
 * to the controller with the --wait logic (client.c), output helpers
 * (output.c) and password input and hashing (password.c).
 *
 * Everything runs on the main thread of a short-lived process; nothing here
 * is thread-safe. Each command's run function returns the process exit code
 * (enum cli_exit) and has already told the user what went wrong. */
#ifndef MC_CLI_H
#define MC_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <nng/nng.h>

#include "addr.h"
#include "mc.pb-c.h"

#include "version.h"

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_REFUSED = 1,     /* the controller said no */
	CLI_EXIT_USAGE = 2,       /* bad command line or invalid argument */
	CLI_EXIT_UNREACHABLE = 3, /* no connection or no answer */
	CLI_EXIT_WAIT_TIMEOUT = 4,
};

/* Options only some commands accept (the global ones are always valid). */
enum cli_opt_flag {
	CLI_OPT_FORCE = 1 << 0,
	CLI_OPT_QUOTA = 1 << 1,
	CLI_OPT_DOMAIN = 1 << 2,
	CLI_OPT_WAIT = 1 << 3,  /* --wait and --wait-timeout */
	CLI_OPT_RELAY = 1 << 4, /* --relay: the queue commands */
	CLI_OPT_SMARTHOST = 1 << 5, /* route add */
	CLI_OPT_MX = 1 << 6,
	CLI_OPT_TLS = 1 << 7,
	CLI_OPT_AUTH_USER = 1 << 8,
	CLI_OPT_SECRET_ENV = 1 << 9,
	CLI_OPT_SECRET_FILE = 1 << 10,
	CLI_OPT_SELECTOR = 1 << 11, /* dkim create, rotate */
	CLI_OPT_ALG = 1 << 12,
	CLI_OPT_RSA_BITS = 1 << 13,
};

#define CLI_DEFAULT_TIMEOUT_MS 5000u
#define CLI_DEFAULT_WAIT_TIMEOUT_S 30u

/* The command line after parsing. String members are borrowed from argv or
 * the environment and live as long as the process. */
struct cli_args {
	const char *url;
	const char *token_file;
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	bool json;
	bool help;
	bool version;
	unsigned timeout_ms;
	bool wait;
	unsigned wait_timeout_s;
	bool force;
	bool has_quota;
	uint64_t quota_bytes;
	const char *domain;
	const char *relay_url; /* a relay's admin_url (queue commands) */
	const char *smarthost; /* route add: HOST:PORT */
	bool mx;               /* route add: direct MX delivery */
	const char *tls_mode;  /* route add: starttls, implicit, none */
	const char *auth_user;
	const char *secret_env;
	const char *secret_file;
	const char *selector;  /* dkim create, rotate */
	const char *alg;       /* dkim create: ed25519, rsa, both */
	unsigned rsa_bits;     /* 0 = not given */
	unsigned used;    /* enum cli_opt_flag bits given on the line */
	const char **pos; /* positional arguments, heap array */
	size_t npos;
};

/* Parse argv[1..argc-1]; options may come before or after the command
 * words, "--" ends options, "--opt=value" and "--opt value" both work.
 * Returns 0 or -1 with error_r. Call cli_args_fini in both cases. */
int cli_args_parse(struct cli_args *args, int argc, char **argv,
                   const char **error_r);
/* Fill url, relay url, token file and TLS files from MAILCTL_* when not
 * given. */
void cli_args_env(struct cli_args *args);
void cli_args_fini(struct cli_args *args);
/* Name of the first option in flags (for "does not apply" messages). */
const char *cli_opt_name(unsigned flag);

/* "1048576", "512K", "10M", "2G", "1T" (base 1024, suffix case-insensitive,
 * optional trailing "B"/"iB"), "0" or "unlimited" = no limit. */
int cli_size_parse(const char *s, uint64_t *bytes_r, const char **error_r);

struct cli;

struct cli_command {
	/* NULL: the noun alone is the command. May be two words ("rule
	 * add"): then both follow the noun on the command line. */
	const char *verb;
	const char *synopsis; /* operands and command options */
	const char *summary;  /* one line for the overview */
	const char *help;     /* details for COMMAND --help, may be NULL */
	unsigned options;     /* enum cli_opt_flag */
	size_t min_operands;
	size_t max_operands; /* SIZE_MAX: unbounded */
	int (*run)(struct cli *cli);
};

struct cli_noun {
	const char *name;
	const char *summary;
	const char *help; /* details for NOUN --help, may be NULL */
	const struct cli_command *commands;
	size_t ncommands;
};

extern const struct cli_noun cli_domain_noun;
extern const struct cli_noun cli_account_noun;
extern const struct cli_noun cli_alias_noun;
extern const struct cli_noun cli_node_noun;
extern const struct cli_noun cli_status_noun;
extern const struct cli_noun cli_queue_noun;
extern const struct cli_noun cli_route_noun;
extern const struct cli_noun cli_dkim_noun;

/* One run of mailctl. */
struct cli {
	struct cli_args args;
	const struct cli_noun *noun;
	const struct cli_command *cmd;
	const char *const *operands; /* after the command words */
	size_t noperands;
	nng_socket sock;
	bool sock_open;
	bool connected; /* dialled successfully */
	/* Talk to the relay at args.relay_url instead of the controller at
	 * args.url (set by the queue commands before cli_call). */
	bool relay;
	char *token;    /* admin token, wiped on cli_fini */
};

void cli_fini(struct cli *cli);

/* help.c: the reference text printed by --help. */
void cli_help_overview(FILE *f);
void cli_help_noun(FILE *f, const struct cli_noun *noun);
void cli_help_command(FILE *f, const struct cli_noun *noun,
                      const struct cli_command *cmd);

/* client.c. Connect to the controller (or, with cli->relay, to the relay)
 * unless already connected (checks that a URL and token file were given,
 * reads the token). Returns the exit code after reporting any problem. */
int cli_connect(struct cli *cli);
/* Send req (the token is filled in) and wait for the answer.
 * Returns CLI_EXIT_OK with *resp_r (free with mc__response__free_unpacked)
 * when the controller (or relay) answered OK; otherwise reports the problem and
 * returns the exit code. */
int cli_call(struct cli *cli, Mc__Request *req, Mc__Response **resp_r);
/* Report a successful mutation: the human line "WHAT (id I, version N,
 * DETAIL)" (id when the reply carries an object, detail may be NULL) or
 * the JSON {"ok":true,"version":N,"id":I}; with --wait, also wait until
 * every live node applied resp->version. Returns the exit code. */
int cli_mutation_done(struct cli *cli, const Mc__Response *resp,
                      const char *what, const char *detail);

/* output.c. Report an error: "mailctl: error: TEXT" on stderr and, with
 * --json, {"ok":false,"status":STATUS,"error":TEXT} on stdout. Returns
 * code. */
int cli_fail(const struct cli *cli, int code, const char *status,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A usage error: cli_fail(CLI_EXIT_USAGE) plus a hint on where help is. */
int cli_usage_error(const struct cli *cli, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Print doc (reference stolen) as the one JSON document on stdout. */
void cli_json_print(json_t *doc);
json_t *cli_json_u64(uint64_t v);
/* A JSON string for text that came from the controller: bytes that are
 * not valid UTF-8 become '?', so the document can always be printed. */
json_t *cli_json_str(const char *s);

/* A TXT record's text in zone-file form: quoted, '"' and '\\' escaped,
 * split into character-strings of at most 255 octets. Heap string. */
char *cli_dns_txt(const char *value);

#define CLI_FMT_SIZE 32
/* "1.5 GiB", "512 MiB", "100 B", "0 B". */
const char *cli_format_size(uint64_t bytes, char buf[CLI_FMT_SIZE]);
/* A quota: as cli_format_size, but 0 is "unlimited". */
const char *cli_format_quota(uint64_t bytes, char buf[CLI_FMT_SIZE]);
/* Local time "YYYY-MM-DD HH:MM:SS", "-" for 0. */
const char *cli_format_time(int64_t unix_s, char buf[CLI_FMT_SIZE]);
/* "never", "0.4s ago", "12s ago", "5m ago", "3h ago", "2d ago". */
const char *cli_format_age(int64_t now_ms, int64_t then_ms,
                           char buf[CLI_FMT_SIZE]);
int64_t cli_now_ms(void);

/* A text table: column widths computed at print time. */
struct cli_table {
	size_t ncols;
	const char *const *headers;
	char **cells; /* nrows * ncols heap strings */
	size_t nrows;
};
void cli_table_init(struct cli_table *t, size_t ncols,
                    const char *const *headers);
/* Append a row of exactly ncols strings (copied). */
void cli_table_add(struct cli_table *t, ...);
/* Header, rows, or "(none)" under the header when empty. */
void cli_table_print(const struct cli_table *t, FILE *f);
void cli_table_fini(struct cli_table *t);

/* password.c. Read a new password (stdin line, or two prompts without echo
 * on a terminal), hash it with argon2id, compute its SCRAM-SHA-256 verifier
 * and wipe the clear text. *hash_r and *scram_r are heap memory: mc_wipe
 * and free them. *scram_r is NULL (and a warning is printed on stderr)
 * when the password is not printable ASCII; both are NULL on error. */
int cli_password_new_hash(char **hash_r, char **scram_r, const char **error_r);
/* The pieces, exposed for tests. Reads one line from fd into buf (size >
 * CLI_PASSWORD_MAX + 1), newline stripped. */
#define CLI_PASSWORD_MAX 1024
int cli_password_read_line(int fd, char *buf, size_t size, size_t *len_r,
                           const char **error_r);
int cli_password_hash(const char *password, size_t len, char **hash_r,
                      const char **error_r);
/* The verifier (lib/scram.h) with MC_SCRAM_ITERATIONS rounds; *verifier_r
 * is NULL, and 0 returned, for a password outside printable ASCII (SCRAM
 * clients apply SASLprep, which is not implemented here). */
int cli_password_scram(const char *password, size_t len, char **verifier_r,
                       const char **error_r);

/* validate.c. Check a domain name / address given on the command line and
 * copy it normalised (domain lower-cased) to out. Returns CLI_EXIT_OK, or
 * reports a usage error naming the argument (what: "address",
 * "destination", ...) and returns CLI_EXIT_USAGE. */
int cli_check_domain(const struct cli *cli, const char *in,
                     char out[MC_DOMAIN_MAX + 1]);
int cli_check_address(const struct cli *cli, const char *what, const char *in,
                      bool allow_wildcard, char out[MC_ADDR_MAX + 1]);

/* alias.c, shared with account show. "local@domain" (heap string). */
char *cli_alias_address(const Mc__Alias *alias);
json_t *cli_alias_json(const Mc__Alias *alias);
/* Destinations joined by ", " (heap string). */
char *cli_alias_destinations(const Mc__Alias *alias);

/* queue.c. True when in is a relay queue id (19 characters of Crockford's
 * base32 alphabet, either case); out gets it lower-cased. */
#define CLI_QUEUE_ID_LEN 19
bool cli_queue_id_parse(const char *in, char out[CLI_QUEUE_ID_LEN + 1]);

/* route.c. Check the options of `route add NAME` and fill q (strings
 * point into cli's arguments and host_buf, which holds MC_HOST_MAX + 1
 * bytes). Returns CLI_EXIT_OK, or reports a usage error and returns
 * CLI_EXIT_USAGE. */
int cli_route_add_request(const struct cli *cli, const char *name,
                          Mc__RouteAddReq *q, char *host_buf);
/* route.c, shared with the mutation report: {"id","name","kind",...}. */
json_t *cli_route_json(const Mc__Route *route);

/* dkim.c. Parse --alg ("ed25519", "rsa", "both"; case-insensitive) into
 * algs (room for 2); false when it is none of them. */
bool cli_dkim_alg_parse(const char *in, Mc__DkimAlg *algs, size_t *n_r);
/* The keys as JSON (an array), with each key's DNS record; shared with
 * the mutation report of dkim create and rotate. */
json_t *cli_dkim_keys_json(const Mc__DkimKeyList *keys);

/* node.c, shared with status. */
json_t *cli_node_json(const Mc__Node *node);
const char *cli_node_kind_str(Mc__NodeKind kind);

#endif
