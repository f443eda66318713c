/*
 * format.c — encode and decode format v1's on-disk structures.  This is the
 * only file that turns disk bytes into structs: every length is checked
 * against the bytes present before it is used.  Layouts: format/FORMAT.md.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "internal.h"

/* Little-endian loads and stores; on little-endian hosts they compile to
 * single moves. */
static inline void put32(uint8_t *p, uint32_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	memcpy(p, &v, 4);
}

static inline void put64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	memcpy(p, &v, 8);
}

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	return v;
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

/* Shard header and manifest share a shape: magic, version, body, and an
 * xxh3-64 of bytes 0..55 in bytes 56..63. */
static void seal64(uint8_t out[64])
{
	put64(out + 56, ib_hash(out, 56, 0));
}

static int check_sealed(const uint8_t *p, size_t len, const char *magic, const char *what,
			uint32_t *version, char *err)
{
	if (len < 64)
		return ib_fail(err, IBSTORE_ETRUNCATED, "%s truncated: %zu of 64 bytes", what,
			       len);
	if (memcmp(p, magic, 8) != 0)
		return ib_fail(err, IBSTORE_EFORMAT, "not an ibstore %s (bad magic)", what);
	*version = get32(p + 8);
	if (*version != IBSTORE_FORMAT_VERSION)
		return ib_fail(err, IBSTORE_EVERSION,
			       "%s has format version %" PRIu32 ", this library reads %d", what,
			       *version, IBSTORE_FORMAT_VERSION);
	if (get64(p + 56) != ib_hash(p, 56, 0))
		return ib_fail(err, IBSTORE_ECORRUPT, "%s checksum mismatch", what);
	return 0;
}

void ib_shard_header_encode(const ib_shard_header *h, uint8_t out[IB_SHARD_HEADER_SIZE])
{
	memset(out, 0, IB_SHARD_HEADER_SIZE);
	memcpy(out, IB_SHARD_MAGIC, 8);
	put32(out + 8, h->version);
	put32(out + 12, h->shard);
	memcpy(out + 16, h->uuid, 16);
	put32(out + 32, h->alignment);
	seal64(out);
}

int ib_shard_header_decode(const uint8_t *p, size_t len, ib_shard_header *h, char *err)
{
	int rc = check_sealed(p, len, IB_SHARD_MAGIC, "shard header", &h->version, err);
	if (rc)
		return rc;
	h->shard = get32(p + 12);
	memcpy(h->uuid, p + 16, 16);
	h->alignment = get32(p + 32);
	if (h->alignment == 0 || h->alignment > IB_MAX_ALIGNMENT ||
	    (h->alignment & (h->alignment - 1)))
		return ib_fail(err, IBSTORE_EFORMAT, "shard header: bad alignment %" PRIu32,
			       h->alignment);
	return 0;
}

void ib_manifest_encode(const ib_manifest *m, uint8_t out[IB_MANIFEST_SIZE])
{
	memset(out, 0, IB_MANIFEST_SIZE);
	memcpy(out, IB_MANIFEST_MAGIC, 8);
	put32(out + 8, m->version);
	memcpy(out + 16, m->uuid, 16);
	put64(out + 32, m->catalog_size);
	put64(out + 40, m->catalog_hash);
	seal64(out);
}

int ib_manifest_decode(const uint8_t *p, size_t len, ib_manifest *m, char *err)
{
	int rc = check_sealed(p, len, IB_MANIFEST_MAGIC, "manifest", &m->version, err);
	if (rc)
		return rc;
	if (len != IB_MANIFEST_SIZE)
		return ib_fail(err, IBSTORE_EFORMAT, "manifest has %zu bytes, expected %d", len,
			       IB_MANIFEST_SIZE);
	memcpy(m->uuid, p + 16, 16);
	m->catalog_size = get64(p + 32);
	m->catalog_hash = get64(p + 40);
	return 0;
}

/* The header check covers bytes 0..27 and, through the seed, the payload
 * hash, so any flipped header bit is caught even without the index. */
static uint32_t record_header_check(const uint8_t *p, uint64_t payload_hash)
{
	return (uint32_t)ib_hash(p, 28, payload_hash);
}

void ib_record_header_encode(const ib_record_header *h, uint8_t out[IB_RECORD_HEADER_SIZE])
{
	memset(out, 0, IB_RECORD_HEADER_SIZE);
	put32(out, IB_RECORD_MAGIC);
	out[4] = (uint8_t)h->codec;
	put64(out + 8, h->id);
	put32(out + 16, h->stored_size);
	put32(out + 20, h->size);
	put32(out + 24, (uint32_t)h->label);
	put64(out + 32, h->payload_hash);
	put32(out + 28, record_header_check(out, h->payload_hash));
}

int ib_record_header_decode(const uint8_t *p, size_t len, ib_record_header *h, char *err)
{
	if (len < IB_RECORD_HEADER_SIZE)
		return ib_fail(err, IBSTORE_ETRUNCATED, "record header truncated: %zu of %d bytes",
			       len, IB_RECORD_HEADER_SIZE);
	if (get32(p) != IB_RECORD_MAGIC)
		return ib_fail(err, IBSTORE_ECORRUPT, "no record header here (bad magic)");
	h->payload_hash = get64(p + 32);
	if (get32(p + 28) != record_header_check(p, h->payload_hash))
		return ib_fail(err, IBSTORE_ECORRUPT, "record header checksum mismatch");
	h->codec = p[4];
	if (h->codec > IB_MAX_CODEC || p[5] != 0 || get16(p + 6) != 0)
		return ib_fail(err, IBSTORE_EFORMAT, "record header: unknown codec %u or flags",
			       (unsigned)h->codec);
	h->id = get64(p + 8);
	h->stored_size = get32(p + 16);
	h->size = get32(p + 20);
	h->label = (int32_t)get32(p + 24);
	return 0;
}

void ib_index_entry_encode(const ib_index_entry *e, uint8_t out[IB_INDEX_ENTRY_SIZE])
{
	memset(out, 0, IB_INDEX_ENTRY_SIZE);
	put32(out, e->shard);
	put32(out + 4, e->stored_size);
	put64(out + 8, e->offset);
	put32(out + 16, e->size);
	put32(out + 20, (uint32_t)e->label);
	out[24] = (uint8_t)e->codec;
}

void ib_index_entry_decode(const uint8_t p[IB_INDEX_ENTRY_SIZE], ib_index_entry *e)
{
	e->shard = get32(p);
	e->stored_size = get32(p + 4);
	e->offset = get64(p + 8);
	e->size = get32(p + 16);
	e->label = (int32_t)get32(p + 20);
	/* reserved bytes must be 0: a non-zero one makes the codec unknown */
	e->codec = p[24] | ((get64(p + 24) >> 8) ? 0x100u : 0u);
}

void ib_shard_entry_encode(const ib_shard_entry *e, uint8_t out[IB_SHARD_ENTRY_SIZE])
{
	put64(out, e->size);
	put64(out + 8, e->hash);
	put64(out + 16, e->records);
	put64(out + 24, e->first_id);
}

void ib_shard_entry_decode(const uint8_t p[IB_SHARD_ENTRY_SIZE], ib_shard_entry *e)
{
	e->size = get64(p);
	e->hash = get64(p + 8);
	e->records = get64(p + 16);
	e->first_id = get64(p + 24);
}

void ib_summary_encode(const ib_summary *s, uint8_t out[IB_SUMMARY_SIZE])
{
	memset(out, 0, IB_SUMMARY_SIZE);
	put32(out, s->version);
	put32(out + 4, s->alignment);
	memcpy(out + 8, s->uuid, 16);
	put64(out + 24, s->created);
	put64(out + 32, s->samples);
	put32(out + 40, s->shards);
	put32(out + 44, s->labels);
	put64(out + 48, s->bytes_stored);
	put64(out + 56, s->bytes_raw);
	put64(out + 64, s->codec_count[0]);
	put64(out + 72, s->codec_count[1]);
	put64(out + 80, s->keys);
}

int ib_summary_decode(const uint8_t *p, size_t len, ib_summary *s, char *err)
{
	if (len < 4)
		return ib_fail(err, IBSTORE_EFORMAT, "catalog summary has %zu bytes", len);
	s->version = get32(p);
	if (s->version != IBSTORE_FORMAT_VERSION)
		return ib_fail(err, IBSTORE_EVERSION,
			       "catalog has format version %" PRIu32 ", this library reads %d",
			       s->version, IBSTORE_FORMAT_VERSION);
	if (len != IB_SUMMARY_SIZE)
		return ib_fail(err, IBSTORE_EFORMAT, "catalog summary has %zu bytes, expected %d",
			       len, IB_SUMMARY_SIZE);
	s->alignment = get32(p + 4);
	memcpy(s->uuid, p + 8, 16);
	s->created = get64(p + 24);
	s->samples = get64(p + 32);
	s->shards = get32(p + 40);
	s->labels = get32(p + 44);
	s->bytes_stored = get64(p + 48);
	s->bytes_raw = get64(p + 56);
	s->codec_count[0] = get64(p + 64);
	s->codec_count[1] = get64(p + 72);
	s->keys = get64(p + 80);
	if (s->alignment == 0 || s->alignment > IB_MAX_ALIGNMENT ||
	    (s->alignment & (s->alignment - 1)))
		return ib_fail(err, IBSTORE_EFORMAT, "catalog: bad alignment %" PRIu32,
			       s->alignment);
	return 0;
}

uint64_t ib_first_record_offset(uint32_t alignment)
{
	return ib_align_up(IB_SHARD_HEADER_SIZE, alignment);
}

int ib_record_check(const uint8_t *p, size_t len, uint64_t id, const ib_index_entry *want,
		    int verify, const uint8_t **payload, char *err)
{
	ib_record_header h;
	char why[IB_ERRMSG_LEN];
	int rc = ib_record_header_decode(p, len, &h, why);
	if (rc)
		return ib_fail(err, rc, "%s", why);
	if (h.id != id)
		return ib_fail(err, IBSTORE_ECORRUPT,
			       "record holds sample %" PRIu64 " (misdirected read or corrupt index)",
			       h.id);
	if (h.codec != want->codec || h.stored_size != want->stored_size ||
	    h.size != want->size || h.label != want->label)
		return ib_fail(err, IBSTORE_ECORRUPT, "record header disagrees with the index");
	if (len - IB_RECORD_HEADER_SIZE < h.stored_size)
		return ib_fail(err, IBSTORE_ETRUNCATED, "record payload truncated");
	const uint8_t *pl = p + IB_RECORD_HEADER_SIZE;
	if (verify && ib_hash(pl, h.stored_size, id) != h.payload_hash)
		return ib_fail(err, IBSTORE_ECORRUPT, "checksum mismatch");
	*payload = pl;
	return 0;
}

/* ---- run state ------------------------------------------------------ */

static void put_f64(uint8_t *p, double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	put64(p, u);
}

static double get_f64(const uint8_t *p)
{
	uint64_t u = get64(p);
	double v;
	memcpy(&v, &u, 8);
	return v;
}

void ib_f32_encode(const float *v, uint64_t n, uint8_t *out)
{
	for (uint64_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		put32(out + 4 * i, u);
	}
}

void ib_f32_decode(const uint8_t *p, uint64_t n, float *v)
{
	for (uint64_t i = 0; i < n; i++) {
		uint32_t u = get32(p + 4 * i);
		memcpy(&v[i], &u, 4);
	}
}

void ib_run_config_encode(const ib_run_config *c, uint8_t out[IB_RUN_CONFIG_SIZE])
{
	memset(out, 0, IB_RUN_CONFIG_SIZE);
	put32(out, IB_RUN_VERSION);
	put32(out + 4, c->policy);
	put32(out + 8, c->mode);
	put32(out + 12, c->epochs);
	put_f64(out + 16, c->ratio);
	put_f64(out + 24, c->delta);
	put_f64(out + 32, c->ema);
	put64(out + 40, c->seed);
	put64(out + 48, c->samples);
	put32(out + 56, c->batch_size);
	put32(out + 60, c->drop_last);
	put32(out + 64, c->rank);
	put32(out + 68, c->world);
	put32(out + 72, c->slice);
	put32(out + 76, c->checkpoint_every);
}

int ib_run_config_decode(const uint8_t *p, size_t len, ib_run_config *c, char *err)
{
	if (len != IB_RUN_CONFIG_SIZE)
		return ib_fail(err, IBSTORE_EFORMAT, "run configuration has %zu bytes, expected %d",
			       len, IB_RUN_CONFIG_SIZE);
	if (get32(p) != IB_RUN_VERSION)
		return ib_fail(err, IBSTORE_EVERSION, "run state version %" PRIu32
			       " is not supported (this library writes %d)", get32(p),
			       IB_RUN_VERSION);
	c->policy = get32(p + 4);
	c->mode = get32(p + 8);
	c->epochs = get32(p + 12);
	c->ratio = get_f64(p + 16);
	c->delta = get_f64(p + 24);
	c->ema = get_f64(p + 32);
	c->seed = get64(p + 40);
	c->samples = get64(p + 48);
	c->batch_size = get32(p + 56);
	c->drop_last = get32(p + 60);
	c->rank = get32(p + 64);
	c->world = get32(p + 68);
	c->slice = get32(p + 72);
	c->checkpoint_every = get32(p + 76);
	return 0;
}

void ib_run_progress_encode(const ib_run_progress *g, uint8_t out[IB_RUN_PROGRESS_SIZE])
{
	memset(out, 0, IB_RUN_PROGRESS_SIZE);
	put32(out, g->epoch);
	put32(out + 4, g->in_epoch);
	put64(out + 8, g->cursor);
	put32(out + 16, g->epochs_done);
	put64(out + 24, g->rejected);
}

int ib_run_progress_decode(const uint8_t *p, size_t len, ib_run_progress *g, char *err)
{
	if (len != IB_RUN_PROGRESS_SIZE)
		return ib_fail(err, IBSTORE_EFORMAT, "run progress has %zu bytes, expected %d", len,
			       IB_RUN_PROGRESS_SIZE);
	g->epoch = get32(p);
	g->in_epoch = get32(p + 4);
	g->cursor = get64(p + 8);
	g->epochs_done = get32(p + 16);
	g->rejected = get64(p + 24);
	return 0;
}

void ib_run_segment_encode(const ib_run_segment *s, uint8_t out[IB_RUN_SEGMENT_SIZE])
{
	memset(out, 0, IB_RUN_SEGMENT_SIZE);
	put32(out, s->gen);
	put32(out + 4, s->lineage);
	put64(out + 8, s->start);
}

int ib_run_segment_decode(const uint8_t *p, size_t len, ib_run_segment *s, char *err)
{
	if (len != IB_RUN_SEGMENT_SIZE)
		return ib_fail(err, IBSTORE_EFORMAT, "run segment has %zu bytes, expected %d", len,
			       IB_RUN_SEGMENT_SIZE);
	s->gen = get32(p);
	s->lineage = get32(p + 4);
	s->start = get64(p + 8);
	return 0;
}

void ib_plan_stats_encode(const ib_plan_stats *s, uint8_t out[IB_PLAN_STATS_SIZE])
{
	memset(out, 0, IB_PLAN_STATS_SIZE);
	put64(out, s->samples);
	put64(out + 8, s->kept);
	put64(out + 16, s->pruned);
	put64(out + 24, s->below_mean);
	put64(out + 32, s->unseen);
	put_f64(out + 40, s->threshold);
	put_f64(out + 48, s->weight_sum);
	put32(out + 56, s->prunes);
}

void ib_plan_stats_decode(const uint8_t p[IB_PLAN_STATS_SIZE], ib_plan_stats *s)
{
	s->samples = get64(p);
	s->kept = get64(p + 8);
	s->pruned = get64(p + 16);
	s->below_mean = get64(p + 24);
	s->unseen = get64(p + 32);
	s->threshold = get_f64(p + 40);
	s->weight_sum = get_f64(p + 48);
	s->prunes = get32(p + 56);
}

void ib_epoch_stats_encode(const ib_epoch_stats *s, uint8_t out[IB_EPOCH_STATS_SIZE])
{
	memset(out, 0, IB_EPOCH_STATS_SIZE);
	ib_plan_stats_encode(&s->plan, out);
	put32(out + 64, s->epoch);
	put64(out + 72, s->bytes_read);
	put64(out + 80, s->bytes_skipped);
	put_f64(out + 88, s->seconds);
}

int ib_epoch_stats_decode(const uint8_t *p, size_t len, ib_epoch_stats *s, char *err)
{
	if (len != IB_EPOCH_STATS_SIZE)
		return ib_fail(err, IBSTORE_EFORMAT, "epoch statistics have %zu bytes, expected %d",
			       len, IB_EPOCH_STATS_SIZE);
	ib_plan_stats_decode(p, &s->plan);
	s->epoch = get32(p + 64);
	s->bytes_read = get64(p + 72);
	s->bytes_skipped = get64(p + 80);
	s->seconds = get_f64(p + 88);
	return 0;
}

size_t ib_plan_record_size(uint64_t len)
{
	return IB_PLAN_STATS_SIZE + (size_t)len * 8;
}

ib_plan_stats ib_plan_stats_to_disk(const ibstore_plan_stats *s)
{
	return (ib_plan_stats){s->samples, s->kept, s->pruned, s->below_mean, s->unseen,
			       s->threshold, s->weight_sum, (uint32_t)s->prunes};
}

ibstore_plan_stats ib_plan_stats_from_disk(const ib_plan_stats *s)
{
	return (ibstore_plan_stats){s->samples, s->kept, s->pruned, s->below_mean, s->unseen,
				    s->threshold, s->weight_sum, (int)s->prunes};
}

void ib_plan_record_encode(const ibstore_plan *p, uint8_t *out)
{
	ib_plan_stats ps = ib_plan_stats_to_disk(&p->stats);
	ib_plan_stats_encode(&ps, out);
	uint8_t *ids = out + IB_PLAN_STATS_SIZE;
	for (uint64_t i = 0; i < p->len; i++)
		put32(ids + 4 * i, (uint32_t)p->ids[i]);
	ib_f32_encode(p->weights, p->len, ids + 4 * p->len);
}

int ib_plan_record_decode(const uint8_t *p, size_t size, uint64_t samples, ibstore_plan **out,
			  char *err)
{
	if (size < IB_PLAN_STATS_SIZE || (size - IB_PLAN_STATS_SIZE) % 8)
		return ib_fail(err, IBSTORE_EFORMAT, "run state: plan of %zu bytes is malformed", size);
	uint64_t len = (size - IB_PLAN_STATS_SIZE) / 8;
	ib_plan_stats ps;
	ib_plan_stats_decode(p, &ps);
	if (len > samples || ps.kept != len)
		return ib_fail(err, IBSTORE_EFORMAT, "run state: plan length is inconsistent");
	ibstore_plan *plan = calloc(1, sizeof *plan);
	uint64_t *ids = malloc((len ? len : 1) * 8);
	float *w = malloc((len ? len : 1) * 4);
	int rc = 0;
	if (!plan || !ids || !w) {
		rc = ib_fail(err, IBSTORE_ENOMEM, "out of memory");
		goto fail;
	}
	const uint8_t *ip = p + IB_PLAN_STATS_SIZE;
	for (uint64_t i = 0; i < len; i++) {
		ids[i] = get32(ip + 4 * i);
		if (ids[i] >= samples) {
			rc = ib_fail(err, IBSTORE_EFORMAT, "run state: plan holds an unknown id");
			goto fail;
		}
	}
	ib_f32_decode(ip + 4 * len, len, w);
	plan->len = len;
	plan->ids = ids;
	plan->weights = w;
	plan->stats = ib_plan_stats_from_disk(&ps);
	*out = plan;
	return 0;
fail:
	free(plan);
	free(ids);
	free(w);
	return rc;
}
