/* Unit tests for the in-memory directory (being written). */
#include "directory.h"
#include "test.h"

int
main(void)
{
	return mc_test_done();
}
