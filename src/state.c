/*
 * state.c — the run state: one small LMDB file per training run holding its
 * configuration, scores, the current epoch's plan and cursor, and per-epoch
 * statistics.  This file opens, creates, loads, commits and closes it and
 * answers the getters; state_epoch.c runs the epochs.  Commits at epoch ends
 * and every checkpoint_every batches; reopening resumes exactly from the
 * last commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "internal.h"
#include "state_int.h"

static int lmdb_fail(ibstore_run *r, int rc, const char *what)
{
	return ib_fail(r->errmsg, rc == MDB_MAP_FULL ? IBSTORE_ETOOBIG : IBSTORE_ECATALOG,
		     "run state: %s: %s", what, mdb_strerror(rc));
}

void ib_run_opts_defaults(ibstore_run_opts *o)
{
	memset(o, 0, sizeof *o);
	o->size = sizeof *o;
	ib_prune_opts_defaults(&o->prune);
	o->batch_size = 128;
	o->world = 1;
	o->slice = IBSTORE_SLICE_PAD;
	o->checkpoint_every = 64;
}

void ib_run_opts_to_config(const ibstore_run_opts *o, ib_run_config *c)
{
	*c = (ib_run_config){.policy = (uint32_t)o->prune.policy, .mode = (uint32_t)o->prune.mode,
			     .ratio = o->prune.ratio, .delta = o->prune.delta,
			     .ema = o->prune.ema, .epochs = o->prune.epochs,
			     .seed = o->prune.seed, .samples = o->samples,
			     .batch_size = o->batch_size, .drop_last = o->drop_last ? 1 : 0,
			     .rank = o->rank, .world = o->world, .slice = (uint32_t)o->slice,
			     .checkpoint_every = o->checkpoint_every};
}

static void cfg_to_opts(const ib_run_config *c, ibstore_run_opts *o)
{
	ib_run_opts_defaults(o);
	o->prune.policy = (ibstore_policy)c->policy;
	o->prune.mode = (ibstore_mode)c->mode;
	o->prune.ratio = c->ratio;
	o->prune.delta = c->delta;
	o->prune.ema = c->ema;
	o->prune.epochs = c->epochs;
	o->prune.seed = c->seed;
	o->samples = c->samples;
	o->batch_size = c->batch_size;
	o->drop_last = (int)c->drop_last;
	o->rank = c->rank;
	o->world = c->world;
	o->slice = (ibstore_slice_mode)c->slice;
	o->checkpoint_every = c->checkpoint_every;
}

static int check_opts(ibstore_run *r, const ibstore_run_opts *o)
{
	char msg[256];
	if (ibstore_prune_opts_check(&o->prune, msg, sizeof msg))
		return ib_fail(r->errmsg, IBSTORE_EINVAL, "%s", msg);
	if (o->samples == 0 || o->samples > UINT32_MAX)
		return ib_fail(r->errmsg, IBSTORE_EINVAL, "the sample count must be in 1 .. 2^32 - 1");
	if (o->batch_size == 0)
		return ib_fail(r->errmsg, IBSTORE_EINVAL, "batch size must be > 0");
	if (o->world == 0 || o->rank >= o->world)
		return ib_fail(r->errmsg, IBSTORE_EINVAL, "rank %" PRIu32 " is not below world %" PRIu32,
			     o->rank, o->world);
	if (o->slice != IBSTORE_SLICE_PAD && o->slice != IBSTORE_SLICE_DROP)
		return ib_fail(r->errmsg, IBSTORE_EINVAL, "unknown slice mode");
	return 0;
}

/* Names the first field where the stored configuration and `want` differ;
 * rank and world only when `placement`. */
int ib_run_config_compare(char *err, const ib_run_config *have, const ib_run_config *want,
			  int placement)
{
#define SAME(f, fmt)                                                                        \
	if (have->f != want->f)                                                             \
		return ib_fail(err, IBSTORE_EMISMATCH,                                      \
			     "run state was created with " #f " = " fmt ", not " fmt, have->f, \
			     want->f)
	SAME(samples, "%" PRIu64);
	SAME(policy, "%" PRIu32);
	SAME(mode, "%" PRIu32);
	SAME(ratio, "%g");
	SAME(delta, "%g");
	SAME(ema, "%g");
	SAME(epochs, "%" PRIu32);
	SAME(seed, "%" PRIu64);
	SAME(batch_size, "%" PRIu32);
	SAME(drop_last, "%" PRIu32);
	if (placement) {
		SAME(rank, "%" PRIu32);
		SAME(world, "%" PRIu32);
	}
	SAME(slice, "%" PRIu32);
	SAME(checkpoint_every, "%" PRIu32);
#undef SAME
	return 0;
}

static int get_val(ibstore_run *r, MDB_txn *txn, const char *key, MDB_val *v)
{
	MDB_val k = {strlen(key), (void *)key};
	int rc = mdb_get(txn, r->dbi, &k, v);
	if (rc == MDB_NOTFOUND)
		return IBSTORE_ENOTFOUND;
	return rc ? lmdb_fail(r, rc, key) : 0;
}

static int put_val(ibstore_run *r, MDB_txn *txn, const char *key, const void *data, size_t len)
{
	MDB_val k = {strlen(key), (void *)key}, v = {len, NULL};
	int rc = mdb_put(txn, r->dbi, &k, &v, MDB_RESERVE);
	if (rc)
		return lmdb_fail(r, rc, key);
	memcpy(v.mv_data, data, len);
	return 0;
}

static int put_scores(ibstore_run *r, MDB_txn *txn)
{
	MDB_val k = {6, "scores"}, v = {r->cfg.samples * 4, NULL};
	int rc = mdb_put(txn, r->dbi, &k, &v, MDB_RESERVE);
	if (rc)
		return lmdb_fail(r, rc, "scores");
	ib_f32_encode(r->scores, r->cfg.samples, v.mv_data);
	return 0;
}

static int put_progress(ibstore_run *r, MDB_txn *txn)
{
	uint8_t b[IB_RUN_PROGRESS_SIZE];
	ib_run_progress_encode(&r->prog, b);
	return put_val(r, txn, "progress", b, sizeof b);
}

static int put_plan(ibstore_run *r, MDB_txn *txn)
{
	MDB_val k = {4, "plan"}, v = {ib_plan_record_size(r->plan->len), NULL};
	int rc = mdb_put(txn, r->dbi, &k, &v, MDB_RESERVE);
	if (rc)
		return lmdb_fail(r, rc, "plan");
	ib_plan_record_encode(r->plan, v.mv_data);
	return 0;
}

static int put_segment(ibstore_run *r, MDB_txn *txn)
{
	uint8_t b[IB_RUN_SEGMENT_SIZE];
	ib_run_segment_encode(&r->seg, b);
	return put_val(r, txn, "segment", b, sizeof b);
}

static int load_plan(ibstore_run *r, MDB_txn *txn)
{
	MDB_val v;
	int rc = get_val(r, txn, "plan", &v);
	if (rc)
		return rc == IBSTORE_ENOTFOUND
			       ? ib_fail(r->errmsg, IBSTORE_EFORMAT, "run state: epoch in progress but no plan")
			       : rc;
	ibstore_plan *plan;
	if ((rc = ib_plan_record_decode(v.mv_data, v.mv_size, r->cfg.samples, &plan, r->errmsg)))
		return rc;
	ibstore_plan_free(r->plan);
	r->plan = plan;
	return 0;
}

/* The optional "segment" record: both 0 when absent (an older file). */
static int load_segment(ibstore_run *r, MDB_txn *txn)
{
	MDB_val v;
	int rc = get_val(r, txn, "segment", &v);
	if (rc == IBSTORE_ENOTFOUND) {
		r->seg = (ib_run_segment){0, 0, 0};
		return 0;
	}
	return rc ? rc : ib_run_segment_decode(v.mv_data, v.mv_size, &r->seg, r->errmsg);
}

static int load(ibstore_run *r, const ibstore_run_opts *want)
{
	MDB_txn *txn;
	MDB_val v;
	int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_fail(r, rc, "begin");
	char why[IB_ERRMSG_LEN];
	if ((rc = get_val(r, txn, "config", &v)))
		goto out;
	if ((rc = ib_run_config_decode(v.mv_data, v.mv_size, &r->cfg, why))) {
		ib_fail(r->errmsg, rc, "run state: %s", why);
		goto out;
	}
	cfg_to_opts(&r->cfg, &r->opts);
	if ((rc = check_opts(r, &r->opts)))
		goto out;
	if (want) {
		ib_run_config w;
		ib_run_opts_to_config(want, &w);
		if ((rc = ib_run_config_compare(r->errmsg, &r->cfg, &w, 1)))
			goto out;
	}
	if ((rc = get_val(r, txn, "progress", &v)))
		goto out;
	if ((rc = ib_run_progress_decode(v.mv_data, v.mv_size, &r->prog, why))) {
		ib_fail(r->errmsg, rc, "run state: %s", why);
		goto out;
	}
	if ((rc = get_val(r, txn, "scores", &v)))
		goto out;
	if (v.mv_size != r->cfg.samples * 4) {
		rc = ib_fail(r->errmsg, IBSTORE_EFORMAT, "run state: scores have %zu bytes, expected %" PRIu64,
			   v.mv_size, r->cfg.samples * 4);
		goto out;
	}
	r->scores = malloc(v.mv_size);
	if (!r->scores) {
		rc = ib_fail(r->errmsg, IBSTORE_ENOMEM, "out of memory");
		goto out;
	}
	ib_f32_decode(v.mv_data, r->cfg.samples, r->scores);
	if ((rc = load_segment(r, txn)))
		goto out;
	if (r->prog.in_epoch) {
		if ((rc = load_plan(r, txn)))
			goto out;
		if (r->seg.start > r->plan->len) {
			rc = ib_fail(r->errmsg, IBSTORE_EFORMAT,
				     "run state: segment start %" PRIu64 " past the plan's %" PRIu64
				     " entries", r->seg.start, r->plan->len);
			goto out;
		}
		if ((rc = ib_run_build_slice(r)))
			goto out;
		if (r->prog.cursor > r->batches) {
			rc = ib_fail(r->errmsg, IBSTORE_EFORMAT, "run state: cursor past the epoch's end");
			goto out;
		}
	}
	r->committed_cursor = r->prog.cursor;
out:
	mdb_txn_abort(txn);
	if (rc == IBSTORE_ENOTFOUND)
		rc = ib_fail(r->errmsg, IBSTORE_EFORMAT, "run state: a record is missing (not a run state?)");
	return rc;
}

static int create(ibstore_run *r, const ibstore_run_opts *o)
{
	int rc = check_opts(r, o);
	if (rc)
		return rc;
	ib_run_opts_to_config(o, &r->cfg);
	r->opts = *o;
	r->scores = malloc(o->samples * sizeof *r->scores);
	if (!r->scores)
		return ib_fail(r->errmsg, IBSTORE_ENOMEM, "out of memory");
	float init = ibstore_prune_initial_score(&o->prune);
	for (uint64_t i = 0; i < o->samples; i++)
		r->scores[i] = init;
	MDB_txn *txn;
	if ((rc = mdb_txn_begin(r->env, NULL, 0, &txn)))
		return lmdb_fail(r, rc, "begin");
	uint8_t cb[IB_RUN_CONFIG_SIZE];
	ib_run_config_encode(&r->cfg, cb);
	if ((rc = put_val(r, txn, "config", cb, sizeof cb)) || (rc = put_progress(r, txn)) ||
	    (rc = put_scores(r, txn))) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(txn)))
		return lmdb_fail(r, rc, "commit");
	return 0;
}

IB_API int ibstore_run_open(const char *path, const ibstore_run_opts *opts, ibstore_run **out)
{
	if (!out)
		return IBSTORE_EINVAL;
	ibstore_run *r = calloc(1, sizeof *r);
	*out = r;
	if (!r)
		return IBSTORE_ENOMEM;
	r->lock_fd = -1;
	ibstore_run_opts adopted; /* the caller's options in this library's layout */
	if (opts && ib_run_opts_adopt(&adopted, opts, r->errmsg, sizeof r->errmsg))
		return IBSTORE_EINVAL;
	opts = opts ? &adopted : NULL;
	if (!path || !*path)
		return ib_fail(r->errmsg, IBSTORE_EINVAL, "no run state path given");
	struct stat st;
	int exists = stat(path, &st) == 0;
	if (exists && !S_ISREG(st.st_mode))
		return ib_fail(r->errmsg, IBSTORE_EFORMAT, "%s is not a run state file", path);
	if (!exists && !opts)
		return ib_fail(r->errmsg, IBSTORE_ENOTFOUND, "%s: no such run state", path);
	int rc;
	if (!exists && (rc = check_opts(r, opts)))
		return rc; /* before anything is created */
	if (exists && st.st_size == 0 && !opts)
		return ib_fail(r->errmsg, IBSTORE_EFORMAT, "%s is empty, not a run state", path);
	r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (r->lock_fd < 0)
		return ib_fail(r->errmsg, IBSTORE_EIO, "%s: %s", path, strerror(errno));
	if (flock(r->lock_fd, LOCK_EX | LOCK_NB))
		return ib_fail(r->errmsg, IBSTORE_ESTATE, "%s is in use by another process", path);
	rc = mdb_env_create(&r->env);
	if (rc)
		return lmdb_fail(r, rc, "create");
	mdb_env_set_mapsize(r->env, IB_RUN_MAPSIZE);
	/* one process per run (the flock above), so LMDB's lock file is not needed */
	rc = mdb_env_open(r->env, path, MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS, 0644);
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
		return ib_fail(r->errmsg, IBSTORE_EFORMAT, "%s is not a run state (%s)", path, mdb_strerror(rc));
	if (rc)
		return lmdb_fail(r, rc, path);
	MDB_txn *txn;
	if ((rc = mdb_txn_begin(r->env, NULL, 0, &txn)))
		return lmdb_fail(r, rc, "begin");
	rc = mdb_dbi_open(txn, NULL, 0, &r->dbi);
	if (rc) {
		mdb_txn_abort(txn);
		return lmdb_fail(r, rc, "open database");
	}
	if ((rc = mdb_txn_commit(txn)))
		return lmdb_fail(r, rc, "commit");
	MDB_stat ms;
	mdb_env_stat(r->env, &ms);
	if (exists && ms.ms_entries)
		rc = load(r, opts);
	else if (opts)
		rc = create(r, opts);
	else
		rc = ib_fail(r->errmsg, IBSTORE_EFORMAT, "%s holds no run state", path);
	if (rc && !exists)
		unlink(path); /* nothing half-made is left behind */
	if (rc)
		return rc;
	if (!(r->path = strdup(path)))
		return ib_fail(r->errmsg, IBSTORE_ENOMEM, "out of memory");
	r->open = 1;
	r->errmsg[0] = '\0';
	return 0;
}

IB_API void ibstore_run_close(ibstore_run *r)
{
	if (!r)
		return;
	if (r->env)
		mdb_env_close(r->env);
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	ibstore_plan_free(r->plan);
	free(r->slice_ids);
	free(r->slice_w);
	free(r->scores);
	free(r->path);
	free(r);
}

IB_API const char *ibstore_run_file(const ibstore_run *r)
{
	return r && r->open ? r->path : NULL;
}

IB_API const char *ibstore_run_errmsg(const ibstore_run *r)
{
	return r ? r->errmsg : "no run handle (out of memory?)";
}

IB_API int ibstore_run_config_get_sized(const ibstore_run *r, ibstore_run_opts *out,
					size_t size, size_t prune_size)
{
	if (!r || !r->open || !out)
		return IBSTORE_EINVAL;
	return ib_run_opts_emit(out, size, prune_size, &r->opts, (char *)r->errmsg,
				sizeof r->errmsg);
}

/*
 * Commits scores, progress and, when it is not stored yet, the epoch's plan,
 * in one transaction.  epoch_begin itself does not commit: until the first
 * checkpoint the stored scores are those the plan was computed from, so a
 * run stopped before it computes the very same plan again.
 */
int ib_run_commit(ibstore_run *r, const ib_epoch_stats *es)
{
	int with_plan = r->plan_dirty && r->prog.in_epoch;
	MDB_txn *txn;
	int rc = mdb_txn_begin(r->env, NULL, 0, &txn);
	if (rc)
		return lmdb_fail(r, rc, "begin");
	if ((rc = put_scores(r, txn)) || (rc = put_progress(r, txn)) ||
	    (rc = put_segment(r, txn)) || (with_plan && (rc = put_plan(r, txn))))
		goto fail;
	if (es) {
		char key[32];
		snprintf(key, sizeof key, "stats/%010" PRIu32, es->epoch);
		uint8_t b[IB_EPOCH_STATS_SIZE];
		ib_epoch_stats_encode(es, b);
		if ((rc = put_val(r, txn, key, b, sizeof b)))
			goto fail;
	}
	if ((rc = mdb_txn_commit(txn)))
		return lmdb_fail(r, rc, "commit");
	r->committed_cursor = r->prog.cursor;
	if (with_plan)
		r->plan_dirty = 0;
	return 0;
fail:
	mdb_txn_abort(txn);
	return rc;
}

IB_API int ibstore_run_info_get_sized(const ibstore_run *r, ibstore_run_info *out, size_t size)
{
	if (!r || !r->open || !out)
		return IBSTORE_EINVAL;
	ibstore_run_info info = {.size = sizeof info, .epoch = r->prog.epoch,
				 .in_epoch = (int)r->prog.in_epoch, .cursor = r->prog.cursor,
				 .epochs_done = r->prog.epochs_done,
				 .reports_rejected = r->prog.rejected,
				 .committed = r->prog.in_epoch ? r->committed_cursor : 0,
				 .batches = r->prog.in_epoch ? r->batches : 0,
				 .start = r->prog.in_epoch ? r->seg.start : 0,
				 .generation = r->seg.gen};
	return ib_run_info_emit(out, size, &info, (char *)r->errmsg, sizeof r->errmsg);
}

IB_API int ibstore_run_epoch_stats_get(const ibstore_run *r, uint32_t epoch,
				   ibstore_epoch_stats *out)
{
	if (!r || !r->open || !out)
		return IBSTORE_EINVAL;
	MDB_txn *txn;
	int rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return IBSTORE_ECATALOG;
	char key[32];
	snprintf(key, sizeof key, "stats/%010" PRIu32, epoch);
	MDB_val k = {strlen(key), key}, v;
	rc = mdb_get(txn, r->dbi, &k, &v);
	ib_epoch_stats es;
	char why[IB_ERRMSG_LEN];
	if (rc == MDB_NOTFOUND)
		rc = IBSTORE_ENOTFOUND;
	else if (rc)
		rc = IBSTORE_ECATALOG;
	else
		rc = ib_epoch_stats_decode(v.mv_data, v.mv_size, &es, why);
	mdb_txn_abort(txn);
	if (rc)
		return rc;
	*out = (ibstore_epoch_stats){
		.epoch = es.epoch,
		.plan = ib_plan_stats_from_disk(&es.plan),
		.io = {es.bytes_read, es.bytes_skipped, es.seconds}};
	return 0;
}

IB_API const float *ibstore_run_scores(const ibstore_run *r, uint64_t *n)
{
	if (!r || !r->open)
		return NULL;
	if (n)
		*n = r->cfg.samples;
	return r->scores;
}
