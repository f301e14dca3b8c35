/* Unit tests for mailctl's pure parts: option parsing, sizes, output
 * formats, password line reading and hashing. */
#include "cli.h"

#include "test.h"

int
main(void)
{
	return mc_test_done();
}
