/*
 * writer.c — builds a dataset: the public writer API (options, create, add,
 * class names and attributes, publish, free), the sample index, the key
 * table and the statistics.  The shard files are written by writer_shard.c,
 * the compression and the worker pool (opts.jobs > 1) are writer_pool.c,
 * the catalog, manifest and atomic rename are writer_publish.c; the writer's
 * struct is in writer_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "catalog.h"
#include "format.h"
#include "internal.h"
#include "writer_int.h"

int wr_io_failed(ibstore_writer *w, int rc)
{
	w->state = W_FAILED;
	return ib_fail(w->errmsg, rc, "%s", w->ioerr);
}

void ib_writer_opts_defaults(ibstore_writer_opts *o)
{
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
	o->shard_size = (uint64_t)256 << 20;
	o->compress = IBSTORE_COMPRESS_NONE;
	o->lz4hc_level = 9;
	o->alignment = 8;
	o->fsync = 1;
	o->jobs = 1;
}

static int check_opts(ibstore_writer *w, const ibstore_writer_opts *o)
{
	uint32_t a = o->alignment;
	if (a == 0 || a > IB_MAX_ALIGNMENT || (a & (a - 1)))
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "alignment %" PRIu32
			     " is not a power of two between 1 and 4096", a);
	if (o->shard_size < 4096)
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "shard size %" PRIu64 " is below 4096 bytes",
			     o->shard_size);
	if (o->compress < IBSTORE_COMPRESS_NONE || o->compress > IBSTORE_COMPRESS_AUTO)
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "unknown compression %d", (int)o->compress);
	if (o->lz4hc_level < 1 || o->lz4hc_level > 12)
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "lz4hc level %d is not in 1..12", o->lz4hc_level);
	if (o->jobs < 0 || o->jobs > MAX_JOBS)
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "jobs %d is not in 1..%d", o->jobs, MAX_JOBS);
	return 0;
}

static int make_uuid(uint8_t uuid[16])
{
	size_t got = 0;
	while (got < 16) {
		ssize_t n = getrandom(uuid + got, 16 - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	return 0;
}

static char *tmp_path_for(const char *path, const uint8_t uuid[16])
{
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
	const char *base = path + dirlen;
	size_t n = strlen(path) + 64;
	char *t = malloc(n);
	if (t)
		snprintf(t, n, "%.*s.%s.ibstore-tmp-%02x%02x%02x%02x", (int)dirlen, path, base,
			 uuid[0], uuid[1], uuid[2], uuid[3]);
	return t;
}

IB_API int ibstore_writer_create(const char *path, const ibstore_writer_opts *opts,
				 ibstore_writer **out)
{
	*out = NULL;
	ibstore_writer *w = calloc(1, sizeof *w);
	if (!w)
		return IBSTORE_ENOMEM;
	*out = w;
	w->fd = -1;
	w->state = W_FAILED;
	int rc = ib_writer_opts_adopt(&w->opts, opts, w->errmsg, sizeof w->errmsg);
	if (!rc)
		rc = check_opts(w, &w->opts);
	if (rc)
		return rc;
	if (!path || !*path)
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "no output path given");
	size_t plen = strlen(path);
	while (plen > 1 && path[plen - 1] == '/')
		plen--;
	w->final_path = strndup(path, plen);
	if (!w->final_path)
		return ib_fail(w->errmsg, IBSTORE_ENOMEM, "out of memory");
	struct stat st;
	if (lstat(w->final_path, &st) == 0)
		return ib_fail(w->errmsg, IBSTORE_EEXIST, "%s already exists; refusing to overwrite it",
			     w->final_path);
	if ((rc = make_uuid(w->uuid)))
		return ib_fail(w->errmsg, IBSTORE_EIO, "getrandom: %s", strerror(-rc));
	w->tmp_path = tmp_path_for(w->final_path, w->uuid);
	w->hash = XXH3_createState();
	w->out = malloc(OUTBUF_SIZE);
	if (!w->tmp_path || !w->hash || !w->out)
		return ib_fail(w->errmsg, IBSTORE_ENOMEM, "out of memory");
	if (mkdir(w->tmp_path, 0755)) {
		int e = errno;
		free(w->tmp_path);
		w->tmp_path = NULL; /* not ours: never remove it */
		return ib_fail(w->errmsg, IBSTORE_EIO, "cannot create a directory beside %s: %s",
			     w->final_path, strerror(e));
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/%s", w->tmp_path, IB_CATALOG_DIR);
	if (mkdir(dir, 0755))
		return ib_fail(w->errmsg, IBSTORE_EIO, "%s: %s", dir, strerror(errno));
	rc = ib_catalog_open(&w->cat, dir, 1, IB_CATALOG_WRITE_MAPSIZE, w->errmsg);
	if (rc)
		return rc;
	if (w->opts.jobs > 1 && (rc = wr_pool_start(w)))
		return rc;
	w->sum.version = IBSTORE_FORMAT_VERSION;
	w->sum.alignment = w->opts.alignment;
	memcpy(w->sum.uuid, w->uuid, 16);
	w->state = W_OPEN;
	return 0;
}

static int usable(ibstore_writer *w)
{
	if (w->state == W_OPEN)
		return 0;
	if (w->state == W_PUBLISHED)
		return ib_fail(w->errmsg, IBSTORE_ESTATE, "the dataset was already published");
	if (!w->errmsg[0])
		ib_fail(w->errmsg, IBSTORE_ESTATE, "the writer failed earlier");
	return IBSTORE_ESTATE;
}

static int label_seen(ibstore_writer *w, int32_t label)
{
	if (label == IBSTORE_NO_LABEL)
		return 0;
	if (w->labels_n * 2 >= w->labels_cap) {
		size_t cap = w->labels_cap ? w->labels_cap * 2 : 64;
		int32_t *t = malloc(cap * sizeof *t);
		if (!t)
			return IBSTORE_ENOMEM;
		for (size_t i = 0; i < cap; i++)
			t[i] = IBSTORE_NO_LABEL;
		for (size_t i = 0; i < w->labels_cap; i++) {
			int32_t l = w->labels[i];
			if (l == IBSTORE_NO_LABEL)
				continue;
			size_t j = ((uint32_t)l * 2654435761u) & (cap - 1);
			while (t[j] != IBSTORE_NO_LABEL)
				j = (j + 1) & (cap - 1);
			t[j] = l;
		}
		free(w->labels);
		w->labels = t;
		w->labels_cap = cap;
	}
	size_t j = ((uint32_t)label * 2654435761u) & (w->labels_cap - 1);
	while (w->labels[j] != IBSTORE_NO_LABEL) {
		if (w->labels[j] == label)
			return 0;
		j = (j + 1) & (w->labels_cap - 1);
	}
	w->labels[j] = label;
	w->labels_n++;
	return 0;
}

int wr_add_key(ibstore_writer *w, const char *key, uint64_t id)
{
	size_t len = strlen(key);
	uint64_t found;
	char why[IB_ERRMSG_LEN];
	int rc = ib_catalog_find_key(&w->cat, key, &found, why);
	if (rc == 0)
		return ib_fail(w->errmsg, IBSTORE_EEXIST, "duplicate key '%s' (sample %" PRIu64 " has it)",
			     key, found);
	if (rc != IBSTORE_ENOTFOUND)
		return ib_fail(w->errmsg, rc, "%s", why);
	uint8_t k[8];
	ib_be64(k, id);
	uint8_t h[8];
	ib_key_hash(key, len, h);
	MDB_val kv = {8, k}, v = {len + 1, (void *)key};
	MDB_val hk = {sizeof h, h}, hv = {8, k};
	if ((rc = mdb_put(w->cat.txn, w->cat.ids, &kv, &v, 0)) ||
	    (rc = mdb_put(w->cat.txn, w->cat.keyhash, &hk, &hv, 0))) {
		w->state = W_FAILED;
		return ib_lmdb_fail(w->errmsg, rc, "store key");
	}
	w->sum.keys++;
	return 0;
}

/* Makes room in the index for sample `id`. */
int wr_grow_index(ibstore_writer *w, uint64_t id)
{
	if (id < w->index_cap)
		return 0;
	size_t cap = w->index_cap ? w->index_cap * 2 : 1024;
	uint8_t *p = realloc(w->index, cap * IB_INDEX_ENTRY_SIZE);
	if (!p)
		return ib_fail(w->errmsg, IBSTORE_ENOMEM, "out of memory");
	w->index = p;
	w->index_cap = cap;
	return 0;
}

/* Statistics and the index entry of a written sample (caller's thread). */
int wr_account(ibstore_writer *w, uint64_t id, int32_t label, uint32_t codec, size_t slen,
	       size_t len, const uint8_t entry[IB_INDEX_ENTRY_SIZE])
{
	memcpy(w->index + id * IB_INDEX_ENTRY_SIZE, entry, IB_INDEX_ENTRY_SIZE);
	w->count = id + 1;
	w->sum.bytes_stored += slen;
	w->sum.bytes_raw += len;
	w->sum.codec_count[codec]++;
	if (label_seen(w, label)) {
		w->state = W_FAILED; /* the record is written but not indexed */
		return ib_fail(w->errmsg, IBSTORE_ENOMEM, "out of memory");
	}
	return 0;
}

/* The single-threaded add: everything on the caller's thread. */
int wr_add_now(ibstore_writer *w, const void *data, size_t len, int32_t label, const char *key,
	       uint64_t *id_out)
{
	uint64_t id = w->next_id;
	uint32_t codec;
	const void *stored;
	size_t slen;
	int rc = wr_compress(&w->opts, data, len, &w->cbuf, &w->cbuf_cap, &codec, &stored, &slen);
	if (rc)
		return ib_fail(w->errmsg, rc, rc == IBSTORE_ENOMEM ? "out of memory" : "compression failed");
	uint64_t first = ib_first_record_offset(w->opts.alignment);
	if (first + IB_RECORD_HEADER_SIZE + slen > w->opts.shard_size)
		return ib_fail(w->errmsg, IBSTORE_ETOOBIG,
			     "sample %" PRIu64 " (%zu bytes stored) does not fit in a shard of "
			     "%" PRIu64 " bytes; raise --shard-size", id, slen,
			     w->opts.shard_size);
	if ((rc = wr_grow_index(w, id)))
		return rc;
	if (key && *key && (rc = wr_add_key(w, key, id)))
		return rc;
	uint8_t entry[IB_INDEX_ENTRY_SIZE];
	rc = wr_write_record(w, id, label, codec, stored, slen, len, ib_hash(stored, slen, id),
			     entry);
	if (rc)
		return wr_io_failed(w, rc);
	w->next_id = id + 1;
	if ((rc = wr_account(w, id, label, codec, slen, len, entry)))
		return rc;
	if (id_out)
		*id_out = id;
	return 0;
}

IB_API int ibstore_writer_add(ibstore_writer *w, const void *data, size_t len, int32_t label,
			      const char *key, uint64_t *id_out)
{
	if (!w)
		return IBSTORE_EINVAL;
	int rc = usable(w);
	if (rc)
		return rc;
	if (!data && len)
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "sample data is NULL");
	if (len > UINT32_MAX)
		return ib_fail(w->errmsg, IBSTORE_ETOOBIG, "sample of %zu bytes exceeds 4 GiB - 1", len);
	if (w->pool)
		return wr_add_queued(w, data, len, label, key, id_out);
	return wr_add_now(w, data, len, label, key, id_out);
}

IB_API int ibstore_writer_set_class_name(ibstore_writer *w, int32_t label, const char *name)
{
	if (!w)
		return IBSTORE_EINVAL;
	int rc = usable(w);
	if (rc)
		return rc;
	if (!name || label == IBSTORE_NO_LABEL)
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "class name needs a label and a name");
	uint8_t k[4];
	ib_be32(k, (uint32_t)label ^ 0x80000000u);
	MDB_val kv = {4, k}, v = {strlen(name) + 1, (void *)name};
	rc = mdb_put(w->cat.txn, w->cat.classes, &kv, &v, 0);
	if (rc)
		return ib_lmdb_fail(w->errmsg, rc, "store class name");
	return 0;
}

IB_API int ibstore_writer_set_attr(ibstore_writer *w, const char *name, const char *value)
{
	if (!w)
		return IBSTORE_EINVAL;
	int rc = usable(w);
	if (rc)
		return rc;
	if (!name || !*name || !value || strncmp(name, "ibstore.", 8) == 0)
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "attribute name '%s' is empty or reserved",
			     name ? name : "");
	char k[512];
	int kl = snprintf(k, sizeof k, "attr:%s", name);
	if (kl < 0 || kl >= (int)sizeof k)
		return ib_fail(w->errmsg, IBSTORE_ETOOBIG, "attribute name too long");
	MDB_val kv = {(size_t)kl, k}, v = {strlen(value) + 1, (void *)value};
	rc = mdb_put(w->cat.txn, w->cat.meta, &kv, &v, 0);
	if (rc)
		return ib_lmdb_fail(w->errmsg, rc, "store attribute");
	return 0;
}

IB_API uint64_t ibstore_writer_count(const ibstore_writer *w)
{
	return w ? w->next_id : 0;
}

IB_API int ibstore_writer_publish(ibstore_writer *w)
{
	if (!w)
		return IBSTORE_EINVAL;
	int rc = usable(w);
	if (rc)
		return rc;
	if (w->pool) {
		if ((rc = wr_pool_drain(w)))
			return rc;
		wr_pool_stop(w);
	}
	if (w->count == 0) {
		w->state = W_FAILED;
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "no samples were added; nothing to publish");
	}
	w->state = W_FAILED; /* until the rename succeeds */
	if ((rc = wr_close_shard(w)))
		return wr_io_failed(w, rc);
	if ((rc = wr_publish_files(w)))
		return rc;
	w->state = W_PUBLISHED;
	return 0;
}

IB_API void ibstore_writer_free(ibstore_writer *w)
{
	if (!w)
		return;
	if (w->pool) {
		pthread_mutex_lock(&w->pool->mu);
		if (!w->pool->rc)
			w->pool->rc = IBSTORE_ESTATE; /* abandon what is queued */
		pthread_mutex_unlock(&w->pool->mu);
		wr_pool_free(w);
	}
	if (w->fd >= 0)
		close(w->fd);
	ib_catalog_close(&w->cat);
	if (w->tmp_path && w->state != W_PUBLISHED)
		ib_remove_tree(w->tmp_path);
	XXH3_freeState(w->hash);
	free(w->out);
	free(w->shards);
	free(w->index);
	free(w->cbuf);
	free(w->labels);
	free(w->tmp_path);
	free(w->final_path);
	free(w);
}

IB_API const char *ibstore_writer_errmsg(const ibstore_writer *w)
{
	return w ? w->errmsg : "no writer";
}
