"""A Batch's numpy views never show freed memory: they keep the batch's
library memory alive until the last of them is gone, past the Batch's
release, the loader's automatic release on the next step, and the close of
the loader, run and dataset.

Run: /usr/bin/python3 -m pytest -q python/tests/test_views.py
"""
import gc
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from conftest import PYDIR

import ibstore
from ibstore import IbstoreError

# Opens a loader on a fixed-size dataset, keeps views of epoch 0's first
# batch (and a slice and a torch tensor of them) while the loop runs on
# through epoch 0 and epoch 1 under a small budget, so the batch's memory
# would be freed and its arena reused; with "close" the loader, run and
# dataset are closed while the views are alive.  Then every kept view must
# equal what a fresh Dataset reads for those ids.  Prints "ok" and the
# loader's held count after the views are dropped.
KEEP_VIEWS = r"""
import gc, sys, warnings
import numpy as np
import torch
import ibstore

path, run_path, how = sys.argv[1:4]
ds = ibstore.Dataset(path)
run = ibstore.Run(run_path, samples=len(ds), epochs=2, batch_size=50, ratio=0.5)
ld = ibstore.Loader(ds, run, threads=1, budget=1 << 16, prefetch=2)

ld.epoch_begin(0)
it = iter(ld)
b = next(it)
ids = np.array(b.ids)  # copies, read before anything was released
labels = np.array(b.labels)
kept = {
    "array": b.array(), "ids": b.ids, "labels": b.labels, "weights": b.weights,
    "sizes": b.sizes, "offsets": b.offsets, "data": b.data,
    "slice": b.array()[5:20, 7:], "sample": b.sample(3),
}
with warnings.catch_warnings():  # torch warns that the view is read-only
    warnings.simplefilter("ignore", UserWarning)
    kept["tensor"] = torch.from_numpy(b.array())
del b
for epoch in (0, 1):
    if epoch:
        ld.epoch_begin(epoch)
    for other in (it if epoch == 0 else ld):
        assert other.array().sum() >= 0  # touch the arena
        ld.report(other, np.ones(other.n, np.float32))
    ld.epoch_end()
if how == "close":
    ld.close()
    run.close()
    ds.close()
    assert ld.closed and ds.closed
gc.collect()

with ibstore.Dataset(path) as fresh:
    expect = np.stack([fresh.read_array(int(i))[0] for i in ids])
    expect_labels = np.array([fresh.read_array(int(i))[1] for i in ids], np.int32)
n, size = expect.shape
bad = []
def check(name, got, want):
    if not np.array_equal(np.asarray(got), want):
        bad.append(name)
check("ids", kept["ids"], ids)
check("labels", kept["labels"], labels)
check("labels vs dataset", labels, expect_labels)
check("weights", kept["weights"], np.ones(n, np.float32))
check("sizes", kept["sizes"], np.full(n, size, np.uint32))
check("offsets", kept["offsets"], np.arange(n, dtype=np.uint64) * size)
check("array", kept["array"], expect)
check("data", kept["data"], expect.ravel())
check("slice", kept["slice"], expect[5:20, 7:])
check("sample", kept["sample"], expect[3])
check("tensor", kept["tensor"].numpy(), expect)
assert not bad, "views that changed: %s" % ", ".join(bad)

del kept, check
gc.collect()
print("ok", ld.held)
"""


def keep_views(synth, tmp_path, how):
    env = dict(os.environ, MALLOC_PERTURB_="165",  # glibc fills freed memory with 0xa5
               PYTHONPATH=PYDIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", KEEP_VIEWS, synth[0],
                           str(tmp_path / "run.state"), how],
                          capture_output=True, text=True, timeout=300, env=env)


def test_views_kept_past_release_and_next_epoch_show_their_samples(synth, tmp_path):
    r = keep_views(synth, tmp_path, "open")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["ok", "0"]  # the memory went back once the views did


def test_views_kept_past_closing_loader_run_and_dataset_show_their_samples(synth, tmp_path):
    r = keep_views(synth, tmp_path, "close")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["ok", "0"]


@pytest.fixture
def loader(synth, tmp_path):
    ds = ibstore.Dataset(synth[0])
    run = ibstore.Run(tmp_path / "run", samples=len(ds), epochs=1, batch_size=100)
    ld = ibstore.Loader(ds, run)
    ld.epoch_begin(0)
    yield ld
    ld.close()
    run.close()
    ds.close()


def test_held_counts_batches_until_released_and_their_views_gone(loader):
    b = loader.next()
    a = b.array()
    part = a[10:20]
    ids = b.ids
    assert loader.held == 1
    b.release()
    assert b.released and loader.held == 1  # views still show the memory
    del a
    gc.collect()
    assert loader.held == 1  # part's base is the same memory
    del part, ids
    gc.collect()
    assert loader.held == 0

    b = loader.next()
    assert loader.held == 1
    b.release()  # no view: the memory goes back at once
    assert loader.held == 0


def test_views_of_many_released_batches_do_not_accumulate(loader):
    """An iteration that keeps no view holds at most the current batch."""
    most = 0
    for b in loader:
        x = b.array().astype(np.float32)  # a copy, as a training step makes
        assert x.shape == (b.n, 120)
        most = max(most, loader.held)
    assert most == 1 and loader.held == 0


def test_dropping_the_batch_object_keeps_its_views_valid(synth, loader):
    images = synth[1]
    b = loader.next()
    a = b.array()
    ids = b.ids.astype(np.int64)
    del b
    gc.collect()  # the Batch is released, its memory is not
    assert loader.held == 1
    assert np.array_equal(a, images[ids].reshape(len(ids), -1))
    del a
    gc.collect()
    assert loader.held == 0


def test_released_batch_refuses_access(loader):
    b = loader.next()
    v = b.data
    b.release()
    for get in (lambda: b.ids, lambda: b.labels, lambda: b.weights, lambda: b.sizes,
                lambda: b.offsets, lambda: b.data, lambda: b.skipped_ids, b.array,
                lambda: b.sample(0), b.copy, lambda: b.data_address,
                lambda: loader.report(b, np.zeros(b.n, np.float32))):
        with pytest.raises(IbstoreError) as e:
            get()
        assert e.value.code == ibstore.ESTATE
    b.release()  # idempotent
    loader.release(b)
    assert b.released and "released" in repr(b)
    assert v.size == 12000 and loader.held == 1
    del v
    gc.collect()
    assert loader.held == 0


def test_with_block_releases_and_views_outlive_it(synth, loader):
    images = synth[1]
    with loader.next() as b:
        a = b.array()
        ids = b.ids.astype(np.int64)
        assert b.data_address == a.ctypes.data  # zero copy
    assert b.released
    with pytest.raises(IbstoreError) as e:
        b.ids
    assert e.value.code == ibstore.ESTATE
    assert loader.held == 1 and np.array_equal(a, images[ids].reshape(len(ids), -1))
    del a
    gc.collect()
    assert loader.held == 0


def test_close_releases_batches_and_frees_memory_when_views_go(synth, tmp_path):
    images = synth[1]
    ds = ibstore.Dataset(synth[0])
    run = ibstore.Run(tmp_path / "run", samples=len(ds), epochs=1, batch_size=100)
    ld = ibstore.Loader(ds, run)
    ld.epoch_begin(0)
    viewed, plain = ld.next(), ld.next()
    a = viewed.array()
    ids = viewed.ids.astype(np.int64)
    assert ld.held == 2
    ds.close()  # closes the loader first
    assert ld.closed and viewed.released and plain.released
    with pytest.raises(IbstoreError) as e:
        plain.data
    assert e.value.code == ibstore.ESTATE
    assert ld.held == 1  # the viewed batch, detached from the closed loader
    assert np.array_equal(a, images[ids].reshape(len(ids), -1))
    del a
    gc.collect()
    assert ld.held == 0
    run.close()


def test_views_released_from_another_thread(loader):
    """The memory may go back on any thread (here with the loader still open)."""
    import threading
    b = loader.next()
    a = b.array()
    b.release()
    assert loader.held == 1
    t = threading.Thread(target=lambda box=[a]: box.clear())
    del a
    t.start()
    t.join()
    gc.collect()
    assert loader.held == 0
    assert loader.next().n == 100


def malloc_in_use():
    """Bytes glibc's malloc has handed out and not got back (mallinfo2)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]
    try:
        f = ctypes.CDLL(None).mallinfo2
    except AttributeError:
        pytest.skip("no mallinfo2 (glibc 2.33 or later)")
    f.restype = MallInfo2
    m = f()
    return m.uordblks + m.hblkhd


def test_memory_of_a_closed_loader_is_freed_when_the_last_view_goes(synth, tmp_path):
    """Not only counted: the library frees the detached batch (a NULL-handle
    release) once the view that outlived the close is dropped."""
    ds = ibstore.Dataset(synth[0])
    run = ibstore.Run(tmp_path / "run", samples=len(ds), epochs=1, batch_size=500)
    ld = ibstore.Loader(ds, run)
    ld.epoch_begin(0)
    a = ld.next().array()  # the Batch object is gone at once, released
    ld.close()
    run.close()
    ds.close()
    gc.collect()
    assert ld.held == 1 and a.nbytes == 500 * 120
    before = malloc_in_use()
    del a
    gc.collect()
    freed = before - malloc_in_use()
    assert ld.held == 0
    assert freed >= 500 * 120  # the arena, besides the per-sample arrays


def test_torch_layer_holds_library_memory_only_while_tensors_show_it(synth, tmp_path):
    """The default decode copies: after update() nothing holds the batch.  A
    decode callable returning a tensor over a view keeps each batch's memory
    exactly as long as that tensor lives, with the right samples."""
    torch = pytest.importorskip("torch")
    import ibstore.torch
    images = synth[1]
    with ibstore.torch.Loader(synth[0], batch_size=100, num_epochs=2, prune_ratio=0.5,
                              run=tmp_path / "copy.state") as loader:
        for x, y in loader.epoch(0):
            assert loader._loader.held == 1
            loader.update(torch.ones(len(y)))
            assert loader._loader.held == 0

    def as_view(batch):
        with warnings.catch_warnings():  # torch warns that the view is read-only
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(batch.array())

    with ibstore.torch.Loader(synth[0], batch_size=100, num_epochs=1, prune_ratio=0.5,
                              run=tmp_path / "view.state", decode=as_view) as loader:
        kept = []
        for x, y in loader.epoch(0):
            ids = loader.batch.ids.astype(np.int64)
            loader.update(torch.ones(len(y)))
            kept.append((x, ids))
        assert loader._loader.held == 10 and loader.batch is None
        for x, ids in kept:
            assert np.array_equal(x.numpy(), images[ids].reshape(len(ids), -1))
        del kept, x
        gc.collect()
        assert loader._loader.held == 0
