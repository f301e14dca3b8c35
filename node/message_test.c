/* node_message_analyze (node/message.c): the blob key, and the header
 * lines kept for SEARCH: only Subject/From/To/Cc/Bcc, in order, as they
 * are in the message (folds, case, repeats), ended by an empty line; a
 * last line without CRLF gets one; none when they are not UTF-8 text;
 * the formatted ENVELOPE, none when it is not UTF-8 text. */
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "test.h"

static char *
headers_of(const char *msg, size_t len)
{
	struct node_message_meta m = {0};
	char *hdrs;

	node_message_analyze(msg, len, &m);
	CHECK(strlen(m.key) == MC_BLOB_KEY_LEN && m.envelope_json != NULL &&
	      m.bodystructure_json != NULL);
	hdrs = m.search_headers;
	m.search_headers = NULL;
	node_message_meta_fini(&m);
	return hdrs;
}

static void
check(const char *msg, const char *want)
{
	char *got = headers_of(msg, strlen(msg));

	if (want == NULL) {
		CHECK(got == NULL);
	} else {
		CHECK_STR(got, want);
	}
	free(got);
}

int
main(void)
{
	struct node_message_meta m = {0};

	check("Subject: hi\r\nFrom: <a@b.test>\r\nX-Other: z\r\nTo: c@d.test\r\n"
	      "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\nbody\r\n",
	      "Subject: hi\r\nFrom: <a@b.test>\r\nTo: c@d.test\r\n\r\n");
	/* folds and case kept, repeats kept, Cc and Bcc too */
	check("SUBJECT: one\r\n two\r\nsubject: again\r\ncc: x@y.test\r\n"
	      "Bcc: z@y.test\r\nReply-To: r@y.test\r\n\r\nbody",
	      "SUBJECT: one\r\n two\r\nsubject: again\r\ncc: x@y.test\r\n"
	      "Bcc: z@y.test\r\n\r\n");
	/* LF line ends stay as they are; a header-only message */
	check("Subject: lf\nTo: a@b.test\n\nbody\n", "Subject: lf\nTo: a@b.test\n\r\n");
	check("To: a@b.test\r\nSubject: no body", "To: a@b.test\r\nSubject: no body\r\n\r\n");
	/* none of the fields: just the empty line */
	check("X-A: 1\r\n\r\nbody", "\r\n");
	/* UTF-8 is text; Latin-1 bytes and NUL are not */
	check("Subject: caf\xc3\xa9\r\n\r\n", "Subject: caf\xc3\xa9\r\n\r\n");
	check("Subject: caf\xe9\r\n\r\n", NULL);
	{
		static const char nul[] = "Subject: a\0b\r\n\r\nx";
		char *got = headers_of(nul, sizeof(nul) - 1);

		CHECK(got == NULL);
		free(got);
	}
	/* the key is the SHA-256 of the bytes ("abc", FIPS 180-2) */
	node_message_analyze("abc", 3, &m);
	CHECK_STR(m.key, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	node_message_meta_fini(&m);
	/* the ENVELOPE formatted once, here; none when not UTF-8 text */
	{
		static const char hi[] = "Subject: hi\r\n\r\n";

		node_message_analyze(hi, sizeof(hi) - 1, &m);
	}
	CHECK_STR(m.imap_envelope, "(NIL \"hi\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	node_message_meta_fini(&m);
	{
		static const char latin1[] = "Subject: caf\xe9\r\n\r\n";

		node_message_analyze(latin1, sizeof(latin1) - 1, &m);
	}
	CHECK(m.imap_envelope == NULL && m.envelope_json != NULL);
	node_message_meta_fini(&m);
	return mc_test_done();
}
