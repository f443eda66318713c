#!/usr/bin/python3
"""loops.py — one timed pass over an image dataset by one loader, for
bench/images/run; prints one JSON object {"arm", "images", "seconds",
"images_per_s"}.  Arms:

  torchvision   ImageFolder(FOLDER) + RandomResizedCrop(SIZE) +
                RandomHorizontalFlip + ToTensor in DataLoader(num_workers=W,
                shuffle=True, batch_size=B)  (Debian's python3-torchvision)
  ibstore-pil   ibstore.torch.Loader(DATASET, decode='image',
                image_size=(SIZE, SIZE)): PIL in the training process, a
                fixed resize, no augmentation (the path before the C stage)
  ibstore-c     ibstore.torch.Loader(DATASET, decode=Images(SIZE,
                train=True), threads=T): the C stage in the decode threads

Every batch is consumed as a training loop would (ibstore arms report a
constant loss through update()); policy none: every sample once.

usage: /usr/bin/python3 bench/images/loops.py ARM PATH [--size 224]
       [--batch 64] [--workers 2] [--threads 2] [--limit N]
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "python"))

import torch  # noqa: E402


def torchvision_pass(a):
    import torchvision.datasets as tvd
    import torchvision.transforms as T
    tf = T.Compose([T.RandomResizedCrop(a.size), T.RandomHorizontalFlip(), T.ToTensor()])
    ds = tvd.ImageFolder(a.path, transform=tf)
    ld = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True,
                                     num_workers=a.workers, persistent_workers=False)
    n = 0
    t0 = time.perf_counter()
    for x, y in ld:
        n += x.shape[0]
        if a.limit and n >= a.limit:
            break
    return n, time.perf_counter() - t0


def ibstore_pass(a, decode):
    import ibstore.torch
    kw = dict(decode=decode, threads=a.threads, policy="none")
    if decode == "image":
        kw["image_size"] = (a.size, a.size)
    with ibstore.torch.Loader(a.path, batch_size=a.batch, num_epochs=1, **kw) as ld:
        n = 0
        t0 = time.perf_counter()
        for x, y in ld.epoch(0):
            n += x.shape[0]
            ld.update(torch.ones(x.shape[0]))
            if a.limit and n >= a.limit:
                break
        return n, time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("arm", choices=("torchvision", "ibstore-pil", "ibstore-c"))
    p.add_argument("path")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="stop after N images (0: all)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.arm == "torchvision":
        n, s = torchvision_pass(a)
    elif a.arm == "ibstore-pil":
        n, s = ibstore_pass(a, "image")
    else:
        import ibstore.torch
        n, s = ibstore_pass(a, ibstore.torch.Images(a.size, train=True))
    print(json.dumps({"arm": a.arm, "images": n, "seconds": s, "images_per_s": n / s}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
