/*
 * fuzz_catalog.c — catalog and index validation on dataset open.
 *
 * The input is a list of catalog entries, each (database, key, value); they
 * are written with LMDB into a fresh catalog/data.mdb beside the shard
 * files of one golden dataset, and a MANIFEST with the right size and
 * digest is made for it, so that ibstore_dataset_open gets past the digest
 * and LMDB parses a well-formed file: what is fuzzed is everything the
 * library does with the catalog's values (summary, shard table, index,
 * keys, classes, attributes).  A dataset that opens is then read in full;
 * any sample it returns must equal the golden one.
 *
 * Input: byte 0 picks the golden dataset; then records of
 *   db (1 byte, mod 6: meta shards index ids keyhash classes), key length
 *   (1 byte), key, value length (u16 LE), value.
 * The MANIFEST's uuid is taken from meta["summary"] bytes 8..23 when the
 * input has one, and the shard headers are re-sealed with it, so the uuid
 * checks pass unless the fuzzer breaks the summary.  Seeds are the golden
 * catalogs themselves (IBSTORE_FUZZ_WRITE_SEEDS).
 */
#include "golden_util.h"

#include "catalog.h"
#include "format.h"
#include "internal.h"

static MDB_dbi *dbi_of(ib_catalog *c, int db)
{
	MDB_dbi *d[6] = {&c->meta, &c->shards, &c->index, &c->ids, &c->keyhash, &c->classes};
	return d[db];
}

static void read_everything(ibstore_dataset *ds, const golden *g)
{
	ibstore_info info;
	if (ibstore_dataset_info_get(ds, &info))
		return;
	static uint8_t buf[1 << 16];
	uint64_t n = info.samples < 4096 ? info.samples : 4096;
	for (uint64_t id = 0; id < n; id++) {
		ibstore_location loc;
		if (ibstore_dataset_locate(ds, id, &loc))
			abort(); /* every id below samples has a location */
		size_t size;
		int32_t label;
		if (ibstore_dataset_read(ds, id, buf, sizeof buf, &size, &label) == 0)
			golden_check(g, id, buf, size, label);
		const char *key;
		if (ibstore_dataset_key(ds, id, &key) == 0 && key) {
			uint64_t found;
			ibstore_dataset_find_key(ds, key, &found);
		}
	}
	uint64_t id;
	ibstore_dataset_find_key(ds, "a", &id);
	ibstore_dataset_find_key(ds, "", &id);
	for (int32_t lab = -8; lab < 8; lab++)
		ibstore_dataset_class_name(ds, lab);
	ibstore_dataset_class_name(ds, INT32_MIN);
	ibstore_dataset_class_name(ds, INT32_MAX);
	ibstore_dataset_attr(ds, "source");
	ibstore_dataset_attr(ds, "");
	for (uint32_t s = 0; s <= info.shards && s < 8; s++)
		ibstore_dataset_shard_path(ds, s);
	ibstore_verify_stats st;
	ibstore_dataset_verify(ds, NULL, NULL, &st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int loaded;
	if (!loaded) {
		golden_load();
		loaded = 1;
	}
	if (size < 1)
		return 0;
	fz_in in = {data + 1, size - 1};
	const golden *g = &goldens[data[0] % GOLDEN_N];
	char dir[512], path[600], err[IB_ERRMSG_LEN];
	fz_path(dir, sizeof dir, "ds");
	fz_rmtree(dir);
	mkdir(dir, 0755);
	snprintf(path, sizeof path, "%s/catalog", dir);
	mkdir(path, 0755);

	ib_catalog c;
	if (ib_catalog_open(&c, path, 1, (size_t)64 << 20, err)) {
		fprintf(stderr, "catalog: %s\n", err);
		abort();
	}
	uint8_t uuid[16] = {0};
	while (in.n) {
		int db = fz_u8(&in) % 6;
		size_t klen, vlen;
		const uint8_t *k = fz_take(&in, fz_u8(&in), &klen);
		const uint8_t *v = fz_take(&in, fz_u16(&in), &vlen);
		if (klen == 0)
			continue; /* LMDB refuses empty keys */
		MDB_val mk = {klen, (void *)k}, mv = {vlen, (void *)v};
		mdb_put(c.txn, *dbi_of(&c, db), &mk, &mv, 0); /* refusals just drop it */
		if (db == 0 && klen == 7 && !memcmp(k, "summary", 7) && vlen >= 24)
			memcpy(uuid, v + 8, 16);
	}
	if (ib_catalog_commit(&c, err)) {
		ib_catalog_close(&c);
		return 0;
	}
	ib_catalog_close(&c);

	/* MANIFEST: the right size and digest of what was just written. */
	ib_manifest m = {.version = 1};
	memcpy(m.uuid, uuid, 16);
	snprintf(path, sizeof path, "%s/catalog/data.mdb", dir);
	if (ib_hash_file(path, &m.catalog_size, &m.catalog_hash))
		abort();
	uint8_t mb[IB_MANIFEST_SIZE];
	ib_manifest_encode(&m, mb);
	snprintf(path, sizeof path, "%s/MANIFEST", dir);
	fz_write(path, mb, sizeof mb);

	/* The golden shards, re-headed with that uuid (header seal recomputed). */
	for (uint32_t s = 0; s < g->shards; s++) {
		uint8_t *b = malloc(g->shard_len[s]);
		memcpy(b, g->shard[s], g->shard_len[s]);
		ib_shard_header h;
		if (ib_shard_header_decode(b, g->shard_len[s], &h, err))
			abort();
		memcpy(h.uuid, uuid, 16);
		ib_shard_header_encode(&h, b);
		snprintf(path, sizeof path, "%s/shard-%06u.ibr", dir, s);
		fz_write(path, b, g->shard_len[s]);
		free(b);
	}
	ibstore_dataset *ds;
	if (ibstore_dataset_open(dir, &ds) == 0) {
		/* the shard table's digests no longer match the re-headed shards
		 * unless the uuid is the golden one; reads still check records */
		read_everything(ds, g);
	} else if (getenv("IBFUZZ_DEBUG")) {
		fprintf(stderr, "open: %s\n", ibstore_dataset_errmsg(ds));
	}
	ibstore_dataset_close(ds);
	return 0;
}

/* Seeds: each golden catalog, every entry of its six databases. */
static void write_seeds(const char *dir)
{
	golden_load();
	for (int d = 0; d < GOLDEN_N; d++) {
		golden *g = &goldens[d];
		char cdir[600], err[IB_ERRMSG_LEN];
		snprintf(cdir, sizeof cdir, "%s/catalog", g->path);
		ib_catalog c;
		if (ib_catalog_open(&c, cdir, 0, (size_t)16 << 20, err)) {
			fprintf(stderr, "%s: %s\n", cdir, err);
			abort();
		}
		size_t cap = 1 << 20, len = 0;
		uint8_t *seed = malloc(cap);
		seed[len++] = (uint8_t)d;
		for (int db = 0; db < 6; db++) {
			MDB_cursor *cur;
			if (mdb_cursor_open(c.txn, *dbi_of(&c, db), &cur))
				abort();
			MDB_val k, v;
			int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
			while (rc == 0) {
				if (k.mv_size > 255 || v.mv_size > 65535 ||
				    len + 4 + k.mv_size + v.mv_size > cap)
					abort();
				seed[len++] = (uint8_t)db;
				seed[len++] = (uint8_t)k.mv_size;
				memcpy(seed + len, k.mv_data, k.mv_size);
				len += k.mv_size;
				seed[len++] = (uint8_t)v.mv_size;
				seed[len++] = (uint8_t)(v.mv_size >> 8);
				memcpy(seed + len, v.mv_data, v.mv_size);
				len += v.mv_size;
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			}
			mdb_cursor_close(cur);
		}
		ib_catalog_close(&c);
		char name[64];
		snprintf(name, sizeof name, "%s", g->name);
		fz_write_seed(dir, name, seed, len);
		free(seed);
	}
}

FZ_SEEDS_FROM(write_seeds)
