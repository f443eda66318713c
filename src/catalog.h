/*
 * catalog.h — the LMDB catalog of a dataset: its named databases, their key
 * encodings, and the calls the writer and the reader share.
 */
#ifndef IBSTORE_CATALOG_H
#define IBSTORE_CATALOG_H

#include <lmdb.h>
#include <stdint.h>

#include "format.h"

/* Named databases (FORMAT.md, "Catalog"). */
#define IB_DB_META "meta"       /* "summary", "attr:<name>" -> bytes */
#define IB_DB_SHARDS "shards"   /* u32 BE shard -> ib_shard_entry */
#define IB_DB_INDEX "index"     /* "samples" -> ib_index_entry[samples] */
#define IB_DB_IDS "ids"         /* u64 BE id -> key bytes + NUL */
#define IB_DB_KEYHASH "keyhash" /* u64 LE xxh3(key) -> u64 BE id (dupsort) */
#define IB_DB_CLASSES "classes" /* u32 BE (label ^ 0x80000000) -> name + NUL */

#define IB_CATALOG_MAXDBS 8
#define IB_CATALOG_WRITE_MAPSIZE ((size_t)64 << 30)

typedef struct ib_catalog {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, shards, index, ids, keyhash, classes;
} ib_catalog;

/* Opens (creating with `write`) the catalog in directory `dir` and starts
 * one transaction: a write transaction, or a read one that lives until
 * ib_catalog_close().  Message in err. */
int ib_catalog_open(ib_catalog *c, const char *dir, int write, size_t mapsize, char *err);
/* Commits a write transaction and syncs; returns 0 or an error. */
int ib_catalog_commit(ib_catalog *c, char *err);
/* Aborts or ends the transaction and closes the environment. */
void ib_catalog_close(ib_catalog *c);

void ib_be32(uint8_t out[4], uint32_t v);
void ib_be64(uint8_t out[8], uint64_t v);
/* xxh3 of a key, as the 8 little-endian bytes the keyhash database uses. */
void ib_key_hash(const char *key, size_t len, uint8_t out[8]);

/* Looks up `key` in the write or read transaction; IBSTORE_ENOTFOUND when
 * absent.  The returned id's key was compared byte for byte. */
int ib_catalog_find_key(ib_catalog *c, const char *key, uint64_t *id, char *err);
/* Pointer to sample id's NUL-terminated key, or NULL when it has none. */
int ib_catalog_key(ib_catalog *c, uint64_t id, const char **key, char *err);

/* A NUL-terminated string value in `dbi` under raw key k, or NULL. */
const char *ib_catalog_string(ib_catalog *c, MDB_dbi dbi, const void *k, size_t klen);

int ib_lmdb_fail(char *err, int rc, const char *what);

#endif
