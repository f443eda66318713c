"""Fixtures of the Python binding's tests.

The library is whatever ``import ibstore`` finds ($IBSTORE_LIBRARY, set by
``meson test``, else the lookup order of ibstore/_lib.py); the ibstore
command is $IBSTORE_CLI, else <repo>/build/tools/ibstore.
"""
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYDIR)
if PYDIR not in sys.path:
    sys.path.insert(0, PYDIR)

FMNIST = "/usr/share/datasets/fashion-mnist"


def cli_path():
    p = os.environ.get("IBSTORE_CLI") or os.path.join(REPO, "build", "tools", "ibstore")
    if not os.path.exists(p):
        pytest.skip("no ibstore command at %s (set IBSTORE_CLI)" % p)
    return p


def pack(args, out):
    r = subprocess.run([cli_path(), "pack", "-q"] + list(args) + [str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return str(out)


def write_idx(path, arr):
    """Writes a uint8 array as an IDX file (big-endian dims)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, arr.ndim]))
        for d in arr.shape:
            f.write(struct.pack(">I", d))
        f.write(arr.tobytes())


def read_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """A synthetic IDX dataset: 1000 images of 12x10 with labels 0..9."""
    d = tmp_path_factory.mktemp("synth")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(1000, 12, 10), dtype=np.uint8)
    labels = rng.integers(0, 10, size=1000, dtype=np.uint8)
    write_idx(d / "images.idx", images)
    write_idx(d / "labels.idx", labels)
    path = pack(["--from", "idx", str(d / "images.idx"), str(d / "labels.idx")], d / "synth.ibs")
    return path, images, labels


@pytest.fixture(scope="session")
def fmnist(tmp_path_factory):
    """Fashion-MNIST t10k (10 000 images), packed by the ibstore command."""
    img = os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")
    lab = os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")
    if not os.path.exists(img):
        pytest.skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")
    d = tmp_path_factory.mktemp("fmnist")
    path = pack(["--from", "idx", img, lab], d / "t10k.ibs")
    return path, read_idx(img), read_idx(lab)
