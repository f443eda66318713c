/*
 * verify.c — a full check of a dataset: every shard's whole-file digest and
 * every record's header, checksum and decoding.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_int.h"

typedef struct walk {
	ibstore_dataset *ds;
	int (*cb)(const ibstore_problem *p, void *ctx);
	void *ctx;
	ibstore_verify_stats st;
	int stopped;
} walk;

static void report(walk *w, int code, uint32_t shard, uint64_t offset, uint64_t id,
		   const char *msg)
{
	ibstore_problem p = {.code = code, .shard = shard, .offset = offset, .id = id,
			     .message = msg};
	if (w->cb && !w->stopped && w->cb(&p, w->ctx))
		w->stopped = 1;
}

static int verify_shard_digest(walk *w, uint32_t s)
{
	ibstore_dataset *ds = w->ds;
	const char *path = ds->shard_paths[s];
	uint64_t size, hash;
	char msg[IB_ERRMSG_LEN];
	int rc = ib_hash_file(path, &size, &hash);
	if (rc)
		return ib_dsfail(ds, IBSTORE_EIO, "%s: %s", path, strerror(-rc));
	w->st.bytes_read += size;
	if (size != ds->shard_tab[s].size || hash != ds->shard_tab[s].hash) {
		w->st.shards_bad++;
		ib_fail(msg, IBSTORE_ECORRUPT, "%s: whole-file digest mismatch",
			strrchr(path, '/') + 1);
		report(w, IBSTORE_ECORRUPT, s, UINT64_MAX, UINT64_MAX, msg);
	}
	return 0;
}

static int verify_records(walk *w, uint8_t *rec, uint8_t *out)
{
	ibstore_dataset *ds = w->ds;
	char msg[IB_ERRMSG_LEN];
	for (uint64_t id = 0; id < ds->sum.samples && !w->stopped; id++) {
		ib_index_entry e;
		ib_dataset_entry(ds, id, &e);
		size_t len = IB_RECORD_HEADER_SIZE + (size_t)e.stored_size;
		int rc = ib_pread_all(ds->fds[e.shard], rec, len, e.offset);
		if (rc < 0)
			return ib_dsfail(ds, IBSTORE_EIO, "%s: %s", ds->shard_paths[e.shard],
					 strerror(-rc));
		if (rc > 0)
			rc = ib_fail(msg, IBSTORE_ETRUNCATED, "%s offset %" PRIu64
				     ": file ends inside sample %" PRIu64,
				     strrchr(ds->shard_paths[e.shard], '/') + 1, e.offset, id);
		else
			rc = ib_dataset_decode(ds, id, &e, rec, len, IB_DECODE_VERIFY, out, msg);
		w->st.records_checked++;
		if (rc) {
			w->st.records_bad++;
			report(w, rc, e.shard, e.offset, id, msg);
		}
	}
	return 0;
}

IB_API int ibstore_dataset_verify(ibstore_dataset *ds,
				  int (*cb)(const ibstore_problem *p, void *ctx), void *ctx,
				  ibstore_verify_stats *stats)
{
	if (!ds || !ds->open)
		return IBSTORE_EINVAL;
	walk w = {.ds = ds, .cb = cb, .ctx = ctx};
	int rc = 0;
	uint64_t max_stored = 0;
	for (uint64_t id = 0; id < ds->sum.samples; id++) {
		ib_index_entry e;
		ib_dataset_entry(ds, id, &e);
		if (e.stored_size > max_stored)
			max_stored = e.stored_size;
	}
	uint8_t *rec = malloc(IB_RECORD_HEADER_SIZE + max_stored);
	uint8_t *out = malloc(ds->info.max_size ? ds->info.max_size : 1);
	if (!rec || !out) {
		rc = ib_dsfail(ds, IBSTORE_ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t s = 0; s < ds->sum.shards && !w.stopped && !rc; s++)
		rc = verify_shard_digest(&w, s);
	if (!rc)
		rc = verify_records(&w, rec, out);
	if (!rc && (w.st.records_bad || w.st.shards_bad)) {
		rc = ib_dsfail(ds, IBSTORE_ECORRUPT,
			       "%s: %" PRIu64 " bad records, %" PRIu64 " shards with a bad digest",
			       ds->path, w.st.records_bad, w.st.shards_bad);
	}
out:
	free(rec);
	free(out);
	if (stats)
		*stats = w.st;
	return rc;
}
