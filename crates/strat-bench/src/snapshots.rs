//! `member_days.parquet`: daily snapshots of members, for the `as of` task
//! (T14, spec §4.5). One row per member per day they were a member, in day
//! order as a warehouse partitions them: members join on different days
//! (some before the first day), about a fifth leave, a third change plan on
//! one day, a day is missing now and then (3 %), and 0.5 % of member-days
//! were loaded twice (a correction, one hour and nine hours after the day),
//! so `ties by ingested_at` decides them. Deterministic: each member's life
//! comes from its own seeded stream, each member-day's accidents from a hash.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;

use crate::{Rng, country_cdf, country_code, member_id, pick};

const PLANS: [&str; 3] = ["basic", "standard", "premium"];
/// 2018-06-01 in days since 1970.
const AS_OF: i32 = 17_683;
/// Days after `AS_OF` the table also holds (the future an `as of` ignores).
const AFTER: i32 = 7;

/// One member's life in the table.
struct Life {
    id: i64,
    country: usize,
    plans: [usize; 2],
    /// The first day (index) on the second plan; past the end: never.
    change: i32,
    join: i32,
    leave: i32,
    tenure: i64,
    watch: f64,
}

fn life(i: u64, days: i32, cdf: &[f64]) -> Life {
    let mut r = Rng(0x5eed_0000 ^ i);
    let plan = |r: &mut Rng| {
        let p = r.unit();
        usize::from(p >= 0.5) + usize::from(p >= 0.85)
    };
    let country = pick(cdf, r.unit());
    let plans = [plan(&mut r), plan(&mut r)];
    let change = if r.unit() < 0.3 {
        r.below(days as u64) as i32
    } else {
        days
    };
    let join = r.below(days as u64 + 20) as i32 - 20;
    let leave = if r.unit() < 0.2 {
        join + r.below(days as u64) as i32
    } else {
        days
    };
    Life {
        id: member_id(i),
        country,
        plans,
        change,
        join,
        leave,
        tenure: (r.unit().powi(2) * 3000.0) as i64,
        watch: ((r.normal() * 1.1 + 2.0).exp() * 100.0).round() / 100.0,
    }
}

/// One day's rows, column by column.
#[derive(Default)]
struct Day<'a> {
    ids: Vec<i64>,
    dates: Vec<i32>,
    loaded: Vec<i64>,
    countries: Vec<&'a str>,
    plans: Vec<&'static str>,
    tenure: Vec<i64>,
    watch: Vec<f64>,
}

/// A member-day's own draw in [0, 1).
fn accident(i: u64, day: i32) -> f64 {
    Rng((i << 20) ^ day as u64 ^ 0xacc1_dead).unit()
}

/// Writes `out/member_days.parquet`: the first `members` members over the
/// `days` days up to 2018-06-01 and the 7 after it; returns the rows.
pub fn write(
    out: &Path,
    members: u64,
    days: i32,
    props: impl Fn() -> Option<parquet::file::properties::WriterProperties>,
) -> u64 {
    let cdf = country_cdf();
    let countries: Vec<String> = (0..crate::COUNTRIES).map(country_code).collect();
    let lives: Vec<Life> = (0..members).map(|i| life(i, days + AFTER, &cdf)).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        Field::new("snapshot_date", DataType::Date32, false),
        Field::new(
            "ingested_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("country", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
        Field::new("tenure_days", DataType::Int64, false),
        Field::new("watch_hours_28d", DataType::Float64, false),
    ]));
    let file =
        std::fs::File::create(out.join("member_days.parquet")).expect("create member_days.parquet");
    let mut writer = ArrowWriter::try_new(file, schema.clone(), props()).expect("parquet writer");
    let first = AS_OF - (days - 1);
    let mut rows = 0u64;
    for d in 0..days + AFTER {
        let date = first + d;
        let midnight = i64::from(date + 1) * 86_400_000_000;
        let mut cols = Day::default();
        for (i, l) in lives.iter().enumerate() {
            if d < l.join || d >= l.leave {
                continue;
            }
            let a = accident(i as u64, d);
            if a < 0.03 {
                continue;
            }
            let plan = PLANS[l.plans[usize::from(d >= l.change)]];
            let mut push = |hour: i64, plan: &'static str| {
                cols.ids.push(l.id);
                cols.dates.push(date);
                cols.loaded.push(midnight + hour * 3_600_000_000);
                cols.countries.push(countries[l.country].as_str());
                cols.plans.push(plan);
                cols.tenure.push(l.tenure + i64::from(d - l.join.max(0)));
                cols.watch.push(l.watch);
            };
            push(1, plan);
            if a > 0.995 {
                // A correction loaded later that day, sometimes of the plan.
                push(
                    9,
                    if a > 0.998 {
                        PLANS[(l.plans[0] + 1) % 3]
                    } else {
                        plan
                    },
                );
            }
        }
        rows += cols.ids.len() as u64;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(cols.ids)),
            Arc::new(Date32Array::from(cols.dates)),
            Arc::new(TimestampMicrosecondArray::from(cols.loaded)),
            Arc::new(StringArray::from(cols.countries)),
            Arc::new(StringArray::from(cols.plans)),
            Arc::new(Int64Array::from(cols.tenure)),
            Arc::new(Float64Array::from(cols.watch)),
        ];
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).expect("batch"))
            .expect("write member_days");
    }
    writer.close().expect("close member_days.parquet");
    rows
}
