#!/usr/bin/python3
"""Small CNN on Fashion-MNIST: full data vs InfoBatch vs random pruning, over seeds.

    PYTHONPATH=python examples/train_fmnist.py --policy none,infobatch,random \\
        --seeds 0,1,2 --epochs 6 --out results.json --plot results.png

Every (policy, seed) trains a fresh CNN (conv 1->8, conv 8->16, linear 400->64->10)
through the three-line API of ibstore.torch with its own run state in a
temporary directory, SGD with momentum 0.9 and a cosine learning rate stepped
per batch (sized by len(loader), so every policy follows the same schedule per
epoch).  After each epoch it evaluates the test set and records: test
accuracy, forward passes (samples trained on) and the sum of their weights,
seconds of training, and data-wait seconds (time inside the loader
iterator's __next__, decoding included) against compute seconds
(forward, update, backward, step).  Writes the JSON (per policy, per seed, per
epoch, plus a summary) and a PNG (accuracy and samples per epoch, mean over
seeds, one line per policy).  CPU only.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import ibstore  # noqa: E402
import ibstore.torch  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"
POLICIES = ("none", "infobatch", "random")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", default=os.path.join(REPO, "work", "fmnist-train.ibs"))
    p.add_argument("--test", default=os.path.join(REPO, "work", "fmnist-test.ibs"))
    p.add_argument("--policy", default="none,infobatch,random",
                   help="comma-separated subset of none, infobatch, random")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--delta", type=float, default=0.875)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=1,
                   help="ibstore decode threads (default 1: on 2 cores more decode threads "
                        "compete with torch's OpenMP threads, measured 70 s vs 6 s an epoch)")
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--images", action="store_true",
                   help="train from the training images packed as PNG files, decoded and "
                        "augmented by ibstore's C image stage (--augment: random crop with "
                        "--pad pixels of padding, or RandomResizedCrop(28, "
                        "scale=(--crop-scale, 1)); then a horizontal flip) instead of the raw "
                        "IDX pixels")
    p.add_argument("--png-train", default=os.path.join(REPO, "work", "fmnist-train-png.ibs"),
                   help="with --images: the PNG pack (made from the IDX files when missing)")
    p.add_argument("--augment", choices=("pad", "rrc"), default="pad",
                   help="with --images: 'pad' (default): RandomCrop(28, padding=--pad); "
                        "'rrc': RandomResizedCrop(28, scale=(--crop-scale, 1))")
    p.add_argument("--pad", type=int, default=2)
    p.add_argument("--crop-scale", type=float, default=0.64)
    p.add_argument("--out", default="results.json")
    p.add_argument("--plot", default=None, help="PNG path (default: none)")
    a = p.parse_args(argv)
    a.policies = [s.strip() for s in a.policy.split(",") if s.strip()]
    for pol in a.policies:
        if pol not in POLICIES:
            p.error("unknown policy %r" % pol)
    a.seed_list = [int(s) for s in a.seeds.split(",") if s.strip()]
    return a


def ensure_dataset(path, images, labels):
    if os.path.exists(path):
        return
    cli = os.environ.get("IBSTORE_CLI") or os.path.join(REPO, "build", "tools", "ibstore")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    r = subprocess.run([cli, "pack", "-q", "--from", "idx", os.path.join(FMNIST, images),
                        os.path.join(FMNIST, labels), path])
    if r.returncode != 0:
        sys.exit("packing %s failed" % path)


def ensure_png_dataset(path):
    """The 60 000 training images as PNG files in class folders, packed with
    `ibstore pack --from folder` (made once; lossless, so the pixels are the
    IDX file's)."""
    if os.path.exists(path):
        return
    import gzip
    import shutil

    from PIL import Image

    def idx(name):
        with gzip.open(os.path.join(FMNIST, name), "rb") as f:
            raw = f.read()
        nd = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)

    x, y = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
    tmp = tempfile.mkdtemp(prefix="fmnist-png-")
    try:
        for c in range(10):
            os.makedirs(os.path.join(tmp, "%d" % c))
        for i in range(len(y)):
            Image.fromarray(x[i]).save(os.path.join(tmp, "%d" % y[i], "%05d.png" % i))
        cli = os.environ.get("IBSTORE_CLI") or os.path.join(REPO, "build", "tools", "ibstore")
        r = subprocess.run([cli, "pack", "-q", "--from", "folder", tmp, path])
        if r.returncode != 0:
            sys.exit("packing %s failed" % path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_model():
    return nn.Sequential(
        nn.Unflatten(1, (1, 28)),                                 # [n,28,28] -> [n,1,28,28]
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),          # 8 x 13 x 13
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),         # 16 x 5 x 5
        nn.Flatten(), nn.Linear(16 * 5 * 5, 64), nn.ReLU(), nn.Linear(64, 10))


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


def run_one(args, policy, seed, test_x, test_y, tmpdir):
    torch.manual_seed(seed)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    criterion = nn.CrossEntropyLoss(reduction="none")
    run = os.path.join(tmpdir, "%s-seed%d.state" % (policy, seed))
    extra = {}
    if args.images:  # PNG files through the C image stage, with augmentation
        aug = (dict(pad=args.pad) if args.augment == "pad"
               else dict(scale=(args.crop_scale, 1.0)))
        extra["decode"] = ibstore.torch.Images(28, train=True, dtype="float32", layout="chw",
                                               **aug)
    loader = ibstore.torch.Loader(args.png_train if args.images else args.train,
                                  batch_size=args.batch_size,
                                  num_epochs=args.epochs, prune_ratio=args.ratio, run=run,
                                  policy=policy, delta=args.delta, seed=seed,
                                  threads=args.threads, **extra)
    epochs = []
    try:
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            batches = loader.epoch(epoch)
            steps = len(loader)  # known before the first batch
            it = iter(batches)
            wait = compute = 0.0
            samples = 0
            weight_sum = 0.0
            step = 0
            while True:
                tw = time.perf_counter()
                try:
                    x, y = next(it)
                except StopIteration:
                    wait += time.perf_counter() - tw
                    break
                if args.images:
                    x = x[:, 0]  # [n, 3, 28, 28] of a gray image: one channel, [n, 28, 28]
                tc = time.perf_counter()
                wait += tc - tw
                weight_sum += float(loader.batch.weights.sum())
                samples += len(y)
                progress = (epoch + step / max(steps, 1)) / args.epochs
                for g in opt.param_groups:
                    g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * progress))
                loss = loader.update(criterion(model(x), y))
                opt.zero_grad()
                loss.backward()
                opt.step()
                compute += time.perf_counter() - tc
                step += 1
            seconds = time.perf_counter() - t0
            te = time.perf_counter()
            acc = accuracy(model, test_x, test_y)
            eval_s = time.perf_counter() - te
            plan = loader.info.plan
            rec = {"epoch": epoch, "test_acc": acc, "forward_passes": samples,
                   "weight_sum": weight_sum, "batches": step, "seconds": seconds,
                   "data_wait_s": wait, "compute_s": compute, "eval_s": eval_s,
                   "kept": plan.get("kept"), "pruned": plan.get("pruned")}
            epochs.append(rec)
            print("%-9s seed %d epoch %2d  acc %.4f  samples %6d  %6.2f s  wait %5.2f s "
                  "(%.1f%%)" % (policy, seed, epoch, acc, samples, seconds, wait,
                                100 * wait / max(wait + compute, 1e-9)), flush=True)
    finally:
        loader.close()
    return {"epochs": epochs, "final_acc": epochs[-1]["test_acc"],
            "forward_passes": sum(e["forward_passes"] for e in epochs),
            "seconds": sum(e["seconds"] for e in epochs),
            "data_wait_s": sum(e["data_wait_s"] for e in epochs),
            "compute_s": sum(e["compute_s"] for e in epochs)}


def summarize(results):
    out = {}
    base = None
    for pol, seeds in results.items():
        runs = list(seeds.values())
        acc = np.array([r["final_acc"] for r in runs]) * 100
        fp = np.array([r["forward_passes"] for r in runs], float)
        sec = np.array([r["seconds"] for r in runs])
        wait = sum(r["data_wait_s"] for r in runs)
        comp = sum(r["compute_s"] for r in runs)
        s = {"acc_mean": acc.mean(), "acc_std": acc.std(ddof=1) if len(acc) > 1 else 0.0,
             "forward_mean": fp.mean(), "seconds_mean": sec.mean(),
             "seconds_std": sec.std(ddof=1) if len(sec) > 1 else 0.0,
             "data_wait_share": wait / max(wait + comp, 1e-9), "runs": len(runs)}
        out[pol] = s
        if pol == "none":
            base = s
    if base is not None:
        for s in out.values():
            s["forward_rel"] = s["forward_mean"] / base["forward_mean"]
            s["seconds_rel"] = s["seconds_mean"] / base["seconds_mean"]
            s["acc_gap"] = s["acc_mean"] - base["acc_mean"]
    return {k: {kk: float(vv) if isinstance(vv, (np.floating, float)) else vv
                for kk, vv in v.items()} for k, v in out.items()}


def table(summary):
    lines = ["| policy | final test acc (%) | Δ vs none | forward passes | vs none "
             "| wall-clock / run (s) | vs none | data wait / step |",
             "|---|---|---|---|---|---|---|---|"]
    for pol, s in summary.items():
        lines.append("| %s | %.2f ± %.2f | %+.2f | %.0f | %s | %.1f ± %.1f | %s | %.2f %% |" % (
            pol, s["acc_mean"], s["acc_std"], s.get("acc_gap", 0.0), s["forward_mean"],
            "%.3f" % s["forward_rel"] if "forward_rel" in s else "-",
            s["seconds_mean"], s["seconds_std"],
            "%.3f" % s["seconds_rel"] if "seconds_rel" in s else "-",
            100 * s["data_wait_share"]))
    return "\n".join(lines)


def plot(results, path, epochs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    xs = np.arange(epochs)
    for pol, seeds in results.items():
        acc = np.array([[e["test_acc"] * 100 for e in r["epochs"]] for r in seeds.values()])
        fp = np.array([[e["forward_passes"] for e in r["epochs"]] for r in seeds.values()])
        a1.plot(xs, acc.mean(0), marker="o", label=pol)
        a2.plot(xs, fp.mean(0), marker="o", label=pol)
    a1.set_xlabel("epoch")
    a1.set_ylabel("test accuracy (%)")
    a1.set_title("Test accuracy (mean over seeds)")
    a2.set_xlabel("epoch")
    a2.set_ylabel("samples trained (forward passes)")
    a2.set_title("Samples per epoch")
    a2.set_ylim(bottom=0)
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    ensure_dataset(args.train, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    if args.images:
        ensure_png_dataset(args.png_train)
    ensure_dataset(args.test, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    test_x, test_y = load_test(args.test)
    results = {p: {} for p in args.policies}
    with tempfile.TemporaryDirectory(prefix="train-fmnist-") as tmp:
        for seed in args.seed_list:       # policies interleaved per seed: drift hits all alike
            for pol in args.policies:
                results[pol][str(seed)] = run_one(args, pol, seed, test_x, test_y, tmp)
    summary = summarize(results)
    doc = {"config": {k: getattr(args, k) for k in
                      ("train", "test", "policies", "seed_list", "epochs", "ratio", "delta",
                       "batch_size", "lr", "threads", "torch_threads", "images",
                       "png_train", "augment", "pad", "crop_scale")},
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "torch": torch.__version__},
           "date": time.strftime("%Y-%m-%d"),
           "results": results, "summary": summary}
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
    if args.plot:
        plot(results, args.plot, args.epochs)
    print(table(summary))


if __name__ == "__main__":
    main()
