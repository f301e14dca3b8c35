/* placeholder */
#include "test.h"
int
main(void)
{
	return mc_test_done();
}
