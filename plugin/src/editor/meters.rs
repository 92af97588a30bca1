//! Per-stem output meters (RMS bar + peak line with hold and fall-off). GUI thread only.

use egui::{Color32, Rect, Sense, Ui, pos2, vec2};

use crate::telemetry::{MeterReading, STEMS, Telemetry};

const MIN_DB: f32 = -60.0;
const MAX_DB: f32 = 6.0;
/// Peak line fall-off after the hold, dB per second.
const PEAK_FALL_DB_PER_S: f32 = 20.0;
const PEAK_HOLD_S: f32 = 1.0;

#[derive(Default)]
pub struct Meters {
    /// Displayed peak (dB) and how long it has been held, per stem.
    peak: [(f32, f32); 3],
    rms: [f32; 3],
}

impl Meters {
    /// Reads new values; `dt` is the time since the last update. GUI thread.
    pub fn update(&mut self, telemetry: &Telemetry, dt: f32) {
        for i in 0..STEMS.len() {
            let MeterReading { peak, rms } = telemetry.meter(i);
            let new_db = to_db(peak);
            let (shown, held) = &mut self.peak[i];
            if new_db >= *shown {
                *shown = new_db;
                *held = 0.0;
            } else {
                *held += dt;
                if *held > PEAK_HOLD_S {
                    *shown = (*shown - PEAK_FALL_DB_PER_S * dt).max(new_db);
                }
            }
            self.rms[i] = to_db(rms);
        }
    }

    /// Draws one row per stem. GUI thread.
    pub fn show(&self, ui: &mut Ui, width: f32) {
        let row_h = ui.text_style_height(&egui::TextStyle::Body) * 1.2;
        for (i, name) in STEMS.iter().enumerate() {
            ui.horizontal(|ui| {
                ui.add_sized([width * 0.28, row_h], egui::Label::new(*name));
                let (rect, _) = ui.allocate_exact_size(vec2(width * 0.44, row_h * 0.7), Sense::hover());
                self.bar(ui, rect, i);
                ui.label(format!("{} / {} dB", fmt_db(self.rms[i]), fmt_db(self.peak[i].0)))
                    .on_hover_text("RMS / peak");
            });
        }
    }

    fn bar(&self, ui: &Ui, rect: Rect, i: usize) {
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 2.0, Color32::from_gray(30));
        let x = |db: f32| rect.min.x + rect.width() * ((db - MIN_DB) / (MAX_DB - MIN_DB)).clamp(0.0, 1.0);
        let colour =
            if self.peak[i].0 > 0.0 { Color32::from_rgb(230, 60, 50) } else { Color32::from_rgb(80, 200, 110) };
        painter.rect_filled(Rect::from_min_max(rect.min, pos2(x(self.rms[i]), rect.max.y)), 2.0, colour);
        let px = x(self.peak[i].0);
        painter.vline(px, rect.y_range(), (2.0, Color32::from_gray(230)));
        // 0 dBFS mark.
        painter.vline(x(0.0), rect.y_range(), (1.0, Color32::from_rgb(200, 60, 60)));
    }
}

fn to_db(x: f32) -> f32 {
    if x > 0.0 && x.is_finite() { (20.0 * x.log10()).max(MIN_DB - 1.0) } else { MIN_DB - 1.0 }
}

fn fmt_db(db: f32) -> String {
    if db < MIN_DB { "-inf".to_owned() } else { format!("{db:+.1}") }
}
