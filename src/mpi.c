/*
 * mpi.c — the loss exchange of a data-parallel run over MPI (ibstore_mpi.h):
 * the ranks agree that their input is sound, all-gather their (id, loss)
 * pairs with MPI_Allgatherv, and each reports the other ranks' pairs into
 * its run state.  Built into libibstore_mpi only, so that libibstore never
 * links MPI.
 */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ibstore_mpi.h"
#include "internal.h"
#include "slice.h"

/* Messages cross ranks in fixed-size MPI_Bcast buffers of this many bytes. */
#define MSG_LEN 512

/* A failed MPI call: IBSTORE_EIO with MPI's own words for the error. */
static int mpi_fail(char *msg, size_t msglen, int err, const char *what)
{
	char s[MPI_MAX_ERROR_STRING];
	int len = 0;
	if (MPI_Error_string(err, s, &len) != MPI_SUCCESS)
		snprintf(s, sizeof s, "MPI error %d", err);
	ib_failn(msg, msglen, 0, "%s failed: %s", what, s);
	return IBSTORE_EIO;
}

/* What must be equal on every rank for their plans to be equal: field by
 * field, never the struct's bytes (padding). */
static uint64_t config_hash(const ibstore_run_opts *o, uint32_t epoch, uint64_t start)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint32_t u[] = {(uint32_t)o->prune.policy, (uint32_t)o->prune.mode,
			o->prune.epochs,           o->batch_size,
			(uint32_t)o->drop_last,    o->world,
			(uint32_t)o->slice,        epoch};
	double d[] = {o->prune.ratio, o->prune.delta, o->prune.ema};
	h = ib_fnv1a(h, u, sizeof u);
	h = ib_fnv1a(h, d, sizeof d);
	h = ib_fnv1a(h, &o->prune.seed, sizeof o->prune.seed);
	h = ib_fnv1a(h, &start, sizeof start);
	return ib_fnv1a(h, &o->samples, sizeof o->samples);
}

/* This rank's own verdict on its input, before anything is exchanged. */
static int check_local(ibstore_run *run, const uint64_t *ids, const float *losses, size_t n,
		       int rank, int size, ibstore_run_opts *cfg, uint64_t *hash, char *lmsg)
{
	ibstore_run_info info;
	if (!run || ibstore_run_config_get(run, cfg) || ibstore_run_info_get(run, &info))
		return ib_failn(lmsg, MSG_LEN, IBSTORE_EINVAL, "no open run");
	if (!info.in_epoch || !ibstore_run_plan(run))
		return ib_failn(lmsg, MSG_LEN, IBSTORE_ESTATE,
			     "the run is not in an epoch (exchange before epoch_end)");
	*hash = config_hash(cfg, info.epoch, info.start);
	if (cfg->rank != (uint32_t)rank || cfg->world != (uint32_t)size)
		return ib_failn(lmsg, MSG_LEN, IBSTORE_EINVAL,
			     "the run is rank %" PRIu32 " of %" PRIu32
			     " but the communicator's process is rank %d of %d",
			     cfg->rank, cfg->world, rank, size);
	if (n > INT_MAX)
		return ib_failn(lmsg, MSG_LEN, IBSTORE_ETOOBIG, "%zu pairs exceed MPI's int counts", n);
	if (n && (!ids || !losses))
		return ib_failn(lmsg, MSG_LEN, IBSTORE_EINVAL, "no ids or losses");
	for (size_t i = 0; i < n; i++) {
		if (ids[i] >= cfg->samples)
			return ib_failn(lmsg, MSG_LEN, IBSTORE_EINVAL,
				     "loss for unknown sample id %" PRIu64 " (the run has %" PRIu64
				     "); nothing recorded",
				     ids[i], cfg->samples);
		if (!isfinite(losses[i]))
			return ib_failn(lmsg, MSG_LEN, IBSTORE_EINVAL,
				     "loss of sample %" PRIu64
				     " is %g, not finite; nothing recorded",
				     ids[i], (double)losses[i]);
	}
	return 0;
}

/*
 * Every rank learns the worst status (the most negative code; the lowest
 * rank among those with it) and that rank's message.  Returns the agreed
 * status, or IBSTORE_EIO when MPI itself failed.
 */
static int agree(int st, char *lmsg, MPI_Comm comm, int rank, char *msg, size_t msglen)
{
	struct {
		int code;
		int rank;
	} in = {st, rank}, out;
	int err = MPI_Allreduce(&in, &out, 1, MPI_2INT, MPI_MINLOC, comm);
	if (err != MPI_SUCCESS)
		return mpi_fail(msg, msglen, err, "MPI_Allreduce of the ranks' status");
	if (out.code == 0)
		return 0;
	err = MPI_Bcast(lmsg, MSG_LEN, MPI_CHAR, out.rank, comm);
	if (err != MPI_SUCCESS)
		return mpi_fail(msg, msglen, err, "MPI_Bcast of the failing rank's message");
	lmsg[MSG_LEN - 1] = '\0';
	ib_failn(msg, msglen, 0, "rank %d: %s", out.rank, lmsg);
	return out.code;
}

IB_API int ibstore_run_exchange_mpi(ibstore_run *run, const uint64_t *ids, const float *losses,
				    size_t n, MPI_Comm comm, char *msg, size_t msglen)
{
	char lmsg[MSG_LEN] = "";
	int *counts = NULL, *displs = NULL;
	uint64_t *all_ids = NULL;
	float *all_losses = NULL;
	int init = 0, fin = 0, rank, size, err, rc;

	ib_failn(msg, msglen, 0, "%s", "");
	if (MPI_Initialized(&init) != MPI_SUCCESS || !init || MPI_Finalized(&fin) != MPI_SUCCESS ||
	    fin) {
		ib_failn(msg, msglen, 0, "MPI is not initialised, or already finalised");
		return IBSTORE_EINVAL;
	}
	if (comm == MPI_COMM_NULL) {
		ib_failn(msg, msglen, 0, "the communicator is MPI_COMM_NULL");
		return IBSTORE_EINVAL;
	}
	if ((err = MPI_Comm_rank(comm, &rank)) != MPI_SUCCESS ||
	    (err = MPI_Comm_size(comm, &size)) != MPI_SUCCESS)
		return mpi_fail(msg, msglen, err, "MPI_Comm_rank/size");

	/* 1. Each rank judges its own input; then all agree on one verdict. */
	ibstore_run_opts cfg;
	uint64_t h = 0, hh[2], hmax[2];
	int st = check_local(run, ids, losses, n, rank, size, &cfg, &h, lmsg);
	hh[0] = h;
	hh[1] = ~h;
	if ((err = MPI_Allreduce(hh, hmax, 2, MPI_UINT64_T, MPI_MAX, comm)) != MPI_SUCCESS)
		return mpi_fail(msg, msglen, err, "MPI_Allreduce of the runs' configuration");
	if (!st && (hmax[0] != h || hmax[1] != ~h))
		st = ib_failn(lmsg, MSG_LEN, IBSTORE_EINVAL,
			"the ranks' runs differ (samples, prune options, batch, world, slice, epoch "
			"or resume point)");
	counts = malloc((size_t)size * sizeof *counts);
	displs = malloc((size_t)size * sizeof *displs);
	if (!st && (!counts || !displs))
		st = ib_failn(lmsg, MSG_LEN, IBSTORE_ENOMEM, "out of memory");
	if ((rc = agree(st, lmsg, comm, rank, msg, msglen)))
		goto out;

	/* 2. Counts, then the pairs, each array in its own type. */
	int mine = (int)n;
	static const uint64_t no_id;
	static const float no_loss;
	const uint64_t *send_ids = n ? ids : &no_id; /* never NULL, even for 0 */
	const float *send_losses = n ? losses : &no_loss;
	if ((err = MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, comm)) != MPI_SUCCESS) {
		rc = mpi_fail(msg, msglen, err, "MPI_Allgather of the report counts");
		goto out;
	}
	uint64_t total = 0;
	for (int s = 0; s < size; s++) {
		displs[s] = (int)total;
		total += (uint64_t)counts[s];
		if (total > INT_MAX) {
			/* the same counts everywhere: every rank stops here */
			ib_failn(msg, msglen, 0, "%" PRIu64 "+ pairs exceed MPI's int counts", total);
			rc = IBSTORE_ETOOBIG;
			goto out;
		}
	}
	all_ids = malloc((total ? total : 1) * sizeof *all_ids);
	all_losses = malloc((total ? total : 1) * sizeof *all_losses);
	st = all_ids && all_losses ? 0 : ib_failn(lmsg, MSG_LEN, IBSTORE_ENOMEM, "out of memory");
	if ((rc = agree(st, lmsg, comm, rank, msg, msglen)))
		goto out;
	if ((err = MPI_Allgatherv(send_ids, mine, MPI_UINT64_T, all_ids, counts, displs,
				  MPI_UINT64_T, comm)) != MPI_SUCCESS) {
		rc = mpi_fail(msg, msglen, err, "MPI_Allgatherv of the ids");
		goto out;
	}
	if ((err = MPI_Allgatherv(send_losses, mine, MPI_FLOAT, all_losses, counts, displs,
				  MPI_FLOAT, comm)) != MPI_SUCCESS) {
		rc = mpi_fail(msg, msglen, err, "MPI_Allgatherv of the losses");
		goto out;
	}

	/* 3. Keep the other ranks' pairs, less their padding, and report them.
	 * Every pair passed the check of the rank that sent it, and the runs
	 * agree on the sample count, so the report cannot refuse them. */
	/* the slices of this world cover the plan from run_info.start on */
	ibstore_run_info info;
	ibstore_run_info_get(run, &info);
	ibstore_plan rest = ib_plan_tail(ibstore_run_plan(run), info.start);
	size_t k = 0;
	for (int s = 0; s < size; s++) {
		if (s == rank)
			continue;
		uint64_t pad = 0;
		int has_pad = ib_slice_padding_id(&rest, (uint32_t)s, cfg.world, cfg.slice, &pad);
		for (int i = displs[s]; i < displs[s] + counts[s]; i++) {
			if (has_pad && all_ids[i] == pad)
				continue;
			all_ids[k] = all_ids[i];
			all_losses[k] = all_losses[i];
			k++;
		}
	}
	if ((rc = ibstore_run_report(run, all_ids, all_losses, k)))
		ib_failn(msg, msglen, 0, "%s", ibstore_run_errmsg(run));
out:
	free(counts);
	free(displs);
	free(all_ids);
	free(all_losses);
	return rc;
}
