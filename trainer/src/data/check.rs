//! `isola data check`: decode everything at its own rate, list tracks with
//! durations and rates, and report every problem.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

use super::discover::{DataSpec, Entry, discover_all};
use super::load::{Loaded, load_entry};
use crate::audio::AudioError;
use crate::audio::cache::AudioLoader;

/// One checked entry that loaded cleanly.
#[derive(Debug, Clone)]
pub struct CheckRow {
    pub name: String,
    pub kind: &'static str,
    pub split: Option<String>,
    pub seconds: f64,
    pub rate: u32,
    pub channels: usize,
}

#[derive(Debug, Default)]
pub struct CheckReport {
    pub rows: Vec<CheckRow>,
    pub problems: Vec<AudioError>,
}

/// Discovers and decodes everything under `specs`, using all cores.
pub fn check(specs: &[DataSpec], show_progress: bool) -> CheckReport {
    let (entries, problems) = discover_all(specs);
    let mut report = CheckReport { rows: Vec::new(), problems };
    let bar = if show_progress { ProgressBar::new(entries.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} checking [{bar:30}] {pos}/{len} {wide_msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let results = decode_all(&entries, &bar);
    bar.finish_and_clear();
    for (entry, result) in entries.iter().zip(results) {
        match result {
            Ok(loaded) => {
                let (channels, _, seconds) = loaded.shape();
                report.rows.push(CheckRow {
                    name: entry.name.clone(),
                    kind: entry.kind(),
                    split: entry.split.clone(),
                    seconds,
                    rate: loaded.source_rate(),
                    channels,
                });
            }
            Err(e) => report.problems.push(e),
        }
    }
    report
}

/// Loads entries on every core; results keep the entries' order.
fn decode_all(entries: &[Entry], bar: &ProgressBar) -> Vec<Result<Loaded, AudioError>> {
    let loader = AudioLoader::new(None, None);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Loaded, AudioError>>>> =
        Mutex::new((0..entries.len()).map(|_| None).collect());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(entries.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(i) else { break };
                    // Only the shape is reported; drop the samples right away.
                    let r = load_entry(entry, &loader).map(|l| match l {
                        Loaded::Track(mut t) => {
                            t.accompaniment.channels.clear();
                            Loaded::Track(t)
                        }
                        other => other,
                    });
                    results.lock().expect("no panics while holding the lock")[i] = Some(r);
                    bar.set_message(entry.name.clone());
                    bar.inc(1);
                }
            });
        }
    });
    results.into_inner().expect("workers finished").into_iter().map(|r| r.expect("every entry was decoded")).collect()
}

impl CheckReport {
    /// The human-readable listing printed by `isola data check`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{:<13} {:>10} {:>9} {:>3}  name", "kind", "duration", "rate", "ch");
        for r in &self.rows {
            let split = r.split.as_deref().map(|s| format!(" [{s}]")).unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<13} {:>10} {:>6} Hz {:>3}  {}{split}",
                r.kind,
                clock(r.seconds),
                r.rate,
                r.channels,
                r.name
            );
        }
        let _ = writeln!(out);
        for kind in ["track", "stem.mp4", "vocals", "instrumental"] {
            let rows: Vec<_> = self.rows.iter().filter(|r| r.kind == kind).collect();
            if rows.is_empty() {
                continue;
            }
            let secs: f64 = rows.iter().map(|r| r.seconds).sum();
            let mut rates: Vec<u32> = rows.iter().map(|r| r.rate).collect();
            rates.sort_unstable();
            rates.dedup();
            let rates: Vec<String> = rates.iter().map(|r| format!("{r} Hz")).collect();
            let _ = writeln!(
                out,
                "{:<13} {:>5} items, {:>8} ({:.2} h), rates: {}",
                kind,
                rows.len(),
                clock(secs),
                secs / 3600.0,
                rates.join(", ")
            );
        }
        if self.problems.is_empty() {
            let _ = writeln!(out, "no problems found");
        } else {
            let _ = writeln!(out, "{} problem(s):", self.problems.len());
            for p in &self.problems {
                let _ = writeln!(out, "  {p}");
            }
        }
        out
    }
}

/// `h:mm:ss.s` or `m:ss.s`.
fn clock(secs: f64) -> String {
    let tenths = (secs * 10.0).round() as u64;
    let (h, m, s) = (tenths / 36_000, tenths / 600 % 60, tenths % 600);
    if h > 0 { format!("{h}:{m:02}:{:04.1}", s as f64 / 10.0) } else { format!("{m}:{:04.1}", s as f64 / 10.0) }
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn clock_format() {
        assert_eq!(clock(5.04), "0:05.0");
        assert_eq!(clock(3723.25), "1:02:03.3");
    }
}
