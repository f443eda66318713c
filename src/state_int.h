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
	ib_run_config cfg;
	ibstore_run_opts opts; /* cfg as public options */
	/* what a commit writes (state.c) and the epochs change (state_epoch.c) */
	ib_run_progress prog;
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

/* state.c: commits scores, progress, the plan when it is not stored yet, and
 * `es` (may be NULL) in one transaction. */
int ib_run_commit(ibstore_run *r, const ib_epoch_stats *es);

/* state.c: a plan's statistics as the file stores them. */
ib_plan_stats ib_run_stats_to_disk(const ibstore_plan_stats *s);

/* state_epoch.c: (re)builds this rank's slice of r->plan and its batch
 * count; IBSTORE_ENOMEM leaves the slice unset. */
int ib_run_build_slice(ibstore_run *r);

#endif
