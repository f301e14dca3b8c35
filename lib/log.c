/* key=value logging to stderr; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *log_prog = "mc";
static enum mc_log_level log_min = MC_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
mc_log_init(const char *prog, enum mc_log_level level)
{
	log_prog = prog;
	log_min = level;
}

int
mc_log_level_parse(const char *s, enum mc_log_level *level_r)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*level_r = (enum mc_log_level)i;
			return 0;
		}
	}
	return -1;
}

void
mc_log(enum mc_log_level level, const char *fmt, ...)
{
	char msg[2048];
	char ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ level=%s prog=%s %s\n", ts,
	        now.tv_nsec / 1000000, level_names[level], log_prog, msg);
}
