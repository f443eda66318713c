/*
 * ibstore_mpi.h — optional MPI support: the loss exchange of a data-parallel
 * run whose ranks are the processes of an MPI communicator.
 *
 * Built when meson's feature option `mpi` finds MPI (Debian: libopenmpi-dev).
 * The core library never links MPI: link libibstore_mpi as well as
 * libibstore (pkg-config ibstore-mpi), and include this header, which
 * includes <mpi.h> and ibstore.h.
 *
 * The distributed contract (docs/PRUNING.md, "Rank slices and padding"):
 *  - Every rank opens its own run state with the same options except
 *    ibstore_run_opts.rank = its rank in the communicator and .world = the
 *    communicator's size.  From the same seed and the same scores every
 *    rank computes the same global plan at epoch_begin and reads only its
 *    own slice (plan positions rank, rank + world, ...).
 *  - Each rank reports the losses of its own batches as usual
 *    (ibstore_loader_report, or ibstore_run_report + ibstore_run_advance),
 *    keeps the (id, loss) pairs it reported, and hands them to
 *    ibstore_run_exchange_mpi() while the epoch is current: once after its
 *    last batch and before epoch_end (so that epoch_end commits the gathered
 *    scores), or after every batch (the same number of calls on every rank).
 *  - The call reports the OTHER ranks' pairs into this rank's run state.
 *    A rank's own pairs are not reported again: with ema > 0 a second report
 *    would smooth them twice.  After the exchange every rank holds the same
 *    scores, so the next epoch_begin computes the same plan everywhere.
 *  - Weight-0 padding (IBSTORE_SLICE_PAD) repeats a sample another rank
 *    trains on.  Pairs of a rank's padding entry are dropped by the exchange,
 *    so a sample's score comes from the rank that owns it; pass the pairs of
 *    whole batches, padding included, or leave padding out: both work.  A
 *    rank that itself reported a loss for its padding entry changed its own
 *    score of that sample: with ema = 0 and one exchange at the end of the
 *    epoch the owner's loss overwrites it again, but with ema > 0 or with
 *    an exchange per batch the ranks agree only when padding losses are not
 *    reported locally (report the weight > 0 entries only).
 */
#ifndef IBSTORE_MPI_H
#define IBSTORE_MPI_H

#include <mpi.h>

#include "ibstore.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Exchanges one epoch's (or one batch's) loss reports among the ranks of
 * `comm` and reports the other ranks' pairs into `run` with
 * ibstore_run_report().  `ids` and `losses` are this rank's n pairs (n may
 * be 0; the arrays may then be NULL).  Ids travel as MPI_UINT64_T and
 * losses as MPI_FLOAT, counts first (MPI_Allgather), then the pairs
 * (MPI_Allgatherv).
 *
 * A collective call: every rank of `comm` must make it, in the same order
 * relative to its other collectives on `comm`.  MPI must be initialised.
 *
 * All-or-nothing on every rank: before any pair moves, the ranks check
 * their own input and agree on the outcome with MPI_Allreduce, so when one
 * rank fails the check every rank returns the same code and no rank's
 * scores change.  The checks: the run is open and in an epoch; its rank and
 * world equal the communicator's; every rank's run has the same samples,
 * prune options, world, slice mode and current epoch; every id is below
 * the sample count and every loss is finite; the gathered pairs fit MPI's
 * int counts.
 *
 * Returns 0, or:
 *   IBSTORE_EINVAL   a bad argument, a non-finite loss, an unknown id, or a
 *                    run that does not match the communicator or the other
 *                    ranks' runs (on the failing rank or any other);
 *   IBSTORE_ESTATE   a run not in an epoch (on any rank);
 *   IBSTORE_ETOOBIG  more than INT_MAX pairs gathered;
 *   IBSTORE_ENOMEM   out of memory (on any rank);
 *   IBSTORE_EIO      an MPI call failed (only when `comm` has an error
 *                    handler that returns, e.g. MPI_ERRORS_RETURN; with
 *                    MPI's default MPI_ERRORS_ARE_FATAL the job aborts).
 *                    The ranks may then disagree; the run's scores are
 *                    unchanged.
 * `msg` (may be NULL) receives a message of up to msglen bytes on failure,
 * the same on every rank for agreed failures, e.g. "rank 1: loss of sample
 * 17 is nan, not finite; nothing recorded".
 *
 * A rank that dies makes its peers' collectives fail or wait: MPI has no
 * timeouts.  Open MPI's mpirun aborts the whole job when a rank exits
 * without MPI_Finalize, which ends the wait.
 *
 * Threading: the run handle's rules (one thread at a time) and the
 * communicator's (MPI's thread level).  With a loader open over `run`,
 * call it from the loader's consumer thread between loader calls.
 */
int ibstore_run_exchange_mpi(ibstore_run *run, const uint64_t *ids, const float *losses, size_t n,
			     MPI_Comm comm, char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif

#endif /* IBSTORE_MPI_H */
