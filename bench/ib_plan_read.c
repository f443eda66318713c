/*
 * bench/ib_plan_read.c — streams one pruned epoch of an ibstore dataset
 * through the loader, on exactly the plan `ibstore plan` prints.
 *
 * usage: ib_plan_read DATASET SCORES RATIO [--backend B] [--direct] [--cold]
 *                     [--first-epoch] [--no-verify] [--epochs C] [--batch B] [--threads T]
 *                     [--ids-out FILE]
 *
 * A fresh run state (C epochs, default 8; InfoBatch native, seed 0,
 * δ 0.875, batch 256) is created in $TMPDIR.  Epoch 0 is streamed through
 * the loader as in training (no scores yet: the whole dataset), each
 * sample's loss being SCORES[id], so the scores entering epoch 1 are
 * SCORES and epoch 1's plan is the one `ibstore plan --scores SCORES
 * --epoch 1 --epochs C --ratio RATIO` prints; the loader is then warm (its
 * threads started, its memory touched), as in every epoch of a training
 * run but the first.  With --first-epoch epoch 0 is skipped instead (the
 * scores reported with ibstore_run_report, no I/O) and epoch 1 is the
 * loader's first.  Epoch 1 is streamed (checksums verified, as in
 * training) and timed from before epoch_begin to after epoch_end; a
 * constant loss is reported for every batch.  With --cold the shards are
 * evicted (posix_fadvise) and, as root, the page cache dropped just before
 * epoch 1.  --ids-out writes the emitted ids in order, to check against the
 * plan.  --no-verify turns the loader's xxh3 check off (as the baselines,
 * which check nothing).
 * Prints one JSON line: seconds, samples, bytes (decoded), backend, buffers.
 */
#include "suite_common.h"

#include <ibstore.h>

int main(int argc, char **argv)
{
	suite_prog = "ib_plan_read";
	if (argc < 4)
		die("usage: ib_plan_read DATASET SCORES RATIO [--backend B] [--direct] [--cold] "
		    "[--epochs C] [--batch B] [--ids-out FILE]");
	const char *dspath = argv[1], *scores_path = argv[2], *ids_out = NULL;
	double ratio = atof(argv[3]);
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	int cold = 0, first_epoch = 0;
	uint32_t epochs = 8, batch = 256;
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
			if (ibstore_backend_parse(argv[++i], &lo.backend))
				die("bad backend %s", argv[i]);
		} else if (!strcmp(argv[i], "--direct")) {
			lo.direct = 1;
		} else if (!strcmp(argv[i], "--no-verify")) {
			lo.verify = 0;
		} else if (!strcmp(argv[i], "--first-epoch")) {
			first_epoch = 1;
		} else if (!strcmp(argv[i], "--cold")) {
			cold = 1;
		} else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) {
			epochs = (uint32_t)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			lo.threads = (uint32_t)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
			batch = (uint32_t)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--ids-out") && i + 1 < argc) {
			ids_out = argv[++i];
		} else {
			die("unknown argument %s", argv[i]);
		}
	}

	ibstore_dataset *ds;
	if (ibstore_dataset_open(dspath, &ds))
		die("%s", ibstore_dataset_errmsg(ds));
	ibstore_info info;
	ibstore_dataset_info_get(ds, &info);

	FILE *sf = fopen(scores_path, "rb");
	if (!sf)
		die("%s: %s", scores_path, strerror(errno));
	float *scores = malloc(info.samples * sizeof *scores);
	uint64_t *all = malloc(info.samples * sizeof *all);
	if (fread(scores, sizeof *scores, info.samples, sf) != info.samples)
		die("%s: fewer than %" PRIu64 " scores", scores_path, info.samples);
	fclose(sf);
	for (uint64_t i = 0; i < info.samples; i++)
		all[i] = i;

	const char *tmpdir = getenv("TMPDIR");
	char statebuf[4096];
	snprintf(statebuf, sizeof statebuf, "%s/ib_plan_read.XXXXXX", tmpdir ? tmpdir : "/tmp");
	int sfd = mkstemp(statebuf);
	if (sfd < 0)
		die("mkstemp: %s", strerror(errno));
	close(sfd);

	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = info.samples;
	ro.prune.epochs = epochs;
	ro.prune.ratio = ratio;
	ro.batch_size = batch;
	ro.checkpoint_every = 0;
	ibstore_run *run;
	if (ibstore_run_open(statebuf, &ro, &run))
		die("run: %s", ibstore_run_errmsg(run));
	unlink(statebuf);

	ibstore_loader *l;
	ibstore_epoch_info ei;
	lo.batch_size = batch;
	float *losses = malloc(batch * sizeof *losses);
	double first = 0;
	if (first_epoch) {
		/* Epoch 0 without I/O: the scores become the losses. */
		if (ibstore_run_epoch_begin(run, 0, &ei))
			die("epoch 0: %s", ibstore_run_errmsg(run));
		if (ibstore_run_report(run, all, scores, info.samples))
			die("report: %s", ibstore_run_errmsg(run));
		if (ibstore_run_advance(run, ei.batches))
			die("advance: %s", ibstore_run_errmsg(run));
		if (ibstore_run_epoch_end(run, NULL))
			die("epoch 0 end: %s", ibstore_run_errmsg(run));
		if (ibstore_loader_open(ds, run, &lo, &l))
			die("loader: %s", ibstore_loader_errmsg(l));
	} else {
		/* Epoch 0 streamed through the loader (the full dataset: no
		 * scores yet), each sample's loss being its score. */
		if (ibstore_loader_open(ds, run, &lo, &l))
			die("loader: %s", ibstore_loader_errmsg(l));
		double t0 = now();
		if (ibstore_loader_epoch_begin(l, 0, &ei))
			die("epoch 0: %s", ibstore_loader_errmsg(l));
		const ibstore_batch *b;
		int rc;
		while ((rc = ibstore_loader_next(l, &b)) == 0 && b) {
			for (size_t i = 0; i < b->n; i++)
				losses[i] = scores[b->ids[i]];
			if (ibstore_loader_report(l, b, losses))
				die("report: %s", ibstore_loader_errmsg(l));
			ibstore_loader_release(l, b);
		}
		if (rc)
			die("next: %s", ibstore_loader_errmsg(l));
		if (ibstore_loader_epoch_end(l))
			die("epoch 0 end: %s", ibstore_loader_errmsg(l));
		first = now() - t0;
	}
	for (uint32_t i = 0; i < batch; i++)
		losses[i] = 1.0f;
	uint64_t *emitted = ids_out ? malloc(info.samples * sizeof *emitted) : NULL;

	if (cold) {
		ibstore_dataset_evict(ds);
		drop_caches();
	}
	double t0 = now();
	if (ibstore_loader_epoch_begin(l, 1, &ei))
		die("epoch 1: %s", ibstore_loader_errmsg(l));
	uint64_t samples = 0, bytes = 0, sink = 0;
	const ibstore_batch *b;
	int rc;
	while ((rc = ibstore_loader_next(l, &b)) == 0 && b) {
		for (size_t i = 0; i < b->n; i++) {
			if (ibstore_is_padding(b->weights[i]))
				continue;
			if (emitted)
				emitted[samples] = b->ids[i];
			samples++;
		}
		bytes += b->data_size;
		sink += b->data_size ? b->data[b->data_size - 1] : 0;
		if (ibstore_loader_report(l, b, losses))
			die("report: %s", ibstore_loader_errmsg(l));
		ibstore_loader_release(l, b);
	}
	if (rc)
		die("next: %s", ibstore_loader_errmsg(l));
	ibstore_loader_stats st;
	ibstore_loader_stats_get(l, &st);
	if (ibstore_loader_epoch_end(l))
		die("epoch end: %s", ibstore_loader_errmsg(l));
	double t = now() - t0;

	char extra[512];
	snprintf(extra, sizeof extra,
		 "\"backend\": \"%s\", \"buffers\": \"%s\", \"direct\": %d, \"kept\": %" PRIu64
		 ", \"pruned\": %" PRIu64 ", \"bytes_read\": %" PRIu64 ", \"read_around\": %" PRIu64
		 ", \"requests\": %" PRIu64 ", \"sink\": %" PRIu64 ", \"epoch0_seconds\": %.6f",
		 st.backend, st.buffers, st.direct, st.kept, st.pruned, st.bytes_read,
		 st.read_around, st.requests, sink & 1, first);
	report("ibstore", t, samples, bytes, extra);
	if (emitted) {
		FILE *f = fopen(ids_out, "w");
		if (!f)
			die("%s: %s", ids_out, strerror(errno));
		for (uint64_t i = 0; i < samples; i++)
			fprintf(f, "%" PRIu64 "\n", emitted[i]);
		fclose(f);
	}
	ibstore_loader_close(l);
	ibstore_run_close(run);
	ibstore_dataset_close(ds);
	return 0;
}
