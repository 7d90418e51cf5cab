//! The cost of strat's draw kernel, for the benchmark's floor (issue 13):
//! the time to write one key text and draw it (docs/spec.md §6), per key, on
//! one thread, for the unit keys of a column and for the row keys of a
//! table's whole rows (a statement without `unit`).
//!
//! ```text
//! cargo build --release -p strat-cli -p strat-engine --features strat-engine/bench
//! target/release/strat-draw-cost target/strat-bench/data/10000000/members.parquet member_id 2000000
//! ```
//!
//! Prints one JSON object: `{"rows": …, "unit_ns": …, "row_ns": …,
//! "row_text_ns": …}` (the last: writing the row keys alone), the best
//! of five passes over the first `rows` rows (held in memory, so no reading
//! or decoding is timed).

// A benchmark tool: its one output is the JSON line on stdout.
#![allow(clippy::print_stdout)]

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use strat_engine::draw::Drawer;
use strat_engine::keys::{KeyColumn, RowKeys};

const SEED: u64 = 20180602;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, unit, rows] = args.as_slice() else {
        return Err("usage: draw_cost FILE.parquet UNIT_COLUMN ROWS".into());
    };
    let rows: usize = rows.parse()?;
    let batches = read(path, rows)?;
    let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let unit_ns = best_of(5, || draw_units(&batches, unit)) / n as f64;
    let row_ns = best_of(5, || draw_rows(&batches)) / n as f64;
    let row_text_ns = best_of(5, || write_rows(&batches)) / n as f64;
    println!(
        "{{\"rows\": {n}, \"unit_ns\": {unit_ns:.2}, \"row_ns\": {row_ns:.2}, \"row_text_ns\": {row_text_ns:.2}}}"
    );
    Ok(())
}

/// The first `rows` rows, strings as views: what DataFusion's Parquet scan
/// gives the counting pass.
fn read(path: &str, rows: usize) -> Result<Vec<RecordBatch>, Box<dyn std::error::Error>> {
    let file = File::open(path)?;
    let plain = ParquetRecordBatchReaderBuilder::try_new(file.try_clone()?)?
        .schema()
        .clone();
    let fields: Vec<Field> = plain
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => {
                f.as_ref().clone().with_data_type(DataType::Utf8View)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    let options = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(fields)));
    let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)?
        .with_batch_size(8192)
        .with_limit(rows)
        .build()?;
    Ok(reader.collect::<Result<_, _>>()?)
}

/// The fastest of `n` runs of `f`, in nanoseconds.
fn best_of(n: usize, mut f: impl FnMut() -> u64) -> f64 {
    let mut best = f64::INFINITY;
    let mut sink = 0u64;
    for _ in 0..n {
        let at = Instant::now();
        sink ^= f();
        best = best.min(at.elapsed().as_nanos() as f64);
    }
    std::hint::black_box(sink);
    best
}

/// Key texts of a batch written into one buffer, drawn 8 at a time: what
/// the counting pass does per new unit.
fn draw_all(batch_keys: impl Iterator<Item = (Vec<u8>, Vec<usize>)>) -> u64 {
    let drawer = Drawer::new(SEED);
    let mut draws = Vec::new();
    let mut sink = 0u64;
    for (texts, ends) in batch_keys {
        draws.clear();
        drawer.draw_many(&texts, &ends, &mut draws);
        sink ^= draws.iter().fold(0, |a, &r| a ^ r);
    }
    sink
}

fn draw_units(batches: &[RecordBatch], unit: &str) -> u64 {
    draw_all(batches.iter().map(|b| {
        let column: &ArrayRef = b.column_by_name(unit).expect("the unit column");
        let keys = KeyColumn::unit(column.as_ref()).expect("a unit key type");
        let (mut texts, mut ends) = (Vec::new(), Vec::new());
        for row in 0..b.num_rows() {
            let _ = keys.write(row, &mut texts);
            ends.push(texts.len());
        }
        (texts, ends)
    }))
}

fn draw_rows(batches: &[RecordBatch]) -> u64 {
    draw_all(batches.iter().map(row_texts))
}

/// The row keys' texts alone, without their draws: the text's share of a
/// row key's draw.
fn write_rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(row_texts).fold(0, |a, (texts, ends)| {
        a ^ texts.len() as u64 ^ ends.last().map_or(0, |&e| e as u64)
    })
}

/// A batch's row keys, written one after the other: what the counting pass
/// does per new unit.
fn row_texts(batch: &RecordBatch) -> (Vec<u8>, Vec<usize>) {
    let keys = RowKeys::new(batch.columns()).expect("row key types");
    let (mut texts, mut ends) = (Vec::new(), Vec::new());
    for row in 0..batch.num_rows() {
        keys.append(row, &mut texts);
        ends.push(texts.len());
    }
    (texts, ends)
}
