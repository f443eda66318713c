"""ibstore.torch.InfoBatch: a training loop written for the reference
InfoBatch package (its documented API; only the import line differs) runs
with and without workers, drop_last both ways, and under torch.distributed;
its epochs are the library's plans (`ibstore plan`), mode='compat' is the
reference algorithm's sequence (tests/compat_vectors.py), misuse raises.

Run as a script (``test_infobatch.py --dist OUTDIR``) it is the two-rank
gloo job of test_distributed_gloo.
"""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests"))

from ibstore.torch import InfoBatch  # noqa: E402  (was: from infobatch import InfoBatch)

import compat_vectors as cv  # noqa: E402

N, C, B = 300, 4, 32


class Toy(Dataset):
    """A map-style dataset of its own: item i is (features, label, index)."""

    classes = ["a", "b", "c"]

    def __init__(self, n=N):
        g = torch.Generator().manual_seed(7)
        self.x = torch.randn(n, 5, generator=g)
        self.y = torch.randint(0, 3, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i], i

    def describe(self):
        return "toy of %d" % len(self)


def losses_for(idx, epoch):
    """Deterministic per-sample losses, away from ties and means."""
    return torch.tensor([0.1 + ((i * 7919 + epoch * 104729) % 1000) / 997.0 for i in idx],
                        dtype=torch.float32)


def reference_loop(ds, num_workers, drop_last, epochs=C):
    """The reference package's documented loop, model elided: the losses are
    a function of (index, epoch) so that runs can be compared."""
    kw = dict(persistent_workers=True) if num_workers else {}
    loader = DataLoader(ds, batch_size=B, sampler=ds.sampler, num_workers=num_workers,
                        drop_last=drop_last, pin_memory=False, **kw)
    log = []
    for epoch in range(epochs):
        scores = ds.scores.numpy()      # what the epoch's plan is computed from
        nb = len(loader)                # right before the epoch's iteration
        kept = ds.plan()[2]["kept"]
        seen, means, batches = [], [], 0
        for x, y, idx in loader:
            loss = losses_for(idx.tolist(), epoch)
            mean = ds.update(loss)
            means.append((idx.tolist(), loss, float(mean)))
            seen.extend(idx.tolist())
            batches += 1
        assert batches == nb, "epoch %d: len(loader) %d, %d batches" % (epoch, nb, batches)
        log.append(dict(scores=scores, seen=seen, means=means, kept=kept))
    return log


def cli_plan(tmp_path, scores, epoch, *extra):
    from conftest import cli_path
    f = tmp_path / ("s%d.f32" % epoch)
    scores.astype("<f4").tofile(f)
    r = subprocess.run([cli_path(), "plan", "--scores", str(f), "--epoch", str(epoch),
                        "--epochs", str(C)] + list(extra), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [ln.split() for ln in r.stdout.splitlines()]
    return np.array([int(a) for a, _ in rows]), np.array([float(b) for _, b in rows], np.float32)


def check_against_plan(tmp_path, log, drop_last, *extra):
    for e, ep in enumerate(log):
        ids, w = cli_plan(tmp_path, ep["scores"], e, *extra)
        assert ep["kept"] == len(ids)
        want = ids[:len(ids) - len(ids) % B] if drop_last else ids
        assert ep["seen"] == want.tolist(), "epoch %d: order differs from ibstore plan" % e
        wt = dict(zip(ids.tolist(), w.tolist()))
        for idx, loss, mean in ep["means"]:
            ws = torch.tensor([wt[i] for i in idx])
            assert mean == pytest.approx(float((loss * ws).sum() / len(idx)), rel=1e-6)
    # pruning happened and the weights were not all 1
    assert any(ep["kept"] < N for ep in log)


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("drop_last", [False, True])
def test_reference_loop_is_the_plan(tmp_path, num_workers, drop_last):
    with InfoBatch(Toy(), C, prune_ratio=0.5, delta=0.875, seed=3) as ds:
        log = reference_loop(ds, num_workers, drop_last)
        assert len(ds.sampler) == 0 and ds.run.info()["epochs_done"] == C
        assert ds.get_pruned_count() == sum(N - ep["kept"] for ep in log) > 0
    check_against_plan(tmp_path, log, drop_last, "--seed", "3")


def test_compat_is_the_reference_sequence():
    with InfoBatch(Toy(), C, prune_ratio=0.5, delta=0.875, mode="compat") as ds:
        assert ds.mode == "compat"
        log = reference_loop(ds, 0, False)
    for e, ep in enumerate(log):
        ref = cv.reference_plan(ep["scores"], e, C, 0.5, 0.875)
        assert ep["seen"] == ref["ids"].tolist(), "epoch %d differs from the reference" % e
        wt = np.ones(N, np.float32)
        wt[ref["ids"]] = ref["weights"]
        for idx, loss, mean in ep["means"]:
            ws = torch.from_numpy(wt[idx])
            assert mean == pytest.approx(float((loss * ws).sum() / len(idx)), rel=1e-6)
    assert log[0]["scores"].tolist() == [3.0] * N  # the reference's initial score
    assert any(ep["kept"] < N for ep in log)


def test_item_unchanged_and_attributes_pass_through():
    base = Toy()
    with InfoBatch(base, C) as ds:
        assert len(ds) == N
        x, y, i = ds[5]
        assert i == 5 and torch.equal(x, base.x[5])
        assert ds.classes == ["a", "b", "c"] and ds.describe() == "toy of %d" % N
        assert ds.dataset is base
        with pytest.raises(AttributeError):
            ds.no_such_attribute
        # nothing global is patched
        from torch.utils.data import dataloader
        assert dataloader._BaseDataLoaderIter.__next__.__module__ == "torch.utils.data.dataloader"


def test_set_epoch_and_resume(tmp_path):
    run = str(tmp_path / "run.state")
    with InfoBatch(Toy(), C, run=run, seed=1, checkpoint_every=1) as ds:
        loader = DataLoader(ds, batch_size=B, sampler=ds.sampler)
        for epoch in range(2):
            ds.sampler.set_epoch(epoch)
            for k, (x, y, idx) in enumerate(loader):
                ds.update(losses_for(idx.tolist(), epoch))
                if epoch == 1 and k == 2:
                    break
        done = ds._ep.ids[:3 * B].tolist()
        whole = ds._ep.ids.tolist()
    with InfoBatch(Toy(), C, run=run, seed=1) as ds:
        assert ds.epoch == 1
        loader = DataLoader(ds, batch_size=B, sampler=ds.sampler)
        assert len(ds.sampler) == len(whole) - len(done)
        rest = []
        for x, y, idx in loader:
            ds.update(losses_for(idx.tolist(), 1))
            rest.extend(idx.tolist())
        assert [int(i) for i in done] + rest == whole
        assert len(loader) > 0 and ds.epoch == 2
        assert ds.run.info()["epochs_done"] == 2  # committed at the last update
    with pytest.raises(Exception, match="(?i)mismatch|differ|seed"):
        InfoBatch(Toy(), C, run=run, seed=2)


def test_misuse_raises():
    ds = InfoBatch(Toy(), C)
    loader = DataLoader(ds, batch_size=B, sampler=ds.sampler)
    it = iter(loader)
    x, y, idx = next(it)
    with pytest.raises(ValueError, match="batch size is 32"):
        ds.update(torch.ones(B - 1))              # wrong length
    with pytest.raises(ValueError, match="reduction='none'"):
        ds.update(torch.ones(B, 2))
    ds.update(torch.ones(B))
    with pytest.raises(RuntimeError, match="twice"):
        ds.update(torch.ones(B))                  # twice for one batch
    next(it)                                      # a batch skipped
    del it
    with pytest.raises(RuntimeError, match="never passed to update"):
        for _ in loader:                          # the next epoch begins
            pass
    ds.close()

    ds = InfoBatch(Toy(64), C)                   # two batches per epoch
    loader = DataLoader(ds, batch_size=B, sampler=ds.sampler)
    for x, y, idx in loader:
        ds.update(torch.ones(B))
    with pytest.raises(RuntimeError, match="more updates than batches"):
        ds.update(torch.ones(B))
    ds.close()
    with pytest.raises(ValueError, match="batch_size is 16, InfoBatch's 32"):
        ds = InfoBatch(Toy(), C, batch_size=32)
        len(DataLoader(ds, batch_size=16, sampler=ds.sampler))


# ---- torch.distributed --------------------------------------------------------

def _rank_main(rank, world, port, out):
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank,
                            world_size=world)
    torch.set_num_threads(1)
    with InfoBatch(Toy(), C, prune_ratio=0.5, seed=5) as ds:
        assert (ds.rank, ds.world) == (rank, world)
        log = reference_loop(ds, 0, False)
        final = ds.scores.numpy()
    res = {"final": final}
    for e, ep in enumerate(log):
        res["seen%d" % e] = np.array(ep["seen"])
        res["scores%d" % e] = ep["scores"]
    np.savez(os.path.join(out, "rank%d.npz" % rank), **res)
    dist.destroy_process_group()


def test_distributed_gloo(tmp_path):
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed has no gloo backend")
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--dist", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    res = [np.load(tmp_path / ("rank%d.npz" % k)) for k in range(2)]
    np.testing.assert_array_equal(res[0]["final"], res[1]["final"])
    for e in range(C):
        s = res[0]["scores%d" % e]
        np.testing.assert_array_equal(s, res[1]["scores%d" % e])  # same scores on both ranks
        ids, _ = cli_plan(tmp_path, s, e, "--seed", "5")
        a, b = res[0]["seen%d" % e], res[1]["seen%d" % e]
        assert len(a) == len(b) == -(-len(ids) // 2)
        # rank r has plan positions r, r+2, ...: the union is the plan (+ padding)
        inter = np.empty(len(a) + len(b), np.int64)
        inter[0::2], inter[1::2] = a, b
        assert inter[:len(ids)].tolist() == ids.tolist()


if __name__ == "__main__" and sys.argv[1:2] == ["--dist"]:
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank_main, args=(2, port, sys.argv[2]), nprocs=2, join=True)
