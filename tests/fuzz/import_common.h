/*
 * import_common.h — what the importer fuzz targets share: a writer in the
 * scratch directory (no fsync), the import context, and its disposal
 * (freed unpublished, so its temporary directory goes too).
 */
#ifndef IBSTORE_FUZZ_IMPORT_COMMON_H
#define IBSTORE_FUZZ_IMPORT_COMMON_H

#include "fuzz_common.h"

#include <zlib.h>

#include "import.h"

static char imp_err[512];

static inline void imp_begin(import_ctx *c)
{
	char out[512];
	fz_path(out, sizeof out, "out.ibs");
	fz_rmtree(out);
	ibstore_writer_opts o;
	ibstore_writer_opts_init(&o);
	o.fsync = 0;
	o.shard_size = 1 << 16; /* several shards from small inputs */
	memset(c, 0, sizeof *c);
	if (ibstore_writer_create(out, &o, &c->w)) {
		fprintf(stderr, "writer: %s\n", ibstore_writer_errmsg(c->w));
		abort();
	}
	imp_err[0] = '\0';
	c->err = imp_err;
	c->errlen = sizeof imp_err;
}

/*
 * Cuts the rest of the input into `files` files of the scratch directory
 * named by `name_fmt` (printf, with the file's number counted from `first`):
 * the first files - 1 take `part` bytes each, the last what is left.  Their
 * paths go to paths[] and pp[].
 */
static inline void imp_files(fz_in *in, int files, size_t part, const char *name_fmt, int first,
			     char (*paths)[512], const char **pp)
{
	for (int i = 0; i < files; i++) {
		char rel[64];
		size_t got;
		snprintf(rel, sizeof rel, name_fmt, first + i);
		fz_path(paths[i], sizeof paths[i], rel);
		const uint8_t *p = fz_take(in, i + 1 == files ? in->n : part, &got);
		fz_write(paths[i], p, got);
		pp[i] = paths[i];
	}
}

/* After an import: publish a successful one now and then (flag), free. */
static inline void imp_end(import_ctx *c, int rc, int publish)
{
	if (rc && !imp_err[0])
		abort(); /* a failure must say why */
	if (rc == 0 && publish && ibstore_writer_count(c->w) > 0) {
		char out[512];
		if (ibstore_writer_publish(c->w) == 0) {
			ibstore_dataset *ds;
			fz_path(out, sizeof out, "out.ibs");
			if (ibstore_dataset_open(out, &ds))
				abort(); /* what the importer published must open */
			ibstore_verify_stats st;
			if (ibstore_dataset_verify(ds, NULL, NULL, &st))
				abort();
			ibstore_dataset_close(ds);
		}
	}
	ibstore_writer_free(c->w);
	char out[512];
	fz_path(out, sizeof out, "out.ibs");
	fz_rmtree(out);
}

/* Writes bytes to a file of the scratch dir, gzip-compressed if asked. */
static inline void imp_file(const char *path, const void *p, size_t n, int gz)
{
	if (!gz) {
		fz_write(path, p, n);
		return;
	}
	gzFile f = gzopen(path, "wb1");
	if (!f)
		abort();
	if (n)
		gzwrite(f, p, (unsigned)n);
	gzclose(f);
}

#endif
