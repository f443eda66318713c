/*
 * fixture.c — the C unit tests' shared fixtures (see fixture.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"

int fx_mkdtemp(char *dir, size_t cap, const char *prefix)
{
	int n = snprintf(dir, cap, "/tmp/%s-XXXXXX", prefix);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return mkdtemp(dir) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int fx_rmtree(const char *dir)
{
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) ? -1 : 0;
}

const char *fx_path(const char *dir, const char *name)
{
	static char bufs[8][512];
	static unsigned next;
	char *b = bufs[next++ % 8];
	snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
	return b;
}

void fx_write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	if (!fp)
		fail_msg("%s: %s", path, strerror(errno));
	if (len)
		assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

uint8_t *fx_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	size_t n = (size_t)st.st_size;
	uint8_t *buf = malloc(n ? n : 1);
	assert_non_null(buf);
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
	close(fd);
	*len = n;
	return buf;
}

ibstore_writer *fx_fill(const char *path, const fx_dataset *d)
{
	ibstore_writer_opts o;
	if (d->opts) {
		o = *d->opts;
	} else {
		ibstore_writer_opts_init(&o);
		o.fsync = 0;
	}
	ibstore_writer *w;
	int rc = ibstore_writer_create(path, &o, &w);
	if (rc)
		fail_msg("create %s: %s", path, ibstore_writer_errmsg(w));
	uint8_t *buf = malloc(d->max_len ? d->max_len : 1);
	assert_non_null(buf);
	char key[256];
	for (uint64_t i = 0; i < d->samples; i++) {
		size_t len = d->payload(i, buf);
		assert_true(len <= d->max_len);
		if (d->key)
			d->key(i, key, sizeof key);
		uint64_t id;
		rc = ibstore_writer_add(w, buf, len, d->label ? d->label(i) : IBSTORE_NO_LABEL,
					d->key ? key : NULL, &id);
		if (rc)
			fail_msg("add %llu: %s", (unsigned long long)i, ibstore_writer_errmsg(w));
		assert_int_equal(id, i);
	}
	free(buf);
	return w;
}

void fx_publish(ibstore_writer *w)
{
	int rc = ibstore_writer_publish(w);
	if (rc)
		fail_msg("publish: %s", ibstore_writer_errmsg(w));
	ibstore_writer_free(w);
}

void fx_make_dataset(const char *path, const fx_dataset *d)
{
	fx_publish(fx_fill(path, d));
}
