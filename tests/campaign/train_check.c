/*
 * train_check.c — the crash campaign's training run (tests/campaign/crash):
 * streams EPOCHS InfoBatch epochs of DATASET through the loader with a
 * deterministic synthetic loss (ibstore bench's), keeping its run state in
 * RUNSTATE (created, or resumed where the last commit left it), and prints
 * one line per batch, flushed at once so a kill -9 loses none:
 *
 *   b EPOCH BATCH DIGEST COMMITTED
 *
 * DIGEST is xxh3 of the batch's ids, weights, sizes and bytes; COMMITTED is
 * the number of the epoch's batches the run state holds after the batch's
 * losses were reported (run_info.committed).  "end EPOCH KEPT PRUNED" ends
 * each epoch.  The campaign compares these lines with an uninterrupted run.
 *
 * usage: train_check DATASET RUNSTATE EPOCHS CHECKPOINT_EVERY
 * Exit status 0 when the run is complete, 1 on any error (message on stderr).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "ibstore.h"

static float synthetic_loss(uint64_t id, uint32_t epoch)
{
	double u = (double)(uint32_t)(id * 2654435761u) / 4294967296.0;
	return (float)((0.2 + 2.0 * u) * exp(-0.3 * (double)epoch * (0.5 + u)));
}

static int die(const char *what, const char *msg)
{
	fprintf(stderr, "train_check: %s: %s\n", what, msg);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: train_check DATASET RUNSTATE EPOCHS CHECKPOINT_EVERY\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ibstore_dataset *ds;
	if (ibstore_dataset_open(argv[1], &ds))
		return die(argv[1], ibstore_dataset_errmsg(ds));
	ibstore_info info;
	ibstore_dataset_info_get(ds, &info);
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = info.samples;
	ro.prune.epochs = (uint32_t)atoi(argv[3]);
	ro.prune.seed = 11;
	ro.batch_size = 128;
	ro.checkpoint_every = (uint32_t)atoi(argv[4]);
	ibstore_run *run;
	if (ibstore_run_open(argv[2], &ro, &run))
		return die(argv[2], ibstore_run_errmsg(run));
	ibstore_loader *l;
	if (ibstore_loader_open(ds, run, NULL, &l))
		return die("loader", ibstore_loader_errmsg(l));
	ibstore_run_info ri;
	ibstore_run_info_get(run, &ri);
	uint32_t e0 = ri.in_epoch ? ri.epoch : ri.epochs_done ? ri.epoch + 1 : 0;
	float loss[128];
	for (uint32_t e = e0; e < ro.prune.epochs; e++) {
		ibstore_epoch_info ei;
		if (ibstore_loader_epoch_begin(l, e, &ei))
			return die("epoch_begin", ibstore_loader_errmsg(l));
		const ibstore_batch *b;
		for (;;) {
			if (ibstore_loader_next(l, &b))
				return die("next", ibstore_loader_errmsg(l));
			if (!b)
				break;
			uint64_t d = XXH3_64bits_withSeed(b->ids, b->n * 8, 0);
			d = XXH3_64bits_withSeed(b->weights, b->n * 4, d);
			d = XXH3_64bits_withSeed(b->sizes, b->n * 4, d);
			d = XXH3_64bits_withSeed(b->data, b->data_size, d);
			for (size_t i = 0; i < b->n; i++)
				loss[i] = synthetic_loss(b->ids[i], e);
			if (ibstore_loader_report(l, b, loss))
				return die("report", ibstore_loader_errmsg(l));
			ibstore_run_info_get(run, &ri);
			printf("b %" PRIu32 " %" PRIu64 " %016" PRIx64 " %" PRIu64 "\n", e, b->index, d,
			       ri.committed);
			ibstore_loader_release(l, b);
		}
		if (ibstore_loader_epoch_end(l))
			return die("epoch_end", ibstore_loader_errmsg(l));
		printf("end %" PRIu32 " %" PRIu64 " %" PRIu64 "\n", e, ei.plan.kept, ei.plan.pruned);
	}
	ibstore_loader_close(l);
	ibstore_run_close(run);
	ibstore_dataset_close(ds);
	return 0;
}
