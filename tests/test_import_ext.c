/*
 * test_import_ext.c — the tar and JSONL importers through their C
 * interface, on archives and lines built byte by byte here (header fields
 * the Python and GNU writers never produce: base-256 sizes, pax size
 * records, historical signed checksums, a FIFO as input), and the writer's
 * jobs > 1 path: identical bytes, synchronous errors, a sample that only
 * fits compressed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import.h"
#include "fixture.h"

typedef struct fixture {
	fx_import x; /* directory, output path, writer, import context */
	int warnings;
	unsigned long long total;
} fixture;

static void on_warn(void *ctx, const char *msg)
{
	fixture *f = ctx;

	(void)msg;
	f->warnings++;
}

static void on_total(void *ctx, unsigned long long total)
{
	fixture *f = ctx;

	f->total = total;
}

static int setup_jobs(void **state, int jobs)
{
	fixture *f = calloc(1, sizeof(*f));
	if (!f || fx_import_setup(&f->x, "ibimportext", jobs)) {
		free(f);
		return -1;
	}
	f->x.c.progress_ctx = f;
	f->x.c.warn = on_warn;
	f->x.c.total = on_total;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_jobs(state, 1);
}

static int setup2(void **state)
{
	return setup_jobs(state, 2);
}

static int teardown(void **state)
{
	fx_import_teardown(state);
	return 0;
}

static const char *tpath(const fixture *f, const char *name)
{
	return fx_path(f->x.dir, name);
}

/* ---- a tiny tar writer ------------------------------------------------------ */

typedef struct tarbuf {
	uint8_t *p;
	size_t len, cap;
} tarbuf;

static void tb_put(tarbuf *t, const void *d, size_t n)
{
	if (t->len + n > t->cap) {
		t->cap = (t->len + n) * 2 + 4096;
		t->p = realloc(t->p, t->cap);
		assert_non_null(t->p);
	}
	memcpy(t->p + t->len, d, n);
	t->len += n;
}

enum { SUM_OK, SUM_SIGNED, SUM_BAD };

/* One header + data + padding.  size256: the size field in base-256. */
static void tb_member(tarbuf *t, const char *name, char type, const void *data, size_t n,
		      int sum, int size256)
{
	uint8_t h[512] = { 0 };
	static const uint8_t zeros[512];

	memcpy(h, name, strlen(name) < 100 ? strlen(name) : 100);
	memcpy(h + 100, "0000644", 7);
	if (size256) {
		h[124] = 0x80;
		for (int i = 0; i < 8; i++)
			h[135 - i] = (uint8_t)((uint64_t)n >> (8 * i));
	} else {
		snprintf((char *)h + 124, 12, "%011zo", n);
	}
	h[156] = (uint8_t)type;
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	long s = 0;
	for (int i = 0; i < 512; i++)
		s += sum == SUM_SIGNED ? (signed char)h[i] : h[i];
	if (sum == SUM_BAD)
		s += 1;
	snprintf((char *)h + 148, 8, "%06lo", (unsigned long)s);
	tb_put(t, h, 512);
	tb_put(t, data, n);
	tb_put(t, zeros, (512 - n % 512) % 512);
}

static void tb_end(tarbuf *t)
{
	static const uint8_t zeros[1024];

	tb_put(t, zeros, sizeof zeros);
}

static void tb_save(tarbuf *t, const char *path)
{
	fx_write_file(path, t->p, t->len);
	free(t->p);
	memset(t, 0, sizeof(*t));
}

static int run_tar(fixture *f, const char *path, const import_tar_opts *o)
{
	const char *paths[] = { path };

	return import_tar(&f->x.c, paths, 1, o);
}

static void publish_and_check_sample(fixture *f, const char *key, const void *data, size_t n,
				     int32_t label)
{
	ibstore_dataset *ds = NULL;
	uint64_t id;
	uint8_t buf[4096];
	size_t size;
	int32_t got_label;

	assert_int_equal(ibstore_writer_publish(f->x.w), 0);
	assert_int_equal(ibstore_dataset_open(f->x.out, &ds), 0);
	assert_int_equal(ibstore_dataset_find_key(ds, key, &id), 0);
	assert_int_equal(ibstore_dataset_read(ds, id, buf, sizeof buf, &size, &got_label), 0);
	assert_int_equal(size, n);
	assert_memory_equal(buf, data, n);
	assert_int_equal(got_label, label);
	ibstore_dataset_close(ds);
}

/* ---- tar ------------------------------------------------------------------ */

static void test_tar_base256_size_and_signed_checksum_are_read(void **state)
{
	fixture *f = *state;
	tarbuf t = { 0 };

	tb_member(&t, "s/001.bin", '0', "\xff\xfe payload", 10, SUM_SIGNED, 1);
	tb_member(&t, "s/001.cls", '0', "42", 2, SUM_OK, 0);
	tb_end(&t);
	tb_save(&t, tpath(f, "a.tar"));
	assert_int_equal(run_tar(f, tpath(f, "a.tar"), NULL), 0);
	assert_true(f->total > 0);
	publish_and_check_sample(f, "s/001", "\xff\xfe payload", 10, 42);
}

static void test_tar_pax_size_record_overrides_the_header(void **state)
{
	fixture *f = *state;
	tarbuf t = { 0 };
	const char *pax = "13 size=1000\n19 path=long/x.bin\n";
	uint8_t data[1000];

	memset(data, 'z', sizeof data);
	tb_member(&t, "PaxHeader", 'x', pax, strlen(pax), SUM_OK, 0);
	/* The header claims 5 bytes; the pax record's 1000 win. */
	uint8_t h[512] = { 0 };
	tarbuf body = { 0 };
	tb_member(&body, "short", '0', data, 5, SUM_OK, 0);
	memcpy(h, body.p, 512);
	free(body.p);
	tb_put(&t, h, 512);
	tb_put(&t, data, sizeof data);
	tb_put(&t, (uint8_t[512]){ 0 }, 24);
	tb_end(&t);
	tb_save(&t, tpath(f, "p.tar"));
	assert_int_equal(run_tar(f, tpath(f, "p.tar"), NULL), 0);
	publish_and_check_sample(f, "long/x", data, sizeof data, IBSTORE_NO_LABEL);
}

static void test_tar_directories_links_and_hidden_files_are_skipped(void **state)
{
	fixture *f = *state;
	tarbuf t = { 0 };

	tb_member(&t, "d/", '5', "", 0, SUM_OK, 0);
	tb_member(&t, "d/._001.jpg", '0', "mac", 3, SUM_OK, 0);
	tb_member(&t, "d/link.jpg", '2', "", 0, SUM_OK, 0);
	tb_member(&t, "./d/001.jpg", '0', "img", 3, SUM_OK, 0);
	tb_end(&t);
	tb_save(&t, tpath(f, "d.tar"));
	assert_int_equal(run_tar(f, tpath(f, "d.tar"), NULL), 0);
	assert_int_equal(ibstore_writer_count(f->x.w), 1);
	publish_and_check_sample(f, "d/001", "img", 3, IBSTORE_NO_LABEL);
}

static void test_tar_bad_checksum_names_member_and_offset(void **state)
{
	fixture *f = *state;
	tarbuf t = { 0 };

	tb_member(&t, "a.jpg", '0', "x", 1, SUM_OK, 0);
	tb_member(&t, "b.jpg", '0', "y", 1, SUM_BAD, 0);
	tb_end(&t);
	tb_save(&t, tpath(f, "c.tar"));
	assert_int_equal(run_tar(f, tpath(f, "c.tar"), NULL), IBSTORE_ECORRUPT);
	assert_non_null(strstr(f->x.err, "member 'b.jpg' at offset 1024: header checksum mismatch"));
}

static void test_tar_truncated_header_is_reported(void **state)
{
	fixture *f = *state;
	tarbuf t = { 0 };

	tb_member(&t, "a.jpg", '0', "x", 1, SUM_OK, 0);
	tb_put(&t, "partial", 7);
	tb_save(&t, tpath(f, "t.tar"));
	assert_int_equal(run_tar(f, tpath(f, "t.tar"), NULL), IBSTORE_ETRUNCATED);
	assert_non_null(strstr(f->x.err, "truncated header at offset 1024"));
}

static void test_tar_dotdot_component_is_refused(void **state)
{
	fixture *f = *state;
	tarbuf t = { 0 };

	tb_member(&t, "a/../../b.jpg", '0', "x", 1, SUM_OK, 0);
	tb_end(&t);
	tb_save(&t, tpath(f, "e.tar"));
	assert_int_equal(run_tar(f, tpath(f, "e.tar"), NULL), IBSTORE_EFORMAT);
	assert_non_null(strstr(f->x.err, "'..'"));
}

static void test_tar_is_streamed_from_a_fifo(void **state)
{
	fixture *f = *state;
	tarbuf t = { 0 };
	static uint8_t big[3u << 20];
	pid_t pid;

	memset(big, 7, sizeof big);
	tb_member(&t, "x/1.json", '0', big, sizeof big, SUM_OK, 0); /* skipped by reading */
	tb_member(&t, "x/1.bin", '0', "bin", 3, SUM_OK, 0);
	tb_end(&t);
	assert_int_equal(mkfifo(tpath(f, "fifo"), 0600), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(tpath(f, "fifo"), O_WRONLY);
		size_t done = 0;

		while (fd >= 0 && done < t.len) {
			ssize_t k = write(fd, t.p + done, t.len - done);
			if (k <= 0)
				_exit(1);
			done += (size_t)k;
		}
		_exit(0);
	}
	assert_int_equal(run_tar(f, tpath(f, "fifo"), NULL), 0);
	free(t.p);
	publish_and_check_sample(f, "x/1", "bin", 3, IBSTORE_NO_LABEL);
}

static void test_tar_payload_option_and_label_extension(void **state)
{
	fixture *f = *state;
	tarbuf t = { 0 };
	import_tar_opts o = { .payload = "PNG,.npy", .label_ext = "target" };

	tb_member(&t, "k.npy", '0', "npy", 3, SUM_OK, 0);
	tb_member(&t, "k.png", '0', "png", 3, SUM_OK, 0);
	tb_member(&t, "k.target", '0', "-5\n", 3, SUM_OK, 0);
	tb_end(&t);
	tb_save(&t, tpath(f, "o.tar"));
	assert_int_equal(run_tar(f, tpath(f, "o.tar"), &o), 0);
	publish_and_check_sample(f, "k", "png", 3, -5);
}

/* ---- jsonl ---------------------------------------------------------------- */

static int run_jsonl(fixture *f, const char *text, import_jsonl_opts *o)
{
	const char *path = tpath(f, "in.jsonl");
	const char *paths[] = { path };

	fx_write_file(path, text, strlen(text));
	return import_jsonl(&f->x.c, paths, 1, o);
}

static void test_jsonl_valid_lines_are_accepted(void **state)
{
	fixture *f = *state;
	static const char *const lines[] = {
		"{}", "[]", "0", "-0.5e+10", "\"\\u00e9\\/\\b\"", "true", "null",
		"{\"a\":{\"b\":[1,{\"c\":\"d\"}]}, \"e\" : false}", "  [1 , 2]  \t",
		"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
	};
	char text[1024] = "";

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		strcat(text, lines[i]);
		strcat(text, "\n");
	}
	assert_int_equal(run_jsonl(f, text, NULL), 0);
	assert_int_equal(ibstore_writer_count(f->x.w), sizeof(lines) / sizeof(lines[0]));
}

static void test_jsonl_each_malformed_line_is_rejected_with_its_number(void **state)
{
	fixture *f = *state;
	static const char *const bad[] = {
		"{", "{\"a\"}", "{\"a\":}", "[1,]", "01", "1.", "1e", "-", "+1", "tru",
		"\"abc", "\"\\x\"", "\"\\u12\"", "\"\\udc00\"", "\"\\ud800x\"", "\"a\tb\"",
		"\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
		"{} {}", "{'a': 1}", "[1] x", "NaN",
	};
	char text[256];
	import_jsonl_opts o = { .skip_bad = 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof text, "{\"ok\": 1}\n%s\n", bad[i]);
		f->x.err[0] = '\0';
		assert_int_equal(run_jsonl(f, text, &o), IBSTORE_EFORMAT);
		if (strstr(f->x.err, "in.jsonl:2: column") == NULL)
			fail_msg("line '%s' gave '%s'", bad[i], f->x.err);
	}
}

static void test_jsonl_nesting_is_bounded(void **state)
{
	fixture *f = *state;
	char text[2 * 600 + 2];

	memset(text, '[', 600);
	memset(text + 600, ']', 600);
	strcpy(text + 1200, "\n");
	assert_int_equal(run_jsonl(f, text, NULL), IBSTORE_EFORMAT);
	assert_non_null(strstr(f->x.err, "nesting"));
}

static void test_jsonl_skip_bad_counts_and_warns(void **state)
{
	fixture *f = *state;
	import_jsonl_opts o = { .skip_bad = 1, .field = "t" };

	assert_int_equal(run_jsonl(f, "{\"t\":\"a\"}\n{bad\n\n{\"u\":1}\n{\"t\":[1]}\n", &o), 0);
	assert_int_equal(o.skipped, 2);
	assert_int_equal(f->warnings, 2);
	assert_int_equal(ibstore_writer_count(f->x.w), 2);
}

static void test_jsonl_escaped_field_names_match(void **state)
{
	fixture *f = *state;
	import_jsonl_opts o = { .field = "t\xc3\xa9", .label_field = "l" };

	assert_int_equal(run_jsonl(f, "{\"t\\u00e9\": \"v\", \"\\u006c\": 9}\n", &o), 0);
	ibstore_dataset *ds = NULL;
	char buf[8];
	size_t n;
	int32_t label;

	assert_int_equal(ibstore_writer_publish(f->x.w), 0);
	assert_int_equal(ibstore_dataset_open(f->x.out, &ds), 0);
	assert_int_equal(ibstore_dataset_read(ds, 0, buf, sizeof buf, &n, &label), 0);
	assert_int_equal(n, 1);
	assert_int_equal(buf[0], 'v');
	assert_int_equal(label, 9);
	ibstore_dataset_close(ds);
}

/* ---- writer jobs ------------------------------------------------------------ */

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (i % 7) ? (uint8_t)(seed >> 24) & 3 : (uint8_t)i;
	}
}

/* Packs the same samples with `jobs`; returns the bytes of shard 0 after its header. */
static uint8_t *pack_with(const char *dir, int jobs, size_t *len)
{
	char out[256], shard[300];
	ibstore_writer_opts o;
	ibstore_writer *w = NULL;
	static uint8_t buf[200000];

	snprintf(out, sizeof out, "%s/j%d.ibs", dir, jobs);
	ibstore_writer_opts_init(&o);
	o.fsync = 0;
	o.jobs = jobs;
	o.compress = IBSTORE_COMPRESS_LZ4HC;
	o.lz4hc_level = 3;
	assert_int_equal(ibstore_writer_create(out, &o, &w), 0);
	for (uint32_t i = 0; i < 300; i++) {
		size_t n = (i * 7919u) % 150000;
		char key[32];

		fill(buf, n, i);
		snprintf(key, sizeof key, "k%u", i);
		assert_int_equal(ibstore_writer_add(w, buf, n, (int32_t)(i % 5), key, NULL), 0);
	}
	assert_int_equal(ibstore_writer_count(w), 300);
	assert_int_equal(ibstore_writer_publish(w), 0);
	ibstore_writer_free(w);
	snprintf(shard, sizeof shard, "%s/shard-000000.ibr", out);
	uint8_t *p = fx_read_file(shard, len);
	assert_true(*len > 64); /* past the shard header */
	*len -= 64;
	memmove(p, p + 64, *len);
	return p;
}

static void test_writer_jobs_write_identical_bytes(void **state)
{
	fixture *f = *state;
	size_t l1, l2, l4;
	uint8_t *a = pack_with(f->x.dir, 1, &l1);
	uint8_t *b = pack_with(f->x.dir, 2, &l2);
	uint8_t *c = pack_with(f->x.dir, 4, &l4);

	assert_int_equal(l1, l2);
	assert_int_equal(l1, l4);
	assert_memory_equal(a, b, l1);
	assert_memory_equal(a, c, l1);
	free(a);
	free(b);
	free(c);
}

static void test_writer_jobs_duplicate_key_fails_synchronously(void **state)
{
	fixture *f = *state;
	uint64_t id;

	assert_int_equal(ibstore_writer_add(f->x.w, "a", 1, 0, "k", &id), 0);
	assert_int_equal(id, 0);
	assert_int_equal(ibstore_writer_add(f->x.w, "b", 1, 0, "k", &id), IBSTORE_EEXIST);
	assert_non_null(strstr(ibstore_writer_errmsg(f->x.w), "duplicate key 'k'"));
	assert_int_equal(ibstore_writer_add(f->x.w, "c", 1, 0, "k2", &id), 0);
	assert_int_equal(id, 1);
	assert_int_equal(ibstore_writer_add(f->x.w, NULL, 5, 0, NULL, NULL), IBSTORE_EINVAL);
	publish_and_check_sample(f, "k2", "c", 1, 0);
}

static void test_writer_jobs_sample_fitting_only_compressed_is_added(void **state)
{
	fixture *f = *state;
	char out[256];
	ibstore_writer_opts o;
	ibstore_writer *w = NULL;
	static uint8_t zeros[8192], noise[8192];

	snprintf(out, sizeof out, "%s/small.ibs", f->x.dir);
	ibstore_writer_opts_init(&o);
	o.fsync = 0;
	o.jobs = 3;
	o.shard_size = 4096;
	o.compress = IBSTORE_COMPRESS_LZ4;
	fill(noise, sizeof noise, 1);
	for (size_t i = 0; i < sizeof noise; i++)
		noise[i] = (uint8_t)(noise[i] * 77 + i * 13);
	assert_int_equal(ibstore_writer_create(out, &o, &w), 0);
	assert_int_equal(ibstore_writer_add(w, "x", 1, 0, NULL, NULL), 0);
	assert_int_equal(ibstore_writer_add(w, zeros, sizeof zeros, 1, NULL, NULL), 0);
	assert_int_equal(ibstore_writer_add(w, noise, sizeof noise, 1, NULL, NULL), IBSTORE_ETOOBIG);
	assert_int_equal(ibstore_writer_add(w, "y", 1, 2, NULL, NULL), 0);
	assert_int_equal(ibstore_writer_publish(w), 0);
	ibstore_writer_free(w);

	ibstore_dataset *ds = NULL;
	ibstore_info info;
	static uint8_t back[8192];
	size_t n;

	assert_int_equal(ibstore_dataset_open(out, &ds), 0);
	assert_int_equal(ibstore_dataset_info_get(ds, &info), 0);
	assert_int_equal(info.samples, 3);
	assert_int_equal(ibstore_dataset_read(ds, 1, back, sizeof back, &n, NULL), 0);
	assert_int_equal(n, sizeof zeros);
	assert_memory_equal(back, zeros, n);
	assert_int_equal(ibstore_dataset_read(ds, 2, back, sizeof back, &n, NULL), 0);
	assert_int_equal(back[0], 'y');
	ibstore_dataset_close(ds);
}

static void test_writer_jobs_out_of_range_is_refused(void **state)
{
	(void)state;
	ibstore_writer_opts o;
	ibstore_writer *w = NULL;

	ibstore_writer_opts_init(&o);
	assert_int_equal(o.jobs, 1);
	o.jobs = 257;
	assert_int_equal(ibstore_writer_create("/tmp/ibimportext-never", &o, &w), IBSTORE_EINVAL);
	assert_non_null(strstr(ibstore_writer_errmsg(w), "jobs"));
	ibstore_writer_free(w);
}

static void test_writer_jobs_free_without_publish_leaves_nothing(void **state)
{
	fixture *f = *state;
	static uint8_t buf[100000];

	for (int i = 0; i < 50; i++)
		assert_int_equal(ibstore_writer_add(f->x.w, buf, sizeof buf, 0, NULL, NULL), 0);
	ibstore_writer_free(f->x.w);
	f->x.w = NULL;
	assert_int_equal(access(f->x.out, F_OK), -1);
}

/* ---- import_util.c ----------------------------------------------------------- */

static void test_label_text_is_a_32_bit_integer_other_than_no_label(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int ok;
		int32_t label;
	} cases[] = {
		{"7", 1, 7},
		{" -3\r\n", 1, -3},
		{"+12", 1, 12},
		{"2147483647", 1, INT32_MAX},
		{"-2147483647", 1, -INT32_MAX},
		{"-2147483648", 0, 0}, /* IBSTORE_NO_LABEL */
		{"2147483648", 0, 0},
		{"99999999999999999999", 0, 0},
		{"", 0, 0},
		{" ", 0, 0},
		{"-", 0, 0},
		{"1.0", 0, 0},
		{"1 2", 0, 0},
		{"0x10", 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int32_t label = 12345;
		int rc = import_parse_label(cases[i].text, strlen(cases[i].text), &label);
		if (cases[i].ok && (rc || label != cases[i].label))
			fail_msg("'%s': rc %d, label %d", cases[i].text, rc, (int)label);
		if (!cases[i].ok && (rc != -1 || label != 12345))
			fail_msg("'%s' was accepted as %d", cases[i].text, (int)label);
	}
}

static void test_key_buffer_grows_to_the_key(void **state)
{
	fixture *f = *state;
	import_keybuf k = {0};
	assert_string_equal(import_key(&f->x.c, &k, "%s.%s", "a", "b"), "a.b");
	char long_stem[3000];
	memset(long_stem, 's', sizeof long_stem - 1);
	long_stem[sizeof long_stem - 1] = '\0';
	const char *key = import_key(&f->x.c, &k, "%s:%d", long_stem, 42);
	assert_non_null(key);
	assert_int_equal(strlen(key), sizeof long_stem - 1 + 3);
	assert_string_equal(key + sizeof long_stem - 1, ":42");
	assert_true(k.cap >= strlen(key) + 1);
	free(k.s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define T2(fn) cmocka_unit_test_setup_teardown(fn, setup2, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_tar_base256_size_and_signed_checksum_are_read),
		T(test_tar_pax_size_record_overrides_the_header),
		T(test_tar_directories_links_and_hidden_files_are_skipped),
		T(test_tar_bad_checksum_names_member_and_offset),
		T(test_tar_truncated_header_is_reported),
		T(test_tar_dotdot_component_is_refused),
		T(test_tar_is_streamed_from_a_fifo),
		T(test_tar_payload_option_and_label_extension),
		T2(test_tar_payload_option_and_label_extension),
		T(test_jsonl_valid_lines_are_accepted),
		T(test_jsonl_each_malformed_line_is_rejected_with_its_number),
		T(test_jsonl_nesting_is_bounded),
		T(test_jsonl_skip_bad_counts_and_warns),
		T(test_jsonl_escaped_field_names_match),
		T(test_writer_jobs_write_identical_bytes),
		T2(test_writer_jobs_duplicate_key_fails_synchronously),
		T(test_writer_jobs_sample_fitting_only_compressed_is_added),
		T(test_writer_jobs_out_of_range_is_refused),
		T2(test_writer_jobs_free_without_publish_leaves_nothing),
		cmocka_unit_test(test_label_text_is_a_32_bit_integer_other_than_no_label),
		T(test_key_buffer_grows_to_the_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
