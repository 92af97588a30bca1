//! Progress of long jobs (preparing data, training): a bar on a terminal, plain lines on
//! stdout when stderr is not a terminal (a background run's log file), nothing with
//! `--quiet`. Lines, unlike a hidden bar, leave a record in `nohup … > run.log`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between plain progress lines when no step interval is given.
pub const LINE_INTERVAL: Duration = Duration::from_secs(30);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// An indicatif bar on stderr.
    Bar,
    /// A plain line on stdout every [`LINE_INTERVAL`] (or every N items, see
    /// [`Progress::lines_every`]).
    Lines,
    /// Nothing.
    #[default]
    Quiet,
}

impl Style {
    /// A bar when stderr is a terminal, plain lines when it is not, nothing when `quiet`.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Style::Quiet
        } else if std::io::stderr().is_terminal() {
            Style::Bar
        } else {
            Style::Lines
        }
    }
}

/// A counter of `total` items (entries, steps) shown in a [`Style`]. Thread-safe: `&self`.
pub struct Progress {
    style: Style,
    bar: ProgressBar,
    what: String,
    lines: Mutex<Lines>,
}

struct Lines {
    /// A line every this many items; `None`: every [`LINE_INTERVAL`].
    every: Option<u64>,
    last_line: Instant,
    /// Where this process started counting, for the rate behind the ETA.
    started: Instant,
    start_pos: u64,
}

impl Progress {
    /// `what` names the items in lines and the bar ("step", "file"); `template` is the bar's
    /// indicatif template.
    pub fn new(style: Style, what: &str, total: u64, template: &str) -> Self {
        let bar = if style == Style::Bar { ProgressBar::new(total) } else { ProgressBar::hidden() };
        // A hidden bar still counts: lines read its position and length.
        bar.set_length(total);
        bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
        let now = Instant::now();
        let lines = Lines { every: None, last_line: now, started: now, start_pos: 0 };
        Self { style, bar, what: what.to_owned(), lines: Mutex::new(lines) }
    }

    /// Plain lines every `n` items instead of every [`LINE_INTERVAL`] (`n` ≥ 1).
    pub fn lines_every(self, n: Option<u64>) -> Self {
        self.lock().every = n.map(|n| n.max(1));
        self
    }

    /// Sets the count without printing a line (a resumed run starts here; the ETA counts
    /// from this point).
    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
        // The bar's own rate would count the jump as steps done in no time.
        self.bar.reset_eta();
        let mut l = self.lock();
        (l.started, l.start_pos) = (Instant::now(), pos);
    }

    /// The bar's message, and the tail of each plain line (a hidden bar keeps it too).
    pub fn set_message(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Counts `n` more items; in [`Style::Lines`], prints a line when one is due.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        if self.style != Style::Lines {
            return;
        }
        let pos = self.bar.position();
        let mut l = self.lock();
        let due = match l.every {
            Some(every) => pos % every == 0 || pos == self.total(),
            None => l.last_line.elapsed() >= LINE_INTERVAL || pos == self.total(),
        };
        if due {
            l.last_line = Instant::now();
            println!("{}", self.line(&l, pos));
        }
    }

    /// `{what} {pos}/{total} ({percent} %): {message}; {elapsed} elapsed, ETA {eta}`.
    fn line(&self, l: &Lines, pos: u64) -> String {
        let total = self.total();
        let percent = if total == 0 { 100.0 } else { 100.0 * pos as f64 / total as f64 };
        let elapsed = l.started.elapsed();
        let done = pos.saturating_sub(l.start_pos);
        let eta = if done == 0 {
            "-".to_owned()
        } else {
            duration(elapsed.mul_f64(total.saturating_sub(pos) as f64 / done as f64))
        };
        let message = self.bar.message();
        let message = if message.is_empty() { message } else { format!(": {message}") };
        format!("{} {pos}/{total} ({percent:.1} %){message}; {} elapsed, ETA {eta}", self.what, duration(elapsed))
    }

    fn total(&self) -> u64 {
        self.bar.length().unwrap_or(0)
    }

    /// A line that is not progress (an epoch's results, a warning): above the bar, or on
    /// stdout. Printed in every style, `Quiet` included.
    pub fn println(&self, line: impl AsRef<str>) {
        match self.style {
            Style::Bar => self.bar.println(line),
            Style::Lines | Style::Quiet => println!("{}", line.as_ref()),
        }
    }

    /// Removes the bar (lines need no ending).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `1h02m`, `3m05s`, `12s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// `4.3 GB`, `175 MB`, `12 kB` (decimal units, as `du --si` and file managers show).
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.0} MB", n / 1e6),
        n => format!("{:.0} kB", n / 1e3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_count_percent_message_and_eta() {
        let p = Progress::new(Style::Lines, "step", 200, "{pos}").lines_every(Some(10));
        p.set_position(100);
        p.set_message("loss 1.0e-1".into());
        let l = p.lock();
        let line = p.line(&l, 150);
        assert!(line.starts_with("step 150/200 (75.0 %): loss 1.0e-1; 0s elapsed, ETA "), "{line}");
        assert!(p.line(&l, 100).ends_with("ETA -"), "no rate before the first item");
    }

    #[test]
    fn durations_read_as_hours_minutes_seconds() {
        assert_eq!(duration(Duration::from_secs(12)), "12s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(bytes(4_321_000_000), "4.3 GB");
        assert_eq!(bytes(175_400_000), "175 MB");
    }
}
