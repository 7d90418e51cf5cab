//! strat-bench-gen: deterministic benchmark data (issue 6).
//!
//! `strat-bench-gen --members N [--events] [--event-members M] [--days D
//! [--day-members K]] --out DIR` writes `DIR/members.parquet` (and, with
//! `--events`, `DIR/events.parquet`: 10–50 events for each of the first M
//! members, all of them by default; with `--days`, `DIR/member_days.parquet`:
//! daily snapshots of the first K members (all by default) over the D days up
//! to 2018-06-01 and the week after, [`snapshots`]). The same arguments
//! give the same bytes on every machine: seeded SplitMix64 streams, no threads.
//!
//! Member i's columns come from a fixed number of draws of the members stream, and
//! events from a stream of their own, so the members table of N rows is the first
//! N rows of any larger one, with or without events.

// A command-line tool: its usage and progress go to stderr.
#![allow(clippy::print_stderr)]

mod snapshots;

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// SplitMix64: small, fast and fully specified, so the data never changes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn normal(&mut self) -> f64 {
        // Box–Muller.
        let (u, v) = (self.unit().max(f64::MIN_POSITIVE), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

const COUNTRIES: usize = 190;

/// Country codes "C000".."C189" except the biggest ones, which get real codes.
fn country_code(i: usize) -> String {
    const BIG: [&str; 12] = [
        "US", "BR", "GB", "DE", "FR", "MX", "CA", "IN", "JP", "ES", "IT", "AU",
    ];
    BIG.get(i)
        .map_or_else(|| format!("C{i:03}"), |s| s.to_string())
}

/// Zipf-like weights with an exponential cut-off, `k^-1.2 · e^(-k/35)` for the
/// k-th largest country: the largest holds ~35 % of members, the next ones
/// 15 %, 9 %, 6 %, …, and the smallest ~3 per million, so at 10M rows about 16
/// countries have fewer than 50 members (and at 1M a few may have none).
fn country_cdf() -> Vec<f64> {
    let w: Vec<f64> = (1..=COUNTRIES)
        .map(|k| (k as f64).powf(-1.2) * (-(k as f64) / 35.0).exp())
        .collect();
    let total: f64 = w.iter().sum();
    let mut acc = 0.0;
    w.iter()
        .map(|x| {
            acc += x / total;
            acc
        })
        .collect()
}

fn pick(cdf: &[f64], u: f64) -> usize {
    cdf.partition_point(|&c| c < u).min(cdf.len() - 1)
}

/// The events of one batch of members, column by column.
#[derive(Default)]
struct Events<'a>(
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<&'a str>,
    Vec<i64>,
    Vec<i64>,
);

fn members_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("plan", DataType::Utf8, false),
        Field::new("device", DataType::Utf8, false),
        Field::new("tenure_days", DataType::Int64, false),
        Field::new("signup_date", DataType::Date32, false),
        Field::new("watch_hours_28d", DataType::Float64, false),
        Field::new("is_kids_profile", DataType::Boolean, false),
        Field::new("referral_source", DataType::Utf8, true),
    ]))
}

/// The member ids: a bijection of [0, 2^40) (odd multiplications and xor-shifts
/// modulo 2^40), so ids are unique but neither sequential nor sorted.
fn member_id(i: u64) -> i64 {
    const MASK: u64 = (1 << 40) - 1;
    assert!(i <= MASK, "at most 2^40 members");
    let mut x = i.wrapping_mul(0x5851_f42d_4c95_7f2d) & MASK;
    x ^= x >> 17;
    x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15) & MASK;
    x ^= x >> 21;
    (x + 1_000_000) as i64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let count = |flag: &str| get(flag).and_then(|s| s.replace('_', "").parse::<u64>().ok());
    let Some(n) = count("--members") else {
        eprintln!("usage: strat-bench-gen --members N [--events] [--event-members M] --out DIR");
        std::process::exit(2);
    };
    let out = PathBuf::from(get("--out").unwrap_or_else(|| ".".into()));
    let events = args.iter().any(|a| a == "--events");
    // Events for the first `event_members` members only (all of them by default).
    let event_members = if events {
        count("--event-members").unwrap_or(n).min(n)
    } else {
        0
    };
    std::fs::create_dir_all(&out).expect("create the output folder");
    let cdf = country_cdf();
    let countries: Vec<String> = (0..COUNTRIES).map(country_code).collect();
    let mut rng = Rng(20180601);
    let mut ev_rng = Rng(20180602);
    let batch_rows = 1 << 17;
    let schema = members_schema();
    // Snappy, dictionary pages and 1M-row row groups: what a data lake holds.
    let props = || {
        Some(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build(),
        )
    };
    let file = std::fs::File::create(out.join("members.parquet")).expect("create members.parquet");
    let mut writer = ArrowWriter::try_new(file, schema.clone(), props()).expect("parquet writer");
    let ev_schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("member_id", DataType::Int64, false),
        Field::new(
            "event_ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("country", DataType::Utf8, false),
        Field::new("title_id", DataType::Int64, false),
        Field::new("watch_minutes", DataType::Int64, false),
    ]));
    let mut ev_writer = events.then(|| {
        let f = std::fs::File::create(out.join("events.parquet")).expect("create events.parquet");
        ArrowWriter::try_new(f, ev_schema.clone(), props()).expect("parquet writer")
    });
    let mut event_id: i64 = 1;
    let as_of_days = 17_683; // 2018-06-01
    let mut start = 0;
    while start < n {
        let rows = batch_rows.min(n - start);
        let mut ids = Vec::with_capacity(rows as usize);
        let mut cs = Vec::with_capacity(rows as usize);
        let (mut plans, mut devices, mut tenure, mut signup, mut watch, mut kids, mut referral) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let mut ev = Events::default();
        for i in start..start + rows {
            let id = member_id(i);
            let c = pick(&cdf, rng.unit());
            let p = rng.unit();
            let t = (rng.unit().powi(2) * 3000.0) as i64;
            ids.push(id);
            cs.push(countries[c].as_str());
            plans.push(if p < 0.5 {
                "basic"
            } else if p < 0.85 {
                "standard"
            } else {
                "premium"
            });
            devices.push(["tv", "mobile", "web", "tablet"][rng.below(4) as usize]);
            tenure.push(t);
            signup.push(as_of_days - t as i32);
            watch.push(((rng.normal() * 1.1 + 2.0).exp() * 100.0).round() / 100.0);
            kids.push(rng.unit() < 0.08);
            referral.push(match rng.below(5) {
                0 => None,
                1 => Some("organic_search"),
                2 => Some("friend"),
                3 => Some("ad"),
                _ => Some("partner"),
            });
            if i < event_members {
                for _ in 0..10 + ev_rng.below(41) {
                    ev.0.push(event_id);
                    event_id += 1;
                    ev.1.push(id);
                    ev.2.push(1_519_862_400_000_000 + ev_rng.below(92 * 86_400) as i64 * 1_000_000);
                    ev.3.push(countries[c].as_str());
                    ev.4.push(ev_rng.below(50_000) as i64);
                    ev.5.push(1 + ev_rng.below(180) as i64);
                }
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(cs)),
            Arc::new(StringArray::from(plans)),
            Arc::new(StringArray::from(devices)),
            Arc::new(Int64Array::from(tenure)),
            Arc::new(Date32Array::from(signup)),
            Arc::new(Float64Array::from(watch)),
            Arc::new(BooleanArray::from(kids)),
            Arc::new(StringArray::from(referral)),
        ];
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).expect("batch"))
            .expect("write members");
        if let Some(w) = ev_writer.as_mut() {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(std::mem::take(&mut ev.0))),
                Arc::new(Int64Array::from(std::mem::take(&mut ev.1))),
                Arc::new(TimestampMicrosecondArray::from(std::mem::take(&mut ev.2))),
                Arc::new(StringArray::from(std::mem::take(&mut ev.3))),
                Arc::new(Int64Array::from(std::mem::take(&mut ev.4))),
                Arc::new(Int64Array::from(std::mem::take(&mut ev.5))),
            ];
            w.write(&RecordBatch::try_new(ev_schema.clone(), columns).expect("batch"))
                .expect("write events");
        }
        start += rows;
    }
    writer.close().expect("close members.parquet");
    if let Some(days) = count("--days") {
        let k = count("--day-members").unwrap_or(n).min(n);
        let rows = snapshots::write(&out, k, days as i32, props);
        eprintln!("wrote {rows} daily snapshots of {k} members over {days} days and 7 after");
    }
    if let Some(w) = ev_writer {
        w.close().expect("close events.parquet");
    }
    let what = if events {
        format!(" and {} events of {event_members} of them", event_id - 1)
    } else {
        String::new()
    };
    eprintln!("wrote {n} members{what} to {}", out.display());
}
