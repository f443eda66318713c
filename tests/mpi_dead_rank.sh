#!/usr/bin/env bash
# mpi_dead_rank.sh MPIRUN TEST_MPI — a rank that dies mid-epoch (exits, or
# is killed by SIGKILL, without MPI_Finalize while the others are entering
# ibstore_run_exchange_mpi) must make the job fail with a clear error within
# a bounded time, never hang.  MPI has no timeouts of its own: Open MPI's
# mpirun aborts the whole job when a process ends without finalising, and
# `timeout` bounds the wait in case it does not.  Prints TAP.
set -u

MPIRUN=$1
TEST_MPI=$2
BOUND=60
victim=1

echo "1..6"
# np 2: rank 1 exits with status 3; np 3: rank 1 is killed by SIGKILL
for np in 2 3; do
	how=(--die-rank "$victim")
	expect="Process name: \[\[[0-9]+,[0-9]+\],$victim\]"
	what="exits with status 3"
	if [ "$np" -eq 3 ]; then
		how+=(--signal)
		expect="process rank $victim .*exited on signal 9"
		what="is killed by SIGKILL"
	fi
	log=$(mktemp)
	start=$(date +%s)
	timeout -k 5 "$BOUND" "$MPIRUN" --oversubscribe --allow-run-as-root -np "$np" \
		"$TEST_MPI" "${how[@]}" >"$log" 2>&1
	rc=$?
	elapsed=$(($(date +%s) - start))
	sed 's/^/# /' "$log"

	if [ "$rc" -ne 0 ]; then
		echo "ok - np $np: mpirun exits non-zero ($rc) when rank $victim $what"
	else
		echo "not ok - np $np: mpirun exited 0 although rank $victim $what"
	fi
	# timeout says 124 (or 137 after -k); mpirun itself gives 137 for a SIGKILLed rank
	if [ "$rc" -ne 124 ] && [ "$elapsed" -lt "$BOUND" ]; then
		echo "ok - np $np: the job ends by itself in ${elapsed}s (bound ${BOUND}s)"
	else
		echo "not ok - np $np: the job hung until the ${BOUND}s timeout killed it (rc $rc)"
	fi
	if grep -Eq "$expect" "$log"; then
		echo "ok - np $np: mpirun's error names rank $victim"
	else
		echo "not ok - np $np: no error names rank $victim (expected /$expect/)"
	fi
	rm -f "$log"
done
