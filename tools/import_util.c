/*
 * import_util.c — what every importer shares: the failure message, opening
 * an input file, reading it in full, label text, key buffers and the
 * progress callback's throttle (see import.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errfmt.h"
#include "import.h"

int import_fail(import_ctx *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ib_failv(c->err, c->errlen, code, fmt, ap);
	va_end(ap);
	return code;
}

int import_open(import_ctx *c, int dirfd, const char *dir, const char *name, const char *what,
		int regular, struct stat *st)
{
	const char *sep = dir ? "/" : "";
	if (!dir)
		dir = "";
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return import_fail(c, errno == ENOENT ? IBSTORE_ENOTFOUND : IBSTORE_EIO,
				   "%s%s%s: cannot open: %s", dir, sep, name, strerror(errno));
	int rc = 0;
	if (fstat(fd, st))
		rc = import_fail(c, IBSTORE_EIO, "%s%s%s: cannot stat: %s", dir, sep, name,
				 strerror(errno));
	else if (S_ISDIR(st->st_mode))
		rc = import_fail(c, IBSTORE_EIO, "%s%s%s: is a directory, not %s", dir, sep, name,
				 what);
	else if (regular && !S_ISREG(st->st_mode))
		rc = import_fail(c, IBSTORE_EIO, "%s%s%s: not a regular file, not %s", dir, sep,
				 name, what);
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int import_read_full(import_ctx *c, int fd, void *buf, size_t len, size_t *got,
		     const char *dir, const char *name)
{
	unsigned char *p = buf;
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return import_fail(c, IBSTORE_EIO, "%s%s%s: read failed: %s", dir ? dir : "",
					   dir ? "/" : "", name, strerror(errno));
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got = done;
	return 0;
}

int import_parse_label(const void *text, size_t n, int32_t *out)
{
	const unsigned char *s = text;
	size_t i = 0, end = n;
	while (i < end && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	while (end > i && (s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '\n' ||
			   s[end - 1] == '\r'))
		end--;
	int neg = 0;
	if (i < end && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (i == end)
		return -1;
	long long v = 0;
	for (; i < end; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > 2147483648LL)
			return -1;
	}
	if (neg)
		v = -v;
	if (v > INT32_MAX || v <= INT32_MIN) /* INT32_MIN means "no label" */
		return -1;
	*out = (int32_t)v;
	return 0;
}

const char *import_key(import_ctx *c, import_keybuf *k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return import_fail(c, IBSTORE_EINVAL, "cannot format a key"), NULL;
	size_t need = (size_t)n + 1;
	if (need > k->cap) {
		char *s = realloc(k->s, need);
		if (!s)
			return import_fail(c, IBSTORE_ENOMEM, "out of memory"), NULL;
		k->s = s;
		k->cap = need;
	}
	va_start(ap, fmt);
	vsnprintf(k->s, need, fmt, ap);
	va_end(ap);
	return k->s;
}

void import_total_of_files(import_ctx *c, const char *const *paths, int npaths)
{
	if (!c->total)
		return;
	unsigned long long total = 0;
	for (int i = 0; i < npaths; i++) {
		struct stat st;
		if (stat(paths[i], &st) == 0 && S_ISREG(st.st_mode))
			total += (unsigned long long)st.st_size;
	}
	c->total(c->progress_ctx, total);
}

void import_progress(import_ctx *c, unsigned long long tick, unsigned every,
		     unsigned long long samples, unsigned long long bytes)
{
	if (c->progress && (every <= 1 || tick % every == 0))
		c->progress(c->progress_ctx, samples, bytes);
}
