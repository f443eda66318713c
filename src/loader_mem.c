/*
 * loader_mem.c — the loader's memory, sized once from the budget: read
 * slots that reads land in (reused most-recently-freed first: warm memory
 * reads faster), arenas that batches decode into (pooled across batches
 * and epochs within the windows' share of the budget), and each batch's
 * per-sample arrays.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "loader_int.h"

#define HUGE_SIZE ((size_t)2 << 20)

/* Batches per decode thread in a window of decoded images. */
#define IMG_WINDOW_BATCHES 4

/* len bytes (a multiple of HUGE_SIZE) of anonymous memory aligned to
 * HUGE_SIZE and advised for transparent huge pages; *thp says whether the
 * advice was taken.  NULL when out of memory. */
static uint8_t *map_thp(size_t len, int *thp)
{
	void *p = mmap(NULL, len + HUGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uintptr_t a = ((uintptr_t)p + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	munmap((void *)(a + len), (uintptr_t)p + len + HUGE_SIZE - (a + len));
	*thp = madvise((void *)a, len, MADV_HUGEPAGE) == 0;
	return (uint8_t *)a;
}

static size_t huge_round(size_t cap)
{
	return (cap + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
}

/* Read slots come from huge pages when the system has them reserved,
 * else from 2 MiB-aligned memory advised for transparent huge pages: on
 * virtio disks every 4 KiB page of an O_DIRECT buffer costs a ring slot. */
static uint8_t *alloc_buffer(size_t cap, const char **kind)
{
	size_t len = huge_round(cap);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p != MAP_FAILED) {
		*kind = "hugetlb";
		return p;
	}
	int thp = 0;
	uint8_t *a = map_thp(len, &thp);
	*kind = thp ? "thp" : "normal";
	return a;
}

static void free_buffer(uint8_t *p, size_t cap)
{
	if (p)
		munmap(p, huge_round(cap));
}

/* Arenas of a huge page or more are transparent huge pages too: the first
 * epoch writes every arena of the budget once, and in 4 KiB pages that was
 * a page fault per page (114 000 for 450 MiB of decoded images, a fifth of
 * the first epoch's time on one decode thread: bench/images/run).
 * Smaller arenas come from malloc.  arena_free takes the same cap. */
static uint8_t *arena_alloc(uint64_t cap)
{
	if (cap >= HUGE_SIZE) {
		int thp;
		return cap > SIZE_MAX - HUGE_SIZE ? NULL : map_thp(huge_round((size_t)cap), &thp);
	}
	return malloc(cap ? (size_t)cap : 1);
}

static void arena_free(uint8_t *p, uint64_t cap)
{
	if (cap >= HUGE_SIZE)
		free_buffer(p, (size_t)cap);
	else
		free(p);
}

void ib_batch_free(lbatch *b)
{
	if (!b)
		return;
	free(b->ent);
	if (b->data)
		arena_free(b->data, b->arena_cap);
	free(b->errmsg);
	free(b);
}

/* A batch's per-sample arrays, back to back in one allocation: the
 * widest elements first, so that each array starts aligned. */
typedef struct batch_arrays {
	ib_index_entry ent;
	uint64_t id, offset, skipped;
	int32_t label;
	float weight;
	uint32_t size;
	int32_t bad;
} batch_arrays;

lbatch *ib_batch_new(size_t n)
{
	lbatch *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	size_t k = n ? n : 1;
	uint8_t *m = malloc(k * sizeof(batch_arrays));
	if (!m) {
		free(b);
		return NULL;
	}
	b->ent = (ib_index_entry *)m;
	b->ids = (uint64_t *)(m + k * offsetof(batch_arrays, id));
	b->offsets = (uint64_t *)(m + k * offsetof(batch_arrays, offset));
	b->skipped = (uint64_t *)(m + k * offsetof(batch_arrays, skipped));
	b->labels = (int32_t *)(m + k * offsetof(batch_arrays, label));
	b->weights = (float *)(m + k * offsetof(batch_arrays, weight));
	b->sizes = (uint32_t *)(m + k * offsetof(batch_arrays, size));
	b->bad = (int32_t *)(m + k * offsetof(batch_arrays, bad));
	return b;
}

/* The arenas' share of the budget: what live and pooled arenas may hold. */
static uint64_t arena_budget(const ib_loader_mem *m)
{
	return (uint64_t)m->nwin * m->wcap;
}

/* Drops pooled arenas, the smallest first, until `need` more bytes of
 * arenas fit in the arenas' share of the budget. */
static void trim_pool(ib_loader_mem *m, uint64_t need)
{
	while (m->npool && m->arena_live + m->pool_bytes + need > arena_budget(m)) {
		unsigned k = 0;
		for (unsigned i = 1; i < m->npool; i++)
			if (m->pool_cap[i] < m->pool_cap[k])
				k = i;
		arena_free(m->pool[k], m->pool_cap[k]);
		m->pool_bytes -= m->pool_cap[k];
		m->pool[k] = m->pool[--m->npool];
		m->pool_cap[k] = m->pool_cap[m->npool];
	}
}

/* Arena for a batch: a released one when one is big enough (fresh memory
 * costs a page fault and a zeroed page), else a new one. */
uint8_t *ib_take_arena(ibstore_loader *l, lbatch *b)
{
	ib_loader_mem *m = &l->mem;
	uint64_t cap = b->data_cap;
	for (unsigned i = 0; i < m->npool; i++) {
		if (m->pool_cap[i] >= cap) {
			uint8_t *p = m->pool[i];
			b->arena_cap = m->pool_cap[i];
			m->pool_bytes -= b->arena_cap;
			m->pool[i] = m->pool[--m->npool];
			m->pool_cap[i] = m->pool_cap[m->npool];
			m->arena_live += b->arena_cap;
			return p;
		}
	}
	trim_pool(m, cap);
	uint8_t *p = arena_alloc(cap);
	b->arena_cap = cap;
	if (p)
		m->arena_live += cap;
	return p;
}

/* Takes a batch's arena back into the pool while pool and live arenas fit
 * the arenas' share of the budget. */
void ib_give_arena(ibstore_loader *l, lbatch *b)
{
	ib_loader_mem *m = &l->mem;
	if (!b->data)
		return;
	m->arena_live -= b->arena_cap;
	if (m->npool < POOL_MAX &&
	    m->arena_live + m->pool_bytes + b->arena_cap <= arena_budget(m)) {
		m->pool[m->npool] = b->data;
		m->pool_cap[m->npool++] = b->arena_cap;
		m->pool_bytes += b->arena_cap;
	} else {
		arena_free(b->data, b->arena_cap);
	}
	b->data = NULL;
}

void ib_mem_drop_batch(ibstore_loader *l, lbatch *b)
{
	if (b->status == B_TAKEN) {
		atomic_store(&b->detached, 1); /* its holder frees it */
		if (b->data)
			l->mem.arena_live -= b->arena_cap;
	} else {
		ib_give_arena(l, b);
		ib_batch_free(b);
	}
}

static void free_all_slots(ib_loader_mem *m)
{
	for (unsigned i = 0; i < m->nslots; i++)
		m->free_slot[i] = m->nslots - 1 - i;
	m->nfree = m->nslots;
}

void ib_mem_reset(ibstore_loader *l)
{
	l->mem.untaken = 0;
	free_all_slots(&l->mem);
}

/*
 * Read slots: enough for the queue depth and the decoders' hold, each as
 * large as the largest read, backed by huge pages when possible; the rest
 * of the budget is decoded batches, split between two windows unless one
 * holds the whole epoch.
 */
int ib_mem_setup(ibstore_loader *l)
{
	const ibstore_loader_opts *o = &l->cfg.o;
	ib_loader_mem *m = &l->mem;
	uint64_t largest = 0;
	for (uint64_t id = 0; id < l->cfg.samples; id++) {
		ib_index_entry e;
		ib_dataset_entry(l->cfg.ds, id, &e);
		if (rec_len(&e) > largest)
			largest = rec_len(&e);
	}
	uint64_t slot = largest > o->max_read ? largest : o->max_read;
	slot = ((slot + DIRECT_ALIGN - 1) & ~(uint64_t)(DIRECT_ALIGN - 1)) + 2 * DIRECT_ALIGN;
	/* the queue depth plus what the decoders hold: more slots keep more
	 * reads in flight but spread the DMA over more memory, which measured
	 * no faster (bench/loader_speed) */
	uint64_t nslots = (uint64_t)o->queue_depth + 2 * o->threads + 4;
	if (nslots * slot > o->budget / 2)
		nslots = o->budget / 2 / slot;
	if (nslots < 2)
		nslots = 2;
	m->slot_size = (size_t)slot;
	m->nslots = (unsigned)nslots;
	m->rbuf_len = (size_t)(nslots * slot);
	m->rbuf = alloc_buffer(m->rbuf_len, &m->buffers);
	m->free_slot = malloc(nslots * sizeof *m->free_slot);
	if (!m->rbuf || !m->free_slot)
		return ib_fail(l->errmsg, IBSTORE_ENOMEM, "cannot allocate %zu bytes of read slots",
			       m->rbuf_len);
	free_all_slots(m);
	uint64_t arenas = o->budget > m->rbuf_len ? o->budget - m->rbuf_len : 0;
	/* what an epoch decodes to: the stored samples, or the image stage's
	 * dense tensors (larger than the encoded bytes by far) */
	const ib_loader_cfg *c = &l->cfg;
	uint64_t decoded = c->images ? c->samples * (uint64_t)c->img_size : c->about->bytes_raw;
	m->nwin = decoded <= arenas ? 1 : NWIN;
	m->wcap = arenas / (uint64_t)m->nwin;
	if (c->images) {
		/* Decoding is CPU-bound: batches decoded further ahead than the
		 * decode threads can fill buy nothing, and every arena is fresh
		 * memory the first epoch pays to fault in and zero (the whole
		 * budget of 224 x 224 images was a fifth of the first epoch's
		 * time, bench/images/run).  A window is then IMG_WINDOW_BATCHES
		 * batches per decode thread, the reads of both windows still
		 * enough to keep the queue full. */
		uint64_t per = (uint64_t)c->ro.batch_size * c->img_size;
		uint64_t want = per * IMG_WINDOW_BATCHES * (o->threads ? o->threads : 1);
		if (want < m->wcap) {
			m->nwin = NWIN;
			m->wcap = want;
		}
	}
	if (m->wcap < ((uint64_t)4 << 20))
		m->wcap = (uint64_t)4 << 20; /* a budget too small still makes progress */
	return 0;
}

void ib_mem_free(ibstore_loader *l)
{
	ib_loader_mem *m = &l->mem;
	free_buffer(m->rbuf, m->rbuf_len);
	free(m->free_slot);
	for (unsigned i = 0; i < m->npool; i++)
		arena_free(m->pool[i], m->pool_cap[i]);
}
