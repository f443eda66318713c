/*
 * test_import.c — the importers (IDX, image folder, CIFAR), end to end:
 * synthetic inputs are built in a fresh temporary directory, packed through
 * an ibstore_writer, and read back sample by sample; bad inputs must fail
 * with their specific code, a message naming the file, and nothing left at
 * the output path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "import.h"
#include "fixture.h"

typedef struct fixture {
	fx_import x; /* directory, output path, writer, import context */
	unsigned long long progress_calls, progress_samples, progress_bytes;
} fixture;

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */
/* ---------------------------------------------------------------------- */

static void on_progress(void *ctx, unsigned long long samples, unsigned long long bytes)
{
	fixture *f = ctx;

	/* Progress never goes backwards. */
	assert_true(samples >= f->progress_samples);
	f->progress_calls++;
	f->progress_samples = samples;
	f->progress_bytes = bytes;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	if (!f || fx_import_setup(&f->x, "ibimport", 1)) {
		free(f);
		return -1;
	}
	f->x.c.progress = on_progress;
	f->x.c.progress_ctx = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx_import_teardown(state);
	return 0;
}

/* Path of `name` inside the temporary directory (static rotating buffers). */
static const char *tpath(const fixture *f, const char *name)
{
	return fx_path(f->x.dir, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	fx_write_file(path, data, len);
}

static void write_gz(const char *path, const void *data, size_t len)
{
	gzFile gz = gzopen(path, "wb");

	assert_non_null(gz);
	if (len > 0)
		assert_int_equal(gzwrite(gz, data, (unsigned)len), (int)len);
	assert_int_equal(gzclose(gz), Z_OK);
}

static void make_dirs(const fixture *f, const char *rel)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", f->x.dir, rel);
	for (char *p = path + strlen(f->x.dir) + 1; *p != '\0'; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
	}
	mkdir(path, 0755);
}

/*
 * Writes file `rel` whose content is its path below the first component,
 * which is the key the folder importer gives it ("in/cat/1.jpg" holds
 * "cat/1.jpg").
 */
static void put_named_file(const fixture *f, const char *rel)
{
	const char *key = strchr(rel, '/');

	assert_non_null(key);
	write_file(tpath(f, rel), key + 1, strlen(key + 1));
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static unsigned char pixel(uint32_t i, uint32_t j)
{
	return (unsigned char)(i * 31u + j * 7u + 1u);
}

static unsigned char label_of(uint32_t i)
{
	return (unsigned char)(i % 10u);
}

/* IDX images file bytes with a given magic and dims; caller frees. */
static unsigned char *idx_images(uint32_t magic, uint32_t n, uint32_t h, uint32_t w,
				 size_t *len)
{
	size_t npix = (size_t)n * h * w;
	unsigned char *b = malloc(16 + npix);

	assert_non_null(b);
	put_be32(b, magic);
	put_be32(b + 4, n);
	put_be32(b + 8, h);
	put_be32(b + 12, w);
	for (uint32_t i = 0; i < n; i++)
		for (size_t j = 0; j < (size_t)h * w; j++)
			b[16 + i * (size_t)h * w + j] = pixel(i, (uint32_t)j);
	*len = 16 + npix;
	return b;
}

static unsigned char *idx_labels(uint32_t magic, uint32_t n, size_t *len)
{
	unsigned char *b = malloc(8 + (size_t)n);

	assert_non_null(b);
	put_be32(b, magic);
	put_be32(b + 4, n);
	for (uint32_t i = 0; i < n; i++)
		b[8 + i] = label_of(i);
	*len = 8 + (size_t)n;
	return b;
}

/* Writes a consistent IDX pair (raw or gzip each) named img/lab. */
static void write_idx_pair(const fixture *f, const char *img, int img_gz, const char *lab,
			   int lab_gz, uint32_t n, uint32_t h, uint32_t w)
{
	size_t ilen, llen;
	unsigned char *ib = idx_images(0x803, n, h, w, &ilen);
	unsigned char *lb = idx_labels(0x801, n, &llen);

	(img_gz ? write_gz : write_file)(tpath(f, img), ib, ilen);
	(lab_gz ? write_gz : write_file)(tpath(f, lab), lb, llen);
	free(ib);
	free(lb);
}

static ibstore_dataset *publish_and_open(fixture *f)
{
	ibstore_dataset *ds = NULL;
	int rc = ibstore_writer_publish(f->x.w);

	if (rc != 0)
		fail_msg("publish: %s", ibstore_writer_errmsg(f->x.w));
	rc = ibstore_dataset_open(f->x.out, &ds);
	if (rc != 0)
		fail_msg("open: %s", ibstore_dataset_errmsg(ds));
	return ds;
}

/*
 * A failed import: the code and the file named in the message are as
 * expected, and freeing the unpublished writer leaves nothing behind.
 */
static void expect_failure(fixture *f, int rc, int code, const char *names)
{
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (rc != code)
		fail_msg("expected %s (%d), got %s (%d): %s", ibstore_strerror(code), code,
			 ibstore_strerror(rc), rc, f->x.err);
	if (strstr(f->x.err, names) == NULL)
		fail_msg("message does not name \"%s\": %s", names, f->x.err);
	ibstore_writer_free(f->x.w);
	f->x.w = NULL;
	assert_int_equal(stat(f->x.out, &st), -1);
	assert_int_equal(errno, ENOENT);
	/* No hidden temporary directory is left beside the output either. */
	d = opendir(f->x.dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] == '.' && strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			fail_msg("left behind: %s", de->d_name);
	closedir(d);
}

static void expect_message(const fixture *f, const char *part)
{
	if (strstr(f->x.err, part) == NULL)
		fail_msg("message lacks \"%s\": %s", part, f->x.err);
}

/* Reads every sample of an IDX-built dataset and checks bytes and label. */
static void check_idx_dataset(fixture *f, uint32_t n, uint32_t h, uint32_t w)
{
	ibstore_dataset *ds = publish_and_open(f);
	ibstore_info info;
	size_t sz = (size_t)h * w;
	unsigned char *buf = malloc(sz);
	char shape[32];

	assert_non_null(buf);
	assert_int_equal(ibstore_dataset_info_get(ds, &info), 0);
	assert_int_equal(info.samples, n);
	assert_int_equal(info.labels, n < 10 ? n : 10);
	assert_int_equal(info.fixed_size, sz);
	assert_string_equal(ibstore_dataset_attr(ds, "source"), "idx");
	snprintf(shape, sizeof(shape), "%ux%u", h, w);
	assert_string_equal(ibstore_dataset_attr(ds, "shape"), shape);
	for (uint32_t i = 0; i < n; i++) {
		size_t got = 0;
		int32_t label = -1;

		assert_int_equal(ibstore_dataset_read(ds, i, buf, sz, &got, &label), 0);
		assert_int_equal(got, sz);
		assert_int_equal(label, label_of(i));
		for (size_t j = 0; j < sz; j++)
			if (buf[j] != pixel(i, (uint32_t)j))
				fail_msg("image %u byte %zu differs", i, j);
	}
	free(buf);
	ibstore_dataset_close(ds);
}

/* ---------------------------------------------------------------------- */
/* IDX                                                                     */
/* ---------------------------------------------------------------------- */

static void test_idx_raw_round_trips_every_image_and_label(void **state)
{
	fixture *f = *state;

	write_idx_pair(f, "img", 0, "lab", 0, 37, 5, 4);
	assert_int_equal(import_idx(&f->x.c, tpath(f, "img"), tpath(f, "lab")), 0);
	assert_true(f->progress_calls >= 1);
	assert_int_equal(f->progress_samples, 37);
	check_idx_dataset(f, 37, 5, 4);
}

static void test_idx_gzip_round_trips_every_image_and_label(void **state)
{
	fixture *f = *state;

	write_idx_pair(f, "img.gz", 1, "lab.gz", 1, 50, 7, 3);
	assert_int_equal(import_idx(&f->x.c, tpath(f, "img.gz"), tpath(f, "lab.gz")), 0);
	check_idx_dataset(f, 50, 7, 3);
}

static void test_idx_gzip_and_raw_files_can_be_mixed(void **state)
{
	fixture *f = *state;

	write_idx_pair(f, "img.gz", 1, "lab", 0, 12, 2, 9);
	assert_int_equal(import_idx(&f->x.c, tpath(f, "img.gz"), tpath(f, "lab")), 0);
	check_idx_dataset(f, 12, 2, 9);
}

static void test_idx_progress_is_reported_during_long_imports(void **state)
{
	fixture *f = *state;

	write_idx_pair(f, "img.gz", 1, "lab.gz", 1, 9000, 2, 2);
	assert_int_equal(import_idx(&f->x.c, tpath(f, "img.gz"), tpath(f, "lab.gz")), 0);
	/* At 4096, 8192 and once at the end. */
	assert_true(f->progress_calls >= 3);
	assert_int_equal(f->progress_samples, 9000);
	assert_true(f->progress_bytes > 0);
	check_idx_dataset(f, 9000, 2, 2);
}

static void test_idx_wrong_magic_is_rejected(void **state)
{
	fixture *f = *state;
	size_t ilen, llen;
	unsigned char *ib = idx_images(0x12345678, 3, 2, 2, &ilen);
	unsigned char *lb = idx_labels(0x801, 3, &llen);

	write_file(tpath(f, "img"), ib, ilen);
	write_file(tpath(f, "lab"), lb, llen);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img"), tpath(f, "lab")),
		       IBSTORE_EFORMAT, tpath(f, "img"));
	expect_message(f, "0x12345678");
	free(ib);
	free(lb);
}

static void test_idx_labels_file_given_as_images_is_rejected(void **state)
{
	fixture *f = *state;

	write_idx_pair(f, "img", 0, "lab", 0, 3, 2, 2);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "lab"), tpath(f, "img")),
		       IBSTORE_EFORMAT, tpath(f, "lab"));
	expect_message(f, "labels");
}

static void test_idx_non_byte_element_type_is_rejected(void **state)
{
	fixture *f = *state;
	size_t ilen, llen;
	unsigned char *ib = idx_images(0x0d03, 3, 2, 2, &ilen); /* float32 */
	unsigned char *lb = idx_labels(0x801, 3, &llen);

	write_file(tpath(f, "img"), ib, ilen);
	write_file(tpath(f, "lab"), lb, llen);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img"), tpath(f, "lab")),
		       IBSTORE_EFORMAT, tpath(f, "img"));
	free(ib);
	free(lb);
}

static void test_idx_zero_dimension_is_rejected(void **state)
{
	fixture *f = *state;
	size_t ilen, llen;
	unsigned char *ib = idx_images(0x803, 3, 0, 28, &ilen);
	unsigned char *lb = idx_labels(0x801, 3, &llen);

	write_file(tpath(f, "img"), ib, ilen);
	write_file(tpath(f, "lab"), lb, llen);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img"), tpath(f, "lab")),
		       IBSTORE_EFORMAT, tpath(f, "img"));
	expect_message(f, "0x28");
	free(ib);
	free(lb);
}

static void test_idx_oversized_image_dimensions_are_rejected(void **state)
{
	fixture *f = *state;
	unsigned char hdr[16];
	size_t llen;
	unsigned char *lb = idx_labels(0x801, 3, &llen);

	/* 3 images of 65536x65536: the header alone must not make us allocate 4 GiB. */
	put_be32(hdr, 0x803);
	put_be32(hdr + 4, 3);
	put_be32(hdr + 8, 65536);
	put_be32(hdr + 12, 65536);
	write_file(tpath(f, "img"), hdr, sizeof(hdr));
	write_file(tpath(f, "lab"), lb, llen);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img"), tpath(f, "lab")),
		       IBSTORE_EFORMAT, tpath(f, "img"));
	expect_message(f, "65536x65536");
	free(lb);
}

static void test_idx_count_mismatch_is_rejected(void **state)
{
	fixture *f = *state;
	size_t ilen, llen;
	unsigned char *ib = idx_images(0x803, 10, 2, 2, &ilen);
	unsigned char *lb = idx_labels(0x801, 9, &llen);

	write_gz(tpath(f, "img.gz"), ib, ilen);
	write_gz(tpath(f, "lab.gz"), lb, llen);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img.gz"), tpath(f, "lab.gz")),
		       IBSTORE_EFORMAT, tpath(f, "img.gz"));
	expect_message(f, "10 images");
	expect_message(f, "9 labels");
	free(ib);
	free(lb);
}

static void test_idx_truncated_image_file_is_rejected(void **state)
{
	fixture *f = *state;
	size_t ilen, llen;
	unsigned char *ib = idx_images(0x803, 10, 3, 3, &ilen);
	unsigned char *lb = idx_labels(0x801, 10, &llen);

	write_file(tpath(f, "img"), ib, ilen - 1);
	write_file(tpath(f, "lab"), lb, llen);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img"), tpath(f, "lab")),
		       IBSTORE_ETRUNCATED, tpath(f, "img"));
	free(ib);
	free(lb);
}

static void test_idx_truncated_payload_inside_gzip_is_rejected(void **state)
{
	fixture *f = *state;
	size_t ilen, llen;
	unsigned char *ib = idx_images(0x803, 10, 3, 3, &ilen);
	unsigned char *lb = idx_labels(0x801, 10, &llen);

	/* A well-formed gzip stream whose content is one image short. */
	write_gz(tpath(f, "img.gz"), ib, ilen - 9);
	write_file(tpath(f, "lab"), lb, llen);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img.gz"), tpath(f, "lab")),
		       IBSTORE_ETRUNCATED, tpath(f, "img.gz"));
	expect_message(f, "image 9");
	free(ib);
	free(lb);
}

static void test_idx_truncated_labels_file_is_rejected(void **state)
{
	fixture *f = *state;
	size_t ilen, llen;
	unsigned char *ib = idx_images(0x803, 10, 3, 3, &ilen);
	unsigned char *lb = idx_labels(0x801, 10, &llen);

	write_file(tpath(f, "img"), ib, ilen);
	write_gz(tpath(f, "lab.gz"), lb, llen - 2);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img"), tpath(f, "lab.gz")),
		       IBSTORE_ETRUNCATED, tpath(f, "lab.gz"));
	free(ib);
	free(lb);
}

static void test_idx_truncated_gzip_stream_is_rejected(void **state)
{
	fixture *f = *state;
	struct stat st;

	write_idx_pair(f, "img.gz", 1, "lab.gz", 1, 200, 8, 8);
	assert_int_equal(stat(tpath(f, "img.gz"), &st), 0);
	assert_int_equal(truncate(tpath(f, "img.gz"), st.st_size / 2), 0);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img.gz"), tpath(f, "lab.gz")),
		       IBSTORE_ETRUNCATED, tpath(f, "img.gz"));
}

static void test_idx_corrupt_gzip_checksum_is_rejected(void **state)
{
	fixture *f = *state;
	struct stat st;
	unsigned char b;
	int fd;

	write_idx_pair(f, "img.gz", 1, "lab.gz", 1, 20, 4, 4);
	/* The gzip trailer is CRC-32 then length: flip a CRC bit. */
	assert_int_equal(stat(tpath(f, "img.gz"), &st), 0);
	fd = open(tpath(f, "img.gz"), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, st.st_size - 8), 1);
	b ^= 0x01;
	assert_int_equal(pwrite(fd, &b, 1, st.st_size - 8), 1);
	close(fd);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img.gz"), tpath(f, "lab.gz")),
		       IBSTORE_EFORMAT, tpath(f, "img.gz"));
	expect_message(f, "gzip");
}

static void test_idx_trailing_garbage_is_rejected(void **state)
{
	fixture *f = *state;
	size_t ilen, llen;
	unsigned char *ib = idx_images(0x803, 4, 3, 3, &ilen);
	unsigned char *lb = idx_labels(0x801, 4, &llen);
	unsigned char *more = calloc(1, ilen + 5);

	assert_non_null(more);
	memcpy(more, ib, ilen);
	write_file(tpath(f, "img"), more, ilen + 5);
	write_file(tpath(f, "lab"), lb, llen);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img"), tpath(f, "lab")),
		       IBSTORE_EFORMAT, tpath(f, "img"));
	expect_message(f, "trailing");
	free(ib);
	free(lb);
	free(more);
}

static void test_idx_trailing_garbage_inside_gzip_is_rejected(void **state)
{
	fixture *f = *state;
	size_t ilen, llen;
	unsigned char *ib = idx_images(0x803, 4, 3, 3, &ilen);
	unsigned char *lb = idx_labels(0x801, 4, &llen);
	unsigned char *more = calloc(1, llen + 1);

	assert_non_null(more);
	memcpy(more, lb, llen);
	write_file(tpath(f, "img"), ib, ilen);
	write_gz(tpath(f, "lab.gz"), more, llen + 1);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img"), tpath(f, "lab.gz")),
		       IBSTORE_EFORMAT, tpath(f, "lab.gz"));
	expect_message(f, "trailing");
	free(ib);
	free(lb);
	free(more);
}

static void test_idx_empty_file_is_rejected(void **state)
{
	fixture *f = *state;

	write_idx_pair(f, "img", 0, "lab", 0, 3, 2, 2);
	write_file(tpath(f, "empty"), "", 0);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "empty"), tpath(f, "lab")),
		       IBSTORE_EFORMAT, tpath(f, "empty"));
	expect_message(f, "no samples");
}

static void test_idx_zero_images_is_rejected(void **state)
{
	fixture *f = *state;

	write_idx_pair(f, "img", 0, "lab", 0, 0, 28, 28);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img"), tpath(f, "lab")),
		       IBSTORE_EFORMAT, tpath(f, "img"));
	expect_message(f, "no samples");
}

static void test_idx_missing_file_is_rejected(void **state)
{
	fixture *f = *state;

	write_idx_pair(f, "img", 0, "lab", 0, 3, 2, 2);
	expect_failure(f, import_idx(&f->x.c, tpath(f, "img"), tpath(f, "nope")),
		       IBSTORE_ENOTFOUND, tpath(f, "nope"));
}

static void test_idx_directory_as_input_is_rejected(void **state)
{
	fixture *f = *state;

	write_idx_pair(f, "img", 0, "lab", 0, 3, 2, 2);
	make_dirs(f, "adir");
	expect_failure(f, import_idx(&f->x.c, tpath(f, "adir"), tpath(f, "lab")),
		       IBSTORE_EIO, tpath(f, "adir"));
}

/* ---------------------------------------------------------------------- */
/* image folder                                                            */
/* ---------------------------------------------------------------------- */

/* Checks that sample `id` has `key`, label `label`, and its key as content. */
static void check_folder_sample(ibstore_dataset *ds, uint64_t id, const char *key,
				int32_t label)
{
	char buf[256];
	size_t got = 0;
	int32_t lab = -1;
	uint64_t found = UINT64_MAX;
	const char *k = NULL;

	assert_int_equal(ibstore_dataset_find_key(ds, key, &found), 0);
	assert_int_equal(found, id);
	assert_int_equal(ibstore_dataset_key(ds, id, &k), 0);
	assert_non_null(k);
	assert_string_equal(k, key);
	assert_int_equal(ibstore_dataset_read(ds, id, buf, sizeof(buf), &got, &lab), 0);
	assert_int_equal(lab, label);
	assert_int_equal(got, strlen(key));
	assert_memory_equal(buf, key, got);
}

static void test_folder_round_trips_classes_keys_and_bytes(void **state)
{
	fixture *f = *state;
	/* Byte-wise order: upper case sorts before lower case, '.' before '/'. */
	static const char *const files[] = {
		"Zebra/z1.jpg",
		"cat/001.jpg",
		"cat/002.jpg",
		"cat/a.b",
		"cat/a/b",
		"cat/sub/deeper/003.jpg",
		"dog/x.png",
	};
	ibstore_dataset *ds;
	ibstore_info info;
	uint64_t id;

	make_dirs(f, "in/Zebra");
	make_dirs(f, "in/cat/sub/deeper");
	make_dirs(f, "in/cat/a");
	make_dirs(f, "in/dog");
	make_dirs(f, "in/empty");   /* a class without files keeps its label */
	/* Created out of order so readdir order cannot pass for sorting. */
	for (int i = (int)(sizeof(files) / sizeof(files[0])) - 1; i >= 0; i--) {
		char rel[128];

		snprintf(rel, sizeof(rel), "in/%s", files[i]);
		put_named_file(f, rel);
	}
	put_named_file(f, "in/README.txt"); /* not in a class: ignored */

	assert_int_equal(import_folder(&f->x.c, tpath(f, "in")), 0);
	assert_int_equal(f->progress_samples, 7);
	ds = publish_and_open(f);
	assert_int_equal(ibstore_dataset_info_get(ds, &info), 0);
	assert_int_equal(info.samples, 7);
	assert_int_equal(info.labels, 3);
	assert_int_equal(info.keys, 7);
	assert_string_equal(ibstore_dataset_attr(ds, "source"), "folder");

	assert_string_equal(ibstore_dataset_class_name(ds, 0), "Zebra");
	assert_string_equal(ibstore_dataset_class_name(ds, 1), "cat");
	assert_string_equal(ibstore_dataset_class_name(ds, 2), "dog");
	assert_string_equal(ibstore_dataset_class_name(ds, 3), "empty");
	assert_null(ibstore_dataset_class_name(ds, 4));

	check_folder_sample(ds, 0, "Zebra/z1.jpg", 0);
	check_folder_sample(ds, 1, "cat/001.jpg", 1);
	check_folder_sample(ds, 2, "cat/002.jpg", 1);
	check_folder_sample(ds, 3, "cat/a.b", 1);
	check_folder_sample(ds, 4, "cat/a/b", 1);
	check_folder_sample(ds, 5, "cat/sub/deeper/003.jpg", 1);
	check_folder_sample(ds, 6, "dog/x.png", 2);
	assert_int_equal(ibstore_dataset_find_key(ds, "README.txt", &id), IBSTORE_ENOTFOUND);
	ibstore_dataset_close(ds);
}

static void test_folder_hidden_entries_are_ignored(void **state)
{
	fixture *f = *state;
	ibstore_dataset *ds;
	ibstore_info info;
	uint64_t id;

	make_dirs(f, "in/.hiddenclass");
	make_dirs(f, "in/cat/.git");
	put_named_file(f, "in/.hiddenclass/a.jpg");
	put_named_file(f, "in/cat/.DS_Store");
	put_named_file(f, "in/cat/.git/config");
	put_named_file(f, "in/cat/1.jpg");

	assert_int_equal(import_folder(&f->x.c, tpath(f, "in")), 0);
	ds = publish_and_open(f);
	assert_int_equal(ibstore_dataset_info_get(ds, &info), 0);
	assert_int_equal(info.samples, 1);
	assert_string_equal(ibstore_dataset_class_name(ds, 0), "cat");
	assert_null(ibstore_dataset_class_name(ds, 1));
	check_folder_sample(ds, 0, "cat/1.jpg", 0);
	assert_int_equal(ibstore_dataset_find_key(ds, "cat/.DS_Store", &id),
			 IBSTORE_ENOTFOUND);
	ibstore_dataset_close(ds);
}

static void test_folder_follows_file_symlinks_but_not_directory_symlinks(void **state)
{
	fixture *f = *state;
	ibstore_dataset *ds;
	ibstore_info info;
	char buf[64];
	size_t got = 0;
	uint64_t id;

	make_dirs(f, "in/cat");
	make_dirs(f, "elsewhere");
	put_named_file(f, "in/cat/1.jpg");
	put_named_file(f, "elsewhere/real.jpg");
	assert_int_equal(symlink("../../elsewhere/real.jpg", tpath(f, "in/cat/link.jpg")), 0);
	/* A loop and a symlinked class: neither is entered. */
	assert_int_equal(symlink("..", tpath(f, "in/cat/loop")), 0);
	assert_int_equal(symlink("cat", tpath(f, "in/alias")), 0);

	assert_int_equal(import_folder(&f->x.c, tpath(f, "in")), 0);
	ds = publish_and_open(f);
	assert_int_equal(ibstore_dataset_info_get(ds, &info), 0);
	assert_int_equal(info.samples, 2);
	assert_null(ibstore_dataset_class_name(ds, 1));
	check_folder_sample(ds, 0, "cat/1.jpg", 0);
	assert_int_equal(ibstore_dataset_find_key(ds, "cat/link.jpg", &id), 0);
	assert_int_equal(ibstore_dataset_read(ds, id, buf, sizeof(buf), &got, NULL), 0);
	assert_int_equal(got, strlen("real.jpg"));
	assert_memory_equal(buf, "real.jpg", got);
	ibstore_dataset_close(ds);
}

static void test_folder_empty_directory_is_rejected(void **state)
{
	fixture *f = *state;

	make_dirs(f, "in");
	expect_failure(f, import_folder(&f->x.c, tpath(f, "in")), IBSTORE_EFORMAT,
		       tpath(f, "in"));
	expect_message(f, "no samples found");
}

static void test_folder_without_class_directories_is_rejected(void **state)
{
	fixture *f = *state;

	make_dirs(f, "in");
	put_named_file(f, "in/1.jpg");
	put_named_file(f, "in/2.jpg");
	make_dirs(f, "in/.hidden");
	put_named_file(f, "in/.hidden/3.jpg");
	expect_failure(f, import_folder(&f->x.c, tpath(f, "in")), IBSTORE_EFORMAT,
		       tpath(f, "in"));
	expect_message(f, "no samples found");
}

static void test_folder_with_only_empty_classes_is_rejected(void **state)
{
	fixture *f = *state;

	make_dirs(f, "in/cat/deep");
	make_dirs(f, "in/dog");
	put_named_file(f, "in/dog/.hidden.jpg");
	expect_failure(f, import_folder(&f->x.c, tpath(f, "in")), IBSTORE_EFORMAT,
		       tpath(f, "in"));
	expect_message(f, "no samples found");
}

static void test_folder_missing_directory_is_rejected(void **state)
{
	fixture *f = *state;

	expect_failure(f, import_folder(&f->x.c, tpath(f, "nope")), IBSTORE_ENOTFOUND,
		       tpath(f, "nope"));
}

static void test_folder_regular_file_as_input_is_rejected(void **state)
{
	fixture *f = *state;

	write_file(tpath(f, "file"), "x", 1);
	expect_failure(f, import_folder(&f->x.c, tpath(f, "file")), IBSTORE_EIO,
		       tpath(f, "file"));
}

static void test_folder_dangling_symlink_is_rejected(void **state)
{
	fixture *f = *state;

	make_dirs(f, "in/cat");
	put_named_file(f, "in/cat/1.jpg");
	assert_int_equal(symlink("gone.jpg", tpath(f, "in/cat/2.jpg")), 0);
	expect_failure(f, import_folder(&f->x.c, tpath(f, "in")), IBSTORE_EIO, "cat/2.jpg");
}

/* ---------------------------------------------------------------------- */
/* CIFAR                                                                   */
/* ---------------------------------------------------------------------- */

static unsigned char cifar_pixel(uint32_t rec, uint32_t j)
{
	return (unsigned char)(rec * 13u + j * 3u);
}

/*
 * Writes a CIFAR batch of `n` records starting at global record `first`;
 * labels are (rec % 10) for CIFAR-10, fine (rec % 100) / coarse (rec % 20)
 * for CIFAR-100.
 */
static void write_cifar(const char *path, int variant, uint32_t first, uint32_t n)
{
	size_t rs = variant == 10 ? 3073 : 3074;
	unsigned char *b = malloc(rs * n);

	assert_non_null(b);
	for (uint32_t i = 0; i < n; i++) {
		unsigned char *r = b + i * rs;
		uint32_t rec = first + i;

		if (variant == 10) {
			r[0] = (unsigned char)(rec % 10);
		} else {
			r[0] = (unsigned char)(rec % 20);
			r[1] = (unsigned char)(rec % 100);
		}
		for (uint32_t j = 0; j < 3072; j++)
			r[rs - 3072 + j] = cifar_pixel(rec, j);
	}
	write_file(path, b, rs * n);
	free(b);
}

static void check_cifar_dataset(fixture *f, int variant, uint32_t n)
{
	ibstore_dataset *ds = publish_and_open(f);
	ibstore_info info;
	unsigned char buf[3072];

	assert_int_equal(ibstore_dataset_info_get(ds, &info), 0);
	assert_int_equal(info.samples, n);
	assert_int_equal(info.fixed_size, 3072);
	assert_string_equal(ibstore_dataset_attr(ds, "source"),
			    variant == 10 ? "cifar10" : "cifar100");
	assert_string_equal(ibstore_dataset_attr(ds, "shape"), "3x32x32");
	for (uint32_t i = 0; i < n; i++) {
		size_t got = 0;
		int32_t label = -1;

		assert_int_equal(ibstore_dataset_read(ds, i, buf, sizeof(buf), &got, &label), 0);
		assert_int_equal(got, 3072);
		assert_int_equal(label, (int32_t)(i % (uint32_t)variant));
		for (uint32_t j = 0; j < 3072; j++)
			if (buf[j] != cifar_pixel(i, j))
				fail_msg("record %u byte %u differs", i, j);
	}
	ibstore_dataset_close(ds);
}

static void test_cifar10_batches_round_trip_with_detected_variant(void **state)
{
	fixture *f = *state;
	const char *paths[2];

	paths[0] = tpath(f, "data_batch_1.bin");
	paths[1] = tpath(f, "data_batch_2.bin");
	write_cifar(paths[0], 10, 0, 12);
	write_cifar(paths[1], 10, 12, 7);
	assert_int_equal(import_cifar(&f->x.c, paths, 2, 0), 0);
	assert_int_equal(f->progress_samples, 19);
	check_cifar_dataset(f, 10, 19);
}

static void test_cifar100_uses_the_fine_label(void **state)
{
	fixture *f = *state;
	const char *paths[1];

	paths[0] = tpath(f, "train.bin");
	write_cifar(paths[0], 100, 0, 130);
	assert_int_equal(import_cifar(&f->x.c, paths, 1, 0), 0);
	check_cifar_dataset(f, 100, 130);
}

static void test_cifar_explicit_variant_is_used(void **state)
{
	fixture *f = *state;
	const char *paths[1];

	paths[0] = tpath(f, "test_batch.bin");
	write_cifar(paths[0], 10, 0, 5);
	assert_int_equal(import_cifar(&f->x.c, paths, 1, 10), 0);
	check_cifar_dataset(f, 10, 5);
}

static void test_cifar_size_fitting_no_variant_is_rejected(void **state)
{
	fixture *f = *state;
	const char *paths[1];
	unsigned char junk[3073 * 2 + 5] = { 0 };

	paths[0] = tpath(f, "odd.bin");
	write_file(paths[0], junk, sizeof(junk));
	expect_failure(f, import_cifar(&f->x.c, paths, 1, 0), IBSTORE_EFORMAT, paths[0]);
	expect_message(f, "explicitly");
}

static void test_cifar_truncated_file_with_explicit_variant_is_rejected(void **state)
{
	fixture *f = *state;
	const char *paths[2];

	paths[0] = tpath(f, "good.bin");
	paths[1] = tpath(f, "short.bin");
	write_cifar(paths[0], 10, 0, 3);
	write_cifar(paths[1], 10, 0, 3);
	assert_int_equal(truncate(paths[1], 3073 * 3 - 100), 0);
	expect_failure(f, import_cifar(&f->x.c, paths, 2, 10), IBSTORE_ETRUNCATED, paths[1]);
}

static void test_cifar_files_of_different_variants_are_rejected(void **state)
{
	fixture *f = *state;
	const char *paths[2];

	paths[0] = tpath(f, "ten.bin");
	paths[1] = tpath(f, "hundred.bin");
	write_cifar(paths[0], 10, 0, 2);
	write_cifar(paths[1], 100, 0, 2);
	expect_failure(f, import_cifar(&f->x.c, paths, 2, 0), IBSTORE_EFORMAT, paths[1]);
	expect_message(f, "explicitly");
}

static void test_cifar_ambiguous_size_asks_for_the_variant(void **state)
{
	fixture *f = *state;
	const char *paths[1];
	size_t len = 3073u * 3074u; /* a whole number of records of both kinds */
	unsigned char *b = calloc(1, len);

	assert_non_null(b);
	paths[0] = tpath(f, "both.bin");
	write_file(paths[0], b, len);
	free(b);
	expect_failure(f, import_cifar(&f->x.c, paths, 1, 0), IBSTORE_EFORMAT, paths[0]);
	expect_message(f, "explicitly");
}

static void test_cifar10_label_out_of_range_is_rejected(void **state)
{
	fixture *f = *state;
	const char *paths[1];
	unsigned char bad = 10;
	int fd;

	paths[0] = tpath(f, "bad.bin");
	write_cifar(paths[0], 10, 0, 6);
	fd = open(paths[0], O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &bad, 1, 3073 * 4), 1);
	close(fd);
	expect_failure(f, import_cifar(&f->x.c, paths, 1, 10), IBSTORE_EFORMAT, paths[0]);
	expect_message(f, "record 4");
}

static void test_cifar100_labels_out_of_range_are_rejected(void **state)
{
	fixture *f = *state;
	const char *paths[1];
	unsigned char bad;
	int fd;

	paths[0] = tpath(f, "bad.bin");
	write_cifar(paths[0], 100, 0, 6);
	fd = open(paths[0], O_WRONLY);
	assert_true(fd >= 0);
	bad = 100; /* fine label of record 2 */
	assert_int_equal(pwrite(fd, &bad, 1, 3074 * 2 + 1), 1);
	close(fd);
	expect_failure(f, import_cifar(&f->x.c, paths, 1, 100), IBSTORE_EFORMAT, paths[0]);
	expect_message(f, "record 2");
	expect_message(f, "fine");
}

static void test_cifar100_coarse_label_out_of_range_is_rejected(void **state)
{
	fixture *f = *state;
	const char *paths[1];
	unsigned char bad = 20;
	int fd;

	paths[0] = tpath(f, "bad.bin");
	write_cifar(paths[0], 100, 0, 6);
	fd = open(paths[0], O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &bad, 1, 3074 * 5), 1);
	close(fd);
	expect_failure(f, import_cifar(&f->x.c, paths, 1, 100), IBSTORE_EFORMAT, paths[0]);
	expect_message(f, "record 5");
	expect_message(f, "coarse");
}

static void test_cifar_empty_file_is_rejected(void **state)
{
	fixture *f = *state;
	const char *paths[1];

	paths[0] = tpath(f, "empty.bin");
	write_file(paths[0], "", 0);
	expect_failure(f, import_cifar(&f->x.c, paths, 1, 0), IBSTORE_EFORMAT, paths[0]);
	expect_message(f, "no samples");
}

static void test_cifar_missing_or_directory_input_is_rejected(void **state)
{
	fixture *f = *state;
	const char *paths[1];

	paths[0] = tpath(f, "nope.bin");
	assert_int_equal(import_cifar(&f->x.c, paths, 1, 10), IBSTORE_ENOTFOUND);
	expect_message(f, paths[0]);
	make_dirs(f, "adir");
	paths[0] = tpath(f, "adir");
	expect_failure(f, import_cifar(&f->x.c, paths, 1, 10), IBSTORE_EIO, paths[0]);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_idx_raw_round_trips_every_image_and_label),
		T(test_idx_gzip_round_trips_every_image_and_label),
		T(test_idx_gzip_and_raw_files_can_be_mixed),
		T(test_idx_progress_is_reported_during_long_imports),
		T(test_idx_wrong_magic_is_rejected),
		T(test_idx_labels_file_given_as_images_is_rejected),
		T(test_idx_non_byte_element_type_is_rejected),
		T(test_idx_zero_dimension_is_rejected),
		T(test_idx_oversized_image_dimensions_are_rejected),
		T(test_idx_count_mismatch_is_rejected),
		T(test_idx_truncated_image_file_is_rejected),
		T(test_idx_truncated_payload_inside_gzip_is_rejected),
		T(test_idx_truncated_labels_file_is_rejected),
		T(test_idx_truncated_gzip_stream_is_rejected),
		T(test_idx_corrupt_gzip_checksum_is_rejected),
		T(test_idx_trailing_garbage_is_rejected),
		T(test_idx_trailing_garbage_inside_gzip_is_rejected),
		T(test_idx_empty_file_is_rejected),
		T(test_idx_zero_images_is_rejected),
		T(test_idx_missing_file_is_rejected),
		T(test_idx_directory_as_input_is_rejected),
		T(test_folder_round_trips_classes_keys_and_bytes),
		T(test_folder_hidden_entries_are_ignored),
		T(test_folder_follows_file_symlinks_but_not_directory_symlinks),
		T(test_folder_empty_directory_is_rejected),
		T(test_folder_without_class_directories_is_rejected),
		T(test_folder_with_only_empty_classes_is_rejected),
		T(test_folder_missing_directory_is_rejected),
		T(test_folder_regular_file_as_input_is_rejected),
		T(test_folder_dangling_symlink_is_rejected),
		T(test_cifar10_batches_round_trip_with_detected_variant),
		T(test_cifar100_uses_the_fine_label),
		T(test_cifar_explicit_variant_is_used),
		T(test_cifar_size_fitting_no_variant_is_rejected),
		T(test_cifar_truncated_file_with_explicit_variant_is_rejected),
		T(test_cifar_files_of_different_variants_are_rejected),
		T(test_cifar_ambiguous_size_asks_for_the_variant),
		T(test_cifar10_label_out_of_range_is_rejected),
		T(test_cifar100_labels_out_of_range_are_rejected),
		T(test_cifar100_coarse_label_out_of_range_is_rejected),
		T(test_cifar_empty_file_is_rejected),
		T(test_cifar_missing_or_directory_input_is_rejected),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
