/*
 * test_readplan.c — the loader's read planning without threads or files
 * (loader_readplan.c), on a made-up index of two shards: a window's
 * records are read in file order, coalesced across gaps up to `gap` into
 * reads no longer than max_read, each record once; the bytes read around
 * the records and the pruned bytes inside reads are what they are; windows
 * hold whole batches within their share of the budget.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ibstore.h"
#include "internal.h"
#include "loader_int.h"

enum { N = 600, SHARD1 = 350 }; /* ids [0, 350) in shard 0, the rest in 1 */

static ib_index_entry idx[N];

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

static int entry(const void *src, uint64_t id, ib_index_entry *e)
{
	(void)src;
	if (id >= N)
		return IBSTORE_ENOTFOUND;
	*e = idx[id];
	return 0;
}

/* Records of 60..6000 stored bytes back to back, now and then after a
 * hole (alignment, a deleted tail), in id order within each shard. */
static int setup(void **state)
{
	(void)state;
	uint64_t s = 77, off[2] = {4096, 4096};
	for (uint32_t id = 0; id < N; id++) {
		uint32_t shard = id >= SHARD1;
		uint32_t stored = 60 + (uint32_t)(lcg(&s) % 5940);
		if (lcg(&s) % 5 == 0)
			off[shard] += lcg(&s) % 20000;
		idx[id] = (ib_index_entry){.shard = shard, .stored_size = stored,
					   .offset = off[shard], .size = stored + id % 3,
					   .label = (int32_t)(id % 10)};
		off[shard] += rec_len(&idx[id]);
	}
	return 0;
}

typedef struct fixture {
	uint8_t in_plan[N / 8 + 2];
	uint64_t pruned_upto[N + 1];
	uint64_t pruned_total;
	window w;
	ib_readplan p;
} fixture;

/* The plan keeps about 3 in 5 samples; the window holds `nrecs` of them
 * (the other kept ones are other windows' or other ranks'), in random
 * order, some twice (padding). */
static void fixture_init(fixture *f, uint64_t gap, uint64_t max_read, int direct, size_t nrecs)
{
	memset(f, 0, sizeof *f);
	uint64_t s = 5, plan[N], len = 0;
	for (uint64_t id = 0; id < N; id++)
		if (lcg(&s) % 5 < 3)
			plan[len++] = id;
	f->p = (ib_readplan){.ix = {entry, NULL, N}, .gap = gap, .max_read = max_read,
			     .direct = direct, .shards = 2, .in_plan = f->in_plan,
			     .pruned_upto = f->pruned_upto};
	f->pruned_total = ib_pruned_prefix(&f->p.ix, plan, len, f->in_plan, f->pruned_upto);
	assert_int_equal(ib_grow((void **)&f->w.recs, &f->w.caprecs, nrecs, sizeof *f->w.recs), 0);
	for (size_t i = 0; i < nrecs; i++) {
		uint64_t id = plan[lcg(&s) % len];
		if (i && lcg(&s) % 10 == 0)
			id = f->w.recs[lcg(&s) % i].id; /* a padding copy */
		f->w.recs[f->w.nrecs++] = (wrec){.id = id, .pos = (uint32_t)i, .e = idx[id]};
	}
}

static void fixture_free(fixture *f)
{
	free(f->w.recs);
	free(f->w.reqs);
}

static int planned(const fixture *f, uint64_t id)
{
	return (f->in_plan[id >> 3] >> (id & 7)) & 1;
}

static uint64_t overlap(uint64_t a, uint64_t z, uint64_t x, uint64_t y)
{
	uint64_t lo = a > x ? a : x, hi = z < y ? z : y;
	return hi > lo ? hi - lo : 0;
}

/* Everything a plan of reads must satisfy, checked one read at a time;
 * the cost it adds up is recomputed by brute force. */
static void check_reads(const fixture *f, const ib_read_acct *acct)
{
	const window *w = &f->w;
	const ib_readplan *p = &f->p;
	uint64_t read = 0, wanted = 0, pruned = 0;
	size_t next = 0;
	for (size_t i = 1; i < w->nrecs; i++) /* file order */
		assert_true(w->recs[i - 1].id <= w->recs[i].id);
	for (size_t q = 0; q < w->nreqs; q++) {
		const ib_req *r = &w->reqs[q];
		assert_int_equal(r->first_rec, next); /* reads partition the records */
		if (q > 0) /* and no record is read twice */
			assert_true(w->recs[next - 1].id < w->recs[next].id);
		assert_true(r->nrecs > 0);
		next = r->first_rec + r->nrecs;
		assert_int_equal(r->window, 1);
		assert_int_equal(r->buf_index, -1);
		assert_int_equal(r->fd, r->shard + (p->direct ? 2u : 0u));
		assert_true(r->need <= r->len);
		if (p->direct) {
			assert_int_equal(r->off % DIRECT_ALIGN, 0);
			assert_int_equal(r->len % DIRECT_ALIGN, 0);
			assert_true(r->len - r->need < DIRECT_ALIGN);
		}
		uint64_t start = UINT64_MAX, end = 0;
		for (size_t k = r->first_rec; k < next; k++) {
			const wrec *x = &w->recs[k];
			assert_int_equal(x->e.shard, r->shard);
			assert_true(x->e.offset >= r->off);
			assert_true(x->e.offset + rec_len(&x->e) <= r->off + r->need);
			assert_int_equal(x->rel, x->e.offset - r->off);
			if (k > r->first_rec && x->id == w->recs[k - 1].id)
				continue; /* read once */
			if (k > r->first_rec) { /* coalesced across a gap of at most `gap` */
				assert_true(p->gap > 0);
				assert_true(x->e.offset - end <= p->gap);
			}
			start = start < x->e.offset ? start : x->e.offset;
			end = x->e.offset + rec_len(&x->e);
			wanted += rec_len(&x->e);
		}
		assert_int_equal(r->off + r->need, end);
		/* no longer than max_read, unless one record is longer */
		assert_true(end - start <= p->max_read || r->nrecs == 1);
		if (q > 0 && w->reqs[q - 1].shard == r->shard) { /* and as long as allowed */
			const wrec *prev = &w->recs[r->first_rec - 1];
			uint64_t pend = prev->e.offset + rec_len(&prev->e);
			uint64_t pstart = w->recs[w->reqs[q - 1].first_rec].e.offset;
			assert_true(p->gap == 0 || start - pend > p->gap ||
				    start + rec_len(&w->recs[r->first_rec].e) - pstart > p->max_read);
		}
		read += r->len;
		for (uint64_t id = 0; id < N; id++) /* pruned bytes this read covers */
			if (!planned(f, id) && idx[id].shard == r->shard)
				pruned += overlap(r->off, r->off + r->len, idx[id].offset,
						  idx[id].offset + rec_len(&idx[id]));
	}
	assert_int_equal(next, w->nrecs);
	assert_int_equal(acct->read, read);
	assert_int_equal(acct->wanted, wanted);
	assert_int_equal(acct->pruned, pruned);
}

static void plan_and_check(uint64_t gap, uint64_t max_read, int direct, size_t nrecs)
{
	fixture *f = malloc(sizeof *f);
	fixture_init(f, gap, max_read, direct, nrecs);
	ib_read_acct acct = {0, 0, 0};
	assert_int_equal(ib_plan_reads(&f->p, &f->w, 1, &acct), 0);
	check_reads(f, &acct);
	fixture_free(f);
	free(f);
}

static void test_pruned_prefix_sums_the_pruned_records(void **state)
{
	(void)state;
	fixture *f = malloc(sizeof *f);
	fixture_init(f, 0, 4096, 0, 1);
	uint64_t sum = 0;
	for (uint64_t id = 0; id < N; id++) {
		assert_int_equal(f->pruned_upto[id], sum);
		if (!planned(f, id))
			sum += rec_len(&idx[id]);
	}
	assert_int_equal(f->pruned_upto[N], sum);
	assert_int_equal(f->pruned_total, sum);
	assert_true(sum > 0);
	fixture_free(f);
	free(f);
}

static void test_reads_follow_file_order_and_respect_gap_and_max_read(void **state)
{
	(void)state;
	plan_and_check(32 << 10, 1 << 20, 0, 300);
	plan_and_check(2000, 16384, 0, 300);
	plan_and_check(100000, 8192, 0, 400); /* max_read binds before gap */
	plan_and_check(32 << 10, 1 << 20, 0, 3);
}

static void test_gap_zero_reads_each_record_alone(void **state)
{
	(void)state;
	fixture *f = malloc(sizeof *f);
	fixture_init(f, 0, 1 << 20, 0, 200);
	ib_read_acct acct = {0, 0, 0};
	assert_int_equal(ib_plan_reads(&f->p, &f->w, 1, &acct), 0);
	check_reads(f, &acct);
	for (size_t q = 0; q < f->w.nreqs; q++) { /* padding copies share their read */
		const ib_req *r = &f->w.reqs[q];
		for (size_t k = r->first_rec + 1; k < r->first_rec + r->nrecs; k++)
			assert_int_equal(f->w.recs[k].id, f->w.recs[r->first_rec].id);
	}
	assert_int_equal(acct.read, acct.wanted); /* nothing read around */
	assert_int_equal(acct.pruned, 0);
	fixture_free(f);
	free(f);
}

static void test_coalesced_reads_count_what_they_read_around(void **state)
{
	(void)state;
	fixture *f = malloc(sizeof *f);
	fixture_init(f, 1 << 20, 1 << 24, 0, 300);
	ib_read_acct acct = {0, 0, 0};
	assert_int_equal(ib_plan_reads(&f->p, &f->w, 1, &acct), 0);
	check_reads(f, &acct);
	assert_int_equal(f->w.nreqs, 2); /* one read per shard */
	assert_true(acct.read > acct.wanted);
	assert_true(acct.pruned > 0 && acct.pruned <= acct.read - acct.wanted);
	fixture_free(f);
	free(f);
}

static void test_direct_reads_are_aligned_and_count_the_neighbours_they_reach(void **state)
{
	(void)state;
	plan_and_check(0, 1 << 20, 1, 200);
	plan_and_check(32 << 10, 1 << 20, 1, 300);
	plan_and_check(4096, 8192, 1, 300);
}

static void test_windows_hold_whole_batches_within_their_share(void **state)
{
	(void)state;
	uint64_t need[] = {10, 20, 30, 5, 50, 1, 1, 100, 7};
	uint64_t nb = sizeof need / sizeof *need;
	assert_int_equal(ib_window_end(need, nb, 60, 0), 3);   /* 10+20+30 */
	assert_int_equal(ib_window_end(need, nb, 59, 0), 2);
	assert_int_equal(ib_window_end(need, nb, 60, 3), 7);   /* 5+50+1+1 */
	assert_int_equal(ib_window_end(need, nb, 60, 7), 8);   /* one batch at least */
	assert_int_equal(ib_window_end(need, nb, 1000, 2), nb);
	assert_int_equal(ib_window_end(need, nb, 0, 8), nb);
}

static void test_batch_needs_are_the_decoded_sizes(void **state)
{
	(void)state;
	uint64_t order[10] = {5, 3, 9, 0, 599, 400, 12, 12, 77, 1};
	uint64_t need[4];
	ib_entries ix = {entry, NULL, N};
	ib_batch_needs(&ix, order, 10, 3, 4, need);
	for (int b = 0; b < 4; b++) {
		uint64_t sum = 0;
		for (int i = 3 * b; i < 3 * b + 3 && i < 10; i++)
			sum += idx[order[i]].size;
		assert_int_equal(need[b], sum);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pruned_prefix_sums_the_pruned_records),
		cmocka_unit_test(test_reads_follow_file_order_and_respect_gap_and_max_read),
		cmocka_unit_test(test_gap_zero_reads_each_record_alone),
		cmocka_unit_test(test_coalesced_reads_count_what_they_read_around),
		cmocka_unit_test(test_direct_reads_are_aligned_and_count_the_neighbours_they_reach),
		cmocka_unit_test(test_windows_hold_whole_batches_within_their_share),
		cmocka_unit_test(test_batch_needs_are_the_decoded_sizes),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
