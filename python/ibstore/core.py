"""Dataset, Run, Loader and Batch over libibstore (see include/ibstore.h).

Lifetimes
---------
* A :class:`Loader` keeps its :class:`Dataset` and :class:`Run` alive; closing
  a Dataset or Run first closes the loaders opened on it.
* A :class:`Batch`'s arrays (``ids``, ``labels``, ``weights``, ``sizes``,
  ``offsets``, ``data``, ``array()``, ``sample(i)``) are read-only numpy
  *views* of the library's memory: no copy is made.  A view never shows freed
  memory: it holds the batch's memory (not the Batch object), and so does
  anything made from it (a slice, ``torch.from_numpy``).  Releasing the Batch
  -- :meth:`Batch.release`, leaving its ``with`` block, iterating the loader on,
  closing the loader (or its dataset or run), or garbage collection of the
  Batch object -- ends the Batch's own access (its attributes raise
  IbstoreError ESTATE); the library gets the memory back when the Batch is
  released *and* the last view of it is gone, on whatever thread drops that
  view, also after the loader was closed.  So views stay valid as long as
  they are referenced, and memory goes back as soon as nothing shows it:
  keep views only as long as needed (a view kept per batch keeps every one of
  those arenas), copy (``np.array(view)``, :meth:`Batch.copy`) to keep the
  data without the arena.
"""

import os
import threading
import weakref

import numpy as np
import ctypes

from . import _lib
from ._lib import lib

# Result codes of include/ibstore.h.
OK = 0
EINVAL = -1
ENOMEM = -2
EIO = -3
EFORMAT = -4
EVERSION = -5
ECORRUPT = -6
ETRUNCATED = -7
EMISMATCH = -8
ENOTFOUND = -9
EEXIST = -10
ETOOBIG = -11
ECATALOG = -12
EUNSUPPORTED = -13
ESTATE = -14
EBUFSIZE = -15

NO_LABEL = -(2 ** 31)  # IBSTORE_NO_LABEL



def _enum_names(name_fn):
    """{name: value} of an enum, from the library's *_name call (the enums
    are dense from 0; a value past the last is "unknown")."""
    table = {}
    while True:
        name = name_fn(len(table)).decode()
        if name == "unknown":
            return table
        table[name] = len(table)


POLICIES = _enum_names(lib.ibstore_policy_name)
MODES = _enum_names(lib.ibstore_mode_name)
SLICES = _enum_names(lib.ibstore_slice_name)
BACKENDS = _enum_names(lib.ibstore_backend_name)
ORDERS = _enum_names(lib.ibstore_order_name)
CORRUPT = _enum_names(lib.ibstore_corrupt_name)
LAYOUTS = _enum_names(lib.ibstore_layout_name)
DTYPES = _enum_names(lib.ibstore_dtype_name)
IMAGE_MODES = _enum_names(lib.ibstore_images_mode_name)


def image_opts(size, *, train=False, layout="hwc", dtype="uint8", scale=None, ratio=None,
               flip=None, resize=None, mean=None, std=None, max_pixels=None, seed=None,
               pad=None):
    """An ibstore_image_opts (the loader's image stage): ``size`` is an int
    (square) or (height, width); train: RandomResizedCrop(scale, ratio) and a
    flip with probability ``flip``, else eval (short side to ``resize``,
    default size/0.875, centre crop); layout 'hwc' or 'chw'; dtype 'uint8'
    or 'float32' (x/255 then (x - mean)/std per channel); max_pixels refuses
    larger images; seed: the random stream's (default: the run's); pad (train
    only): RandomCrop(size, padding=pad) instead of RandomResizedCrop."""
    o = _lib.ibstore_image_opts()
    _lib.image_opts_init(o)
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    o.height, o.width = h, w
    o.mode = _choice(IMAGE_MODES, "train" if train else "eval", "image mode")
    o.layout = _choice(LAYOUTS, layout, "layout")
    o.dtype = _choice(DTYPES, dtype, "dtype")
    if scale is not None:
        o.scale[0], o.scale[1] = float(scale[0]), float(scale[1])
    if ratio is not None:
        o.ratio[0], o.ratio[1] = float(ratio[0]), float(ratio[1])
    if flip is not None:
        o.flip = float(flip)
    if resize is not None:
        o.resize_short = int(resize)
    if mean is not None:
        for c in range(3):
            o.mean[c] = float(mean[c])
    if std is not None:
        for c in range(3):
            o.std[c] = float(std[c])
    if max_pixels is not None:
        o.max_pixels = int(max_pixels)
    if seed is not None:
        o.seed = int(seed)
    if pad is not None:
        o.pad = int(pad)
    return o

# IBSTORE_PADDING_WEIGHT: the weight of a padding entry (one that only
# balances the ranks' slices; its sample's owner is another rank).
PADDING_WEIGHT = 0.0
if not lib.ibstore_is_padding(PADDING_WEIGHT) or lib.ibstore_is_padding(1.0):
    raise _lib.LibraryNotFoundError("%s marks padding otherwise than with weight %r"
                                    % (_lib.library_path, PADDING_WEIGHT))


def is_padding(weights):
    """ibstore_is_padding: for a weight, True when it marks padding; for an
    array of weights (a Batch's ``weights``), a boolean array."""
    if np.ndim(weights) == 0:
        return bool(lib.ibstore_is_padding(float(weights)))
    return np.asarray(weights, dtype=np.float32) == np.float32(PADDING_WEIGHT)


def _name_of(table, value):
    for k, v in table.items():
        if v == value:
            return k
    return value


def _choice(table, value, what):
    if isinstance(value, int) and value in table.values():
        return value
    try:
        return table[value]
    except (KeyError, TypeError):
        raise ValueError("unknown %s %r (one of %s)" % (what, value, ", ".join(table))) from None


def strerror(code):
    """The library's short name of a result code."""
    return lib.ibstore_strerror(code).decode()


def version():
    return _lib.VERSION


class IbstoreError(Exception):
    """A failed libibstore call: ``code`` (IBSTORE_E*, negative), ``name``
    (ibstore_strerror) and the handle's message naming what went wrong."""

    def __init__(self, code, message=""):
        self.code = code
        self.name = strerror(code)
        self.message = message or self.name
        super().__init__("%s (%s, %d)" % (self.message, self.name, code)
                         if message else "%s (%d)" % (self.name, code))


def _s(b):
    return b.decode("utf-8", "replace") if b is not None else None


def _enc(path):
    return os.fsencode(path)


def _struct_dict(s):
    out = {}
    for name, _t in s._fields_:
        v = getattr(s, name)
        if isinstance(v, ctypes.Structure):
            v = _struct_dict(v)
        elif isinstance(v, bytes):
            v = v.decode()
        out[name] = v
    return out


class _View:
    """Owner object of a numpy view: exposes the array interface and keeps
    the memory it shows (a _BatchMemory) alive; numpy keeps it as the view's
    base, and slices and torch tensors keep that base."""

    __slots__ = ("__array_interface__", "_owner")

    def __init__(self, owner, addr, shape, typestr, writable=False):
        self._owner = owner
        self.__array_interface__ = {
            "version": 3,
            # read-only: the library hands out const memory (but see Batch.images)
            "data": (addr, not writable),
            "shape": shape,
            "typestr": typestr,
        }


def _addr(ptr):
    return ctypes.cast(ptr, ctypes.c_void_p).value or 0


def _view(owner, ptr, shape, dtype, writable=False):
    dtype = np.dtype(dtype)
    addr = _addr(ptr)
    if addr == 0 or 0 in shape:
        return np.empty(shape, dtype)  # nothing to show; no pointer needed
    return np.asarray(_View(owner, addr, tuple(shape), dtype.str, writable))


def _close_dependent(obj, close_fn):
    """Closes a Dataset or Run after the loaders opened on it.  When the
    garbage collector finalizes a cycle, weak references are cleared before
    finalizers run, so a loader may still be open though the WeakSet is
    empty: then the close is left to that loader's own close()."""
    for ld in list(obj._loaders):
        ld.close()
    if obj._h is None:
        return
    if obj._nloaders > 0:
        obj._close_pending = True
        return
    close_fn(obj._h)
    obj._h = None


def _loader_gone(obj, close_fn):
    obj._nloaders -= 1
    if obj._close_pending and obj._nloaders == 0:
        obj._close_pending = False
        _close_dependent(obj, close_fn)


# ------------------------------------------------------------- handles ----

class _ClosedOnExit:
    """close() at the end of a ``with`` block and on garbage collection;
    the class defines close()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class _Closable(_ClosedOnExit):
    """What Dataset, Run and Loader share: a C handle closed once, by
    close(), a ``with`` block, or garbage collection."""

    _h = None

    @property
    def closed(self):
        return self._h is None


# ------------------------------------------------------------- Dataset ----

class Dataset(_Closable):
    """A published ibstore dataset, opened read-only.

    ``Dataset(path)`` opens it (ibstore_dataset_open checks the manifest,
    catalog digest, format version and every shard before returning).
    Reading calls may be made from several threads.
    """

    def __init__(self, path):
        self.path = str(path)
        self._h = None
        self._loaders = weakref.WeakSet()
        self._nloaders = 0  # open loaders, counted apart from the WeakSet (see below)
        self._close_pending = False
        h = ctypes.c_void_p()
        rc = lib.ibstore_dataset_open(_enc(path), ctypes.byref(h))
        if rc:
            msg = _s(lib.ibstore_dataset_errmsg(h)) if h.value else ""
            lib.ibstore_dataset_close(h)
            raise IbstoreError(rc, msg)
        self._h = h
        i = _lib.ibstore_info()
        self._check(_lib.dataset_info_get(h, i))
        self._info = i

    @classmethod
    def open(cls, path):
        return cls(path)

    def _handle(self):
        if self._h is None:
            raise IbstoreError(ESTATE, "dataset %s is closed" % self.path)
        return self._h

    def _check(self, rc):
        if rc:
            raise IbstoreError(rc, _s(lib.ibstore_dataset_errmsg(self._h)))
        return rc

    def close(self):
        """Closes the dataset (and first any loader opened on it)."""
        _close_dependent(self, lib.ibstore_dataset_close)

    def __len__(self):
        return int(self._info.samples)

    def __repr__(self):
        return "<ibstore.Dataset %r, %d samples%s>" % (
            self.path, self._info.samples, " (closed)" if self.closed else "")

    @property
    def info(self):
        """The dataset's description (ibstore_info) as a dict."""
        i = self._info
        d = _struct_dict(i)
        del d["size"]  # the struct's version (ibstore.h, Conventions), not the dataset's
        d["uuid"] = bytes(i.uuid).hex()
        d["codec_count"] = {"none": int(i.codec_count[0]), "lz4": int(i.codec_count[1])}
        return d

    @property
    def samples(self):
        return int(self._info.samples)

    @property
    def fixed_size(self):
        """Raw size shared by every sample, or 0."""
        return int(self._info.fixed_size)

    def locate(self, id):
        """Where sample ``id`` lives (no read): dict of ibstore_location."""
        loc = _lib.ibstore_location()
        self._check(lib.ibstore_dataset_locate(self._handle(), id, ctypes.byref(loc)))
        d = _struct_dict(loc)
        d["codec"] = _s(lib.ibstore_codec_name(loc.codec))
        return d

    def read_array(self, id, out=None):
        """Sample ``id`` (checked and decoded) as a new uint8 array, and its label."""
        h = self._handle()
        if out is None:
            loc = _lib.ibstore_location()
            self._check(lib.ibstore_dataset_locate(h, id, ctypes.byref(loc)))
            out = np.empty(loc.size, np.uint8)
        elif out.dtype != np.uint8 or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be a writeable contiguous uint8 array")
        size = ctypes.c_size_t()
        label = ctypes.c_int32()
        self._check(lib.ibstore_dataset_read(h, id, out.ctypes.data_as(ctypes.c_void_p),
                                             out.nbytes, ctypes.byref(size), ctypes.byref(label)))
        return out[:size.value], label.value

    def read(self, id):
        """Sample ``id`` as ``(bytes, label)``; label is NO_LABEL when it has none."""
        arr, label = self.read_array(id)
        return arr.tobytes(), label

    def find_key(self, key):
        """Id of the sample with string key ``key``; IbstoreError ENOTFOUND if none."""
        out = ctypes.c_uint64()
        self._check(lib.ibstore_dataset_find_key(self._handle(), key.encode(), ctypes.byref(out)))
        return out.value

    def key(self, id):
        """Key of sample ``id``, or None when it has none."""
        out = ctypes.c_char_p()
        self._check(lib.ibstore_dataset_key(self._handle(), id, ctypes.byref(out)))
        return _s(out.value)

    def class_name(self, label):
        """Recorded name of ``label``, or None."""
        return _s(lib.ibstore_dataset_class_name(self._handle(), label))

    def class_names(self):
        """{label: name} for labels 0 .. info['labels']-1 that have a name
        (the C API cannot enumerate names, so other labels are not listed)."""
        out = {}
        for label in range(int(self._info.labels)):
            name = self.class_name(label)
            if name is not None:
                out[label] = name
        return out

    def attr(self, name, default=None):
        """Value of attribute ``name`` (e.g. "shape", "source"), or ``default``."""
        v = lib.ibstore_dataset_attr(self._handle(), name.encode())
        return _s(v) if v is not None else default

    def shard_path(self, shard):
        return _s(lib.ibstore_dataset_shard_path(self._handle(), shard))

    def verify(self, stop_after=None):
        """Reads and checks every record and shard digest.  Returns
        ``(ok, problems, stats)``: problems is a list of dicts (code, name,
        shard, offset, id, message); ``stop_after`` stops after that many."""
        problems = []

        def cb(p, _ctx):
            p = p.contents
            problems.append({
                "code": p.code, "name": strerror(p.code),
                "shard": None if p.shard == 0xFFFFFFFF else p.shard,
                "offset": None if p.offset == 2 ** 64 - 1 else p.offset,
                "id": None if p.id == 2 ** 64 - 1 else p.id,
                "message": _s(p.message),
            })
            return 1 if stop_after is not None and len(problems) >= stop_after else 0

        cfun = _lib.VERIFY_CB(cb)
        st = _lib.ibstore_verify_stats()
        rc = lib.ibstore_dataset_verify(self._handle(), cfun, None, ctypes.byref(st))
        if rc not in (OK, ECORRUPT):
            self._check(rc)
        return rc == OK, problems, _struct_dict(st)

    def evict(self):
        """Drops the dataset's shards from the page cache (cold-cache runs)."""
        self._check(lib.ibstore_dataset_evict(self._handle()))


# ----------------------------------------------------------------- Run ----

class EpochInfo:
    """ibstore_epoch_info: this rank's slice of an epoch, known before any I/O."""

    __slots__ = ("epoch", "samples", "batches", "cursor", "plan")

    def __init__(self, c):
        self.epoch = int(c.epoch)
        self.samples = int(c.samples)   # entries of this rank's slice (incl. padding)
        self.batches = int(c.batches)   # batches of the slice
        self.cursor = int(c.cursor)     # batches already reported (resume point)
        self.plan = _struct_dict(c.plan)  # global plan statistics

    @property
    def remaining(self):
        """Batches the loader will serve (batches - cursor)."""
        return self.batches - self.cursor

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __repr__(self):
        return "EpochInfo(%r)" % self.as_dict()


def _prune_opts(base, policy, mode, ratio, delta, epochs, seed, ema):
    p = base
    if policy is not None:
        p.policy = _choice(POLICIES, policy, "policy")
    if mode is not None:
        p.mode = _choice(MODES, mode, "mode")
    if ratio is not None:
        p.ratio = float(ratio)
    if delta is not None:
        p.delta = float(delta)
    if epochs is not None:
        p.epochs = int(epochs)
    if seed is not None:
        p.seed = int(seed)
    if ema is not None:
        p.ema = float(ema)
    return p


def _config_dict(o):
    return {
        "policy": _name_of(POLICIES, o.prune.policy), "mode": _name_of(MODES, o.prune.mode),
        "ratio": o.prune.ratio, "delta": o.prune.delta, "epochs": o.prune.epochs,
        "seed": o.prune.seed, "ema": o.prune.ema, "samples": o.samples,
        "batch_size": o.batch_size, "drop_last": bool(o.drop_last), "rank": o.rank,
        "world": o.world, "slice": _name_of(SLICES, o.slice),
        "checkpoint_every": o.checkpoint_every,
    }


def merge_run(base, out_path):
    """Writes the logical state of the data-parallel job at ``base`` (its
    newest complete set of per-rank files, merged as an elastic resume
    would) as a one-rank run state at ``out_path`` (which must not exist);
    returns (world, generation) of the set (ibstore_run_merge)."""
    world, gen = _lib.c_u32(), _lib.c_u32()
    msg = ctypes.create_string_buffer(1024)
    rc = lib.ibstore_run_merge(_enc(base), _enc(out_path), ctypes.byref(world),
                               ctypes.byref(gen), msg, len(msg))
    if rc:
        raise IbstoreError(rc, _s(msg.value))
    return int(world.value), int(gen.value)


class Run(_Closable):
    """A training run's state file (scores, epoch, cursor, statistics).

    ``Run(path)`` opens an existing run with its stored configuration.
    ``Run(path, samples=N, epochs=C, ...)`` (or :meth:`create`) opens it,
    creating it from the options when it does not exist; when it exists the
    options must agree with the stored ones (IbstoreError EMISMATCH names the
    first difference).  The file is locked: one opener at a time.  A run is
    used by one thread at a time, and not directly while a Loader is open on
    it (reading ``config``/``info``/``scores`` aside).

    ``elastic=True`` (options required): ``path`` is the base path of a
    data-parallel job's per-rank files, and this is rank ``rank`` of
    ``world`` (ibstore_run_open_elastic): a job stopped on another number
    of ranks resumes at the first plan position all its ranks consumed,
    with every score.  ``path`` is then the file the library chose and
    ``base`` the job's path.
    """

    def __init__(self, path, samples=None, epochs=None, *, batch_size=None, drop_last=None,
                 policy=None, mode=None, ratio=None, delta=None, seed=None, ema=None,
                 rank=None, world=None, slice=None, checkpoint_every=None, elastic=False):
        self.path = self.base = str(path)
        self._h = None
        self._loaders = weakref.WeakSet()
        self._nloaders = 0  # open loaders, counted apart from the WeakSet (see below)
        self._close_pending = False
        given = dict(samples=samples, epochs=epochs, batch_size=batch_size, drop_last=drop_last,
                     policy=policy, mode=mode, ratio=ratio, delta=delta, seed=seed, ema=ema,
                     rank=rank, world=world, slice=slice, checkpoint_every=checkpoint_every)
        optp = None
        if any(v is not None for v in given.values()):
            o = _lib.ibstore_run_opts()
            _lib.run_opts_init(o)
            _prune_opts(o.prune, policy, mode, ratio, delta, epochs, seed, ema)
            if samples is not None:
                o.samples = int(samples)
            if batch_size is not None:
                o.batch_size = int(batch_size)
            if drop_last is not None:
                o.drop_last = int(bool(drop_last))
            if rank is not None:
                o.rank = int(rank)
            if world is not None:
                o.world = int(world)
            if slice is not None:
                o.slice = _choice(SLICES, slice, "slice mode")
            if checkpoint_every is not None:
                o.checkpoint_every = int(checkpoint_every)
            optp = ctypes.byref(o)
        h = ctypes.c_void_p()
        if elastic:
            rc = lib.ibstore_run_open_elastic(_enc(path), optp, ctypes.byref(h))
        else:
            rc = lib.ibstore_run_open(_enc(path), optp, ctypes.byref(h))
        if rc:
            msg = _s(lib.ibstore_run_errmsg(h)) if h.value else ""
            lib.ibstore_run_close(h)
            raise IbstoreError(rc, msg)
        self._h = h
        self.path = _s(lib.ibstore_run_file(h))

    @classmethod
    def open(cls, path):
        """Opens an existing run with its stored configuration."""
        return cls(path)

    @classmethod
    def create(cls, path, samples, epochs, **opts):
        """Opens the run at ``path``, creating it from these options if missing."""
        return cls(path, samples, epochs, **opts)

    def _handle(self):
        if self._h is None:
            raise IbstoreError(ESTATE, "run %s is closed" % self.path)
        return self._h

    def _check(self, rc):
        if rc:
            raise IbstoreError(rc, _s(lib.ibstore_run_errmsg(self._h)))
        return rc

    def _direct(self):
        h = self._handle()
        if any(not ld.closed for ld in self._loaders):
            raise IbstoreError(ESTATE, "run %s is in use by an open Loader" % self.path)
        return h

    def close(self):
        """Closes the run (and first any loader opened on it)."""
        _close_dependent(self, lib.ibstore_run_close)

    def __repr__(self):
        return "<ibstore.Run %r%s>" % (self.path, " (closed)" if self.closed else "")

    @property
    def config(self):
        o = _lib.ibstore_run_opts()
        self._check(_lib.run_config_get(self._handle(), o))
        return _config_dict(o)

    @property
    def samples(self):
        return self.config["samples"]

    def info(self):
        i = _lib.ibstore_run_info()
        self._check(_lib.run_info_get(self._handle(), i))
        d = _struct_dict(i)
        del d["size"]  # the struct's version (ibstore.h, Conventions)
        d["in_epoch"] = bool(d["in_epoch"])
        return d

    def epoch_stats(self, epoch):
        """Statistics of finished epoch ``epoch`` (dict), or None when it has none."""
        s = _lib.ibstore_epoch_stats()
        rc = lib.ibstore_run_epoch_stats_get(self._handle(), epoch, ctypes.byref(s))
        if rc == ENOTFOUND:
            return None
        self._check(rc)
        return _struct_dict(s)

    def scores(self):
        """A copy of the current scores (float32, NaN = never seen)."""
        n = ctypes.c_uint64()
        p = lib.ibstore_run_scores(self._handle(), ctypes.byref(n))
        if not p:
            self._check(EINVAL)
        if n.value == 0:
            return np.empty(0, np.float32)
        return np.ctypeslib.as_array(p, shape=(n.value,)).copy()

    # Direct use (without a Loader): the plan and slice, and reporting.
    def epoch_begin(self, epoch):
        info = _lib.ibstore_epoch_info()
        self._check(lib.ibstore_run_epoch_begin(self._direct(), epoch, ctypes.byref(info)))
        return EpochInfo(info)

    def batch(self, b):
        """Batch ``b`` of this rank's slice: (ids uint64, weights float32), copies."""
        ids = ctypes.POINTER(ctypes.c_uint64)()
        w = ctypes.POINTER(ctypes.c_float)()
        n = ctypes.c_size_t()
        self._check(lib.ibstore_run_batch(self._direct(), b, ctypes.byref(ids), ctypes.byref(w),
                                          ctypes.byref(n)))
        if n.value == 0:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        return (np.ctypeslib.as_array(ids, shape=(n.value,)).copy(),
                np.ctypeslib.as_array(w, shape=(n.value,)).copy())

    def slice(self):
        """This rank's whole slice of the current epoch (the batches back to
        back, padding weighted PADDING_WEIGHT): (ids uint64, weights
        float32), copies."""
        ids = ctypes.POINTER(ctypes.c_uint64)()
        w = ctypes.POINTER(ctypes.c_float)()
        n = ctypes.c_uint64()
        self._check(lib.ibstore_run_slice(self._direct(), ctypes.byref(ids), ctypes.byref(w),
                                          ctypes.byref(n)))
        if n.value == 0:
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        return (np.ctypeslib.as_array(ids, shape=(n.value,)).copy(),
                np.ctypeslib.as_array(w, shape=(n.value,)).copy())

    def plan(self):
        """The current epoch's global plan: (ids, weights, stats), copies."""
        p = lib.ibstore_run_plan(self._handle())
        if not p:
            raise IbstoreError(ESTATE, "no epoch has begun")
        p = p.contents
        n = int(p.len)
        if n == 0:
            return np.empty(0, np.uint64), np.empty(0, np.float32), _struct_dict(p.stats)
        return (np.ctypeslib.as_array(p.ids, shape=(n,)).copy(),
                np.ctypeslib.as_array(p.weights, shape=(n,)).copy(), _struct_dict(p.stats))

    def report(self, ids, losses):
        """Records unweighted losses by id (all-or-nothing).  Allowed while a
        Loader is open, from its consumer thread between loader calls
        (other ranks' losses after an all-gather)."""
        self._report(self._handle(), ids, losses)

    def _report(self, h, ids, losses):
        ids = np.ascontiguousarray(ids, dtype=np.uint64)
        losses = np.ascontiguousarray(losses, dtype=np.float32)
        if ids.shape != losses.shape or ids.ndim != 1:
            raise ValueError("ids and losses must be 1-D of the same length")
        self._check(lib.ibstore_run_report(h, ids.ctypes.data, losses.ctypes.data, ids.size))

    def advance(self, nbatches=1):
        self._check(lib.ibstore_run_advance(self._direct(), nbatches))

    def checkpoint(self):
        self._check(lib.ibstore_run_checkpoint(self._direct()))

    def epoch_end(self, bytes_read=None, bytes_skipped=0, seconds=0.0):
        io = None
        if bytes_read is not None:
            io = ctypes.byref(_lib.ibstore_epoch_io(bytes_read, bytes_skipped, seconds))
        self._check(lib.ibstore_run_epoch_end(self._direct(), io))


# -------------------------------------------------------------- Loader ----

class _BatchMemory:
    """A C batch taken from a loader (the ibstore_batch pointer and its
    fields), held by its Batch until released and by every view of it.  Its
    finalizer gives the batch back to the library, so that happens once
    nothing can read the memory any more, never earlier."""

    __slots__ = ("loader", "p", "c")

    def __init__(self, loader, p):
        self.loader = loader  # a strong reference: the release needs the handle
        self.p = p
        self.c = p.contents

    def __del__(self):
        try:
            self.loader._give_back(self.p)
        except Exception:  # interpreter shutdown: the process gives it back
            pass


class Batch:
    """One batch of an epoch (ibstore_batch): numpy views of library memory.

    Attributes: ``epoch``, ``index``, ``n`` and the read-only arrays ``ids``
    (uint64), ``labels`` (int32, NO_LABEL for none), ``weights`` (float32;
    0 for padding), ``sizes`` (uint32), ``offsets`` (uint64), ``data``
    (uint8, the arena), ``skipped_ids``.  Views stay valid as long as they
    exist, after :meth:`release` too: they keep the batch's memory, which the
    library gets back once the Batch is released and its last view is gone
    (see the module documentation).  After the release the Batch's own
    attributes raise IbstoreError (ESTATE).  Use ``with batch:`` or call
    ``release()`` when done; drop the views when done with them.
    """

    __slots__ = ("_loader", "_mem", "epoch", "index", "n", "sample_size", "data_size",
                 "__weakref__")

    def __init__(self, loader, mem):
        self._loader = loader
        self._mem = mem
        c = mem.c
        self.epoch = int(c.epoch)
        self.index = int(c.index)
        self.n = int(c.n)
        self.sample_size = int(c.sample_size)
        self.data_size = int(c.data_size)

    @property
    def released(self):
        return self._mem is None

    def _live(self):
        """The batch's memory, held by the caller's local variable from here
        on: a release on another thread cannot free it under the caller."""
        m = self._mem
        if m is None:
            raise IbstoreError(ESTATE, "batch %d of epoch %d was released" %
                               (self.index, self.epoch))
        return m

    def __len__(self):
        return self.n

    def _field(self, name, shape, dtype):
        m = self._live()
        return _view(m, getattr(m.c, name), shape, dtype)

    @property
    def ids(self):
        return self._field("ids", (self.n,), np.uint64)

    @property
    def labels(self):
        return self._field("labels", (self.n,), np.int32)

    @property
    def weights(self):
        return self._field("weights", (self.n,), np.float32)

    @property
    def sizes(self):
        return self._field("sizes", (self.n,), np.uint32)

    @property
    def offsets(self):
        return self._field("offsets", (self.n,), np.uint64)

    @property
    def data(self):
        return self._field("data", (self.data_size,), np.uint8)

    @property
    def data_address(self):
        """The C pointer of the data arena (for checks of zero copy)."""
        return _addr(self._live().c.data)

    @property
    def skipped_ids(self):
        m = self._live()
        return _view(m, m.c.skipped_ids, (int(m.c.n_skipped),), np.uint64)

    def array(self):
        """The arena as a dense [n, sample_size] uint8 view (fixed-size samples)."""
        m = self._live()
        if not m.c.sample_size:
            raise ValueError("samples of this batch differ in size: no dense array "
                             "(use sample(i) or data/offsets/sizes)")
        return _view(m, m.c.data, (self.n, int(m.c.sample_size)), np.uint8)

    @property
    def shape(self):
        """The batch's tensor shape with the image stage ([n, H, W, 3] or
        [n, 3, H, W]), else None."""
        m = self._live()
        return tuple(int(m.c.shape[i]) for i in range(int(m.c.ndim))) or None

    def images(self, writable=False):
        """The image stage's dense tensor as a numpy view (uint8 or float32,
        shape :attr:`shape`).  ``writable=True`` allows changes in place:
        the loader wrote the tensor for this batch alone and never reads it
        again (ibstore.torch.Images hands PyTorch such a view)."""
        m = self._live()
        if not m.c.ndim:
            raise ValueError("this loader has no image stage (Loader(images=...))")
        shape = tuple(int(m.c.shape[i]) for i in range(int(m.c.ndim)))
        dtype = np.float32 if int(m.c.dtype) == DTYPES["float32"] else np.uint8
        return _view(m, m.c.data, shape, dtype, writable)

    def sample(self, i):
        """A uint8 view of sample i's decoded bytes."""
        m = self._live()
        if not 0 <= i < self.n:
            raise IndexError(i)
        off, size = int(m.c.offsets[i]), int(m.c.sizes[i])
        return _view(m, m.c.data, (self.data_size,), np.uint8)[off:off + size]

    def copy(self):
        """Owned copies of the arrays: a dict that outlives the release."""
        self._live()
        d = {k: np.array(getattr(self, k)) for k in
             ("ids", "labels", "weights", "sizes", "offsets", "data", "skipped_ids")}
        d.update(epoch=self.epoch, index=self.index, n=self.n, sample_size=self.sample_size)
        return d

    def report(self, losses):
        """Reports this batch's per-sample unweighted losses (Loader.report)."""
        self._loader.report(self, losses)

    def release(self):
        """Ends this Batch's access to the batch (its attributes raise
        IbstoreError ESTATE from now on).  The library gets the memory back
        now when no view of it exists, else when the last view is gone.
        Idempotent; any thread."""
        m, self._mem = self._mem, None
        if m is not None:
            self._loader._forget(self)
        # dropping m gives the memory back here unless a view still holds it

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        try:
            self.release()
        except Exception:
            pass

    def __repr__(self):
        return "<ibstore.Batch epoch %d index %d n %d%s>" % (
            self.epoch, self.index, self.n, " (released)" if self._mem is None else "")


class Loader(_Closable):
    """Pruned epochs of ``dataset`` under ``run``, streamed by libibstore.

    Options (ibstore_loader_opts; None keeps the library default):
    batch_size / drop_last (must equal the run's), prefetch, queue_depth,
    threads, backend ('auto'|'uring'|'pread'|'mmap'), direct, order
    ('random'|'locality'), verify, corrupt ('fail'|'skip'), gap, max_read,
    budget, on_read (callable(shard, offset, length), called from the I/O
    thread for every read request), images (:func:`image_opts`: every
    sample decoded and augmented in the library's decode threads; batches
    are then dense image tensors, :meth:`Batch.images`).

    Per epoch: ``info = loader.epoch_begin(e)``, then batches from
    :meth:`next` (None at the end) or by iterating the loader, report
    losses with :meth:`report`, release each batch, then :meth:`epoch_end`.
    All calls from one thread, except Batch.release (and dropping views,
    which may give memory back on any thread).
    """

    def __init__(self, dataset, run, *, batch_size=None, drop_last=None, prefetch=None,
                 queue_depth=None, threads=None, backend=None, direct=None, order=None,
                 verify=None, corrupt=None, gap=None, max_read=None, budget=None, on_read=None,
                 images=None):
        self._h = None
        self._held = set()  # addresses of C batches not yet given back
        self._batches = weakref.WeakSet()  # Batch objects not yet released
        # Serializes ibstore_loader_release (run by _BatchMemory finalizers,
        # on any thread) with ibstore_loader_close, which the C API requires.
        # Reentrant: the garbage collector may run such a finalizer on the
        # thread that holds the lock, from an allocation inside its block.
        self._lock = threading.RLock()
        self.dataset = dataset
        self.run = run
        self.info = None
        o = _lib.ibstore_loader_opts()
        _lib.loader_opts_init(o)
        for name, v in (("batch_size", batch_size), ("prefetch", prefetch),
                        ("queue_depth", queue_depth), ("threads", threads), ("gap", gap),
                        ("max_read", max_read), ("budget", budget)):
            if v is not None:
                setattr(o, name, int(v))
        if drop_last is not None:
            o.drop_last = int(bool(drop_last))
        if direct is not None:
            o.direct = int(bool(direct))
        if verify is not None:
            o.verify = int(bool(verify))
        if backend is not None:
            o.backend = _choice(BACKENDS, backend, "backend")
        if order is not None:
            o.order = _choice(ORDERS, order, "order")
        if corrupt is not None:
            o.corrupt = _choice(CORRUPT, corrupt, "corrupt policy")
        self._on_read = None
        if on_read is not None:
            def trampoline(_ctx, shard, offset, length, f=on_read):
                try:
                    f(shard, offset, length)
                except Exception:  # never unwind into the I/O thread
                    pass
            self._on_read = _lib.ON_READ(trampoline)  # kept alive as long as the loader
            o.on_read = self._on_read
        self.images = images  # an ibstore_image_opts (image_opts()); the library copies it
        if images is not None:
            o.images = ctypes.cast(ctypes.pointer(images), ctypes.c_void_p)
        h = ctypes.c_void_p()
        rc = lib.ibstore_loader_open(dataset._handle(), run._handle(), ctypes.byref(o),
                                     ctypes.byref(h))
        if rc:
            msg = _s(lib.ibstore_loader_errmsg(h)) if h.value else ""
            lib.ibstore_loader_close(h)
            raise IbstoreError(rc, msg)
        self._h = h
        dataset._loaders.add(self)
        run._loaders.add(self)
        dataset._nloaders += 1
        run._nloaders += 1

    def _handle(self):
        if self._h is None:
            raise IbstoreError(ESTATE, "the loader is closed")
        return self._h

    def _check(self, rc):
        if rc:
            raise IbstoreError(rc, _s(lib.ibstore_loader_errmsg(self._h)))
        return rc

    def close(self):
        """Releases every Batch not yet released, then closes the loader.
        Batches whose views are still alive keep their memory (the library
        detaches them at the close); it goes back when their last view does."""
        if self._h is None:
            return
        with self._lock:
            batches = list(self._batches)
        for b in batches:
            b.release()  # outside the lock: a finalizer may take it
        with self._lock:
            # A finalizer the collector runs inside this block (on this
            # thread: the lock is reentrant) passes the open handle before
            # the C close, and after it the closed one or NULL, both of which
            # ibstore_loader_release accepts for the batch the close detached.
            lib.ibstore_loader_close(self._h)
            self._h = None
        _loader_gone(self.dataset, lib.ibstore_dataset_close)
        _loader_gone(self.run, lib.ibstore_run_close)

    def epoch_begin(self, epoch):
        """Begins (or resumes) epoch ``epoch``; returns its EpochInfo."""
        info = _lib.ibstore_epoch_info()
        self._check(lib.ibstore_loader_epoch_begin(self._handle(), epoch, ctypes.byref(info)))
        self.info = EpochInfo(info)
        return self.info

    def next(self):
        """The next Batch of the epoch, or None at its end."""
        p = ctypes.POINTER(_lib.ibstore_batch)()
        self._check(lib.ibstore_loader_next(self._handle(), ctypes.byref(p)))
        if not p:
            return None
        b = Batch(self, _BatchMemory(self, p))
        with self._lock:
            self._held.add(_addr(p))
            self._batches.add(b)
        return b

    def __iter__(self):
        """Yields the epoch's batches.  A batch not released by the time the
        next one is requested is released then; views of it stay valid and
        keep its memory until they are gone."""
        prev = None
        while True:
            if prev is not None:
                prev.release()
            b = self.next()
            if b is None:
                return
            prev = b
            yield b

    def _forget(self, batch):
        with self._lock:
            self._batches.discard(batch)

    def _give_back(self, p):
        """ibstore_loader_release of a batch nothing shows any more (the
        _BatchMemory finalizer); NULL handle once the loader is closed."""
        with self._lock:
            self._held.discard(_addr(p))
            lib.ibstore_loader_release(self._h, p)

    def release(self, batch):
        batch.release()

    @property
    def held(self):
        """Number of C batches taken and not yet given back to the library:
        Batches not yet released, and released ones whose views are still
        alive (also after close(); 0 once every view is gone)."""
        with self._lock:
            return len(self._held)

    def report(self, batch, losses):
        """Reports batch's per-sample unweighted losses (batch.n float32, in
        batch order) before it is released; non-finite losses are refused.
        Weight-0 entries (padding) are not recorded: their owning rank reports them."""
        m = batch._live()
        losses = np.ascontiguousarray(losses, dtype=np.float32).reshape(-1)
        if losses.size != batch.n:
            raise ValueError("%d losses for a batch of %d samples" % (losses.size, batch.n))
        self._check(lib.ibstore_loader_report(self._handle(), m.p,
                                              losses.ctypes.data_as(ctypes.c_void_p)))

    def report_ids(self, ids, losses):
        """Records losses of samples by id that this rank's batches did not
        carry (other ranks' samples after an all-gather) in the loader's run
        (ibstore_run_report, which the header allows beside an open loader
        from the consumer thread)."""
        self._handle()
        self.run._report(self.run._handle(), ids, losses)

    def epoch_end(self):
        """Ends the epoch (every batch must have been taken); records its
        statistics in the run and commits."""
        self._check(lib.ibstore_loader_epoch_end(self._handle()))

    def stats(self):
        s = _lib.ibstore_loader_stats()
        self._check(_lib.loader_stats_get(self._handle(), s))
        d = _struct_dict(s)
        del d["size"]  # the struct's version (ibstore.h, Conventions)
        d["direct"] = bool(d["direct"])
        d["registered"] = bool(d["registered"])
        return d

