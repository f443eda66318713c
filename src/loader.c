/*
 * loader.c — the streaming pipeline.  Per epoch: the run's plan is sliced
 * for this rank (and optionally reordered for locality) before any I/O;
 * an I/O thread cuts the slice into windows of whole batches, sorts each
 * window's records into file order, coalesces neighbours across small gaps
 * into reads, and runs the reads through the backend into a small set of
 * read slots reused most-recently-freed first (warm memory reads faster);
 * decode threads verify and decompress each read's records into their
 * batches' arenas as soon as it lands; the consumer takes batches in
 * order.  Pruned samples produce no request.  An epoch whose shards are all
 * in the page cache can instead be decoded straight from read-only
 * mappings.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dataset_int.h"
#include "io.h"
#include "loader_hooks.h"

#define HUGE_SIZE ((size_t)2 << 20)
#define DIRECT_ALIGN 4096u
#define NWIN 2

enum { B_PLANNED, B_READY, B_TAKEN };

#define POOL_MAX 512

typedef struct lbatch lbatch;

struct lbatch {
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
};

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

struct ibstore_loader {
	char errmsg[IB_ERRMSG_LEN];
	ibstore_dataset *ds;
	ibstore_run *run;
	ibstore_loader_opts o;
	ibstore_run_opts ro;
	const char *buffers;
	int *fds;               /* the shards' descriptors, buffered then (when
				   O_DIRECT is possible) O_DIRECT: 2 x shards */
	int have_direct;        /* the second half of fds exists */
	int direct;             /* this epoch reads with O_DIRECT */
	ib_io *io;
	uint8_t **maps;         /* read-only mappings of the shards, or NULL */
	int use_map;            /* this epoch decodes from the mappings */
	window win[NWIN];
	int nwin;               /* windows in use: 1 when one holds the epoch */
	uint64_t wcap;          /* decoded bytes (arenas) a window may plan */
	uint8_t *rbuf;          /* the read slots */
	size_t rbuf_len;
	size_t slot_size;
	unsigned nslots;
	unsigned *free_slot;    /* stack: the most recently freed is reused first */
	unsigned nfree;
	ib_fifo pend;           /* planned reads waiting for a slot */
	uint64_t fixed_size;

	pthread_t io_thread;
	pthread_t *dec;
	unsigned ndec;
	int threads_started;
	pthread_mutex_t mu;
	pthread_cond_t cv_io, cv_dec, cv_cons;
	int stop;

	/* the epoch (guarded by mu where threads share it) */
	int active;
	uint32_t epoch;
	uint64_t *order;        /* slice ids in emission order */
	float *order_w;
	uint64_t len;
	uint64_t nbatches;
	lbatch **slots;
	uint64_t next_plan;     /* I/O thread: next batch to put in a window */
	uint64_t next_take;     /* consumer */
	ib_fifo dq;             /* completed reads waiting for a decoder */
	unsigned decoding;      /* requests a decoder holds */
	unsigned io_inflight;
	int io_busy;            /* I/O thread holds requests not yet reaped */
	int io_failed;
	char io_msg[IB_ERRMSG_LEN];
	uint8_t *reported;      /* per batch, consumer side */
	uint64_t cursor;        /* consumer: batches reported in a row */
	uint8_t *in_plan;       /* bitmap of the global plan */
	uint64_t *pruned_upto;  /* record bytes of pruned samples with smaller ids */
	uint64_t *batch_need;   /* arena bytes each batch needs */

	/* free arenas for reuse */
	uint8_t *pool[POOL_MAX];
	uint64_t pool_cap[POOL_MAX];
	unsigned npool;
	uint64_t pool_bytes;
	uint64_t arena_live;    /* arena bytes held by this epoch's batches */
	uint64_t untaken;       /* arena bytes of planned batches not yet taken */

	ibstore_loader_stats st;
	uint64_t pruned_bytes, pruned_requested;
	double t_begin;
	ib_loader_delays delay; /* tests only (loader_hooks.h) */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Sleeps `us` microseconds (the test delays of loader_hooks.h). */
static void pause_us(unsigned us)
{
	if (!us)
		return;
	struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void ib_loader_set_delays(ibstore_loader *l, const ib_loader_delays *d)
{
	pthread_mutex_lock(&l->mu);
	l->delay = *d;
	pthread_mutex_unlock(&l->mu);
}

/* ---- options ------------------------------------------------------ */

void ib_loader_opts_defaults(ibstore_loader_opts *o)
{
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
	o->drop_last = -1;
	o->direct = -1;
	o->prefetch = 0;
	o->queue_depth = 64;
	o->verify = 1;
	o->gap = 32 << 10;
	o->max_read = 1 << 20;
	o->budget = (uint64_t)512 << 20;
}

/* ---- memory --------------------------------------------------------- */

/* Read slots come from huge pages when the system has them reserved,
 * else from 2 MiB-aligned memory advised for transparent huge pages: on
 * virtio disks every 4 KiB page of an O_DIRECT buffer costs a ring slot. */
static uint8_t *alloc_buffer(size_t cap, const char **kind)
{
	size_t len = (cap + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p != MAP_FAILED) {
		*kind = "hugetlb";
		return p;
	}
	p = mmap(NULL, len + HUGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uintptr_t a = ((uintptr_t)p + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	munmap((void *)(a + len), (uintptr_t)p + len + HUGE_SIZE - (a + len));
	*kind = madvise((void *)a, len, MADV_HUGEPAGE) == 0 ? "thp" : "normal";
	return (uint8_t *)a;
}

static void free_buffer(uint8_t *p, size_t cap)
{
	if (p)
		munmap(p, (cap + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1));
}

static void free_window(window *w)
{
	free(w->recs);
	free(w->reqs);
	memset(w, 0, sizeof *w);
}

static void batch_free(lbatch *b)
{
	if (!b)
		return;
	free(b->ent);
	free(b->data);
	free(b->errmsg);
	free(b);
}

/* One allocation for a batch's per-sample arrays. */
static lbatch *batch_new(size_t n)
{
	lbatch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	size_t k = n ? n : 1;
	size_t bytes = k * (sizeof(ib_index_entry) + 8 + 4 + 4 + 4 + 8 + 8 + 4);
	uint8_t *m = malloc(bytes);
	if (!m) {
		free(b);
		return NULL;
	}
	b->ent = (ib_index_entry *)m;
	b->ids = (uint64_t *)(b->ent + k);
	b->offsets = b->ids + k;
	b->skipped = b->offsets + k;
	b->labels = (int32_t *)(b->skipped + k);
	b->weights = (float *)(b->labels + k);
	b->sizes = (uint32_t *)(b->weights + k);
	b->bad = (int32_t *)(b->sizes + k);
	return b;
}

/* The arenas' share of the budget: what live and pooled arenas may hold. */
static uint64_t arena_budget(const ibstore_loader *l)
{
	return (uint64_t)l->nwin * l->wcap;
}

/* Drops pooled arenas, the smallest first, until `need` more bytes of
 * arenas fit in the arenas' share of the budget. */
static void trim_pool(ibstore_loader *l, uint64_t need)
{
	while (l->npool && l->arena_live + l->pool_bytes + need > arena_budget(l)) {
		unsigned k = 0;
		for (unsigned i = 1; i < l->npool; i++)
			if (l->pool_cap[i] < l->pool_cap[k])
				k = i;
		free(l->pool[k]);
		l->pool_bytes -= l->pool_cap[k];
		l->pool[k] = l->pool[--l->npool];
		l->pool_cap[k] = l->pool_cap[l->npool];
	}
}

/* Arena for a batch: a released one when one is big enough (fresh memory
 * costs a page fault and a zeroed page every 4 KiB), else a new one. */
static uint8_t *take_arena(ibstore_loader *l, lbatch *b)
{
	uint64_t cap = b->data_cap;
	for (unsigned i = 0; i < l->npool; i++) {
		if (l->pool_cap[i] >= cap) {
			uint8_t *p = l->pool[i];
			b->arena_cap = l->pool_cap[i];
			l->pool_bytes -= b->arena_cap;
			l->pool[i] = l->pool[--l->npool];
			l->pool_cap[i] = l->pool_cap[l->npool];
			l->arena_live += b->arena_cap;
			return p;
		}
	}
	trim_pool(l, cap);
	uint8_t *p = malloc(cap ? cap : 1);
	b->arena_cap = cap;
	if (p)
		l->arena_live += cap;
	return p;
}

/* Takes a batch's arena back into the pool while pool and live arenas fit
 * the arenas' share of the budget. */
static void give_arena(ibstore_loader *l, lbatch *b)
{
	if (!b->data)
		return;
	l->arena_live -= b->arena_cap;
	if (l->npool < POOL_MAX &&
	    l->arena_live + l->pool_bytes + b->arena_cap <= arena_budget(l)) {
		l->pool[l->npool] = b->data;
		l->pool_cap[l->npool++] = b->arena_cap;
		l->pool_bytes += b->arena_cap;
	} else {
		free(b->data);
	}
	b->data = NULL;
}

/* ---- read planning ------------------------------------------------- */

static uint64_t rec_len(const ib_index_entry *e)
{
	return IB_RECORD_HEADER_SIZE + (uint64_t)e->stored_size;
}

static uint64_t batch_lo(const ibstore_loader *l, uint64_t b)
{
	return b * l->ro.batch_size;
}

static uint64_t batch_hi(const ibstore_loader *l, uint64_t b)
{
	uint64_t hi = (b + 1) * l->ro.batch_size;
	return hi < l->len ? hi : l->len;
}

/* Stable LSD radix sort of records by id (ids < 2^32): id order is file
 * order (the dataset checks this on open). */
static int sort_recs(wrec *r, size_t n)
{
	wrec *tmp = malloc((n ? n : 1) * sizeof *tmp);
	if (!tmp)
		return IBSTORE_ENOMEM;
	for (int pass = 0; pass < 2; pass++) {
		size_t count[65537] = {0};
		int sh = 16 * pass;
		for (size_t i = 0; i < n; i++)
			count[((r[i].id >> sh) & 0xffff) + 1]++;
		for (int i = 0; i < 65536; i++)
			count[i + 1] += count[i];
		for (size_t i = 0; i < n; i++)
			tmp[count[(r[i].id >> sh) & 0xffff]++] = r[i];
		memcpy(r, tmp, n * sizeof *r);
	}
	free(tmp);
	return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 256;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, c * elem);
	if (!q)
		return IBSTORE_ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

static int planned(const ibstore_loader *l, uint64_t id)
{
	return (l->in_plan[id >> 3] >> (id & 7)) & 1;
}

/* Bytes of pruned records inside [a, b) of a shard, for a request whose
 * wanted records run from lo_id to hi_id: whole records between them
 * (gaps read through) from the prefix sums, plus the parts of neighbours
 * that alignment reaches. */
static uint64_t pruned_inside(const ibstore_loader *l, uint32_t shard, uint64_t a, uint64_t b,
			      uint64_t lo_id, uint64_t hi_id)
{
	uint64_t sum = l->pruned_upto[hi_id] - l->pruned_upto[lo_id];
	for (uint64_t id = lo_id; id-- > 0;) {
		ib_index_entry e;
		ib_dataset_entry(l->ds, id, &e);
		if (e.shard != shard || e.offset + rec_len(&e) <= a)
			break;
		if (!planned(l, id))
			sum += e.offset + rec_len(&e) - a;
	}
	for (uint64_t id = hi_id + 1; id < l->ds->sum.samples; id++) {
		ib_index_entry e;
		ib_dataset_entry(l->ds, id, &e);
		if (e.shard != shard || e.offset >= b)
			break;
		if (!planned(l, id))
			sum += (e.offset + rec_len(&e) < b ? e.offset + rec_len(&e) : b) - e.offset;
	}
	return sum;
}

static int complete(ibstore_loader *l, ib_req *r);

/* Serving from the mappings: no reads, so the records stay in batch order
 * and each batch is one unit of decoding, handed to the decoders as soon
 * as it is planned (under mu); `first` is its first record in w->recs. */
static int map_batch(ibstore_loader *l, window *w, lbatch *lb, size_t first)
{
	uint64_t touched = 0;
	for (size_t k = first; k < first + lb->n; k++) {
		const ib_index_entry *e = &w->recs[k].e;
		w->recs[k].src = l->maps[e->shard] + e->offset;
		touched += rec_len(e);
	}
	l->st.bytes_read += touched;
	ib_req *r = &w->reqs[w->nreqs++]; /* sized for the window beforehand */
	*r = (ib_req){.window = (uint32_t)(w - l->win), .first_rec = (uint32_t)first,
		      .nrecs = (uint32_t)lb->n, .buf_index = -1};
	return complete(l, r);
}

/* Picks the batches of the next window and builds its requests.  Runs on
 * the I/O thread without the lock: slots [b0, b1) are its own until their
 * status says otherwise. */
static int plan_window(ibstore_loader *l, window *w, uint64_t b0)
{
	uint64_t bytes = 0, b1 = b0;
	while (b1 < l->nbatches) {
		if (b1 > b0 && bytes + l->batch_need[b1] > l->wcap)
			break;
		bytes += l->batch_need[b1];
		b1++;
	}
	w->b0 = b0;
	w->b1 = b1;
	w->nrecs = 0;
	w->nreqs = 0;
	size_t total = (size_t)(batch_hi(l, b1 - 1) - batch_lo(l, b0));
	if (grow((void **)&w->recs, &w->caprecs, total, sizeof *w->recs))
		return IBSTORE_ENOMEM;
	if (l->use_map) { /* decoders hold pointers into reqs: no realloc later */
		if (grow((void **)&w->reqs, &w->capreqs, (size_t)(b1 - b0), sizeof *w->reqs))
			return IBSTORE_ENOMEM;
		pthread_mutex_lock(&l->mu);
		w->undecoded = (size_t)(b1 - b0);
		pthread_mutex_unlock(&l->mu);
	}
	for (uint64_t b = b0; b < b1; b++) {
		size_t first = w->nrecs;
		uint64_t lo = batch_lo(l, b), hi = batch_hi(l, b);
		lbatch *lb = batch_new((size_t)(hi - lo));
		if (!lb)
			return IBSTORE_ENOMEM;
		lb->index = b;
		lb->n = (size_t)(hi - lo);
		lb->pending = (uint32_t)lb->n;
		lb->status = B_PLANNED;
		for (uint64_t i = lo; i < hi; i++) {
			ib_index_entry *e = &lb->ent[i - lo];
			ib_dataset_entry(l->ds, l->order[i], e);
			lb->ids[i - lo] = l->order[i];
			lb->weights[i - lo] = l->order_w[i];
			lb->bad[i - lo] = 0;
			lb->offsets[i - lo] = lb->data_cap; /* samples back to back */
			lb->data_cap += e->size;
			w->recs[w->nrecs++] = (wrec){.id = l->order[i], .b = lb,
						     .pos = (uint32_t)(i - lo), .e = *e};
		}
		pthread_mutex_lock(&l->mu);
		lb->data = take_arena(l, lb);
		l->untaken += lb->data_cap;
		l->slots[b] = lb;
		int rc = !lb->data ? IBSTORE_ENOMEM : l->use_map ? map_batch(l, w, lb, first) : 0;
		pthread_mutex_unlock(&l->mu);
		if (rc)
			return rc;
	}
	if (l->use_map)
		return 0;
	if (sort_recs(w->recs, w->nrecs))
		return IBSTORE_ENOMEM;
	uint64_t read = 0, wanted = 0, pruned_req = 0;
	for (size_t i = 0; i < w->nrecs;) {
		const ib_index_entry e = w->recs[i].e;
		uint64_t start = e.offset, end = e.offset + rec_len(&e);
		uint64_t prev_id = w->recs[i].id;
		wanted += rec_len(&e);
		size_t j = i + 1;
		for (; j < w->nrecs; j++) {
			const ib_index_entry f = w->recs[j].e;
			if (w->recs[j].id == prev_id)
				continue; /* the same record twice (padding): read once */
			uint64_t fend = f.offset + rec_len(&f);
			if (f.shard != e.shard || l->o.gap == 0 || f.offset - end > l->o.gap ||
			    fend - start > l->o.max_read)
				break;
			end = fend;
			wanted += rec_len(&f);
			prev_id = w->recs[j].id;
		}
		uint64_t a = l->direct ? start & ~(uint64_t)(DIRECT_ALIGN - 1) : start;
		uint64_t z = l->direct ? (end + DIRECT_ALIGN - 1) & ~(uint64_t)(DIRECT_ALIGN - 1)
				       : end;
		if (grow((void **)&w->reqs, &w->capreqs, w->nreqs + 1, sizeof *w->reqs))
			return IBSTORE_ENOMEM;
		w->reqs[w->nreqs++] = (ib_req){.shard = e.shard,
					       .fd = e.shard + (l->direct ? l->ds->sum.shards : 0),
					       .len = (uint32_t)(z - a),
					       .off = a, .need = (uint32_t)(end - a),
					       .window = (uint32_t)(w - l->win),
					       .first_rec = (uint32_t)i, .nrecs = (uint32_t)(j - i),
					       .buf_index = -1};
		for (size_t k = i; k < j; k++)
			w->recs[k].rel = (uint32_t)(w->recs[k].e.offset - a);
		pruned_req += pruned_inside(l, e.shard, a, z, w->recs[i].id, w->recs[j - 1].id);
		read += z - a;
		i = j;
	}
	pthread_mutex_lock(&l->mu);
	l->st.bytes_read += read;
	l->st.read_around += read - wanted;
	l->st.requests += w->nreqs;
	l->pruned_requested += pruned_req;
	w->undecoded = w->nreqs;
	pthread_mutex_unlock(&l->mu);
	return 0;
}

static void decode_one(ibstore_loader *l);

/* ---- I/O thread ----------------------------------------------------- */

/* A read is complete: its records go to the decoders (under mu). */
static int complete(ibstore_loader *l, ib_req *r)
{
	int rc = ib_fifo_push(&l->dq, r);
	if (!rc)
		pthread_cond_signal(&l->cv_dec);
	return rc;
}

/* Takes planned reads that have a free slot to land in (under mu). */
static unsigned take_slots(ibstore_loader *l, ib_req **out, unsigned max)
{
	unsigned n = 0;
	while (n < max && l->pend.n && l->nfree) {
		ib_req *r = ib_fifo_pop(&l->pend);
		r->slot = l->free_slot[--l->nfree];
		r->buf = l->rbuf + (size_t)r->slot * l->slot_size;
		r->buf_index = 0;
		out[n++] = r;
	}
	return n;
}

/*
 * Who waits on what (every wait loops on its condition under mu):
 *
 *   cv_cons  next(): its batch is B_READY, or io_failed.  Woken by
 *            decode_one() when it finishes a batch and by io_fail().
 *            drain(): the pipeline is idle (idle() below, with active 0).
 *            Woken by wake_drain(), which every change that can make
 *            idle() true calls: io_done() (the I/O thread stops working
 *            outside the lock), the reap path (reads leave io_inflight),
 *            decode_one() (decoding drops), io_fail().
 *   cv_io    io_main(): work for the I/O thread.  Woken by epoch_begin()
 *            (active), next() (a batch taken frees budget and prefetch
 *            room), decode_one() (a read slot or a window is free again),
 *            close() (stop).
 *   cv_dec   dec_main(): a completed read in dq.  Woken by complete()
 *            (one read, one signal) and close() (stop).
 */

/* No thread touches the epoch's requests or batches (under mu). */
static int idle(const ibstore_loader *l)
{
	return !l->io_inflight && !l->io_busy && !l->dq.n && !l->decoding;
}

/* Wakes drain() if it waits and its condition now holds (under mu). */
static void wake_drain(ibstore_loader *l)
{
	if (!l->active && idle(l))
		pthread_cond_broadcast(&l->cv_cons);
}

/* The I/O thread is back under the lock, holding nothing (under mu). */
static void io_done(ibstore_loader *l)
{
	l->io_busy = 0;
	wake_drain(l);
}

static void io_fail(ibstore_loader *l, int rc, const char *what)
{
	l->io_failed = rc;
	snprintf(l->io_msg, sizeof l->io_msg, "%s: %s", what, ibstore_strerror(rc));
	pthread_cond_broadcast(&l->cv_cons); /* next() returns the failure */
}

static void *io_main(void *arg)
{
	ibstore_loader *l = arg;
	ib_req *batch[256];
	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		window *w = NULL;
		uint64_t ahead = l->o.prefetch ? l->next_take + l->o.prefetch : UINT64_MAX;
		/* a new window only while the decoded batches waiting for the
		 * consumer fill at most the other windows: the budget holds */
		if (l->active && !l->io_failed && l->next_plan < l->nbatches &&
		    l->next_plan < ahead && l->untaken <= (uint64_t)(l->nwin - 1) * l->wcap)
			for (int i = 0; i < l->nwin && !w; i++)
				if (!l->win[i].busy)
					w = &l->win[i];
		if (w) {
			w->busy = 1;
			uint64_t b0 = l->next_plan;
			l->io_busy = 1;
			pthread_mutex_unlock(&l->mu);
			int rc = plan_window(l, w, b0);
			pause_us(l->delay.plan_us);
			pthread_mutex_lock(&l->mu);
			/* mapped batches went to decoding as planned, reads wait for slots */
			for (size_t i = 0; !rc && !l->use_map && i < w->nreqs; i++)
				rc = ib_fifo_push(&l->pend, &w->reqs[i]);
			if (rc)
				io_fail(l, rc, "read planning failed");
			else
				l->next_plan = w->b1;
			io_done(l);
			continue;
		}
		/* an abandoned epoch (active 0) sends no more reads: drain() waits */
		unsigned n = l->io_failed || !l->active ? 0 : take_slots(l, batch, 256);
		if (n) {
			l->io_inflight += n;
			l->io_busy = 1;
			pthread_mutex_unlock(&l->mu);
			for (unsigned i = 0; l->o.on_read && i < n; i++)
				l->o.on_read(l->o.on_read_ctx, batch[i]->shard, batch[i]->off,
					     batch[i]->len);
			int rc = l->io->submit(l->io, batch, n);
			pause_us(l->delay.submit_us);
			pthread_mutex_lock(&l->mu);
			if (rc) {
				l->io_inflight -= n; /* what the backend refused never lands */
				io_fail(l, rc, "read submission failed");
			}
			io_done(l);
			continue;
		}
		/* Reads that landed hold their slots until decoded, and the device
		 * completes in bursts: rather than sleep while a burst waits for
		 * the decoders, this thread decodes too, so slots come back and
		 * reads go out sooner (measured: cold epochs ~12% faster). */
		int help = l->dq.n > 0;
		if (l->io_inflight) {
			l->io_busy = 1;
			pthread_mutex_unlock(&l->mu);
			int got = l->io->reap(l->io, batch, 256, help ? 0 : 1);
			pause_us(l->delay.reap_us);
			pthread_mutex_lock(&l->mu);
			if (got < 0) {
				io_fail(l, got, "read backend failed");
				io_done(l);
				continue;
			}
			for (int i = 0; i < got && !l->io_failed; i++)
				if (complete(l, batch[i]))
					io_fail(l, IBSTORE_ENOMEM, "decode queue");
			l->io_inflight -= (unsigned)got;
			io_done(l);
			if (got || !help)
				continue;
		}
		if (l->dq.n && (l->io_inflight || l->pend.n)) {
			decode_one(l); /* mapped batches are left to the decoders */
			continue;
		}
		if (l->io_inflight)
			continue; /* a decoder took the work: wait for reads instead */
		/* woken by epoch_begin, next, decode_one or close (see cv_io above) */
		pthread_cond_wait(&l->cv_io, &l->mu);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* ---- decode threads -------------------------------------------------- */

/* The mapped path reads records in plan order, scattered over the page
 * cache: each one would stall on memory (and on its page's translation)
 * without a hint a few records ahead. */
#define PREFETCH_AHEAD 3
#define PREFETCH_MAX 4096

static void prefetch_record(const wrec *wr)
{
	uint64_t len = rec_len(&wr->e);
	if (len > PREFETCH_MAX)
		len = PREFETCH_MAX;
	for (uint64_t o = 0; o < len; o += 64)
		__builtin_prefetch(wr->src + o);
}

/* Decodes the records one read brought, each into its batch's arena at
 * its planned offset.  No lock: every record has its own slot. */
static void decode_request(ibstore_loader *l, window *w, const ib_req *r)
{
	char msg[IB_ERRMSG_LEN];
	int io_err = r->err ? r->err : r->done < r->need ? -EIO : 0;
	int flags = (l->o.verify ? IB_DECODE_VERIFY : 0) | IB_DECODE_STREAM;
	uint32_t end = r->first_rec + r->nrecs;
	for (uint32_t k = r->first_rec; k < end; k++) {
		const wrec *wr = &w->recs[k];
		if (!r->buf && k + PREFETCH_AHEAD < end)
			prefetch_record(&w->recs[k + PREFETCH_AHEAD]);
		lbatch *b = wr->b;
		uint32_t pos = wr->pos;
		const ib_index_entry *e = &wr->e;
		uint64_t id = wr->id;
		int rc;
		if (io_err)
			rc = ib_fail(msg, IBSTORE_EIO, "%s offset %" PRIu64 ": reading sample %" PRIu64
				     ": %s", strrchr(l->ds->shard_paths[e->shard], '/') + 1,
				     e->offset, id, strerror(-io_err));
		else
			rc = ib_dataset_decode(l->ds, id, e, r->buf ? r->buf + wr->rel : wr->src,
					       rec_len(e), flags, b->data + b->offsets[pos], msg);
		b->labels[pos] = e->label;
		b->sizes[pos] = e->size;
		if (!rc)
			continue;
		b->bad[pos] = rc;
		if (l->o.corrupt == IBSTORE_CORRUPT_FAIL) {
			pthread_mutex_lock(&l->mu);
			if (!b->err) { /* the first failure names the batch's problem */
				b->err = rc;
				b->errmsg = strdup(msg);
			}
			pthread_mutex_unlock(&l->mu);
		}
	}
}

/* Every sample of the batch is decoded: leave out skipped ones (skip
 * policy) and describe the batch. */
static void finish_batch(ibstore_loader *l, lbatch *b)
{
	size_t out = 0, nskip = 0;
	uint64_t pos = 0;
	for (size_t i = 0; i < b->n; i++) {
		if (b->bad[i]) {
			b->skipped[nskip++] = b->ids[i];
			continue;
		}
		if (out != i || pos != b->offsets[i]) {
			memmove(b->data + pos, b->data + b->offsets[i], b->sizes[i]);
			b->ids[out] = b->ids[i];
			b->weights[out] = b->weights[i];
			b->labels[out] = b->labels[i];
			b->sizes[out] = b->sizes[i];
		}
		b->offsets[out] = pos;
		pos += b->sizes[out];
		out++;
	}
	b->pub = (ibstore_batch){.epoch = l->epoch, .index = b->index, .n = out,
				 .ids = b->ids, .labels = b->labels, .weights = b->weights,
				 .sizes = b->sizes, .offsets = b->offsets, .data = b->data,
				 .data_size = pos, .sample_size = (uint32_t)l->fixed_size,
				 .n_skipped = nskip, .skipped_ids = b->skipped};
	b->status = B_READY;
	l->st.corrupt_skipped += nskip;
}

/* Decodes the oldest completed read (called under mu, which it drops
 * while decoding) and hands on what that finishes: ready batches to the
 * consumer, the read slot and the window to the I/O thread. */
static void decode_one(ibstore_loader *l)
{
	ib_req *r = ib_fifo_pop(&l->dq);
	l->decoding++;
	window *w = &l->win[r->window];
	int abandoned = !l->active; /* drain() frees its batches untaken */
	pthread_mutex_unlock(&l->mu);
	if (!abandoned)
		decode_request(l, w, r);
	pthread_mutex_lock(&l->mu);
	int ready = 0;
	for (uint32_t k = r->first_rec; k < r->first_rec + r->nrecs; k++) {
		lbatch *b = w->recs[k].b;
		/* active now, not when this read was taken: a batch whose other
		 * reads were skipped (epoch abandoned meanwhile) is never finished;
		 * active cannot come back before drain(), which waits for us */
		if (--b->pending == 0 && l->active) {
			finish_batch(l, b);
			ready = 1;
		}
	}
	if (r->buf) { /* its slot is free again, and warm: reuse it first */
		l->free_slot[l->nfree++] = r->slot;
		r->buf = NULL;
		pthread_cond_signal(&l->cv_io);
	}
	if (--w->undecoded == 0) {
		w->busy = 0; /* its batches are all planned and decoded */
		pthread_cond_signal(&l->cv_io);
	}
	l->decoding--;
	if (ready)
		pthread_cond_broadcast(&l->cv_cons); /* next() may wait for it */
	wake_drain(l);
}

static void *dec_main(void *arg)
{
	ibstore_loader *l = arg;
	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		if (l->dq.n)
			decode_one(l);
		else /* woken by complete() or close() */
			pthread_cond_wait(&l->cv_dec, &l->mu);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* ---- mappings (the mmap path) ----------------------------------------- */

/* Maps every shard read-only, once. */
static int map_shards(ibstore_loader *l)
{
	uint32_t n = l->ds->sum.shards;
	if (l->maps)
		return 0;
	l->maps = calloc(n ? n : 1, sizeof *l->maps);
	if (!l->maps)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	for (uint32_t s = 0; s < n; s++) {
		size_t len = (size_t)l->ds->shard_tab[s].size;
		void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, l->ds->fds[s], 0);
		if (p == MAP_FAILED)
			return ib_fail(l->errmsg, IBSTORE_EIO, "%s: mmap: %s", l->ds->shard_paths[s],
				     strerror(errno));
		l->maps[s] = p;
	}
	return 0;
}

static void unmap_shards(ibstore_loader *l)
{
	for (uint32_t s = 0; l->maps && s < l->ds->sum.shards; s++)
		if (l->maps[s])
			munmap(l->maps[s], (size_t)l->ds->shard_tab[s].size);
	free(l->maps);
	l->maps = NULL;
}

/* Whether every page of every shard is in the page cache right now. */
static int all_resident(ibstore_loader *l)
{
	long page = sysconf(_SC_PAGESIZE);
	for (uint32_t s = 0; s < l->ds->sum.shards; s++) {
		size_t len = (size_t)l->ds->shard_tab[s].size;
		size_t pages = (len + (size_t)page - 1) / (size_t)page;
		unsigned char *vec = malloc(pages ? pages : 1);
		int ok = vec && mincore(l->maps[s], len, vec) == 0;
		for (size_t i = 0; ok && i < pages; i++)
			ok = vec[i] & 1;
		free(vec);
		if (!ok)
			return 0;
	}
	return 1;
}

/* Whether the whole dataset is in the page cache (0 when the shards
 * cannot be mapped to ask: reading works without the mappings). */
static int dataset_cached(ibstore_loader *l)
{
	if (map_shards(l) == 0)
		return all_resident(l);
	l->errmsg[0] = '\0';
	return 0;
}

/*
 * Chooses, per epoch: decoding from the mappings (auto, when every shard
 * is in the page cache), and otherwise buffered or O_DIRECT reads (auto:
 * O_DIRECT for large records read from disk, where it reads at the
 * device's speed; small ones gain from the page cache's readahead of
 * neighbours, and a dataset in the page cache is read from there).
 */
static int choose_path(ibstore_loader *l)
{
	l->use_map = 0;
	if (l->o.backend == IBSTORE_BACKEND_MMAP) {
		int rc = map_shards(l);
		if (rc)
			return rc;
		l->use_map = 1;
	} else if (l->o.backend == IBSTORE_BACKEND_AUTO && l->o.direct != 1) {
		l->use_map = dataset_cached(l);
	}
	const ib_summary *sum = &l->ds->sum;
	uint64_t avg = sum->samples ? sum->bytes_stored / sum->samples : 0;
	int large = avg >= ((uint64_t)64 << 10);
	/* a forced uring/pread backend asks the page cache here: auto's
	 * answer is already in use_map */
	int cached = l->o.backend != IBSTORE_BACKEND_AUTO && l->o.direct == -1 && large &&
		     dataset_cached(l);
	l->direct = !l->use_map && l->have_direct &&
		    (l->o.direct == 1 || (l->o.direct == -1 && large && !cached));
	l->st.backend = l->use_map ? "mmap" : l->io->name;
	l->st.direct = l->direct;
	return 0;
}

/* ---- open / close ---------------------------------------------------- */

/* The dataset's buffered descriptors, then O_DIRECT ones when wanted and
 * possible (auto does without them where the file system refuses). */
static int open_fds(ibstore_loader *l)
{
	uint32_t n = l->ds->sum.shards;
	l->fds = malloc((n ? 2 * (size_t)n : 1) * sizeof *l->fds);
	if (!l->fds)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	for (uint32_t s = 0; s < n; s++) {
		l->fds[s] = l->ds->fds[s];
		l->fds[n + s] = -1;
	}
	if (l->o.direct == 0)
		return 0;
	for (uint32_t s = 0; s < n; s++) {
		l->fds[n + s] = open(l->ds->shard_paths[s], O_RDONLY | O_DIRECT | O_CLOEXEC);
		if (l->fds[n + s] >= 0)
			continue;
		int e = errno;
		for (uint32_t t = 0; t < s; t++)
			close(l->fds[n + t]);
		for (uint32_t t = 0; t < n; t++)
			l->fds[n + t] = -1;
		if (l->o.direct == 1)
			return ib_fail(l->errmsg, IBSTORE_EUNSUPPORTED, "%s: O_DIRECT refused: %s",
				     l->ds->shard_paths[s], strerror(e));
		return 0;
	}
	l->have_direct = 1;
	return 0;
}

static int check_loader_opts(ibstore_loader *l)
{
	ibstore_loader_opts *o = &l->o;
	if (o->batch_size && o->batch_size != l->ro.batch_size)
		return ib_fail(l->errmsg, IBSTORE_EMISMATCH, "batch size %" PRIu32 " differs from the run's %"
			     PRIu32, o->batch_size, l->ro.batch_size);
	if (o->drop_last >= 0 && !!o->drop_last != !!l->ro.drop_last)
		return ib_fail(l->errmsg, IBSTORE_EMISMATCH, "drop_last differs from the run's");
	if (o->queue_depth == 0 || o->queue_depth > 4096)
		return ib_fail(l->errmsg, IBSTORE_EINVAL, "queue depth must be in 1..4096");
	if (o->backend < IBSTORE_BACKEND_AUTO || o->backend > IBSTORE_BACKEND_MMAP ||
	    o->order < IBSTORE_ORDER_RANDOM || o->order > IBSTORE_ORDER_LOCALITY ||
	    o->corrupt < IBSTORE_CORRUPT_FAIL || o->corrupt > IBSTORE_CORRUPT_SKIP)
		return ib_fail(l->errmsg, IBSTORE_EINVAL, "unknown backend, order or corrupt policy");
	if (o->max_read < 4096 || o->max_read > ((uint64_t)1 << 30))
		return ib_fail(l->errmsg, IBSTORE_EINVAL, "max_read must be in 4 KiB .. 1 GiB");
	if (o->threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		/* leave a core to the training: with one decode thread per core,
		 * PyTorch's own threads slowed a CNN epoch from 6 s to 70 s */
		o->threads = n > 1 ? (uint32_t)(n - 1) : 1;
	}
	if (o->threads > 64)
		o->threads = 64;
	return 0;
}

/*
 * Read slots: enough for the queue depth and the decoders' hold, each as
 * large as the largest read, backed by huge pages when possible; the rest
 * of the budget is decoded batches, split between two windows unless one
 * holds the whole epoch.
 */
static int setup_buffers(ibstore_loader *l)
{
	const ib_summary *sum = &l->ds->sum;
	uint64_t largest = 0;
	for (uint64_t id = 0; id < sum->samples; id++) {
		ib_index_entry e;
		ib_dataset_entry(l->ds, id, &e);
		if (rec_len(&e) > largest)
			largest = rec_len(&e);
	}
	uint64_t slot = largest > l->o.max_read ? largest : l->o.max_read;
	slot = ((slot + DIRECT_ALIGN - 1) & ~(uint64_t)(DIRECT_ALIGN - 1)) + 2 * DIRECT_ALIGN;
	/* the queue depth plus what the decoders hold: more slots keep more
	 * reads in flight but spread the DMA over more memory, which measured
	 * no faster (bench/loader_speed) */
	uint64_t nslots = (uint64_t)l->o.queue_depth + 2 * l->o.threads + 4;
	if (nslots * slot > l->o.budget / 2)
		nslots = l->o.budget / 2 / slot;
	if (nslots < 2)
		nslots = 2;
	l->slot_size = (size_t)slot;
	l->nslots = (unsigned)nslots;
	l->rbuf_len = (size_t)(nslots * slot);
	l->rbuf = alloc_buffer(l->rbuf_len, &l->buffers);
	l->free_slot = malloc(nslots * sizeof *l->free_slot);
	if (!l->rbuf || !l->free_slot)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "cannot allocate %zu bytes of read slots",
			     l->rbuf_len);
	for (unsigned i = 0; i < l->nslots; i++)
		l->free_slot[i] = l->nslots - 1 - i;
	l->nfree = l->nslots;
	uint64_t arenas = l->o.budget > l->rbuf_len ? l->o.budget - l->rbuf_len : 0;
	l->nwin = sum->bytes_raw <= arenas ? 1 : NWIN;
	l->wcap = arenas / (uint64_t)l->nwin;
	if (l->wcap < ((uint64_t)4 << 20))
		l->wcap = (uint64_t)4 << 20; /* a budget too small still makes progress */
	void *base = l->rbuf;
	size_t len = l->rbuf_len;
	ib_io_buffers bufs = {&base, &len, 1};
	unsigned nfds = sum->shards * (l->have_direct ? 2u : 1u);
	char msg[IB_ERRMSG_LEN];
	int rc = IBSTORE_EUNSUPPORTED;
	if (l->o.backend != IBSTORE_BACKEND_PREAD && l->o.backend != IBSTORE_BACKEND_MMAP)
		rc = ib_io_uring_create(l->fds, nfds, l->o.queue_depth, &bufs, &l->io, msg);
	if (rc && l->o.backend == IBSTORE_BACKEND_URING)
		return ib_fail(l->errmsg, rc, "%s", msg);
	if (rc) /* auto: io_uring refused, so threads calling pread */
		rc = ib_io_pread_create(l->fds, nfds,
					l->o.queue_depth < 16 ? l->o.queue_depth : 16, &l->io, msg);
	if (rc)
		return ib_fail(l->errmsg, rc, "%s", msg);
	return 0;
}

static int start_threads(ibstore_loader *l)
{
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv_io, NULL);
	pthread_cond_init(&l->cv_dec, NULL);
	pthread_cond_init(&l->cv_cons, NULL);
	l->threads_started = 1;
	l->dec = calloc(l->o.threads, sizeof *l->dec);
	if (!l->dec)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	if (pthread_create(&l->io_thread, NULL, io_main, l))
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "cannot start the I/O thread");
	l->threads_started = 2;
	for (unsigned i = 0; i < l->o.threads; i++) {
		if (pthread_create(&l->dec[i], NULL, dec_main, l))
			return ib_fail(l->errmsg, IBSTORE_ENOMEM, "cannot start decode threads");
		l->ndec = i + 1;
	}
	return 0;
}

IB_API int ibstore_loader_open(ibstore_dataset *ds, ibstore_run *run,
			       const ibstore_loader_opts *opts, ibstore_loader **out)
{
	if (!out)
		return IBSTORE_EINVAL;
	ibstore_loader *l = calloc(1, sizeof *l);
	*out = l;
	if (!l)
		return IBSTORE_ENOMEM;
	if (!ds || !ds->open || !run)
		return ib_fail(l->errmsg, IBSTORE_EINVAL, "an open dataset and run are needed");
	l->ds = ds;
	l->run = run;
	int rc = ib_loader_opts_adopt(&l->o, opts, l->errmsg, sizeof l->errmsg);
	if (rc)
		return rc;
	rc = ibstore_run_config_get(run, &l->ro);
	if (rc)
		return ib_fail(l->errmsg, rc, "the run is not open");
	if (l->ro.samples != ds->sum.samples)
		return ib_fail(l->errmsg, IBSTORE_EMISMATCH, "the run has %" PRIu64
			     " samples, the dataset %" PRIu64, l->ro.samples, ds->sum.samples);
	if ((rc = check_loader_opts(l)))
		return rc;
	l->fixed_size = ds->info.fixed_size;
	l->st.backend = "none";
	if ((rc = open_fds(l)))
		return rc;
	if ((rc = setup_buffers(l)) || (rc = start_threads(l)))
		return rc;
	l->st.backend = l->io->name;
	l->st.registered = l->io->registered;
	l->st.buffers = l->buffers;
	l->st.direct = l->o.direct == 1;
	l->errmsg[0] = '\0';
	return 0;
}

/* Waits until no thread touches the epoch, then frees it.  Batches the
 * caller still holds stay valid until released. */
static void drain(ibstore_loader *l)
{
	pthread_mutex_lock(&l->mu);
	l->active = 0;
	while (!idle(l)) /* woken by wake_drain() (see cv_cons above) */
		pthread_cond_wait(&l->cv_cons, &l->mu);
	for (uint64_t b = 0; b < l->nbatches && l->slots; b++) {
		lbatch *lb = l->slots[b];
		if (!lb)
			continue;
		if (lb->status == B_TAKEN) {
			atomic_store(&lb->detached, 1); /* its holder frees it */
			if (lb->data)
				l->arena_live -= lb->arena_cap;
		} else {
			give_arena(l, lb);
			batch_free(lb);
		}
	}
	for (int i = 0; i < NWIN; i++)
		l->win[i].busy = 0;
	l->untaken = 0;
	l->pend.n = 0; /* planned reads of the abandoned epoch */
	l->pend.head = 0;
	for (unsigned i = 0; i < l->nslots; i++)
		l->free_slot[i] = l->nslots - 1 - i;
	l->nfree = l->nslots;
	pthread_mutex_unlock(&l->mu);
	free(l->slots);
	free(l->order);
	free(l->order_w);
	free(l->reported);
	free(l->in_plan);
	free(l->pruned_upto);
	free(l->batch_need);
	l->pruned_upto = NULL;
	l->batch_need = NULL;
	l->slots = NULL;
	l->order = NULL;
	l->order_w = NULL;
	l->reported = NULL;
	l->in_plan = NULL;
	l->nbatches = 0;
}

IB_API void ibstore_loader_close(ibstore_loader *l)
{
	if (!l)
		return;
	if (l->threads_started) {
		drain(l);
		pthread_mutex_lock(&l->mu);
		l->stop = 1;
		pthread_cond_broadcast(&l->cv_io);
		pthread_cond_broadcast(&l->cv_dec);
		pthread_mutex_unlock(&l->mu);
		if (l->threads_started > 1)
			pthread_join(l->io_thread, NULL);
		for (unsigned i = 0; i < l->ndec; i++)
			pthread_join(l->dec[i], NULL);
		pthread_mutex_destroy(&l->mu);
		pthread_cond_destroy(&l->cv_io);
		pthread_cond_destroy(&l->cv_dec);
		pthread_cond_destroy(&l->cv_cons);
	}
	if (l->io)
		l->io->destroy(l->io);
	unmap_shards(l);
	for (int i = 0; i < NWIN; i++)
		free_window(&l->win[i]);
	free_buffer(l->rbuf, l->rbuf_len);
	free(l->free_slot);
	free(l->pend.v);
	for (uint32_t s = 0; l->fds && s < l->ds->sum.shards; s++)
		if (l->fds[l->ds->sum.shards + s] >= 0)
			close(l->fds[l->ds->sum.shards + s]);
	for (unsigned i = 0; i < l->npool; i++)
		free(l->pool[i]);
	free(l->fds);
	free(l->dec);
	free(l->dq.v);
	free(l);
}

IB_API const char *ibstore_loader_errmsg(const ibstore_loader *l)
{
	return l ? l->errmsg : "no loader handle (out of memory?)";
}

/* ---- epochs -------------------------------------------------------- */

/* Blocks of neighbouring records in random order, then samples shuffled
 * within windows of 16 blocks: a deterministic function of the slice. */
static int locality_order(ibstore_loader *l, uint64_t *ids, float *w, uint64_t n)
{
	wrec *r = malloc((n ? n : 1) * sizeof *r);
	uint64_t *key = malloc((n ? n : 1) * sizeof *key);
	uint64_t *id0 = malloc((n ? n : 1) * sizeof *id0);
	float *w0 = malloc((n ? n : 1) * sizeof *w0);
	uint64_t avg = 40 + l->ds->sum.bytes_stored / (l->ds->sum.samples ? l->ds->sum.samples : 1);
	uint64_t blk = (1u << 20) / avg ? (1u << 20) / avg : 1;
	uint64_t nblk = (n + blk - 1) / blk;
	uint64_t *border = malloc((nblk ? nblk : 1) * sizeof *border);
	int rc = IBSTORE_ENOMEM;
	if (!r || !key || !id0 || !w0 || !border)
		goto out;
	for (uint64_t i = 0; i < n; i++)
		r[i] = (wrec){.id = ids[i], .pos = (uint32_t)i};
	if (sort_recs(r, n))
		goto out;
	for (uint64_t b = 0; b < nblk; b++)
		border[b] = b;
	ib_shuffle_u64(l->ro.prune.seed, l->epoch, 7, border, nblk);
	uint64_t k = 0;
	for (uint64_t b = 0; b < nblk; b++) {
		uint64_t lo = border[b] * blk, hi = lo + blk < n ? lo + blk : n;
		for (uint64_t i = lo; i < hi; i++)
			key[k++] = r[i].pos; /* a slot of the slice, in file order */
	}
	uint64_t span = 16 * blk;
	for (uint64_t s = 0; s < n; s += span)
		ib_shuffle_u64(l->ro.prune.seed, l->epoch, (uint32_t)(8 + s / span), key + s,
			       s + span < n ? span : n - s);
	memcpy(id0, ids, n * sizeof *ids);
	memcpy(w0, w, n * sizeof *w);
	for (uint64_t i = 0; i < n; i++) {
		ids[i] = id0[key[i]];
		w[i] = w0[key[i]];
	}
	rc = 0;
out:
	free(r);
	free(key);
	free(id0);
	free(w0);
	free(border);
	return rc;
}

static int build_order(ibstore_loader *l)
{
	const ibstore_plan *p = ibstore_run_plan(l->run);
	ibstore_slice_mode mode = l->ro.slice;
	uint64_t n = ibstore_plan_slice_len(p, l->ro.world, mode);
	uint64_t N = l->ds->sum.samples;
	l->order = malloc((n ? n : 1) * sizeof *l->order);
	l->order_w = malloc((n ? n : 1) * sizeof *l->order_w);
	l->in_plan = calloc((N + 7) / 8 + 1, 1);
	l->pruned_upto = malloc((N + 1) * sizeof *l->pruned_upto);
	if (!l->order || !l->order_w || !l->in_plan || !l->pruned_upto)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	for (uint64_t i = 0; i < n; i++)
		ibstore_plan_slice_entry(p, l->ro.rank, l->ro.world, mode, i, &l->order[i],
					 &l->order_w[i]);
	if (l->o.order == IBSTORE_ORDER_LOCALITY && locality_order(l, l->order, l->order_w, n))
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	for (uint64_t i = 0; i < p->len; i++)
		l->in_plan[p->ids[i] >> 3] |= (uint8_t)(1u << (p->ids[i] & 7));
	uint64_t sum = 0;
	for (uint64_t id = 0; id < N; id++) {
		l->pruned_upto[id] = sum;
		if (planned(l, id))
			continue;
		ib_index_entry e;
		ib_dataset_entry(l->ds, id, &e);
		sum += rec_len(&e);
	}
	l->pruned_upto[N] = sum;
	l->pruned_bytes = sum;
	l->len = n;
	return 0;
}

IB_API int ibstore_loader_epoch_begin(ibstore_loader *l, uint32_t epoch, ibstore_epoch_info *info)
{
	if (!l || !l->io)
		return IBSTORE_EINVAL;
	if (l->slots)
		drain(l); /* the previous epoch was abandoned */
	ibstore_epoch_info ei;
	int rc = ibstore_run_epoch_begin(l->run, epoch, &ei);
	if (rc)
		return ib_fail(l->errmsg, rc, "%s", ibstore_run_errmsg(l->run));
	l->epoch = epoch;
	if ((rc = choose_path(l)) || (rc = build_order(l)))
		return rc;
	l->nbatches = ei.batches;
	l->slots = calloc(l->nbatches ? l->nbatches : 1, sizeof *l->slots);
	l->reported = calloc(l->nbatches ? l->nbatches : 1, 1);
	l->batch_need = malloc((l->nbatches ? l->nbatches : 1) * sizeof *l->batch_need);
	if (!l->slots || !l->reported || !l->batch_need)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "out of memory");
	/* one batch's decoded samples must fit a window's share of the budget */
	for (uint64_t b = 0; b < l->nbatches; b++) {
		uint64_t need = 0;
		for (uint64_t i = batch_lo(l, b); i < batch_hi(l, b); i++) {
			ib_index_entry e;
			ib_dataset_entry(l->ds, l->order[i], &e);
			need += e.size;
		}
		l->batch_need[b] = need;
		if (need > l->wcap)
			return ib_fail(l->errmsg, IBSTORE_ETOOBIG,
				     "batch %" PRIu64 " decodes to %" PRIu64 " bytes but the budget "
				     "leaves %" PRIu64 " per window; raise the budget or lower the "
				     "batch size", b, need, l->wcap);
	}
	l->cursor = ei.cursor;
	memset(&l->st, 0, offsetof(ibstore_loader_stats, backend));
	l->st.epoch = epoch;
	l->st.kept = ei.plan.kept;
	l->st.pruned = ei.plan.pruned;
	l->pruned_requested = 0;
	l->t_begin = now();
	pthread_mutex_lock(&l->mu);
	l->io_failed = 0;
	l->next_plan = l->next_take = ei.cursor;
	l->active = 1;
	pthread_cond_broadcast(&l->cv_io);
	pthread_mutex_unlock(&l->mu);
	if (info)
		*info = ei;
	return 0;
}

IB_API int ibstore_loader_next(ibstore_loader *l, const ibstore_batch **out)
{
	if (!l || !out)
		return IBSTORE_EINVAL;
	*out = NULL;
	if (!l->slots)
		return ib_fail(l->errmsg, IBSTORE_ESTATE, "no epoch has begun");
	double t0 = now();
	pthread_mutex_lock(&l->mu);
	if (l->next_take >= l->nbatches) {
		pthread_mutex_unlock(&l->mu);
		return 0;
	}
	lbatch *b;
	while (!(b = l->slots[l->next_take]) || b->status != B_READY) {
		if (l->io_failed) {
			pthread_mutex_unlock(&l->mu);
			return ib_fail(l->errmsg, l->io_failed, "%s", l->io_msg);
		}
		/* woken by decode_one (batch ready) or io_fail */
		pthread_cond_wait(&l->cv_cons, &l->mu);
	}
	if (b->err) {
		pthread_mutex_unlock(&l->mu);
		return ib_fail(l->errmsg, b->err, "%s", b->errmsg ? b->errmsg : ibstore_strerror(b->err));
	}
	b->status = B_TAKEN;
	l->untaken -= b->data_cap;
	pthread_cond_signal(&l->cv_io); /* a window's share may be free again */
	l->next_take++;
	l->st.batches++;
	l->st.samples += b->pub.n;
	l->st.io_wait += now() - t0;
	pthread_mutex_unlock(&l->mu);
	*out = &b->pub;
	return 0;
}

IB_API void ibstore_loader_release(ibstore_loader *l, const ibstore_batch *batch)
{
	if (!batch)
		return;
	lbatch *b = (lbatch *)batch; /* pub is the first member */
	if (atomic_load(&b->detached)) { /* its epoch (or loader) is gone */
		batch_free(b);
		return;
	}
	if (!l)
		return; /* a live batch needs its loader */
	pthread_mutex_lock(&l->mu);
	if (atomic_load(&b->detached)) { /* the epoch ended meanwhile */
		pthread_mutex_unlock(&l->mu);
		batch_free(b);
		return;
	}
	if (l->slots && b->index < l->nbatches && l->slots[b->index] == b)
		l->slots[b->index] = NULL;
	give_arena(l, b);
	pthread_mutex_unlock(&l->mu);
	batch_free(b);
}

IB_API int ibstore_loader_report(ibstore_loader *l, const ibstore_batch *batch,
				 const float *losses)
{
	if (!l || !batch || (batch->n && !losses))
		return IBSTORE_EINVAL;
	if (!l->slots || batch->epoch != l->epoch || batch->index >= l->nbatches)
		return ib_fail(l->errmsg, IBSTORE_ESTATE, "the batch is not of the current epoch");
	/* weight-0 entries are padding that balances ranks: the rank that owns
	 * the sample reports its loss, so a padded copy is neither recorded nor
	 * checked (one rank refusing alone would stall the others' collectives) */
	size_t keep = 0;
	for (size_t i = 0; i < batch->n; i++)
		keep += batch->weights[i] != 0.0f;
	int rc;
	if (keep == batch->n) {
		rc = ibstore_run_report(l->run, batch->ids, losses, batch->n);
	} else {
		uint64_t *ids = malloc((keep ? keep : 1) * sizeof *ids);
		float *ls = malloc((keep ? keep : 1) * sizeof *ls);
		rc = ids && ls ? 0 : IBSTORE_ENOMEM;
		for (size_t i = 0, k = 0; !rc && i < batch->n; i++) {
			if (batch->weights[i] != 0.0f) {
				ids[k] = batch->ids[i];
				ls[k++] = losses[i];
			}
		}
		if (!rc)
			rc = ibstore_run_report(l->run, ids, ls, keep);
		free(ids);
		free(ls);
	}
	if (rc)
		return ib_fail(l->errmsg, rc, "%s", ibstore_run_errmsg(l->run));
	l->reported[batch->index] = 1;
	uint64_t adv = 0;
	while (l->cursor < l->nbatches && l->reported[l->cursor]) {
		l->cursor++;
		adv++;
	}
	if (adv && (rc = ibstore_run_advance(l->run, adv)))
		return ib_fail(l->errmsg, rc, "%s", ibstore_run_errmsg(l->run));
	return 0;
}

static void fill_io_stats(ibstore_loader *l)
{
	uint64_t req = l->pruned_requested;
	l->st.bytes_skipped = l->pruned_bytes > req ? l->pruned_bytes - req : 0;
	l->st.seconds = now() - l->t_begin;
}

IB_API int ibstore_loader_epoch_end(ibstore_loader *l)
{
	if (!l || !l->slots)
		return l ? ib_fail(l->errmsg, IBSTORE_ESTATE, "no epoch has begun") : IBSTORE_EINVAL;
	if (l->next_take < l->nbatches)
		return ib_fail(l->errmsg, IBSTORE_ESTATE, "%" PRIu64 " batches of the epoch were not taken",
			     l->nbatches - l->next_take);
	pthread_mutex_lock(&l->mu);
	fill_io_stats(l);
	ibstore_epoch_io io = {l->st.bytes_read, l->st.bytes_skipped, l->st.seconds};
	pthread_mutex_unlock(&l->mu);
	int rc = ibstore_run_epoch_end(l->run, &io);
	if (rc)
		return ib_fail(l->errmsg, rc, "%s", ibstore_run_errmsg(l->run));
	drain(l);
	return 0;
}

IB_API int ibstore_loader_stats_get_sized(const ibstore_loader *l, ibstore_loader_stats *out,
					  size_t size)
{
	if (!l || !out)
		return IBSTORE_EINVAL;
	ibstore_loader *m = (ibstore_loader *)l;
	pthread_mutex_lock(&m->mu);
	if (m->slots)
		fill_io_stats(m);
	ibstore_loader_stats st = m->st;
	pthread_mutex_unlock(&m->mu);
	return ib_loader_stats_emit(out, size, &st, m->errmsg, sizeof m->errmsg);
}
