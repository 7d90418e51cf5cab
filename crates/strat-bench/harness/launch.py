"""Run one command and report its wall time and peak RSS, from a small process.

    python3 launch.py RESULT.json STDOUT STDERR [TIMEOUT_S] -- CMD...

Why a separate launcher: on Linux a child's ru_maxrss starts from the high-water
RSS of the process it was forked from (exec records the old address space's
peak). Forked from the harness, which has DuckDB loaded and has read samples
back, every child would report at least the harness's size. This launcher
imports nothing heavy (~10 MB), so what os.wait4 reports is the command's own
peak. Standard library only.

The command runs in a session (process group) of its own. After TIMEOUT_S
seconds the whole group is killed (SIGKILL) and the result says "timed_out";
so is it when the launcher itself is interrupted or terminated. A command
killed by a signal (the kernel's OOM killer sends SIGKILL) has a negative "rc"
(-9), and its "maxrss" is its peak up to then.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time


def main() -> None:
    result, out, err = sys.argv[1:4]
    rest = sys.argv[4:]
    timeout = None
    if rest[0] != "--":
        timeout, rest = float(rest[0]), rest[1:]
    assert rest[0] == "--"
    cmd = rest[1:]
    timed_out = threading.Event()
    with open(out, "w") as o, open(err, "w") as e:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=o, stderr=e, start_new_session=True)

        def kill_group(*_):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        def on_timeout():
            timed_out.set()
            kill_group()

        def on_signal(signum, _frame):
            kill_group()
            sys.exit(128 + signum)

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        timer = threading.Timer(timeout, on_timeout) if timeout else None
        if timer:
            timer.daemon = True
            timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        if timer:
            timer.cancel()
        if timed_out.is_set():
            kill_group()  # what is left of the group (a driver's JVM, say)
    with open(result, "w") as f:
        json.dump({"wall": wall, "maxrss": ru.ru_maxrss * 1024, "rc": os.waitstatus_to_exitcode(status),
                   "timed_out": timed_out.is_set()}, f)


if __name__ == "__main__":
    main()
