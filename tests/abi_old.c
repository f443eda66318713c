/*
 * abi_old.c — a caller of libibstore compiled against tests/abi_old.h: the
 * header as it was before the newest field of each versioned struct.
 * test_abi.c runs it against the current library.
 */
#include <stdio.h>
#include <string.h>

#include "abi_old.h"
#include "abi_old_caller.h"

#define POISONED(T)                                                                         \
	struct {                                                                            \
		T o;                                                                        \
		unsigned char poison[ABI_POISON_LEN];                                       \
	}

static int poison_intact(const unsigned char *p)
{
	for (int i = 0; i < ABI_POISON_LEN; i++)
		if (p[i] != ABI_POISON)
			return 0;
	return 1;
}

#define FRESH(w) memset(&(w), ABI_POISON, sizeof(w))

static size_t give(void *buf, const void *w, size_t wsize, const unsigned char *poison,
		   size_t size)
{
	if (!poison_intact(poison))
		return 0;
	memcpy(buf, w, wsize);
	return size;
}

static void writer_opts(ibstore_writer_opts *o)
{
	ibstore_writer_opts_init(o);
	o->shard_size = 1 << 20;
	o->compress = IBSTORE_COMPRESS_LZ4;
	o->lz4hc_level = 5;
	o->alignment = 16;
	o->fsync = 0;
}

static void prune_opts(ibstore_prune_opts *o)
{
	ibstore_prune_opts_init(o);
	o->policy = IBSTORE_POLICY_RANDOM;
	o->mode = IBSTORE_MODE_COMPAT;
	o->ratio = 0.3;
	o->delta = 0.5;
	o->epochs = 4;
	o->seed = 7;
}

static void run_opts(ibstore_run_opts *o, uint64_t samples)
{
	ibstore_run_opts_init(o);
	o->prune.ratio = 0.3;
	o->prune.epochs = 4;
	o->prune.seed = 7;
	o->samples = samples;
	o->batch_size = 16;
	o->drop_last = 1;
	o->slice = IBSTORE_SLICE_DROP;
}

static void loader_opts(ibstore_loader_opts *o)
{
	ibstore_loader_opts_init(o);
	o->batch_size = 16;
	o->drop_last = 1;
	o->prefetch = 3;
	o->queue_depth = 8;
	o->threads = 1;
	o->backend = IBSTORE_BACKEND_PREAD;
	o->direct = 0;
	o->order = IBSTORE_ORDER_LOCALITY;
	o->verify = 0;
	o->corrupt = IBSTORE_CORRUPT_SKIP;
	o->gap = 4096;
	o->max_read = 1 << 16;
	o->budget = 64 << 20;
}

size_t old_writer_opts(void *buf)
{
	POISONED(ibstore_writer_opts) w;
	FRESH(w);
	writer_opts(&w.o);
	return give(buf, &w, sizeof w, w.poison, sizeof w.o);
}

size_t old_prune_opts(void *buf)
{
	POISONED(ibstore_prune_opts) w;
	FRESH(w);
	prune_opts(&w.o);
	return give(buf, &w, sizeof w, w.poison, sizeof w.o);
}

size_t old_run_opts(void *buf)
{
	POISONED(ibstore_run_opts) w;
	FRESH(w);
	run_opts(&w.o, 100);
	return give(buf, &w, sizeof w, w.poison, sizeof w.o);
}

size_t old_loader_opts(void *buf)
{
	POISONED(ibstore_loader_opts) w;
	FRESH(w);
	loader_opts(&w.o);
	return give(buf, &w, sizeof w, w.poison, sizeof w.o);
}

int old_pack(const char *path, uint32_t n, char *err)
{
	POISONED(ibstore_writer_opts) w;
	FRESH(w);
	writer_opts(&w.o);
	ibstore_writer *wr;
	int rc = ibstore_writer_create(path, &w.o, &wr);
	for (uint32_t i = 0; !rc && i < n; i++) {
		unsigned char sample[24];
		memset(sample, (int)i, sizeof sample);
		rc = ibstore_writer_add(wr, sample, 8 + i % 17, (int32_t)(i % 3), NULL, NULL);
	}
	if (!rc)
		rc = ibstore_writer_publish(wr);
	snprintf(err, 256, "%s", wr ? ibstore_writer_errmsg(wr) : "no writer");
	ibstore_writer_free(wr);
	return rc;
}

int old_info(const char *path, uint64_t *samples, uint32_t *labels, uint64_t *max_size,
	     uint32_t *size, char *err)
{
	ibstore_dataset *ds;
	int rc = ibstore_dataset_open(path, &ds);
	POISONED(ibstore_info) w;
	FRESH(w);
	if (!rc)
		rc = ibstore_dataset_info_get(ds, &w.o);
	snprintf(err, 256, "%s", ds ? ibstore_dataset_errmsg(ds) : "no dataset");
	ibstore_dataset_close(ds);
	if (rc)
		return rc;
	*samples = w.o.samples;
	*labels = w.o.labels;
	*max_size = w.o.max_size;
	*size = w.o.size;
	return poison_intact(w.poison) ? 0 : -100;
}

int old_run_create(const char *path, uint64_t samples, char *err)
{
	POISONED(ibstore_run_opts) w;
	FRESH(w);
	run_opts(&w.o, samples);
	ibstore_run *run;
	int rc = ibstore_run_open(path, &w.o, &run);
	snprintf(err, 256, "%s", run ? ibstore_run_errmsg(run) : "no run");
	ibstore_run_close(run);
	return rc;
}

int old_run_config(const char *path, double *ratio, uint32_t *batch_size, uint64_t *samples,
		   char *err)
{
	ibstore_run *run;
	int rc = ibstore_run_open(path, NULL, &run);
	POISONED(ibstore_run_opts) w;
	FRESH(w);
	if (!rc)
		rc = ibstore_run_config_get(run, &w.o);
	snprintf(err, 256, "%s", run ? ibstore_run_errmsg(run) : "no run");
	ibstore_run_close(run);
	if (rc)
		return rc;
	*ratio = w.o.prune.ratio;
	*batch_size = w.o.batch_size;
	*samples = w.o.samples;
	return poison_intact(w.poison) && w.o.size == sizeof w.o &&
			       w.o.prune.size == sizeof w.o.prune
		       ? 0
		       : -100;
}

int old_run_info(const char *path, uint64_t out[6], char *err)
{
	ibstore_run *run;
	int rc = ibstore_run_open(path, NULL, &run);
	if (!rc)
		rc = ibstore_run_epoch_begin(run, 0, NULL);
	if (!rc)
		rc = ibstore_run_advance(run, 2);
	if (!rc)
		rc = ibstore_run_checkpoint(run);
	POISONED(ibstore_run_info) w;
	FRESH(w);
	if (!rc)
		rc = ibstore_run_info_get(run, &w.o);
	snprintf(err, 256, "%s", run ? ibstore_run_errmsg(run) : "no run");
	ibstore_run_close(run);
	if (rc)
		return rc;
	out[0] = w.o.size;
	out[1] = w.o.epoch;
	out[2] = (uint64_t)w.o.in_epoch;
	out[3] = w.o.cursor;
	out[4] = w.o.epochs_done;
	out[5] = w.o.committed;
	return poison_intact(w.poison) && w.o.size == sizeof w.o ? 0 : -100;
}

typedef struct reads {
	uint64_t n, with_ctx;
} reads;

static reads hook_counts; /* the hook has no context pointer in this layout */

static void on_read(void *ctx, uint32_t shard, uint64_t offset, uint64_t length)
{
	(void)shard, (void)offset, (void)length;
	hook_counts.n++;
	hook_counts.with_ctx += ctx != NULL;
}

int old_load_epoch(const char *ds_path, const char *run_path, uint64_t *batches,
		   uint64_t *nreads, uint64_t *reads_with_ctx, uint64_t stats[3], char *err)
{
	ibstore_dataset *ds = NULL;
	ibstore_run *run = NULL;
	ibstore_loader *l = NULL;
	POISONED(ibstore_loader_opts) w;
	FRESH(w);
	loader_opts(&w.o);
	w.o.on_read = on_read;
	hook_counts = (reads){0, 0};
	*batches = 0;
	int rc = ibstore_dataset_open(ds_path, &ds);
	if (!rc)
		rc = ibstore_run_open(run_path, NULL, &run);
	if (!rc)
		rc = ibstore_loader_open(ds, run, &w.o, &l);
	if (!rc)
		rc = ibstore_loader_epoch_begin(l, 0, NULL);
	const ibstore_batch *b;
	while (!rc && !(rc = ibstore_loader_next(l, &b)) && b) {
		ibstore_loader_release(l, b);
		++*batches;
	}
	if (!rc)
		rc = ibstore_loader_epoch_end(l);
	POISONED(ibstore_loader_stats) st;
	FRESH(st);
	if (!rc)
		rc = ibstore_loader_stats_get(l, &st.o);
	if (!rc && (!poison_intact(st.poison) || st.o.size != sizeof st.o))
		rc = -100;
	stats[0] = st.o.size;
	stats[1] = st.o.batches;
	stats[2] = st.o.samples;
	snprintf(err, 256, "%s", l ? ibstore_loader_errmsg(l)
				   : run ? ibstore_run_errmsg(run)
					 : ds ? ibstore_dataset_errmsg(ds) : "no dataset");
	ibstore_loader_close(l);
	ibstore_run_close(run);
	ibstore_dataset_close(ds);
	*nreads = hook_counts.n;
	*reads_with_ctx = hook_counts.with_ctx;
	return rc;
}

int old_plan(uint64_t n, char *err)
{
	POISONED(ibstore_prune_opts) w;
	FRESH(w);
	prune_opts(&w.o);
	w.o.policy = IBSTORE_POLICY_INFOBATCH;
	w.o.mode = IBSTORE_MODE_NATIVE;
	float scores[64];
	for (uint64_t i = 0; i < n && i < 64; i++)
		scores[i] = (float)i;
	ibstore_plan *p;
	int rc = ibstore_prune_opts_check(&w.o, err, 256);
	if (!rc)
		rc = ibstore_plan_compute(&w.o, 0, scores, n < 64 ? n : 64, &p, err, 256);
	if (!rc)
		ibstore_plan_free(p);
	if (!rc && ibstore_prune_epoch_prunes(&w.o, 0) != 1)
		rc = -101;
	return rc;
}
