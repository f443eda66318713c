/*
 * loader_int.h — the loader's insides, shared by its stages.  Data flows
 * one way:
 *
 *   loader_order.c     the run's plan -> this rank's slice in emission order
 *   loader_readplan.c  index entries of a window -> sorted, coalesced reads
 *                      and their accounting (pure: no threads, no handle)
 *   loader_pipeline.c  the I/O thread plans windows and runs their reads,
 *                      decode threads fill batches, batches become ready
 *   loader_mem.c       read slots, arenas and batch memory they draw on
 *   loader_path.c      how shards are read: descriptors, mappings, backend
 *   loader.c           the public calls: open/close, epochs, next/release,
 *                      report, statistics
 *
 * The handle's fields are grouped by owner below; each group says who
 * writes it and under which lock.
 */
#ifndef IBSTORE_LOADER_INT_H
#define IBSTORE_LOADER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define IB_DATASET_OPAQUE /* the loader uses dataset_int.h's functions only */
#include "dataset_int.h"
#include "image.h"
#include "io.h"
#include "loader_hooks.h"

#define DIRECT_ALIGN 4096u
#define NWIN 2
#define POOL_MAX 512

enum { B_PLANNED, B_READY, B_TAKEN };

/* A batch: what the consumer sees (pub, first so that a released
 * ibstore_batch is its lbatch) and its per-sample arrays, one allocation
 * (batch_new). */
typedef struct lbatch {
	ibstore_batch pub;
	uint64_t index;
	size_t n;               /* planned samples */
	uint64_t *ids;
	int32_t *labels;
	float *weights;
	uint32_t *sizes;
	uint64_t *offsets;
	uint64_t *skipped;
	ib_index_entry *ent;    /* each sample's index entry, looked up once */
	int32_t *bad;           /* per sample: its error code, 0 when fine */
	uint8_t *data;
	uint64_t data_cap;      /* decoded bytes of all planned samples */
	uint64_t arena_cap;     /* bytes allocated at data (>= data_cap) */
	uint32_t pending;       /* samples not yet decoded */
	int status;
	int err;                /* decoding failure under the fail policy */
	char *errmsg;
	atomic_int detached;    /* its epoch is gone: free on release */
} lbatch;

/* A record a window reads, with all that reading and decoding it needs, so
 * both walk the window's records in file order without chasing batches. */
typedef struct wrec {
	uint64_t id;
	struct lbatch *b;       /* the batch it goes to, at slot pos */
	uint32_t pos;
	uint32_t rel;           /* where its record starts in its read */
	ib_index_entry e;
	const uint8_t *src;     /* mmap path: its bytes in the mapping */
} wrec;

typedef struct window {
	int busy;
	uint64_t b0, b1;        /* batches [b0, b1) */
	uint64_t undecoded;     /* reads (or mapped batches) not yet decoded */
	wrec *recs;
	size_t nrecs, caprecs;
	ib_req *reqs;
	size_t nreqs, capreqs;
} window;

static inline uint64_t rec_len(const ib_index_entry *e)
{
	return IB_RECORD_HEADER_SIZE + (uint64_t)e->stored_size;
}

/* ---- the handle, by owner -------------------------------------------- */

/* Configuration: set by ibstore_loader_open, read-only afterwards. */
typedef struct ib_loader_cfg {
	ibstore_dataset *ds;
	ibstore_run *run;
	ibstore_loader_opts o;
	ibstore_run_opts ro;
	const ibstore_info *about; /* the dataset's description */
	uint64_t samples;          /* of the dataset (and the run) */
	uint32_t shards;
	/* the image stage (o.images copied here; o.images itself is NULL) */
	int images;
	ibstore_image_opts img;
	size_t img_size;           /* bytes of one output sample */
	uint64_t img_seed;         /* img.seed, or the run's seed when 0 */
} ib_loader_cfg;

/* What one decoding thread owns (the decode threads' and the I/O thread's
 * own, loader_pipeline.c): the image stage's decoder and the buffer a
 * sample's payload is decoded into before it becomes an image. */
typedef struct ib_decoder {
	ib_image *im;
	uint8_t *payload;
	size_t cap;
} ib_decoder;

/* How the shards are read (loader_path.c).  Descriptors and backend are set
 * by open; direct and use_map by epoch_begin while the threads are idle,
 * read-only to them while the epoch runs. */
typedef struct ib_loader_path {
	int *fds;               /* the shards' descriptors, buffered then (when
				   O_DIRECT is possible) O_DIRECT: 2 x shards */
	int have_direct;        /* the second half of fds exists */
	int direct;             /* this epoch reads with O_DIRECT */
	ib_io *io;
	uint8_t **maps;         /* read-only mappings of the shards, or NULL */
	int use_map;            /* this epoch decodes from the mappings */
} ib_loader_path;

/*
 * Threads and their synchronisation (loader_pipeline.c starts them).
 * Who waits on what (every wait loops on its condition under mu):
 *
 *   cv_cons  next(): its batch is B_READY, or io_failed.  Woken by
 *            decode_one() when it finishes a batch and by io_fail().
 *            drain(): the pipeline is idle (ib_pipeline_idle(), with
 *            active 0).  Woken by wake_drain(), which every change that can
 *            make idle true calls: io_done() (the I/O thread stops working
 *            outside the lock), the reap path (reads leave io_inflight),
 *            decode_one() (decoding drops), io_fail().
 *   cv_io    io_main(): work for the I/O thread.  Woken by epoch_begin()
 *            (active), next() (a batch taken frees budget and prefetch
 *            room), decode_one() (a read slot or a window is free again),
 *            close() (stop).
 *   cv_dec   dec_main(): a completed read in dq.  Woken by complete()
 *            (one read, one signal) and close() (stop).
 */
typedef struct ib_loader_sync {
	pthread_t io_thread;
	pthread_t *dec;
	unsigned ndec;
	int threads_started;
	pthread_mutex_t mu;
	pthread_cond_t cv_io, cv_dec, cv_cons;
	int stop;
	ib_loader_delays delay; /* tests only (loader_hooks.h) */
} ib_loader_sync;

/* The pipeline's work in flight (loader_pipeline.c), under mu. */
typedef struct ib_loader_flow {
	window win[NWIN];
	uint64_t next_plan;     /* I/O thread: next batch to put in a window */
	ib_fifo pend;           /* planned reads waiting for a slot */
	ib_fifo dq;             /* completed reads waiting for a decoder */
	unsigned decoding;      /* requests a decoder holds */
	unsigned io_inflight;
	int io_busy;            /* I/O thread holds requests not yet reaped */
	int io_failed;
	char io_msg[IB_ERRMSG_LEN];
} ib_loader_flow;

/* The epoch: built by epoch_begin on the caller's thread before the
 * threads see it (active), freed by drain() once they let go.  slots,
 * active and next_take change under mu; the rest is read-only to the
 * threads while the epoch runs. */
typedef struct ib_loader_epoch {
	int active;
	uint32_t epoch;
	uint64_t *order;        /* slice ids in emission order */
	float *order_w;
	uint64_t len;
	uint64_t nbatches;
	lbatch **slots;
	uint64_t next_take;     /* consumer */
	uint8_t *reported;      /* per batch, consumer side */
	uint64_t cursor;        /* consumer: batches reported in a row */
	uint8_t *in_plan;       /* bitmap of the global plan */
	uint64_t *pruned_upto;  /* record bytes of pruned samples with smaller ids */
	uint64_t pruned_bytes;  /* record bytes of all pruned samples */
	uint64_t *batch_need;   /* arena bytes each batch needs */
} ib_loader_epoch;

/* Memory (loader_mem.c): read slots sized by open, arenas pooled across
 * epochs; under mu. */
typedef struct ib_loader_mem {
	int nwin;               /* windows in use: 1 when one holds the epoch */
	uint64_t wcap;          /* decoded bytes (arenas) a window may plan */
	uint8_t *rbuf;          /* the read slots */
	size_t rbuf_len;
	size_t slot_size;
	unsigned nslots;
	unsigned *free_slot;    /* stack: the most recently freed is reused first */
	unsigned nfree;
	const char *buffers;    /* what backs the slots: "hugetlb", "thp", "normal" */
	uint8_t *pool[POOL_MAX]; /* free arenas for reuse */
	uint64_t pool_cap[POOL_MAX];
	unsigned npool;
	uint64_t pool_bytes;
	uint64_t arena_live;    /* arena bytes held by this epoch's batches */
	uint64_t untaken;       /* arena bytes of planned batches not yet taken */
} ib_loader_mem;

/* The epoch's statistics, apart from the public ibstore_loader_stats
 * (whose layout is the ABI's): epoch_begin resets them, stats_get copies
 * them out.  Under mu. */
typedef struct ib_loader_counters {
	uint32_t epoch;
	uint64_t kept, pruned;        /* of the plan */
	uint64_t batches, samples;    /* consumer */
	double io_wait;
	uint64_t bytes_read, read_around, requests; /* I/O thread */
	uint64_t pruned_requested;    /* pruned record bytes inside reads */
	uint64_t corrupt_skipped;     /* decoders */
	uint64_t bytes_skipped;       /* as of the last fill_io_stats */
	double t_begin, seconds;
	const char *backend;          /* the path in use (open, choose_path) */
	int direct;
	int registered;
} ib_loader_counters;

struct ibstore_loader {
	char errmsg[IB_ERRMSG_LEN]; /* the caller's thread */
	ib_loader_cfg cfg;
	ib_loader_path path;
	ib_loader_sync sync;
	ib_loader_flow flow;
	ib_loader_epoch ep;
	ib_loader_mem mem;
	ib_loader_counters st;
};

/* ---- loader_order.c: emission order of the run's slice (pure) -------- */

/* Stable radix sort of records by id (ids < 2^32): id order is file order
 * (the dataset checks this on open).  0 or IBSTORE_ENOMEM. */
int ib_sort_recs(wrec *r, size_t n);
/* Reorders the slice (ids, weights together) for locality: blocks of
 * neighbouring records (about 1 MiB of records of `avg_record` bytes) in
 * random order, then samples shuffled within windows of 16 blocks; a
 * deterministic function of (seed, epoch, slice).  0 or IBSTORE_ENOMEM. */
int ib_order_locality(uint64_t seed, uint32_t epoch, uint64_t avg_record, uint64_t *ids,
		      float *w, uint64_t n);

/* ---- loader_readplan.c: windows and reads (pure) ---------------------- */

/* Where read planning finds index entries: entry(src, id, &e), id < samples. */
typedef struct ib_entries {
	int (*entry)(const void *src, uint64_t id, ib_index_entry *e);
	const void *src;
	uint64_t samples;
} ib_entries;

/* What read planning needs; read-only while an epoch runs. */
typedef struct ib_readplan {
	ib_entries ix;
	uint64_t gap;           /* coalesce across gaps up to this (0: never) */
	uint64_t max_read;      /* no read grows beyond this */
	int direct;             /* O_DIRECT: align reads to DIRECT_ALIGN */
	uint32_t shards;        /* O_DIRECT descriptors follow the buffered ones */
	const uint8_t *in_plan; /* bitmap of the plan */
	const uint64_t *pruned_upto;
} ib_readplan;

/* What a window's reads cost. */
typedef struct ib_read_acct {
	uint64_t read;          /* bytes requested */
	uint64_t wanted;        /* record bytes of the window's records */
	uint64_t pruned;        /* record bytes of pruned samples inside reads */
} ib_read_acct;

/* Grows *p (of *cap elements of `elem` bytes) to hold `need`. */
int ib_grow(void **p, size_t *cap, size_t need, size_t elem);
/* The window starting at batch b0 ends before the first batch that would
 * take its decoded bytes (need[]) beyond wcap; it holds one at least. */
uint64_t ib_window_end(const uint64_t *need, uint64_t nbatches, uint64_t wcap, uint64_t b0);
/* Decoded bytes of each batch of `order` (len ids, batches of batch_size). */
void ib_batch_needs(const ib_entries *ix, const uint64_t *order, uint64_t len,
		    uint32_t batch_size, uint64_t nbatches, uint64_t *need);
/* Marks the plan's ids in in_plan ((samples + 7) / 8 + 1 zeroed bytes) and
 * fills pruned_upto (samples + 1); returns the record bytes of all pruned
 * samples. */
uint64_t ib_pruned_prefix(const ib_entries *ix, const uint64_t *plan_ids, uint64_t plan_len,
			  uint8_t *in_plan, uint64_t *pruned_upto);
/* Sorts the window's records into file order and coalesces them into
 * reads (w->reqs, for window number windex); adds their cost to *acct.
 * 0 or IBSTORE_ENOMEM. */
int ib_plan_reads(const ib_readplan *p, window *w, uint32_t windex, ib_read_acct *acct);

/* ---- loader_mem.c ------------------------------------------------------ */

lbatch *ib_batch_new(size_t n);
void ib_batch_free(lbatch *b);
uint8_t *ib_take_arena(ibstore_loader *l, lbatch *b);
void ib_give_arena(ibstore_loader *l, lbatch *b);
/* Read slots and the windows' share of the budget (open). */
int ib_mem_setup(ibstore_loader *l);
/* Drops one of the epoch's batches: its holder frees a taken one (under mu). */
void ib_mem_drop_batch(ibstore_loader *l, lbatch *b);
/* Every read slot free, no batch untaken: the epoch is gone (under mu). */
void ib_mem_reset(ibstore_loader *l);
void ib_mem_free(ibstore_loader *l);

/* ---- loader_path.c ------------------------------------------------------ */

/* The dataset's index entries, for read planning. */
ib_entries ib_path_entries(const ibstore_loader *l);
int ib_path_open_fds(ibstore_loader *l);
/* Creates the read backend over the descriptors and the read slots. */
int ib_path_open_backend(ibstore_loader *l);
/* Chooses this epoch's path: mappings, buffered or O_DIRECT reads. */
int ib_path_choose(ibstore_loader *l);
/* The mapped path: points the batch's records (w->recs[first ..
 * first + n)) into the mappings and returns the one unit of decoding that
 * stands for them (under mu). */
ib_req *ib_path_map_batch(ibstore_loader *l, window *w, size_t first, size_t n);
void ib_path_close(ibstore_loader *l);

/* ---- loader_pipeline.c -------------------------------------------------- */

int ib_pipeline_start(ibstore_loader *l);
/* Stops and joins the threads (the epoch drained). */
void ib_pipeline_stop(ibstore_loader *l);
/* No thread touches the epoch's requests or batches (under mu). */
int ib_pipeline_idle(const ibstore_loader *l);
/* Forgets the abandoned epoch's windows and queued reads (under mu, idle). */
void ib_pipeline_reset(ibstore_loader *l);
void ib_pipeline_free(ibstore_loader *l);

#endif
