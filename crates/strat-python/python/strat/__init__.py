"""strat: exact, reproducible stratified samples from declarative rule files.

>>> import strat
>>> s = strat.sample("examples/cohort.strat")          # doctest: +SKIP
>>> rules = strat.Rules(text)                           # doctest: +SKIP
>>> s = rules.sample(tables={"members": polars_df})     # doctest: +SKIP
>>> pa.table(s); pl.DataFrame(s); s.report              # doctest: +SKIP

Tables are paths (files or folders strat scans itself) or any object with the
Arrow PyCapsule interface (pyarrow, Polars, DuckDB, DataFusion; pandas through
pyarrow). The engine is the one `strat run` uses: the same rows, in the same
order, with the same ``_weight``.
"""

from __future__ import annotations

import os
from typing import Any

from strat._strat import Diagnostic, Rules, Sample, __version__

__all__ = [
    "Diagnostic",
    "Rules",
    "Sample",
    "StratError",
    "StratWarning",
    "check",
    "explain",
    "sample",
    "sql",
    "__version__",
]


class StratError(ValueError):
    """The rules do not check, or the run failed (spec §9).

    ``diagnostics`` holds every :class:`Diagnostic` (code, message, line,
    column, help); the message is their rendering, as ``strat`` prints it.
    """

    def __init__(self, message: str, diagnostics: list[Diagnostic]):
        super().__init__(message)
        self.diagnostics = diagnostics

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.diagnostics]


class StratWarning(UserWarning):
    """A warning about the rules (W0001: no seed, …); the call goes on."""


def _rules(rules: Rules | str | os.PathLike[str]) -> Rules:
    """A Rules object, a path to a rule file, or rule text (with a newline
    or no `.strat` suffix)."""
    if isinstance(rules, Rules):
        return rules
    if isinstance(rules, os.PathLike):
        return Rules.from_file(rules)
    if isinstance(rules, str) and "\n" not in rules and rules.endswith(".strat"):
        return Rules.from_file(rules)
    if isinstance(rules, str):
        return Rules(rules)
    raise TypeError(f"rules: a strat.Rules, a path or rule text, got {type(rules).__name__}")


def sample(rules: Rules | str | os.PathLike[str], **kwargs: Any) -> Sample:
    """``Rules(...).sample(**kwargs)``: ``rules`` is a Rules, a path or rule text."""
    return _rules(rules).sample(**kwargs)


def check(rules: Rules | str | os.PathLike[str], **kwargs: Any) -> list[Diagnostic]:
    """``Rules(...).check(**kwargs)``."""
    return _rules(rules).check(**kwargs)


def sql(rules: Rules | str | os.PathLike[str], dialect: str, **kwargs: Any) -> str:
    """``Rules(...).sql(dialect, **kwargs)``."""
    return _rules(rules).sql(dialect, **kwargs)


def explain(rules: Rules | str | os.PathLike[str], **kwargs: Any) -> str:
    """``Rules(...).explain(**kwargs)``."""
    return _rules(rules).explain(**kwargs)
