/*
 * load_check.c — the corruption campaign's reader (tests/campaign/corrupt):
 * opens a possibly corrupted dataset, reads every sample by random access,
 * then streams one full epoch through the loader under the fail or the skip
 * policy, and checks every byte it is given against the pristine copy.
 *
 * usage: load_check DATASET PRISTINE fail|skip pread|uring RUNSTATE
 *
 * Prints one line "emitted E skipped S readerr R: message" and exits with
 *   0  nothing wrong was noticed (every sample emitted, all bytes right)
 *   3  the dataset refused to open, with a message
 *   5  the fail policy stopped the epoch with an error naming the sample
 *   6  the skip policy left out S samples, counted, the rest right
 *   7  random-access reads failed (R of them) but the loader saw nothing
 *      wrong (a corrupt record of a sample the epoch did not emit cannot
 *      happen with policy none: every sample is emitted)
 *   4  WRONG BYTES: a read or an emitted sample differs from the pristine
 *      copy, or the counts do not add up — the failure the campaign hunts
 *   2  usage, or the pristine copy or the run state could not be opened
 * A crash is a signal, a hang the campaign's timeout.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ibstore.h"

static int wrong(const char *what, uint64_t id)
{
	printf("WRONG BYTES: %s, sample %" PRIu64 "\n", what, id);
	return 4;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: load_check DATASET PRISTINE fail|skip pread|uring RUNSTATE\n");
		return 2;
	}
	int skip = strcmp(argv[3], "skip") == 0;
	ibstore_dataset *ds, *ref;
	if (ibstore_dataset_open(argv[2], &ref)) {
		fprintf(stderr, "pristine: %s\n", ibstore_dataset_errmsg(ref));
		return 2;
	}
	int rc = ibstore_dataset_open(argv[1], &ds);
	if (rc) {
		const char *m = ibstore_dataset_errmsg(ds);
		int status = m[0] ? 3 : 4; /* a refusal must say why */
		printf("emitted 0 skipped 0 readerr 0: open refused: %s\n", m);
		ibstore_dataset_close(ds);
		ibstore_dataset_close(ref);
		return status;
	}
	ibstore_info info, rinfo;
	ibstore_dataset_info_get(ds, &info);
	ibstore_dataset_info_get(ref, &rinfo);
	if (info.samples != rinfo.samples)
		return wrong("sample count differs", info.samples);
	size_t cap = rinfo.max_size + 1;
	uint8_t *a = malloc(cap), *b = malloc(cap);
	uint8_t *ok = calloc(info.samples, 1);
	uint64_t readerr = 0;
	for (uint64_t id = 0; id < info.samples; id++) {
		size_t na, nb;
		int32_t la, lb;
		if (ibstore_dataset_read(ds, id, a, cap, &na, &la)) {
			readerr++;
			continue;
		}
		if (ibstore_dataset_read(ref, id, b, cap, &nb, &lb))
			return 2;
		if (na != nb || la != lb || memcmp(a, b, na))
			return wrong("random-access read", id);
		ok[id] = 1;
	}

	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = info.samples;
	ro.prune.epochs = 1;
	ro.prune.policy = IBSTORE_POLICY_NONE;
	ro.batch_size = 256;
	unlink(argv[5]);
	ibstore_run *run;
	if (ibstore_run_open(argv[5], &ro, &run)) {
		fprintf(stderr, "run: %s\n", ibstore_run_errmsg(run));
		return 2;
	}
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.backend = strcmp(argv[4], "uring") == 0 ? IBSTORE_BACKEND_URING : IBSTORE_BACKEND_PREAD;
	lo.corrupt = skip ? IBSTORE_CORRUPT_SKIP : IBSTORE_CORRUPT_FAIL;
	lo.threads = 1;
	lo.budget = 16 << 20;
	ibstore_loader *l;
	if ((rc = ibstore_loader_open(ds, run, &lo, &l))) {
		fprintf(stderr, "loader: %s\n", ibstore_loader_errmsg(l));
		return 2;
	}
	uint64_t emitted = 0, skipped = 0, skipped_ok = 0;
	int status = 0;
	const char *msg = "";
	if ((rc = ibstore_loader_epoch_begin(l, 0, NULL))) {
		msg = ibstore_loader_errmsg(l);
		status = 5;
		goto done;
	}
	for (;;) {
		const ibstore_batch *bt;
		if ((rc = ibstore_loader_next(l, &bt))) {
			msg = ibstore_loader_errmsg(l);
			status = skip || !msg[0] ? 4 : 5; /* skip never fails; fail names it */
			break;
		}
		if (!bt)
			break;
		for (size_t i = 0; i < bt->n; i++) {
			size_t nb;
			int32_t lb;
			uint64_t id = bt->ids[i];
			if (ibstore_dataset_read(ref, id, b, cap, &nb, &lb))
				return 2;
			if (bt->sizes[i] != nb || bt->labels[i] != lb ||
			    memcmp(bt->data + bt->offsets[i], b, nb))
				return wrong("loader", id);
		}
		emitted += bt->n;
		skipped += bt->n_skipped;
		for (size_t i = 0; i < bt->n_skipped; i++)
			skipped_ok += ok[bt->skipped_ids[i]];
		ibstore_loader_release(l, bt);
	}
	if (status == 0) {
		ibstore_loader_stats st;
		ibstore_loader_stats_get(l, &st);
		if (emitted + skipped != info.samples || st.corrupt_skipped != skipped)
			return wrong("counts do not add up", emitted + skipped);
		if (ibstore_loader_epoch_end(l))
			status = 4;
		else if (skipped)
			status = 6;
		else if (readerr)
			status = 7;
	}
done:
	printf("emitted %" PRIu64 " skipped %" PRIu64 " readerr %" PRIu64 " skipped_readable %" PRIu64
	       ": %s\n", emitted, skipped, readerr, skipped_ok, msg);
	ibstore_loader_close(l);
	ibstore_run_close(run);
	ibstore_dataset_close(ds);
	ibstore_dataset_close(ref);
	free(a);
	free(b);
	free(ok);
	return status;
}
