#!/usr/bin/python3
"""bench/run_report.py — turns bench/run's JSON lines into results.md (tables
with medians, min–max and a verdict per target) and PNG plots."""

import argparse
import json
import os
import statistics
import sys
from collections import defaultdict

RATIOS = ["0", "0.3", "0.5", "0.7"]
DATASETS = ["imagenet", "cifar", "mnist", "fmnist"]
TITLE = {"imagenet": "ImageNet-like (110 000 B)", "cifar": "CIFAR-like (3 072 B)",
         "mnist": "MNIST-like (784 B)", "fmnist": "Fashion-MNIST (784 B, real)"}
IB = {"cold": ["ibstore uring+direct+huge", "ibstore uring+direct", "ibstore uring", "ibstore pread"],
      "hot": ["ibstore auto", "ibstore auto+t2", "ibstore mmap", "ibstore uring", "ibstore pread", "ibstore mmap+noverify"]}
OTHERS = ["pread", "lmdb", "tar", "torch"]
FIO = {"cold": ["fio rand huge", "fio rand", "fio seq huge", "fio seq"], "hot": ["fio rand"]}


def load(path, runs):
    cells = defaultdict(list)  # (dataset, cache, ratio, system) -> [row]
    for line in open(path):
        r = json.loads(line)
        if r["round"] > runs:
            continue
        if r["label"] == "torch":
            scale = r["kept_full"] / r["samples"] if r["samples"] else float("nan")
            r["seconds"] *= scale
            r["bytes"] = r["bytes"] * scale
            r["samples"] = r["kept_full"]
        if r["system"] != "fio":
            r["samples_per_s"] = r["samples"] / r["seconds"]
            r["MB_per_s"] = r["bytes"] / r["seconds"] / 1e6
        cells[(r["dataset"], r["cache"], r["ratio"], r["label"])].append(r)
    return cells


def med(rows, k):
    return statistics.median(r[k] for r in rows)


def rng(rows, k, fmt):
    xs = [r[k] for r in rows]
    return (fmt % min(xs)) + "–" + (fmt % max(xs))


def si(x):
    if x >= 1e6:
        return "%.2f M" % (x / 1e6)
    if x >= 1e3:
        return "%.1f k" % (x / 1e3)
    return "%.0f" % x


def sec(x):
    return "%.3f" % x if x < 10 else "%.1f" % x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--quick", type=int, default=0)
    ap.add_argument("--date", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--sizes", required=True)
    ap.add_argument("--root", type=int, default=1)
    ap.add_argument("--ratios", default=" ".join(RATIOS))
    ap.add_argument("--elapsed", type=int, default=0)
    a = ap.parse_args()
    RATIOS[:] = a.ratios.split()
    cells = load(a.results, a.runs)
    sizes = {}
    for tok in a.sizes.split():
        name, v = tok.split("=")
        n, size, sub, align = (int(x) for x in v.split(":"))
        sizes[name] = dict(n=n, size=size, sub=sub, align=align)
    present = [d for d in DATASETS if d in sizes]
    out = []
    p = out.append
    missed, met = [], []

    p("# bench/run%s — ibstore against other loaders and fio" % (" --quick" if a.quick else ""))
    p("")
    p("- date: %s" % a.date)
    p("- machine: %s" % a.machine)
    p("- ibstore commit: %s; %d rounds, systems interleaved in every round (round 1 of every "
      "system, then round 2, ...); each cell is the median epoch time with min–max over the "
      "rounds; measuring took %d s (this invocation)"
      % (a.commit, a.runs, a.elapsed))
    for d in present:
        s = sizes[d]
        p("- %s: %d samples × %d B = %.1f MB (ibstore `--align %d`); PyTorch baseline on the "
          "first %d samples' files, scaled" % (TITLE[d], s["n"], s["size"], s["n"] * s["size"] / 1e6,
                                              s["align"], s["sub"]))
    if not a.root:
        p("- **not run as root**: no drop_caches, no huge pages")
    p("- kept sets: `ibstore plan --scores F --epoch 1 --epochs 8 --ratio R` (InfoBatch prunes R of "
      "the below-mean samples), the same id list for every system; ibstore's loader epoch was "
      "checked to emit exactly that list in that order")
    p("- epoch time: wall clock from the first read to the last sample delivered; samples/s and "
      "MB/s (10^6 B of sample payload delivered) follow from it. ibstore verifies every xxh3 "
      "checksum; pread, lmdb, tar and torch check nothing. torch = DataLoader, 2 workers, batch "
      "256, one file per sample (time scaled from the subset). tar streams whole shards in "
      "archive order. fio rows: MB/s of whole blocks (record size rounded up to 4 KiB for O_DIRECT). "
      "uring+direct+huge: O_DIRECT with huge pages reserved (the loader's read windows in hugetlb "
      "memory, like fio's shmhuge buffers); the other ibstore rows run without reserved huge pages "
      "(transparent huge pages where the kernel gives them). mmap+noverify: checksums off, to "
      "compare like with like; the target verdicts count only the configurations that verify. "
      "auto+t2: `--threads 2`, a decode thread per core (the default, cores − 1, leaves one core "
      "to the training step)")
    p("")

    # ---- main tables --------------------------------------------------------------
    p("## Epoch time, samples/s and MB/s")
    p("")
    for d in present:
        for cache in ("cold", "hot"):
            systems = IB[cache] + OTHERS
            kept = {}
            for r in RATIOS:
                rows = cells.get((d, cache, r, "pread"), [])
                kept[r] = rows[0]["samples"] if rows else 0
            p("### %s, %s cache" % (TITLE[d], cache))
            p("")
            p("| system | " + " | ".join("r = %s (%d kept)" % (r, kept[r]) for r in RATIOS) + " |")
            p("|---|" + "---:|" * len(RATIOS))
            for s in systems:
                row = []
                for r in RATIOS:
                    rows = cells.get((d, cache, r, s))
                    if not rows:
                        row.append("–")
                        continue
                    row.append("%s s (%s) · %s/s · %.0f MB/s" % (
                        sec(med(rows, "seconds")), rng(rows, "seconds", "%.3g"),
                        si(med(rows, "samples_per_s")), med(rows, "MB_per_s")))
                p("| %s | %s |" % (s, " | ".join(row)))
            p("")

    # ---- fio ------------------------------------------------------------------------
    p("## The physical limit: fio on the ibstore shard files")
    p("")
    p("| dataset | cache | fio job | block | MB/s median (min–max) | IOPS | best ibstore, r = 0 "
      "| ibstore / fio |")
    p("|---|---|---|---:|---:|---:|---:|---:|")
    for d in present:
        for cache in ("cold", "hot"):
            best = max(((med(cells[(d, cache, "0", s)], "MB_per_s"), s) for s in IB[cache]
                        if (d, cache, "0", s) in cells and "noverify" not in s),
                       default=(float("nan"), "-"))
            for f in FIO[cache]:
                rows = cells.get((d, cache, "-", f))
                if not rows:
                    continue
                m = med(rows, "MB_per_s")
                job = {"fio rand huge": "random, O_DIRECT, qd 32, shmhuge",
                       "fio rand": "random, O_DIRECT, qd 32, default buffers"
                       if cache == "cold" else "random, buffered, 1 thread (psync), --invalidate=0",
                       "fio seq huge": "sequential 1 MiB, O_DIRECT, qd 32, shmhuge",
                       "fio seq": "sequential 1 MiB, O_DIRECT, qd 32, default buffers"}[f]
                p("| %s | %s | %s | %d | %.0f (%s) | %s | %.0f (%s) | %.2f |" % (
                    d, cache, job, rows[0]["bs"], m, rng(rows, "MB_per_s", "%.0f"),
                    si(med(rows, "iops")), best[0], best[1], best[0] / m))
    p("")

    # ---- targets --------------------------------------------------------------------
    p("## Targets")
    p("")
    p("### ibstore ahead of every other loader in every cold cell and every pruned hot cell")
    p("")
    p("Best ibstore configuration of the cell against the best other loader (median epoch "
      "times); the default configuration (`auto`: io_uring when cold) in brackets.")
    p("")
    p("| dataset | cache | ratio | best ibstore | s | best other | s | other / ibstore | "
      "verdict |")
    p("|---|---|---:|---|---:|---|---:|---:|---|")
    for d in present:
        for cache in ("cold", "hot"):
            for r in RATIOS:
                if cache == "hot" and r == "0":
                    target = False
                else:
                    target = True
                ib = [(med(cells[(d, cache, r, s)], "seconds"), s) for s in IB[cache]
                      if (d, cache, r, s) in cells and "noverify" not in s]
                ot = [(med(cells[(d, cache, r, s)], "seconds"), s) for s in OTHERS
                      if (d, cache, r, s) in cells]
                if not ib or not ot:
                    continue
                bi, bo = min(ib), min(ot)
                dflt = [t for t, s in ib if s == ("ibstore uring" if cache == "cold" else "ibstore auto")]
                ok = bi[0] < bo[0]
                v = ("met" if ok else "**MISSED**") if target else ("ahead" if ok else "behind (no target)")
                cellname = "%s %s r=%s" % (d, cache, r)
                if target:
                    (met if ok else missed).append(cellname + (": %s %.3f s vs %s %.3f s" % (
                        bi[1], bi[0], bo[1], bo[0])))
                p("| %s | %s | %s | %s | %s%s | %s | %s | %.2f | %s |" % (
                    d, cache, r, bi[1], sec(bi[0]), " [%s]" % sec(dflt[0]) if dflt else "",
                    bo[1], sec(bo[0]), bo[0] / bi[0], v))
    p("")

    p("### Within 10% of fio on cold large records")
    p("")
    if "imagenet" in present and ("imagenet", "cold", "-", "fio rand huge") in cells:
        fio = med(cells[("imagenet", "cold", "-", "fio rand huge")], "MB_per_s")
        for s in IB["cold"]:
            if ("imagenet", "cold", "0", s) not in cells:
                continue
            m = med(cells[("imagenet", "cold", "0", s)], "MB_per_s")
            ok = m >= 0.9 * fio
            line = "%s, r = 0: %.0f MB/s = %.2f × fio random reads with huge-page buffers (%.0f MB/s)" % (
                s, m, m / fio, fio)
            p("- %s: %s" % (line, "met" if ok else "**MISSED**"))
            if s in ("ibstore uring+direct", "ibstore uring+direct+huge"):
                (met if ok else missed).append("fio: " + line)
    else:
        p("- no fio shmhuge figures (no huge pages?)")
    p("")

    p("### Under pruning, epoch time ≤ kept fraction + 0.05 of the full epoch; tar's does not fall")
    p("")
    p("t(r) / t(0) from the medians; k = kept / samples.")
    p("")
    p("| dataset | cache | system | " + " | ".join("r = %s" % r for r in RATIOS[1:]) + " | verdict |")
    p("|---|---|---|" + "---:|" * (len(RATIOS) - 1) + "---|")
    for d in present:
        n = sizes[d]["n"]
        for cache in ("cold", "hot"):
            for s in IB[cache] + ["tar"]:
                if (d, cache, "0", s) not in cells:
                    continue
                t0 = med(cells[(d, cache, "0", s)], "seconds")
                parts, oks = [], []
                for r in RATIOS[1:]:
                    if (d, cache, r, s) not in cells:
                        parts.append("–")
                        continue
                    k = cells[(d, cache, r, s)][0]["samples"] / n
                    rel = med(cells[(d, cache, r, s)], "seconds") / t0
                    parts.append("%.2f (k + 0.05 = %.2f)" % (rel, k + 0.05))
                    oks.append(rel <= k + 0.05)
                if s == "tar":
                    v = "falls with k" if all(oks) else "does not fall with k"
                else:
                    v = "met" if all(oks) else "**MISSED**"
                    if s in ("ibstore uring+direct", "ibstore auto") or cache == "cold":
                        name = "pruning %s %s %s" % (d, cache, s)
                        (met if all(oks) else missed).append(name)
                p("| %s | %s | %s | %s | %s |" % (d, cache, s, " | ".join(parts), v))
    p("")
    p("### Summary")
    p("")
    p("- met: %d; missed: %d" % (len(met), len(missed)))
    for m in missed:
        p("  - missed: %s" % m)
    p("")
    text = "\n".join(out) + "\n"
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    plots(cells, present, sizes, a)


def plots(cells, present, sizes, a):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {"ibstore uring+direct+huge": ("C5", "-", "h"), "ibstore uring+direct": ("C0", "-", "o"), "ibstore uring": ("C0", "--", "s"),
             "ibstore pread": ("C0", ":", "^"), "ibstore auto": ("C0", "-", "o"),
             "ibstore auto+t2": ("C4", "-", "P"),
             "ibstore mmap": ("C9", "--", "D"), "ibstore mmap+noverify": ("C9", ":", "d"), "pread": ("C1", "-", "v"),
             "lmdb": ("C2", "-", "P"), "tar": ("C3", "-", "X"), "torch": ("C4", "-", "*")}
    xs = [float(r) for r in RATIOS]
    fig, axes = plt.subplots(len(present), 2, figsize=(9, 2.6 * len(present)), squeeze=False)
    for i, d in enumerate(present):
        for j, cache in enumerate(("cold", "hot")):
            ax = axes[i][j]
            for s in IB[cache] + OTHERS:
                ys = [med(cells[(d, cache, r, s)], "seconds") if (d, cache, r, s) in cells
                      else float("nan") for r in RATIOS]
                c, ls, mk = style[s]
                ax.plot(xs, ys, color=c, linestyle=ls, marker=mk, markersize=4, label=s)
            ax.set_yscale("log")
            ax.set_title("%s, %s" % (TITLE[d], cache), fontsize=9)
            ax.set_xticks(xs)
            ax.tick_params(labelsize=7)
            ax.grid(True, which="both", alpha=0.3)
            if i == len(present) - 1:
                ax.set_xlabel("prune ratio", fontsize=8)
            if j == 0:
                ax.set_ylabel("epoch time (s, log)", fontsize=8)
            ax.legend(fontsize=6, ncol=2)
    fig.suptitle("Epoch time against prune ratio (median of %d) — %s" % (a.runs, a.date), fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "plots", "epoch_time.png"), dpi=70)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(present), figsize=(3.2 * len(present), 3.6), squeeze=False)
    for i, d in enumerate(present):
        ax = axes[0][i]
        names = IB["cold"] + OTHERS
        vals = [med(cells[(d, "cold", "0", s)], "MB_per_s") if (d, "cold", "0", s) in cells else 0
                for s in names]
        ax.bar(range(len(names)), vals, color=[style[s][0] for s in names])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([s.replace("ibstore ", "ib ") for s in names], rotation=60, fontsize=7)
        for f, c, ls in (("fio rand huge", "k", "-"), ("fio rand", "k", "--"), ("fio seq huge", "grey", "-")):
            if (d, "cold", "-", f) in cells:
                ax.axhline(med(cells[(d, "cold", "-", f)], "MB_per_s"), color=c, linestyle=ls,
                           linewidth=1, label=f)
        ax.set_title("%s\ncold, r = 0" % TITLE[d], fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        if i == 0:
            ax.set_ylabel("MB/s", fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle("Cold full-epoch throughput against fio — %s" % a.date, fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "plots", "throughput_vs_fio.png"), dpi=70)
    plt.close(fig)


if __name__ == "__main__":
    main()
