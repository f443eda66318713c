/*
 * writer.c — builds a dataset: shard files with size rollover, per-record
 * codec and checksum, the catalog, and the atomic publish (temporary
 * directory, fsync, rename without replacing).
 *
 * With opts.jobs > 1 the samples go through a bounded queue of slots:
 * ibstore_writer_add() checks what it can synchronously (sizes, duplicate
 * keys), copies the sample into a slot and returns; worker threads compress
 * and checksum slots in any order, and whichever worker completes the
 * oldest unwritten slot appends the completed slots to the shard strictly
 * in id order.  The bytes written are therefore the same for every number
 * of jobs.  The caller's thread alone touches the catalog, the sample index
 * and the statistics (it takes a slot's index entry back when it reuses the
 * slot); the writing worker alone touches the shard files.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "catalog.h"
#include "format.h"
#include "internal.h"

#define OUTBUF_SIZE (1u << 20)
/* Payloads at least this large go to the file straight from the caller's
 * (or the slot's) memory with pwritev instead of through the write buffer. */
#define DIRECT_MIN (64u << 10)
/* When the dataset will be fsynced, write-back of each shard is started
 * every so many bytes, so the final fsync finds little left to do. */
#define WRITEBACK_EVERY (8u << 20)
#define MAX_JOBS 256
/* Bytes of samples queued for the workers, beyond the sample being added. */
#define QUEUE_BYTES ((size_t)64 << 20)

enum { S_FREE, S_QUEUED, S_BUSY, S_DONE, S_WRITTEN };

/* One queued sample (jobs > 1). */
typedef struct slot {
	int state;              /* S_*, under pool.mu */
	uint64_t id;
	int32_t label;
	uint8_t *data;          /* copy of the sample */
	size_t cap, len;
	uint8_t *cbuf;          /* compression output */
	size_t cbuf_cap;
	uint32_t codec;
	const void *stored;
	size_t slen;
	uint64_t hash;
	int rc;                 /* compression failure */
	uint8_t entry[IB_INDEX_ENTRY_SIZE]; /* filled when written */
} slot;

typedef struct pool {
	pthread_mutex_t mu;
	pthread_cond_t work;    /* a slot was queued, or stop */
	pthread_cond_t done;    /* a slot was written */
	pthread_t *threads;
	int nthreads;
	slot *slots;
	size_t nslots;
	uint64_t head;          /* sequence number of the next slot queued */
	uint64_t claim;         /* next slot a worker compresses */
	uint64_t next_write;    /* next slot appended to the shard */
	uint64_t reclaim;       /* next slot the caller takes back */
	size_t queued_bytes;
	int writing;            /* a worker is appending slots */
	int stop;
	int rc;                 /* first failure of a worker; message in ioerr */
} pool;

enum { W_OPEN, W_FAILED, W_PUBLISHED };

struct ibstore_writer {
	char errmsg[IB_ERRMSG_LEN];
	ibstore_writer_opts opts;
	int state;
	char *final_path;
	char *tmp_path;
	uint8_t uuid[16];
	ib_catalog cat;
	uint64_t next_id;     /* id of the next sample added */

	/* current shard (jobs > 1: touched only by the writing worker) */
	int fd;               /* -1 when no shard is open */
	uint32_t shard;       /* number of the open (or next) shard */
	uint64_t pos;         /* bytes of the shard written or buffered */
	uint64_t shard_records;
	uint64_t shard_first_id;
	XXH3_state_t *hash;
	uint8_t *out;         /* write buffer */
	size_t out_len;
	uint64_t synced;      /* shard bytes whose write-back was started */
	char ioerr[IB_ERRMSG_LEN]; /* message of a failed shard write */

	ib_shard_entry *shards;
	size_t shards_cap;

	uint8_t *index;       /* IB_INDEX_ENTRY_SIZE * count */
	size_t index_cap;     /* in entries */
	uint64_t count;       /* samples written and indexed */

	uint8_t *cbuf;        /* compression output */
	size_t cbuf_cap;

	int32_t *labels;      /* open-addressing set of distinct labels */
	size_t labels_cap, labels_n;

	ib_summary sum;

	pool *pool;           /* NULL when jobs <= 1 */
};

static int pool_start(ibstore_writer *w);

/*
 * I/O failures while a shard is half written leave the writer unusable.
 * The shard-writing code may run on a worker thread, so it reports into
 * w->ioerr; io_failed() hands the message over on the caller's thread.
 */
static int wfatal(ibstore_writer *w, int err, const char *what)
{
	snprintf(w->ioerr, sizeof w->ioerr, "%s/shard-%06" PRIu32 ".ibr: %s: %s",
		 w->final_path, w->shard, what, strerror(err));
	return IBSTORE_EIO;
}

static int io_failed(ibstore_writer *w, int rc)
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
	if (w->opts.jobs > 1 && (rc = pool_start(w)))
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

/* Starts write-back of what was written since the last call (fsync only). */
static void start_writeback(ibstore_writer *w)
{
	uint64_t end = w->pos - w->out_len;
	if (!w->opts.fsync || end - w->synced < WRITEBACK_EVERY)
		return;
	/* Advisory: a failure here shows up again at fsync. */
	(void)sync_file_range(w->fd, (off_t)w->synced, (off_t)(end - w->synced),
			      SYNC_FILE_RANGE_WRITE);
	w->synced = end;
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
			start_writeback(w);
		}
	}
	return 0;
}

/*
 * Appends a payload: small ones through the write buffer, large ones with
 * one pwritev of the buffered bytes and the payload itself (no copy).
 */
static int emit_payload(ibstore_writer *w, const void *data, size_t len)
{
	if (len < DIRECT_MIN)
		return emit(w, data, len);
	XXH3_64bits_update(w->hash, data, len);
	uint64_t off = w->pos - w->out_len;
	struct iovec iov[2] = {{w->out, w->out_len}, {(void *)data, len}};
	struct iovec *v = w->out_len ? iov : iov + 1;
	int nv = w->out_len ? 2 : 1;
	while (nv > 0) {
		ssize_t n = pwritev(w->fd, v, nv, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return wfatal(w, errno, "write");
		}
		if (n == 0)
			return wfatal(w, EIO, "write");
		off += (uint64_t)n;
		while (nv > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			nv--;
		}
		if (nv > 0) {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	w->out_len = 0;
	w->pos += len;
	start_writeback(w);
	return 0;
}

static int emit_zeros(ibstore_writer *w, size_t n)
{
	static const uint8_t zeros[IB_MAX_ALIGNMENT];
	return emit(w, zeros, n);
}

static int open_shard(ibstore_writer *w, uint64_t first_id)
{
	char name[PATH_MAX];
	snprintf(name, sizeof name, "%s/shard-%06" PRIu32 ".ibr", w->tmp_path, w->shard);
	w->fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (w->fd < 0)
		return wfatal(w, errno, "create");
	XXH3_64bits_reset(w->hash);
	w->pos = 0;
	w->out_len = 0;
	w->synced = 0;
	w->shard_records = 0;
	w->shard_first_id = first_id;
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
		if (!s) {
			snprintf(w->ioerr, sizeof w->ioerr, "out of memory");
			return IBSTORE_ENOMEM;
		}
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

/*
 * Appends one record (rolling over to a new shard when it does not fit)
 * and encodes its index entry into `entry`.  Runs on the caller's thread
 * (jobs <= 1) or on the writing worker; reports failures into w->ioerr.
 */
static int write_record(ibstore_writer *w, uint64_t id, int32_t label, uint32_t codec,
			const void *stored, size_t slen, size_t len, uint64_t hash,
			uint8_t entry[IB_INDEX_ENTRY_SIZE])
{
	uint32_t a = w->opts.alignment;
	int rc;
	if (w->fd >= 0 &&
	    ib_align_up(w->pos, a) + IB_RECORD_HEADER_SIZE + slen > w->opts.shard_size &&
	    (rc = close_shard(w)))
		return rc;
	if (w->fd < 0 && (rc = open_shard(w, id)))
		return rc;
	if ((rc = emit_zeros(w, ib_align_up(w->pos, a) - w->pos)))
		return rc;
	ib_record_header h = {.codec = codec, .id = id, .stored_size = (uint32_t)slen,
			      .size = (uint32_t)len, .label = label, .payload_hash = hash};
	uint8_t hb[IB_RECORD_HEADER_SIZE];
	ib_record_header_encode(&h, hb);
	ib_index_entry e = {.shard = w->shard, .stored_size = (uint32_t)slen, .offset = w->pos,
			    .size = (uint32_t)len, .label = label, .codec = codec};
	if ((rc = emit(w, hb, sizeof hb)) || (rc = emit_payload(w, stored, slen)))
		return rc;
	ib_index_entry_encode(&e, entry);
	w->shard_records++;
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
static int grow_index(ibstore_writer *w, uint64_t id)
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

/* Compresses into *cbuf (grown as needed); *stored points at the bytes to store. */
static int compress_into(const ibstore_writer_opts *o, const void *data, size_t len,
			 uint8_t **cbuf, size_t *cbuf_cap, uint32_t *codec,
			 const void **stored, size_t *stored_len)
{
	*stored = data;
	*codec = IBSTORE_CODEC_NONE;
	*stored_len = len;
	if (o->compress == IBSTORE_COMPRESS_NONE)
		return 0;
	size_t bound = ib_compress_bound(len);
	if (bound == 0)
		return 0; /* beyond lz4's input limit: stored raw */
	if (bound > *cbuf_cap) {
		uint8_t *b = realloc(*cbuf, bound);
		if (!b)
			return IBSTORE_ENOMEM;
		*cbuf = b;
		*cbuf_cap = bound;
	}
	int rc = ib_compress(o->compress, o->lz4hc_level, data, len, *cbuf, *cbuf_cap, codec,
			     stored_len);
	if (rc)
		return rc;
	if (*codec != IBSTORE_CODEC_NONE)
		*stored = *cbuf;
	return 0;
}

/* Statistics and the index entry of a written sample (caller's thread). */
static int account(ibstore_writer *w, uint64_t id, int32_t label, uint32_t codec, size_t slen,
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
static int add_now(ibstore_writer *w, const void *data, size_t len, int32_t label,
		   const char *key, uint64_t *id_out)
{
	uint64_t id = w->next_id;
	uint32_t codec;
	const void *stored;
	size_t slen;
	int rc = compress_into(&w->opts, data, len, &w->cbuf, &w->cbuf_cap, &codec, &stored,
			       &slen);
	if (rc)
		return ib_fail(w->errmsg, rc, rc == IBSTORE_ENOMEM ? "out of memory" : "compression failed");
	uint64_t first = ib_first_record_offset(w->opts.alignment);
	if (first + IB_RECORD_HEADER_SIZE + slen > w->opts.shard_size)
		return ib_fail(w->errmsg, IBSTORE_ETOOBIG,
			     "sample %" PRIu64 " (%zu bytes stored) does not fit in a shard of "
			     "%" PRIu64 " bytes; raise --shard-size", id, slen,
			     w->opts.shard_size);
	if ((rc = grow_index(w, id)))
		return rc;
	if (key && *key && (rc = add_key(w, key, id)))
		return rc;
	uint8_t entry[IB_INDEX_ENTRY_SIZE];
	rc = write_record(w, id, label, codec, stored, slen, len, ib_hash(stored, slen, id),
			  entry);
	if (rc)
		return io_failed(w, rc);
	w->next_id = id + 1;
	if ((rc = account(w, id, label, codec, slen, len, entry)))
		return rc;
	if (id_out)
		*id_out = id;
	return 0;
}

/* ---- jobs > 1: the queue ------------------------------------------------ */

/* Appends completed slots in order; called by a worker holding p->mu. */
static void write_completed(ibstore_writer *w, pool *p)
{
	p->writing = 1;
	for (;;) {
		slot *s = &p->slots[p->next_write % p->nslots];
		if (p->next_write == p->head || s->state != S_DONE)
			break;
		int failed = p->rc;
		pthread_mutex_unlock(&p->mu);
		int rc = 0;
		if (!failed && s->rc) {
			rc = s->rc;
			snprintf(w->ioerr, sizeof w->ioerr, "sample %" PRIu64 ": %s", s->id,
				 rc == IBSTORE_ENOMEM ? "out of memory" : "compression failed");
		} else if (!failed) {
			rc = write_record(w, s->id, s->label, s->codec, s->stored, s->slen,
					  s->len, s->hash, s->entry);
		}
		pthread_mutex_lock(&p->mu);
		if (rc && !p->rc)
			p->rc = rc;
		s->state = S_WRITTEN;
		p->next_write++;
		pthread_cond_broadcast(&p->done);
	}
	p->writing = 0;
}

static void *worker(void *arg)
{
	ibstore_writer *w = arg;
	pool *p = w->pool;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->claim == p->head) /* woken by add_queued, pool_stop */
			pthread_cond_wait(&p->work, &p->mu);
		if (p->claim == p->head)
			break; /* stopping and nothing left */
		slot *s = &p->slots[p->claim % p->nslots];
		p->claim++;
		s->state = S_BUSY;
		int skip = p->rc;
		pthread_mutex_unlock(&p->mu);
		if (!skip) {
			s->rc = compress_into(&w->opts, s->data, s->len, &s->cbuf, &s->cbuf_cap,
					      &s->codec, &s->stored, &s->slen);
			if (!s->rc)
				s->hash = ib_hash(s->stored, s->slen, s->id);
		}
		pthread_mutex_lock(&p->mu);
		s->state = S_DONE;
		if (!p->writing)
			write_completed(w, p);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void pool_stop(ibstore_writer *w)
{
	pool *p = w->pool;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
}

static void pool_free(ibstore_writer *w)
{
	pool *p = w->pool;
	if (!p)
		return;
	pool_stop(w);
	for (size_t i = 0; i < p->nslots; i++) {
		free(p->slots[i].data);
		free(p->slots[i].cbuf);
	}
	free(p->slots);
	free(p->threads);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->mu);
	free(p);
	w->pool = NULL;
}

static int pool_start(ibstore_writer *w)
{
	int jobs = w->opts.jobs;
	pool *p = calloc(1, sizeof *p);
	if (!p)
		return ib_fail(w->errmsg, IBSTORE_ENOMEM, "out of memory");
	p->nslots = (size_t)jobs * 4;
	p->slots = calloc(p->nslots, sizeof *p->slots);
	p->threads = calloc((size_t)jobs, sizeof *p->threads);
	if (!p->slots || !p->threads) {
		free(p->slots);
		free(p->threads);
		free(p);
		return ib_fail(w->errmsg, IBSTORE_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	w->pool = p;
	for (int i = 0; i < jobs; i++) {
		int e = pthread_create(&p->threads[i], NULL, worker, w);
		if (e) {
			pool_free(w);
			return ib_fail(w->errmsg, IBSTORE_ENOMEM, "cannot start a writer thread: %s",
				     strerror(e));
		}
		p->nthreads++;
	}
	return 0;
}

/* Takes back written slots, oldest first (caller's thread, p->mu held). */
static int reclaim_written(ibstore_writer *w, pool *p)
{
	while (p->reclaim < p->next_write) {
		slot *s = &p->slots[p->reclaim % p->nslots];
		p->reclaim++;
		p->queued_bytes -= s->len;
		s->state = S_FREE;
		if (p->rc)
			continue;
		int rc = account(w, s->id, s->label, s->codec, s->slen, s->len, s->entry);
		if (rc)
			return rc;
	}
	if (p->rc) {
		w->state = W_FAILED;
		return ib_fail(w->errmsg, p->rc, "%s", w->ioerr);
	}
	return 0;
}

/* Waits until every queued slot is written and taken back. */
static int pool_drain(ibstore_writer *w)
{
	pool *p = w->pool;
	int rc;
	pthread_mutex_lock(&p->mu);
	while (!(rc = reclaim_written(w, p)) && p->reclaim < p->head)
		pthread_cond_wait(&p->done, &p->mu); /* woken by write_completed per slot */
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int add_queued(ibstore_writer *w, const void *data, size_t len, int32_t label,
		      const char *key, uint64_t *id_out)
{
	pool *p = w->pool;
	uint64_t id = w->next_id;
	int rc;

	/* Whether it fits in a shard is known only once compressed: such a
	 * sample is added synchronously after the queue has drained. */
	if (ib_first_record_offset(w->opts.alignment) + IB_RECORD_HEADER_SIZE + len >
	    w->opts.shard_size) {
		if ((rc = pool_drain(w)))
			return rc;
		return add_now(w, data, len, label, key, id_out);
	}
	pthread_mutex_lock(&p->mu);
	while (!(rc = reclaim_written(w, p)) &&
	       (p->head - p->reclaim == p->nslots ||
		(p->head > p->reclaim && p->queued_bytes + len > QUEUE_BYTES)))
		pthread_cond_wait(&p->done, &p->mu); /* woken by write_completed per slot */
	pthread_mutex_unlock(&p->mu);
	if (rc)
		return rc;
	if ((rc = grow_index(w, id)))
		return rc;
	if (key && *key && (rc = add_key(w, key, id)))
		return rc;

	/* The slot at head is free and no worker looks at it until queued. */
	slot *s = &p->slots[p->head % p->nslots];
	if (len > s->cap) {
		uint8_t *b = realloc(s->data, len);
		if (!b) {
			w->state = W_FAILED; /* the key is already recorded */
			return ib_fail(w->errmsg, IBSTORE_ENOMEM, "out of memory for a %zu-byte sample", len);
		}
		s->data = b;
		s->cap = len;
	}
	if (len)
		memcpy(s->data, data, len);
	s->len = len;
	s->id = id;
	s->label = label;
	s->rc = 0;
	pthread_mutex_lock(&p->mu);
	s->state = S_QUEUED;
	p->head++;
	p->queued_bytes += len;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	w->next_id = id + 1;
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
		return add_queued(w, data, len, label, key, id_out);
	return add_now(w, data, len, label, key, id_out);
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

IB_API int ibstore_writer_publish(ibstore_writer *w)
{
	if (!w)
		return IBSTORE_EINVAL;
	int rc = usable(w);
	if (rc)
		return rc;
	if (w->pool) {
		if ((rc = pool_drain(w)))
			return rc;
		pool_stop(w);
	}
	if (w->count == 0) {
		w->state = W_FAILED;
		return ib_fail(w->errmsg, IBSTORE_EINVAL, "no samples were added; nothing to publish");
	}
	w->state = W_FAILED; /* until the rename succeeds */
	if ((rc = close_shard(w)))
		return io_failed(w, rc);
	if ((rc = write_catalog(w)) || (rc = write_manifest(w)))
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
	if (w->pool) {
		pthread_mutex_lock(&w->pool->mu);
		if (!w->pool->rc)
			w->pool->rc = IBSTORE_ESTATE; /* abandon what is queued */
		pthread_mutex_unlock(&w->pool->mu);
		pool_free(w);
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
