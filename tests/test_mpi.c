/*
 * test_mpi.c — the distributed contract over MPI, run under
 * `mpirun -np N` (N = 2 and 3 in tests/meson.build).  Every check is
 * collective: each rank judges its own part, the ranks agree with
 * MPI_Allreduce, and rank 0 alone prints TAP.
 *
 * Over several epochs of synthetic losses, per-epoch and per-batch
 * exchanges, with and without EMA: the plan is identical on every rank; the
 * slices are disjoint apart from weight-0 padding and their union is the
 * plan; the counts are equal on every rank; after the exchange every rank
 * holds identical scores; and the sequence of plans equals that of a
 * single-process run (world 1) fed the same losses.  A bad loss or id on
 * one rank, a run not in an epoch on one rank, or a run whose world is not
 * the communicator's makes every rank return the same error with no score
 * changed.
 *
 * `test_mpi --die-rank R [--signal]` is the dead-rank case
 * (tests/mpi_dead_rank.sh): rank R exits (or is killed by SIGKILL) in the
 * middle of an epoch, without MPI_Finalize, while the others enter the
 * exchange.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ibstore_mpi.h"

#define N 1001 /* 7 * 11 * 13: full epochs never divide by 2 or 3, so they pad */
#define BATCH 32
#define EPOCHS 8 /* delta 0.875: epochs 0..5 prune, 6..7 anneal */

static int rank, world, tap_n, tap_failed;
static char dir[] = "/tmp/test_mpi.XXXXXX";

/* ---------------------------------------------------------------------- */
/* Collective TAP                                                          */
/* ---------------------------------------------------------------------- */

/* Every rank calls it; the test passes when it passed on every rank.
 * A rank that failed says why on stderr (meson keeps it in the log). */
static void check(int ok, const char *why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void check(int ok, const char *why, const char *fmt, ...)
{
	int all = 0;
	MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (!ok)
		fprintf(stderr, "# rank %d: %s\n", rank, why ? why : "failed");
	tap_n++;
	tap_failed += !all;
	if (rank == 0) {
		va_list ap;
		va_start(ap, fmt);
		printf("%sok %d - ", all ? "" : "not ", tap_n);
		vprintf(fmt, ap);
		printf(" (%d ranks)\n", world);
		va_end(ap);
		fflush(stdout);
	}
}

static void bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "# rank %d: ", rank);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	if (rank == 0)
		printf("Bail out! rank 0 could not go on\n");
	fflush(stdout);
	MPI_Abort(MPI_COMM_WORLD, 1);
	exit(1);
}

/* 1 when x is equal on every rank. */
static int same_everywhere(uint64_t x)
{
	uint64_t v[2] = {x, ~x}, m[2];
	MPI_Allreduce(v, m, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
	return m[0] == x && m[1] == ~x;
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */
/* ---------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static uint64_t plan_digest(const ibstore_plan *p)
{
	uint64_t h = fnv(0xcbf29ce484222325ull, &p->len, sizeof p->len);
	h = fnv(h, p->ids, p->len * sizeof *p->ids);
	return fnv(h, p->weights, p->len * sizeof *p->weights);
}

static uint64_t scores_digest(const ibstore_run *run)
{
	uint64_t n;
	const float *s = ibstore_run_scores(run, &n);
	return s ? fnv(0xcbf29ce484222325ull, s, n * sizeof *s) : 0;
}

/* A synthetic per-sample loss in (0, 4), different every epoch. */
static float loss_of(uint64_t id, uint32_t epoch)
{
	uint64_t x =
		(id + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)(epoch + 1) * 0xbf58476d1ce4e5b9ull;
	x ^= x >> 31;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 29;
	return 4.0f * (float)((x >> 40) + 1) / (float)((1ull << 24) + 2);
}

static ibstore_run *open_run(const char *name, uint32_t r, uint32_t w, double ema)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path);
	ibstore_run_opts o;
	ibstore_run_opts_init(&o);
	o.prune.epochs = EPOCHS;
	o.prune.seed = 7;
	o.prune.ema = ema;
	o.samples = N;
	o.batch_size = BATCH;
	o.rank = r;
	o.world = w;
	o.checkpoint_every = 4;
	ibstore_run *run = NULL;
	if (ibstore_run_open(path, &o, &run))
		bail("run %s: %s", path, ibstore_run_errmsg(run));
	return run;
}

static void close_run(ibstore_run *run, const char *name)
{
	char path[256];
	ibstore_run_close(run);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path);
}

/* ---------------------------------------------------------------------- */
/* Slices: gathered on rank 0 and checked against the plan                 */
/* ---------------------------------------------------------------------- */

/* Checks the world's slices (rank r's at all_ids + r * slen) against the
 * plan; returns NULL when sound, else what is wrong. */
static const char *check_slices(const ibstore_plan *p, const uint64_t *all_ids, const float *all_w,
				uint64_t slen)
{
	static char why[160];
	uint8_t *seen = calloc(N, 1);
	if (!seen)
		return "out of memory";
	float *weight_of = malloc(N * sizeof *weight_of);
	if (!weight_of) {
		free(seen);
		return "out of memory";
	}
	for (uint64_t i = 0; i < p->len; i++)
		weight_of[p->ids[i]] = p->weights[i];
	uint64_t real = 0, pad = 0;
	const char *bad = NULL;
	for (int r = 0; r < world && !bad; r++) {
		for (uint64_t i = 0; i < slen && !bad; i++) {
			uint64_t id = all_ids[(uint64_t)r * slen + i];
			float w = all_w[(uint64_t)r * slen + i];
			uint64_t pos = i * (uint64_t)world + (uint64_t)r;
			if (id >= N) {
				bad = "an id past the dataset";
			} else if (ibstore_is_padding(w)) {
				pad++;
				if (pos < p->len) {
					snprintf(why, sizeof why,
						 "rank %d entry %" PRIu64
						 " has weight 0 inside the plan",
						 r, i);
					bad = why;
				}
			} else if (pos >= p->len || p->ids[pos] != id || w != weight_of[id]) {
				snprintf(why, sizeof why,
					 "rank %d entry %" PRIu64 " is not plan position %" PRIu64,
					 r, i, pos);
				bad = why;
			} else if (seen[id]++) {
				snprintf(why, sizeof why, "sample %" PRIu64 " is in two slices",
					 id);
				bad = why;
			} else {
				real++;
			}
		}
	}
	if (!bad && real != p->len) {
		snprintf(why, sizeof why,
			 "the slices hold %" PRIu64 " of the plan's %" PRIu64 " samples", real,
			 p->len);
		bad = why;
	}
	if (!bad && pad != (uint64_t)world * slen - p->len)
		bad = "the padding is not world * slice - plan entries";
	free(seen);
	free(weight_of);
	return bad;
}

/* ---------------------------------------------------------------------- */
/* Several epochs, distributed and single-process side by side             */
/* ---------------------------------------------------------------------- */

typedef struct epoch_checks {
	int plan_same, counts_same, slices_ok, scores_same, matches_single, pruned;
	const char *slice_why, *why;
} epoch_checks;

/* One scenario: EPOCHS epochs with per-epoch or per-batch exchanges. */
static void scenario(double ema, int per_batch)
{
	const char *label = per_batch ? "per-batch" : "per-epoch";
	ibstore_run *run = open_run("dist.run", (uint32_t)rank, (uint32_t)world, ema);
	ibstore_run *single = rank == 0 ? open_run("single.run", 0, 1, ema) : NULL;
	epoch_checks c = {1, 1, 1, 1, 1, 0, NULL, NULL};
	uint64_t *ids = NULL, *all_ids = NULL;
	float *w = NULL, *all_w = NULL, *losses = NULL;
	char msg[512];

	for (uint32_t e = 0; e < EPOCHS; e++) {
		ibstore_epoch_info info;
		if (ibstore_run_epoch_begin(run, e, &info))
			bail("epoch_begin: %s", ibstore_run_errmsg(run));
		const ibstore_plan *p = ibstore_run_plan(run);
		if (!same_everywhere(plan_digest(p)) && c.plan_same) {
			c.plan_same = 0;
			c.why = "the plan differs between ranks";
		}
		if (!same_everywhere(info.samples) || !same_everywhere(info.batches))
			c.counts_same = 0;
		c.pruned += p->stats.pruned > 0;

		/* this rank's slice, batch by batch */
		uint64_t slen = info.samples;
		ids = realloc(ids, (slen + 1) * sizeof *ids);
		w = realloc(w, (slen + 1) * sizeof *w);
		losses = realloc(losses, (slen + 1) * sizeof *losses);
		if (!ids || !w || !losses)
			bail("out of memory");
		uint64_t k = 0;
		for (uint64_t b = 0; b < info.batches; b++) {
			const uint64_t *bi;
			const float *bw;
			size_t bn;
			if (ibstore_run_batch(run, b, &bi, &bw, &bn))
				bail("batch: %s", ibstore_run_errmsg(run));
			memcpy(ids + k, bi, bn * sizeof *bi);
			memcpy(w + k, bw, bn * sizeof *bw);
			k += bn;
		}
		if (k != slen)
			bail("the batches hold %" PRIu64 " of the slice's %" PRIu64, k, slen);

		/* gather every slice on rank 0 and check them against the plan */
		if (rank == 0) {
			all_ids = realloc(all_ids, (slen * (uint64_t)world + 1) * sizeof *all_ids);
			all_w = realloc(all_w, (slen * (uint64_t)world + 1) * sizeof *all_w);
			if (!all_ids || !all_w)
				bail("out of memory");
		}
		MPI_Gather(ids, (int)slen, MPI_UINT64_T, all_ids, (int)slen, MPI_UINT64_T, 0,
			   MPI_COMM_WORLD);
		MPI_Gather(w, (int)slen, MPI_FLOAT, all_w, (int)slen, MPI_FLOAT, 0, MPI_COMM_WORLD);
		if (rank == 0 && c.slices_ok) {
			const char *why = check_slices(p, all_ids, all_w, slen);
			if (why) {
				c.slices_ok = 0;
				c.slice_why = why;
			}
		}

		/* losses: own samples reported locally; padding gets a loss of its
		 * own (another moment of training) that must never become a score */
		for (uint64_t i = 0; i < slen; i++)
			losses[i] = loss_of(ids[i], e) + (ibstore_is_padding(w[i]) ? 100.0f : 0.0f);
		uint64_t from = 0;
		for (uint64_t b = 0; b < info.batches; b++) {
			uint64_t to = from + BATCH < slen ? from + BATCH : slen;
			for (uint64_t i = from; i < to; i++)
				if (!ibstore_is_padding(w[i]) && ibstore_run_report(run, &ids[i], &losses[i], 1))
					bail("report: %s", ibstore_run_errmsg(run));
			if (ibstore_run_advance(run, 1))
				bail("advance: %s", ibstore_run_errmsg(run));
			if (per_batch &&
			    ibstore_run_exchange_mpi(run, ids + from, losses + from, to - from,
						     MPI_COMM_WORLD, msg, sizeof msg))
				bail("exchange: %s", msg);
			from = to;
		}
		if (!per_batch && ibstore_run_exchange_mpi(run, ids, losses, slen, MPI_COMM_WORLD,
							   msg, sizeof msg))
			bail("exchange: %s", msg);
		if (!same_everywhere(scores_digest(run)))
			c.scores_same = 0;

		/* the single-process run, fed the same losses, plans the same */
		int match = 1;
		if (rank == 0) {
			ibstore_epoch_info si;
			if (ibstore_run_epoch_begin(single, e, &si))
				bail("single epoch_begin: %s", ibstore_run_errmsg(single));
			const ibstore_plan *sp = ibstore_run_plan(single);
			match = plan_digest(sp) == plan_digest(p);
			for (uint64_t i = 0; i < sp->len; i++) {
				float l = loss_of(sp->ids[i], e);
				if (ibstore_run_report(single, &sp->ids[i], &l, 1))
					bail("single report: %s", ibstore_run_errmsg(single));
			}
			if (ibstore_run_advance(single, si.batches) ||
			    ibstore_run_epoch_end(single, NULL))
				bail("single epoch_end: %s", ibstore_run_errmsg(single));
			match = match && scores_digest(single) == scores_digest(run);
		}
		MPI_Bcast(&match, 1, MPI_INT, 0, MPI_COMM_WORLD);
		c.matches_single = c.matches_single && match;
		if (ibstore_run_epoch_end(run, NULL))
			bail("epoch_end: %s", ibstore_run_errmsg(run));
	}

	check(c.plan_same, c.why, "%s, ema %.1f: the plan is identical on every rank, %d epochs",
	      label, ema, EPOCHS);
	check(c.slices_ok, c.slice_why,
	      "%s, ema %.1f: slices disjoint apart from weight-0 padding, union = plan", label,
	      ema);
	check(c.counts_same, "sample or batch counts differ",
	      "%s, ema %.1f: the slice's sample and batch counts are equal on every rank", label,
	      ema);
	check(c.scores_same, "scores differ",
	      "%s, ema %.1f: after each exchange every rank holds identical scores", label, ema);
	check(c.matches_single && c.pruned >= 4, "plans or scores differ from world 1",
	      "%s, ema %.1f: plans and scores equal a world-1 run fed the same losses (%d prune)",
	      label, ema, c.pruned);
	free(ids);
	free(w);
	free(losses);
	free(all_ids);
	free(all_w);
	close_run(run, "dist.run");
	if (single)
		close_run(single, "single.run");
}

/* ---------------------------------------------------------------------- */
/* Refusals: every rank returns the same error, no score changes           */
/* ---------------------------------------------------------------------- */

/* Rank `culprit` passes (id, loss); the others pass one sound pair. */
static void refusal(const char *what, int culprit, uint64_t id, float loss, int expect,
		    const char *needle)
{
	ibstore_run *run = open_run("refuse.run", (uint32_t)rank, (uint32_t)world, 0.0);
	ibstore_epoch_info info;
	if (ibstore_run_epoch_begin(run, 0, &info))
		bail("epoch_begin: %s", ibstore_run_errmsg(run));
	uint64_t before = scores_digest(run);
	uint64_t my_id = (uint64_t)rank;
	float my_loss = 1.0f;
	if (rank == culprit) {
		my_id = id;
		my_loss = loss;
	}
	char msg[512] = "";
	int rc =
		ibstore_run_exchange_mpi(run, &my_id, &my_loss, 1, MPI_COMM_WORLD, msg, sizeof msg);
	char why[700];
	snprintf(why, sizeof why, "returned %d (%s): %s", rc, ibstore_strerror(rc), msg);
	check(rc == expect && strstr(msg, needle) != NULL, why,
	      "%s on rank %d: every rank returns %s naming it", what, culprit,
	      ibstore_strerror(expect));
	check(same_everywhere(fnv(0, msg, strlen(msg))), msg,
	      "%s: the message is the same on every rank", what);
	check(scores_digest(run) == before, "a score changed", "%s: no rank's scores changed",
	      what);
	close_run(run, "refuse.run");
}

static void refusal_not_in_epoch(void)
{
	ibstore_run *run = open_run("refuse.run", (uint32_t)rank, (uint32_t)world, 0.0);
	ibstore_epoch_info info;
	if (ibstore_run_epoch_begin(run, 0, &info))
		bail("epoch_begin: %s", ibstore_run_errmsg(run));
	if (rank == world - 1) { /* this one already ended its epoch */
		ibstore_run_advance(run, info.batches);
		if (ibstore_run_epoch_end(run, NULL))
			bail("epoch_end: %s", ibstore_run_errmsg(run));
	}
	uint64_t before = scores_digest(run), id = (uint64_t)rank;
	float loss = 1.0f;
	char msg[512] = "";
	int rc = ibstore_run_exchange_mpi(run, &id, &loss, 1, MPI_COMM_WORLD, msg, sizeof msg);
	check(rc == IBSTORE_ESTATE && strstr(msg, "not in an epoch") &&
		      scores_digest(run) == before,
	      msg, "a run not in an epoch on rank %d: every rank returns %s, no score changed",
	      world - 1, ibstore_strerror(IBSTORE_ESTATE));
	close_run(run, "refuse.run");
}

static void refusal_world_mismatch(void)
{
	/* each rank's run thinks it is rank 0 of 1 */
	ibstore_run *run = open_run("refuse.run", 0, 1, 0.0);
	ibstore_epoch_info info;
	if (ibstore_run_epoch_begin(run, 0, &info))
		bail("epoch_begin: %s", ibstore_run_errmsg(run));
	uint64_t id = 0;
	float loss = 1.0f;
	char msg[512] = "";
	int rc = ibstore_run_exchange_mpi(run, &id, &loss, 1, MPI_COMM_WORLD, msg, sizeof msg);
	check(rc == IBSTORE_EINVAL && strstr(msg, "communicator"), msg,
	      "runs of world 1 on a communicator of %d: every rank returns %s", world,
	      ibstore_strerror(IBSTORE_EINVAL));
	close_run(run, "refuse.run");
}

/* ---------------------------------------------------------------------- */
/* A rank that dies mid-epoch                                              */
/* ---------------------------------------------------------------------- */

static int die_rank(int victim, int by_signal)
{
	ibstore_run *run = open_run("die.run", (uint32_t)rank, (uint32_t)world, 0.0);
	ibstore_epoch_info info;
	if (ibstore_run_epoch_begin(run, 0, &info))
		bail("epoch_begin: %s", ibstore_run_errmsg(run));
	MPI_Barrier(MPI_COMM_WORLD); /* everyone is in the epoch */
	if (rank == victim) {
		fprintf(stderr, "# rank %d: %s mid-epoch without MPI_Finalize\n", rank,
			by_signal ? "killed by SIGKILL" : "exiting with status 3");
		if (by_signal)
			raise(SIGKILL);
		_exit(3);
	}
	uint64_t id = (uint64_t)rank;
	float loss = 1.0f;
	char msg[512] = "";
	fprintf(stderr, "# rank %d: entering the exchange\n", rank);
	int rc = ibstore_run_exchange_mpi(run, &id, &loss, 1, MPI_COMM_WORLD, msg, sizeof msg);
	fprintf(stderr, "# rank %d: the exchange returned %d (%s): %s\n", rank, rc,
		ibstore_strerror(rc), msg);
	return rc ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* Elastic resume across mpirun invocations                                */
/* ---------------------------------------------------------------------- */

/*
 * `test_mpi --elastic DIR PHASE` (tests/mpi_elastic.sh runs the phases in
 * turn on one DIR): phase 1 (2 ranks) trains epoch 0 and stops after 3
 * batches of epoch 1 (committed: 2); phase 2 (3 ranks) resumes, finishes
 * epoch 1 and stops after 5 batches of epoch 2 (committed: 4); phase 3 (1
 * rank) finishes the run.  Each resumed epoch's plan positions before the
 * slices' start plus every rank's slice must be the plan exactly once, and
 * the final scores those of one uninterrupted process fed the same losses.
 * Losses travel once per epoch (ibstore_run_exchange_mpi).  Prints TAP.
 */
#define ELASTIC_EVERY 2

static ibstore_run_opts elastic_opts(void)
{
	ibstore_run_opts o;
	ibstore_run_opts_init(&o);
	o.prune.epochs = EPOCHS;
	o.prune.seed = 7;
	o.prune.ema = 0.5;
	o.samples = N;
	o.batch_size = BATCH;
	o.rank = (uint32_t)rank;
	o.world = (uint32_t)world;
	o.checkpoint_every = ELASTIC_EVERY;
	return o;
}

/* Batches [b0, b1) of this rank: losses reported, pairs kept. */
static void elastic_train(ibstore_run *run, uint32_t e, uint64_t b0, uint64_t b1, uint64_t *ids,
			  float *losses, size_t *n)
{
	for (uint64_t b = b0; b < b1; b++) {
		const uint64_t *bi;
		const float *bw;
		size_t k;
		if (ibstore_run_batch(run, b, &bi, &bw, &k))
			bail("batch: %s", ibstore_run_errmsg(run));
		for (size_t i = 0; i < k; i++) {
			if (ibstore_is_padding(bw[i]))
				continue;
			float l = loss_of(bi[i], e);
			if (ibstore_run_report(run, &bi[i], &l, 1))
				bail("report: %s", ibstore_run_errmsg(run));
			ids[*n] = bi[i];
			losses[(*n)++] = l;
		}
		if (ibstore_run_advance(run, 1))
			bail("advance: %s", ibstore_run_errmsg(run));
	}
}

/* The union check: positions < start and every rank's slice (gathered). */
static int elastic_union(ibstore_run *run, uint64_t *start_out)
{
	const ibstore_plan *p = ibstore_run_plan(run);
	ibstore_run_info info;
	const uint64_t *ids;
	const float *w;
	uint64_t len;
	if (!p || ibstore_run_info_get(run, &info) || ibstore_run_slice(run, &ids, &w, &len))
		bail("no plan or slice: %s", ibstore_run_errmsg(run));
	*start_out = info.start;
	int counts[1] = {(int)len}, *all_n = malloc((size_t)world * sizeof *all_n);
	int *displs = malloc((size_t)world * sizeof *displs);
	MPI_Allgather(counts, 1, MPI_INT, all_n, 1, MPI_INT, MPI_COMM_WORLD);
	int total = 0;
	for (int r = 0; r < world; r++) {
		displs[r] = total;
		total += all_n[r];
	}
	uint64_t *all_ids = malloc((size_t)(total ? total : 1) * sizeof *all_ids);
	float *all_w = malloc((size_t)(total ? total : 1) * sizeof *all_w);
	MPI_Allgatherv(ids, (int)len, MPI_UINT64_T, all_ids, all_n, displs, MPI_UINT64_T,
		       MPI_COMM_WORLD);
	MPI_Allgatherv(w, (int)len, MPI_FLOAT, all_w, all_n, displs, MPI_FLOAT, MPI_COMM_WORLD);
	uint8_t *seen = calloc(N, 1);
	int ok = 1;
	for (uint64_t i = 0; i < info.start; i++)
		seen[p->ids[i]]++;
	for (int i = 0; i < total; i++) {
		if (ibstore_is_padding(all_w[i]))
			ok &= all_w[i] == 0.0f;
		else
			seen[all_ids[i]]++;
	}
	uint64_t sum = 0;
	for (uint64_t i = 0; i < p->len; i++)
		ok &= seen[p->ids[i]] == 1;
	for (uint64_t i = 0; i < N; i++)
		sum += seen[i];
	ok &= sum == p->len;
	free(all_n);
	free(displs);
	free(all_ids);
	free(all_w);
	free(seen);
	return ok;
}

/* One epoch from the run's cursor: `stop` > 0 stops after that many batches. */
static void elastic_epoch(ibstore_run *run, uint32_t e, uint64_t stop, uint64_t want_start)
{
	if (ibstore_run_epoch_begin(run, e, NULL))
		bail("epoch_begin %u: %s", e, ibstore_run_errmsg(run));
	uint64_t start = 0;
	int ok = elastic_union(run, &start);
	check(ok && start == want_start, "union or start", "epoch %u on %d ranks from position %" PRIu64
	      ": the plan before it and the slices are the plan once, padding weight 0", e, world,
	      want_start);
	check(same_everywhere(plan_digest(ibstore_run_plan(run))), "plan differs",
	      "epoch %u: one plan on every rank", e);
	ibstore_run_info info;
	ibstore_run_info_get(run, &info);
	uint64_t end = stop ? stop : info.batches;
	uint64_t *ids = malloc(N * sizeof *ids);
	float *losses = malloc(N * sizeof *losses);
	size_t n = 0;
	elastic_train(run, e, info.cursor, end, ids, losses, &n);
	if (!stop) {
		char msg[512];
		if (ibstore_run_exchange_mpi(run, ids, losses, n, MPI_COMM_WORLD, msg, sizeof msg))
			bail("exchange: %s", msg);
		if (ibstore_run_epoch_end(run, NULL))
			bail("epoch_end: %s", ibstore_run_errmsg(run));
	}
	free(ids);
	free(losses);
}

static int elastic(const char *jobdir, int phase)
{
	char base[512];
	snprintf(base, sizeof base, "%s/job.run", jobdir);
	ibstore_run_opts o = elastic_opts();
	ibstore_run *run = NULL;
	if (ibstore_run_open_elastic(base, &o, &run))
		bail("open_elastic: %s", ibstore_run_errmsg(run));
	if (phase == 1) {
		elastic_epoch(run, 0, 0, 0);
		elastic_epoch(run, 1, 3, 0); /* stops; batch 3 is not committed */
	} else if (phase == 2) {
		elastic_epoch(run, 1, 0, 2 * BATCH * 2);
		elastic_epoch(run, 2, 5, 0);
	} else {
		elastic_epoch(run, 2, 0, 4 * BATCH * 3);
		for (uint32_t e = 3; e < EPOCHS; e++)
			elastic_epoch(run, e, 0, 0);
		/* the uninterrupted reference, in this one process */
		o.rank = 0;
		o.world = 1;
		char path[256];
		snprintf(path, sizeof path, "%s/reference.run", dir);
		ibstore_run *ref = NULL;
		if (ibstore_run_open(path, &o, &ref))
			bail("reference: %s", ibstore_run_errmsg(ref));
		uint64_t *ids = malloc(N * sizeof *ids);
		float *losses = malloc(N * sizeof *losses);
		for (uint32_t e = 0; e < EPOCHS; e++) {
			ibstore_run_info info;
			size_t n = 0;
			if (ibstore_run_epoch_begin(ref, e, NULL) || ibstore_run_info_get(ref, &info))
				bail("reference: %s", ibstore_run_errmsg(ref));
			elastic_train(ref, e, 0, info.batches, ids, losses, &n);
			if (ibstore_run_epoch_end(ref, NULL))
				bail("reference: %s", ibstore_run_errmsg(ref));
		}
		check(scores_digest(ref) == scores_digest(run), "scores differ",
		      "2 -> 3 -> 1 ranks: the scores equal an uninterrupted run's");
		free(ids);
		free(losses);
		close_run(ref, "reference.run");
	}
	ibstore_run_close(run);
	if (rank == 0) {
		printf("1..%d\n", tap_n);
		fflush(stdout);
	}
	return tap_failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &world);
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	if (!mkdtemp(dir))
		bail("mkdtemp: %s", strerror(errno));

	if (argc == 4 && strcmp(argv[1], "--elastic") == 0) {
		int rc = elastic(argv[2], atoi(argv[3]));
		rmdir(dir);
		MPI_Finalize();
		return rc;
	}
	if (argc >= 3 && strcmp(argv[1], "--die-rank") == 0) {
		int rc = die_rank(atoi(argv[2]), argc == 4 && strcmp(argv[3], "--signal") == 0);
		rmdir(dir);
		MPI_Finalize();
		return rc;
	}

	scenario(0.0, 0);
	scenario(0.5, 1);
	scenario(0.5, 0);
	refusal("a NaN loss", world - 1, 3, NAN, IBSTORE_EINVAL, "not finite");
	refusal("an unknown id", 0, N, 1.0f, IBSTORE_EINVAL, "unknown sample id");
	refusal_not_in_epoch();
	refusal_world_mismatch();

	rmdir(dir);
	if (rank == 0) {
		printf("1..%d\n", tap_n);
		fflush(stdout);
	}
	MPI_Finalize();
	return tap_failed ? 1 : 0;
}
