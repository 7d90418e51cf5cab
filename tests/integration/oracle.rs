//! A deliberately simple implementation of the contract (docs/spec.md) for
//! the common forms, written from the spec alone and sharing no code with the
//! engine: the reference strat's one plan is compared with, beside the SQL
//! engines (tests/engines).
//!
//! It reads a small CSV whose fields are already canonical key texts
//! (integers in canonical decimal, floats as Rust's Display writes them,
//! strings, empty for NULL), holds every row, and follows the spec step by
//! step: units and their draws (§6), strata in stratum order (§5.3),
//! largest-remainder proportional allocation (§5.2–5.3), Bernoulli
//! thresholds (§5.4, §6.4), split boundaries (§4.2), weights and generated
//! columns (§7.2), row order (§7.3). Its strata are string columns; it has no
//! `where`, rules, bounds other than `take all … max`, unit filters or
//! aggregates (those forms are checked against the SQL engines).

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use md5::{Digest, Md5};

/// What a case asks for; [`Case::rule`] writes it as a rule file statement.
pub struct Case {
    pub unit: Option<&'static str>,
    pub strata: &'static [&'static str],
    pub form: Form,
    pub seed: u64,
}

pub enum Form {
    /// `take n` (proportional).
    Take(u64),
    /// `take all allocate equal max k per stratum`.
    TakeAllMax(u64),
    /// `take about P%`, P given in percent.
    About(u64),
    /// `into NAME P%, …` (exact), or `into about …`.
    Split(&'static [(&'static str, u64)], bool),
    /// `into K folds`.
    Folds(u64),
}

impl Case {
    /// The statement over table `m`, its output every source column and the
    /// generated columns.
    pub fn rule(&self, columns: &[String]) -> String {
        let verb = match self.form {
            Form::Split(..) | Form::Folds(_) => "split",
            _ => "sample",
        };
        let mut s = format!("{verb} m");
        if let Some(u) = self.unit {
            s += &format!(" unit {u}");
        }
        if !self.strata.is_empty() {
            s += &format!(" stratify by {}", self.strata.join(", "));
        }
        s += &match &self.form {
            Form::Take(n) => format!(" take {n}"),
            Form::TakeAllMax(k) => format!(" take all allocate equal max {k} per stratum"),
            Form::About(p) => format!(" take about {p}%"),
            Form::Split(parts, about) => {
                let parts: Vec<String> = parts.iter().map(|(n, p)| format!("{n} {p}%")).collect();
                format!(
                    " into {}{}",
                    if *about { "about " } else { "" },
                    parts.join(", ")
                )
            }
            Form::Folds(k) => format!(" into {k} folds"),
        };
        let mut output = columns.to_vec();
        output.extend(["_weight".into(), "_stratum".into()]);
        if verb == "split" {
            output.push("_split".into());
        }
        s + &format!(" seed {} output {}", self.seed, output.join(", "))
    }
}

/// One output row: the source fields, `_weight`, `_stratum`, `_split`.
#[derive(Debug, PartialEq)]
pub struct Row {
    pub fields: Vec<Option<String>>,
    pub weight: f64,
    pub stratum: String,
    pub split: Option<String>,
}

/// A CSV of simple fields (no quotes): its header and rows, empty as NULL.
pub fn read_csv(text: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(String::from)
        .collect();
    let rows = lines
        .map(|l| {
            l.split(',')
                .map(|f| (!f.is_empty()).then(|| f.to_string()))
                .collect()
        })
        .collect();
    (header, rows)
}

/// §6.2: the first 16 hex digits of md5("D:k"), as an integer.
fn draw(seed: u64, key: &str) -> u64 {
    let digest = Md5::digest(format!("{seed}:{key}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// §6.3: the first 8 hex digits of md5("D:s"), as an integer U (u_h = U / 2^32).
fn start(seed: u64, stratum: &str) -> u64 {
    let digest = Md5::digest(format!("{seed}:{stratum}").as_bytes());
    u64::from(u32::from_be_bytes(digest[..4].try_into().expect("4 bytes")))
}

/// §6.1: a row's key, its fields joined by U+001F, NULL `\N`, escapes.
fn row_key(row: &[Option<String>]) -> String {
    let field = |f: &Option<String>| match f {
        None => "\\N".to_string(),
        Some(s) => s.replace('\\', "\\\\").replace('\u{1f}', "\\u001f"),
    };
    row.iter().map(field).collect::<Vec<_>>().join("\u{1f}")
}

/// §7.2: `_stratum`, the values joined by `/`, escaped, NULL `∅`.
fn stratum_text(values: &[Option<String>]) -> String {
    let value = |v: &Option<String>| match v {
        None => "∅".to_string(),
        Some(s) => s
            .replace('\\', "\\\\")
            .replace('/', "\\/")
            .replace('∅', "\\∅"),
    };
    values.iter().map(value).collect::<Vec<_>>().join("/")
}

struct Unit {
    key: String,
    r: u64,
    rows: Vec<usize>,
}

struct Stratum {
    text: String,
    /// Units in draw order, ascending by (r, key).
    units: Vec<Unit>,
}

/// The sample or split `case` asks for, in output order.
pub fn run(case: &Case, header: &[String], rows: &[Vec<Option<String>>]) -> Vec<Row> {
    let strata = strata(case, header, rows);
    let parts = parts(case);
    // (part, stratum, unit, weight) in output order.
    let mut chosen: Vec<(usize, usize, usize, f64)> = Vec::new();
    match &case.form {
        Form::Take(_) | Form::TakeAllMax(_) => {
            let sizes = exact_sizes(case, &strata);
            for (h, (s, &n)) in strata.iter().zip(&sizes).enumerate() {
                let weight = s.units.len() as f64 / n as f64;
                chosen.extend((0..n as usize).map(|u| (0, h, u, weight)));
            }
        }
        Form::About(p) => {
            let t = (u128::from(*p) << 64) / 100;
            for (h, s) in strata.iter().enumerate() {
                let kept = s
                    .units
                    .iter()
                    .enumerate()
                    .filter(|(_, u)| u128::from(u.r) < t);
                chosen.extend(kept.map(|(u, _)| (0, h, u, 100.0 / *p as f64)));
            }
        }
        Form::Split(_, true) => {
            for (h, s) in strata.iter().enumerate() {
                for (u, unit) in s.units.iter().enumerate() {
                    chosen.push((about_part(&parts, unit.r), h, u, 1.0));
                }
            }
        }
        Form::Split(_, false) | Form::Folds(_) => {
            for (h, s) in strata.iter().enumerate() {
                let bounds = boundaries(&parts, s.units.len() as u64, start(case.seed, &s.text));
                for (i, w) in bounds.windows(2).enumerate() {
                    chosen.extend((w[0]..w[1]).map(|u| (i, h, u as usize, 1.0)));
                }
            }
        }
    }
    // §7.3: by split, stratum, draw; a unit's rows by row key.
    chosen.sort_by_key(|&(part, h, u, _)| (part, h, u));
    let split = |i: usize| {
        matches!(case.form, Form::Split(..) | Form::Folds(_)).then(|| parts[i].0.clone())
    };
    let mut out = Vec::new();
    for (part, h, u, weight) in chosen {
        let s = &strata[h];
        let mut unit_rows: Vec<&Vec<Option<String>>> =
            s.units[u].rows.iter().map(|&r| &rows[r]).collect();
        unit_rows.sort_by_key(|r| row_key(r));
        out.extend(unit_rows.into_iter().map(|r| Row {
            fields: r.clone(),
            weight,
            stratum: s.text.clone(),
            split: split(part),
        }));
    }
    out
}

/// The eligible units (a NULL unit is not one), by stratum in stratum order.
fn strata(case: &Case, header: &[String], rows: &[Vec<Option<String>>]) -> Vec<Stratum> {
    let index = |name: &str| header.iter().position(|h| h == name).expect("a column");
    let unit = case.unit.map(index);
    let strata: Vec<usize> = case.strata.iter().map(|s| index(s)).collect();
    // Stratum values (strings by bytes, NULL first: Option's order) → key → rows.
    let mut by: BTreeMap<Vec<Option<String>>, BTreeMap<String, Vec<usize>>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let key = match unit {
            Some(u) => match &row[u] {
                Some(k) => k.clone(),
                None => continue,
            },
            None => row_key(row),
        };
        let values = strata.iter().map(|&c| row[c].clone()).collect();
        by.entry(values)
            .or_default()
            .entry(key)
            .or_default()
            .push(i);
    }
    by.into_iter()
        .map(|(values, units)| {
            let mut units: Vec<Unit> = units
                .into_iter()
                .map(|(key, rows)| Unit {
                    r: draw(case.seed, &key),
                    key,
                    rows,
                })
                .collect();
            units.sort_by(|a, b| (a.r, a.key.as_bytes()).cmp(&(b.r, b.key.as_bytes())));
            Stratum {
                text: stratum_text(&values),
                units,
            }
        })
        .collect()
}

/// n_h of an exact sample: `take all … max k` keeps min(k, N_h); `take n`
/// rounds n·N_h/N by largest remainder, ties to the smaller u_h, then to
/// the stratum first in order.
fn exact_sizes(case: &Case, strata: &[Stratum]) -> Vec<u64> {
    let sizes: Vec<u64> = strata.iter().map(|s| s.units.len() as u64).collect();
    let n = match case.form {
        Form::TakeAllMax(k) => return sizes.iter().map(|&s| s.min(k)).collect(),
        Form::Take(n) => n,
        _ => unreachable!("an exact sample"),
    };
    let total: u64 = sizes.iter().sum();
    let mut out: Vec<u64> = sizes.iter().map(|&s| n * s / total).collect();
    let left = n - out.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..strata.len()).collect();
    // Remainders n·N_h mod N share the denominator N: compare them as integers.
    order.sort_by_key(|&h| {
        let remainder = n * sizes[h] % total;
        (
            std::cmp::Reverse(remainder),
            start(case.seed, &strata[h].text),
            h,
        )
    });
    for &h in order.iter().take(left as usize) {
        out[h] += 1;
    }
    out
}

/// The parts of a split: names and shares as (numerator, denominator).
fn parts(case: &Case) -> Vec<(String, u64, u64)> {
    match &case.form {
        Form::Split(parts, _) => parts
            .iter()
            .map(|(n, p)| (n.to_string(), *p, 100))
            .collect(),
        Form::Folds(k) => (1..=*k).map(|i| (format!("fold_{i}"), 1, *k)).collect(),
        _ => vec![(String::new(), 1, 1)],
    }
}

/// §4.2 exact: B_i = floor(N_h × (P_1 + … + P_i) + U / 2^32), B_0 = 0, B_last = N_h.
fn boundaries(parts: &[(String, u64, u64)], n: u64, u: u64) -> Vec<u64> {
    let den = parts[0].2;
    let mut bounds = vec![0];
    let mut cum = 0;
    for (i, (_, num, d)) in parts.iter().enumerate() {
        assert_eq!(*d, den, "one denominator");
        cum += num;
        if i + 1 == parts.len() {
            bounds.push(n);
        } else {
            let b = (u128::from(n) * u128::from(cum) * (1 << 32) + u128::from(u) * u128::from(den))
                / (u128::from(den) << 32);
            bounds.push(b as u64);
        }
    }
    bounds
}

/// §4.2 `about`: the first part i with r < floor((P_1 + … + P_i) × 2^64).
fn about_part(parts: &[(String, u64, u64)], r: u64) -> usize {
    let mut cum = 0;
    for (i, (_, num, den)) in parts.iter().enumerate().take(parts.len() - 1) {
        cum += num;
        if u128::from(r) < (u128::from(cum) << 64) / u128::from(*den) {
            return i;
        }
    }
    parts.len() - 1
}

/// strat's output rows in the oracle's form: source fields as their CSV
/// texts (integers, floats by Display, strings), then the generated columns.
pub fn rows_of(batch: &RecordBatch, sources: usize) -> Vec<Row> {
    let text = |c: usize, i: usize| -> Option<String> {
        let a = batch.column(c);
        if a.is_null(i) {
            return None;
        }
        Some(match a.data_type() {
            DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
            DataType::Float64 => a.as_primitive::<Float64Type>().value(i).to_string(),
            DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
            DataType::Utf8View => a.as_string_view().value(i).to_string(),
            other => panic!("a column of type {other}"),
        })
    };
    let split = batch.schema().index_of("_split").ok();
    (0..batch.num_rows())
        .map(|i| Row {
            fields: (0..sources).map(|c| text(c, i)).collect(),
            weight: batch.column(sources).as_primitive::<Float64Type>().value(i),
            stratum: text(sources + 1, i).expect("a _stratum"),
            split: split.and_then(|c| text(c, i)),
        })
        .collect()
}
