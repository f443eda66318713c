/*
 * state_snapshot.c — a whole run state as plain data: read from a file
 * without taking its lock, and written as a new file in one transaction.
 * elastic.c reads every per-rank file of a job this way and writes the
 * merged state of a new rank.  The records are state.c's: "config",
 * "progress", "segment", "scores", "plan" and "stats/<epoch>".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "internal.h"
#include "state_int.h"

#define STATS_PREFIX "stats/"

typedef struct db {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	char *err;
	const char *path;
} db;

static int db_fail(db *d, int rc, const char *what)
{
	return ib_fail(d->err, rc == MDB_MAP_FULL ? IBSTORE_ETOOBIG : IBSTORE_ECATALOG,
		       "%s: run state: %s: %s", d->path, what, mdb_strerror(rc));
}

static int db_open(db *d, const char *path, int write, char *err)
{
	*d = (db){.err = err, .path = path};
	int rc = mdb_env_create(&d->env);
	if (rc)
		return db_fail(d, rc, "create");
	mdb_env_set_mapsize(d->env, IB_RUN_MAPSIZE);
	unsigned flags = MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS | (write ? 0 : MDB_RDONLY);
	rc = mdb_env_open(d->env, path, flags, 0644);
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
		return ib_fail(err, IBSTORE_EFORMAT, "%s is not a run state (%s)", path,
			       mdb_strerror(rc));
	if (rc == ENOENT)
		return ib_fail(err, IBSTORE_ENOTFOUND, "%s: no such run state", path);
	if (rc)
		return db_fail(d, rc, "open");
	if ((rc = mdb_txn_begin(d->env, NULL, write ? 0 : MDB_RDONLY, &d->txn)))
		return db_fail(d, rc, "begin");
	if ((rc = mdb_dbi_open(d->txn, NULL, 0, &d->dbi)))
		return db_fail(d, rc, "open database");
	return 0;
}

static void db_close(db *d)
{
	if (d->txn)
		mdb_txn_abort(d->txn);
	if (d->env)
		mdb_env_close(d->env);
	d->txn = NULL;
	d->env = NULL;
}

/* A record; `optional` turns a missing one into size 0. */
static int db_get(db *d, const char *key, MDB_val *v, int optional)
{
	MDB_val k = {strlen(key), (void *)key};
	int rc = mdb_get(d->txn, d->dbi, &k, v);
	if (rc == MDB_NOTFOUND && optional) {
		*v = (MDB_val){0, NULL};
		return 0;
	}
	if (rc == MDB_NOTFOUND)
		return ib_fail(d->err, IBSTORE_EFORMAT, "%s: run state has no %s record (not a run state?)",
			       d->path, key);
	return rc ? db_fail(d, rc, key) : 0;
}

static int db_put(db *d, const char *key, const void *data, size_t len, void **dst)
{
	MDB_val k = {strlen(key), (void *)key}, v = {len, NULL};
	int rc = mdb_put(d->txn, d->dbi, &k, &v, MDB_RESERVE);
	if (rc)
		return db_fail(d, rc, key);
	if (data)
		memcpy(v.mv_data, data, len);
	if (dst)
		*dst = v.mv_data;
	return 0;
}

/* Every "stats/<epoch>" record, in key order. */
static int read_stats(db *d, ib_run_snapshot *s)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(d->txn, d->dbi, &cur);
	if (rc)
		return db_fail(d, rc, "cursor");
	MDB_val k = {strlen(STATS_PREFIX), STATS_PREFIX}, v;
	uint32_t cap = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < strlen(STATS_PREFIX) ||
		    memcmp(k.mv_data, STATS_PREFIX, strlen(STATS_PREFIX)))
			break;
		if (s->nstats == cap) {
			cap = cap ? 2 * cap : 16;
			ib_epoch_stats *n = realloc(s->stats, cap * sizeof *n);
			if (!n) {
				mdb_cursor_close(cur);
				return ib_fail(d->err, IBSTORE_ENOMEM, "out of memory");
			}
			s->stats = n;
		}
		char why[IB_ERRMSG_LEN];
		if (ib_epoch_stats_decode(v.mv_data, v.mv_size, &s->stats[s->nstats], why)) {
			mdb_cursor_close(cur);
			return ib_fail(d->err, IBSTORE_EFORMAT, "%s: %s", d->path, why);
		}
		s->nstats++;
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : db_fail(d, rc, "stats");
}

static int decode_all(db *d, ib_run_snapshot *s)
{
	MDB_val v;
	char why[IB_ERRMSG_LEN];
	int rc;
	if ((rc = db_get(d, "config", &v, 0)))
		return rc;
	if ((rc = ib_run_config_decode(v.mv_data, v.mv_size, &s->cfg, why)))
		return ib_fail(d->err, rc, "%s: run state: %s", d->path, why);
	if (s->cfg.world == 0 || s->cfg.rank >= s->cfg.world || s->cfg.samples == 0 ||
	    s->cfg.samples > UINT32_MAX || s->cfg.batch_size == 0)
		return ib_fail(d->err, IBSTORE_EFORMAT, "%s: run state: configuration out of range",
			       d->path);
	if ((rc = db_get(d, "progress", &v, 0)))
		return rc;
	if ((rc = ib_run_progress_decode(v.mv_data, v.mv_size, &s->prog, why)))
		return ib_fail(d->err, rc, "%s: run state: %s", d->path, why);
	if ((rc = db_get(d, "segment", &v, 1)))
		return rc;
	s->seg = (ib_run_segment){0, 0, 0};
	if (v.mv_size && (rc = ib_run_segment_decode(v.mv_data, v.mv_size, &s->seg, why)))
		return ib_fail(d->err, rc, "%s: run state: %s", d->path, why);
	if ((rc = db_get(d, "scores", &v, 0)))
		return rc;
	if (v.mv_size != s->cfg.samples * 4)
		return ib_fail(d->err, IBSTORE_EFORMAT,
			       "%s: run state: scores have %zu bytes, expected %" PRIu64, d->path,
			       v.mv_size, s->cfg.samples * 4);
	if (!(s->scores = malloc(v.mv_size)))
		return ib_fail(d->err, IBSTORE_ENOMEM, "out of memory");
	ib_f32_decode(v.mv_data, s->cfg.samples, s->scores);
	if (s->prog.in_epoch) {
		if ((rc = db_get(d, "plan", &v, 0)))
			return rc;
		if ((rc = ib_plan_record_decode(v.mv_data, v.mv_size, s->cfg.samples, &s->plan, why)))
			return ib_fail(d->err, rc, "%s: %s", d->path, why);
		if (s->seg.start > s->plan->len)
			return ib_fail(d->err, IBSTORE_EFORMAT,
				       "%s: run state: segment start past the plan's end", d->path);
	}
	return read_stats(d, s);
}

int ib_run_snapshot_read(const char *path, ib_run_snapshot *s, char *err)
{
	memset(s, 0, sizeof *s);
	struct stat st;
	if (stat(path, &st) == 0 && st.st_size == 0)
		return ib_fail(err, IBSTORE_ENOTFOUND, "%s is empty: a run state not yet created",
			       path);
	db d;
	int rc = db_open(&d, path, 0, err);
	MDB_stat ms;
	if (!rc && !mdb_stat(d.txn, d.dbi, &ms) && ms.ms_entries == 0)
		rc = ib_fail(err, IBSTORE_ENOTFOUND, "%s holds no records: a run state not yet created",
			     path);
	if (!rc)
		rc = decode_all(&d, s);
	db_close(&d);
	if (rc)
		ib_run_snapshot_free(s);
	return rc;
}

static int encode_all(db *d, const ib_run_snapshot *s)
{
	uint8_t cb[IB_RUN_CONFIG_SIZE], pb[IB_RUN_PROGRESS_SIZE], sb[IB_RUN_SEGMENT_SIZE];
	void *dst;
	int rc;
	ib_run_config_encode(&s->cfg, cb);
	ib_run_progress_encode(&s->prog, pb);
	ib_run_segment_encode(&s->seg, sb);
	if ((rc = db_put(d, "config", cb, sizeof cb, NULL)) ||
	    (rc = db_put(d, "progress", pb, sizeof pb, NULL)) ||
	    (rc = db_put(d, "segment", sb, sizeof sb, NULL)) ||
	    (rc = db_put(d, "scores", NULL, s->cfg.samples * 4, &dst)))
		return rc;
	ib_f32_encode(s->scores, s->cfg.samples, dst);
	if (s->plan) {
		if ((rc = db_put(d, "plan", NULL, ib_plan_record_size(s->plan->len), &dst)))
			return rc;
		ib_plan_record_encode(s->plan, dst);
	}
	for (uint32_t i = 0; i < s->nstats; i++) {
		char key[32];
		uint8_t b[IB_EPOCH_STATS_SIZE];
		snprintf(key, sizeof key, STATS_PREFIX "%010" PRIu32, s->stats[i].epoch);
		ib_epoch_stats_encode(&s->stats[i], b);
		if ((rc = db_put(d, key, b, sizeof b, NULL)))
			return rc;
	}
	rc = mdb_txn_commit(d->txn);
	d->txn = NULL;
	return rc ? db_fail(d, rc, "commit") : 0;
}

int ib_run_snapshot_write(const char *path, const ib_run_snapshot *s, char *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return ib_fail(err, errno == EEXIST ? IBSTORE_EEXIST : IBSTORE_EIO, "%s: %s", path,
			       strerror(errno));
	close(fd);
	db d;
	int rc = db_open(&d, path, 1, err);
	if (!rc)
		rc = encode_all(&d, s);
	db_close(&d);
	if (rc)
		unlink(path);
	return rc;
}

void ib_run_snapshot_free(ib_run_snapshot *s)
{
	free(s->scores);
	ibstore_plan_free(s->plan);
	free(s->stats);
	memset(s, 0, sizeof *s);
}
