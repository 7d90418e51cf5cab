#!/usr/bin/env python3
"""Run `strat sql` output on a real engine and write the result as CSV.

    run_sql.py ENGINE SQL_FILE CSV_DIR OUT.csv [SQL_FILE OUT.csv]...

ENGINE is `duckdb` or `postgres`. Every `*.csv` of CSV_DIR is loaded as a table
named by its file stem, with column types inferred the way strat (DataFusion)
infers them: integer, float, boolean (true/false), date (YYYY-MM-DD),
timestamp (YYYY-MM-DDTHH:MM:SS), else text; an empty field is NULL.
Each SQL_FILE is run and its rows written to the OUT.csv after it with a fixed
formatting: a header row, NULL as an empty field, booleans true/false, floats
as Python's shortest round-trip repr, dates YYYY-MM-DD, timestamps
YYYY-MM-DDTHH:MM:SS (PostgreSQL's own CSV is normalised to the same).

PostgreSQL: a throw-away cluster is created with initdb in a temporary folder,
started on a Unix socket in that folder (no TCP port), and stopped and removed
at the end, whatever happens. As root, the server runs as the `postgres` user.
Exit status 2 when the engine is missing, 1 when a query fails (its error on
stderr), 0 otherwise.
"""

import csv
import datetime
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


def tables(csv_dir):
    out = []
    for path in sorted(glob.glob(os.path.join(csv_dir, "*.csv"))):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        types = [infer([r[i] for r in body]) for i in range(len(header))]
        out.append((os.path.splitext(os.path.basename(path))[0], path, header, types))
    return out


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


def run_duckdb(jobs, csv_dir):
    try:
        import duckdb
    except ImportError:
        print("run_sql.py: the duckdb Python package is missing (bash tests/engines/setup.sh)", file=sys.stderr)
        return 2
    con = duckdb.connect()
    duck_types = {"bigint": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE",
                  "timestamp": "TIMESTAMP", "text": "VARCHAR"}
    for name, path, header, types in tables(csv_dir):
        columns = "{" + ", ".join(
            "'" + h.replace("'", "''") + "': '" + duck_types[t] + "'" for h, t in zip(header, types)) + "}"
        con.execute(
            f"CREATE TABLE {quote_ident(name)} AS SELECT * FROM read_csv('{path}', header = true, "
            f"columns = {columns}, nullstr = '', timestampformat = '%Y-%m-%dT%H:%M:%S')")
    for sql_file, out in jobs:
        with open(sql_file, encoding="utf-8") as f:
            query = f.read()
        try:
            cur = con.execute(query)
            rows = cur.fetchall()
        except Exception as e:  # noqa: BLE001 — the engine's message is the point
            print(f"duckdb: {sql_file}: {e}", file=sys.stderr)
            return 1
        with open(out, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow([d[0] for d in cur.description])
            for r in rows:
                w.writerow([cell(v) for v in r])
    return 0


def pg_bin():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    return dirs[-1] if dirs else None


def run_postgres(jobs, csv_dir):
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
        script = []
        for name, path, header, types in tables(csv_dir):
            cols = ", ".join(f"{quote_ident(h)} {pg_types[t]}" for h, t in zip(header, types))
            script.append(f"CREATE TABLE {quote_ident(name)} ({cols});")
            script.append(f"\\copy {quote_ident(name)} FROM '{path}' WITH (FORMAT csv, HEADER true)")
        subprocess.run(psql, input="\n".join(script) + "\n", text=True, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for sql_file, out in jobs:
            with open(sql_file, encoding="utf-8") as f:
                query = f.read().strip().rstrip(";")
            # Comments would end up inside COPY (...): keep the query's lines that are not comments.
            body = "\n".join(l for l in query.splitlines() if not l.lstrip().startswith("--"))
            p = subprocess.run(psql + ["-c", f"COPY ({body}) TO STDOUT WITH (FORMAT csv, HEADER true)"],
                               capture_output=True, text=True)
            if p.returncode != 0:
                print(f"postgres: {sql_file}: {p.stderr.strip()}", file=sys.stderr)
                return 1
            rows = list(csv.reader(p.stdout.splitlines(keepends=True)))
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
    if len(argv) < 5 or len(argv) % 2 == 0:
        print(__doc__, file=sys.stderr)
        return 64
    engine, first_sql, csv_dir, first_out = argv[1:5]
    jobs = [(first_sql, first_out)] + [(argv[i], argv[i + 1]) for i in range(5, len(argv), 2)]
    if engine == "duckdb":
        return run_duckdb(jobs, csv_dir)
    if engine == "postgres":
        return run_postgres(jobs, csv_dir)
    print(f"run_sql.py: unknown engine `{engine}` (duckdb, postgres)", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
