"""The wheel alone, with none of pyarrow, pandas or Polars installed: a rule
file over paths runs, the report is there, and the conveniences that need
those libraries say what to install. Run by tests/python/run.sh in a
virtual environment of its own."""

import pathlib
import sys

import strat

root = pathlib.Path(sys.argv[1])
for missing in ("pyarrow", "pandas", "polars"):
    try:
        __import__(missing)
    except ImportError:
        continue
    sys.exit(f"{missing} is installed: this check needs an environment without it")

s = strat.sample(root / "examples" / "cohort.strat", emit="cohort")
assert len(s) == s.report["selected"] == 2000, (len(s), s.report["selected"])
assert s.columns[0] == "member_id", s.columns
for convert, needs in ((s.to_pandas, "pyarrow"), (s.to_polars, "polars")):
    try:
        convert()
    except ImportError as e:
        assert f"pip install {needs}" in str(e), e
    else:
        sys.exit(f"{convert.__name__} worked without {needs}")
try:
    strat.Rules("sample t take 1").check()
except Exception as e:  # noqa: BLE001 - any error is a failure here
    sys.exit(f"check failed: {e}")
print(f"strat {strat.__version__} works without pyarrow, pandas or Polars")
