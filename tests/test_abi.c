/*
 * test_abi.c — the versioned public structs (ibstore.h, Conventions).  A
 * caller compiled against an older header (tests/abi_old.c, built with
 * tests/abi_old.h: each struct without its newest field) works against this
 * library and gets the default for the field it lacks; the library never
 * reads or writes past the caller's size; a size of 0, a size no version
 * had, and a newer caller's option this library does not know are refused
 * with a message naming the struct.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi.h"
#include "abi_old_caller.h"
#include "ibstore.h"

#define N 200

typedef struct fixture {
	char dir[64];
	char ds[128];
	char run[128];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/ibstore-abi-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->ds, sizeof f->ds, "%s/ds", f->dir);
	snprintf(f->run, sizeof f->run, "%s/run.state", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	int rc = system(cmd);
	free(f);
	return rc;
}

static void assert_has(const char *msg, const char *part)
{
	if (!strstr(msg, part))
		fail_msg("message \"%s\" lacks \"%s\"", msg, part);
}

/* ---- an old caller's options, as the library reads them ------------- */

static void test_old_writer_opts_get_the_default_jobs(void **state)
{
	(void)state;
	unsigned char buf[ABI_BUF];
	size_t size = old_writer_opts(buf);
	assert_true(size > 0 && size < sizeof(ibstore_writer_opts));
	ibstore_writer_opts o;
	char msg[256] = "";
	assert_int_equal(ib_writer_opts_adopt(&o, (const void *)buf, msg, sizeof msg), 0);
	assert_int_equal(o.size, sizeof o);
	assert_int_equal(o.shard_size, 1 << 20);
	assert_int_equal(o.compress, IBSTORE_COMPRESS_LZ4);
	assert_int_equal(o.lz4hc_level, 5);
	assert_int_equal(o.alignment, 16);
	assert_int_equal(o.fsync, 0);
	assert_int_equal(o.jobs, 1); /* the field the old caller lacks: its default */
}

static void test_old_prune_opts_get_the_default_ema(void **state)
{
	(void)state;
	unsigned char buf[ABI_BUF];
	size_t size = old_prune_opts(buf);
	assert_true(size > 0 && size < sizeof(ibstore_prune_opts));
	ibstore_prune_opts o;
	char msg[256] = "";
	assert_int_equal(ib_prune_opts_adopt(&o, (const void *)buf, msg, sizeof msg), 0);
	assert_int_equal(o.policy, IBSTORE_POLICY_RANDOM);
	assert_int_equal(o.mode, IBSTORE_MODE_COMPAT);
	assert_true(o.ratio == 0.3 && o.delta == 0.5);
	assert_int_equal(o.epochs, 4);
	assert_int_equal(o.seed, 7);
	assert_true(o.ema == 0.0);
}

static void test_old_run_opts_get_the_default_checkpoint_every(void **state)
{
	(void)state;
	unsigned char buf[ABI_BUF];
	size_t size = old_run_opts(buf);
	assert_true(size > 0 && size < sizeof(ibstore_run_opts));
	ibstore_run_opts o;
	char msg[256] = "";
	assert_int_equal(ib_run_opts_adopt(&o, (const void *)buf, msg, sizeof msg), 0);
	assert_int_equal(o.size, sizeof o);
	assert_int_equal(o.prune.size, sizeof o.prune);
	assert_true(o.prune.ratio == 0.3 && o.prune.delta == 0.875);
	assert_int_equal(o.prune.epochs, 4);
	assert_int_equal(o.prune.seed, 7);
	assert_true(o.prune.ema == 0.0); /* the prune field the old caller lacks */
	assert_int_equal(o.samples, 100);
	assert_int_equal(o.batch_size, 16);
	assert_int_equal(o.drop_last, 1);
	assert_int_equal(o.rank, 0);
	assert_int_equal(o.world, 1);
	assert_int_equal(o.slice, IBSTORE_SLICE_DROP);
	assert_int_equal(o.checkpoint_every, 64); /* the run field it lacks */
}

static void test_old_loader_opts_get_the_default_read_context(void **state)
{
	(void)state;
	unsigned char buf[ABI_BUF];
	size_t size = old_loader_opts(buf);
	assert_true(size > 0 && size < sizeof(ibstore_loader_opts));
	ibstore_loader_opts o;
	char msg[256] = "";
	assert_int_equal(ib_loader_opts_adopt(&o, (const void *)buf, msg, sizeof msg), 0);
	assert_int_equal(o.batch_size, 16);
	assert_int_equal(o.drop_last, 1);
	assert_int_equal(o.prefetch, 3);
	assert_int_equal(o.queue_depth, 8);
	assert_int_equal(o.threads, 1);
	assert_int_equal(o.backend, IBSTORE_BACKEND_PREAD);
	assert_int_equal(o.direct, 0);
	assert_int_equal(o.order, IBSTORE_ORDER_LOCALITY);
	assert_int_equal(o.verify, 0);
	assert_int_equal(o.corrupt, IBSTORE_CORRUPT_SKIP);
	assert_int_equal(o.gap, 4096);
	assert_int_equal(o.max_read, 1 << 16);
	assert_int_equal(o.budget, 64 << 20);
	assert_null(o.on_read);
	assert_null(o.on_read_ctx);
}

/* ---- an old caller end to end --------------------------------------- */

static void test_old_caller_packs_plans_and_trains(void **state)
{
	fixture *f = *state;
	char err[256] = "";
	int rc = old_pack(f->ds, N, err);
	if (rc)
		fail_msg("old caller's pack: %d %s", rc, err);

	uint64_t samples = 0, max_size = 0;
	uint32_t labels = 0, size = 0;
	rc = old_info(f->ds, &samples, &labels, &max_size, &size, err);
	if (rc)
		fail_msg("old caller's info: %d %s", rc, err);
	ibstore_dataset *ds;
	assert_int_equal(ibstore_dataset_open(f->ds, &ds), 0);
	ibstore_info in;
	assert_int_equal(ibstore_dataset_info_get(ds, &in), 0);
	ibstore_dataset_close(ds);
	assert_int_equal(in.size, sizeof in);
	assert_int_equal(in.samples, N);
	assert_int_equal(samples, N);
	assert_int_equal(labels, 3);
	assert_int_equal(max_size, in.max_size);
	assert_true(size < sizeof in); /* the old caller's size, not this library's */

	rc = old_run_create(f->run, N, err);
	if (rc)
		fail_msg("old caller's run: %d %s", rc, err);
	ibstore_run *run;
	assert_int_equal(ibstore_run_open(f->run, NULL, &run), 0);
	ibstore_run_opts ro;
	assert_int_equal(ibstore_run_config_get(run, &ro), 0);
	ibstore_run_close(run);
	assert_true(ro.prune.ratio == 0.3 && ro.prune.ema == 0.0);
	assert_int_equal(ro.batch_size, 16);
	assert_int_equal(ro.checkpoint_every, 64);

	double ratio = 0;
	uint32_t batch_size = 0;
	rc = old_run_config(f->run, &ratio, &batch_size, &samples, err);
	if (rc)
		fail_msg("old caller's run config: %d %s", rc, err);
	assert_true(ratio == 0.3);
	assert_int_equal(batch_size, 16);
	assert_int_equal(samples, N);

	uint64_t batches = 0, reads = 0, reads_with_ctx = 0, stats[3] = {0};
	rc = old_load_epoch(f->ds, f->run, &batches, &reads, &reads_with_ctx, stats, err);
	if (rc)
		fail_msg("old caller's epoch: %d %s", rc, err);
	assert_int_equal(batches, N / 16); /* drop_last, no pruning in epoch 0 */
	assert_true(reads > 0);
	assert_int_equal(reads_with_ctx, 0); /* on_read_ctx at its default, NULL */
	/* its sizeof: the same as ours, `registered` sits in its tail padding */
	assert_int_equal(stats[0], sizeof(ibstore_loader_stats));
	assert_int_equal(stats[1], N / 16);
	assert_int_equal(stats[2], N / 16 * 16);

	rc = old_plan(50, err);
	if (rc)
		fail_msg("old caller's plan: %d %s", rc, err);
}

static void test_old_caller_gets_run_info_without_batches(void **state)
{
	fixture *f = *state;
	char err[256] = "";
	int rc = old_run_create(f->run, N, err);
	if (rc)
		fail_msg("old caller's run: %d %s", rc, err);
	uint64_t got[6] = {0};
	rc = old_run_info(f->run, got, err); /* -100: its poison was overwritten */
	if (rc)
		fail_msg("old caller's run info: %d %s", rc, err);

	ibstore_run *run;
	assert_int_equal(ibstore_run_open(f->run, NULL, &run), 0);
	ibstore_run_info ri;
	memset(&ri, 0xff, sizeof ri);
	assert_int_equal(ibstore_run_info_get(run, &ri), 0);
	ibstore_run_close(run);
	assert_int_equal(ri.size, sizeof ri);
	assert_true(ri.in_epoch);
	assert_int_equal(ri.batches, N / 16); /* the field the old caller lacks */

	assert_int_equal(got[0], offsetof(ibstore_run_info, batches)); /* its sizeof */
	assert_int_equal(got[1], ri.epoch);
	assert_int_equal(got[2], 1);
	assert_int_equal(got[3], 2);
	assert_int_equal(got[4], ri.epochs_done);
	assert_int_equal(got[5], 2);
	assert_int_equal(ri.cursor, 2);
	assert_int_equal(ri.committed, 2);
}

/* ---- sizes refused --------------------------------------------------- */

/* A caller built against a newer header: one more option after ours. */
typedef struct newer_writer_opts {
	ibstore_writer_opts o;
	uint64_t option;
} newer_writer_opts;

static void test_writer_opts_sizes(void **state)
{
	fixture *f = *state;
	ibstore_writer *w;
	ibstore_writer_opts o;
	assert_int_equal(ibstore_writer_opts_init(&o), 0);
	assert_int_equal(o.size, sizeof o);

	o.size = 0;
	assert_int_equal(ibstore_writer_create(f->ds, &o, &w), IBSTORE_EINVAL);
	assert_has(ibstore_writer_errmsg(w), "ibstore_writer_opts.size is 0");
	ibstore_writer_free(w);

	static const uint32_t garbage[] = {2, 4, 13, 4100, 0xdeadbeef};
	for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++) {
		o.size = garbage[i];
		assert_int_equal(ibstore_writer_create(f->ds, &o, &w), IBSTORE_EINVAL);
		assert_has(ibstore_writer_errmsg(w), "is not the size of any version");
		ibstore_writer_free(w);
	}

	newer_writer_opts n;
	memset(&n, 0xff, sizeof n);
	assert_int_equal(ibstore_writer_opts_init_sized(&n.o, sizeof n), 0);
	assert_int_equal(n.o.size, sizeof n);
	assert_int_equal(n.option, 0); /* unknown here: zeroed */
	assert_int_equal(ibstore_writer_create(f->ds, &n.o, &w), 0); /* left at 0: fine */
	ibstore_writer_free(w);
	n.option = 1;
	assert_int_equal(ibstore_writer_create(f->ds, &n.o, &w), IBSTORE_EINVAL);
	assert_has(ibstore_writer_errmsg(w), "an option it does not have");
	ibstore_writer_free(w);

	assert_int_equal(ibstore_writer_opts_init_sized(&o, 0), IBSTORE_EINVAL);
	assert_int_equal(ibstore_writer_opts_init_sized(&o, 6), IBSTORE_EINVAL);
}

static void test_run_opts_sizes(void **state)
{
	fixture *f = *state;
	ibstore_run *run;
	ibstore_run_opts o;
	assert_int_equal(ibstore_run_opts_init(&o), 0);
	o.samples = N;
	o.prune.epochs = 3;

	o.size = 0;
	assert_int_equal(ibstore_run_open(f->run, &o, &run), IBSTORE_EINVAL);
	assert_has(ibstore_run_errmsg(run), "ibstore_run_opts.size is 0");
	ibstore_run_close(run);
	o.size = sizeof o;
	o.prune.size = 0;
	assert_int_equal(ibstore_run_open(f->run, &o, &run), IBSTORE_EINVAL);
	assert_has(ibstore_run_errmsg(run), "ibstore_prune_opts.size is 0");
	ibstore_run_close(run);
	o.prune.size = sizeof o; /* a prune member larger than its run */
	assert_int_equal(ibstore_run_open(f->run, &o, &run), IBSTORE_EINVAL);
	assert_has(ibstore_run_errmsg(run), "cannot hold its prune member");
	ibstore_run_close(run);
	o.prune.size = 0x7777;
	assert_int_equal(ibstore_run_open(f->run, &o, &run), IBSTORE_EINVAL);
	assert_has(ibstore_run_errmsg(run), "is not the size of any version");
	ibstore_run_close(run);
	o.prune.size = sizeof o.prune;

	struct {
		ibstore_run_opts o;
		uint32_t option;
		uint32_t pad;
	} n;
	memset(&n, 0xff, sizeof n);
	assert_int_equal(ibstore_run_opts_init_sized(&n.o, sizeof n, sizeof n.o.prune), 0);
	assert_int_equal(n.option, 0);
	n.o.samples = N;
	n.o.prune.epochs = 3;
	n.option = 2;
	assert_int_equal(ibstore_run_open(f->run, &n.o, &run), IBSTORE_EINVAL);
	assert_has(ibstore_run_errmsg(run), "ibstore_run_opts: byte");
	ibstore_run_close(run);
	n.option = 0;
	assert_int_equal(ibstore_run_open(f->run, &n.o, &run), 0);

	/* the stored configuration into a newer caller's layout: zeros past ours */
	memset(&n, 0xff, sizeof n);
	assert_int_equal(ibstore_run_config_get_sized(run, &n.o, sizeof n, sizeof n.o.prune), 0);
	assert_int_equal(n.o.size, sizeof n);
	assert_int_equal(n.o.samples, N);
	assert_int_equal(n.option, 0);
	assert_int_equal(ibstore_run_config_get_sized(run, &n.o, 0, sizeof n.o.prune),
			 IBSTORE_EINVAL);
	assert_has(ibstore_run_errmsg(run), "ibstore_run_opts.size is 0");
	ibstore_run_close(run);
}

static void test_loader_info_and_run_info_sizes(void **state)
{
	fixture *f = *state;
	char err[256];
	assert_int_equal(old_pack(f->ds, N, err), 0);
	assert_int_equal(old_run_create(f->run, N, err), 0);
	ibstore_dataset *ds;
	ibstore_run *run;
	ibstore_loader *l;
	assert_int_equal(ibstore_dataset_open(f->ds, &ds), 0);
	assert_int_equal(ibstore_run_open(f->run, NULL, &run), 0);

	ibstore_loader_opts o;
	ibstore_loader_opts_init(&o);
	o.size = 0;
	assert_int_equal(ibstore_loader_open(ds, run, &o, &l), IBSTORE_EINVAL);
	assert_has(ibstore_loader_errmsg(l), "ibstore_loader_opts.size is 0");
	ibstore_loader_close(l);
	o.size = 1u << 31;
	assert_int_equal(ibstore_loader_open(ds, run, &o, &l), IBSTORE_EINVAL);
	assert_has(ibstore_loader_errmsg(l), "is not the size of any version");
	ibstore_loader_close(l);
	struct {
		ibstore_loader_opts o;
		void *option;
	} n;
	ibstore_loader_opts_init_sized(&n.o, sizeof n);
	n.option = &n;
	assert_int_equal(ibstore_loader_open(ds, run, &n.o, &l), IBSTORE_EINVAL);
	assert_has(ibstore_loader_errmsg(l), "an option it does not have");
	ibstore_loader_close(l);
	assert_int_equal(ibstore_loader_open(ds, run, NULL, &l), 0); /* NULL: defaults */
	ibstore_loader_stats ls;
	assert_int_equal(ibstore_loader_stats_get_sized(l, &ls, 0), IBSTORE_EINVAL);
	assert_has(ibstore_loader_errmsg(l), "ibstore_loader_stats.size is 0");
	assert_int_equal(ibstore_loader_stats_get_sized(l, &ls, 2), IBSTORE_EINVAL);
	assert_has(ibstore_loader_errmsg(l), "is not the size of any version");
	struct {
		ibstore_loader_stats s;
		uint64_t field;
	} ns;
	memset(&ns, 0xff, sizeof ns);
	assert_int_equal(ibstore_loader_stats_get_sized(l, &ns.s, sizeof ns), 0);
	assert_int_equal(ns.s.size, sizeof ns);
	assert_int_equal(ns.s.batches, 0);
	assert_int_equal(ns.field, 0);
	ibstore_loader_close(l);

	ibstore_info in;
	assert_int_equal(ibstore_dataset_info_get_sized(ds, &in, 0), IBSTORE_EINVAL);
	assert_has(ibstore_dataset_errmsg(ds), "ibstore_info.size is 0");
	assert_int_equal(ibstore_dataset_info_get_sized(ds, &in, 3), IBSTORE_EINVAL);
	assert_has(ibstore_dataset_errmsg(ds), "is not the size of any version");
	struct {
		ibstore_info i;
		uint64_t field;
	} ni;
	memset(&ni, 0xff, sizeof ni);
	assert_int_equal(ibstore_dataset_info_get_sized(ds, &ni.i, sizeof ni), 0);
	assert_int_equal(ni.i.size, sizeof ni);
	assert_int_equal(ni.i.samples, N);
	assert_int_equal(ni.field, 0);

	ibstore_run_info ri;
	assert_int_equal(ibstore_run_info_get_sized(run, &ri, 0), IBSTORE_EINVAL);
	assert_has(ibstore_run_errmsg(run), "ibstore_run_info.size is 0");
	assert_int_equal(ibstore_run_info_get_sized(run, &ri, 6), IBSTORE_EINVAL);
	assert_has(ibstore_run_errmsg(run), "is not the size of any version");
	struct {
		ibstore_run_info i;
		uint64_t field;
	} nr;
	memset(&nr, 0xff, sizeof nr);
	assert_int_equal(ibstore_run_info_get_sized(run, &nr.i, sizeof nr), 0);
	assert_int_equal(nr.i.size, sizeof nr);
	assert_int_equal(nr.i.in_epoch, 0);
	assert_int_equal(nr.i.batches, 0);
	assert_int_equal(nr.field, 0);

	ibstore_run_close(run);
	ibstore_dataset_close(ds);
}

static void test_prune_opts_sizes(void **state)
{
	(void)state;
	char msg[256] = "";
	ibstore_prune_opts o;
	ibstore_prune_opts_init(&o);
	o.epochs = 10;
	assert_int_equal(ibstore_prune_opts_check(&o, msg, sizeof msg), 0);
	assert_int_equal(ibstore_prune_epoch_prunes(&o, 0), 1);
	o.size = 0;
	assert_int_equal(ibstore_prune_opts_check(&o, msg, sizeof msg), IBSTORE_EINVAL);
	assert_has(msg, "ibstore_prune_opts.size is 0");
	assert_int_equal(ibstore_prune_epoch_prunes(&o, 0), 0);
	float s[4] = {1, 2, 3, 4};
	ibstore_plan *p;
	assert_int_equal(ibstore_plan_compute(&o, 0, s, 4, &p, msg, sizeof msg), IBSTORE_EINVAL);
	assert_has(msg, "ibstore_prune_opts.size is 0");
}

static void test_struct_sizes_are_reported(void **state)
{
	(void)state;
	assert_int_equal(ibstore_struct_size(IBSTORE_STRUCT_INFO), sizeof(ibstore_info));
	assert_int_equal(ibstore_struct_size(IBSTORE_STRUCT_WRITER_OPTS), sizeof(ibstore_writer_opts));
	assert_int_equal(ibstore_struct_size(IBSTORE_STRUCT_PRUNE_OPTS), sizeof(ibstore_prune_opts));
	assert_int_equal(ibstore_struct_size(IBSTORE_STRUCT_RUN_OPTS), sizeof(ibstore_run_opts));
	assert_int_equal(ibstore_struct_size(IBSTORE_STRUCT_LOADER_OPTS), sizeof(ibstore_loader_opts));
	assert_int_equal(ibstore_struct_size(IBSTORE_STRUCT_RUN_INFO), sizeof(ibstore_run_info));
	assert_int_equal(ibstore_struct_size(IBSTORE_STRUCT_LOADER_STATS),
			 sizeof(ibstore_loader_stats));
	assert_int_equal(ibstore_struct_size((ibstore_struct)0), 0);
	assert_int_equal(ibstore_struct_size((ibstore_struct)99), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_old_writer_opts_get_the_default_jobs),
		cmocka_unit_test(test_old_prune_opts_get_the_default_ema),
		cmocka_unit_test(test_old_run_opts_get_the_default_checkpoint_every),
		cmocka_unit_test(test_old_loader_opts_get_the_default_read_context),
		cmocka_unit_test_setup_teardown(test_old_caller_packs_plans_and_trains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_caller_gets_run_info_without_batches, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_writer_opts_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_opts_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loader_info_and_run_info_sizes, setup, teardown),
		cmocka_unit_test(test_prune_opts_sizes),
		cmocka_unit_test(test_struct_sizes_are_reported),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
