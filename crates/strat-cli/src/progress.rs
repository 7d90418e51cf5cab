//! The progress bar of `strat run` on stderr: the run's phase, the rows it
//! has read of the rows it will read, the rate and the time left — redrawn
//! from the engine's counters (`strat_engine::progress`) ten times a second
//! by a thread of its own. Only on a terminal, never with `--quiet`, never on
//! stdout.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use strat_engine::progress::{Phase, Progress, Snapshot};

/// The bar; dropping it clears it (what the run prints next is the last line).
pub struct ProgressView {
    pub progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

/// The bar for a run of `name`, when stderr is a terminal and not `quiet`.
pub fn start(name: &str, quiet: bool) -> Option<ProgressView> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(ProgressView::new(name, ProgressDrawTarget::stderr()))
}

impl ProgressView {
    fn new(name: &str, target: ProgressDrawTarget) -> Self {
        let progress = Arc::new(Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let first = Snapshot {
            phase: Phase::Counting,
            rows: 0,
            total: None,
        };
        let bar = ProgressBar::with_draw_target(None, target)
            .with_style(style(&first))
            .with_prefix(name.to_string());
        let (p, s) = (progress.clone(), stop.clone());
        let ticker = std::thread::spawn(move || tick(&bar, &p, &s));
        ProgressView {
            progress,
            stop,
            ticker: Some(ticker),
        }
    }
}

impl Drop for ProgressView {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

fn tick(bar: &ProgressBar, progress: &Progress, stop: &AtomicBool) {
    let mut shown: Option<(Phase, bool)> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = progress.now();
        let look = (now.phase, now.total.is_some());
        if shown != Some(look) {
            // A new phase: its own count, rate and time left.
            bar.set_style(style(&now));
            bar.reset();
            bar.set_message(now.phase.name());
            shown = Some(look);
        }
        bar.set_length(now.total.unwrap_or(0));
        bar.set_position(now.rows.min(now.total.unwrap_or(u64::MAX)));
        bar.tick();
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

fn style(now: &Snapshot) -> ProgressStyle {
    let template = match (now.total, now.phase) {
        (Some(_), _) => {
            "{spinner} {prefix}: {msg:<21} [{bar:24}] {human_pos}/{human_len} rows · {per_sec:0} · {eta} left"
        }
        (None, Phase::Selecting) => "{spinner} {prefix}: {msg} · {elapsed}",
        (None, _) => "{spinner} {prefix}: {msg:<21} {human_pos} rows · {per_sec:0}",
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}
