/* The mailbox store as the IMAP server uses it: mailboxes (list, create,
 * delete, rename, subscribe, status), the selected mailbox's messages and
 * what changed in it since a MODSEQ (for untagged EXISTS / EXPUNGE /
 * FETCH updates, CONDSTORE and QRESYNC), message metadata for FETCH,
 * flag changes, expunge, copy/move and append. Same rules as store.h:
 * blocking libpq on a worker thread, one struct node_store per thread at a
 * time; every write is one fenced transaction (shard + epoch) and bumps
 * the mailbox's HIGHESTMODSEQ once per call: every message it changes
 * (flags, copy target, append) gets that new MODSEQ, and every expunged
 * UID is recorded in the expunged table with it, so a session that knows
 * MODSEQ m learns every change after m from node_store_changes.
 *
 * Mailbox names are stored as the client gave them (modified UTF-7 or
 * UTF-8, hierarchy separator "/"); "INBOX" is matched case-insensitively
 * (callers pass it upper-cased). Every returned array and string is heap
 * memory owned by the caller, freed with the _free functions here.
 *
 * node/store_mailbox.c implements the mailboxes (list, status, usage,
 * create, delete, rename, subscribe); node/store_imap.c the messages
 * (select, changes, fetch, flags, expunge, copy/move). */
#ifndef NODE_STORE_IMAP_H
#define NODE_STORE_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct node_mailbox {
	uint64_t id;
	char *name;
	char *special_use; /* "\\Sent" ... or NULL */
	bool subscribed;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
};

struct node_mailbox_list {
	struct node_mailbox *items; /* sorted by name */
	size_t count;
};

/* One message of the selected mailbox as a session keeps it. */
struct node_msg {
	uint32_t uid;
	uint64_t modseq;
	char *flags; /* space-separated, sorted, "" for none */
};

struct node_msg_list {
	struct node_msg *items; /* ascending UID */
	size_t count;
};

/* Everything FETCH needs without the message bytes. */
struct node_msg_full {
	uint32_t uid;
	uint64_t modseq;
	char *flags;
	uint64_t size;
	int64_t internaldate; /* unix seconds */
	char blob[65];        /* SHA-256 key in the blob store */
	char *imap_envelope;  /* the formatted IMAP ENVELOPE, or NULL */
	char *search_headers; /* node/message.h; only when asked for */
	/* JSON or NULL: only when asked for or without imap_envelope */
	char *envelope;
	char *bodystructure;  /* JSON or NULL (only when asked for) */
};

struct node_mailbox_status {
	uint32_t messages, unseen, deleted;
	uint32_t uidnext, uidvalidity;
	uint64_t highestmodseq;
	uint64_t size; /* octets of all its messages */
};

void node_mailbox_fini(struct node_mailbox *mb);
void node_mailbox_list_free(struct node_mailbox_list *list);
void node_msg_list_free(struct node_msg_list *list);
void node_msg_full_free(struct node_msg_full *rows, size_t count);

/* NODE_STORE_OK, or TEMPFAIL with *error_r. */
enum node_store_result node_store_list_mailboxes(struct node_store *st,
                                                 uint64_t account_id,
                                                 struct node_mailbox_list *list_r,
                                                 const char **error_r);

/* The mailbox and all its messages. NOTFOUND when there is none. */
enum node_store_result node_store_select(struct node_store *st,
                                         uint64_t account_id, const char *name,
                                         struct node_mailbox *mb_r,
                                         struct node_msg_list *msgs_r,
                                         const char **error_r);

/* What changed in mailbox_id after MODSEQ since: its current row
 * (uidnext, highestmodseq), the messages whose MODSEQ is above since
 * (new ones and flag changes, ascending UID) and the UIDs expunged after
 * since (ascending). When mb_r->highestmodseq == since nothing else is
 * read (the cheap common case). NOTFOUND when the mailbox is gone. */
enum node_store_result node_store_changes(struct node_store *st,
                                          uint64_t mailbox_id, uint64_t since,
                                          struct node_mailbox *mb_r,
                                          struct node_msg_list *changed_r,
                                          uint32_t **expunged_r,
                                          size_t *expunged_count_r,
                                          const char **error_r);

#define NODE_FETCH_STRUCTURE 0x1u     /* bodystructure */
#define NODE_FETCH_ENVELOPE_JSON 0x2u /* envelope even with imap_envelope */
#define NODE_FETCH_SEARCH_HEADERS 0x4u

/* Metadata of the listed UIDs that exist (ascending UID; missing ones are
 * left out), with what of NODE_FETCH_*. */
enum node_store_result node_store_fetch(struct node_store *st,
                                        uint64_t mailbox_id,
                                        const uint32_t *uids, size_t count,
                                        unsigned what,
                                        struct node_msg_full **rows_r,
                                        size_t *count_r, const char **error_r);

enum node_flag_op {
	NODE_FLAGS_REPLACE,
	NODE_FLAGS_ADD,
	NODE_FLAGS_REMOVE,
};

/* Change the flags of the listed UIDs (flags: each a flag such as
 * "\\Seen" or a keyword, already validated and in canonical case).
 * unchangedsince (CONDSTORE, 0: no condition): a message whose MODSEQ is
 * above it is not changed and is listed in *failed_r. Messages whose
 * flags really changed get the new MODSEQ and are returned in *changed_r
 * (with their new flags); a message whose flags stay the same is not
 * touched. Fenced. */
enum node_store_result node_store_set_flags(struct node_store *st, uint32_t shard,
                                            uint64_t epoch, uint64_t mailbox_id,
                                            const uint32_t *uids, size_t count,
                                            enum node_flag_op op,
                                            const char *const *flags,
                                            size_t flag_count,
                                            uint64_t unchangedsince,
                                            struct node_msg_list *changed_r,
                                            uint32_t **failed_r,
                                            size_t *failed_count_r,
                                            const char **error_r);

/* Remove the messages flagged \Deleted (only those among uids when uids
 * is not NULL: UID EXPUNGE), record them as expunged, return their UIDs
 * ascending. Fenced. */
enum node_store_result node_store_expunge(struct node_store *st, uint32_t shard,
                                          uint64_t epoch, uint64_t mailbox_id,
                                          const uint32_t *uids, size_t count,
                                          uint32_t **expunged_r,
                                          size_t *expunged_count_r,
                                          const char **error_r);

struct node_copy_result {
	uint32_t uidvalidity; /* of the target */
	uint32_t *src_uids;   /* the UIDs copied, ascending */
	uint32_t *dst_uids;   /* their new UIDs, same order */
	size_t count;
};
void node_copy_result_fini(struct node_copy_result *r);

/* Copy the listed UIDs (those that exist) into target_id, in UID order,
 * keeping flags and INTERNALDATE (the blob is shared). With move, the
 * sources are expunged in the same transaction (recorded as expunged).
 * quota_bytes (0: none): OVERQUOTA when the account's total size would
 * pass it. Fenced. */
enum node_store_result node_store_copy(struct node_store *st, uint32_t shard,
                                       uint64_t epoch, uint64_t account_id,
                                       uint64_t mailbox_id, const uint32_t *uids,
                                       size_t count, uint64_t target_id,
                                       bool move, uint64_t quota_bytes,
                                       struct node_copy_result *r,
                                       const char **error_r);

/* Mailbox management, all fenced except status. */
/* EXISTS when a mailbox of that name exists. */
enum node_store_result node_store_create_mailbox(struct node_store *st,
                                                 uint32_t shard, uint64_t epoch,
                                                 uint64_t account_id,
                                                 const char *name,
                                                 const char *special_use,
                                                 const char **error_r);
/* NOTFOUND when absent. Its messages go with it (their blobs stay for a
 * later garbage collection). INBOX cannot be deleted: the caller refuses. */
enum node_store_result node_store_delete_mailbox(struct node_store *st,
                                                 uint32_t shard, uint64_t epoch,
                                                 uint64_t account_id,
                                                 const char *name,
                                                 const char **error_r);
/* Rename name and every mailbox below it ("old/x" -> "new/x"), each
 * keeping its UIDVALIDITY and messages. Renaming INBOX moves its
 * messages into a new mailbox called to and leaves INBOX empty (RFC 3501
 * 6.3.5). NOTFOUND / EXISTS as fits. */
enum node_store_result node_store_rename_mailbox(struct node_store *st,
                                                 uint32_t shard, uint64_t epoch,
                                                 uint64_t account_id,
                                                 const char *from, const char *to,
                                                 const char **error_r);
enum node_store_result node_store_subscribe(struct node_store *st, uint32_t shard,
                                            uint64_t epoch, uint64_t account_id,
                                            const char *name, bool subscribed,
                                            const char **error_r);
enum node_store_result node_store_status(struct node_store *st,
                                         uint64_t account_id, const char *name,
                                         struct node_mailbox_status *status_r,
                                         const char **error_r);

/* Octets and messages stored for the account in all its mailboxes. */
enum node_store_result node_store_usage(struct node_store *st,
                                        uint64_t account_id, uint64_t *bytes_r,
                                        uint64_t *messages_r,
                                        const char **error_r);

#endif
