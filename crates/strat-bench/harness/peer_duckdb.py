"""T1-T13 in DuckDB SQL, as a DuckDB user would write them, plus the scan floor
and the draw floor. One task per process (the harness starts a fresh one per run).

    python3 peer_duckdb.py --task t2 --mode sample --members M.parquet --events E.parquet \
        --out OUT.parquet --n 100000 --threads 2

Exact tasks: per-stratum targets from counts (largest remainder, in SQL; Neyman's
from counts and standard deviations, in Python), then
`row_number() over (partition by stratum order by hash(member_id, seed))`
(`hash(members, seed)`, the hash of the whole row, for the tasks without unit);
folds with `ntile(K)`, an about split with a threshold on the hash.
`--mode ordered` writes a split's rows in strat's output order (spec §7.3).
Prints one JSON line: {"inner_s": seconds inside the process from the engine
being ready (connected) to the file written}.
"""

from __future__ import annotations

import json
import os
import time

import duckdb

from tasks import (
    TASKS,
    columns_needed,
    exported_sql,
    floor_strata,
    neyman_targets,
    peer_arguments,
    scan_reads,
    unit_strata_sql,
)


def q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def draw(t: dict, rel: str, seed: int | None = None) -> str:
    """The draw of a row of relation rel: the hash of its unit, or of the whole
    row (the relation's name is its row as a struct) for a task without unit."""
    seed = t["seed"] if seed is None else seed
    return f"hash({t['unit'] or rel}, {seed})"


def alloc_ctes(t: dict, n: int, source: str) -> str:
    """CTEs c (counts), a (n_target per stratum): largest remainder of n * N_h / N."""
    s = ", ".join(t["strata"])
    return f"""
      c AS (SELECT {s}, count(*) AS n_h FROM {source} GROUP BY ALL),
      qt AS (SELECT *, {n} * n_h / sum(n_h) OVER () AS quota FROM c),
      a AS (SELECT {s},
                   floor(quota)::BIGINT
                   + CASE WHEN row_number() OVER (ORDER BY quota - floor(quota) DESC, {s})
                               <= {n} - sum(floor(quota)::BIGINT) OVER ()
                          THEN 1 ELSE 0 END AS n_target
            FROM qt)"""


def values_cte(t: dict, targets: dict) -> str:
    """CTE a (n_target per stratum) from targets computed outside SQL."""
    rows = ", ".join("(" + ", ".join([*(q(v) for v in h), str(n)]) + ")" for h, n in targets.items())
    return f"a AS (SELECT * FROM (VALUES {rows}) AS v({', '.join(t['strata'])}, n_target))"


def split_sql(t: dict, source: str, seed: int) -> str:
    """Every row of source with its _split: exact shares by row_number and the
    stratum's count (ntile for folds)."""
    s = ", ".join(t["strata"])
    names = [name for name, _ in t["shares"]]
    if all(name == f"fold_{i + 1}" for i, name in enumerate(names)):
        return f"""
        SELECT *, 'fold_' || ntile({len(names)}) OVER (PARTITION BY {s} ORDER BY {draw(t, source, seed)}) AS _split
        FROM {source}"""
    cum, whens = 0, []
    for name, share in t["shares"][:-1]:
        cum += share
        whens.append(f"WHEN rn <= round(n_h * {float(cum)}) THEN '{name}'")
    return f"""
        SELECT * EXCLUDE (rn, n_h),
               CASE {' '.join(whens)} ELSE '{names[-1]}' END AS _split
        FROM (SELECT *,
                     row_number() OVER (PARTITION BY {s} ORDER BY {draw(t, source, seed)}) AS rn,
                     count(*) OVER (PARTITION BY {s}) AS n_h
              FROM {source})"""


def ordered_sql(task: str, sql: str) -> str:
    """A split's rows in strat's output order (spec §7.3: split in listing
    order, stratum, draw — DuckDB's hash standing for the md5 draw), so that
    DuckDB writes the same Parquet as strat, not just the same rows."""
    t = TASKS[task]
    names = [name for name, _ in t["shares"]]
    part = "CASE _split " + " ".join(f"WHEN '{n}' THEN {i}" for i, n in enumerate(names)) + " END"
    seed = t["split_seed"] if t["kind"] == "chain" else t["seed"]
    return f"SELECT * FROM ({sql}) ORDER BY {part}, {', '.join(t['strata'])}, hash({t['unit']}, {seed})"


def sample_sql(con, task: str, n: int | None) -> str:
    t = TASKS[task]
    s = ", ".join(t["strata"])
    seed = t["seed"]
    where = f"WHERE {t['where_sql']}" if "where_sql" in t else ""
    kind = t["kind"]
    if kind == "bernoulli":
        # Rule rates, the rest proportional to what is left of the expected total.
        rules = " ".join(f"WHEN {col} = {q(val)} THEN {float(rate)}" for col, val, rate in t["rules"])
        return f"""
        WITH c AS (SELECT {s}, count(*) AS n_h FROM members GROUP BY ALL),
        r AS (SELECT *, CASE {rules} END AS rule_p FROM c),
        p AS (SELECT {s},
                     coalesce(rule_p,
                              ({float(t['about'])} * sum(n_h) OVER () - sum(coalesce(rule_p, 0) * n_h) OVER ())
                              / sum(CASE WHEN rule_p IS NULL THEN n_h ELSE 0 END) OVER ()) AS p_h
              FROM r)
        SELECT members.* FROM members JOIN p USING ({s})
        WHERE {draw(t, 'members')} / 18446744073709551616.0 < p_h"""
    if kind in ("proportional", "neyman"):
        if kind == "neyman":
            stats = con.execute(f"SELECT {s}, count(*), stddev_pop({t['neyman']}) FROM members {where} GROUP BY ALL").fetchall()
            targets = neyman_targets({tuple(r[:-2]): r[-2] for r in stats}, {tuple(r[:-2]): r[-1] for r in stats}, n)
            alloc = values_cte(t, targets)
        else:
            alloc = alloc_ctes(t, n, "elig")
        return f"""
        WITH elig AS (SELECT * FROM members {where}),
        {alloc}
        SELECT elig.* FROM elig JOIN a USING ({s})
        QUALIFY row_number() OVER (PARTITION BY {s} ORDER BY {draw(t, 'elig')}) <= n_target"""
    if kind == "equal_cap":
        return f"""
        SELECT * FROM members
        QUALIFY row_number() OVER (PARTITION BY {s} ORDER BY {draw(t, 'members')}) <= {t['cap']}"""
    if kind == "entity":
        return f"""
        WITH m AS (SELECT member_id, {unit_strata_sql(task)} FROM events GROUP BY member_id),
        {alloc_ctes(t, n, 'm')},
        chosen AS (SELECT member_id FROM m JOIN a USING ({s})
                   QUALIFY row_number() OVER (PARTITION BY {s} ORDER BY {draw(t, 'm')}) <= n_target)
        SELECT * FROM events WHERE member_id IN (SELECT member_id FROM chosen)"""
    if kind == "split":
        return f"WITH elig AS (SELECT * FROM members {where}) {split_sql(t, 'elig', seed)}"
    if kind == "split_about":
        cum, whens = 0, []
        for name, share in t["shares"][:-1]:
            cum += share
            whens.append(f"WHEN u < {float(cum)} THEN '{name}'")
        return f"""
        SELECT * EXCLUDE (u), CASE {' '.join(whens)} ELSE '{t['shares'][-1][0]}' END AS _split
        FROM (SELECT *, {draw(t, 'members')} / 18446744073709551616.0 AS u FROM members {where})"""
    if kind == "chain":
        return f"""
        WITH elig AS (SELECT * FROM members {where}),
        {alloc_ctes(t, n, 'elig')},
        cohort AS (SELECT elig.* FROM elig JOIN a USING ({s})
                   QUALIFY row_number() OVER (PARTITION BY {s} ORDER BY {draw(t, 'elig')}) <= n_target)
        {split_sql(t, 'cohort', t['split_seed'])}"""
    raise ValueError(kind)


def scan_sql(con, task: str) -> str:
    """Scan floor: read the columns the task needs, count by strata."""
    t = TASKS[task]
    s = ", ".join(floor_strata(task))
    where = f"WHERE {t['where_sql']}" if "where_sql" in t else ""
    names = [r[0] for r in con.execute(f"DESCRIBE {t['table']}").fetchall()]
    return f"SELECT {s}, count(*), {scan_reads(task, names)} FROM {t['table']} {where} GROUP BY ALL"


def draw_sql(task: str) -> str:
    """Draw floor: the scan floor plus the spec's md5 draw of every unit (every
    row: per event row for T5 and T10), compared with a threshold of 16 hex digits."""
    t = TASKS[task]
    s = ", ".join(floor_strata(task))
    cond = f"substr(md5('{t['seed']}:' || CAST(member_id AS VARCHAR)), 1, 16) < '8000000000000000'"
    if "where_sql" in t:
        cond = f"{t['where_sql']} AND {cond}"
    return f"SELECT {s}, count(*) FROM {t['table']} WHERE {cond} GROUP BY ALL"


def main() -> None:
    ap = peer_arguments(['sample', 'scan', 'draw', 'ordered', 'export'])
    ap.add_argument("--print-sql", action="store_true")
    a = ap.parse_args()
    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(f"SET threads = {a.threads}")
    con.execute(f"CREATE VIEW members AS SELECT * FROM read_parquet({q(a.members)})")
    if os.path.exists(a.events):  # tables generated without events (members-only sizes)
        con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet({q(a.events)})")
    if a.mode == "sample":
        sql = f"COPY ({sample_sql(con, a.task, a.n)}) TO {q(a.out)} (FORMAT parquet)"
    elif a.mode == "ordered":
        sql = f"COPY ({ordered_sql(a.task, sample_sql(con, a.task, a.n))}) TO {q(a.out)} (FORMAT parquet)"
    elif a.mode == "export":
        sql = f"COPY ({exported_sql(a.task, 'duckdb', a.members, a.events, a.n)}) TO {q(a.out)} (FORMAT parquet)"
    elif a.mode == "scan":
        sql = scan_sql(con, a.task)
    else:
        sql = draw_sql(a.task)
    if a.print_sql:
        print(sql)
        return
    res = con.execute(sql).fetchall()
    assert res is not None
    print(json.dumps({"inner_s": time.perf_counter() - t0, "columns": columns_needed(a.task)}))


if __name__ == "__main__":
    main()
