//! Progress of an apply: an indicatif bar on a terminal, plain periodic log lines otherwise
//! (cron mails and log files want lines, not redraws).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
    problems: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        let bar = (std::io::stderr().is_terminal() && total > 0).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} ops  {per_sec}  eta {eta}  {msg}",
                )
                .expect("static template"),
            );
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            total,
            done: AtomicU64::new(0),
            problems: AtomicU64::new(0),
            started: now,
            last_line: Mutex::new(now),
        }
    }

    pub fn tick(&self, problem: bool) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let problems = self
            .problems
            .fetch_add(u64::from(problem), Ordering::Relaxed)
            + u64::from(problem);
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if problem {
                bar.set_message(format!("{problems} not done"));
            }
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                "progress: {done}/{} ops, {rate:.1} ops/s, {problems} not done",
                self.total
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
