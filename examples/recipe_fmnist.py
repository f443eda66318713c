#!/usr/bin/python3
"""One CNN recipe on Fashion-MNIST, four data paths (plus an order control), over seeds.

    PYTHONPATH=python examples/recipe_fmnist.py --seeds 0,1,2,3,4 --epochs 16 \\
        --arms A,B,C,D,E --out examples/results/recipe_fmnist.json \\
        --plot examples/results/recipe_fmnist.png

The recipe (issue #17, item 6): conv 1->16 (5x5), ReLU, max-pool 2, conv
16->32 (5x5), ReLU, max-pool 2, linear 512->128, ReLU, linear 128->10; SGD lr
--lr (0.05), momentum 0.9, weight decay 5e-4, cosine learning rate stepped
per batch and sized by len(loader) of each epoch (so a pruned epoch runs the
same schedule per epoch as a full one), batch 128, inputs x/255 (float32) in
every arm, cross-entropy.  Arms, trained one after another for each seed
(interleaved, so machine noise hits all arms alike; every arm of a seed
starts from the same initial weights, torch.manual_seed(seed)):

  A  plain torch: DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True),
     full data (tensors loaded from the Debian IDX files)
  B  ibstore.torch.InfoBatch over the same TensorDataset (the reference
     InfoBatch's loop: DataLoader(ds, batch_size=128, sampler=ds.sampler),
     loss = ds.update(criterion(out, y)) with reduction='none'), r, delta
  C  ibstore.torch.Loader over the packed work/fmnist-train.ibs, policy 'none'
  D  ibstore.torch.Loader, policy 'infobatch', r, delta
  E  control for the sample order: arm A's loop on the in-memory tensors, but
     the batches in exactly the order the ibstore run plans for policy
     'none' and this seed (ibstore.Run's slice of every epoch, which arm C's
     Loader emits; checked when C runs too) — same data and loss as A,
     ibstore's permutation instead of torch's

Records per run and epoch: test accuracy on the 10 000 test images (after
every epoch, outside the timed loop), forward passes (samples trained on),
seconds of the training loop, batches; per C/E epoch a hash of the id
sequence (to show C emits the plan order).  --order-stats adds, without
training, statistics of the orders themselves (ibstore plan vs torch
randperm): permutation check, overlap between consecutive epochs, label
balance within batches.  Writes the JSON (config, machine, per run, summary:
mean and sample sd over seeds, ratios vs arm A) and optionally a PNG.  CPU
only, torch.set_num_threads(--torch-threads).
"""

import argparse
import gzip
import hashlib
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
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import ibstore  # noqa: E402
import ibstore.torch  # noqa: E402

FMNIST = "/usr/share/datasets/fashion-mnist"
ARMS = {"A": "torch DataLoader, full data",
        "B": "ibstore.torch.InfoBatch (drop-in)",
        "C": "ibstore.torch.Loader, policy none",
        "D": "ibstore.torch.Loader, policy infobatch",
        "E": "torch loop, ibstore plan order (control)"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Arms: " + "; ".join("%s = %s" % kv for kv in ARMS.items()))
    p.add_argument("--data", default=FMNIST, help="Fashion-MNIST IDX .gz files (default %(default)s)")
    p.add_argument("--train", default=os.path.join(REPO, "work", "fmnist-train.ibs"),
                   help="packed training set for arms C/D (packed from --data when missing)")
    p.add_argument("--test", default=os.path.join(REPO, "work", "fmnist-test.ibs"),
                   help="packed test set (checked equal to the IDX test set)")
    p.add_argument("--arms", default="A,B,C,D", help="comma-separated subset of A,B,C,D,E")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--ratio", type=float, default=0.5, help="InfoBatch prune ratio r")
    p.add_argument("--delta", type=float, default=0.875, help="InfoBatch annealing delta")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=1,
                   help="ibstore decode threads for C/D (default 1: on 2 cores more compete "
                        "with torch's threads)")
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--order-stats", action="store_true",
                   help="also record statistics of the sample orders (no training)")
    p.add_argument("--out", default="recipe_fmnist.json")
    p.add_argument("--plot", default=None, help="PNG path (default: none)")
    p.add_argument("--summarize", metavar="JSON", default=None,
                   help="no training: recompute the summary of an existing results JSON "
                        "(also of a partial one), print the table (and --plot)")
    a = p.parse_args(argv)
    a.arm_list = [s.strip().upper() for s in a.arms.split(",") if s.strip()]
    for arm in a.arm_list:
        if arm not in ARMS:
            p.error("unknown arm %r" % arm)
    a.seed_list = [int(s) for s in a.seeds.split(",") if s.strip()]
    return a


# ---------------------------------------------------------------- data ----

def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_idx(data, split):
    x = read_idx(os.path.join(data, "%s-images-idx3-ubyte.gz" % split))
    y = read_idx(os.path.join(data, "%s-labels-idx1-ubyte.gz" % split))
    return x, y


def ensure_dataset(path, data, split):
    if os.path.exists(path):
        return
    cli = os.environ.get("IBSTORE_CLI") or os.path.join(REPO, "build", "tools", "ibstore")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    r = subprocess.run([cli, "pack", "-q", "--from", "idx",
                        os.path.join(data, "%s-images-idx3-ubyte.gz" % split),
                        os.path.join(data, "%s-labels-idx1-ubyte.gz" % split), path])
    if r.returncode != 0:
        sys.exit("packing %s failed" % path)


def check_packed(path, x, y):
    """The packed dataset holds the IDX images and labels, id i = IDX index i."""
    with ibstore.Dataset(path) as ds:
        if len(ds) != len(y) or ds.fixed_size != x[0].size:
            sys.exit("%s does not match the IDX files (size)" % path)
        buf = np.empty(ds.fixed_size, np.uint8)
        for i in range(len(ds)):
            _, lab = ds.read_array(i, out=buf)
            if lab != y[i] or not np.array_equal(buf, x[i].reshape(-1)):
                sys.exit("%s differs from the IDX files at id %d" % (path, i))


def to_tensors(x, y):
    # the same conversion as ibstore.torch.decode_array: uint8 -> float32, / 255
    return torch.from_numpy(x.astype(np.float32)).div_(255.0), torch.from_numpy(y.astype(np.int64))


# --------------------------------------------------------------- model ----

def make_model():
    return nn.Sequential(
        nn.Unflatten(1, (1, 28)),                                  # [n,28,28] -> [n,1,28,28]
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),          # 16 x 12 x 12
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),         # 32 x 4 x 4
        nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    correct = sum((model(x[i:i + 2000]).argmax(1) == y[i:i + 2000]).sum().item()
                  for i in range(0, len(y), 2000))
    model.train()
    return correct / len(y)


def set_lr(opt, args, epoch, step, steps):
    progress = (epoch + step / max(steps, 1)) / args.epochs
    for g in opt.param_groups:
        g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * progress))


def seq_hash(ids):
    return hashlib.sha1(np.ascontiguousarray(ids, np.int64).tobytes()).hexdigest()[:16]


def plan_orders(args, seed, n, tmpdir):
    """Every epoch's id sequence of an ibstore run, policy 'none' (no scores needed)."""
    path = os.path.join(tmpdir, "plan-seed%d.state" % seed)
    out = []
    with ibstore.Run(path, samples=n, epochs=args.epochs, batch_size=args.batch_size,
                     policy="none", seed=seed) as run:
        for e in range(args.epochs):
            run.epoch_begin(e)
            ids, _ = run.slice()
            out.append(ids.astype(np.int64))
            run.epoch_end()
    os.unlink(path)
    return out


# ---------------------------------------------------------------- arms ----

class Arm:
    """Common bookkeeping: per epoch, test accuracy, forward passes, seconds."""

    def __init__(self, args, seed, test):
        torch.manual_seed(seed)
        self.args, self.seed, self.test = args, seed, test
        self.model = make_model()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=args.lr, momentum=args.momentum,
                                   weight_decay=args.weight_decay)
        self.criterion = nn.CrossEntropyLoss(reduction="none")
        self.epochs = []

    def step(self, loss):
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def record(self, name, epoch, samples, batches, seconds, **extra):
        te = time.perf_counter()
        acc = accuracy(self.model, *self.test)
        rec = {"epoch": epoch, "test_acc": acc, "forward_passes": samples, "batches": batches,
               "seconds": seconds, "eval_s": time.perf_counter() - te}
        rec.update(extra)
        self.epochs.append(rec)
        print("%s seed %d epoch %2d  acc %.4f  samples %6d  batches %3d  %6.2f s" % (
            name, self.seed, epoch, acc, samples, batches, seconds), flush=True)

    def result(self):
        e = self.epochs
        return {"epochs": e, "final_acc": e[-1]["test_acc"],
                "forward_passes": sum(r["forward_passes"] for r in e),
                "seconds": sum(r["seconds"] for r in e)}


def run_torch(args, seed, test, train, order=None, name="A"):
    """Arm A (torch shuffle) or E (order = the ibstore plan's id sequences)."""
    arm = Arm(args, seed, test)
    x, y = train
    loader = None
    if order is None:
        loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size, shuffle=True)
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        if loader is not None:
            batches, steps = loader, len(loader)
        else:
            ids = torch.from_numpy(order[epoch])
            parts = ids.split(args.batch_size)
            batches, steps = ((x[i], y[i]) for i in parts), len(parts)
        samples = step = 0
        for xb, yb in batches:
            set_lr(arm.opt, args, epoch, step, steps)
            arm.step(arm.criterion(arm.model(xb), yb).mean())
            samples += len(yb)
            step += 1
        seconds = time.perf_counter() - t0
        extra = {"order_hash": seq_hash(order[epoch])} if order is not None else {}
        arm.record(name, epoch, samples, step, seconds, **extra)
    return arm.result()


def run_infobatch(args, seed, test, train, tmpdir):
    """Arm B: the reference InfoBatch loop through ibstore.torch.InfoBatch."""
    arm = Arm(args, seed, test)
    ds = ibstore.torch.InfoBatch(TensorDataset(*train), args.epochs, prune_ratio=args.ratio,
                                 delta=args.delta, seed=seed,
                                 run=os.path.join(tmpdir, "B-seed%d.state" % seed))
    loader = DataLoader(ds, batch_size=args.batch_size, sampler=ds.sampler)
    try:
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            steps = len(loader)
            samples = step = 0
            for xb, yb in loader:
                set_lr(arm.opt, args, epoch, step, steps)
                arm.step(ds.update(arm.criterion(arm.model(xb), yb)))
                samples += len(yb)
                step += 1
            seconds = time.perf_counter() - t0
            arm.record("B", epoch, samples, step, seconds)
    finally:
        ds.close()
    return arm.result()


def run_loader(args, seed, test, policy, tmpdir, name):
    """Arms C/D: ibstore.torch.Loader over the packed dataset."""
    arm = Arm(args, seed, test)
    loader = ibstore.torch.Loader(args.train, batch_size=args.batch_size, num_epochs=args.epochs,
                                  prune_ratio=args.ratio, delta=args.delta, policy=policy,
                                  seed=seed, threads=args.threads,
                                  run=os.path.join(tmpdir, "%s-seed%d.state" % (name, seed)))
    try:
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            batches = loader.epoch(epoch)
            steps = len(loader)
            samples = step = 0
            ids = []
            for xb, yb in batches:
                ids.append(loader.batch.ids.astype(np.int64))
                set_lr(arm.opt, args, epoch, step, steps)
                arm.step(loader.update(arm.criterion(arm.model(xb), yb)))
                samples += len(yb)
                step += 1
            seconds = time.perf_counter() - t0
            arm.record(name, epoch, samples, step, seconds,
                       order_hash=seq_hash(np.concatenate(ids)) if ids else None)
    finally:
        loader.close()
    return arm.result()


# --------------------------------------------------------- order stats ----

def order_stats(args, labels, tmpdir):
    """ibstore plan orders (policy none) vs torch randperm, same seeds."""
    n, b = len(labels), args.batch_size
    nb = n // b

    def describe(orders):
        perm = all(np.array_equal(np.sort(o), np.arange(n)) for o in orders)
        same_pos = [float((orders[e] == orders[e + 1]).mean()) for e in range(len(orders) - 1)]
        rank_corr = [float(np.corrcoef(np.argsort(orders[e]), np.argsort(orders[e + 1]))[0, 1])
                     for e in range(len(orders) - 1)]
        # pairs of samples sharing a batch in epoch e that share one in e+1 again
        together = []
        for e in range(len(orders) - 1):
            bat = np.empty(n, np.int64)
            bat[orders[e + 1]] = np.arange(n) // b
            cur = orders[e][:nb * b].reshape(nb, b)
            together.append(float(np.mean([np.mean(bat[r][:, None] == bat[r][None, :]) for r in
                                           cur[:50]]) - 1.0 / b) * b / (b - 1))
        # label balance: chi-square of each batch's class counts against uniform
        chi = []
        for o in orders:
            c = np.stack([np.bincount(labels[o[i * b:(i + 1) * b]], minlength=10)
                          for i in range(nb)])
            chi.append(float((((c - b / 10) ** 2) / (b / 10)).sum(1).mean()))
        # locality: mean |id gap| between neighbours in the sequence (uniform: n/3)
        gap = [float(np.abs(np.diff(o)).mean()) for o in orders]
        return {"all_permutations": perm, "same_position_next_epoch": float(np.mean(same_pos)),
                "position_corr_next_epoch": float(np.mean(rank_corr)),
                "batch_pairs_repeated_next_epoch": float(np.mean(together)),
                "batch_label_chi2_mean": float(np.mean(chi)),
                "neighbour_id_gap_mean": float(np.mean(gap)), "uniform_gap": n / 3}

    out = {}
    for seed in args.seed_list:
        ib = plan_orders(args, seed, n, tmpdir)
        g = torch.Generator()
        g.manual_seed(seed)
        tp = [torch.randperm(n, generator=g).numpy() for _ in range(args.epochs)]
        out[str(seed)] = {"ibstore_plan": describe(ib), "torch_randperm": describe(tp)}
        print("order stats seed %d: %s" % (seed, json.dumps(out[str(seed)])), flush=True)
    return out


# ------------------------------------------------------------- summary ----

def sd(a):
    return float(np.std(a, ddof=1)) if len(a) > 1 else 0.0


def summarize(results):
    out = {}
    for arm, seeds in results.items():
        runs = list(seeds.values())
        acc = np.array([r["final_acc"] for r in runs]) * 100
        fp = np.array([r["forward_passes"] for r in runs], float)
        sec = np.array([r["seconds"] for r in runs])
        # on a shared machine: every epoch's fastest time over the seeds, summed
        # (a lower envelope, robust to other load; the mean is what was measured)
        env = float(np.array([[e["seconds"] for e in r["epochs"]] for r in runs]).min(0).sum())
        out[arm] = {"what": ARMS[arm], "runs": len(runs),
                    "acc_mean": float(acc.mean()), "acc_sd": sd(acc),
                    "forward_mean": float(fp.mean()), "forward_sd": sd(fp),
                    "seconds_mean": float(sec.mean()), "seconds_sd": sd(sec),
                    "seconds_envelope": env}
    base = out.get("A")
    if base:
        for arm, s in out.items():
            s["acc_gap_vs_A"] = s["acc_mean"] - base["acc_mean"]
            s["forward_ratio_vs_A"] = s["forward_mean"] / base["forward_mean"]
            s["seconds_ratio_vs_A"] = s["seconds_mean"] / base["seconds_mean"]
            s["envelope_ratio_vs_A"] = s["seconds_envelope"] / base["seconds_envelope"]
            common = sorted(set(results[arm]) & set(results["A"]))
            if arm != "A" and len(common) > 1:
                d = np.array([results[arm][k]["final_acc"] - results["A"][k]["final_acc"]
                              for k in common]) * 100
                s["paired_acc_diff_vs_A"] = {"mean": float(d.mean()), "sd": sd(d),
                                             "se": sd(d) / math.sqrt(len(d)), "n": len(d)}
    return out


def table(summary):
    lines = ["| arm | final test acc (%) | Δ vs A | forward passes | vs A | training s / run "
             "| vs A | fastest-epoch envelope (s) | vs A |", "|---|---|---|---|---|---|---|---|---|"]
    for arm, s in summary.items():
        lines.append("| %s %s | %.2f ± %.2f | %s | %.0f | %s | %.1f ± %.1f | %s | %.1f | %s |" % (
            arm, s["what"], s["acc_mean"], s["acc_sd"],
            "%+.2f" % s["acc_gap_vs_A"] if "acc_gap_vs_A" in s else "-", s["forward_mean"],
            "%.3f" % s["forward_ratio_vs_A"] if "forward_ratio_vs_A" in s else "-",
            s["seconds_mean"], s["seconds_sd"],
            "%.3f" % s["seconds_ratio_vs_A"] if "seconds_ratio_vs_A" in s else "-",
            s["seconds_envelope"],
            "%.3f" % s["envelope_ratio_vs_A"] if "envelope_ratio_vs_A" in s else "-"))
    return "\n".join(lines)


def plot(results, path, epochs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    xs = np.arange(epochs)
    for arm, seeds in results.items():
        acc = np.array([[e["test_acc"] * 100 for e in r["epochs"]] for r in seeds.values()])
        fp = np.array([[e["forward_passes"] for e in r["epochs"]] for r in seeds.values()])
        a1.plot(xs, acc.mean(0), marker="o", ms=3, label="%s %s" % (arm, ARMS[arm]))
        a2.plot(xs, fp.mean(0), marker="o", ms=3, label=arm)
    a1.set_xlabel("epoch")
    a1.set_ylabel("test accuracy (%)")
    a1.set_title("Test accuracy (mean over seeds)")
    a1.set_ylim(bottom=85)
    a2.set_xlabel("epoch")
    a2.set_ylabel("samples trained (forward passes)")
    a2.set_title("Samples per epoch")
    a2.set_ylim(bottom=0)
    for a in (a1, a2):
        a.grid(alpha=0.3)
    a1.legend(fontsize=7)
    a2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    if args.summarize:
        with open(args.summarize) as f:
            doc = json.load(f)
        results = doc["results"]
        summary = summarize(results)
        if args.plot:
            plot(results, args.plot, doc["config"]["epochs"])
        print(table(summary))
        for arm, s in summary.items():
            d = s.get("paired_acc_diff_vs_A")
            if d:
                print("%s - A, paired by seed: %+.2f ± %.2f (se, n=%d)" % (
                    arm, d["mean"], d["se"], d["n"]))
        return
    torch.set_num_threads(args.torch_threads)
    tr_x, tr_y = load_idx(args.data, "train")
    te_x, te_y = load_idx(args.data, "t10k")
    ensure_dataset(args.train, args.data, "train")
    ensure_dataset(args.test, args.data, "t10k")
    check_packed(args.train, tr_x, tr_y)  # C/D read the same images under the same ids
    check_packed(args.test, te_x, te_y)   # so every arm is evaluated on one test tensor
    train, test = to_tensors(tr_x, tr_y), to_tensors(te_x, te_y)
    doc = {"config": {k: getattr(args, k) for k in
                      ("data", "train", "test", "arm_list", "seed_list", "epochs", "ratio",
                       "delta", "batch_size", "lr", "momentum", "weight_decay", "threads",
                       "torch_threads")},
           "arms": {a: ARMS[a] for a in args.arm_list},
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "cpu": _cpu_name(), "torch": torch.__version__,
                       "ibstore_library": ibstore.library_path},
           "date": time.strftime("%Y-%m-%d %H:%M %Z"), "command": " ".join(sys.argv)}
    results = {a: {} for a in args.arm_list}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recipe-fmnist-") as tmp:
        if args.order_stats:
            doc["order_stats"] = order_stats(args, tr_y.astype(np.int64), tmp)
        for seed in args.seed_list:       # arms interleaved per seed: drift hits all alike
            order = plan_orders(args, seed, len(tr_y), tmp) if "E" in args.arm_list else None
            for arm in args.arm_list:
                if arm == "A":
                    r = run_torch(args, seed, test, train)
                elif arm == "B":
                    r = run_infobatch(args, seed, test, train, tmp)
                elif arm == "C":
                    r = run_loader(args, seed, test, "none", tmp, "C")
                elif arm == "D":
                    r = run_loader(args, seed, test, "infobatch", tmp, "D")
                else:
                    r = run_torch(args, seed, test, train, order=order, name="E")
                results[arm][str(seed)] = r
                _save(args, doc, results, t_all)  # partial results survive an interruption
    _save(args, doc, results, t_all)
    if "C" in results and "E" in results:
        same = all(a["order_hash"] == b["order_hash"]
                   for s in results["C"] if s in results["E"]
                   for a, b in zip(results["C"][s]["epochs"], results["E"][s]["epochs"]))
        print("C's emitted id sequences == the run plan's (E): %s" % same)
    if args.plot:
        plot(results, args.plot, args.epochs)
    print(table(doc["summary"]))


def _save(args, doc, results, t_all):
    done = {a: r for a, r in results.items() if r}
    doc["results"] = done
    doc["summary"] = summarize(done)
    doc["total_seconds"] = time.perf_counter() - t_all
    if "C" in done and "E" in done:
        doc["c_emits_plan_order"] = all(
            a["order_hash"] == b["order_hash"] for s in done["C"] if s in done["E"]
            for a, b in zip(done["C"][s]["epochs"], done["E"][s]["epochs"]))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, args.out)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
