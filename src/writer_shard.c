/*
 * writer_shard.c — the shard files: a write buffer with periodic write-back,
 * large payloads written straight from memory, the per-shard xxh3 checksum,
 * size rollover and the shard table.  Runs on the caller's thread
 * (jobs <= 1) or on the one worker that appends (writer_pool.c); it reports
 * failures into w->ioerr, which the caller's thread turns into the message.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "catalog.h"
#include "format.h"
#include "internal.h"
#include "writer_int.h"

/*
 * I/O failures while a shard is half written leave the writer unusable.
 * The shard-writing code may run on a worker thread, so it reports into
 * w->ioerr; wr_io_failed() hands the message over on the caller's thread.
 */
static int wfatal(ibstore_writer *w, int err, const char *what)
{
	snprintf(w->ioerr, sizeof w->ioerr, "%s/shard-%06" PRIu32 ".ibr: %s: %s",
		 w->final_path, w->shard, what, strerror(err));
	return IBSTORE_EIO;
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

int wr_close_shard(ibstore_writer *w)
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
int wr_write_record(ibstore_writer *w, uint64_t id, int32_t label, uint32_t codec,
		    const void *stored, size_t slen, size_t len, uint64_t hash,
		    uint8_t entry[IB_INDEX_ENTRY_SIZE])
{
	uint32_t a = w->opts.alignment;
	int rc;
	if (w->fd >= 0 &&
	    ib_align_up(w->pos, a) + IB_RECORD_HEADER_SIZE + slen > w->opts.shard_size &&
	    (rc = wr_close_shard(w)))
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
