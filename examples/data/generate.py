#!/usr/bin/env python3
"""Generate the small, synthetic data files used by the example rule files.

    python3 examples/data/generate.py

Python 3.11+, standard library only. The output is deterministic: one
random.Random(20180601) drives every choice, nothing depends on the clock, the
working directory or hash randomisation, so running the script twice writes
byte-identical files (check with md5sum). Files are written next to this script:

    members.csv        ~6,000 members of a streaming service, as of 2018-06-01
    last_test_set.csv  300 member ids of an earlier holdout set
    events.csv         ~40,000 viewing events (2018-03-01 .. 2018-05-31) of ~2,000 members
    ratings.csv        ~8,000 explicit title ratings of ~1,500 members

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


if __name__ == "__main__":
    main()
