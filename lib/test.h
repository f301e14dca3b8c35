/* Minimal unit-test harness: each test binary prints one line per failed
 * check and ends with "N passed, N failed", exiting 1 if anything failed. */
#ifndef MC_TEST_H
#define MC_TEST_H

#include <stdio.h>
#include <string.h>

static int mc_test_passed, mc_test_failed;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (cond) {                                                  \
			mc_test_passed++;                                    \
		} else {                                                     \
			mc_test_failed++;                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,  \
			        __LINE__, #cond);                            \
		}                                                            \
	} while (0)

#define CHECK_STR(a, b)                                                      \
	do {                                                                 \
		const char *a_ = (a), *b_ = (b);                             \
		if (a_ != NULL && b_ != NULL && strcmp(a_, b_) == 0) {       \
			mc_test_passed++;                                    \
		} else {                                                     \
			mc_test_failed++;                                    \
			fprintf(stderr, "%s:%d: '%s' != '%s'\n", __FILE__,      \
			        __LINE__, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
		}                                                            \
	} while (0)

static inline int
mc_test_done(void)
{
	printf("%d passed, %d failed\n", mc_test_passed, mc_test_failed);
	return mc_test_failed == 0 ? 0 : 1;
}

#endif
