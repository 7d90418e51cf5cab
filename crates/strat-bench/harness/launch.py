"""Run one command and report its wall time and peak RSS, from a small process.

    python3 launch.py RESULT.json STDOUT STDERR -- CMD...

Why a separate launcher: on Linux a child's ru_maxrss starts from the high-water
RSS of the process it was forked from (exec records the old address space's
peak). Forked from the harness, which has DuckDB loaded and has read samples
back, every child would report at least the harness's size. This launcher
imports nothing heavy (~10 MB), so what os.wait4 reports is the command's own
peak. Standard library only.
"""

import json
import os
import subprocess
import sys
import time


def main() -> None:
    result, out, err = sys.argv[1:4]
    assert sys.argv[4] == "--"
    cmd = sys.argv[5:]
    with open(out, "w") as o, open(err, "w") as e:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=o, stderr=e)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    with open(result, "w") as f:
        json.dump({"wall": wall, "maxrss": ru.ru_maxrss * 1024, "rc": os.waitstatus_to_exitcode(status)}, f)


if __name__ == "__main__":
    main()
