/* Thread-local ring of error-text buffers; see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

#define MC_ERROR_RING 8
#define MC_ERROR_LEN 512

const char *
mc_errorf(const char *fmt, ...)
{
	static _Thread_local char ring[MC_ERROR_RING][MC_ERROR_LEN];
	static _Thread_local unsigned next;
	char tmp[MC_ERROR_LEN];
	char *buf = ring[next++ % MC_ERROR_RING];
	va_list ap;

	/* Format into tmp first: an argument may be an older ring entry. */
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	snprintf(buf, MC_ERROR_LEN, "%s", tmp);
	return buf;
}
