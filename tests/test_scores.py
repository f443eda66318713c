#!/usr/bin/python3
"""test_scores.py — `ibstore scores` on run states written by make_run:
configuration, progress, per-epoch statistics, the score summary and
histogram, --export, the lock held by a training process, and errors.
Prints TAP.

usage: /usr/bin/python3 test_scores.py PATH/TO/ibstore PATH/TO/make_run
"""
import fcntl
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

IB, MAKE_RUN = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix="ibstore-scores-")
results = []


def check(ok, desc, *diag):
    results.append((bool(ok), desc, diag))


def run(*args, prog=None):
    p = subprocess.run([prog or IB, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def make_run(name, n, epochs, mode, done, partial):
    path = os.path.join(TMP, name)
    rc, out, err = run(path, str(n), str(epochs), mode, str(done), str(partial), prog=MAKE_RUN)
    if rc != 0:
        raise RuntimeError("make_run failed: " + err)
    rows = [line.split() for line in out.splitlines()]
    return path, [(int(e), int(k), int(p), int(b), float(w)) for e, k, p, b, w in rows]


def native_run():
    N = 1000
    path, rows = make_run("native.run", N, 10, "native", 3, 2)
    rc, out, err = run("scores", "--json", path)
    try:
        j = json.loads(out)
    except ValueError:
        check(False, "scores --json prints one JSON object", "rc %d %s %r" % (rc, err, out[:200]))
        return
    check(rc == 0 and err == "", "scores --json succeeds on a run in progress")
    check(j["epoch"] == 3 and j["in_epoch"] is True and j["cursor"] == 2 and j["samples"] == N,
          "epoch 3 in progress at cursor 2",
          "epoch %r in_epoch %r cursor %r" % (j["epoch"], j["in_epoch"], j["cursor"]))
    c = j["config"]
    want = {"policy": "infobatch", "mode": "native", "ratio": 0.5, "delta": 0.875, "epochs": 10,
            "seed": 0, "samples": N, "batch_size": 16, "rank": 0, "world": 1}
    check(all(c.get(k) == v for k, v in want.items()), "the stored configuration",
          json.dumps(c))
    got = [(e["epoch"], e["kept"], e["pruned"], e["below_mean"], e["weight_sum"])
           for e in j["epochs"]]
    check(got == rows, "per-epoch statistics match what the training loop saw",
          "scores: %r" % got, "loop:   %r" % rows)
    ok = all(e["bytes_read"] == e["kept"] * 1000 and e["bytes_skipped"] == e["pruned"] * 1000
             and e["seconds"] == 0.25 + e["epoch"] for e in j["epochs"])
    check(ok, "per-epoch I/O figures")
    check(j["epochs"][0]["threshold"] is None and j["epochs"][0]["prunes"] is True
          and j["epochs"][0]["kept"] == N,
          "epoch 0: nothing seen, threshold null, everything kept")
    check(all(isinstance(e["threshold"], float) for e in j["epochs"][1:]),
          "later epochs have a threshold")

    exp = os.path.join(TMP, "scores.f32")
    rc, out2, err2 = run("scores", "--json", "--export", exp, path)
    s = np.fromfile(exp, dtype="<f4") if os.path.exists(exp) else np.zeros(0, "<f4")
    check(rc == 0 and len(s) == N and "wrote" in err2 and exp in err2
          and not os.path.exists(exp + ".tmp"),
          "--export writes N float32 scores and says so on stderr", err2.strip())
    check(out2 == out, "--export prints the same report")
    sc = j["scores"]
    nan = int(np.isnan(s).sum())
    seen = s[~np.isnan(s)]
    check(sc["unseen"] == nan and sc["seen"] == N - nan and nan == len(range(0, N, 7)),
          "never-seen (NaN) count: the ids that never reported a loss",
          "unseen %r, NaN in export %d" % (sc["unseen"], nan))
    check(abs(sc["mean"] - float(np.mean(seen, dtype=np.float64))) < 1e-9 * abs(sc["mean"])
          and sc["min"] == float(seen.min()) and sc["max"] == float(seen.max()),
          "mean, min and max of the seen scores")
    h = sc["histogram"]
    check(len(h) == 20 and sum(b["count"] for b in h) == len(seen)
          and h[0]["lo"] == sc["min"] and h[-1]["hi"] == sc["max"]
          and all(h[i]["hi"] == h[i + 1]["lo"] for i in range(19)),
          "20 contiguous histogram bins from min to max holding every seen score")
    edges = np.linspace(sc["min"], sc["max"], 21)
    counts, _ = np.histogram(seen.astype(np.float64), bins=edges)
    diff = sum(abs(int(a) - b["count"]) for a, b in zip(counts, h))
    check(diff <= 4, "histogram counts agree with numpy's (up to edge rounding)",
          "numpy %r" % counts.tolist(), "ibstore %r" % [b["count"] for b in h])

    rc, text, err = run("scores", path)
    lines = text.splitlines()
    bars = [ln.split()[-1] for ln in lines if ln.rstrip().endswith("#")]
    check(rc == 0 and "policy          infobatch" in text and "mode            native" in text
          and "in progress: 2 of" in text, "text: configuration and progress", text[:600])
    check(len(bars) == 20 and max(len(b) for b in bars) == 50 and set("".join(bars)) == {"#"},
          "text: 20 histogram bars, the longest 50 '#'")
    check(sum(1 for ln in lines if ln.split()[:1] in (["0"], ["1"], ["2"])) == 3,
          "text: one table row per finished epoch")

    # a training process holds the state: scores fails clearly
    with open(path, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rc, out, err = run("scores", path)
    check(rc == 1 and "ibstore scores:" in err and "in use" in err and out == "",
          "a state locked by a training process: exit 1 with a message",
          "rc %d: %s" % (rc, err.strip()))
    rc, _, _ = run("scores", path)
    check(rc == 0, "the state opens again once released")


def other_runs():
    path, _ = make_run("fresh.run", 50, 4, "native", 0, 0)
    rc, out, err = run("scores", "--json", path)
    j = json.loads(out) if rc == 0 else {}
    check(j.get("epochs") == [] and j.get("in_epoch") is False and
          j.get("scores", {}).get("unseen") == 50 and j["scores"]["mean"] is None and
          j["scores"]["histogram"] == [],
          "a fresh native run: no epochs, every score unseen, mean null", out[:300], err)
    rc, out, err = run("scores", path)
    check(rc == 0 and "no finished epochs" in out and "50 never seen" in out,
          "a fresh run in text", out[-300:])

    path, rows = make_run("compat.run", 300, 4, "compat", 4, 0)
    rc, out, err = run("scores", "--json", path)
    j = json.loads(out) if rc == 0 else {}
    check(rc == 0 and j["config"]["mode"] == "compat" and j["scores"]["unseen"] == 0 and
          len(j["epochs"]) == 4 and j["in_epoch"] is False and j["epoch"] == 3,
          "a finished compat run: 4 epochs, no NaN scores (initial 3.0)", out[:300], err)
    check([e["prunes"] for e in j.get("epochs", [])] == [True, True, True, False],
          "compat schedule: e+1 <= 0.875*4 prunes epochs 0..2")

    eq, _ = make_run("equal.run", 40, 2, "compat", 0, 0)
    rc, out, err = run("scores", "--json", eq)
    j = json.loads(out) if rc == 0 else {}
    h = j.get("scores", {}).get("histogram", [])
    check(len(h) == 1 and h[0]["count"] == 40 and h[0]["lo"] == 3.0 == h[0]["hi"],
          "all scores equal (3.0): one histogram bin", out[:300])


def errors():
    rc, out, err = run("scores", os.path.join(TMP, "missing.run"))
    check(rc == 1 and "ibstore scores:" in err and not os.path.exists(
        os.path.join(TMP, "missing.run")), "a missing state: exit 1, nothing created", err)
    junk = os.path.join(TMP, "junk.run")
    with open(junk, "wb") as f:
        f.write(os.urandom(8192))
    rc, out, err = run("scores", junk)
    check(rc == 1 and "ibstore scores:" in err, "a file that is not a run state: exit 1", err)
    empty = os.path.join(TMP, "empty.run")
    open(empty, "wb").close()
    rc, out, err = run("scores", empty)
    check(rc == 1 and "ibstore scores:" in err, "an empty file: exit 1", err)
    rc, out, err = run("scores", TMP)
    check(rc == 1 and "ibstore scores:" in err, "a directory: exit 1", err)
    path, _ = make_run("e.run", 20, 2, "native", 1, 0)
    rc, out, err = run("scores", "--export", os.path.join(TMP, "no", "dir", "x.f32"), path)
    check(rc == 1 and "ibstore scores:" in err, "--export to an unwritable place: exit 1", err)
    rc, out, err = run("scores", "--help")
    check(rc == 0 and out.startswith("Usage: ibstore scores"), "--help: usage on stdout, exit 0")
    for what, args in [("no RUN", []), ("two RUNs", [path, path]), ("an unknown option",
                       ["--bogus", path]), ("--export without FILE", ["--export"]),
                       ("--export ''", ["--export", "", path])]:
        rc, out, err = run("scores", *args)
        check(rc == 2 and out == "" and "ibstore scores" in err, "bad arguments exit 2: " + what,
              "rc %d %s" % (rc, err.strip()))


def job_run():
    """A data-parallel job of 2 ranks stopped mid-epoch: `scores RUN` shows
    the job's one state (merged), a member file shows its own rank."""
    N = 1000
    base, rows = make_run("job.run", N, 10, "native", 2, 3)
    os.unlink(base)  # the one-rank run make_run wrote; now a job of 2 ranks
    rc, out, err = run(base, str(N), "10", "native", "2", "3", "2", prog=MAKE_RUN)
    check(rc == 0, "make_run writes a job of 2 ranks", err)
    rows2 = [tuple(float(x) for x in line.split()) for line in out.splitlines()]
    rc, out, err = run("scores", "--json", base)
    try:
        j = json.loads(out)
    except ValueError:
        check(False, "scores --json on a job prints one JSON object", "rc %d %s" % (rc, err))
        return
    check(rc == 0 and j.get("job") == {"world": 2, "generation": 0},
          "scores on a job's base: its 2 ranks, generation 0", out[:200])
    check(j["in_epoch"] is True and j["epoch"] == 2 and j["epochs_done"] == 2
          and j["position"] == 3 * 16 * 2,
          "the job's resume point: epoch 2, plan position 96 (3 batches of 16 on 2 ranks)",
          "epoch %r position %r" % (j["epoch"], j.get("position")))
    got = [(e["epoch"], e["kept"], e["pruned"], e["below_mean"], e["weight_sum"])
           for e in j["epochs"]]
    check([tuple(float(x) for x in g) for g in got] == rows2,
          "the job's per-epoch statistics", "%r vs %r" % (got, rows2))
    check(rows2 == [tuple(float(x) for x in r) for r in rows],
          "2 ranks and 1 rank plan the same epochs (kept, pruned, weights)")
    rc, out, err = run("scores", base)
    check(rc == 0 and out.startswith("job ") and "2 ranks" in out
          and "plan positions 0..96" in out, "the text report names the job",
          out.splitlines()[:1])
    rc, out, err = run("scores", "--json", base + ".rank1-of-2")
    j = json.loads(out) if rc == 0 else {}
    check(rc == 0 and "job" not in j and j["config"]["rank"] == 1 and j["config"]["world"] == 2
          and j["cursor"] == 3, "a member file on its own: rank 1 of 2, cursor 3", err)


def main():
    try:
        native_run()
        job_run()
        other_runs()
        errors()
    finally:
        subprocess.run(["rm", "-rf", TMP])
    print("1..%d" % len(results))
    failed = 0
    for i, (ok, desc, diag) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, desc))
        if not ok:
            failed += 1
            for d in diag:
                print("# " + str(d).replace("\n", "\n# "))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
