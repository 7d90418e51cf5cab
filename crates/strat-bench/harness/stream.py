"""Online decisions: throughput and latency of `strat stream` (issue 16).

    target/python-venv/bin/python crates/strat-bench/harness/stream.py \
        [--rows 1000000] [--strat target/release/strat] [--results FILE.md]

Data: the benchmark's members table (target/strat-bench/data/ROWS/members.parquet,
made by `strat-bench-gen` if missing), written once as NDJSON records.

- Throughput: every record from NDJSON on stdin to NDJSON on stdout
  (`> /dev/null`), for T2's exact sample with frozen thresholds
  (`strat freeze`), an exact split with frozen thresholds, and an `about`
  split (no thresholds); records/s from the wall time of the process
  (start-up and rule checking included).
- Latency: `--line-buffered`, one record written at a time to a running
  `strat stream` of the about split (every record gives a line out); the
  time from the write to its line read back, for 2,000 records 1 ms apart;
  p50, p99 and max.
- Each streamed sample is checked against `strat run` on the same table
  (same lines, sorted).
"""

import argparse
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[3]

RULES = """
table members = "{members}"

t2 = sample members
  unit member_id
  stratify by country, plan
  take 100_000
  allocate proportional
  seed 20180602

exact_split = split members
  unit member_id
  stratify by country, plan
  into train 80%, validation 10%, test 10%
  seed 20180603
  output member_id, country, plan, _split

about_split = split members
  unit member_id
  stratify by country, plan
  into about train 80%, validation 10%, test 10%
  seed 20180604
  output member_id, country, plan, _split
"""


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_members(rows: int) -> Path:
    path = ROOT / f"target/strat-bench/data/{rows}/members.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        sh([str(ROOT / "target/release/strat-bench-gen"), "--members", str(rows), "--out", str(path.parent)])
    return path


def records(members: Path, work: Path) -> Path:
    out = work / "records.ndjson"
    if not out.exists():
        con = duckdb.connect()
        # Shuffled: records arrive in no particular order.
        con.execute(f"COPY (SELECT * FROM '{members}' ORDER BY hash(member_id)) TO '{out}' (FORMAT JSON)")
    return out


def timed(cmd, stdin=None, stdout=subprocess.DEVNULL) -> tuple[float, int]:
    """Wall time and peak RSS (bytes, from /usr/bin/time) of `cmd`."""
    rss = Path(os.environ.get("TMPDIR", "/tmp")) / f"stream-rss-{os.getpid()}"
    started = time.perf_counter()
    sh(["/usr/bin/time", "-f", "%M", "-o", str(rss)] + cmd, stdin=stdin, stdout=stdout,
       stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    return wall, int(rss.read_text().split()[-1]) * 1024


def sorted_lines(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines())


def throughput(strat: str, rules: Path, recs: Path, work: Path, n: int) -> list[tuple[str, float, int, bool]]:
    out = []
    for emit, frozen in [("t2", True), ("exact_split", True), ("about_split", False)]:
        batch = work / f"{emit}.ndjson"
        sh([strat, "run", "-q", str(rules), "--emit", emit, "-o", str(batch)], stderr=subprocess.DEVNULL)
        args = [strat, "stream", str(rules), "--emit", emit]
        if frozen:
            decisions = work / f"{emit}.json"
            sh([strat, "freeze", str(rules), "--emit", emit, "-o", str(decisions)], stderr=subprocess.DEVNULL)
            args += ["--thresholds", str(decisions)]
        streamed = work / f"{emit}.stream.ndjson"
        with open(recs, "rb") as i, open(streamed, "wb") as o:
            sh(args, stdin=i, stdout=o, stderr=subprocess.DEVNULL)  # checked run
        same = sorted_lines(streamed) == sorted_lines(batch)
        best, rss = min(timed(args, stdin=open(recs, "rb")) for _ in range(3))
        out.append((emit, n / best, rss, same))
        print(f"{emit}: {n / best:,.0f} records/s ({best:.2f} s, {rss / 1e6:,.0f} MB), "
              f"same as strat run: {same}", file=sys.stderr)
    return out


def latency(strat: str, rules: Path, recs: Path, count: int = 2000) -> dict:
    lines = []
    with open(recs, "rb") as f:
        for _ in range(count):
            lines.append(f.readline())
    p = subprocess.Popen(
        [strat, "stream", str(rules), "--emit", "about_split", "--line-buffered"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
    )
    out = p.stdout.fileno()
    waits = []
    pending = b""
    # The first records pay for start-up: leave 100 out of the figures.
    for k, line in enumerate(lines):
        started = time.perf_counter()
        p.stdin.write(line)
        while b"\n" not in pending:
            select.select([out], [], [], 5)
            pending += os.read(out, 65536)
        pending = pending[pending.index(b"\n") + 1:]
        if k >= 100:
            waits.append(time.perf_counter() - started)
        time.sleep(0.001)
    p.stdin.close()
    p.wait()
    waits.sort()
    q = lambda x: waits[min(len(waits) - 1, int(x * len(waits)))] * 1000
    return {"p50": q(0.5), "p99": q(0.99), "max": waits[-1] * 1000, "n": len(waits)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--strat", default=str(ROOT / "target/release/strat"))
    ap.add_argument("--results", default=str(ROOT / "target/strat-bench/stream.md"))
    a = ap.parse_args()
    work = ROOT / f"target/strat-bench/stream/{a.rows}"
    work.mkdir(parents=True, exist_ok=True)
    members = ensure_members(a.rows)
    rules = work / "stream.strat"
    rules.write_text(RULES.format(members=members))
    recs = records(members, work)
    rows = throughput(a.strat, rules, recs, work, a.rows)
    lat = latency(a.strat, rules, recs)
    text = [
        f"`strat stream`, {a.rows:,} records (NDJSON, {recs.stat().st_size / 1e6:,.0f} MB), "
        f"{os.cpu_count()} cores; `{' '.join(sys.argv)}`",
        "",
        "| statement | records/s (best of 3) | peak RSS | same records as `strat run` |",
        "| --- | --- | --- | --- |",
    ]
    text += [f"| {e} | {r:,.0f} | {m / 1e6:,.0f} MB | {'yes' if s else 'NO'} |" for e, r, m, s in rows]
    text += [
        "",
        f"Latency (`--line-buffered`, about split, {lat['n']} records 1 ms apart): "
        f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms",
        "",
    ]
    Path(a.results).write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
