/*
 * slice.h — the one rule that cuts an epoch's global plan into the ranks'
 * slices, pads them, and counts their batches.  Rank r of world W gets plan
 * positions r, r + W, r + 2W, ... (PyTorch's DistributedSampler stride).
 * Under IBSTORE_SLICE_PAD a slice has ceil(len / W) entries; the positions
 * past the plan's end wrap to its start and carry IBSTORE_PADDING_WEIGHT, so
 * at most the last entry of a slice is padding.  Under IBSTORE_SLICE_DROP a
 * slice has floor(len / W) entries and none is padding.
 *
 * prune.c's public ibstore_plan_slice_* calls, the run (state_epoch.c), the
 * MPI exchange (mpi.c, which compiles this file in) and, through the run,
 * the loader use it; nothing else derives the rule.
 */
#ifndef IBSTORE_SLICE_H
#define IBSTORE_SLICE_H

#include <stdint.h>

#include "ibstore.h"

/* The plan from position `start` on, as a plan of its own (no copy; stats
 * are the whole plan's): after an elastic resume the ranks slice this. */
static inline ibstore_plan ib_plan_tail(const ibstore_plan *p, uint64_t start)
{
	ibstore_plan t = *p;
	if (start > p->len)
		start = p->len;
	t.len = p->len - start;
	t.ids = p->ids + start;
	t.weights = p->weights + start;
	return t;
}

/* Entries of every rank's slice of a plan of `plan_len` entries (0 when
 * world is 0). */
uint64_t ib_slice_len(uint64_t plan_len, uint32_t world, ibstore_slice_mode mode);

/*
 * Entry i of rank `rank`'s slice: its id and weight (the plan's, or the
 * padding weight for a position past the plan's end).  IBSTORE_EINVAL when
 * rank >= world or i is past the slice.  The one place the slice is
 * computed.
 */
int ib_slice_entry(const ibstore_plan *plan, uint32_t rank, uint32_t world,
		   ibstore_slice_mode mode, uint64_t i, uint64_t *id, float *weight);

/* Fills ids[0..n) and weights[0..n), n = ib_slice_len(), with rank's slice. */
void ib_slice_fill(const ibstore_plan *plan, uint32_t rank, uint32_t world,
		   ibstore_slice_mode mode, uint64_t *ids, float *weights);

/* 1 and the padded id when rank `rank`'s slice has a padding entry (only its
 * last can be), else 0. */
int ib_slice_padding_id(const ibstore_plan *plan, uint32_t rank, uint32_t world,
			ibstore_slice_mode mode, uint64_t *id);

/* Batches of `batch_size` entries a slice of `len` entries makes: a last
 * partial batch counts unless drop_last (0 when batch_size is 0). */
uint64_t ib_batch_count(uint64_t len, uint32_t batch_size, int drop_last);

#endif
