"""The cohort of cohort.strat from Python: pandas in, Polars out, the report
as a DataFrame, and the SQL for the warehouse.

    python examples/cohort_in_python.py      # needs: pip install pyarrow pandas polars

The members table is read with pandas (as a notebook would have it) and
handed to strat as a frame: the file's own `table members = …` is not read.
The sample is the one `strat run examples/cohort.strat --emit cohort` writes.
"""

import pathlib

import pandas as pd

import strat

here = pathlib.Path(__file__).parent
members = pd.read_csv(here / "data" / "members.csv", parse_dates=["signup_date"])
members["signup_date"] = members["signup_date"].dt.date  # a date column, as strat reads the CSV

rules = strat.Rules.from_file(here / "cohort.strat")
cohort = rules.sample(tables={"members": members}, emit="cohort")

frame = cohort.to_polars()  # or pl.DataFrame(cohort), pa.table(cohort), duckdb.sql("from cohort")
print(frame.group_by("country").len().sort("len", descending=True).head(5))

report = cohort.report
strata = pd.DataFrame(report["strata"])
print(f"{report['selected']} of {report['population']} members in {len(strata)} strata")
print(strata.sort_values("population", ascending=False).head(3).to_string(index=False))

# The same cohort where the data lives: one query, the same members.
query = rules.sql("duckdb", emit="cohort")
print(query.splitlines()[0])
