/* Delivery status notifications (RFC 3464): the message the relay sends
 * back to a sender when recipients failed permanently (bounce) or, if it
 * chooses, while they are still being retried (delay warning). One call
 * builds the whole message, ready for the queue:
 *
 *   multipart/report; report-type=delivery-status
 *     text/plain                  what happened, for people
 *     message/delivery-status     Reporting-MTA, Original-Envelope-Id,
 *                                 Arrival-Date; per recipient
 *                                 Final-Recipient, Original-Recipient,
 *                                 Action, Status, Remote-MTA,
 *                                 Diagnostic-Code, Last-Attempt-Date,
 *                                 Will-Retry-Until
 *     message/rfc822              the original (RET=FULL, if it fits), or
 *     text/rfc822-headers         its header block (RET=HDRS, no RET, or a
 *                                 message too big or unfit to include)
 *
 * with From: MAILER-DAEMON@<reporting MTA>, Auto-Submitted: auto-replied
 * (RFC 3834), Date, Message-ID, CRLF line ends, no line over 998 octets
 * and a random boundary checked against every part.
 *
 * The caller sends it with the null envelope sender (MAIL FROM:<>) to the
 * original envelope sender, so a DSN can never cause another. It must
 * never send one for a message whose own sender was null:
 * mc_dsn_allowed() is that check, and mc_dsn_build refuses such input.
 *
 * Pure: no I/O except the random bytes for the boundary and Message-ID.
 * Any thread. */
#ifndef MC_DSN_H
#define MC_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this much of the original is included unless the caller says
 * otherwise (Postfix's bounce_size_limit is 50 000). */
#define MC_DSN_MAX_ORIGINAL_DEFAULT (100u * 1024)

enum mc_dsn_action {
	MC_DSN_FAILED = 0,
	MC_DSN_DELAYED,
	MC_DSN_DELIVERED,
	MC_DSN_RELAYED,
	MC_DSN_EXPANDED,
};

/* What of the original to return (RFC 3461 RET). NONE (no RET given)
 * returns the headers, like Postfix. */
enum mc_dsn_ret {
	MC_DSN_RET_NONE = 0,
	MC_DSN_RET_FULL,
	MC_DSN_RET_HDRS,
};

struct mc_dsn_rcpt {
	const char *address; /* the address delivery was tried to */
	/* The RCPT's ORCPT as "addr-type;xtext" (RFC 3461 4.2, as the relay
	 * queue stores it); NULL or "": no Original-Recipient. */
	const char *orcpt;
	enum mc_dsn_action action;
	/* RFC 3463 code "4.2.2"; NULL or malformed: X.0.0 with X from the
	 * action (5 failed, 4 delayed, 2 otherwise). */
	const char *status;
	const char *remote_mta; /* host that answered; NULL: none */
	/* The server's reply code, 0 when the failure was local (timeout,
	 * connection refused...): then there is no Diagnostic-Code and
	 * diagnostic only goes into the text part. */
	unsigned code;
	const char *diagnostic; /* reply text or local reason; may be NULL */
	const char *command;    /* "RCPT TO", ... for "(in reply to ...)" */
	int64_t last_attempt;   /* unix seconds; 0: no Last-Attempt-Date */
	int64_t retry_until;    /* delayed: Will-Retry-Until; 0: none */
};

struct mc_dsn_message {
	const char *reporting_mta; /* our host name (required) */
	/* The original envelope sender: the DSN's To: and envelope
	 * recipient. Required, and never the null sender. */
	const char *sender;
	const char *envid; /* ENVID (xtext); NULL or "": none */
	enum mc_dsn_ret ret;
	int64_t arrival;           /* unix seconds; 0: no Arrival-Date */
	const char *received_from; /* Received-From-MTA; NULL: none */
	const struct mc_dsn_rcpt *rcpts;
	size_t rcpt_count; /* >= 1 */
	/* The original message as stored (CRLF, or bare LF fixed here);
	 * may be an mmap. Only read during the call. */
	const void *original;
	size_t original_size;
	size_t max_original; /* 0: MC_DSN_MAX_ORIGINAL_DEFAULT */
	int64_t now;         /* unix seconds for Date; 0: the clock */
	/* Tests only: a boundary to try first (replaced if it occurs in
	 * the content) and a fixed Message-ID local part; NULL: random. */
	const char *boundary;
	const char *message_id;
};

struct mc_dsn {
	char *data; /* the message, heap; mc_dsn_fini frees it */
	size_t size;
	/* The DSN holds 8-bit text (send with BODY=8BITMIME) / a non-ASCII
	 * address in its header (send with SMTPUTF8). */
	bool eightbit, smtputf8;
	/* Less of the original than RET asked for was included. */
	bool truncated;
};

/* False for the null reverse-path ("" or "<>") or NULL: such a message
 * must never get a DSN (RFC 5321 6.1, RFC 3461 6.1). */
bool mc_dsn_allowed(const char *sender);

/* Whether a recipient's NOTIFY (bits with the values of MC_SMTP_NOTIFY_*
 * in smtp_parser.h: NEVER 1, SUCCESS 2, FAILURE 4, DELAY 8; 0 when RCPT
 * had no NOTIFY) asks for a DSN with this action. No NOTIFY means
 * failures and delays (RFC 3461 4.1 leaves delays to the MTA). */
bool mc_dsn_wanted(unsigned notify, enum mc_dsn_action action);

/* Build the DSN into *dsn_r. -1 with error_r for invalid input (null
 * sender, no recipient, missing reporting_mta, control characters in
 * addresses); nothing to free then. */
int mc_dsn_build(const struct mc_dsn_message *msg, struct mc_dsn *dsn_r,
                 const char **error_r);
/* Free the message; NULL-safe fields, may be called twice. */
void mc_dsn_fini(struct mc_dsn *dsn);

#endif
