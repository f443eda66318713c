/*
 * limits.c — the dataset limits of issue 9 item 7, as a program the
 * `limits` script drives: a dataset of more than 2^24 (16.7 million) tiny
 * samples is written, opened, read at its ends, planned in native and
 * compat mode and run through a run state; a shard of more than 2^32 bytes
 * (given on the command line) is opened and read at its far end.
 *
 * usage: limits many DIR N    write N one-byte samples to DIR/ds and check them
 *        limits big DIR       write DIR/big: one shard of 41 samples of 105 MiB
 *                             (4.3 GB), then open it, read its last sample
 *                             (beyond byte 2^32) and verify every record
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ibstore.h"

static int failures;

#define CHECK(cond, ...)                                                                  \
	do {                                                                              \
		if (cond) {                                                               \
			printf("ok - ");                                                  \
		} else {                                                                  \
			printf("not ok - ");                                              \
			failures++;                                                       \
		}                                                                         \
		printf(__VA_ARGS__);                                                      \
		printf("\n");                                                             \
		fflush(stdout);                                                           \
	} while (0)

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint8_t byte_of(uint64_t id)
{
	return (uint8_t)(id * 2654435761u >> 24);
}

static int many(const char *dir, uint64_t n)
{
	char path[4096], run[4096];
	snprintf(path, sizeof path, "%s/ds", dir);
	snprintf(run, sizeof run, "%s/run.state", dir);
	ibstore_writer_opts o;
	ibstore_writer_opts_init(&o);
	o.alignment = 1;
	o.fsync = 0;
	ibstore_writer *w;
	double t = now();
	int rc = ibstore_writer_create(path, &o, &w);
	for (uint64_t i = 0; !rc && i < n; i++) {
		uint8_t b = byte_of(i);
		rc = ibstore_writer_add(w, &b, 1, (int32_t)(i % 1000), NULL, NULL);
	}
	if (!rc)
		rc = ibstore_writer_publish(w);
	CHECK(rc == 0, "write %" PRIu64 " one-byte samples (%.1f s)%s%s", n, now() - t,
	      rc ? ": " : "", rc ? ibstore_writer_errmsg(w) : "");
	ibstore_writer_free(w);
	if (rc)
		return 1;

	ibstore_dataset *ds;
	t = now();
	rc = ibstore_dataset_open(path, &ds);
	CHECK(rc == 0, "open it (%.1f s)%s%s", now() - t, rc ? ": " : "",
	      ibstore_dataset_errmsg(ds));
	if (rc)
		return 1;
	ibstore_info in;
	ibstore_dataset_info_get(ds, &in);
	CHECK(in.samples == n && in.labels == 1000 && in.fixed_size == 1,
	      "info: %" PRIu64 " samples, %" PRIu32 " labels, fixed size %" PRIu64, in.samples,
	      in.labels, in.fixed_size);
	const uint64_t probe[] = {0, 1, (1u << 24) - 1, 1u << 24, (1u << 24) + 1, n - 2, n - 1};
	int good = 1;
	for (size_t k = 0; k < sizeof probe / sizeof probe[0]; k++) {
		uint8_t b = 0;
		size_t len = 0;
		int32_t label = -1;
		if (probe[k] >= n)
			continue;
		rc = ibstore_dataset_read(ds, probe[k], &b, 1, &len, &label);
		good &= rc == 0 && len == 1 && b == byte_of(probe[k]) &&
			label == (int32_t)(probe[k] % 1000);
	}
	CHECK(good, "samples at 0, 2^24 - 1, 2^24, 2^24 + 1 and the end read back");
	ibstore_location loc;
	CHECK(ibstore_dataset_locate(ds, n, &loc) == IBSTORE_ENOTFOUND, "id N is not found");

	/* plans over all of them, native and compat */
	float *s = malloc(n * sizeof *s);
	for (uint64_t i = 0; i < n; i++)
		s[i] = (float)((i * 7919) % 1000);
	for (int mode = 0; mode < 2; mode++) {
		ibstore_prune_opts po;
		ibstore_prune_opts_init(&po);
		po.epochs = 10;
		po.mode = (ibstore_mode)mode;
		ibstore_plan *p;
		char msg[256];
		t = now();
		rc = ibstore_plan_compute(&po, 1, s, n, &p, msg, sizeof msg);
		double dt = now() - t;
		if (rc) {
			CHECK(0, "plan (%s): %s", mode ? "compat" : "native", msg);
			continue;
		}
		uint64_t below = 0;
		for (uint64_t i = 0; i < n; i++)
			below += s[i] < 499.5f;
		uint64_t want = n - (below - (uint64_t)(0.5 * (double)below));
		uint8_t *seen = calloc((n + 7) / 8, 1);
		int perm = p->len == want;
		for (uint64_t i = 0; perm && i < p->len; i++) {
			uint64_t id = p->ids[i];
			perm = id < n && !((seen[id >> 3] >> (id & 7)) & 1);
			seen[id >> 3] |= (uint8_t)(1u << (id & 7));
		}
		CHECK(perm && p->stats.below_mean == below,
		      "plan (%s, %.2f s): %" PRIu64 " kept of %" PRIu64 ", each id at most once",
		      mode ? "compat" : "native", dt, p->len, n);
		free(seen);
		ibstore_plan_free(p);
	}
	free(s);

	/* a run state of that size: begin, report one batch, commit, reopen */
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = n;
	ro.prune.epochs = 4;
	ro.batch_size = 4096;
	ibstore_run *r;
	t = now();
	rc = ibstore_run_open(run, &ro, &r);
	ibstore_epoch_info ei;
	if (!rc)
		rc = ibstore_run_epoch_begin(r, 0, &ei);
	const uint64_t *ids;
	const float *wts;
	size_t bn;
	if (!rc)
		rc = ibstore_run_batch(r, ei.batches - 1, &ids, &wts, &bn);
	float *loss = malloc(4096 * sizeof *loss);
	for (size_t i = 0; i < 4096; i++)
		loss[i] = 1.0f;
	if (!rc)
		rc = ibstore_run_report(r, ids, loss, bn);
	if (!rc)
		rc = ibstore_run_checkpoint(r);
	CHECK(rc == 0 && ei.samples == n && ei.batches == (n + 4095) / 4096,
	      "run state: epoch of %" PRIu64 " samples in %" PRIu64 " batches, last batch "
	      "reported and committed (%.1f s)%s%s", ei.samples, ei.batches, now() - t,
	      rc ? ": " : "", rc ? ibstore_run_errmsg(r) : "");
	ibstore_run_close(r);
	rc = ibstore_run_open(run, NULL, &r);
	uint64_t cnt = 0;
	const float *sc = rc ? NULL : ibstore_run_scores(r, &cnt);
	uint64_t seen_scores = 0;
	for (uint64_t i = 0; sc && i < cnt; i++)
		seen_scores += !isnan(sc[i]);
	CHECK(rc == 0 && cnt == n && seen_scores == bn, "reopened: %" PRIu64 " scores, %" PRIu64
	      " of them seen", cnt, seen_scores);
	ibstore_run_close(r);
	free(loss);
	ibstore_dataset_close(ds);
	return failures != 0;
}

static int big(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/big", dir);
	ibstore_writer_opts o;
	ibstore_writer_opts_init(&o);
	o.shard_size = (uint64_t)8 << 30;
	o.alignment = 4096;
	o.fsync = 0;
	size_t each = (size_t)105 << 20;
	uint8_t *sample = malloc(each);
	ibstore_writer *w;
	double t = now();
	int rc = sample ? ibstore_writer_create(path, &o, &w) : IBSTORE_ENOMEM;
	for (uint64_t i = 0; !rc && i < 41; i++) {
		memset(sample, (int)(i + 1), each);
		sample[each - 1] = (uint8_t)i;
		rc = ibstore_writer_add(w, sample, each, (int32_t)i, NULL, NULL);
	}
	if (!rc)
		rc = ibstore_writer_publish(w);
	CHECK(rc == 0, "write 41 samples of 105 MiB into one shard (%.1f s)", now() - t);
	ibstore_writer_free(w);
	free(sample);
	if (rc)
		return 1;
	ibstore_dataset *ds;
	rc = ibstore_dataset_open(path, &ds);
	CHECK(rc == 0, "open %s%s%s", path, rc ? ": " : "", ibstore_dataset_errmsg(ds));
	if (rc)
		return 1;
	ibstore_info in;
	ibstore_dataset_info_get(ds, &in);
	ibstore_location loc;
	ibstore_dataset_locate(ds, in.samples - 1, &loc);
	CHECK(loc.offset > UINT32_MAX, "its last record lies at byte %" PRIu64 " of shard %" PRIu32
	      " (beyond 2^32)", loc.offset, loc.shard);
	uint8_t *buf = malloc(in.max_size ? in.max_size : 1);
	size_t len = 0;
	rc = ibstore_dataset_read(ds, in.samples - 1, buf, in.max_size, &len, NULL);
	CHECK(rc == 0 && len == loc.size && buf[0] == 41 && buf[len - 1] == 40,
	      "the last sample reads back, checksum verified");
	free(buf);
	ibstore_verify_stats vs;
	t = now();
	rc = ibstore_dataset_verify(ds, NULL, NULL, &vs);
	CHECK(rc == 0 && vs.records_checked == 41 && vs.bytes_read > UINT32_MAX,
	      "verify reads %" PRIu64 " bytes, all sound (%.1f s)", vs.bytes_read, now() - t);
	ibstore_dataset_close(ds);
	return failures != 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "many") == 0)
		return many(argv[2], strtoull(argv[3], NULL, 10));
	if (argc == 3 && strcmp(argv[1], "big") == 0)
		return big(argv[2]);
	fprintf(stderr, "usage: limits many DIR N | limits big DIR\n");
	return 2;
}
