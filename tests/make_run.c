/*
 * make_run.c — writes a run state for test_scores.py the way a training
 * loop would: `done` full epochs (losses reported for every batch except
 * samples whose id is a multiple of 7, which stay never seen), each ended
 * with made-up I/O figures, then `partial` batches of the next epoch
 * committed and left in progress.  Prints each finished epoch's
 * statistics as "epoch kept pruned below_mean weight_sum" lines.
 *
 * usage: make_run PATH SAMPLES EPOCHS native|compat DONE PARTIAL
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

int main(int argc, char **argv)
{
	ibstore_run_opts o;
	ibstore_run *run = NULL;
	ibstore_epoch_info info;

	if (argc != 7) {
		fprintf(stderr, "usage: make_run PATH SAMPLES EPOCHS native|compat DONE PARTIAL\n");
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

	if (ibstore_run_open(argv[1], &o, &run))
		return die(run, "open");
	for (uint32_t e = 0; e < done; e++) {
		if (ibstore_run_epoch_begin(run, e, &info))
			return die(run, "epoch_begin");
		if (train(run, e, 0, info.batches))
			return die(run, "train");
		ibstore_epoch_io io = {info.plan.kept * 1000, info.plan.pruned * 1000, 0.25 + e};
		if (ibstore_run_epoch_end(run, &io))
			return die(run, "epoch_end");
		printf("%" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %.17g\n", e, info.plan.kept,
		       info.plan.pruned, info.plan.below_mean, info.plan.weight_sum);
	}
	if (partial > 0) {
		if (ibstore_run_epoch_begin(run, done, &info))
			return die(run, "epoch_begin");
		if (train(run, done, 0, partial) || ibstore_run_checkpoint(run))
			return die(run, "train");
	}
	ibstore_run_close(run);
	return 0;
}
