/* The libuv loop of a unit test and WAIT(cond, ms): turn it until cond
 * holds or ms pass (a 2 ms tick keeps it turning when nothing else is
 * due). Header-only test code (static); include once, in a test that
 * uv_loop_init(&loop)s and uv_timer_init(&loop, &tick)s at start and
 * closes tick at the end. */
#ifndef MC_TEST_LOOP_H
#define MC_TEST_LOOP_H

#include <stdint.h>

#include <uv.h>

static uv_loop_t loop;
static uv_timer_t tick;

static inline void
tick_cb(uv_timer_t *timer)
{
	(void)timer;
}

#define WAIT(cond, ms)                                                         \
	do {                                                                   \
		uint64_t end_ = uv_now(&loop) + (ms);                          \
		uv_timer_start(&tick, tick_cb, 2, 2);                          \
		while (!(cond) && uv_now(&loop) < end_)                        \
			uv_run(&loop, UV_RUN_ONCE);                            \
		uv_timer_stop(&tick);                                          \
	} while (0)

#endif
