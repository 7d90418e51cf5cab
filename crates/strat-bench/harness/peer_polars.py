"""T1-T13 in Polars (lazy API), as a Polars user would write them, plus the scan
floor. One task per process; same arguments as peer_duckdb.py.

Exact tasks: counts per stratum (a small collect; with the standard deviations
for Neyman), targets in Python (largest remainder), then a join and
`hash(seed).rank("ordinal").over(strata) <= n_target` (the hash of
`pl.struct(all columns)` for the tasks without unit), written with
sink_parquet. Mode `shuffle` (T2, T4) is the other way Polars users write it:
`pl.int_range(pl.len()).shuffle(seed).over(strata) < n_target`.
Threads: POLARS_MAX_THREADS, set before import.
"""

from __future__ import annotations

import json
import os
import sys
import time

from tasks import peer_arguments


def main() -> None:
    ap = peer_arguments(['sample', 'scan', 'shuffle'])
    a = ap.parse_args()
    os.environ["POLARS_MAX_THREADS"] = str(a.threads)
    import polars as pl

    from tasks import TASKS, bernoulli_rates, bucket_labels, largest_remainder, neyman_targets

    t0 = time.perf_counter()

    t = TASKS[a.task]
    strata = t["strata"]
    seed = t["seed"]
    src = pl.scan_parquet(a.members if t["table"] == "members" else a.events)
    source_cols = src.collect_schema().names()
    if "where_sql" in t:  # T4, T11
        cond = pl.col("tenure_days") >= 30
        if "is_kids_profile" in t["where_cols"]:
            cond = cond & ~pl.col("is_kids_profile")
        src = src.filter(cond)

    def counts_of(lf) -> dict:
        df = lf.group_by(strata).agg(pl.len().alias("n_h")).collect()
        return {tuple(r[:-1]): r[-1] for r in df.iter_rows()}

    def frame(values: dict, name: str, dtype) -> "pl.LazyFrame":
        cols = {s: [h[i] for h in values] for i, s in enumerate(strata)}
        cols[name] = list(values.values())
        return pl.DataFrame(cols, schema_overrides={name: dtype}).lazy()

    def draw(s=seed):
        """The hash of the unit, or of the whole source row for a task without unit."""
        if t["unit"] is None:
            return pl.struct(source_cols).hash(s)
        return pl.col(t["unit"]).hash(s)

    def draw_rank(s=seed):
        return draw(s).rank("ordinal").over(strata)

    def proportional(lf, n):
        targets = largest_remainder(counts_of(lf), n)
        return lf.join(frame(targets, "_n", pl.Int64), on=strata).filter(draw_rank() <= pl.col("_n")).drop("_n")

    def split(lf, s):
        rn = draw_rank(s)
        n_h = pl.len().over(strata)
        names = [name for name, _ in t["shares"]]
        if all(name == f"fold_{i + 1}" for i, name in enumerate(names)):
            # Fold k holds the ranks (k-1)·N_h/K < rn ≤ k·N_h/K: each fold the floor or ceiling of N_h/K.
            part = pl.format("fold_{}", (rn - 1) * len(names) // n_h + 1)
        else:
            part, cum = pl, 0
            for name, share in t["shares"][:-1]:
                cum += share
                part = part.when(rn <= (n_h * float(cum)).round()).then(pl.lit(name))
            part = part.otherwise(pl.lit(names[-1]))
        return lf.with_columns(part.alias("_split"))

    kind = t["kind"]
    if a.mode == "scan":
        floor = [s for s in strata if s != "activity"]
        src.group_by(floor).agg(pl.len(), pl.col("member_id").max()).collect()
    elif a.mode == "shuffle":
        if kind != "proportional" or t["unit"] is None:
            sys.exit(f"mode shuffle is for the exact proportional samples by unit, not {a.task}")
        targets = largest_remainder(counts_of(src), a.n)
        out = (
            src.join(frame(targets, "_n", pl.Int64), on=strata)
            .filter(pl.int_range(pl.len()).shuffle(seed).over(strata) < pl.col("_n"))
            .drop("_n")
        )
        out.sink_parquet(a.out)
    elif kind == "bernoulli":
        p = {h: float(v) for h, v in bernoulli_rates(a.task, counts_of(src)).items()}
        out = (
            src.join(frame(p, "_p", pl.Float64), on=strata)
            .filter(draw().cast(pl.Float64) / 2.0**64 < pl.col("_p"))
            .drop("_p")
        )
        out.sink_parquet(a.out)
    elif kind == "proportional":
        proportional(src, a.n).sink_parquet(a.out)
    elif kind == "neyman":
        df = src.group_by(strata).agg(pl.len().alias("n_h"), pl.col(t["neyman"]).std(ddof=0).alias("s_h")).collect()
        counts = {tuple(r[:-2]): r[-2] for r in df.iter_rows()}
        sds = {tuple(r[:-2]): r[-1] for r in df.iter_rows()}
        targets = neyman_targets(counts, sds, a.n)
        out = src.join(frame(targets, "_n", pl.Int64), on=strata).filter(draw_rank() <= pl.col("_n")).drop("_n")
        out.sink_parquet(a.out)
    elif kind == "equal_cap":
        src.filter(draw_rank() <= t["cap"]).sink_parquet(a.out)
    elif kind == "entity":
        aggs = []
        for s in strata:
            if s == "activity":
                labels, edges = bucket_labels(t["activity_edges"]), t["activity_edges"]
                e = pl
                for i, edge in enumerate(edges):
                    e = e.when(pl.len() < edge).then(pl.lit(labels[i]))
                aggs.append(e.otherwise(pl.lit(labels[-1])).alias(s))
            else:
                aggs.append(pl.col(s).first())
        members = src.group_by("member_id").agg(aggs)
        targets = largest_remainder(counts_of(members), a.n)
        chosen = (
            members.join(frame(targets, "_n", pl.Int64), on=strata)
            .filter(draw_rank() <= pl.col("_n"))
            .select("member_id")
        )
        src.join(chosen, on="member_id", how="semi").sink_parquet(a.out)
    elif kind == "split":
        split(src, seed).sink_parquet(a.out)
    elif kind == "split_about":
        u = draw().cast(pl.Float64) / 2.0**64
        part, cum = pl, 0
        for name, share in t["shares"][:-1]:
            cum += share
            part = part.when(u < float(cum)).then(pl.lit(name))
        src.with_columns(part.otherwise(pl.lit(t["shares"][-1][0])).alias("_split")).sink_parquet(a.out)
    elif kind == "chain":
        cohort = proportional(src, a.n)
        split(cohort, t["split_seed"]).sink_parquet(a.out)
    else:
        sys.exit(f"unknown task kind {kind}")
    print(json.dumps({"inner_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
