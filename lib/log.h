/* Logging: one line per event to stderr, "ts level=L prog=P msg key=value".
 * Thread-safe (one fprintf per line). Never log secrets. */
#ifndef MC_LOG_H
#define MC_LOG_H

enum mc_log_level { MC_LOG_DEBUG, MC_LOG_INFO, MC_LOG_WARN, MC_LOG_ERROR };

/* Set the program name and minimum level; call once at startup. */
void mc_log_init(const char *prog, enum mc_log_level level);
/* Parse "debug|info|warn|error"; returns -1 for anything else. */
int mc_log_level_parse(const char *s, enum mc_log_level *level_r);
void mc_log(enum mc_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define mc_debug(...) mc_log(MC_LOG_DEBUG, __VA_ARGS__)
#define mc_info(...) mc_log(MC_LOG_INFO, __VA_ARGS__)
#define mc_warn(...) mc_log(MC_LOG_WARN, __VA_ARGS__)
#define mc_error(...) mc_log(MC_LOG_ERROR, __VA_ARGS__)

#endif
