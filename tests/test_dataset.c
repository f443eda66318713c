/*
 * test_dataset.c — the writer and the reader together: round trips over
 * every codec and several alignments, random access, and every kind of bad
 * input the foundation promises to catch with its own clear error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "ibstore.h"

#define NSAMPLES 300

typedef struct fixture {
	char dir[256];
	char path[300];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f || fx_mkdtemp(f->dir, sizeof f->dir, "ibstore-test"))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/ds", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	int rc = fx_rmtree(f->dir);
	free(f);
	return rc;
}

/* Sample i: deterministic bytes, compressible when i is even. */
static size_t sample_bytes(uint64_t i, uint8_t *buf)
{
	size_t len = (i * 37) % 1500 + (i % 10 == 3 ? 0 : 1);
	uint64_t x = i * 0x9E3779B97F4A7C15ull + 1;
	for (size_t j = 0; j < len; j++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[j] = (i % 2) ? (uint8_t)x : (uint8_t)(j / 64 + i);
	}
	return len;
}

static int32_t sample_label(uint64_t i)
{
	return i % 11 == 0 ? IBSTORE_NO_LABEL : (int32_t)(i % 7);
}

static void sample_key(uint64_t i, char *buf, size_t cap)
{
	snprintf(buf, cap, "class%d/file-%05llu.bin", (int)(i % 7), (unsigned long long)i);
}

static void build(const char *path, ibstore_compress c, uint32_t align, uint64_t shard_size,
		  uint64_t n)
{
	ibstore_writer_opts o;
	ibstore_writer_opts_init(&o);
	o.compress = c;
	o.alignment = align;
	o.shard_size = shard_size;
	o.fsync = 0;
	fx_dataset d = {.samples = n, .max_len = 2048, .payload = sample_bytes,
			.label = sample_label, .key = sample_key, .opts = &o};
	ibstore_writer *w = fx_fill(path, &d);
	assert_int_equal(ibstore_writer_set_class_name(w, 3, "three"), 0);
	assert_int_equal(ibstore_writer_set_attr(w, "shape", "var"), 0);
	fx_publish(w);
}

static ibstore_dataset *open_ok(const char *path)
{
	ibstore_dataset *ds;
	int rc = ibstore_dataset_open(path, &ds);
	if (rc)
		fail_msg("open: %s", ibstore_dataset_errmsg(ds));
	return ds;
}

/* Opening must fail with `code` and a message containing `needle`. */
static void open_fails(const char *path, int code, const char *needle)
{
	ibstore_dataset *ds = NULL;
	int rc = ibstore_dataset_open(path, &ds);
	const char *msg = ibstore_dataset_errmsg(ds);
	if (rc != code || !strstr(msg, needle))
		fail_msg("open gave %d (%s), wanted %d with '%s'", rc, msg, code, needle);
	ibstore_dataset_close(ds);
}

static void check_all_samples(ibstore_dataset *ds, uint64_t n, uint32_t align)
{
	uint8_t want[2048], got[2048];
	/* a permutation, so access is random, not sequential */
	for (uint64_t k = 0; k < n; k++) {
		uint64_t i = (k * 7919) % n;
		size_t len = sample_bytes(i, want), size = 12345;
		int32_t label = 99;
		int rc = ibstore_dataset_read(ds, i, got, sizeof got, &size, &label);
		if (rc)
			fail_msg("read %llu: %s", (unsigned long long)i, ibstore_dataset_errmsg(ds));
		assert_int_equal(size, len);
		assert_memory_equal(got, want, len);
		assert_int_equal(label, sample_label(i));
		ibstore_location loc;
		assert_int_equal(ibstore_dataset_locate(ds, i, &loc), 0);
		assert_int_equal(loc.offset % align, 0);
		assert_int_equal(loc.payload_offset, loc.offset + 40);
		assert_int_equal(loc.size, len);
	}
}

static void test_round_trip_every_codec_and_alignment(void **state)
{
	fixture *f = *state;
	const ibstore_compress codecs[] = {IBSTORE_COMPRESS_NONE, IBSTORE_COMPRESS_LZ4,
					   IBSTORE_COMPRESS_LZ4HC, IBSTORE_COMPRESS_AUTO};
	const uint32_t aligns[] = {1, 8, 512, 4096};
	for (size_t c = 0; c < 4; c++) {
		for (size_t a = 0; a < 4; a++) {
			char path[400];
			snprintf(path, sizeof path, "%s/rt-%zu-%zu", f->dir, c, a);
			build(path, codecs[c], aligns[a], 64 << 10, NSAMPLES);
			ibstore_dataset *ds = open_ok(path);
			ibstore_info in;
			assert_int_equal(ibstore_dataset_info_get(ds, &in), 0);
			assert_int_equal(in.samples, NSAMPLES);
			assert_int_equal(in.labels, 7);
			assert_int_equal(in.alignment, aligns[a]);
			assert_int_equal(in.format_version, IBSTORE_FORMAT_VERSION);
			assert_int_equal(in.keys, NSAMPLES);
			assert_true(in.shards > 1);
			if (codecs[c] == IBSTORE_COMPRESS_NONE) {
				assert_int_equal(in.codec_count[IBSTORE_CODEC_LZ4], 0);
				assert_int_equal(in.bytes_stored, in.bytes_raw);
			} else {
				/* even samples compress, odd ones are random bytes */
				assert_true(in.codec_count[IBSTORE_CODEC_LZ4] > 0);
				assert_true(in.bytes_stored < in.bytes_raw);
			}
			if (codecs[c] == IBSTORE_COMPRESS_AUTO)
				assert_true(in.codec_count[IBSTORE_CODEC_NONE] > 0);
			check_all_samples(ds, NSAMPLES, aligns[a]);
			ibstore_verify_stats st;
			assert_int_equal(ibstore_dataset_verify(ds, NULL, NULL, &st), 0);
			assert_int_equal(st.records_checked, NSAMPLES);
			assert_int_equal(st.records_bad, 0);
			ibstore_dataset_close(ds);
		}
	}
}

static void test_shards_roll_over_at_the_size_limit(void **state)
{
	fixture *f = *state;
	build(f->path, IBSTORE_COMPRESS_NONE, 8, 16 << 10, NSAMPLES);
	ibstore_dataset *ds = open_ok(f->path);
	ibstore_info in;
	ibstore_dataset_info_get(ds, &in);
	assert_true(in.shards >= 10);
	for (uint32_t s = 0; s < in.shards; s++) {
		struct stat st;
		assert_int_equal(stat(ibstore_dataset_shard_path(ds, s), &st), 0);
		assert_true(st.st_size <= 16 << 10);
	}
	assert_null(ibstore_dataset_shard_path(ds, in.shards));
	ibstore_dataset_close(ds);
}

static void test_keys_map_to_ids_and_back(void **state)
{
	fixture *f = *state;
	build(f->path, IBSTORE_COMPRESS_NONE, 8, 1 << 20, NSAMPLES);
	ibstore_dataset *ds = open_ok(f->path);
	uint64_t id;
	assert_int_equal(ibstore_dataset_find_key(ds, "class3/file-00192.bin", &id), 0);
	assert_int_equal(id, 192);
	const char *key;
	assert_int_equal(ibstore_dataset_key(ds, 45, &key), 0);
	assert_string_equal(key, "class3/file-00045.bin");
	assert_int_equal(ibstore_dataset_find_key(ds, "class3/nope", &id), IBSTORE_ENOTFOUND);
	assert_non_null(strstr(ibstore_dataset_errmsg(ds), "class3/nope"));
	assert_string_equal(ibstore_dataset_class_name(ds, 3), "three");
	assert_null(ibstore_dataset_class_name(ds, 4));
	assert_string_equal(ibstore_dataset_attr(ds, "shape"), "var");
	assert_null(ibstore_dataset_attr(ds, "nothing"));
	ibstore_dataset_close(ds);
}

static void test_duplicate_key_is_rejected_and_nothing_added(void **state)
{
	fixture *f = *state;
	ibstore_writer *w;
	assert_int_equal(ibstore_writer_create(f->path, NULL, &w), 0);
	assert_int_equal(ibstore_writer_add(w, "a", 1, 0, "k", NULL), 0);
	assert_int_equal(ibstore_writer_add(w, "b", 1, 0, "k", NULL), IBSTORE_EEXIST);
	assert_non_null(strstr(ibstore_writer_errmsg(w), "duplicate key 'k'"));
	assert_int_equal(ibstore_writer_count(w), 1);
	assert_int_equal(ibstore_writer_add(w, "c", 1, 0, "k2", NULL), 0);
	assert_int_equal(ibstore_writer_publish(w), 0);
	ibstore_writer_free(w);
	ibstore_dataset *ds = open_ok(f->path);
	uint64_t id;
	assert_int_equal(ibstore_dataset_find_key(ds, "k2", &id), 0);
	assert_int_equal(id, 1);
	ibstore_dataset_close(ds);
}

static void test_read_and_locate_bounds(void **state)
{
	fixture *f = *state;
	build(f->path, IBSTORE_COMPRESS_NONE, 8, 1 << 20, 20);
	ibstore_dataset *ds = open_ok(f->path);
	uint8_t buf[4];
	ibstore_location loc;
	assert_int_equal(ibstore_dataset_locate(ds, 20, &loc), IBSTORE_ENOTFOUND);
	assert_int_equal(ibstore_dataset_read(ds, 1000, buf, sizeof buf, NULL, NULL),
			 IBSTORE_ENOTFOUND);
	assert_non_null(strstr(ibstore_dataset_errmsg(ds), "no sample 1000"));
	assert_int_equal(ibstore_dataset_read(ds, 1, buf, sizeof buf, NULL, NULL),
			 IBSTORE_EBUFSIZE);
	ibstore_dataset_close(ds);
}

static void flip_byte(const char *path, uint64_t off, uint8_t mask)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= mask;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

typedef struct seen {
	uint64_t ids[16];
	int n;
	int shard_digest;
} seen;

static int collect(const ibstore_problem *p, void *ctx)
{
	seen *s = ctx;
	if (p->id == UINT64_MAX)
		s->shard_digest++;
	else if (s->n < 16)
		s->ids[s->n++] = p->id;
	assert_non_null(p->message);
	return 0;
}

/* Flips one byte of sample `victim`'s record at `rel` bytes from its
 * header, then expects: read of it fails with a message naming it, every
 * other sample still reads, verify reports exactly that sample. */
static void corrupt_one_record(const char *path, uint64_t victim, uint64_t rel, uint8_t mask)
{
	ibstore_dataset *ds = open_ok(path);
	ibstore_location loc;
	assert_int_equal(ibstore_dataset_locate(ds, victim, &loc), 0);
	char shard[512];
	snprintf(shard, sizeof shard, "%s", ibstore_dataset_shard_path(ds, loc.shard));
	ibstore_dataset_close(ds);
	flip_byte(shard, loc.offset + rel, mask);

	ds = open_ok(path);
	uint8_t buf[2048];
	int rc = ibstore_dataset_read(ds, victim, buf, sizeof buf, NULL, NULL);
	assert_true(rc == IBSTORE_ECORRUPT || rc == IBSTORE_EFORMAT);
	char want[64];
	snprintf(want, sizeof want, "sample %llu", (unsigned long long)victim);
	if (!strstr(ibstore_dataset_errmsg(ds), want) ||
	    !strstr(ibstore_dataset_errmsg(ds), "shard-"))
		fail_msg("message does not name the sample and shard: %s",
			 ibstore_dataset_errmsg(ds));
	for (uint64_t i = 0; i < NSAMPLES; i++)
		if (i != victim)
			assert_int_equal(ibstore_dataset_read(ds, i, buf, sizeof buf, NULL, NULL), 0);
	seen s = {0};
	ibstore_verify_stats st;
	assert_int_equal(ibstore_dataset_verify(ds, collect, &s, &st), IBSTORE_ECORRUPT);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.ids[0], victim);
	assert_int_equal(st.records_bad, 1);
	assert_int_equal(st.records_checked, NSAMPLES);
	assert_int_equal(s.shard_digest, 1);
	ibstore_dataset_close(ds);
	flip_byte(shard, loc.offset + rel, mask); /* restore */
}

static void test_flipped_payload_byte_is_detected(void **state)
{
	fixture *f = *state;
	build(f->path, IBSTORE_COMPRESS_LZ4, 8, 64 << 10, NSAMPLES);
	corrupt_one_record(f->path, 42, 40, 0x01);           /* first payload byte, lz4 */
	corrupt_one_record(f->path, 43, 40 + 90, 0x80);      /* raw payload, 92 bytes */
	corrupt_one_record(f->path, NSAMPLES - 1, 41, 0x10); /* last sample */
}

static void test_flipped_header_bit_is_detected_in_every_field(void **state)
{
	fixture *f = *state;
	build(f->path, IBSTORE_COMPRESS_NONE, 16, 64 << 10, NSAMPLES);
	for (uint64_t rel = 0; rel < 40; rel++)
		corrupt_one_record(f->path, 100 + rel, rel, (uint8_t)(1u << (rel % 8)));
}

static void test_truncated_shard_refuses_to_open(void **state)
{
	fixture *f = *state;
	build(f->path, IBSTORE_COMPRESS_NONE, 8, 64 << 10, NSAMPLES);
	char shard[400];
	snprintf(shard, sizeof shard, "%s/shard-000001.ibr", f->path);
	struct stat st;
	assert_int_equal(stat(shard, &st), 0);
	assert_int_equal(truncate(shard, st.st_size - 1), 0);
	open_fails(f->path, IBSTORE_ETRUNCATED, "shard-000001.ibr");
	assert_int_equal(truncate(shard, 10), 0);
	open_fails(f->path, IBSTORE_ETRUNCATED, "shard-000001.ibr");
	assert_int_equal(truncate(shard, 0), 0);
	open_fails(f->path, IBSTORE_ETRUNCATED, "truncated");
}

static void test_missing_shard_refuses_to_open(void **state)
{
	fixture *f = *state;
	build(f->path, IBSTORE_COMPRESS_NONE, 8, 64 << 10, NSAMPLES);
	char shard[400];
	snprintf(shard, sizeof shard, "%s/shard-000002.ibr", f->path);
	assert_int_equal(unlink(shard), 0);
	open_fails(f->path, IBSTORE_ENOTFOUND, "shard-000002.ibr: shard missing");
}

static void test_wrong_magic_or_version_is_rejected(void **state)
{
	fixture *f = *state;
	build(f->path, IBSTORE_COMPRESS_NONE, 8, 64 << 10, NSAMPLES);
	char p[400];
	snprintf(p, sizeof p, "%s/shard-000000.ibr", f->path);
	flip_byte(p, 0, 0x20);
	open_fails(f->path, IBSTORE_EFORMAT, "bad magic");
	flip_byte(p, 0, 0x20);
	flip_byte(p, 8, 0x02); /* version 1 -> 3 */
	open_fails(f->path, IBSTORE_EVERSION, "format version 3");
	flip_byte(p, 8, 0x02);
	flip_byte(p, 20, 0x01); /* uuid byte: the seal catches it */
	open_fails(f->path, IBSTORE_ECORRUPT, "shard header checksum mismatch");
	flip_byte(p, 20, 0x01);
	snprintf(p, sizeof p, "%s/MANIFEST", f->path);
	flip_byte(p, 3, 0x01);
	open_fails(f->path, IBSTORE_EFORMAT, "not an ibstore manifest");
	flip_byte(p, 3, 0x01);
	flip_byte(p, 8, 0x04);
	open_fails(f->path, IBSTORE_EVERSION, "format version 5");
	flip_byte(p, 8, 0x04);
	ibstore_dataset_close(open_ok(f->path));
}

static void copy_file(const char *from, const char *to)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
	assert_int_equal(system(cmd), 0);
}

static void test_catalog_of_another_dataset_is_rejected(void **state)
{
	fixture *f = *state;
	char other[400], from[500], to[500];
	build(f->path, IBSTORE_COMPRESS_NONE, 8, 64 << 10, NSAMPLES);
	snprintf(other, sizeof other, "%s/other", f->dir);
	build(other, IBSTORE_COMPRESS_NONE, 8, 64 << 10, NSAMPLES);
	/* catalog alone: its digest is not the manifest's */
	snprintf(from, sizeof from, "%s/catalog/data.mdb", other);
	snprintf(to, sizeof to, "%s/catalog/data.mdb", f->path);
	copy_file(from, to);
	open_fails(f->path, IBSTORE_ECORRUPT, "does not match its digest");
	/* catalog and manifest together: the shards belong to another uuid */
	snprintf(from, sizeof from, "%s/MANIFEST", other);
	snprintf(to, sizeof to, "%s/MANIFEST", f->path);
	copy_file(from, to);
	open_fails(f->path, IBSTORE_EMISMATCH, "belongs to another dataset");
}

static void test_corrupt_catalog_is_caught_before_lmdb_opens_it(void **state)
{
	fixture *f = *state;
	build(f->path, IBSTORE_COMPRESS_NONE, 8, 64 << 10, NSAMPLES);
	char p[400];
	snprintf(p, sizeof p, "%s/catalog/data.mdb", f->path);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	for (off_t off = 0; off < st.st_size; off += st.st_size / 13 + 1) {
		flip_byte(p, (uint64_t)off, 0xff);
		open_fails(f->path, IBSTORE_ECORRUPT, "does not match its digest");
		flip_byte(p, (uint64_t)off, 0xff);
	}
	assert_int_equal(truncate(p, st.st_size / 2), 0);
	open_fails(f->path, IBSTORE_ETRUNCATED, "catalog/data.mdb");
}

static void test_foreign_paths_are_not_datasets(void **state)
{
	fixture *f = *state;
	open_fails(f->dir, IBSTORE_EFORMAT, "not an ibstore dataset");
	char p[400];
	snprintf(p, sizeof p, "%s/plain", f->dir);
	fx_write_file(p, "hello", 5);
	open_fails(p, IBSTORE_EFORMAT, "not a directory");
	snprintf(p, sizeof p, "%s/missing", f->dir);
	open_fails(p, IBSTORE_ENOTFOUND, "missing");
	assert_int_equal(mkdir(f->path, 0755), 0);
	static const char text[] = "this is not a manifest, it is some other text file of a size";
	fx_write_file(fx_path(f->path, "MANIFEST"), text, sizeof text - 1);
	open_fails(f->path, IBSTORE_ETRUNCATED, "manifest truncated");
}

/* A pack killed between writing its MANIFEST and the rename that publishes
 * it leaves a complete temporary directory: it must not open (found by
 * tests/campaign/crash). */
static void test_a_pack_temporary_directory_is_not_a_dataset(void **state)
{
	fixture *f = *state;
	char tmp[400], slash[410];
	build(f->path, IBSTORE_COMPRESS_NONE, 8, 64 << 10, NSAMPLES);
	snprintf(tmp, sizeof tmp, "%s/.ds.ibstore-tmp-1fa8c4e8", f->dir);
	assert_int_equal(rename(f->path, tmp), 0);
	open_fails(tmp, IBSTORE_EFORMAT, "temporary directory of a pack");
	snprintf(slash, sizeof slash, "%s//", tmp);
	open_fails(slash, IBSTORE_EFORMAT, "temporary directory of a pack");
	assert_int_equal(rename(tmp, f->path), 0);
	ibstore_dataset_close(open_ok(f->path)); /* renamed, it is a dataset again */
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."));
	closedir(d);
	return n;
}

static void test_empty_dataset_is_not_published(void **state)
{
	fixture *f = *state;
	ibstore_writer *w;
	assert_int_equal(ibstore_writer_create(f->path, NULL, &w), 0);
	assert_int_equal(ibstore_writer_publish(w), IBSTORE_EINVAL);
	assert_non_null(strstr(ibstore_writer_errmsg(w), "no samples"));
	ibstore_writer_free(w);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(count_entries(f->dir), 0);
}

static void test_record_larger_than_shard_is_rejected(void **state)
{
	fixture *f = *state;
	ibstore_writer_opts o;
	ibstore_writer_opts_init(&o);
	o.shard_size = 4096;
	o.fsync = 0;
	ibstore_writer *w;
	assert_int_equal(ibstore_writer_create(f->path, &o, &w), 0);
	static uint8_t big[8192];
	assert_int_equal(ibstore_writer_add(w, big, sizeof big, 1, "big", NULL), IBSTORE_ETOOBIG);
	assert_non_null(strstr(ibstore_writer_errmsg(w), "does not fit in a shard"));
	/* the writer stays usable and the refused sample left no trace */
	assert_int_equal(ibstore_writer_add(w, big, 100, 1, "big", NULL), 0);
	assert_int_equal(ibstore_writer_publish(w), 0);
	ibstore_writer_free(w);
	ibstore_dataset *ds = open_ok(f->path);
	ibstore_info in;
	ibstore_dataset_info_get(ds, &in);
	assert_int_equal(in.samples, 1);
	ibstore_dataset_close(ds);
}

static void test_existing_output_is_never_touched(void **state)
{
	fixture *f = *state;
	assert_int_equal(mkdir(f->path, 0755), 0);
	char p[400];
	snprintf(p, sizeof p, "%s/precious", f->path);
	fx_write_file(p, "keep me", 7);
	ibstore_writer *w;
	assert_int_equal(ibstore_writer_create(f->path, NULL, &w), IBSTORE_EEXIST);
	assert_non_null(strstr(ibstore_writer_errmsg(w), "already exists"));
	ibstore_writer_free(w);
	assert_int_equal(access(p, F_OK), 0);
	assert_int_equal(count_entries(f->dir), 1);
	assert_int_equal(count_entries(f->path), 1);

	/* the path appears while packing: publish refuses, nothing is replaced */
	char late[400];
	snprintf(late, sizeof late, "%s/late", f->dir);
	assert_int_equal(ibstore_writer_create(late, NULL, &w), 0);
	assert_int_equal(ibstore_writer_add(w, "x", 1, 0, NULL, NULL), 0);
	assert_int_equal(mkdir(late, 0755), 0);
	assert_int_equal(ibstore_writer_publish(w), IBSTORE_EEXIST);
	ibstore_writer_free(w);
	assert_int_equal(count_entries(late), 0);
	assert_int_equal(count_entries(f->dir), 2); /* ds and late, no temp dir */
}

static void test_unpublished_writer_leaves_nothing(void **state)
{
	fixture *f = *state;
	ibstore_writer *w;
	assert_int_equal(ibstore_writer_create(f->path, NULL, &w), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(ibstore_writer_add(w, "abc", 3, i, NULL, NULL), 0);
	assert_true(count_entries(f->dir) == 1); /* the hidden temporary directory */
	ibstore_writer_free(w);
	assert_int_equal(count_entries(f->dir), 0);
	assert_int_equal(access(f->path, F_OK), -1);
}

static void test_bad_writer_options_are_rejected(void **state)
{
	fixture *f = *state;
	ibstore_writer_opts o;
	ibstore_writer *w;
	const uint32_t bad_align[] = {0, 3, 8192, 100};
	for (size_t i = 0; i < 4; i++) {
		ibstore_writer_opts_init(&o);
		o.alignment = bad_align[i];
		assert_int_equal(ibstore_writer_create(f->path, &o, &w), IBSTORE_EINVAL);
		assert_non_null(strstr(ibstore_writer_errmsg(w), "alignment"));
		ibstore_writer_free(w);
	}
	ibstore_writer_opts_init(&o);
	o.shard_size = 100;
	assert_int_equal(ibstore_writer_create(f->path, &o, &w), IBSTORE_EINVAL);
	ibstore_writer_free(w);
	assert_int_equal(count_entries(f->dir), 0);
	ibstore_compress c;
	assert_int_equal(ibstore_compress_parse("lz4hc", &c), 0);
	assert_int_equal(c, IBSTORE_COMPRESS_LZ4HC);
	assert_int_equal(ibstore_compress_parse("zstd", &c), IBSTORE_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip_every_codec_and_alignment, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_shards_roll_over_at_the_size_limit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keys_map_to_ids_and_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_key_is_rejected_and_nothing_added,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_and_locate_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_payload_byte_is_detected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_flipped_header_bit_is_detected_in_every_field,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_shard_refuses_to_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_missing_shard_refuses_to_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_magic_or_version_is_rejected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_catalog_of_another_dataset_is_rejected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_catalog_is_caught_before_lmdb_opens_it,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_paths_are_not_datasets, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_pack_temporary_directory_is_not_a_dataset,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_dataset_is_not_published, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_record_larger_than_shard_is_rejected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_existing_output_is_never_touched, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unpublished_writer_leaves_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_writer_options_are_rejected, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
