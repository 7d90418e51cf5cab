"""T1-T6 in PySpark (DataFrame API, local[THREADS]), as a Spark user would write
them, plus the scan floor. One task per process; same arguments as
peer_duckdb.py. The output is a folder of Parquet files (Spark's way).

Exact tasks: counts per stratum (a small collect), largest-remainder targets in
Python, broadcast-joined, then `row_number() over (partition by stratum order
by xxhash64(member_id, seed))`. T1 uses `sampleBy`, Spark's per-stratum
Bernoulli sampler. Settings a local user would make: local[THREADS], 4 GB of
driver memory, 2 × THREADS shuffle partitions, no UI.
"""

from __future__ import annotations

import json
import os
import time

from tasks import peer_arguments


def main() -> None:
    ap = peer_arguments(['sample', 'scan'])
    ap.add_argument("--driver-memory", default="4g")
    a = ap.parse_args()
    t0 = time.perf_counter()
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F

    from tasks import TASKS, T1_RULES, T1_TOTAL_RATE, largest_remainder

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
    if "where_sql" in t:
        src = src.where(t["where_sql"])

    def counts_of(df) -> dict:
        return {tuple(r[s] for s in strata): r["count"] for r in df.groupBy(*strata).count().collect()}

    def frame(values: dict, name: str):
        rows = [tuple(h) + (v,) for h, v in values.items()]
        return F.broadcast(spark.createDataFrame(rows, strata + [name]))

    by_draw = Window.partitionBy(*strata).orderBy(F.xxhash64("member_id", F.lit(seed)))
    kind = t["kind"]
    if a.mode == "scan":
        src.groupBy(*strata).agg(F.count(F.lit(1)), F.max("member_id")).collect()
    elif kind == "bernoulli":
        counts = counts_of(src)
        total = sum(counts.values())
        p = {h: next((float(rate) for pred, rate in T1_RULES if pred(*h)), None) for h in counts}
        rule_expected = sum(counts[h] * p[h] for h in counts if p[h] is not None)
        rest = sum(counts[h] for h in counts if p[h] is None)
        for h in counts:
            if p[h] is None:
                p[h] = (float(T1_TOTAL_RATE) * total - rule_expected) / rest
        key = F.concat_ws("\u001f", *strata)
        fractions = {"\u001f".join(h): v for h, v in p.items()}
        out = src.withColumn("_key", key).sampleBy("_key", fractions, seed).drop("_key")
        out.write.mode("overwrite").parquet(a.out)
    elif kind == "proportional":
        targets = largest_remainder(counts_of(src), a.n)
        out = (
            src.join(frame(targets, "_n"), strata)
            .withColumn("_rn", F.row_number().over(by_draw))
            .where("_rn <= _n")
            .drop("_rn", "_n")
        )
        out.write.mode("overwrite").parquet(a.out)
    elif kind == "equal_cap":
        out = src.withColumn("_rn", F.row_number().over(by_draw)).where(F.col("_rn") <= t["cap"]).drop("_rn")
        out.write.mode("overwrite").parquet(a.out)
    elif kind == "entity":
        members = src.groupBy("member_id").agg(F.first("country").alias("country")).cache()
        targets = largest_remainder(counts_of(members), a.n)
        chosen = (
            members.join(frame(targets, "_n"), strata)
            .withColumn("_rn", F.row_number().over(by_draw))
            .where("_rn <= _n")
            .select("member_id")
        )
        src.join(chosen, "member_id", "left_semi").write.mode("overwrite").parquet(a.out)
    elif kind == "split":
        rn = F.row_number().over(by_draw)
        n_h = F.count(F.lit(1)).over(Window.partitionBy(*strata))
        out = (
            src.withColumn("_rn", rn)
            .withColumn("_nh", n_h)
            .withColumn(
                "_split",
                F.when(F.col("_rn") <= F.round(F.col("_nh") * 0.8), "train")
                .when(F.col("_rn") <= F.round(F.col("_nh") * 0.9), "validation")
                .otherwise("test"),
            )
            .drop("_rn", "_nh")
        )
        out.write.mode("overwrite").parquet(a.out)
    spark.stop()
    print(json.dumps({"inner_s": time.perf_counter() - t0, "session_s": t_session}))


if __name__ == "__main__":
    main()
