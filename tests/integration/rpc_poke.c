/* rpc_poke: a test tool that speaks to the controller's REQ/REP socket
 * without mailctl, for what mailctl must never do: send raw bytes (garbage,
 * truncated or empty requests) and the test-only DebugDropDeltasReq. It
 * prints the reply as one line, "status=STATUS_X version=N error=TEXT", or
 * "reply=garbage len=N" when the reply does not unpack, and exits 0 when
 * a reply came, 1 when none came in time, 2 for bad usage.
 *
 *   rpc_poke --url URL [--timeout MS] [--token-file F] [--dump] REQUEST
 *   REQUEST: --raw FILE ("-" = stdin) | --status | --domain-list |
 *            --drop-deltas N
 *
 * --dump writes the packed request to stdout instead of sending it, so a
 * test can truncate or corrupt a valid request and send it back with
 * --raw. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "config.h"
#include "error.h"
#include "mem.h"
#include "rpc.h"

/* Larger than MC_RPC_MAX_REQUEST so a test can send an oversized one. */
#define POKE_MAX_RAW (4 * 1024 * 1024)

enum poke_kind {
	POKE_NONE,
	POKE_RAW,
	POKE_STATUS,
	POKE_DOMAIN_LIST,
	POKE_DROP
};

struct poke_opts {
	const char *url;
	const char *token_file;
	const char *raw_path;
	unsigned timeout_ms;
	unsigned drop_count;
	enum poke_kind kind;
	bool dump;
};

static void
usage(void)
{
	fprintf(stderr,
	        "usage: rpc_poke --url URL [--timeout MS] [--token-file F] "
	        "[--dump]\n"
	        "                (--raw FILE|- | --status | --domain-list | "
	        "--drop-deltas N)\n");
	exit(2);
}

static unsigned
parse_uint(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v > 0xffffffffUL)
		usage();
	return (unsigned)v;
}

static void
parse_args(int argc, char **argv, struct poke_opts *o)
{
	o->timeout_ms = 5000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--dump") == 0) {
			o->dump = true;
			continue;
		}
		if (strcmp(a, "--status") == 0) {
			o->kind = POKE_STATUS;
			continue;
		}
		if (strcmp(a, "--domain-list") == 0) {
			o->kind = POKE_DOMAIN_LIST;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--url") == 0) {
			o->url = v;
		} else if (strcmp(a, "--timeout") == 0) {
			o->timeout_ms = parse_uint(v);
		} else if (strcmp(a, "--token-file") == 0) {
			o->token_file = v;
		} else if (strcmp(a, "--raw") == 0) {
			o->kind = POKE_RAW;
			o->raw_path = v;
		} else if (strcmp(a, "--drop-deltas") == 0) {
			o->kind = POKE_DROP;
			o->drop_count = parse_uint(v);
		} else {
			usage();
		}
	}
	if (o->kind == POKE_NONE || (o->url == NULL && !o->dump) ||
	    (o->kind == POKE_RAW && o->dump))
		usage();
}

/* Whole file (or stdin) into a new buffer, at most POKE_MAX_RAW bytes. */
static int
read_raw(const char *path, char **buf_r, size_t *len_r, const char **error_r)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		*error_r = mc_errorf("%s: %s", path, strerror(errno));
		return -1;
	}
	buf = mc_malloc(POKE_MAX_RAW + 1);
	n = fread(buf, 1, POKE_MAX_RAW + 1, f);
	if (f != stdin)
		fclose(f);
	if (n > POKE_MAX_RAW) {
		free(buf);
		*error_r = mc_errorf("%s: larger than %d bytes", path,
		                     POKE_MAX_RAW);
		return -1;
	}
	*buf_r = buf;
	*len_r = n;
	return 0;
}

/* Build the request message: raw bytes verbatim, or a packed Request. */
static int
build_msg(const struct poke_opts *o, nng_msg **msg_r, const char **error_r)
{
	Mc__Request req = MC__REQUEST__INIT;
	Mc__StatusReq status = MC__STATUS_REQ__INIT;
	Mc__DomainListReq dlist = MC__DOMAIN_LIST_REQ__INIT;
	Mc__DebugDropDeltasReq drop = MC__DEBUG_DROP_DELTAS_REQ__INIT;
	char *token = NULL, *raw = NULL;
	size_t len;

	if (o->kind == POKE_RAW) {
		if (read_raw(o->raw_path, &raw, &len, error_r) < 0)
			return -1;
		if (nng_msg_alloc(msg_r, len) != 0)
			abort();
		memcpy(nng_msg_body(*msg_r), raw, len);
		free(raw);
		return 0;
	}
	if (o->token_file != NULL &&
	    mc_secret_read_file(o->token_file, &token, error_r) < 0)
		return -1;
	req.token = token != NULL ? token : "";
	if (o->kind == POKE_STATUS) {
		req.body_case = MC__REQUEST__BODY_STATUS;
		req.status = &status;
	} else if (o->kind == POKE_DOMAIN_LIST) {
		req.body_case = MC__REQUEST__BODY_DOMAIN_LIST;
		req.domain_list = &dlist;
	} else {
		drop.count = o->drop_count;
		req.body_case = MC__REQUEST__BODY_DEBUG_DROP_DELTAS;
		req.debug_drop_deltas = &drop;
	}
	*msg_r = mc_rpc_pack_request(&req);
	mc_secret_free(&token);
	return 0;
}

static void
print_reply(nng_msg *msg)
{
	Mc__Response *resp =
	        mc_rpc_unpack_response(nng_msg_body(msg), nng_msg_len(msg));
	const ProtobufCEnumValue *ev;

	if (resp == NULL) {
		printf("reply=garbage len=%zu\n", nng_msg_len(msg));
		return;
	}
	ev = protobuf_c_enum_descriptor_get_value(&mc__status__descriptor,
	                                          (int)resp->status);
	printf("status=%s version=%llu error=%s\n",
	       ev != NULL ? ev->name : "STATUS_UNKNOWN",
	       (unsigned long long)resp->version,
	       resp->error != NULL ? resp->error : "");
	mc__response__free_unpacked(resp, NULL);
}

/* Send msg (consumed) and print the reply. 0 reply, 1 none in time. */
static int
exchange(const struct poke_opts *o, nng_msg *msg)
{
	nng_socket sock;
	const char *error;
	int rv, ret = 1;

	if ((rv = nng_req0_open(&sock)) != 0) {
		fprintf(stderr, "rpc_poke: %s\n", nng_strerror(rv));
		nng_msg_free(msg);
		return 1;
	}
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, (nng_duration)o->timeout_ms);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, (nng_duration)o->timeout_ms);
	/* One try: a resend would hide that the controller dropped it. */
	nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if (mc_rpc_dial(sock, o->url, NULL, false, &error) < 0) {
		fprintf(stderr, "rpc_poke: %s\n", error);
		nng_msg_free(msg);
		goto fail;
	}
	if ((rv = nng_sendmsg(sock, msg, 0)) != 0) {
		fprintf(stderr, "rpc_poke: send: %s\n", nng_strerror(rv));
		nng_msg_free(msg);
		goto fail;
	}
	if ((rv = nng_recvmsg(sock, &msg, 0)) != 0) {
		printf("no reply: %s\n", nng_strerror(rv));
		goto fail;
	}
	print_reply(msg);
	nng_msg_free(msg);
	ret = 0;
fail:
	nng_close(sock);
	return ret;
}

int
main(int argc, char **argv)
{
	struct poke_opts o = {0};
	const char *error;
	nng_msg *msg;

	parse_args(argc, argv, &o);
	if (build_msg(&o, &msg, &error) < 0) {
		fprintf(stderr, "rpc_poke: %s\n", error);
		return 2;
	}
	if (o.dump) {
		size_t len = nng_msg_len(msg);
		int ok = fwrite(nng_msg_body(msg), 1, len, stdout) == len;

		nng_msg_free(msg);
		return ok ? 0 : 1;
	}
	return exchange(&o, msg);
}
