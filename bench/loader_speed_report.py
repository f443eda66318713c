#!/usr/bin/python3
"""loader_speed_report.py — turns bench/loader_speed's result lines
(SECTION, CONFIG, RUN, KEY, VALUE; tab-separated) into Markdown tables with
medians, min–max and a plain verdict for each target."""

import argparse
import statistics
from collections import defaultdict

BUDGET = 512 << 20    # the loader's default budget
INDEX_ENTRY = 32      # bytes per sample of the mapped index
SCORE = 4             # float32 score per sample


def load(path):
    """{(section, config): {key: {run: value}}}, configs in first-seen order."""
    res = defaultdict(lambda: defaultdict(dict))
    order = defaultdict(list)
    for line in open(path):
        sec, cfg, run, key, val = line.rstrip("\n").split("\t")
        try:
            v = float(val)
        except ValueError:
            v = val
        res[(sec, cfg)][key][int(run)] = v
        if cfg not in order[sec]:
            order[sec].append(cfg)
    return res, order


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def span(xs, fmt):
    return (fmt % min(xs) + " – " + fmt % max(xs)) if xs else "–"


def medspan(xs):
    return "%.2f (%s)" % (med(xs), span(xs, "%.2f")) if xs else "–"


def verdict(ok):
    return "met" if ok else "**MISSED**"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    for k in ("date", "machine", "ibstore"):
        ap.add_argument("--" + k, required=True)
    for k in ("runs", "quick", "samples", "record-size", "data-bytes", "fm-samples",
              "hugepages", "hp-ok", "root", "elapsed"):
        ap.add_argument("--" + k, type=int, required=True)
    a = ap.parse_args()
    res, order = load(a.results)
    missed = []

    print("## bench/loader_speed%s — %s" % (" --quick" if a.quick else "", a.date))
    print()
    print("- machine: %s" % a.machine)
    print("- ibstore: %s" % a.ibstore)
    print("- %d runs per row, systems interleaved within each run; medians with min – max; "
          "MB = 10^6 bytes; %d s in all" % (a.runs, a.elapsed))
    print("- cold dataset: %d records of %d random bytes (%.2f GiB), packed with "
          "`--align 4096 --shard-size 1G`" % (a.samples, a.record_size,
                                              a.data_bytes / 2**30))
    if not a.root:
        print("- **not root**: no drop_caches and no huge pages; cold figures rely on "
              "posix_fadvise alone")
    if not a.hp_ok:
        print("- **huge pages could not be reserved**: fio ran with malloc buffers and the "
              "\"huge pages reserved\" rows are not what they say")
    print()

    # (a) ------------------------------------------------------------------
    print("### (a) Cold full epoch vs fio (target: ibstore / fio >= 0.90)")
    print()
    print("`ibstore bench --epochs 2 --cold --direct --ratio 0` (MB/s of decoded samples; the "
          "page cache dropped before each epoch) vs "
          "`fio --rw=randread --bs=128k --iodepth=32 --direct=1 --ioengine=io_uring "
          "--iomem=shmhuge` over a %.2f GiB file on the same file system, %d huge pages "
          "reserved for fio and the first ibstore rows. Epoch 0 is a fresh loader (its batch "
          "memory is touched for the first time: page faults); epoch 1 a warm one, as every "
          "epoch of a training run but the first; the target is judged on epoch 1 with huge pages "
          "reserved, as fio's buffers are."
          % (a.data_bytes / 2**30, a.hugepages))
    print()
    print("| system | buffers | MB/s median | min – max | / fio (median) | per-run / fio | target |")
    print("|---|---|---:|---:|---:|---:|---|")
    fio = res[("a", "fio")]["MB_per_s@0"]
    fio_med = med(list(fio.values()))
    for cfg in order["a"]:
        d = res[("a", cfg)]
        bufs = "/".join(sorted(set(str(b) for b in d["buffers"].values())))
        if cfg == "fio":
            xs = list(fio.values())
            print("| fio | %s | %.0f | %s | 1 | – | – |" % (bufs, med(xs), span(xs, "%.0f")))
            continue
        if cfg.startswith("uring_touch"):
            v = d["MB_per_s@0"]
            xs = list(v.values())
            paired = [v[r] / fio[r] for r in v if r in fio]
            print("| %s | %s | %.0f | %s | %.2f | %s | shown |" % (
                cfg, bufs, med(xs), span(xs, "%.0f"), med(xs) / fio_med, span(paired, "%.2f")))
            continue
        for epoch in (0, 1):
            v = d.get("MB_per_s@%d" % epoch)
            if not v:
                continue
            xs = list(v.values())
            ratio = med(xs) / fio_med
            paired = [v[r] / fio[r] for r in v if r in fio]
            ok = ratio >= 0.90
            # judged as the issue states it: huge pages reserved, as for fio
            judged = epoch == 1 and "no huge pages" not in cfg
            if judged and not ok:
                missed.append("(a) %s: %.0f MB/s is %.2f of fio's %.0f (target 0.90)"
                              % (cfg, med(xs), ratio, fio_med))
            name = "%s, epoch %d (%s loader)" % (cfg, epoch, "fresh" if epoch == 0 else "warm")
            print("| %s | %s | %.0f | %s | %.2f | %s | %s |" % (
                name, bufs, med(xs), span(xs, "%.0f"), ratio, span(paired, "%.2f"),
                verdict(ok) if judged else "shown"))
    print()
    line = res.get(("a", "uring_touch line"), {}).get("MB_per_s@0")
    none = res.get(("a", "uring_touch none"), {}).get("MB_per_s@0")
    other = res.get(("a", "uring_touch other"), {}).get("MB_per_s@0")
    ib = res.get(("a", "ibstore, huge pages reserved"), {}).get("MB_per_s@1")
    if line and none and other and ib:
        print("uring_touch (bench/uring_touch.c) is fio's job at the loader's block size and queue "
              "depth (64) over the dataset's own shards: `none` ignores the data as fio does, "
              "`line` loads every 64-byte line of each read once before reusing its buffer (the "
              "least a reader that verifies or copies must do), `other` loads as many lines from "
              "memory no read lands in. Per run: line / none %s, other / none %s; ibstore (warm, "
              "huge pages) / uring_touch line %s."
              % (medspan([line[r] / none[r] for r in line if r in none]),
                 medspan([other[r] / none[r] for r in other if r in none]),
                 medspan([ib[r] / line[r] for r in ib if r in line])))
        print()

    # (b) ------------------------------------------------------------------
    print("### (b) Cold pruned epoch vs full epoch (target: t <= (k + 0.05) x t_full)")
    print()
    print("`ibstore bench --epochs 2 --cold --direct --ratio R`, epoch 1 (the first with "
          "scores); t_full = epoch 1 at ratio 0; k = kept / samples; huge pages reserved.")
    print()
    print("| ratio | kept | k | bytes_read (GB) | bytes_skipped (GB) | seconds median | min – max "
          "| MB/s | t / t_full | per-run t / t_full | bound k + 0.05 | target |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    full = res[("b", "0")]["seconds@1"]
    full_med = med(list(full.values()))
    for cfg in order["b"]:
        d = res[("b", cfg)]
        t = d["seconds@1"]
        xs = list(t.values())
        kept = med(list(d["kept@1"].values()))
        n = kept + med(list(d["pruned@1"].values()))
        k = kept / n
        rel = med(xs) / full_med
        paired = [t[r] / full[r] for r in t if r in full]
        ok = rel <= k + 0.05
        if not ok:
            missed.append("(b) ratio %s: epoch takes %.2f of the full epoch, bound %.2f"
                          % (cfg, rel, k + 0.05))
        print("| %s | %d | %.3f | %.2f | %.2f | %.3f | %s | %.0f | %.3f | %s | %.3f | %s |" % (
            cfg, kept, k, med(list(d["bytes_read@1"].values())) / 1e9,
            med(list(d["bytes_skipped@1"].values())) / 1e9, med(xs), span(xs, "%.3f"),
            med(list(d["MB_per_s@1"].values())), rel, span(paired, "%.3f"), k + 0.05,
            verdict(ok)))
    print()

    # (c) ------------------------------------------------------------------
    print("### (c) Hot Fashion-MNIST training set (target: >= 2 M samples/s, checksums on)")
    print()
    print("`ibstore bench --epochs 8` on %d samples of 784 B in the page cache, no huge pages "
          "reserved; samples/s over all 8 epochs of all runs (epoch 0 and 7 are full, 1–6 "
          "pruned)." % a.fm_samples)
    print()
    print("| options | buffers | samples/s median | min – max | full epochs median | pruned epochs "
          "median | MB/s median | target |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for cfg in order["c"]:
        d = res[("c", cfg)]
        allv, fullv, prunedv, mbv = [], [], [], []
        for key, runs in d.items():
            if key.startswith("samples_per_s@"):
                e = int(key.split("@")[1])
                allv += runs.values()
                (fullv if d["pruned@%d" % e] and
                 max(d["pruned@%d" % e].values()) == 0 else prunedv).extend(runs.values())
            if key.startswith("MB_per_s@"):
                mbv += runs.values()
        bufs = "/".join(sorted(set(str(b) for b in d["buffers"].values())))
        # the target is ibstore's with checksums on: the default and the
        # thread counts; the pread backend and checksums off are shown
        judged = "no-verify" not in cfg and "pread" not in cfg
        ok = med(allv) >= 2e6
        if judged and not ok:
            missed.append("(c) %s: %.2f M samples/s (target 2 M)" % (cfg, med(allv) / 1e6))
        note = ("(no target: checksums off)" if "no-verify" in cfg else
                "(shown: reads through the kernel instead of the page-cache mapping)")
        print("| %s | %s | %.2f M | %s M | %.2f M | %.2f M | %.0f | %s |" % (
            cfg, bufs, med(allv) / 1e6, span([x / 1e6 for x in allv], "%.2f"),
            med(fullv) / 1e6, med(prunedv) / 1e6, med(mbv),
            verdict(ok) if judged else note))
    print()

    # (d) ------------------------------------------------------------------
    print("### (d) Peak RSS vs index + scores + budget")
    print()
    print("`/usr/bin/time -v` \"Maximum resident set size\", no huge pages reserved (hugetlb "
          "pages would not show in RSS); budget = the default %d MiB of read windows and "
          "decoded batches." % (BUDGET >> 20))
    print()
    print("| bench | buffers | samples | peak RSS MiB (max of runs) | min – max | index + scores "
          "+ budget MiB | within |")
    print("|---|---|---:|---:|---:|---:|---|")
    for cfg in order["d"]:
        d = res[("d", cfg)]
        xs = [x / 1024 for x in d["rss_kb"].values()]
        n = a.fm_samples if "Fashion" in cfg else a.samples
        bound = (n * (INDEX_ENTRY + SCORE) + BUDGET) / 2**20
        bufs = "/".join(sorted(set(str(b) for b in d["buffers"].values())))
        ok = max(xs) <= bound
        if not ok:
            missed.append("(d) %s: peak RSS %.0f MiB above index + scores + budget %.0f MiB"
                          % (cfg, max(xs), bound))
        print("| %s | %s | %d | %.0f | %s | %.0f | %s |" % (cfg, bufs, n, max(xs),
              span(xs, "%.0f"), bound, "yes" if ok else "**NO**"))
    print()

    print("### Targets missed")
    print()
    if missed:
        for m in missed:
            print("- " + m)
    else:
        print("- none")


if __name__ == "__main__":
    main()
