"""T1-T6 in DuckDB SQL, as a DuckDB user would write them, plus the scan floor
and the draw floor. One task per process (the harness starts a fresh one per run).

    python3 peer_duckdb.py --task t2 --mode sample --members M.parquet --events E.parquet \
        --out OUT.parquet --n 100000 --threads 2

Exact tasks: per-stratum targets from counts (largest remainder, in SQL), then
`row_number() over (partition by stratum order by hash(member_id, seed))`.
Prints one JSON line: {"inner_s": seconds inside the process from the engine
being ready (connected) to the file written}.
"""

from __future__ import annotations

import json
import os
import time

import duckdb

from tasks import TASKS, columns_needed, peer_arguments


def q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


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


def sample_sql(task: str, n: int | None) -> str:
    t = TASKS[task]
    s = ", ".join(t["strata"])
    seed = t["seed"]
    where = f"WHERE {t['where_sql']}" if "where_sql" in t else ""
    kind = t["kind"]
    if kind == "bernoulli":
        # Rule rates, the rest proportional to what is left of the expected 1%.
        return f"""
        WITH c AS (SELECT country, plan, count(*) AS n_h FROM members GROUP BY ALL),
        r AS (SELECT *, CASE WHEN country = 'US' THEN 0.005 WHEN plan = 'premium' THEN 0.03 END AS rule_p FROM c),
        p AS (SELECT country, plan,
                     coalesce(rule_p,
                              (0.01 * sum(n_h) OVER () - sum(coalesce(rule_p, 0) * n_h) OVER ())
                              / sum(CASE WHEN rule_p IS NULL THEN n_h ELSE 0 END) OVER ()) AS p_h
              FROM r)
        SELECT members.* FROM members JOIN p USING (country, plan)
        WHERE hash(member_id, {seed}) / 18446744073709551616.0 < p_h"""
    if kind == "proportional":
        return f"""
        WITH elig AS (SELECT * FROM members {where}),
        {alloc_ctes(t, n, 'elig')}
        SELECT elig.* FROM elig JOIN a USING ({s})
        QUALIFY row_number() OVER (PARTITION BY {s} ORDER BY hash(member_id, {seed})) <= n_target"""
    if kind == "equal_cap":
        return f"""
        SELECT * FROM members
        QUALIFY row_number() OVER (PARTITION BY {s} ORDER BY hash(member_id, {seed})) <= {t['cap']}"""
    if kind == "entity":
        return f"""
        WITH m AS (SELECT member_id, any_value(country) AS country FROM events GROUP BY member_id),
        {alloc_ctes(t, n, 'm')},
        chosen AS (SELECT member_id FROM m JOIN a USING ({s})
                   QUALIFY row_number() OVER (PARTITION BY {s} ORDER BY hash(member_id, {seed})) <= n_target)
        SELECT * FROM events WHERE member_id IN (SELECT member_id FROM chosen)"""
    if kind == "split":
        return f"""
        SELECT * EXCLUDE (rn, n_h),
               CASE WHEN rn <= round(n_h * 0.8) THEN 'train'
                    WHEN rn <= round(n_h * 0.9) THEN 'validation'
                    ELSE 'test' END AS _split
        FROM (SELECT *,
                     row_number() OVER (PARTITION BY {s} ORDER BY hash(member_id, {seed})) AS rn,
                     count(*) OVER (PARTITION BY {s}) AS n_h
              FROM members)"""
    raise ValueError(kind)


def scan_sql(task: str) -> str:
    """Scan floor: read the columns the task needs, count by strata."""
    t = TASKS[task]
    s = ", ".join(t["strata"])
    where = f"WHERE {t['where_sql']}" if "where_sql" in t else ""
    return f"SELECT {s}, count(*), max(member_id) FROM {t['table']} {where} GROUP BY ALL"


def draw_sql(task: str) -> str:
    """Draw floor: the scan floor plus the spec's md5 draw of every unit (every
    row: per event row for T5), compared with a threshold of 16 hex digits."""
    t = TASKS[task]
    s = ", ".join(t["strata"])
    cond = f"substr(md5('{t['seed']}:' || CAST(member_id AS VARCHAR)), 1, 16) < '8000000000000000'"
    if "where_sql" in t:
        cond = f"{t['where_sql']} AND {cond}"
    return f"SELECT {s}, count(*) FROM {t['table']} WHERE {cond} GROUP BY ALL"


def main() -> None:
    ap = peer_arguments(['sample', 'scan', 'draw'])
    ap.add_argument("--print-sql", action="store_true")
    a = ap.parse_args()
    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(f"SET threads = {a.threads}")
    con.execute(f"CREATE VIEW members AS SELECT * FROM read_parquet({q(a.members)})")
    if os.path.exists(a.events):  # tables generated without events (members-only sizes)
        con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet({q(a.events)})")
    if a.mode == "sample":
        sql = f"COPY ({sample_sql(a.task, a.n)}) TO {q(a.out)} (FORMAT parquet)"
    elif a.mode == "scan":
        sql = scan_sql(a.task)
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
