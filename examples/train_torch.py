#!/usr/bin/python3
"""Train a small PyTorch model on Fashion-MNIST through ibstore's InfoBatch loader.

    PYTHONPATH=python examples/train_torch.py --epochs 8 --policy infobatch
    PYTHONPATH=python examples/train_torch.py --epochs 8 --policy none
    PYTHONPATH=python examples/train_torch.py --world 2            # 2 gloo ranks on 127.0.0.1
    PYTHONPATH=python torchrun --nproc_per_node 2 examples/train_torch.py

The datasets default to work/fmnist-train.ibs and work/fmnist-test.ibs (what
scripts/demo writes); when missing they are packed from the Debian package
dataset-fashion-mnist with the ibstore command ($IBSTORE_CLI, else
build/tools/ibstore).  Prints one line per epoch: test accuracy, samples
trained on (and kept/pruned by the plan), bytes read and seconds.  CPU only.
The training loop is the three-line API of ibstore.torch:

    loader = ibstore.torch.Loader(path, batch_size=..., num_epochs=C, prune_ratio=r, run=...)
    for x, y in loader.epoch(epoch):
        loss = loader.update(criterion(model(x), y))
"""

import argparse
import math
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn as nn  # noqa: E402

import ibstore  # noqa: E402
import ibstore.torch  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", default=os.path.join(REPO, "work", "fmnist-train.ibs"))
    p.add_argument("--test", default=os.path.join(REPO, "work", "fmnist-test.ibs"))
    p.add_argument("--policy", default="infobatch", choices=["infobatch", "random", "none"])
    p.add_argument("--mode", default="native", choices=["native", "compat"])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--ratio", type=float, default=0.5, help="prune ratio r (default 0.5)")
    p.add_argument("--delta", type=float, default=0.875)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="ibstore decode threads")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="torch intra-op threads (0: cores / ranks)")
    p.add_argument("--run", default=None,
                   help="run state file (resumable); default a temporary one")
    p.add_argument("--world", type=int, default=1,
                   help="spawn this many gloo ranks on 127.0.0.1 (torchrun sets its own)")
    return p.parse_args(argv)


def ensure_dataset(path, images, labels):
    if os.path.exists(path):
        return
    cli = os.environ.get("IBSTORE_CLI") or os.path.join(REPO, "build", "tools", "ibstore")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    print("packing %s with %s" % (path, cli), flush=True)
    r = subprocess.run([cli, "pack", "-q", "--from", "idx", os.path.join(FMNIST, images),
                        os.path.join(FMNIST, labels), path])
    if r.returncode != 0 and not os.path.exists(path):  # another rank may have packed it
        sys.exit("packing %s failed" % path)


def make_model(kind):
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    return nn.Sequential(
        nn.Unflatten(1, (1, 28)),  # [n, 28, 28] -> [n, 1, 28, 28]
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def load_test(path):
    """The whole test set in memory, read through the binding."""
    with ibstore.Dataset(path) as ds:
        x = np.empty((len(ds), ds.fixed_size), np.uint8)
        y = np.empty(len(ds), np.int64)
        for i in range(len(ds)):
            _, y[i] = ds.read_array(i, out=x[i])
    return torch.from_numpy(x.astype(np.float32) / 255).reshape(-1, 28, 28), torch.from_numpy(y)


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    correct = sum((model(x[i:i + 2000]).argmax(1) == y[i:i + 2000]).sum().item()
                  for i in range(0, len(y), 2000))
    model.train()
    return correct / len(y)


def train(args, rank=0, world=1):
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.torch_threads or max(1, (os.cpu_count() or 1) // world))
    model = make_model(args.model)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    criterion = nn.CrossEntropyLoss(reduction="none")
    tmp = None
    run = args.run
    if run is None:
        tmp = tempfile.TemporaryDirectory(prefix="train-torch-")
        run = os.path.join(tmp.name, "run.state")
    test_x, test_y = load_test(args.test) if rank == 0 else (None, None)

    loader = ibstore.torch.Loader(args.train, batch_size=args.batch_size,
                                  num_epochs=args.epochs, prune_ratio=args.ratio, run=run,
                                  policy=args.policy, mode=args.mode, delta=args.delta,
                                  seed=args.seed, threads=args.threads)
    if rank == 0:
        print("policy %s, ratio %g, %d epochs, batch %d, %s, %d rank(s), backend %s"
              % (args.policy, args.ratio, args.epochs, args.batch_size, args.model, world,
                 loader.stats()["backend"]), flush=True)
    total = {"samples": 0, "seconds": 0.0}
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        batches = loader.epoch(epoch)
        steps = len(loader)  # known before the first batch: size the schedule by it
        step = 0
        for x, y in batches:
            # cosine learning rate over the run, stepped per batch
            progress = (epoch + step / max(steps, 1)) / args.epochs
            for g in opt.param_groups:
                g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * progress))
            loss = loader.update(criterion(model(x), y))
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        seconds = time.perf_counter() - t0
        st = loader.epoch_stats(epoch)
        counts = torch.tensor([loader.info.samples, st["io"]["bytes_read"]], dtype=torch.int64)
        if world > 1:
            dist.all_reduce(counts)
        samples, nbytes = int(counts[0]), int(counts[1])
        total["samples"] += samples
        total["seconds"] += seconds
        if rank == 0:
            acc = accuracy(model, test_x, test_y)
            plan = loader.info.plan
            print("epoch %2d  test acc %.4f  samples %6d (kept %d, pruned %d)  "
                  "read %5.1f MB  %5.2f s  lr %.4f"
                  % (epoch, acc, samples, plan["kept"], plan["pruned"], nbytes / 1e6, seconds,
                     opt.param_groups[0]["lr"]), flush=True)
    if rank == 0:
        print("total: %d samples in %.2f s; final test accuracy %.4f"
              % (total["samples"], total["seconds"], accuracy(model, test_x, test_y)),
              flush=True)
    loader.close()
    if tmp is not None:
        tmp.cleanup()


def spawned(rank, world, port, args):
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank,
                            world_size=world)
    try:
        train(args, rank, world)
    finally:
        dist.destroy_process_group()


def main():
    args = parse_args()
    if args.world > 1 and "WORLD_SIZE" in os.environ:
        sys.exit("--world spawns its own ranks; do not combine it with torchrun")
    ensure_dataset(args.train, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    ensure_dataset(args.test, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun
        dist.init_process_group("gloo")
        try:
            train(args, dist.get_rank(), dist.get_world_size())
        finally:
            dist.destroy_process_group()
    elif args.world > 1:
        import torch.multiprocessing as mp
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.spawn(spawned, args=(args.world, port, args), nprocs=args.world, join=True)
    else:
        train(args)


if __name__ == "__main__":
    main()
