#!/usr/bin/env python3
"""Run frozen `strat sql --thresholds` queries on Spark Structured Streaming.

    stream_sql.py TABLE SCHEMA RECORDS_DIR WORK_DIR SQL_FILE OUT.csv [SQL_FILE OUT.csv]...

The records are NDJSON files in RECORDS_DIR, read as a stream
(`spark.readStream.schema(SCHEMA).json(RECORDS_DIR)`, one file per
micro-batch) and registered as the temporary view TABLE; SCHEMA is a Spark
DDL string ("member_id BIGINT, country STRING, ..."), the types strat sees.
Each SQL_FILE's query runs on that view as a streaming query writing JSON
files (`writeStream.format("json")`, `trigger(availableNow=True)`, a
checkpoint under WORK_DIR); its output is then read back and written to
OUT.csv with run_sql.py's formatting (a header row, NULL as an empty field,
floats as Python's shortest round-trip repr, dates YYYY-MM-DD). A line per
query on stdout says how many micro-batches read records:
`SQL_FILE: N micro-batches, M rows in, K rows out`.

Spark runs as in run_sql.py: local[2], session time zone UTC, no code
generation or adaptive planning. Exit status 2 when Spark is missing, 1 when
a query fails (its error on stderr), 0 otherwise.
"""

import csv
import datetime
import os
import shutil
import sys
import tempfile


# As in run_sql.py (not imported: importing it makes a folder it removes only
# when it runs as the main program).
def cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    return str(v)


def write_rows(out, names, rows):
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names)
        for r in rows:
            w.writerow([cell(v) for v in r])


def quote_spark(name):
    return "`" + name.replace("`", "``") + "`"


def main(argv):
    if len(argv) < 7 or (len(argv) - 5) % 2 != 0:
        print(__doc__, file=sys.stderr)
        return 64
    table, schema, records, work = argv[1:5]
    jobs = [tuple(argv[i:i + 2]) for i in range(5, len(argv), 2)]
    try:
        import pyspark  # noqa: F401
    except ImportError:
        print("stream_sql.py: the pyspark Python package is missing (bash tests/engines/setup.sh)",
              file=sys.stderr)
        return 2
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        print("stream_sql.py: Spark needs Java 17 (java on the PATH or JAVA_HOME)", file=sys.stderr)
        return 2
    os.environ["TZ"] = "UTC"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import time
    time.tzset()
    from pyspark.sql import SparkSession

    tmp = tempfile.mkdtemp(prefix="strat-spark-stream-")
    spark = None
    try:
        spark = (SparkSession.builder.master("local[2]").appName("strat-stream-sql")
                 .config("spark.sql.session.timeZone", "UTC")
                 .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
                 .config("spark.sql.shuffle.partitions", "2")
                 .config("spark.sql.codegen.wholeStage", "false")
                 .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
                 .config("spark.sql.adaptive.enabled", "false")
                 .config("spark.ui.enabled", "false")
                 .config("spark.ui.showConsoleProgress", "false")
                 .config("spark.local.dir", tmp)
                 .config("spark.sql.warehouse.dir", os.path.join(tmp, "warehouse"))
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        stream = (spark.readStream.schema(schema)
                  .option("maxFilesPerTrigger", 1)  # one file a micro-batch: decided in pieces
                  .json(records))
        stream.createOrReplaceTempView(quote_spark(table))
        for i, (sql_file, out) in enumerate(jobs):
            with open(sql_file, encoding="utf-8") as f:
                query = f.read().strip().rstrip(";")
            sink = os.path.join(work, f"sink{i}")
            try:
                decided = spark.sql(query)
                assert decided.isStreaming, "the query does not read the stream"
                running = (decided.writeStream.format("json")
                           .option("path", sink)
                           .option("checkpointLocation", os.path.join(work, f"checkpoint{i}"))
                           .trigger(availableNow=True)
                           .start())
                running.awaitTermination()
                progress = [p for p in running.recentProgress if p["numInputRows"] > 0]
                # Read back through the sink's log: only committed files.
                rows = spark.read.schema(decided.schema).json(sink).collect()
            except Exception as e:  # noqa: BLE001 — the engine's message is the point
                print(f"spark streaming: {sql_file}: {str(e)[:4000]}", file=sys.stderr)
                return 1
            write_rows(out, decided.columns, rows)
            rows_in = sum(p["numInputRows"] for p in progress)
            print(f"{sql_file}: {len(progress)} micro-batches, {rows_in} rows in, {len(rows)} rows out")
        return 0
    finally:
        if spark is not None:
            spark.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
