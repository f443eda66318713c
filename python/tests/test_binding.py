"""Tests of the ctypes binding (ibstore) and the PyTorch layer (ibstore.torch).

Run: /usr/bin/python3 -m pytest -q python/tests
"""
import gc
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import PYDIR, REPO, pack

import ibstore
from ibstore import IbstoreError

torch = pytest.importorskip("torch")
import ibstore.torch  # noqa: E402  (after the importorskip)


def run_py(code, env=None, cwd=None):
    """Runs code in a fresh /usr/bin/python3 with only ``env`` (plus PATH)."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=e, cwd=cwd)


# ---------------------------------------------------------- library lookup ----

def test_lookup_env_nonexistent_names_places():
    missing = "/nonexistent/dir/libibstore.so"
    r = run_py("import ibstore", env={"PYTHONPATH": PYDIR, "IBSTORE_LIBRARY": missing})
    assert r.returncode != 0
    assert "LibraryNotFoundError" in r.stderr
    assert missing in r.stderr and "IBSTORE_LIBRARY" in r.stderr
    # an explicit choice is never replaced by another library silently
    assert "no other place was searched" in r.stderr


def test_lookup_error_and_order(tmp_path):
    """A copy of the package in <tmp>/repo/python: no library anywhere gives an
    error naming every place; then <repo>/build, then next to the package,
    then $IBSTORE_LIBRARY win, in that order."""
    real = ibstore.library_path
    repo = tmp_path / "repo"
    pkg = repo / "python" / "ibstore"
    shutil.copytree(os.path.join(PYDIR, "ibstore"), pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "libibstore.so*"))
    env = {"PYTHONPATH": str(repo / "python"), "LD_LIBRARY_PATH": ""}
    code = "import ibstore; print(ibstore.library_path)"

    r = run_py(code, env=env)
    assert r.returncode != 0
    err = r.stderr
    assert "LibraryNotFoundError" in err
    assert "next to the package: %s" % (pkg / "libibstore.so*") in err
    assert "meson build directory: %s" % (repo / "build" / "libibstore.so") in err
    assert "find_library('ibstore')" in err

    (repo / "build").mkdir()
    shutil.copy(real, repo / "build" / "libibstore.so")
    r = run_py(code, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(repo / "build" / "libibstore.so")

    shutil.copy(real, pkg / "libibstore.so.0")
    r = run_py(code, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(pkg / "libibstore.so.0")

    r = run_py(code, env=dict(env, IBSTORE_LIBRARY=real))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == real


def test_version():
    assert ibstore.version().startswith("0.1.")
    assert ibstore.strerror(ibstore.ECORRUPT) == ibstore.IbstoreError(ibstore.ECORRUPT).name


# ----------------------------------------------------------------- Dataset ----

def test_read_equals_idx_synthetic(synth):
    path, images, labels = synth
    with ibstore.Dataset(path) as ds:
        assert len(ds) == 1000
        info = ds.info
        assert info["samples"] == 1000 and info["fixed_size"] == 120
        assert ds.attr("shape") == "12x10" and ds.attr("source") == "idx"
        assert ds.attr("no-such-attr") is None
        for i in range(1000):
            data, label = ds.read(i)
            assert data == images[i].tobytes()
            assert label == labels[i]
        arr, label = ds.read_array(999)
        assert arr.dtype == np.uint8 and np.array_equal(arr, images[999].ravel())
        assert ds.locate(5)["size"] == 120
        assert ds.key(5) is None


def test_read_equals_idx_fmnist(fmnist):
    path, images, labels = fmnist
    with ibstore.Dataset(path) as ds:
        assert len(ds) == 10000 and ds.attr("shape") == "28x28"
        for i in range(0, 10000, 7):
            data, label = ds.read(i)
            assert data == images[i].tobytes() and label == labels[i]
        ok, problems, stats = ds.verify()
        assert ok and problems == [] and stats["records_checked"] == 10000


def test_keys_class_names_and_verify_problems(tmp_path):
    from PIL import Image
    src = tmp_path / "imgs"
    for cls in ("cat", "dog"):
        (src / cls).mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (5, 4), (k * 40, 10, 200)).save(src / cls / ("%d.png" % k))
    path = pack(["--from", "folder", str(src)], tmp_path / "folder.ibs")
    with ibstore.Dataset(path) as ds:
        assert ds.class_names() == {0: "cat", 1: "dog"}
        i = ds.find_key("dog/1.png")
        assert ds.key(i) == "dog/1.png"
        assert ds.read(i)[1] == 1
        with pytest.raises(IbstoreError) as e:
            ds.find_key("dog/none.png")
        assert e.value.code == ibstore.ENOTFOUND
        shard = ds.shard_path(0)
    # flip one payload byte: verify reports it, it does not raise
    loc = ibstore.Dataset(path).locate(2)
    with open(shard, "r+b") as f:
        f.seek(loc["payload_offset"] + 3)
        b = f.read(1)
        f.seek(loc["payload_offset"] + 3)
        f.write(bytes([b[0] ^ 0xFF]))
    with ibstore.Dataset(path) as ds:
        ok, problems, stats = ds.verify()
        assert not ok and any(p["id"] == 2 for p in problems)
        with pytest.raises(IbstoreError) as e:
            ds.read(2)
        assert e.value.code == ibstore.ECORRUPT and "2" in str(e.value)


def test_errors(tmp_path, synth):
    missing = str(tmp_path / "no-such.ibs")
    with pytest.raises(IbstoreError) as e:
        ibstore.Dataset(missing)
    assert e.value.code < 0 and e.value.message and missing in str(e.value)
    assert e.value.name == ibstore.strerror(e.value.code)

    with ibstore.Dataset(synth[0]) as ds:
        with pytest.raises(IbstoreError) as e:
            ds.read(1000)
        assert e.value.code == ibstore.ENOTFOUND
        with ibstore.Run(tmp_path / "r", samples=1000, epochs=2, batch_size=100):
            pass
        with pytest.raises(IbstoreError) as e:  # stored config differs
            ibstore.Run(tmp_path / "r", samples=1000, epochs=3, batch_size=100)
        assert e.value.code == ibstore.EMISMATCH and "epochs" in e.value.message
        with ibstore.Run(tmp_path / "r") as run:
            with pytest.raises(IbstoreError) as e:  # the file is locked
                ibstore.Run(tmp_path / "r")
            assert e.value.code == ibstore.ESTATE
            with pytest.raises(IbstoreError) as e:
                ibstore.Loader(ds, run, batch_size=64)
            assert e.value.code == ibstore.EMISMATCH
            with ibstore.Loader(ds, run) as ld:
                with pytest.raises(IbstoreError):
                    ld.next()  # no epoch has begun
                ld.epoch_begin(0)
                b = ld.next()
                with pytest.raises(IbstoreError) as e:
                    ld.report(b, np.full(b.n, np.nan, np.float32))
                assert e.value.code == ibstore.EINVAL
                with pytest.raises(ValueError):
                    ld.report(b, np.zeros(b.n + 1, np.float32))
                with pytest.raises(IbstoreError) as e:
                    run.epoch_begin(1)  # the loader owns the run's epochs now
                assert e.value.code == ibstore.ESTATE
                run.report([7], [0.25])  # reports are allowed beside it
                assert run.scores()[7] == np.float32(0.25)
                with pytest.raises(IbstoreError) as e:
                    run.report([1000], [0.5])  # id past the end
                assert e.value.code == ibstore.EINVAL and "1000" in e.value.message
        with pytest.raises(ValueError):
            ibstore.Run(tmp_path / "r2", samples=1000, epochs=2, policy="bogus")
        assert not os.path.exists(tmp_path / "r2")


# ------------------------------------------------------------------ Loader ----

def epoch_batches(ld, epoch, report=None):
    info = ld.epoch_begin(epoch)
    ids, weights, labels, n = [], [], [], 0
    for b in ld:
        ids.append(b.ids.copy())
        weights.append(b.weights.copy())
        labels.append(b.labels.copy())
        n += 1
        if report is not None:
            ld.report(b, report(b))
    ld.epoch_end()
    return info, np.concatenate(ids), np.concatenate(weights), np.concatenate(labels), n


def test_loader_epochs_prune(synth, tmp_path):
    path, images, labels = synth
    with ibstore.Dataset(path) as ds, \
            ibstore.Run(tmp_path / "run", samples=len(ds), epochs=4, batch_size=64,
                        ratio=0.5) as run, \
            ibstore.Loader(ds, run, threads=1, gap=0) as ld:
        rng = np.random.default_rng(0)
        losses = rng.random(1000).astype(np.float32)
        info, ids, w, lab, nb = epoch_batches(ld, 0, lambda b: losses[b.ids.astype(np.int64)])
        assert info.samples == 1000 and nb == info.batches == 16
        assert np.array_equal(np.sort(ids), np.arange(1000))  # every sample once
        assert np.all(w == 1.0)
        assert np.array_equal(lab, labels[ids.astype(np.int64)])
        assert np.array_equal(run.scores(), losses)

        info, ids, w, lab, nb = epoch_batches(ld, 1)
        assert len(np.unique(ids)) == len(ids) == info.samples < 1000
        mean = losses.mean()
        below = losses < mean
        kept_below = below[ids.astype(np.int64)]
        assert set(np.unique(w)) == {1.0, 2.0}
        assert np.all(w[kept_below] == 2.0) and np.all(w[~kept_below] == 1.0)
        assert set(np.flatnonzero(~below)) <= set(ids.tolist())  # at or above mean: kept
        assert info.samples == (~below).sum() + int(0.5 * below.sum())
        st = run.epoch_stats(1)
        assert st["plan"]["kept"] == info.samples
        assert st["io"]["bytes_skipped"] > 0


def test_rank_slice_strides_the_plan_and_marks_padding(synth, tmp_path):
    """Rank r of 3 gets plan positions r, r+3, r+6, ...; the one entry past
    the plan's end is padding, recognised by ibstore.is_padding; the run
    reports this rank's batch count."""
    path, _, _ = synth
    with ibstore.Dataset(path) as ds:
        for rank in range(3):
            with ibstore.Run(tmp_path / ("run%d" % rank), samples=len(ds), epochs=2,
                             batch_size=64, rank=rank, world=3) as run, \
                    ibstore.Loader(ds, run, threads=1) as ld:
                info, ids, w, _, nb = epoch_batches(ld, 0)
                assert run.info()["batches"] == 0  # after epoch_end
                assert info.batches == nb == -(-info.samples // 64)
                plan = np.arange(1000)  # epoch 0 keeps every sample (never seen)
                assert info.samples == 334
                pos = np.arange(info.samples) * 3 + rank
                pad = ibstore.is_padding(w)
                assert np.array_equal(pad, pos >= 1000)
                assert [ibstore.is_padding(float(x)) for x in w] == list(pad)
                assert np.all(w[pad] == ibstore.PADDING_WEIGHT)
                assert pad.sum() == (1 if rank > 0 else 0)
                assert len(np.unique(ids[~pad])) == (~pad).sum()
                assert set(ids[~pad].tolist()) <= set(plan.tolist())
                info1 = ld.epoch_begin(1)
                assert run.info()["batches"] == info1.batches > 0


def test_enum_tables_come_from_the_library():
    from ibstore import core
    assert core.POLICIES == {"infobatch": 0, "random": 1, "none": 2}
    assert core.MODES == {"native": 0, "compat": 1}
    assert core.SLICES == {"pad": 0, "drop": 1}
    assert core.BACKENDS == {"auto": 0, "uring": 1, "pread": 2, "mmap": 3}
    assert core.ORDERS == {"random": 0, "locality": 1}
    assert core.CORRUPT == {"fail": 0, "skip": 1}


def test_zero_copy_and_lifetimes(synth, tmp_path):
    path, images, _ = synth
    ds = ibstore.Dataset(path)
    run = ibstore.Run(tmp_path / "run", samples=len(ds), epochs=1, batch_size=100)
    ld = ibstore.Loader(ds, run)
    ld.epoch_begin(0)
    b = ld.next()
    c = b._mem.c  # the C struct
    data = b.data
    assert data.ctypes.data == b.data_address == ctypes_addr(c.data)
    assert b.ids.ctypes.data == ctypes_addr(c.ids)
    assert b.weights.ctypes.data == ctypes_addr(c.weights)
    assert b.labels.ctypes.data == ctypes_addr(c.labels)
    a = b.array()
    assert a.shape == (100, 120) and a.ctypes.data == b.data_address
    assert not a.flags.writeable and not data.flags.writeable
    assert np.array_equal(a, images[b.ids.astype(np.int64)].reshape(100, 120))
    assert np.array_equal(b.sample(3), a[3])
    assert b.offsets[1] == 120 and np.all(b.sizes == 120)

    # a view keeps the batch's memory: dropping the Batch object releases
    # the Batch, and the memory goes back with the last view
    ids_view = b.ids
    del b, a, data
    gc.collect()
    assert ld.held == 1
    assert len(np.unique(ids_view)) == 100
    del ids_view
    gc.collect()
    assert ld.held == 0
    owner = ld.next()
    owner.release()
    assert ld.held == 0 and owner.released
    with pytest.raises(IbstoreError):
        owner.ids
    owner.release()  # idempotent

    # with-block release; dropping the last reference releases too
    with ld.next() as b2:
        assert b2.n == 100
    assert b2.released
    ld.next()
    gc.collect()
    assert ld.held == 0

    # closing the dataset closes the loader, which releases held batches
    b3 = ld.next()
    copy = b3.copy()
    ds.close()
    assert ld.closed and b3.released and ds.closed
    assert copy["n"] == 100 and copy["data"].shape == (12000,)
    with pytest.raises(IbstoreError):
        ld.next()
    run.close()


def ctypes_addr(p):
    import ctypes
    return ctypes.cast(p, ctypes.c_void_p).value


def test_loader_backends_agree(synth, tmp_path):
    path = synth[0]
    seen = {}
    for backend in ("pread", "uring", "mmap", "auto"):
        reads = []
        with ibstore.Dataset(path) as ds, \
                ibstore.Run(tmp_path / backend, samples=1000, epochs=1, batch_size=128) as run, \
                ibstore.Loader(ds, run, backend=backend, on_read=lambda *a: reads.append(a)) as ld:
            _, ids, _, _, _ = epoch_batches(ld, 0)
            seen[backend] = ids
            assert ld.stats()["batches"] == 8
            if backend in ("pread", "uring"):   # mmap reads nothing: no requests
                assert reads and all(len(r) == 3 for r in reads)
            if backend == "mmap":
                assert not reads and ld.stats()["requests"] == 0
    for backend in ("uring", "mmap", "auto"):
        assert np.array_equal(seen["pread"], seen[backend])


# --------------------------------------------------------------- torch layer ----

def test_torch_len_and_epochs(synth, tmp_path):
    path, images, labels = synth
    with ibstore.torch.Loader(path, batch_size=64, num_epochs=3, prune_ratio=0.5,
                              run=tmp_path / "run.state", seed=3) as loader:
        with pytest.raises(RuntimeError):
            len(loader)
        rng = np.random.default_rng(0)
        for epoch in range(3):
            ep = loader.epoch(epoch)
            n_expected = len(loader)
            assert len(ep) == n_expected == loader.info.batches
            steps = samples = 0
            for x, y in ep:
                assert x.dtype == torch.float32 and x.shape[1:] == (12, 10)
                assert y.dtype == torch.int64
                ids = loader.batch.ids.astype(np.int64)
                assert torch.equal(x, torch.from_numpy(images[ids].astype(np.float32) / 255))
                assert torch.equal(y, torch.from_numpy(labels[ids].astype(np.int64)))
                loss = torch.from_numpy(rng.random(len(y)).astype(np.float32))
                loader.update(loss)
                steps += 1
                samples += len(y)
            assert steps == n_expected
            assert samples == loader.info.samples
            if epoch == 0:
                assert samples == 1000
            else:
                assert samples < 1000
            assert loader.epoch_stats(epoch) is not None  # epoch_end ran


def test_torch_update_weighted_mean(synth, tmp_path):
    path = synth[0]
    with ibstore.torch.Loader(path, batch_size=100, num_epochs=2, prune_ratio=0.5,
                              run=tmp_path / "run.state") as loader:
        for _ in loader.epoch(0):
            loader.update(torch.rand(loader.batch.n))
        for x, y in loader.epoch(1):
            b = loader.batch
            w = torch.from_numpy(b.weights.copy())
            ids = b.ids.astype(np.int64).copy()
            loss = (torch.rand(len(y), dtype=torch.float64) + 0.1).requires_grad_()
            before = loss.detach().clone()
            out = loader.update(loss)
            assert torch.equal(loss.detach(), before) and loss.requires_grad
            assert out.requires_grad and out.dim() == 0
            expect = (before * w.double()).sum() / len(y)
            assert torch.allclose(out.detach(), expect)
            out.backward()
            assert torch.allclose(loss.grad, w.double() / len(y))
            if (w == 2).any():
                assert not torch.isclose(out.detach(), before.mean())
            assert loader.batch is None and b.released
            scores = loader.scores()
            assert np.array_equal(scores[ids], before.numpy().astype(np.float32))
        with pytest.raises(RuntimeError):
            loader.update(torch.zeros(3))


def test_torch_update_rejects_mean_loss(synth, tmp_path):
    with ibstore.torch.Loader(synth[0], batch_size=100, num_epochs=1, prune_ratio=0.5) as loader:
        it = iter(loader.epoch(0))
        x, y = next(it)
        with pytest.raises(ValueError, match="reduction='none'"):
            loader.update(torch.tensor(1.0))
        # a batch without update() is released at the next one, unreported
        b = loader.batch
        next(it)
        assert b.released
        run_path = loader.run_path
    assert not os.path.exists(run_path)  # the temporary run is removed


def test_torch_decode_hooks(tmp_path, synth):
    from PIL import Image
    src = tmp_path / "imgs"
    rng = np.random.default_rng(5)
    pix = {}
    for cls in ("a", "b"):
        (src / cls).mkdir(parents=True)
        for k in range(5):
            a = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
            if k == 4:
                a[:] = 7  # compresses: the samples' sizes differ
            Image.fromarray(a).save(src / cls / ("%d.png" % k))
            pix["%s/%d.png" % (cls, k)] = a
    path = pack(["--from", "folder", str(src)], tmp_path / "img.ibs")
    with ibstore.torch.Loader(path, batch_size=4, num_epochs=1, prune_ratio=0.5) as loader:
        keys = []
        for x, y in loader.epoch(0):
            assert x.shape == (len(y), 3, 6, 7) and x.dtype == torch.float32
            for i, sid in enumerate(loader.batch.ids):
                key = loader.dataset.key(int(sid))
                keys.append(key)
                expect = torch.from_numpy(pix[key].transpose(2, 0, 1).astype(np.float32) / 255)
                assert torch.allclose(x[i], expect)
                assert y[i] == (0 if key.startswith("a/") else 1)
            loader.update(torch.ones(len(y)))
        assert sorted(keys) == sorted(pix)

    def custom(batch):
        return torch.from_numpy(batch.array().sum(axis=1).astype(np.float32))

    with ibstore.torch.Loader(synth[0], batch_size=50, num_epochs=1, prune_ratio=0.5,
                              decode=custom) as loader:
        for x, y in loader.epoch(0):
            assert x.shape == (len(y),)
            loader.update(x)
    with pytest.raises(ValueError):
        ibstore.torch.Loader(path, num_epochs=1, decode="array")


def test_torch_training_smoke(fmnist, tmp_path):
    """A linear model on t10k for 2 epochs beats chance by far."""
    path, images, labels = fmnist
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    criterion = torch.nn.CrossEntropyLoss(reduction="none")
    loader = ibstore.torch.Loader(path, batch_size=128, num_epochs=2, prune_ratio=0.5,
                                  run=tmp_path / "run.state")
    seen = []
    for epoch in range(2):
        n = 0
        for x, y in loader.epoch(epoch):
            loss = loader.update(criterion(model(x), y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += len(y)
        seen.append(n)
    loader.close()
    assert seen[0] == 10000 and seen[1] < 10000  # epoch 1 pruned
    with torch.no_grad():
        x = torch.from_numpy(images.astype(np.float32) / 255)
        acc = (model(x).argmax(1).numpy() == labels).mean()
    assert acc > 0.6, acc  # chance is 0.1


def test_torch_distributed_gloo(synth, tmp_path):
    """Two gloo ranks on loopback: disjoint slices covering the plan, and the
    same scores on both ranks after every epoch."""
    worker = os.path.join(os.path.dirname(__file__), "dist_worker.py")
    r = subprocess.run([sys.executable, worker, synth[0], str(tmp_path)], capture_output=True,
                       text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=PYDIR + os.pathsep +
                                os.environ.get("PYTHONPATH", "")))
    assert r.returncode == 0, r.stdout + r.stderr
    res = {}
    for rank in (0, 1):
        res[rank] = np.load(os.path.join(tmp_path, "rank%d.npz" % rank))
    for e in range(3):
        ids0, ids1 = res[0]["ids%d" % e], res[1]["ids%d" % e]
        w0, w1 = res[0]["w%d" % e], res[1]["w%d" % e]
        assert len(ids0) == len(ids1)
        real = np.concatenate([ids0[w0 > 0], ids1[w1 > 0]])
        assert len(np.unique(real)) == len(real)  # no sample twice (padding has weight 0)
        assert len(real) == res[0]["kept%d" % e]
        assert np.array_equal(res[0]["scores%d" % e], res[1]["scores%d" % e], equal_nan=True)
    assert len(res[0]["ids0"]) + len(res[1]["ids0"]) >= 1000
    # the seeded losses give an odd plan in some epoch: padding was exercised
    assert any((res[r]["w%d" % e] == 0).any() for r in (0, 1) for e in range(3))
    assert res[0]["kept1"] < 1000


def test_struct_layouts_match_header(tmp_path):
    """Every ctypes mirror has the C struct's size and field offsets
    (checked against include/ibstore.h with the C compiler, when there is one)."""
    import ctypes
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to check the layouts against")
    from ibstore import _lib
    structs = [v for k, v in vars(_lib).items()
               if k.startswith("ibstore_") and isinstance(v, type)
               and issubclass(v, ctypes.Structure)]
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "ibstore.h"',
             "int main(void) {"]
    expect = []
    for s in structs:
        lines.append('printf("%%zu\\n", sizeof(%s));' % s.__name__)
        expect.append(ctypes.sizeof(s))
        for name, _t in s._fields_:
            lines.append('printf("%%zu\\n", offsetof(%s, %s));' % (s.__name__, name))
            expect.append(getattr(s, name).offset)
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    r = subprocess.run([cc, "-I", os.path.join(REPO, "include"), str(src), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = [int(x) for x in subprocess.run([str(exe)], capture_output=True,
                                          text=True).stdout.split()]
    assert len(structs) >= 14
    assert got == expect


def test_torch_update_refuses_non_finite_losses(synth, tmp_path):
    with ibstore.torch.Loader(synth[0], batch_size=100, num_epochs=2, prune_ratio=0.5,
                              run=tmp_path / "run.state") as loader:
        it = iter(loader.epoch(0))
        next(it)
        ids = loader.batch.ids.astype(np.int64).copy()
        loss = torch.ones(loader.batch.n)
        loss[3] = float("nan")
        with pytest.raises(IbstoreError, match="not finite"):
            loader.update(loss)
        scores = loader.scores()
        assert np.isnan(scores[ids]).all()  # nothing of the batch was recorded


def test_torch_resume_continues_the_same_sequence(synth, tmp_path):
    """A run stopped mid-epoch and reopened serves, after its last commit,
    exactly what the uninterrupted run served."""
    def losses(ids):
        return torch.from_numpy(((ids * 2654435761) % 997 / 100.0).astype(np.float32))

    def run(path, stop_at=None):
        seen = []
        with ibstore.torch.Loader(synth[0], batch_size=50, num_epochs=3, prune_ratio=0.5,
                                  run=path, seed=7, checkpoint_every=4) as loader:
            for epoch in range(loader.start_epoch, 3):
                for step, (x, y) in enumerate(loader.epoch(epoch)):
                    ids = loader.batch.ids.astype(np.int64).copy()
                    if stop_at == (epoch, step):
                        return seen
                    seen.append((epoch, ids.tolist()))
                    loader.update(losses(ids))
        return seen

    whole = run(tmp_path / "whole.state")
    first = run(tmp_path / "cut.state", stop_at=(1, 10))
    rest = run(tmp_path / "cut.state")
    # batches 8 and 9 of epoch 1 came after the last commit (every 4): served again
    assert first[-2:] == rest[:2]
    assert first[:-2] + rest == whole
