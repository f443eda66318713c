"""examples/train_fmnist.py end to end, tiny: 1 epoch of Fashion-MNIST t10k,
1 seed, policy infobatch; the JSON has its keys and the PNG is written."""
import json
import os
import subprocess
import sys

from conftest import REPO

SCRIPT = os.path.join(REPO, "examples", "train_fmnist.py")


def test_train_fmnist_tiny(fmnist, tmp_path):
    path = fmnist[0]
    out = tmp_path / "r.json"
    png = tmp_path / "r.png"
    r = subprocess.run([sys.executable, SCRIPT, "--train", path, "--test", path,
                        "--policy", "infobatch", "--seeds", "0", "--epochs", "1",
                        "--out", str(out), "--plot", str(png)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    for k in ("config", "machine", "date", "results", "summary"):
        assert k in doc
    run = doc["results"]["infobatch"]["0"]
    for k in ("epochs", "final_acc", "forward_passes", "seconds", "data_wait_s", "compute_s"):
        assert k in run
    assert len(run["epochs"]) == 1
    ep = run["epochs"][0]
    for k in ("epoch", "test_acc", "forward_passes", "weight_sum", "seconds", "data_wait_s",
              "compute_s"):
        assert k in ep
    assert ep["forward_passes"] == 10000          # epoch 0 has no scores yet: nothing pruned
    assert 0.3 < ep["test_acc"] <= 1.0            # it learns something in one epoch
    s = doc["summary"]["infobatch"]
    for k in ("acc_mean", "acc_std", "forward_mean", "seconds_mean", "data_wait_share"):
        assert k in s
    assert png.stat().st_size > 0
