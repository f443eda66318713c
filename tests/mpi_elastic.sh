#!/usr/bin/env bash
# mpi_elastic.sh MPIRUN TEST_MPI — elastic resume over MPI: a job of 2 ranks
# stops in the middle of epoch 1, resumes on 3 ranks, stops in the middle of
# epoch 2 and finishes on 1 (test_mpi --elastic DIR PHASE; each phase is its
# own mpirun, as after a preemption).  Prints the phases' TAP as one plan.
set -u

MPIRUN=$1
TEST_MPI=$2
dir=$(mktemp -d /tmp/mpi_elastic.XXXXXX)
trap 'rm -rf "$dir"' EXIT

n=0
failed=0
phase=1
for np in 2 3 1; do
	out=$("$MPIRUN" --oversubscribe --allow-run-as-root -np "$np" "$TEST_MPI" --elastic "$dir" "$phase" 2>&1)
	rc=$?
	# renumber the phase's TAP lines into one plan; keep its diagnostics
	while IFS= read -r line; do
		case $line in
		"ok "* | "not ok "*)
			n=$((n + 1))
			case $line in "not ok "*) failed=$((failed + 1)) ;; esac
			echo "$line" | sed -E "s/^(not )?ok [0-9]+/\1ok $n/; s/ - / - phase $phase: /" ;;
		1..*) ;;
		*) echo "# $line" ;;
		esac
	done <<<"$out"
	if [ "$rc" -ne 0 ]; then
		n=$((n + 1))
		failed=$((failed + 1))
		echo "not ok $n - phase $phase: mpirun -np $np exited with $rc"
	fi
	phase=$((phase + 1))
done
echo "1..$n"
[ "$failed" -eq 0 ]
