# tap.sh — the TAP helpers the end-to-end test scripts share (sourced).
# Before sourcing, set IB (the ibstore command, for run) and T (a scratch
# directory); finish with tap_done.

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
	shift
	for line in "$@"; do echo "# $line"; done
}
# check DESCRIPTION COMMAND...: passes when COMMAND succeeds.
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

# run EXPECTED_RC DESCRIPTION ARGS...: runs ibstore, keeps its output in
# $T/out and $T/err, and checks the exit status.
run() {
	local want=$1 d=$2 rc
	shift 2
	"$IB" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" -eq "$want" ]; then
		ok "$d"
	else
		not_ok "$d" "ibstore $* exited $rc, expected $want" "stderr: $(head -c 600 "$T/err")"
	fi
}

# tap_done: the plan line, and the exit status (non-zero on any failure).
tap_done() {
	echo "1..$n"
	[ "$failed" -eq 0 ]
}
