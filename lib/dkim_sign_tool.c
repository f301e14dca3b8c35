/* A command-line front end to lib/dkim for tests (built, not installed):
 * the integration test tests/integration/test_dkim_verify.py makes keys
 * and signs messages with it, then checks the signatures with an
 * independent verifier (dkimpy).
 *
 *   dkim_sign_tool keygen ALG [BITS] KEYFILE
 *       write a new private key (PEM, mode 0600) to KEYFILE and print the
 *       TXT record for it ("v=DKIM1; k=...; p=...")
 *   dkim_sign_tool pubkey ALG KEYFILE
 *       print the p= value for the private key in KEYFILE
 *   dkim_sign_tool sign [-t TIME] [-x SECONDS] [-i AUID] [-q] [-l LIST]
 *                       DOMAIN:SELECTOR:ALG:KEYFILE... < MESSAGE
 *       print the DKIM-Signature fields, one per key, then the message as
 *       it was read (TIME defaults to the clock; -l is an explicit h=)
 *
 * ALG is rsa or ed25519. Exit status 0, 1 on error (reason on stderr), 2
 * on a usage error. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dkim.h"
#include "fileio.h"
#include "mem.h"
#include "strbuf.h"

/* Messages larger than this are not what the tests feed. */
#define MAX_MESSAGE (64u * 1024 * 1024)

static int
usage(void)
{
	fprintf(stderr,
	        "usage: dkim_sign_tool keygen rsa|ed25519 [BITS] KEYFILE\n"
	        "       dkim_sign_tool pubkey rsa|ed25519 KEYFILE\n"
	        "       dkim_sign_tool sign [-t TIME] [-x SECONDS] [-i AUID] "
	        "[-q] [-l LIST]\n"
	        "                      DOMAIN:SELECTOR:ALG:KEYFILE... < "
	        "MESSAGE\n");
	return 2;
}

/* All of f into b, at most max octets; -1 when larger or on error. */
static int
read_all(FILE *f, struct mc_strbuf *b, size_t max)
{
	char chunk[65536];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b->len + n > max)
			return -1;
		mc_strbuf_add(b, chunk, n);
	}
	return ferror(f) ? -1 : 0;
}

static char *
read_key(const char *path)
{
	struct mc_strbuf b = {0};
	FILE *f = fopen(path, "rb");

	if (f == NULL) {
		fprintf(stderr, "dkim_sign_tool: %s: %s\n", path,
		        strerror(errno));
		return NULL;
	}
	if (read_all(f, &b, MC_DKIM_MAX_PEM) < 0 || b.len == 0) {
		fprintf(stderr, "dkim_sign_tool: %s: unreadable or too large\n",
		        path);
		fclose(f);
		mc_strbuf_fini(&b);
		return NULL;
	}
	fclose(f);
	return mc_strbuf_steal(&b);
}

static void
free_key(char *pem)
{
	if (pem != NULL)
		mc_wipe(pem, strlen(pem));
	free(pem);
}

static int
parse_alg(const char *s, enum mc_dkim_alg *alg_r)
{
	if (!mc_dkim_alg_from_name(s, alg_r)) {
		fprintf(stderr, "dkim_sign_tool: unknown algorithm %s\n", s);
		return -1;
	}
	return 0;
}

static int
cmd_keygen(int argc, char **argv)
{
	enum mc_dkim_alg alg;
	unsigned bits = 0;
	char *pem, *pub, *record;
	const char *error, *path;
	int fd, ret = 1;

	if (argc != 3 && argc != 4)
		return usage();
	if (parse_alg(argv[1], &alg) < 0)
		return 2;
	if (argc == 4)
		bits = (unsigned)strtoul(argv[2], NULL, 10);
	path = argv[argc - 1];
	if (mc_dkim_keygen(alg, bits, &pem, &pub, &error) < 0) {
		fprintf(stderr, "dkim_sign_tool: %s\n", error);
		return 1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || mc_write_all(fd, pem, strlen(pem)) < 0) {
		fprintf(stderr, "dkim_sign_tool: %s: %s\n", path,
		        strerror(errno));
	} else if ((record = mc_dkim_dns_record(alg, pub)) != NULL) {
		printf("%s\n", record);
		free(record);
		ret = 0;
	}
	if (fd >= 0)
		close(fd);
	free_key(pem);
	free(pub);
	return ret;
}

static int
cmd_pubkey(int argc, char **argv)
{
	enum mc_dkim_alg alg;
	const char *error;
	char *pem, *pub;

	if (argc != 3)
		return usage();
	if (parse_alg(argv[1], &alg) < 0)
		return 2;
	if ((pem = read_key(argv[2])) == NULL)
		return 1;
	if (mc_dkim_public_key(alg, pem, &pub, &error) < 0) {
		fprintf(stderr, "dkim_sign_tool: %s: %s\n", argv[2], error);
		free_key(pem);
		return 1;
	}
	printf("%s\n", pub);
	free(pub);
	free_key(pem);
	return 0;
}

/* "DOMAIN:SELECTOR:ALG:KEYFILE" into *key (strings point into spec, which
 * is modified; the PEM is read into a heap string). */
static int
parse_key(char *spec, struct mc_dkim_key *key)
{
	char *f[4];

	f[0] = spec;
	for (int i = 1; i < 4; i++) {
		char *c = strchr(f[i - 1], ':');

		if (c == NULL)
			return usage();
		*c = '\0';
		f[i] = c + 1;
	}
	key->domain = f[0];
	key->selector = f[1];
	if (parse_alg(f[2], &key->alg) < 0)
		return 2;
	if ((key->private_pem = read_key(f[3])) == NULL)
		return 1;
	return 0;
}

static int
cmd_sign(int argc, char **argv)
{
	struct mc_dkim_options opts = {0};
	struct mc_dkim_key keys[MC_DKIM_MAX_KEYS];
	struct mc_strbuf msg = {0}, out = {0};
	int64_t now = (int64_t)time(NULL);
	size_t nkeys = 0;
	const char *error;
	int opt, ret = 1;

	optind = 1;
	while ((opt = getopt(argc, argv, "t:x:i:ql:")) != -1) {
		switch (opt) {
		case 't':
			now = strtoll(optarg, NULL, 10);
			break;
		case 'x':
			opts.expire = strtoll(optarg, NULL, 10);
			break;
		case 'i':
			opts.identity = optarg;
			break;
		case 'q':
			opts.query_method = true;
			break;
		case 'l':
			opts.header_list = optarg;
			break;
		default:
			return usage();
		}
	}
	if (optind == argc || argc - optind > (int)MC_DKIM_MAX_KEYS)
		return usage();
	for (; optind < argc; optind++) {
		int r = parse_key(argv[optind], &keys[nkeys]);

		if (r != 0) {
			ret = r;
			goto done;
		}
		nkeys++;
	}
	if (read_all(stdin, &msg, MAX_MESSAGE) < 0) {
		fprintf(stderr, "dkim_sign_tool: cannot read the message\n");
		goto done;
	}
	if (mc_dkim_sign(msg.data, msg.len, keys, nkeys, &opts, now, &out,
	                 &error) < 0) {
		fprintf(stderr, "dkim_sign_tool: %s\n", error);
		goto done;
	}
	if (fwrite(out.data, 1, out.len, stdout) != out.len ||
	    (msg.len > 0 && fwrite(msg.data, 1, msg.len, stdout) != msg.len) ||
	    fflush(stdout) != 0) {
		fprintf(stderr, "dkim_sign_tool: writing: %s\n",
		        strerror(errno));
		goto done;
	}
	ret = 0;
done:
	for (size_t i = 0; i < nkeys; i++)
		free_key((char *)keys[i].private_pem);
	mc_strbuf_fini(&msg);
	mc_strbuf_fini(&out);
	return ret;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc - 1, argv + 1);
	if (strcmp(argv[1], "pubkey") == 0)
		return cmd_pubkey(argc - 1, argv + 1);
	if (strcmp(argv[1], "sign") == 0)
		return cmd_sign(argc - 1, argv + 1);
	return usage();
}
