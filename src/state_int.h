/*
 * state_int.h — the run handle as state.c (the file: open, load, commit,
 * close, getters) and state_epoch.c (epochs, slice, batches, reports) share
 * it.  Nothing here is public API.
 */
#ifndef IBSTORE_STATE_INT_H
#define IBSTORE_STATE_INT_H

#include <lmdb.h>
#include <stdint.h>

#include "format.h"
#include "internal.h"

struct ibstore_run {
	/* the file (state.c) */
	char errmsg[IB_ERRMSG_LEN];
	int lock_fd;
	MDB_env *env;
	MDB_dbi dbi;
	int open;
	char *path;           /* the file, for ibstore_run_file */
	ib_run_config cfg;
	ibstore_run_opts opts; /* cfg as public options */
	/* what a commit writes (state.c) and the epochs change (state_epoch.c) */
	ib_run_progress prog;
	ib_run_segment seg;   /* where this world's slices start (elastic.c) */
	uint64_t committed_cursor;
	int plan_dirty;       /* the epoch's plan is not in the file yet */
	float *scores;
	ibstore_plan *plan;   /* current epoch's plan, when in an epoch */
	/* this rank's slice of the plan, built once per epoch (state_epoch.c) */
	uint64_t *slice_ids;
	float *slice_w;
	uint64_t slice_len;
	uint64_t batches;
};

/* IBSTORE_EINVAL unless r is an open run. */
static inline int ib_run_usable(const ibstore_run *r)
{
	return r && r->open ? 0 : IBSTORE_EINVAL;
}

/* Run state files reserve this much address space (LMDB's map size). */
#define IB_RUN_MAPSIZE ((size_t)64 << 30)

/* state.c: the options as the file stores them, and the first difference
 * between two stored configurations (rank and world only when
 * `placement`): IBSTORE_EMISMATCH naming the field, in err. */
void ib_run_opts_to_config(const ibstore_run_opts *o, ib_run_config *c);
int ib_run_config_compare(char *err, const ib_run_config *have, const ib_run_config *want,
			  int placement);

/* A whole run state as plain data (state_snapshot.c): what elastic.c reads
 * from every file of a job and writes as one new file. */
typedef struct ib_run_snapshot {
	ib_run_config cfg;
	ib_run_progress prog;
	ib_run_segment seg;
	float *scores;        /* cfg.samples */
	ibstore_plan *plan;   /* the current epoch's, NULL when not in one */
	uint32_t nstats;      /* finished epochs' statistics records */
	ib_epoch_stats *stats;
} ib_run_snapshot;

/* Reads the run state at `path` without its lock (a file no process has
 * open for writing).  0, or the codes of ibstore_run_open, message in err;
 * IBSTORE_ENOTFOUND also for a file that is empty or holds no records (a
 * creation cut short: ibstore_run_open creates it again). */
int ib_run_snapshot_read(const char *path, ib_run_snapshot *s, char *err);
/* Writes `s` as a new run state at `path`, which must not exist
 * (IBSTORE_EEXIST); nothing is left at `path` on failure. */
int ib_run_snapshot_write(const char *path, const ib_run_snapshot *s, char *err);
void ib_run_snapshot_free(ib_run_snapshot *s);

/* state.c: commits scores, progress, the plan when it is not stored yet, and
 * `es` (may be NULL) in one transaction. */
int ib_run_commit(ibstore_run *r, const ib_epoch_stats *es);


/* state_epoch.c: (re)builds this rank's slice of r->plan and its batch
 * count; IBSTORE_ENOMEM leaves the slice unset. */
int ib_run_build_slice(ibstore_run *r);

#endif
