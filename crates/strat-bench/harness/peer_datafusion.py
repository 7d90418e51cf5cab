"""Floors in DataFusion, the engine strat runs on (the `datafusion` Python
package of the same major version, 55): the scan floor (read the task's
columns — every column when the draw keys the whole row —, count by strata) and the draw floor (the same plus DataFusion's
built-in md5 draw of every unit). No sample: strat is the DataFusion sample.
For T10 the strata counted are the columns (country), not the unit aggregate.

    python3 peer_datafusion.py --task t2 --mode scan --members M.parquet --events E.parquet --threads 2
"""

from __future__ import annotations

import json
import time

from datafusion import SessionConfig, SessionContext

from tasks import TASKS, floor_strata, peer_arguments, scan_reads


def main() -> None:
    ap = peer_arguments(['scan', 'draw'])
    a = ap.parse_args()
    t = TASKS[a.task]
    ctx = SessionContext(SessionConfig().with_target_partitions(a.threads))
    t0 = time.perf_counter()
    ctx.register_parquet("members", a.members)
    ctx.register_parquet("events", a.events)
    s = ", ".join(floor_strata(a.task))
    conds = [t["where_sql"]] if "where_sql" in t else []
    if a.mode == "scan":
        names = [f.name for f in ctx.table(t["table"]).schema()]
        sql = f"SELECT {s}, count(*), {scan_reads(a.task, names)} FROM {t['table']}"
    else:
        conds.append(f"substr(md5('{t['seed']}:' || CAST(member_id AS VARCHAR)), 1, 16) < '8000000000000000'")
        sql = f"SELECT {s}, count(*) FROM {t['table']}"
    if conds:
        sql += " WHERE " + " AND ".join(conds)
    sql += f" GROUP BY {s}"
    ctx.sql(sql).collect()
    print(json.dumps({"inner_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
