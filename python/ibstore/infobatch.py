"""A drop-in for the reference InfoBatch package over any map-style Dataset.

    from ibstore.torch import InfoBatch          # was: from infobatch import InfoBatch
    ds = InfoBatch(dataset, num_epochs, prune_ratio=0.5, delta=0.875)
    loader = DataLoader(ds, batch_size=B, sampler=ds.sampler, num_workers=K)
    for epoch in range(num_epochs):
        for x, y in loader:
            loss = ds.update(criterion(model(x), y))   # criterion: reduction='none'
            ...backward, step...

The plan of every epoch (kept samples, their order and weights) comes from
the ibstore library's run state (``ibstore.Run``: the same plan as
``ibstore plan`` for the same scores, seed and epoch).  ``__getitem__``
returns the wrapped dataset's item unchanged and nothing global is patched:
``ds.sampler`` yields this rank's slice of the plan and records it, and
``update()`` takes the next ``len(per_sample_loss)`` ids of that record.
This relies on the DataLoader's default in-order delivery (``in_order=True``)
and on one ``update()`` per batch, in order; it works with any number of
workers, persistent workers, pin_memory and drop_last, because the sampler
always runs in the main process.

The batch size is ``batch_size=`` when given, else the length of the first
``update()``; every later update must have that length, but for the epoch's
last batch (shorter, or absent when the DataLoader drops it).

Epochs: the epoch number is ``set_epoch(e)`` when called, else the next one
after the last epoch that was iterated to its end (a run reopened from its
``run=`` file continues where its last checkpoint left off).  ``len(ds.sampler)``
and therefore ``len(loader)`` are the current epoch's, and after an epoch's
last ``update()`` the next epoch's.  The DataLoader's batch_size and drop_last
are read from the BatchSampler that calls the sampler (else: ``batch_size=``,
``drop_last=``, or learnt from the first update and the first epoch end).

Misuse raises RuntimeError/ValueError: an update of the wrong length, more
updates than batches, an update for a batch the sampler has not issued yet
(with num_workers=0 that catches an update called twice; with workers, a
double update shows at the epoch's end), and an epoch left with batches never
updated when the next begins.

Distributed (torch.distributed initialised): the sampler gives rank r plan
positions r, r + W, ... (padded with weight-0 repeats so ranks have equal
lengths, like DistributedSampler); ``update()`` is a collective that
all-gathers ids (int64) and losses (float32) as separate tensors so every
rank holds the same scores; the run file is per rank
(``<run>.rank<r>-of-<w>``), and a job stopped on W ranks resumes on any
other number of ranks from the same ``run`` (elastic resume).
"""

import os
import shutil
import sys

import numpy as np
import torch
from torch.utils.data import BatchSampler, Dataset, Sampler

from . import _dist, core

__all__ = ["InfoBatch"]


class _Epoch:
    """One epoch's slice as the sampler issues it and update() consumes it."""

    def __init__(self, epoch, ids, weights, kept):
        self.epoch = epoch
        self.ids = ids          # int64, the slice from the resume cursor on
        self.weights = weights  # float32 per entry (0: padding)
        self.kept = kept        # the global plan's length
        self.issued = 0         # entries the sampler has yielded
        self.consumed = 0       # entries update() has taken
        self.iterated = False   # iter(sampler) was called for it

    def __len__(self):
        return len(self.ids)

    @property
    def remaining(self):
        return len(self.ids) - self.consumed


class InfoBatchSampler(Sampler):
    """Yields this rank's slice of the current epoch's plan (dataset indices),
    recording them for update().  len() is the current epoch's slice length."""

    def __init__(self, owner):
        self._owner = owner

    def __len__(self):
        self._peek_caller()
        return len(self._owner._current(for_len=True))

    def __iter__(self):
        self._peek_caller()
        ep = self._owner._current(for_len=False)
        ep.iterated = True
        return self._gen(self._owner, ep)

    def _peek_caller(self):
        # A DataLoader built with sampler=ds.sampler wraps it in a
        # torch.utils.data.BatchSampler, whose __len__/__iter__ call ours:
        # read its batch_size and drop_last (read only; nothing is patched).
        try:
            f = sys._getframe(2)
        except ValueError:
            return
        bs = f.f_locals.get("self")
        if isinstance(bs, BatchSampler) and bs.sampler is self:
            self._owner._learn(int(bs.batch_size), bool(bs.drop_last))

    @staticmethod
    def _gen(owner, ep):
        ids = ep.ids.tolist()
        for i in ids:
            ep.issued += 1
            yield i
        if not ids and owner._ep is ep:
            # nothing of it for update() to end (a run resumed at its end):
            # it ends when its iteration does
            owner._end(ep, "")

    def set_epoch(self, epoch):
        self._owner.set_epoch(epoch)


class InfoBatch(Dataset, core._ClosedOnExit):
    """InfoBatch over a map-style ``dataset`` (see the module documentation).

    num_epochs: C, the run's total epochs (the annealing schedule needs it).
    prune_ratio: r.  delta: δ (annealing in the last 1-δ of the epochs).
    batch_size: the DataLoader's (default: read from its BatchSampler, else
    the first update()'s length).
    drop_last: whether the DataLoader drops a last partial batch (default:
    read from the DataLoader's BatchSampler, else learnt at the first epoch
    end).  policy 'infobatch'|'random'|'none',
    mode 'native'|'compat' ('compat': the reference's exact sample sequence
    and weights), seed, ema: as for ibstore.Run.  run: the run state file
    (created when missing, reopened to resume; None: a temporary one,
    removed at close).  checkpoint_every: commit the run every so many
    samples (0: at epoch ends only; default 8192, a reopened run's own).
    slice 'pad'|'drop' for distributed slices.  rank/world/process_group:
    overrides of torch.distributed.
    """

    def __init__(self, dataset, num_epochs, prune_ratio=0.5, delta=0.875, *, batch_size=None,
                 drop_last=None, policy="infobatch", mode="native", seed=0, ema=0.0, run=None,
                 checkpoint_every=None, slice="pad", rank=None, world=None, process_group=None):
        self.dataset = dataset
        self._worker_copy = False
        self._run = None
        self._tmpdir = None
        if not num_epochs or int(num_epochs) < 1:
            raise ValueError("num_epochs (the run's total epochs C) is required")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError("batch_size must be positive")
        self.num_epochs = int(num_epochs)
        self.prune_ratio = float(prune_ratio)
        self.delta = float(delta)
        self.batch_size = int(batch_size) if batch_size is not None else None
        self.drop_last = None if drop_last is None else bool(drop_last)
        self._n = len(dataset)
        self._group = process_group
        self._dist, self.rank, self.world = _dist.placement(process_group, rank, world)
        run, self._tmpdir = _dist.run_path(run, "ibstore-infobatch-")
        self.run_path = run  # the file the library chose, once open
        if checkpoint_every is None:  # a new run: 8192; a reopened one: its own
            stored = _dist.stored_config(run)
            checkpoint_every = stored["checkpoint_every"] if stored else 8192
        try:
            # The run's batches are single samples: its cursor counts the
            # samples of the slice done, whatever the DataLoader's batch size.
            self._run = core.Run(run, samples=self._n, epochs=self.num_epochs, batch_size=1,
                                 drop_last=False, policy=policy, mode=mode,
                                 ratio=self.prune_ratio, delta=self.delta, seed=seed, ema=ema,
                                 rank=self.rank, world=self.world, slice=slice,
                                 checkpoint_every=checkpoint_every, elastic=True)
            self.run_path = self._run.path
        except BaseException:
            self.close()
            raise
        cfg = self._run.config
        self.policy, self.mode, self.seed = cfg["policy"], cfg["mode"], cfg["seed"]
        info = self._run.info()
        if info["in_epoch"]:
            self._next = info["epoch"]
        else:
            self._next = info["epoch"] + 1 if info["epochs_done"] else 0
        self._ep = None
        self._pruned = 0
        self.sampler = InfoBatchSampler(self)

    # ---- the Dataset -----------------------------------------------------
    def __len__(self):
        return self._n

    def __getitem__(self, index):
        return self.dataset[index]

    def __getattr__(self, name):
        # only called for attributes InfoBatch lacks: the wrapped dataset's
        d = self.__dict__.get("dataset")
        if d is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(d, name)

    def __getstate__(self):
        # What a worker process needs (under spawn/forkserver): the dataset.
        return {"dataset": self.dataset, "_n": self._n, "_worker_copy": True}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def _learn(self, batch_size, drop_last):
        if self.batch_size is not None and batch_size != self.batch_size:
            raise ValueError("InfoBatch: the DataLoader's batch_size is %d, InfoBatch's %d"
                             % (batch_size, self.batch_size))
        if self.drop_last is not None and drop_last != self.drop_last:
            raise ValueError("InfoBatch: the DataLoader's drop_last is %s, InfoBatch's %s"
                             % (drop_last, self.drop_last))
        self.batch_size, self.drop_last = batch_size, drop_last

    # ---- epochs ----------------------------------------------------------
    @property
    def epoch(self):
        """The current epoch (begun by len() or iter() of the sampler), else
        the next one to begin."""
        return self._ep.epoch if self._ep is not None else self._next

    def _finished(self, ep):
        if ep.remaining == 0:
            return True
        return bool(self.drop_last) and self.batch_size is not None \
            and ep.remaining < self.batch_size

    def _end(self, ep, entering):
        """Ends epoch ep before ``entering`` the next one; raises when batches
        of it were skipped."""
        rem = ep.remaining
        if rem:
            B = self.batch_size
            if B is None or rem >= B or self.drop_last is False \
                    or (self.drop_last is None and ep.consumed == 0):
                raise RuntimeError(
                    "InfoBatch: epoch %d ended with %d of its %d samples never passed to "
                    "update() (%s); call update() once per batch, for every batch"
                    % (ep.epoch, rem, len(ep), entering))
            self.drop_last = True  # the DataLoader dropped the short last batch
            self._run.advance(rem)  # their scores stay as they were
        self._run.epoch_end()
        self._ep = None
        self._next = ep.epoch + 1

    def _begin(self, epoch):
        if epoch >= self.num_epochs:
            raise RuntimeError("InfoBatch: epoch %d: the run has %d epochs (0..%d)"
                               % (epoch, self.num_epochs, self.num_epochs - 1))
        info = self._run.epoch_begin(epoch)
        sids, sw = self._run.slice()  # the run's slice rule (docs/PRUNING.md)
        c = info.cursor  # samples of this slice already done (a resumed run)
        kept = int(info.plan["kept"])
        self._ep = _Epoch(epoch, sids[c:].astype(np.int64), sw[c:], kept)
        self._pruned += self._n - kept
        return self._ep

    def _current(self, for_len):
        ep = self._ep
        if self._worker_copy:
            raise RuntimeError("InfoBatch: the sampler runs in the main process only")
        if ep is None:
            if for_len and self._next >= self.num_epochs:
                return _Epoch(self._next, (), (), 0)  # the run is complete: len() 0
            return self._begin(self._next)
        if not ep.iterated:
            return ep
        if for_len:
            return self._begin(self._end_then_next(ep)) if self._finished(ep) else ep
        # iter(): a new epoch
        self._end(ep, "iter() began the next epoch")
        return self._begin(self._next)

    def _end_then_next(self, ep):
        self._end(ep, "len() asked for the next epoch")
        return self._next

    def set_epoch(self, epoch):
        """Makes ``epoch`` the next epoch to iterate (DistributedSampler's
        convention: call it before each epoch's iteration)."""
        epoch = int(epoch)
        ep = self._ep
        if ep is not None:
            if ep.epoch == epoch and (not ep.iterated or ep.consumed == 0):
                return
            if ep.iterated or ep.consumed:
                self._end(ep, "set_epoch(%d)" % epoch)
            else:
                self._ep = None
        if not 0 <= epoch < self.num_epochs:
            raise ValueError("epoch %d: the run has %d epochs" % (epoch, self.num_epochs))
        self._next = epoch

    # ---- losses ----------------------------------------------------------
    def update(self, per_sample_loss):
        """Records the batch's unweighted per-sample losses as scores and
        returns mean(weight * loss) over the batch (a tensor with the graph).
        Under torch.distributed this is a collective: every rank calls it."""
        loss = per_sample_loss
        if not torch.is_tensor(loss):
            raise TypeError("update() takes the per-sample loss tensor")
        if loss.dim() != 1:
            raise ValueError("update() takes one loss per sample, got shape %s: build the "
                             "criterion with reduction='none'" % (tuple(loss.shape),))
        ep = self._ep
        if ep is None or not ep.iterated:
            raise RuntimeError("InfoBatch: update() with no batch issued: more updates than "
                               "batches (update() called twice for a batch?), or a DataLoader "
                               "not built with sampler=ds.sampler")
        n = loss.numel()
        B = self.batch_size
        if n == 0:
            raise ValueError("update() of an empty batch")
        if n > ep.remaining:
            raise RuntimeError(
                "InfoBatch: update() of %d losses but epoch %d has %d samples left: more "
                "updates than batches (update() called twice for a batch?)"
                % (n, ep.epoch, ep.remaining))
        if B is None:
            if n < ep.remaining and ep.consumed == 0:
                B = self.batch_size = n  # learnt from the first batch
            elif n == ep.remaining:
                B = n
        if B is not None and n != B and not (n < B and n == ep.remaining):
            raise ValueError(
                "InfoBatch: update() of %d losses; the batch size is %d (only the epoch's "
                "last batch, of %d, may be shorter): pass every batch's per-sample loss "
                "(reduction='none')" % (n, B, ep.remaining % B or B))
        if ep.consumed + n > ep.issued:
            raise RuntimeError(
                "InfoBatch: update() for samples the sampler has not issued yet (update() "
                "called twice for a batch, or a DataLoader not built with sampler=ds.sampler)")
        lo, hi = ep.consumed, ep.consumed + n
        ids, w = ep.ids[lo:hi], ep.weights[lo:hi]
        losses = loss.detach().to("cpu", torch.float32).numpy().copy()
        real = ~core.is_padding(w)  # a padded sample's owner reports it
        if self._dist is not None:
            ids_all, losses_all = _dist.all_gather_pairs(self._dist, self._group, self.world,
                                                         ids[real], losses[real])
            ids_all, losses_all = np.concatenate(ids_all), np.concatenate(losses_all)
        else:
            ids_all, losses_all = ids[real], losses[real]
        if ids_all.size:
            self._run.report(ids_all.astype(np.uint64), losses_all)
        ep.consumed = hi
        self._run.advance(n)
        if self._finished(ep):  # its last batch: end it now (committed for a resume)
            self._end(ep, "")
        wt = torch.from_numpy(w.copy()).to(
            device=loss.device, dtype=loss.dtype if loss.is_floating_point() else torch.float32)
        return (loss * wt).sum() / n

    # ---- introspection and teardown -------------------------------------
    @property
    def run(self):
        """The ibstore.Run (read config/info/scores/epoch_stats from it)."""
        return self._run

    def plan(self):
        """The current epoch's global plan: (ids, weights, stats)."""
        return self._run.plan()

    # The reference's introspection, for scripts that log it.
    @property
    def scores(self):
        """A copy of the current scores as a float32 tensor (native mode:
        NaN = never seen; compat mode: 3.0, the reference's initial score)."""
        return torch.from_numpy(self._run.scores())

    @property
    def weights(self):
        """The current epoch's weight per sample id (1 outside its plan)."""
        w = torch.ones(self._n)
        if self._run.info()["in_epoch"]:
            ids, pw, _ = self._run.plan()
            w[torch.from_numpy(ids.astype(np.int64))] = torch.from_numpy(pw)
        return w

    @property
    def keep_ratio(self):
        return min(1.0, max(0.1, 1.0 - self.prune_ratio))

    @property
    def stop_prune(self):
        return self.num_epochs * self.delta

    def mean_score(self):
        s = self.scores
        return s[~torch.isnan(s)].mean()

    def get_weights(self, indexes):
        return self.weights[indexes]

    def get_pruned_count(self):
        """Samples pruned over the epochs begun by this object (the
        reference's count of saved forward passes)."""
        return self._pruned

    def checkpoint(self):
        """Commits the scores and the epoch position now."""
        self._run.checkpoint()

    def close(self):
        run, self._run = self.__dict__.get("_run"), None
        if run is not None:
            run.close()
        if self.__dict__.get("_tmpdir"):
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __del__(self):  # not _ClosedOnExit's: a worker's copy must not close the run
        try:
            if not self.__dict__.get("_worker_copy", True):
                self.close()
        except Exception:
            pass
