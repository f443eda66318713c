"""compat_vectors.py — the InfoBatch reference package's per-epoch plan, in numpy.

What `ibstore plan --mode compat` must reproduce bit for bit
(docs/PRUNING.md, "Native and compat modes"): numpy's
legacy global RandomState seeded with e+1, a float32 mean of all scores,
strict `< mean` candidates, `int(keep * len(wl))` survivors chosen with
`np.random.choice(replace=False)` (a full permutation of `wl`), weights
`1/keep` stored as float32, then one shuffle of `keepset ++ sel`; annealing
epochs shuffle 0..N-1 with weight 1.  Pruning iff e+1 <= delta*C.

Written from the specification, not copied from the reference package.
Used by test_compat.py and bench/plan_speed.  Needs numpy (1.24 tested).

    python3 compat_vectors.py SCORES.f32 EPOCH EPOCHS [RATIO [DELTA]]
prints the plan as "ID WEIGHT" lines, like `ibstore plan --mode compat`.
"""
import sys
import warnings

import numpy as np


def keep_fraction(ratio):
    """keep = clamp(1 - r, 0.1, 1.0), in double."""
    return min(max(1.0 - ratio, 0.1), 1.0)


def prunes(epoch, epochs, delta=0.875):
    """The reference prunes epoch e (0-based) iff e+1 <= delta*C."""
    return epoch + 1 <= delta * epochs


def prune_step(scores, keep):
    """The reference's prune(): (plan, weights by id, mean, len(wl)).

    Draws from the global RandomState, which the caller has seeded.
    """
    weights = np.ones(len(scores), dtype=np.float32)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # the mean of no scores is NaN
        mean = scores.mean()
    wl = np.where(scores < mean)[0]
    keepset = np.where(scores >= mean)[0]
    k = int(keep * len(wl))
    sel = np.random.choice(wl, k, replace=False)
    weights[sel] = 1 / keep
    plan = np.concatenate((keepset, sel))
    np.random.shuffle(plan)
    return plan, weights, mean, len(wl)


def no_prune_step(n):
    """The reference's annealing epoch: a shuffle of 0..N-1, weight 1."""
    plan = np.arange(n)
    np.random.shuffle(plan)
    return plan, np.ones(n, dtype=np.float32)


def reference_plan(scores, epoch, epochs, ratio=0.5, delta=0.875):
    """The plan of epoch `epoch` as a dict: ids (plan order), weights (per
    plan entry, float32), prunes, and the statistics ibstore reports."""
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    n = len(scores)
    keep = keep_fraction(ratio)
    np.random.seed(epoch + 1)
    p = prunes(epoch, epochs, delta)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        mean = scores.mean()
    if p:
        plan, weights, mean, below = prune_step(scores, keep)
    else:
        plan, weights = no_prune_step(n)
        # ibstore reports the threshold and candidates in annealing too
        below = int(np.count_nonzero(scores < mean))
    w = weights[plan]
    return {
        "ids": plan,
        "weights": w,
        "prunes": p,
        "samples": n,
        "kept": len(plan),
        "pruned": n - len(plan),
        "below_mean": below,
        "threshold": float(mean),  # NaN when n == 0
        "weight_sum": float(np.sum(w, dtype=np.float64)),
    }


def plan_text(ref):
    """The plan as `ibstore plan` prints it."""
    return "".join("%d %s\n" % (i, "%.9g" % float(w))
                   for i, w in zip(ref["ids"].tolist(), ref["weights"].tolist()))


def read_scores(path):
    return np.fromfile(path, dtype="<f4")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__.split("\n\n")[-1])
    args = sys.argv[1:]
    ref = reference_plan(read_scores(args[0]), int(args[1]), int(args[2]),
                         *(float(a) for a in args[3:5]))
    sys.stdout.write(plan_text(ref))
