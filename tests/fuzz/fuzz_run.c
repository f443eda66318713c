/*
 * fuzz_run.c — run-state open: the decoding and checking of the values a
 * run state holds (config, progress, scores, plan, epoch statistics).
 *
 * LMDB has no page checksums, so a run-state file corrupted below LMDB is
 * out of scope for "never crash" (README, Reliability); what is fuzzed is a
 * well-formed LMDB file, written here with LMDB, whose values come from the
 * input.  A state that opens is then driven: info, config, scores,
 * statistics, and one epoch (resumed or begun) with losses reported.
 *
 * Input: records of key (1 byte, mod 6: config progress scores plan
 * stats/0000000000 stats/0000000001), value length (u16 LE), value.
 * Seeds: states written by the library mid-epoch and between epochs
 * (IBSTORE_FUZZ_WRITE_SEEDS).
 */
#include "fuzz_common.h"

#include <lmdb.h>

#include "ibstore.h"

static const char *keys[6] = {"config", "progress", "scores", "plan",
			      "stats/0000000000", "stats/0000000001"};

static void drive(ibstore_run *r)
{
	ibstore_run_info info;
	ibstore_run_opts cfg;
	uint64_t n;
	if (ibstore_run_info_get(r, &info) || ibstore_run_config_get(r, &cfg))
		abort();
	ibstore_run_scores(r, &n);
	for (uint32_t e = 0; e < 3; e++) {
		ibstore_epoch_stats es;
		ibstore_run_epoch_stats_get(r, e, &es);
	}
	ibstore_epoch_info ei;
	if (ibstore_run_epoch_begin(r, info.epoch, &ei))
		return;
	float loss[256];
	for (int i = 0; i < 256; i++)
		loss[i] = (float)(i % 7) * 0.25f;
	for (uint64_t b = ei.cursor; b < ei.batches && b < ei.cursor + 16; b++) {
		const uint64_t *ids;
		const float *w;
		size_t k;
		if (ibstore_run_batch(r, b, &ids, &w, &k))
			break;
		for (size_t i = 0; i < k; i++)
			if (ids[i] >= cfg.samples)
				abort(); /* an id the scores do not cover */
		if (k <= 256 && ibstore_run_report(r, ids, loss, k))
			break;
		if (ibstore_run_advance(r, 1))
			break;
	}
	ibstore_run_checkpoint(r);
	ibstore_run_epoch_end(r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[512];
	fz_path(path, sizeof path, "run.state");
	unlink(path);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	if (mdb_env_create(&env))
		abort();
	mdb_env_set_mapsize(env, (size_t)16 << 20);
	if (mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC, 0644) ||
	    mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, NULL, 0, &dbi))
		abort();
	fz_in in = {data, size};
	while (in.n) {
		const char *k = keys[fz_u8(&in) % 6];
		size_t vlen;
		const uint8_t *v = fz_take(&in, fz_u16(&in), &vlen);
		MDB_val mk = {strlen(k), (void *)k}, mv = {vlen, (void *)v};
		mdb_put(txn, dbi, &mk, &mv, 0);
	}
	if (mdb_txn_commit(txn))
		abort();
	mdb_env_close(env);

	ibstore_run *r;
	if (ibstore_run_open(path, NULL, &r) == 0)
		drive(r);
	else if (getenv("IBFUZZ_DEBUG"))
		fprintf(stderr, "open: %s\n", ibstore_run_errmsg(r));
	ibstore_run_close(r);
	return 0;
}

/* Dumps every value of the state at `path` as one seed. */
static void dump(const char *path, const char *dir, const char *name)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	if (mdb_env_create(&env) ||
	    mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_RDONLY, 0644) ||
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) || mdb_dbi_open(txn, NULL, 0, &dbi) ||
	    mdb_cursor_open(txn, dbi, &cur))
		abort();
	uint8_t seed[65536];
	size_t len = 0;
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		int sel = -1;
		for (int i = 0; i < 6; i++)
			if (k.mv_size == strlen(keys[i]) && !memcmp(k.mv_data, keys[i], k.mv_size))
				sel = i;
		if (sel < 0 || len + 3 + v.mv_size > sizeof seed)
			abort();
		seed[len++] = (uint8_t)sel;
		seed[len++] = (uint8_t)v.mv_size;
		seed[len++] = (uint8_t)(v.mv_size >> 8);
		memcpy(seed + len, v.mv_data, v.mv_size);
		len += v.mv_size;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	fz_write_seed(dir, name, seed, len);
}

static void write_seeds(const char *dir)
{
	char path[512];
	fz_path(path, sizeof path, "seed.state");
	for (int variant = 0; variant < 3; variant++) {
		unlink(path);
		ibstore_run_opts ro;
		ibstore_run_opts_init(&ro);
		ro.samples = 40;
		ro.prune.epochs = 4;
		ro.prune.seed = 7;
		ro.batch_size = 8;
		ro.checkpoint_every = 2;
		ro.world = variant == 2 ? 3 : 1;
		ro.rank = variant == 2 ? 1 : 0;
		ibstore_run *r;
		if (ibstore_run_open(path, &ro, &r))
			abort();
		for (uint32_t e = 0; e < 2; e++) {
			ibstore_epoch_info ei;
			if (ibstore_run_epoch_begin(r, e, &ei))
				abort();
			uint64_t stop = (variant == 0 && e == 1) ? 3 : ei.batches;
			for (uint64_t b = 0; b < stop; b++) {
				const uint64_t *ids;
				const float *w;
				size_t k;
				float loss[8];
				ibstore_run_batch(r, b, &ids, &w, &k);
				for (size_t i = 0; i < k; i++)
					loss[i] = (float)((ids[i] * 2654435761u) % 100) / 50.0f;
				ibstore_run_report(r, ids, loss, k);
				ibstore_run_advance(r, 1);
			}
			if (stop != ei.batches)
				break;
			ibstore_run_epoch_end(r, NULL);
		}
		ibstore_run_close(r);
		char name[32];
		snprintf(name, sizeof name, "state-%d", variant);
		dump(path, dir, name);
	}
}

FZ_SEEDS_FROM(write_seeds)
