//! What a run is doing, for a progress bar (issue 17): its phase, and how
//! many rows the phase has read of how many it will read. The run updates it
//! a batch at a time with relaxed atomics (never per row); whoever shows it
//! polls [`Progress::now`]. A run without one pays nothing.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

/// A run's phases, in the order they come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The counting pass: every eligible row's unit, draw and stratum.
    Counting,
    /// Allocation and selection, from the units in draw order.
    Selecting,
    /// A sample's second pass: the rows of the selected units.
    Reading,
    /// A split's second pass: every row placed, spread and put in order.
    Ordering,
    /// The output file, as its rows come.
    Writing,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Counting,
        Phase::Selecting,
        Phase::Reading,
        Phase::Ordering,
        Phase::Writing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Counting => "counting",
            Phase::Selecting => "selecting",
            Phase::Reading => "reading selected rows",
            Phase::Ordering => "ordering",
            Phase::Writing => "writing",
        }
    }
}

/// The phase, the rows it has read, and the rows it will read (when known:
/// a Parquet source's row count; not a CSV's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub phase: Phase,
    pub rows: u64,
    pub total: Option<u64>,
}

#[derive(Debug)]
pub struct Progress {
    phase: AtomicU8,
    rows: AtomicU64,
    /// `u64::MAX`: unknown.
    total: AtomicU64,
}

impl Default for Progress {
    /// Counting, nothing read, the total not known yet.
    fn default() -> Self {
        Progress {
            phase: AtomicU8::new(Phase::Counting as u8),
            rows: AtomicU64::new(0),
            total: AtomicU64::new(u64::MAX),
        }
    }
}

impl Progress {
    pub fn now(&self) -> Snapshot {
        let total = self.total.load(Relaxed);
        Snapshot {
            phase: Phase::ALL[usize::from(self.phase.load(Relaxed)).min(4)],
            rows: self.rows.load(Relaxed),
            total: (total != u64::MAX).then_some(total),
        }
    }

    /// A new phase begins, to read `total` rows (if known).
    pub fn enter(&self, phase: Phase, total: Option<u64>) {
        self.rows.store(0, Relaxed);
        self.total.store(total.unwrap_or(u64::MAX), Relaxed);
        self.phase.store(phase as u8, Relaxed);
    }

    /// The phase read `rows` more rows.
    pub fn read(&self, rows: usize) {
        self.rows.fetch_add(rows as u64, Relaxed);
    }
}

/// `progress.read(rows)` when there is a progress to tell.
pub(crate) fn read(progress: &Option<std::sync::Arc<Progress>>, rows: usize) {
    if let Some(p) = progress {
        p.read(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_reset_the_count() {
        let p = Progress::default();
        assert_eq!(
            p.now(),
            Snapshot {
                phase: Phase::Counting,
                rows: 0,
                total: None
            }
        );
        p.enter(Phase::Counting, Some(10));
        p.read(4);
        p.read(3);
        let now = p.now();
        assert_eq!(
            (now.phase, now.rows, now.total),
            (Phase::Counting, 7, Some(10))
        );
        p.enter(Phase::Writing, None);
        assert_eq!(
            p.now(),
            Snapshot {
                phase: Phase::Writing,
                rows: 0,
                total: None
            }
        );
    }
}
