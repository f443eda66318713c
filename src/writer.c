/*
 * writer.c — builds a dataset: shard files with size rollover, per-record
 * codec and checksum, the catalog, and the atomic publish (temporary
 * directory, fsync, rename without replacing).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "catalog.h"
#include "format.h"
#include "internal.h"

#define OUTBUF_SIZE (1u << 20)

enum { W_OPEN, W_FAILED, W_PUBLISHED };

struct ibstore_writer {
	char errmsg[IB_ERRMSG_LEN];
	ibstore_writer_opts opts;
	int state;
	char *final_path;
	char *tmp_path;
	uint8_t uuid[16];
	ib_catalog cat;

	/* current shard */
	int fd;               /* -1 when no shard is open */
	uint32_t shard;       /* number of the open (or next) shard */
	uint64_t pos;         /* bytes of the shard written or buffered */
	uint64_t shard_records;
	uint64_t shard_first_id;
	XXH3_state_t *hash;
	uint8_t *out;         /* write buffer */
	size_t out_len;

	ib_shard_entry *shards;
	size_t shards_cap;

	uint8_t *index;       /* IB_INDEX_ENTRY_SIZE * count */
	size_t index_cap;     /* in entries */
	uint64_t count;

	uint8_t *cbuf;        /* compression output */
	size_t cbuf_cap;

	int32_t *labels;      /* open-addressing set of distinct labels */
	size_t labels_cap, labels_n;

	ib_summary sum;
};

static int wfail(ibstore_writer *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int wfail(ibstore_writer *w, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->errmsg, sizeof w->errmsg, fmt, ap);
	va_end(ap);
	return code;
}

/* I/O failures while a shard is half written leave the writer unusable. */
static int wfatal(ibstore_writer *w, int err, const char *what)
{
	w->state = W_FAILED;
	return wfail(w, IBSTORE_EIO, "%s/shard-%06" PRIu32 ".ibr: %s: %s", w->final_path,
		     w->shard, what, strerror(err));
}

IB_API void ibstore_writer_opts_init(ibstore_writer_opts *o)
{
	memset(o, 0, sizeof *o);
	o->shard_size = (uint64_t)256 << 20;
	o->compress = IBSTORE_COMPRESS_NONE;
	o->lz4hc_level = 9;
	o->alignment = 8;
	o->fsync = 1;
}

static int check_opts(ibstore_writer *w, const ibstore_writer_opts *o)
{
	uint32_t a = o->alignment;
	if (a == 0 || a > IB_MAX_ALIGNMENT || (a & (a - 1)))
		return wfail(w, IBSTORE_EINVAL, "alignment %" PRIu32
			     " is not a power of two between 1 and 4096", a);
	if (o->shard_size < 4096)
		return wfail(w, IBSTORE_EINVAL, "shard size %" PRIu64 " is below 4096 bytes",
			     o->shard_size);
	if (o->compress < IBSTORE_COMPRESS_NONE || o->compress > IBSTORE_COMPRESS_AUTO)
		return wfail(w, IBSTORE_EINVAL, "unknown compression %d", (int)o->compress);
	if (o->lz4hc_level < 1 || o->lz4hc_level > 12)
		return wfail(w, IBSTORE_EINVAL, "lz4hc level %d is not in 1..12", o->lz4hc_level);
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
	if (opts)
		w->opts = *opts;
	else
		ibstore_writer_opts_init(&w->opts);
	int rc = check_opts(w, &w->opts);
	if (rc)
		return rc;
	if (!path || !*path)
		return wfail(w, IBSTORE_EINVAL, "no output path given");
	size_t plen = strlen(path);
	while (plen > 1 && path[plen - 1] == '/')
		plen--;
	w->final_path = strndup(path, plen);
	if (!w->final_path)
		return wfail(w, IBSTORE_ENOMEM, "out of memory");
	struct stat st;
	if (lstat(w->final_path, &st) == 0)
		return wfail(w, IBSTORE_EEXIST, "%s already exists; refusing to overwrite it",
			     w->final_path);
	if ((rc = make_uuid(w->uuid)))
		return wfail(w, IBSTORE_EIO, "getrandom: %s", strerror(-rc));
	w->tmp_path = tmp_path_for(w->final_path, w->uuid);
	w->hash = XXH3_createState();
	w->out = malloc(OUTBUF_SIZE);
	if (!w->tmp_path || !w->hash || !w->out)
		return wfail(w, IBSTORE_ENOMEM, "out of memory");
	if (mkdir(w->tmp_path, 0755)) {
		int e = errno;
		free(w->tmp_path);
		w->tmp_path = NULL; /* not ours: never remove it */
		return wfail(w, IBSTORE_EIO, "cannot create a directory beside %s: %s",
			     w->final_path, strerror(e));
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/%s", w->tmp_path, IB_CATALOG_DIR);
	if (mkdir(dir, 0755))
		return wfail(w, IBSTORE_EIO, "%s: %s", dir, strerror(errno));
	rc = ib_catalog_open(&w->cat, dir, 1, IB_CATALOG_WRITE_MAPSIZE, w->errmsg);
	if (rc)
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
		return wfail(w, IBSTORE_ESTATE, "the dataset was already published");
	if (!w->errmsg[0])
		wfail(w, IBSTORE_ESTATE, "the writer failed earlier");
	return IBSTORE_ESTATE;
}

static int flush_out(ibstore_writer *w)
{
	if (w->out_len == 0)
		return 0;
	int rc = ib_pwrite_all(w->fd, w->out, w->out_len, w->pos - w->out_len);
	if (rc)
		return wfatal(w, -rc, "write");
	w->out_len = 0;
	return 0;
}

/* Appends bytes to the open shard through the write buffer and the hash. */
static int emit(ibstore_writer *w, const void *data, size_t len)
{
	const uint8_t *p = data;
	XXH3_64bits_update(w->hash, p, len);
	while (len > 0) {
		size_t room = OUTBUF_SIZE - w->out_len;
		size_t n = len < room ? len : room;
		memcpy(w->out + w->out_len, p, n);
		w->out_len += n;
		w->pos += n;
		p += n;
		len -= n;
		if (w->out_len == OUTBUF_SIZE) {
			int rc = flush_out(w);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int emit_zeros(ibstore_writer *w, size_t n)
{
	static const uint8_t zeros[IB_MAX_ALIGNMENT];
	return emit(w, zeros, n);
}

static int open_shard(ibstore_writer *w)
{
	char name[PATH_MAX];
	snprintf(name, sizeof name, "%s/shard-%06" PRIu32 ".ibr", w->tmp_path, w->shard);
	w->fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (w->fd < 0)
		return wfatal(w, errno, "create");
	XXH3_64bits_reset(w->hash);
	w->pos = 0;
	w->out_len = 0;
	w->shard_records = 0;
	w->shard_first_id = w->count;
	ib_shard_header h = {.version = IBSTORE_FORMAT_VERSION, .shard = w->shard,
			     .alignment = w->opts.alignment};
	memcpy(h.uuid, w->uuid, 16);
	uint8_t hb[IB_SHARD_HEADER_SIZE];
	ib_shard_header_encode(&h, hb);
	return emit(w, hb, sizeof hb);
}

static int close_shard(ibstore_writer *w)
{
	int rc = flush_out(w);
	if (rc)
		return rc;
	if (w->opts.fsync && fsync(w->fd))
		return wfatal(w, errno, "fsync");
	close(w->fd);
	w->fd = -1;
	if (w->shard >= w->shards_cap) {
		size_t cap = w->shards_cap ? w->shards_cap * 2 : 16;
		ib_shard_entry *s = realloc(w->shards, cap * sizeof *s);
		if (!s)
			return wfail(w, IBSTORE_ENOMEM, "out of memory");
		w->shards = s;
		w->shards_cap = cap;
	}
	w->shards[w->shard] = (ib_shard_entry){.size = w->pos,
					       .hash = XXH3_64bits_digest(w->hash),
					       .records = w->shard_records,
					       .first_id = w->shard_first_id};
	w->shard++;
	return 0;
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

static int add_key(ibstore_writer *w, const char *key, uint64_t id)
{
	size_t len = strlen(key);
	uint64_t found;
	char why[IB_ERRMSG_LEN];
	int rc = ib_catalog_find_key(&w->cat, key, &found, why);
	if (rc == 0)
		return wfail(w, IBSTORE_EEXIST, "duplicate key '%s' (sample %" PRIu64 " has it)",
			     key, found);
	if (rc != IBSTORE_ENOTFOUND)
		return wfail(w, rc, "%s", why);
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

static int grow_index(ibstore_writer *w)
{
	if (w->count < w->index_cap)
		return 0;
	size_t cap = w->index_cap ? w->index_cap * 2 : 1024;
	uint8_t *p = realloc(w->index, cap * IB_INDEX_ENTRY_SIZE);
	if (!p)
		return wfail(w, IBSTORE_ENOMEM, "out of memory");
	w->index = p;
	w->index_cap = cap;
	return 0;
}

static int compress(ibstore_writer *w, const void *data, size_t len, uint32_t *codec,
		    const void **stored, size_t *stored_len)
{
	*stored = data;
	*codec = IBSTORE_CODEC_NONE;
	*stored_len = len;
	if (w->opts.compress == IBSTORE_COMPRESS_NONE)
		return 0;
	size_t bound = ib_compress_bound(len);
	if (bound == 0)
		return 0; /* beyond lz4's input limit: stored raw */
	if (bound > w->cbuf_cap) {
		uint8_t *b = realloc(w->cbuf, bound);
		if (!b)
			return wfail(w, IBSTORE_ENOMEM, "out of memory");
		w->cbuf = b;
		w->cbuf_cap = bound;
	}
	int rc = ib_compress(w->opts.compress, w->opts.lz4hc_level, data, len, w->cbuf,
			     w->cbuf_cap, codec, stored_len);
	if (rc)
		return wfail(w, rc, "compression failed");
	if (*codec != IBSTORE_CODEC_NONE)
		*stored = w->cbuf;
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
		return wfail(w, IBSTORE_EINVAL, "sample data is NULL");
	if (len > UINT32_MAX)
		return wfail(w, IBSTORE_ETOOBIG, "sample of %zu bytes exceeds 4 GiB - 1", len);
	uint64_t id = w->count;
	uint32_t codec;
	const void *stored;
	size_t slen;
	if ((rc = compress(w, data, len, &codec, &stored, &slen)))
		return rc;
	uint32_t a = w->opts.alignment;
	uint64_t first = ib_first_record_offset(a);
	if (first + IB_RECORD_HEADER_SIZE + slen > w->opts.shard_size)
		return wfail(w, IBSTORE_ETOOBIG,
			     "sample %" PRIu64 " (%zu bytes stored) does not fit in a shard of "
			     "%" PRIu64 " bytes; raise --shard-size", id, slen,
			     w->opts.shard_size);
	if ((rc = grow_index(w)))
		return rc;
	if (key && *key && (rc = add_key(w, key, id)))
		return rc;
	if (w->fd >= 0 &&
	    ib_align_up(w->pos, a) + IB_RECORD_HEADER_SIZE + slen > w->opts.shard_size &&
	    (rc = close_shard(w)))
		return rc;
	if (w->fd < 0 && (rc = open_shard(w)))
		return rc;
	if ((rc = emit_zeros(w, ib_align_up(w->pos, a) - w->pos)))
		return rc;
	ib_record_header h = {.codec = codec, .id = id, .stored_size = (uint32_t)slen,
			      .size = (uint32_t)len, .label = label,
			      .payload_hash = ib_hash(stored, slen, id)};
	uint8_t hb[IB_RECORD_HEADER_SIZE];
	ib_record_header_encode(&h, hb);
	ib_index_entry e = {.shard = w->shard, .stored_size = (uint32_t)slen, .offset = w->pos,
			    .size = (uint32_t)len, .label = label, .codec = codec};
	if ((rc = emit(w, hb, sizeof hb)) || (rc = emit(w, stored, slen)))
		return rc;
	if (label_seen(w, label)) {
		w->state = W_FAILED; /* the record is written but not indexed */
		return wfail(w, IBSTORE_ENOMEM, "out of memory");
	}
	ib_index_entry_encode(&e, w->index + id * IB_INDEX_ENTRY_SIZE);
	w->count++;
	w->shard_records++;
	w->sum.bytes_stored += slen;
	w->sum.bytes_raw += len;
	w->sum.codec_count[codec]++;
	if (id_out)
		*id_out = id;
	return 0;
}

IB_API int ibstore_writer_set_class_name(ibstore_writer *w, int32_t label, const char *name)
{
	if (!w)
		return IBSTORE_EINVAL;
	int rc = usable(w);
	if (rc)
		return rc;
	if (!name || label == IBSTORE_NO_LABEL)
		return wfail(w, IBSTORE_EINVAL, "class name needs a label and a name");
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
		return wfail(w, IBSTORE_EINVAL, "attribute name '%s' is empty or reserved",
			     name ? name : "");
	char k[512];
	int kl = snprintf(k, sizeof k, "attr:%s", name);
	if (kl < 0 || kl >= (int)sizeof k)
		return wfail(w, IBSTORE_ETOOBIG, "attribute name too long");
	MDB_val kv = {(size_t)kl, k}, v = {strlen(value) + 1, (void *)value};
	rc = mdb_put(w->cat.txn, w->cat.meta, &kv, &v, 0);
	if (rc)
		return ib_lmdb_fail(w->errmsg, rc, "store attribute");
	return 0;
}

IB_API uint64_t ibstore_writer_count(const ibstore_writer *w)
{
	return w ? w->count : 0;
}

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
		return wfail(w, IBSTORE_EIO, "%s: %s", path, strerror(-rc));
	uint8_t mb[IB_MANIFEST_SIZE];
	ib_manifest_encode(&m, mb);
	snprintf(path, sizeof path, "%s/%s", w->tmp_path, IB_MANIFEST_NAME);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return wfail(w, IBSTORE_EIO, "%s: %s", path, strerror(errno));
	rc = ib_pwrite_all(fd, mb, sizeof mb, 0);
	if (!rc && w->opts.fsync && fsync(fd))
		rc = -errno;
	close(fd);
	if (rc)
		return wfail(w, IBSTORE_EIO, "%s: %s", path, strerror(-rc));
	return 0;
}

static int sync_tree(ibstore_writer *w)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", w->tmp_path, IB_CATALOG_DIR);
	int rc = ib_fsync_dir(path);
	if (!rc)
		rc = ib_fsync_dir(w->tmp_path);
	return rc ? wfail(w, IBSTORE_EIO, "fsync %s: %s", path, strerror(-rc)) : 0;
}

static int rename_into_place(ibstore_writer *w)
{
	if (renameat2(AT_FDCWD, w->tmp_path, AT_FDCWD, w->final_path, RENAME_NOREPLACE)) {
		int e = errno;
		if (e == EEXIST || e == ENOTEMPTY)
			return wfail(w, IBSTORE_EEXIST, "%s appeared while packing; not replaced",
				     w->final_path);
		return wfail(w, IBSTORE_EIO, "rename to %s: %s", w->final_path, strerror(e));
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

IB_API int ibstore_writer_publish(ibstore_writer *w)
{
	if (!w)
		return IBSTORE_EINVAL;
	int rc = usable(w);
	if (rc)
		return rc;
	if (w->count == 0) {
		w->state = W_FAILED;
		return wfail(w, IBSTORE_EINVAL, "no samples were added; nothing to publish");
	}
	w->state = W_FAILED; /* until the rename succeeds */
	if ((rc = close_shard(w)) || (rc = write_catalog(w)) || (rc = write_manifest(w)))
		return rc;
	if (w->opts.fsync && (rc = sync_tree(w)))
		return rc;
	if ((rc = rename_into_place(w)))
		return rc;
	w->state = W_PUBLISHED;
	return 0;
}

IB_API void ibstore_writer_free(ibstore_writer *w)
{
	if (!w)
		return;
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
