//! Candidate rows (issue 13): a sample without `unit` reads every source
//! column in its counting pass already (the row is its unit, §6.1), so that
//! pass keeps the rows that may be selected and the sample is taken from
//! them, without reading the table a second time.
//!
//! A row is a candidate while its draw is at most its stratum's *limit*: a
//! guess of the stratum's cut, from the allocation of the rows counted so
//! far (by the task whose batch doubles the count: [`Guide::guess_if_due`]),
//! with a margin. Limits only fall, and the candidates are pruned to them. The
//! guess decides nothing: the sample is taken from the candidates only when
//! every selected unit's draw is within its stratum's last limit
//! ([`covers`]), so that every row of every selected unit is among them;
//! otherwise (a guess too low, say for a file sorted so that a stratum's
//! share changes late) or when the candidates outgrow their budget, the
//! rows are read again as before. Either way the sample is the same.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, RwLock};

use datafusion::arrow::array::AsArray;

use super::*;

/// Rows counted before the first guess, and by how much the count grows
/// between guesses.
const FIRST_GUESS_ROWS: u64 = 1 << 17;
const GUESS_GROWTH: u64 = 2;
/// No guess past this many strata (allocating them ~20 times is not worth it).
const MAX_GUESSED_STRATA: usize = 1 << 20;

/// What the counting tasks and the guesser share.
pub(super) struct Guide {
    /// Per stratum id, the largest draw a candidate may have (a stratum not
    /// in it yet keeps every row).
    limits: RwLock<Arc<Vec<u64>>>,
    /// Bumped at each new set of limits: a task prunes when it sees it move.
    epoch: AtomicU64,
    /// Rows counted per stratum id, and in all.
    counts: Mutex<Vec<u64>>,
    rows: AtomicU64,
    next_guess: AtomicU64,
    /// What a guess needs: the rules, their context, the strata's types.
    ctx: SessionContext,
    st: Statement,
    types: Vec<DataType>,
    /// Over budget: no candidates (the rows are read again).
    off: AtomicBool,
    reservation: Mutex<MemoryReservation>,
    held: AtomicUsize,
    budget: usize,
}

impl Guide {
    pub(super) fn new(
        ctx: &SessionContext,
        st: &Statement,
        types: &[DataType],
        budget: usize,
    ) -> Guide {
        let pool = &ctx.runtime_env().memory_pool;
        Guide {
            limits: RwLock::new(Arc::new(Vec::new())),
            epoch: AtomicU64::new(0),
            counts: Mutex::new(Vec::new()),
            rows: AtomicU64::new(0),
            next_guess: AtomicU64::new(FIRST_GUESS_ROWS),
            ctx: ctx.clone(),
            st: st.clone(),
            types: types.to_vec(),
            off: AtomicBool::new(false),
            reservation: Mutex::new(MemoryConsumer::new("strat: candidate rows").register(pool)),
            held: AtomicUsize::new(0),
            budget,
        }
    }

    /// Whether a statement's counting pass can keep candidates: a sample
    /// (a split outputs every row) keyed by its rows, whose allocation can
    /// be guessed from counts alone (neyman needs `S_h`).
    pub(super) fn wanted(st: &Statement, split: Option<&ir::Split>) -> bool {
        split.is_none() && st.unit.is_none() && !matches!(st.method, ir::Method::Neyman(_))
    }

    /// The limits by stratum id (after the counting pass: the last ones).
    pub(super) fn limits(&self) -> Arc<Vec<u64>> {
        self.limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The limits and their epoch (read first: limits published meanwhile
    /// are only pruned to at the next epoch, never missed).
    fn current(&self) -> (u64, Arc<Vec<u64>>) {
        let epoch = self.epoch.load(AtomicOrdering::Acquire);
        (epoch, self.limits())
    }

    /// The bytes the candidate rows hold.
    pub(super) fn held(&self) -> usize {
        self.held.load(AtomicOrdering::Relaxed)
    }

    pub(super) fn is_off(&self) -> bool {
        self.off.load(AtomicOrdering::Relaxed)
    }

    /// Adds a batch's rows per stratum; true when the count has grown
    /// enough for a new guess, which this caller makes.
    fn count(&self, touched: &[u32], delta: &mut [u64], rows: u64) -> bool {
        {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            for &h in touched {
                let h = h as usize;
                if counts.len() <= h {
                    counts.resize(h + 1, 0);
                }
                counts[h] += std::mem::take(&mut delta[h]);
            }
        }
        let now = self.rows.fetch_add(rows, AtomicOrdering::Relaxed) + rows;
        let next = self.next_guess.load(AtomicOrdering::Relaxed);
        now >= next
            && self
                .next_guess
                .compare_exchange(
                    next,
                    now * GUESS_GROWTH,
                    AtomicOrdering::Relaxed,
                    AtomicOrdering::Relaxed,
                )
                .is_ok()
    }

    /// Guesses the limits from the counts so far, when [`Self::count`] said
    /// so. A guess that cannot be made (an allocation that fails on partial
    /// counts, too many strata) is skipped: the strata keep their limits.
    async fn guess(&self, strata: &Mutex<Strata>) {
        let values = strata
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values
            .clone();
        if values.len() > MAX_GUESSED_STRATA {
            return;
        }
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(limits) = guess(&self.ctx, &self.st, &values, counts, &self.types).await {
            self.publish(limits);
        }
    }

    /// Holds `now` bytes for a task that held `held`: false (and the guide
    /// off) past the budget or the memory pool.
    fn hold(&self, held: &mut usize, now: usize) -> bool {
        let reservation = self.reservation.lock().unwrap_or_else(|p| p.into_inner());
        if now > *held {
            let more = now - *held;
            if reservation.try_grow(more).is_err() {
                self.off.store(true, AtomicOrdering::Relaxed);
                return false;
            }
            if self.held.fetch_add(more, AtomicOrdering::Relaxed) + more > self.budget {
                reservation.shrink(more);
                self.held.fetch_sub(more, AtomicOrdering::Relaxed);
                self.off.store(true, AtomicOrdering::Relaxed);
                return false;
            }
        } else {
            reservation.shrink((*held - now).min(reservation.size()));
            self.held.fetch_sub(*held - now, AtomicOrdering::Relaxed);
        }
        *held = now;
        true
    }

    /// Lowers the limits to `guess` (limits never rise: under the lock, so
    /// that two guesses made at once cannot undo each other).
    fn publish(&self, guess: Vec<u64>) {
        let mut limits = self.limits.write().unwrap_or_else(|p| p.into_inner());
        *limits = Arc::new(lowered(&limits, &guess));
        self.epoch.fetch_add(1, AtomicOrdering::Release);
    }
}

/// Each stratum's smaller limit of `limits` and `guess` (a stratum in
/// neither has none: it keeps every row).
fn lowered(limits: &[u64], guess: &[u64]) -> Vec<u64> {
    let at = |v: &[u64], h: usize| v.get(h).copied().unwrap_or(u64::MAX);
    (0..guess.len().max(limits.len()))
        .map(|h| at(guess, h).min(at(limits, h)))
        .collect()
}

/// A row of a batch as the counting pass met it: its unit, a unit first met
/// in the batch (its draw not computed yet) or one met before, and stratum.
#[derive(Clone, Copy)]
pub(super) struct MetRow {
    pub row: u32,
    pub unit: MetUnit,
    pub stratum: u32,
}

#[derive(Clone, Copy)]
pub(super) enum MetUnit {
    /// Index among the batch's new units.
    New(u32),
    Drawn(u64),
}

/// A batch of candidate rows and each row's (draw, stratum id).
type CandidateBatch = (RecordBatch, Vec<(u64, u32)>);

/// Candidates taken from this many batches are joined into one: each small
/// batch costs a few KB of buffers (and the allocator more).
const JOINED_BATCHES: usize = 64;

/// One counting task's candidates.
#[derive(Default)]
pub(super) struct TaskCandidates {
    batches: Vec<CandidateBatch>,
    /// Taken since the last join.
    fresh: Vec<CandidateBatch>,
    bytes: usize,
    held: usize,
    epoch: u64,
    /// This batch's rows per stratum id, and the ids it touched.
    delta: Vec<u64>,
    touched: Vec<u32>,
}

impl TaskCandidates {
    /// Keeps the rows of `met` within their strata's limits; `draws` are the
    /// draws of the batch's new units.
    pub(super) async fn offer(
        &mut self,
        guide: &Guide,
        strata: &Mutex<Strata>,
        (batch, met, draws): (&RecordBatch, &[MetRow], &[u64]),
    ) -> Result<(), RunError> {
        self.touched.clear();
        for m in met {
            let h = m.stratum as usize;
            if self.delta.len() <= h {
                self.delta.resize(h + 1, 0);
            }
            if self.delta[h] == 0 {
                self.touched.push(m.stratum);
            }
            self.delta[h] += 1;
        }
        if guide.count(&self.touched, &mut self.delta, met.len() as u64) {
            guide.guess(strata).await;
        }
        if guide.is_off() {
            self.clear(guide);
            return Ok(());
        }
        let (epoch, limits) = guide.current();
        self.catch_up(epoch, &limits)?;
        let within = |r: u64, h: u32| limits.get(h as usize).is_none_or(|&l| r <= l);
        let mut rows = Vec::new();
        let mut places = Vec::new();
        for m in met {
            let r = match m.unit {
                MetUnit::New(i) => draws[i as usize],
                MetUnit::Drawn(r) => r,
            };
            if within(r, m.stratum) {
                rows.push(m.row);
                places.push((r, m.stratum));
            }
        }
        if !rows.is_empty() {
            let kept = take_rows(batch, rows)?;
            self.bytes += kept.get_array_memory_size() + places.len() * 16;
            self.fresh.push((kept, places));
            if self.fresh.len() >= JOINED_BATCHES {
                self.join_fresh()?;
            }
        }
        if !guide.hold(&mut self.held, self.bytes) {
            self.clear(guide);
        }
        Ok(())
    }

    /// Joins the batches taken since the last join into one.
    fn join_fresh(&mut self) -> Result<(), RunError> {
        let Some((first, _)) = self.fresh.first() else {
            return Ok(());
        };
        let schema = first.schema();
        let fresh = std::mem::take(&mut self.fresh);
        let before: usize = fresh
            .iter()
            .map(|(b, p)| b.get_array_memory_size() + p.len() * 16)
            .sum();
        let joined = concat_batches(&schema, fresh.iter().map(|(b, _)| b))
            .map_err(arrow_err("keeping candidate rows"))?;
        let places: Vec<(u64, u32)> = fresh.into_iter().flat_map(|(_, p)| p).collect();
        self.bytes = self.bytes - before + joined.get_array_memory_size() + places.len() * 16;
        self.batches.push((joined, places));
        Ok(())
    }

    /// Prunes to new limits, if there are any since the last time.
    fn catch_up(&mut self, epoch: u64, limits: &[u64]) -> Result<(), RunError> {
        if epoch == self.epoch {
            return Ok(());
        }
        self.epoch = epoch;
        self.join_fresh()?;
        let within = |&(r, h): &(u64, u32)| limits.get(h as usize).is_none_or(|&l| r <= l);
        let mut bytes = 0;
        let mut pruned = Vec::with_capacity(self.batches.len());
        for (batch, places) in std::mem::take(&mut self.batches) {
            let keep: Vec<u32> = (0..places.len() as u32)
                .filter(|&i| within(&places[i as usize]))
                .collect();
            if keep.is_empty() {
                continue;
            }
            let (batch, places) = if keep.len() == places.len() {
                (batch, places)
            } else {
                let places = keep.iter().map(|&i| places[i as usize]).collect();
                (take_rows(&batch, keep)?, places)
            };
            bytes += batch.get_array_memory_size() + places.len() * 16;
            pruned.push((batch, places));
        }
        self.batches = pruned;
        self.bytes = bytes;
        Ok(())
    }

    fn clear(&mut self, guide: &Guide) {
        self.batches.clear();
        self.fresh.clear();
        self.bytes = 0;
        guide.hold(&mut self.held, 0);
    }

    /// The candidates at the end of the pass, pruned to the last limits;
    /// `None` when the guide went off.
    pub(super) fn finish(mut self, guide: &Guide) -> Result<Option<Vec<RecordBatch>>, RunError> {
        if guide.is_off() {
            self.clear(guide);
            return Ok(None);
        }
        let (epoch, limits) = guide.current();
        self.catch_up(epoch, &limits)?;
        self.join_fresh()?;
        Ok(Some(self.batches.into_iter().map(|(b, _)| b).collect()))
    }
}

/// `rows` of `batch`, in buffers of their own: a string view taken as it
/// is would keep the whole batch's strings alive (and counted).
fn take_rows(batch: &RecordBatch, rows: Vec<u32>) -> Result<RecordBatch, RunError> {
    let idx = UInt32Array::from(rows);
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            let taken = take(c.as_ref(), &idx, None)?;
            Ok(match taken.data_type() {
                DataType::Utf8View => Arc::new(taken.as_string_view().gc()) as ArrayRef,
                DataType::BinaryView => Arc::new(taken.as_binary_view().gc()),
                _ => taken,
            })
        })
        .collect::<Result<Vec<_>, datafusion::arrow::error::ArrowError>>()
        .map_err(arrow_err("keeping candidate rows"))?;
    RecordBatch::try_new(batch.schema(), columns).map_err(arrow_err("keeping candidate rows"))
}

/// The limits of the allocation of `counts` rows per stratum id.
async fn guess(
    ctx: &SessionContext,
    st: &Statement,
    values: &[Vec<ArrayRef>],
    mut counts: Vec<u64>,
    types: &[DataType],
) -> Option<Vec<u64>> {
    counts.resize(values.len(), 0);
    let columns = stratum_value_columns(types, st.strata.len(), values).ok()?;
    let reps: Vec<usize> = (0..values.len()).collect();
    let matched = match_rules(ctx, st, &columns, &reps).await.ok()?;
    let inputs: Vec<StratumInput> = counts
        .iter()
        .zip(matched)
        .map(|(&units, rule)| StratumInput {
            units,
            // Only rounding ties depend on it: not worth a stratum's text.
            start: 0,
            sd: None,
            rule,
        })
        .collect();
    let allocation = strat_alloc::allocate(&inputs, &request(st)).ok()?;
    Some(
        allocation
            .targets
            .iter()
            .zip(&counts)
            .map(|(t, &n)| limit(taken_share(t, n), n))
            .collect(),
    )
}

/// The share of a stratum's `n` units a target takes.
fn taken_share(target: &Target, n: u64) -> f64 {
    match target {
        _ if n == 0 => 1.0,
        Target::Exact(k) => *k as f64 / n as f64,
        Target::Probability(p) => ratio_to_f64(p.numer(), p.denom()),
    }
}

/// The largest draw a candidate of a stratum of `n` rows (so far) may have,
/// when a share `g` of them is taken: the cut of an exact sample is the
/// `g·n`-th smallest of `n` uniform draws (standard deviation about
/// `√(g·n)/n`), so six of those, 5 % and 8 rows above it.
fn limit(g: f64, n: u64) -> u64 {
    let n = (n as f64).max(1.0);
    let share = g * 1.05 + (6.0 * (g * n).sqrt() + 8.0) / n;
    if share >= 1.0 {
        u64::MAX
    } else {
        // In [0, 2^64): the cast saturates at worst.
        (share * 18_446_744_073_709_551_616.0) as u64
    }
}

/// Whether the candidates hold every row of every selected unit: each
/// selected unit's draw within its stratum's last limit (`limits` by
/// stratum id, `rank` an id's stratum in order).
pub(super) fn covers(limits: &[u64], rank: &[usize], strata: usize, selected: &[Selected]) -> bool {
    let mut by_stratum = vec![u64::MAX; strata];
    for (id, &k) in rank.iter().enumerate() {
        let l = limits.get(id).copied().unwrap_or(u64::MAX);
        by_stratum[k] = by_stratum[k].min(l);
    }
    selected
        .iter()
        .all(|s| s.r <= by_stratum[s.stratum as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limit is above the cut of an exact sample of the stratum: the
    /// `k`-th smallest of `n` draws, for shares from tiny to whole.
    #[test]
    fn a_limit_is_above_the_cut_it_guesses() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for (n, k) in [
            (10u64, 1u64),
            (100, 7),
            (1_000, 10),
            (50_000, 500),
            (20_000, 19_000),
        ] {
            for _ in 0..20 {
                let mut draws: Vec<u64> = (0..n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x
                    })
                    .collect();
                draws.sort_unstable();
                let cut = draws[k as usize - 1];
                assert!(limit(k as f64 / n as f64, n) >= cut, "{k} of {n}");
            }
        }
        assert_eq!(limit(1.0, 10), u64::MAX);
        assert!(limit(0.01, 10_000_000) < u64::MAX / 90);
    }

    /// Limits only fall, whatever the order and length of the guesses (a
    /// guess made before a stratum was met has no limit for it).
    #[test]
    fn limits_only_fall() {
        let limits = lowered(&[], &[10, 20]);
        assert_eq!(limits, [10, 20]);
        let limits = lowered(&limits, &[15, 5, 7]);
        assert_eq!(limits, [10, 5, 7]);
        assert_eq!(lowered(&limits, &[1]), [1, 5, 7]);
    }

    /// Covered iff every selected unit's draw is within its stratum's
    /// smallest limit (two ids of one stratum: the smaller counts).
    #[test]
    fn covered_iff_every_selected_draw_is_within_its_limit() {
        let s = |r: u64, stratum: u32| Selected {
            r,
            hash40: 0,
            stratum,
            part: 0,
        };
        let rank = [0, 1, 1];
        let limits = [100, 50, 80];
        assert!(covers(&limits, &rank, 2, &[s(100, 0), s(50, 1)]));
        assert!(!covers(&limits, &rank, 2, &[s(100, 0), s(51, 1)]));
        assert!(!covers(&limits, &rank, 2, &[s(101, 0)]));
        // An id without a limit kept every row.
        assert!(covers(&[], &rank, 2, &[s(u64::MAX, 1)]));
    }
}
