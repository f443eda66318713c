/*
 * import_cifar.c — CIFAR-10 / CIFAR-100 binary batch importer.
 *
 * A batch file is a plain sequence of fixed-size records: CIFAR-10 has one
 * label byte then 3072 pixel bytes (3 planes of 32x32, R, G, B), CIFAR-100
 * has a coarse and a fine label byte then the same pixels.  There is no
 * header, so the variant is told by the caller or inferred from file sizes;
 * every file is checked before the first sample is added, so a bad batch
 * fails fast instead of after packing the others.
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

#include "import.h"

#define CIFAR_PIXELS 3072u
#define CIFAR_CHUNK 256u /* records per read */
#define CIFAR_PROGRESS_EVERY 4096u
#define VARIANT_10 1u
#define VARIANT_100 2u

static unsigned record_size(int variant)
{
	return variant == 10 ? 1 + CIFAR_PIXELS : 2 + CIFAR_PIXELS;
}

static int open_batch(import_ctx *c, const char *path, int *fd_out, uint64_t *size_out)
{
	struct stat st;
	int fd = import_open(c, AT_FDCWD, NULL, path, "a CIFAR batch file", 1, &st);
	if (fd < 0)
		return fd;
	if (st.st_size == 0) {
		close(fd);
		return import_fail(c, IBSTORE_EFORMAT, "%s: empty file, no samples", path);
	}
	*fd_out = fd;
	*size_out = (uint64_t)st.st_size;
	return 0;
}

/* Which variants a file of `size` bytes could be (VARIANT_* bits). */
static unsigned fits(uint64_t size)
{
	return (size % record_size(10) == 0 ? VARIANT_10 : 0) |
	       (size % record_size(100) == 0 ? VARIANT_100 : 0);
}

/*
 * Checks every file's size and settles the variant (0 = infer from sizes).
 * Every file must fit the variant; with inference, the one variant all
 * files fit.
 */
static int check_sizes(import_ctx *c, const char *const *paths, int npaths,
		       int *variant)
{
	unsigned common = VARIANT_10 | VARIANT_100;
	int first_of[3] = { -1, -1, -1 }; /* first file fitting only 10 / only 100 */

	for (int i = 0; i < npaths; i++) {
		uint64_t size;
		unsigned m;
		int fd, rc;

		if (!paths[i])
			return import_fail(c, IBSTORE_EINVAL, "import_cifar: path %d is missing", i);
		rc = open_batch(c, paths[i], &fd, &size);
		if (rc)
			return rc;
		close(fd);
		if (*variant != 0) {
			unsigned rs = record_size(*variant);

			if (size % rs != 0)
				return import_fail(c, IBSTORE_ETRUNCATED,
					    "%s: size %llu is not a whole number of %u-byte "
					    "CIFAR-%d records (%llu records and %llu bytes "
					    "over): truncated or not CIFAR-%d", paths[i],
					    (unsigned long long)size, rs, *variant,
					    (unsigned long long)(size / rs),
					    (unsigned long long)(size % rs), *variant);
			continue;
		}
		m = fits(size);
		if (m == 0)
			return import_fail(c, IBSTORE_EFORMAT,
				    "%s: size %llu is a multiple of neither %u (CIFAR-10) nor "
				    "%u (CIFAR-100) bytes: truncated, or pass the variant "
				    "explicitly", paths[i], (unsigned long long)size,
				    record_size(10), record_size(100));
		if (m != (VARIANT_10 | VARIANT_100) && first_of[m] < 0)
			first_of[m] = i;
		common &= m;
	}
	if (*variant != 0)
		return 0;
	if (common == VARIANT_10 || common == VARIANT_100) {
		*variant = common == VARIANT_10 ? 10 : 100;
		return 0;
	}
	if (common == 0)
		return import_fail(c, IBSTORE_EFORMAT,
			    "%s looks like CIFAR-10 but %s like CIFAR-100 (by size); pass "
			    "the variant explicitly", paths[first_of[VARIANT_10]],
			    paths[first_of[VARIANT_100]]);
	return import_fail(c, IBSTORE_EFORMAT,
		    "%s: size fits both CIFAR-10 and CIFAR-100 records; pass the variant "
		    "explicitly", paths[0]);
}

static int check_label(import_ctx *c, const char *path, unsigned long long rec,
		       const unsigned char *r, int variant)
{
	if (variant == 10 && r[0] >= 10)
		return import_fail(c, IBSTORE_EFORMAT,
			    "%s: record %llu: label %u out of range (CIFAR-10 labels are "
			    "0..9)", path, rec, r[0]);
	if (variant == 100 && r[0] >= 20)
		return import_fail(c, IBSTORE_EFORMAT,
			    "%s: record %llu: coarse label %u out of range (CIFAR-100 "
			    "coarse labels are 0..19)", path, rec, r[0]);
	if (variant == 100 && r[1] >= 100)
		return import_fail(c, IBSTORE_EFORMAT,
			    "%s: record %llu: fine label %u out of range (CIFAR-100 fine "
			    "labels are 0..99)", path, rec, r[1]);
	return 0;
}

typedef struct cifar_run {
	import_ctx *c;
	int variant;
	unsigned char *buf;
	unsigned long long samples, bytes_in;
} cifar_run;

static int import_batch(cifar_run *r, const char *path)
{
	import_ctx *c = r->c;
	unsigned rs = record_size(r->variant);
	unsigned long long rec = 0;
	uint64_t size;
	int fd;

	int rc = open_batch(c, path, &fd, &size);
	if (rc)
		return rc;
	if (size % rs != 0) {
		rc = import_fail(c, IBSTORE_ETRUNCATED, "%s: size changed to %llu during import",
			  path, (unsigned long long)size);
		goto fail;
	}
	unsigned long long nrec = size / rs;
	while (rec < nrec) {
		unsigned long long k = nrec - rec < CIFAR_CHUNK ? nrec - rec : CIFAR_CHUNK;
		size_t want = (size_t)k * rs, got = 0;

		rc = import_read_full(c, fd, r->buf, want, &got, NULL, path);
		if (rc)
			goto fail;
		if (got < want) {
			rc = import_fail(c, IBSTORE_ETRUNCATED,
				  "%s: file ends inside record %llu (it shrank during import)",
				  path, rec + got / rs);
			goto fail;
		}
		for (unsigned long long j = 0; j < k; j++, rec++) {
			const unsigned char *p = r->buf + j * rs;
			int32_t label = r->variant == 10 ? p[0] : p[1];

			rc = check_label(c, path, rec, p, r->variant);
			if (rc)
				goto fail;
			rc = ibstore_writer_add(c->w, p + (rs - CIFAR_PIXELS), CIFAR_PIXELS,
						label, NULL, NULL);
			if (rc) {
				rc = import_fail(c, rc, "%s: record %llu: %s", path, rec,
					  ibstore_writer_errmsg(c->w));
				goto fail;
			}
			r->samples++;
			r->bytes_in += rs;
			import_progress(c, r->samples, CIFAR_PROGRESS_EVERY, r->samples, r->bytes_in);
		}
	}
fail:
	close(fd);
	return rc;
}

int import_cifar(import_ctx *c, const char *const *paths, int npaths, int variant)
{
	cifar_run r = { .c = c };

	if (!c || !c->w)
		return IBSTORE_EINVAL;
	if (!paths || npaths <= 0)
		return import_fail(c, IBSTORE_EFORMAT, "import_cifar: no input files, no samples");
	if (variant && variant != 10 && variant != 100)
		return import_fail(c, IBSTORE_EINVAL,
			    "import_cifar: variant %d: must be 10, 100 or 0 (detect)",
			    variant);

	int rc = check_sizes(c, paths, npaths, &variant);
	if (rc)
		return rc;
	r.variant = variant;
	r.buf = malloc((size_t)CIFAR_CHUNK * record_size(variant));
	if (!r.buf)
		return import_fail(c, IBSTORE_ENOMEM, "import_cifar: out of memory");

	rc = ibstore_writer_set_attr(c->w, "source", variant == 10 ? "cifar10" : "cifar100");
	if (!rc)
		rc = ibstore_writer_set_attr(c->w, "shape", "3x32x32");
	if (rc) {
		rc = import_fail(c, rc, "%s: %s", paths[0], ibstore_writer_errmsg(c->w));
		goto fail;
	}
	for (int i = 0; i < npaths; i++) {
		rc = import_batch(&r, paths[i]);
		if (rc)
			goto fail;
	}
	import_progress(c, 0, 1, r.samples, r.bytes_in);
fail:
	free(r.buf);
	return rc;
}
