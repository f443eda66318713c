/*
 * test_elastic.c — elastic resume (ibstore_run_open_elastic): a job of W
 * ranks stopped mid-epoch resumes on W' ranks at the first plan position
 * every old rank consumed; the samples trained before the stop and the new
 * slices' samples are the plan exactly once (padding weight 0); the scores
 * end equal to an uninterrupted one-rank run fed the same losses; files
 * that stand apart, stale sets, foreign or corrupt members, bad arguments,
 * and a process killed at any point are handled.
 *
 * The ranks of a job are run handles in this one process: each rank's
 * batches are reported as a trainer would, and the end-of-epoch exchange
 * reports every other rank's (id, loss) pairs, as ibstore_run_exchange_mpi
 * does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "ibstore.h"

#define N 1000
#define EPOCHS 5
#define BATCH 16
#define MAXW 4

typedef struct fixture {
	char dir[64];
	char base[128];
	float ref[EPOCHS][N];        /* an uninterrupted one-rank run's scores after each epoch */
	uint64_t ref_plan[EPOCHS][N];
	uint64_t ref_len[EPOCHS];
} fixture;

/* A rank of the job: its handle and the pairs it reported this epoch. */
typedef struct rank {
	ibstore_run *run;
	uint64_t ids[N];
	float losses[N];
	size_t n;
} rank;

static float loss_of(uint64_t id, uint32_t epoch)
{
	uint64_t h = (id + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)epoch + 7) * 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	return 0.05f + (float)(h % 1000) / 400.0f;
}

static ibstore_run_opts opts_of(uint32_t r, uint32_t world)
{
	ibstore_run_opts o;
	ibstore_run_opts_init(&o);
	o.samples = N;
	o.prune.epochs = EPOCHS;
	o.prune.ratio = 0.5;
	o.prune.ema = 0.25; /* a second report of a sample would show */
	o.prune.seed = 11;
	o.batch_size = BATCH;
	o.checkpoint_every = 2;
	o.rank = r;
	o.world = world;
	return o;
}

/* Batches [b0, b1) of one rank: losses of its non-padding entries
 * reported (and kept for the exchange), the cursor advanced. */
static void train(rank *k, uint32_t epoch, uint64_t b0, uint64_t b1)
{
	for (uint64_t b = b0; b < b1; b++) {
		const uint64_t *ids;
		const float *w;
		size_t n;
		assert_int_equal(ibstore_run_batch(k->run, b, &ids, &w, &n), 0);
		for (size_t i = 0; i < n; i++) {
			if (ibstore_is_padding(w[i]))
				continue;
			float l = loss_of(ids[i], epoch);
			assert_int_equal(ibstore_run_report(k->run, &ids[i], &l, 1), 0);
			k->ids[k->n] = ids[i];
			k->losses[k->n++] = l;
		}
		assert_int_equal(ibstore_run_advance(k->run, 1), 0);
	}
}

/* The end-of-epoch exchange: every rank records the others' pairs. */
static void exchange(rank *k, uint32_t world)
{
	for (uint32_t r = 0; r < world; r++)
		for (uint32_t s = 0; s < world; s++)
			if (s != r)
				assert_int_equal(ibstore_run_report(k[r].run, k[s].ids, k[s].losses, k[s].n), 0);
	for (uint32_t r = 0; r < world; r++)
		k[r].n = 0;
}

static ibstore_run *open_elastic(const char *base, uint32_t r, uint32_t world)
{
	ibstore_run_opts o = opts_of(r, world);
	ibstore_run *run;
	int rc = ibstore_run_open_elastic(base, &o, &run);
	if (rc)
		fail_msg("open_elastic rank %u of %u: %s", r, world, ibstore_run_errmsg(run));
	return run;
}

static void open_world(rank *k, const char *base, uint32_t world)
{
	for (uint32_t r = 0; r < world; r++) {
		k[r].run = open_elastic(base, r, world);
		k[r].n = 0;
	}
}

static void close_world(rank *k, uint32_t world)
{
	for (uint32_t r = 0; r < world; r++) {
		ibstore_run_close(k[r].run);
		k[r].run = NULL;
	}
}

static void assert_scores(const rank *k, uint32_t world, const float *want)
{
	for (uint32_t r = 0; r < world; r++) {
		uint64_t n;
		const float *s = ibstore_run_scores(k[r].run, &n);
		assert_int_equal(n, N);
		assert_memory_equal(s, want, N * sizeof *s);
	}
}

/*
 * Begins `epoch` on every rank; checks the plan is the uninterrupted run's
 * and that the plan before the slices' start plus every rank's slice
 * (padding aside, weight 0) is the plan exactly once.  Returns the start.
 */
static uint64_t begin_world(fixture *f, rank *k, uint32_t world, uint32_t epoch)
{
	static unsigned char seen[N];
	uint64_t start = 0;
	memset(seen, 0, sizeof seen);
	for (uint32_t r = 0; r < world; r++) {
		assert_int_equal(ibstore_run_epoch_begin(k[r].run, epoch, NULL), 0);
		const ibstore_plan *p = ibstore_run_plan(k[r].run);
		assert_non_null(p);
		assert_int_equal(p->len, f->ref_len[epoch]);
		assert_memory_equal(p->ids, f->ref_plan[epoch], p->len * sizeof *p->ids);
		ibstore_run_info info;
		assert_int_equal(ibstore_run_info_get(k[r].run, &info), 0);
		assert_int_equal(info.cursor, 0);
		if (r == 0)
			start = info.start;
		assert_int_equal(info.start, start);
		const uint64_t *ids;
		const float *w;
		uint64_t len;
		assert_int_equal(ibstore_run_slice(k[r].run, &ids, &w, &len), 0);
		for (uint64_t i = 0; i < len; i++) {
			if (ibstore_is_padding(w[i])) {
				assert_true(w[i] == 0.0f);
				continue;
			}
			seen[ids[i]]++;
		}
	}
	const uint64_t *plan = f->ref_plan[epoch];
	for (uint64_t p = 0; p < start; p++)
		seen[plan[p]]++;
	for (uint64_t p = 0; p < f->ref_len[epoch]; p++)
		assert_int_equal(seen[plan[p]], 1);
	uint64_t total = 0;
	for (uint64_t i = 0; i < N; i++)
		total += seen[i];
	assert_int_equal(total, f->ref_len[epoch]);
	return start;
}

static uint64_t batches_of(const rank *k)
{
	ibstore_run_info info;
	assert_int_equal(ibstore_run_info_get(k->run, &info), 0);
	return info.batches;
}

/* Every remaining batch of every rank, the exchange, the epoch's end. */
static void finish_world(rank *k, uint32_t world, uint32_t epoch)
{
	for (uint32_t r = 0; r < world; r++) {
		ibstore_run_info info;
		assert_int_equal(ibstore_run_info_get(k[r].run, &info), 0);
		train(&k[r], epoch, info.cursor, info.batches);
	}
	exchange(k, world);
	for (uint32_t r = 0; r < world; r++)
		assert_int_equal(ibstore_run_epoch_end(k[r].run, NULL), 0);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f || fx_mkdtemp(f->dir, sizeof f->dir, "ibstore-elastic"))
		return -1;
	snprintf(f->base, sizeof f->base, "%s/job.run", f->dir);
	/* the uninterrupted one-rank run */
	ibstore_run_opts o = opts_of(0, 1);
	ibstore_run *run;
	if (ibstore_run_open(fx_path(f->dir, "reference.run"), &o, &run))
		return -1;
	rank *k = calloc(1, sizeof *k);
	k->run = run;
	for (uint32_t e = 0; e < EPOCHS; e++) {
		if (ibstore_run_epoch_begin(run, e, NULL))
			return -1;
		const ibstore_plan *p = ibstore_run_plan(run);
		f->ref_len[e] = p->len;
		memcpy(f->ref_plan[e], p->ids, p->len * sizeof *p->ids);
		k->n = 0; /* one rank: nothing to exchange */
		train(k, e, 0, batches_of(k));
		if (ibstore_run_epoch_end(run, NULL))
			return -1;
		memcpy(f->ref[e], ibstore_run_scores(run, NULL), sizeof f->ref[e]);
	}
	ibstore_run_close(run);
	free(k);
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

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static const char *member(const fixture *f, uint32_t gen, uint32_t r, uint32_t world)
{
	static char buf[4][256];
	static int i;
	i = (i + 1) % 4;
	assert_int_equal(ibstore_run_path(f->base, gen, r, world, buf[i], sizeof buf[i]), 0);
	return buf[i];
}

/* 2 ranks stop mid-epoch 1 -> 3 ranks finish it and stop mid-epoch 2 ->
 * 1 rank finishes the run: every epoch's plan and scores as uninterrupted. */
static void test_two_three_one(void **state)
{
	fixture *f = *state;
	rank *k = calloc(MAXW, sizeof *k);

	open_world(k, f->base, 2);
	assert_string_equal(ibstore_run_file(k[1].run), member(f, 0, 1, 2));
	assert_int_equal(begin_world(f, k, 2, 0), 0);
	finish_world(k, 2, 0);
	assert_scores(k, 2, f->ref[0]);
	assert_int_equal(begin_world(f, k, 2, 1), 0);
	train(&k[0], 1, 0, 3); /* commits at 2; batch 3 is lost with the stop */
	train(&k[1], 1, 0, 3);
	close_world(k, 2);

	open_world(k, f->base, 3);
	assert_string_equal(ibstore_run_file(k[2].run), member(f, 1, 2, 3));
	assert_int_equal(begin_world(f, k, 3, 1), 2 * BATCH * 2);
	ibstore_run_info info;
	assert_int_equal(ibstore_run_info_get(k[0].run, &info), 0);
	assert_int_equal(info.generation, 1);
	finish_world(k, 3, 1);
	assert_scores(k, 3, f->ref[1]);
	assert_int_equal(begin_world(f, k, 3, 2), 0);
	for (uint32_t r = 0; r < 3; r++)
		train(&k[r], 2, 0, 5); /* commits at 2 and 4 */
	close_world(k, 3);

	open_world(k, f->base, 1);
	assert_string_equal(ibstore_run_file(k[0].run), member(f, 2, 0, 1));
	assert_int_equal(begin_world(f, k, 1, 2), 4 * BATCH * 3);
	finish_world(k, 1, 2);
	assert_scores(k, 1, f->ref[2]);
	for (uint32_t e = 3; e < EPOCHS; e++) {
		assert_int_equal(begin_world(f, k, 1, e), 0);
		finish_world(k, 1, e);
		assert_scores(k, 1, f->ref[e]);
	}
	close_world(k, 1);
	free(k);
}

/* 2 ranks -> 1 directly, and the epoch statistics travel with the state. */
static void test_two_one(void **state)
{
	fixture *f = *state;
	rank *k = calloc(MAXW, sizeof *k);
	open_world(k, f->base, 2);
	begin_world(f, k, 2, 0);
	finish_world(k, 2, 0);
	begin_world(f, k, 2, 1);
	train(&k[0], 1, 0, 4);
	train(&k[1], 1, 0, 4);
	close_world(k, 2);

	open_world(k, f->base, 1);
	ibstore_epoch_stats es;
	assert_int_equal(ibstore_run_epoch_stats_get(k[0].run, 0, &es), 0);
	assert_int_equal(es.plan.kept, f->ref_len[0]);
	assert_int_equal(begin_world(f, k, 1, 1), 4 * BATCH * 2);
	finish_world(k, 1, 1);
	assert_scores(k, 1, f->ref[1]);
	close_world(k, 1);
	free(k);
}

/* The same world at one point: each rank resumes its own file (no new
 * generation), at its committed cursor. */
static void test_same_world_resumes_own_file(void **state)
{
	fixture *f = *state;
	rank *k = calloc(MAXW, sizeof *k);
	open_world(k, f->base, 2);
	begin_world(f, k, 2, 0);
	train(&k[0], 0, 0, 2);
	train(&k[1], 0, 0, 2);
	close_world(k, 2);
	open_world(k, f->base, 2);
	for (uint32_t r = 0; r < 2; r++) {
		assert_string_equal(ibstore_run_file(k[r].run), member(f, 0, r, 2));
		ibstore_epoch_info ei;
		assert_int_equal(ibstore_run_epoch_begin(k[r].run, 0, &ei), 0);
		assert_int_equal(ei.cursor, 2);
	}
	close_world(k, 2);
	assert_false(exists(member(f, 1, 0, 2)));
	free(k);
}

/* A stop between two ranks' checkpoints: rank 0 committed 4 batches, rank 1
 * only 2.  The same world resumes at rank 1's point (every rank again at one
 * cursor); rank 0's two extra batches are trained again, and since their
 * losses are the same the scores still end as uninterrupted. */
static void test_ranks_apart(void **state)
{
	fixture *f = *state;
	rank *k = calloc(MAXW, sizeof *k);
	open_world(k, f->base, 2);
	begin_world(f, k, 2, 0);
	finish_world(k, 2, 0);
	begin_world(f, k, 2, 1);
	train(&k[0], 1, 0, 4);
	train(&k[1], 1, 0, 2);
	close_world(k, 2);
	open_world(k, f->base, 2);
	assert_string_equal(ibstore_run_file(k[0].run), member(f, 1, 0, 2));
	assert_int_equal(begin_world(f, k, 2, 1), 2 * BATCH * 2);
	finish_world(k, 2, 1);
	assert_scores(k, 2, f->ref[1]);
	close_world(k, 2);
	free(k);
}

/* 2 -> 3 -> 2: the old world's files are stale; the newest set (world 3,
 * generation 1) is the one resumed, into generation 2. */
static void test_stale_set(void **state)
{
	fixture *f = *state;
	rank *k = calloc(MAXW, sizeof *k);
	open_world(k, f->base, 2);
	begin_world(f, k, 2, 0);
	finish_world(k, 2, 0);
	close_world(k, 2);
	open_world(k, f->base, 3);
	begin_world(f, k, 3, 1);
	for (uint32_t r = 0; r < 3; r++)
		train(&k[r], 1, 0, 2);
	close_world(k, 3);
	open_world(k, f->base, 2);
	assert_string_equal(ibstore_run_file(k[1].run), member(f, 2, 1, 2));
	assert_int_equal(begin_world(f, k, 2, 1), 2 * BATCH * 3);
	finish_world(k, 2, 1);
	assert_scores(k, 2, f->ref[1]);
	close_world(k, 2);

	/* ibstore_run_merge: the job as one rank, without touching it */
	uint32_t world = 0, gen = 9;
	char msg[256];
	const char *out = fx_path(f->dir, "merged.run");
	assert_int_equal(ibstore_run_merge(f->base, out, &world, &gen, msg, sizeof msg), 0);
	assert_int_equal(world, 2);
	assert_int_equal(gen, 2);
	ibstore_run *m;
	assert_int_equal(ibstore_run_open(out, NULL, &m), 0);
	assert_memory_equal(ibstore_run_scores(m, NULL), f->ref[1], sizeof f->ref[1]);
	ibstore_run_close(m);
	assert_int_equal(ibstore_run_merge(f->base, out, NULL, NULL, msg, sizeof msg), IBSTORE_EEXIST);
	free(k);
}

static void copy_file(const char *from, const char *to)
{
	size_t n;
	uint8_t *b = fx_read_file(from, &n);
	fx_write_file(to, b, n);
	free(b);
}

/*
 * A resume cut short twice: the set of the next generation holds a member
 * left from an earlier attempt (another resume point) beside the new ones.
 * It is complete by its names but torn: the job resumes from the set it was
 * built from instead.
 */
static void test_torn_set(void **state)
{
	fixture *f = *state;
	rank *k = calloc(MAXW, sizeof *k);
	char stale[300];
	snprintf(stale, sizeof stale, "%s/stale", f->dir);
	open_world(k, f->base, 2);
	begin_world(f, k, 2, 0);
	train(&k[0], 0, 0, 2);
	train(&k[1], 0, 0, 2);
	close_world(k, 2);
	/* the first attempt on 3 ranks: only its rank 0 file survives */
	open_world(k, f->base, 3);
	close_world(k, 3);
	copy_file(member(f, 1, 0, 3), stale);
	for (uint32_t r = 0; r < 3; r++)
		assert_int_equal(unlink(member(f, 1, r, 3)), 0);
	/* the job goes on with 2 ranks, then a second attempt on 3 writes
	 * ranks 1 and 2 only; the old rank 0 file is back beside them */
	open_world(k, f->base, 2);
	assert_string_equal(ibstore_run_file(k[0].run), member(f, 0, 0, 2));
	for (uint32_t r = 0; r < 2; r++) {
		assert_int_equal(ibstore_run_epoch_begin(k[r].run, 0, NULL), 0);
		train(&k[r], 0, 2, 4);
	}
	close_world(k, 2);
	for (uint32_t r = 1; r < 3; r++) {
		k[r].run = open_elastic(f->base, r, 3);
		ibstore_run_close(k[r].run);
	}
	copy_file(stale, member(f, 1, 0, 3));
	/* resumed on 1 rank: from the 2-rank set at 4 batches, not the torn one */
	open_world(k, f->base, 1);
	assert_string_equal(ibstore_run_file(k[0].run), member(f, 1, 0, 1));
	assert_int_equal(begin_world(f, k, 1, 0), 4 * BATCH * 2);
	finish_world(k, 1, 0);
	assert_scores(k, 1, f->ref[0]);
	close_world(k, 1);
	free(k);
}

static int open_code(const char *base, const ibstore_run_opts *o, char *msg, size_t cap)
{
	ibstore_run *run = NULL;
	int rc = ibstore_run_open_elastic(base, o, &run);
	snprintf(msg, cap, "%s", ibstore_run_errmsg(run));
	ibstore_run_close(run);
	return rc;
}

/* Wrong arguments, another run's options, foreign and corrupt members: a
 * clear error, and no file of a new generation. */
static void test_bad_input(void **state)
{
	fixture *f = *state;
	char msg[512];
	ibstore_run *run = (ibstore_run *)1;
	ibstore_run_opts o = opts_of(0, 2);
	assert_int_equal(ibstore_run_open_elastic(NULL, &o, &run), IBSTORE_EINVAL);
	ibstore_run_close(run);
	assert_int_equal(ibstore_run_open_elastic(f->base, NULL, &run), IBSTORE_EINVAL);
	assert_non_null(strstr(ibstore_run_errmsg(run), "rank and world"));
	ibstore_run_close(run);
	assert_int_equal(ibstore_run_open_elastic(f->base, &o, NULL), IBSTORE_EINVAL);
	o.rank = 2;
	assert_int_equal(open_code(f->base, &o, msg, sizeof msg), IBSTORE_EINVAL);
	assert_non_null(strstr(msg, "rank 2 is not below world 2"));
	char buf[8];
	assert_int_equal(ibstore_run_path(f->base, 0, 0, 2, buf, sizeof buf), IBSTORE_ETOOBIG);
	assert_int_equal(ibstore_run_path(f->base, 0, 2, 2, buf, sizeof buf), IBSTORE_EINVAL);

	rank *k = calloc(MAXW, sizeof *k);
	open_world(k, f->base, 2);
	begin_world(f, k, 2, 0);
	train(&k[0], 0, 0, 2);
	train(&k[1], 0, 0, 2);
	close_world(k, 2);

	/* another run's options */
	o = opts_of(0, 3);
	o.prune.seed = 12;
	assert_int_equal(open_code(f->base, &o, msg, sizeof msg), IBSTORE_EMISMATCH);
	assert_non_null(strstr(msg, "seed"));
	assert_false(exists(member(f, 1, 0, 3)));

	/* a leftover temporary file is not a member */
	char tmp[300];
	snprintf(tmp, sizeof tmp, "%s.tmp-99999", member(f, 1, 0, 3));
	fx_write_file(tmp, "junk", 4);

	/* a member of another run (other samples) */
	const char *r1 = member(f, 0, 1, 2);
	char saved[300];
	snprintf(saved, sizeof saved, "%s.saved", r1);
	assert_int_equal(rename(r1, saved), 0);
	ibstore_run_opts other = opts_of(1, 2);
	other.samples = N - 1;
	assert_int_equal(ibstore_run_open(r1, &other, &run), 0);
	ibstore_run_close(run);
	o = opts_of(0, 3);
	assert_int_equal(open_code(f->base, &o, msg, sizeof msg), IBSTORE_EFORMAT);
	assert_non_null(strstr(msg, "not of one run"));
	assert_false(exists(member(f, 1, 0, 3)));

	/* a corrupt member */
	fx_write_file(r1, "this is not an LMDB file at all, just text", 42);
	assert_int_equal(open_code(f->base, &o, msg, sizeof msg), IBSTORE_EFORMAT);
	assert_non_null(strstr(msg, r1));
	assert_false(exists(member(f, 1, 0, 3)));

	/* restored, the job resumes on 3 */
	assert_int_equal(rename(saved, r1), 0);
	open_world(k, f->base, 3);
	assert_int_equal(begin_world(f, k, 3, 0), 2 * BATCH * 2);
	finish_world(k, 3, 0);
	assert_scores(k, 3, f->ref[0]);
	close_world(k, 3);
	free(k);
}

/*
 * A child process resumes the job on 1, 2, 3, 1, ... ranks in turn, training
 * and committing, and is killed with SIGKILL at a random moment, repeatedly
 * (inside a checkpoint, a resume's write, a rename).  After every kill the
 * job still opens: its merged state is sound and the next resume goes on.
 */
static void child_loop(const char *base)
{
	rank *k = calloc(MAXW, sizeof *k);
	for (uint32_t it = 0;; it++) {
		uint32_t world = 1 + it % 3;
		for (uint32_t r = 0; r < world; r++) {
			ibstore_run_opts o = opts_of(r, world);
			if (ibstore_run_open_elastic(base, &o, &k[r].run)) {
				fprintf(stderr, "child: rank %u of %u: %s\n", r, world,
					ibstore_run_errmsg(k[r].run));
				_exit(3);
			}
		}
		for (uint32_t r = 0; r < world; r++) {
			ibstore_run_info info;
			ibstore_run_info_get(k[r].run, &info);
			uint32_t e = info.in_epoch ? info.epoch : info.epochs_done;
			if (e >= EPOCHS)
				_exit(0);
			if (ibstore_run_epoch_begin(k[r].run, e, NULL)) {
				fprintf(stderr, "child: epoch %u: %s\n", e, ibstore_run_errmsg(k[r].run));
				_exit(4);
			}
			ibstore_run_info_get(k[r].run, &info);
			uint64_t todo = info.batches - info.cursor;
			train(&k[r], e, info.cursor, info.cursor + (todo < 3 ? todo : 3));
		}
		for (uint32_t r = 0; r < world; r++)
			ibstore_run_close(k[r].run);
	}
}

static void test_kill9(void **state)
{
	fixture *f = *state;
	unsigned seed = (unsigned)time(NULL);
	srand(seed);
	for (int round = 0; round < 25; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			child_loop(f->base);
		usleep((useconds_t)(1000 + rand() % 20000));
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
			fail_msg("round %d (seed %u): the child failed with %d", round, seed,
				 WEXITSTATUS(st));
		char msg[512];
		const char *out = fx_path(f->dir, "check.run");
		unlink(out);
		int rc = ibstore_run_merge(f->base, out, NULL, NULL, msg, sizeof msg);
		if (rc == IBSTORE_ENOTFOUND)
			continue; /* killed before the first file was complete */
		if (rc)
			fail_msg("round %d (seed %u): %s", round, seed, msg);
		ibstore_run *m;
		assert_int_equal(ibstore_run_open(out, NULL, &m), 0);
		ibstore_run_info info;
		assert_int_equal(ibstore_run_info_get(m, &info), 0);
		const ibstore_plan *p = ibstore_run_plan(m);
		if (info.in_epoch)
			assert_true(p && info.start <= p->len);
		ibstore_run_close(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_two_three_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_world_resumes_own_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ranks_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_set, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
