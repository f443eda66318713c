/*
 * test_loader_order.c — the loader's first stage without threads or
 * files (loader_order.c): records sort by id stably, a rank's slice is the
 * plan's, and the locality order keeps every (id, weight), emits whole
 * blocks of file neighbours together and is a function of (seed, epoch).
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

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

/* n distinct ids below 4n in random order, weights tied to the id */
static void slice_of(uint64_t n, uint64_t seed, uint64_t *ids, float *w)
{
	uint64_t s = seed;
	for (uint64_t i = 0; i < n; i++)
		ids[i] = 4 * i + lcg(&s) % 4;
	for (uint64_t i = n; i-- > 1;) {
		uint64_t j = lcg(&s) % (i + 1);
		uint64_t t = ids[i];
		ids[i] = ids[j];
		ids[j] = t;
	}
	for (uint64_t i = 0; i < n; i++)
		w[i] = 1.0f + (float)(ids[i] % 7);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_records_sort_by_id_keeping_equal_ids_in_order(void **state)
{
	(void)state;
	enum { N = 5000 };
	wrec *r = calloc(N, sizeof *r);
	uint64_t s = 1;
	for (uint32_t i = 0; i < N; i++)
		r[i] = (wrec){.id = lcg(&s) % 300000, .pos = i}; /* above 2^16: both passes */
	r[10].id = r[20].id = r[4000].id = 70000;            /* equal ids */
	assert_int_equal(ib_sort_recs(r, N), 0);
	for (uint32_t i = 1; i < N; i++) {
		assert_true(r[i - 1].id <= r[i].id);
		if (r[i - 1].id == r[i].id)
			assert_true(r[i - 1].pos < r[i].pos);
	}
	free(r);
}

static void test_locality_keeps_every_id_with_its_weight(void **state)
{
	(void)state;
	enum { N = 3000 };
	uint64_t *ids = malloc(N * sizeof *ids);
	float *w = malloc(N * sizeof *w);
	slice_of(N, 3, ids, w);
	ids[N - 1] = ids[0]; /* padding repeats an entry, weight 0 */
	w[N - 1] = 0.0f;
	uint64_t *before = malloc(N * sizeof *before), *after = malloc(N * sizeof *after);
	for (int i = 0; i < N; i++) /* (id, weight) as one key */
		before[i] = ids[i] << 8 | (uint64_t)w[i];
	assert_int_equal(ib_order_locality(42, 5, 4000, ids, w, N), 0);
	for (int i = 0; i < N; i++) {
		assert_true(w[i] == 0.0f || w[i] == 1.0f + (float)(ids[i] % 7));
		after[i] = ids[i] << 8 | (uint64_t)w[i];
	}
	qsort(before, N, sizeof *before, cmp_u64);
	qsort(after, N, sizeof *after, cmp_u64);
	assert_memory_equal(before, after, N * sizeof *before);
	free(ids);
	free(w);
	free(before);
	free(after);
}

/* Records of 64 KiB (avg 65536): blocks of 1 MiB / 64 KiB = 16 records. */
static void test_locality_emits_whole_blocks_of_neighbours_together(void **state)
{
	(void)state;
	enum { N = 2000, BLK = 16, SPAN = 16 * BLK };
	uint64_t *ids = malloc(N * sizeof *ids), *sorted = malloc(N * sizeof *sorted);
	float *w = malloc(N * sizeof *w);
	slice_of(N, 9, ids, w);
	memcpy(sorted, ids, N * sizeof *ids);
	qsort(sorted, N, sizeof *sorted, cmp_u64);
	uint64_t *other = malloc(N * sizeof *other);
	memcpy(other, ids, N * sizeof *ids);
	assert_int_equal(ib_order_locality(7, 2, 65536, ids, w, N), 0);
	assert_int_equal(ib_order_locality(7, 3, 65536, other, w, N), 0);
	uint32_t count[(N + BLK - 1) / BLK];
	uint64_t neighbours = 0, first_blocks = 0, other_blocks = 0;
	for (uint64_t i = 0; i < SPAN; i++) { /* the blocks epoch 3 emits first */
		uint64_t *at = bsearch(&other[i], sorted, N, sizeof *sorted, cmp_u64);
		other_blocks |= (uint64_t)1 << ((at - sorted) / BLK % 64);
	}
	for (uint64_t s = 0; s < N; s += SPAN) {
		uint64_t end = s + SPAN < N ? s + SPAN : N;
		memset(count, 0, sizeof count);
		uint64_t prev = 0;
		for (uint64_t i = s; i < end; i++) {
			uint64_t *at = bsearch(&ids[i], sorted, N, sizeof *sorted, cmp_u64);
			assert_non_null(at);
			uint64_t rank = (uint64_t)(at - sorted);
			count[rank / BLK]++;
			neighbours += i > s && rank == prev + 1;
			prev = rank;
			if (s == 0)
				first_blocks |= (uint64_t)1 << (rank / BLK % 64);
		}
		/* each block of file neighbours is in the span whole, or not at all */
		unsigned blocks = 0;
		for (unsigned b = 0; b < (N + BLK - 1) / BLK; b++) {
			unsigned size = (b + 1) * BLK <= N ? BLK : N - b * BLK;
			assert_true(count[b] == 0 || count[b] == size);
			blocks += count[b] != 0;
		}
		assert_true(blocks <= 16);
	}
	/* samples are shuffled within their span: file neighbours rarely
	 * follow each other (in block order, 15 pairs in 16 would) */
	assert_true(neighbours < N / 10);
	assert_true(first_blocks != other_blocks); /* blocks are shuffled per epoch */
	free(other);
	free(ids);
	free(sorted);
	free(w);
}

static void test_locality_is_a_function_of_seed_and_epoch(void **state)
{
	(void)state;
	enum { N = 1500 };
	uint64_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
	float *wa = malloc(N * sizeof *wa), *wb = malloc(N * sizeof *wb);
	slice_of(N, 5, a, wa);
	slice_of(N, 5, b, wb);
	assert_int_equal(ib_order_locality(11, 3, 20000, a, wa, N), 0);
	assert_int_equal(ib_order_locality(11, 3, 20000, b, wb, N), 0);
	assert_memory_equal(a, b, N * sizeof *a);
	slice_of(N, 5, b, wb);
	assert_int_equal(ib_order_locality(11, 4, 20000, b, wb, N), 0);
	assert_memory_not_equal(a, b, N * sizeof *a);
	slice_of(N, 5, b, wb);
	assert_int_equal(ib_order_locality(12, 3, 20000, b, wb, N), 0);
	assert_memory_not_equal(a, b, N * sizeof *a);
	free(a);
	free(b);
	free(wa);
	free(wb);
}

static void test_empty_and_tiny_slices(void **state)
{
	(void)state;
	uint64_t id = 5;
	float w = 1.0f;
	assert_int_equal(ib_order_locality(1, 1, 100, &id, &w, 0), 0);
	assert_int_equal(ib_order_locality(1, 1, (uint64_t)4 << 20, &id, &w, 1), 0);
	assert_int_equal(id, 5);
	assert_true(w == 1.0f);
	wrec r = {.id = 3};
	assert_int_equal(ib_sort_recs(&r, 0), 0);
	assert_int_equal(r.id, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records_sort_by_id_keeping_equal_ids_in_order),
		cmocka_unit_test(test_locality_keeps_every_id_with_its_weight),
		cmocka_unit_test(test_locality_emits_whole_blocks_of_neighbours_together),
		cmocka_unit_test(test_locality_is_a_function_of_seed_and_epoch),
		cmocka_unit_test(test_empty_and_tiny_slices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
