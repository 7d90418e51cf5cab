//! A split's rows spread over bucket files by place, so that each bucket can
//! be ordered in memory and the buckets written one after another: a
//! distribution sort, each row written to disk and read back once.
//!
//! A row's place is `(part, stratum, draw)`, and the counting pass knows how
//! the places fall: a stratum's rows, and per part the run of draws it
//! covers. Draws are uniform, so a run of draws holds rows in proportion to
//! its width; cutting the places into ranges of about a bucket's rows each
//! gives buckets of about even size. A bucket that still comes out too big
//! (units with many rows each) is spread again over finer ranges.

use std::sync::Mutex;

use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::execution::disk_manager::DiskManager;
use datafusion::execution::spill_file::SpillWriter;

use super::*;

/// At most this many buckets at once: each holds two open files (the
/// temporary file and its writer), and a process often may open only 1,024.
pub(super) const MAX_BUCKETS: usize = 256;

/// A run of draws of one part in one stratum, and its expected rows.
#[derive(Clone, Copy, Debug)]
struct Segment {
    part: u32,
    stratum: u32,
    /// Draws `lo..hi` (`hi` may be 2^64).
    lo: u128,
    hi: u128,
    rows: f64,
}

impl Segment {
    /// Its places, `from..to`.
    fn places(&self) -> (i128, i128) {
        let base = place(self.part, self.stratum, 0);
        (base + self.lo as i128, base + self.hi as i128)
    }
}

/// Where the places of a split fall, segment by segment, in place order.
#[derive(Debug)]
pub(super) struct Segments(Vec<Segment>);

impl Segments {
    /// From each stratum's (in stratum order) runs of one part — the draw at
    /// which each starts, the first taken from 0 — and its rows.
    pub(super) fn new(starts: &[Vec<(u64, u32)>], strata_rows: &[u64]) -> Segments {
        let mut segments = Vec::new();
        for (k, runs) in starts.iter().enumerate() {
            let rows = strata_rows.get(k).copied().unwrap_or(0) as f64;
            for (i, &(lo, part)) in runs.iter().enumerate() {
                let lo = if i == 0 { 0 } else { u128::from(lo) };
                let hi = runs.get(i + 1).map_or(1 << 64, |&(s, _)| u128::from(s));
                let share = (hi - lo) as f64 / 2f64.powi(64);
                segments.push(Segment {
                    part,
                    stratum: k as u32,
                    lo,
                    hi,
                    rows: rows * share,
                });
            }
        }
        segments.sort_by_key(|s| s.places().0);
        Segments(segments)
    }

    /// Bounds of buckets of about `per_bucket` rows (at most
    /// [`MAX_BUCKETS`] of them) over the places `from..to`, which hold
    /// `rows` rows.
    pub(super) fn bounds(&self, from: i128, to: i128, rows: f64, per_bucket: f64) -> Bounds {
        let inside: Vec<(Segment, i128, i128)> = self
            .0
            .iter()
            .filter_map(|s| {
                let (lo, hi) = s.places();
                let (lo, hi) = (lo.max(from), hi.min(to));
                (lo < hi).then_some((*s, lo, hi))
            })
            .collect();
        let expected = |s: &Segment, lo: i128, hi: i128| {
            s.rows * (hi - lo) as f64 / (s.hi - s.lo).max(1) as f64
        };
        let total: f64 = inside.iter().map(|(s, lo, hi)| expected(s, *lo, *hi)).sum();
        let scale = if total > 0.0 { rows / total } else { 0.0 };
        let per_bucket = per_bucket.max(rows / MAX_BUCKETS as f64).max(1.0);
        let mut starts = vec![from];
        let mut filled = 0.0;
        for (s, lo, hi) in inside {
            let rows = expected(&s, lo, hi) * scale;
            // Pieces of at most a quarter bucket, each a range of draws.
            let pieces = ((rows / (per_bucket / 4.0)).ceil() as i128).clamp(1, hi - lo);
            let (step, each) = ((hi - lo) / pieces, rows / pieces as f64);
            for j in 0..pieces {
                let start = lo + j * step;
                if filled > 0.0 && filled + each > per_bucket && start > from {
                    starts.push(start);
                    filled = 0.0;
                }
                filled += each;
            }
        }
        starts.dedup();
        Bounds { starts, to }
    }
}

/// Bucket `b` holds the places `starts[b]..starts[b + 1]` (the last up to
/// `to`).
#[derive(Debug, Clone)]
pub(super) struct Bounds {
    starts: Vec<i128>,
    to: i128,
}

impl Bounds {
    pub(super) fn len(&self) -> usize {
        self.starts.len()
    }

    fn bucket(&self, place: i128) -> usize {
        self.starts
            .partition_point(|&b| b <= place)
            .saturating_sub(1)
    }

    /// The places of bucket `b`.
    pub(super) fn range(&self, b: usize) -> (i128, i128) {
        (
            self.starts[b],
            self.starts.get(b + 1).copied().unwrap_or(self.to),
        )
    }
}

/// A bucket on disk: its file and what it holds.
pub(super) struct Bucket {
    pub file: Option<RunFile>,
    pub rows: u64,
    pub bytes: usize,
    pub from: i128,
    pub to: i128,
}

/// A bucket file being written: Arrow IPC, through the disk manager's
/// writer (which holds the run to the temporary folder's size limit).
struct Writing {
    file: RunFile,
    writer: StreamWriter<BufWriter<Box<dyn SpillWriter>>>,
}

struct Open {
    file: Option<Writing>,
    rows: u64,
    bytes: usize,
}

/// The bucket files being written, shared by the tasks that spread rows.
pub(super) struct Spread {
    disk: Arc<DiskManager>,
    schema: SchemaRef,
    bounds: Bounds,
    open: Vec<Mutex<Open>>,
    /// A task writes a bucket's rows once it holds this many bytes of them.
    flush_at: usize,
}

impl Spread {
    pub(super) fn new(
        disk: Arc<DiskManager>,
        schema: SchemaRef,
        bounds: Bounds,
        pending: usize,
        tasks: usize,
    ) -> Spread {
        let n = bounds.len();
        Spread {
            disk,
            schema,
            open: (0..n)
                .map(|_| {
                    Mutex::new(Open {
                        file: None,
                        rows: 0,
                        bytes: 0,
                    })
                })
                .collect(),
            flush_at: (pending / (n * tasks.max(1))).clamp(64 << 10, 8 << 20),
            bounds,
        }
    }

    /// One task's side of the spread: its rows not yet written, per bucket.
    pub(super) fn task(self: &Arc<Self>) -> Spreader {
        let n = self.bounds.len();
        Spreader {
            spread: self.clone(),
            pending: vec![Vec::new(); n],
            pending_bytes: vec![0; n],
        }
    }

    /// The buckets written, in place order.
    pub(super) fn finish(self) -> Result<Vec<Bucket>, DataFusionError> {
        let bounds = self.bounds;
        self.open
            .into_iter()
            .enumerate()
            .map(|(b, open)| {
                let open = open.into_inner().unwrap_or_else(|p| p.into_inner());
                let file = match open.file {
                    Some(w) => Some(w.finish()?),
                    None => None,
                };
                let (from, to) = bounds.range(b);
                Ok(Bucket {
                    file,
                    rows: open.rows,
                    bytes: open.bytes,
                    from,
                    to,
                })
            })
            .collect()
    }
}

/// Rows of one task on their way to the bucket files.
pub(super) struct Spreader {
    spread: Arc<Spread>,
    pending: Vec<Vec<RecordBatch>>,
    pending_bytes: Vec<usize>,
}

impl Spreader {
    /// Puts each row of `batch` (its place the last column) in its bucket.
    pub(super) fn push(&mut self, batch: &RecordBatch) -> Result<(), DataFusionError> {
        let places = places_of(batch);
        let bounds = &self.spread.bounds;
        let buckets: Vec<u32> = places
            .values()
            .iter()
            .map(|&p| bounds.bucket(p) as u32)
            .collect();
        // The rows of each bucket, by a counting sort of the bucket numbers.
        let mut counts = vec![0u32; bounds.len() + 1];
        for &b in &buckets {
            counts[b as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut order = vec![0u32; buckets.len()];
        let mut at = counts.clone();
        for (row, &b) in buckets.iter().enumerate() {
            order[at[b as usize] as usize] = row as u32;
            at[b as usize] += 1;
        }
        let order = UInt32Array::from(order);
        for b in 0..bounds.len() {
            let (lo, hi) = (counts[b] as usize, counts[b + 1] as usize);
            if lo == hi {
                continue;
            }
            let piece = if hi - lo == batch.num_rows() {
                batch.clone()
            } else {
                let idx = order.slice(lo, hi - lo);
                datafusion::arrow::compute::take_record_batch(batch, &idx)?
            };
            self.pending_bytes[b] += piece.get_array_memory_size();
            self.pending[b].push(piece);
            if self.pending_bytes[b] >= self.spread.flush_at {
                self.flush(b)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, b: usize) -> Result<(), DataFusionError> {
        let pieces = std::mem::take(&mut self.pending[b]);
        self.pending_bytes[b] = 0;
        if pieces.is_empty() {
            return Ok(());
        }
        let batch = in_place_order(&pieces)?;
        drop(pieces);
        let mut open = self.spread.open[b]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if open.file.is_none() {
            open.file = Some(Writing::new(&self.spread.disk, &self.spread.schema)?);
        }
        if let Some(w) = open.file.as_mut() {
            w.writer.write(&batch)?;
        }
        open.rows += batch.num_rows() as u64;
        open.bytes += batch.get_array_memory_size();
        Ok(())
    }

    /// Writes every row still pending.
    pub(super) fn flush_all(mut self) -> Result<(), DataFusionError> {
        for b in 0..self.pending.len() {
            self.flush(b)?;
        }
        Ok(())
    }
}

/// The rows of `pieces` in one batch ordered by place: bucket files hold
/// sorted runs, so that reading a bucket back merges them (see
/// `ordered_chunks`).
fn in_place_order(pieces: &[RecordBatch]) -> Result<RecordBatch, DataFusionError> {
    let mut order = place_keys(pieces);
    order.sort_unstable();
    let idx: Vec<(usize, usize)> = order
        .into_iter()
        .map(|(_, b, r)| (b as usize, r as usize))
        .collect();
    let refs: Vec<&RecordBatch> = pieces.iter().collect();
    Ok(interleave_record_batch(&refs, &idx)?)
}

impl Writing {
    fn new(disk: &Arc<DiskManager>, schema: &SchemaRef) -> Result<Writing, DataFusionError> {
        let file = disk.create_tmp_file("strat: a split's bucket")?;
        if file.path().is_none() {
            return Err(DataFusionError::Execution(
                "a split's buckets need a local temporary folder".into(),
            ));
        }
        let out = BufWriter::with_capacity(1 << 20, file.open_writer()?);
        let writer = StreamWriter::try_new(out, schema)?;
        Ok(Writing { file, writer })
    }

    fn finish(mut self) -> Result<RunFile, DataFusionError> {
        self.writer.finish()?;
        let out = self.writer.into_inner()?;
        let mut inner = out
            .into_inner()
            .map_err(|e| DataFusionError::IoError(e.into_error()))?;
        inner.finish()?;
        Ok(self.file)
    }
}

/// The batches of a bucket file, in the order written, one at a time.
pub(super) fn read(
    file: &RunFile,
) -> Result<impl Iterator<Item = Result<RecordBatch, DataFusionError>>, DataFusionError> {
    let path = file
        .path()
        .ok_or_else(|| DataFusionError::Execution("a bucket file without a path".into()))?;
    let reader = StreamReader::try_new(BufReader::with_capacity(1 << 20, File::open(path)?), None)?;
    Ok(reader.map(|b| b.map_err(DataFusionError::from)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform draws in three strata of very different sizes, split in two
    /// parts at a third of the draws: the buckets' starts increase, and
    /// every bucket holds about `per_bucket` rows (none more than 1.5×).
    #[test]
    fn buckets_of_even_size_from_the_counts() {
        let cut = u64::MAX / 3;
        let starts: Vec<Vec<(u64, u32)>> = vec![vec![(5, 0), (cut, 1)]; 3];
        let rows = [40_000u64, 10, 100_000];
        let segments = Segments::new(&starts, &rows);
        let per_bucket = 5_000.0;
        let bounds = segments.bounds(i128::MIN, i128::MAX, 140_010.0, per_bucket);
        assert!(bounds.starts.windows(2).all(|w| w[0] < w[1]));
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut held = vec![0u32; bounds.len()];
        for (k, &n) in rows.iter().enumerate() {
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let part = u32::from(x >= cut);
                held[bounds.bucket(place(part, k as u32, x))] += 1;
            }
        }
        let most = *held.iter().max().unwrap_or(&0);
        assert!(f64::from(most) <= 1.5 * per_bucket, "{held:?}");
        assert!(bounds.len() >= 28 && bounds.len() <= 40, "{}", bounds.len());
    }
}
