/* Unit tests for the SMTP parser (placeholder while being written). */
#include "smtp_parser.h"
#include "test.h"

int
main(void)
{
	return mc_test_done();
}
