#!/usr/bin/python3
"""make_photos.py — an ImageNet-like folder of real photographs for the
image-stage benchmark: N JPEGs of about 500 x 375 (quality 90) in class
folders, each a random crop (40-100 % of the area, aspect 3:4..4:3 of the
output), resize, horizontal flip and slight brightness change of one of the
real photos Debian's python3-skimage and python3-sklearn ship (astronaut,
coffee, chelsea, rocket, hubble_deep_field, immunohistochemistry, retina,
camera, sklearn's china and flower).  Deterministic for a seed; skips the
work when OUT already holds N images made with the same seed.

usage: /usr/bin/python3 bench/images/make_photos.py OUT [--count N] [--seed S]
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image


def sources():
    import skimage.data as d
    from sklearn.datasets import load_sample_images
    out = {}
    for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                 "immunohistochemistry", "retina", "camera"):
        a = getattr(d, name)()
        if a.ndim == 2:
            a = np.stack([a] * 3, axis=-1)
        out[name] = Image.fromarray(a[:, :, :3])
    for name, a in zip(("china", "flower"), load_sample_images().images):
        out[name] = Image.fromarray(a)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--count", type=int, default=8000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    stamp = os.path.join(a.out, ".made")
    want = "%d %d\n" % (a.count, a.seed)
    if os.path.exists(stamp) and open(stamp).read() == want:
        print("make_photos: %s already holds %d photos" % (a.out, a.count), file=sys.stderr)
        return 0
    rng = np.random.default_rng(a.seed)
    src = sources()
    names = sorted(src)
    for n in names:
        os.makedirs(os.path.join(a.out, n), exist_ok=True)
    total = 0
    for i in range(a.count):
        name = names[i % len(names)]
        im = src[name]
        W, H = im.size
        ow = int(rng.integers(470, 531))
        oh = int(round(ow * rng.uniform(0.70, 0.80)))
        area = W * H * rng.uniform(0.4, 1.0)
        aspect = ow / oh
        cw = min(W, int(round((area * aspect) ** 0.5)))
        ch = min(H, int(round(cw / aspect)))
        x = int(rng.integers(0, W - cw + 1))
        y = int(rng.integers(0, H - ch + 1))
        tile = im.crop((x, y, x + cw, y + ch)).resize((ow, oh), Image.BILINEAR)
        if rng.random() < 0.5:
            tile = tile.transpose(Image.FLIP_LEFT_RIGHT)
        arr = np.asarray(tile, dtype=np.float32) * rng.uniform(0.85, 1.15)
        tile = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        path = os.path.join(a.out, name, "%05d.jpg" % i)
        tile.save(path, quality=90)
        total += os.path.getsize(path)
        if (i + 1) % 1000 == 0:
            print("make_photos: %d/%d" % (i + 1, a.count), file=sys.stderr)
    with open(stamp, "w") as f:
        f.write(want)
    print("make_photos: %d JPEGs, %.1f MB, in %s" % (a.count, total / 1e6, a.out),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
