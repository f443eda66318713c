/*
 * dataset_int.h — the dataset handle's insides, shared by dataset.c and
 * verify.c, and the small internal interface the loader uses instead: the
 * loader defines IB_DATASET_OPAQUE (loader_int.h) and so never sees the
 * struct's fields.
 */
#ifndef IBSTORE_DATASET_INT_H
#define IBSTORE_DATASET_INT_H

#include <pthread.h>

#include "catalog.h"
#include "format.h"
#include "internal.h"

#ifndef IB_DATASET_OPAQUE
struct ibstore_dataset {
	char errmsg[IB_ERRMSG_LEN];
	pthread_mutex_t lock; /* errmsg and LMDB lookups */
	int open;
	char *path;
	uint64_t catalog_size;
	ib_catalog cat;       /* a read transaction living until close */
	ib_summary sum;
	const uint8_t *index; /* mapped: IB_INDEX_ENTRY_SIZE * samples */
	ib_shard_entry *shard_tab;
	char **shard_paths;
	int *fds;
	ibstore_info info;
};

/* Sets the handle's message (under its lock) and returns code. */
int ib_dsfail(ibstore_dataset *ds, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#endif

/* ---- what the loader may ask (dataset.c) ---- */

/* 1 for a dataset open and usable. */
int ib_dataset_is_open(const ibstore_dataset *ds);
/* The dataset's description (samples, shards, byte totals, fixed size),
 * valid until close. */
const ibstore_info *ib_dataset_about(const ibstore_dataset *ds);
/* Shard s < shards: its buffered read-only descriptor (the dataset's; do
 * not close) and its file size. */
int ib_dataset_shard_fd(const ibstore_dataset *ds, uint32_t s);
uint64_t ib_dataset_shard_size(const ibstore_dataset *ds, uint32_t s);
/* Shard s's path is the public ibstore_dataset_shard_path(). */

/* Sample id's index entry; IBSTORE_ENOTFOUND when id >= samples. */
int ib_dataset_entry(const ibstore_dataset *ds, uint64_t id, ib_index_entry *e);
/* How ib_dataset_decode works: check the payload's xxh3; buf is a loader
 * batch that will not be read soon (see ib_decompress). */
#define IB_DECODE_VERIFY 1
#define IB_DECODE_STREAM 2

/* Checks record bytes (header + payload, `len`) of sample `id` and decodes
 * into buf (e->size bytes), as `flags` (IB_DECODE_*) say; the message
 * (IB_ERRMSG_LEN bytes in msg) names shard, offset and sample. */
int ib_dataset_decode(const ibstore_dataset *ds, uint64_t id, const ib_index_entry *e,
		      const uint8_t *rec, size_t len, int flags, void *buf, char *msg);

#endif
