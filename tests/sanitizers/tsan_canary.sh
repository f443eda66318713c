#!/usr/bin/env bash
# tsan_canary.sh CANARY — TAP: ThreadSanitizer reports the planted race of
# tsan_canary.c (so the TSan tree's silence elsewhere means something).
set -u
out=$(TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$1" 2>&1)
rc=$?
echo "1..2"
if [ "$rc" -eq 66 ]; then
	echo "ok 1 - the racy program exits with TSan's status 66"
else
	echo "not ok 1 - the racy program exited $rc, not 66: is -fsanitize=thread on?"
fi
if grep -q "WARNING: ThreadSanitizer: data race" <<<"$out"; then
	echo "ok 2 - TSan names the data race"
else
	echo "not ok 2 - no data race report; output was:"
	sed 's/^/# /' <<<"$out"
fi
