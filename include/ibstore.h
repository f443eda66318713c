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
 *  - Each call lists the codes it returns.  Any call that allocates may also
 *    return IBSTORE_ENOMEM; "EINVAL: NULL" means a NULL handle or pointer
 *    argument where one is required.
 *  - docs/PRUNING.md specifies the pruning (scores, plans, annealing, modes,
 *    rank slices and padding) that the calls below implement.
 *  - Versioned structs.  The structs a caller allocates and that may gain
 *    fields (ibstore_writer_opts, ibstore_prune_opts, ibstore_run_opts,
 *    ibstore_loader_opts, ibstore_info, ibstore_run_info,
 *    ibstore_loader_stats) begin with `uint32_t size`: the sizeof of the
 *    struct as the CALLER was compiled, so a program built against an older
 *    ibstore.h keeps working with a newer library.
 *      Options (input): fill the struct with its *_init() macro, which passes
 *      sizeof and sets `size`, then change the fields you want.  The library
 *      reads the first `size` bytes and takes its defaults for the fields it
 *      has beyond them (those the caller's header did not have).
 *      Results (output): the *_get() macro passes sizeof of the caller's
 *      struct; the library writes only that many bytes, sets `size` to it,
 *      and zeroes fields it does not know.
 *    From another language, call the *_sized() function behind the macro
 *    with the struct's size (ibstore_struct_size() reports the library's).
 *    A `size` of 0 (a struct not initialised), a size no version had (below
 *    the first field, not a multiple of 4, over 4096), or a larger size
 *    whose extra bytes are not all zero (an option this library does not
 *    know) gives IBSTORE_EINVAL naming the struct.  Rules for whoever adds
 *    a field: append it at the end (after the last field, never in place of
 *    one), give it a default in the *_init() function, name it as the last
 *    field in src/abi.c's layout table, and keep
 *    ibstore_run_opts' layout: `size`, then `prune`, then its own fields;
 *    the library finds the caller's own run fields at the offset of `prune`
 *    plus `prune.size`, so both structs grow independently.
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
	IBSTORE_EMISMATCH = -8,   /* another dataset's file, or another configuration */
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
	IBSTORE_COMPRESS_AUTO = 3, /* lz4; stores raw unless it saves >= 1/16 */
} ibstore_compress;

/*
 * Names of the enums.  Every enum the caller chooses from has a *_parse
 * (name to value: 0, or IBSTORE_EINVAL for an unknown name or a NULL
 * argument, *out untouched) and a *_name (value to its static name, or
 * "unknown" for a value outside the enum); name(parse(s)) == s for each name.
 */

/* "none", "lz4", "lz4hc", "auto" (any case). */
int ibstore_compress_parse(const char *name, ibstore_compress *out);
const char *ibstore_compress_name(ibstore_compress compress);
/* Name of a stored codec ("none", "lz4"), or "unknown". */
const char *ibstore_codec_name(int codec);

/* The label of a sample that has none. */
#define IBSTORE_NO_LABEL INT32_MIN

/* ---------------------------------------------------------------------- */
/* Writing a dataset                                                       */
/* ---------------------------------------------------------------------- */

typedef struct ibstore_writer ibstore_writer;

typedef struct ibstore_writer_opts {
	uint32_t size;             /* sizeof as the caller compiled it: set by
				      ibstore_writer_opts_init() */
	uint64_t shard_size;       /* roll over to a new shard past this; default 256 MiB */
	ibstore_compress compress; /* default IBSTORE_COMPRESS_NONE */
	int lz4hc_level;           /* 1..12, default 9 */
	uint32_t alignment;        /* record alignment, power of two 1..4096; default 8 */
	int fsync;                 /* fsync before publishing; default 1 */
	int jobs;                  /* threads that compress, checksum and write
				      samples behind ibstore_writer_add(), 1..256;
				      the output is byte-identical for every value
				      (bar the UUID and creation time); 0 or 1: all
				      work in the caller's thread.  Default 1. */
} ibstore_writer_opts;

/* Fills *opts with the defaults above and sets opts->size.  The macro
 * passes the caller's sizeof; IBSTORE_EINVAL (nothing written) for a size
 * no version of the struct had. */
#define ibstore_writer_opts_init(opts) ibstore_writer_opts_init_sized((opts), sizeof *(opts))
int ibstore_writer_opts_init_sized(ibstore_writer_opts *opts, size_t size);

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
 * Returns 0, or:
 *   IBSTORE_EINVAL   NULL path or out, or an option out of range;
 *   IBSTORE_EEXIST   `path` exists;
 *   IBSTORE_EIO      the temporary directory or a file could not be made;
 *   IBSTORE_ECATALOG LMDB refused to create the catalog;
 *   IBSTORE_ENOMEM.
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
 * The data is copied (or written) before the call returns.  With
 * opts.jobs > 1 a sample is compressed and written after the call returns:
 * a failure to write it (an I/O error) is returned by a later add or by
 * ibstore_writer_publish(), and fails the writer.
 * Returns 0, or:
 *   IBSTORE_EINVAL   NULL writer, or NULL data with len > 0;
 *   IBSTORE_EEXIST   the key is already taken (the writer stays usable);
 *   IBSTORE_ETOOBIG  a sample of 4 GiB or more, or one that no shard holds;
 *   IBSTORE_EIO      writing a shard failed (now or, with jobs > 1, for an
 *                    earlier sample);
 *   IBSTORE_ECATALOG LMDB refused the key;
 *   IBSTORE_ESTATE   the writer failed earlier or was published;
 *   IBSTORE_ENOMEM.
 */
int ibstore_writer_add(ibstore_writer *w, const void *data, size_t len, int32_t label,
		       const char *key, uint64_t *id_out);

/* Records a human name for a label (a class directory's name, say).
 * 0, or IBSTORE_EINVAL (NULL), IBSTORE_ECATALOG, IBSTORE_ESTATE (failed or
 * published writer). */
int ibstore_writer_set_class_name(ibstore_writer *w, int32_t label, const char *name);

/*
 * Records a free-form attribute of the dataset (string name and value),
 * for example "source" = "idx" or "shape" = "28x28".  Names beginning with
 * "ibstore." are reserved.
 * 0, or IBSTORE_EINVAL (NULL, or a reserved name), IBSTORE_ETOOBIG (a name
 * too long for the catalog), IBSTORE_ECATALOG, IBSTORE_ESTATE (failed or
 * published writer).
 */
int ibstore_writer_set_attr(ibstore_writer *w, const char *name, const char *value);

/* Number of samples added so far. */
uint64_t ibstore_writer_count(const ibstore_writer *w);

/*
 * Finishes the shards and the catalog, fsyncs them, and renames the
 * temporary directory to the final path atomically (never replacing an
 * existing path).  After a failure nothing is left at the final path.
 * The writer must still be freed.
 * Returns 0, or:
 *   IBSTORE_EINVAL   NULL writer;
 *   IBSTORE_EIO      a write, fsync or rename failed (also a failed write
 *                    of an earlier sample, with jobs > 1);
 *   IBSTORE_EEXIST   something appeared at the final path meanwhile;
 *   IBSTORE_ECATALOG LMDB failed to finish the catalog;
 *   IBSTORE_ESTATE   the writer failed earlier or was published;
 *   IBSTORE_ENOMEM.
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
 * Returns 0, or:
 *   IBSTORE_EINVAL     NULL path or out;
 *   IBSTORE_ENOTFOUND  no such directory, or its manifest, catalog or a
 *                      shard is missing;
 *   IBSTORE_EFORMAT    not an ibstore dataset, or a malformed file;
 *   IBSTORE_EVERSION   a format version this library does not read;
 *   IBSTORE_ECORRUPT   the catalog's digest or a header checksum differs;
 *   IBSTORE_ETRUNCATED a file shorter than recorded;
 *   IBSTORE_EMISMATCH  a shard of another dataset (UUID);
 *   IBSTORE_ECATALOG   LMDB refused the catalog;
 *   IBSTORE_EIO, IBSTORE_ENOMEM.
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
	uint32_t size;           /* bytes the library wrote: the caller's sizeof */
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

/*
 * The dataset's description.  The macro passes sizeof *out: the library
 * writes that many bytes (a caller built against an older header gets the
 * fields it knows).  Any thread.  0, or IBSTORE_EINVAL (NULL, a handle
 * whose open failed, or a size no version of ibstore_info had).
 */
#define ibstore_dataset_info_get(ds, out) ibstore_dataset_info_get_sized((ds), (out), sizeof *(out))
int ibstore_dataset_info_get_sized(const ibstore_dataset *ds, ibstore_info *out, size_t size);

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

/* O(1) lookup of a sample's location.  0, or IBSTORE_EINVAL (NULL),
 * IBSTORE_ENOTFOUND (id past the end). */
int ibstore_dataset_locate(const ibstore_dataset *ds, uint64_t id, ibstore_location *out);

/*
 * Reads sample `id`: verifies its record header and checksum and decodes it
 * into `buf` (capacity `cap`, at least the location's `size`, else
 * IBSTORE_EBUFSIZE).  `size_out` and `label_out` may be NULL.
 * Returns 0, or:
 *   IBSTORE_EINVAL     NULL ds, or NULL buf with cap > 0;
 *   IBSTORE_ENOTFOUND  id past the end;
 *   IBSTORE_EBUFSIZE   cap below the sample's size (*size_out has it);
 *   IBSTORE_ECORRUPT   a bad record header, checksum or compressed stream
 *                      (the message names the shard, offset and sample);
 *   IBSTORE_ETRUNCATED the shard ends before the record;
 *   IBSTORE_EIO, IBSTORE_ENOMEM.
 */
int ibstore_dataset_read(ibstore_dataset *ds, uint64_t id, void *buf, size_t cap,
			 size_t *size_out, int32_t *label_out);

/* Id of the sample with key `key`.  0, or IBSTORE_EINVAL (NULL),
 * IBSTORE_ENOTFOUND (no such key), IBSTORE_ECATALOG. */
int ibstore_dataset_find_key(ibstore_dataset *ds, const char *key, uint64_t *id_out);

/*
 * Key of sample `id` (NUL-terminated, valid until close), or NULL through
 * *key_out with IBSTORE_OK when the sample has no key.  Otherwise
 * IBSTORE_EINVAL (NULL), IBSTORE_ENOTFOUND (id past the end),
 * IBSTORE_ECATALOG, IBSTORE_ENOMEM.
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
 * problem was found, IBSTORE_EINVAL (NULL ds), IBSTORE_ENOMEM or
 * IBSTORE_EIO when verification itself failed.
 */
int ibstore_dataset_verify(ibstore_dataset *ds,
			   int (*cb)(const ibstore_problem *p, void *ctx), void *ctx,
			   ibstore_verify_stats *stats);

/* Evicts the dataset's shards from the page cache (posix_fadvise
 * DONTNEED), for cold-cache measurements.  0, or IBSTORE_EINVAL (NULL),
 * IBSTORE_EIO (posix_fadvise failed). */
int ibstore_dataset_evict(ibstore_dataset *ds);


/* ---------------------------------------------------------------------- */
/* Pruning: policies and plans (pure computation, no I/O)                  */
/* ---------------------------------------------------------------------- */

typedef enum {
	IBSTORE_POLICY_INFOBATCH = 0, /* prune below-mean samples, rescale survivors */
	IBSTORE_POLICY_RANDOM = 1,    /* prune as many, uniformly from all samples */
	IBSTORE_POLICY_NONE = 2,      /* full data, weight 1, shuffled */
} ibstore_policy;

typedef enum {
	IBSTORE_MODE_NATIVE = 0, /* paper semantics, the reference's defects fixed
				    (docs/PRUNING.md) */
	IBSTORE_MODE_COMPAT = 1, /* bit-for-bit the reference package's prune() */
} ibstore_mode;

typedef struct ibstore_prune_opts {
	uint32_t size;         /* sizeof as the caller compiled it: set by
				  ibstore_prune_opts_init() */
	ibstore_policy policy; /* default IBSTORE_POLICY_INFOBATCH */
	ibstore_mode mode;     /* default IBSTORE_MODE_NATIVE */
	double ratio;          /* prune ratio r, default 0.5; keep = clamp(1-r, 0.1, 1) */
	double delta;          /* share of epochs that prune, default 0.875 */
	uint32_t epochs;       /* total epochs C of the run (required, > 0) */
	uint64_t seed;         /* default 0; compat mode seeds MT19937 with seed+e+1 */
	double ema;            /* 0 (default): a loss overwrites the score; else
			          score = ema*score + (1-ema)*loss, 0 <= ema < 1 */
} ibstore_prune_opts;

/* Fills *opts with the defaults above (epochs = 0: the caller must set it)
 * and sets opts->size; IBSTORE_EINVAL (nothing written) for a size no
 * version of the struct had. */
#define ibstore_prune_opts_init(opts) ibstore_prune_opts_init_sized((opts), sizeof *(opts))
int ibstore_prune_opts_init_sized(ibstore_prune_opts *opts, size_t size);

/* "infobatch", "random", "none" and "native", "compat" (any case); see
 * ibstore_compress_parse for the rules of *_parse and *_name. */
int ibstore_policy_parse(const char *name, ibstore_policy *out);
const char *ibstore_policy_name(ibstore_policy policy);
int ibstore_mode_parse(const char *name, ibstore_mode *out);
const char *ibstore_mode_name(ibstore_mode mode);

/* Checks opts: 0, or IBSTORE_EINVAL with a message in msg (msglen bytes,
 * 256 are enough; msg may be NULL) for an unknown policy or mode, a ratio
 * outside [0, 1), a delta outside [0, 1], epochs 0 or an ema outside [0, 1). */
int ibstore_prune_opts_check(const ibstore_prune_opts *opts, char *msg, size_t msglen);

/* 1 when epoch `epoch` (0-based) prunes under opts, 0 when it anneals (or
 * when opts is NULL or its size invalid). */
int ibstore_prune_epoch_prunes(const ibstore_prune_opts *opts, uint32_t epoch);

/* The initial score of a sample never trained on: NaN in native mode (never
 * seen: excluded from the mean, always kept), 3.0 in compat mode (NaN when
 * opts is NULL or its size invalid). */
float ibstore_prune_initial_score(const ibstore_prune_opts *opts);

/* What a plan did, globally (before slicing). */
typedef struct ibstore_plan_stats {
	uint64_t samples;    /* N */
	uint64_t kept;       /* plan length */
	uint64_t pruned;     /* N - kept */
	uint64_t below_mean; /* candidates for pruning (scores < threshold) */
	uint64_t unseen;     /* native: samples never seen (always kept) */
	double threshold;    /* the mean; NaN when no sample had a score */
	double weight_sum;   /* sum of the plan's weights */
	int prunes;          /* 1 in a pruning epoch, 0 when annealing */
} ibstore_plan_stats;

/* An epoch's global plan: a permutation of the surviving ids, each with its
 * gradient weight.  Immutable once computed. */
typedef struct ibstore_plan {
	uint64_t len;
	const uint64_t *ids;
	const float *weights;
	ibstore_plan_stats stats;
} ibstore_plan;

/*
 * Computes the plan of epoch `epoch` from `n` scores (float32, one per
 * sample id).  Pure: the result depends only on (opts, epoch, scores).
 * Free the plan with ibstore_plan_free().  msg (may be NULL) receives a
 * message on error.  Thread-safe (no shared state).
 * Returns 0, or:
 *   IBSTORE_EINVAL  NULL out, NULL scores with n > 0, bad options
 *                   (ibstore_prune_opts_check), n >= 2^31, an infinite
 *                   score, or (compat mode) a NaN score;
 *   IBSTORE_ENOMEM.
 */
int ibstore_plan_compute(const ibstore_prune_opts *opts, uint32_t epoch, const float *scores,
			 uint64_t n, ibstore_plan **out, char *msg, size_t msglen);
void ibstore_plan_free(ibstore_plan *plan);

/* How a rank's slice is balanced when the plan does not divide by world. */
typedef enum {
	IBSTORE_SLICE_PAD = 0,  /* repeat plan entries from its start, weight 0 */
	IBSTORE_SLICE_DROP = 1, /* drop the tail so every rank has floor(len/world) */
} ibstore_slice_mode;

/* "pad", "drop" (any case). */
int ibstore_slice_parse(const char *name, ibstore_slice_mode *out);
const char *ibstore_slice_name(ibstore_slice_mode mode);

/*
 * Number of entries of every rank's slice of `plan` among `world` ranks (the
 * same on every rank): ceil(len / world) under IBSTORE_SLICE_PAD,
 * floor(len / world) under IBSTORE_SLICE_DROP.  0 when plan is NULL or
 * world is 0.
 */
uint64_t ibstore_plan_slice_len(const ibstore_plan *plan, uint32_t world,
				ibstore_slice_mode mode);

/* The gradient weight of a padding entry: an entry that only balances the
 * ranks' slices (its sample belongs to another rank's slice).  Every plan
 * entry has a weight of at least 1, so this value marks padding alone. */
#define IBSTORE_PADDING_WEIGHT 0.0f

/* 1 when an entry of this weight is padding (IBSTORE_PADDING_WEIGHT), else 0. */
int ibstore_is_padding(float weight);

/*
 * Entry i of rank `rank`'s slice: plan position i*world + rank as PyTorch's
 * DistributedSampler strides it (rank r gets positions r, r + world,
 * r + 2*world, ...).  Under IBSTORE_SLICE_PAD a position past the plan's end
 * is padding: the entry at position - len, repeated from the start, with
 * weight IBSTORE_PADDING_WEIGHT; only a slice's last entry can be padding.
 * Returns 0, or:
 *   IBSTORE_EINVAL  plan, id or weight NULL, rank >= world, or i >= the
 *                   slice length.
 */
int ibstore_plan_slice_entry(const ibstore_plan *plan, uint32_t rank, uint32_t world,
			     ibstore_slice_mode mode, uint64_t i, uint64_t *id, float *weight);

/* ---------------------------------------------------------------------- */
/* Run state: one small LMDB file per training run                         */
/* ---------------------------------------------------------------------- */

typedef struct ibstore_run ibstore_run;

typedef struct ibstore_run_opts {
	uint32_t size;             /* sizeof as the caller compiled it: set by
				      ibstore_run_opts_init() */
	ibstore_prune_opts prune;  /* stays right after size (see Conventions) */
	uint64_t samples;          /* N, the dataset's sample count (required) */
	uint32_t batch_size;       /* default 128 */
	int drop_last;             /* drop a last partial batch; default 0 */
	uint32_t rank, world;      /* this process's slice; default 0 of 1 */
	ibstore_slice_mode slice;  /* default IBSTORE_SLICE_PAD */
	uint32_t checkpoint_every; /* commit every so many batches; 0: at epoch
				      ends only; default 64 */
} ibstore_run_opts;

/* Fills *opts (and opts->prune) with the defaults and sets both sizes; the
 * macro passes the caller's sizeof of each.  IBSTORE_EINVAL (nothing
 * written) for sizes no version of the structs had. */
#define ibstore_run_opts_init(opts) \
	ibstore_run_opts_init_sized((opts), sizeof *(opts), sizeof (opts)->prune)
int ibstore_run_opts_init_sized(ibstore_run_opts *opts, size_t size, size_t prune_size);

/*
 * Opens the run state at `path` (a file), creating it from `opts` when it
 * does not exist or is empty (as mkstemp() leaves it).  When it exists, `opts` may be NULL (the stored
 * configuration is used) or must agree with it (IBSTORE_EMISMATCH names the
 * first difference).  The file is locked: a second opener gets
 * IBSTORE_ESTATE.  *out is set even on failure (unless IBSTORE_ENOMEM) for
 * ibstore_run_errmsg(); close it with ibstore_run_close().
 * A run handle must be used by one thread at a time.
 * Returns 0, or:
 *   IBSTORE_EINVAL    NULL out, no path, or bad options (samples 0 or
 *                     >= 2^32, batch_size 0, rank >= world, ...);
 *   IBSTORE_ENOTFOUND no file at `path` and opts NULL;
 *   IBSTORE_EMISMATCH opts differ from the stored configuration;
 *   IBSTORE_ESTATE    another handle or process has the run open;
 *   IBSTORE_EFORMAT   not a run state, or a malformed one;
 *   IBSTORE_ECATALOG  LMDB failed; IBSTORE_ETOOBIG: the file is full;
 *   IBSTORE_EIO, IBSTORE_ENOMEM.
 */
int ibstore_run_open(const char *path, const ibstore_run_opts *opts, ibstore_run **out);
void ibstore_run_close(ibstore_run *run);
const char *ibstore_run_errmsg(const ibstore_run *run);

/* The stored configuration, written in the caller's layout (the macro
 * passes sizeof *out and of out->prune, as ibstore_run_opts_init() does).
 * 0, or IBSTORE_EINVAL (NULL, a run not open, or sizes no version had). */
#define ibstore_run_config_get(run, out) \
	ibstore_run_config_get_sized((run), (out), sizeof *(out), sizeof (out)->prune)
int ibstore_run_config_get_sized(const ibstore_run *run, ibstore_run_opts *out, size_t size,
				 size_t prune_size);

/* This epoch's plan and its rank slice, known before any I/O. */
typedef struct ibstore_epoch_info {
	uint32_t epoch;
	uint64_t samples;  /* entries of this rank's slice (incl. weight-0 padding) */
	uint64_t batches;  /* batches of this rank's slice */
	uint64_t cursor;   /* batches already reported (resume point) */
	ibstore_plan_stats plan;
} ibstore_epoch_info;

/*
 * Begins epoch `epoch`.  If the state holds this epoch unfinished (a run
 * that stopped mid-epoch after a checkpoint), its stored plan and cursor are
 * resumed, so the batches after the last commit are served again exactly;
 * otherwise the plan is computed from the current scores with cursor 0.
 * Nothing is committed here: the plan is stored with the epoch's first
 * checkpoint, and until then the stored scores give the same plan again.
 * This rank's slice of the plan (docs/PRUNING.md) is built here, once.
 * Returns 0, or IBSTORE_EINVAL (NULL, not open, or epoch >= the run's
 * epochs), IBSTORE_ENOMEM; the previous epoch's plan stays on failure.
 */
int ibstore_run_epoch_begin(ibstore_run *run, uint32_t epoch, ibstore_epoch_info *info);

/*
 * Batch `b` of this rank's slice in the current epoch: `*n` entries at
 * `ids` and `weights` (pointers valid until the next epoch_begin or close).
 * Padding entries have weight IBSTORE_PADDING_WEIGHT.
 * 0, or IBSTORE_EINVAL (NULL, not open, b >= the epoch's batches),
 * IBSTORE_ESTATE (no epoch begun).
 */
int ibstore_run_batch(ibstore_run *run, uint64_t b, const uint64_t **ids,
		      const float **weights, size_t *n);

/*
 * This rank's whole slice of the current epoch's plan, as epoch_begin built
 * it (the batches of ibstore_run_batch, back to back): `*len` entries at
 * `ids` and `weights` (valid until the next epoch_begin or close), padding
 * with IBSTORE_PADDING_WEIGHT.  The loader and the Python layer take their
 * order from it instead of slicing the plan again.
 * 0, or IBSTORE_EINVAL (NULL, not open), IBSTORE_ESTATE (no epoch begun).
 */
int ibstore_run_slice(const ibstore_run *run, const uint64_t **ids, const float **weights,
		      uint64_t *len);

/* The global plan of the current epoch (valid until the next epoch_begin),
 * or NULL when the run is not in an epoch. */
const ibstore_plan *ibstore_run_plan(const ibstore_run *run);

/*
 * Records per-sample (unweighted) losses by id: they become scores (or are
 * smoothed into them).  All-or-nothing: a non-finite loss or an id >= N
 * gives IBSTORE_EINVAL naming it, and no score changes.  Losses of other
 * ranks' samples (after an all-gather) are reported the same way.
 * 0, or IBSTORE_EINVAL (that, NULL arrays with n > 0, or a run not open).
 */
int ibstore_run_report(ibstore_run *run, const uint64_t *ids, const float *losses, size_t n);

/*
 * Marks the next `nbatches` batches of this rank as done (their losses
 * reported); commits every checkpoint_every batches.
 * 0, or IBSTORE_EINVAL (not open, or past the epoch's end), IBSTORE_ESTATE
 * (no epoch begun), IBSTORE_ECATALOG / IBSTORE_ETOOBIG (the commit failed:
 * LMDB error, file full).
 */
int ibstore_run_advance(ibstore_run *run, uint64_t nbatches);

/* Commits scores and cursor now.  0, or IBSTORE_EINVAL (not open),
 * IBSTORE_ECATALOG, IBSTORE_ETOOBIG (file full). */
int ibstore_run_checkpoint(ibstore_run *run);

/* I/O figures the loader adds to an epoch's statistics. */
typedef struct ibstore_epoch_io {
	uint64_t bytes_read;
	uint64_t bytes_skipped;
	double seconds;
} ibstore_epoch_io;

/* Ends the current epoch: records its statistics and commits. `io` may be
 * NULL.  0, or IBSTORE_EINVAL (not open), IBSTORE_ESTATE (no epoch begun),
 * IBSTORE_ECATALOG, IBSTORE_ETOOBIG (file full); on failure the epoch stays
 * current. */
int ibstore_run_epoch_end(ibstore_run *run, const ibstore_epoch_io *io);

/* Statistics of one finished epoch. */
typedef struct ibstore_epoch_stats {
	uint32_t epoch;
	ibstore_plan_stats plan;
	ibstore_epoch_io io;
} ibstore_epoch_stats;

typedef struct ibstore_run_info {
	uint32_t size;       /* bytes the library wrote: the caller's sizeof */
	uint32_t epoch;      /* current (or last begun) epoch */
	int in_epoch;        /* 1 between epoch_begin and epoch_end */
	uint64_t cursor;     /* batches reported in the current epoch */
	uint32_t epochs_done;/* finished epochs with statistics */
	uint64_t reports_rejected; /* report calls refused (non-finite, bad id) */
	uint64_t committed;  /* batches of the current epoch in the file: a trainer
				that saves its model when this moves stays in step
				with what a resume will replay */
	uint64_t batches;    /* batches of this rank's slice in the current
				epoch (0 when not in one) */
	uint64_t start;      /* plan position where this world's slices of the
				current epoch begin: 0, or where an elastic
				resume (ibstore_run_open_elastic) picked it up */
	uint32_t generation; /* elastic resumes the run's state went through */
} ibstore_run_info;

/* The run's progress.  The macro passes sizeof *out: the library writes
 * that many bytes (a caller built against an older header gets the fields
 * it knows).  0, or IBSTORE_EINVAL (NULL, not open, or a size no version
 * of ibstore_run_info had: the run's message says which). */
#define ibstore_run_info_get(run, out) ibstore_run_info_get_sized((run), (out), sizeof *(out))
int ibstore_run_info_get_sized(const ibstore_run *run, ibstore_run_info *out, size_t size);
/* Statistics of finished epoch `epoch`.  0, or IBSTORE_EINVAL (NULL or not
 * open), IBSTORE_ENOTFOUND (no statistics for it), IBSTORE_EFORMAT (a
 * malformed record), IBSTORE_ECATALOG. */
int ibstore_run_epoch_stats_get(const ibstore_run *run, uint32_t epoch, ibstore_epoch_stats *out);
/* The current scores (N floats; NaN = never seen), valid until the next
 * call; NULL for a NULL or unopened run. */
const float *ibstore_run_scores(const ibstore_run *run, uint64_t *n);
/* The file `run` has open (for an elastic run, the one
 * ibstore_run_open_elastic chose); NULL for a NULL or unopened run. */
const char *ibstore_run_file(const ibstore_run *run);

/*
 * Elastic resume: one logical run state for a data-parallel job, whatever
 * its number of ranks (docs/PRUNING.md, "Elastic resume").
 *
 * The job's state is the set of per-rank files under one `base` path:
 * ibstore_run_path() names them ("<base>" for one rank, else
 * "<base>.rank<r>-of-<w>"; after a change of world "<base>.g<g>" and
 * "<base>.g<g>.rank<r>-of-<w>", g counting the changes).  Each rank writes
 * only its own file; they hold the same plan, and between them every
 * sample's latest score (the rank that trains a sample records its loss).
 * Together they say how far the job got: the epoch and the prefix of the
 * epoch's global plan every rank has consumed (the ranks take positions
 * r, r + W, ...: all at cursor c means positions [start, start + c·B·W)).
 *
 * ibstore_run_open_elastic opens rank opts->rank of opts->world of the job
 * at `base`:
 *  - no file of the job yet: a new run (as ibstore_run_open at its path);
 *  - the newest complete set of files has this world and every file stands
 *    at the same point: this rank's file, resumed as ibstore_run_open does;
 *  - otherwise (another world, or files at different points after a stop
 *    in the middle of a checkpoint): this rank's file of the next
 *    generation is built from that set, without talking to the other
 *    ranks (each rank reads the same files and computes the same state):
 *    the scores (each sample's from the file of the rank that trained it in
 *    the current epoch), the epoch, its plan, and the resume point = the
 *    first plan position not consumed by every old rank; the new ranks'
 *    strided slices cover the plan's rest [start, len) (ibstore_run_info:
 *    start).  Batches some old ranks finished past that point (a partial
 *    step) are trained again, and the losses they reported are dropped, so
 *    a sample counts once in an epoch.
 * The new file is written to a temporary name and renamed: a process
 * killed meanwhile leaves the old set intact.  Every file of the set must
 * be readable here (a shared directory, or copies).  A set's files are
 * read without their lock; do not resume while the old job still runs.
 * `opts` is required (its rank and world are this process's); the other
 * options must equal the stored ones (IBSTORE_EMISMATCH names the first
 * difference).  Returns what ibstore_run_open returns, and IBSTORE_EFORMAT
 * for files of one set that do not belong together (another run's
 * configuration, plan or epoch).
 */
int ibstore_run_open_elastic(const char *base, const ibstore_run_opts *opts, ibstore_run **out);

/* The file name of rank `rank` of `world` in generation `gen` of the job at
 * `base` (see above), written to buf (cap bytes).  0, or IBSTORE_EINVAL
 * (NULL, rank >= world), IBSTORE_ETOOBIG (cap too small). */
int ibstore_run_path(const char *base, uint32_t gen, uint32_t rank, uint32_t world, char *buf,
		     size_t cap);

/*
 * Writes the logical state of the job at `base` (its newest complete set
 * of per-rank files, merged as an elastic resume would) as a one-rank run
 * state at `out_path`, which must not exist.  `ibstore scores` shows a
 * job this way.  `*world` and `*gen` (may be NULL) receive the set's.
 * 0, or IBSTORE_ENOTFOUND (no complete set), IBSTORE_EEXIST (out_path
 * exists), IBSTORE_EINVAL (NULL base or out_path), the codes of
 * ibstore_run_open_elastic;
 * `msg` (may be NULL) receives msglen bytes of message on failure.
 */
int ibstore_run_merge(const char *base, const char *out_path, uint32_t *world, uint32_t *gen,
		      char *msg, size_t msglen);


/* ---------------------------------------------------------------------- */
/* Loader: pruned epochs streamed from storage                             */
/* ---------------------------------------------------------------------- */

typedef struct ibstore_loader ibstore_loader;

typedef enum {
	IBSTORE_BACKEND_AUTO = 0,  /* io_uring, else the pread pool */
	IBSTORE_BACKEND_URING = 1, /* io_uring only (fails if refused) */
	IBSTORE_BACKEND_PREAD = 2, /* a pool of threads calling pread */
	IBSTORE_BACKEND_MMAP = 3,  /* decode straight from the page cache through a
				      read-only mapping: no copy into read slots.
				      `auto` picks it for an epoch whose shards are
				      all resident (mincore) when `direct` is off.
				      A shard truncated by someone else while
				      mapped raises SIGBUS: datasets are immutable,
				      but choose uring or pread where that matters */
} ibstore_backend;

typedef enum {
	IBSTORE_ORDER_RANDOM = 0,   /* the plan's order (a uniform permutation) */
	IBSTORE_ORDER_LOCALITY = 1, /* blocks of neighbouring records in random
				       order, samples shuffled within a window of
				       blocks: fewer, larger reads for small records */
} ibstore_order;

typedef enum {
	IBSTORE_CORRUPT_FAIL = 0, /* a corrupt sample fails the epoch */
	IBSTORE_CORRUPT_SKIP = 1, /* it is left out of its batch and counted */
} ibstore_corrupt_policy;

/* ---- Images: decoded and augmented in the loader's decode threads ---- */

typedef enum {
	IBSTORE_LAYOUT_HWC = 0, /* a batch of images is [n, H, W, 3] */
	IBSTORE_LAYOUT_CHW = 1, /* [n, 3, H, W] (PyTorch's) */
} ibstore_layout;

typedef enum {
	IBSTORE_DTYPE_UINT8 = 0,   /* pixels 0..255 */
	IBSTORE_DTYPE_FLOAT32 = 1, /* x / 255, then (x - mean[c]) / std[c] */
} ibstore_dtype;

typedef enum {
	IBSTORE_IMAGES_EVAL = 0,  /* resize the short side to resize_short, centre
				     crop width x height */
	IBSTORE_IMAGES_TRAIN = 1, /* RandomResizedCrop to width x height (scale,
				     ratio: torchvision's semantics and fallback),
				     then a horizontal flip with probability flip */
} ibstore_images_mode;

/*
 * The image stage (a versioned struct: ibstore_image_opts_init()).  Each
 * sample is decoded (JPEG through libjpeg-turbo, at the smallest DCT scale
 * of 1/8, 1/4, 1/2 and 1 that still covers the crop at the output size —
 * the other scales decode slower than full size — converting only the
 * crop's rows and columns; PNG through libspng; WebP
 * through libwebp; the
 * codec chosen by the payload's magic bytes), converted to RGB (grayscale,
 * CMYK, 16-bit and alpha images included), cropped, resized (area-weighted
 * when shrinking, bilinear when enlarging) and written into the batch as
 * one dense tensor.  Random choices come from a counter-based stream keyed
 * by (seed, epoch, sample id): a resumed run, any world size and any
 * number of threads see the same pixels.  A sample that is not an image of
 * these formats, is truncated or corrupt, or exceeds max_pixels is a
 * corrupt sample for the loader's policy (fail, or skip with its id).
 */
typedef struct ibstore_image_opts {
	uint32_t size;            /* sizeof as the caller compiled it */
	uint32_t width, height;   /* output size, 1..8192 (required) */
	ibstore_layout layout;    /* default HWC */
	ibstore_dtype dtype;      /* default UINT8 */
	ibstore_images_mode mode; /* default EVAL */
	float scale[2];           /* train: crop area fraction, default 0.08, 1 */
	float ratio[2];           /* train: crop aspect ratio, default 3/4, 4/3 */
	float flip;               /* train: flip probability, default 0.5 */
	uint32_t resize_short;    /* eval: short side before the centre crop;
				     0 (default): min(width, height) / 0.875
				     rounded (256 for 224) */
	float mean[3], std[3];    /* float32 normalisation; default 0 and 1 */
	uint64_t max_pixels;      /* larger images are refused (decompression
				     bombs); default 8192 * 8192 */
	uint64_t seed;            /* the random stream's seed; the loader uses
				     the run's seed when this is 0 (default) */
	uint32_t pad;             /* train: when > 0, torchvision's
				     RandomCrop(size, padding=pad) instead of
				     RandomResizedCrop: the image resized to
				     width x height, framed by pad black pixels,
				     a width x height window at a uniform offset
				     0..2 pad each way, then the flip; default 0 */
} ibstore_image_opts;

/* Fills *opts with the defaults above (width and height 0: set them). */
#define ibstore_image_opts_init(opts) ibstore_image_opts_init_sized((opts), sizeof *(opts))
int ibstore_image_opts_init_sized(ibstore_image_opts *opts, size_t size);
/* "hwc", "chw"; "uint8", "float32"; "eval", "train" (exact lower case). */
int ibstore_layout_parse(const char *name, ibstore_layout *out);
const char *ibstore_layout_name(ibstore_layout layout);
int ibstore_dtype_parse(const char *name, ibstore_dtype *out);
const char *ibstore_dtype_name(ibstore_dtype dtype);
int ibstore_images_mode_parse(const char *name, ibstore_images_mode *out);
const char *ibstore_images_mode_name(ibstore_images_mode mode);

/*
 * One encoded sample through the image stage, outside a loader (tools,
 * inspection).  opts NULL: decoded at full size to RGB8 [height, width, 3]
 * with no augmentation (for a JPEG, libjpeg-turbo's own pixels); else the
 * sample exactly as a loader with these options emits it in epoch `epoch`:
 * its random stream keyed by (opts->seed, or `seed` when that is 0, which
 * is what the loader passes: the run's seed), the epoch and `id`.  *out is
 * malloc'd (free() it), *out_size its bytes, *width and *height the image's.
 * Returns 0, or IBSTORE_EINVAL (NULL, bad options), IBSTORE_EUNSUPPORTED
 * (not a JPEG, PNG or WebP payload), IBSTORE_ECORRUPT (truncated or
 * corrupt), IBSTORE_ETOOBIG (more than opts->max_pixels pixels, or 8192 x
 * 8192 with opts NULL), IBSTORE_ENOMEM; msg (may be NULL) says why.
 */
int ibstore_image_sample(const void *src, size_t n, const ibstore_image_opts *opts, uint64_t seed,
			 uint32_t epoch, uint64_t id, void **out, size_t *out_size, uint32_t *width,
			 uint32_t *height, char *msg, size_t msglen);

/* Writes RGB8 pixels [height, width, 3] as a PNG file at path (through
 * path.tmp and a rename).  0, or IBSTORE_EINVAL, IBSTORE_EIO, with msg. */
int ibstore_image_write_png(const char *path, const void *rgb, uint32_t width, uint32_t height,
			    char *msg, size_t msglen);

typedef struct ibstore_loader_opts {
	uint32_t size;            /* sizeof as the caller compiled it: set by
				     ibstore_loader_opts_init() */
	uint32_t batch_size;      /* 0: the run's; otherwise must equal it */
	int drop_last;            /* -1: the run's; otherwise must equal it */
	uint32_t prefetch;        /* read no further than this many batches ahead of
				     the consumer; 0 (default): as far as the
				     budget allows */
	uint32_t queue_depth;     /* reads in flight; default 64 */
	uint32_t threads;         /* decode threads; 0 (default) = cores - 1, at
				     least 1 (the training keeps a core).  When
				     reads from disk wait to be decoded, the
				     loader's I/O thread decodes too */
	ibstore_backend backend;  /* default AUTO */
	int direct;               /* O_DIRECT reads: 1 on, 0 off, -1 (default) auto:
				     on for an epoch read from disk when the
				     records average 64 KiB or more (off when
				     every shard is in the page cache, whatever
				     the backend) */
	ibstore_order order;      /* default RANDOM */
	int verify;               /* xxh3 check of every payload; default 1 */
	ibstore_corrupt_policy corrupt; /* default FAIL */
	uint64_t gap;             /* read through gaps up to this many bytes between
				     wanted records (coalescing); 0 turns it off;
				     default 32 KiB */
	uint64_t max_read;        /* largest coalesced read; default 1 MiB */
	uint64_t budget;          /* bytes of read slots + decoded batches not yet
				     taken (those the caller holds come on top);
				     default 512 MiB */
	/* Called from the I/O thread for every read request (tracing, tests).
	 * May be NULL. */
	void (*on_read)(void *ctx, uint32_t shard, uint64_t offset, uint64_t length);
	void *on_read_ctx;
	/* The image stage: NULL (default) hands samples over as stored; else
	 * every sample is decoded and augmented as *images says (copied at
	 * open) and batches are dense image tensors (ibstore_batch.shape). */
	const ibstore_image_opts *images;
} ibstore_loader_opts;

/* Fills *opts with the defaults above and sets opts->size; IBSTORE_EINVAL
 * (nothing written) for a size no version of the struct had. */
#define ibstore_loader_opts_init(opts) ibstore_loader_opts_init_sized((opts), sizeof *(opts))
int ibstore_loader_opts_init_sized(ibstore_loader_opts *opts, size_t size);
/* "auto", "uring", "pread", "mmap"; "random", "locality"; "fail", "skip"
 * (exact lower case). */
int ibstore_backend_parse(const char *name, ibstore_backend *out);
const char *ibstore_backend_name(ibstore_backend backend);
int ibstore_order_parse(const char *name, ibstore_order *out);
const char *ibstore_order_name(ibstore_order order);
int ibstore_corrupt_parse(const char *name, ibstore_corrupt_policy *out);
const char *ibstore_corrupt_name(ibstore_corrupt_policy corrupt);

/*
 * Opens a loader over a dataset and a run (whose sample count must equal
 * the dataset's).  Both must outlive the loader.  While it is open the
 * dataset's reading calls may be used from any thread, and the run's
 * ibstore_run_report() (and ibstore_run_exchange_mpi()) from the consumer
 * thread between loader calls; the run's epoch and batch calls belong to
 * the loader.
 * *out is set even on failure (unless IBSTORE_ENOMEM) for
 * ibstore_loader_errmsg(); close it with ibstore_loader_close().
 * Thread-safety: all loader calls are made from one consumer thread,
 * except ibstore_loader_release(), which any thread may call.
 * Returns 0, or:
 *   IBSTORE_EINVAL      NULL, a handle not open, or an option out of range;
 *   IBSTORE_EMISMATCH   the run's sample count differs from the dataset's,
 *                       or batch_size / drop_last differ from the run's;
 *   IBSTORE_EUNSUPPORTED the backend asked for is unavailable (io_uring
 *                       refused);
 *   IBSTORE_EIO, IBSTORE_ENOMEM.
 */
int ibstore_loader_open(ibstore_dataset *ds, ibstore_run *run, const ibstore_loader_opts *opts,
			ibstore_loader **out);
void ibstore_loader_close(ibstore_loader *l);
const char *ibstore_loader_errmsg(const ibstore_loader *l);

/*
 * Begins epoch `epoch` (through ibstore_run_epoch_begin, so a run stopped
 * mid-epoch resumes after its last committed batch) and starts reading.
 * `info` (may be NULL) has the exact sample and batch counts.
 * An epoch left unfinished is abandoned first.
 * Returns 0, or: the codes of ibstore_run_epoch_begin; IBSTORE_EINVAL (NULL
 * or unusable loader); IBSTORE_ETOOBIG (a batch larger than the budget);
 * IBSTORE_EUNSUPPORTED (O_DIRECT or the backend refused); IBSTORE_EIO
 * (mapping a shard failed); IBSTORE_ENOMEM.
 */
int ibstore_loader_epoch_begin(ibstore_loader *l, uint32_t epoch, ibstore_epoch_info *info);

/* A batch: structure of arrays plus one contiguous data arena. */
typedef struct ibstore_batch {
	uint32_t epoch;
	uint64_t index;          /* batch number within the epoch */
	size_t n;                /* samples in this batch */
	const uint64_t *ids;
	const int32_t *labels;
	const float *weights;    /* gradient rescale weights; IBSTORE_PADDING_WEIGHT
				    for padding (ibstore_is_padding) */
	const uint32_t *sizes;   /* decoded bytes of each sample */
	const uint64_t *offsets; /* of each sample in data */
	const uint8_t *data;     /* the arena: samples back to back */
	uint64_t data_size;
	uint32_t sample_size;    /* when every sample has this size, data is a
				    dense [n, sample_size] block; else 0 */
	size_t n_skipped;        /* corrupt samples left out (skip policy) */
	const uint64_t *skipped_ids;
	/* With the image stage: data is one dense tensor of `dtype` and shape
	 * [n, H, W, 3] (HWC) or [n, 3, H, W] (CHW); ndim 4.  Otherwise ndim 0. */
	uint32_t ndim;
	uint32_t shape[4];
	ibstore_dtype dtype;
} ibstore_batch;

/*
 * Next batch of the epoch, in order.  At the end of the epoch returns 0
 * with *out = NULL.  A batch stays valid until released; several may be
 * held at once and released in any order.
 * Returns 0, or:
 *   IBSTORE_EINVAL    NULL;
 *   IBSTORE_ESTATE    no epoch has begun;
 *   IBSTORE_ECORRUPT  a corrupt sample under the fail policy, named in the
 *                     message (the epoch cannot continue);
 *   IBSTORE_EIO       a read failed (the epoch cannot continue);
 *   IBSTORE_ENOMEM.
 */
int ibstore_loader_next(ibstore_loader *l, const ibstore_batch **out);

/* Gives a batch's memory back.  Any thread; each batch exactly once; also
 * after the epoch ended or the loader was closed (not concurrently with
 * the close).  After ibstore_loader_close `l` may be NULL: the batch no
 * longer needs its loader.  A NULL `l` with a batch whose loader is open
 * does nothing. */
void ibstore_loader_release(ibstore_loader *l, const ibstore_batch *batch);

/*
 * Reports the per-sample (unweighted) losses of a batch, in its order
 * (batch->n values), before it is released.  Weight-0 entries (padding that
 * balances ranks) are neither recorded nor checked: the rank that owns the
 * sample reports it.  The run's cursor advances over batches whose losses are all
 * reported, committing every checkpoint_every batches.  Rejects non-finite
 * losses (nothing recorded).
 * 0, or IBSTORE_EINVAL (NULL, or a non-finite loss), IBSTORE_ESTATE (a batch
 * not of the current epoch), the codes of ibstore_run_advance,
 * IBSTORE_ENOMEM.
 */
int ibstore_loader_report(ibstore_loader *l, const ibstore_batch *batch, const float *losses);

/* Ends the epoch (all batches must have been taken): records statistics in
 * the run and commits.  0, or IBSTORE_EINVAL (NULL), IBSTORE_ESTATE (no
 * epoch, or batches not taken), the codes of ibstore_run_epoch_end. */
int ibstore_loader_epoch_end(ibstore_loader *l);

typedef struct ibstore_loader_stats {
	uint32_t size;            /* bytes the library wrote: the caller's sizeof */
	uint32_t epoch;
	uint64_t batches;         /* emitted so far this epoch */
	uint64_t samples;         /* emitted so far */
	uint64_t kept, pruned;    /* of the plan (global) */
	uint64_t bytes_read;      /* all bytes requested from the kernel */
	uint64_t bytes_skipped;   /* record bytes of pruned samples never requested */
	uint64_t read_around;     /* requested bytes beyond the records a read
				     delivers: alignment, and gaps read through
				     (pruned records, other ranks' records, or
				     records another read window fetches) */
	uint64_t requests;        /* read requests submitted */
	uint64_t corrupt_skipped; /* samples left out under the skip policy */
	double io_wait;           /* seconds the consumer waited in next() */
	double seconds;           /* since epoch_begin (to epoch_end once ended) */
	const char *backend;      /* "io_uring", "pread", or "mmap" for an epoch
				     served from the page cache */
	const char *buffers;      /* "hugetlb", "thp" or "normal" read slots */
	int direct;               /* O_DIRECT in use */
	int registered;           /* io_uring registered files+buffers in use */
} ibstore_loader_stats;

/* Statistics of the current (or last) epoch.  The macro passes sizeof
 * *out: the library writes that many bytes (a caller built against an older
 * header gets the fields it knows).  0, or IBSTORE_EINVAL (NULL, or a size
 * no version of ibstore_loader_stats had: the loader's message says which). */
#define ibstore_loader_stats_get(l, out) ibstore_loader_stats_get_sized((l), (out), sizeof *(out))
int ibstore_loader_stats_get_sized(const ibstore_loader *l, ibstore_loader_stats *out,
				   size_t size);

/* ---------------------------------------------------------------------- */
/* Struct sizes (for bindings)                                             */
/* ---------------------------------------------------------------------- */

/* The public structs, for ibstore_struct_size(); values never change. */
typedef enum {
	IBSTORE_STRUCT_INFO = 1,
	IBSTORE_STRUCT_WRITER_OPTS = 2,
	IBSTORE_STRUCT_PRUNE_OPTS = 3,
	IBSTORE_STRUCT_RUN_OPTS = 4,
	IBSTORE_STRUCT_LOADER_OPTS = 5,
	IBSTORE_STRUCT_LOCATION = 6,
	IBSTORE_STRUCT_PROBLEM = 7,
	IBSTORE_STRUCT_VERIFY_STATS = 8,
	IBSTORE_STRUCT_PLAN_STATS = 9,
	IBSTORE_STRUCT_PLAN = 10,
	IBSTORE_STRUCT_EPOCH_INFO = 11,
	IBSTORE_STRUCT_EPOCH_IO = 12,
	IBSTORE_STRUCT_EPOCH_STATS = 13,
	IBSTORE_STRUCT_RUN_INFO = 14,
	IBSTORE_STRUCT_BATCH = 15,
	IBSTORE_STRUCT_LOADER_STATS = 16,
	IBSTORE_STRUCT_IMAGE_OPTS = 17,
} ibstore_struct;

/* sizeof the struct in this library, 0 for an unknown value: a binding that
 * mirrors the structs (python/ibstore/_lib.py) checks its layouts with it. */
size_t ibstore_struct_size(ibstore_struct which);

/* ---------------------------------------------------------------------- */
/* Distributed runs                                                        */
/* ---------------------------------------------------------------------- */

/*
 * The loss exchange of a data-parallel run over MPI,
 * ibstore_run_exchange_mpi(), is declared in ibstore_mpi.h (it includes
 * <mpi.h>) and lives in libibstore_mpi, built with meson's option `mpi`;
 * this header and libibstore never depend on MPI.
 */

#ifdef __cplusplus
}
#endif

#endif /* IBSTORE_H */
