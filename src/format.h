/*
 * format.h — the on-disk structures of format v1 and the only code that
 * turns disk bytes into them (format.c).  format/FORMAT.md is the spec;
 * every constant here is named there.
 */
#ifndef IBSTORE_FORMAT_H
#define IBSTORE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "ibstore.h"

/* Shard file header: 64 bytes at offset 0 of every shard-NNNNNN.ibr. */
#define IB_SHARD_MAGIC "IBSHARD\x01"
#define IB_SHARD_HEADER_SIZE 64

typedef struct ib_shard_header {
	uint32_t version;
	uint32_t shard;      /* this shard's number */
	uint8_t uuid[16];    /* dataset UUID */
	uint32_t alignment;  /* record alignment of this shard */
} ib_shard_header;

/* Record header: 40 bytes before each record's stored payload. */
#define IB_RECORD_MAGIC 0x31524249u /* "IBR1" read as little-endian u32 */
#define IB_RECORD_HEADER_SIZE 40

typedef struct ib_record_header {
	uint32_t codec;
	uint64_t id;
	uint32_t stored_size;
	uint32_t size;
	int32_t label;
	uint64_t payload_hash; /* xxh3-64 of the stored payload, seed = id */
} ib_record_header;

/* Manifest: the 64-byte file MANIFEST beside the catalog. */
#define IB_MANIFEST_MAGIC "IBSMANI\x01"
#define IB_MANIFEST_SIZE 64
#define IB_MANIFEST_NAME "MANIFEST"
#define IB_CATALOG_DIR "catalog"
#define IB_CATALOG_FILE "catalog/data.mdb"

typedef struct ib_manifest {
	uint32_t version;
	uint8_t uuid[16];
	uint64_t catalog_size;
	uint64_t catalog_hash; /* xxh3-64 of catalog/data.mdb, seed 0 */
} ib_manifest;

/* Sample index entry: 32 bytes; the index is an array of them by id. */
#define IB_INDEX_ENTRY_SIZE 32

typedef struct ib_index_entry {
	uint32_t shard;
	uint32_t stored_size;
	uint64_t offset;     /* of the record header */
	uint32_t size;
	int32_t label;
	uint32_t codec;
} ib_index_entry;

/* Shard table entry in the catalog: 32 bytes per shard. */
#define IB_SHARD_ENTRY_SIZE 32

typedef struct ib_shard_entry {
	uint64_t size;    /* file size in bytes */
	uint64_t hash;    /* xxh3-64 of the whole file, seed 0 */
	uint64_t records;
	uint64_t first_id;
} ib_shard_entry;

/* Dataset summary kept in the catalog's meta database under "summary". */
#define IB_SUMMARY_SIZE 96

typedef struct ib_summary {
	uint32_t version;
	uint32_t alignment;
	uint8_t uuid[16];
	uint64_t created;
	uint64_t samples;
	uint32_t shards;
	uint32_t labels;
	uint64_t bytes_stored;
	uint64_t bytes_raw;
	uint64_t codec_count[2];
	uint64_t keys;
} ib_summary;

#define IB_MAX_ALIGNMENT 4096u
#define IB_MAX_CODEC 1u

/* Encoders write exactly the struct's size into `out`. */
void ib_shard_header_encode(const ib_shard_header *h, uint8_t out[IB_SHARD_HEADER_SIZE]);
void ib_record_header_encode(const ib_record_header *h, uint8_t out[IB_RECORD_HEADER_SIZE]);
void ib_manifest_encode(const ib_manifest *m, uint8_t out[IB_MANIFEST_SIZE]);
void ib_index_entry_encode(const ib_index_entry *e, uint8_t out[IB_INDEX_ENTRY_SIZE]);
void ib_shard_entry_encode(const ib_shard_entry *e, uint8_t out[IB_SHARD_ENTRY_SIZE]);
void ib_summary_encode(const ib_summary *s, uint8_t out[IB_SUMMARY_SIZE]);

/*
 * Decoders take the bytes actually present (`len`) and check them before
 * use.  They return 0 or a negative IBSTORE_E* code with a message in
 * `err` (IB_ERRMSG_LEN bytes) that the caller prefixes with the file name.
 */
int ib_shard_header_decode(const uint8_t *p, size_t len, ib_shard_header *h, char *err);
int ib_record_header_decode(const uint8_t *p, size_t len, ib_record_header *h, char *err);
int ib_manifest_decode(const uint8_t *p, size_t len, ib_manifest *m, char *err);
void ib_index_entry_decode(const uint8_t p[IB_INDEX_ENTRY_SIZE], ib_index_entry *e);
void ib_shard_entry_decode(const uint8_t p[IB_SHARD_ENTRY_SIZE], ib_shard_entry *e);
int ib_summary_decode(const uint8_t *p, size_t len, ib_summary *s, char *err);

/* Offset of the first record in a shard of the given alignment. */
uint64_t ib_first_record_offset(uint32_t alignment);
/* Rounds up to the alignment (a power of two). */
static inline uint64_t ib_align_up(uint64_t v, uint32_t a)
{
	return (v + a - 1) & ~(uint64_t)(a - 1);
}

/*
 * Checks a whole record (header + stored payload, `len` bytes at `p`)
 * against what the index says it should be.  On success *payload points
 * at the stored payload inside `p`.  With `verify` 0 the payload checksum
 * is not computed (the header is still checked).  Message in `err`.
 */
int ib_record_check(const uint8_t *p, size_t len, uint64_t id, const ib_index_entry *want,
		    int verify, const uint8_t **payload, char *err);



/* ---- run state (one LMDB file per training run) ------------------------ */

#define IB_RUN_VERSION 1
#define IB_RUN_CONFIG_SIZE 96
#define IB_RUN_PROGRESS_SIZE 32
#define IB_RUN_SEGMENT_SIZE 16
#define IB_PLAN_STATS_SIZE 64
#define IB_EPOCH_STATS_SIZE (IB_PLAN_STATS_SIZE + 32)

typedef struct ib_run_config {
	uint32_t policy, mode;
	double ratio, delta, ema;
	uint32_t epochs;
	uint64_t seed;
	uint64_t samples;
	uint32_t batch_size, drop_last, rank, world, slice, checkpoint_every;
} ib_run_config;

typedef struct ib_run_progress {
	uint32_t epoch;
	uint32_t in_epoch;
	uint64_t cursor;
	uint32_t epochs_done;
	uint64_t rejected;
} ib_run_progress;

/* Where this world's slices of the current epoch start in its plan, and the
 * elastic resumes (changes of world) behind the file: key "segment",
 * absent in files older than elastic resume (both 0). */
typedef struct ib_run_segment {
	uint32_t gen;
	uint32_t lineage; /* the set a resume built this file from (a digest of
			     its generation, world and resume point); the
			     files of one set agree on it; 0 for generation 0 */
	uint64_t start;
} ib_run_segment;

typedef struct ib_plan_stats {
	uint64_t samples, kept, pruned, below_mean, unseen;
	double threshold, weight_sum;
	uint32_t prunes;
} ib_plan_stats;

typedef struct ib_epoch_stats {
	uint32_t epoch;
	ib_plan_stats plan;
	uint64_t bytes_read, bytes_skipped;
	double seconds;
} ib_epoch_stats;

void ib_run_config_encode(const ib_run_config *c, uint8_t out[IB_RUN_CONFIG_SIZE]);
int ib_run_config_decode(const uint8_t *p, size_t len, ib_run_config *c, char *err);
void ib_run_progress_encode(const ib_run_progress *g, uint8_t out[IB_RUN_PROGRESS_SIZE]);
int ib_run_progress_decode(const uint8_t *p, size_t len, ib_run_progress *g, char *err);
void ib_run_segment_encode(const ib_run_segment *s, uint8_t out[IB_RUN_SEGMENT_SIZE]);
int ib_run_segment_decode(const uint8_t *p, size_t len, ib_run_segment *s, char *err);
void ib_plan_stats_encode(const ib_plan_stats *s, uint8_t out[IB_PLAN_STATS_SIZE]);
void ib_plan_stats_decode(const uint8_t p[IB_PLAN_STATS_SIZE], ib_plan_stats *s);
void ib_epoch_stats_encode(const ib_epoch_stats *s, uint8_t out[IB_EPOCH_STATS_SIZE]);
int ib_epoch_stats_decode(const uint8_t *p, size_t len, ib_epoch_stats *s, char *err);

/* A run's plan record (key "plan"): its stats, then len u32 ids, then len
 * float32 weights.  ib_plan_record_size gives the bytes of a plan of len
 * entries; decode allocates the plan (ibstore_plan_free) and checks every
 * id against `samples`. */
ib_plan_stats ib_plan_stats_to_disk(const ibstore_plan_stats *s);
ibstore_plan_stats ib_plan_stats_from_disk(const ib_plan_stats *s);
size_t ib_plan_record_size(uint64_t len);
void ib_plan_record_encode(const ibstore_plan *p, uint8_t *out);
int ib_plan_record_decode(const uint8_t *p, size_t len, uint64_t samples, ibstore_plan **out,
			  char *err);

/* float32 arrays are stored little-endian; these copy to and from disk. */
void ib_f32_encode(const float *v, uint64_t n, uint8_t *out);
void ib_f32_decode(const uint8_t *p, uint64_t n, float *v);

#endif
