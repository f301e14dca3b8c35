/* mailctl argument checks done before anything is sent: domain names and
 * addresses through lib/addr (the controller checks again; it never trusts
 * the CLI), normalised the way the controller stores them so that what the
 * operator sees echoed back matches. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "addr.h"

int
cli_check_domain(const struct cli *cli, const char *in,
                 char out[MC_DOMAIN_MAX + 1])
{
	if (strlen(in) > MC_DOMAIN_MAX || !mc_addr_domain_valid(in))
		return cli_usage_error(cli,
		                       "invalid domain '%s': expected a "
		                       "name like example.org (letters, digits "
		                       "and '-' in dot-separated labels, IDNs "
		                       "as xn--)",
		                       in);
	snprintf(out, MC_DOMAIN_MAX + 1, "%s", in);
	mc_addr_lower(out);
	return CLI_EXIT_OK;
}

int
cli_check_address(const struct cli *cli, const char *what, const char *in,
                  bool allow_wildcard, char out[MC_ADDR_MAX + 1])
{
	char local[MC_LOCAL_MAX + 1], domain[MC_DOMAIN_MAX + 1];
	const char *error;

	if (mc_addr_parse(in, allow_wildcard, local, domain, &error) < 0)
		return cli_usage_error(cli, "invalid %s '%s': %s", what, in,
		                       error);
	/* mc_addr_parse checked the whole address fits MC_ADDR_MAX. */
	if (snprintf(out, MC_ADDR_MAX + 1, "%s@%s", local, domain) >
	    MC_ADDR_MAX)
		return cli_usage_error(cli, "invalid %s '%s': too long", what,
		                       in);
	return CLI_EXIT_OK;
}
