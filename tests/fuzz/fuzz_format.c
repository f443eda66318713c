/*
 * fuzz_format.c — the byte decoders of src/format.c, the only code that
 * turns disk bytes into structs: record headers and whole records against
 * an index entry (ib_record_check, then decoding), shard headers, the
 * MANIFEST, the catalog summary, index and shard-table entries, and the run
 * state's config/progress/epoch-statistics values.
 *
 * Input: byte 0 selects the decoder.  For a record check the next bytes are
 * the sample id (8), the index entry (32) and a verify flag (1); the rest is
 * the record as it would be read from the shard.  Seeds are real records
 * and headers of format/golden (IBSTORE_FUZZ_WRITE_SEEDS, see fuzz_common.h).
 */
#include "fuzz_common.h"

#include "format.h"
#include "internal.h"

#ifndef IBFUZZ_GOLDEN
#error "IBFUZZ_GOLDEN (format/golden) must be defined by the build"
#endif

enum { SEL_SHARD, SEL_MANIFEST, SEL_SUMMARY, SEL_RECHDR, SEL_ENTRIES, SEL_RUN, SEL_RECORD, SEL_N };

static uint8_t out[1 << 20];

static void check_record(const uint8_t *p, size_t n)
{
	if (n < 41)
		return;
	uint64_t id = 0;
	for (int i = 0; i < 8; i++)
		id |= (uint64_t)p[i] << (8 * i);
	ib_index_entry want;
	ib_index_entry_decode(p + 8, &want);
	int verify = p[40] & 1;
	p += 41;
	n -= 41;
	const uint8_t *payload = NULL;
	char err[IB_ERRMSG_LEN];
	if (ib_record_check(p, n, id, &want, verify, &payload, err))
		return;
	/* The payload lies inside the input, after the 40-byte header. */
	if (payload < p + IB_RECORD_HEADER_SIZE || payload + want.stored_size > p + n)
		abort();
	if (want.size <= sizeof out)
		ib_decompress(want.codec, payload, want.stored_size, out, want.size, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int sel = data[0] % SEL_N;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	char err[IB_ERRMSG_LEN];
	/* Decoders get an exact-size heap copy so ASan sees any over-read. */
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy)
		return 0;
	memcpy(copy, p, n);
	switch (sel) {
	case SEL_SHARD: {
		ib_shard_header h;
		if (ib_shard_header_decode(copy, n, &h, err) == 0 &&
		    (h.alignment == 0 || h.alignment > IB_MAX_ALIGNMENT ||
		     (h.alignment & (h.alignment - 1))))
			abort(); /* accepted a bad alignment */
		break;
	}
	case SEL_MANIFEST: {
		ib_manifest m;
		ib_manifest_decode(copy, n, &m, err);
		break;
	}
	case SEL_SUMMARY: {
		ib_summary s;
		ib_summary_decode(copy, n, &s, err);
		break;
	}
	case SEL_RECHDR: {
		ib_record_header h;
		ib_record_header_decode(copy, n, &h, err);
		break;
	}
	case SEL_ENTRIES:
		for (size_t i = 0; i + 32 <= n; i += 32) {
			ib_index_entry e;
			ib_shard_entry s;
			ib_index_entry_decode(copy + i, &e);
			ib_shard_entry_decode(copy + i, &s);
		}
		break;
	case SEL_RUN: {
		ib_run_config c;
		ib_run_progress g;
		ib_epoch_stats es;
		ib_run_config_decode(copy, n, &c, err);
		ib_run_progress_decode(copy, n, &g, err);
		ib_epoch_stats_decode(copy, n, &es, err);
		if (n >= IB_PLAN_STATS_SIZE) {
			ib_plan_stats ps;
			ib_plan_stats_decode(copy, &ps);
		}
		break;
	}
	default:
		check_record(copy, n);
	}
	free(copy);
	return 0;
}

/* Seeds: every record of the golden datasets, their shard headers and
 * manifests, a summary, run values. */
static void write_seeds(const char *dir)
{
	static const char *names[] = {"none_align1", "lz4_align8", "auto_align4096"};
	int k = 0;
	for (int d = 0; d < 3; d++) {
		char path[512], name[64];
		snprintf(path, sizeof path, "%s/%s", IBFUZZ_GOLDEN, names[d]);
		ibstore_dataset *ds;
		if (ibstore_dataset_open(path, &ds))
			abort();
		ibstore_info info;
		ibstore_dataset_info_get(ds, &info);
		for (uint64_t id = 0; id < info.samples && id < 4; id++) {
			ibstore_location loc;
			ibstore_dataset_locate(ds, id, &loc);
			size_t len;
			snprintf(path, sizeof path, "%s", ibstore_dataset_shard_path(ds, loc.shard));
			uint8_t *shard = fz_read(path, &len);
			size_t rec = 40 + (size_t)loc.stored_size;
			uint8_t *seed = malloc(42 + rec);
			seed[0] = SEL_RECORD;
			for (int i = 0; i < 8; i++)
				seed[1 + i] = (uint8_t)(id >> (8 * i));
			ib_index_entry e = {loc.shard, loc.stored_size, loc.offset, loc.size,
					    loc.label, loc.codec};
			ib_index_entry_encode(&e, seed + 9);
			seed[41] = 1;
			memcpy(seed + 42, shard + loc.offset, rec);
			snprintf(name, sizeof name, "record-%d", k++);
			fz_write_seed(dir, name, seed, 42 + rec);
			if (id == 0) {
				seed[0] = SEL_SHARD;
				memcpy(seed + 1, shard, 64);
				snprintf(name, sizeof name, "shard-header-%d", d);
				fz_write_seed(dir, name, seed, 65);
				seed[0] = SEL_RECHDR;
				memcpy(seed + 1, shard + loc.offset, 40);
				snprintf(name, sizeof name, "record-header-%d", d);
				fz_write_seed(dir, name, seed, 41);
			}
			free(seed);
			free(shard);
		}
		snprintf(path, sizeof path, "%s/%s/MANIFEST", IBFUZZ_GOLDEN, names[d]);
		size_t len;
		uint8_t *m = fz_read(path, &len);
		uint8_t seed[65];
		seed[0] = SEL_MANIFEST;
		memcpy(seed + 1, m, 64);
		snprintf(name, sizeof name, "manifest-%d", d);
		fz_write_seed(dir, name, seed, 65);
		free(m);
		ibstore_dataset_close(ds);
	}
	ib_summary s = {1, 8, {1, 2, 3}, 1700000000, 10, 1, 3, 1000, 2000, {4, 6}, 10};
	uint8_t seed[1 + IB_SUMMARY_SIZE];
	seed[0] = SEL_SUMMARY;
	ib_summary_encode(&s, seed + 1);
	fz_write_seed(dir, "summary", seed, sizeof seed);
	ib_run_config c = {0, 0, 0.5, 0.875, 0, 10, 7, 100, 16, 0, 0, 1, 0, 4};
	uint8_t rseed[1 + IB_RUN_CONFIG_SIZE];
	rseed[0] = SEL_RUN;
	ib_run_config_encode(&c, rseed + 1);
	fz_write_seed(dir, "run-config", rseed, sizeof rseed);
}

FZ_SEEDS_FROM(write_seeds)
