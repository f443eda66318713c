/*
 * catalog.c — the LMDB side of a dataset: environment set-up, key <-> id
 * maps and string lookups shared by the writer and the reader.
 */
#include <inttypes.h>
#include <string.h>

#include "catalog.h"
#include "internal.h"

int ib_lmdb_fail(char *err, int rc, const char *what)
{
	return ib_fail(err, IBSTORE_ECATALOG, "catalog: %s: %s", what, mdb_strerror(rc));
}

void ib_be32(uint8_t out[4], uint32_t v)
{
	for (int i = 0; i < 4; i++)
		out[i] = (uint8_t)(v >> (24 - 8 * i));
}

void ib_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t from_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void ib_key_hash(const char *key, size_t len, uint8_t out[8])
{
	uint64_t h = ib_hash(key, len, 0x6b6579ULL); /* "key" */
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(h >> (8 * i));
}

static int open_dbi(ib_catalog *c, const char *name, unsigned flags, MDB_dbi *dbi, char *err)
{
	int rc = mdb_dbi_open(c->txn, name, flags, dbi);
	if (rc == MDB_NOTFOUND)
		return ib_fail(err, IBSTORE_EFORMAT, "catalog: database '%s' missing", name);
	if (rc)
		return ib_lmdb_fail(err, rc, name);
	return 0;
}

int ib_catalog_open(ib_catalog *c, const char *dir, int write, size_t mapsize, char *err)
{
	memset(c, 0, sizeof *c);
	int rc = mdb_env_create(&c->env);
	if (rc)
		return ib_lmdb_fail(err, rc, "create environment");
	mdb_env_set_maxdbs(c->env, IB_CATALOG_MAXDBS);
	if (mapsize)
		mdb_env_set_mapsize(c->env, mapsize);
	/* The dataset is immutable once published and the writer is alone,
	 * so no lock file: datasets open on read-only file systems too. */
	unsigned flags = MDB_NOLOCK | MDB_NOTLS | (write ? MDB_NOSYNC : MDB_RDONLY);
	rc = mdb_env_open(c->env, dir, flags, 0644);
	if (rc) {
		rc = ib_lmdb_fail(err, rc, "open");
		goto fail;
	}
	rc = mdb_txn_begin(c->env, NULL, write ? 0 : MDB_RDONLY, &c->txn);
	if (rc) {
		rc = ib_lmdb_fail(err, rc, "begin transaction");
		goto fail;
	}
	unsigned cr = write ? MDB_CREATE : 0;
	if ((rc = open_dbi(c, IB_DB_META, cr, &c->meta, err)) ||
	    (rc = open_dbi(c, IB_DB_SHARDS, cr, &c->shards, err)) ||
	    (rc = open_dbi(c, IB_DB_INDEX, cr, &c->index, err)) ||
	    (rc = open_dbi(c, IB_DB_IDS, cr, &c->ids, err)) ||
	    (rc = open_dbi(c, IB_DB_KEYHASH, cr | MDB_DUPSORT | MDB_DUPFIXED, &c->keyhash,
			   err)) ||
	    (rc = open_dbi(c, IB_DB_CLASSES, cr, &c->classes, err)))
		goto fail;
	return 0;
fail:
	ib_catalog_close(c);
	return rc;
}

int ib_catalog_commit(ib_catalog *c, char *err)
{
	int rc = mdb_txn_commit(c->txn);
	c->txn = NULL;
	if (rc)
		return ib_lmdb_fail(err, rc, "commit");
	rc = mdb_env_sync(c->env, 1);
	if (rc)
		return ib_lmdb_fail(err, rc, "sync");
	return 0;
}

void ib_catalog_close(ib_catalog *c)
{
	if (c->txn)
		mdb_txn_abort(c->txn);
	if (c->env)
		mdb_env_close(c->env);
	memset(c, 0, sizeof *c);
}

int ib_catalog_key(ib_catalog *c, uint64_t id, const char **key, char *err)
{
	uint8_t k[8];
	ib_be64(k, id);
	MDB_val kv = {8, k}, v;
	int rc = mdb_get(c->txn, c->ids, &kv, &v);
	*key = NULL;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return ib_lmdb_fail(err, rc, "key of sample");
	const char *s = v.mv_data;
	if (v.mv_size == 0 || s[v.mv_size - 1] != '\0')
		return ib_fail(err, IBSTORE_EFORMAT, "catalog: key of sample %" PRIu64
			       " is not terminated", id);
	*key = s;
	return 0;
}

int ib_catalog_find_key(ib_catalog *c, const char *key, uint64_t *id, char *err)
{
	size_t len = strlen(key);
	uint8_t h[8];
	ib_key_hash(key, len, h);
	MDB_val kv = {sizeof h, h}, v;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(c->txn, c->keyhash, &cur);
	if (rc)
		return ib_lmdb_fail(err, rc, "key lookup");
	rc = mdb_cursor_get(cur, &kv, &v, MDB_SET_KEY);
	while (rc == 0) {
		if (v.mv_size != 8) {
			rc = ib_fail(err, IBSTORE_EFORMAT, "catalog: bad key map entry");
			goto out;
		}
		uint64_t cand = from_be64(v.mv_data);
		const char *s;
		rc = ib_catalog_key(c, cand, &s, err);
		if (rc)
			goto out;
		if (s && strcmp(s, key) == 0) {
			*id = cand;
			goto out;
		}
		rc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT_DUP);
	}
	if (rc == MDB_NOTFOUND)
		rc = ib_fail(err, IBSTORE_ENOTFOUND, "no sample has key '%s'", key);
	else
		rc = ib_lmdb_fail(err, rc, "key lookup");
out:
	mdb_cursor_close(cur);
	return rc;
}

const char *ib_catalog_string(ib_catalog *c, MDB_dbi dbi, const void *k, size_t klen)
{
	MDB_val kv = {klen, (void *)k}, v;
	if (mdb_get(c->txn, dbi, &kv, &v))
		return NULL;
	const char *s = v.mv_data;
	if (v.mv_size == 0 || s[v.mv_size - 1] != '\0')
		return NULL;
	return s;
}
