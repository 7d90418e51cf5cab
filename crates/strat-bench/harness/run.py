#!/usr/bin/env python3
"""The strat benchmark harness (issues 6 and 13): strat against DuckDB, Polars and
PySpark on tasks T1-T13, with scan floors and a draw floor, side by side in one run.

    python3 crates/strat-bench/harness/run.py                       # 1M and 10M rows, everything
    python3 crates/strat-bench/harness/run.py --quick               # 100k rows, 1 run, a minute or two
    python3 crates/strat-bench/harness/run.py --rows 30000000 --tasks t2 --engines strat,duckdb
    python3 crates/strat-bench/harness/run.py --rows 125000000 --tasks all --engines strat,duckdb,polars --runs 1

For each table size: generate the data if missing (strat-bench-gen); then for each
task and each engine variant start a fresh process per run: one warm-up, then
--runs measured runs, each stopped after --timeout seconds; record the median
wall time and the peak RSS (os.wait4's
ru_maxrss, taken by the small launcher launch.py; for Spark, whose JVM is a
grandchild the driver does not reap, the peak of the summed RSS of the process
tree, sampled every 50 ms, when larger);
check the last run's output for correctness; write a markdown report
(--results) and print it; raw numbers go to the JSON next to it. A run that
exits non-zero shows as `failed`, one killed by a signal (SIGKILL: most often
the kernel's OOM killer) as `killed`, one stopped by --timeout as `timeout`,
each with its wall time and peak RSS up to then; a variant that timed out or
was killed is not run again at larger sizes (`skipped`).

Variants: strat (--threads N, N = --threads), strat-1t (--threads 1),
duckdb, polars, spark (the idiomatic sample, each on --threads cores; a peer
that does not implement a task shows "–"), polars-shuffle (T2, T4: Polars'
`int_range(len).shuffle(seed).over(strata) < n_h`), duckdb-ordered (the
splits T6, T11-T13 written in strat's output order, spec §7.3: the same
Parquet, not just the same rows);
floors: datafusion-scan (strat's engine), duckdb-scan, polars-scan, spark-scan
(read the task's columns, count by strata); duckdb-draw, the target of issue 6
(DuckDB's scan plus the spec's md5 draw of every unit), and datafusion-draw
(the same with DataFusion's built-in md5); the kernel floor, strat's own: the
DataFusion scan floor plus one draw per unit at the cost strat's kernel takes
(key text and md5, measured by `strat-draw-cost` on the table), on --threads cores.

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
from tasks import (  # noqa: E402
    SHUFFLE_TASKS,
    TASKS,
    bernoulli_rates,
    largest_remainder,
    neyman_real,
    round_targets,
    split_bounds,
    task_n,
    unit_strata_sql,
)

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


def measure(cmd: list[str], log: Path, timeout: float | None, poll_tree: bool = False) -> dict:
    """Run cmd to completion (or to its timeout) through launch.py (see there
    why); wall time, peak RSS, exit status and the peer's own in-process time
    from its stdout."""
    res_path, out_path, err_path = log.with_suffix(".run.json"), log.with_suffix(".stdout"), log.with_suffix(".stderr")
    res_path.unlink(missing_ok=True)
    peak_tree = [0]
    limit = [str(timeout)] if timeout else []
    p = subprocess.Popen([sys.executable, str(HERE / "launch.py"), str(res_path), str(out_path), str(err_path), *limit,
                          "--", *cmd], cwd=REPO)
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
        return {"wall": None, "rss": None, "rc": p.returncode or 1, "inner": None, "timed_out": False}
    inner = None
    for line in out_path.read_text().splitlines()[::-1]:
        if line.startswith("{"):
            try:
                inner = json.loads(line).get("inner_s")
            except json.JSONDecodeError:
                pass
            break
    return {"wall": res["wall"], "rss": max(res["maxrss"], peak_tree[0]), "rc": res["rc"], "inner": inner,
            "timed_out": res.get("timed_out", False)}


def failure(res: dict, errf: Path, timeout: float | None) -> tuple[str, str]:
    """The status of a failed run (timeout, killed, failed) and what to say about it."""
    err = errf.read_text(errors="replace").strip().splitlines() if errf.exists() else []
    last = err[-1] if err else ""
    if res.get("timed_out"):
        return "timeout", f"timeout: stopped after {timeout:g} s"
    if res["rc"] < 0:
        import signal

        try:
            name = signal.Signals(-res["rc"]).name
        except ValueError:
            name = f"signal {-res['rc']}"
        why = " (out of memory?)" if name == "SIGKILL" else ""
        return "killed", (f"killed by {name}{why}" + (f": {last}" if last else ""))[:300]
    return "failed", f"exit {res['rc']}: {last}"[:300]


# ---------------------------------------------------------------- data


def needs_events(tasks: list[str]) -> bool:
    return any(TASKS[t]["table"] == "events" for t in tasks)


def default_event_members(rows: int) -> int:
    """The members with events at a table size: a tenth of them, at most 1,000,000
    (~30M event rows), so a table of 125M members does not get 375M event rows."""
    return max(min(rows // 10, 1_000_000), 1)


def ensure_data(gen: Path, data_dir: Path, rows: int, need_events: bool, event_members: int) -> tuple[Path, Path, int]:
    """DATA/rows/members.parquet (and events.parquet: the events of the first
    event_members members, ~30 event rows each), generated if missing. The
    generator is deterministic, so regenerating gives the same bytes."""
    d = data_dir / str(rows)
    members, events = d / "members.parquet", d / "events.parquet"
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


def runs_task(variant: str, task: str) -> bool:
    """Whether a variant has an implementation of a task (floors: every task)."""
    if variant.endswith(("-scan", "-draw")) or variant.startswith("strat"):
        return True
    if variant == "polars-shuffle":
        return task in SHUFFLE_TASKS
    if variant == "duckdb-ordered":
        return TASKS[task]["kind"] in SPLIT_KINDS and "duckdb" in TASKS[task]["peers"]
    if variant.endswith("-export"):
        # strat sql needs a unit (E0141).
        return TASKS[task]["unit"] is not None
    return variant in TASKS[task]["peers"]


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
        if "emit" in t:
            args += ["--emit", t["emit"]]
        th = "1" if variant == "strat-1t" else str(threads)
        return [str(strat_bin), "run", *args, "-o", str(out), "--report", str(out.with_suffix(".json")), "--threads", th], False
    engine, _, mode = variant.partition("-")
    script = str(HERE / f"peer_{engine}.py")
    mode = mode or "sample"
    return [py, script, *peer_args, "--mode", mode, "--out", str(out)], engine == "spark"


# ---------------------------------------------------------------- checks


def out_source(out: Path) -> str:
    return f"'{out}/*.parquet'" if out.is_dir() else f"'{out}'"


SPLIT_KINDS = ("split", "split_about", "chain")


def population(con, task, members, events) -> dict:
    """N_h of the task's strata in the source (for T13: of the cohort's source),
    counted by the harness; for Neyman also S_h (under the key "sd")."""
    t = TASKS[task]
    s = ", ".join(t["strata"])
    where = f"WHERE {t['where_sql']}" if "where_sql" in t else ""
    if t["kind"] == "entity":
        sql = f"SELECT {s}, count(*) FROM (SELECT member_id, {unit_strata_sql(task)} FROM '{events}' GROUP BY member_id) GROUP BY ALL"
        return {tuple(r[:-1]): r[-1] for r in con.execute(sql).fetchall()}
    if t["kind"] == "neyman":
        rows = con.execute(f"SELECT {s}, count(*), stddev_pop({t['neyman']}) FROM '{members}' {where} GROUP BY ALL").fetchall()
        pop = {tuple(r[:-2]): r[-2] for r in rows}
        pop["sd"] = {tuple(r[:-2]): r[-1] for r in rows}
        return pop
    sql = f"SELECT {s}, count(*) FROM '{members}' {where} GROUP BY ALL"
    return {tuple(r[:-1]): r[-1] for r in con.execute(sql).fetchall()}


def sigma_ok(got: int, p: float, n: int) -> bool:
    """A binomial count within 5 standard deviations (+1) of its mean."""
    return abs(got - p * n) <= 5 * math.sqrt(p * (1 - p) * n) + 1


def check(con, task, variant, out: Path, pop: dict, n, members, events) -> str:
    """'ok' or what is wrong with one run's output (read back from its Parquet)."""
    t = TASKS[task]
    pop = dict(pop)
    sds = pop.pop("sd", None)
    s = ", ".join(t["strata"])
    src = out_source(out)
    problems = []
    source_table = members if t["table"] == "members" else events
    want_cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{source_table}'").fetchall()]
    got_cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({src})").fetchall()]
    missing = [c for c in want_cols if c not in got_cols]
    if t["kind"] in SPLIT_KINDS and "_split" not in got_cols:
        missing.append("_split")
    if missing:
        problems.append(f"missing columns {missing}")
        if "_split" in missing:
            return "; ".join(problems)
    rows, units = con.execute(f"SELECT count(*), count(DISTINCT member_id) FROM read_parquet({src})").fetchone()
    kind = t["kind"]
    if kind == "entity":
        # A unit's strata over its rows in the output: all its events are there (checked next).
        got = {
            tuple(r[:-1]): r[-1]
            for r in con.execute(
                f"SELECT {s}, count(*) FROM (SELECT member_id, {unit_strata_sql(task)} FROM read_parquet({src})"
                f" GROUP BY member_id) GROUP BY ALL"
            ).fetchall()
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
        if kind in SPLIT_KINDS:
            got = {
                tuple(r[:-1]): r[-1]
                for r in con.execute(f"SELECT {s}, _split, count(*) FROM read_parquet({src}) GROUP BY ALL").fetchall()
            }
        else:
            got = {tuple(r[:-1]): r[-1] for r in con.execute(f"SELECT {s}, count(*) FROM read_parquet({src}) GROUP BY ALL").fetchall()}
    total = sum(got.values())
    bad = []
    if kind in SPLIT_KINDS:
        strata_of = {}
        for k, c in got.items():
            strata_of[k[:-1]] = strata_of.get(k[:-1], 0) + c
    else:
        strata_of = got
    for h in strata_of:
        if h not in pop:
            bad.append(f"{h}: not a stratum of the population")
    if kind in ("proportional", "entity", "neyman", "chain"):
        if total != n:
            problems.append(f"total {total} != n = {n}")
        N = sum(pop.values())
        real = neyman_real(pop, sds, n) if kind == "neyman" else {h: Fraction(n * c, N) for h, c in pop.items()}
        for h, q in real.items():
            # Neyman's targets are f64 (spec §5.2): allow for their last bits.
            lo, hi = (math.floor(q - 1e-6), math.ceil(q + 1e-6)) if kind == "neyman" else (math.floor(q), math.ceil(q))
            if not lo <= strata_of.get(h, 0) <= hi:
                bad.append(f"{h}: {strata_of.get(h, 0)} not floor/ceil of {float(q):.2f}")
    if kind == "equal_cap":
        for h, c in pop.items():
            if got.get(h, 0) != min(t["cap"], c):
                bad.append(f"{h}: {got.get(h, 0)} != min({t['cap']}, {c})")
    elif kind == "bernoulli":
        p = bernoulli_rates(task, pop)
        mean = sum(float(p[h]) * c for h, c in pop.items())
        sd = math.sqrt(sum(float(p[h]) * (1 - float(p[h])) * c for h, c in pop.items()))
        if abs(total - mean) > 5 * sd:
            problems.append(f"total {total}, expected {mean:.0f} ± {sd:.0f}")
        for h, c in pop.items():
            if not sigma_ok(got.get(h, 0), float(p[h]), c):
                bad.append(f"{h}: {got.get(h, 0)}, expected {float(p[h]) * c:.1f}")
    elif kind in ("split", "chain"):
        # Exact shares of each stratum: of N_h for a split, of the cohort's n_h for T13.
        base = pop if kind == "split" else strata_of
        if kind == "split" and total != sum(pop.values()):
            problems.append(f"total {total} != N = {sum(pop.values())}")
        for h, c in base.items():
            for name, share in t["shares"]:
                lo, hi = split_bounds(c, share)
                g = got.get(h + (name,), 0)
                if not lo <= g <= hi:
                    bad.append(f"{h}/{name}: {g} not in [{lo}, {hi}]")
    elif kind == "split_about":
        if total != sum(pop.values()):
            problems.append(f"total {total} != N = {sum(pop.values())}")
        N = sum(pop.values())
        for name, share in t["shares"]:
            g = sum(c for k, c in got.items() if k[-1] == name)
            if not sigma_ok(g, float(share), N):
                problems.append(f"{name}: {g} units, expected {float(share) * N:.0f}")
            for h, c in pop.items():
                if not sigma_ok(got.get(h + (name,), 0), float(share), c):
                    bad.append(f"{h}/{name}: {got.get(h + (name,), 0)}, expected {float(share) * c:.1f}")
    if variant.startswith("strat"):
        problems += check_report(task, out.with_suffix(".json"), pop, sds, n, rows, got, strata_of)
    if bad:
        problems.append(f"{len(bad)} strata wrong, e.g. {bad[:3]}")
    return "ok" if not problems else "; ".join(problems)


def check_report(task, report: Path, pop: dict, sds, n, rows, got: dict, strata_of: dict) -> list[str]:
    """strat's --report against the harness's own counts and allocation (and,
    for a split, the parts it reports against the output's)."""
    t = TASKS[task]
    try:
        r = json.loads(report.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return [f"report: {e}"]
    problems = []
    if t["kind"] == "chain":
        # The split's strata are the cohort's (its populations are the cohort's n_h);
        # the cohort's own report is the upstream statement's.
        up = r.get("upstream") or [{}]
        cohort = up[-1]
        if {tuple(s["values"]): s["population"] for s in r["strata"]} != strata_of:
            problems.append("report: the split's per-stratum populations differ from the cohort in the output")
        cs = {tuple(s["values"]): s for s in cohort.get("strata", [])}
        if {h: s["population"] for h, s in cs.items()} != pop:
            problems.append("report: the cohort's per-stratum populations differ from the table's")
        want = largest_remainder(pop, n)
        off = [h for h, s in cs.items() if s["n_h"] != s["selected"] or abs(s["n_h"] - want[h]) > 1]
        if off or cohort.get("selected") != n:
            problems.append(f"report: cohort {len(off)} strata off target, total {cohort.get('selected')} (n = {n})")
    strata = {tuple(s["values"]): s for s in r["strata"]}
    if t["kind"] != "chain" and {h: s["population"] for h, s in strata.items()} != pop:
        problems.append("report: per-stratum populations differ from the table's")
    selected = sum(s["selected"] for s in strata.values())
    if selected != r["selected"]:
        problems.append(f"report: strata sum to {selected}, total says {r['selected']}")
    if t["kind"] in ("proportional", "entity", "neyman"):
        want = round_targets(neyman_real(pop, sds, n), n) if t["kind"] == "neyman" else largest_remainder(pop, n)
        off = [h for h, s in strata.items() if s["n_h"] != s["selected"] or abs(s["n_h"] - want[h]) > 1]
        if off or r["selected"] != n:
            problems.append(f"report: {len(off)} strata off target, total {r['selected']} (n = {n})")
    elif t["kind"] == "bernoulli":
        p = bernoulli_rates(task, pop)
        # p_h is written as an exact rational ("3/100"): it must equal the spec's exactly.
        off = [h for h, s in strata.items() if s["p_h"] is None or Fraction(str(s["p_h"])) != p[h]]
        if off:
            problems.append(f"report: p_h differs in {len(off)} strata, e.g. {off[:2]}")
    elif t["kind"] in SPLIT_KINDS:
        off = [h for h, s in strata.items()
               if any(got.get(h + (name,), 0) != c for name, c in (s.get("splits") or {}).items())]
        if off:
            problems.append(f"report: the parts of {len(off)} strata differ from the output's, e.g. {off[:2]}")
    if t["kind"] != "entity" and r["selected"] != rows:
        problems.append(f"report says {r['selected']} selected, output has {rows} rows")
    return problems


# ---------------------------------------------------------------- report


def kernel_cost(draw_cost: Path, members: Path, rows: int) -> dict | None:
    """strat's draw kernel on this table: ns per unit key and per row key, one
    thread (`strat-draw-cost`, built with the feature `bench`); None without it."""
    if not draw_cost.exists():
        log(f"no {draw_cost}: no kernel floor (cargo build --release -p strat-cli -p strat-engine --features strat-engine/bench)")
        return None
    out = subprocess.run([str(draw_cost), str(members), "member_id", str(min(rows, 2_000_000))],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        log(f"{draw_cost} failed: {out.stderr.strip()[:200]}")
        return None
    return json.loads(out.stdout)


def draws_of(task: str, rows: int, n, events: tuple | None) -> int:
    """Units a task draws: every member (with a `where`, the eligible ones are
    fewer: the floor is then a little high), the members with events for the
    entity tasks, and a chain's cohort once more for its split."""
    t = TASKS[task]
    if t["table"] == "events":
        return events[1] if events else 0
    return rows + (n or 0) if t["kind"] == "chain" else rows


def fmt_s(x):
    return "–" if x is None else (f"{x:.2f} s" if x < 10 else f"{x:.1f} s")


def fmt_mb(x):
    return "–" if x is None else f"{x / 2**20:,.0f} MB"


def fmt_ratio(a, b):
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def render(results: list[dict], meta: dict) -> str:
    med, failed, in_process = {}, {}, {}
    for r in results:
        key = (r["rows"], r["task"], r["variant"])
        if r["ok_runs"]:
            med[key] = (statistics.median(r["walls"]), max(r["rss"]))
            inner = [x for x in r["inner"] if x is not None]
            if inner:
                in_process[key] = statistics.median(inner)
        else:
            failed[key] = r
    lines = [f"## strat benchmark — {meta['when']}", "", meta["machine"], "", "```text", meta["command"], "```", ""]
    n_used = {}
    for r in results:
        n_used.setdefault(r["task"], {})[r["rows"]] = r["n"]

    def ns(task):
        xs = [n_used.get(task, {}).get(rows) for rows in meta["rows"]]
        return " · ".join("–" if x is None else f"{x:,}" for x in xs)

    lines += [f"| task | what | n at {' · '.join(f'{r:,}' for r in meta['rows'])} rows |", "| --- | --- | --- |"]
    lines += [f"| {task.upper()} | {TASKS[task]['title']} | {ns(task)} |" for task in meta["tasks"]]
    lines.append("")
    ev_tasks = ", ".join(t.upper() for t in meta["tasks"] if TASKS[t]["table"] == "events") or "T5"
    for rows in meta["rows"]:
        ev = meta["events"].get(rows)
        lines += [f"### {rows:,} members" + (f" ({ev[0]:,} event rows of {ev[1]:,} members for {ev_tasks})" if ev else ""), ""]
        lines += [
            "Wall time, median of the measured runs (fresh process each); peak RSS in the next table."
            " `failed`, `killed`, `timeout`: see the last table.",
            "",
            "| task | strat | strat 1 thread | speed-up 1→2 | DuckDB | DuckDB, §7.3 order | Polars | Polars shuffle | Spark | strat / fastest peer "
            "| draw floor (DuckDB) | strat / draw floor | DataFusion md5 draw | strat / DataFusion scan floor "
            "| kernel floor | strat / kernel floor "
            "| scan floors: DataFusion · DuckDB · Polars · Spark |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        kernel = meta.get("kernel", {}).get(rows)

        def kernel_floor(task):
            """The DataFusion scan floor (in-process: without the Python start-up)
            plus the task's draws at strat's kernel cost."""
            scan = in_process.get((rows, task, "datafusion-scan"))
            if scan is None or not kernel:
                return None
            ns = kernel["row_ns"] if TASKS[task]["unit"] is None else kernel["unit_ns"]
            units = draws_of(task, rows, n_used.get(task, {}).get(rows), meta["events"].get(rows))
            return scan + units * ns * 1e-9 / meta["threads"]

        def w(task, v):
            x = med.get((rows, task, v))
            return None if x is None else x[0]

        def m(task, v):
            x = med.get((rows, task, v))
            return None if x is None else x[1]

        def ws(task, v):
            """A wall-time cell: the median, or the status of a run that did not finish."""
            f = failed.get((rows, task, v))
            return f["status"] if f and w(task, v) is None else fmt_s(w(task, v))

        def ms(task, v):
            f = failed.get((rows, task, v))
            if f and m(task, v) is None:
                return f["status"] + (f" ({fmt_mb(f['fail_rss'])})" if f.get("fail_rss") else "")
            return fmt_mb(m(task, v))

        peers_of = ("duckdb", "polars", "polars-shuffle", "spark")
        for task in meta["tasks"]:
            peers = [(w(task, e), e) for e in peers_of if w(task, e) is not None]
            fastest = min(peers)[0] if peers else None
            lines.append(
                f"| {task.upper()} | {ws(task, 'strat')} | {ws(task, 'strat-1t')} | {fmt_ratio(w(task, 'strat-1t'), w(task, 'strat'))} "
                f"| {ws(task, 'duckdb')} | {ws(task, 'duckdb-ordered')} | {ws(task, 'polars')} | {ws(task, 'polars-shuffle')} | {ws(task, 'spark')} "
                f"| {fmt_ratio(w(task, 'strat'), fastest)} | {ws(task, 'duckdb-draw')} | {fmt_ratio(w(task, 'strat'), w(task, 'duckdb-draw'))} "
                f"| {ws(task, 'datafusion-draw')} | {fmt_ratio(w(task, 'strat'), w(task, 'datafusion-scan'))} "
                f"| {fmt_s(kernel_floor(task))} | {fmt_ratio(w(task, 'strat'), kernel_floor(task))} "
                f"| {' · '.join(ws(task, v) for v in ('datafusion-scan', 'duckdb-scan', 'polars-scan', 'spark-scan'))} |"
            )
        if kernel:
            lines += [
                "",
                f"Kernel floor: the DataFusion scan floor (in-process) plus one draw per unit at strat's kernel cost on this table "
                f"({kernel['unit_ns']:.1f} ns per unit key, {kernel['row_ns']:.1f} ns per row key of all columns, "
                f"one thread, `strat-draw-cost` over {kernel['rows']:,} rows), on {meta['threads']} threads.",
            ]
        lines += [
            "",
            "Peak RSS of the run's process (tree, for Spark; up to its end for a run that did not finish):",
            "",
            "| task | strat | strat 1 thread | DuckDB | DuckDB, §7.3 order | Polars | Polars shuffle | Spark | strat / DuckDB | draw floor (DuckDB) "
            "| scan floors: DataFusion · DuckDB · Polars · Spark |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for task in meta["tasks"]:
            lines.append(
                f"| {task.upper()} | {ms(task, 'strat')} | {ms(task, 'strat-1t')} | {ms(task, 'duckdb')} | {ms(task, 'duckdb-ordered')} | {ms(task, 'polars')} "
                f"| {ms(task, 'polars-shuffle')} | {ms(task, 'spark')} | {fmt_ratio(m(task, 'strat'), m(task, 'duckdb'))} "
                f"| {ms(task, 'duckdb-draw')} "
                f"| {' · '.join(ms(task, v) for v in ('datafusion-scan', 'duckdb-scan', 'polars-scan', 'spark-scan'))} |"
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
            for v in ("strat", "duckdb", "duckdb-ordered", "polars", "polars-shuffle", "spark"):
                xs = [med.get((r, task, v), (None, None))[1] for r in meta["rows"]]
                if any(x is not None for x in xs):
                    growth = fmt_ratio(xs[-1], xs[0]) if xs[0] and xs[-1] else "–"
                    cells = [fmt_mb(x) if x is not None else failed.get((r, task, v), {}).get("status", "–")
                             for r, x in zip(meta["rows"], xs)]
                    lines.append(f"| {task.upper()} | {v} | " + " | ".join(cells) + f" | {growth} |")
        lines.append("")
    lines += [
        "### Every run",
        "",
        "| rows | task | variant | runs | wall median | wall min–max | in-process after start-up (peers) | peak RSS "
        "| strat ÷ draw floor · ÷ DataFusion scan floor | output check |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        key = (r["rows"], r["task"], r["variant"])
        floors = "–"
        if r["variant"].startswith("strat") and key in med:
            draw = med.get((r["rows"], r["task"], "duckdb-draw"), (None,))[0]
            scan = med.get((r["rows"], r["task"], "datafusion-scan"), (None,))[0]
            floors = f"{fmt_ratio(med[key][0], draw)} · {fmt_ratio(med[key][0], scan)}"
        if r["ok_runs"]:
            inner = [x for x in r["inner"] if x is not None]
            lines.append(
                f"| {r['rows']:,} | {r['task'].upper()} | {r['variant']} | {len(r['walls'])} | {fmt_s(statistics.median(r['walls']))} "
                f"| {fmt_s(min(r['walls']))}–{fmt_s(max(r['walls']))} | {fmt_s(statistics.median(inner)) if inner else '–'} "
                f"| {fmt_mb(max(r['rss']))} | {floors} | {r['check']} |"
            )
        else:
            after = f" after {fmt_s(r['fail_wall'])}" if r.get("fail_wall") is not None else ""
            lines.append(f"| {r['rows']:,} | {r['task'].upper()} | {r['variant']} | 0 | {r['status']}{after} | | "
                         f"| {fmt_mb(r.get('fail_rss'))} | – | {r['check']} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


ALL_TASKS = ",".join(TASKS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="1000000,10000000", help="table sizes (members), comma-separated")
    ap.add_argument("--tasks", default="all", help=f"comma-separated, of {ALL_TASKS}; or all (the default)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="of strat,duckdb,polars,spark")
    ap.add_argument("--no-floors", action="store_true", help="skip the scan and draw floors")
    ap.add_argument("--no-strat-1t", action="store_true", help="skip strat --threads 1")
    ap.add_argument("--no-polars-shuffle", action="store_true", help="skip the Polars shuffle variant of T2 and T4")
    ap.add_argument("--no-duckdb-ordered", action="store_true",
                    help="skip DuckDB writing the splits in strat's output order (spec §7.3)")
    ap.add_argument("--runs", type=int, default=3, help="measured runs per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured runs first")
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds after which a run is killed and reported as timeout (0: no limit)")
    ap.add_argument("--threads", type=int, default=2, help="threads/cores every engine may use")
    ap.add_argument("--event-members", type=int,
                    help="members with events when the events are generated (default: rows/10, at most 1,000,000)")
    ap.add_argument("--strat", default="target/release/strat", help="the strat binary (relative to the repo)")
    ap.add_argument("--gen", default="target/release/strat-bench-gen", help="the data generator binary")
    ap.add_argument("--draw-cost", default="target/release/strat-draw-cost",
                    help="strat's draw kernel timer, for the kernel floor (strat-engine's feature `bench`)")
    ap.add_argument("--data-dir", default="target/strat-bench/data")
    ap.add_argument("--work-dir", default="target/strat-bench/out", help="where the samples are written")
    ap.add_argument("--results", default="target/strat-bench/results.md", help="the markdown report (JSON beside it)")
    ap.add_argument("--quick", action="store_true", help="100k rows, 1 run, no warm-up: a smoke test")
    ap.add_argument("--no-check", action="store_true", help="skip the output checks")
    ap.add_argument("--interleave", action="store_true",
                    help="run every variant once per round, round after round (ratios between tasks "
                         "robust to the machine's speed drifting), instead of each variant's runs together")
    ap.add_argument("--export", action="store_true",
                    help="also run strat's SQL export (`strat sql`) on each SQL peer (duckdb-export, spark-export)")
    a = ap.parse_args()
    if a.quick:
        a.rows, a.runs, a.warmup = "100000", 1, 0
    timeout = a.timeout or None
    rows_list = [int(x.replace("_", "")) for x in a.rows.split(",")]
    tasks = list(TASKS) if a.tasks.strip().lower() == "all" else [x.strip().lower() for x in a.tasks.split(",")]
    engines = [x.strip().lower() for x in a.engines.split(",")]
    for e in engines:
        if e not in ENGINES:
            sys.exit(f"unknown engine {e}")
    for t in tasks:
        if t not in TASKS:
            sys.exit(f"unknown task {t}")
    strat_bin = (REPO / a.strat).resolve()
    # The peers' `-export` variants generate their SQL with the same binary.
    os.environ["STRAT_BIN"] = str(strat_bin)
    if "strat" in engines and not strat_bin.exists():
        sys.exit(f"no strat binary at {strat_bin}: cargo build --release -p strat-cli, or --strat PATH")
    variants = []
    for e in engines:
        variants.append(e)
        if e == "strat" and not a.no_strat_1t:
            variants.append("strat-1t")
        if e == "polars" and not a.no_polars_shuffle:
            variants.append("polars-shuffle")
        if e == "duckdb" and not a.no_duckdb_ordered:
            variants.append("duckdb-ordered")
        if e in ("duckdb", "spark") and a.export:
            variants.append(f"{e}-export")
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
    # The checks read outputs as large as the table: bounded, so that the harness
    # (idle while the engines run) does not hold memory they could use.
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    con.execute(f"SET memory_limit = '{max(1, int(ram_gb / 4))}GB'")
    con.execute(f"SET temp_directory = '{work_dir / '.duckdb_tmp'}'")
    results, events_rows, kernels = [], {}, {}
    gave_up = {}  # (task, variant) -> the size at which it timed out or was killed
    for rows in rows_list:
        em = a.event_members or default_event_members(rows)
        members, events, event_members = ensure_data((REPO / a.gen).resolve(), data_dir, rows, needs_events(tasks), em)
        if events.exists():
            # The events file may come from an earlier run with another --event-members:
            # the entity tasks' n and the report follow what the file holds.
            ev_rows, event_members = con.execute(f"SELECT count(*), count(DISTINCT member_id) FROM '{events}'").fetchone()
            events_rows[rows] = (ev_rows, event_members)
        if "strat" in engines and not a.no_floors:
            kernels[rows] = kernel_cost((REPO / a.draw_cost).resolve(), members, rows)
        jobs = []
        for task in tasks:
            n = task_n(task, rows, event_members)
            for variant in variants:
                if not runs_task(variant, task):
                    continue
                d = work_dir / str(rows) / task
                d.mkdir(parents=True, exist_ok=True)
                out = d / f"{variant}.parquet"
                cmd, poll = commands(variant, task, members, events, out, n, a.threads, strat_bin)
                rec = {"rows": rows, "task": task, "variant": variant, "n": n, "cmd": cmd, "status": "ok",
                       "walls": [], "rss": [], "inner": [], "ok_runs": 0, "check": ""}
                if (task, variant) in gave_up and gave_up[(task, variant)][0] < rows:
                    size, status = gave_up[(task, variant)]
                    rec["status"], rec["check"] = "skipped", f"skipped: {status} at {size:,} rows"
                    log(f"{rows:>11,} {task} {variant:<15} {rec['check']}")
                    results.append(rec)
                    continue
                jobs.append({"rec": rec, "cmd": cmd, "poll": poll, "out": out, "dir": d, "failed": False})
        populations = {}

        def finish(job):
            rec, task, variant = job["rec"], job["rec"]["task"], job["rec"]["variant"]
            if rec["ok_runs"]:
                if variant.endswith(("-scan", "-draw")):
                    rec["check"] = "(floor)"
                elif a.no_check:
                    rec["check"] = "(not checked)"
                else:
                    try:
                        if task not in populations:
                            populations[task] = population(con, task, members, events)
                        rec["check"] = check(con, task, variant, job["out"], populations[task], rec["n"], members, events)
                    except Exception as e:  # an unreadable output is a failed check, not a crashed harness
                        rec["check"] = f"check failed: {type(e).__name__}: {e}"[:300]
                log(f"{rows:>11,} {task} {variant:<15} median {statistics.median(rec['walls']):7.2f} s  "
                    f"peak {max(rec['rss']) / 2**20:7.0f} MB  {rec['check']}")
            else:
                rss = f"peak {rec['fail_rss'] / 2**20:.0f} MB  " if rec.get("fail_rss") else ""
                log(f"{rows:>11,} {task} {variant:<15} {rec['status'].upper()} {rss}{rec['check']}")
            results.append(rec)
            write_report(results, a, rows_list, tasks, events_rows, strat_bin, final=False, kernels=kernels)

        rounds = a.warmup + a.runs
        if a.interleave:
            # Round after round, each variant once per round: a drift of the
            # machine's speed weighs on every variant alike, not on the last.
            for i in range(rounds):
                for job in jobs:
                    if not job["failed"]:
                        run_once(job, i, a, timeout, gave_up)
            for job in jobs:
                finish(job)
        else:
            for job in jobs:
                for i in range(rounds):
                    if job["failed"]:
                        break
                    run_once(job, i, a, timeout, gave_up)
                finish(job)
    write_report(results, a, rows_list, tasks, events_rows, strat_bin, final=True, kernels=kernels)


def run_once(job: dict, i: int, a, timeout, gave_up: dict) -> None:
    """One run of a variant (the first a.warmup runs are not counted); a
    failed run ends the variant with its status."""
    rec, out = job["rec"], job["out"]
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    res = measure(job["cmd"], job["dir"] / f"{rec['variant']}.log", timeout, poll_tree=job["poll"])
    if res["rc"] != 0 or res["timed_out"]:
        rec["status"], rec["check"] = failure(res, job["dir"] / f"{rec['variant']}.stderr", timeout)
        rec["fail_wall"], rec["fail_rss"] = res["wall"], res["rss"]
        rec["ok_runs"] = 0
        if rec["status"] in ("timeout", "killed"):
            gave_up[(rec["task"], rec["variant"])] = (rec["rows"], rec["status"])
        job["failed"] = True
        return
    if i >= a.warmup:
        rec["walls"].append(res["wall"])
        rec["rss"].append(res["rss"])
        rec["inner"].append(res["inner"])
        rec["ok_runs"] += 1


def write_report(results, a, rows_list, tasks, events_rows, strat_bin, final: bool, kernels: dict) -> None:
    """The markdown report and the raw JSON; rewritten after every variant, so
    an interrupted run keeps what it measured."""
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_line(a.threads, strat_bin),
        "command": "python3 " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]),
        "rows": rows_list,
        "tasks": tasks,
        "events": events_rows,
        "threads": a.threads,
        "kernel": kernels,
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
