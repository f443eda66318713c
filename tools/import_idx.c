/*
 * import_idx.c — IDX importer (MNIST, Fashion-MNIST).
 *
 * An IDX file is a big-endian header (magic 0x000008NN where NN is the number
 * of dimensions, then one uint32 per dimension) followed by unsigned bytes.
 * Both files may be raw or gzip-compressed; zlib's gz* calls read either
 * transparently.  Every length the header claims is checked against the
 * bytes actually present: a short file is IBSTORE_ETRUNCATED, extra bytes
 * after the last image or label are IBSTORE_EFORMAT.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "import.h"

#define IDX_UBYTE 0x08
#define IDX_MAX_DIMS 3
#define IDX_MAX_IMAGE_BYTES (64ull << 20)
#define IDX_LABEL_CHUNK 65536u
#define IDX_PROGRESS_EVERY 4096u

typedef struct idx_file {
	const char *path;
	gzFile gz;
	int is_reg;        /* a regular file: st_size is meaningful */
	uint64_t st_size;
	uint32_t dims[IDX_MAX_DIMS];
} idx_file;

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Turns the state of a gzFile that stopped delivering bytes into a status. */
static int gz_status(import_ctx *c, idx_file *f)
{
	int errnum = Z_OK;
	const char *msg = gzerror(f->gz, &errnum);

	/* zlib prefixes "<fd:N>: " (from gzdopen); we name the path ourselves. */
	const char *sep;
	if (msg[0] == '<' && (sep = strstr(msg, ": ")))
		msg = sep + 2;
	switch (errnum) {
	case Z_OK:
		return 0;
	case Z_BUF_ERROR:
		return import_fail(c, IBSTORE_ETRUNCATED,
			    "%s: gzip stream is truncated (ends after %lld decompressed "
			    "bytes)", f->path, (long long)gztell(f->gz));
	case Z_ERRNO:
		return import_fail(c, IBSTORE_EIO, "%s: read failed: %s", f->path, strerror(errno));
	case Z_MEM_ERROR:
		return import_fail(c, IBSTORE_ENOMEM, "%s: out of memory in zlib", f->path);
	default:
		return import_fail(c, IBSTORE_EFORMAT, "%s: corrupt gzip data: %s", f->path, msg);
	}
}

/*
 * Reads up to `len` bytes.  *got < len means the (decompressed) input ended;
 * gzip and I/O errors, including a gzip stream cut short, are returned as
 * errors with a message.
 */
static int read_full(import_ctx *c, idx_file *f, void *buf, size_t len, size_t *got)
{
	unsigned char *p = buf;
	size_t done = 0;

	while (done < len) {
		size_t want = len - done;
		int n;

		if (want > (size_t)INT_MAX)
			want = (size_t)INT_MAX;
		n = gzread(f->gz, p + done, (unsigned)want);
		if (n <= 0) {
			int rc = gz_status(c, f);

			if (rc)
				return rc;
			break;
		}
		done += (size_t)n;
	}
	*got = done;
	return 0;
}

/* Opens `path` and reads and checks its IDX header: magic 0x000008<ndims>. */
static int idx_open(import_ctx *c, idx_file *f, const char *path, unsigned ndims,
		    const char *what)
{
	unsigned char hdr[4 + 4 * IDX_MAX_DIMS];
	size_t hdrlen = 4 + 4 * (size_t)ndims;
	size_t got = 0;
	char kind[32];

	f->path = path;
	snprintf(kind, sizeof kind, "an IDX %s file", what);
	struct stat st;
	int fd = import_open(c, AT_FDCWD, NULL, path, kind, 0, &st);
	if (fd < 0)
		return fd;
	f->is_reg = S_ISREG(st.st_mode);
	f->st_size = (uint64_t)st.st_size;
	f->gz = gzdopen(fd, "rb");
	if (!f->gz) {
		close(fd);
		return import_fail(c, IBSTORE_ENOMEM, "%s: out of memory opening gzip reader", path);
	}
	gzbuffer(f->gz, 128u << 10);

	int rc = read_full(c, f, hdr, hdrlen, &got);
	if (rc)
		return rc;
	if (got == 0)
		return import_fail(c, IBSTORE_EFORMAT, "%s: empty file, no samples", path);
	if (got < 4)
		return import_fail(c, IBSTORE_ETRUNCATED,
			    "%s: truncated IDX header (%zu of %zu bytes)", path, got, hdrlen);

	uint32_t magic = be32(hdr);
	if (hdr[0] || hdr[1])
		return import_fail(c, IBSTORE_EFORMAT,
			    "%s: not an IDX file (magic 0x%08x, expected 0x%08x)", path,
			    (unsigned)magic, IDX_UBYTE << 8 | ndims);
	if (hdr[2] != IDX_UBYTE)
		return import_fail(c, IBSTORE_EFORMAT,
			    "%s: IDX element type 0x%02x is not supported "
			    "(only unsigned bytes, 0x08)", path, hdr[2]);
	if (hdr[3] != ndims) {
		if (hdr[3] == 1 || hdr[3] == 3)
			return import_fail(c, IBSTORE_EFORMAT,
				    "%s: is an IDX %s file (magic 0x%08x), expected %s "
				    "(0x%08x)", path, hdr[3] == 1 ? "labels" : "images",
				    (unsigned)magic, what, IDX_UBYTE << 8 | ndims);
		return import_fail(c, IBSTORE_EFORMAT,
			    "%s: IDX header has %u dimensions (magic 0x%08x), expected %u "
			    "for %s (0x%08x)", path, hdr[3], (unsigned)magic, ndims, what,
			    IDX_UBYTE << 8 | ndims);
	}
	if (got < hdrlen)
		return import_fail(c, IBSTORE_ETRUNCATED,
			    "%s: truncated IDX header (%zu of %zu bytes)", path, got, hdrlen);
	for (unsigned i = 0; i < ndims; i++)
		f->dims[i] = be32(hdr + 4 + 4 * i);
	return 0;
}

/*
 * A raw (not gzip) regular file's size is known up front; checking it before
 * packing anything fails fast on a truncated download.
 */
static int check_raw_size(import_ctx *c, const idx_file *f, uint64_t payload,
			  const char *what)
{
	uint64_t hdrlen = (uint64_t)gztell(f->gz);
	uint64_t want = hdrlen + payload;

	if (!f->is_reg || !gzdirect(f->gz))
		return 0;
	if (f->st_size < want)
		return import_fail(c, IBSTORE_ETRUNCATED,
			    "%s: truncated: header says %u %s (%llu bytes in all) but the "
			    "file has %llu bytes", f->path, f->dims[0], what,
			    (unsigned long long)want, (unsigned long long)f->st_size);
	if (f->st_size > want)
		return import_fail(c, IBSTORE_EFORMAT,
			    "%s: %llu bytes of trailing data after %u %s (expected %llu "
			    "bytes in all)", f->path,
			    (unsigned long long)(f->st_size - want), f->dims[0], what,
			    (unsigned long long)want);
	return 0;
}

/* After the last record: anything left is trailing garbage. */
static int check_at_end(import_ctx *c, idx_file *f, const char *what)
{
	unsigned char extra;
	size_t got = 0;
	int rc = read_full(c, f, &extra, 1, &got);

	if (rc)
		return rc;
	if (got)
		return import_fail(c, IBSTORE_EFORMAT,
			    "%s: trailing data after %u %s (file is longer than its header "
			    "says)", f->path, f->dims[0], what);
	return 0;
}

static unsigned long long gz_pos(gzFile gz)
{
	z_off_t off = gzoffset(gz);

	return off < 0 ? 0 : (unsigned long long)off;
}

int import_idx(import_ctx *c, const char *images_path, const char *labels_path)
{
	idx_file img = { 0 }, lab = { 0 };
	unsigned char *pixels = NULL, *labels = NULL;
	size_t got = 0;
	uint32_t nlab = 0;
	char shape[32];

	if (!c || !c->w)
		return IBSTORE_EINVAL;
	if (!images_path || !labels_path)
		return import_fail(c, IBSTORE_EINVAL, "import_idx: missing images or labels path");

	int rc = idx_open(c, &img, images_path, 3, "images");
	if (rc)
		goto fail;
	rc = idx_open(c, &lab, labels_path, 1, "labels");
	if (rc)
		goto fail;

	uint32_t n = img.dims[0];
	if (n == 0) {
		rc = import_fail(c, IBSTORE_EFORMAT, "%s: header says 0 images, no samples",
			  images_path);
		goto fail;
	}
	if (img.dims[1] == 0 || img.dims[2] == 0) {
		rc = import_fail(c, IBSTORE_EFORMAT,
			  "%s: image dimensions %ux%u: both must be nonzero", images_path,
			  img.dims[1], img.dims[2]);
		goto fail;
	}
	if ((uint64_t)img.dims[1] * img.dims[2] > IDX_MAX_IMAGE_BYTES) {
		rc = import_fail(c, IBSTORE_EFORMAT,
			  "%s: image dimensions %ux%u exceed the limit of %llu bytes per "
			  "image", images_path, img.dims[1], img.dims[2],
			  IDX_MAX_IMAGE_BYTES);
		goto fail;
	}
	if (lab.dims[0] != n) {
		rc = import_fail(c, IBSTORE_EFORMAT,
			  "%s: header says %u images but labels file %s has %u labels",
			  images_path, n, labels_path, lab.dims[0]);
		goto fail;
	}
	size_t image_bytes = (size_t)img.dims[1] * img.dims[2];
	rc = check_raw_size(c, &img, (uint64_t)n * image_bytes, "images");
	if (rc)
		goto fail;
	rc = check_raw_size(c, &lab, n, "labels");
	if (rc)
		goto fail;

	pixels = malloc(image_bytes);
	labels = malloc(IDX_LABEL_CHUNK);
	if (!pixels || !labels) {
		rc = import_fail(c, IBSTORE_ENOMEM, "%s: out of memory for a %zu-byte image",
			  images_path, image_bytes);
		goto fail;
	}

	snprintf(shape, sizeof(shape), "%ux%u", img.dims[1], img.dims[2]);
	rc = ibstore_writer_set_attr(c->w, "source", "idx");
	if (!rc)
		rc = ibstore_writer_set_attr(c->w, "shape", shape);
	if (rc) {
		rc = import_fail(c, rc, "%s: %s", images_path, ibstore_writer_errmsg(c->w));
		goto fail;
	}

	for (uint32_t i = 0; i < n; i++) {
		if (i == nlab) {
			uint32_t want = n - i < IDX_LABEL_CHUNK ? n - i : IDX_LABEL_CHUNK;

			rc = read_full(c, &lab, labels, want, &got);
			if (rc)
				goto fail;
			if (got < want) {
				rc = import_fail(c, IBSTORE_ETRUNCATED,
					  "%s: truncated: header says %u labels but the data "
					  "ends after %zu", labels_path, n, (size_t)i + got);
				goto fail;
			}
			nlab += want;
		}
		rc = read_full(c, &img, pixels, image_bytes, &got);
		if (rc)
			goto fail;
		if (got < image_bytes) {
			rc = import_fail(c, IBSTORE_ETRUNCATED,
				  "%s: truncated: header says %u images of %ux%u but the data "
				  "ends inside image %u", images_path, n, img.dims[1],
				  img.dims[2], i);
			goto fail;
		}
		rc = ibstore_writer_add(c->w, pixels, image_bytes,
					labels[i % IDX_LABEL_CHUNK], NULL, NULL);
		if (rc) {
			rc = import_fail(c, rc, "%s: image %u: %s", images_path, i,
				  ibstore_writer_errmsg(c->w));
			goto fail;
		}
		import_progress(c, (unsigned long long)i + 1, IDX_PROGRESS_EVERY,
				(unsigned long long)i + 1, gz_pos(img.gz) + gz_pos(lab.gz));
	}

	rc = check_at_end(c, &img, "images");
	if (rc)
		goto fail;
	rc = check_at_end(c, &lab, "labels");
	if (rc)
		goto fail;
	import_progress(c, 0, 1, n, gz_pos(img.gz) + gz_pos(lab.gz));

fail:
	free(pixels);
	free(labels);
	if (img.gz)
		gzclose(img.gz);
	if (lab.gz)
		gzclose(lab.gz);
	return rc;
}
