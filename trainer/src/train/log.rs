//! The run's CSV log (one row per epoch) and its PNG plots: loss curves and
//! validation SDR against the mixture baseline.

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::plot::ensure_font;

const HEADER: &str = "step,epoch,lr,train_loss,val_loss,val_sdr,mixture_sdr,grad_norm,audio_sec_per_sec";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRow {
    pub step: u64,
    pub epoch: u64,
    pub lr: f64,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_sdr: f64,
    pub mixture_sdr: f64,
    pub grad_norm: f64,
    pub audio_sec_per_sec: f64,
}

impl LogRow {
    fn to_csv(self) -> String {
        format!(
            "{},{},{:e},{:e},{:e},{:.4},{:.4},{:.4},{:.3}",
            self.step,
            self.epoch,
            self.lr,
            self.train_loss,
            self.val_loss,
            self.val_sdr,
            self.mixture_sdr,
            self.grad_norm,
            self.audio_sec_per_sec
        )
    }

    fn from_csv(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 {
            return None;
        }
        let x = |i: usize| f[i].parse::<f64>().ok();
        Some(Self {
            step: f[0].parse().ok()?,
            epoch: f[1].parse().ok()?,
            lr: x(2)?,
            train_loss: x(3)?,
            val_loss: x(4)?,
            val_sdr: x(5)?,
            mixture_sdr: x(6)?,
            grad_norm: x(7)?,
            audio_sec_per_sec: x(8)?,
        })
    }
}

/// Rows of an existing log (none if the file is missing).
pub fn read(path: &Path) -> anyhow::Result<Vec<LogRow>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().skip(1).filter_map(LogRow::from_csv).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Rewrites the log with `rows` (used on resume to drop rows past the checkpoint).
pub fn write(path: &Path, rows: &[LogRow]) -> anyhow::Result<()> {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(&r.to_csv());
        text.push('\n');
    }
    Ok(isola_engine::atomic_file::write_bytes(path, text.as_bytes())?)
}

/// Draws `loss.png` and `sdr.png` into `dir`.
pub fn plots(rows: &[LogRow], dir: &Path) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    ensure_font()?;
    let steps = |r: &LogRow| r.step as f64;
    let x_max = rows.iter().map(steps).fold(1.0, f64::max);
    curve(
        &dir.join("loss.png"),
        "Loss (L1 on masked magnitudes)",
        "loss",
        x_max,
        &[
            ("train", rows.iter().map(|r| (steps(r), r.train_loss)).collect(), BLUE),
            ("validation", rows.iter().map(|r| (steps(r), r.val_loss)).collect(), RED),
        ],
    )?;
    curve(
        &dir.join("sdr.png"),
        "Validation vocals SDR (streaming engine)",
        "SDR (dB)",
        x_max,
        &[
            ("model", rows.iter().map(|r| (steps(r), r.val_sdr)).collect(), BLUE),
            ("mixture baseline", rows.iter().map(|r| (steps(r), r.mixture_sdr)).collect(), BLACK),
        ],
    )
}

/// A named polyline in one colour.
type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// Draws one chart to `path`, atomically.
fn curve(path: &Path, title: &str, y_desc: &str, x_max: f64, series: &[Series<'_>]) -> anyhow::Result<()> {
    Ok(isola_engine::atomic_file::write_through_path(path, |tmp| {
        draw_curve(tmp, title, y_desc, x_max, series).map_err(|e| format!("{e:#}"))
    })?)
}

fn draw_curve(path: &Path, title: &str, y_desc: &str, x_max: f64, series: &[Series<'_>]) -> anyhow::Result<()> {
    let ys = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).filter(|y| y.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.1).max(1e-6);
    let root = BitMapBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))?;
    chart.configure_mesh().x_desc("step").y_desc(y_desc).draw()?;
    for (name, points, color) in series {
        let color = *color;
        let pts: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], color));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_and_plots() {
        let d = tempfile::tempdir().unwrap();
        let rows: Vec<LogRow> = (1..4)
            .map(|e| LogRow {
                step: e * 10,
                epoch: e,
                lr: 1e-3,
                train_loss: 1.0 / e as f64,
                val_loss: 1.2 / e as f64,
                val_sdr: e as f64,
                mixture_sdr: -1.0,
                grad_norm: 0.5,
                audio_sec_per_sec: 12.0,
            })
            .collect();
        let path = d.path().join("log.csv");
        write(&path, &rows).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[2].step, 30);
        assert!((back[2].val_loss - 0.4).abs() < 1e-9);
        plots(&back, d.path()).unwrap();
        assert!(d.path().join("loss.png").exists() && d.path().join("sdr.png").exists());
    }
}
