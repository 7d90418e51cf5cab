//! strat-bench-gen: deterministic benchmark data (issue 6).
//!
//! `strat-bench-gen --members N [--events] --out DIR` writes `DIR/members.parquet`
//! (and `DIR/events.parquet`, 10–50 events per member). The same N gives the
//! same bytes on every machine: one seeded SplitMix64 stream, no threads.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

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
    const BIG: [&str; 12] = ["US", "BR", "GB", "DE", "FR", "MX", "CA", "IN", "JP", "ES", "IT", "AU"];
    BIG.get(i).map_or_else(|| format!("C{i:03}"), |s| s.to_string())
}

/// Zipf-like weights (s = 1.3): the smallest countries get < 50 rows at 10M.
fn country_cdf() -> Vec<f64> {
    let w: Vec<f64> = (1..=COUNTRIES).map(|k| 1.0 / (k as f64).powf(1.3)).collect();
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
struct Events<'a>(Vec<i64>, Vec<i64>, Vec<i64>, Vec<&'a str>, Vec<i64>, Vec<i64>);

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

/// The member ids: a bijective scramble of 0..n, so ids are not sequential.
fn member_id(i: u64) -> i64 {
    ((i.wrapping_mul(0x5851_f42d_4c95_7f2d) >> 8) % 1_000_000_000_000 + 1_000_000) as i64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let Some(n) = get("--members").and_then(|s| s.replace('_', "").parse::<u64>().ok()) else {
        eprintln!("usage: strat-bench-gen --members N [--events] --out DIR");
        std::process::exit(2);
    };
    let out = PathBuf::from(get("--out").unwrap_or_else(|| ".".into()));
    let events = args.iter().any(|a| a == "--events");
    std::fs::create_dir_all(&out).expect("create the output folder");
    let cdf = country_cdf();
    let countries: Vec<String> = (0..COUNTRIES).map(country_code).collect();
    let mut rng = Rng(20180601);
    let batch_rows = 1 << 17;
    let schema = members_schema();
    let file = std::fs::File::create(out.join("members.parquet")).expect("create members.parquet");
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None).expect("parquet writer");
    let ev_schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("member_id", DataType::Int64, false),
        Field::new("event_ts", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new("country", DataType::Utf8, false),
        Field::new("title_id", DataType::Int64, false),
        Field::new("watch_minutes", DataType::Int64, false),
    ]));
    let mut ev_writer = events.then(|| {
        let f = std::fs::File::create(out.join("events.parquet")).expect("create events.parquet");
        ArrowWriter::try_new(f, ev_schema.clone(), None).expect("parquet writer")
    });
    let mut event_id: i64 = 1;
    let as_of_days = 17_683; // 2018-06-01
    let mut start = 0;
    while start < n {
        let rows = batch_rows.min(n - start);
        let mut ids = Vec::with_capacity(rows as usize);
        let mut cs = Vec::with_capacity(rows as usize);
        let (mut plans, mut devices, mut tenure, mut signup, mut watch, mut kids, mut referral) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut ev = Events::default();
        for i in start..start + rows {
            let id = member_id(i);
            let c = pick(&cdf, rng.unit());
            let p = rng.unit();
            let t = (rng.unit().powi(2) * 3000.0) as i64;
            ids.push(id);
            cs.push(countries[c].as_str());
            plans.push(if p < 0.5 { "basic" } else if p < 0.85 { "standard" } else { "premium" });
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
            if events {
                for _ in 0..10 + rng.below(41) {
                    ev.0.push(event_id);
                    event_id += 1;
                    ev.1.push(id);
                    ev.2.push(1_519_862_400_000_000 + rng.below(92 * 86_400) as i64 * 1_000_000);
                    ev.3.push(countries[c].as_str());
                    ev.4.push(rng.below(50_000) as i64);
                    ev.5.push(1 + rng.below(180) as i64);
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
        writer.write(&RecordBatch::try_new(schema.clone(), columns).expect("batch")).expect("write members");
        if let Some(w) = ev_writer.as_mut() {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(std::mem::take(&mut ev.0))),
                Arc::new(Int64Array::from(std::mem::take(&mut ev.1))),
                Arc::new(TimestampMicrosecondArray::from(std::mem::take(&mut ev.2))),
                Arc::new(StringArray::from(std::mem::take(&mut ev.3))),
                Arc::new(Int64Array::from(std::mem::take(&mut ev.4))),
                Arc::new(Int64Array::from(std::mem::take(&mut ev.5))),
            ];
            w.write(&RecordBatch::try_new(ev_schema.clone(), columns).expect("batch")).expect("write events");
        }
        start += rows;
    }
    writer.close().expect("close members.parquet");
    if let Some(w) = ev_writer {
        w.close().expect("close events.parquet");
    }
    eprintln!("wrote {n} members{} to {}", if events { " and their events" } else { "" }, out.display());
}
