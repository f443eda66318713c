"""The image stage through Python: ibstore.torch.Images decodes and
augments JPEG, PNG and WebP in the library's threads and hands the model
float32 [n, 3, H, W] tensors; the pixels are the ones `ibstore get --decode
--images` writes for the same (seed, epoch, id); pruned epochs emit only the
kept samples; a broken image follows the corrupt policy."""
import os
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

import ibstore
import ibstore.torch
from conftest import cli_path, pack

N = 40


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder dataset of N small images in 4 classes: JPEG, PNG, WebP and
    grayscale JPEG, of varied sizes; and a copy with one broken JPEG."""
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for c in range(4):
        os.makedirs(d / "src" / ("c%d" % c))
    for i in range(N):
        h, w = 30 + (i * 7) % 40, 40 + (i * 11) % 50
        y, x = np.mgrid[0:h, 0:w]
        a = np.stack([x * 255 // w, y * 255 // h, (x ^ y) & 255], -1).astype(np.uint8)
        a = np.clip(a.astype(int) + rng.integers(-8, 8, a.shape), 0, 255).astype(np.uint8)
        c = i % 4
        im = Image.fromarray(a)
        base = d / "src" / ("c%d" % c) / ("%03d" % i)
        if c == 0:
            im.save(str(base) + ".jpg", quality=90)
        elif c == 1:
            im.save(str(base) + ".png")
        elif c == 2:
            im.save(str(base) + ".webp", lossless=True)
        else:
            im.convert("L").save(str(base) + ".jpg", quality=90)
    good = pack(["--from", "folder", str(d / "src")], d / "good.ibs")
    victim = sorted((d / "src" / "c0").iterdir())[1]
    raw = victim.read_bytes()
    victim.write_bytes(raw[:len(raw) // 2])
    broken = pack(["--from", "folder", str(d / "src")], d / "broken.ibs")
    return good, broken, d


def test_images_tensor_and_pixels(photos, tmp_path):
    good, _, _ = photos
    dec = ibstore.torch.Images(size=24, train=True)
    with ibstore.torch.Loader(good, batch_size=8, num_epochs=2, prune_ratio=0.5, seed=9,
                              decode=dec) as ld:
        seen = {}
        for e in range(2):
            for x, y in ld.epoch(e):
                assert x.dtype == torch.float32 and tuple(x.shape[1:]) == (3, 24, 24)
                assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
                ids = ld.batch.ids.tolist()
                for k, i in enumerate(ids):
                    seen.setdefault(e, {})[i] = x[k].numpy().copy()
                ld.update(torch.ones(len(ids)) * 0.5 + torch.tensor(ids) % 3)
    # the same pixels as the CLI's --decode --images for (seed, epoch, id)
    for e, i in [(0, 0), (0, 5), (1, next(iter(seen[1])))]:
        out = tmp_path / ("s%d-%d.png" % (e, i))
        r = subprocess.run([cli_path(), "get", "--decode", "--images", "24", "--train",
                            "--epoch", str(e), "--seed", "9", "-o", str(out), good, str(i)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        want = np.asarray(Image.open(out), dtype=np.float32).transpose(2, 0, 1) / 255
        np.testing.assert_allclose(seen[e][i], want, atol=1e-6)
    assert len(seen[0]) == N  # epoch 0 keeps all
    assert len(seen[1]) < N   # epoch 1 is pruned: only its kept samples are decoded


def test_images_eval_uint8_hwc(photos):
    good, _, _ = photos
    dec = ibstore.torch.Images(size=(20, 28), train=False, dtype="uint8", layout="hwc")
    with ibstore.torch.Loader(good, batch_size=8, num_epochs=1, policy="none",
                              decode=dec) as ld:
        for x, y in ld.epoch(0):
            assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (20, 28, 3)
            ld.update(torch.ones(x.shape[0]))


def test_images_broken_sample(photos):
    _, broken, _ = photos
    dec = ibstore.torch.Images(size=16, train=False)
    with ibstore.torch.Loader(broken, batch_size=8, num_epochs=1, policy="none",
                              decode=dec) as ld:
        with pytest.raises(ibstore.IbstoreError) as ei:
            for x, y in ld.epoch(0):
                ld.update(torch.ones(x.shape[0]))
        assert "sample" in str(ei.value)
    n = 0
    with ibstore.torch.Loader(broken, batch_size=8, num_epochs=1, policy="none",
                              decode=dec, corrupt="skip") as ld:
        for x, y in ld.epoch(0):
            n += x.shape[0]
            ld.update(torch.ones(x.shape[0]))
    assert n == N - 1


def test_images_bad_options():
    with pytest.raises(ValueError):
        ibstore.torch.Images(size=24, layout="nchw")
    with pytest.raises(ValueError):
        ibstore.torch.Images(size=24, dtype="float16")


def test_images_pad_crop_matches_the_cli(photos, tmp_path):
    """pad=P: the CIFAR-style RandomCrop with padding, the same pixels as
    `ibstore get --decode --images S --train --pad P`, black frames included."""
    good, _, _ = photos
    dec = ibstore.torch.Images(size=24, train=True, pad=3, dtype="uint8", layout="hwc")
    got = {}
    with ibstore.torch.Loader(good, batch_size=8, num_epochs=1, policy="none", seed=4,
                              decode=dec) as ld:
        for x, y in ld.epoch(0):
            for k, i in enumerate(ld.batch.ids.tolist()):
                got[i] = x[k].numpy().copy()
            ld.update(torch.ones(x.shape[0]))
    assert len(got) == N
    framed = 0
    for i in range(0, N, 3):
        out = tmp_path / ("p%d.png" % i)
        r = subprocess.run([cli_path(), "get", "--decode", "--images", "24", "--train",
                            "--pad", "3", "--seed", "4", "-o", str(out), good, str(i)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        np.testing.assert_array_equal(got[i], np.asarray(Image.open(out)))
    for a in got.values():  # a window off the centre shows part of the frame
        framed += int((a[0] == 0).all() or (a[-1] == 0).all() or (a[:, 0] == 0).all()
                      or (a[:, -1] == 0).all())
    assert 0 < framed < N


def test_images_pad_is_for_training_only(photos):
    good, _, _ = photos
    with pytest.raises(ibstore.IbstoreError, match="pad"):
        with ibstore.torch.Loader(good, batch_size=8, num_epochs=1, policy="none",
                                  decode=ibstore.torch.Images(size=16, train=False, pad=2)):
            pass
