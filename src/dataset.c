/*
 * dataset.c — opening a published dataset (manifest, catalog digest,
 * catalog, shard headers, index bounds) and random access by id and key.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.h"
#include "dataset_int.h"
#include "format.h"
#include "internal.h"

int ib_dsfail(ibstore_dataset *ds, int code, const char *fmt, ...)
{
	char buf[IB_ERRMSG_LEN];
	va_list ap;
	va_start(ap, fmt);
	ib_failv(buf, sizeof buf, code, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&ds->lock);
	memcpy(ds->errmsg, buf, sizeof buf);
	pthread_mutex_unlock(&ds->lock);
	return code;
}

static int read_manifest(ibstore_dataset *ds, ib_manifest *m)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", ds->path, IB_MANIFEST_NAME);
	struct stat st;
	if (stat(ds->path, &st))
		return ib_dsfail(ds, IBSTORE_ENOTFOUND, "%s: %s", ds->path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return ib_dsfail(ds, IBSTORE_EFORMAT, "%s is not an ibstore dataset (not a directory)",
				 ds->path);
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = ib_read_file(path, &buf, &len, 4096);
	if (rc == -ENOENT)
		return ib_dsfail(ds, IBSTORE_EFORMAT,
				 "%s is not an ibstore dataset (no %s file)", ds->path,
				 IB_MANIFEST_NAME);
	if (rc == -EFBIG)
		return ib_dsfail(ds, IBSTORE_EFORMAT,
				 "%s: not an ibstore manifest (too large, or not a file)", path);
	if (rc)
		return ib_dsfail(ds, IBSTORE_EIO, "%s: %s", path, strerror(-rc));
	char why[IB_ERRMSG_LEN];
	rc = ib_manifest_decode(buf, len, m, why);
	free(buf);
	if (rc)
		return ib_dsfail(ds, rc, "%s: %s", path, why);
	return 0;
}

static int check_catalog_digest(ibstore_dataset *ds, const ib_manifest *m)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", ds->path, IB_CATALOG_FILE);
	uint64_t size, hash;
	int rc = ib_hash_file(path, &size, &hash);
	if (rc == -ENOENT)
		return ib_dsfail(ds, IBSTORE_ENOTFOUND, "%s: catalog missing", path);
	if (rc)
		return ib_dsfail(ds, IBSTORE_EIO, "%s: %s", path, strerror(-rc));
	if (size < m->catalog_size)
		return ib_dsfail(ds, IBSTORE_ETRUNCATED,
				 "%s is %" PRIu64 " bytes, the manifest says %" PRIu64
				 " (truncated)", path, size, m->catalog_size);
	if (size != m->catalog_size || hash != m->catalog_hash)
		return ib_dsfail(ds, IBSTORE_ECORRUPT,
				 "%s does not match its digest in %s: corrupt, or the catalog of "
				 "another dataset", path, IB_MANIFEST_NAME);
	ds->catalog_size = size;
	return 0;
}

static int open_catalog(ibstore_dataset *ds, const ib_manifest *m)
{
	char dir[PATH_MAX], why[IB_ERRMSG_LEN];
	snprintf(dir, sizeof dir, "%s/%s", ds->path, IB_CATALOG_DIR);
	size_t mapsize = (size_t)ib_align_up(ds->catalog_size, 1u << 20);
	int rc = ib_catalog_open(&ds->cat, dir, 0, mapsize, why);
	if (rc)
		return ib_dsfail(ds, rc, "%s: %s", dir, why);
	MDB_val k = {7, "summary"}, v;
	rc = mdb_get(ds->cat.txn, ds->cat.meta, &k, &v);
	if (rc)
		return ib_dsfail(ds, IBSTORE_EFORMAT, "%s: no dataset summary in the catalog", dir);
	rc = ib_summary_decode(v.mv_data, v.mv_size, &ds->sum, why);
	if (rc)
		return ib_dsfail(ds, rc, "%s: %s", dir, why);
	if (memcmp(ds->sum.uuid, m->uuid, 16) != 0)
		return ib_dsfail(ds, IBSTORE_EMISMATCH,
				 "%s: the catalog belongs to another dataset than %s", dir,
				 IB_MANIFEST_NAME);
	MDB_val ik = {7, "samples"}, iv;
	rc = mdb_get(ds->cat.txn, ds->cat.index, &ik, &iv);
	if (rc || iv.mv_size / IB_INDEX_ENTRY_SIZE != ds->sum.samples ||
	    iv.mv_size % IB_INDEX_ENTRY_SIZE != 0)
		return ib_dsfail(ds, IBSTORE_EFORMAT,
				 "%s: sample index missing or not of %" PRIu64 " entries", dir,
				 ds->sum.samples);
	ds->index = iv.mv_data;
	return 0;
}

static int open_shard(ibstore_dataset *ds, uint32_t s)
{
	uint8_t k[4];
	ib_be32(k, s);
	MDB_val kv = {4, k}, v;
	if (mdb_get(ds->cat.txn, ds->cat.shards, &kv, &v) || v.mv_size != IB_SHARD_ENTRY_SIZE)
		return ib_dsfail(ds, IBSTORE_EFORMAT, "%s: catalog has no entry for shard %" PRIu32,
				 ds->path, s);
	ib_shard_entry *e = &ds->shard_tab[s];
	ib_shard_entry_decode(v.mv_data, e);
	size_t n = strlen(ds->path) + 32;
	ds->shard_paths[s] = malloc(n);
	if (!ds->shard_paths[s])
		return ib_dsfail(ds, IBSTORE_ENOMEM, "out of memory");
	snprintf(ds->shard_paths[s], n, "%s/shard-%06" PRIu32 ".ibr", ds->path, s);
	const char *path = ds->shard_paths[s];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ib_dsfail(ds, errno == ENOENT ? IBSTORE_ENOTFOUND : IBSTORE_EIO,
				 "%s: %s", path, errno == ENOENT ? "shard missing" : strerror(errno));
	ds->fds[s] = fd;
	struct stat st;
	if (fstat(fd, &st))
		return ib_dsfail(ds, IBSTORE_EIO, "%s: %s", path, strerror(errno));
	if ((uint64_t)st.st_size < e->size)
		return ib_dsfail(ds, IBSTORE_ETRUNCATED,
				 "%s is %" PRIu64 " bytes, the catalog says %" PRIu64 " (truncated)",
				 path, (uint64_t)st.st_size, e->size);
	if ((uint64_t)st.st_size > e->size)
		return ib_dsfail(ds, IBSTORE_ECORRUPT,
				 "%s is %" PRIu64 " bytes, the catalog says %" PRIu64
				 " (not the shard that was packed)", path, (uint64_t)st.st_size,
				 e->size);
	uint8_t hb[IB_SHARD_HEADER_SIZE];
	int r = ib_pread_all(fd, hb, sizeof hb, 0);
	if (r)
		return ib_dsfail(ds, r > 0 ? IBSTORE_ETRUNCATED : IBSTORE_EIO, "%s: header: %s",
				 path, r > 0 ? "truncated" : strerror(-r));
	ib_shard_header h;
	char why[IB_ERRMSG_LEN];
	int rc = ib_shard_header_decode(hb, sizeof hb, &h, why);
	if (rc)
		return ib_dsfail(ds, rc, "%s: %s", path, why);
	if (memcmp(h.uuid, ds->sum.uuid, 16) != 0 || h.shard != s)
		return ib_dsfail(ds, IBSTORE_EMISMATCH,
				 "%s belongs to another dataset (or is another shard)", path);
	if (h.alignment != ds->sum.alignment)
		return ib_dsfail(ds, IBSTORE_EFORMAT, "%s: alignment differs from the catalog's",
				 path);
	return 0;
}

/* Every index entry must point inside its shard, so reads never need to
 * trust an offset again; totals must agree with the summary. */
static int check_index(ibstore_dataset *ds)
{
	uint64_t stored = 0, raw = 0, codecs[2] = {0, 0};
	uint64_t first = ib_first_record_offset(ds->sum.alignment);
	ibstore_info *in = &ds->info;
	uint32_t prev_shard = 0;
	uint64_t prev_end = 0;
	for (uint64_t id = 0; id < ds->sum.samples; id++) {
		ib_index_entry e;
		ib_index_entry_decode(ds->index + id * IB_INDEX_ENTRY_SIZE, &e);
		/* records lie in id order in the files: readers rely on it */
		if (e.shard < prev_shard || (e.shard == prev_shard && e.offset < prev_end))
			return ib_dsfail(ds, IBSTORE_EFORMAT,
					 "%s: sample %" PRIu64 " is not stored after sample %" PRIu64,
					 ds->path, id, id - 1);
		if (e.shard != prev_shard)
			prev_end = 0;
		prev_shard = e.shard;
		prev_end = e.offset + IB_RECORD_HEADER_SIZE + e.stored_size;
		const ib_shard_entry *s = e.shard < ds->sum.shards ? &ds->shard_tab[e.shard] : NULL;
		if (!s || e.codec > IB_MAX_CODEC || id < s->first_id ||
		    id - s->first_id >= s->records || e.offset < first ||
		    e.offset % ds->sum.alignment ||
		    e.offset > s->size ||
		    s->size - e.offset < (uint64_t)IB_RECORD_HEADER_SIZE + e.stored_size ||
		    (e.codec == IBSTORE_CODEC_NONE && e.stored_size != e.size))
			return ib_dsfail(ds, IBSTORE_EFORMAT,
					 "%s: index entry of sample %" PRIu64 " is inconsistent",
					 ds->path, id);
		stored += e.stored_size;
		raw += e.size;
		codecs[e.codec]++;
		if (id == 0)
			in->fixed_size = e.size;
		else if (in->fixed_size != e.size)
			in->fixed_size = 0;
		if (e.size > in->max_size)
			in->max_size = e.size;
	}
	if (stored != ds->sum.bytes_stored || raw != ds->sum.bytes_raw ||
	    codecs[0] != ds->sum.codec_count[0] || codecs[1] != ds->sum.codec_count[1])
		return ib_dsfail(ds, IBSTORE_EFORMAT, "%s: catalog totals disagree with its index",
				 ds->path);
	return 0;
}

static void fill_info(ibstore_dataset *ds)
{
	ibstore_info *in = &ds->info;
	in->format_version = ds->sum.version;
	memcpy(in->uuid, ds->sum.uuid, 16);
	in->created = ds->sum.created;
	in->samples = ds->sum.samples;
	in->shards = ds->sum.shards;
	in->alignment = ds->sum.alignment;
	in->bytes_stored = ds->sum.bytes_stored;
	in->bytes_raw = ds->sum.bytes_raw;
	in->codec_count[0] = ds->sum.codec_count[0];
	in->codec_count[1] = ds->sum.codec_count[1];
	in->labels = ds->sum.labels;
	in->keys = ds->sum.keys;
	for (uint32_t s = 0; s < ds->sum.shards; s++)
		in->bytes_files += ds->shard_tab[s].size;
}

/*
 * 1 when the path's last component is a writer's temporary directory,
 * ".<name>.ibstore-tmp-<hex>" (FORMAT.md 1.1).  A pack killed after writing
 * its MANIFEST but before the rename that publishes it leaves one that is
 * complete; it is still not a dataset.
 */
static int is_pack_temp_dir(const char *path)
{
	size_t n = strlen(path), b;
	while (n > 1 && path[n - 1] == '/')
		n--;
	for (b = n; b > 0 && path[b - 1] != '/'; b--)
		;
	return path[b] == '.' && memmem(path + b, n - b, ".ibstore-tmp-", 13) != NULL;
}

IB_API int ibstore_dataset_open(const char *path, ibstore_dataset **out)
{
	if (!out)
		return IBSTORE_EINVAL;
	*out = NULL;
	ibstore_dataset *ds = calloc(1, sizeof *ds);
	if (!ds)
		return IBSTORE_ENOMEM;
	pthread_mutex_init(&ds->lock, NULL);
	*out = ds;
	if (!path || !*path)
		return ib_dsfail(ds, IBSTORE_EINVAL, "no dataset path given");
	if (is_pack_temp_dir(path))
		return ib_dsfail(ds, IBSTORE_EFORMAT, "%s is the temporary directory of a pack that "
				 "never published, not a dataset (it may be deleted)", path);
	ds->path = strdup(path);
	if (!ds->path)
		return ib_dsfail(ds, IBSTORE_ENOMEM, "out of memory");
	ib_manifest m;
	int rc;
	if ((rc = read_manifest(ds, &m)) || (rc = check_catalog_digest(ds, &m)) ||
	    (rc = open_catalog(ds, &m)))
		return rc;
	uint32_t n = ds->sum.shards;
	if (n == 0 && ds->sum.samples > 0)
		return ib_dsfail(ds, IBSTORE_EFORMAT, "%s: samples but no shards", ds->path);
	/* Every shard holds a record: this also bounds the tables below by the
	 * index's size before a bad count can ask for gigabytes. */
	if (n > ds->sum.samples)
		return ib_dsfail(ds, IBSTORE_EFORMAT, "%s: %" PRIu32 " shards for %" PRIu64
				 " samples", ds->path, n, ds->sum.samples);
	ds->shard_tab = calloc(n ? n : 1, sizeof *ds->shard_tab);
	ds->shard_paths = calloc(n ? n : 1, sizeof *ds->shard_paths);
	ds->fds = malloc((n ? n : 1) * sizeof *ds->fds);
	if (!ds->shard_tab || !ds->shard_paths || !ds->fds)
		return ib_dsfail(ds, IBSTORE_ENOMEM, "out of memory");
	for (uint32_t s = 0; s < n; s++)
		ds->fds[s] = -1;
	for (uint32_t s = 0; s < n; s++)
		if ((rc = open_shard(ds, s)))
			return rc;
	if ((rc = check_index(ds)))
		return rc;
	fill_info(ds);
	ds->open = 1;
	ds->errmsg[0] = '\0';
	return 0;
}

IB_API void ibstore_dataset_close(ibstore_dataset *ds)
{
	if (!ds)
		return;
	for (uint32_t s = 0; ds->fds && s < ds->sum.shards; s++)
		if (ds->fds[s] >= 0)
			close(ds->fds[s]);
	for (uint32_t s = 0; ds->shard_paths && s < ds->sum.shards; s++)
		free(ds->shard_paths[s]);
	ib_catalog_close(&ds->cat);
	pthread_mutex_destroy(&ds->lock);
	free(ds->fds);
	free(ds->shard_paths);
	free(ds->shard_tab);
	free(ds->path);
	free(ds);
}

IB_API const char *ibstore_dataset_errmsg(const ibstore_dataset *ds)
{
	return ds ? ds->errmsg : "no dataset handle (out of memory?)";
}

static int not_open(const ibstore_dataset *ds)
{
	return !ds || !ds->open;
}

int ib_dataset_is_open(const ibstore_dataset *ds)
{
	return !not_open(ds);
}

const ibstore_info *ib_dataset_about(const ibstore_dataset *ds)
{
	return &ds->info;
}

int ib_dataset_shard_fd(const ibstore_dataset *ds, uint32_t s)
{
	return ds->fds[s];
}

uint64_t ib_dataset_shard_size(const ibstore_dataset *ds, uint32_t s)
{
	return ds->shard_tab[s].size;
}

IB_API int ibstore_dataset_info_get_sized(const ibstore_dataset *ds, ibstore_info *out,
					  size_t size)
{
	if (not_open(ds) || !out)
		return IBSTORE_EINVAL;
	char msg[IB_ERRMSG_LEN];
	int rc = ib_info_emit(out, size, &ds->info, msg, sizeof msg);
	return rc ? ib_dsfail((ibstore_dataset *)ds, rc, "%s", msg) : 0;
}

int ib_dataset_entry(const ibstore_dataset *ds, uint64_t id, ib_index_entry *e)
{
	if (id >= ds->sum.samples)
		return IBSTORE_ENOTFOUND;
	ib_index_entry_decode(ds->index + id * IB_INDEX_ENTRY_SIZE, e);
	return 0;
}

IB_API int ibstore_dataset_locate(const ibstore_dataset *ds, uint64_t id, ibstore_location *out)
{
	if (not_open(ds) || !out)
		return IBSTORE_EINVAL;
	ib_index_entry e;
	if (ib_dataset_entry(ds, id, &e))
		return ib_dsfail((ibstore_dataset *)ds, IBSTORE_ENOTFOUND,
				 "no sample %" PRIu64 " (the dataset has %" PRIu64 ")", id,
				 ds->sum.samples);
	*out = (ibstore_location){.id = id, .shard = e.shard, .codec = e.codec,
				  .offset = e.offset,
				  .payload_offset = e.offset + IB_RECORD_HEADER_SIZE,
				  .stored_size = e.stored_size, .size = e.size, .label = e.label};
	return 0;
}

int ib_dataset_decode(const ibstore_dataset *ds, uint64_t id, const ib_index_entry *e,
		      const uint8_t *rec, size_t len, int flags, void *buf, char *msg)
{
	char why[IB_ERRMSG_LEN];
	const uint8_t *payload;
	int rc = ib_record_check(rec, len, id, e, flags & IB_DECODE_VERIFY, &payload, why);
	if (!rc && ib_decompress(e->codec, payload, e->stored_size, buf, e->size,
				 flags & IB_DECODE_STREAM)) {
		rc = IBSTORE_ECORRUPT;
		snprintf(why, sizeof why, "does not decode");
	}
	if (rc)
		return ib_fail(msg, rc, "%s offset %" PRIu64 ": %s for sample %" PRIu64,
			       strrchr(ds->shard_paths[e->shard], '/') + 1, e->offset, why, id);
	return 0;
}

IB_API int ibstore_dataset_read(ibstore_dataset *ds, uint64_t id, void *buf, size_t cap,
				size_t *size_out, int32_t *label_out)
{
	if (not_open(ds) || (!buf && cap))
		return IBSTORE_EINVAL;
	ib_index_entry e;
	if (ib_dataset_entry(ds, id, &e))
		return ib_dsfail(ds, IBSTORE_ENOTFOUND,
				 "no sample %" PRIu64 " (the dataset has %" PRIu64 ")", id,
				 ds->sum.samples);
	if (cap < e.size)
		return ib_dsfail(ds, IBSTORE_EBUFSIZE, "sample %" PRIu64 " needs %" PRIu32
				 " bytes, the buffer has %zu", id, e.size, cap);
	size_t len = IB_RECORD_HEADER_SIZE + (size_t)e.stored_size;
	uint8_t *rec = malloc(len);
	if (!rec)
		return ib_dsfail(ds, IBSTORE_ENOMEM, "out of memory");
	int rc = ib_pread_all(ds->fds[e.shard], rec, len, e.offset);
	if (rc) {
		rc = ib_dsfail(ds, rc > 0 ? IBSTORE_ETRUNCATED : IBSTORE_EIO,
			       "%s offset %" PRIu64 ": reading sample %" PRIu64 ": %s",
			       ds->shard_paths[e.shard], e.offset, id,
			       rc > 0 ? "file ends early" : strerror(-rc));
		goto out;
	}
	char msg[IB_ERRMSG_LEN];
	rc = ib_dataset_decode(ds, id, &e, rec, len, IB_DECODE_VERIFY, buf, msg);
	if (rc) {
		ib_dsfail(ds, rc, "%s", msg);
		goto out;
	}
	if (size_out)
		*size_out = e.size;
	if (label_out)
		*label_out = e.label;
out:
	free(rec);
	return rc;
}

IB_API int ibstore_dataset_find_key(ibstore_dataset *ds, const char *key, uint64_t *id_out)
{
	if (not_open(ds) || !key || !id_out)
		return IBSTORE_EINVAL;
	char why[IB_ERRMSG_LEN];
	pthread_mutex_lock(&ds->lock);
	int rc = ib_catalog_find_key(&ds->cat, key, id_out, why);
	if (rc)
		memcpy(ds->errmsg, why, sizeof why);
	pthread_mutex_unlock(&ds->lock);
	return rc;
}

IB_API int ibstore_dataset_key(ibstore_dataset *ds, uint64_t id, const char **key_out)
{
	if (not_open(ds) || !key_out)
		return IBSTORE_EINVAL;
	if (id >= ds->sum.samples)
		return ib_dsfail(ds, IBSTORE_ENOTFOUND, "no sample %" PRIu64, id);
	char why[IB_ERRMSG_LEN];
	pthread_mutex_lock(&ds->lock);
	int rc = ib_catalog_key(&ds->cat, id, key_out, why);
	if (rc)
		memcpy(ds->errmsg, why, sizeof why);
	pthread_mutex_unlock(&ds->lock);
	return rc;
}

IB_API const char *ibstore_dataset_class_name(ibstore_dataset *ds, int32_t label)
{
	if (not_open(ds) || label == IBSTORE_NO_LABEL)
		return NULL;
	uint8_t k[4];
	ib_be32(k, (uint32_t)label ^ 0x80000000u);
	pthread_mutex_lock(&ds->lock);
	const char *s = ib_catalog_string(&ds->cat, ds->cat.classes, k, 4);
	pthread_mutex_unlock(&ds->lock);
	return s;
}

IB_API const char *ibstore_dataset_attr(ibstore_dataset *ds, const char *name)
{
	if (not_open(ds) || !name)
		return NULL;
	char k[512];
	int kl = snprintf(k, sizeof k, "attr:%s", name);
	if (kl < 0 || kl >= (int)sizeof k)
		return NULL;
	pthread_mutex_lock(&ds->lock);
	const char *s = ib_catalog_string(&ds->cat, ds->cat.meta, k, (size_t)kl);
	pthread_mutex_unlock(&ds->lock);
	return s;
}

IB_API const char *ibstore_dataset_shard_path(const ibstore_dataset *ds, uint32_t shard)
{
	if (not_open(ds) || shard >= ds->sum.shards)
		return NULL;
	return ds->shard_paths[shard];
}

IB_API int ibstore_dataset_evict(ibstore_dataset *ds)
{
	if (not_open(ds))
		return IBSTORE_EINVAL;
	for (uint32_t s = 0; s < ds->sum.shards; s++) {
		int rc = posix_fadvise(ds->fds[s], 0, 0, POSIX_FADV_DONTNEED);
		if (rc)
			return ib_dsfail(ds, IBSTORE_EIO, "%s: posix_fadvise: %s", ds->shard_paths[s],
					 strerror(rc));
	}
	return 0;
}
