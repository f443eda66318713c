#!/usr/bin/env bash
# train_test.sh — end-to-end tests of examples/train_fmnist on real data
# (Fashion-MNIST t10k, 10 000 images, used as training and as test set for
# speed): it learns, InfoBatch reads fewer samples at about the same
# accuracy, pruned bytes are never read, results do not depend on threads,
# a run continued from its state file equals an uninterrupted one, and bad
# arguments exit 2.  Prints TAP.
#
# usage: train_test.sh PATH/TO/train_fmnist PATH/TO/ibstore
# IBSTORE_TEST_DATA overrides the Fashion-MNIST directory.
set -u

TRAIN=${1:?usage: train_test.sh PATH/TO/train_fmnist PATH/TO/ibstore}
IB=${2:?usage: train_test.sh PATH/TO/train_fmnist PATH/TO/ibstore}
DATA=${IBSTORE_TEST_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3
RECORD=824 # 40-byte record header + 784 pixels, 8-aligned (format/FORMAT.md)

if [ ! -r "$DATA/t10k-images-idx3-ubyte.gz" ] || [ ! -r "$DATA/t10k-labels-idx1-ubyte.gz" ]; then
	echo "1..0 # SKIP no Fashion-MNIST in $DATA"
	exit 0
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/ibstore-train-test.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

. "$(dirname "$0")/tap.sh"
# train OUT ARGS...: runs train_fmnist on the t10k dataset with --json,
# keeps stdout in $T/OUT.json and stderr in $T/OUT.err; returns its status.
train() {
	local out=$1
	shift
	"$TRAIN" --train "$DS" --test "$DS" --json "$@" >"$T/$out.json" 2>"$T/$out.err"
}

# summary OUT KEY: a field of the run's summary line.
summary() {
	"$PY" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
s = [r for r in rows if r.get("type") == "summary"]
if len(s) != 1:
    sys.exit("expected one summary line, got %d" % len(s))
print(s[0][sys.argv[2]])
' "$T/$1.json" "$2"
}

# py_check DESCRIPTION EXPR ARGS...: passes when the Python expression (over
# sys.argv[1:] as floats, named a, b, c, ...) is true.
py_check() {
	local d=$1 expr=$2
	shift 2
	if "$PY" -c "
import sys
a, b, c, d, e = (list(map(float, sys.argv[1:])) + [0.0] * 5)[:5]
sys.exit(0 if ($expr) else 1)
" "$@"; then
		ok "$d"
	else
		not_ok "$d" "failed: $expr with $*"
	fi
}

DS=$T/t10k.ibs
if "$IB" pack --from idx "$DATA/t10k-images-idx3-ubyte.gz" "$DATA/t10k-labels-idx1-ubyte.gz" \
	"$DS" >"$T/pack.out" 2>&1; then
	ok "pack Fashion-MNIST t10k"
else
	not_ok "pack Fashion-MNIST t10k" "$(head -c 500 "$T/pack.out")"
	echo "1..$n"
	exit 1
fi

# --- learning ---------------------------------------------------------------

if train none --policy none --epochs 3 --seed 7 --gap 0; then
	ok "policy none trains 3 epochs"
else
	not_ok "policy none trains 3 epochs" "$(head -c 500 "$T/none.err")"
fi
acc_none=$(summary none final_accuracy 2>&1) || acc_none=0
samples_none=$(summary none samples 2>&1) || samples_none=0
py_check "policy none reaches test accuracy > 0.70 after 3 epochs ($acc_none)" 'a > 0.70' "$acc_none"
py_check "policy none reads every sample every epoch ($samples_none)" 'a == 30000' "$samples_none"
epochs_lines=$(grep -c '"type":"epoch"' "$T/none.json")
py_check "one JSON line per epoch ($epochs_lines)" 'a == 3' "$epochs_lines"

if train ib --policy infobatch --ratio 0.5 --epochs 3 --seed 7 --gap 0; then
	ok "policy infobatch trains 3 epochs"
else
	not_ok "policy infobatch trains 3 epochs" "$(head -c 500 "$T/ib.err")"
fi
acc_ib=$(summary ib final_accuracy 2>&1) || acc_ib=0
samples_ib=$(summary ib samples 2>&1) || samples_ib=0
read_ib=$(summary ib bytes_read 2>&1) || read_ib=0
skipped_ib=$(summary ib bytes_skipped 2>&1) || skipped_ib=0
py_check "infobatch reads fewer samples than none ($samples_ib < $samples_none)" \
	'0 < a < b' "$samples_ib" "$samples_none"
py_check "infobatch's accuracy is within 3 points of none's ($acc_ib vs $acc_none)" \
	'abs(a - b) <= 0.03' "$acc_ib" "$acc_none"
# With --gap 0 the loader requests only wanted records: every record is
# either read or skipped, once per epoch.
py_check "pruned means unread: bytes read = samples read x record, rest skipped" \
	'a == c * 824 and a + b == 3 * 10000 * 824' "$read_ib" "$skipped_ib" "$samples_ib"

if train rnd --policy random --epochs 3 --seed 7; then
	samples_rnd=$(summary rnd samples 2>&1) || samples_rnd=0
	py_check "policy random also prunes ($samples_rnd < $samples_none)" '0 < a < b' \
		"$samples_rnd" "$samples_none"
else
	not_ok "policy random trains 3 epochs" "$(head -c 500 "$T/rnd.err")"
fi

# --- determinism and resume --------------------------------------------------

# strip_times FILE: the JSON lines without their wall times.
strip_times() { sed -E 's/,"(train_|eval_)?seconds":[0-9.]+//g' "$1"; }
train ib1 --policy infobatch --ratio 0.5 --epochs 3 --seed 7 --gap 0 --threads 1
if [ -s "$T/ib1.json" ] && cmp -s <(strip_times "$T/ib.json") <(strip_times "$T/ib1.json"); then
	ok "1 and 2 threads give the same run (accuracies, losses, samples, bytes)"
else
	not_ok "1 and 2 threads give the same run" "$(diff <(strip_times "$T/ib.json") <(strip_times "$T/ib1.json") | head -5)"
fi

RUN=$T/run.state
if train part --policy infobatch --epochs 3 --seed 7 --gap 0 --run "$RUN" --stop-after 2; then
	ok "a run stops after 2 of 3 epochs (--stop-after 2)"
else
	not_ok "a run stops after 2 of 3 epochs" "$(head -c 500 "$T/part.err")"
fi
done2=$("$IB" scores --json "$RUN" 2>"$T/scores.err" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["epochs_done"])' 2>&1)
py_check "ibstore scores shows 2 epochs done in the stopped run ($done2)" 'a == 2' "$done2"
if train rest --policy infobatch --epochs 3 --seed 7 --gap 0 --run "$RUN"; then
	ok "the same command continues the run"
else
	not_ok "the same command continues the run" "$(head -c 500 "$T/rest.err")"
fi
done3=$("$IB" scores --json "$RUN" 2>"$T/scores.err" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["epochs_done"])' 2>&1)
py_check "ibstore scores shows 3 epochs done after it ($done3)" 'a == 3' "$done3"
rest_epochs=$(summary rest epochs 2>&1) || rest_epochs=0
acc_rest=$(summary rest final_accuracy 2>&1) || acc_rest=0
py_check "the continued run trains only the missing epoch ($rest_epochs)" 'a == 1' "$rest_epochs"
py_check "the continued run ends exactly where the uninterrupted one does ($acc_rest vs $acc_ib)" \
	'a == b' "$acc_rest" "$acc_ib"
last_ib=$(grep '"type":"epoch"' "$T/ib.json" | tail -1 | strip_times /dev/stdin)
last_rest=$(grep '"type":"epoch"' "$T/rest.json" | tail -1 | strip_times /dev/stdin)
if [ -n "$last_ib" ] && [ "$last_ib" = "$last_rest" ]; then
	ok "its last epoch equals the uninterrupted run's (samples, bytes, loss)"
else
	not_ok "its last epoch equals the uninterrupted run's" "$last_ib" "$last_rest"
fi
if train other --policy infobatch --epochs 4 --seed 7 --run "$RUN"; then
	not_ok "a run state of another configuration is refused"
else
	ok "a run state of another configuration is refused"
fi

# --- arguments ----------------------------------------------------------------

# bad DESCRIPTION ARGS...: train_fmnist ARGS must exit 2 with a message.
bad() {
	local d=$1 rc
	shift
	"$TRAIN" "$@" >"$T/bad.out" 2>"$T/bad.err"
	rc=$?
	if [ "$rc" -eq 2 ] && [ -s "$T/bad.err" ]; then
		ok "exit 2: $d"
	else
		not_ok "exit 2: $d" "exited $rc" "stderr: $(head -c 300 "$T/bad.err")"
	fi
}
bad "no arguments"
bad "no --test" --train "$DS"
bad "no --train" --test "$DS"
bad "--epochs 0" --train "$DS" --test "$DS" --epochs 0
bad "--epochs abc" --train "$DS" --test "$DS" --epochs abc
bad "--policy foo" --train "$DS" --test "$DS" --policy foo
bad "--ratio 1.5" --train "$DS" --test "$DS" --ratio 1.5
bad "--delta -1" --train "$DS" --test "$DS" --delta -1
bad "--batch 0" --train "$DS" --test "$DS" --batch 0
bad "--lr -0.1" --train "$DS" --test "$DS" --lr -0.1
bad "--momentum 1" --train "$DS" --test "$DS" --momentum 1
bad "--threads 0" --train "$DS" --test "$DS" --threads 0
bad "unknown option" --train "$DS" --test "$DS" --frobnicate
bad "option without its value" --train "$DS" --test
bad "stray argument" --train "$DS" --test "$DS" extra

"$TRAIN" --help >"$T/help.out" 2>&1
rc=$?
if [ "$rc" -eq 0 ] && grep -q -- '--policy' "$T/help.out"; then
	ok "--help prints usage and exits 0"
else
	not_ok "--help prints usage and exits 0" "exited $rc"
fi
"$TRAIN" --train "$T/nothing.ibs" --test "$DS" >"$T/bad.out" 2>"$T/bad.err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q nothing.ibs "$T/bad.err"; then
	ok "a missing dataset exits 1 naming it"
else
	not_ok "a missing dataset exits 1 naming it" "exited $rc" "$(head -c 300 "$T/bad.err")"
fi

tap_done
