"""T1-T6 in Polars (lazy API), as a Polars user would write them, plus the scan
floor. One task per process; same arguments as peer_duckdb.py.

Exact tasks: counts per stratum (a small collect), largest-remainder targets in
Python, then a join and `hash(seed).rank("ordinal").over(strata) <= n_target`,
written with sink_parquet. Threads: POLARS_MAX_THREADS, set before import.
"""

from __future__ import annotations

import json
import os
import sys
import time

from tasks import peer_arguments


def main() -> None:
    ap = peer_arguments(['sample', 'scan'])
    a = ap.parse_args()
    os.environ["POLARS_MAX_THREADS"] = str(a.threads)
    import polars as pl

    from tasks import TASKS, T1_RULES, T1_TOTAL_RATE, largest_remainder

    t0 = time.perf_counter()

    t = TASKS[a.task]
    strata = t["strata"]
    seed = t["seed"]
    src = pl.scan_parquet(a.members if t["table"] == "members" else a.events)
    if "where_sql" in t:  # T4
        src = src.filter((pl.col("tenure_days") >= 30) & ~pl.col("is_kids_profile"))

    def counts_of(lf) -> dict:
        df = lf.group_by(strata).agg(pl.len().alias("n_h")).collect()
        return {tuple(r[:-1]): r[-1] for r in df.iter_rows()}

    def frame(values: dict, name: str, dtype) -> "pl.LazyFrame":
        cols = {s: [h[i] for h in values] for i, s in enumerate(strata)}
        cols[name] = list(values.values())
        return pl.DataFrame(cols, schema_overrides={name: dtype}).lazy()

    draw_rank = pl.col("member_id").hash(seed).rank("ordinal").over(strata)
    kind = t["kind"]
    if a.mode == "scan":
        src.group_by(strata).agg(pl.len(), pl.col("member_id").max()).collect()
    elif kind == "bernoulli":
        counts = counts_of(src)
        total = sum(counts.values())
        p = {}
        for h in counts:
            p[h] = next((float(rate) for pred, rate in T1_RULES if pred(*h)), None)
        rule_expected = sum(counts[h] * p[h] for h in counts if p[h] is not None)
        rest = sum(counts[h] for h in counts if p[h] is None)
        for h in counts:
            if p[h] is None:
                p[h] = (float(T1_TOTAL_RATE) * total - rule_expected) / rest
        out = (
            src.join(frame(p, "_p", pl.Float64), on=strata)
            .filter(pl.col("member_id").hash(seed).cast(pl.Float64) / 2.0**64 < pl.col("_p"))
            .drop("_p")
        )
        out.sink_parquet(a.out)
    elif kind == "proportional":
        targets = largest_remainder(counts_of(src), a.n)
        out = (
            src.join(frame(targets, "_n", pl.Int64), on=strata)
            .filter(draw_rank <= pl.col("_n"))
            .drop("_n")
        )
        out.sink_parquet(a.out)
    elif kind == "equal_cap":
        src.filter(draw_rank <= t["cap"]).sink_parquet(a.out)
    elif kind == "entity":
        members = src.group_by("member_id").agg(pl.col("country").first())
        targets = largest_remainder(counts_of(members), a.n)
        chosen = (
            members.join(frame(targets, "_n", pl.Int64), on=strata)
            .filter(draw_rank <= pl.col("_n"))
            .select("member_id")
        )
        src.join(chosen, on="member_id", how="semi").sink_parquet(a.out)
    elif kind == "split":
        rn = draw_rank
        n_h = pl.len().over(strata)
        out = src.with_columns(
            pl.when(rn <= (n_h * 0.8).round())
            .then(pl.lit("train"))
            .when(rn <= (n_h * 0.9).round())
            .then(pl.lit("validation"))
            .otherwise(pl.lit("test"))
            .alias("_split")
        )
        out.sink_parquet(a.out)
    else:
        sys.exit(f"unknown task kind {kind}")
    print(json.dumps({"inner_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
