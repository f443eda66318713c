#!/usr/bin/python3
"""watchdog_test.py — tests/watchdog, the wrapper every meson test runs
under (TAP output).

A program that hangs with two threads (tests/watchdog_hang.c) is stopped
after its 2 s, with both threads' backtraces printed, and so is one with a
child process; a program that does not hang keeps its standard output,
error and input, its exit status and its death by a signal, and receives
the signals the watchdog gets.

usage: watchdog_test.py WATCHDOG WATCHDOG_HANG
"""
import os
import signal
import subprocess
import sys
import time

WATCHDOG, HANG = sys.argv[1], sys.argv[2]
PY = sys.executable
n = 0
failed = 0


def case(ok, desc, notes=()):
    global n, failed
    n += 1
    failed += not ok
    print(f"{'ok' if ok else 'not ok'} {n} - {desc}", flush=True)
    if not ok:
        for note in notes:
            for ln in str(note).splitlines()[-60:]:
                print(f"# {ln}", flush=True)


def watchdog(seconds, *cmd, env=None, **kw):
    e = dict(os.environ)
    e.pop("IBSTORE_TIMEOUT_SCALE", None)  # the limits below are exact
    e.update(env or {})
    return subprocess.run([PY, WATCHDOG, str(seconds), "--", *cmd], capture_output=True,
                          env=e, timeout=120, **kw)


def gone(pid):
    """pid has ended: no such process, or a zombie (dead; the watchdog's
    grandchildren are reaped by init, which may take its time)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:].split(" ", 1)[0] in ("Z", "X")


def last_line(b):
    lines = b.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else ""


# --- a program that does not hang passes through untouched ---------------------

payload = b"1..2\nok 1 - a\n\x00\xff\xfe not utf-8\nok 2 - no newline at the end"
r = watchdog(30, PY, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read()); "
             "sys.stderr.write('to stderr\\n'); sys.exit(3)", input=payload)
case(r.stdout == payload, "standard output passes through byte for byte",
     [repr(r.stdout)])
case(r.stderr == b"to stderr\n", "standard error passes through", [repr(r.stderr)])
case(r.returncode == 3, "the exit status passes through (3)", [r.returncode])

r = watchdog(30, "sh", "-c", "exit 0")
case(r.returncode == 0 and r.stdout == b"" and r.stderr == b"",
     "exit status 0 and nothing added to the output", [r.returncode, r.stderr])

r = watchdog(30, "sh", "-c", "kill -ABRT $$")
case(r.returncode == -signal.SIGABRT, "death by SIGABRT passes through as death by SIGABRT",
     [r.returncode, r.stderr])

r = watchdog(30, "/nonexistent/program")
case(r.returncode == 127 and b"cannot run /nonexistent/program" in r.stderr,
     "a program that cannot be run: exit status 127 and a message", [r.returncode, r.stderr])

r = watchdog(30)
case(r.returncode == 2 and b"SECONDS -- PROGRAM" in r.stderr,
     "no program: usage error, exit status 2", [r.returncode, r.stderr])

# SIGTERM to the watchdog reaches the program, which decides how to end.
p = subprocess.Popen([PY, WATCHDOG, "30", "--", "bash", "-c",
                      "trap 'echo got TERM; exit 7' TERM; echo ready; "
                      "while :; do sleep 0.05; done"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
ready = p.stdout.readline()
p.send_signal(signal.SIGTERM)
out, err = p.communicate(timeout=30)
case(ready == b"ready\n" and out == b"got TERM\n" and p.returncode == 7,
     "SIGTERM is forwarded to the program (its trap prints and exits 7)",
     [ready, out, err, p.returncode])

# --- a program that hangs: stacks of every thread and process, then killed ----

t0 = time.monotonic()
r = watchdog(2, HANG, "threads")
took = time.monotonic() - t0
err = r.stderr.decode("utf-8", "replace")
pids = [int(x) for x in r.stdout.split()[1:]]
case(r.returncode == 124, "a hang ends with exit status 124", [r.returncode, err])
case(2 <= took < 2 + 25, f"... after the 2 s limit plus the stack dump ({took:.1f} s)", [err])
case("hang_in_main_thread" in err and "hang_in_worker_thread" in err,
     "... with the backtraces of both threads", [err])
case(last_line(r.stderr).endswith("ran past 2 s; stacks above"),
     "... and 'watchdog: NAME ran past 2 s; stacks above' as the last line",
     [last_line(r.stderr)])
case(len(pids) == 1 and gone(pids[0]), "... and the program is gone", [r.stdout])

r = watchdog(2, HANG, "fork")
err = r.stderr.decode("utf-8", "replace")
pids = [int(x) for x in r.stdout.split()[1:]]
case(r.returncode == 124 and "hang_in_child_process" in err
     and "hang_in_main_thread" in err and "hang_in_worker_thread" in err
     and "stacks of its 2 process(es)" in err,
     "a hang with a child process: the stacks of both processes", [r.returncode, err])
case(len(pids) == 2 and all(gone(p) for p in pids), "... and both are killed",
     [r.stdout] + [f"/proc/{p}/status: " + open(f"/proc/{p}/status").read()
                   for p in pids if not gone(p)])

# The limit scales with IBSTORE_TIMEOUT_SCALE (scripts/test sets it for the
# sanitizer tree): 4 s x 0.5 stops at 2 s.
t0 = time.monotonic()
r = watchdog(4, "sleep", "100", env={"IBSTORE_TIMEOUT_SCALE": "0.5"})
took = time.monotonic() - t0
scaled = "ran past 2 s (4 s x IBSTORE_TIMEOUT_SCALE 0.5); stacks above"
case(r.returncode == 124 and took < 4 and last_line(r.stderr).endswith(scaled),
     f"SECONDS is scaled by IBSTORE_TIMEOUT_SCALE ({took:.1f} s)",
     [r.returncode, r.stderr.decode("utf-8", "replace")])

print(f"1..{n}")
sys.exit(1 if failed else 0)
