#!/usr/bin/python3
"""bench/baseline_torch.py — PyTorch DataLoader, 2 workers, one file per
sample: what most users start with.

usage: baseline_torch.py FILES_DIR M [--cold] RATIO=IDS ...

For each RATIO=IDS pair in turn (IDS: `ibstore plan` output, plan order),
the kept ids below M (the samples that have a file in FILES_DIR, a subset
of the dataset when M < N) are read in plan order by a DataLoader
(batch_size 256, num_workers 2, a map-style Dataset whose __getitem__
opens FILES_DIR/%08d.bin, reads it and returns a uint8 tensor; the default
collate stacks the batch).  The clock runs from creating the iterator
(workers start) to the last batch.  With --cold the files are evicted
(posix_fadvise DONTNEED) and, as root, the page cache dropped first.
Prints one JSON line per ratio with the subset's figures; bench/run
scales them to the full kept set.
"""
import json
import os
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset


class Files(Dataset):
    def __init__(self, top, ids):
        self.top, self.ids = top, ids

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        with open(os.path.join(self.top, "%08d.bin" % self.ids[i]), "rb") as f:
            return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)


def cold(top, m):
    for i in range(m):
        fd = os.open(os.path.join(top, "%08d.bin" % i), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
    except OSError:
        pass


def main():
    args = sys.argv[1:]
    top, m = args[0], int(args[1])
    is_cold = "--cold" in args
    torch.set_num_threads(1)
    for pair in (a for a in args[2:] if "=" in a):
        ratio, idsfile = pair.split("=", 1)
        kept = [int(line.split()[0]) for line in open(idsfile)]
        sub = [i for i in kept if i < m]
        loader = DataLoader(Files(top, sub), batch_size=256, num_workers=2, shuffle=False)
        if is_cold:
            cold(top, m)
        t0 = time.monotonic()
        n = nbytes = 0
        for batch in loader:
            n += batch.shape[0]
            nbytes += batch.numel()
        t = time.monotonic() - t0
        print(json.dumps({"system": "torch", "ratio": ratio, "seconds": t, "samples": n,
                          "bytes": nbytes, "kept_full": len(kept), "subset": m}), flush=True)


if __name__ == "__main__":
    main()
