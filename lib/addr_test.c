/* Unit tests for address and domain validation: tables of valid and
 * invalid domains, local parts and addresses, with the boundary lengths. */
#include <stdlib.h>

#include "addr.h"
#include "test.h"

/* A string of n copies of c, plus suffix; heap, freed by the caller. */
static char *
rep(char c, size_t n, const char *suffix)
{
	size_t slen = strlen(suffix);
	char *s = malloc(n + slen + 1);

	memset(s, c, n);
	memcpy(s + n, suffix, slen + 1);
	return s;
}

/* Labels of 63 'a's joined by dots, then filled to exactly len chars with
 * a last label of 'b's (len >= 66). */
static char *
domain_of_len(size_t len)
{
	char *s = malloc(len + 1);
	size_t pos = 0;

	while (len - pos > 64 + 3) {
		memset(s + pos, 'a', 63);
		pos += 63;
		s[pos++] = '.';
	}
	memset(s + pos, 'b', len - pos);
	if (len - pos > 63) {
		/* split the tail in two labels */
		s[pos + 30] = '.';
	}
	s[len] = '\0';
	return s;
}

static void
test_domains(void)
{
	static const char *const good[] = {
		"example.com", "a.b", "mail.example.co.uk", "x-y.example",
		"EXAMPLE.COM", "1.example.com", "123.example.c0m",
		"xn--bcher-kva.example", "a1.b2", "foo.museum",
	};
	static const char *const bad[] = {
		"", "com", "localhost", "example.com.", ".example.com",
		"example..com", "-example.com", "example-.com", "ex ample.com",
		"exa_mple.com", "1.2.3.4", "example.123", "b\xc3\xbc" "cher.de",
		"example.com\n", "@example.com", "ex@mple.com", "example.-com",
		"example.com-", "[127.0.0.1]",
	};
	char *s;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!mc_addr_domain_valid(good[i]))
			fprintf(stderr, "expected valid: '%s'\n", good[i]);
		CHECK(mc_addr_domain_valid(good[i]));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (mc_addr_domain_valid(bad[i]))
			fprintf(stderr, "expected invalid: '%s'\n", bad[i]);
		CHECK(!mc_addr_domain_valid(bad[i]));
	}
	CHECK(!mc_addr_domain_valid(NULL));

	/* label lengths 63 / 64 */
	s = rep('a', 63, ".com");
	CHECK(mc_addr_domain_valid(s));
	free(s);
	s = rep('a', 64, ".com");
	CHECK(!mc_addr_domain_valid(s));
	free(s);
	s = rep('a', 63, "");
	CHECK(!mc_addr_domain_valid(s)); /* one label */
	free(s);

	/* total lengths 253 / 254 */
	s = domain_of_len(253);
	CHECK(strlen(s) == 253 && mc_addr_domain_valid(s));
	free(s);
	s = domain_of_len(254);
	CHECK(strlen(s) == 254 && !mc_addr_domain_valid(s));
	free(s);
}

static void
test_locals(void)
{
	static const char *const good[] = {
		"a", "john.doe", "John.Doe", "a+tag", "!#$%&'*+-/=?^_`{|}~",
		"x.y.z", "0", "user-name", "a*b", "**",
	};
	static const char *const bad[] = {
		"", ".a", "a.", "a..b", "a b", "a\"b", "\"quoted\"",
		"\"a b\"", "a@b", "a(b)", "a,b", "a:b", "a;b", "a<b>", "a[b]",
		"a\\b", "*", "\xc3\xa9t\xc3\xa9", "a\tb", ".",
	};
	char *s;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!mc_addr_local_valid(good[i]))
			fprintf(stderr, "expected valid: '%s'\n", good[i]);
		CHECK(mc_addr_local_valid(good[i]));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (mc_addr_local_valid(bad[i]))
			fprintf(stderr, "expected invalid: '%s'\n", bad[i]);
		CHECK(!mc_addr_local_valid(bad[i]));
	}
	CHECK(!mc_addr_local_valid(NULL));
	s = rep('a', 64, "");
	CHECK(mc_addr_local_valid(s));
	free(s);
	s = rep('a', 65, "");
	CHECK(!mc_addr_local_valid(s));
	free(s);
}

struct parse_case {
	const char *address;
	bool wildcard;
	const char *local;  /* NULL: must fail */
	const char *domain; /* or a substring of the error when failing */
};

static void
test_parse_table(void)
{
	static const struct parse_case cases[] = {
		{"alice@example.com", false, "alice", "example.com"},
		{"Alice.Smith@EXAMPLE.Com", false, "Alice.Smith", "example.com"},
		{"a+b@x.example", false, "a+b", "x.example"},
		{"*@example.com", true, "*", "example.com"},
		{"*@Example.COM", true, "*", "example.com"},
		{"*@example.com", false, NULL, "catch-all"},
		{"", false, NULL, "empty address"},
		{"alice", false, NULL, "missing '@'"},
		{"alice@", false, NULL, "empty domain"},
		{"@example.com", false, NULL, "empty local part"},
		{"a@b@example.com", false, NULL, "invalid local part 'a@b'"},
		{"a@b@example.com", true, NULL, "invalid local part"},
		{"alice@example", false, NULL, "invalid domain 'example'"},
		{"alice@example.com.", false, NULL, "invalid domain"},
		{"alice@-x.com", false, NULL, "invalid domain"},
		{"al ice@example.com", false, NULL, "invalid local part"},
		{"\"alice\"@example.com", false, NULL, "invalid local part"},
		{".alice@example.com", false, NULL, "invalid local part"},
		{"a..b@example.com", false, NULL, "invalid local part"},
		{"*x@example.com", false, "*x", "example.com"},
		{"**@example.com", true, "**", "example.com"},
		{"a@example.c\xc3\xb6m", false, NULL, "invalid domain 'example.c??m'"},
		{"a\n@example.com", false, NULL, "invalid local part 'a?'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		char local[MC_LOCAL_MAX + 1] = "", domain[MC_DOMAIN_MAX + 1] = "";
		const char *err = NULL;
		int ret = mc_addr_parse(c->address, c->wildcard, local, domain,
		                        &err);

		if (c->local != NULL) {
			if (ret != 0)
				fprintf(stderr, "case %zu '%s': %s\n", i,
				        c->address, err);
			CHECK(ret == 0);
			CHECK_STR(local, c->local);
			CHECK_STR(domain, c->domain);
		} else {
			CHECK(ret == -1);
			CHECK(err != NULL && strstr(err, c->domain) != NULL);
			if (err != NULL && strstr(err, c->domain) == NULL)
				fprintf(stderr, "case %zu: error '%s'\n", i, err);
			/* outputs untouched on failure */
			CHECK(local[0] == '\0' && domain[0] == '\0');
		}
	}
}

static void
test_parse_lengths(void)
{
	char local[MC_LOCAL_MAX + 1], domain[MC_DOMAIN_MAX + 1];
	const char *err = NULL;
	char *s, *d;
	size_t dlen;

	/* local part 64 / 65 */
	s = rep('l', 64, "@example.com");
	CHECK(mc_addr_parse(s, false, local, domain, &err) == 0);
	CHECK(strlen(local) == 64);
	free(s);
	s = rep('l', 65, "@example.com");
	CHECK(mc_addr_parse(s, false, local, domain, &err) == -1);
	CHECK(strstr(err, "local part longer") != NULL);
	free(s);

	/* total 254 / 255: 64-char local, '@', domain of 189 / 190 */
	dlen = MC_ADDR_MAX - 64 - 1;
	d = domain_of_len(dlen);
	s = rep('l', 64, "@");
	s = realloc(s, 64 + 1 + dlen + 1);
	strcat(s, d);
	CHECK(strlen(s) == 254);
	CHECK(mc_addr_parse(s, false, local, domain, &err) == 0);
	CHECK_STR(domain, d);
	free(s);
	free(d);
	d = domain_of_len(dlen + 1);
	s = rep('l', 64, "@");
	s = realloc(s, 64 + 1 + dlen + 2);
	strcat(s, d);
	CHECK(strlen(s) == 255);
	CHECK(mc_addr_parse(s, false, local, domain, &err) == -1);
	CHECK(strstr(err, "longer than 254") != NULL);
	free(s);
	free(d);

	/* a very long hostile input is rejected on length alone */
	s = rep('x', 100000, "@example.com");
	CHECK(mc_addr_parse(s, false, local, domain, &err) == -1);
	free(s);
	CHECK(mc_addr_parse(NULL, false, local, domain, &err) == -1);
}

static void
test_lower(void)
{
	char s[] = "MiXeD.Case-123@EXAMPLE.com\xc3\x89";

	CHECK(mc_addr_lower(s) == s);
	CHECK_STR(s, "mixed.case-123@example.com\xc3\x89");
}

int
main(void)
{
	test_domains();
	test_locals();
	test_parse_table();
	test_parse_lengths();
	test_lower();
	return mc_test_done();
}
