#!/usr/bin/env python3
"""Run `strat sql` output on a real engine and write the result as CSV.

    run_sql.py ENGINE SQL_FILE CSV_DIR OUT.csv [SQL_FILE CSV_DIR OUT.csv]...

ENGINE is `duckdb`, `postgres` or `spark`. The engine is started once for all
the jobs (Spark takes seconds to start). Every `*.csv` of a job's CSV_DIR is
loaded as a table named by its file stem, and every `*.csv` of a subfolder
SCHEMA of CSV_DIR as table SCHEMA.STEM (Spark: SCHEMA must be `global_temp`, a
global temporary view); stems and folder names are percent-decoded (`%2F` is a
`/`, `%25` a `%`), so any name, quotes, backslashes and comment markers
included, can be a table's. Headers may hold any column names. Each file is
read from a private copy with a plain name (no engine ever parses the real
path). Column types are inferred the way
strat (DataFusion) infers them: integer, float, boolean (true/false), date
(YYYY-MM-DD), timestamp (YYYY-MM-DDTHH:MM:SS), else text; an empty field is
NULL. Jobs with the same CSV_DIR share the loaded tables; each job's SQL_FILE
sees exactly the tables of its CSV_DIR. Its rows are written to OUT.csv with a
fixed formatting: a header row, NULL as an empty field, booleans true/false, floats
as Python's shortest round-trip repr, dates YYYY-MM-DD, timestamps
YYYY-MM-DDTHH:MM:SS (PostgreSQL's own CSV is normalised to the same).

PostgreSQL: a throw-away cluster is created with initdb in a temporary folder,
started on a Unix socket in that folder (no TCP port), and stopped and removed
at the end, whatever happens. As root, the server runs as the `postgres` user.
Each CSV_DIR is a schema of its own, put first on the `search_path`.

Spark: PySpark in local[2] mode, one SparkSession for all jobs, session time
zone UTC, no code generation or adaptive planning (faster on small data; no
result depends on them), Spark's defaults otherwise (`STRAT_SPARK_ANSI=true`
turns ANSI mode on). The CSVs are read as text and cast to the inferred types, so the types
are those strat sees; each CSV_DIR's tables are temporary views.
Exit status 2 when the engine is missing, 1 when a query fails (its error on
stderr), 0 otherwise.
"""

import csv
import datetime
import io
import urllib.parse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

INT = re.compile(r"^-?\d+$")
FLOAT = re.compile(r"^-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?$")


def infer(values):
    """The type of a CSV column from its non-empty values."""
    values = [v for v in values if v != ""]
    if not values:
        return "text"
    for name, test in (
        ("bigint", lambda v: INT.match(v) and -(2**63) <= int(v) < 2**63),
        ("double", lambda v: FLOAT.match(v)),
        ("boolean", lambda v: v.lower() in ("true", "false")),
        ("date", lambda v: DATE.match(v)),
        ("timestamp", lambda v: TIMESTAMP.match(v)),
    ):
        if all(test(v) for v in values):
            return name
    return "text"


_COPIES = tempfile.mkdtemp(prefix="strat-sql-load-")


def _private_copy(path):
    """A copy of `path` under a plain name, so no engine parses a hostile path."""
    dest = os.path.join(_COPIES, f"t{len(os.listdir(_COPIES))}.csv")
    shutil.copyfile(path, dest)
    return dest


def tables(csv_dir):
    """[(schema or None, name, path, header, types)] of a CSV_DIR (see the module doc)."""
    out = []
    found = [(None, p) for p in sorted(glob.glob(os.path.join(glob.escape(csv_dir), "*.csv")))]
    for sub in sorted(os.listdir(csv_dir)):
        if os.path.isdir(os.path.join(csv_dir, sub)):
            found += [(urllib.parse.unquote(sub), p)
                      for p in sorted(glob.glob(os.path.join(glob.escape(os.path.join(csv_dir, sub)), "*.csv")))]
    for schema, path in found:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        types = [infer([r[i] for r in body]) for i in range(len(header))]
        name = urllib.parse.unquote(os.path.splitext(os.path.basename(path))[0])
        out.append((schema, name, _private_copy(path), header, types))
    return out


def sql_string(value):
    return "'" + value.replace("'", "''") + "'"


def cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, datetime.date):
        return v.isoformat()
    return str(v)


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def write_rows(out, names, rows):
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(names)
        for r in rows:
            w.writerow([cell(v) for v in r])


def groups(jobs):
    """Jobs grouped by CSV_DIR, in first-seen order: [(csv_dir, [(sql_file, out)])]."""
    out = {}
    for sql_file, csv_dir, dest in jobs:
        out.setdefault(csv_dir, []).append((sql_file, dest))
    return list(out.items())


def run_duckdb(jobs):
    try:
        import duckdb
    except ImportError:
        print("run_sql.py: the duckdb Python package is missing (bash tests/engines/setup.sh)", file=sys.stderr)
        return 2
    duck_types = {"bigint": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE",
                  "timestamp": "TIMESTAMP", "text": "VARCHAR"}
    for csv_dir, group in groups(jobs):
        con = duckdb.connect()
        for schema, name, path, header, types in tables(csv_dir):
            columns = "{" + ", ".join(
                sql_string(h) + ": '" + duck_types[t] + "'" for h, t in zip(header, types)) + "}"
            target = quote_ident(name)
            if schema is not None:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
                target = f"{quote_ident(schema)}.{target}"
            con.execute(
                f"CREATE TABLE {target} AS SELECT * FROM read_csv({sql_string(path)}, header = true, "
                f"columns = {columns}, nullstr = '', timestampformat = '%Y-%m-%dT%H:%M:%S')")
        for sql_file, out in group:
            with open(sql_file, encoding="utf-8") as f:
                query = f.read()
            try:
                cur = con.execute(query)
                rows = cur.fetchall()
            except Exception as e:  # noqa: BLE001 — the engine's message is the point
                print(f"duckdb: {sql_file}: {e}", file=sys.stderr)
                return 1
            write_rows(out, [d[0] for d in cur.description], rows)
        con.close()
    return 0


def run_spark(jobs):
    try:
        import pyspark  # noqa: F401
    except ImportError:
        print("run_sql.py: the pyspark Python package is missing (bash tests/engines/setup.sh)", file=sys.stderr)
        return 2
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        print("run_sql.py: Spark needs Java 17 (java on the PATH or JAVA_HOME)", file=sys.stderr)
        return 2
    # Python turns timestamps into datetimes in its own zone: make it UTC like the session.
    os.environ["TZ"] = "UTC"
    # Spark's Python workers use this interpreter (the engines' venv), not the system one.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    import time
    time.tzset()
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    tmp = tempfile.mkdtemp(prefix="strat-spark-")
    ansi = os.environ.get("STRAT_SPARK_ANSI", "false")
    spark = None
    try:
        spark = (SparkSession.builder.master("local[2]").appName("strat-sql-conformance")
                 .config("spark.sql.session.timeZone", "UTC")
                 .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
                 .config("spark.sql.ansi.enabled", ansi)
                 .config("spark.sql.shuffle.partitions", "2")
                 # Small data, many small queries: Java code generation and adaptive
                 # planning cost more than they save (they change no result).
                 .config("spark.sql.codegen.wholeStage", "false")
                 .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
                 .config("spark.sql.adaptive.enabled", "false")
                 .config("spark.ui.enabled", "false")
                 .config("spark.ui.showConsoleProgress", "false")
                 .config("spark.local.dir", tmp)
                 .config("spark.sql.warehouse.dir", os.path.join(tmp, "warehouse"))
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        spark_types = {"bigint": "bigint", "double": "double", "boolean": "boolean", "date": "date",
                       "timestamp": "timestamp", "text": "string"}
        views = []
        for csv_dir, group in groups(jobs):
            for schema, v in views:
                if schema is None:
                    spark.catalog.dropTempView(v)
                else:
                    spark.catalog.dropGlobalTempView(v)
            spark.catalog.clearCache()
            views = []
            for schema, name, path, header, types in tables(csv_dir):
                if schema not in (None, "global_temp"):
                    print(f"run_sql.py: Spark can only load tables into `global_temp`, not `{schema}`",
                          file=sys.stderr)
                    return 1
                ddl = ", ".join(f"{quote_spark(h)} STRING" for h in header)
                df = spark.read.csv(path, header=True, schema=ddl, nullValue="", emptyValue="",
                                    escape='"', multiLine=True)
                cols = []
                for h, t in zip(header, types):
                    c = F.col(quote_spark(h))
                    c = F.when(c == "", None).otherwise(c)
                    if t == "boolean":
                        c = F.lower(c)
                    cols.append(c.cast(spark_types[t]).alias(h))
                # Cached and counted once: the queries then read memory, not the CSV.
                df = df.select(cols).cache()
                df.count()
                if schema is None:
                    df.createOrReplaceTempView(quote_spark(name))
                else:
                    df.createOrReplaceGlobalTempView(quote_spark(name))
                views.append((schema, name))
            for sql_file, out in group:
                with open(sql_file, encoding="utf-8") as f:
                    query = f.read().strip().rstrip(";")
                try:
                    df = spark.sql(query)
                    rows = df.collect()
                except Exception as e:  # noqa: BLE001 — the engine's message is the point
                    print(f"spark: {sql_file}: {str(e)[:4000]}", file=sys.stderr)
                    return 1
                write_rows(out, df.columns, rows)
        return 0
    finally:
        if spark is not None:
            spark.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def quote_spark(name):
    return "`" + name.replace("`", "``") + "`"


def pg_bin():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    return dirs[-1] if dirs else None


def run_postgres(jobs):
    bindir = pg_bin()
    if bindir is None or shutil.which("psql") is None:
        print("run_sql.py: PostgreSQL is missing (bash tests/engines/setup.sh)", file=sys.stderr)
        return 2
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    tmp = tempfile.mkdtemp(prefix="strat-pg-")
    data = os.path.join(tmp, "data")
    log = os.path.join(tmp, "log")
    if as_root:
        shutil.chown(tmp, "postgres", "postgres")
    os.chmod(tmp, 0o755)
    started = False
    try:
        subprocess.run(prefix + [f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust",
                                 "--encoding=UTF8", "--locale=C.UTF-8"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        subprocess.run(prefix + [f"{bindir}/pg_ctl", "-D", data, "-l", log, "-w", "-o",
                                 f"-c listen_addresses='' -k {tmp} -c fsync=off", "start"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started = True
        psql = [f"{bindir}/psql", "-h", tmp, "-U", "postgres", "-d", "postgres", "-X", "-q",
                "-v", "ON_ERROR_STOP=1"]
        pg_types = {"bigint": "BIGINT", "double": "DOUBLE PRECISION", "boolean": "BOOLEAN", "date": "DATE",
                    "timestamp": "TIMESTAMP", "text": "TEXT"}
        # Group by group: load its tables, then run its queries (a qualified table
        # SCHEMA.NAME is shared by all groups, so it is dropped and loaded again).
        for g, (csv_dir, group) in enumerate(groups(jobs)):
            script = [f"CREATE SCHEMA data{g}; SET search_path TO data{g};"]
            for k, (schema, name, path, header, types) in enumerate(tables(csv_dir)):
                cols = ", ".join(f"{quote_ident(h)} {pg_types[t]}" for h, t in zip(header, types))
                # Loaded under a plain name (psql's \copy parses its table name itself), then renamed.
                script.append(f"CREATE TABLE strat_load_{k} ({cols});")
                script.append(f"\\copy strat_load_{k} FROM '{path}' WITH (FORMAT csv, HEADER true)")
                if schema is not None:
                    script.append(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)};")
                    script.append(f"DROP TABLE IF EXISTS {quote_ident(schema)}.{quote_ident(name)};")
                    script.append(f"ALTER TABLE strat_load_{k} SET SCHEMA {quote_ident(schema)};")
                    script.append(f"ALTER TABLE {quote_ident(schema)}.strat_load_{k} RENAME TO {quote_ident(name)};")
                else:
                    script.append(f"ALTER TABLE strat_load_{k} RENAME TO {quote_ident(name)};")
            subprocess.run(psql, input="\n".join(script) + "\n", text=True, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for sql_file, out in group:
                with open(sql_file, encoding="utf-8") as f:
                    query = f.read().strip().rstrip(";")
                # On lines of their own, so that a comment on the query's last line ends before `)`.
                # Bytes, not text mode: universal newlines would turn a `\r` inside a value into `\n`.
                p = subprocess.run(psql + ["-c", f"SET search_path TO data{g}",
                                           "-c", f"COPY (\n{query}\n) TO STDOUT WITH (FORMAT csv, HEADER true)"],
                                   capture_output=True)
                if p.returncode != 0:
                    print(f"postgres: {sql_file}: {p.stderr.decode('utf-8', 'replace').strip()}", file=sys.stderr)
                    return 1
                rows = list(csv.reader(io.StringIO(p.stdout.decode("utf-8"), newline="")))
                with open(out, "w", newline="", encoding="utf-8") as f:
                    w = csv.writer(f, lineterminator="\n")
                    for i, r in enumerate(rows):
                        w.writerow(r if i == 0 else [normalise_pg(v) for v in r])
        return 0
    except subprocess.CalledProcessError as e:
        print(f"postgres: {' '.join(e.cmd[:3])}: {e.stderr}", file=sys.stderr)
        if os.path.exists(log):
            with open(log, encoding="utf-8", errors="replace") as f:
                print(f.read()[-2000:], file=sys.stderr)
        return 1
    finally:
        if started:
            subprocess.run(prefix + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


def normalise_pg(v):
    """PostgreSQL's CSV text to run_sql.py's formatting (t/f, timestamps, floats)."""
    if v == "t":
        return "true"
    if v == "f":
        return "false"
    if TIMESTAMP.match(v):
        return v.replace(" ", "T", 1)
    return v


def main(argv):
    if len(argv) < 5 or (len(argv) - 2) % 3 != 0:
        print(__doc__, file=sys.stderr)
        return 64
    import atexit
    atexit.register(shutil.rmtree, _COPIES, True)
    engine = argv[1]
    jobs = [tuple(argv[i:i + 3]) for i in range(2, len(argv), 3)]
    runners = {"duckdb": run_duckdb, "postgres": run_postgres, "spark": run_spark}
    if engine not in runners:
        print(f"run_sql.py: unknown engine `{engine}` (duckdb, postgres, spark)", file=sys.stderr)
        return 64
    return runners[engine](jobs)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
