/*
 * ibstore.h — the whole public C API of ibstore.
 *
 * ibstore stores ML datasets as sharded, checksummed record files plus an
 * LMDB catalog (format/FORMAT.md fixes the bytes), and feeds training with
 * InfoBatch dynamic data pruning built into the storage layer.
 *
 * Conventions (they hold for every call below):
 *  - Every call that can fail returns an int: 0 (IBSTORE_OK) on success, a
 *    negative IBSTORE_E* code otherwise.  ibstore_strerror() names the code;
 *    the handle's *_errmsg() call gives a message naming the file, shard or
 *    sample concerned.
 *  - Outputs are written through pointer parameters, and only on success
 *    unless stated otherwise.
 *  - Every *_open / *_create has a matching *_close / *_free that accepts NULL.
 *  - The library never aborts, exits or prints; it keeps no global mutable
 *    state: everything hangs off the handles.
 *  - Threading: each call states whether it may run concurrently with others
 *    on the same handle.  Distinct handles are always independent.
 */
#ifndef IBSTORE_H
#define IBSTORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IBSTORE_VERSION_MAJOR 0
#define IBSTORE_VERSION_MINOR 1
#define IBSTORE_VERSION_PATCH 0
#define IBSTORE_VERSION_STRING "0.1.0"

/* The on-disk format version this library writes and reads. */
#define IBSTORE_FORMAT_VERSION 1

/* ---------------------------------------------------------------------- */
/* Result codes                                                            */
/* ---------------------------------------------------------------------- */

enum {
	IBSTORE_OK = 0,
	IBSTORE_EINVAL = -1,      /* bad argument from the caller */
	IBSTORE_ENOMEM = -2,      /* out of memory */
	IBSTORE_EIO = -3,         /* an operating-system I/O call failed */
	IBSTORE_EFORMAT = -4,     /* not an ibstore file, or malformed input */
	IBSTORE_EVERSION = -5,    /* a format version this library does not read */
	IBSTORE_ECORRUPT = -6,    /* checksum mismatch or inconsistent bytes */
	IBSTORE_ETRUNCATED = -7,  /* a file is shorter than recorded */
	IBSTORE_EMISMATCH = -8,   /* a file belongs to another dataset */
	IBSTORE_ENOTFOUND = -9,   /* no such sample, key, file or entry */
	IBSTORE_EEXIST = -10,     /* the output path already exists */
	IBSTORE_ETOOBIG = -11,    /* a value exceeds a limit (record > shard) */
	IBSTORE_ECATALOG = -12,   /* LMDB reported an error on the catalog */
	IBSTORE_EUNSUPPORTED = -13, /* feature unavailable here */
	IBSTORE_ESTATE = -14,     /* call not valid in the handle's state */
	IBSTORE_EBUFSIZE = -15,   /* caller's buffer too small (size reported) */
};

/* A short, static, English name for a result code ("checksum mismatch"). */
const char *ibstore_strerror(int code);

/* Library version string, e.g. "0.1.0". */
const char *ibstore_version(void);

/* ---------------------------------------------------------------------- */
/* Codecs                                                                  */
/* ---------------------------------------------------------------------- */

/* Stored codec of a record (on disk).  */
enum {
	IBSTORE_CODEC_NONE = 0,
	IBSTORE_CODEC_LZ4 = 1, /* lz4 block; lz4hc output is also plain lz4 */
};

/* Compression choice when writing. */
typedef enum {
	IBSTORE_COMPRESS_NONE = 0,
	IBSTORE_COMPRESS_LZ4 = 1,
	IBSTORE_COMPRESS_LZ4HC = 2,
	IBSTORE_COMPRESS_AUTO = 3, /* lz4; stores raw when it does not shrink */
} ibstore_compress;

/* Parses "none", "lz4", "lz4hc", "auto".  0 or IBSTORE_EINVAL. */
int ibstore_compress_parse(const char *name, ibstore_compress *out);
/* Name of a stored codec ("none", "lz4"), or "unknown". */
const char *ibstore_codec_name(int codec);

/* The label of a sample that has none. */
#define IBSTORE_NO_LABEL INT32_MIN

/* ---------------------------------------------------------------------- */
/* Writing a dataset                                                       */
/* ---------------------------------------------------------------------- */

typedef struct ibstore_writer ibstore_writer;

typedef struct ibstore_writer_opts {
	uint64_t shard_size;       /* roll over to a new shard past this; default 256 MiB */
	ibstore_compress compress; /* default IBSTORE_COMPRESS_NONE */
	int lz4hc_level;           /* 1..12, default 9 */
	uint32_t alignment;        /* record alignment, power of two 1..4096; default 8 */
	int fsync;                 /* fsync before publishing; default 1 */
} ibstore_writer_opts;

/* Fills *opts with the defaults above. */
void ibstore_writer_opts_init(ibstore_writer_opts *opts);

/*
 * Starts a new dataset that will appear at `path` when published.  Nothing
 * is created at `path` itself until ibstore_writer_publish(): the dataset is
 * built in a hidden temporary directory beside it (same file system), so a
 * crash leaves nothing at `path`.  Fails with IBSTORE_EEXIST when `path`
 * exists.  `opts` may be NULL for the defaults.
 *
 * *out is set even on failure (unless IBSTORE_ENOMEM) so that
 * ibstore_writer_errmsg() can tell why; free it with ibstore_writer_free().
 * A writer handle must be used by one thread at a time.
 */
int ibstore_writer_create(const char *path, const ibstore_writer_opts *opts,
			  ibstore_writer **out);

/*
 * Appends one sample.  Ids are dense and given in order: the n-th sample
 * added has id n-1 (returned through `id_out`, which may be NULL).
 * `label` is any int32 or IBSTORE_NO_LABEL; `key` (may be NULL) is an
 * optional unique string such as the original file name.  A duplicate key
 * gives IBSTORE_EEXIST and the sample is not added; a record that cannot fit
 * in one shard gives IBSTORE_ETOOBIG.  Samples of up to 4 GiB - 1 bytes.
 */
int ibstore_writer_add(ibstore_writer *w, const void *data, size_t len, int32_t label,
		       const char *key, uint64_t *id_out);

/* Records a human name for a label (a class directory's name, say). */
int ibstore_writer_set_class_name(ibstore_writer *w, int32_t label, const char *name);

/*
 * Records a free-form attribute of the dataset (string name and value),
 * for example "source" = "idx" or "shape" = "28x28".  Names beginning with
 * "ibstore." are reserved.
 */
int ibstore_writer_set_attr(ibstore_writer *w, const char *name, const char *value);

/* Number of samples added so far. */
uint64_t ibstore_writer_count(const ibstore_writer *w);

/*
 * Finishes the shards and the catalog, fsyncs them, and renames the
 * temporary directory to the final path atomically (never replacing an
 * existing path).  After a failure nothing is left at the final path.
 * The writer must still be freed.
 */
int ibstore_writer_publish(ibstore_writer *w);

/* Frees the writer; an unpublished dataset's temporary directory is removed. */
void ibstore_writer_free(ibstore_writer *w);

/* Message of the last failure on this writer ("" when none). */
const char *ibstore_writer_errmsg(const ibstore_writer *w);

/* ---------------------------------------------------------------------- */
/* Reading a dataset                                                       */
/* ---------------------------------------------------------------------- */

typedef struct ibstore_dataset ibstore_dataset;

/*
 * Opens a published dataset directory read-only.  Before returning it checks
 * the manifest, the catalog's digest (before LMDB touches the catalog), the
 * format version, and every shard's header, dataset UUID and size against
 * the catalog, and every index entry against its shard's bounds.
 *
 * *out is set even on failure (unless IBSTORE_ENOMEM) so that
 * ibstore_dataset_errmsg() can tell why; close it with ibstore_dataset_close().
 *
 * Thread-safety: after a successful open, every reading call below may be
 * made from several threads at once on the same handle.
 */
int ibstore_dataset_open(const char *path, ibstore_dataset **out);

/* Closes the dataset; pointers it handed out become invalid. */
void ibstore_dataset_close(ibstore_dataset *ds);

/*
 * Message of the last failure on this handle ("" when none).  With several
 * threads failing at once it is one of their messages.  The pointer is valid
 * until the next failing call on the handle or its close.
 */
const char *ibstore_dataset_errmsg(const ibstore_dataset *ds);

typedef struct ibstore_info {
	uint32_t format_version;
	uint8_t uuid[16];
	uint64_t created;        /* Unix time of creation */
	uint64_t samples;
	uint32_t shards;
	uint32_t alignment;
	uint64_t bytes_stored;   /* payload bytes as stored */
	uint64_t bytes_raw;      /* payload bytes decoded */
	uint64_t bytes_files;    /* bytes of all shard files */
	uint64_t codec_count[2]; /* samples per stored codec (NONE, LZ4) */
	uint32_t labels;         /* number of distinct labels (IBSTORE_NO_LABEL excluded) */
	uint64_t fixed_size;     /* raw size shared by every sample, else 0 */
	uint64_t max_size;       /* largest raw sample size */
	uint64_t keys;           /* samples with a key */
} ibstore_info;

int ibstore_dataset_info(const ibstore_dataset *ds, ibstore_info *out);

/* Where a sample lives; everything that is known without reading it. */
typedef struct ibstore_location {
	uint64_t id;
	uint32_t shard;          /* shard number: file shard-%06u.ibr */
	uint32_t codec;          /* IBSTORE_CODEC_* */
	uint64_t offset;         /* byte offset of the record header in the shard */
	uint64_t payload_offset; /* byte offset of the first stored payload byte */
	uint32_t stored_size;    /* stored payload bytes */
	uint32_t size;           /* decoded payload bytes */
	int32_t label;
} ibstore_location;

/* O(1) lookup of a sample's location; IBSTORE_ENOTFOUND past the end. */
int ibstore_dataset_locate(const ibstore_dataset *ds, uint64_t id, ibstore_location *out);

/*
 * Reads sample `id`: verifies its record header and checksum and decodes it
 * into `buf` (capacity `cap`, at least the location's `size`, else
 * IBSTORE_EBUFSIZE).  `size_out` and `label_out` may be NULL.
 * IBSTORE_ECORRUPT names the shard, offset and sample in the message.
 */
int ibstore_dataset_read(ibstore_dataset *ds, uint64_t id, void *buf, size_t cap,
			 size_t *size_out, int32_t *label_out);

/* Id of the sample with key `key`; IBSTORE_ENOTFOUND when none. */
int ibstore_dataset_find_key(ibstore_dataset *ds, const char *key, uint64_t *id_out);

/*
 * Key of sample `id` (NUL-terminated, valid until close), or NULL through
 * *key_out with IBSTORE_OK when the sample has no key.
 */
int ibstore_dataset_key(ibstore_dataset *ds, uint64_t id, const char **key_out);

/* Recorded name of a label (valid until close), or NULL when none. */
const char *ibstore_dataset_class_name(ibstore_dataset *ds, int32_t label);

/* Value of a recorded attribute (valid until close), or NULL when none. */
const char *ibstore_dataset_attr(ibstore_dataset *ds, const char *name);

/* Path of shard `shard`'s file (valid until close), or NULL past the end. */
const char *ibstore_dataset_shard_path(const ibstore_dataset *ds, uint32_t shard);

/* One problem found by ibstore_dataset_verify(). */
typedef struct ibstore_problem {
	int code;            /* IBSTORE_E* */
	uint32_t shard;      /* UINT32_MAX when not about a shard */
	uint64_t offset;     /* record offset in the shard, or UINT64_MAX */
	uint64_t id;         /* sample id, or UINT64_MAX when not about a sample */
	const char *message; /* valid during the callback */
} ibstore_problem;

typedef struct ibstore_verify_stats {
	uint64_t records_checked;
	uint64_t records_bad;
	uint64_t shards_bad;     /* shards whose whole-file digest differs */
	uint64_t bytes_read;
} ibstore_verify_stats;

/*
 * Reads every record of every shard, checking each header, checksum and
 * decoding, and each shard's whole-file digest.  Calls `cb` (may be NULL)
 * once per problem; a non-zero return from `cb` stops the walk.
 * Returns IBSTORE_OK when everything is sound, IBSTORE_ECORRUPT when a
 * problem was found, another code when verification itself failed.
 */
int ibstore_dataset_verify(ibstore_dataset *ds,
			   int (*cb)(const ibstore_problem *p, void *ctx), void *ctx,
			   ibstore_verify_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* IBSTORE_H */
