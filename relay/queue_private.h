/* Internals shared by the queue's source files (queue.c writes the spool,
 * queue_load.c reads it); not for other modules, which use queue.h. */
#ifndef RELAY_QUEUE_PRIVATE_H
#define RELAY_QUEUE_PRIVATE_H

#include <stdatomic.h>

#include "queue.h"

/* Appends are gathered into writes of this size (the SMTP layer hands
 * over a line or a read buffer at a time); reads use it too. */
#define RELAY_QUEUE_IO_BUF (64 * 1024)

struct relay_queue {
	char *dir;
	int dir_fd, lock_fd, incoming_fd, queue_fd, corrupt_fd;
	uint64_t max_size;
	int64_t (*clock_us)(void);
	_Atomic uint64_t last_us; /* time part of the newest id issued */
	atomic_int open_msgs;     /* begun, not yet committed or aborted */
};

/* The kinds of file names in the spool: "<id>.msg", "<id>.env",
 * "<id>.env.tmp", anything else. */
enum relay_queue_name {
	RELAY_QUEUE_NAME_OTHER,
	RELAY_QUEUE_NAME_MSG,
	RELAY_QUEUE_NAME_ENV,
	RELAY_QUEUE_NAME_TMP,
};

#define RELAY_QUEUE_NAME_SIZE (RELAY_QUEUE_ID_SIZE + 8)

/* "<id><suffix>" into out (RELAY_QUEUE_NAME_SIZE bytes). */
void relay_queue_file_name(char *out, const char *id,
                           enum relay_queue_name kind);
/* The kind of name, and its id in id_r unless OTHER. */
enum relay_queue_name relay_queue_name_parse(const char *name,
                                             char id_r[RELAY_QUEUE_ID_SIZE]);
/* The entries of directory fd (named what in errors), sorted; free them
 * with relay_queue_names_free. */
int relay_queue_list_dir(const struct relay_queue *q, int fd, const char *what,
                         char ***names_r, size_t *n_r, const char **error_r);
void relay_queue_names_free(char **names, size_t n);
/* fsync directory fd (named what in errors). */
int relay_queue_fsync_dir(const struct relay_queue *q, int fd, const char *what,
                          const char **error_r);

#endif
