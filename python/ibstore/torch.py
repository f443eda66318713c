"""PyTorch layer: InfoBatch-pruned epochs in three lines.

    loader = ibstore.torch.Loader("fmnist.ibs", batch_size=128, num_epochs=C,
                                  prune_ratio=0.5, run="run.state")
    for epoch in range(C):
        for x, y in loader.epoch(epoch):
            loss = loader.update(criterion(model(x), y))   # criterion: reduction='none'
            ...backward, step...

``epoch(e)`` begins the epoch at once (so ``len(loader)`` is its batch count
before the first batch, for step-based LR schedules) and returns an iterable
of ``(x, y)``: x decoded by the decode hook, y the labels as int64.
``update(per_sample_loss)`` records the unweighted losses (detached, float32)
by sample id as scores for the next epoch's pruning and returns
``mean(weight * loss)`` over the batch (sum divided by the batch size) as a
tensor that keeps the graph; the caller's tensor is not modified.  The
batch's library memory is released after ``update()`` (or when the next
batch is requested without an update: that batch's losses are then not
reported).  x and y are copies and outlive the release (with
``decode=Images(...)`` x is a view of the batch's decoded tensor instead,
which goes back to the library once x is gone).

Decode hooks (``decode=``):
  'auto'    'array' when every sample has the size of the dataset attribute
            "shape" (or the same size and the source is not an image folder),
            else 'image'
  'array'   fixed-size samples (IDX, CIFAR): uint8 -> float32 / 255, shaped
            [n, *shape] by the dataset attribute "shape" ("28x28" ->
            [n, 28, 28], "3x32x32" -> [n, 3, 32, 32]); [n, size] without it
  'image'   encoded images (PNG, JPEG, ... through PIL) -> float32 [n, C, H, W]
            / 255; ``image_mode`` (default 'RGB') and ``image_size`` (H, W)
            to resize images of different sizes
  Images(size=224, train=True)
            JPEG, PNG and WebP decoded and augmented in C in the loader's
            decode threads (RandomResizedCrop + flip, or resize + centre
            crop) -> float32 [n, 3, H, W] ready for the model; see Images
  callable  f(batch) -> tensor, given the ibstore.Batch (a tensor over its
            numpy views keeps the batch's library memory until the tensor
            is gone; return owned memory to give it back at once)

Distributed: when torch.distributed is initialized, the run's rank and world
are the process group's, the run state file is per rank
(``<run>.rank<r>-of-<w>``; ``run`` names the job, and a job stopped on W
ranks resumes on any other number at the first sample not trained by all:
ibstore_run_open_elastic), and ``update()`` all-gathers the batch's ids
(int64) and losses (float32) as separate tensors (weight-0 padding left
out: the rank that owns a sample reports it) and records the other ranks'
losses too, so all ranks hold the same scores before the next epoch.  Every
rank must call ``update()`` for every batch (it is a collective).
"""

import shutil

import numpy as np
import torch

from . import _dist, core
from .core import IbstoreError
from .infobatch import InfoBatch

__all__ = ["Loader", "InfoBatch", "Images", "decode_array", "decode_image", "IbstoreError"]


def _parse_shape(s):
    if not s:
        return None
    try:
        dims = tuple(int(d) for d in s.lower().split("x"))
    except ValueError:
        return None
    return dims if dims and all(d > 0 for d in dims) else None


def decode_array(batch, shape=None, divisor=255.0):
    """Fixed-size samples -> float32 tensor [n, *shape] divided by ``divisor``."""
    a = batch.array()  # a view: the float conversion below makes the copy
    x = torch.from_numpy(a.astype(np.float32))
    if divisor != 1:
        x.div_(divisor)
    if shape is not None and int(np.prod(shape)) == a.shape[1]:
        x = x.reshape((a.shape[0],) + tuple(shape))
    return x


class Images:
    """``decode=Images(size=224, train=True)``: every sample decoded and
    augmented in C, in the loader's decode threads (JPEG through
    libjpeg-turbo, PNG, WebP; chosen by the payload's magic bytes), so a
    pruned sample is never read and never decoded.  ``x`` is a float32
    tensor ``[n, 3, H, W]`` scaled to [0, 1] as ``ToTensor`` does (then
    ``(x - mean) / std`` per channel when given), or uint8 with
    ``dtype='uint8'``; ``layout='hwc'`` gives ``[n, H, W, 3]``.

    train: torchvision's RandomResizedCrop(size, scale, ratio) and a
    horizontal flip with probability ``flip``; else eval: the short side
    resized to ``resize`` (default size / 0.875, 256 for 224) and a centre
    crop.  ``pad=P`` (train): torchvision's RandomCrop(size, padding=P)
    instead of RandomResizedCrop: the image resized to ``size``, framed by
    P black pixels, a ``size`` window at a uniform offset, then the flip
    (the CIFAR-style recipe).  Random choices come from (seed, epoch, sample id): a resumed
    run, any world size and any thread count see the same pixels.  A
    sample that is not such an image, is broken, or has more than
    ``max_pixels`` pixels follows the loader's ``corrupt`` policy.
    """

    def __init__(self, size=224, train=True, *, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 flip=0.5, resize=None, mean=None, std=None, dtype="float32", layout="chw",
                 max_pixels=None, seed=None, pad=None):
        self.size, self.train = size, bool(train)
        self.kw = dict(scale=scale, ratio=ratio, flip=flip, resize=resize, mean=mean, std=std,
                       dtype=dtype, layout=layout, max_pixels=max_pixels, seed=seed, pad=pad)
        self.opts()  # bad values fail here, not at the first epoch

    def opts(self):
        return core.image_opts(self.size, train=self.train, **self.kw)

    def __call__(self, batch):
        # a view that keeps the batch's memory; the model may change it in place
        return torch.from_numpy(batch.images(writable=True))

    def __repr__(self):
        return "Images(size=%r, train=%r)" % (self.size, self.train)


def decode_image(batch, mode="RGB", size=None):
    """Encoded images -> float32 tensor [n, C, H, W] / 255 (through PIL)."""
    import io

    from PIL import Image

    out = []
    for i in range(batch.n):
        with Image.open(io.BytesIO(batch.sample(i).tobytes())) as im:
            im = im.convert(mode)
            if size is not None:
                im = im.resize((size[1], size[0]))
            a = np.asarray(im, dtype=np.uint8)
        if a.ndim == 2:
            a = a[:, :, None]
        out.append(a)
    if not out:
        return torch.empty(0)
    if any(a.shape != out[0].shape for a in out):
        raise ValueError("images of batch %d differ in size; pass image_size=(H, W) "
                         "or a decode callable" % batch.index)
    x = torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).astype(np.float32))
    return x.div_(255)


class _Epoch:
    """The iterable of one epoch; len() is its batch count."""

    def __init__(self, loader, epoch, n):
        self._loader = loader
        self.epoch = epoch
        self._n = n

    def __len__(self):
        return self._n

    def __iter__(self):
        return self._loader._iterate(self.epoch)


class Loader(core._ClosedOnExit):
    """Streams pruned epochs of an ibstore dataset as (x, y) tensors.

    path: the dataset directory.  num_epochs: total epochs C of the run
    (the annealing schedule depends on it).  prune_ratio: r.  run: the run
    state file (created when missing; reopened to resume; None: a temporary
    one, removed at close).  policy 'infobatch'|'random'|'none', mode
    'native'|'compat', delta, seed, ema, drop_last, slice 'pad'|'drop' (for
    distributed slices), threads, backend 'auto'|'uring'|'pread'|'mmap', order,
    prefetch, budget, corrupt 'fail'|'skip'; decode (see the module
    documentation); device: where x, y and the weights go (default: stay on
    CPU; weights follow the loss's device anyway).  rank/world: overrides
    of what torch.distributed says.
    """

    def __init__(self, path, batch_size=128, num_epochs=None, prune_ratio=0.5, run=None, *,
                 policy="infobatch", mode="native", delta=0.875, seed=0, ema=0.0,
                 drop_last=False, slice="pad", threads=0, backend="auto", order="random",
                 prefetch=None, budget=None, corrupt="fail", decode="auto", image_mode="RGB",
                 image_size=None, device=None, rank=None, world=None, checkpoint_every=None,
                 process_group=None):
        if not num_epochs or num_epochs < 1:
            raise ValueError("num_epochs (the run's total epochs C) is required")
        self._group = process_group
        self._dist, self.rank, self.world = _dist.placement(process_group, rank, world)
        run, self._tmpdir = _dist.run_path(run, "ibstore-run-")
        self.run_path = run  # the file the library chose, once open
        self.device = torch.device(device) if device is not None else None
        self.ema = float(ema)
        self.dataset = core.Dataset(path)
        self.run = None
        self._loader = None
        try:
            self.run = core.Run(run, samples=len(self.dataset), epochs=num_epochs,
                                batch_size=batch_size, drop_last=drop_last, policy=policy,
                                mode=mode, ratio=prune_ratio, delta=delta, seed=seed, ema=ema,
                                rank=self.rank, world=self.world, slice=slice,
                                checkpoint_every=checkpoint_every, elastic=True)
            self.run_path = self.run.path
            self._loader = core.Loader(self.dataset, self.run, threads=threads,
                                       backend=backend, order=order, prefetch=prefetch,
                                       budget=budget, corrupt=corrupt,
                                       images=decode.opts() if isinstance(decode, Images)
                                       else None)
        except BaseException:
            self.close()
            raise
        self._decode = self._make_decode(decode, image_mode, image_size)
        self.info = None       # EpochInfo of the current epoch
        self._epoch = None
        self._batch = None     # the batch whose (x, y) were handed out last
        self._gen = None

    @property
    def start_epoch(self):
        """The epoch to begin with: 0 for a new run; for a reopened one the
        epoch that was checkpointed unfinished (its remaining batches come
        again exactly), else the one after the last finished epoch."""
        i = self.run.info()
        return i["epoch"] if i["in_epoch"] else (i["epoch"] + 1 if i["epochs_done"] else 0)

    # ---- decoding ------------------------------------------------------
    def _make_decode(self, decode, image_mode, image_size):
        if callable(decode):  # Images too: the library did the work
            return decode
        if decode == "auto":
            decode = self._auto_decode()
        if decode == "array":
            if not self.dataset.fixed_size:
                raise ValueError("decode='array' needs samples of one size; this dataset's "
                                 "differ (use decode='image' or a callable)")
            shape = _parse_shape(self.dataset.attr("shape"))
            if shape is not None and int(np.prod(shape)) != self.dataset.fixed_size:
                shape = None
            self.sample_shape = shape or (self.dataset.fixed_size,)
            return lambda b: decode_array(b, shape)
        if decode == "image":
            return lambda b: decode_image(b, image_mode, image_size)
        raise ValueError("decode must be 'auto', 'array', 'image' or a callable, not %r"
                         % (decode,))

    def _auto_decode(self):
        ds = self.dataset
        shape = _parse_shape(ds.attr("shape"))
        if ds.fixed_size and shape is not None and int(np.prod(shape)) == ds.fixed_size:
            return "array"  # IDX, CIFAR: raw pixels of a recorded shape
        if not ds.fixed_size or ds.attr("source") == "folder":
            return "image"  # encoded files (equal sizes happen by chance)
        return "array"

    # ---- epochs --------------------------------------------------------
    def epoch(self, epoch):
        """Begins epoch ``epoch`` now and returns its batches as an iterable
        of (x, y); len() of it (and of the loader) is its batch count."""
        self._finish_batch()
        if self._gen is not None:  # the previous epoch's iteration was abandoned
            self._gen.close()
            self._gen = None
        self.info = self._loader.epoch_begin(epoch)
        self._epoch = epoch
        return _Epoch(self, epoch, self.info.remaining)

    def __len__(self):
        if self.info is None:
            raise RuntimeError("len(loader) is known once epoch(e) has been called")
        return self.info.remaining

    def _iterate(self, epoch):
        if self._epoch != epoch:
            raise RuntimeError("epoch %d is not the current epoch (%s); call epoch(%d) again"
                               % (epoch, self._epoch, epoch))
        if self._gen is not None:
            raise RuntimeError("epoch %d is already being iterated" % epoch)
        self._gen = self._batches()
        return self._gen

    def _batches(self):
        ld = self._loader
        finished = False
        try:
            while True:
                self._finish_batch()
                b = ld.next()
                if b is None:
                    finished = True
                    break
                self._batch = b
                try:
                    x = self._decode(b)
                    y = torch.from_numpy(b.labels.astype(np.int64))
                except BaseException:
                    self._finish_batch()
                    raise
                if self.device is not None:
                    x, y = x.to(self.device), y.to(self.device)
                yield x, y
        finally:
            self._finish_batch()
            self._gen = None
        if finished:
            ld.epoch_end()

    def _finish_batch(self):
        b, self._batch = self._batch, None
        if b is not None:
            b.release()

    # ---- losses --------------------------------------------------------
    @property
    def batch(self):
        """The current ibstore.Batch (until update() or the next batch), or None."""
        return self._batch

    def update(self, per_sample_loss):
        """Records the batch's unweighted per-sample losses as scores and
        returns mean(weight * loss) over the batch (a tensor with the graph).

        ``per_sample_loss``: shape [n] (criterion built with reduction='none').
        Under torch.distributed this is a collective: every rank calls it.
        """
        b = self._batch
        if b is None:
            raise RuntimeError("update() needs a batch: call it once per batch of epoch(e)")
        loss = per_sample_loss
        if not torch.is_tensor(loss):
            raise TypeError("update() takes the per-sample loss tensor")
        if loss.dim() != 1 or loss.numel() != b.n:
            raise ValueError("update() takes one loss per sample (%d), got shape %s: build "
                             "the criterion with reduction='none'" % (b.n, tuple(loss.shape)))
        try:
            losses = loss.detach().to("cpu", torch.float32).numpy().copy()
            weights = torch.from_numpy(b.weights.copy())
            if self._dist is not None:
                real = ~core.is_padding(b.weights)  # its owner reports a padded sample
                ids_all, losses_all = _dist.all_gather_pairs(
                    self._dist, self._group, self.world, b.ids[real], losses[real])
                # the other ranks' losses first: the report below advances
                # the run and may commit, and that commit must hold them
                self._report_gathered(ids_all, losses_all)
            self._loader.report(b, losses)
        finally:
            self._finish_batch()
        w = weights.to(device=loss.device, dtype=loss.dtype if loss.is_floating_point()
                       else torch.float32)
        return (loss * w).sum() / max(b.n, 1)

    def _report_gathered(self, ids_all, losses_all):
        # ibstore_loader_report recorded this rank's pairs (less its weight-0
        # padding); the other ranks' pairs are recorded here, in rank order,
        # never the own ones again (with ema > 0 that would smooth twice).
        # Padding left out, every id occurs once per epoch over all ranks, so
        # every rank ends with the same scores.
        for r, (ids, losses) in enumerate(zip(ids_all, losses_all)):
            if r == self.rank:
                continue
            if ids.size:
                self._loader.report_ids(ids.astype(np.uint64), losses)

    # ---- introspection and teardown -----------------------------------
    def stats(self):
        """The loader's statistics of the current epoch (dict)."""
        return self._loader.stats()

    def scores(self):
        """A copy of the current scores (NaN = never seen)."""
        return self.run.scores()

    def epoch_stats(self, epoch):
        return self.run.epoch_stats(epoch)

    def close(self):
        if getattr(self, "_gen", None) is not None:
            self._gen.close()
            self._gen = None
        if getattr(self, "_batch", None) is not None:
            self._finish_batch()
        for name in ("_loader", "run", "dataset"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()
        if getattr(self, "_tmpdir", None):
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
