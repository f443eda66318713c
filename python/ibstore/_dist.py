"""torch.distributed plumbing shared by ibstore.torch.Loader and
ibstore.torch.InfoBatch: which rank of how many this process is, its run
file, and the all-gather of (id, loss) pairs that keeps every rank's scores
identical."""

import os
import shutil
import tempfile

import numpy as np
import torch

from . import core


def active():
    """torch.distributed when it is initialised, else None."""
    d = getattr(torch, "distributed", None)
    if d is not None and d.is_available() and d.is_initialized():
        return d
    return None


def placement(process_group, rank, world):
    """(dist, rank, world): rank and world default to the process group's;
    dist is None unless there is more than one rank to talk to."""
    dist = active()
    if dist is not None:
        rank = dist.get_rank(process_group) if rank is None else rank
        world = dist.get_world_size(process_group) if world is None else world
    rank, world = int(rank or 0), int(world or 1)
    return (dist if dist is not None and world > 1 else None), rank, world


def run_path(run, prefix):
    """(base, tmpdir): the job's run state base path, opened with
    core.Run(base, ..., elastic=True) so that each rank's file is the
    library's choice ('<run>' for one rank, '<run>.rank<r>-of-<w>', and
    after a resume on another number of ranks '<run>.g<g>...'); with run
    None, one in a new temporary directory (tmpdir, which the caller
    removes at close)."""
    tmpdir = None
    if run is None:
        tmpdir = tempfile.mkdtemp(prefix=prefix)
        run = os.path.join(tmpdir, "run.state")
    return os.fspath(run), tmpdir


def stored_config(base):
    """The configuration stored by the job at ``base`` (its newest complete
    set of per-rank files), or None when it has none."""
    d = tempfile.mkdtemp(prefix="ibstore-config-")
    try:
        out = os.path.join(d, "merged.run")
        try:
            core.merge_run(base, out)
        except core.IbstoreError as e:
            if e.code == core.ENOTFOUND:
                return None
            raise
        with core.Run(out) as r:
            return r.config
    finally:
        shutil.rmtree(d, ignore_errors=True)


def all_gather_pairs(dist, group, world, ids, losses):
    """Every rank's (ids int64, losses float32), as two lists in rank order;
    a collective: every rank calls it.  Lengths may differ between ranks."""
    dev = torch.device("cpu")
    if dist.get_backend(group) == "nccl":
        dev = torch.device("cuda", torch.cuda.current_device())
    n = torch.tensor([ids.size], dtype=torch.int64, device=dev)
    ns = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(ns, n, group=group)
    ns = [int(t.item()) for t in ns]
    m = max(ns)
    tid = torch.zeros(m, dtype=torch.int64, device=dev)
    tl = torch.zeros(m, dtype=torch.float32, device=dev)
    tid[:ids.size] = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
    tl[:losses.size] = torch.from_numpy(np.ascontiguousarray(losses, dtype=np.float32))
    gid = [torch.empty_like(tid) for _ in range(world)]
    gl = [torch.empty_like(tl) for _ in range(world)]
    dist.all_gather(gid, tid, group=group)
    dist.all_gather(gl, tl, group=group)
    return ([g[:k].cpu().numpy() for g, k in zip(gid, ns)],
            [g[:k].cpu().numpy() for g, k in zip(gl, ns)])
