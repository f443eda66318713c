/*
 * writer_publish.c — the end of a dataset's build: the catalog (shard
 * table, sample index, summary), the manifest with the catalog's checksum,
 * fsync of the tree and the rename into place without replacing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "format.h"
#include "internal.h"
#include "writer_int.h"

static int put_raw(ibstore_writer *w, MDB_dbi dbi, const void *k, size_t kl, const void *v,
		   size_t vl, const char *what)
{
	MDB_val kv = {kl, (void *)k}, vv = {vl, (void *)v};
	int rc = mdb_put(w->cat.txn, dbi, &kv, &vv, 0);
	return rc ? ib_lmdb_fail(w->errmsg, rc, what) : 0;
}

static int write_catalog(ibstore_writer *w)
{
	int rc;
	for (uint32_t s = 0; s < w->shard; s++) {
		uint8_t k[4], v[IB_SHARD_ENTRY_SIZE];
		ib_be32(k, s);
		ib_shard_entry_encode(&w->shards[s], v);
		if ((rc = put_raw(w, w->cat.shards, k, 4, v, sizeof v, "store shard table")))
			return rc;
	}
	if ((rc = put_raw(w, w->cat.index, "samples", 7, w->index,
			  w->count * IB_INDEX_ENTRY_SIZE, "store sample index")))
		return rc;
	w->sum.created = (uint64_t)time(NULL);
	w->sum.samples = w->count;
	w->sum.shards = w->shard;
	w->sum.labels = (uint32_t)w->labels_n;
	uint8_t sb[IB_SUMMARY_SIZE];
	ib_summary_encode(&w->sum, sb);
	if ((rc = put_raw(w, w->cat.meta, "summary", 7, sb, sizeof sb, "store summary")))
		return rc;
	rc = ib_catalog_commit(&w->cat, w->errmsg);
	ib_catalog_close(&w->cat);
	return rc;
}

static int write_manifest(ibstore_writer *w)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", w->tmp_path, IB_CATALOG_FILE);
	ib_manifest m = {.version = IBSTORE_FORMAT_VERSION};
	memcpy(m.uuid, w->uuid, 16);
	int rc = ib_hash_file(path, &m.catalog_size, &m.catalog_hash);
	if (rc)
		return ib_fail(w->errmsg, IBSTORE_EIO, "%s: %s", path, strerror(-rc));
	uint8_t mb[IB_MANIFEST_SIZE];
	ib_manifest_encode(&m, mb);
	snprintf(path, sizeof path, "%s/%s", w->tmp_path, IB_MANIFEST_NAME);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return ib_fail(w->errmsg, IBSTORE_EIO, "%s: %s", path, strerror(errno));
	rc = ib_pwrite_all(fd, mb, sizeof mb, 0);
	if (!rc && w->opts.fsync && fsync(fd))
		rc = -errno;
	close(fd);
	if (rc)
		return ib_fail(w->errmsg, IBSTORE_EIO, "%s: %s", path, strerror(-rc));
	return 0;
}

static int sync_tree(ibstore_writer *w)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", w->tmp_path, IB_CATALOG_DIR);
	int rc = ib_fsync_dir(path);
	if (!rc)
		rc = ib_fsync_dir(w->tmp_path);
	return rc ? ib_fail(w->errmsg, IBSTORE_EIO, "fsync %s: %s", path, strerror(-rc)) : 0;
}

static int rename_into_place(ibstore_writer *w)
{
	if (renameat2(AT_FDCWD, w->tmp_path, AT_FDCWD, w->final_path, RENAME_NOREPLACE)) {
		int e = errno;
		if (e == EEXIST || e == ENOTEMPTY)
			return ib_fail(w->errmsg, IBSTORE_EEXIST, "%s appeared while packing; not replaced",
				     w->final_path);
		return ib_fail(w->errmsg, IBSTORE_EIO, "rename to %s: %s", w->final_path, strerror(e));
	}
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%s", w->final_path);
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(parent, sizeof parent, ".");
	if (w->opts.fsync)
		ib_fsync_dir(parent); /* the dataset is complete either way */
	return 0;
}

int wr_publish_files(ibstore_writer *w)
{
	int rc;
	if ((rc = write_catalog(w)) || (rc = write_manifest(w)))
		return rc;
	if (w->opts.fsync && (rc = sync_tree(w)))
		return rc;
	return rename_into_place(w);
}
