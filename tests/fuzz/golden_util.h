/*
 * golden_util.h — the three golden datasets of format/golden as fuzzing
 * templates: their shard files and every sample's pristine decoded bytes,
 * the oracle against which any byte a fuzzed dataset returns is checked.
 */
#ifndef IBSTORE_FUZZ_GOLDEN_UTIL_H
#define IBSTORE_FUZZ_GOLDEN_UTIL_H

#include "fuzz_common.h"

#include "ibstore.h"

#ifndef IBFUZZ_GOLDEN
#error "IBFUZZ_GOLDEN (format/golden) must be defined by the build"
#endif

#define GOLDEN_N 3

typedef struct golden {
	const char *name;
	char path[512];
	uint32_t shards;
	uint8_t *shard[4];
	size_t shard_len[4];
	uint64_t samples;
	uint8_t **sample; /* pristine decoded bytes */
	size_t *size;
	int32_t *label;
} golden;

static golden goldens[GOLDEN_N] = {{.name = "none_align1"}, {.name = "lz4_align8"},
				   {.name = "auto_align4096"}};

static inline void golden_load(void)
{
	for (int d = 0; d < GOLDEN_N; d++) {
		golden *g = &goldens[d];
		snprintf(g->path, sizeof g->path, "%s/%s", IBFUZZ_GOLDEN, g->name);
		ibstore_dataset *ds;
		if (ibstore_dataset_open(g->path, &ds)) {
			fprintf(stderr, "%s: %s\n", g->path, ibstore_dataset_errmsg(ds));
			abort();
		}
		ibstore_info info;
		ibstore_dataset_info_get(ds, &info);
		if (info.shards > 4)
			abort();
		g->shards = info.shards;
		for (uint32_t s = 0; s < info.shards; s++)
			g->shard[s] = fz_read(ibstore_dataset_shard_path(ds, s), &g->shard_len[s]);
		g->samples = info.samples;
		g->sample = calloc(info.samples, sizeof *g->sample);
		g->size = calloc(info.samples, sizeof *g->size);
		g->label = calloc(info.samples, sizeof *g->label);
		for (uint64_t i = 0; i < info.samples; i++) {
			g->sample[i] = malloc(info.max_size + 1);
			if (ibstore_dataset_read(ds, i, g->sample[i], info.max_size + 1, &g->size[i],
						 &g->label[i]))
				abort();
		}
		ibstore_dataset_close(ds);
	}
}

/* A sample a fuzzed dataset returned must be the pristine one, bit for bit. */
static inline void golden_check(const golden *g, uint64_t id, const void *p, size_t n, int32_t label)
{
	if (id >= g->samples || n != g->size[id] || label != g->label[id] ||
	    (n && memcmp(p, g->sample[id], n))) {
		fprintf(stderr, "WRONG BYTES: %s sample %llu\n", g->name, (unsigned long long)id);
		abort();
	}
}

#endif
