//! Status panel: latency, CPU load, active model, worker. GUI thread only.

use egui::{Color32, Grid, Ui};

use crate::handover::LoadStatus;
use crate::telemetry::{LoadReading, Telemetry, WorkerView};

/// Window over which the CPU peak is held, seconds.
const PEAK_WINDOW_S: f32 = 2.0;

#[derive(Default)]
pub struct Status {
    load: LoadReading,
    /// Highest block load in the current window, and the window's age.
    peak_hold: (f32, f32),
}

impl Status {
    /// Reads the CPU load and updates the peak hold; `dt` is the time since the last update.
    /// GUI thread.
    pub fn update(&mut self, telemetry: &Telemetry, dt: f32) {
        let now = telemetry.load();
        let (held, age) = &mut self.peak_hold;
        *age += dt;
        if now.peak >= *held || *age > PEAK_WINDOW_S {
            *held = now.peak.max(if *age > PEAK_WINDOW_S { 0.0 } else { *held });
            *age = 0.0;
        }
        self.load = now;
    }

    /// Draws the status grid. GUI thread.
    pub fn show(&self, ui: &mut Ui, telemetry: &Telemetry, model: &LoadStatus) {
        Grid::new("isola-status").num_columns(2).spacing([12.0, 4.0]).show(ui, |ui| {
            let (latency, rate) = telemetry.latency();
            ui.label("Latency");
            if rate > 0.0 {
                ui.label(format!("{:.1} ms ({latency} samples @ {rate} Hz)", latency as f32 * 1000.0 / rate));
            } else {
                ui.label("— (not active)");
            }
            ui.end_row();

            ui.label("CPU load");
            let load = format!(
                "{:.1} % avg, {:.1} % peak (of the block's real-time budget)",
                self.load.average * 100.0,
                self.peak_hold.0 * 100.0
            );
            let colour =
                if self.peak_hold.0 > 0.8 { Color32::from_rgb(240, 90, 70) } else { ui.visuals().text_color() };
            ui.colored_label(colour, load);
            ui.end_row();

            if let Some(reason) = &model.passthrough {
                ui.label("Bypassed");
                ui.colored_label(Color32::from_rgb(240, 170, 60), reason);
                ui.end_row();
            }

            ui.label("Model");
            ui.label(if model.active.is_empty() { "—" } else { &model.active });
            ui.end_row();
            if let Some(s) = &model.summary {
                ui.label("Trained at");
                ui.label(format!("{} Hz", s.sample_rate));
                ui.end_row();
                ui.label("Training data");
                ui.label(if s.datasets.is_empty() { "—".to_owned() } else { s.datasets.join(", ") });
                ui.end_row();
                ui.label("Validation SDR");
                ui.label(s.validation_sdr_db.map_or("not measured".to_owned(), |d| format!("{d:.2} dB")));
                ui.end_row();
            }

            let (worker, misses) = telemetry.worker();
            ui.label("Inference");
            ui.label(match worker {
                WorkerView::Light => "Light (in-thread)".to_owned(),
                WorkerView::Running => format!("Worker running, {misses} missed frames"),
                WorkerView::Stopped => format!("Worker stopped, {misses} missed frames"),
                WorkerView::Failed => format!("Worker failed (light network only), {misses} missed frames"),
            });
            ui.end_row();
            if let Some(w) = model.worker.as_ref().filter(|w| w.error.is_none()) {
                ui.label("Worker");
                let raised = if w.budget_hops > w.asked_hops {
                    format!(", raised from {} to cover the host's {}-sample blocks", w.asked_hops, w.max_block)
                } else {
                    String::new()
                };
                ui.label(format!(
                    "{} on {}, deadline {} hops (+{} samples){raised}",
                    w.model, w.device, w.budget_hops, w.added_latency
                ));
                ui.end_row();
            }
        });
    }
}
