/*
 * test_prune.c — the pruning policies and plans against docs/PRUNING.md:
 * schedule, kept counts, weights, ties, never-seen samples, unbiasedness,
 * determinism and rank slices.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ibstore.h"
#include "slice.h"

static ibstore_prune_opts opts(uint32_t epochs, double ratio)
{
	ibstore_prune_opts o;
	ibstore_prune_opts_init(&o);
	o.epochs = epochs;
	o.ratio = ratio;
	return o;
}

static ibstore_plan *plan_of(const ibstore_prune_opts *o, uint32_t e, const float *s, uint64_t n)
{
	ibstore_plan *p;
	char msg[256];
	int rc = ibstore_plan_compute(o, e, s, n, &p, msg, sizeof msg);
	if (rc)
		fail_msg("plan: %s", msg);
	return p;
}

/* scores 0..n-1 scaled, so the mean is (n-1)/2 and exactly half are below */
static float *ramp(uint64_t n)
{
	float *s = malloc(n * sizeof *s);
	for (uint64_t i = 0; i < n; i++)
		s[i] = (float)((i * 7919) % n);
	return s;
}

/* Every id at most once, all ids < n. */
static void assert_no_repeats(const ibstore_plan *p, uint64_t n)
{
	uint8_t *seen = calloc(n ? n : 1, 1);
	for (uint64_t i = 0; i < p->len; i++) {
		assert_true(p->ids[i] < n);
		assert_false(seen[p->ids[i]]);
		seen[p->ids[i]] = 1;
	}
	free(seen);
}

static void test_schedule_follows_paper_native_and_code_compat(void **state)
{
	(void)state;
	const uint32_t cs[] = {8, 90, 100, 300};
	float s[64];
	for (int i = 0; i < 64; i++)
		s[i] = (float)i;
	for (size_t c = 0; c < 4; c++) {
		uint32_t C = cs[c];
		double cut = 0.875 * C;
		for (int mode = 0; mode < 2; mode++) {
			ibstore_prune_opts o = opts(C, 0.5);
			o.mode = (ibstore_mode)mode;
			uint32_t pruned_epochs = 0;
			for (uint32_t e = 0; e < C; e++) {
				int want = mode == IBSTORE_MODE_NATIVE ? e < cut : e + 1 <= cut;
				assert_int_equal(ibstore_prune_epoch_prunes(&o, e), want);
				pruned_epochs += (uint32_t)want;
				if (e % 7 && e + 1 != C && e != (uint32_t)cut)
					continue; /* the full plan on a sample of epochs */
				ibstore_plan *p = plan_of(&o, e, s, 64);
				assert_int_equal(p->stats.prunes, want);
				if (!want) { /* annealing: everything, weight 1 */
					assert_int_equal(p->len, 64);
					for (uint64_t i = 0; i < p->len; i++)
						assert_true(p->weights[i] == 1.0f);
				} else {
					assert_int_equal(p->len, 64 - 16);
				}
				ibstore_plan_free(p);
			}
			/* native: ceil(δC) pruning epochs; compat: floor(δC) */
			uint32_t want_n = mode == IBSTORE_MODE_NATIVE ? (uint32_t)ceil(cut)
								      : (uint32_t)floor(cut);
			assert_int_equal(pruned_epochs, want_n);
		}
	}
	/* C = 90: the paper prunes epoch 78, the reference code does not */
	ibstore_prune_opts o = opts(90, 0.5);
	assert_true(ibstore_prune_epoch_prunes(&o, 78));
	o.mode = IBSTORE_MODE_COMPAT;
	assert_false(ibstore_prune_epoch_prunes(&o, 78));
}

static void test_keeps_floor_of_keep_times_below_mean_with_rescaled_weights(void **state)
{
	(void)state;
	const double ratios[] = {0.3, 0.5, 0.7, 0.95};
	uint64_t n = 1001;
	float *s = ramp(n); /* mean 500: 500 below, 501 at or above */
	for (size_t r = 0; r < 4; r++) {
		ibstore_prune_opts o = opts(10, ratios[r]);
		ibstore_plan *p = plan_of(&o, 1, s, n);
		double keep = 1.0 - ratios[r] < 0.1 ? 0.1 : 1.0 - ratios[r];
		uint64_t k = (uint64_t)(keep * 500);
		assert_int_equal(p->stats.below_mean, 500);
		assert_int_equal(p->len, 501 + k);
		assert_int_equal(p->stats.kept, 501 + k);
		assert_int_equal(p->stats.pruned, 500 - k);
		assert_true(p->stats.threshold == 500.0);
		assert_no_repeats(p, n);
		float up = (float)(1.0 / keep);
		double sum = 0;
		for (uint64_t i = 0; i < p->len; i++) {
			float want = s[p->ids[i]] < 500.0f ? up : 1.0f;
			assert_true(p->weights[i] == want);
			sum += p->weights[i];
		}
		assert_true(fabs(sum - p->stats.weight_sum) < 1e-6);
		ibstore_plan_free(p);
	}
	free(s);
}

static void test_ties_with_the_mean_are_kept(void **state)
{
	(void)state;
	const float s[] = {1, 2, 3, 2, 2};
	for (int mode = 0; mode < 2; mode++) {
		ibstore_prune_opts o = opts(10, 0.5);
		o.mode = (ibstore_mode)mode;
		ibstore_plan *p = plan_of(&o, 2, s, 5);
		assert_true(p->stats.threshold == 2.0);
		assert_int_equal(p->stats.below_mean, 1);
		/* floor(0.5 * 1) = 0 survivors of the one candidate: id 0 goes */
		assert_int_equal(p->len, 4);
		for (uint64_t i = 0; i < p->len; i++) {
			assert_true(p->ids[i] != 0);
			assert_true(p->weights[i] == 1.0f);
		}
		ibstore_plan_free(p);
	}
}

static void test_never_seen_samples_are_kept_and_left_out_of_the_mean(void **state)
{
	(void)state;
	float s[100];
	for (int i = 0; i < 100; i++)
		s[i] = i < 40 ? NAN : (float)(i - 40); /* seen: 0..59, mean 29.5 */
	ibstore_prune_opts o = opts(10, 0.5);
	ibstore_plan *p = plan_of(&o, 0, s, 100);
	assert_true(p->stats.threshold == 29.5);
	assert_int_equal(p->stats.unseen, 40);
	assert_int_equal(p->stats.below_mean, 30);
	assert_int_equal(p->len, 100 - 15);
	int unseen_kept = 0;
	for (uint64_t i = 0; i < p->len; i++) {
		if (p->ids[i] < 40) {
			unseen_kept++;
			assert_true(p->weights[i] == 1.0f);
		}
	}
	assert_int_equal(unseen_kept, 40);
	ibstore_plan_free(p);
	/* epoch 0 of a fresh run: nothing seen, nothing pruned, no threshold */
	for (int i = 0; i < 100; i++)
		s[i] = NAN;
	p = plan_of(&o, 0, s, 100);
	assert_true(isnan(p->stats.threshold));
	assert_int_equal(p->len, 100);
	assert_int_equal(p->stats.pruned, 0);
	ibstore_plan_free(p);
	/* compat takes finite scores only; native refuses infinities */
	o.mode = IBSTORE_MODE_COMPAT;
	char msg[256];
	assert_int_equal(ibstore_plan_compute(&o, 0, s, 100, &p, msg, sizeof msg), IBSTORE_EINVAL);
	assert_non_null(strstr(msg, "sample 0"));
	assert_null(p);
	o.mode = IBSTORE_MODE_NATIVE;
	s[7] = INFINITY;
	assert_int_equal(ibstore_plan_compute(&o, 0, s, 100, &p, msg, sizeof msg), IBSTORE_EINVAL);
	assert_non_null(strstr(msg, "sample 7"));
}

static void test_infobatch_is_unbiased_over_seeds(void **state)
{
	(void)state;
	enum { N = 200, TRIALS = 4000 };
	float *s = ramp(N); /* 100 below the mean */
	double *wsum = calloc(N, sizeof *wsum);
	double total = 0;
	for (int t = 0; t < TRIALS; t++) {
		ibstore_prune_opts o = opts(10, 0.7);
		o.seed = (uint64_t)t;
		ibstore_plan *p = plan_of(&o, 3, s, N);
		for (uint64_t i = 0; i < p->len; i++) {
			wsum[p->ids[i]] += p->weights[i];
			if (s[p->ids[i]] < p->stats.threshold)
				total += p->weights[i];
		}
		ibstore_plan_free(p);
	}
	/* every below-mean sample's expected weight is 1 (5 standard deviations) */
	for (int i = 0; i < N; i++) {
		double mean = wsum[i] / TRIALS;
		if (s[i] < 99.5f)
			assert_true(fabs(mean - 1.0) < 5 * sqrt(0.7 / 0.3 / TRIALS) + 0.01);
		else
			assert_true(mean == 1.0);
	}
	/* the weight sum of kept below-mean samples is the below-mean count:
	 * floor(0.3 * 100) / 0.3 = 100 */
	assert_true(fabs(total / TRIALS - 100.0) < 1e-3);
	free(wsum);
	free(s);
}

static void test_large_native_shuffles_are_uniform_permutations(void **state)
{
	(void)state;
	/* above 65536 entries the native shuffle scatters into buckets first */
	uint64_t n = 70000;
	float *s = ramp(n);
	double pos_first = 0, pos_last = 0;
	for (int seed = 0; seed < 64; seed++) {
		ibstore_prune_opts o = opts(10, 0.5);
		o.seed = (uint64_t)seed;
		ibstore_plan *p = plan_of(&o, 9, s, n); /* annealing: all of them */
		assert_int_equal(p->len, n);
		assert_no_repeats(p, n);
		for (uint64_t i = 0; i < n; i++) {
			if (p->ids[i] == 0)
				pos_first += (double)i;
			if (p->ids[i] == n - 1)
				pos_last += (double)i;
		}
		ibstore_plan_free(p);
	}
	/* mean position (n-1)/2; 5 standard deviations of a mean of 64 */
	double sd = (double)n / sqrt(12.0) / 8.0;
	assert_true(fabs(pos_first / 64 - (double)(n - 1) / 2) < 5 * sd);
	assert_true(fabs(pos_last / 64 - (double)(n - 1) / 2) < 5 * sd);
	free(s);
}

static void test_random_policy_prunes_as_many_from_all_samples(void **state)
{
	(void)state;
	uint64_t n = 1000;
	float *s = ramp(n);
	ibstore_prune_opts ib = opts(10, 0.5), rnd = opts(10, 0.5);
	rnd.policy = IBSTORE_POLICY_RANDOM;
	ibstore_plan *a = plan_of(&ib, 2, s, n), *b = plan_of(&rnd, 2, s, n);
	assert_int_equal(a->len, b->len);
	assert_no_repeats(b, n);
	int above_pruned = 0;
	uint8_t *in = calloc(n, 1);
	for (uint64_t i = 0; i < b->len; i++) {
		in[b->ids[i]] = 1;
		assert_true(b->weights[i] == (float)((double)n / (double)b->len));
	}
	for (uint64_t i = 0; i < n; i++)
		above_pruned += !in[i] && s[i] >= 499.5f;
	assert_true(above_pruned > 50); /* uniform over all, not only below the mean */
	ibstore_plan_free(a);
	ibstore_plan_free(b);
	/* annealed the same way */
	b = plan_of(&rnd, 9, s, n);
	assert_int_equal(b->len, n);
	assert_true(b->weights[0] == 1.0f);
	ibstore_plan_free(b);
	/* none: everything, weight 1, shuffled */
	rnd.policy = IBSTORE_POLICY_NONE;
	b = plan_of(&rnd, 2, s, n);
	assert_int_equal(b->len, n);
	assert_no_repeats(b, n);
	assert_true(b->ids[0] != 0 || b->ids[1] != 1);
	ibstore_plan_free(b);
	free(in);
	free(s);
}

typedef struct job {
	const float *s;
	uint64_t n;
	ibstore_plan *p;
} job;

static void *compute(void *arg)
{
	job *j = arg;
	ibstore_prune_opts o = opts(10, 0.5);
	o.seed = 42;
	ibstore_plan_compute(&o, 4, j->s, j->n, &j->p, NULL, 0);
	return NULL;
}

static void test_plans_are_deterministic_across_runs_and_threads(void **state)
{
	(void)state;
	uint64_t n = 50000;
	float *s = ramp(n);
	job jobs[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		jobs[i] = (job){s, n, NULL};
		pthread_create(&th[i], NULL, compute, &jobs[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	job alone = {s, n, NULL};
	compute(&alone);
	for (int i = 0; i < 4; i++) {
		assert_non_null(jobs[i].p);
		assert_int_equal(jobs[i].p->len, alone.p->len);
		assert_memory_equal(jobs[i].p->ids, alone.p->ids, alone.p->len * 8);
		assert_memory_equal(jobs[i].p->weights, alone.p->weights, alone.p->len * 4);
		ibstore_plan_free(jobs[i].p);
	}
	/* another seed or epoch gives another order */
	ibstore_prune_opts o = opts(10, 0.5);
	o.seed = 43;
	ibstore_plan *other = plan_of(&o, 4, s, n);
	assert_int_equal(other->len, alone.p->len);
	assert_memory_not_equal(other->ids, alone.p->ids, alone.p->len * 8);
	ibstore_plan_free(other);
	ibstore_plan_free(alone.p);
	free(s);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_rank_slices_cover_the_plan(void **state)
{
	(void)state;
	const uint64_t sizes[] = {0, 1, 7, 1003};
	for (size_t z = 0; z < 4; z++) {
		uint64_t n = sizes[z];
		float *s = ramp(n ? n : 1);
		ibstore_prune_opts o = opts(10, 0.5);
		ibstore_plan *p = plan_of(&o, 1, s, n);
		uint64_t *want = malloc((p->len + 1) * 8);
		memcpy(want, p->ids, p->len * 8);
		qsort(want, p->len, 8, cmp_u64);
		for (uint32_t world = 1; world <= 8; world++) {
			uint64_t per = ibstore_plan_slice_len(p, world, IBSTORE_SLICE_PAD);
			assert_int_equal(per, (p->len + world - 1) / world);
			uint64_t *got = malloc((per * world + 1) * 8);
			uint64_t ngot = 0, pads = 0;
			for (uint32_t r = 0; r < world; r++) {
				for (uint64_t i = 0; i < per; i++) {
					uint64_t id;
					float w;
					assert_int_equal(ibstore_plan_slice_entry(p, r, world,
										  IBSTORE_SLICE_PAD, i,
										  &id, &w), 0);
					/* the stride: rank r holds positions r, r+world, ... */
					uint64_t pos = i * world + r;
					if (pos < p->len) {
						assert_int_equal(id, p->ids[pos]);
						assert_true(w == p->weights[pos]);
					} else {
						assert_int_equal(i, per - 1);
						assert_int_equal(id, p->ids[(pos - p->len) % p->len]);
						assert_true(w == IBSTORE_PADDING_WEIGHT);
						assert_true(ibstore_is_padding(w));
					}
					if (w > 0)
						got[ngot++] = id;
					else
						pads++;
				}
			}
			assert_int_equal(pads, per * world - p->len);
			assert_int_equal(ngot, p->len);
			qsort(got, ngot, 8, cmp_u64);
			assert_memory_equal(got, want, ngot * 8);
			/* drop: disjoint parts of the plan, equal counts */
			uint64_t dper = ibstore_plan_slice_len(p, world, IBSTORE_SLICE_DROP);
			assert_int_equal(dper, p->len / world);
			ngot = 0;
			for (uint32_t r = 0; r < world; r++)
				for (uint64_t i = 0; i < dper; i++) {
					float w;
					ibstore_plan_slice_entry(p, r, world, IBSTORE_SLICE_DROP, i,
								 &got[ngot], &w);
					assert_true(w > 0);
					assert_int_equal(got[ngot], p->ids[i * world + r]);
					ngot++;
				}
			qsort(got, ngot, 8, cmp_u64);
			for (uint64_t i = 1; i < ngot; i++)
				assert_true(got[i] != got[i - 1]);
			uint64_t id;
			float w;
			assert_int_equal(ibstore_plan_slice_entry(p, world, world, IBSTORE_SLICE_PAD, 0,
								  &id, &w), IBSTORE_EINVAL);
			assert_int_equal(ibstore_plan_slice_entry(p, 0, world, IBSTORE_SLICE_PAD, per,
								  &id, &w), IBSTORE_EINVAL);
			free(got);
		}
		free(want);
		ibstore_plan_free(p);
		free(s);
	}
}

static void test_bad_options_are_rejected(void **state)
{
	(void)state;
	float s[4] = {1, 2, 3, 4};
	ibstore_plan *p;
	char msg[256];
	ibstore_prune_opts o = opts(0, 0.5);
	assert_int_equal(ibstore_plan_compute(&o, 0, s, 4, &p, msg, sizeof msg), IBSTORE_EINVAL);
	assert_non_null(strstr(msg, "epochs"));
	o = opts(10, 1.0);
	assert_int_equal(ibstore_plan_compute(&o, 0, s, 4, &p, msg, sizeof msg), IBSTORE_EINVAL);
	o = opts(10, NAN);
	assert_int_equal(ibstore_plan_compute(&o, 0, s, 4, &p, msg, sizeof msg), IBSTORE_EINVAL);
	o = opts(10, 0.5);
	o.delta = 1.5;
	assert_int_equal(ibstore_plan_compute(&o, 0, s, 4, &p, msg, sizeof msg), IBSTORE_EINVAL);
	ibstore_policy pol;
	ibstore_mode mode;
	assert_int_equal(ibstore_policy_parse("random", &pol), 0);
	assert_int_equal(pol, IBSTORE_POLICY_RANDOM);
	assert_int_equal(ibstore_policy_parse("infobach", &pol), IBSTORE_EINVAL);
	assert_int_equal(ibstore_mode_parse("compat", &mode), 0);
	assert_int_equal(mode, IBSTORE_MODE_COMPAT);
	assert_int_equal(ibstore_mode_parse("x", &mode), IBSTORE_EINVAL);
}

/* The batch count of a slice: a last partial batch counts unless dropped. */
static void test_batch_count_rounds_as_drop_last_says(void **state)
{
	(void)state;
	assert_int_equal(ib_batch_count(0, 32, 0), 0);
	assert_int_equal(ib_batch_count(1, 32, 0), 1);
	assert_int_equal(ib_batch_count(1, 32, 1), 0);
	assert_int_equal(ib_batch_count(64, 32, 0), 2);
	assert_int_equal(ib_batch_count(64, 32, 1), 2);
	assert_int_equal(ib_batch_count(65, 32, 0), 3);
	assert_int_equal(ib_batch_count(65, 32, 1), 2);
	assert_int_equal(ib_batch_count(UINT64_MAX, 1u << 31, 0), (UINT64_MAX >> 31) + 1);
	assert_int_equal(ib_batch_count(5, 0, 0), 0);
	assert_int_equal(ib_slice_len(10, 0, IBSTORE_SLICE_PAD), 0);
	assert_int_equal(ib_slice_len(10, 4, IBSTORE_SLICE_PAD), 3);
	assert_int_equal(ib_slice_len(10, 4, IBSTORE_SLICE_DROP), 2);
	assert_int_equal(ib_slice_len(UINT64_MAX, 2, IBSTORE_SLICE_PAD), (UINT64_MAX >> 1) + 1);
}

/* Every enum name parses to a value whose name is that name again; unknown
 * names are refused and unknown values are named "unknown". */
#define CHECK_NAMES(type, parse, name, ...)                                          \
	do {                                                                         \
		static const char *names[] = {__VA_ARGS__};                          \
		for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {        \
			type v;                                                      \
			assert_int_equal(parse(names[k], &v), 0);                    \
			assert_int_equal((int)v, (int)k);                            \
			assert_string_equal(name(v), names[k]);                      \
		}                                                                    \
		type v = (type)0;                                                    \
		assert_int_equal(parse("no-such-name", &v), IBSTORE_EINVAL);         \
		assert_int_equal(parse(NULL, &v), IBSTORE_EINVAL);                   \
		assert_int_equal(parse(names[0], NULL), IBSTORE_EINVAL);             \
		assert_int_equal((int)v, 0);                                         \
		assert_string_equal(name((type)(sizeof names / sizeof names[0])), "unknown"); \
		assert_string_equal(name((type)-1), "unknown");                      \
	} while (0)

static void test_every_enum_name_parses_back(void **state)
{
	(void)state;
	CHECK_NAMES(ibstore_compress, ibstore_compress_parse, ibstore_compress_name, "none", "lz4",
		    "lz4hc", "auto");
	CHECK_NAMES(ibstore_policy, ibstore_policy_parse, ibstore_policy_name, "infobatch",
		    "random", "none");
	CHECK_NAMES(ibstore_mode, ibstore_mode_parse, ibstore_mode_name, "native", "compat");
	CHECK_NAMES(ibstore_slice_mode, ibstore_slice_parse, ibstore_slice_name, "pad", "drop");
	CHECK_NAMES(ibstore_backend, ibstore_backend_parse, ibstore_backend_name, "auto", "uring",
		    "pread", "mmap");
	CHECK_NAMES(ibstore_order, ibstore_order_parse, ibstore_order_name, "random", "locality");
	CHECK_NAMES(ibstore_corrupt_policy, ibstore_corrupt_parse, ibstore_corrupt_name, "fail",
		    "skip");
	/* case: the prune and compress names take any, the loader's exact */
	ibstore_policy p;
	assert_int_equal(ibstore_policy_parse("InfoBatch", &p), 0);
	assert_int_equal(p, IBSTORE_POLICY_INFOBATCH);
	ibstore_backend b;
	assert_int_equal(ibstore_backend_parse("URING", &b), IBSTORE_EINVAL);
	assert_string_equal(ibstore_codec_name(IBSTORE_CODEC_LZ4), "lz4");
	assert_string_equal(ibstore_codec_name(7), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schedule_follows_paper_native_and_code_compat),
		cmocka_unit_test(test_keeps_floor_of_keep_times_below_mean_with_rescaled_weights),
		cmocka_unit_test(test_ties_with_the_mean_are_kept),
		cmocka_unit_test(test_never_seen_samples_are_kept_and_left_out_of_the_mean),
		cmocka_unit_test(test_infobatch_is_unbiased_over_seeds),
		cmocka_unit_test(test_large_native_shuffles_are_uniform_permutations),
		cmocka_unit_test(test_random_policy_prunes_as_many_from_all_samples),
		cmocka_unit_test(test_plans_are_deterministic_across_runs_and_threads),
		cmocka_unit_test(test_rank_slices_cover_the_plan),
		cmocka_unit_test(test_batch_count_rounds_as_drop_last_says),
		cmocka_unit_test(test_every_enum_name_parses_back),
		cmocka_unit_test(test_bad_options_are_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
