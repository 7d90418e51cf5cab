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
    Some(ProgressView::new(name, ProgressDrawTarget::stderr))
}

impl ProgressView {
    fn new(name: &str, target: fn() -> ProgressDrawTarget) -> Self {
        let progress = Arc::new(Progress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s, name) = (progress.clone(), stop.clone(), name.to_string());
        let ticker = std::thread::spawn(move || tick(&name, target, &p, &s));
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

fn tick(name: &str, target: fn() -> ProgressDrawTarget, progress: &Progress, stop: &AtomicBool) {
    let mut phases = Phases::new(name, target);
    while !stop.load(Ordering::Relaxed) {
        phases.show(&progress.now());
        std::thread::sleep(Duration::from_millis(100));
    }
    phases.clear();
}

/// The bar of the phase on screen. Each phase gets a bar of its own, built
/// with its name, total and count before its first frame: every setter of a
/// bar may draw, and a reused bar once showed a frame of the new phase over
/// the old one's total (`0/0 rows`), sometimes as the last frame of a run.
struct Phases<T> {
    name: String,
    target: T,
    shown: Option<((Phase, bool), ProgressBar)>,
}

impl<T: Fn() -> ProgressDrawTarget> Phases<T> {
    fn new(name: &str, target: T) -> Self {
        Phases {
            name: name.to_string(),
            target,
            shown: None,
        }
    }

    fn show(&mut self, now: &Snapshot) {
        let look = (now.phase, now.total.is_some());
        let position = now.rows.min(now.total.unwrap_or(u64::MAX));
        match &self.shown {
            Some((shown, bar)) if *shown == look => {
                bar.set_position(position);
                bar.tick();
            }
            _ => {
                self.clear();
                let bar = ProgressBar::with_draw_target(now.total, (self.target)())
                    .with_style(style(now))
                    .with_prefix(self.name.clone())
                    .with_message(now.phase.name())
                    .with_position(position);
                bar.tick();
                self.shown = Some((look, bar));
            }
        }
    }

    fn clear(&mut self) {
        if let Some((_, bar)) = self.shown.take() {
            bar.finish_and_clear();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::TermLike;
    use std::sync::Mutex;

    /// A terminal that keeps every line drawn on it.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn snapshot(phase: Phase, rows: u64, total: Option<u64>) -> Snapshot {
        Snapshot { phase, rows, total }
    }

    #[test]
    fn every_frame_shows_its_phases_own_total() {
        let screen = Screen::default();
        let seen = screen.clone();
        let mut phases = Phases::new("s", move || {
            ProgressDrawTarget::term_like(Box::new(seen.clone()))
        });
        let frames = [
            snapshot(Phase::Counting, 0, Some(400_123)),
            snapshot(Phase::Counting, 250_000, Some(400_123)),
            snapshot(Phase::Selecting, 0, None),
            snapshot(Phase::Reading, 0, Some(400_123)),
            snapshot(Phase::Reading, 399_000, Some(400_123)),
            snapshot(Phase::Writing, 10, None),
        ];
        for now in &frames {
            phases.show(now);
        }
        let lines = screen.0.lock().unwrap().clone();
        let with_total: Vec<&String> = lines.iter().filter(|l| l.contains(" rows")).collect();
        assert!(
            lines.iter().any(|l| l.contains("reading")),
            "the reading phase drawn: {lines:#?}"
        );
        for line in &lines {
            if line.contains("[") {
                assert!(
                    line.contains("/400,123 rows"),
                    "a frame of another total: {line:?} in {lines:#?}"
                );
            }
        }
        assert!(!with_total.is_empty(), "{lines:#?}");
    }
}
