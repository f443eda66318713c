/*
 * import.h — importers: turn datasets in other tools' formats into ibstore
 * samples through an ibstore_writer.  Each returns 0 or a negative
 * IBSTORE_E* code and, on failure, a message in `err` naming the input file
 * (and the record, member or line) concerned.  They never print.
 */
#ifndef IBSTORE_IMPORT_H
#define IBSTORE_IMPORT_H

#include <stddef.h>

#include "ibstore.h"

/* Progress callback: called now and then with samples and input bytes done. */
typedef void (*import_progress_fn)(void *ctx, unsigned long long samples,
				   unsigned long long bytes_in);

typedef struct import_ctx {
	ibstore_writer *w;
	char *err;            /* message buffer, at least 1 byte */
	size_t errlen;
	import_progress_fn progress; /* may be NULL */
	void *progress_ctx;
} import_ctx;

/*
 * IDX (MNIST, Fashion-MNIST): an images file (magic 0x00000803, dims n,h,w;
 * unsigned bytes) and a labels file (0x00000801, n), each raw or gzip.
 * Header, dimensions and counts are validated; each image becomes one
 * sample of h*w bytes with its label.  Records attributes source=idx and
 * shape=HxW.
 */
int import_idx(import_ctx *c, const char *images_path, const char *labels_path);

/*
 * Image folder, as torchvision's ImageFolder: every regular, non-hidden file
 * below a class sub-directory of `dir` is a sample; class sub-directories
 * (non-hidden) become labels 0..K-1 in byte-wise sorted name order, their
 * names are recorded as class names, and keys are paths relative to `dir`
 * ("cat/001.jpg").  Files are added in sorted order (class, then path).
 */
int import_folder(import_ctx *c, const char *dir);

/*
 * CIFAR binary batches.  `variant` is 10, 100, or 0 to detect from file
 * sizes (records of 1+3072 bytes for CIFAR-10, 2+3072 for CIFAR-100 whose
 * fine label is used).  Each record becomes a 3072-byte sample.
 */
int import_cifar(import_ctx *c, const char *const *paths, int npaths, int variant);

#endif
