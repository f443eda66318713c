#!/usr/bin/python3
"""bench/suite_data.py — bench/run's data generator.

  gen-tar PREFIX N SIZE SHARD_BYTES SEED
      WebDataset tar shards PREFIX-000000.tar, ... (ustar): sample i is the
      members %08d.bin (SIZE bytes from numpy's PCG64 seeded SEED:
      incompressible) and %08d.cls (label i % 10), a new shard when the
      current one reaches SHARD_BYTES.  Prints the shard paths.
  tar-from-ibs DATASET PREFIX SHARD_BYTES
      the same layout from an ibstore dataset's samples (ids 0..N-1, read
      and checksum-verified through the Python binding).
  files PREFIX OUTDIR M
      writes the payloads of samples 0..M-1 of PREFIX-*.tar as one file per
      sample, OUTDIR/%08d.bin (for the file-per-sample baseline).
  scores N SEED OUT
      N float32 scores, exponential(1) from numpy's PCG64 seeded SEED.
"""
import glob
import io
import os
import sys
import tarfile

import numpy as np


class ShardWriter:
    def __init__(self, prefix, shard_bytes):
        self.prefix, self.shard_bytes = prefix, shard_bytes
        self.n, self.tar, self.paths = 0, None, []

    def add(self, i, payload, label):
        if self.tar is None or self.tar.fileobj.tell() >= self.shard_bytes:
            self.close()
            path = "%s-%06d.tar" % (self.prefix, len(self.paths))
            self.paths.append(path)
            self.tar = tarfile.open(path + ".tmp", "w", format=tarfile.USTAR_FORMAT)
        for name, data in (("%08d.bin" % i, payload), ("%08d.cls" % i, b"%d" % label)):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
            self.tar.addfile(ti, io.BytesIO(data))

    def close(self):
        if self.tar is not None:
            self.tar.close()
            os.rename(self.paths[-1] + ".tmp", self.paths[-1])
            self.tar = None


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen-tar":
        prefix, n, size, shard_bytes, seed = args[0], int(args[1]), int(args[2]), int(args[3]), int(args[4])
        rng = np.random.default_rng(seed)
        w = ShardWriter(prefix, shard_bytes)
        for i in range(n):
            w.add(i, rng.bytes(size), i % 10)
        w.close()
        print("\n".join(w.paths))
    elif cmd == "tar-from-ibs":
        import ibstore
        ds = ibstore.Dataset(args[0])
        w = ShardWriter(args[1], int(args[2]))
        for i in range(len(ds)):
            data, label = ds.read(i)
            w.add(i, bytes(data), label if label >= 0 else 0)
        w.close()
        print("\n".join(w.paths))
    elif cmd == "files":
        prefix, out, m = args[0], args[1], int(args[2])
        os.makedirs(out + ".tmp", exist_ok=True)
        done = 0
        for path in sorted(glob.glob(prefix + "-*.tar")):
            with tarfile.open(path, "r:") as t:
                for ti in t:
                    if not ti.name.endswith(".bin"):
                        continue
                    i = int(ti.name[:-4])
                    if i >= m:
                        continue
                    with open(os.path.join(out + ".tmp", ti.name), "wb") as f:
                        f.write(t.extractfile(ti).read())
                    done += 1
        if done != m:
            sys.exit("files: found %d of %d samples" % (done, m))
        os.rename(out + ".tmp", out)
    elif cmd == "scores":
        n, seed, out = int(args[0]), int(args[1]), args[2]
        np.random.default_rng(seed).exponential(1.0, n).astype("<f4").tofile(out)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
