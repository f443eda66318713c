"""Helper of test_elastic.py: one data-parallel job (or one phase of one) of
ibstore.torch.Loader or ibstore.torch.InfoBatch over a run base path, every
rank recording what it trained.

usage: elastic_worker.py SPEC.json    (one job)
       elastic_worker.py --serve      (jobs from stdin, see serve())

SPEC: {"api": "loader"|"infobatch", "world": W, "base": run base path,
"out": directory of the records, "tag": their name, "opts": the run's
options (the test's OPTS), "dataset": packed dataset (loader),
"stop": [epoch, batches] or null, "partial": bool (loader), "progress": bool}.

World 1 runs in the job's process with no process group (a plain process,
as a job resumed on one machine would).  W > 1 forks W ranks that form a
gloo group on 127.0.0.1 (forked after the imports and before any torch
work: a cheap start on a slow machine, and the reason for --serve).  Each rank writes <out>/<tag>.rank<r>.npz:
per epoch it ran, "plan_ids<e>"/"plan_w<e>" (the run's global plan), "ids<e>",
"w<e>" (its batches back to back, in the order trained) and "nb<e>" (their
lengths); "start_epoch", "start", "generation" and "run_file" (the run as
opened); at the end "scores" and "kept" (epoch_stats' kept per epoch).

With "stop": [e, k] every rank stops after k updates of epoch e: it saves its
records (with "committed", the run's committed cursor then) and leaves with
os._exit, as a preempted job does (no close, no epoch end); with
"partial", the last rank dies inside that update instead, after its
all-gather and before it records or commits anything (a stop between two
ranks' checkpoints: the others' files are a batch further).  With
"progress", rank 0 prints "step <e> <k>" after each update (test_elastic's
kill -9 test watches it).

The losses are a deterministic function of (sample id, epoch), no model:
loss_of(), shared with the test's uninterrupted reference runs.
"""
import datetime
import json
import os
import signal
import socket
import sys
import traceback

import numpy as np
import torch

import ibstore.torch
from ibstore import _dist


def loss_of(ids, epoch):
    """Per-sample losses of the sample ids in `ids` at `epoch` (float32),
    spread over (0.1, 1.1): different per epoch, so a loss recorded twice
    with ema > 0 changes the score."""
    ids = np.asarray(ids, dtype=np.int64)
    return (0.1 + ((ids * 7919 + epoch * 104729) % 1000) / 997.0).astype(np.float32)


def _loader_job(spec, rank, world, rec, step):
    o = spec["opts"]
    with ibstore.torch.Loader(spec["dataset"], batch_size=o["batch_size"],
                              num_epochs=o["epochs"], prune_ratio=o["ratio"], run=spec["base"],
                              seed=o["seed"], ema=o["ema"],
                              checkpoint_every=o["checkpoint_every"], threads=1) as loader:
        assert (loader.rank, loader.world) == (rank, world)
        info = loader.run.info()
        rec.update(start_epoch=loader.start_epoch, start=info["start"],
                   generation=info["generation"], run_file=loader.run_path)
        for e in range(loader.start_epoch, o["epochs"]):
            batches = loader.epoch(e)
            pids, pw, _ = loader.run.plan()
            rec["plan_ids%d" % e], rec["plan_w%d" % e] = pids, pw
            ids, ws, nb = [], [], []
            rec["ids%d" % e], rec["w%d" % e], rec["nb%d" % e] = ids, ws, nb
            for k, (x, y) in enumerate(batches, 1):
                b = loader.batch
                bid = b.ids.astype(np.int64)
                ids.append(bid)
                ws.append(b.weights.copy())
                nb.append(len(bid))
                assert torch.equal(y, torch.from_numpy(b.labels.astype(np.int64)))
                loss = torch.from_numpy(loss_of(bid, e))
                if step.dies_in_update(e, k):
                    # update()'s all-gather, then gone before recording
                    # anything: the other ranks record and commit this batch
                    real = ~ibstore.is_padding(b.weights)
                    _dist.all_gather_pairs(loader._dist, None, world, bid[real],
                                           loss.numpy()[real])
                    step.stop(loader.run)
                loader.update(loss)
                step(e, k, loader.run)
        rec["scores"] = loader.scores()
        rec["kept"] = np.array([loader.epoch_stats(e)["plan"]["kept"]
                                for e in range(o["epochs"])])
        assert loader.run.info()["epochs_done"] == o["epochs"]


def _infobatch_job(spec, rank, world, rec, step):
    from torch.utils.data import DataLoader, TensorDataset
    o = spec["opts"]
    data = TensorDataset(torch.arange(o["samples"]))
    with ibstore.torch.InfoBatch(data, o["epochs"], prune_ratio=o["ratio"], seed=o["seed"],
                                 ema=o["ema"], run=spec["base"],
                                 checkpoint_every=o["checkpoint_every"]) as ds:
        assert (ds.rank, ds.world) == (rank, world)
        loader = DataLoader(ds, batch_size=o["batch_size"], sampler=ds.sampler)
        info = ds.run.info()
        rec.update(start_epoch=ds.epoch, start=info["start"], generation=info["generation"],
                   run_file=ds.run_path)
        for e in range(ds.epoch, o["epochs"]):
            ds.sampler.set_epoch(e)
            nbatches = len(loader)  # begins the epoch
            pids, pw, _ = ds.plan()
            rec["plan_ids%d" % e], rec["plan_w%d" % e] = pids, pw
            ids, ws, nb = [], [], []
            rec["ids%d" % e], rec["w%d" % e], rec["nb%d" % e] = ids, ws, nb
            k = 0
            for (idx,) in loader:
                ep = ds._ep  # the slice update() consumes (its padding weighs 0)
                w = ep.weights[ep.consumed:ep.consumed + len(idx)].copy()
                assert ep.ids[ep.consumed:ep.consumed + len(idx)].tolist() == idx.tolist()
                ids.append(idx.numpy().astype(np.int64))
                ws.append(w)
                nb.append(len(idx))
                ds.update(torch.from_numpy(loss_of(idx.numpy(), e)))
                k += 1
                step(e, k, ds.run)
            assert k == nbatches
        rec["scores"] = ds.scores.numpy()
        rec["kept"] = np.array([ds.run.epoch_stats(e)["plan"]["kept"]
                                for e in range(o["epochs"])])
        assert ds.run.info()["epochs_done"] == o["epochs"]


def _arrays(rec):
    out = {}
    for k, v in rec.items():
        if isinstance(v, list):  # ids/w: an array per batch; nb: ints
            if not v:
                v = np.zeros(0, np.float32 if k[0] == "w" else np.int64)
            elif np.ndim(v[0]) == 0:
                v = np.array(v, np.int64)
            else:
                v = np.concatenate(v)
        out[k] = np.asarray(v)
    return out


def _save(spec, rank, rec):
    out = _arrays(rec)
    np.savez(os.path.join(spec["out"], "%s.rank%d.npz" % (spec["tag"], rank)), **out)
    return out


class _Step:
    """Called after each update: progress lines, and the stop."""

    def __init__(self, spec, rank, world, rec, on_stop):
        self.spec, self.rank, self.world, self.rec = spec, rank, world, rec
        self.on_stop = on_stop
        self.at = tuple(spec["stop"]) if spec.get("stop") else None

    def __call__(self, e, k, run):
        if self.spec.get("progress") and self.rank == 0:
            print("step %d %d" % (e, k), flush=True)
        if self.at == (e, k):
            self.stop(run)

    def dies_in_update(self, e, k):
        """With spec["partial"], the last rank dies inside the update of the
        stop's batch (its losses gathered by the others), before its commit."""
        return bool(self.spec.get("partial")) and self.rank == self.world - 1 \
            and self.at == (e, k)

    def stop(self, run):
        self.rec["committed"] = run.info()["committed"]
        _save(self.spec, self.rank, self.rec)
        self.on_stop()


def train(spec, rank, world, on_stop=None):
    """Runs this rank's part of the job and returns its records (a dict of
    arrays, also saved when spec["out"] is set).  At spec["stop"] the
    records are saved and on_stop() is called: it does not return."""
    rec = {}
    job = _loader_job if spec["api"] == "loader" else _infobatch_job
    job(spec, rank, world, rec, _Step(spec, rank, world, rec, on_stop))
    if spec.get("out"):
        return _save(spec, rank, rec)
    return _arrays(rec)


def _preempted():
    sys.stdout.flush()
    os._exit(0)


def _die_with_parent(parent):
    """SIGKILL when the parent goes (a job outliving the test, a rank its
    job): PR_SET_PDEATHSIG."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _rank_main(spec, rank, world, port, parent):
    """A forked rank: joins the gloo group and trains; never returns."""
    rc = 1
    try:
        _die_with_parent(parent)
        import torch.distributed as dist
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank,
                                world_size=world, timeout=datetime.timedelta(seconds=60))

        def stop():
            # Preempted: leave without closing anything (the run's last
            # commit is what remains), once every rank has finished its
            # collectives (a rank gone while a peer still reads would cut
            # that short).
            try:
                dist.barrier()
            except Exception:
                pass
            _preempted()

        train(spec, rank, world, stop)
        dist.destroy_process_group()
        rc = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def run_job(spec):
    """Runs one job: world 1 in this process, else its ranks forked (a
    rank's failure ends the others).  0, or 1 when a rank failed."""
    world = int(spec["world"])
    if world == 1:
        train(spec, 0, 1, _preempted)
        return 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ranks = {}
    me = os.getpid()
    for r in range(world):
        pid = os.fork()
        if pid == 0:
            _rank_main(spec, r, world, port, me)
        ranks[pid] = r
    rc = 0
    while ranks:
        pid, status = os.wait()
        if ranks.pop(pid, None) is None:
            continue
        if os.waitstatus_to_exitcode(status) != 0 and not rc:
            rc = 1  # the others would wait for it in a collective
            for other in ranks:
                os.kill(other, signal.SIGKILL)
    return rc


def serve():
    """Runs the jobs whose specs come one JSON line at a time on stdin, one
    after the other, each in a forked process leading its own session (its
    ranks with it: os.killpg ends them all): prints "job <pid>" when one
    starts and "done <exit code>" when it ends (-9: killed) and every process
    of it is gone (its run files unlocked).  The ranks of a killed job are
    orphans that die on their own time (one in a commit's fsync finishes
    it first): as the jobs' subreaper this process reaps them, and so knows."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    while True:
        line = sys.stdin.readline()
        if not line:  # the test is done: no interpreter teardown to wait for
            sys.stdout.flush()
            os._exit(0)
        spec = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        me = os.getpid()
        pid = os.fork()
        if pid == 0:
            rc = 1
            try:
                _die_with_parent(me)
                os.setsid()
                rc = run_job(spec)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(rc)
        print("job %d" % pid, flush=True)
        _, status = os.waitpid(pid, 0)
        while subreaper:  # the job's orphaned ranks, if it was killed
            try:
                os.wait()
            except ChildProcessError:
                break
        print("done %d" % os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        with open(sys.argv[1]) as f:
            sys.exit(run_job(json.load(f)))
