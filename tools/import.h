/*
 * import.h — importers: turn datasets in other tools' formats into ibstore
 * samples through an ibstore_writer.  Each returns 0 or a negative
 * IBSTORE_E* code and, on failure, a message in `err` naming the input file
 * (and the record, member or line) concerned.  They never print.
 */
#ifndef IBSTORE_IMPORT_H
#define IBSTORE_IMPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ibstore.h"

/* Progress callback: called now and then with samples and input bytes done. */
typedef void (*import_progress_fn)(void *ctx, unsigned long long samples,
				   unsigned long long bytes_in);

/* Called once, before the first sample, when the importer knows how many
 * input bytes it will report through progress in all (for an ETA). */
typedef void (*import_total_fn)(void *ctx, unsigned long long bytes_total);

/* Called for input that is skipped on request (a bad JSON line with
 * skip_bad), with a message naming the file and line. */
typedef void (*import_warn_fn)(void *ctx, const char *msg);

typedef struct import_ctx {
	ibstore_writer *w;
	char *err;            /* message buffer, at least 1 byte */
	size_t errlen;
	import_progress_fn progress; /* may be NULL */
	void *progress_ctx;   /* passed to progress, total and warn */
	import_total_fn total; /* may be NULL */
	import_warn_fn warn;  /* may be NULL */
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

/* Payload extensions tried by import_tar when none are given, best first. */
#define IMPORT_TAR_PAYLOAD_DEFAULT \
	"jpg,jpeg,png,webp,gif,bmp,tif,tiff,ppm,pgm,wav,flac,mp3,ogg,npy,bin,txt"

typedef struct import_tar_opts {
	const char *payload;   /* comma-separated extensions, best first (NULL: the default) */
	const char *label_ext; /* extension of the label member (NULL: "cls") */
} import_tar_opts;

/*
 * WebDataset tar shards (ustar, GNU and pax headers; GNU long names and pax
 * path/size records), read sequentially.  Consecutive regular members that
 * share a stem (the member path up to the first '.' of its last component)
 * form one sample: its payload is the member whose extension (all after
 * that '.') comes first in opts->payload (case-insensitive), its label the
 * decimal integer text of the label member (IBSTORE_NO_LABEL without one),
 * its key the stem ("shard0/004321").  The first sample's payload extension
 * is recorded as attribute "ext"; a sample whose payload has another
 * extension gets the key "stem.ext" instead, so that the extension of every
 * sample is known (ibstore export relies on it).  Directories, links,
 * devices and names whose last component starts with '.' are skipped.
 * Errors name the archive, the member and its header's offset: a bad
 * header checksum, a truncated member, an absolute path or one with a ".."
 * component, a sample without a payload member, a bad label, a duplicate
 * key (a stem seen before, in this or an earlier archive).
 * Records attribute source=tar.
 */
int import_tar(import_ctx *c, const char *const *paths, int npaths, const import_tar_opts *o);

typedef struct import_jsonl_opts {
	const char *field;       /* sample = this top-level field (NULL: the whole line) */
	const char *label_field; /* integer (or null) label field (NULL: no labels) */
	int skip_bad;            /* skip malformed lines (counted, reported through warn) */
	int line_keys;           /* key each sample "FILE:LINE" (FILE as given) */
	unsigned long long skipped; /* out: lines skipped as bad */
} import_jsonl_opts;

/*
 * JSON Lines: one sample per line.  Every non-blank line must be one
 * well-formed JSON value (RFC 8259; strict: valid UTF-8, escapes, numbers,
 * nesting at most 512 deep); with a field or label field, an object.  The
 * sample is the line's bytes without its line end ("\n" or "\r\n"), or
 * with `field` that field's value: a string as its decoded UTF-8 bytes,
 * anything else as its JSON text.  Blank lines are skipped.  A malformed
 * line fails the import with "FILE:LINE: column C: why", or is skipped and
 * counted with skip_bad.  Records attribute source=jsonl.
 */
int import_jsonl(import_ctx *c, const char *const *paths, int npaths, import_jsonl_opts *o);

/* ---- import_util.c: what the importers share ---------------------------- */

/* Formats a message into c->err (when there is room) and returns `code`:
 * the one way importers report a failure. */
int import_fail(import_ctx *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Opens NAME for reading, relative to the directory `dirfd` shown as `dir`
 * (AT_FDCWD and NULL for a plain path), and fstat()s it into *st.  A
 * directory is refused ("is a directory, not WHAT"), with `regular` also
 * anything but a regular file.  The descriptor, or a negative IBSTORE_E*
 * code after a message naming DIR/NAME: IBSTORE_ENOTFOUND when it does not
 * exist, else IBSTORE_EIO.
 */
int import_open(import_ctx *c, int dirfd, const char *dir, const char *name, const char *what,
		int regular, struct stat *st);

/* Reads exactly len bytes unless the file ends first (*got < len); 0, or
 * IBSTORE_EIO after "DIR/NAME: read failed" (dir may be NULL). */
int import_read_full(import_ctx *c, int fd, void *buf, size_t len, size_t *got,
		     const char *dir, const char *name);

/* A label from its decimal text ("7", "-3", "+12", spaces and line ends
 * around it allowed): 0, or -1 when it is not an integer in 32 bits other
 * than INT32_MIN (IBSTORE_NO_LABEL). */
int import_parse_label(const void *text, size_t n, int32_t *out);

/* A key buffer that grows to what is formatted into it; free(s) at the end. */
typedef struct import_keybuf {
	char *s;
	size_t cap;
} import_keybuf;

/* Formats a key into k: the key, or NULL after "out of memory". */
const char *import_key(import_ctx *c, import_keybuf *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Tells c->total (when set) the summed size of the regular files among
 * paths (the others, pipes for example, count 0). */
void import_total_of_files(import_ctx *c, const char *const *paths, int npaths);

/* Calls c->progress (when set) with samples and input bytes done when
 * `tick` is a multiple of `every`; every <= 1 reports now (the last call). */
void import_progress(import_ctx *c, unsigned long long tick, unsigned every,
		     unsigned long long samples, unsigned long long bytes);

#endif
