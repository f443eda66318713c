#!/usr/bin/env bash
# compare_fmnist.sh — is InfoBatch lossless on real data?  Trains
# train_fmnist on Fashion-MNIST (60 000 train / 10 000 test) under the
# policies none, infobatch and random with several seeds, runs interleaved
# (seed by seed) so that load on the machine hits every policy alike, and
# prints a Markdown table: final test accuracy (mean ± sample std), samples
# read (relative to none), bytes never read, wall time.
#
# usage: examples/compare_fmnist.sh TRAIN_FMNIST TRAIN.ibs TEST.ibs OUTDIR
#          [--epochs C (20)] [--seeds "0 1 2"] [--policies "none infobatch random"]
#          [-- extra train_fmnist options]
# Each run's JSON lines go to OUTDIR/POLICY-SEED.json.
set -euo pipefail

[ $# -ge 4 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
TRAIN=$1 TRAIN_DS=$2 TEST_DS=$3 OUT=$4
shift 4
EPOCHS=20
SEEDS="0 1 2"
POLICIES="none infobatch random"
while [ $# -gt 0 ]; do
	case $1 in
	--epochs) EPOCHS=$2; shift 2 ;;
	--seeds) SEEDS=$2; shift 2 ;;
	--policies) POLICIES=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "compare_fmnist.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
mkdir -p "$OUT"

for seed in $SEEDS; do
	for policy in $POLICIES; do
		echo "compare_fmnist.sh: $policy seed $seed" >&2
		"$TRAIN" --train "$TRAIN_DS" --test "$TEST_DS" --epochs "$EPOCHS" --seed "$seed" \
			--policy "$policy" --json "$@" >"$OUT/$policy-$seed.json"
	done
done

/usr/bin/python3 - "$OUT" "$EPOCHS" "$SEEDS" "$POLICIES" <<'EOF'
import json, statistics, sys
out, epochs, seeds, policies = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()

def summary(policy, seed):
    for line in open(f"{out}/{policy}-{seed}.json"):
        row = json.loads(line)
        if row["type"] == "summary":
            return row
    raise SystemExit(f"no summary in {out}/{policy}-{seed}.json")

def ms(xs, fmt):
    if len(xs) < 2:
        return fmt % xs[0]
    return (fmt + " ± " + fmt) % (statistics.mean(xs), statistics.stdev(xs))

rows = {p: [summary(p, s) for s in seeds] for p in policies}
base = statistics.mean(r["samples"] for r in rows[policies[0]])
base_t = statistics.mean(r["seconds"] for r in rows[policies[0]])
print(f"Fashion-MNIST, MLP 784-128-10, {epochs} epochs, seeds {', '.join(seeds)} "
      f"(mean ± std over seeds)\n")
print("| policy | final test accuracy (%) | min–max (%) | samples read | relative | "
      "bytes skipped (MB) | train s | total s | time vs " + policies[0] + " |")
print("|---|---|---|---|---|---|---|---|---|")
for p in policies:
    r = rows[p]
    acc = [100 * x["final_accuracy"] for x in r]
    smp = statistics.mean(x["samples"] for x in r)
    t = [x["seconds"] for x in r]
    print(f"| {p} | {ms(acc, '%.2f')} | {min(acc):.2f}–{max(acc):.2f} | {smp:,.0f} | "
          f"{smp / base:.3f} | {statistics.mean(x['bytes_skipped'] for x in r) / 1e6:.1f} | "
          f"{ms([x['train_seconds'] for x in r], '%.1f')} | {ms(t, '%.1f')} | "
          f"{100 * (statistics.mean(t) / base_t - 1):+.1f}% |")
EOF
