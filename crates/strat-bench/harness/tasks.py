"""The benchmark tasks T1-T6 (issue 6), shared by the peer implementations and
the harness's correctness checks.

Each task mirrors one rule file in ../tasks/ (tN.strat). The peers need the
same parameters (strata, filter, sample size, rates); they are written here
once. Nothing here is timed: the peers import it, and the checks run after the
timed runs.
"""

from __future__ import annotations

import argparse

import math
from fractions import Fraction

# Seeds of the rule files (each peer uses the same number as the seed of its own
# RNG or hash; the peers' rows need not, and do not, match strat's).
TASKS = {
    "t1": dict(
        title="Bernoulli, per-stratum rates (about 1%; US 0.5%, premium 3%, rest proportional)",
        table="members",
        strata=["country", "plan"],
        kind="bernoulli",
        seed=20180601,
    ),
    "t2": dict(
        title="exact proportional, n = 100,000 over country x plan",
        table="members",
        strata=["country", "plan"],
        kind="proportional",
        n=100_000,
        seed=20180602,
    ),
    "t3": dict(
        title="equal allocation, at most 500 per country",
        table="members",
        strata=["country"],
        kind="equal_cap",
        cap=500,
        seed=20180603,
    ),
    "t4": dict(
        title="filter (tenure_days >= 30, not kids), then T2",
        table="members",
        strata=["country", "plan"],
        kind="proportional",
        n=100_000,
        where_sql="tenure_days >= 30 AND NOT is_kids_profile",
        seed=20180604,
    ),
    "t5": dict(
        title="entity sampling on events: 50,000 members by country, all their events",
        table="events",
        strata=["country"],
        kind="entity",
        n=50_000,
        seed=20180605,
    ),
    "t6": dict(
        title="train/validation/test split 80/10/10 of all members by country x plan",
        table="members",
        strata=["country", "plan"],
        kind="split",
        shares=[("train", Fraction(8, 10)), ("validation", Fraction(1, 10)), ("test", Fraction(1, 10))],
        seed=20180606,
    ),
}

# T1's rules, in the rule file's order: (predicate on the stratum, rate).
T1_TOTAL_RATE = Fraction(1, 100)
T1_RULES = [
    (lambda country, plan: country == "US", Fraction(5, 1000)),
    (lambda country, plan: plan == "premium", Fraction(3, 100)),
]


def task_n(task: str, rows: int, event_members: int) -> int | None:
    """The sample size used at this table size: the task's n, lowered for tables
    too small to hold it (the harness passes it to strat as --param n=...)."""
    t = TASKS[task]
    if "n" not in t:
        return None
    if t["kind"] == "entity":
        return min(t["n"], event_members // 2)
    return min(t["n"], rows // 10)


def columns_needed(task: str) -> list[str]:
    """The columns a task reads to allocate and draw (the scan floor reads these)."""
    t = TASKS[task]
    cols = ["member_id"] + t["strata"]
    if task == "t4":
        cols += ["tenure_days", "is_kids_profile"]
    return cols


def largest_remainder(counts: dict, n: int) -> dict:
    """Proportional allocation of n over strata of sizes counts (exact rationals):
    floors, then the leftover units to the largest fractional parts (ties to
    the first stratum in sorted order)."""
    total = sum(counts.values())
    quotas = {h: Fraction(n * c, total) for h, c in counts.items()}
    base = {h: math.floor(q) for h, q in quotas.items()}
    left = n - sum(base.values())
    order = sorted(quotas, key=lambda h: (-(quotas[h] - base[h]), h))
    for h in order[:left]:
        base[h] += 1
    return base


def t1_rates(counts: dict) -> dict:
    """Spec §5.4: p_h of every stratum of T1 (exact rationals)."""
    total = sum(counts.values())
    p = {}
    for h in counts:
        for pred, rate in T1_RULES:
            if pred(*h):
                p[h] = rate
                break
    rest = [h for h in counts if h not in p]
    r = T1_TOTAL_RATE * total - sum(counts[h] * p[h] for h in p)
    n_rest = sum(counts[h] for h in rest)
    for h in rest:
        p[h] = r / n_rest
    return p


def split_bounds(n_h: int, share: Fraction) -> tuple[int, int]:
    x = n_h * share
    return math.floor(x), math.ceil(x)


def peer_arguments(modes: list[str]) -> argparse.ArgumentParser:
    """The command line every peer script takes (the first mode is the default)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True, choices=sorted(TASKS))
    ap.add_argument("--mode", default=modes[0], choices=modes)
    ap.add_argument("--members", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--out")
    ap.add_argument("--n", type=int)
    ap.add_argument("--threads", type=int, default=2)
    return ap
