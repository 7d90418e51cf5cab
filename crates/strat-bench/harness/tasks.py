"""The benchmark tasks T1-T13 (issues 6 and 13), shared by the peer
implementations and the harness's correctness checks.

Each task mirrors one rule file in ../tasks/ (tN.strat). The peers need the
same parameters (strata, filter, sample size, rates, shares); they are written
here once. Nothing here is timed: the peers import it, and the checks run after
the timed runs.

Fields of a task:

- table: "members" or "events"; strata: the stratum names, in the rule file's order;
- kind: bernoulli | proportional | equal_cap | entity | neyman | split | split_about | chain;
- unit: the unit column, or None for a row-level task (each row is a unit keyed
  by all its columns, spec §6.1: the peers hash the whole row);
- where_sql / where_cols: the filter (SQL text, and the columns it reads);
- activity_edges: for a stratum `bucket(count(*), EDGES) as activity` of the
  unit's rows (T10), the edges;
- n, seed, and per kind: cap (equal_cap), about + rules (bernoulli), neyman
  (its column), shares (splits), split_seed (chain);
- peers: the peers that implement the task (the others show as "–").
"""

from __future__ import annotations

import argparse
import os
import math
from fractions import Fraction

SPLIT_80_10_10 = [("train", Fraction(8, 10)), ("validation", Fraction(1, 10)), ("test", Fraction(1, 10))]
ALL_PEERS = ("duckdb", "polars", "spark")

# Seeds of the rule files (each peer uses the same number as the seed of its own
# RNG or hash; the peers' rows need not, and do not, match strat's).
TASKS = {
    "t1": dict(
        title="Bernoulli, per-stratum rates (about 1%; US 0.5%, premium 3%, rest proportional)",
        table="members",
        strata=["country", "plan"],
        kind="bernoulli",
        unit="member_id",
        # take about 1%; rules in the rule file's order: (column, value, rate).
        about=Fraction(1, 100),
        rules=[("country", "US", Fraction(5, 1000)), ("plan", "premium", Fraction(3, 100))],
        seed=20180601,
    ),
    "t2": dict(
        title="exact proportional, n = 100,000 over country x plan",
        table="members",
        strata=["country", "plan"],
        kind="proportional",
        unit="member_id",
        n=100_000,
        seed=20180602,
    ),
    "t3": dict(
        title="equal allocation, at most 500 per country",
        table="members",
        strata=["country"],
        kind="equal_cap",
        unit="member_id",
        cap=500,
        seed=20180603,
    ),
    "t4": dict(
        title="filter (tenure_days >= 30, not kids), then T2",
        table="members",
        strata=["country", "plan"],
        kind="proportional",
        unit="member_id",
        n=100_000,
        where_sql="tenure_days >= 30 AND NOT is_kids_profile",
        where_cols=["tenure_days", "is_kids_profile"],
        seed=20180604,
    ),
    "t5": dict(
        title="entity sampling on events: 50,000 members by country, all their events",
        table="events",
        strata=["country"],
        kind="entity",
        unit="member_id",
        n=50_000,
        seed=20180605,
    ),
    "t6": dict(
        title="train/validation/test split 80/10/10 of all members by country x plan",
        table="members",
        strata=["country", "plan"],
        kind="split",
        unit="member_id",
        shares=SPLIT_80_10_10,
        seed=20180606,
    ),
    "t7": dict(
        title="T2 without unit: n = 100,000 rows over country x plan, each row a unit keyed by all its columns",
        table="members",
        strata=["country", "plan"],
        kind="proportional",
        unit=None,
        n=100_000,
        seed=20180607,
    ),
    "t8": dict(
        title="neyman(watch_hours_28d): n = 100,000 members over country x plan",
        table="members",
        strata=["country", "plan"],
        kind="neyman",
        unit="member_id",
        neyman="watch_hours_28d",
        n=100_000,
        seed=20180608,
    ),
    "t9": dict(
        title="Bernoulli of rows without unit (about 0.5%; US 0.2%, rest proportional)",
        table="members",
        strata=["country", "plan"],
        kind="bernoulli",
        unit=None,
        about=Fraction(5, 1000),
        rules=[("country", "US", Fraction(2, 1000))],
        seed=20180609,
    ),
    "t10": dict(
        title="entity sampling on events by country and bucket(count(*)): 50,000 members, all their events",
        table="events",
        strata=["country", "activity"],
        kind="entity",
        unit="member_id",
        activity_edges=[20, 35],
        n=50_000,
        seed=20180610,
    ),
    "t11": dict(
        title="5 folds of the members with tenure_days >= 30 by country x plan",
        table="members",
        strata=["country", "plan"],
        kind="split",
        unit="member_id",
        shares=[(f"fold_{i}", Fraction(1, 5)) for i in range(1, 6)],
        where_sql="tenure_days >= 30",
        where_cols=["tenure_days"],
        seed=20180611,
    ),
    "t12": dict(
        title="about split 80/10/10 of all members by country x plan (each member by its own draw)",
        table="members",
        strata=["country", "plan"],
        kind="split_about",
        unit="member_id",
        shares=SPLIT_80_10_10,
        seed=20180612,
    ),
    "t13": dict(
        title="chain: a cohort of 1,000,000 members by country x plan, then its 80/10/10 split",
        table="members",
        strata=["country", "plan"],
        kind="chain",
        unit="member_id",
        n=1_000_000,
        shares=SPLIT_80_10_10,
        seed=20180613,
        split_seed=20180614,
    ),
}
for _t in TASKS.values():
    _t.setdefault("peers", ALL_PEERS)

# The Polars variant that shuffles within groups (`int_range(len).shuffle(seed).over(strata) < n_h`)
# instead of ranking a hash: the exact proportional samples of one unit per row.
SHUFFLE_TASKS = ("t2", "t4")


def task_n(task: str, rows: int, event_members: int) -> int | None:
    """The sample size used at this table size: the task's n, lowered for tables
    too small to hold it (the harness passes it to strat as --param n=...)."""
    t = TASKS[task]
    if "n" not in t:
        return None
    if t["kind"] == "entity":
        return min(t["n"], event_members // 2)
    return min(t["n"], rows // 10)


def floor_strata(task: str) -> list[str]:
    """The strata the floors count by: the task's columns (a unit aggregate such
    as T10's activity is not one)."""
    t = TASKS[task]
    return [s for s in t["strata"] if s != "activity"]


def columns_needed(task: str) -> list[str] | str:
    """The columns a task reads to allocate and draw ("*" when the draw keys
    the whole row)."""
    t = TASKS[task]
    if t["unit"] is None:
        return "*"
    cols = ["member_id"] + floor_strata(task) + t.get("where_cols", [])
    if "neyman" in t:
        cols.append(t["neyman"])
    return cols


def scan_reads(task: str, table_columns: list[str]) -> str:
    """The scan floors' aggregates: the largest value of each column the task
    reads beyond its strata (every column of the table when the draw keys the
    whole row), so that each is decoded."""
    needed = columns_needed(task)
    cols = table_columns if needed == "*" else needed
    strata = floor_strata(task)
    return ", ".join(f"max({c})" for c in dict.fromkeys(cols) if c not in strata)


def bucket_labels(edges: list) -> list[str]:
    """The labels of bucket(x, EDGES) (spec §2.6), in interval order."""
    bounds = ["-inf", *map(str, edges), "inf"]
    return [f"[{lo},{hi})" for lo, hi in zip(bounds, bounds[1:])]


def bucket_sql(expr: str, edges: list) -> str:
    """bucket(expr, EDGES) as a SQL CASE (DuckDB, Spark SQL)."""
    labels = bucket_labels(edges)
    whens = " ".join(f"WHEN {expr} < {e} THEN '{labels[i]}'" for i, e in enumerate(edges))
    return f"CASE {whens} ELSE '{labels[-1]}' END"


def unit_strata_sql(task: str) -> str:
    """For an entity task: the SELECT list of its strata over one unit's rows
    (GROUP BY member_id), e.g. `any_value(country) AS country`."""
    t = TASKS[task]
    out = []
    for s in t["strata"]:
        if s == "activity":
            out.append(f"{bucket_sql('count(*)', t['activity_edges'])} AS activity")
        else:
            out.append(f"any_value({s}) AS {s}")
    return ", ".join(out)


def round_targets(x: dict, total: int) -> dict:
    """Integers from real targets x_h summing to total (spec §5.3): floors, then
    the leftover units to the largest fractional parts (ties to the first
    stratum in sorted order; strat breaks them by the stratum start, which
    the checks allow for)."""
    base = {h: math.floor(q) for h, q in x.items()}
    left = total - sum(base.values())
    order = sorted(x, key=lambda h: (-(x[h] - base[h]), h))
    for h in order[:left]:
        base[h] += 1
    return base


def largest_remainder(counts: dict, n: int) -> dict:
    """Proportional allocation of n over strata of sizes counts (exact rationals)."""
    total = sum(counts.values())
    return round_targets({h: Fraction(n * c, total) for h, c in counts.items()}, n)


def neyman_real(counts: dict, sds: dict, n: int) -> dict:
    """Spec §5.2: Neyman's real targets x_h = clamp(λ·N_h·S_h, 0, N_h) with
    Σ x_h = n (water-filling); S_h the population standard deviation (0 or NULL
    for fewer than two values counts as 0). All weights 0: proportional."""
    w = {h: counts[h] * (sds.get(h) or 0.0) for h in counts}
    if not any(w.values()):
        total = sum(counts.values())
        return {h: n * c / total for h, c in counts.items()}
    x, free, left = {}, {h for h in counts if w[h] > 0}, float(n)
    for h in counts:
        if w[h] == 0:
            x[h] = 0.0
    while True:
        lam = left / sum(w[h] for h in free)
        full = {h for h in free if lam * w[h] >= counts[h]}
        if not full:
            for h in free:
                x[h] = lam * w[h]
            return x
        for h in full:
            x[h] = float(counts[h])
            left -= counts[h]
        free -= full


def neyman_targets(counts: dict, sds: dict, n: int) -> dict:
    return round_targets(neyman_real(counts, sds, n), n)


def bernoulli_rates(task: str, counts: dict) -> dict:
    """Spec §5.4: p_h of every stratum of a `take about P%` task with rate rules
    and proportional for the rest (exact rationals)."""
    t = TASKS[task]
    total = sum(counts.values())
    p = {}
    for h in counts:
        values = dict(zip(t["strata"], h))
        for col, val, rate in t["rules"]:
            if values[col] == val:
                p[h] = rate
                break
    rest = [h for h in counts if h not in p]
    r = t["about"] * total - sum(counts[h] * p[h] for h in p)
    n_rest = sum(counts[h] for h in rest)
    for h in rest:
        p[h] = r / n_rest
    return p


def split_bounds(n_h: int, share: Fraction) -> tuple[int, int]:
    x = n_h * share
    return math.floor(x), math.ceil(x)


def peer_arguments(modes: list[str]) -> argparse.ArgumentParser:
    """The command line every peer script takes (the first mode is the default)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True, choices=sorted(TASKS))
    ap.add_argument("--mode", default=modes[0], choices=modes)
    ap.add_argument("--members", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--out")
    ap.add_argument("--n", type=int)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def exported_sql(task: str, dialect: str, members: str, events: str, n: int | None) -> str:
    """strat's own SQL export of the task's rule file (`strat sql --dialect`),
    reading the table by its name (the peer registers it): the query a
    user of that engine runs instead of `strat run`. The strat binary is
    $STRAT_BIN (the harness sets it), else target/release/strat."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    strat = os.environ.get("STRAT_BIN", str(repo / "target/release/strat"))
    t = TASKS[task]
    table = members if t["table"] == "members" else events
    args = [strat, "sql", str(repo / "crates/strat-bench/tasks" / f"{task}.strat"), "--dialect", dialect,
            "--table", f"{t['table']}={table}"]
    if n is not None:
        args += ["--param", f"n={n}"]
    if "emit" in t:
        args += ["--emit", t["emit"]]
    sql = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return sql.strip().rstrip(";")
