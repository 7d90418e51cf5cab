"""T1-T13 in PySpark (DataFrame API, local[THREADS]), as a Spark user would write
them, plus the scan floor. One task per process; same arguments as
peer_duckdb.py. The output is a folder of Parquet files (Spark's way).

Exact tasks: counts per stratum (a small collect), largest-remainder targets in
Python, broadcast-joined, then `row_number() over (partition by stratum order
by xxhash64(member_id, seed))` (of every column for the tasks without unit);
`ntile(K)` for folds. T1 and T9 use `sampleBy`, Spark's per-stratum Bernoulli
sampler. Settings a local user would make: local[THREADS], 4 GB of
driver memory, 2 × THREADS shuffle partitions, no UI.
"""

from __future__ import annotations

import json
import os
import time

from tasks import peer_arguments


def main() -> None:
    ap = peer_arguments(['sample', 'scan', 'export'])
    ap.add_argument("--driver-memory", default="4g")
    a = ap.parse_args()
    t0 = time.perf_counter()
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F

    from tasks import TASKS, bernoulli_rates, bucket_sql, exported_sql, largest_remainder, neyman_targets

    os.environ.setdefault("PYSPARK_PYTHON", "python3")
    spark = (
        SparkSession.builder.master(f"local[{a.threads}]")
        .appName("strat-bench")
        .config("spark.driver.memory", a.driver_memory)
        .config("spark.sql.shuffle.partitions", str(2 * a.threads))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.parquet.compression.codec", "snappy")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    t_session = time.perf_counter() - t0
    t0 = time.perf_counter()

    t = TASKS[a.task]
    strata = t["strata"]
    seed = t["seed"]
    src = spark.read.parquet(a.members if t["table"] == "members" else a.events)
    source_cols = src.columns
    if "where_sql" in t:
        src = src.where(t["where_sql"])

    def counts_of(df) -> dict:
        return {tuple(r[s] for s in strata): r["count"] for r in df.groupBy(*strata).count().collect()}

    def frame(values: dict, name: str):
        rows = [tuple(h) + (v,) for h, v in values.items()]
        return F.broadcast(spark.createDataFrame(rows, strata + [name]))

    def draw(s=seed):
        """xxhash64 of the unit, or of every source column for a task without unit."""
        cols = source_cols if t["unit"] is None else [t["unit"]]
        return F.xxhash64(*cols, F.lit(s))

    def by_draw(s=seed):
        return Window.partitionBy(*strata).orderBy(draw(s))

    def take(df, targets: dict):
        return (
            df.join(frame(targets, "_n"), strata)
            .withColumn("_rn", F.row_number().over(by_draw()))
            .where("_rn <= _n")
            .drop("_rn", "_n")
        )

    def split(df, s):
        names = [name for name, _ in t["shares"]]
        if all(name == f"fold_{i + 1}" for i, name in enumerate(names)):
            return df.withColumn("_split", F.concat(F.lit("fold_"), F.ntile(len(names)).over(by_draw(s)).cast("string")))
        rn, n_h = F.col("_rn"), F.col("_nh")
        part, cum = F, 0
        for name, share in t["shares"][:-1]:
            cum += share
            part = part.when(rn <= F.round(n_h * float(cum)), name)
        return (
            df.withColumn("_rn", F.row_number().over(by_draw(s)))
            .withColumn("_nh", F.count(F.lit(1)).over(Window.partitionBy(*strata)))
            .withColumn("_split", part.otherwise(names[-1]))
            .drop("_rn", "_nh")
        )

    kind = t["kind"]
    if a.mode == "export":
        # strat's export, its SQL generated before the clock starts again.
        sql = exported_sql(a.task, "spark", a.members, a.events, a.n)
        t0 = time.perf_counter()
        spark.read.parquet(a.members if t["table"] == "members" else a.events).createOrReplaceTempView(t["table"])
        spark.sql(sql).write.mode("overwrite").parquet(a.out)
    elif a.mode == "scan":
        floor = [s for s in strata if s != "activity"]
        src.groupBy(*floor).agg(F.count(F.lit(1)), F.max("member_id")).collect()
    elif kind == "bernoulli":
        p = {h: float(v) for h, v in bernoulli_rates(a.task, counts_of(src)).items()}
        key = F.concat_ws("\u001f", *strata)
        fractions = {"\u001f".join(h): v for h, v in p.items()}
        out = src.withColumn("_key", key).sampleBy("_key", fractions, seed).drop("_key")
        out.write.mode("overwrite").parquet(a.out)
    elif kind == "proportional":
        take(src, largest_remainder(counts_of(src), a.n)).write.mode("overwrite").parquet(a.out)
    elif kind == "neyman":
        stats = src.groupBy(*strata).agg(F.count(F.lit(1)).alias("n_h"), F.stddev_pop(t["neyman"]).alias("s_h")).collect()
        counts = {tuple(r[s] for s in strata): r["n_h"] for r in stats}
        sds = {tuple(r[s] for s in strata): r["s_h"] for r in stats}
        take(src, neyman_targets(counts, sds, a.n)).write.mode("overwrite").parquet(a.out)
    elif kind == "equal_cap":
        out = src.withColumn("_rn", F.row_number().over(by_draw())).where(F.col("_rn") <= t["cap"]).drop("_rn")
        out.write.mode("overwrite").parquet(a.out)
    elif kind == "entity":
        aggs = [
            F.expr(bucket_sql("count(*)", t["activity_edges"])).alias(s) if s == "activity" else F.first(s).alias(s)
            for s in strata
        ]
        members = src.groupBy("member_id").agg(*aggs).cache()
        chosen = take(members, largest_remainder(counts_of(members), a.n)).select("member_id")
        src.join(chosen, "member_id", "left_semi").write.mode("overwrite").parquet(a.out)
    elif kind == "split":
        split(src, seed).write.mode("overwrite").parquet(a.out)
    elif kind == "split_about":
        u = (draw().cast("double") + 2.0**63) / 2.0**64
        part, cum = F, 0
        for name, share in t["shares"][:-1]:
            cum += share
            part = part.when(u < float(cum), name)
        src.withColumn("_split", part.otherwise(t["shares"][-1][0])).write.mode("overwrite").parquet(a.out)
    elif kind == "chain":
        cohort = take(src, largest_remainder(counts_of(src), a.n))
        split(cohort, t["split_seed"]).write.mode("overwrite").parquet(a.out)
    spark.stop()
    print(json.dumps({"inner_s": time.perf_counter() - t0, "session_s": t_session}))


if __name__ == "__main__":
    main()
