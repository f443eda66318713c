/*
 * test_stress.c — the loader's lifecycle hammered: thousands of cycles of
 * open → epoch_begin → take k batches (k random, 0 included) → abandon
 * the epoch (begin another), finish it, or close the loader with batches
 * still held, over every backend and 1–3 decode threads, some cycles with
 * the I/O thread slowed inside its unlocked windows (loader_hooks.h).
 *
 * It must finish every time: a watchdog thread aborts the program, naming
 * the cycle, when no cycle has completed for STALL_SECONDS (the test
 * wrapper then prints every thread's stack).  Every batch taken is checked
 * against the dataset, so a cycle that returns wrong or freed bytes fails.
 *
 * IBSTORE_STRESS_CYCLES (default 10000) is the total over all
 * configurations; IBSTORE_STRESS_SEED varies the random choices.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "ibstore.h"
#include "loader_hooks.h"

#define SAMPLES 600
#define BATCH 16
#define HELD_MAX 8
#define STALL_SECONDS 30

static const ibstore_backend BACKENDS[] = {IBSTORE_BACKEND_AUTO, IBSTORE_BACKEND_URING,
					   IBSTORE_BACKEND_PREAD, IBSTORE_BACKEND_MMAP};
static const char *BACKEND_NAMES[] = {"auto", "uring", "pread", "mmap"};
#define NBACKENDS 4
#define NTHREADS 3

typedef struct fixture {
	char dir[64];
	char ds[128];
	uint8_t *truth;        /* every sample's bytes, SAMPLE_MAX apart */
	size_t truth_len[SAMPLES];
	uint64_t cycles;       /* per configuration */
	uint64_t seed;
	/* the watchdog: the main thread counts cycles, the watchdog looks */
	atomic_uint_fast64_t done;
	atomic_int stop;
	char where[160];       /* what the current cycle does (main thread only
				  writes it; read by the watchdog when it fires) */
	pthread_t dog;
} fixture;

#define SAMPLE_MAX 1024

static size_t payload(uint64_t i, uint8_t *buf)
{
	size_t len = 64 + (i * 97) % (SAMPLE_MAX - 64);
	uint64_t x = i * 0x9E3779B97F4A7C15ull + 3;
	for (size_t j = 0; j < len; j++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[j] = (i & 1) ? (uint8_t)x : (uint8_t)(j + i);
	}
	return len;
}

static int32_t label_of(uint64_t i)
{
	return (int32_t)(i % 7);
}

static void *watchdog(void *arg)
{
	fixture *f = arg;
	uint64_t last = atomic_load(&f->done);
	int idle = 0;
	while (!atomic_load(&f->stop)) {
		sleep(1);
		uint64_t now = atomic_load(&f->done);
		idle = now == last ? idle + 1 : 0;
		last = now;
		if (idle >= STALL_SECONDS) {
			fprintf(stderr, "stress: no cycle finished for %d s; stuck in: %s\n",
				STALL_SECONDS, f->where);
			abort();
		}
	}
	return NULL;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	if (fx_mkdtemp(f->dir, sizeof f->dir, "ibstore-stress"))
		return -1;
	snprintf(f->ds, sizeof f->ds, "%s/ds", f->dir);
	f->truth = malloc((size_t)SAMPLES * SAMPLE_MAX);
	if (!f->truth)
		return -1;
	for (uint64_t i = 0; i < SAMPLES; i++)
		f->truth_len[i] = payload(i, f->truth + i * SAMPLE_MAX);
	ibstore_writer_opts o;
	ibstore_writer_opts_init(&o);
	o.shard_size = 128 << 10; /* several shards */
	o.fsync = 0;
	fx_dataset d = {.samples = SAMPLES, .max_len = SAMPLE_MAX, .payload = payload,
			.label = label_of, .opts = &o};
	fx_make_dataset(f->ds, &d);
	uint64_t total = env_u64("IBSTORE_STRESS_CYCLES", 10000);
	f->cycles = (total + NBACKENDS * NTHREADS - 1) / (NBACKENDS * NTHREADS);
	f->seed = env_u64("IBSTORE_STRESS_SEED", 1);
	if (pthread_create(&f->dog, NULL, watchdog, f))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	atomic_store(&f->stop, 1);
	pthread_join(f->dog, NULL);
	int rc = fx_rmtree(f->dir);
	free(f->truth);
	free(f);
	return rc;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void check_batch(const fixture *f, const ibstore_batch *b)
{
	assert_true(b->n <= BATCH);
	for (size_t i = 0; i < b->n; i++) {
		uint64_t id = b->ids[i];
		assert_true(id < SAMPLES);
		assert_int_equal(b->sizes[i], f->truth_len[id]);
		assert_int_equal(b->labels[i], (int32_t)(id % 7));
		assert_memory_equal(b->data + b->offsets[i], f->truth + id * SAMPLE_MAX,
				    f->truth_len[id]);
	}
}

/* Takes up to k batches, holding some (at most HELD_MAX), releasing the
 * rest, reporting losses of some; returns how many were taken. */
static uint64_t take(const fixture *f, ibstore_loader *l, uint64_t k, uint64_t *s,
		     const ibstore_batch **held, unsigned *nheld)
{
	uint64_t got = 0;
	while (got < k) {
		const ibstore_batch *b;
		int rc = ibstore_loader_next(l, &b);
		if (rc)
			fail_msg("next: %s", ibstore_loader_errmsg(l));
		if (!b)
			break;
		check_batch(f, b);
		got++;
		if (rnd(s) % 4 == 0) {
			float loss[BATCH];
			for (size_t i = 0; i < b->n; i++)
				loss[i] = (float)(b->ids[i] % 13) * 0.1f;
			assert_int_equal(ibstore_loader_report(l, b, loss), 0);
		}
		if (*nheld < HELD_MAX && rnd(s) % 3 == 0)
			held[(*nheld)++] = b;
		else
			ibstore_loader_release(l, b);
	}
	return got;
}

enum { END_CLOSE, END_ABANDON, END_FINISH, NENDS };

static void one_cycle(fixture *f, ibstore_dataset *ds, ibstore_run *run, int bi,
		      unsigned threads, uint64_t cycle, uint64_t *s)
{
	ibstore_loader_opts lo;
	ibstore_loader_opts_init(&lo);
	lo.backend = BACKENDS[bi];
	lo.threads = threads;
	lo.queue_depth = 1 + (unsigned)(rnd(s) % 32);
	lo.prefetch = (uint32_t)(rnd(s) % 4); /* 0: no limit */
	lo.budget = (uint64_t)(4 + rnd(s) % 8) << 20;
	lo.max_read = (uint32_t)(4096u << (rnd(s) % 6));
	ibstore_loader *l;
	if (ibstore_loader_open(ds, run, &lo, &l))
		fail_msg("open: %s", ibstore_loader_errmsg(l));
	if (rnd(s) % 4 == 0) { /* slow the I/O thread down where it drops the lock */
		ib_loader_delays d = {(unsigned)(rnd(s) % 300), (unsigned)(rnd(s) % 300),
				      (unsigned)(rnd(s) % 300)};
		ib_loader_set_delays(l, &d);
	}
	const ibstore_batch *held[HELD_MAX];
	unsigned nheld = 0;
	int end = (int)(rnd(s) % NENDS);
	uint32_t epoch = (uint32_t)(rnd(s) % 3);
	ibstore_epoch_info ei;
	snprintf(f->where, sizeof f->where, "cycle %" PRIu64 ", %s backend, %u threads, end %d",
		 cycle, BACKEND_NAMES[bi], threads, end);
	if (ibstore_loader_epoch_begin(l, epoch, &ei))
		fail_msg("begin: %s", ibstore_loader_errmsg(l));
	uint64_t remaining = ei.batches - ei.cursor;
	uint64_t k = rnd(s) % (remaining + 2); /* 0 up to all (and past the end) */
	if (end == END_FINISH)
		k = remaining + 1;
	uint64_t got = take(f, l, k, s, held, &nheld);
	if (end == END_FINISH) {
		assert_int_equal(got, remaining);
		if (ibstore_loader_epoch_end(l))
			fail_msg("end: %s", ibstore_loader_errmsg(l));
	} else if (end == END_ABANDON) {
		if (ibstore_loader_epoch_begin(l, epoch, &ei)) /* the first is abandoned */
			fail_msg("begin again: %s", ibstore_loader_errmsg(l));
		take(f, l, rnd(s) % 4, s, held, &nheld);
	}
	/* half the held batches go back before the close, half after it */
	unsigned before = nheld / 2;
	for (unsigned i = 0; i < before; i++)
		ibstore_loader_release(l, held[i]);
	ibstore_loader_close(l);
	for (unsigned i = before; i < nheld; i++) {
		check_batch(f, held[i]); /* still valid: the loader is gone */
		ibstore_loader_release(NULL, held[i]);
	}
}

static void stress(fixture *f, int bi)
{
	for (unsigned threads = 1; threads <= NTHREADS; threads++) {
		uint64_t s = f->seed * 0x9E3779B97F4A7C15ull + (uint64_t)bi * 131 + threads;
		char run[160];
		snprintf(run, sizeof run, "%s/run-%s-%u.state", f->dir, BACKEND_NAMES[bi], threads);
		ibstore_dataset *ds;
		ibstore_run *r = NULL;
		assert_int_equal(ibstore_dataset_open(f->ds, &ds), 0);
		ibstore_run_opts ro;
		ibstore_run_opts_init(&ro);
		ro.samples = SAMPLES;
		ro.prune.epochs = 3;
		ro.batch_size = BATCH;
		ro.checkpoint_every = 4;
		for (uint64_t c = 0; c < f->cycles; c++) {
			if (c % 100 == 0) { /* a fresh run now and then: epochs start over */
				ibstore_run_close(r);
				unlink(run);
				if (ibstore_run_open(run, &ro, &r))
					fail_msg("run: %s", ibstore_run_errmsg(r));
			}
			one_cycle(f, ds, r, bi, threads, c, &s);
			atomic_fetch_add(&f->done, 1);
		}
		ibstore_run_close(r);
		ibstore_dataset_close(ds);
		printf("# %s backend, %u decode threads: %" PRIu64 " cycles\n", BACKEND_NAMES[bi],
		       threads, f->cycles);
	}
}

static void test_auto_backend_survives_every_lifecycle(void **state)
{
	stress(*state, 0);
}

static void test_uring_backend_survives_every_lifecycle(void **state)
{
	stress(*state, 1);
}

static void test_pread_backend_survives_every_lifecycle(void **state)
{
	stress(*state, 2);
}

static void test_mmap_backend_survives_every_lifecycle(void **state)
{
	stress(*state, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auto_backend_survives_every_lifecycle),
		cmocka_unit_test(test_uring_backend_survives_every_lifecycle),
		cmocka_unit_test(test_pread_backend_survives_every_lifecycle),
		cmocka_unit_test(test_mmap_backend_survives_every_lifecycle),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
