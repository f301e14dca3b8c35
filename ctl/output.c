/* mailctl output: error reporting (stderr always, plus a JSON error
 * document with --json), the one-document JSON printer, aligned text
 * tables and the human formats for sizes, times and ages. */
#include "cli.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mem.h"

static void
vfail(const struct cli *cli, const char *status, const char *fmt, va_list ap)
{
	char text[1024];

	vsnprintf(text, sizeof(text), fmt, ap);
	fprintf(stderr, "mailctl: error: %s\n", text);
	if (cli != NULL && cli->args.json)
		cli_json_print(json_pack("{s:b, s:s, s:o}", "ok", 0, "status",
		                         status, "error", cli_json_str(text)));
}

int
cli_fail(const struct cli *cli, int code, const char *status, const char *fmt,
         ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(cli, status, fmt, ap);
	va_end(ap);
	return code;
}

int
cli_usage_error(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(cli, "usage", fmt, ap);
	va_end(ap);
	if (cli != NULL && cli->cmd != NULL && cli->cmd->verb != NULL)
		fprintf(stderr, "Try 'mailctl %s %s --help'.\n",
		        cli->noun->name, cli->cmd->verb);
	else if (cli != NULL && cli->noun != NULL)
		fprintf(stderr, "Try 'mailctl %s --help'.\n", cli->noun->name);
	else
		fputs("Try 'mailctl --help'.\n", stderr);
	return CLI_EXIT_USAGE;
}

void
cli_json_print(json_t *doc)
{
	if (doc == NULL) /* json_pack failed: a bug in the format string */
		abort();
	json_dumpf(doc, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(doc);
}

json_t *
cli_json_str(const char *s)
{
	json_t *j = json_string(s);
	char *copy;

	if (j != NULL)
		return j;
	/* Not UTF-8 (a peer's bytes): keep the ASCII, mark the rest. */
	copy = mc_strdup(s);
	for (char *p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

json_t *
cli_json_u64(uint64_t v)
{
	/* jansson integers are signed 64-bit; ids and versions stay far
	 * below 2^63 in practice. */
	return json_integer((json_int_t)v);
}

const char *
cli_format_quota(uint64_t bytes, char buf[CLI_FMT_SIZE])
{
	if (bytes == 0) {
		snprintf(buf, CLI_FMT_SIZE, "unlimited");
		return buf;
	}
	return cli_format_size(bytes, buf);
}

const char *
cli_format_size(uint64_t bytes, char buf[CLI_FMT_SIZE])
{
	static const char *const units[] = {"B",   "KiB", "MiB", "GiB",
	                                    "TiB", "PiB", "EiB"};
	unsigned u = 0;
	uint64_t div = 1;

	while (u < 6 && bytes / div >= 1024) {
		div *= 1024;
		u++;
	}
	if (bytes % div == 0)
		snprintf(buf, CLI_FMT_SIZE, "%" PRIu64 " %s", bytes / div,
		         units[u]);
	else
		snprintf(buf, CLI_FMT_SIZE, "%.1f %s",
		         (double)bytes / (double)div, units[u]);
	return buf;
}

const char *
cli_format_time(int64_t unix_s, char buf[CLI_FMT_SIZE])
{
	time_t t = (time_t)unix_s;
	struct tm tm;

	if (unix_s <= 0 || localtime_r(&t, &tm) == NULL ||
	    strftime(buf, CLI_FMT_SIZE, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, CLI_FMT_SIZE, "-");
	return buf;
}

const char *
cli_format_age(int64_t now_ms, int64_t then_ms, char buf[CLI_FMT_SIZE])
{
	int64_t age = now_ms - then_ms;

	if (then_ms <= 0) {
		snprintf(buf, CLI_FMT_SIZE, "never");
		return buf;
	}
	if (age < 0) /* clocks of controller and mailctl differ slightly */
		age = 0;
	if (age < 10 * 1000)
		snprintf(buf, CLI_FMT_SIZE, "%.1fs ago", (double)age / 1000.0);
	else if (age < 120 * 1000)
		snprintf(buf, CLI_FMT_SIZE, "%" PRId64 "s ago", age / 1000);
	else if (age < 120 * 60 * 1000)
		snprintf(buf, CLI_FMT_SIZE, "%" PRId64 "m ago", age / 60000);
	else if (age < 48 * 3600 * 1000LL)
		snprintf(buf, CLI_FMT_SIZE, "%" PRId64 "h ago", age / 3600000);
	else
		snprintf(buf, CLI_FMT_SIZE, "%" PRId64 "d ago", age / 86400000);
	return buf;
}

int64_t
cli_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
cli_table_init(struct cli_table *t, size_t ncols, const char *const *headers)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->headers = headers;
}

void
cli_table_add(struct cli_table *t, ...)
{
	va_list ap;

	t->cells = mc_realloc(t->cells,
	                      (t->nrows + 1) * t->ncols * sizeof(*t->cells));
	va_start(ap, t);
	for (size_t c = 0; c < t->ncols; c++) {
		const char *s = va_arg(ap, const char *);

		t->cells[t->nrows * t->ncols + c] =
		        mc_strdup(s != NULL ? s : "");
	}
	va_end(ap);
	t->nrows++;
}

static void
print_row(FILE *f, const char *const *cells, const size_t *widths, size_t n)
{
	for (size_t c = 0; c < n; c++) {
		if (c + 1 < n)
			fprintf(f, "%-*s  ", (int)widths[c], cells[c]);
		else
			fprintf(f, "%s\n", cells[c]);
	}
}

void
cli_table_print(const struct cli_table *t, FILE *f)
{
	size_t *widths = mc_calloc(t->ncols, sizeof(*widths));

	for (size_t c = 0; c < t->ncols; c++)
		widths[c] = strlen(t->headers[c]);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t len = strlen(t->cells[r * t->ncols + c]);

			if (len > widths[c])
				widths[c] = len;
		}
	print_row(f, t->headers, widths, t->ncols);
	for (size_t r = 0; r < t->nrows; r++)
		print_row(f, (const char *const *)&t->cells[r * t->ncols],
		          widths, t->ncols);
	if (t->nrows == 0)
		fputs("(none)\n", f);
	free(widths);
}

void
cli_table_fini(struct cli_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

char *
cli_dns_txt(const char *value)
{
	size_t len = strlen(value), cap = 3 * len + 8, o = 0, chunk = 0;
	char *out = mc_malloc(cap);

	out[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		/* One character-string holds 255 octets (RFC 1035 3.3);
		 * resolvers join the strings of one TXT record. */
		if (chunk == 255) {
			memcpy(out + o, "\" \"", 3);
			o += 3;
			chunk = 0;
		}
		if (value[i] == '"' || value[i] == '\\')
			out[o++] = '\\';
		out[o++] = value[i];
		chunk++;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}
