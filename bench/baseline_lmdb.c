/*
 * bench/baseline_lmdb.c — LMDB with one value per sample, the common
 * "fast local database" choice.
 *
 * usage: baseline_lmdb build DATASET DIR   copies every sample (decoded,
 *                                          checksum-verified by ibstore) into
 *                                          a new LMDB environment DIR:
 *                                          key = id as 8 bytes big-endian,
 *                                          value = the sample's bytes
 *        baseline_lmdb read DIR IDS [--cold]
 *                                          one read transaction; for each id
 *                                          of IDS (plan order) mdb_get and a
 *                                          memcpy of the value into a batch
 *                                          buffer (suite_common.h)
 *
 * The environment is opened read-only with LMDB's default flags (the OS
 * readahead on the map left on, as most users leave it).  With --cold the
 * data file is evicted (posix_fadvise) and, as root, the page cache dropped
 * just before the clock starts.
 */
#include "suite_common.h"

#include <ibstore.h>
#include <lmdb.h>
#include <sys/stat.h>

static void check(int rc, const char *what)
{
	if (rc)
		die("%s: %s", what, mdb_strerror(rc));
}

static void key_of(uint64_t id, uint8_t k[8])
{
	for (int i = 7; i >= 0; i--, id >>= 8)
		k[i] = (uint8_t)id;
}

static int build(const char *dspath, const char *dir)
{
	ibstore_dataset *ds;
	if (ibstore_dataset_open(dspath, &ds))
		die("%s", ibstore_dataset_errmsg(ds));
	ibstore_info info;
	ibstore_dataset_info_get(ds, &info);
	if (mkdir(dir, 0777) && errno != EEXIST)
		die("%s: %s", dir, strerror(errno));
	MDB_env *env;
	check(mdb_env_create(&env), "mdb_env_create");
	/* Values over ~2 KB take whole overflow pages: room for 4 KiB each. */
	size_t map = (size_t)(info.bytes_raw * 1.5) + info.samples * 4096ull + (64ull << 20);
	check(mdb_env_set_mapsize(env, map), "mdb_env_set_mapsize");
	check(mdb_env_open(env, dir, MDB_NOSYNC | MDB_WRITEMAP, 0644), "mdb_env_open");
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t *buf = malloc(info.max_size ? info.max_size : 1);
	uint64_t id = 0;
	while (id < info.samples) {
		check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
		check(mdb_dbi_open(txn, NULL, 0, &dbi), "mdb_dbi_open");
		for (uint64_t end = id + 10000; id < info.samples && id < end; id++) {
			size_t sz;
			if (ibstore_dataset_read(ds, id, buf, info.max_size, &sz, NULL))
				die("read %" PRIu64 ": %s", id, ibstore_dataset_errmsg(ds));
			uint8_t k[8];
			key_of(id, k);
			MDB_val key = {8, k}, val = {sz, buf};
			check(mdb_put(txn, dbi, &key, &val, MDB_APPEND), "mdb_put");
		}
		check(mdb_txn_commit(txn), "mdb_txn_commit");
	}
	check(mdb_env_sync(env, 1), "mdb_env_sync");
	mdb_env_close(env);
	ibstore_dataset_close(ds);
	return 0;
}

static int readrun(const char *dir, const char *idspath, int cold)
{
	size_t n;
	uint64_t *ids = read_ids(idspath, &n);
	MDB_env *env;
	check(mdb_env_create(&env), "mdb_env_create");
	check(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK, 0644), "mdb_env_open");
	MDB_txn *txn;
	MDB_dbi dbi;
	check(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin");
	check(mdb_dbi_open(txn, NULL, 0, &dbi), "mdb_dbi_open");
	MDB_stat st;
	check(mdb_stat(txn, dbi, &st), "mdb_stat");
	struct batch_out out = {0};
	if (cold) {
		char path[4096];
		snprintf(path, sizeof path, "%s/data.mdb", dir);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			die("%s: %s", path, strerror(errno));
		evict_fd(fd);
		close(fd);
		drop_caches();
	}
	double t0 = now();
	uint64_t bytes = 0, sink = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t k[8];
		key_of(ids[i], k);
		MDB_val key = {8, k}, val;
		check(mdb_get(txn, dbi, &key, &val), "mdb_get");
		uint8_t *dst = batch_slot(&out, val.mv_size);
		memcpy(dst, val.mv_data, val.mv_size);
		bytes += val.mv_size;
		sink += val.mv_size ? dst[val.mv_size - 1] : 0;
	}
	double t = now() - t0;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	free(out.buf);
	char extra[64];
	snprintf(extra, sizeof extra, "\"sink\": %" PRIu64, sink & 1);
	report("lmdb", t, n, bytes, extra);
	return 0;
}

int main(int argc, char **argv)
{
	suite_prog = "baseline_lmdb";
	if (argc >= 4 && !strcmp(argv[1], "build"))
		return build(argv[2], argv[3]);
	if (argc >= 4 && !strcmp(argv[1], "read"))
		return readrun(argv[2], argv[3], argc > 4 && !strcmp(argv[4], "--cold"));
	die("usage: baseline_lmdb build DATASET DIR | read DIR IDS [--cold]");
}
