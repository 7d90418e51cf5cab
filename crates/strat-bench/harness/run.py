#!/usr/bin/env python3
"""The strat benchmark harness (issue 6): strat against DuckDB, Polars and PySpark
on tasks T1-T6, with scan floors and a draw floor, side by side in one run.

    python3 crates/strat-bench/harness/run.py                       # 1M and 10M rows, everything
    python3 crates/strat-bench/harness/run.py --quick               # 100k rows, 1 run, a minute or two
    python3 crates/strat-bench/harness/run.py --rows 30000000 --tasks t2 --engines strat,duckdb

For each table size: generate the data if missing (strat-bench-gen); then for each
task and each engine variant start a fresh process per run: one warm-up, then
--runs measured runs; record the median wall time and the peak RSS (os.wait4's
ru_maxrss, taken by the small launcher launch.py; for Spark, whose JVM is a
grandchild the driver does not reap, the peak of the summed RSS of the process
tree, sampled every 50 ms, when larger);
check the last run's output for correctness; write a markdown report
(--results) and print it; raw numbers go to the JSON next to it.

Variants: strat (--threads N, N = --threads), strat-1t (--threads 1),
duckdb, polars, spark (the idiomatic sample, each on --threads cores);
floors: datafusion-scan (strat's engine), duckdb-scan, polars-scan, spark-scan
(read the task's columns, count by strata); duckdb-draw, the target of issue 6
(DuckDB's scan plus the spec's md5 draw of every unit), and datafusion-draw
(the same with DataFusion's built-in md5).

Needs Python 3.11, duckdb, polars, pyspark and datafusion (requirements.txt) and
Java 17 for Spark. Documented in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from tasks import TASKS, columns_needed, largest_remainder, split_bounds, t1_rates, task_n  # noqa: E402

REPO = HERE.parents[2]
ENGINES = ["strat", "duckdb", "polars", "spark"]
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- processes


def tree_rss(pid: int) -> int:
    """Summed RSS (bytes) of all descendants of pid (not pid itself; 0 once gone)."""
    total, stack, first = 0, [pid], True
    while stack:
        p = stack.pop()
        try:
            if not first:
                with open(f"/proc/{p}/statm") as f:
                    total += int(f.read().split()[1]) * PAGE
            first = False
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return total


def measure(cmd: list[str], log: Path, poll_tree: bool = False) -> dict:
    """Run cmd to completion through launch.py (see there why); wall time, peak
    RSS, exit status and the peer's own in-process time from its stdout."""
    res_path, out_path, err_path = log.with_suffix(".run.json"), log.with_suffix(".stdout"), log.with_suffix(".stderr")
    res_path.unlink(missing_ok=True)
    peak_tree = [0]
    p = subprocess.Popen([sys.executable, str(HERE / "launch.py"), str(res_path), str(out_path), str(err_path), "--", *cmd],
                         cwd=REPO)
    done = threading.Event()
    if poll_tree:

        def poll():
            while not done.wait(0.05):
                peak_tree[0] = max(peak_tree[0], tree_rss(p.pid))

        threading.Thread(target=poll, daemon=True).start()
    p.wait()
    done.set()
    try:
        res = json.loads(res_path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"wall": None, "rss": None, "rc": p.returncode or 1, "inner": None}
    inner = None
    for line in out_path.read_text().splitlines()[::-1]:
        if line.startswith("{"):
            try:
                inner = json.loads(line).get("inner_s")
            except json.JSONDecodeError:
                pass
            break
    return {"wall": res["wall"], "rss": max(res["maxrss"], peak_tree[0]), "rc": res["rc"], "inner": inner}


# ---------------------------------------------------------------- data


def ensure_data(gen: Path, data_dir: Path, rows: int, need_events: bool) -> tuple[Path, Path, int]:
    """DATA/rows/members.parquet (and events.parquet: the events of the first
    rows/10 members, ~3 × rows event rows), generated if missing. The generator
    is deterministic, so regenerating gives the same bytes."""
    d = data_dir / str(rows)
    members, events = d / "members.parquet", d / "events.parquet"
    event_members = max(rows // 10, 1)
    if not members.exists() or (need_events and not events.exists()):
        if not gen.exists():
            sys.exit(f"no data in {d} and no generator at {gen}: cargo build --release -p strat-bench")
        tmp = data_dir / f".{rows}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.perf_counter()
        cmd = [str(gen), "--members", str(rows), "--out", str(tmp)]
        if need_events:
            cmd += ["--events", "--event-members", str(event_members)]
        subprocess.run(cmd, check=True)
        log(f"generated {rows:,} members{' and the events of ' + format(event_members, ',') if need_events else ''}"
            f" in {time.perf_counter() - t0:.1f} s")
        shutil.rmtree(d, ignore_errors=True)
        tmp.rename(d)
    return members, events, event_members


# ---------------------------------------------------------------- commands


def commands(variant, task, members, events, out, n, threads, strat_bin) -> tuple[list[str], bool]:
    """The command of one run, and whether its process tree must be polled for RSS."""
    t = TASKS[task]
    py = sys.executable
    peer_args = ["--task", task, "--members", str(members), "--events", str(events), "--threads", str(threads)]
    if n is not None:
        peer_args += ["--n", str(n)]
    if variant in ("strat", "strat-1t"):
        rule = str(HERE.parent / "tasks" / f"{task}.strat")
        table = members if t["table"] == "members" else events
        args = [rule, "--table", f"{t['table']}={table}"]
        if n is not None:
            args += ["--param", f"n={n}"]
        th = "1" if variant == "strat-1t" else str(threads)
        return [str(strat_bin), "run", *args, "-o", str(out), "--report", str(out.with_suffix(".json")), "--threads", th], False
    engine, _, mode = variant.partition("-")
    script = str(HERE / f"peer_{engine}.py")
    mode = mode or "sample"
    return [py, script, *peer_args, "--mode", mode, "--out", str(out)], engine == "spark"


# ---------------------------------------------------------------- checks


def out_source(out: Path) -> str:
    return f"'{out}/*.parquet'" if out.is_dir() else f"'{out}'"


def population(con, task, members, events) -> dict:
    t = TASKS[task]
    s = ", ".join(t["strata"])
    if t["kind"] == "entity":
        sql = f"SELECT {s}, count(DISTINCT member_id) FROM '{events}' GROUP BY ALL"
    else:
        where = f"WHERE {t['where_sql']}" if "where_sql" in t else ""
        sql = f"SELECT {s}, count(*) FROM '{members}' {where} GROUP BY ALL"
    return {tuple(r[:-1]): r[-1] for r in con.execute(sql).fetchall()}


def check(con, task, variant, out: Path, pop: dict, n, members, events) -> str:
    """'ok' or what is wrong with one run's output (read back from its Parquet)."""
    t = TASKS[task]
    s = ", ".join(t["strata"])
    src = out_source(out)
    problems = []
    source_table = members if t["table"] == "members" else events
    want_cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{source_table}'").fetchall()]
    got_cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({src})").fetchall()]
    missing = [c for c in want_cols if c not in got_cols]
    if missing:
        problems.append(f"missing columns {missing}")
    rows, units = con.execute(f"SELECT count(*), count(DISTINCT member_id) FROM read_parquet({src})").fetchone()
    kind = t["kind"]
    if kind == "entity":
        got = {
            tuple(r[:-1]): r[-1]
            for r in con.execute(f"SELECT {s}, count(DISTINCT member_id) FROM read_parquet({src}) GROUP BY ALL").fetchall()
        }
        all_rows, distinct_ev = con.execute(
            f"SELECT (SELECT count(*) FROM '{events}' WHERE member_id IN (SELECT member_id FROM read_parquet({src}))),"
            f" (SELECT count(DISTINCT event_id) FROM read_parquet({src}))"
        ).fetchone()
        if all_rows != rows or distinct_ev != rows:
            problems.append(f"{rows} rows, but the selected members have {all_rows} events ({distinct_ev} distinct in output)")
    else:
        if units != rows:
            problems.append(f"{rows} rows but {units} distinct members")
        if kind == "split":
            got = {
                tuple(r[:-1]): r[-1]
                for r in con.execute(f"SELECT {s}, _split, count(*) FROM read_parquet({src}) GROUP BY ALL").fetchall()
            }
        else:
            got = {tuple(r[:-1]): r[-1] for r in con.execute(f"SELECT {s}, count(*) FROM read_parquet({src}) GROUP BY ALL").fetchall()}
    total = sum(got.values())
    bad = []
    if kind in ("proportional", "entity"):
        if total != n:
            problems.append(f"total {total} != n = {n}")
        N = sum(pop.values())
        for h, c in pop.items():
            q = Fraction(n * c, N)
            if got.get(h, 0) not in (math.floor(q), math.ceil(q)):
                bad.append(f"{h}: {got.get(h, 0)} not floor/ceil of {float(q):.2f}")
        for h in got:
            if h not in pop:
                bad.append(f"{h}: not a stratum of the population")
    elif kind == "equal_cap":
        for h, c in pop.items():
            if got.get(h, 0) != min(t["cap"], c):
                bad.append(f"{h}: {got.get(h, 0)} != min({t['cap']}, {c})")
    elif kind == "bernoulli":
        p = t1_rates(pop)
        mean = sum(float(p[h]) * c for h, c in pop.items())
        sd = math.sqrt(sum(float(p[h]) * (1 - float(p[h])) * c for h, c in pop.items()))
        if abs(total - mean) > 5 * sd:
            problems.append(f"total {total}, expected {mean:.0f} ± {sd:.0f}")
        for h, c in pop.items():
            m, v = float(p[h]) * c, float(p[h]) * (1 - float(p[h])) * c
            if abs(got.get(h, 0) - m) > 5 * math.sqrt(v) + 1:
                bad.append(f"{h}: {got.get(h, 0)}, expected {m:.1f}")
    elif kind == "split":
        if total != sum(pop.values()):
            problems.append(f"total {total} != N = {sum(pop.values())}")
        for h, c in pop.items():
            for name, share in t["shares"]:
                lo, hi = split_bounds(c, share)
                g = got.get(h + (name,), 0)
                if not lo <= g <= hi:
                    bad.append(f"{h}/{name}: {g} not in [{lo}, {hi}]")
    if variant.startswith("strat"):
        problems += check_report(task, out.with_suffix(".json"), pop, n, rows)
    if bad:
        problems.append(f"{len(bad)} strata wrong, e.g. {bad[:3]}")
    return "ok" if not problems else "; ".join(problems)


def check_report(task, report: Path, pop: dict, n, rows) -> list[str]:
    """strat's --report against the harness's own counts and allocation."""
    t = TASKS[task]
    try:
        r = json.loads(report.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return [f"report: {e}"]
    problems = []
    strata = {tuple(s["values"]): s for s in r["strata"]}
    if {h: s["population"] for h, s in strata.items()} != pop:
        problems.append("report: per-stratum populations differ from the table's")
    selected = sum(s["selected"] for s in strata.values())
    if selected != r["selected"]:
        problems.append(f"report: strata sum to {selected}, total says {r['selected']}")
    if t["kind"] in ("proportional", "entity"):
        want = largest_remainder(pop, n)
        off = [h for h, s in strata.items() if s["n_h"] != s["selected"] or abs(s["n_h"] - want[h]) > 1]
        if off or r["selected"] != n:
            problems.append(f"report: {len(off)} strata off target, total {r['selected']} (n = {n})")
    elif t["kind"] == "bernoulli":
        p = t1_rates(pop)
        # p_h is written as an exact rational ("3/100"): it must equal the spec's exactly.
        off = [h for h, s in strata.items() if s["p_h"] is None or Fraction(str(s["p_h"])) != p[h]]
        if off:
            problems.append(f"report: p_h differs in {len(off)} strata, e.g. {off[:2]}")
    if t["kind"] != "entity" and r["selected"] != rows and t["kind"] != "split":
        problems.append(f"report says {r['selected']} selected, output has {rows} rows")
    return problems


# ---------------------------------------------------------------- report


def fmt_s(x):
    return "–" if x is None else (f"{x:.2f} s" if x < 10 else f"{x:.1f} s")


def fmt_mb(x):
    return "–" if x is None else f"{x / 2**20:,.0f} MB"


def fmt_ratio(a, b):
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def render(results: list[dict], meta: dict) -> str:
    med = {}
    for r in results:
        if r["ok_runs"]:
            med[(r["rows"], r["task"], r["variant"])] = (statistics.median(r["walls"]), max(r["rss"]))
    lines = [f"## strat benchmark — {meta['when']}", "", meta["machine"], "", "```text", meta["command"], "```", ""]
    for rows in meta["rows"]:
        ev = meta["events"].get(rows)
        lines += [f"### {rows:,} members" + (f" ({ev[0]:,} event rows of {ev[1]:,} members for T5)" if ev else ""), ""]
        lines += [
            "Wall time, median of the measured runs (fresh process each); peak RSS in the next table.",
            "",
            "| task | strat | strat 1 thread | speed-up 1→2 | DuckDB | Polars | Spark | strat / fastest peer | draw floor (DuckDB) | strat / draw floor | DataFusion md5 draw | scan floors: DataFusion · DuckDB · Polars · Spark |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]

        def w(task, v):
            x = med.get((rows, task, v))
            return None if x is None else x[0]

        def m(task, v):
            x = med.get((rows, task, v))
            return None if x is None else x[1]

        for task in meta["tasks"]:
            peers = [(w(task, e), e) for e in ("duckdb", "polars", "spark") if w(task, e) is not None]
            fastest = min(peers)[0] if peers else None
            lines.append(
                f"| {task.upper()} | {fmt_s(w(task, 'strat'))} | {fmt_s(w(task, 'strat-1t'))} | {fmt_ratio(w(task, 'strat-1t'), w(task, 'strat'))} "
                f"| {fmt_s(w(task, 'duckdb'))} | {fmt_s(w(task, 'polars'))} | {fmt_s(w(task, 'spark'))} "
                f"| {fmt_ratio(w(task, 'strat'), fastest)} | {fmt_s(w(task, 'duckdb-draw'))} | {fmt_ratio(w(task, 'strat'), w(task, 'duckdb-draw'))} "
                f"| {fmt_s(w(task, 'datafusion-draw'))} "
                f"| {' · '.join(fmt_s(w(task, v)) for v in ('datafusion-scan', 'duckdb-scan', 'polars-scan', 'spark-scan'))} |"
            )
        lines += [
            "",
            "Peak RSS of the run's process (tree, for Spark):",
            "",
            "| task | strat | strat 1 thread | DuckDB | Polars | Spark | strat / DuckDB | draw floor (DuckDB) | scan floors: DataFusion · DuckDB · Polars · Spark |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for task in meta["tasks"]:
            lines.append(
                f"| {task.upper()} | {fmt_mb(m(task, 'strat'))} | {fmt_mb(m(task, 'strat-1t'))} | {fmt_mb(m(task, 'duckdb'))} | {fmt_mb(m(task, 'polars'))} "
                f"| {fmt_mb(m(task, 'spark'))} | {fmt_ratio(m(task, 'strat'), m(task, 'duckdb'))} | {fmt_mb(m(task, 'duckdb-draw'))} "
                f"| {' · '.join(fmt_mb(m(task, v)) for v in ('datafusion-scan', 'duckdb-scan', 'polars-scan', 'spark-scan'))} |"
            )
        lines.append("")
    if len(meta["rows"]) > 1:
        lines += [
            "### Peak RSS by table size",
            "",
            "| task | variant | " + " | ".join(f"{r:,}" for r in meta["rows"]) + " | growth, first → last size |",
            "| --- | --- | " + " | ".join("---" for _ in meta["rows"]) + " | --- |",
        ]
        for task in meta["tasks"]:
            for v in ("strat", "duckdb", "polars", "spark"):
                xs = [med.get((r, task, v), (None, None))[1] for r in meta["rows"]]
                if any(x is not None for x in xs):
                    growth = fmt_ratio(xs[-1], xs[0]) if xs[0] and xs[-1] else "–"
                    lines.append(f"| {task.upper()} | {v} | " + " | ".join(fmt_mb(x) for x in xs) + f" | {growth} |")
        lines.append("")
    lines += [
        "### Every run",
        "",
        "| rows | task | variant | runs | wall median | wall min–max | in-process after start-up (peers) | peak RSS | output check |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if r["ok_runs"]:
            inner = [x for x in r["inner"] if x is not None]
            lines.append(
                f"| {r['rows']:,} | {r['task'].upper()} | {r['variant']} | {len(r['walls'])} | {fmt_s(statistics.median(r['walls']))} "
                f"| {fmt_s(min(r['walls']))}–{fmt_s(max(r['walls']))} | {fmt_s(statistics.median(inner)) if inner else '–'} "
                f"| {fmt_mb(max(r['rss']))} | {r['check']} |"
            )
        else:
            lines.append(f"| {r['rows']:,} | {r['task'].upper()} | {r['variant']} | 0 | failed | | | | {r['check']} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1000000,10000000", help="table sizes (members), comma-separated")
    ap.add_argument("--tasks", default="t1,t2,t3,t4,t5,t6")
    ap.add_argument("--engines", default=",".join(ENGINES), help="of strat,duckdb,polars,spark")
    ap.add_argument("--no-floors", action="store_true", help="skip the scan and draw floors")
    ap.add_argument("--no-strat-1t", action="store_true", help="skip strat --threads 1")
    ap.add_argument("--runs", type=int, default=3, help="measured runs per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured runs first")
    ap.add_argument("--threads", type=int, default=2, help="threads/cores every engine may use")
    ap.add_argument("--strat", default="target/release/strat", help="the strat binary (relative to the repo)")
    ap.add_argument("--gen", default="target/release/strat-bench-gen", help="the data generator binary")
    ap.add_argument("--data-dir", default="target/strat-bench/data")
    ap.add_argument("--work-dir", default="target/strat-bench/out", help="where the samples are written")
    ap.add_argument("--results", default="target/strat-bench/results.md", help="the markdown report (JSON beside it)")
    ap.add_argument("--quick", action="store_true", help="100k rows, 1 run, no warm-up: a smoke test")
    ap.add_argument("--no-check", action="store_true", help="skip the output checks")
    a = ap.parse_args()
    if a.quick:
        a.rows, a.runs, a.warmup = "100000", 1, 0
    rows_list = [int(x.replace("_", "")) for x in a.rows.split(",")]
    tasks = [x.strip().lower() for x in a.tasks.split(",")]
    engines = [x.strip().lower() for x in a.engines.split(",")]
    for e in engines:
        if e not in ENGINES:
            sys.exit(f"unknown engine {e}")
    for t in tasks:
        if t not in TASKS:
            sys.exit(f"unknown task {t}")
    strat_bin = (REPO / a.strat).resolve()
    if "strat" in engines and not strat_bin.exists():
        sys.exit(f"no strat binary at {strat_bin}: cargo build --release -p strat-cli, or --strat PATH")
    variants = []
    for e in engines:
        variants.append(e)
        if e == "strat" and not a.no_strat_1t:
            variants.append("strat-1t")
    if not a.no_floors:
        # strat's engine is DataFusion: its floors come from DataFusion itself.
        variants += [f"{'datafusion' if e == 'strat' else e}-scan" for e in engines]
        if "duckdb" in engines:
            variants.append("duckdb-draw")
        if "strat" in engines:
            variants.append("datafusion-draw")
    data_dir, work_dir = REPO / a.data_dir, REPO / a.work_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    import duckdb

    con = duckdb.connect()
    results, events_rows = [], {}
    for rows in rows_list:
        members, events, event_members = ensure_data((REPO / a.gen).resolve(), data_dir, rows, "t5" in tasks)
        if events.exists():
            # The events file may come from an earlier run with another --event-members:
            # T5's n and the report follow what the file holds.
            ev_rows, event_members = con.execute(f"SELECT count(*), count(DISTINCT member_id) FROM '{events}'").fetchone()
            events_rows[rows] = (ev_rows, event_members)
        for task in tasks:
            n = task_n(task, rows, event_members)
            pop = population(con, task, members, events)
            for variant in variants:
                d = work_dir / str(rows) / task
                d.mkdir(parents=True, exist_ok=True)
                out = d / f"{variant}.parquet"
                cmd, poll = commands(variant, task, members, events, out, n, a.threads, strat_bin)
                rec = {"rows": rows, "task": task, "variant": variant, "n": n, "cmd": cmd,
                       "walls": [], "rss": [], "inner": [], "ok_runs": 0, "check": ""}
                for i in range(a.warmup + a.runs):
                    if out.is_dir():
                        shutil.rmtree(out)
                    elif out.exists():
                        out.unlink()
                    res = measure(cmd, d / f"{variant}.log", poll_tree=poll)
                    if res["rc"] != 0:
                        errf = d / f"{variant}.stderr"
                        err = errf.read_text().strip().splitlines() if errf.exists() else []
                        rec["check"] = f"exit {res['rc']}: {err[-1] if err else ''}"[:300]
                        rec["ok_runs"] = 0
                        break
                    if i >= a.warmup:
                        rec["walls"].append(res["wall"])
                        rec["rss"].append(res["rss"])
                        rec["inner"].append(res["inner"])
                        rec["ok_runs"] += 1
                if rec["ok_runs"]:
                    if variant.endswith(("-scan", "-draw")):
                        rec["check"] = "(floor)"
                    elif a.no_check:
                        rec["check"] = "(not checked)"
                    else:
                        try:
                            rec["check"] = check(con, task, variant, out, pop, n, members, events)
                        except Exception as e:  # an unreadable output is a failed check, not a crashed harness
                            rec["check"] = f"check failed: {type(e).__name__}: {e}"[:300]
                    log(f"{rows:>11,} {task} {variant:<15} median {statistics.median(rec['walls']):7.2f} s  "
                        f"peak {max(rec['rss']) / 2**20:7.0f} MB  {rec['check']}")
                else:
                    log(f"{rows:>11,} {task} {variant:<15} FAILED {rec['check']}")
                results.append(rec)
                write_report(results, a, rows_list, tasks, events_rows, strat_bin, final=False)
    write_report(results, a, rows_list, tasks, events_rows, strat_bin, final=True)


def write_report(results, a, rows_list, tasks, events_rows, strat_bin, final: bool) -> None:
    """The markdown report and the raw JSON; rewritten after every variant, so
    an interrupted run keeps what it measured."""
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_line(a.threads, strat_bin),
        "command": "python3 " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]),
        "rows": rows_list,
        "tasks": tasks,
        "events": events_rows,
    }
    md = render(results, meta)
    res_path = REPO / a.results
    res_path.parent.mkdir(parents=True, exist_ok=True)
    res_path.write_text(md)
    res_path.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))
    if final:
        print(md)
        log(f"wrote {res_path} and {res_path.with_suffix('.json')}")


def machine_line(threads: int, strat_bin: Path) -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    vers = []
    from importlib.metadata import PackageNotFoundError, version

    for mod in ("duckdb", "polars", "pyspark", "datafusion"):
        try:
            vers.append(f"{mod} {version(mod)}")
        except PackageNotFoundError:
            vers.append(f"{mod} (not installed)")
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GB RAM; every engine on {threads} threads; "
            f"Python {sys.version.split()[0]}, {', '.join(vers)}; strat binary `{strat_bin}`.")


if __name__ == "__main__":
    main()
