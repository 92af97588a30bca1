//! Scrolling spectrogram of the input, coloured by the vocal mask. GUI thread only.
//!
//! Each analysed frame becomes one column: brightness is the input level (log frequency axis,
//! dB scale), hue the mask (warm = vocals, cool = accompaniment). Columns are written into a
//! ring-shaped image and drawn as two quads, so a new frame costs one column, not a scroll.

use egui::{Color32, ColorImage, Pos2, Rect, Sense, TextureHandle, TextureOptions, Ui, Vec2, pos2, vec2};

use crate::telemetry::Geometry;

/// History length in frames (~2.2 s at 48 kHz with a 256-sample hop).
pub const COLUMNS: usize = 400;
/// Display rows (log-spaced frequency bands).
pub const ROWS: usize = 160;
const MIN_HZ: f32 = 40.0;
const FLOOR_DB: f32 = -90.0;
/// Legend colours of the mask ends: accompaniment (mask 0, hue 210°) and vocals (mask 1,
/// hue 30°); in between the hue passes through magenta (see [`colour`]).
pub const ACCOMPANIMENT_COLOUR: Color32 = Color32::from_rgb(38, 134, 255);
pub const VOCAL_COLOUR: Color32 = Color32::from_rgb(255, 134, 38);

pub struct Spectrogram {
    image: ColorImage,
    /// Next column to write.
    head: usize,
    /// Per display row (top = highest), the runtime bin range it covers.
    rows: Vec<(usize, usize)>,
    geometry: Geometry,
    texture: Option<TextureHandle>,
    dirty: bool,
}

impl Default for Spectrogram {
    fn default() -> Self {
        Self {
            image: ColorImage::filled([COLUMNS, ROWS], Color32::BLACK),
            head: 0,
            rows: Vec::new(),
            geometry: Geometry::default(),
            texture: None,
            dirty: true,
        }
    }
}

impl Spectrogram {
    /// Adapts the row mapping to the frame shape (new sample rate or model). GUI thread.
    pub fn set_geometry(&mut self, g: Geometry) {
        if g == self.geometry {
            return;
        }
        self.geometry = g;
        self.rows = band_edges(g);
        self.image = ColorImage::filled([COLUMNS, ROWS], Color32::BLACK);
        self.head = 0;
        self.dirty = true;
    }

    /// Appends one frame as a column. GUI thread.
    pub fn push(&mut self, mags: &[f32], mask: &[f32]) {
        if self.rows.len() != ROWS {
            return;
        }
        for (row, &(lo, hi)) in self.rows.iter().enumerate() {
            // Loudest bin of the band decides level and colour.
            let (mut best, mut at) = (0.0f32, lo);
            for (b, &m) in mags.iter().enumerate().take(hi).skip(lo) {
                if m > best {
                    best = m;
                    at = b;
                }
            }
            let m = mask.get(at).copied().unwrap_or(0.0);
            self.image.pixels[row * COLUMNS + self.head] = colour(best, m);
        }
        self.head = (self.head + 1) % COLUMNS;
        self.dirty = true;
    }

    /// Draws into a `size` rectangle with a frequency scale. GUI thread.
    pub fn show(&mut self, ui: &mut Ui, size: Vec2) {
        let (rect, _) = ui.allocate_exact_size(size, Sense::hover());
        if self.dirty || self.texture.is_none() {
            let opts = TextureOptions::LINEAR;
            match &mut self.texture {
                Some(t) => t.set(self.image.clone(), opts),
                None => self.texture = Some(ui.ctx().load_texture("isola-spectrogram", self.image.clone(), opts)),
            }
            self.dirty = false;
        }
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, Color32::BLACK);
        if let Some(t) = &self.texture {
            // Oldest column (head) at the left edge: two quads split at the ring's seam.
            let split = self.head as f32 / COLUMNS as f32;
            let left_w = rect.width() * (1.0 - split);
            let left = Rect::from_min_size(rect.min, vec2(left_w, rect.height()));
            let right = Rect::from_min_max(pos2(rect.min.x + left_w, rect.min.y), rect.max);
            painter.image(t.id(), left, Rect::from_min_max(pos2(split, 0.0), pos2(1.0, 1.0)), Color32::WHITE);
            painter.image(t.id(), right, Rect::from_min_max(pos2(0.0, 0.0), pos2(split, 1.0)), Color32::WHITE);
        }
        self.draw_scale(ui, rect);
    }

    fn draw_scale(&self, ui: &Ui, rect: Rect) {
        let nyquist = self.geometry.sample_rate * 0.5;
        if nyquist <= MIN_HZ {
            return;
        }
        let painter = ui.painter_at(rect);
        let font = egui::TextStyle::Small.resolve(ui.style());
        for hz in [100.0f32, 300.0, 1000.0, 3000.0, 10000.0] {
            if hz >= nyquist {
                continue;
            }
            let t = (hz / MIN_HZ).ln() / (nyquist / MIN_HZ).ln();
            let y = rect.max.y - t * rect.height();
            painter.hline(rect.x_range(), y, (1.0, Color32::from_white_alpha(40)));
            let label = if hz >= 1000.0 { format!("{}k", hz / 1000.0) } else { format!("{hz}") };
            painter.text(
                Pos2::new(rect.min.x + 3.0, y - 1.0),
                egui::Align2::LEFT_BOTTOM,
                label,
                font.clone(),
                Color32::from_white_alpha(180),
            );
        }
    }
}

/// Log-spaced bands from `MIN_HZ` to Nyquist, top row first; every band covers at least one bin.
fn band_edges(g: Geometry) -> Vec<(usize, usize)> {
    if g.bins < 2 || g.bin_hz <= 0.0 {
        return Vec::new();
    }
    let nyquist = g.bin_hz * (g.bins - 1) as f32;
    let ratio = (nyquist / MIN_HZ).max(1.0);
    let to_bin = |t: f32| ((MIN_HZ * ratio.powf(t)) / g.bin_hz).round() as usize;
    (0..ROWS)
        .rev()
        .map(|r| {
            let lo = to_bin(r as f32 / ROWS as f32).min(g.bins - 1);
            let hi = to_bin((r + 1) as f32 / ROWS as f32).clamp(lo + 1, g.bins);
            (lo, hi)
        })
        .collect()
}

/// Level (linear magnitude, full-scale sine ~0.5) and vocal mask to a pixel.
fn colour(mag: f32, mask: f32) -> Color32 {
    let db = 20.0 * (mag.max(1e-9) * 2.0).log10();
    let level = ((db - FLOOR_DB) / -FLOOR_DB).clamp(0.0, 1.0);
    // Gamma lifts quiet detail; the mask only picks the hue.
    let v = level.powf(1.5);
    let m = if mask.is_finite() { mask.clamp(0.0, 1.0) } else { 0.0 };
    // Hue walks from the accompaniment blue (210°) through magenta to the vocal orange (30°),
    // so undecided bins (mask ~0.5) stay saturated instead of mixing to grey.
    let hue = (210.0 + 180.0 * m) % 360.0;
    let c = egui::ecolor::Hsva::new(hue / 360.0, 0.85, v, 1.0);
    Color32::from(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_the_spectrum_in_order_and_colour_follows_the_mask() {
        let g = Geometry { bins: 513, bin_hz: 48_000.0 / 1024.0, hop: 256, sample_rate: 48_000.0 };
        let rows = band_edges(g);
        assert_eq!(rows.len(), ROWS);
        assert!(rows.iter().all(|&(lo, hi)| lo < hi && hi <= 513));
        assert!(rows.first().unwrap().0 > rows.last().unwrap().0, "top row must be the highest band");
        let loud_vocal = colour(0.5, 1.0);
        let loud_accomp = colour(0.5, 0.0);
        assert!(loud_vocal.r() > loud_vocal.b() && loud_accomp.b() > loud_accomp.r());
        assert_eq!(colour(0.0, 1.0), Color32::from_rgb(0, 0, 0));
        let undecided = colour(0.5, 0.5);
        assert!(u16::from(undecided.g()) * 2 < u16::from(undecided.r().min(undecided.b())), "{undecided:?}");
        let mut s = Spectrogram::default();
        s.set_geometry(g);
        s.push(&vec![0.5; 513], &vec![1.0; 513]);
        assert_eq!(s.image.pixels[0], loud_vocal);
        assert_eq!(s.head, 1);
    }
}
