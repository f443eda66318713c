/*
 * state_epoch.c — the run's epochs: epoch_begin computes (or resumes) the
 * plan and builds this rank's slice once (slice.h has the rule), the batch
 * calls serve it, report/advance/checkpoint record losses and progress,
 * epoch_end records the statistics.  state.c holds the file itself.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "format.h"
#include "internal.h"
#include "slice.h"
#include "state_int.h"

int ib_run_build_slice(ibstore_run *r)
{
	const ib_run_config *c = &r->cfg;
	ibstore_slice_mode mode = (ibstore_slice_mode)c->slice;
	/* this world's ranks share the plan from seg.start on (elastic.c) */
	ibstore_plan rest = ib_plan_tail(r->plan, r->seg.start);
	uint64_t n = ib_slice_len(rest.len, c->world, mode);
	free(r->slice_ids);
	free(r->slice_w);
	r->slice_ids = malloc((n ? n : 1) * sizeof *r->slice_ids);
	r->slice_w = malloc((n ? n : 1) * sizeof *r->slice_w);
	if (!r->slice_ids || !r->slice_w)
		return ib_fail(r->errmsg, IBSTORE_ENOMEM, "out of memory");
	ib_slice_fill(&rest, c->rank, c->world, mode, r->slice_ids, r->slice_w);
	r->slice_len = n;
	r->batches = ib_batch_count(n, c->batch_size, (int)c->drop_last);
	return 0;
}

IB_API int ibstore_run_slice(const ibstore_run *r, const uint64_t **ids, const float **weights,
			     uint64_t *len)
{
	int rc = ib_run_usable(r);
	if (rc)
		return rc;
	if (!ids || !weights || !len)
		return IBSTORE_EINVAL;
	if (!r->prog.in_epoch || !r->plan)
		return IBSTORE_ESTATE;
	*ids = r->slice_ids;
	*weights = r->slice_w;
	*len = r->slice_len;
	return 0;
}

static void fill_epoch_info(const ibstore_run *r, ibstore_epoch_info *info)
{
	if (!info)
		return;
	*info = (ibstore_epoch_info){.epoch = r->prog.epoch, .samples = r->slice_len,
				     .batches = r->batches, .cursor = r->prog.cursor,
				     .plan = r->plan->stats};
}

IB_API int ibstore_run_epoch_begin(ibstore_run *r, uint32_t epoch, ibstore_epoch_info *info)
{
	int rc = ib_run_usable(r);
	if (rc)
		return rc;
	if (r->prog.in_epoch && r->prog.epoch == epoch && r->plan) {
		fill_epoch_info(r, info); /* resume where the last commit left off */
		return 0;
	}
	if (epoch >= r->cfg.epochs)
		return ib_fail(r->errmsg, IBSTORE_EINVAL, "epoch %" PRIu32 " is past the run's %" PRIu32
			     " epochs", epoch, r->cfg.epochs);
	ibstore_plan *plan;
	char msg[256];
	rc = ibstore_plan_compute(&r->opts.prune, epoch, r->scores, r->cfg.samples, &plan, msg,
				  sizeof msg);
	if (rc)
		return ib_fail(r->errmsg, rc, "plan of epoch %" PRIu32 ": %s", epoch, msg);
	/* the previous epoch's plan and slice stay until the new slice is built */
	ibstore_plan *old_plan = r->plan;
	uint64_t *old_ids = r->slice_ids;
	float *old_w = r->slice_w;
	uint64_t old_len = r->slice_len, old_batches = r->batches;
	ib_run_progress saved = r->prog;
	ib_run_segment saved_seg = r->seg;
	r->plan = plan;
	r->seg.start = 0;
	r->slice_ids = NULL;
	r->slice_w = NULL;
	r->prog.epoch = epoch;
	r->prog.in_epoch = 1;
	r->prog.cursor = 0;
	if ((rc = ib_run_build_slice(r))) {
		free(r->slice_ids);
		free(r->slice_w);
		ibstore_plan_free(r->plan);
		r->plan = old_plan;
		r->slice_ids = old_ids;
		r->slice_w = old_w;
		r->slice_len = old_len;
		r->batches = old_batches;
		r->prog = saved;
		r->seg = saved_seg;
		return rc;
	}
	ibstore_plan_free(old_plan);
	free(old_ids);
	free(old_w);
	r->plan_dirty = 1;
	r->committed_cursor = 0;
	fill_epoch_info(r, info);
	return 0;
}

IB_API int ibstore_run_batch(ibstore_run *r, uint64_t b, const uint64_t **ids,
			     const float **weights, size_t *n)
{
	int rc = ib_run_usable(r);
	if (rc)
		return rc;
	if (!r->prog.in_epoch)
		return ib_fail(r->errmsg, IBSTORE_ESTATE, "no epoch has begun");
	if (b >= r->batches)
		return ib_fail(r->errmsg, IBSTORE_EINVAL, "batch %" PRIu64 " is past the epoch's %" PRIu64,
			     b, r->batches);
	uint64_t start = b * r->cfg.batch_size;
	uint64_t end = start + r->cfg.batch_size;
	if (end > r->slice_len)
		end = r->slice_len;
	*ids = r->slice_ids + start;
	*weights = r->slice_w + start;
	*n = (size_t)(end - start);
	return 0;
}

IB_API const ibstore_plan *ibstore_run_plan(const ibstore_run *r)
{
	return r && r->open && r->prog.in_epoch ? r->plan : NULL;
}

IB_API int ibstore_run_report(ibstore_run *r, const uint64_t *ids, const float *losses,
			      size_t n)
{
	int rc = ib_run_usable(r);
	if (rc)
		return rc;
	if (n && (!ids || !losses))
		return ib_fail(r->errmsg, IBSTORE_EINVAL, "no ids or losses");
	for (size_t i = 0; i < n; i++) {
		if (ids[i] >= r->cfg.samples) {
			r->prog.rejected++;
			return ib_fail(r->errmsg, IBSTORE_EINVAL, "loss for unknown sample id %" PRIu64
				     " (the run has %" PRIu64 "); nothing recorded", ids[i],
				     r->cfg.samples);
		}
		if (!isfinite(losses[i])) {
			r->prog.rejected++;
			return ib_fail(r->errmsg, IBSTORE_EINVAL, "loss of sample %" PRIu64
				     " is %g, not finite; nothing recorded", ids[i],
				     (double)losses[i]);
		}
	}
	double m = r->cfg.ema;
	for (size_t i = 0; i < n; i++) {
		float *s = &r->scores[ids[i]];
		if (m == 0.0 || isnan(*s))
			*s = losses[i];
		else
			*s = (float)(m * *s + (1.0 - m) * losses[i]);
	}
	return 0;
}

IB_API int ibstore_run_advance(ibstore_run *r, uint64_t nbatches)
{
	int rc = ib_run_usable(r);
	if (rc)
		return rc;
	if (!r->prog.in_epoch)
		return ib_fail(r->errmsg, IBSTORE_ESTATE, "no epoch has begun");
	if (nbatches > r->batches - r->prog.cursor)
		return ib_fail(r->errmsg, IBSTORE_EINVAL, "advancing past the epoch's %" PRIu64 " batches",
			     r->batches);
	r->prog.cursor += nbatches;
	if (r->cfg.checkpoint_every &&
	    r->prog.cursor - r->committed_cursor >= r->cfg.checkpoint_every)
		return ib_run_commit(r, NULL);
	return 0;
}

IB_API int ibstore_run_checkpoint(ibstore_run *r)
{
	int rc = ib_run_usable(r);
	return rc ? rc : ib_run_commit(r, NULL);
}

IB_API int ibstore_run_epoch_end(ibstore_run *r, const ibstore_epoch_io *io)
{
	int rc = ib_run_usable(r);
	if (rc)
		return rc;
	if (!r->prog.in_epoch)
		return ib_fail(r->errmsg, IBSTORE_ESTATE, "no epoch has begun");
	ib_epoch_stats es = {.epoch = r->prog.epoch, .plan = ib_plan_stats_to_disk(&r->plan->stats)};
	if (io) {
		es.bytes_read = io->bytes_read;
		es.bytes_skipped = io->bytes_skipped;
		es.seconds = io->seconds;
	}
	ib_run_progress saved = r->prog;
	r->prog.in_epoch = 0;
	r->prog.epochs_done++;
	if ((rc = ib_run_commit(r, &es))) {
		r->prog = saved;
		return rc;
	}
	return 0;
}

