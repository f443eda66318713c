/*
 * abi_old.h — the parts of include/ibstore.h that test_abi's old caller
 * uses, copied with the newest field of each versioned struct removed, as a
 * program compiled before that field existed has them:
 *   ibstore_writer_opts  without jobs
 *   ibstore_prune_opts   without ema
 *   ibstore_run_opts     without checkpoint_every
 *   ibstore_loader_opts  without on_read_ctx
 *   ibstore_info         without keys
 *   ibstore_run_info     without batches
 *   ibstore_loader_stats without registered
 * Everything else is as in ibstore.h.  Only tests/abi_old.c includes it (it
 * cannot meet ibstore.h in one translation unit).
 */
#ifndef IBSTORE_H
#define IBSTORE_H

#include <stddef.h>
#include <stdint.h>

enum { IBSTORE_OK = 0, IBSTORE_EINVAL = -1 };

typedef enum {
	IBSTORE_COMPRESS_NONE = 0,
	IBSTORE_COMPRESS_LZ4 = 1,
	IBSTORE_COMPRESS_LZ4HC = 2,
	IBSTORE_COMPRESS_AUTO = 3,
} ibstore_compress;

typedef struct ibstore_writer ibstore_writer;

typedef struct ibstore_writer_opts {
	uint32_t size;
	uint64_t shard_size;
	ibstore_compress compress;
	int lz4hc_level;
	uint32_t alignment;
	int fsync;
} ibstore_writer_opts;

#define ibstore_writer_opts_init(opts) ibstore_writer_opts_init_sized((opts), sizeof *(opts))
int ibstore_writer_opts_init_sized(ibstore_writer_opts *opts, size_t size);
int ibstore_writer_create(const char *path, const ibstore_writer_opts *opts,
			  ibstore_writer **out);
int ibstore_writer_add(ibstore_writer *w, const void *data, size_t len, int32_t label,
		       const char *key, uint64_t *id_out);
int ibstore_writer_publish(ibstore_writer *w);
void ibstore_writer_free(ibstore_writer *w);
const char *ibstore_writer_errmsg(const ibstore_writer *w);

typedef struct ibstore_dataset ibstore_dataset;
int ibstore_dataset_open(const char *path, ibstore_dataset **out);
void ibstore_dataset_close(ibstore_dataset *ds);
const char *ibstore_dataset_errmsg(const ibstore_dataset *ds);

typedef struct ibstore_info {
	uint32_t size;
	uint32_t format_version;
	uint8_t uuid[16];
	uint64_t created;
	uint64_t samples;
	uint32_t shards;
	uint32_t alignment;
	uint64_t bytes_stored;
	uint64_t bytes_raw;
	uint64_t bytes_files;
	uint64_t codec_count[2];
	uint32_t labels;
	uint64_t fixed_size;
	uint64_t max_size;
} ibstore_info;

#define ibstore_dataset_info_get(ds, out) ibstore_dataset_info_get_sized((ds), (out), sizeof *(out))
int ibstore_dataset_info_get_sized(const ibstore_dataset *ds, ibstore_info *out, size_t size);

typedef enum {
	IBSTORE_POLICY_INFOBATCH = 0,
	IBSTORE_POLICY_RANDOM = 1,
	IBSTORE_POLICY_NONE = 2,
} ibstore_policy;

typedef enum { IBSTORE_MODE_NATIVE = 0, IBSTORE_MODE_COMPAT = 1 } ibstore_mode;

typedef struct ibstore_prune_opts {
	uint32_t size;
	ibstore_policy policy;
	ibstore_mode mode;
	double ratio;
	double delta;
	uint32_t epochs;
	uint64_t seed;
} ibstore_prune_opts;

#define ibstore_prune_opts_init(opts) ibstore_prune_opts_init_sized((opts), sizeof *(opts))
int ibstore_prune_opts_init_sized(ibstore_prune_opts *opts, size_t size);
int ibstore_prune_opts_check(const ibstore_prune_opts *opts, char *msg, size_t msglen);
int ibstore_prune_epoch_prunes(const ibstore_prune_opts *opts, uint32_t epoch);

typedef struct ibstore_plan ibstore_plan;
int ibstore_plan_compute(const ibstore_prune_opts *opts, uint32_t epoch, const float *scores,
			 uint64_t n, ibstore_plan **out, char *msg, size_t msglen);
void ibstore_plan_free(ibstore_plan *plan);

typedef enum { IBSTORE_SLICE_PAD = 0, IBSTORE_SLICE_DROP = 1 } ibstore_slice_mode;

typedef struct ibstore_run ibstore_run;

typedef struct ibstore_run_opts {
	uint32_t size;
	ibstore_prune_opts prune;
	uint64_t samples;
	uint32_t batch_size;
	int drop_last;
	uint32_t rank, world;
	ibstore_slice_mode slice;
} ibstore_run_opts;

#define ibstore_run_opts_init(opts) \
	ibstore_run_opts_init_sized((opts), sizeof *(opts), sizeof (opts)->prune)
int ibstore_run_opts_init_sized(ibstore_run_opts *opts, size_t size, size_t prune_size);
int ibstore_run_open(const char *path, const ibstore_run_opts *opts, ibstore_run **out);
void ibstore_run_close(ibstore_run *run);
const char *ibstore_run_errmsg(const ibstore_run *run);
#define ibstore_run_config_get(run, out) \
	ibstore_run_config_get_sized((run), (out), sizeof *(out), sizeof (out)->prune)
int ibstore_run_config_get_sized(const ibstore_run *run, ibstore_run_opts *out, size_t size,
				 size_t prune_size);

typedef struct ibstore_epoch_info ibstore_epoch_info;
int ibstore_run_epoch_begin(ibstore_run *run, uint32_t epoch, ibstore_epoch_info *info);
int ibstore_run_advance(ibstore_run *run, uint64_t nbatches);
int ibstore_run_checkpoint(ibstore_run *run);

typedef struct ibstore_run_info {
	uint32_t size;
	uint32_t epoch;
	int in_epoch;
	uint64_t cursor;
	uint32_t epochs_done;
	uint64_t reports_rejected;
	uint64_t committed;
} ibstore_run_info;

#define ibstore_run_info_get(run, out) ibstore_run_info_get_sized((run), (out), sizeof *(out))
int ibstore_run_info_get_sized(const ibstore_run *run, ibstore_run_info *out, size_t size);

typedef struct ibstore_loader ibstore_loader;

typedef enum {
	IBSTORE_BACKEND_AUTO = 0,
	IBSTORE_BACKEND_URING = 1,
	IBSTORE_BACKEND_PREAD = 2,
	IBSTORE_BACKEND_MMAP = 3,
} ibstore_backend;

typedef enum { IBSTORE_ORDER_RANDOM = 0, IBSTORE_ORDER_LOCALITY = 1 } ibstore_order;

typedef enum { IBSTORE_CORRUPT_FAIL = 0, IBSTORE_CORRUPT_SKIP = 1 } ibstore_corrupt_policy;

typedef struct ibstore_loader_opts {
	uint32_t size;
	uint32_t batch_size;
	int drop_last;
	uint32_t prefetch;
	uint32_t queue_depth;
	uint32_t threads;
	ibstore_backend backend;
	int direct;
	ibstore_order order;
	int verify;
	ibstore_corrupt_policy corrupt;
	uint64_t gap;
	uint64_t max_read;
	uint64_t budget;
	void (*on_read)(void *ctx, uint32_t shard, uint64_t offset, uint64_t length);
} ibstore_loader_opts;

#define ibstore_loader_opts_init(opts) ibstore_loader_opts_init_sized((opts), sizeof *(opts))
int ibstore_loader_opts_init_sized(ibstore_loader_opts *opts, size_t size);

typedef struct ibstore_batch ibstore_batch;
int ibstore_loader_open(ibstore_dataset *ds, ibstore_run *run, const ibstore_loader_opts *opts,
			ibstore_loader **out);
void ibstore_loader_close(ibstore_loader *l);
const char *ibstore_loader_errmsg(const ibstore_loader *l);
int ibstore_loader_epoch_begin(ibstore_loader *l, uint32_t epoch, ibstore_epoch_info *info);
int ibstore_loader_next(ibstore_loader *l, const ibstore_batch **out);
void ibstore_loader_release(ibstore_loader *l, const ibstore_batch *batch);
int ibstore_loader_epoch_end(ibstore_loader *l);

typedef struct ibstore_loader_stats {
	uint32_t size;
	uint32_t epoch;
	uint64_t batches;
	uint64_t samples;
	uint64_t kept, pruned;
	uint64_t bytes_read;
	uint64_t bytes_skipped;
	uint64_t read_around;
	uint64_t requests;
	uint64_t corrupt_skipped;
	double io_wait;
	double seconds;
	const char *backend;
	const char *buffers;
	int direct;
} ibstore_loader_stats;

#define ibstore_loader_stats_get(l, out) ibstore_loader_stats_get_sized((l), (out), sizeof *(out))
int ibstore_loader_stats_get_sized(const ibstore_loader *l, ibstore_loader_stats *out,
				   size_t size);

#endif
