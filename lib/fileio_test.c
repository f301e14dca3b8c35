/* Unit tests for the durable-file helpers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "test.h"

int
main(void)
{
	char dir[] = "/tmp/mc-fileio-XXXXXX", path[64], sub[80], buf[16];
	int fd;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0 && mc_write_all(fd, "hello", 5) == 0);
	close(fd);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 5 && memcmp(buf, "hello", 5) == 0);
	close(fd);
	CHECK(mc_write_all(-1, "x", 1) == -1 && errno == EBADF);
	CHECK(mc_fsync_dir(dir) == 0);
	CHECK(mc_fsync_dir(path) == -1 && errno == ENOTDIR);
	CHECK(mc_fsync_parent(path) == 0);
	snprintf(sub, sizeof(sub), "%s/", dir); /* trailing slash: parent of dir */
	CHECK(mc_fsync_parent(sub) == 0);
	CHECK(mc_fsync_parent("relative-name") == 0); /* "." */
	CHECK(mc_fsync_parent("/no/such/dir/f") == -1 && errno == ENOENT);
	unlink(path);
	rmdir(dir);
	return mc_test_done();
}
