/*
 * test_state.c — the run state: losses become scores, epochs are committed,
 * bad reports change nothing, and a run stopped at any point resumes with
 * exactly the uninterrupted sequence from its last commit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "ibstore.h"

#define N 1000
#define EPOCHS 6

typedef struct fixture {
	char dir[64];
	char path[128];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (fx_mkdtemp(f->dir, sizeof f->dir, "ibstore-run"))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/run.state", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	int rc = fx_rmtree(f->dir);
	free(f);
	return rc;
}

static ibstore_run_opts run_opts(void)
{
	ibstore_run_opts o;
	ibstore_run_opts_init(&o);
	o.samples = N;
	o.prune.epochs = EPOCHS;
	o.batch_size = 32;
	o.checkpoint_every = 4;
	return o;
}

static ibstore_run *open_ok(const char *path, const ibstore_run_opts *o)
{
	ibstore_run *r;
	int rc = ibstore_run_open(path, o, &r);
	if (rc)
		fail_msg("run open: %s", ibstore_run_errmsg(r));
	return r;
}

/* A deterministic "model": the loss of a sample depends on it and the epoch. */
static float loss_of(uint64_t id, uint32_t epoch)
{
	return (float)((id * 2654435761u + epoch * 97u) % 1000) / 100.0f;
}

/* One batch as training sees it: ids and weights, recorded into a log. */
typedef struct logbuf {
	uint64_t ids[EPOCHS * N * 2];
	float w[EPOCHS * N * 2];
	size_t n;
} logbuf;

/* Runs batches [from, to) of the current epoch, reporting losses. */
static void run_batches(ibstore_run *r, uint32_t e, uint64_t from, uint64_t to, logbuf *log)
{
	for (uint64_t b = from; b < to; b++) {
		const uint64_t *ids;
		const float *w;
		size_t n;
		assert_int_equal(ibstore_run_batch(r, b, &ids, &w, &n), 0);
		float loss[64];
		for (size_t i = 0; i < n; i++) {
			loss[i] = loss_of(ids[i], e);
			log->ids[log->n] = ids[i];
			log->w[log->n++] = w[i];
		}
		assert_int_equal(ibstore_run_report(r, ids, loss, n), 0);
		assert_int_equal(ibstore_run_advance(r, 1), 0);
	}
}

static void run_all(const char *path, logbuf *log)
{
	ibstore_run_opts o = run_opts();
	ibstore_run *r = open_ok(path, &o);
	for (uint32_t e = 0; e < EPOCHS; e++) {
		ibstore_epoch_info info;
		assert_int_equal(ibstore_run_epoch_begin(r, e, &info), 0);
		run_batches(r, e, 0, info.batches, log);
		assert_int_equal(ibstore_run_epoch_end(r, NULL), 0);
	}
	ibstore_run_close(r);
}

static void test_losses_become_scores_and_epochs_prune(void **state)
{
	fixture *f = *state;
	ibstore_run_opts o = run_opts();
	ibstore_run *r = open_ok(f->path, &o);
	uint64_t n;
	const float *s = ibstore_run_scores(r, &n);
	assert_int_equal(n, N);
	assert_true(isnan(s[0]) && isnan(s[N - 1])); /* never seen */
	ibstore_epoch_info info;
	assert_int_equal(ibstore_run_epoch_begin(r, 0, &info), 0);
	assert_int_equal(info.samples, N); /* nothing seen, nothing pruned */
	assert_int_equal(info.batches, (N + 31) / 32);
	assert_int_equal(info.cursor, 0);
	logbuf *log = calloc(1, sizeof *log);
	run_batches(r, 0, 0, info.batches, log);
	assert_int_equal(log->n, N);
	s = ibstore_run_scores(r, NULL);
	for (uint64_t i = 0; i < N; i++)
		assert_true(s[i] == loss_of(i, 0));
	ibstore_epoch_io io = {.bytes_read = 123, .bytes_skipped = 45, .seconds = 0.5};
	assert_int_equal(ibstore_run_epoch_end(r, &io), 0);
	assert_int_equal(ibstore_run_epoch_begin(r, 1, &info), 0);
	assert_true(info.plan.prunes);
	assert_true(info.samples < N);
	assert_int_equal(info.samples, N - info.plan.pruned);
	uint64_t first_id;
	const uint64_t *bi;
	const float *bw;
	size_t bn;
	assert_int_equal(ibstore_run_batch(r, 0, &bi, &bw, &bn), 0);
	first_id = bi[0];
	ibstore_run_close(r); /* stopped before any checkpoint of epoch 1 */

	/* everything committed survives close and reopen */
	r = open_ok(f->path, NULL);
	ibstore_run_info ri;
	assert_int_equal(ibstore_run_info_get(r, &ri), 0);
	assert_false(ri.in_epoch); /* epoch_begin alone commits nothing */
	assert_int_equal(ri.epochs_done, 1);
	/* and beginning epoch 1 again gives the very same plan */
	ibstore_epoch_info again;
	assert_int_equal(ibstore_run_epoch_begin(r, 1, &again), 0);
	assert_int_equal(again.samples, info.samples);
	assert_int_equal(again.plan.pruned, info.plan.pruned);
	assert_int_equal(ibstore_run_batch(r, 0, &bi, &bw, &bn), 0);
	assert_int_equal(bi[0], first_id);
	ibstore_epoch_stats es;
	assert_int_equal(ibstore_run_epoch_stats_get(r, 0, &es), 0);
	assert_int_equal(es.plan.kept, N);
	assert_int_equal(es.io.bytes_read, 123);
	assert_int_equal(es.io.bytes_skipped, 45);
	assert_int_equal(ibstore_run_epoch_stats_get(r, 1, &es), IBSTORE_ENOTFOUND);
	s = ibstore_run_scores(r, NULL);
	for (uint64_t i = 0; i < N; i++)
		assert_true(s[i] == loss_of(i, 0));
	ibstore_run_close(r);
	free(log);
}

static void test_bad_reports_change_nothing(void **state)
{
	fixture *f = *state;
	ibstore_run_opts o = run_opts();
	ibstore_run *r = open_ok(f->path, &o);
	uint64_t ids[3] = {1, 2, 3};
	float good[3] = {0.5f, 0.25f, 0.125f};
	assert_int_equal(ibstore_run_report(r, ids, good, 3), 0);
	float nan3[3] = {1.0f, NAN, 1.0f};
	assert_int_equal(ibstore_run_report(r, ids, nan3, 3), IBSTORE_EINVAL);
	assert_non_null(strstr(ibstore_run_errmsg(r), "sample 2"));
	float inf3[3] = {1.0f, 1.0f, -INFINITY};
	assert_int_equal(ibstore_run_report(r, ids, inf3, 3), IBSTORE_EINVAL);
	uint64_t bad_ids[3] = {1, N, 3};
	float ones[3] = {1, 1, 1};
	assert_int_equal(ibstore_run_report(r, bad_ids, ones, 3), IBSTORE_EINVAL);
	assert_non_null(strstr(ibstore_run_errmsg(r), "unknown sample id 1000"));
	const float *s = ibstore_run_scores(r, NULL);
	assert_true(s[1] == 0.5f && s[2] == 0.25f && s[3] == 0.125f);
	ibstore_run_info ri;
	ibstore_run_info_get(r, &ri);
	assert_int_equal(ri.reports_rejected, 3);
	/* batch and advance outside an epoch are refused */
	const uint64_t *bi;
	const float *bw;
	size_t n;
	assert_int_equal(ibstore_run_batch(r, 0, &bi, &bw, &n), IBSTORE_ESTATE);
	assert_int_equal(ibstore_run_advance(r, 1), IBSTORE_ESTATE);
	assert_int_equal(ibstore_run_epoch_end(r, NULL), IBSTORE_ESTATE);
	assert_int_equal(ibstore_run_epoch_begin(r, EPOCHS, NULL), IBSTORE_EINVAL);
	ibstore_epoch_info info;
	assert_int_equal(ibstore_run_epoch_begin(r, 0, &info), 0);
	assert_int_equal(ibstore_run_batch(r, info.batches, &bi, &bw, &n), IBSTORE_EINVAL);
	assert_int_equal(ibstore_run_advance(r, info.batches + 1), IBSTORE_EINVAL);
	ibstore_run_close(r);
}

static void test_ema_smooths_scores(void **state)
{
	fixture *f = *state;
	ibstore_run_opts o = run_opts();
	o.prune.ema = 0.75;
	ibstore_run *r = open_ok(f->path, &o);
	uint64_t id = 5;
	float l1 = 4.0f, l2 = 8.0f;
	assert_int_equal(ibstore_run_report(r, &id, &l1, 1), 0);
	assert_true(ibstore_run_scores(r, NULL)[5] == 4.0f); /* first sight: the loss */
	assert_int_equal(ibstore_run_report(r, &id, &l2, 1), 0);
	assert_true(ibstore_run_scores(r, NULL)[5] == 5.0f); /* 0.75*4 + 0.25*8 */
	ibstore_run_close(r);
}

static void test_open_errors_are_clear(void **state)
{
	fixture *f = *state;
	ibstore_run *r;
	assert_int_equal(ibstore_run_open(f->path, NULL, &r), IBSTORE_ENOTFOUND);
	ibstore_run_close(r);
	ibstore_run_opts o = run_opts();
	o.prune.epochs = 0;
	assert_int_equal(ibstore_run_open(f->path, &o, &r), IBSTORE_EINVAL);
	ibstore_run_close(r);
	o = run_opts();
	o.rank = 2;
	o.world = 2;
	assert_int_equal(ibstore_run_open(f->path, &o, &r), IBSTORE_EINVAL);
	ibstore_run_close(r);
	unlink(f->path);

	o = run_opts();
	ibstore_run *a = open_ok(f->path, &o);
	/* a second opener is refused while the first holds the run */
	assert_int_equal(ibstore_run_open(f->path, NULL, &r), IBSTORE_ESTATE);
	assert_non_null(strstr(ibstore_run_errmsg(r), "in use"));
	ibstore_run_close(r);
	ibstore_run_close(a);
	/* another configuration is named */
	o.prune.ratio = 0.3;
	assert_int_equal(ibstore_run_open(f->path, &o, &r), IBSTORE_EMISMATCH);
	assert_non_null(strstr(ibstore_run_errmsg(r), "ratio"));
	ibstore_run_close(r);
	/* a foreign file */
	char other[160];
	snprintf(other, sizeof other, "%s/foreign", f->dir);
	FILE *fp = fopen(other, "w");
	for (int i = 0; i < 3000; i++)
		fputs("not lmdb ", fp);
	fclose(fp);
	assert_int_equal(ibstore_run_open(other, NULL, &r), IBSTORE_EFORMAT);
	assert_non_null(strstr(ibstore_run_errmsg(r), "not a run state"));
	ibstore_run_close(r);
	assert_int_equal(ibstore_run_open(f->dir, NULL, &r), IBSTORE_EFORMAT);
	ibstore_run_close(r);
}

/*
 * Stops a run at many points (closing without a commit is what kill -9
 * leaves behind), resumes, re-feeds the batches since the last commit, and
 * expects the very sequence of the uninterrupted run.
 */
static void test_resume_reproduces_the_uninterrupted_sequence(void **state)
{
	fixture *f = *state;
	logbuf *ref = calloc(1, sizeof *ref), *got = calloc(1, sizeof *got);
	char refpath[160];
	snprintf(refpath, sizeof refpath, "%s/ref.state", f->dir);
	run_all(refpath, ref);

	ibstore_run_opts o = run_opts();
	uint32_t e = 0;
	uint64_t stop_at = 0;
	int stops = 0;
	for (;;) {
		ibstore_run *r = open_ok(f->path, &o);
		ibstore_epoch_info info;
		assert_int_equal(ibstore_run_epoch_begin(r, e, &info), 0);
		/* batches after the last commit are served again: rewind the log to
		 * the end of the committed ones */
		uint64_t served = 0;
		for (uint64_t b = 0; b < info.cursor; b++) {
			const uint64_t *ids;
			const float *w;
			size_t n;
			ibstore_run_batch(r, b, &ids, &w, &n);
			served += n;
		}
		size_t base = 0;
		for (uint32_t k = 0; k < e; k++) {
			ibstore_epoch_stats es;
			assert_int_equal(ibstore_run_epoch_stats_get(r, k, &es), 0);
			base += es.plan.kept; /* world 1, pad: slice = plan */
		}
		got->n = base + served;
		stop_at = info.cursor + 1 + (uint64_t)(stops * 5) % 9;
		if (stop_at > info.batches)
			stop_at = info.batches;
		run_batches(r, e, info.cursor, stop_at, got);
		if (stop_at == info.batches) {
			assert_int_equal(ibstore_run_epoch_end(r, NULL), 0);
			e++;
		}
		ibstore_run_close(r); /* no commit: like kill -9 */
		stops++;
		if (e == EPOCHS)
			break;
	}
	assert_true(stops > 10);
	assert_int_equal(got->n, ref->n);
	assert_memory_equal(got->ids, ref->ids, ref->n * sizeof ref->ids[0]);
	assert_memory_equal(got->w, ref->w, ref->n * sizeof ref->w[0]);
	free(ref);
	free(got);
}

static void test_checkpoints_and_what_is_committed(void **state)
{
	fixture *f = *state;
	/* an empty file, as mkstemp leaves it, becomes a new run */
	FILE *fp = fopen(f->path, "w");
	fclose(fp);
	ibstore_run_opts o = run_opts();
	o.checkpoint_every = 0; /* epoch ends only */
	ibstore_run *r = open_ok(f->path, &o);
	ibstore_epoch_info info;
	logbuf *log = calloc(1, sizeof *log);
	assert_int_equal(ibstore_run_epoch_begin(r, 0, &info), 0);
	run_batches(r, 0, 0, 10, log);
	ibstore_run_info ri;
	ibstore_run_info_get(r, &ri);
	assert_int_equal(ri.cursor, 10);
	assert_int_equal(ri.committed, 0);
	ibstore_run_close(r);
	r = open_ok(f->path, NULL);
	ibstore_run_info_get(r, &ri);
	assert_false(ri.in_epoch); /* nothing of epoch 0 was committed */
	ibstore_run_close(r);
	/* every 4 batches: committed moves in steps of 4 */
	unlink(f->path);
	o.checkpoint_every = 4;
	r = open_ok(f->path, &o);
	assert_int_equal(ibstore_run_epoch_begin(r, 0, &info), 0);
	for (uint64_t b = 0; b < 10; b++) {
		run_batches(r, 0, b, b + 1, log);
		ibstore_run_info_get(r, &ri);
		assert_int_equal(ri.committed, (b + 1) / 4 * 4);
	}
	ibstore_run_close(r);
	r = open_ok(f->path, NULL);
	ibstore_run_info_get(r, &ri);
	assert_true(ri.in_epoch);
	assert_int_equal(ri.cursor, 8);
	assert_int_equal(ri.committed, 8);
	ibstore_run_close(r);
	free(log);
}

/*
 * Rank r of world W gets plan positions r, r + W, r + 2W, ... (the stride
 * PyTorch's DistributedSampler uses), batch after batch; under pad the
 * positions past the plan's end wrap to its start with the padding weight,
 * under drop the slices stop at floor(len / W).  ibstore_run_info and the
 * epoch info count the same batches, and the run's internal slice
 * (ibstore_run_slice, which the loader reads) is what its batches serve.
 */
static void check_rank_slice(fixture *f, uint32_t rank, uint32_t world, ibstore_slice_mode mode,
			     int drop_last, uint64_t *padded)
{
	char path[160];
	snprintf(path, sizeof path, "%s/rank%u-of-%u-%d%d.state", f->dir, rank, world, (int)mode,
		 drop_last);
	ibstore_run_opts o = run_opts();
	o.rank = rank;
	o.world = world;
	o.slice = mode;
	o.drop_last = drop_last;
	ibstore_run *r = open_ok(path, &o);
	/* scores for every sample, so that epoch 1 prunes: len is not N */
	ibstore_epoch_info info;
	assert_int_equal(ibstore_run_epoch_begin(r, 0, &info), 0);
	for (uint64_t id = 0; id < N; id++) {
		float l = loss_of(id, 0);
		assert_int_equal(ibstore_run_report(r, &id, &l, 1), 0);
	}
	assert_int_equal(ibstore_run_epoch_end(r, NULL), 0);
	assert_int_equal(ibstore_run_epoch_begin(r, 1, &info), 0);
	const ibstore_plan *p = ibstore_run_plan(r);
	assert_non_null(p);
	assert_true(p->len < N);
	uint64_t len = p->len;
	uint64_t per = mode == IBSTORE_SLICE_PAD ? (len + world - 1) / world : len / world;
	uint64_t batches = drop_last ? per / 32 : (per + 31) / 32;
	assert_int_equal(info.samples, per);
	assert_int_equal(info.batches, batches);
	ibstore_run_info ri;
	assert_int_equal(ibstore_run_info_get(r, &ri), 0);
	assert_int_equal(ri.batches, batches);

	const uint64_t *sids;
	const float *sw;
	uint64_t slen;
	assert_int_equal(ibstore_run_slice(r, &sids, &sw, &slen), 0);
	assert_int_equal(slen, per);
	uint64_t i = 0;
	for (uint64_t b = 0; b < batches; b++) {
		const uint64_t *ids;
		const float *w;
		size_t n;
		assert_int_equal(ibstore_run_batch(r, b, &ids, &w, &n), 0);
		for (size_t k = 0; k < n; k++, i++) {
			uint64_t pos = i * world + rank;
			assert_int_equal(sids[i], ids[k]);
			assert_true(sw[i] == w[k]);
			if (pos < len) {
				assert_int_equal(ids[k], p->ids[pos]);
				assert_true(w[k] == p->weights[pos]);
				assert_false(ibstore_is_padding(w[k]));
			} else {
				assert_int_equal(mode, IBSTORE_SLICE_PAD);
				assert_int_equal(i, per - 1); /* only the last entry pads */
				assert_int_equal(ids[k], p->ids[pos - len]);
				assert_true(w[k] == IBSTORE_PADDING_WEIGHT);
				assert_true(ibstore_is_padding(w[k]));
				(*padded)++;
			}
		}
	}
	assert_int_equal(i, drop_last ? batches * 32 : per);
	const uint64_t *ids;
	const float *w;
	size_t n;
	assert_int_equal(ibstore_run_batch(r, batches, &ids, &w, &n), IBSTORE_EINVAL);
	assert_int_equal(ibstore_run_slice(r, NULL, &sw, &slen), IBSTORE_EINVAL);
	assert_int_equal(ibstore_run_slice(NULL, &sids, &sw, &slen), IBSTORE_EINVAL);
	assert_int_equal(ibstore_run_epoch_end(r, NULL), 0);
	assert_int_equal(ibstore_run_info_get(r, &ri), 0);
	assert_int_equal(ri.batches, 0);
	assert_int_equal(ibstore_run_slice(r, &sids, &sw, &slen), IBSTORE_ESTATE);
	ibstore_run_close(r);
}

static void test_rank_slices_stride_the_plan(void **state)
{
	fixture *f = *state;
	for (uint32_t world = 1; world <= 5; world++) {
		for (int mode = 0; mode < 2; mode++) {
			uint64_t padded = 0;
			for (uint32_t rank = 0; rank < world; rank++)
				check_rank_slice(f, rank, world, (ibstore_slice_mode)mode, mode,
						 &padded);
			assert_true(padded < world);
		}
	}
}

static void test_rank_slices_have_equal_batches(void **state)
{
	fixture *f = *state;
	uint64_t total = 0;
	for (uint32_t rank = 0; rank < 3; rank++) {
		char path[160];
		snprintf(path, sizeof path, "%s/rank%u.state", f->dir, rank);
		ibstore_run_opts o = run_opts();
		o.rank = rank;
		o.world = 3;
		ibstore_run *r = open_ok(path, &o);
		ibstore_epoch_info info;
		assert_int_equal(ibstore_run_epoch_begin(r, 0, &info), 0);
		assert_int_equal(info.samples, (N + 2) / 3);
		assert_int_equal(info.batches, ((N + 2) / 3 + 31) / 32);
		total += info.samples;
		ibstore_run_close(r);
	}
	assert_int_equal(total, N + 2); /* two weight-0 paddings */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_losses_become_scores_and_epochs_prune, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_reports_change_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ema_smooths_scores, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors_are_clear, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_reproduces_the_uninterrupted_sequence,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_rank_slices_have_equal_batches, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rank_slices_stride_the_plan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoints_and_what_is_committed, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
