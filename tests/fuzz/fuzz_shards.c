/*
 * fuzz_shards.c — a whole small dataset whose shard bytes come from the
 * fuzz input, opened, read sample by sample, verified, and streamed through
 * the loader (pread backend) under the fail or the skip policy.
 *
 * The catalog and MANIFEST are a golden dataset's (format/golden), intact,
 * so everything past open's catalog checks is reached; the input replaces
 * the shard files: byte 0 picks the golden dataset, byte 1 holds flags
 * (corrupt policy, verify, lz4 decode threads), and the rest is cut into
 * shard files at the golden shards' sizes (the last one takes the rest;
 * a short input truncates).  Every sample returned by a read or emitted by
 * the loader must equal the golden one byte for byte: a wrong byte aborts.
 * Seeds: the golden shards themselves (IBSTORE_FUZZ_WRITE_SEEDS).
 */
#include "golden_util.h"

static char ds_dir[GOLDEN_N][512];

static void setup_dirs(void)
{
	golden_load();
	for (int d = 0; d < GOLDEN_N; d++) {
		char path[600];
		snprintf(ds_dir[d], sizeof ds_dir[d], "%s/%s", fz_dir(), goldens[d].name);
		mkdir(ds_dir[d], 0755);
		snprintf(path, sizeof path, "%s/catalog", ds_dir[d]);
		mkdir(path, 0755);
		const char *files[2] = {"MANIFEST", "catalog/data.mdb"};
		for (int i = 0; i < 2; i++) {
			size_t len;
			snprintf(path, sizeof path, "%s/%s", goldens[d].path, files[i]);
			uint8_t *b = fz_read(path, &len);
			snprintf(path, sizeof path, "%s/%s", ds_dir[d], files[i]);
			fz_write(path, b, len);
			free(b);
		}
	}
}

static void stream(ibstore_dataset *ds, const golden *g, int flags)
{
	char path[600];
	snprintf(path, sizeof path, "%s/run", fz_dir());
	unlink(path);
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = g->samples;
	ro.prune.epochs = 1;
	ro.prune.policy = IBSTORE_POLICY_NONE;
	ro.batch_size = 4;
	ibstore_run *run;
	ibstore_loader *l = NULL;
	if (ibstore_run_open(path, &ro, &run))
		abort();
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.backend = IBSTORE_BACKEND_PREAD;
	lo.threads = 1 + ((flags >> 2) & 1);
	lo.corrupt = (flags & 1) ? IBSTORE_CORRUPT_SKIP : IBSTORE_CORRUPT_FAIL;
	lo.verify = 1;
	lo.gap = (flags & 8) ? 0 : 32768;
	lo.budget = 4 << 20;
	if (ibstore_loader_open(ds, run, &lo, &l))
		goto out;
	ibstore_epoch_info ei;
	if (ibstore_loader_epoch_begin(l, 0, &ei))
		goto out;
	const ibstore_batch *b;
	while (ibstore_loader_next(l, &b) == 0 && b) {
		for (size_t i = 0; i < b->n; i++)
			golden_check(g, b->ids[i], b->data + b->offsets[i], b->sizes[i],
				     b->labels[i]);
		float loss[64];
		for (size_t i = 0; i < b->n && i < 64; i++)
			loss[i] = 1.0f;
		if (b->n <= 64)
			ibstore_loader_report(l, b, loss);
		ibstore_loader_release(l, b);
	}
	ibstore_loader_stats st;
	ibstore_loader_stats_get(l, &st);
	if (st.samples > g->samples)
		abort();
	ibstore_loader_epoch_end(l);
out:
	ibstore_loader_close(l);
	ibstore_run_close(run);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		setup_dirs();
		ready = 1;
	}
	if (size < 2)
		return 0;
	int d = data[0] % GOLDEN_N, flags = data[1];
	const golden *g = &goldens[d];
	fz_in in = {data + 2, size - 2};
	char path[600];
	for (uint32_t s = 0; s < g->shards; s++) {
		size_t got;
		size_t want = s + 1 == g->shards ? in.n : g->shard_len[s];
		const uint8_t *p = fz_take(&in, want, &got);
		snprintf(path, sizeof path, "%s/shard-%06u.ibr", ds_dir[d], s);
		fz_write(path, p, got);
	}
	ibstore_dataset *ds;
	if (ibstore_dataset_open(ds_dir[d], &ds) == 0) {
		static uint8_t buf[1 << 16];
		for (uint64_t id = 0; id < g->samples; id++) {
			size_t n;
			int32_t label;
			if (ibstore_dataset_read(ds, id, buf, sizeof buf, &n, &label) == 0)
				golden_check(g, id, buf, n, label);
		}
		if (flags & 2) {
			ibstore_verify_stats st;
			ibstore_dataset_verify(ds, NULL, NULL, &st);
		}
		if (flags & 16)
			stream(ds, g, flags);
	} else if (getenv("IBFUZZ_DEBUG")) {
		fprintf(stderr, "open: %s\n", ibstore_dataset_errmsg(ds));
	}
	ibstore_dataset_close(ds);
	return 0;
}

static void write_seeds(const char *dir)
{
	golden_load();
	for (int d = 0; d < GOLDEN_N; d++) {
		const golden *g = &goldens[d];
		size_t len = 2;
		for (uint32_t s = 0; s < g->shards; s++)
			len += g->shard_len[s];
		uint8_t *seed = malloc(len), *p = seed + 2;
		seed[0] = (uint8_t)d;
		for (uint32_t s = 0; s < g->shards; s++) {
			memcpy(p, g->shard[s], g->shard_len[s]);
			p += g->shard_len[s];
		}
		char name[80];
		seed[1] = 0x12; /* verify, stream with the fail policy */
		snprintf(name, sizeof name, "%s-fail", g->name);
		fz_write_seed(dir, name, seed, len);
		seed[1] = 0x17; /* verify, stream with the skip policy, 2 threads */
		snprintf(name, sizeof name, "%s-skip", g->name);
		fz_write_seed(dir, name, seed, len);
		free(seed);
	}
}

FZ_SEEDS_FROM(write_seeds)
