/*
 * fsutil.c — small POSIX file helpers: full reads and writes, directory
 * fsync, removal of a temporary dataset tree.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "internal.h"

int ib_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int ib_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 1;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int ib_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

static void remove_dir_files(const char *path, int depth)
{
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	char sub[PATH_MAX];
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) >= (int)sizeof sub)
			continue;
		struct stat st;
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
			if (depth > 0)
				remove_dir_files(sub, depth - 1);
		} else {
			unlink(sub);
		}
	}
	closedir(d);
	rmdir(path);
}

void ib_remove_tree(const char *path)
{
	remove_dir_files(path, 1);
}

int ib_read_file(const char *path, uint8_t **out, size_t *len, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st)) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	size_t n = (size_t)st.st_size;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	int rc = ib_pread_all(fd, buf, n, 0);
	close(fd);
	if (rc) {
		free(buf);
		return rc < 0 ? rc : -EIO;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* Digest of a whole file, streamed; 0 or -errno. */
int ib_hash_file(const char *path, uint64_t *size, uint64_t *hash)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	XXH3_state_t *st = XXH3_createState();
	size_t cap = 1u << 20;
	uint8_t *buf = malloc(cap);
	int rc = 0;
	uint64_t total = 0;
	if (!st || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	XXH3_64bits_reset(st);
	for (;;) {
		ssize_t n = read(fd, buf, cap);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		XXH3_64bits_update(st, buf, (size_t)n);
		total += (uint64_t)n;
	}
	*size = total;
	*hash = XXH3_64bits_digest(st);
out:
	free(buf);
	XXH3_freeState(st);
	close(fd);
	return rc;
}
