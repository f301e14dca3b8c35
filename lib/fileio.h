/* Small durable-file helpers shared by everything that writes files that
 * must survive a crash (the relay's queue, the blob store's file backend,
 * directory.json): complete writes and directory fsyncs. Blocking: worker
 * threads or startup only. errno is preserved on failure. */
#ifndef MC_FILEIO_H
#define MC_FILEIO_H

#include <stddef.h>

/* write() all of data, retrying short writes and EINTR. 0 or -1. */
int mc_write_all(int fd, const void *data, size_t len);
/* fsync a directory, making the entries created or renamed in it durable.
 * 0 or -1. */
int mc_fsync_dir(const char *dir);
/* fsync the directory holding path (trailing slashes ignored; "." for a
 * bare name). 0 or -1. */
int mc_fsync_parent(const char *path);

#endif
