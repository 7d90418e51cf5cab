"""Type stubs of strat's native module (re-exported by `strat`)."""

import datetime
import decimal
import os
import pathlib
from typing import Any, Mapping

__version__: str

# A table: a path strat scans (Parquet, CSV, NDJSON, Arrow files or folders),
# or Arrow data: any object with __arrow_c_stream__ or __arrow_c_array__
# (pyarrow, Polars, DuckDB, DataFusion), or a pandas DataFrame (via pyarrow).
TableValue = str | os.PathLike[str] | Any
ParamValue = int | float | str | bool | datetime.date | datetime.datetime | decimal.Decimal

class Diagnostic:
    """One finding about a rule file; `str()` renders it as `strat check` does."""

    @property
    def severity(self) -> str: ...  # "error", "warning" or "note"
    @property
    def code(self) -> str: ...  # E0102, W0001, … (docs/diagnostics.md)
    @property
    def message(self) -> str: ...
    @property
    def line(self) -> int | None: ...  # 1-based; None for a finding without a place
    @property
    def column(self) -> int | None: ...
    @property
    def end_line(self) -> int | None: ...
    @property
    def end_column(self) -> int | None: ...
    @property
    def help(self) -> str | None: ...

class Sample:
    """A run's sample (Arrow data through `__arrow_c_stream__`) and its report."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    def __arrow_c_schema__(self) -> object: ...
    @property
    def report(self) -> dict[str, Any]: ...  # what `strat run --report r.json` writes
    @property
    def num_rows(self) -> int: ...
    @property
    def columns(self) -> list[str]: ...
    def to_pandas(self) -> Any: ...  # needs pyarrow and pandas
    def to_polars(self) -> Any: ...  # needs polars
    def __len__(self) -> int: ...

class Rules:
    """A rule file: `Rules(text)` or `Rules.from_file(path)`."""

    def __init__(self, text: str) -> None: ...
    @staticmethod
    def from_file(path: str | os.PathLike[str]) -> Rules: ...
    @property
    def text(self) -> str: ...
    @property
    def path(self) -> pathlib.Path | None: ...
    def check(self, tables: Mapping[str, TableValue] | None = None) -> list[Diagnostic]: ...
    def sample(
        self,
        tables: Mapping[str, TableValue] | None = None,
        params: Mapping[str, ParamValue] | None = None,
        emit: str | None = None,
        threads: int | None = None,
    ) -> Sample: ...
    def sql(
        self,
        dialect: str,
        tables: Mapping[str, TableValue] | None = None,
        params: Mapping[str, ParamValue] | None = None,
        emit: str | None = None,
    ) -> str: ...
    def explain(
        self,
        tables: Mapping[str, TableValue] | None = None,
        params: Mapping[str, ParamValue] | None = None,
        emit: str | None = None,
    ) -> str: ...
