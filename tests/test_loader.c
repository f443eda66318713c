/*
 * test_loader.c — the streaming loader against the spec: pruned means
 * unread, every emitted byte equals a random-access read, both backends and
 * any thread count give the same stream, resume, drop_last, out-of-order
 * release, corrupt samples, datasets larger than the buffer budget.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "ibstore.h"
#include "loader_hooks.h"

#define N 3000
#define EPOCHS 4

/*
 * IBSTORE_TEST_BACKEND=pread, for valgrind (which does not see io_uring's
 * writes into memory): every stream that would use io_uring (uring, auto)
 * uses the pread pool instead, and the checks that are about io_uring
 * itself (the seccomp fallback, auto's choice) are skipped.
 */
static int pread_only(void)
{
	const char *b = getenv("IBSTORE_TEST_BACKEND");
	return b && strcmp(b, "pread") == 0;
}

static ibstore_loader_opts pinned(const ibstore_loader_opts *lo)
{
	ibstore_loader_opts o;
	if (lo)
		o = *lo;
	else
		ibstore_loader_opts_init(&o);
	if (pread_only() && o.backend != IBSTORE_BACKEND_MMAP)
		o.backend = IBSTORE_BACKEND_PREAD;
	return o;
}

/* What the statistics call a stream that was asked to use io_uring. */
static const char *uring_name(void)
{
	return pread_only() ? "pread" : "io_uring";
}

typedef struct fixture {
	char dir[64];
	char ds[128];
	char run[128];
	int n; /* runs made, for fresh state paths */
} fixture;

static size_t payload(uint64_t i, uint8_t *buf)
{
	size_t len = 200 + (i * 131) % 1800;
	uint64_t x = i * 0x9E3779B97F4A7C15ull + 7;
	for (size_t j = 0; j < len; j++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[j] = (i % 3) ? (uint8_t)x : (uint8_t)(j / 32 + i);
	}
	return len;
}

static int32_t label(uint64_t i)
{
	return (int32_t)(i % 10);
}

static void make_dataset(const char *path, uint32_t align, ibstore_compress c)
{
	ibstore_writer_opts o;
	ibstore_writer_opts_init(&o);
	o.alignment = align;
	o.compress = c;
	o.shard_size = 1 << 20;
	o.fsync = 0;
	fx_make_dataset(path, &(fx_dataset){.samples = N, .max_len = 4096, .payload = payload,
					    .label = label, .opts = &o});
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (fx_mkdtemp(f->dir, sizeof f->dir, "ibstore-loader"))
		return -1;
	snprintf(f->ds, sizeof f->ds, "%s/ds", f->dir);
	make_dataset(f->ds, 8, IBSTORE_COMPRESS_AUTO);
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

static float loss_of(uint64_t id, uint32_t epoch)
{
	return (float)((id * 2654435761u) % 997) / (100.0f * (float)(epoch + 1));
}

static const char *fresh_run(fixture *f)
{
	snprintf(f->run, sizeof f->run, "%s/run-%d.state", f->dir, f->n++);
	return f->run;
}

typedef struct session {
	ibstore_dataset *ds;
	ibstore_run *run;
	ibstore_loader *l;
} session;

static session open_session(const char *ds_path, const char *run_path, uint32_t batch,
			    int drop_last, uint32_t ckpt, const ibstore_loader_opts *lo)
{
	session s;
	assert_int_equal(ibstore_dataset_open(ds_path, &s.ds), 0);
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = N;
	ro.prune.epochs = EPOCHS;
	ro.batch_size = batch;
	ro.drop_last = drop_last;
	ro.checkpoint_every = ckpt;
	int rc = ibstore_run_open(run_path, &ro, &s.run);
	if (rc)
		fail_msg("run: %s", ibstore_run_errmsg(s.run));
	ibstore_loader_opts o = pinned(lo);
	rc = ibstore_loader_open(s.ds, s.run, &o, &s.l);
	if (rc)
		fail_msg("loader: %s", ibstore_loader_errmsg(s.l));
	return s;
}

static void close_session(session *s)
{
	ibstore_loader_close(s->l);
	ibstore_run_close(s->run);
	ibstore_dataset_close(s->ds);
}

/* What training saw: ids, weights, and a digest of the bytes, in order. */
typedef struct stream {
	uint64_t ids[EPOCHS * N * 2];
	float w[EPOCHS * N * 2];
	uint64_t digest;
	size_t n;
} stream;

static void check_batch(session *s, const ibstore_batch *b)
{
	uint8_t buf[4096];
	uint64_t pos = 0;
	for (size_t i = 0; i < b->n; i++) {
		size_t len;
		int32_t label;
		assert_int_equal(ibstore_dataset_read(s->ds, b->ids[i], buf, sizeof buf, &len, &label),
				 0);
		assert_int_equal(b->sizes[i], len);
		assert_int_equal(b->offsets[i], pos);
		assert_memory_equal(b->data + b->offsets[i], buf, len);
		assert_int_equal(b->labels[i], label);
		pos += len;
	}
	assert_int_equal(b->data_size, pos);
}

/* Streams one epoch; records it; reports losses unless told not to. */
static uint64_t run_epoch(session *s, uint32_t e, stream *out, int report, int check)
{
	ibstore_epoch_info info;
	int rc = ibstore_loader_epoch_begin(s->l, e, &info);
	if (rc)
		fail_msg("begin: %s", ibstore_loader_errmsg(s->l));
	const ibstore_batch *b;
	uint64_t batches = 0;
	for (;;) {
		rc = ibstore_loader_next(s->l, &b);
		if (rc)
			fail_msg("next: %s", ibstore_loader_errmsg(s->l));
		if (!b)
			break;
		assert_int_equal(b->index, info.cursor + batches);
		if (check)
			check_batch(s, b);
		float loss[512];
		for (size_t i = 0; i < b->n; i++) {
			loss[i] = loss_of(b->ids[i], e);
			out->ids[out->n] = b->ids[i];
			out->w[out->n++] = b->weights[i];
			for (uint32_t k = 0; k < b->sizes[i]; k++)
				out->digest = out->digest * 31 + b->data[b->offsets[i] + k];
		}
		if (report)
			assert_int_equal(ibstore_loader_report(s->l, b, loss), 0);
		ibstore_loader_release(s->l, b);
		batches++;
	}
	assert_int_equal(batches, info.batches - info.cursor);
	assert_int_equal(ibstore_loader_epoch_end(s->l), 0);
	return batches;
}

static void run_all(session *s, stream *out, int check)
{
	for (uint32_t e = 0; e < EPOCHS; e++)
		run_epoch(s, e, out, 1, check);
}

static void test_emitted_samples_equal_random_access_and_the_plan(void **state)
{
	fixture *f = *state;
	session s = open_session(f->ds, fresh_run(f), 64, 0, 64, NULL);
	stream *st = calloc(1, sizeof *st);
	run_epoch(&s, 0, st, 1, 1);
	/* epoch 1 prunes: the stream is the plan, weights included */
	ibstore_epoch_info info;
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 1, &info), 0);
	assert_true(info.plan.prunes);
	assert_true(info.samples < N);
	const ibstore_plan *p = ibstore_run_plan(s.run);
	assert_non_null(p);
	uint64_t k = 0;
	const ibstore_batch *b;
	while (ibstore_loader_next(s.l, &b) == 0 && b) {
		check_batch(&s, b);
		for (size_t i = 0; i < b->n; i++, k++) {
			assert_int_equal(b->ids[i], p->ids[k]);
			assert_true(b->weights[i] == p->weights[k]);
		}
		ibstore_loader_release(s.l, b);
	}
	assert_int_equal(k, p->len);
	ibstore_loader_stats ls;
	assert_int_equal(ibstore_loader_stats_get(s.l, &ls), 0);
	assert_int_equal(ls.samples, p->len);
	assert_int_equal(ls.kept, p->len);
	assert_int_equal(ls.pruned, N - p->len);
	assert_int_equal(ibstore_loader_epoch_end(s.l), 0);
	close_session(&s);
	free(st);
}

/* Read ranges as the backend was asked for them. */
typedef struct ranges {
	uint32_t shard[20000];
	uint64_t off[20000], len[20000];
	size_t n;
} ranges;

static void record(void *ctx, uint32_t shard, uint64_t off, uint64_t len)
{
	ranges *r = ctx;
	if (r->n < 20000) {
		r->shard[r->n] = shard;
		r->off[r->n] = off;
		r->len[r->n++] = len;
	}
}

/* Bytes of records of ids in `set` (1) or not in it (0) that the ranges touch. */
static uint64_t touched(ibstore_dataset *ds, const ranges *r, const uint8_t *kept, int want)
{
	uint64_t sum = 0;
	for (uint64_t id = 0; id < N; id++) {
		if (kept[id] != want)
			continue;
		ibstore_location loc;
		ibstore_dataset_locate(ds, id, &loc);
		uint64_t a = loc.offset, z = loc.payload_offset + loc.stored_size;
		for (size_t i = 0; i < r->n; i++) {
			if (r->shard[i] != loc.shard)
				continue;
			uint64_t s = r->off[i] > a ? r->off[i] : a;
			uint64_t t = r->off[i] + r->len[i] < z ? r->off[i] + r->len[i] : z;
			if (t > s)
				sum += t - s;
		}
	}
	return sum;
}

static void pruned_epoch_ranges(fixture *f, uint64_t gap, ranges *r, ibstore_loader_stats *ls,
				uint8_t *kept, session *out)
{
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.backend = IBSTORE_BACKEND_URING; /* auto would serve a cached dataset by mmap */
	lo.gap = gap;
	lo.on_read = record;
	lo.on_read_ctx = r;
	session s = open_session(f->ds, fresh_run(f), 64, 0, 64, &lo);
	stream *st = calloc(1, sizeof *st);
	run_epoch(&s, 0, st, 1, 0);
	r->n = 0;
	ibstore_epoch_info info;
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 1, &info), 0);
	const ibstore_plan *p = ibstore_run_plan(s.run);
	memset(kept, 0, N);
	for (uint64_t i = 0; i < p->len; i++)
		kept[p->ids[i]] = 1;
	const ibstore_batch *b;
	while (ibstore_loader_next(s.l, &b) == 0 && b)
		ibstore_loader_release(s.l, b);
	ibstore_loader_stats_get(s.l, ls);
	assert_int_equal(ibstore_loader_epoch_end(s.l), 0);
	free(st);
	*out = s;
}

static void test_pruned_samples_are_never_read(void **state)
{
	fixture *f = *state;
	ranges *r = calloc(1, sizeof *r);
	uint8_t kept[N];
	ibstore_loader_stats ls;
	session s;
	pruned_epoch_ranges(f, 0, r, &ls, kept, &s);
	int pruned = 0;
	for (int i = 0; i < N; i++)
		pruned += !kept[i];
	assert_true(pruned > 500);
	/* coalescing off: one request per kept record, exactly its bytes */
	assert_int_equal(r->n, N - pruned);
	assert_int_equal(ls.requests, N - pruned);
	assert_int_equal(touched(s.ds, r, kept, 0), 0);
	uint64_t kept_bytes = touched(s.ds, r, kept, 1), total = 0, pruned_bytes = 0;
	for (size_t i = 0; i < r->n; i++)
		total += r->len[i];
	assert_int_equal(kept_bytes, total);
	assert_int_equal(ls.bytes_read, total);
	assert_int_equal(ls.read_around, 0);
	for (uint64_t id = 0; id < N; id++) {
		ibstore_location loc;
		ibstore_dataset_locate(s.ds, id, &loc);
		if (!kept[id])
			pruned_bytes += 40 + loc.stored_size;
	}
	assert_int_equal(ls.bytes_skipped, pruned_bytes);
	close_session(&s);
	free(r);
}

static void test_pruned_bytes_read_through_are_counted_as_read_around(void **state)
{
	fixture *f = *state;
	ranges *r = calloc(1, sizeof *r);
	uint8_t kept[N];
	ibstore_loader_stats ls;
	session s;
	pruned_epoch_ranges(f, 64 << 10, r, &ls, kept, &s);
	assert_true(r->n < 100); /* coalesced into large reads */
	uint64_t total = 0, pruned_bytes = 0;
	for (size_t i = 0; i < r->n; i++)
		total += r->len[i];
	assert_int_equal(ls.bytes_read, total);
	uint64_t pruned_read = touched(s.ds, r, kept, 0);
	assert_true(pruned_read > 0);
	assert_true(ls.read_around >= pruned_read);
	assert_int_equal(ls.read_around, total - touched(s.ds, r, kept, 1));
	for (uint64_t id = 0; id < N; id++) {
		ibstore_location loc;
		ibstore_dataset_locate(s.ds, id, &loc);
		if (!kept[id])
			pruned_bytes += 40 + loc.stored_size;
	}
	assert_int_equal(ls.bytes_skipped, pruned_bytes - pruned_read);
	close_session(&s);
	free(r);
}

static void stream_with(fixture *f, const char *ds, ibstore_backend be, uint32_t threads,
			int direct, uint64_t budget, stream *out)
{
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.backend = be;
	lo.threads = threads;
	lo.direct = direct;
	lo.prefetch = 2;
	if (budget)
		lo.budget = budget;
	session s = open_session(ds, fresh_run(f), 100, 0, 64, &lo);
	run_all(&s, out, 0);
	ibstore_loader_stats ls;
	ibstore_loader_stats_get(s.l, &ls);
	assert_string_equal(ls.backend, be == IBSTORE_BACKEND_PREAD  ? "pread"
					: be == IBSTORE_BACKEND_MMAP ? "mmap"
								     : uring_name());
	close_session(&s);
}

static void test_backends_threads_and_budgets_give_identical_streams(void **state)
{
	fixture *f = *state;
	stream *ref = calloc(1, sizeof *ref), *got = calloc(1, sizeof *got);
	stream_with(f, f->ds, IBSTORE_BACKEND_URING, 1, 0, 0, ref);
	assert_true(ref->n > (size_t)N * 3);
	struct {
		ibstore_backend be;
		uint32_t threads;
		uint64_t budget;
	} cases[] = {
		{IBSTORE_BACKEND_PREAD, 1, 0},  {IBSTORE_BACKEND_URING, 2, 0},
		{IBSTORE_BACKEND_PREAD, 3, 0},  {IBSTORE_BACKEND_URING, 4, 0},
		/* a budget far below the dataset: many small windows */
		{IBSTORE_BACKEND_URING, 2, 1 << 20}, {IBSTORE_BACKEND_PREAD, 2, 1 << 20},
		/* decoding straight from the page cache */
		{IBSTORE_BACKEND_MMAP, 1, 0}, {IBSTORE_BACKEND_MMAP, 2, 1 << 20},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		memset(got, 0, sizeof *got);
		stream_with(f, f->ds, cases[c].be, cases[c].threads, 0, cases[c].budget, got);
		assert_int_equal(got->n, ref->n);
		assert_memory_equal(got->ids, ref->ids, ref->n * 8);
		assert_memory_equal(got->w, ref->w, ref->n * 4);
		assert_true(got->digest == ref->digest);
	}
	free(ref);
	free(got);
}

static void test_direct_io_gives_the_same_stream(void **state)
{
	fixture *f = *state;
	char ds[160];
	snprintf(ds, sizeof ds, "%s/aligned", f->dir);
	make_dataset(ds, 4096, IBSTORE_COMPRESS_NONE);
	stream *ref = calloc(1, sizeof *ref), *got = calloc(1, sizeof *got);
	stream_with(f, ds, IBSTORE_BACKEND_PREAD, 1, 0, 0, ref);
	stream_with(f, ds, IBSTORE_BACKEND_URING, 2, 1, 0, got);
	assert_int_equal(got->n, ref->n);
	assert_memory_equal(got->ids, ref->ids, ref->n * 8);
	assert_true(got->digest == ref->digest);
	memset(got, 0, sizeof *got);
	stream_with(f, ds, IBSTORE_BACKEND_PREAD, 2, 1, 0, got);
	assert_true(got->digest == ref->digest);
	free(ref);
	free(got);
}

/* One epoch of large records through a forced read backend with O_DIRECT
 * left to auto; returns whether it used O_DIRECT and the stream's digest. */
static int large_epoch(const char *ds_path, const char *run_path, uint32_t n,
		       ibstore_backend be, int direct, uint64_t *digest)
{
	session s;
	assert_int_equal(ibstore_dataset_open(ds_path, &s.ds), 0);
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = n;
	ro.prune.epochs = 2;
	ro.batch_size = 8;
	assert_int_equal(ibstore_run_open(run_path, &ro, &s.run), 0);
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.backend = be;
	lo.direct = direct;
	ibstore_loader_opts o = pinned(&lo);
	if (ibstore_loader_open(s.ds, s.run, &o, &s.l))
		fail_msg("loader: %s", ibstore_loader_errmsg(s.l));
	/* every sample as random access reads it, each id once */
	uint8_t *want = malloc(1 << 17), *seen = calloc(n, 1);
	uint64_t got = 0;
	*digest = 0;
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 0, NULL), 0);
	const ibstore_batch *b;
	while (ibstore_loader_next(s.l, &b) == 0 && b) {
		for (size_t i = 0; i < b->n; i++) {
			size_t len;
			int32_t label;
			assert_int_equal(ibstore_dataset_read(s.ds, b->ids[i], want, 1 << 17, &len,
							      &label), 0);
			assert_int_equal(b->sizes[i], len);
			assert_int_equal(b->labels[i], label);
			assert_memory_equal(b->data + b->offsets[i], want, len);
			assert_true(b->ids[i] < n && !seen[b->ids[i]]);
			seen[b->ids[i]] = 1;
			*digest = *digest * 31 + b->ids[i];
			got++;
		}
		ibstore_loader_release(s.l, b);
	}
	assert_int_equal(got, n);
	assert_int_equal(ibstore_loader_epoch_end(s.l), 0);
	ibstore_loader_stats ls;
	ibstore_loader_stats_get(s.l, &ls);
	close_session(&s);
	free(want);
	free(seen);
	return ls.direct;
}

/* Whether every page of the dataset's shards is in the page cache. */
static int shards_resident(const char *ds_path)
{
	ibstore_dataset *ds;
	assert_int_equal(ibstore_dataset_open(ds_path, &ds), 0);
	ibstore_info info;
	ibstore_dataset_info_get(ds, &info);
	int all = 1;
	for (uint32_t sh = 0; sh < info.shards && all; sh++) {
		int fd = open(ibstore_dataset_shard_path(ds, sh), O_RDONLY);
		struct stat sb;
		assert_true(fd >= 0 && fstat(fd, &sb) == 0);
		size_t len = (size_t)sb.st_size, pages = (len + 4095) / 4096;
		void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		unsigned char *vec = malloc(pages);
		assert_true(p != MAP_FAILED && vec && mincore(p, len, vec) == 0);
		for (size_t i = 0; i < pages && all; i++)
			all = vec[i] & 1;
		free(vec);
		munmap(p, len);
		close(fd);
	}
	ibstore_dataset_close(ds);
	return all;
}

/* direct auto means O_DIRECT for large records read from disk: a forced
 * uring or pread backend reads a dataset that sits in the page cache from
 * there, and an evicted one with O_DIRECT, with the same stream. */
static void test_direct_auto_reads_a_cached_dataset_from_the_cache(void **state)
{
	fixture *f = *state;
	char ds[160];
	snprintf(ds, sizeof ds, "%s/large", f->dir);
	const uint32_t n = 40, size = 80000; /* records of 64 KiB or more */
	ibstore_writer_opts wo;
	ibstore_writer_opts_init(&wo);
	wo.alignment = 4096;
	wo.compress = IBSTORE_COMPRESS_NONE;
	wo.fsync = 0;
	ibstore_writer *w;
	assert_int_equal(ibstore_writer_create(ds, &wo, &w), 0);
	uint8_t *buf = malloc(size);
	for (uint32_t i = 0; i < n; i++) {
		for (uint32_t k = 0; k < size; k++)
			buf[k] = (uint8_t)(i * 131 + k * 7 + (k >> 9));
		assert_int_equal(ibstore_writer_add(w, buf, size, (int32_t)(i % 3), NULL, NULL), 0);
	}
	free(buf);
	assert_int_equal(ibstore_writer_publish(w), 0);
	ibstore_writer_free(w);

	uint64_t ref, got;
	/* can this file system do O_DIRECT at all? */
	int can_direct = large_epoch(ds, fresh_run(f), n, IBSTORE_BACKEND_PREAD, 1, &ref);
	ibstore_backend bes[] = {IBSTORE_BACKEND_URING, IBSTORE_BACKEND_PREAD};
	for (size_t b = 0; b < 2; b++) {
		char cmd[300];
		snprintf(cmd, sizeof cmd, "cat '%s'/shard-* > /dev/null", ds);
		/* the kernel may drop a page between our look and the loader's
		 * (memory pressure, DAMON), and a buffered read of the dataset's
		 * open may bring it back before we look again: so a loader that
		 * reads a cached dataset from the cache must do so in one of five
		 * tries (one that never does fails all five) */
		int direct = 1;
		for (int attempt = 0; attempt < 5 && direct; attempt++) {
			assert_int_equal(system(cmd), 0);
			if (!shards_resident(ds))
				continue; /* dropped already: read them in again */
			direct = large_epoch(ds, fresh_run(f), n, bes[b], -1, &got);
			assert_true(got == ref);
		}
		assert_int_equal(direct, 0);

		ibstore_dataset *d;
		assert_int_equal(ibstore_dataset_open(ds, &d), 0);
		assert_int_equal(ibstore_dataset_evict(d), 0);
		ibstore_dataset_close(d);
		int evicted = !shards_resident(ds); /* evicting is advice */
		direct = large_epoch(ds, fresh_run(f), n, bes[b], -1, &got);
		assert_true(got == ref);
		if (evicted)
			assert_int_equal(direct, can_direct);
	}
}

/* Opens the dataset and a run of it in a forked child, without cmocka (a
 * failed assertion there would run the rest of the suite in the child);
 * batch 0 keeps the run's default.  0 or -1. */
static int child_open(const char *ds_path, const char *run_path, uint32_t batch,
		      ibstore_dataset **ds, ibstore_run **r)
{
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = N;
	ro.prune.epochs = EPOCHS;
	if (batch)
		ro.batch_size = batch;
	return ibstore_dataset_open(ds_path, ds) || ibstore_run_open(run_path, &ro, r) ? -1 : 0;
}

/* seccomp: io_uring_setup fails with EPERM, as under Docker's profile. */
static int forbid_io_uring(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void test_falls_back_to_pread_when_io_uring_is_refused(void **state)
{
	fixture *f = *state;
	if (pread_only())
		skip();
	const char *run = fresh_run(f);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (forbid_io_uring())
			_exit(10);
		ibstore_dataset *ds;
		ibstore_run *r;
		ibstore_loader *l;
		if (child_open(f->ds, run, 0, &ds, &r))
			_exit(11);
		ibstore_loader_opts lo;
		ibstore_loader_opts_init(&lo);
		lo.backend = IBSTORE_BACKEND_URING; /* insisting on io_uring fails clearly */
		if (ibstore_loader_open(ds, r, &lo, &l) != IBSTORE_EUNSUPPORTED ||
		    !strstr(ibstore_loader_errmsg(l), "io_uring"))
			_exit(12);
		ibstore_loader_close(l);
		lo.backend = IBSTORE_BACKEND_AUTO;
		if (ibstore_loader_open(ds, r, &lo, &l))
			_exit(13);
		ibstore_loader_stats ls;
		ibstore_loader_stats_get(l, &ls);
		if (strcmp(ls.backend, "pread"))
			_exit(14);
		const ibstore_batch *b;
		size_t n = 0;
		if (ibstore_loader_epoch_begin(l, 0, NULL))
			_exit(15);
		while (ibstore_loader_next(l, &b) == 0 && b) {
			n += b->n;
			ibstore_loader_release(l, b);
		}
		_exit(n == N ? 0 : 16);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_resume_mid_epoch_continues_the_same_sequence(void **state)
{
	fixture *f = *state;
	stream *ref = calloc(1, sizeof *ref), *got = calloc(1, sizeof *got);
	session s = open_session(f->ds, fresh_run(f), 50, 0, 3, NULL);
	run_all(&s, ref, 0);
	close_session(&s);

	/* stop after 10 batches of epoch 2: the last commit was at batch 9 */
	const char *run = fresh_run(f);
	s = open_session(f->ds, run, 50, 0, 3, NULL);
	run_epoch(&s, 0, got, 1, 0);
	run_epoch(&s, 1, got, 1, 0);
	ibstore_epoch_info info;
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 2, &info), 0);
	size_t epoch_start = got->n;
	for (int k = 0; k < 10; k++) {
		const ibstore_batch *b;
		assert_int_equal(ibstore_loader_next(s.l, &b), 0);
		float loss[64];
		for (size_t i = 0; i < b->n; i++) {
			loss[i] = loss_of(b->ids[i], 2);
			got->ids[got->n] = b->ids[i];
			got->w[got->n++] = b->weights[i];
		}
		assert_int_equal(ibstore_loader_report(s.l, b, loss), 0);
		ibstore_loader_release(s.l, b);
	}
	close_session(&s); /* a crash: nothing more is committed */
	s = open_session(f->ds, run, 50, 0, 3, NULL);
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 2, &info), 0);
	assert_int_equal(info.cursor, 9);
	got->n = epoch_start + 9 * 50; /* batch 9 comes again */
	const ibstore_batch *b;
	uint64_t expect = 9;
	while (ibstore_loader_next(s.l, &b) == 0 && b) {
		assert_int_equal(b->index, expect++);
		float loss[64];
		for (size_t i = 0; i < b->n; i++) {
			loss[i] = loss_of(b->ids[i], 2);
			got->ids[got->n] = b->ids[i];
			got->w[got->n++] = b->weights[i];
		}
		assert_int_equal(ibstore_loader_report(s.l, b, loss), 0);
		ibstore_loader_release(s.l, b);
	}
	assert_int_equal(ibstore_loader_epoch_end(s.l), 0);
	stream tmp;
	tmp.n = 0;
	(void)tmp;
	for (uint32_t e = 3; e < EPOCHS; e++) {
		stream *rest = calloc(1, sizeof *rest);
		run_epoch(&s, e, rest, 1, 0);
		memcpy(got->ids + got->n, rest->ids, rest->n * 8);
		memcpy(got->w + got->n, rest->w, rest->n * 4);
		got->n += rest->n;
		free(rest);
	}
	close_session(&s);
	assert_int_equal(got->n, ref->n);
	assert_memory_equal(got->ids, ref->ids, ref->n * 8);
	assert_memory_equal(got->w, ref->w, ref->n * 4);
	free(ref);
	free(got);
}

static void test_drop_last_and_out_of_order_release(void **state)
{
	fixture *f = *state;
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.prefetch = 3;
	session s = open_session(f->ds, fresh_run(f), 128, 1, 64, &lo);
	ibstore_epoch_info info;
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 0, &info), 0);
	assert_int_equal(info.batches, N / 128);
	const ibstore_batch *held[64];
	size_t n = 0;
	while (ibstore_loader_next(s.l, &held[n]) == 0 && held[n]) {
		assert_int_equal(held[n]->n, 128); /* the partial tail is dropped */
		n++;
	}
	assert_int_equal(n, N / 128);
	/* all held at once, released backwards, each still intact until then */
	for (size_t i = n; i-- > 0;) {
		check_batch(&s, held[i]);
		ibstore_loader_release(s.l, held[i]);
	}
	assert_int_equal(ibstore_loader_epoch_end(s.l), 0);
	/* a mismatching batch size is named */
	ibstore_loader *l2;
	lo.batch_size = 64;
	assert_int_equal(ibstore_loader_open(s.ds, s.run, &lo, &l2), IBSTORE_EMISMATCH);
	assert_non_null(strstr(ibstore_loader_errmsg(l2), "batch size"));
	ibstore_loader_close(l2);
	close_session(&s);
}

static void flip(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

/* One epoch over a dataset whose sample 1234 is corrupt, through `backend`:
 * `fail` stops at it naming the sample; `skip` leaves it out of its batch,
 * reports and counts it, and emits every other sample. */
static void corrupt_epoch(fixture *f, ibstore_backend backend, ibstore_corrupt_policy policy)
{
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.backend = backend;
	lo.corrupt = policy;
	session s = open_session(f->ds, fresh_run(f), 64, 0, 64, &lo);
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 0, NULL), 0);
	const ibstore_batch *b;
	int rc;
	size_t seen = 0;
	int skipped_batches = 0;
	while ((rc = ibstore_loader_next(s.l, &b)) == 0 && b) {
		seen += b->n;
		if (b->n_skipped) {
			skipped_batches++;
			assert_int_equal(b->n_skipped, 1);
			assert_int_equal(b->skipped_ids[0], 1234);
			for (size_t i = 0; i < b->n; i++)
				assert_true(b->ids[i] != 1234);
		}
		if (policy == IBSTORE_CORRUPT_SKIP)
			check_batch(&s, b);
		ibstore_loader_release(s.l, b);
	}
	if (policy == IBSTORE_CORRUPT_FAIL) {
		assert_int_equal(rc, IBSTORE_ECORRUPT);
		assert_non_null(strstr(ibstore_loader_errmsg(s.l), "sample 1234"));
		assert_true(seen < N);
	} else {
		assert_int_equal(rc, 0);
		assert_int_equal(seen, N - 1);
		assert_int_equal(skipped_batches, 1);
		ibstore_loader_stats ls;
		ibstore_loader_stats_get(s.l, &ls);
		assert_int_equal(ls.corrupt_skipped, 1);
		assert_int_equal(ibstore_loader_epoch_end(s.l), 0);
	}
	close_session(&s);
}

static void test_corrupt_sample_fails_or_is_skipped_and_counted(void **state)
{
	fixture *f = *state;
	ibstore_dataset *ds;
	assert_int_equal(ibstore_dataset_open(f->ds, &ds), 0);
	ibstore_location loc;
	assert_int_equal(ibstore_dataset_locate(ds, 1234, &loc), 0);
	char shard[256];
	snprintf(shard, sizeof shard, "%s", ibstore_dataset_shard_path(ds, loc.shard));
	ibstore_dataset_close(ds);
	flip(shard, loc.payload_offset + 3);
	/* reads decoded by the decoders and by the I/O thread, and the mapping */
	const ibstore_backend backends[] = {IBSTORE_BACKEND_URING, IBSTORE_BACKEND_PREAD,
					    IBSTORE_BACKEND_MMAP};
	for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
		corrupt_epoch(f, backends[i], IBSTORE_CORRUPT_FAIL);
		corrupt_epoch(f, backends[i], IBSTORE_CORRUPT_SKIP);
	}
	flip(shard, loc.payload_offset + 3);
}

static void test_padding_losses_are_not_recorded(void **state)
{
	fixture *f = *state;
	ibstore_dataset *ds;
	assert_int_equal(ibstore_dataset_open(f->ds, &ds), 0);
	ibstore_run_opts ro;
	ibstore_run_opts_init(&ro);
	ro.samples = N;
	ro.prune.epochs = EPOCHS;
	ro.batch_size = 64;
	ro.rank = 6;
	ro.world = 7; /* 3000 = 7 * 428 + 4: ranks 4..6 get one padding entry */
	ibstore_run *run;
	assert_int_equal(ibstore_run_open(fresh_run(f), &ro, &run), 0);
	ibstore_loader *l;
	ibstore_loader_opts lo = pinned(NULL);
	assert_int_equal(ibstore_loader_open(ds, run, &lo, &l), 0);
	ibstore_epoch_info info;
	assert_int_equal(ibstore_loader_epoch_begin(l, 0, &info), 0);
	assert_int_equal(info.samples, 429);
	const ibstore_batch *b;
	uint64_t padded = UINT64_MAX, owned = 0;
	while (ibstore_loader_next(l, &b) == 0 && b) {
		float loss[64];
		for (size_t i = 0; i < b->n; i++) {
			loss[i] = 1.5f;
			if (b->weights[i] == 0.0f) {
				padded = b->ids[i];
				loss[i] = NAN; /* not recorded, so not refused either */
			} else {
				owned++;
			}
		}
		assert_int_equal(ibstore_loader_report(l, b, loss), 0);
		ibstore_loader_release(l, b);
	}
	assert_int_equal(owned, 428);
	assert_true(padded != UINT64_MAX);
	const float *s = ibstore_run_scores(run, NULL);
	assert_true(isnan(s[padded])); /* another rank's sample: not ours to score */
	uint64_t seen = 0;
	for (uint64_t i = 0; i < N; i++)
		seen += !isnan(s[i]);
	assert_int_equal(seen, 428);
	assert_int_equal(ibstore_loader_epoch_end(l), 0);
	ibstore_loader_close(l);
	ibstore_run_close(run);
	ibstore_dataset_close(ds);
}

static void test_mmap_touches_only_kept_records_and_auto_picks_it_when_cached(void **state)
{
	fixture *f = *state;
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.backend = IBSTORE_BACKEND_MMAP;
	session s = open_session(f->ds, fresh_run(f), 64, 0, 64, &lo);
	stream *st = calloc(1, sizeof *st);
	run_epoch(&s, 0, st, 1, 1);
	ibstore_epoch_info info;
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 1, &info), 0);
	const ibstore_plan *p = ibstore_run_plan(s.run);
	uint64_t kept_bytes = 0, pruned_bytes = 0;
	uint8_t kept[N] = {0};
	for (uint64_t i = 0; i < p->len; i++)
		kept[p->ids[i]] = 1;
	for (uint64_t id = 0; id < N; id++) {
		ibstore_location loc;
		ibstore_dataset_locate(s.ds, id, &loc);
		*(kept[id] ? &kept_bytes : &pruned_bytes) += 40 + loc.stored_size;
	}
	const ibstore_batch *b;
	while (ibstore_loader_next(s.l, &b) == 0 && b) {
		check_batch(&s, b);
		ibstore_loader_release(s.l, b);
	}
	ibstore_loader_stats ls;
	ibstore_loader_stats_get(s.l, &ls);
	assert_string_equal(ls.backend, "mmap");
	assert_int_equal(ls.requests, 0);
	assert_int_equal(ls.bytes_read, kept_bytes);
	assert_int_equal(ls.read_around, 0);
	assert_int_equal(ls.bytes_skipped, pruned_bytes);
	assert_int_equal(ibstore_loader_epoch_end(s.l), 0);
	close_session(&s);
	if (pread_only()) { /* auto's choice is not what this run tests */
		free(st);
		return;
	}
	/* auto: cached shards are served by mmap, evicted ones are read */
	s = open_session(f->ds, fresh_run(f), 64, 0, 64, NULL);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "cat '%s'/shard-* > /dev/null", f->ds);
	assert_int_equal(system(cmd), 0);
	memset(st, 0, sizeof *st);
	run_epoch(&s, 0, st, 1, 0);
	ibstore_loader_stats_get(s.l, &ls);
	assert_string_equal(ls.backend, "mmap");
	assert_int_equal(ibstore_dataset_evict(s.ds), 0);
	run_epoch(&s, 1, st, 1, 0);
	ibstore_loader_stats_get(s.l, &ls);
	/* evicting is advice: where the kernel kept the pages mmap stays right */
	assert_true(strcmp(ls.backend, "io_uring") == 0 || strcmp(ls.backend, "mmap") == 0);
	close_session(&s);
	free(st);
}

static void test_batches_outlive_their_epoch_and_loader(void **state)
{
	fixture *f = *state;
	session s = open_session(f->ds, fresh_run(f), 64, 0, 64, NULL);
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 0, NULL), 0);
	const ibstore_batch *a, *b, *c;
	assert_int_equal(ibstore_loader_next(s.l, &a), 0);
	assert_int_equal(ibstore_loader_next(s.l, &b), 0);
	/* an abandoned epoch: a new one begins while a and b are held */
	assert_int_equal(ibstore_loader_epoch_begin(s.l, 0, NULL), 0);
	check_batch(&s, a);
	ibstore_loader_release(s.l, a);
	assert_int_equal(ibstore_loader_next(s.l, &c), 0);
	ibstore_loader_close(s.l); /* b and c still held */
	check_batch(&s, b);
	check_batch(&s, c);
	ibstore_loader_release(s.l, b); /* the loader is gone: only the batch is touched */
	ibstore_loader_release(s.l, c);
	ibstore_run_close(s.run);
	ibstore_dataset_close(s.ds);
}

/*
 * Abandoning an epoch (close, or epoch_begin again) while the I/O thread
 * works outside the lock: drain() must be woken by whatever makes the
 * pipeline idle.  The hooks of loader_hooks.h hold the I/O thread in each
 * unlocked window (planning, submitting, reaping) for 20 ms so the
 * abandonment lands there every time.  Each case runs in a child process
 * with a deadline, so a lost wake-up fails the test instead of hanging it.
 */
enum { AB_CLOSE, AB_TAKE_ONE_THEN_CLOSE, AB_BEGIN_AGAIN };

typedef struct abandon_case {
	const char *ds;
	char run[160];
	ibstore_backend backend;
	unsigned threads;
	ib_loader_delays delay;
	int action;
} abandon_case;

/* In the child (no cmocka, see child_open): the exit status says what
 * went wrong. */
static int abandon_in_child(const abandon_case *c)
{
	ibstore_dataset *ds;
	ibstore_run *r;
	ibstore_loader *l;
	if (child_open(c->ds, c->run, 64, &ds, &r))
		return 11;
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.backend = c->backend;
	lo.threads = c->threads;
	lo = pinned(&lo);
	if (ibstore_loader_open(ds, r, &lo, &l))
		return 12;
	ib_loader_set_delays(l, &c->delay);
	const ibstore_batch *b;
	if (ibstore_loader_epoch_begin(l, 0, NULL))
		return 13;
	if (c->action == AB_TAKE_ONE_THEN_CLOSE) {
		if (ibstore_loader_next(l, &b) || !b)
			return 14;
		ibstore_loader_release(l, b);
	}
	if (c->action == AB_BEGIN_AGAIN) {
		if (ibstore_loader_epoch_begin(l, 0, NULL))
			return 15;
		size_t n = 0;
		while (ibstore_loader_next(l, &b) == 0 && b) {
			n += b->n;
			ibstore_loader_release(l, b);
		}
		if (n != N)
			return 16;
	}
	ibstore_loader_close(l);
	ibstore_run_close(r);
	ibstore_dataset_close(ds);
	return 0;
}

/* Forks, runs the case, and fails when the child has not exited cleanly
 * within `seconds` (then it is killed). */
static void abandon_must_finish(const abandon_case *c, int seconds, const char *what)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(abandon_in_child(c));
	int status = 0;
	for (int i = 0; i < seconds * 100; i++) {
		pid_t got = waitpid(pid, &status, WNOHANG);
		assert_true(got >= 0);
		if (got == pid) {
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				fail_msg("%s: the child failed (wait status %d)", what, status);
			return;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	fail_msg("%s: still not finished after %d s (a lost wake-up: the loader hung)", what,
		 seconds);
}

static void test_abandoning_an_epoch_while_the_io_thread_works_never_hangs(void **state)
{
	fixture *f = *state;
	static const ibstore_backend backends[] = {IBSTORE_BACKEND_MMAP, IBSTORE_BACKEND_URING,
						   IBSTORE_BACKEND_PREAD};
	static const char *bnames[] = {"mmap", "uring", "pread"};
	static const char *anames[] = {"close", "take one, close", "begin again"};
	static const char *dnames[] = {"plan", "submit", "reap"};
	int cases = 0;
	for (int bi = 0; bi < 3; bi++) {
		for (int d = 0; d < 3; d++) {
			for (int a = AB_CLOSE; a <= AB_BEGIN_AGAIN; a++) {
				abandon_case c = {.ds = f->ds, .backend = backends[bi],
						  .threads = 1 + (unsigned)(a % 2), .action = a};
				unsigned *slot = d == 0 ? &c.delay.plan_us
					       : d == 1 ? &c.delay.submit_us : &c.delay.reap_us;
				*slot = 20000;
				snprintf(c.run, sizeof c.run, "%s/abandon-%d.state", f->dir, cases);
				char what[128];
				snprintf(what, sizeof what, "%s backend, %s delayed, %s", bnames[bi],
					 dnames[d], anames[a]);
				abandon_must_finish(&c, 30, what);
				cases++;
			}
		}
	}
	assert_int_equal(cases, 27);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_locality_order_is_a_deterministic_permutation_of_the_slice(void **state)
{
	fixture *f = *state;
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.order = IBSTORE_ORDER_LOCALITY;
	stream *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *r = calloc(1, sizeof *r);
	session s = open_session(f->ds, fresh_run(f), 64, 0, 64, &lo);
	run_all(&s, a, 1);
	close_session(&s);
	s = open_session(f->ds, fresh_run(f), 64, 0, 64, &lo);
	run_all(&s, b, 0);
	close_session(&s);
	s = open_session(f->ds, fresh_run(f), 64, 0, 64, NULL);
	run_all(&s, r, 0);
	close_session(&s);
	assert_int_equal(a->n, b->n);
	assert_memory_equal(a->ids, b->ids, a->n * 8);
	assert_true(a->digest == b->digest);
	/* epoch 0 holds every sample once, in another order than random's */
	assert_memory_not_equal(a->ids, r->ids, N * 8);
	uint64_t *ids = malloc(N * 8);
	memcpy(ids, a->ids, N * 8);
	qsort(ids, N, 8, cmp_u64);
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(ids[i], i);
	free(ids);
	free(a);
	free(b);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_emitted_samples_equal_random_access_and_the_plan),
		cmocka_unit_test(test_pruned_samples_are_never_read),
		cmocka_unit_test(test_pruned_bytes_read_through_are_counted_as_read_around),
		cmocka_unit_test(test_backends_threads_and_budgets_give_identical_streams),
		cmocka_unit_test(test_direct_io_gives_the_same_stream),
		cmocka_unit_test(test_direct_auto_reads_a_cached_dataset_from_the_cache),
		cmocka_unit_test(test_falls_back_to_pread_when_io_uring_is_refused),
		cmocka_unit_test(test_resume_mid_epoch_continues_the_same_sequence),
		cmocka_unit_test(test_drop_last_and_out_of_order_release),
		cmocka_unit_test(test_corrupt_sample_fails_or_is_skipped_and_counted),
		cmocka_unit_test(test_padding_losses_are_not_recorded),
		cmocka_unit_test(test_batches_outlive_their_epoch_and_loader),
		cmocka_unit_test(test_abandoning_an_epoch_while_the_io_thread_works_never_hangs),
		cmocka_unit_test(test_mmap_touches_only_kept_records_and_auto_picks_it_when_cached),
		cmocka_unit_test(test_locality_order_is_a_deterministic_permutation_of_the_slice),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
