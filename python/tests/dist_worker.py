"""Helper of test_torch_distributed_gloo: two gloo ranks on 127.0.0.1 train
nothing but report random losses for 3 epochs; each rank saves what it saw.

usage: dist_worker.py DATASET OUTDIR
"""
import os
import socket
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ibstore.torch


def worker(rank, world, port, path, out):
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank,
                            world_size=world)
    res = {}
    rng = np.random.default_rng(100 + rank)
    with ibstore.torch.Loader(path, batch_size=64, num_epochs=3, prune_ratio=0.5,
                              run=os.path.join(out, "run.state"), threads=1) as loader:
        assert (loader.rank, loader.world) == (rank, world)
        assert loader.run.config["rank"] == rank and loader.run.config["world"] == world
        for e in range(3):
            ids, ws = [], []
            for x, y in loader.epoch(e):
                ids.append(loader.batch.ids.copy())
                ws.append(loader.batch.weights.copy())
                loss = torch.from_numpy(rng.random(len(y)).astype(np.float32) + 0.01)
                loader.update(loss)
            res["ids%d" % e] = np.concatenate(ids)
            res["w%d" % e] = np.concatenate(ws)
            res["kept%d" % e] = loader.info.plan["kept"]
            res["scores%d" % e] = loader.scores()
    np.savez(os.path.join(out, "rank%d.npz" % rank), **res)
    dist.destroy_process_group()


def main():
    path, out = sys.argv[1], sys.argv[2]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(2, port, path, out), nprocs=2, join=True)


if __name__ == "__main__":
    main()
