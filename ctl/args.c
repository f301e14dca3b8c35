/* mailctl command-line parsing: one pass over argv that accepts every
 * option anywhere (global options before or after the command words) and
 * collects the rest as positional arguments; which command-specific options
 * (--force, --quota, --domain, --wait, --relay, the route and dkim ones) a
 * command accepts is checked later, once the command is known. Also the MAILCTL_* environment
 * fallbacks and the size syntax for --quota. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim.h"
#include "error.h"
#include "mem.h"

enum cli_opt_id {
	OPT_URL,
	OPT_TOKEN_FILE,
	OPT_TLS_CA,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_JSON,
	OPT_TIMEOUT,
	OPT_HELP,
	OPT_VERSION,
	OPT_WAIT,
	OPT_WAIT_TIMEOUT,
	OPT_FORCE,
	OPT_QUOTA,
	OPT_DOMAIN,
	OPT_RELAY,
	OPT_SMARTHOST,
	OPT_MX,
	OPT_TLS_MODE,
	OPT_AUTH_USER,
	OPT_SECRET_ENV,
	OPT_SECRET_FILE,
	OPT_SELECTOR,
	OPT_ALG,
	OPT_RSA_BITS,
};

struct cli_option {
	const char *name; /* without the leading "--" */
	enum cli_opt_id id;
	bool has_value;
	unsigned flag; /* enum cli_opt_flag, 0 for global options */
};

/* clang-format off */
static const struct cli_option cli_options[] = {
	{"url", OPT_URL, true, 0},
	{"token-file", OPT_TOKEN_FILE, true, 0},
	{"tls-ca", OPT_TLS_CA, true, 0},
	{"tls-cert", OPT_TLS_CERT, true, 0},
	{"tls-key", OPT_TLS_KEY, true, 0},
	{"json", OPT_JSON, false, 0},
	{"timeout", OPT_TIMEOUT, true, 0},
	{"help", OPT_HELP, false, 0},
	{"version", OPT_VERSION, false, 0},
	{"wait", OPT_WAIT, false, CLI_OPT_WAIT},
	{"wait-timeout", OPT_WAIT_TIMEOUT, true, CLI_OPT_WAIT},
	{"force", OPT_FORCE, false, CLI_OPT_FORCE},
	{"quota", OPT_QUOTA, true, CLI_OPT_QUOTA},
	{"domain", OPT_DOMAIN, true, CLI_OPT_DOMAIN},
	{"relay", OPT_RELAY, true, CLI_OPT_RELAY},
	{"smarthost", OPT_SMARTHOST, true, CLI_OPT_SMARTHOST},
	{"mx", OPT_MX, false, CLI_OPT_MX},
	{"tls", OPT_TLS_MODE, true, CLI_OPT_TLS},
	{"auth-user", OPT_AUTH_USER, true, CLI_OPT_AUTH_USER},
	{"secret-env", OPT_SECRET_ENV, true, CLI_OPT_SECRET_ENV},
	{"secret-file", OPT_SECRET_FILE, true, CLI_OPT_SECRET_FILE},
	{"selector", OPT_SELECTOR, true, CLI_OPT_SELECTOR},
	{"alg", OPT_ALG, true, CLI_OPT_ALG},
	{"rsa-bits", OPT_RSA_BITS, true, CLI_OPT_RSA_BITS},
};
/* clang-format on */

#define CLI_NOPTIONS (sizeof(cli_options) / sizeof(cli_options[0]))

const char *
cli_opt_name(unsigned flag)
{
	for (size_t i = 0; i < CLI_NOPTIONS; i++)
		if ((cli_options[i].flag & flag) != 0)
			return cli_options[i].name;
	return "?";
}

/* Decimal unsigned in [min, max]. */
static int
parse_uint(const char *opt, const char *s, unsigned min, unsigned max,
           unsigned *val_r, const char **error_r)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!isdigit((unsigned char)*s) || *end != '\0' || errno != 0 ||
	    v < min || v > max) {
		*error_r = mc_errorf("--%s: '%s' is not a number from %u to %u",
		                     opt, s, min, max);
		return -1;
	}
	*val_r = (unsigned)v;
	return 0;
}

/* Multiplier for a unit suffix, 0 when the suffix is not one. */
static uint64_t
size_unit(const char *suffix)
{
	static const char units[] = "KMGT";
	const char *u;

	if (*suffix == '\0' || strcasecmp(suffix, "B") == 0)
		return 1;
	u = strchr(units, toupper((unsigned char)*suffix));
	if (u == NULL)
		return 0;
	suffix++;
	if (*suffix != '\0' && strcasecmp(suffix, "B") != 0 &&
	    strcasecmp(suffix, "iB") != 0)
		return 0;
	return (uint64_t)1 << (10 * (u - units + 1));
}

int
cli_size_parse(const char *s, uint64_t *bytes_r, const char **error_r)
{
	unsigned long long v;
	uint64_t mult;
	char *end;

	if (strcasecmp(s, "unlimited") == 0) {
		*bytes_r = 0;
		return 0;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (!isdigit((unsigned char)*s) || errno != 0 ||
	    (mult = size_unit(end)) == 0) {
		*error_r = mc_errorf("invalid size '%s': expected bytes or a "
		                     "number with a K, M, G or T suffix (base "
		                     "1024), e.g. 500M or 10G",
		                     s);
		return -1;
	}
	if (v > UINT64_MAX / mult) {
		*error_r = mc_errorf("size '%s' is too large", s);
		return -1;
	}
	*bytes_r = (uint64_t)v * mult;
	return 0;
}

static const struct cli_option *
option_find(const char *name, size_t len)
{
	for (size_t i = 0; i < CLI_NOPTIONS; i++)
		if (strlen(cli_options[i].name) == len &&
		    strncmp(cli_options[i].name, name, len) == 0)
			return &cli_options[i];
	return NULL;
}

/* Store one option; value is NULL for flags. */
static int
option_apply(struct cli_args *args, const struct cli_option *o,
             const char *value, const char **error_r)
{
	switch (o->id) {
	case OPT_URL:
		args->url = value;
		break;
	case OPT_TOKEN_FILE:
		args->token_file = value;
		break;
	case OPT_TLS_CA:
		args->tls_ca = value;
		break;
	case OPT_TLS_CERT:
		args->tls_cert = value;
		break;
	case OPT_TLS_KEY:
		args->tls_key = value;
		break;
	case OPT_JSON:
		args->json = true;
		break;
	case OPT_HELP:
		args->help = true;
		break;
	case OPT_VERSION:
		args->version = true;
		break;
	case OPT_WAIT:
		args->wait = true;
		break;
	case OPT_FORCE:
		args->force = true;
		break;
	case OPT_DOMAIN:
		args->domain = value;
		break;
	case OPT_RELAY:
		args->relay_url = value;
		break;
	case OPT_SMARTHOST:
		args->smarthost = value;
		break;
	case OPT_MX:
		args->mx = true;
		break;
	case OPT_TLS_MODE:
		args->tls_mode = value;
		break;
	case OPT_AUTH_USER:
		args->auth_user = value;
		break;
	case OPT_SECRET_ENV:
		args->secret_env = value;
		break;
	case OPT_SECRET_FILE:
		args->secret_file = value;
		break;
	case OPT_SELECTOR:
		args->selector = value;
		break;
	case OPT_ALG:
		args->alg = value;
		break;
	case OPT_RSA_BITS:
		return parse_uint(o->name, value, MC_DKIM_RSA_KEYGEN_MIN,
		                  MC_DKIM_RSA_BITS_MAX, &args->rsa_bits, error_r);
	case OPT_TIMEOUT:
		return parse_uint(o->name, value, 1, 3600 * 1000,
		                  &args->timeout_ms, error_r);
	case OPT_WAIT_TIMEOUT:
		args->wait = true;
		return parse_uint(o->name, value, 1, 24 * 3600,
		                  &args->wait_timeout_s, error_r);
	case OPT_QUOTA:
		args->has_quota = true;
		if (cli_size_parse(value, &args->quota_bytes, error_r) < 0) {
			*error_r = mc_errorf("--quota: %s", *error_r);
			return -1;
		}
		break;
	}
	return 0;
}

/* argv[*i] starts with "--" (or is "-h"); consume it and its value. */
static int
parse_option(struct cli_args *args, int argc, char **argv, int *i,
             const char **error_r)
{
	const char *arg = argv[*i];
	const char *name = arg + 2, *eq, *value = NULL;
	const struct cli_option *o;

	if (strcmp(arg, "-h") == 0)
		name = "help";
	eq = strchr(name, '=');
	o = option_find(name, eq != NULL ? (size_t)(eq - name) : strlen(name));
	if (o == NULL) {
		*error_r = mc_errorf("unknown option '%s'", arg);
		return -1;
	}
	if (o->has_value && eq != NULL) {
		value = eq + 1;
	} else if (o->has_value) {
		if (*i + 1 >= argc) {
			*error_r =
			        mc_errorf("option --%s needs a value", o->name);
			return -1;
		}
		value = argv[++*i];
	} else if (eq != NULL) {
		*error_r = mc_errorf("option --%s takes no value", o->name);
		return -1;
	}
	if (value != NULL && *value == '\0') {
		*error_r = mc_errorf("option --%s needs a non-empty value",
		                     o->name);
		return -1;
	}
	args->used |= o->flag;
	return option_apply(args, o, value, error_r);
}

int
cli_args_parse(struct cli_args *args, int argc, char **argv,
               const char **error_r)
{
	bool options_done = false;

	memset(args, 0, sizeof(*args));
	args->timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
	args->wait_timeout_s = CLI_DEFAULT_WAIT_TIMEOUT_S;
	args->pos =
	        mc_calloc((size_t)(argc > 0 ? argc : 1), sizeof(*args->pos));
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!options_done && strcmp(arg, "--") == 0) {
			options_done = true;
		} else if (!options_done && (strncmp(arg, "--", 2) == 0 ||
		                             strcmp(arg, "-h") == 0)) {
			if (parse_option(args, argc, argv, &i, error_r) < 0)
				return -1;
		} else if (!options_done && arg[0] == '-' && arg[1] != '\0') {
			*error_r = mc_errorf("unknown option '%s'", arg);
			return -1;
		} else {
			args->pos[args->npos++] = arg;
		}
	}
	return 0;
}

static void
env_default(const char **value, const char *name)
{
	const char *env;

	if (*value != NULL)
		return;
	env = getenv(name);
	if (env != NULL && *env != '\0')
		*value = env;
}

void
cli_args_env(struct cli_args *args)
{
	env_default(&args->url, "MAILCTL_URL");
	env_default(&args->relay_url, "MAILCTL_RELAY_URL");
	env_default(&args->token_file, "MAILCTL_TOKEN_FILE");
	env_default(&args->tls_ca, "MAILCTL_TLS_CA");
	env_default(&args->tls_cert, "MAILCTL_TLS_CERT");
	env_default(&args->tls_key, "MAILCTL_TLS_KEY");
}

void
cli_args_fini(struct cli_args *args)
{
	free(args->pos);
	args->pos = NULL;
	args->npos = 0;
}
