"""Elastic resume through the PyTorch layer (ibstore_run_open_elastic under
ibstore.torch.Loader and ibstore.torch.InfoBatch, torch.distributed gloo on
127.0.0.1).

 - A job of 2 ranks stops in the middle of epoch 1 (a commit, then one more
   batch) and resumes from the same run base on 3 ranks, on 1 (a plain
   process, no process group) and on 2 (its own files): the samples trained
   in that epoch (the old ranks' committed batches and the new ranks'
   slices) are the plan exactly once, in its order, padding weighing 0; every
   epoch's plan and kept count and, on every rank, the final scores are an
   uninterrupted one-rank run's for the same losses.
 - A stop between two ranks' checkpoints (one rank a step further): the
   resume point is the other's, the step is trained again, the same outcome.
 - A resume with nothing left of the epoch still ends it.
 - A job committing after every batch is killed with SIGKILL at a random
   moment (all its ranks at once), resumed on 3 ranks and killed again,
   and finishes on 1 with the uninterrupted run's scores.

The jobs run in elastic_worker.py --serve (one process for the module,
each job and its ranks forked from it); the uninterrupted runs and the
one-rank resumes are elastic_worker.train() in this process.  The losses are
a function of (sample id, epoch) (elastic_worker.loss_of), and the runs
smooth them (ema 0.5): a loss recorded twice would show in the scores.
IBSTORE_TEST_SEED=<n> replays the kill test's random moments.
"""
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import PYDIR, pack, write_idx

torch = pytest.importorskip("torch")
import torch.distributed  # noqa: E402

import ibstore  # noqa: E402

import elastic_worker as ew  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

N, B, C = 600, 16, 4
OPTS = {
    # the Loader's run: batches of B, a commit every 2 batches
    "loader": dict(samples=N, batch_size=B, epochs=C, ratio=0.5, seed=11, ema=0.5,
                   checkpoint_every=2),
    # InfoBatch's run counts samples (its batch size is 1): a commit every 2 batches
    "infobatch": dict(samples=N, batch_size=B, epochs=C, ratio=0.5, seed=12, ema=0.5,
                      checkpoint_every=2 * B),
}
STOP = (1, 5)   # phase A stops after 5 updates of epoch 1: committed at 4
OLD = 2         # phase A's world

pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed has no gloo backend")


def run_unit(api):
    """Entries of a run batch: the Loader's run batches are B samples,
    InfoBatch's single samples (its cursor and commits count samples)."""
    return B if api == "loader" else 1


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("elastic-data")
    rng = np.random.default_rng(5)
    write_idx(d / "images.idx", rng.integers(0, 256, size=(N, 4, 4), dtype=np.uint8))
    write_idx(d / "labels.idx", (np.arange(N) % 10).astype(np.uint8))
    return pack(["--from", "idx", str(d / "images.idx"), str(d / "labels.idx")], d / "ds.ibs")


def spec(api, dataset, world, base, out=None, tag="job", stop=None, opts=None, progress=False,
         partial=False):
    return {"api": api, "world": world, "base": str(base), "out": str(out) if out else None,
            "tag": tag, "opts": opts or OPTS[api], "dataset": dataset,
            "stop": list(stop) if stop else None, "partial": partial, "progress": progress}


class Jobs:
    """elastic_worker.py --serve: runs the jobs one after the other, each
    forked from one process that imported torch once."""

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [PYDIR, HERE] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "elastic_worker.py"),
                                   "--serve"], env=env, text=True, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.err = []
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.err.append),
                         daemon=True).start()

    @staticmethod
    def _read(f, put):
        for line in f:
            put(line)
        put(None)

    def _next(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        return line

    def run(self, s, on_step=None, timeout=120):
        """Runs job s; on_step(job pid, n) after rank 0's n-th update (with
        s["progress"]).  Returns its exit code (0; -9 when killed)."""
        mark = len(self.err)
        self.p.stdin.write(json.dumps(s) + "\n")
        self.p.stdin.flush()
        line = self._next(60)
        assert line and line.startswith("job "), "the job server: %r %s" % (
            line, "".join(self.err)[-3000:])
        pid = int(line.split()[1])
        deadline = time.monotonic() + timeout
        steps = 0
        while True:
            line = self._next(max(deadline - time.monotonic(), 0.1))
            if line is None:  # a hang (or the server died): end the job
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                pytest.fail("job %s did not finish: %s" % (s["tag"],
                                                          "".join(self.err[mark:])[-3000:]))
            if line.startswith("step ") and on_step is not None:
                steps += 1
                on_step(pid, steps)
            elif line.startswith("done "):
                self.rc_err = "".join(self.err[mark:])
                return int(line.split()[1])

    def close(self):
        self.p.stdin.close()
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


@pytest.fixture(scope="module")
def jobs():
    j = Jobs()
    yield j
    j.close()


def run_job(jobs, s):
    """Runs one job (phase) to its end (or its stop); the ranks' records."""
    rc = jobs.run(s)
    assert rc == 0, jobs.rc_err[-4000:]
    if not s["out"]:
        return None
    return [dict(np.load(os.path.join(s["out"], "%s.rank%d.npz" % (s["tag"], r))))
            for r in range(s["world"])]


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    """The uninterrupted one-rank run of each API (in this process)."""
    cache = {}

    def get(api):
        if api not in cache:
            d = tmp_path_factory.mktemp("elastic-ref-" + api)
            cache[api] = ew.train(spec(api, dataset, 1, d / "run"), 0, 1)
        return cache[api]
    return get


@pytest.fixture(scope="module")
def stopped(dataset, jobs, tmp_path_factory):
    """Phase A of each API: 2 ranks train epoch 0 and 5 batches of epoch 1
    (committed after 4), then leave with os._exit.  (run directory, records)."""
    cache = {}

    def get(api):
        if api not in cache:
            d = tmp_path_factory.mktemp("elastic-a-" + api)
            (d / "run").mkdir()
            recs = run_job(jobs, spec(api, dataset, OLD, d / "run" / "job", out=d, tag="a",
                                      stop=STOP))
            cache[api] = (d / "run", recs)
        return cache[api]
    return get


def plan_of(rec, e):
    return rec["plan_ids%d" % e].astype(np.int64), rec["plan_w%d" % e]


def check_covers(plan_ids, plan_w, entries, what):
    """entries: (plan position, id, weight) of everything trained in an
    epoch, by every rank (positions past the plan's end: the tail of a
    padded slice).  Those within the plan are the plan exactly once, in its
    order, with its weights; those past it are padding (weight 0) repeating
    a plan sample.  Returns the number of padding entries."""
    L = len(plan_ids)
    pos = np.array([p for p, _, _ in entries], np.int64)
    ids = np.array([i for _, i, _ in entries], np.int64)
    w = np.array([x for _, _, x in entries], np.float32)
    pad = pos >= L
    assert ibstore.is_padding(w[pad]).all() and (w[pad] == 0).all(), what
    assert not ibstore.is_padding(w[~pad]).any(), what
    assert np.isin(ids[pad], plan_ids).all(), what
    # the union of the rest: the plan, each sample once
    assert sorted(ids[~pad].tolist()) == sorted(plan_ids.tolist()), what
    assert len(np.unique(ids[~pad])) == L, what
    # ... each at its plan position, with its weight
    order = np.argsort(pos[~pad])
    assert np.array_equal(pos[~pad][order], np.arange(L)), what
    assert np.array_equal(ids[~pad][order], plan_ids), what
    assert np.array_equal(w[~pad][order], plan_w), what
    return int(pad.sum())


def strided(rec, e, rank, world, start=0, first=None):
    """(position, id, weight) of rank's entries of epoch e: positions start +
    rank + k·world (the slice rule); `first` limits them to that many."""
    ids, w = rec["ids%d" % e], rec["w%d" % e]
    n = len(ids) if first is None else first
    return [(start + rank + k * world, int(ids[k]), float(w[k])) for k in range(n)]


def committed_at(api, k):
    """The committed cursor (run batches) after k updates of an epoch."""
    every = OPTS[api]["checkpoint_every"]
    return (k * B // run_unit(api)) // every * every


def check_job(api, ref, old, new, new_world, committed, stop=STOP):
    """old: the stopped job's records (OLD ranks, stopped at `stop` with
    these committed cursors); new: the resumed job's (new_world ranks, to
    the end)."""
    e0, k_stop = stop
    unit = run_unit(api)
    for r, rec in enumerate(old):
        assert int(rec["committed"]) == committed[r]
        assert int(rec["start_epoch"]) == 0 and int(rec["generation"]) == 0
        assert len(rec["nb%d" % e0]) == k_stop
    least = min(committed)
    assert least * unit < k_stop * B, "the stop must leave uncommitted batches"
    P = least * unit * OLD  # the resume point: the plan prefix every old rank consumed
    # the epochs before the stop: the old ranks' slices cover the plan
    for e in range(e0):
        pids, pw = plan_of(ref, e)
        for rec in old:
            assert np.array_equal(plan_of(rec, e)[0], pids)
        check_covers(pids, pw, sum((strided(rec, e, r, OLD) for r, rec in enumerate(old)), []),
                     "%s epoch %d (before the stop)" % (api, e))
    # The same world with every file at one point resumes its own files (at
    # their cursor, from the epoch's start); else a generation 1 is built.
    same = new_world == OLD and len(set(committed)) == 1
    base = os.path.join("run", "job")
    padding = 0
    for r, rec in enumerate(new):
        f = str(rec["run_file"])
        want = ".g1" if new_world == 1 else ".g1.rank%d-of-%d" % (r, new_world)
        if same:
            want = ".rank%d-of-%d" % (r, new_world)
        assert f.endswith(base + want), f
        assert int(rec["start_epoch"]) == e0
        assert int(rec["generation"]) == (0 if same else 1)
        assert int(rec["start"]) == (0 if same else P)
    for e in range(e0, C):
        pids, pw = plan_of(ref, e)
        for rec in new:  # every rank holds the uninterrupted run's plan
            assert np.array_equal(plan_of(rec, e)[0], pids), "%s epoch %d: plan" % (api, e)
            assert np.array_equal(plan_of(rec, e)[1], pw), "%s epoch %d: weights" % (api, e)
        entries = []
        if e == e0:
            # before the resume point: each old rank's first `least` run batches
            for r, rec in enumerate(old):
                assert np.array_equal(plan_of(rec, e)[0], pids)
                entries += strided(rec, e, r, OLD, first=least * unit)
            # what the old ranks trained past it is trained again
            again = np.concatenate([rec["ids%d" % e][least * unit:] for rec in old])
            assert len(again) > 0
            trained = np.concatenate([rec["ids%d" % e] for rec in new])
            assert np.isin(again, trained).all()
        start = P if e == e0 else 0
        for r, rec in enumerate(new):
            entries += strided(rec, e, r, new_world, start=start)
        lens = {len(rec["ids%d" % e]) for rec in new}
        assert len(lens) == 1, "%s epoch %d: ranks of unequal slices %s" % (api, e, lens)
        padding += check_covers(pids, pw, entries, "%s epoch %d on %d ranks" % (api, e,
                                                                                 new_world))
    if new_world == 3:
        assert padding > 0, "no padding exercised: change a seed"
    for r, rec in enumerate(new):
        assert np.array_equal(rec["kept"], ref["kept"]), (rec["kept"], ref["kept"])
        assert np.array_equal(rec["scores"], ref["scores"], equal_nan=True), \
            "%s rank %d of %d: scores differ from the uninterrupted run's in %d samples" % (
                api, r, new_world, int((rec["scores"] != ref["scores"]).sum()))
    assert not np.isnan(ref["scores"]).any()
    assert ref["kept"][e0] < N  # epoch e0 was pruned


def resume(jobs, s):
    """The resumed job's records: one rank runs here (a plain process, no
    process group), more in a job."""
    if s["world"] == 1:
        return [ew.train(s, 0, 1)]
    return run_job(jobs, s)


@pytest.mark.parametrize("api", ["loader", "infobatch"])
@pytest.mark.parametrize("new_world", [3, 1, 2])
def test_stop_mid_epoch_then_resume(api, new_world, dataset, jobs, reference, stopped,
                                    tmp_path):
    """2 ranks stop in epoch 1 after a commit and one more batch; the job
    resumes from the same run base on new_world ranks and finishes.  (On 2
    ranks each resumes its own file: that file's commit must hold the other
    ranks' losses of the batch, or the ranks' next plans differ.)"""
    ref = reference(api)
    rundir, old = stopped(api)
    shutil.copytree(rundir, tmp_path / "run")  # each resume from the same stopped job
    new = resume(jobs, spec(api, dataset, new_world, tmp_path / "run" / "job", out=tmp_path,
                            tag="b"))
    check_job(api, ref, old, new, new_world, [committed_at(api, STOP[1])] * OLD)


def test_partial_step_resume_on_3(dataset, jobs, reference, tmp_path):
    """A stop between two ranks' checkpoints: rank 0 commits batch 6 of
    epoch 1 (with rank 1's losses, all-gathered), rank 1 dies inside that
    update, its file at batch 4.  On 3 ranks the job resumes at rank 1's
    point; rank 0's batches 5 and 6 are trained again and the losses its
    file holds for them are dropped (the scores show it: ema 0.5)."""
    api, stop = "loader", (1, 6)
    ref = reference(api)
    (tmp_path / "run").mkdir()
    old = run_job(jobs, spec(api, dataset, OLD, tmp_path / "run" / "job", out=tmp_path,
                             tag="a", stop=stop, partial=True))
    new = run_job(jobs, spec(api, dataset, 3, tmp_path / "run" / "job", out=tmp_path, tag="b"))
    committed = [committed_at(api, stop[1])] * (OLD - 1) + [committed_at(api, stop[1] - 1)]
    assert committed[0] > committed[-1]
    check_job(api, ref, old, new, 3, committed, stop)


def run_options(api):
    """The options the Loader / InfoBatch give their run (ibstore.Run's)."""
    o = OPTS[api]
    return dict(samples=N, epochs=C, batch_size=run_unit(api) if api == "infobatch" else B,
                drop_last=False, policy="infobatch", mode="native", ratio=o["ratio"],
                delta=0.875, seed=o["seed"], ema=o["ema"], slice="pad",
                checkpoint_every=o["checkpoint_every"])


@pytest.mark.parametrize("api", ["loader", "infobatch"])
def test_resume_with_nothing_left_of_the_epoch(api, dataset, reference, tmp_path):
    """A job of 2 ranks (written here through ibstore.Run, each rank
    recording every loss as the exchange does) reported every batch of its
    last epoch and committed, but was stopped before that epoch's end was
    recorded.  Resumed on 1 rank, the resume point is the plan's end: the
    epoch has no batch left, and the job still ends it (its statistics),
    with the uninterrupted run's scores."""
    ref = reference(api)
    base = str(tmp_path / "job")
    runs = [ibstore.Run(base, rank=r, world=OLD, elastic=True, **run_options(api))
            for r in range(OLD)]
    try:
        for e in range(C):
            infos = [run.epoch_begin(e) for run in runs]
            ids = runs[0].plan()[0]
            for run, info in zip(runs, infos):
                run.report(ids, ew.loss_of(ids, e))
                run.advance(info.batches)
                if e < C - 1:
                    run.epoch_end()
                else:
                    run.checkpoint()
    finally:
        for run in runs:
            run.close()
    rec = ew.train(spec(api, dataset, 1, base), 0, 1)
    assert int(rec["start_epoch"]) == C - 1 and int(rec["generation"]) == 1
    assert int(rec["start"]) == len(plan_of(ref, C - 1)[0])  # nothing left
    assert len(rec["ids%d" % (C - 1)]) == 0
    assert np.array_equal(rec["kept"], ref["kept"])  # the last epoch's statistics too
    assert np.array_equal(rec["scores"], ref["scores"], equal_nan=True)


def killed_run(jobs, s, rng, lo, hi):
    """Runs job s and kills it (its process group: every rank at once) with
    SIGKILL right after rank 0's update number n (random in [lo, hi)) plus a
    random delay; returns n."""
    n = rng.randrange(lo, hi)
    delay = rng.uniform(0, 0.01)

    def on_step(pid, k):
        if k == n:
            time.sleep(delay)
            os.killpg(pid, signal.SIGKILL)
    rc = jobs.run(dict(s, progress=True), on_step)
    assert rc == -signal.SIGKILL, "job %s ended (%d) before its step %d: %s" % (
        s["tag"], rc, n, jobs.rc_err[-3000:])
    return n


def test_kill9_during_checkpoints_resume_on_another_world(dataset, jobs, reference, tmp_path):
    """A 2-rank Loader job committing after every batch is killed with
    SIGKILL at a random moment; resumed on 3 ranks it is killed again; on 1
    rank it finishes with the uninterrupted run's scores and kept counts."""
    seed = int(os.environ.get("IBSTORE_TEST_SEED") or random.SystemRandom().randrange(1 << 30))
    rng = random.Random(seed)
    opts = dict(OPTS["loader"], checkpoint_every=1)
    ref = reference("loader")  # checkpoint_every changes no plan and no score
    steps = sum(-(-int(k) // (2 * B)) for k in ref["kept"])  # rank 0's updates on 2 ranks
    base = tmp_path / "job"
    where = "IBSTORE_TEST_SEED=%d" % seed
    n1 = killed_run(jobs, spec("loader", dataset, 2, base, tag="k1", opts=opts), rng, 2,
                    steps - 8)
    n2 = killed_run(jobs, spec("loader", dataset, 3, base, tag="k2", opts=opts), rng, 1, 3)
    where += " (killed after steps %d and %d)" % (n1, n2)
    rec = resume(jobs, spec("loader", dataset, 1, base, out=tmp_path, tag="k3", opts=opts))[0]
    assert int(rec["generation"]) == 2, where  # 2 ranks, then 3, then 1
    for e in range(int(rec["start_epoch"]), C):
        assert np.array_equal(plan_of(rec, e)[0], plan_of(ref, e)[0]), where
    assert np.array_equal(rec["kept"], ref["kept"]), where
    assert np.array_equal(rec["scores"], ref["scores"], equal_nan=True), where
    with ibstore.Run(base, rank=0, world=1, elastic=True,
                     **dict(run_options("loader"), checkpoint_every=1)) as run:
        assert run.info()["epochs_done"] == C  # the job, done
