/*
 * make_golden.c — writes the golden datasets of format/golden/ with the
 * library, and next to each one the expected decode of every sample:
 * <name>.json for people and other implementations, <name>.expect (one
 * line per fact) for tests/test_golden.c.  Both files are printed from the
 * same collected facts.
 *
 * Payloads come from fixed formulas (below), so a rerun produces the same
 * samples; only the dataset UUID, the creation time and therefore the
 * catalog bytes differ between runs.  Built by meson, never run by the
 * tests:
 *
 *     build/tests/make_golden format/golden
 *
 * refuses to overwrite an existing dataset (remove the old ones first).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ibstore.h"

#define MAX_SAMPLE 4096
#define HEX_LIMIT 256 /* samples below this size get their bytes in hex */

/* ---- payload formulas --------------------------------------------------- */

enum kind {
	K_TEXT,     /* compressible text */
	K_NOISE,    /* xorshift64 bytes: incompressible */
	K_ZEROS,    /* all zero */
	K_MARGINAL, /* noise with a zero tail: lz4 shrinks it by less than 1/16 */
};

/* Byte j of a noise sample with seed s: top byte of xorshift64 (13, 7, 17)
 * started from s * 0x9E3779B97F4A7C15 + 1, stepped once per byte. */
static void fill_noise(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t j = 0; j < len; j++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[j] = (uint8_t)(x >> 56);
	}
}

/* Text: the line "ibstore golden <seed> line <n>\n" repeated, cut at len. */
static void fill_text(uint8_t *p, size_t len, uint64_t seed)
{
	size_t j = 0;
	for (unsigned n = 0; j < len; n++) {
		char line[64];
		int k = snprintf(line, sizeof line, "ibstore golden %" PRIu64 " line %u\n", seed, n);
		for (int i = 0; i < k && j < len; i++)
			p[j++] = (uint8_t)line[i];
	}
}

static void fill(enum kind k, uint8_t *p, size_t len, uint64_t seed)
{
	switch (k) {
	case K_TEXT: fill_text(p, len, seed); break;
	case K_NOISE: fill_noise(p, len, seed); break;
	case K_ZEROS: memset(p, 0, len); break;
	case K_MARGINAL:
		/* the last len/20 bytes are zero */
		fill_noise(p, len - len / 20, seed);
		memset(p + len - len / 20, 0, len / 20);
		break;
	}
}

/* ---- the three datasets -------------------------------------------------- */

typedef struct sample_spec {
	enum kind kind;
	size_t len;
	uint64_t seed;
	int32_t label;
	const char *key; /* NULL: none */
	int codec;       /* the stored codec this sample is meant to exercise */
} sample_spec;

typedef struct class_spec {
	int32_t label;
	const char *name;
} class_spec;

typedef struct attr_spec {
	const char *name, *value;
} attr_spec;

typedef struct golden_spec {
	const char *name;
	const char *description;
	ibstore_compress compress;
	const char *compress_name;
	uint32_t alignment;
	uint64_t shard_size;
	const sample_spec *samples;
	size_t nsamples;
	const class_spec *classes;
	size_t nclasses;
	const attr_spec *attrs;
	size_t nattrs;
	uint32_t want_shards;
} golden_spec;

#define NL IBSTORE_NO_LABEL
#define NONE IBSTORE_CODEC_NONE
#define LZ4 IBSTORE_CODEC_LZ4

static const sample_spec none_samples[] = {
	{K_TEXT, 0, 0, 0, "a/empty.bin", NONE},
	{K_NOISE, 1, 1, 1, "a/one-byte.bin", NONE},
	{K_TEXT, 13, 2, 1, "a/text-13.txt", NONE},
	{K_NOISE, 64, 3, 2, "b/noise-64.bin", NONE},
	{K_TEXT, 300, 4, -7, NULL, NONE},
	{K_NOISE, 255, 5, INT32_MAX, "c/\xc3\xa9t\xc3\xa9.bin", NONE}, /* UTF-8 "été" */
	{K_ZEROS, 7, 6, INT32_MIN + 1, "c/zeros-7.bin", NONE},
};

static const sample_spec lz4_samples[] = {
	{K_TEXT, 200, 10, 0, "text-200.txt", LZ4},
	{K_NOISE, 100, 11, NL, "noise-100.bin", NONE},   /* lz4 would grow it */
	{K_ZEROS, 1000, 12, 1, "zeros-1000.bin", LZ4},
	{K_NOISE, 37, 13, NL, NULL, NONE},
	{K_MARGINAL, 400, 14, 2, "marginal-400.bin", LZ4}, /* shrinks a little: kept */
	{K_TEXT, 0, 15, 3, "empty.bin", NONE},            /* empty: always raw */
	{K_TEXT, 2000, 16, 0, "text-2000.txt", LZ4},
	{K_NOISE, 3, 17, NL, NULL, NONE},
};

static const sample_spec auto_samples[] = {
	{K_TEXT, 1500, 20, 0, "cat/0.txt", LZ4},
	{K_NOISE, 700, 21, 1, "dog/1.bin", NONE},
	{K_MARGINAL, 400, 22, -3, "neg/2.bin", NONE}, /* shrinks < 1/16: auto stores raw */
	{K_ZEROS, 3000, 23, NL, NULL, LZ4},
};

static const class_spec auto_classes[] = {
	{0, "cat"},
	{1, "dog"},
	{-3, "minus three"},
	{7, "unused class"},
};

static const attr_spec auto_attrs[] = {
	{"source", "make_golden"},
	{"description", "auto codec, 4096-byte alignment, two shards"},
};

static const class_spec none_classes[] = {
	{-7, "negative seven"},
};

static const golden_spec goldens[] = {
	{"none_align1", "codec none, alignment 1: no padding at all, an empty sample, "
	 "extreme labels, a UTF-8 key",
	 IBSTORE_COMPRESS_NONE, "none", 1, 1u << 20, none_samples,
	 sizeof none_samples / sizeof none_samples[0], none_classes, 1, NULL, 0, 1},
	{"lz4_align8", "compress lz4, alignment 8: compressible and incompressible payloads, "
	 "samples without label or key",
	 IBSTORE_COMPRESS_LZ4, "lz4", 8, 1u << 20, lz4_samples,
	 sizeof lz4_samples / sizeof lz4_samples[0], NULL, 0, NULL, 0, 1},
	{"auto_align4096", "compress auto, alignment 4096, shard size 12288: two shards, "
	 "class names and attributes",
	 IBSTORE_COMPRESS_AUTO, "auto", 4096, 12288, auto_samples,
	 sizeof auto_samples / sizeof auto_samples[0], auto_classes,
	 sizeof auto_classes / sizeof auto_classes[0], auto_attrs,
	 sizeof auto_attrs / sizeof auto_attrs[0], 2},
};

/* ---- output ------------------------------------------------------------- */

_Noreturn static void die(const char *what, const char *msg)
{
	fprintf(stderr, "make_golden: %s: %s\n", what, msg);
	exit(1);
}

static FILE *open_out(const char *dir, const char *name, const char *ext)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
	FILE *f = fopen(path, "wx");
	if (!f)
		die(path, "cannot create (does it exist already?)");
	return f;
}

static void json_string(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void hex(FILE *f, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
}

/* Keys, class names and attribute values go into .expect as tokens or as
 * the rest of a line; refuse what that cannot carry. */
static void check_token(const char *s, int rest_of_line)
{
	if (!*s || !strcmp(s, "-"))
		die(s, "empty or '-' cannot be written to .expect");
	for (const char *p = s; *p; p++)
		if (*p == '\n' || (!rest_of_line && (*p == ' ' || *p == '\t')))
			die(s, "whitespace cannot be written to .expect");
}

typedef struct facts {
	ibstore_info info;
	ibstore_location loc[16];
	uint64_t xxh[16];
	uint64_t shard_size[4], shard_hash[4];
	uint64_t catalog_size, catalog_hash;
} facts;

static void write_json(const char *dir, const golden_spec *g, const facts *x)
{
	FILE *f = open_out(dir, g->name, "json");
	const ibstore_info *in = &x->info;
	fprintf(f, "{\n  \"name\": ");
	json_string(f, g->name);
	fprintf(f, ",\n  \"description\": ");
	json_string(f, g->description);
	fprintf(f, ",\n  \"generator\": \"tests/make_golden.c\",\n");
	fprintf(f, "  \"format_version\": %" PRIu32 ",\n", in->format_version);
	fprintf(f, "  \"uuid\": \"");
	hex(f, in->uuid, 16);
	fprintf(f, "\",\n  \"created\": %" PRIu64 ",\n", in->created);
	fprintf(f, "  \"writer_options\": {\"compress\": \"%s\", \"alignment\": %" PRIu32
		   ", \"shard_size\": %" PRIu64 "},\n", g->compress_name, g->alignment, g->shard_size);
	fprintf(f, "  \"alignment\": %" PRIu32 ",\n", in->alignment);
	fprintf(f, "  \"samples\": %" PRIu64 ",\n", in->samples);
	fprintf(f, "  \"shards\": %" PRIu32 ",\n", in->shards);
	fprintf(f, "  \"labels\": %" PRIu32 ",\n", in->labels);
	fprintf(f, "  \"keys\": %" PRIu64 ",\n", in->keys);
	fprintf(f, "  \"bytes_stored\": %" PRIu64 ",\n", in->bytes_stored);
	fprintf(f, "  \"bytes_raw\": %" PRIu64 ",\n", in->bytes_raw);
	fprintf(f, "  \"bytes_files\": %" PRIu64 ",\n", in->bytes_files);
	fprintf(f, "  \"codec_count\": {\"none\": %" PRIu64 ", \"lz4\": %" PRIu64 "},\n",
		in->codec_count[0], in->codec_count[1]);
	fprintf(f, "  \"fixed_size\": %" PRIu64 ",\n", in->fixed_size);
	fprintf(f, "  \"max_size\": %" PRIu64 ",\n", in->max_size);
	fprintf(f, "  \"catalog\": {\"file\": \"catalog/data.mdb\", \"size\": %" PRIu64
		   ", \"xxh3\": \"%016" PRIx64 "\"},\n", x->catalog_size, x->catalog_hash);
	fprintf(f, "  \"shard_files\": [\n");
	for (uint32_t s = 0; s < in->shards; s++)
		fprintf(f, "    {\"shard\": %" PRIu32 ", \"file\": \"shard-%06" PRIu32
			   ".ibr\", \"size\": %" PRIu64 ", \"xxh3\": \"%016" PRIx64 "\"}%s\n",
			s, s, x->shard_size[s], x->shard_hash[s], s + 1 < in->shards ? "," : "");
	fprintf(f, "  ],\n  \"class_names\": [");
	for (size_t i = 0; i < g->nclasses; i++) {
		fprintf(f, "%s\n    {\"label\": %" PRId32 ", \"name\": ", i ? "," : "",
			g->classes[i].label);
		json_string(f, g->classes[i].name);
		fputc('}', f);
	}
	fprintf(f, "%s],\n  \"attrs\": {", g->nclasses ? "\n  " : "");
	for (size_t i = 0; i < g->nattrs; i++) {
		fprintf(f, "%s\n    ", i ? "," : "");
		json_string(f, g->attrs[i].name);
		fputs(": ", f);
		json_string(f, g->attrs[i].value);
	}
	fprintf(f, "%s},\n  \"sample_list\": [\n", g->nattrs ? "\n  " : "");
	for (size_t i = 0; i < g->nsamples; i++) {
		const sample_spec *s = &g->samples[i];
		const ibstore_location *l = &x->loc[i];
		uint8_t buf[MAX_SAMPLE];
		fill(s->kind, buf, s->len, s->seed);
		fprintf(f, "    {\"id\": %zu, \"key\": ", i);
		json_string(f, s->key);
		if (s->label == IBSTORE_NO_LABEL)
			fprintf(f, ", \"label\": null");
		else
			fprintf(f, ", \"label\": %" PRId32, s->label);
		fprintf(f, ", \"size\": %zu, \"stored_size\": %" PRIu32 ", \"codec\": \"%s\""
			   ", \"shard\": %" PRIu32 ", \"offset\": %" PRIu64 ", \"xxh3\": \"%016"
			   PRIx64 "\", \"hex\": ", s->len, l->stored_size,
			ibstore_codec_name((int)l->codec), l->shard, l->offset, x->xxh[i]);
		if (s->len < HEX_LIMIT) {
			fputc('"', f);
			hex(f, buf, s->len);
			fputc('"', f);
		} else {
			fputs("null", f);
		}
		fprintf(f, "}%s\n", i + 1 < g->nsamples ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	if (fclose(f))
		die(g->name, "writing the json failed");
}

static void write_expect(const char *dir, const golden_spec *g, const facts *x)
{
	FILE *f = open_out(dir, g->name, "expect");
	const ibstore_info *in = &x->info;
	fprintf(f, "# %s.expect: expected decode of format/golden/%s (tests/make_golden.c).\n"
		   "# Same facts as %s.json; read by tests/test_golden.c.  Fields:\n"
		   "# dataset format_version uuid created samples shards alignment labels keys\n"
		   "#         bytes_stored bytes_raw bytes_files codec_none codec_lz4 fixed_size"
		   " max_size\n"
		   "# catalog size xxh3 (of catalog/data.mdb, as in MANIFEST)\n"
		   "# shard   n size xxh3\n"
		   "# class   label name (rest of line)\n"
		   "# attr    name value (rest of line)\n"
		   "# sample  id key|- label|- size stored_size codec shard offset xxh3 hex|-\n"
		   "#         (hex of the decoded bytes for samples of 1..255 bytes, else -)\n",
		g->name, g->name, g->name);
	fprintf(f, "dataset %" PRIu32 " ", in->format_version);
	hex(f, in->uuid, 16);
	fprintf(f, " %" PRIu64 " %" PRIu64 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu64
		   " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
		   " %" PRIu64 "\n",
		in->created, in->samples, in->shards, in->alignment, in->labels, in->keys,
		in->bytes_stored, in->bytes_raw, in->bytes_files, in->codec_count[0],
		in->codec_count[1], in->fixed_size, in->max_size);
	fprintf(f, "catalog %" PRIu64 " %016" PRIx64 "\n", x->catalog_size, x->catalog_hash);
	for (uint32_t s = 0; s < in->shards; s++)
		fprintf(f, "shard %" PRIu32 " %" PRIu64 " %016" PRIx64 "\n", s, x->shard_size[s],
			x->shard_hash[s]);
	for (size_t i = 0; i < g->nclasses; i++)
		fprintf(f, "class %" PRId32 " %s\n", g->classes[i].label, g->classes[i].name);
	for (size_t i = 0; i < g->nattrs; i++)
		fprintf(f, "attr %s %s\n", g->attrs[i].name, g->attrs[i].value);
	for (size_t i = 0; i < g->nsamples; i++) {
		const sample_spec *s = &g->samples[i];
		const ibstore_location *l = &x->loc[i];
		uint8_t buf[MAX_SAMPLE];
		fill(s->kind, buf, s->len, s->seed);
		fprintf(f, "sample %zu %s ", i, s->key ? s->key : "-");
		if (s->label == IBSTORE_NO_LABEL)
			fputs("-", f);
		else
			fprintf(f, "%" PRId32, s->label);
		fprintf(f, " %zu %" PRIu32 " %s %" PRIu32 " %" PRIu64 " %016" PRIx64 " ", s->len,
			l->stored_size, ibstore_codec_name((int)l->codec), l->shard, l->offset,
			x->xxh[i]);
		if (s->len > 0 && s->len < HEX_LIMIT)
			hex(f, buf, s->len);
		else
			fputc('-', f);
		fputc('\n', f);
	}
	if (fclose(f))
		die(g->name, "writing the expect file failed");
}

/* ---- building and collecting -------------------------------------------- */

static void build(const char *path, const golden_spec *g)
{
	ibstore_writer_opts o;
	ibstore_writer_opts_init(&o);
	o.compress = g->compress;
	o.alignment = g->alignment;
	o.shard_size = g->shard_size;
	ibstore_writer *w;
	if (ibstore_writer_create(path, &o, &w))
		die(path, ibstore_writer_errmsg(w));
	uint8_t buf[MAX_SAMPLE];
	for (size_t i = 0; i < g->nsamples; i++) {
		const sample_spec *s = &g->samples[i];
		if (s->key) {
			check_token(s->key, 0);
		}
		fill(s->kind, buf, s->len, s->seed);
		uint64_t id;
		if (ibstore_writer_add(w, buf, s->len, s->label, s->key, &id) || id != i)
			die(path, ibstore_writer_errmsg(w));
	}
	for (size_t i = 0; i < g->nclasses; i++) {
		check_token(g->classes[i].name, 1);
		if (ibstore_writer_set_class_name(w, g->classes[i].label, g->classes[i].name))
			die(path, ibstore_writer_errmsg(w));
	}
	for (size_t i = 0; i < g->nattrs; i++) {
		check_token(g->attrs[i].name, 0);
		check_token(g->attrs[i].value, 1);
		if (ibstore_writer_set_attr(w, g->attrs[i].name, g->attrs[i].value))
			die(path, ibstore_writer_errmsg(w));
	}
	if (ibstore_writer_publish(w))
		die(path, ibstore_writer_errmsg(w));
	ibstore_writer_free(w);
}

/* Size and xxh3-64 (seed 0) of a whole file. */
static void hash_file(const char *path, uint64_t *size, uint64_t *hash)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die(path, "cannot open");
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		die(path, "out of memory");
	XXH3_64bits_reset(st);
	uint8_t b[4096];
	size_t n;
	uint64_t total = 0;
	while ((n = fread(b, 1, sizeof b, f)) > 0) {
		XXH3_64bits_update(st, b, n);
		total += n;
	}
	fclose(f);
	*size = total;
	*hash = XXH3_64bits_digest(st);
	XXH3_freeState(st);
}

/* Reads the published dataset back and checks that it exercises what the
 * spec says it does, so a library change cannot silently flatten it. */
static void collect(const char *path, const golden_spec *g, facts *x)
{
	ibstore_dataset *ds;
	if (ibstore_dataset_open(path, &ds))
		die(path, ibstore_dataset_errmsg(ds));
	if (ibstore_dataset_info_get(ds, &x->info))
		die(path, "info");
	if (x->info.shards != g->want_shards || x->info.shards > 4)
		die(path, "unexpected number of shards");
	for (size_t i = 0; i < g->nsamples; i++) {
		const sample_spec *s = &g->samples[i];
		uint8_t want[MAX_SAMPLE], got[MAX_SAMPLE];
		size_t size;
		int32_t label;
		fill(s->kind, want, s->len, s->seed);
		if (ibstore_dataset_locate(ds, i, &x->loc[i]) ||
		    ibstore_dataset_read(ds, i, got, sizeof got, &size, &label))
			die(path, ibstore_dataset_errmsg(ds));
		if (size != s->len || memcmp(got, want, size) || label != s->label)
			die(path, "a sample does not read back as written");
		if ((int)x->loc[i].codec != s->codec)
			die(path, "a sample is stored with another codec than intended");
		x->xxh[i] = XXH3_64bits(want, s->len);
	}
	for (uint32_t s = 0; s < x->info.shards; s++)
		hash_file(ibstore_dataset_shard_path(ds, s), &x->shard_size[s], &x->shard_hash[s]);
	char cat[4096];
	if (snprintf(cat, sizeof cat, "%s/catalog/data.mdb", path) >= (int)sizeof cat)
		die(path, "path too long");
	hash_file(cat, &x->catalog_size, &x->catalog_hash);
	if (ibstore_dataset_verify(ds, NULL, NULL, NULL))
		die(path, ibstore_dataset_errmsg(ds));
	ibstore_dataset_close(ds);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTPUT_DIR   (e.g. format/golden)\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	for (size_t k = 0; k < sizeof goldens / sizeof goldens[0]; k++) {
		const golden_spec *g = &goldens[k];
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, g->name);
		build(path, g);
		facts x;
		memset(&x, 0, sizeof x);
		collect(path, g, &x);
		write_json(dir, g, &x);
		write_expect(dir, g, &x);
		printf("%s: %" PRIu64 " samples in %" PRIu32 " shard(s)\n", path, x.info.samples,
		       x.info.shards);
	}
	return 0;
}
