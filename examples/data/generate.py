#!/usr/bin/env python3
"""Generate the small, synthetic data files used by the example rule files.

    python3 examples/data/generate.py

Python 3.11+, standard library only. The output is deterministic: one
random.Random(20180601) drives every choice of the first four files below and a
second one, random.Random(20180501), every choice of member_days/ (added later,
so that the other files stayed as they were); nothing depends on the clock, the
working directory or hash randomisation, so running the script twice writes
byte-identical files (check with md5sum). Files are written next to this script:

    members.csv        ~6,000 members of a streaming service, as of 2018-06-01
    last_test_set.csv  300 member ids of an earlier holdout set
    events.csv         ~40,000 viewing events (2018-03-01 .. 2018-05-31) of ~2,000 members
    ratings.csv        ~8,000 explicit title ratings of ~1,500 members
    member_days/       daily snapshots of ~600 members, one file per day,
                       2018-05-01.csv .. 2018-06-10.csv (~22,000 rows in all)

member_days/ is for point-in-time selection (`as of`): members join (some
after 2018-06-01) and leave, change plan (some after 2018-06-01) or country,
tenure_days grows by one a day, a member is missing from a day now and then,
and a few rows were ingested twice for one snapshot_date (a correction, with a
later ingested_at and a changed value).

The data are made up; they only look plausible. CSV conventions: header row,
"\n" line ends, booleans `true`/`false`, an empty field is NULL, dates
YYYY-MM-DD and timestamps YYYY-MM-DDTHH:MM:SS (both inferred as date /
timestamp by DataFusion's CSV reader), floats always with two decimals.
"""

from __future__ import annotations

import csv
import math
import random
from datetime import date, datetime, timedelta
from pathlib import Path

SEED = 20180601
AS_OF = date(2018, 6, 1)
MAX_TENURE = 3000
N_EVENT_MEMBERS = 2000
N_RATING_MEMBERS = 1500
N_HOLDOUT = 300
EVENT_WINDOW_START = datetime(2018, 3, 1)
EVENT_WINDOW_END = datetime(2018, 6, 1)  # exclusive
RATING_WINDOW_START = date(2017, 6, 1)

OUT_DIR = Path(__file__).resolve().parent

# Members per country: Zipf-like, the US about 30 %, a long tail of small
# markets, four of them with fewer than 15 members (IE, FI, IS, LU) so that
# the examples have tiny strata to deal with. Sums to 6,000.
COUNTRY_COUNTS = [
    ("US", 1800), ("BR", 700), ("GB", 520), ("CA", 400), ("DE", 360),
    ("FR", 320), ("MX", 290), ("JP", 250), ("AU", 210), ("ES", 180),
    ("IT", 160), ("NL", 133), ("SE", 110), ("KR", 100), ("IN", 90),
    ("AR", 80), ("PL", 70), ("CO", 60), ("NO", 50), ("DK", 40),
    ("BE", 35), ("IE", 14), ("FI", 12), ("IS", 9), ("LU", 7),
]
PLANS = (["basic", "standard", "premium"], [50, 35, 15])
DEVICES = (["tv", "mobile", "web", "tablet"], [42, 30, 18, 10])
REFERRALS = ["organic_search", "friend_referral", "tv_ad", "social",
             "partner_bundle", "app_store"]
REFERRAL_WEIGHTS = [30, 22, 15, 15, 10, 8]
GENRES = ["drama", "comedy", "action", "documentary", "kids", "horror"]
GENRE_WEIGHTS = [30, 25, 15, 10, 12, 8]
GENRE_RATING_SHIFT = {"drama": 0.1, "comedy": 0.0, "action": -0.1,
                      "documentary": 0.35, "kids": 0.2, "horror": -0.4}
N_TITLES = 1200


def write_csv(name: str, header: list[str], rows: list[list]) -> int:
    path = OUT_DIR / name
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow(["" if v is None else v for v in row])
    return len(rows)


def fmt_bool(b: bool) -> str:
    return "true" if b else "false"


def fmt_ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def make_members(rng: random.Random) -> list[dict]:
    countries = [c for c, n in COUNTRY_COUNTS for _ in range(n)]
    assert len(countries) == 6000
    rng.shuffle(countries)
    # Unique 6-7 digit ids that do not look sequential.
    ids = rng.sample(range(100_000, 10_000_000), len(countries))
    members = []
    for member_id, country in zip(ids, countries):
        plan = rng.choices(*PLANS)[0]
        device = rng.choices(*DEVICES)[0]
        # Tenure: many recent sign-ups, a long tail of old members.
        while True:
            tenure = int(rng.expovariate(1 / 700))
            if tenure <= MAX_TENURE:
                break
        signup = AS_OF - timedelta(days=tenure)
        if rng.random() < 0.03:
            hours = 0.0  # signed up but did not watch in the last 28 days
        else:
            factor = {"basic": 0.85, "standard": 1.0, "premium": 1.3}[plan]
            hours = min(400.0, rng.lognormvariate(math.log(14), 0.95) * factor)
        kids = rng.random() < 0.08
        referral = None if rng.random() < 0.20 else rng.choices(REFERRALS, REFERRAL_WEIGHTS)[0]
        members.append({
            "member_id": member_id, "country": country, "plan": plan,
            "device": device, "tenure_days": tenure, "signup_date": signup,
            "watch_hours_28d": hours, "is_kids_profile": kids,
            "referral_source": referral,
        })
    return members


def make_titles(rng: random.Random) -> list[dict]:
    ids = sorted(rng.sample(range(10_000, 100_000), N_TITLES))
    titles = []
    for rank, title_id in enumerate(rng.sample(ids, len(ids)), start=1):
        titles.append({
            "title_id": title_id,
            "genre": rng.choices(GENRES, GENRE_WEIGHTS)[0],
            "popularity": 1.0 / rank ** 0.9,  # Zipf-like popularity
            "quality": rng.gauss(0.0, 0.5),
        })
    return titles


def pick_title(rng: random.Random, titles, weights, kids_titles, kids_weights, is_kids: bool):
    if is_kids and rng.random() < 0.9:
        return rng.choices(kids_titles, kids_weights)[0]
    return rng.choices(titles, weights)[0]


def make_events(rng: random.Random, members: list[dict], titles: list[dict]) -> list[list]:
    # Members who could have watched something in the window.
    pool = [m for m in members if m["signup_date"] <= date(2018, 5, 24)]
    chosen = rng.sample(pool, N_EVENT_MEMBERS)
    country_names = [c for c, _ in COUNTRY_COUNTS]
    country_weights = [n for _, n in COUNTRY_COUNTS]
    weights = [t["popularity"] for t in titles]
    kids_titles = [t for t in titles if t["genre"] == "kids"]
    kids_weights = [t["popularity"] for t in kids_titles]

    raw = []  # (ts, member_id, country, title_id, minutes, device)
    for m in chosen:
        n = max(1, min(400, round(rng.lognormvariate(math.log(12), 1.0))))
        start = max(EVENT_WINDOW_START, datetime.combine(m["signup_date"], datetime.min.time()))
        span = int((EVENT_WINDOW_END - start).total_seconds())
        stamps = []
        for _ in range(n):
            day = rng.randrange(span // 86400)
            # Evening-heavy time of day.
            hour = min(23, max(0, int(rng.gauss(20.0, 3.0)))) if rng.random() < 0.8 else rng.randrange(24)
            stamps.append(start + timedelta(days=day, hours=hour,
                                            minutes=rng.randrange(60), seconds=rng.randrange(60)))
        stamps.sort()
        countries = [m["country"]] * n
        if n >= 2 and rng.random() < 0.03:
            # Moved once: the later events come from another country.
            while True:
                new_country = rng.choices(country_names, country_weights)[0]
                if new_country != m["country"]:
                    break
            cut = rng.randrange(1, n)
            countries[cut:] = [new_country] * (n - cut)
        for ts, country in zip(stamps, countries):
            title = pick_title(rng, titles, weights, kids_titles, kids_weights, m["is_kids_profile"])
            if rng.random() < 0.18:
                minutes = rng.randint(1, 9)  # sampled a few minutes and left
            else:
                minutes = max(1, min(240, round(rng.lognormvariate(math.log(42), 0.6))))
            device = m["device"] if rng.random() < 0.7 else rng.choices(*DEVICES)[0]
            raw.append((ts, m["member_id"], country, title["title_id"], minutes, device))

    raw.sort(key=lambda e: (e[0], e[1], e[3]))
    rows = []
    event_id = 7_100_000
    for ts, member_id, country, title_id, minutes, device in raw:
        event_id += rng.randint(1, 3)
        rows.append([event_id, member_id, fmt_ts(ts), country, title_id, minutes, device])
    return rows


def make_ratings(rng: random.Random, members: list[dict], titles: list[dict]) -> list[list]:
    pool = [m for m in members if m["signup_date"] <= date(2018, 5, 20)]
    chosen = rng.sample(pool, N_RATING_MEMBERS)
    weights = [t["popularity"] for t in titles]
    kids_titles = [t for t in titles if t["genre"] == "kids"]
    kids_weights = [t["popularity"] for t in kids_titles]
    end = date(2018, 5, 31)
    rows = []
    for m in chosen:
        n = min(60, 1 + int(rng.expovariate(1 / 4.8)))
        bias = rng.gauss(0.0, 0.6)  # harsh or generous rater
        first = max(RATING_WINDOW_START, m["signup_date"])
        days = (end - first).days + 1
        seen: dict[int, bool] = {}
        attempts = 0
        while len(seen) < n and attempts < 10 * n:
            attempts += 1
            t = pick_title(rng, titles, weights, kids_titles, kids_weights, m["is_kids_profile"])
            if t["title_id"] in seen:
                continue
            seen[t["title_id"]] = True
            score = 3.7 + bias + t["quality"] + GENRE_RATING_SHIFT[t["genre"]] + rng.gauss(0.0, 0.8)
            rating = max(1, min(5, math.floor(score + 0.5)))
            rated_at = first + timedelta(days=rng.randrange(days))
            rows.append([m["member_id"], t["title_id"], rating, t["genre"], rated_at.isoformat()])
    rows.sort(key=lambda r: (r[4], r[0], r[1]))
    return rows


# Daily member snapshots (member_days/). One file per snapshot day; a member
# has one row a day from the day they join to the day they leave, except for
# gaps and corrections.
MEMBER_DAYS_SEED = 20180501
MEMBER_DAYS_FIRST = date(2018, 5, 1)
MEMBER_DAYS_LAST = date(2018, 6, 10)     # days after 2018-06-01: the future of `as of`
MEMBER_DAYS_HEADER = ["member_id", "snapshot_date", "ingested_at", "country", "plan",
                      "tenure_days", "watch_hours_28d"]
# About 600 members, the US about 35 %, two markets (IS, LU) under 15 members.
MEMBER_DAYS_COUNTRIES = [
    ("US", 212), ("BR", 92), ("GB", 82), ("DE", 70), ("FR", 64), ("JP", 64),
    ("IS", 9), ("LU", 7),
]
# Re-ingested rows: (snapshot day, what the first ingest got wrong). Those on
# 2018-06-01 and 2018-05-15 fall on the state day of `as of` at those dates.
MEMBER_DAYS_CORRECTIONS = [
    (date(2018, 6, 1), "hours"), (date(2018, 6, 1), "hours"), (date(2018, 6, 1), "plan"),
    (date(2018, 5, 15), "hours"), (date(2018, 5, 15), "plan"),
    (date(2018, 5, 4), "hours"), (date(2018, 5, 22), "hours"), (date(2018, 6, 6), "plan"),
]


def make_member_days(rng: random.Random) -> dict[date, list[list]]:
    first, last = MEMBER_DAYS_FIRST, MEMBER_DAYS_LAST
    days = [first + timedelta(days=d) for d in range((last - first).days + 1)]
    hours_from = first - timedelta(days=27)  # watch_hours_28d of day d sums d-27 .. d
    country_names = [c for c, _ in MEMBER_DAYS_COUNTRIES]
    country_weights = [n for _, n in MEMBER_DAYS_COUNTRIES]
    countries = [c for c, n in MEMBER_DAYS_COUNTRIES for _ in range(n)]
    rng.shuffle(countries)

    members = []
    for country in countries:
        r = rng.random()
        if r < 0.07:    # joined after the first snapshot: May 2 .. June 1
            joined = first + timedelta(days=rng.randrange(1, 32))
        elif r < 0.10:  # joined after June 1
            joined = date(2018, 6, 2) + timedelta(days=rng.randrange(9))
        else:           # a member before the first snapshot
            while True:
                tenure = int(rng.expovariate(1 / 600))
                if tenure <= MAX_TENURE:
                    break
            joined = first - timedelta(days=tenure)
        r = rng.random()
        if r < 0.02 and joined < first:  # left before May 3: no row in June 1's 30 days
            left = first + timedelta(days=rng.randrange(2))
        elif r < 0.10:                   # left some day after joining
            start = max(joined, first)
            left = start + timedelta(days=rng.randrange((last - start).days + 1))
        else:
            left = None
        plan = rng.choices(*PLANS)[0]
        plan_change = None
        if rng.random() < 0.05:  # upgrade or downgrade once, on any day or (30 %) after June 1
            start = max(joined, first) + timedelta(days=1)
            end = left or last
            if rng.random() < 0.3:
                start = max(start, date(2018, 6, 2))
            if start <= end:
                new_plan = rng.choice([p for p in PLANS[0] if p != plan])
                plan_change = (start + timedelta(days=rng.randrange((end - start).days + 1)), new_plan)
        move = None
        if rng.random() < 0.012:  # moved to another country
            start = max(joined, first) + timedelta(days=1)
            end = left or last
            if start <= end:
                while True:
                    to = rng.choices(country_names, country_weights)[0]
                    if to != country:
                        break
                move = (start + timedelta(days=rng.randrange((end - start).days + 1)), to)
        # Hours watched a day: a personal rate, watched on about 45 % of days;
        # a few members stop watching altogether from some day on.
        factor = {"basic": 0.85, "standard": 1.0, "premium": 1.3}[plan]
        rate = rng.lognormvariate(math.log(14 / 28), 0.9) * factor
        dormant = (hours_from + timedelta(days=rng.randrange(64))) if rng.random() < 0.04 else None
        daily = []
        for d in range((last - hours_from).days + 1):
            day = hours_from + timedelta(days=d)
            watched = rng.random() < 0.45
            h = rate / 0.45 * rng.expovariate(1.0) if watched else 0.0
            if day < joined or (dormant is not None and day >= dormant):
                h = 0.0
            daily.append(min(h, 16.0))
        members.append({"joined": joined, "left": left, "country": country, "plan": plan,
                        "plan_change": plan_change, "move": move, "daily": daily})

    # Ids in order of joining, with gaps.
    members.sort(key=lambda m: m["joined"])
    member_id = 100_000
    for m in members:
        member_id += rng.randint(1, 3)
        m["member_id"] = member_id

    out: dict[date, list[list]] = {}
    for day in days:
        ingested = datetime.combine(day + timedelta(days=1), datetime.min.time()) + timedelta(
            hours=2, minutes=rng.randrange(50), seconds=rng.randrange(60))
        rows = []
        for m in members:
            if day < m["joined"] or (m["left"] is not None and day > m["left"]):
                continue
            if rng.random() < 0.012:  # missing from this day's snapshot
                continue
            plan, country = m["plan"], m["country"]
            if m["plan_change"] and day >= m["plan_change"][0]:
                plan = m["plan_change"][1]
            if m["move"] and day >= m["move"][0]:
                country = m["move"][1]
            end = (day - hours_from).days
            hours = sum(m["daily"][end - 27:end + 1])
            rows.append([m["member_id"], day.isoformat(), fmt_ts(ingested), country, plan,
                         (day - m["joined"]).days, f"{hours:.2f}"])
        out[day] = rows

    # Corrections: the row as first ingested is wrong; a second row for the
    # same member and snapshot_date, ingested later the same day (or the next),
    # has the right value. Both are in the day's file, the correction last.
    corrected: set[tuple[date, int]] = set()
    for day, what in MEMBER_DAYS_CORRECTIONS:
        rows = out[day]
        while True:
            i = rng.randrange(len(rows))
            if (day, rows[i][0]) not in corrected and float(rows[i][6]) > 0:
                break
        corrected.add((day, rows[i][0]))
        right = rows[i]
        wrong = list(right)
        if what == "hours":  # the first ingest missed part of the window
            wrong[6] = f"{float(right[6]) * rng.uniform(0.3, 0.9):.2f}"
        else:                # the first ingest had a wrong plan
            wrong[4] = rng.choice([p for p in PLANS[0] if p != right[4]])
        again = datetime.fromisoformat(right[2]) + timedelta(
            hours=rng.randrange(6, 30), minutes=rng.randrange(60), seconds=rng.randrange(60))
        fixed = list(right)
        fixed[2] = fmt_ts(again)
        rows[i] = wrong
        rows.append(fixed)
    return out


def main() -> None:
    rng = random.Random(SEED)
    members = make_members(rng)
    titles = make_titles(rng)

    n = write_csv(
        "members.csv",
        ["member_id", "country", "plan", "device", "tenure_days", "signup_date",
         "watch_hours_28d", "is_kids_profile", "referral_source"],
        [[m["member_id"], m["country"], m["plan"], m["device"], m["tenure_days"],
          m["signup_date"].isoformat(), f"{m['watch_hours_28d']:.2f}",
          fmt_bool(m["is_kids_profile"]), m["referral_source"]] for m in members],
    )
    print(f"members.csv        {n:>6} rows")

    holdout = sorted(m["member_id"] for m in rng.sample(members, N_HOLDOUT))
    n = write_csv("last_test_set.csv", ["member_id"], [[i] for i in holdout])
    print(f"last_test_set.csv  {n:>6} rows")

    n = write_csv(
        "events.csv",
        ["event_id", "member_id", "event_ts", "country", "title_id", "watch_minutes", "device"],
        make_events(rng, members, titles),
    )
    print(f"events.csv         {n:>6} rows")

    n = write_csv(
        "ratings.csv",
        ["member_id", "title_id", "rating", "genre", "rated_at"],
        make_ratings(rng, members, titles),
    )
    print(f"ratings.csv        {n:>6} rows")

    # Its own generator: the files above do not depend on this one.
    days = make_member_days(random.Random(MEMBER_DAYS_SEED))
    folder = OUT_DIR / "member_days"
    folder.mkdir(exist_ok=True)
    n = 0
    for day, rows in days.items():
        n += write_csv(f"member_days/{day.isoformat()}.csv", MEMBER_DAYS_HEADER, rows)
    print(f"member_days/       {n:>6} rows in {len(days)} files")


if __name__ == "__main__":
    main()
