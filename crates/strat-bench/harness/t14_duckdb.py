"""T14 (point-in-time `as of`) as a DuckDB user would write it, measured by
hand beside `strat run crates/strat-bench/tasks/t14.strat` (docs/performance.md):

    python3 t14_duckdb.py MEMBER_DAYS.parquet OUT.parquet THREADS

Each member's latest snapshot of the 14 days up to 2018-06-01 (a day loaded
twice: the later load; no check for rows still tied), tenure >= 30 days,
then T2's exact proportional 100,000 over country x plan with DuckDB's hash
as the draw. Prints the time inside the process and the rows written.
"""

import sys
import time

import duckdb


def main() -> None:
    src, out, threads = sys.argv[1], sys.argv[2], sys.argv[3]
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET memory_limit = '16GB'")
    started = time.time()
    con.execute(f"""
    COPY (
    WITH st AS (
      SELECT * FROM '{src}'
      WHERE snapshot_date <= DATE '2018-06-01' AND snapshot_date > DATE '2018-05-18'
      QUALIFY row_number() OVER (PARTITION BY member_id ORDER BY snapshot_date DESC, ingested_at DESC) = 1
    ),
    elig AS (SELECT * FROM st WHERE tenure_days >= 30),
    c AS (SELECT country, plan, count(*) AS n_h FROM elig GROUP BY ALL),
    qt AS (SELECT *, 100000 * n_h / sum(n_h) OVER () AS quota FROM c),
    a AS (SELECT country, plan,
                 floor(quota)::BIGINT
                 + CASE WHEN row_number() OVER (ORDER BY quota - floor(quota) DESC, country, plan)
                             <= 100000 - sum(floor(quota)::BIGINT) OVER ()
                        THEN 1 ELSE 0 END AS n_target
          FROM qt)
    SELECT elig.* FROM elig JOIN a USING (country, plan)
    QUALIFY row_number() OVER (PARTITION BY country, plan ORDER BY hash(member_id, 20180614)) <= n_target
    ) TO '{out}' (FORMAT parquet)""")
    elapsed = time.time() - started
    rows = con.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0]
    print(f"duckdb {elapsed:.2f} s, {rows} rows")


if __name__ == "__main__":
    main()
