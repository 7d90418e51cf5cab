//! How much memory a run may use, and the DataFusion memory pool that holds
//! it to that.
//!
//! Two limits: what the operators that can spill (DataFusion's sort, the
//! counting pass's unit sets) may hold before they write sorted runs to disk
//! — a modest fixed budget, so that a split of any size stays near it — and
//! what everything may hold at once, the memory the machine (or its cgroup)
//! has available. Past the second a run fails cleanly (E0208) rather than
//! meet the OOM killer. `--memory-limit` sets both to one value.

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

/// What the spilling operators hold together before they spill, by default.
pub const DEFAULT_SPILL_BUDGET: usize = 512 << 20;

/// The limits of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// What spilling operators may hold together before they spill.
    pub spill: usize,
    /// What every reservation may hold together.
    pub total: usize,
}

impl Budget {
    /// The default: [`DEFAULT_SPILL_BUDGET`] (a quarter of what is available
    /// when that is less), and 80 % of the memory available to the process.
    pub fn default_for_machine() -> Budget {
        let available = available_memory().unwrap_or(8 << 30);
        let total = (available / 5 * 4).max(64 << 20);
        Budget {
            spill: DEFAULT_SPILL_BUDGET.min(total / 4).max(16 << 20),
            total,
        }
    }

    /// One limit for everything (`--memory-limit`).
    pub fn fixed(bytes: usize) -> Budget {
        Budget {
            spill: bytes,
            total: bytes,
        }
    }

    /// The pool that enforces it (tracking the largest consumers, for the
    /// error that names them).
    pub fn pool(self) -> Arc<dyn MemoryPool> {
        let top = std::num::NonZeroUsize::new(5).unwrap_or(std::num::NonZeroUsize::MIN);
        Arc::new(TrackConsumersPool::new(BudgetPool::new(self), top))
    }
}

/// How many sorted runs one merge reads at once: each holds a batch (and a
/// read-ahead one) in memory, so a sort of any size merges in passes within
/// a few hundred MB. Measured on a split of 125M rows (2 partitions): ~120
/// runs merged at once held 5.9 GB; 16 at a time peaked at 2.2 GB, 8 at a
/// time (with 32,768-row batches) at 1.1 GB, as fast (each partition's ~30
/// runs still merge in two passes).
pub const MERGE_FAN_IN: usize = 8;

/// The size below which DataFusion's sort, having never spilled, sorts its
/// rows by concatenating them (a second copy): a sixteenth of the spill
/// budget, at most DataFusion's default of 1 MiB. Under a small budget the
/// copy would not fit in a sort's share and the sort would fail at its end
/// instead of having spilled.
pub fn sort_in_place_threshold(spill: usize) -> usize {
    (spill / 16).min(1 << 20)
}

/// A context whose runtime holds `budget` (spilling to the system's
/// temporary folder), with `threads` partitions when given.
pub fn context(budget: Budget, threads: Option<usize>) -> Result<SessionContext> {
    let mut config = SessionConfig::new();
    if let Some(n) = threads {
        config = config.with_target_partitions(n);
    }
    config.options_mut().execution.sort_in_place_threshold_bytes =
        sort_in_place_threshold(budget.spill);
    let disk = DiskManagerBuilder::default().with_max_spill_merge_fan_in(MERGE_FAN_IN);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(budget.pool())
        .with_disk_manager_builder(disk)
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// The memory this process may still use: the smaller of the kernel's
/// `MemAvailable` and what the cgroup's limit leaves (v2 or v1), in bytes.
pub fn available_memory() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .map(|kb| kb * 1024)
    });
    let read = |p: &str| -> Option<usize> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let cgroup = match (
        read("/sys/fs/cgroup/memory.max"),
        read("/sys/fs/cgroup/memory.current"),
    ) {
        (Some(max), Some(used)) => Some(max.saturating_sub(used)),
        _ => match (
            read("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            read("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
        ) {
            // v1 writes a huge number for "no limit".
            (Some(max), Some(used)) if max < 1 << 60 => Some(max.saturating_sub(used)),
            _ => None,
        },
    };
    match (available, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// A memory pool with the two limits of a [`Budget`]: spilling consumers
/// share `spill` fairly (each may hold its share of it), and all consumers
/// together at most `total`.
#[derive(Debug)]
pub struct BudgetPool {
    budget: Budget,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    spillers: usize,
    spillable: usize,
    unspillable: usize,
}

impl BudgetPool {
    pub fn new(budget: Budget) -> Self {
        BudgetPool {
            budget,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Display for BudgetPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "strat's budget ({} for spilling operators, {} in all)",
            crate::run::size_text(self.budget.spill),
            crate::run::size_text(self.budget.total)
        )
    }
}

impl MemoryPool for BudgetPool {
    fn name(&self) -> &str {
        "strat budget"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            self.state().spillers += 1;
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            let mut s = self.state();
            s.spillers = s.spillers.saturating_sub(1);
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        let mut s = self.state();
        if reservation.consumer().can_spill() {
            s.spillable += additional;
        } else {
            s.unspillable += additional;
        }
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        let mut s = self.state();
        if reservation.consumer().can_spill() {
            s.spillable = s.spillable.saturating_sub(shrink);
        } else {
            s.unspillable = s.unspillable.saturating_sub(shrink);
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let mut s = self.state();
        let free = self
            .budget
            .total
            .saturating_sub(s.spillable + s.unspillable);
        if reservation.consumer().can_spill() {
            let share = self
                .budget
                .spill
                .min(self.budget.total.saturating_sub(s.unspillable))
                / s.spillers.max(1);
            if reservation.size() + additional > share || additional > free {
                return Err(exhausted(
                    reservation,
                    additional,
                    share.min(free + reservation.size()),
                ));
            }
            s.spillable += additional;
        } else {
            if additional > free {
                return Err(exhausted(reservation, additional, free));
            }
            s.unspillable += additional;
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        let s = self.state();
        s.spillable + s.unspillable
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.budget.total)
    }
}

fn exhausted(
    reservation: &MemoryReservation,
    additional: usize,
    available: usize,
) -> DataFusionError {
    DataFusionError::ResourcesExhausted(format!(
        "Failed to allocate additional {} for {} with {} already allocated - {} available",
        crate::run::size_text(additional),
        reservation.consumer().name(),
        crate::run::size_text(reservation.size()),
        crate::run::size_text(available),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spillers_share_their_budget_and_everything_stays_under_the_total() {
        let pool: Arc<dyn MemoryPool> = Arc::new(BudgetPool::new(Budget {
            spill: 100,
            total: 300,
        }));
        let a = MemoryConsumer::new("a")
            .with_can_spill(true)
            .register(&pool);
        let b = MemoryConsumer::new("b")
            .with_can_spill(true)
            .register(&pool);
        let fixed = MemoryConsumer::new("fixed").register(&pool);
        assert!(a.try_grow(50).is_ok());
        assert!(a.try_grow(1).is_err(), "past its half of the spill budget");
        assert!(b.try_grow(50).is_ok());
        assert!(fixed.try_grow(200).is_ok());
        assert!(fixed.try_grow(1).is_err(), "past the total");
        drop(b);
        assert_eq!(pool.reserved(), 250);
        assert!(matches!(pool.memory_limit(), MemoryLimit::Finite(300)));
    }

    #[test]
    fn the_default_leaves_room_on_this_machine() {
        let b = Budget::default_for_machine();
        assert!(b.spill <= DEFAULT_SPILL_BUDGET && b.spill <= b.total);
        if let Some(a) = available_memory() {
            assert!(b.total <= a.max(64 << 20));
        }
    }
}
