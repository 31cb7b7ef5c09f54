//! Progress reporting: an indicatif bar on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A progress display for `len` units of work.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    len: u64,
    pos: u64,
    start: Instant,
    last_log: Instant,
    message: String,
}

/// How often plain log lines are written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    /// A bar (stderr is a terminal) or a logger (otherwise) for `len` units.
    pub fn new(label: &str, len: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            label: label.to_string(),
            len,
            pos: 0,
            start: now,
            last_log: now,
            message: String::new(),
        }
    }

    /// A display that shows nothing (for tests and library callers).
    pub fn hidden() -> Self {
        let mut p = Self::new("", 0);
        p.bar = Some(ProgressBar::hidden());
        p
    }

    /// Sets the trailing message (e.g. the current loss).
    pub fn set_message(&mut self, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.clone());
        }
        self.message = message;
    }

    /// Advances to absolute position `pos`.
    pub fn set_position(&mut self, pos: u64) {
        self.pos = pos;
        match &self.bar {
            Some(bar) => bar.set_position(pos),
            None if self.last_log.elapsed() >= LOG_EVERY || pos == self.len => {
                self.last_log = Instant::now();
                let rate = pos as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
                eprintln!("{}: {pos}/{} ({rate:.1}/s) {}", self.label, self.len, self.message);
            }
            None => {}
        }
    }

    /// Advances by `n`.
    pub fn inc(&mut self, n: u64) {
        self.set_position(self.pos + n);
    }

    /// Prints a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            Some(_) => {}
            None => eprintln!("{line}"),
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
