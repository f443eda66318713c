/*
 * writer_int.h — the writer's state, shared by writer.c (public API, index,
 * keys, statistics), writer_shard.c (shard files), writer_pool.c
 * (compression, worker pool) and writer_publish.c (catalog, manifest,
 * rename).  Not public API.
 */
#ifndef IBSTORE_WRITER_INT_H
#define IBSTORE_WRITER_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#include "catalog.h"
#include "format.h"
#include "internal.h"

#define OUTBUF_SIZE (1u << 20)
/* Payloads at least this large go to the file straight from the caller's
 * (or the slot's) memory with pwritev instead of through the write buffer. */
#define DIRECT_MIN (64u << 10)
/* When the dataset will be fsynced, write-back of each shard is started
 * every so many bytes, so the final fsync finds little left to do. */
#define WRITEBACK_EVERY (8u << 20)
#define MAX_JOBS 256
/* Bytes of samples queued for the workers, beyond the sample being added. */
#define QUEUE_BYTES ((size_t)64 << 20)

enum { S_FREE, S_QUEUED, S_BUSY, S_DONE, S_WRITTEN };

/* One queued sample (jobs > 1). */
typedef struct slot {
	int state;              /* S_*, under pool.mu */
	uint64_t id;
	int32_t label;
	uint8_t *data;          /* copy of the sample */
	size_t cap, len;
	uint8_t *cbuf;          /* compression output */
	size_t cbuf_cap;
	uint32_t codec;
	const void *stored;
	size_t slen;
	uint64_t hash;
	int rc;                 /* compression failure */
	uint8_t entry[IB_INDEX_ENTRY_SIZE]; /* filled when written */
} slot;

typedef struct pool {
	pthread_mutex_t mu;
	pthread_cond_t work;    /* a slot was queued, or stop */
	pthread_cond_t done;    /* a slot was written */
	pthread_t *threads;
	int nthreads;
	slot *slots;
	size_t nslots;
	uint64_t head;          /* sequence number of the next slot queued */
	uint64_t claim;         /* next slot a worker compresses */
	uint64_t next_write;    /* next slot appended to the shard */
	uint64_t reclaim;       /* next slot the caller takes back */
	size_t queued_bytes;
	int writing;            /* a worker is appending slots */
	int stop;
	int rc;                 /* first failure of a worker; message in ioerr */
} pool;

enum { W_OPEN, W_FAILED, W_PUBLISHED };

struct ibstore_writer {
	char errmsg[IB_ERRMSG_LEN];
	ibstore_writer_opts opts;
	int state;
	char *final_path;
	char *tmp_path;
	uint8_t uuid[16];
	ib_catalog cat;
	uint64_t next_id;     /* id of the next sample added */

	/* current shard (jobs > 1: touched only by the writing worker) */
	int fd;               /* -1 when no shard is open */
	uint32_t shard;       /* number of the open (or next) shard */
	uint64_t pos;         /* bytes of the shard written or buffered */
	uint64_t shard_records;
	uint64_t shard_first_id;
	XXH3_state_t *hash;
	uint8_t *out;         /* write buffer */
	size_t out_len;
	uint64_t synced;      /* shard bytes whose write-back was started */
	char ioerr[IB_ERRMSG_LEN]; /* message of a failed shard write */

	ib_shard_entry *shards;
	size_t shards_cap;

	uint8_t *index;       /* IB_INDEX_ENTRY_SIZE * count */
	size_t index_cap;     /* in entries */
	uint64_t count;       /* samples written and indexed */

	uint8_t *cbuf;        /* compression output */
	size_t cbuf_cap;

	int32_t *labels;      /* open-addressing set of distinct labels */
	size_t labels_cap, labels_n;

	ib_summary sum;

	pool *pool;           /* NULL when jobs <= 1 */
};

/* ---- writer.c (caller's thread) ----------------------------------------- */

/* Marks the writer failed and hands w->ioerr over as its message. */
int wr_io_failed(ibstore_writer *w, int rc);
/* Makes room in the index for sample `id`. */
int wr_grow_index(ibstore_writer *w, uint64_t id);
/* Records `key` for sample `id`; IBSTORE_EEXIST when another sample has it. */
int wr_add_key(ibstore_writer *w, const char *key, uint64_t id);
/* Statistics and the index entry of a written sample. */
int wr_account(ibstore_writer *w, uint64_t id, int32_t label, uint32_t codec, size_t slen,
	       size_t len, const uint8_t entry[IB_INDEX_ENTRY_SIZE]);
/* The single-threaded add: everything on the caller's thread. */
int wr_add_now(ibstore_writer *w, const void *data, size_t len, int32_t label,
	       const char *key, uint64_t *id_out);

/* ---- writer_shard.c (caller's thread or the appending worker) ----------- */

/* Appends one record, rolling over to a new shard when it does not fit,
 * and encodes its index entry into `entry`; failures reported in w->ioerr. */
int wr_write_record(ibstore_writer *w, uint64_t id, int32_t label, uint32_t codec,
		    const void *stored, size_t slen, size_t len, uint64_t hash,
		    uint8_t entry[IB_INDEX_ENTRY_SIZE]);
/* Flushes, fsyncs (opts.fsync) and closes the open shard into the table. */
int wr_close_shard(ibstore_writer *w);

/* ---- writer_pool.c ------------------------------------------------------ */

/* Compresses into *cbuf (grown as needed); *stored points at the bytes to store. */
int wr_compress(const ibstore_writer_opts *o, const void *data, size_t len, uint8_t **cbuf,
		size_t *cbuf_cap, uint32_t *codec, const void **stored, size_t *stored_len);
int wr_pool_start(ibstore_writer *w);
/* Waits until every queued slot is written and taken back. */
int wr_pool_drain(ibstore_writer *w);
/* Stops and joins the workers (what is queued is finished first). */
void wr_pool_stop(ibstore_writer *w);
void wr_pool_free(ibstore_writer *w);
/* The add with jobs > 1: queues the sample for the workers. */
int wr_add_queued(ibstore_writer *w, const void *data, size_t len, int32_t label,
		  const char *key, uint64_t *id_out);

/* ---- writer_publish.c (caller's thread, after the last shard closed) ---- */

/* Catalog, manifest, fsync of the tree (opts.fsync) and the rename. */
int wr_publish_files(ibstore_writer *w);

#endif
