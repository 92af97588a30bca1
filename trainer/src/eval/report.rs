//! `isola eval` outputs: JSON (everything, per window medians included),
//! a Markdown table and a PNG bar chart.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::EvalReport;
use crate::plot::ensure_font;

/// `12.34`, or `-` for NaN.
fn db(x: f64) -> String {
    if x.is_nan() { "-".into() } else { format!("{x:.2}") }
}

/// One row per method: the medians and means of [`super::Summary`].
fn summary_table(s: &mut String, summary: &[super::Summary]) {
    let _ = writeln!(
        s,
        "| method | tracks | vocals SDR | acc. SDR | vocals SI-SDR | acc. SI-SDR | vocals global SDR | acc. global SDR |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for m in summary {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            m.method,
            m.tracks,
            db(m.vocals_sdr),
            db(m.accompaniment_sdr),
            db(m.vocals_si_sdr),
            db(m.accompaniment_si_sdr),
            db(m.vocals_global_sdr),
            db(m.accompaniment_global_sdr)
        );
    }
    if let Some(c) = input_change(summary) {
        let _ = writeln!(
            s,
            "\n{}: vocals SDR {:+.2} dB, vocals global SDR {:+.2} dB against float input.",
            c.method, c.vocals_sdr_db, c.vocals_global_sdr_db
        );
    }
}

/// The noise-floor check of `--input-bits`: what rounding the input costs the model.
pub struct InputChange {
    /// The quantised row's name, e.g. "isola, 16-bit input".
    pub method: &'static str,
    /// Quantised minus float input, dB: median vocals SDR, mean vocals global SDR.
    pub vocals_sdr_db: f64,
    pub vocals_global_sdr_db: f64,
}

impl InputChange {
    /// The larger of the two changes, in dB (NaN when either is).
    pub fn largest_db(&self) -> f64 {
        if self.vocals_sdr_db.is_nan() || self.vocals_global_sdr_db.is_nan() {
            return f64::NAN;
        }
        self.vocals_sdr_db.abs().max(self.vocals_global_sdr_db.abs())
    }
}

/// [`InputChange`] of a summary with a quantised-input row; `None` without one.
pub fn input_change(summary: &[super::Summary]) -> Option<InputChange> {
    let f = summary.iter().find(|m| m.method == super::METHODS[0])?;
    let q = summary.iter().find(|m| super::QUANTIZED.iter().any(|q| q.light == m.method))?;
    Some(InputChange {
        method: q.method,
        vocals_sdr_db: q.vocals_sdr - f.vocals_sdr,
        vocals_global_sdr_db: q.vocals_global_sdr - f.vocals_global_sdr,
    })
}

/// Every 1 s window's BSSEval v4 SDR, the numbers behind each track's median: one CSV row
/// per set, track, method, source and window, `start_s` the window's start in seconds, `sdr_db`
/// empty where museval skips the window (a silent reference or estimate). Fields with a comma
/// or quote are quoted (RFC 4180).
pub fn windows_csv(r: &EvalReport) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
    };
    let mut out = String::from("set,track,method,source,start_s,sdr_db\n");
    for t in &r.tracks {
        let (set, track) = (quote(&t.set), quote(&t.name));
        for m in &t.methods {
            let Some(scores) = &m.scores else { continue };
            let method = quote(m.method);
            for (source, s) in [("vocals", &scores.vocals), ("accompaniment", &scores.accompaniment)] {
                for (i, sdr) in s.sdr_frames.iter().enumerate() {
                    let sdr = if sdr.is_finite() { format!("{sdr:.3}") } else { String::new() };
                    let _ = writeln!(out, "{set},{track},{method},{source},{i},{sdr}");
                }
            }
        }
    }
    out
}

/// Summary table (all tracks, then per data set when there are several), then vocals SDR
/// per track and method.
pub fn markdown(r: &EvalReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Isola evaluation: {}\n", r.weights);
    let _ = writeln!(
        s,
        "SDR: BSSEval v4 (museval), median over 1 s windows per track, then median over tracks. \
         SI-SDR: median over tracks. Global SDR (MDX): mean over tracks. All in dB.\n"
    );
    summary_table(&mut s, &r.summary);
    for set in &r.sets {
        let _ = writeln!(s, "\n### {}\n", set.set);
        summary_table(&mut s, &set.summary);
    }
    let _ = writeln!(s, "\n## Vocals SDR per track\n");
    let names: Vec<&str> = r.summary.iter().map(|m| m.method).collect();
    let _ = writeln!(s, "| set | track | seconds | rate | {} |", names.join(" | "));
    let _ = writeln!(s, "|---|---|---:|---:|{}", "---:|".repeat(names.len()));
    for t in &r.tracks {
        let cells: Vec<String> =
            t.methods.iter().map(|m| m.scores.as_ref().map_or("-".into(), |s| db(s.vocals.sdr))).collect();
        let _ =
            writeln!(s, "| {} | {} | {:.1} | {} | {} |", t.set, t.name, t.seconds, t.sample_rate, cells.join(" | "));
    }
    let notes: Vec<String> = r
        .tracks
        .iter()
        .flat_map(|t| {
            t.methods.iter().filter_map(move |m| m.note.as_ref().map(|n| format!("- {} / {}: {n}", t.name, m.method)))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(s, "\nNot scored:\n\n{}", notes.join("\n"));
    }
    s
}

/// Grouped bars: vocals and accompaniment SDR (median over tracks) per method, written to
/// `path` atomically.
pub fn chart(r: &EvalReport, path: &Path) -> anyhow::Result<()> {
    ensure_font()?;
    Ok(isola_engine::atomic_file::write_through_path(path, |tmp| draw_chart(r, tmp).map_err(|e| format!("{e:#}")))?)
}

fn draw_chart(r: &EvalReport, path: &Path) -> anyhow::Result<()> {
    let values: Vec<(f64, f64)> = r.summary.iter().map(|m| (m.vocals_sdr, m.accompaniment_sdr)).collect();
    let finite = values.iter().flat_map(|&(a, b)| [a, b]).filter(|x| x.is_finite());
    let (lo, hi) = finite.fold((0.0f64, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (lo, hi) = (lo.floor() - 1.0, hi.ceil() + 1.0);

    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = values.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Isola eval: {} (median SDR over tracks)", r.weights), ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5..n - 0.5, lo..hi)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(values.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                r.summary.get(i as usize).map_or(String::new(), |m| m.method.to_string())
            } else {
                String::new()
            }
        })
        .y_desc("SDR (dB)")
        .draw()?;
    let bars = |pick: fn(&(f64, f64)) -> f64, offset: f64, color: RGBColor| {
        values.iter().enumerate().filter(move |(_, v)| pick(v).is_finite()).map(move |(i, v)| {
            Rectangle::new([(i as f64 + offset - 0.18, 0.0), (i as f64 + offset + 0.18, pick(v))], color.filled())
        })
    };
    let blue = RGBColor(40, 100, 200);
    let orange = RGBColor(230, 130, 30);
    chart
        .draw_series(bars(|v| v.0, -0.2, blue))?
        .label("vocals")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], blue.filled()));
    chart
        .draw_series(bars(|v| v.1, 0.2, orange))?
        .label("accompaniment")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], orange.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
