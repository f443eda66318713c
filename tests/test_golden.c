/*
 * test_golden.c — the golden datasets of format/golden/ against their
 * expected decodes (<name>.expect, written by tests/make_golden.c together
 * with <name>.json).  Two readers are checked: the library (open, info,
 * locate, read, keys, class names, attributes, verify) and a small
 * independent decoder written from format/FORMAT.md alone (manifest, shard
 * headers, record headers, padding, checksums, lz4, and every LMDB
 * database of the catalog), so the files, the spec and the code agree.
 *
 * The golden directory comes from the GOLDEN_DIR environment variable and
 * is only read: files are opened O_RDONLY and LMDB with MDB_RDONLY |
 * MDB_NOLOCK, which creates no lock file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <lz4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "fixture.h"
#include "ibstore.h"

#define MAX_SAMPLES 64
#define MAX_SHARDS 8
#define MAX_NAMED 16
#define MAX_SIZE (1u << 20)
#define NO_KEY NULL

/* ---- the .expect file ---------------------------------------------------- */

typedef struct exp_sample {
	uint64_t id;
	char *key;     /* NULL: none */
	int32_t label; /* IBSTORE_NO_LABEL: none */
	uint32_t size, stored_size;
	uint32_t codec;
	uint32_t shard;
	uint64_t offset;
	uint64_t xxh3;
	char *hex; /* NULL when not given */
} exp_sample;

typedef struct exp_named {
	int32_t label; /* classes */
	char *name;    /* attribute name or class name */
	char *value;   /* attribute value */
} exp_named;

typedef struct expect {
	const char *name;
	char dir[4096];
	ibstore_info info;
	uint64_t catalog_size, catalog_hash;
	uint64_t shard_size[MAX_SHARDS], shard_hash[MAX_SHARDS];
	uint32_t nshard_lines;
	exp_sample s[MAX_SAMPLES];
	size_t ns;
	exp_named cls[MAX_NAMED];
	size_t ncls;
	exp_named attr[MAX_NAMED];
	size_t nattr;
} expect;

static const char *golden_dir(void)
{
	const char *d = getenv("GOLDEN_DIR");
	if (!d || !*d)
		fail_msg("GOLDEN_DIR is not set (meson sets it to format/golden)");
	return d;
}

static void parse_hex(const char *h, uint8_t *out, size_t n)
{
	assert_int_equal(strlen(h), 2 * n);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void parse_uuid(const char *h, uint8_t uuid[16])
{
	parse_hex(h, uuid, 16);
}

static char *dup_or_null(const char *tok)
{
	return strcmp(tok, "-") == 0 ? NULL : strdup(tok);
}

static uint32_t codec_of(const char *name)
{
	if (!strcmp(name, "none"))
		return IBSTORE_CODEC_NONE;
	if (!strcmp(name, "lz4"))
		return IBSTORE_CODEC_LZ4;
	fail_msg("unknown codec '%s' in .expect", name);
	return 99;
}

/* "word rest of line": splits off the first word of s. */
static char *split_word(char *s)
{
	char *sp = strchr(s, ' ');
	assert_non_null(sp);
	*sp = '\0';
	return sp + 1;
}

static void parse_line(expect *e, char *line)
{
	char *nl = strchr(line, '\n');
	if (nl)
		*nl = '\0';
	if (line[0] == '#' || line[0] == '\0')
		return;
	char *rest = split_word(line);
	ibstore_info *in = &e->info;
	if (!strcmp(line, "dataset")) {
		char uuid[64];
		int n = sscanf(rest,
			       "%" SCNu32 " %63s %" SCNu64 " %" SCNu64 " %" SCNu32 " %" SCNu32
			       " %" SCNu32 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
			       " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
			       &in->format_version, uuid, &in->created, &in->samples, &in->shards,
			       &in->alignment, &in->labels, &in->keys, &in->bytes_stored,
			       &in->bytes_raw, &in->bytes_files, &in->codec_count[0],
			       &in->codec_count[1], &in->fixed_size, &in->max_size);
		assert_int_equal(n, 15);
		parse_uuid(uuid, in->uuid);
	} else if (!strcmp(line, "catalog")) {
		assert_int_equal(sscanf(rest, "%" SCNu64 " %" SCNx64, &e->catalog_size,
					&e->catalog_hash), 2);
	} else if (!strcmp(line, "shard")) {
		uint32_t n;
		uint64_t size, hash;
		assert_int_equal(sscanf(rest, "%" SCNu32 " %" SCNu64 " %" SCNx64, &n, &size, &hash),
				 3);
		assert_int_equal(n, e->nshard_lines);
		assert_true(n < MAX_SHARDS);
		e->shard_size[n] = size;
		e->shard_hash[n] = hash;
		e->nshard_lines++;
	} else if (!strcmp(line, "class")) {
		assert_true(e->ncls < MAX_NAMED);
		char *name = split_word(rest);
		e->cls[e->ncls].label = (int32_t)strtol(rest, NULL, 10);
		e->cls[e->ncls++].name = strdup(name);
	} else if (!strcmp(line, "attr")) {
		assert_true(e->nattr < MAX_NAMED);
		char *value = split_word(rest);
		e->attr[e->nattr].name = strdup(rest);
		e->attr[e->nattr++].value = strdup(value);
	} else if (!strcmp(line, "sample")) {
		assert_true(e->ns < MAX_SAMPLES);
		exp_sample *s = &e->s[e->ns];
		char key[1024], label[32], codec[16], hex[1024];
		int n = sscanf(rest,
			       "%" SCNu64 " %1023s %31s %" SCNu32 " %" SCNu32 " %15s %" SCNu32
			       " %" SCNu64 " %" SCNx64 " %1023s",
			       &s->id, key, label, &s->size, &s->stored_size, codec, &s->shard,
			       &s->offset, &s->xxh3, hex);
		assert_int_equal(n, 10);
		assert_int_equal(s->id, e->ns);
		s->key = dup_or_null(key);
		s->label = strcmp(label, "-") ? (int32_t)strtol(label, NULL, 10)
					      : IBSTORE_NO_LABEL;
		s->codec = codec_of(codec);
		s->hex = dup_or_null(hex);
		e->ns++;
	} else {
		fail_msg("unknown line '%s' in .expect", line);
	}
}

static int load_expect(void **state)
{
	expect *e = calloc(1, sizeof *e);
	if (!e)
		return -1;
	e->name = *state;
	snprintf(e->dir, sizeof e->dir, "%s/%s", golden_dir(), e->name);
	char path[4200];
	snprintf(path, sizeof path, "%s/%s.expect", golden_dir(), e->name);
	FILE *f = fopen(path, "r");
	if (!f) {
		free(e);
		return -1;
	}
	char line[8192];
	while (fgets(line, sizeof line, f))
		parse_line(e, line);
	fclose(f);
	if (e->ns == 0 || e->ns != e->info.samples || e->nshard_lines != e->info.shards) {
		free(e);
		return -1;
	}
	*state = e;
	return 0;
}

static int free_expect(void **state)
{
	expect *e = *state;
	for (size_t i = 0; i < e->ns; i++) {
		free(e->s[i].key);
		free(e->s[i].hex);
	}
	for (size_t i = 0; i < e->ncls; i++)
		free(e->cls[i].name);
	for (size_t i = 0; i < e->nattr; i++) {
		free(e->attr[i].name);
		free(e->attr[i].value);
	}
	free(e);
	return 0;
}

/* ---- small helpers ---------------------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* Reads a whole file of the golden tree (read-only). */
static uint8_t *slurp(const expect *e, const char *rel, size_t *len)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", e->dir, rel);
	return fx_read_file(path, len);
}

static void hex_of(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
}

static void check_decoded(const exp_sample *s, const uint8_t *buf, size_t len)
{
	assert_int_equal(len, s->size);
	if (XXH3_64bits(buf, len) != s->xxh3)
		fail_msg("sample %" PRIu64 ": xxh3 of the decoded bytes is %016" PRIx64
			 ", expected %016" PRIx64, s->id, XXH3_64bits(buf, len), s->xxh3);
	if (s->size > 0 && s->size < 256) {
		static char h[600];
		assert_non_null(s->hex);
		hex_of(buf, len, h);
		assert_string_equal(h, s->hex);
	} else {
		assert_null(s->hex);
	}
}

static ibstore_dataset *open_golden(const expect *e)
{
	ibstore_dataset *ds = NULL;
	int rc = ibstore_dataset_open(e->dir, &ds);
	if (rc)
		fail_msg("open %s: %s", e->dir, ibstore_dataset_errmsg(ds));
	return ds;
}

/* ---- through the library ------------------------------------------------- */

static void test_info_matches(void **state)
{
	const expect *e = *state;
	ibstore_dataset *ds = open_golden(e);
	ibstore_info in;
	assert_int_equal(ibstore_dataset_info_get(ds, &in), 0);
	const ibstore_info *w = &e->info;
	assert_int_equal(in.format_version, IBSTORE_FORMAT_VERSION);
	assert_int_equal(in.format_version, w->format_version);
	assert_memory_equal(in.uuid, w->uuid, 16);
	assert_int_equal(in.created, w->created);
	assert_int_equal(in.samples, w->samples);
	assert_int_equal(in.shards, w->shards);
	assert_int_equal(in.alignment, w->alignment);
	assert_int_equal(in.bytes_stored, w->bytes_stored);
	assert_int_equal(in.bytes_raw, w->bytes_raw);
	assert_int_equal(in.bytes_files, w->bytes_files);
	assert_int_equal(in.codec_count[0], w->codec_count[0]);
	assert_int_equal(in.codec_count[1], w->codec_count[1]);
	assert_int_equal(in.labels, w->labels);
	assert_int_equal(in.fixed_size, w->fixed_size);
	assert_int_equal(in.max_size, w->max_size);
	assert_int_equal(in.keys, w->keys);
	for (uint32_t s = 0; s < in.shards; s++) {
		char want[64];
		snprintf(want, sizeof want, "/shard-%06" PRIu32 ".ibr", s);
		const char *p = ibstore_dataset_shard_path(ds, s);
		assert_non_null(p);
		assert_non_null(strstr(p, want));
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal((uint64_t)st.st_size, e->shard_size[s]);
	}
	assert_null(ibstore_dataset_shard_path(ds, in.shards));
	ibstore_dataset_close(ds);
}

static void test_every_sample_reads_as_expected(void **state)
{
	const expect *e = *state;
	ibstore_dataset *ds = open_golden(e);
	uint8_t *buf = malloc(MAX_SIZE);
	assert_non_null(buf);
	for (size_t i = 0; i < e->ns; i++) {
		const exp_sample *s = &e->s[i];
		ibstore_location loc;
		assert_int_equal(ibstore_dataset_locate(ds, s->id, &loc), 0);
		assert_int_equal(loc.id, s->id);
		assert_int_equal(loc.shard, s->shard);
		assert_int_equal(loc.codec, s->codec);
		assert_int_equal(loc.offset, s->offset);
		assert_int_equal(loc.payload_offset, s->offset + 40);
		assert_int_equal(loc.stored_size, s->stored_size);
		assert_int_equal(loc.size, s->size);
		assert_int_equal(loc.label, s->label);
		size_t size = 12345;
		int32_t label = 99;
		int rc = ibstore_dataset_read(ds, s->id, buf, MAX_SIZE, &size, &label);
		if (rc)
			fail_msg("read %" PRIu64 ": %s", s->id, ibstore_dataset_errmsg(ds));
		check_decoded(s, buf, size);
		assert_int_equal(label, s->label);
	}
	ibstore_location loc;
	assert_int_equal(ibstore_dataset_locate(ds, e->ns, &loc), IBSTORE_ENOTFOUND);
	assert_int_equal(ibstore_dataset_read(ds, e->ns, buf, MAX_SIZE, NULL, NULL),
			 IBSTORE_ENOTFOUND);
	free(buf);
	ibstore_dataset_close(ds);
}

static void test_keys_map_both_ways(void **state)
{
	const expect *e = *state;
	ibstore_dataset *ds = open_golden(e);
	uint64_t keys = 0;
	for (size_t i = 0; i < e->ns; i++) {
		const exp_sample *s = &e->s[i];
		const char *key = "sentinel";
		assert_int_equal(ibstore_dataset_key(ds, s->id, &key), 0);
		if (s->key == NO_KEY) {
			assert_null(key);
			continue;
		}
		keys++;
		assert_non_null(key);
		assert_string_equal(key, s->key);
		uint64_t id = UINT64_MAX;
		assert_int_equal(ibstore_dataset_find_key(ds, s->key, &id), 0);
		assert_int_equal(id, s->id);
	}
	assert_int_equal(keys, e->info.keys);
	uint64_t id;
	assert_int_equal(ibstore_dataset_find_key(ds, "no/such/key", &id), IBSTORE_ENOTFOUND);
	ibstore_dataset_close(ds);
}

static void test_class_names_and_attrs_match(void **state)
{
	const expect *e = *state;
	ibstore_dataset *ds = open_golden(e);
	for (size_t i = 0; i < e->ncls; i++) {
		const char *n = ibstore_dataset_class_name(ds, e->cls[i].label);
		assert_non_null(n);
		assert_string_equal(n, e->cls[i].name);
	}
	/* labels of samples without a recorded name have none */
	for (size_t i = 0; i < e->ns; i++) {
		int named = 0;
		for (size_t c = 0; c < e->ncls; c++)
			named |= e->cls[c].label == e->s[i].label;
		if (!named)
			assert_null(ibstore_dataset_class_name(ds, e->s[i].label));
	}
	for (size_t i = 0; i < e->nattr; i++) {
		const char *v = ibstore_dataset_attr(ds, e->attr[i].name);
		assert_non_null(v);
		assert_string_equal(v, e->attr[i].value);
	}
	assert_null(ibstore_dataset_attr(ds, "no-such-attribute"));
	ibstore_dataset_close(ds);
}

static int count_problem(const ibstore_problem *p, void *ctx)
{
	(void)p;
	(*(int *)ctx)++;
	return 0;
}

static void test_verify_reports_no_problem(void **state)
{
	const expect *e = *state;
	ibstore_dataset *ds = open_golden(e);
	ibstore_verify_stats st;
	int problems = 0;
	int rc = ibstore_dataset_verify(ds, count_problem, &problems, &st);
	if (rc)
		fail_msg("verify: %s", ibstore_dataset_errmsg(ds));
	assert_int_equal(problems, 0);
	assert_int_equal(st.records_checked, e->ns);
	assert_int_equal(st.records_bad, 0);
	assert_int_equal(st.shards_bad, 0);
	assert_int_equal(st.bytes_read, e->info.bytes_files);
	ibstore_dataset_close(ds);
}

/* ---- an independent decoder, from FORMAT.md alone ------------------------- */

static void test_directory_holds_exactly_the_dataset_files(void **state)
{
	const expect *e = *state;
	DIR *d = opendir(e->dir);
	assert_non_null(d);
	struct dirent *de;
	unsigned n = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		unsigned s;
		char tail;
		int shard = sscanf(de->d_name, "shard-%6u.ib%c", &s, &tail) == 2 && tail == 'r' &&
			    strlen(de->d_name) == 16 && s < e->info.shards;
		if (!shard && strcmp(de->d_name, "MANIFEST") && strcmp(de->d_name, "catalog"))
			fail_msg("unexpected entry %s in %s", de->d_name, e->dir);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 2 + e->info.shards);
}

static void test_manifest_follows_format_md(void **state)
{
	const expect *e = *state;
	size_t len, clen;
	uint8_t *m = slurp(e, "MANIFEST", &len);
	uint8_t *cat = slurp(e, "catalog/data.mdb", &clen);
	assert_int_equal(len, 64);
	assert_memory_equal(m, "IBSMANI\x01", 8);
	assert_int_equal(le32(m + 8), 1);
	assert_true(all_zero(m + 12, 4));
	assert_memory_equal(m + 16, e->info.uuid, 16);
	assert_int_equal(le64(m + 32), clen);
	assert_int_equal(le64(m + 32), e->catalog_size);
	assert_int_equal(le64(m + 40), XXH3_64bits(cat, clen));
	assert_int_equal(le64(m + 40), e->catalog_hash);
	assert_true(all_zero(m + 48, 8));
	assert_int_equal(le64(m + 56), XXH3_64bits(m, 56));
	free(cat);
	free(m);
}

/* Checks one record at `off` of shard file `f` against the expected sample
 * and returns the offset just past its payload. */
static uint64_t check_record(const uint8_t *f, size_t flen, uint64_t off, const exp_sample *s,
			     uint8_t *out)
{
	assert_true(off + 40 <= flen);
	const uint8_t *h = f + off;
	assert_memory_equal(h, "IBR1", 4);
	assert_int_equal(h[4], s->codec);
	assert_true(all_zero(h + 5, 3));
	assert_int_equal(le64(h + 8), s->id);
	assert_int_equal(le32(h + 16), s->stored_size);
	assert_int_equal(le32(h + 20), s->size);
	assert_int_equal((int32_t)le32(h + 24), s->label);
	uint64_t payload_hash = le64(h + 32);
	assert_int_equal(le32(h + 28), (uint32_t)XXH3_64bits_withSeed(h, 28, payload_hash));
	assert_true(off + 40 + s->stored_size <= flen);
	const uint8_t *p = h + 40;
	assert_int_equal(payload_hash, XXH3_64bits_withSeed(p, s->stored_size, s->id));
	if (s->codec == IBSTORE_CODEC_NONE) {
		assert_int_equal(s->stored_size, s->size);
		check_decoded(s, p, s->size);
	} else {
		int n = LZ4_decompress_safe((const char *)p, (char *)out, (int)s->stored_size,
					    (int)s->size);
		assert_int_equal(n, (int)s->size);
		assert_true(s->stored_size < s->size);
		check_decoded(s, out, (size_t)n);
	}
	return off + 40 + s->stored_size;
}

static void test_shards_follow_format_md(void **state)
{
	const expect *e = *state;
	uint32_t a = e->info.alignment;
	uint8_t *out = malloc(MAX_SIZE);
	assert_non_null(out);
	size_t next = 0; /* samples are laid out in id order across the shards */
	uint64_t files = 0;
	for (uint32_t sh = 0; sh < e->info.shards; sh++) {
		char rel[64];
		snprintf(rel, sizeof rel, "shard-%06" PRIu32 ".ibr", sh);
		size_t len;
		uint8_t *f = slurp(e, rel, &len);
		files += len;
		assert_int_equal(len, e->shard_size[sh]);
		assert_int_equal(XXH3_64bits(f, len), e->shard_hash[sh]);
		assert_true(len >= 64);
		assert_memory_equal(f, "IBSHARD\x01", 8);
		assert_int_equal(le32(f + 8), 1);
		assert_int_equal(le32(f + 12), sh);
		assert_memory_equal(f + 16, e->info.uuid, 16);
		assert_int_equal(le32(f + 32), a);
		assert_true(all_zero(f + 36, 20));
		assert_int_equal(le64(f + 56), XXH3_64bits(f, 56));
		uint64_t pos = 64, records = 0;
		while (next < e->ns && e->s[next].shard == sh) {
			const exp_sample *s = &e->s[next];
			uint64_t off = align_up(pos, a);
			assert_int_equal(off, s->offset);
			if (records == 0)
				assert_int_equal(off, align_up(64, a));
			assert_true(off <= len);
			assert_true(all_zero(f + pos, off - pos)); /* padding is zeros */
			pos = check_record(f, len, off, s, out);
			next++;
			records++;
		}
		assert_true(records > 0);
		assert_int_equal(pos, len); /* the file ends right after the last payload */
		free(f);
	}
	assert_int_equal(next, e->ns);
	assert_int_equal(files, e->info.bytes_files);
	free(out);
}

typedef struct lmdb_cat {
	MDB_env *env;
	MDB_txn *txn;
} lmdb_cat;

static void cat_open(lmdb_cat *c, const expect *e)
{
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/catalog", e->dir);
	assert_int_equal(mdb_env_create(&c->env), 0);
	assert_int_equal(mdb_env_set_maxdbs(c->env, 8), 0);
	int rc = mdb_env_open(c->env, dir, MDB_RDONLY | MDB_NOLOCK, 0644);
	if (rc)
		fail_msg("%s: %s", dir, mdb_strerror(rc));
	assert_int_equal(mdb_txn_begin(c->env, NULL, MDB_RDONLY, &c->txn), 0);
}

static void cat_close(lmdb_cat *c)
{
	mdb_txn_abort(c->txn);
	mdb_env_close(c->env);
}

static MDB_dbi cat_db(lmdb_cat *c, const char *name, unsigned flags, size_t entries)
{
	MDB_dbi dbi;
	int rc = mdb_dbi_open(c->txn, name, flags, &dbi);
	if (rc)
		fail_msg("database %s: %s", name, mdb_strerror(rc));
	unsigned got;
	assert_int_equal(mdb_dbi_flags(c->txn, dbi, &got), 0);
	assert_int_equal(got & (MDB_DUPSORT | MDB_DUPFIXED | MDB_INTEGERKEY | MDB_REVERSEKEY),
			 flags);
	MDB_stat st;
	assert_int_equal(mdb_stat(c->txn, dbi, &st), 0);
	assert_int_equal(st.ms_entries, entries);
	return dbi;
}

static MDB_val cat_get(lmdb_cat *c, MDB_dbi dbi, const void *k, size_t kl)
{
	MDB_val kv = {kl, (void *)k}, v;
	int rc = mdb_get(c->txn, dbi, &kv, &v);
	if (rc)
		fail_msg("catalog lookup: %s", mdb_strerror(rc));
	return v;
}

static void assert_cstring(MDB_val v, const char *want)
{
	assert_int_equal(v.mv_size, strlen(want) + 1);
	assert_memory_equal(v.mv_data, want, v.mv_size); /* includes the NUL */
}

static void test_catalog_follows_format_md(void **state)
{
	const expect *e = *state;
	lmdb_cat c;
	cat_open(&c, e);
	/* the main database holds the six named databases and nothing else */
	MDB_dbi main_db;
	assert_int_equal(mdb_dbi_open(c.txn, NULL, 0, &main_db), 0);
	MDB_stat st;
	assert_int_equal(mdb_stat(c.txn, main_db, &st), 0);
	assert_int_equal(st.ms_entries, 6);

	/* meta: "summary" and one "attr:<name>" per attribute */
	MDB_dbi meta = cat_db(&c, "meta", 0, 1 + e->nattr);
	MDB_val v = cat_get(&c, meta, "summary", 7);
	assert_int_equal(v.mv_size, 96);
	const uint8_t *p = v.mv_data;
	const ibstore_info *in = &e->info;
	assert_int_equal(le32(p), 1);
	assert_int_equal(le32(p + 4), in->alignment);
	assert_memory_equal(p + 8, in->uuid, 16);
	assert_int_equal(le64(p + 24), in->created);
	assert_int_equal(le64(p + 32), in->samples);
	assert_int_equal(le32(p + 40), in->shards);
	assert_int_equal(le32(p + 44), in->labels);
	assert_int_equal(le64(p + 48), in->bytes_stored);
	assert_int_equal(le64(p + 56), in->bytes_raw);
	assert_int_equal(le64(p + 64), in->codec_count[0]);
	assert_int_equal(le64(p + 72), in->codec_count[1]);
	assert_int_equal(le64(p + 80), in->keys);
	assert_true(all_zero(p + 88, 8));
	for (size_t i = 0; i < e->nattr; i++) {
		char k[600];
		int kl = snprintf(k, sizeof k, "attr:%s", e->attr[i].name);
		assert_cstring(cat_get(&c, meta, k, (size_t)kl), e->attr[i].value);
	}

	/* shards: u32 BE shard number -> size, hash, records, first_id (u64 LE) */
	MDB_dbi shards = cat_db(&c, "shards", 0, in->shards);
	for (uint32_t s = 0, first = 0; s < in->shards; s++) {
		uint8_t k[4];
		put_be32(k, s);
		v = cat_get(&c, shards, k, 4);
		assert_int_equal(v.mv_size, 32);
		p = v.mv_data;
		uint64_t records = 0;
		for (size_t i = 0; i < e->ns; i++)
			records += e->s[i].shard == s;
		assert_int_equal(le64(p), e->shard_size[s]);
		assert_int_equal(le64(p + 8), e->shard_hash[s]);
		assert_int_equal(le64(p + 16), records);
		assert_int_equal(le64(p + 24), first);
		first += (uint32_t)records;
	}

	/* index: "samples" -> 32-byte entries, entry of id at id * 32 */
	MDB_dbi index = cat_db(&c, "index", 0, 1);
	v = cat_get(&c, index, "samples", 7);
	assert_int_equal(v.mv_size, 32 * e->ns);
	for (size_t i = 0; i < e->ns; i++) {
		const exp_sample *s = &e->s[i];
		p = (const uint8_t *)v.mv_data + 32 * s->id;
		assert_int_equal(le32(p), s->shard);
		assert_int_equal(le32(p + 4), s->stored_size);
		assert_int_equal(le64(p + 8), s->offset);
		assert_int_equal(le32(p + 16), s->size);
		assert_int_equal((int32_t)le32(p + 20), s->label);
		assert_int_equal(p[24], s->codec);
		assert_true(all_zero(p + 25, 7));
	}

	/* ids: u64 BE id -> key + NUL; keyhash: u64 LE xxh3(key, seed "key")
	 * -> u64 BE id, sorted duplicates */
	MDB_dbi ids = cat_db(&c, "ids", 0, in->keys);
	MDB_dbi keyhash = cat_db(&c, "keyhash", MDB_DUPSORT | MDB_DUPFIXED, in->keys);
	for (size_t i = 0; i < e->ns; i++) {
		const exp_sample *s = &e->s[i];
		uint8_t idk[8], hk[8];
		put_be64(idk, s->id);
		MDB_val kv = {8, idk};
		if (s->key == NO_KEY) {
			assert_int_equal(mdb_get(c.txn, ids, &kv, &v), MDB_NOTFOUND);
			continue;
		}
		assert_cstring(cat_get(&c, ids, idk, 8), s->key);
		put_le64(hk, XXH3_64bits_withSeed(s->key, strlen(s->key), 0x6b6579));
		MDB_cursor *cur;
		assert_int_equal(mdb_cursor_open(c.txn, keyhash, &cur), 0);
		MDB_val hkv = {8, hk}, hv = {8, idk};
		assert_int_equal(mdb_cursor_get(cur, &hkv, &hv, MDB_GET_BOTH), 0);
		mdb_cursor_close(cur);
	}

	/* classes: u32 BE (label ^ 0x80000000) -> name + NUL */
	MDB_dbi classes = cat_db(&c, "classes", 0, e->ncls);
	for (size_t i = 0; i < e->ncls; i++) {
		uint8_t k[4];
		put_be32(k, (uint32_t)e->cls[i].label ^ 0x80000000u);
		assert_cstring(cat_get(&c, classes, k, 4), e->cls[i].name);
	}
	cat_close(&c);
}

/* The .expect facts agree with each other (so a hand edit cannot drift). */
static void test_expect_is_self_consistent(void **state)
{
	const expect *e = *state;
	uint64_t stored = 0, raw = 0, codecs[2] = {0, 0}, max = 0, keys = 0, files = 0;
	int32_t labels[MAX_SAMPLES];
	uint32_t nlabels = 0;
	for (size_t i = 0; i < e->ns; i++) {
		const exp_sample *s = &e->s[i];
		stored += s->stored_size;
		raw += s->size;
		codecs[s->codec]++;
		max = s->size > max ? s->size : max;
		keys += s->key != NO_KEY;
		int seen = s->label == IBSTORE_NO_LABEL;
		for (uint32_t l = 0; l < nlabels && !seen; l++)
			seen = labels[l] == s->label;
		if (!seen)
			labels[nlabels++] = s->label;
		assert_int_equal(s->offset % e->info.alignment, 0);
	}
	for (uint32_t s = 0; s < e->info.shards; s++)
		files += e->shard_size[s];
	assert_int_equal(stored, e->info.bytes_stored);
	assert_int_equal(raw, e->info.bytes_raw);
	assert_int_equal(codecs[0], e->info.codec_count[0]);
	assert_int_equal(codecs[1], e->info.codec_count[1]);
	assert_int_equal(max, e->info.max_size);
	assert_int_equal(keys, e->info.keys);
	assert_int_equal(nlabels, e->info.labels);
	assert_int_equal(files, e->info.bytes_files);
}

#define GOLDEN_TESTS(ds)                                                                  \
	{ds ": the .expect facts are self-consistent", test_expect_is_self_consistent,     \
	 load_expect, free_expect, ds},                                                    \
	{ds ": info matches", test_info_matches, load_expect, free_expect, ds},            \
	{ds ": every sample reads as expected", test_every_sample_reads_as_expected,       \
	 load_expect, free_expect, ds},                                                    \
	{ds ": keys map to ids and back", test_keys_map_both_ways, load_expect,            \
	 free_expect, ds},                                                                 \
	{ds ": class names and attributes match", test_class_names_and_attrs_match,        \
	 load_expect, free_expect, ds},                                                    \
	{ds ": verify reports no problem", test_verify_reports_no_problem, load_expect,    \
	 free_expect, ds},                                                                 \
	{ds ": the directory holds exactly the dataset files",                             \
	 test_directory_holds_exactly_the_dataset_files, load_expect, free_expect, ds},    \
	{ds ": MANIFEST follows FORMAT.md", test_manifest_follows_format_md, load_expect,  \
	 free_expect, ds},                                                                 \
	{ds ": shard files follow FORMAT.md", test_shards_follow_format_md, load_expect,   \
	 free_expect, ds},                                                                 \
	{ds ": catalog databases follow FORMAT.md", test_catalog_follows_format_md,        \
	 load_expect, free_expect, ds}

int main(void)
{
	const struct CMUnitTest tests[] = {
		GOLDEN_TESTS("none_align1"),
		GOLDEN_TESTS("lz4_align8"),
		GOLDEN_TESTS("auto_align4096"),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
