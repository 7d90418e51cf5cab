"""The Python package against the command line: the same sample, whatever
the input object; errors and diagnostics; params of every type; Ctrl-C.

Run by tests/python/run.sh (the README's test command), with the package
built from this checkout into the project's virtual environment.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import datafusion
import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import strat

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRAT = ROOT / "target" / "debug" / "strat"

SAMPLE = """
table members = "members.parquet"
sample members
  where tenure_days >= 30
  unit member_id
  stratify by country, plan
  take 300
  seed 11
"""

SPLIT = """
table members = "members.parquet"
split members
  unit member_id
  stratify by country
  into train 80%, test 20%
  seed 12
"""

ROW_LEVEL = """
table members = "members.parquet"
sample members stratify by plan take 10% seed 13
"""


def members(n: int = 4000) -> pa.Table:
    """Deterministic members: repeated ids (a unit of several rows), a
    nullable column, skewed countries."""
    countries = ["US"] * 5 + ["BR"] * 3 + ["DE"] * 2 + ["IS"]
    plans = ["basic", "standard", "premium"]
    ids, cs, ps, tenure, hours, band, device = [], [], [], [], [], [], []
    for i in range(n):
        member = i if i % 10 else i - 1  # every tenth row repeats a member
        x = (member * 2654435761) % 2**32
        ids.append(member)
        cs.append(countries[x % len(countries)])
        ps.append(plans[(x >> 8) % 3])
        tenure.append((x >> 12) % 2000)
        hours.append(round(((x >> 4) % 10000) / 100, 2))
        band.append(None if x % 7 == 0 else ["a", "b"][x % 2])
        device.append(["tv", "web"][i % 2])  # per row: a repeated member spans
    return pa.table(
        {
            "member_id": pa.array(ids, pa.int64()),
            "country": pa.array(cs, pa.string()),
            "plan": pa.array(ps, pa.string()),
            "tenure_days": pa.array(tenure, pa.int64()),
            "watch_hours": pa.array(hours, pa.float64()),
            "age_band": pa.array(band, pa.string()),
            "device": pa.array(device, pa.string()),
        }
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    folder = tmp_path_factory.mktemp("strat-python")
    pq.write_table(members(), folder / "members.parquet")
    return folder


def cli(folder: pathlib.Path, rules: str, *args: str) -> pa.Table:
    """`strat run` of `rules` in `folder`, its sample read back."""
    (folder / "rules.strat").write_text(rules)
    out = folder / "cli.parquet"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [str(STRAT), "run", str(folder / "rules.strat"), "-o", str(out), *args],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return pq.read_table(out)


def rows(table) -> list[dict]:
    return pa.table(table).to_pylist()


@pytest.mark.parametrize("rules", [SAMPLE, SPLIT, ROW_LEVEL], ids=["sample", "split", "rows"])
def test_a_path_gives_the_cli_sample(data: pathlib.Path, rules: str) -> None:
    expected = cli(data, rules)
    s = strat.Rules.from_file(data / "rules.strat").sample()
    assert rows(s) == expected.to_pylist()
    assert s.columns == expected.column_names
    assert len(s) == expected.num_rows > 0


INPUTS = {
    "pyarrow table": lambda t: t,
    "record batch reader": lambda t: pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=777)),
    "record batch": lambda t: t.combine_chunks().to_batches()[0],
    "polars (string views)": lambda t: pl.from_arrow(t),
    "pandas": lambda t: t.to_pandas(),
    "duckdb relation": lambda t: duckdb.from_arrow(t),
    "datafusion dataframe": lambda t: datafusion.SessionContext().from_arrow(t),
    "path string": None,
    "pathlib.Path": None,
}


@pytest.mark.parametrize("kind", list(INPUTS))
@pytest.mark.parametrize("rules", [SAMPLE, SPLIT], ids=["sample", "split"])
def test_every_input_kind_gives_the_cli_sample(data: pathlib.Path, rules: str, kind: str) -> None:
    expected = cli(data, rules).to_pylist()
    table = pq.read_table(data / "members.parquet")
    make = INPUTS[kind]
    if kind == "path string":
        value = str(data / "members.parquet")
    elif kind == "pathlib.Path":
        value = data / "members.parquet"
    else:
        value = make(table)
    # Rule text (no file): the declaration's relative path is never read.
    s = strat.Rules(rules).sample(tables={"members": value})
    assert rows(s) == expected, kind


def test_polars_frames_keep_string_views(data: pathlib.Path) -> None:
    frame = pl.from_arrow(pq.read_table(data / "members.parquet"))
    schema = pa.RecordBatchReader.from_stream(frame).schema
    assert pa.string_view() in schema.types, "Polars exports string views"
    expected = cli(data, SAMPLE).to_pylist()
    assert rows(strat.sample(strat.Rules(SAMPLE), tables={"members": frame})) == expected


def test_a_stream_is_read_once(data: pathlib.Path) -> None:
    table = pq.read_table(data / "members.parquet")
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=500))
    first = strat.Rules(SAMPLE).sample(tables={"members": reader})
    assert rows(first) == cli(data, SAMPLE).to_pylist()
    # strat took the stream (every pass read its one copy): nothing is left.
    with pytest.raises(StopIteration):
        reader.read_next_batch()
    # A stream already read gives no rows: the run says none is eligible.
    with pytest.raises(strat.StratError) as raised:
        strat.Rules(SAMPLE).sample(tables={"members": reader})
    assert raised.value.codes == ["E0202"]


def test_outputs_to_every_library(data: pathlib.Path) -> None:
    s = strat.Rules.from_file(_write(data, SAMPLE)).sample()
    expected = rows(s)
    assert pl.DataFrame(s).to_dicts() == expected
    assert s.to_polars().to_dicts() == expected
    assert s.to_pandas().to_dict("records") == pd.DataFrame(expected).to_dict("records")
    assert duckdb.sql("select * from s").to_arrow_table().to_pylist() == expected


def test_the_report_is_the_cli_report(data: pathlib.Path) -> None:
    rules = _write(data, SAMPLE)
    report = data / "cli.json"
    out = data / "cli.parquet"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [str(STRAT), "run", str(rules), "-o", str(out), "--report", str(report)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    import json

    cli_report = json.loads(report.read_text())
    ours = strat.Rules.from_file(rules).sample().report
    for key in ("population", "selected", "seed", "strata", "rule_md5", "statement"):
        assert ours[key] == cli_report[key], key
    # Strata as a DataFrame: the numbers of the allocation.
    strata = pd.DataFrame(ours["strata"])
    assert strata["selected"].sum() == ours["selected"] == 300


def test_shortcuts_and_emit(data: pathlib.Path) -> None:
    chain = SAMPLE.replace("sample members", "cohort = sample members") + textwrap.dedent(
        """
        split cohort unit member_id stratify by plan into a 50%, b 50% seed 3
        """
    )
    path = _write(data, chain)
    whole = strat.sample(path)
    assert "_split" in whole.columns and len({r["member_id"] for r in rows(whole)}) == 300
    cohort = strat.sample(str(path), emit="cohort")
    assert "_split" not in cohort.columns and len({r["member_id"] for r in rows(cohort)}) == 300
    assert strat.check(path) == []
    text = strat.sql(path, "duckdb", emit="cohort")
    cli_sql = subprocess.run(
        [str(STRAT), "sql", str(path), "--dialect", "duckdb", "--emit", "cohort"],
        capture_output=True,
        text=True,
    )
    assert text == cli_sql.stdout
    assert "run plan" in strat.explain(path)


def test_check_errors_are_diagnostics(data: pathlib.Path) -> None:
    rules = strat.Rules('table members = "members.parquet"\nsample members unit member_idd take 10 seed 1\n')
    diags = rules.check(tables={"members": data / "members.parquet"})
    assert [d.code for d in diags] == ["E0102"]
    d = diags[0]
    assert (d.severity, d.line, d.column) == ("error", 2, 21)
    assert "member_id" in (d.help or "")
    with pytest.raises(strat.StratError) as raised:
        rules.sample(tables={"members": data / "members.parquet"})
    e = raised.value
    assert isinstance(e, ValueError)
    assert e.codes == ["E0102"]
    assert "E0102" in str(e) and "member_idd" in str(e)
    assert str(e.diagnostics[0]) in str(e)


def test_a_diagnostic_renders_as_the_cli_does(data: pathlib.Path) -> None:
    path = _write(data, "sample members unit member_id take 10\n")
    diags = strat.check(path, tables={"members": data / "members.parquet"})
    done = subprocess.run(
        [str(STRAT), "check", str(path), "--table", f"members={data / 'members.parquet'}", "--color", "never"],
        capture_output=True,
        text=True,
    )
    assert [d.code for d in diags] == ["W0001"]
    assert str(diags[0]) in done.stderr


def test_run_errors_carry_their_code(data: pathlib.Path) -> None:
    rules = SAMPLE.replace("take 300", "take 50_000")
    with pytest.raises(strat.StratError) as raised:
        strat.Rules(rules).sample(tables={"members": data / "members.parquet"})
    assert raised.value.codes == ["E0202"]
    spans = "sample members unit member_id stratify by device take 10 seed 1"
    # device differs between the rows of a repeated member: E0201.
    with pytest.raises(strat.StratError) as raised:
        strat.Rules(spans).sample(tables={"members": pq.read_table(data / "members.parquet")})
    assert raised.value.codes == ["E0201"]


PARAMS = """
table members = "members.parquet"
param min_tenure: int = 0
param min_hours: float = 0.0
param plan_name: string = "basic"
param only_plan: bool = false
param since: date = @2000-01-01
param at: timestamp = @2000-01-01T00:00:00
sample members
  where tenure_days >= min_tenure and watch_hours >= min_hours
    and (not only_plan or plan = plan_name)
    and since <= @2018-06-01 and at <= @2018-06-01T00:00:00
  unit member_id
  stratify by country
  take 50
  seed 5
"""


def test_params_of_every_type(data: pathlib.Path) -> None:
    cli_args = [
        "--param", "min_tenure=100", "--param", "min_hours=12.5", "--param", "plan_name=premium",
        "--param", "only_plan=true", "--param", "since=2018-01-01", "--param", "at=2018-01-01T06:00:00",
    ]
    expected = cli(data, PARAMS, *cli_args).to_pylist()
    given = {
        "min_tenure": 100,
        "min_hours": 12.5,
        "plan_name": "premium",
        "only_plan": True,
        "since": dt.date(2018, 1, 1),
        "at": dt.datetime(2018, 1, 1, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    }
    s = strat.Rules.from_file(data / "rules.strat").sample(params=given)
    assert rows(s) == expected
    assert {r["plan"] for r in rows(s)} == {"premium"}
    # A Decimal for a float param, an integral Decimal for an int one.
    given.update(min_hours=decimal.Decimal("12.5"), min_tenure=decimal.Decimal("100"))
    assert rows(strat.Rules.from_file(data / "rules.strat").sample(params=given)) == expected


@pytest.mark.parametrize(
    "name, value",
    [("min_tenure", "100"), ("min_tenure", 1.5), ("only_plan", 1), ("since", dt.datetime(2018, 1, 1)), ("plan_name", 3)],
)
def test_params_of_the_wrong_type_are_errors(data: pathlib.Path, name: str, value: object) -> None:
    with pytest.raises(strat.StratError) as raised:
        strat.Rules(PARAMS).sample(tables={"members": data / "members.parquet"}, params={name: value})
    assert raised.value.codes == ["E0124"]
    assert name in str(raised.value)


def test_unknown_param_and_bad_table_values(data: pathlib.Path) -> None:
    with pytest.raises(strat.StratError) as raised:
        strat.Rules(PARAMS).sample(tables={"members": data / "members.parquet"}, params={"min_tenur": 1})
    assert raised.value.codes == ["E0103"]
    with pytest.raises(TypeError, match="Arrow"):
        strat.Rules(SAMPLE).sample(tables={"members": [1, 2, 3]})
    with pytest.raises(ValueError, match="dialect"):
        strat.Rules(SAMPLE).sql("oracle", tables={"members": data / "members.parquet"})


def test_threads_do_not_change_the_sample(data: pathlib.Path) -> None:
    table = pq.read_table(data / "members.parquet")
    one = strat.Rules(SPLIT).sample(tables={"members": table}, threads=1)
    two = strat.Rules(SPLIT).sample(tables={"members": table}, threads=2)
    assert rows(one) == rows(two)


def test_ctrl_c_interrupts_a_long_run(tmp_path: pathlib.Path) -> None:
    """SIGINT while strat runs (without the GIL) raises KeyboardInterrupt
    within a second or so."""
    script = textwrap.dedent(
        """
        import sys, time
        import pyarrow as pa
        import strat
        n = 3_000_000
        t = pa.table({"a": pa.array(range(n)), "b": pa.array([i % 7 for i in range(n)])})
        print("running", flush=True)
        start = time.monotonic()
        try:
            strat.Rules("sample t stratify by b take 10 seed 1").sample(tables={"t": t})
            print("finished", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted {time.monotonic() - start:.2f}", flush=True)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "running"
    time.sleep(1.0)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    waited = time.monotonic() - sent
    assert out.startswith("interrupted"), out
    assert waited < 5, f"took {waited:.1f} s to stop"


def _write(folder: pathlib.Path, rules: str) -> pathlib.Path:
    path = folder / "rules.strat"
    path.write_text(rules)
    return path


def test_the_issue_s_done_when(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`strat.sample("examples/cohort.strat")` and `Rules(text).sample()` over a
    Polars frame give the rows `strat run` writes."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "cli.parquet"
    done = subprocess.run(
        [str(STRAT), "run", "examples/cohort.strat", "-o", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    expected = pq.read_table(out).to_pylist()
    assert rows(strat.sample("examples/cohort.strat")) == expected
    text = (ROOT / "examples" / "cohort.strat").read_text()
    frame = pl.read_csv(ROOT / "examples" / "data" / "members.csv", try_parse_dates=True)
    tables = {"members": frame, "holdout": "examples/data/last_test_set.csv"}
    assert rows(strat.Rules(text).sample(tables=tables)) == expected


def test_the_python_example_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "examples" / "cohort_in_python.py"), run_name="__main__")
    printed = capsys.readouterr().out
    assert "2000 of 5003 members in 198 strata" in printed
    assert printed.rstrip().splitlines()[-1].startswith("-- Generated by strat")


def test_as_of_gives_the_cli_sample_and_report(tmp_path: pathlib.Path) -> None:
    """`as of` (spec §4.5) from Python: the shipped snapshot example gives
    the rows and the report's `as_of` counts of `strat run`."""
    import json

    rules = ROOT / "examples" / "member_days.strat"
    out, report = tmp_path / "cli.parquet", tmp_path / "cli.json"
    done = subprocess.run(
        [str(STRAT), "run", str(rules), "-o", str(out), "--report", str(report)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    ours = strat.sample(str(rules))
    assert rows(ours) == rows(pq.read_table(out))
    as_of = ours.report["as_of"]
    assert as_of == json.loads(report.read_text())["as_of"]
    assert as_of["units_with_state"] + as_of["units_without_state"] == 600
    # Moving T is a param away.
    may = strat.sample(str(rules), params={"as_of": dt.date(2018, 5, 15)})
    assert may.report["as_of"]["clause"].startswith("as of @2018-05-15 by snapshot_date")
