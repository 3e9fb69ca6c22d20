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
    /// Retries, 429s and window deferrals so far, for the bar and the log lines.
    detail: Mutex<String>,
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        let bar = (std::io::stderr().is_terminal() && total > 0).then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} ops  {rate}  eta {eta}  {msg}")
                    .expect("static template")
                    // indicatif's own {per_sec} prints four decimals (644.9137/s).
                    .with_key(
                        "rate",
                        |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                            let _ = out.write_str(&crate::human::rate(state.per_sec()));
                        },
                    ),
            );
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            total,
            done: AtomicU64::new(0),
            problems: AtomicU64::new(0),
            detail: Mutex::new(String::new()),
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
            let detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
            bar.set_message(format!("{problems} not done{detail}"));
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            let detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
            tracing::info!(
                "progress: {done}/{} ops, {}, {problems} not done{detail}",
                self.total,
                crate::human::rate(rate)
            );
        }
    }

    /// Notes the retries, 429s and window deferrals so far.
    pub fn set_detail(&self, retries: u64, rate_limited: u64, deferred: u64) {
        let mut detail = self.detail.lock().unwrap_or_else(|p| p.into_inner());
        detail.clear();
        for (n, what) in [
            (retries, "retries"),
            (rate_limited, "429s"),
            (deferred, "deferred by the window"),
        ] {
            if n > 0 {
                detail.push_str(&format!(", {n} {what}"));
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
