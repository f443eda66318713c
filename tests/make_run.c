/*
 * make_run.c — writes a run state for test_scores.py the way a training
 * loop would: `done` full epochs (losses reported for every batch except
 * samples whose id is a multiple of 7, which stay never seen), each ended
 * with made-up I/O figures, then `partial` batches of the next epoch
 * committed and left in progress.  Prints each finished epoch's
 * statistics as "epoch kept pruned below_mean weight_sum" lines.
 *
 * With WORLD, PATH is the base of a data-parallel job of WORLD ranks
 * (ibstore_run_open_elastic), all trained here: after each epoch every rank
 * records the other ranks' losses (the exchange), and each rank commits
 * PARTIAL batches of its slice.
 *
 * usage: make_run PATH SAMPLES EPOCHS native|compat DONE PARTIAL [WORLD]
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ibstore.h"

static int die(ibstore_run *run, const char *what)
{
	fprintf(stderr, "make_run: %s: %s\n", what, ibstore_run_errmsg(run));
	ibstore_run_close(run);
	return 1;
}

/* A deterministic, loss-like value of (id, epoch). */
static float loss_of(uint64_t id, uint32_t epoch)
{
	uint64_t h =
		(id + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)(epoch + 1) * 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	return (float)(0.05 + 4.0 * (double)(h % 10007) / 10007.0 * (double)(h % 7 + 1) / 7.0);
}

/* Reports the losses of batches [from, to) of the current epoch. */
static int train(ibstore_run *run, uint32_t epoch, uint64_t from, uint64_t to)
{
	for (uint64_t b = from; b < to; b++) {
		const uint64_t *ids;
		const float *w;
		size_t n, m = 0;
		uint64_t rid[4096];
		float loss[4096];

		if (ibstore_run_batch(run, b, &ids, &w, &n) || n > 4096)
			return -1;
		for (size_t i = 0; i < n; i++) {
			if (ids[i] % 7 == 0 || ibstore_is_padding(w[i]))
				continue;
			rid[m] = ids[i];
			loss[m++] = loss_of(ids[i], epoch);
		}
		if (ibstore_run_report(run, rid, loss, m) || ibstore_run_advance(run, 1))
			return -1;
	}
	return 0;
}

/* The exchange: every rank records the losses of the others' slices. */
static int exchange(ibstore_run **runs, uint32_t world, uint32_t epoch)
{
	for (uint32_t s = 0; s < world; s++) {
		const uint64_t *ids;
		const float *w;
		uint64_t len;
		if (ibstore_run_slice(runs[s], &ids, &w, &len))
			return -1;
		for (uint64_t i = 0; i < len; i++) {
			if (ids[i] % 7 == 0 || ibstore_is_padding(w[i]))
				continue;
			float l = loss_of(ids[i], epoch);
			for (uint32_t r = 0; r < world; r++)
				if (r != s && ibstore_run_report(runs[r], &ids[i], &l, 1))
					return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	ibstore_run_opts o;
	ibstore_run *runs[16] = {NULL};
	ibstore_epoch_info info;

	if (argc != 7 && argc != 8) {
		fprintf(stderr,
			"usage: make_run PATH SAMPLES EPOCHS native|compat DONE PARTIAL [WORLD]\n");
		return 2;
	}
	ibstore_run_opts_init(&o);
	o.samples = strtoull(argv[2], NULL, 10);
	o.prune.epochs = (uint32_t)strtoul(argv[3], NULL, 10);
	if (ibstore_mode_parse(argv[4], &o.prune.mode))
		return 2;
	o.batch_size = 16;
	o.checkpoint_every = 4;
	uint32_t done = (uint32_t)strtoul(argv[5], NULL, 10);
	uint64_t partial = strtoull(argv[6], NULL, 10);
	uint32_t world = argc == 8 ? (uint32_t)strtoul(argv[7], NULL, 10) : 0;
	if (world > 16)
		return 2;

	for (uint32_t r = 0; r < (world ? world : 1); r++) {
		o.rank = r;
		o.world = world ? world : 1;
		int rc = world ? ibstore_run_open_elastic(argv[1], &o, &runs[r])
			       : ibstore_run_open(argv[1], &o, &runs[r]);
		if (rc)
			return die(runs[r], "open");
	}
	if (!world)
		world = 1;
	ibstore_run *run = runs[0];
	for (uint32_t e = 0; e < done; e++) {
		for (uint32_t r = 0; r < world; r++) {
			if (ibstore_run_epoch_begin(runs[r], e, &info))
				return die(runs[r], "epoch_begin");
			if (train(runs[r], e, 0, info.batches))
				return die(runs[r], "train");
		}
		if (world > 1 && exchange(runs, world, e))
			return die(run, "exchange");
		for (uint32_t r = 0; r < world; r++) {
			ibstore_run_epoch_begin(runs[r], e, &info); /* the epoch's info again */
			ibstore_epoch_io io = {info.plan.kept * 1000, info.plan.pruned * 1000, 0.25 + e};
			if (ibstore_run_epoch_end(runs[r], &io))
				return die(runs[r], "epoch_end");
		}
		printf("%" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %.17g\n", e, info.plan.kept,
		       info.plan.pruned, info.plan.below_mean, info.plan.weight_sum);
	}
	for (uint32_t r = 0; partial > 0 && r < world; r++) {
		if (ibstore_run_epoch_begin(runs[r], done, &info))
			return die(runs[r], "epoch_begin");
		if (train(runs[r], done, 0, partial) || ibstore_run_checkpoint(runs[r]))
			return die(runs[r], "train");
	}
	for (uint32_t r = 0; r < world; r++)
		ibstore_run_close(runs[r]);
	return 0;
}
