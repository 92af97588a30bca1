//! The egui editor: parameters, a live spectrogram with the vocal mask, stem meters, status
//! and weights loading.
//!
//! Everything here runs on the GUI thread. It reads the audio thread's output through
//! [`Telemetry`] (lock-free on the audio side) and the loader's status; parameters
//! change through nice-plug's `ParamSetter` so hosts record automation.

use std::sync::Arc;
use std::time::Instant;

use egui::{RichText, Ui, vec2};
use nice_plug::context::gui::GuiContext;
use nice_plug::prelude::*;
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::{EguiEditor, EguiEditorState, EguiNiceSettings, Frame, NiceEguiApp};

pub mod meters;
pub mod spectrogram;
pub mod status;
pub mod weights_picker;

use crate::handover::Loader;
use crate::params::IsolaParams;
use crate::telemetry::Telemetry;

/// Default window size in logical pixels; the window is resizable down to `MIN_SIZE`.
pub const DEFAULT_SIZE: (u32, u32) = (860, 800);
const MIN_SIZE: (f32, f32) = (560.0, 480.0);

/// UI scale choices offered in the header (on top of the host's scale factor).
const ZOOMS: [f32; 5] = [1.0, 1.25, 1.5, 1.75, 2.0];

/// The editor's initial window state, persisted by nice-plug. Main thread (plugin creation).
pub fn default_state() -> Arc<EguiEditorState> {
    let size = nice_plug::editor::dpi::LogicalSize::new(DEFAULT_SIZE.0 as f64, DEFAULT_SIZE.1 as f64);
    EguiEditorState::from_size(size, 1.0)
}

/// Builds the editor. Called by the wrapper on the main thread.
pub fn create(
    state: Arc<EguiEditorState>,
    params: Arc<IsolaParams>,
    loader: Arc<Loader>,
    telemetry: Arc<Telemetry>,
) -> Option<EguiEditor<IsolaEditor>> {
    let app = IsolaEditor::new(params, loader, telemetry.clone());
    create_for(state, &telemetry, app)
}

/// Wraps any app (the Isola editor, or a test harness around it) with Isola's window settings
/// and lets the audio thread's telemetry trigger repaints. Main thread.
pub fn create_for<A: NiceEguiApp>(state: Arc<EguiEditorState>, telemetry: &Telemetry, app: A) -> Option<EguiEditor<A>> {
    let notifier = telemetry.repaint_notifier();
    let settings = EguiNiceSettings::new().with_tile("Isola").with_resize_hint(
        ResizeHint::resizable().with_min_logical_size(nice_plug::editor::dpi::LogicalSize::new(MIN_SIZE.0, MIN_SIZE.1)),
    );
    nice_plug_egui::create_egui_editor(state, notifier, settings, app)
}

/// The editor's GUI-thread state.
pub struct IsolaEditor {
    params: Arc<IsolaParams>,
    loader: Arc<Loader>,
    telemetry: Arc<Telemetry>,
    gui: Option<GuiContext>,
    spectrogram: spectrogram::Spectrogram,
    meters: meters::Meters,
    status: status::Status,
    weights: weights_picker::WeightsPicker,
    worker_weights: weights_picker::WeightsPicker,
    last_frame: Option<Instant>,
}

impl IsolaEditor {
    /// The editor's state, before its window opens. Main thread.
    pub fn new(params: Arc<IsolaParams>, loader: Arc<Loader>, telemetry: Arc<Telemetry>) -> Self {
        Self {
            params,
            loader,
            telemetry,
            gui: None,
            spectrogram: Default::default(),
            meters: Default::default(),
            status: Default::default(),
            weights: Default::default(),
            worker_weights: Default::default(),
            last_frame: None,
        }
    }

    /// Pulls everything the audio thread published since the last repaint.
    fn consume(&mut self) {
        let now = Instant::now();
        let dt = self.last_frame.map_or(0.0, |t| (now - t).as_secs_f32());
        self.last_frame = Some(now);
        let spectrogram = &mut self.spectrogram;
        // After `activate()` changed the frame shape the first drained frames use stale row
        // bands (bounds-checked), then `set_geometry` clears the image: a one-repaint glitch.
        if let Some(g) = self.telemetry.drain_frames(|mags, mask| spectrogram.push(mags, mask)) {
            spectrogram.set_geometry(g);
        }
        self.meters.update(&self.telemetry, dt);
        self.status.update(&self.telemetry, dt);
    }

    fn parameters(&self, ui: &mut Ui, setter: &ParamSetter) {
        let p = &self.params;
        egui::Grid::new("isola-params").num_columns(2).spacing([12.0, 6.0]).show(ui, |ui| {
            let row = |ui: &mut Ui, name: &str, w: &dyn Fn(&mut Ui)| {
                ui.label(name);
                w(ui);
                ui.end_row();
            };
            row(ui, "Output", &|ui| {
                ui.add(ParamSlider::for_param(&p.output, setter).with_width(200.0));
            });
            row(ui, "Vocal level", &|ui| {
                ui.add(ParamSlider::for_param(&p.vocal_level, setter).with_width(200.0));
            });
            row(ui, "Accompaniment level", &|ui| {
                ui.add(ParamSlider::for_param(&p.accompaniment_level, setter).with_width(200.0));
            });
            row(ui, "Strength", &|ui| {
                ui.add(ParamSlider::for_param(&p.strength, setter).with_width(200.0));
            });
            row(ui, "Mix", &|ui| {
                ui.add(ParamSlider::for_param(&p.mix, setter).with_width(200.0));
            });
            row(ui, "Bypass", &|ui| {
                ui.add(ParamSlider::for_param(&p.bypass, setter).with_width(200.0));
            });
            row(ui, "Latency", &|ui| {
                ui.add(ParamSlider::for_param(&p.latency, setter).with_width(200.0))
                    .on_hover_text("Latency of the built-in weights: 23 ms separates best, 12 ms and 6 ms are for live monitoring. A custom weights file runs at its own latency. Applies when the host restarts the plugin.");
            });
            row(ui, "Quality", &|ui| {
                ui.add(ParamSlider::for_param(&p.quality, setter).with_width(200.0))
                    .on_hover_text("Light: in-thread network, lowest latency. Worker: heavier network on its own thread, light network for late frames. Applies when the host restarts the plugin.");
            });
            row(ui, "Worker budget", &|ui| {
                ui.add(ParamSlider::for_param(&p.worker_budget, setter).with_width(200.0))
                    .on_hover_text("Frames the worker may take (added latency). Applies when the host restarts the plugin.");
            });
        });
        ui.weak("Double-click (or Ctrl+click) resets, click the value to type one.");
    }

    fn header(&self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.heading(RichText::new("Isola").strong());
            ui.label("real-time vocal isolation");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let zoom = ui.ctx().zoom_factor();
                egui::ComboBox::from_id_salt("isola-zoom").selected_text(format!("{:.0} %", zoom * 100.0)).show_ui(
                    ui,
                    |ui| {
                        for z in ZOOMS {
                            if ui.selectable_label((zoom - z).abs() < 0.01, format!("{:.0} %", z * 100.0)).clicked() {
                                ui.ctx().set_zoom_factor(z);
                            }
                        }
                    },
                );
                ui.label("UI scale");
            });
        });
    }

    fn legend(ui: &mut Ui) {
        // Painted swatches: the default fonts have no filled-square glyph.
        let swatch = |ui: &mut Ui, c: egui::Color32| {
            let s = ui.text_style_height(&egui::TextStyle::Body) * 0.7;
            let (r, _) = ui.allocate_exact_size(vec2(s, s), egui::Sense::hover());
            ui.painter().rect_filled(r, 2.0, c);
        };
        ui.horizontal(|ui| {
            ui.label("Input spectrogram, hue = vocal mask:");
            swatch(ui, spectrogram::VOCAL_COLOUR);
            ui.label("vocals");
            swatch(ui, egui::Color32::from_rgb(230, 38, 230));
            ui.label("undecided");
            swatch(ui, spectrogram::ACCOMPANIMENT_COLOUR);
            ui.label("accompaniment");
        });
    }
}

impl NiceEguiApp for IsolaEditor {
    fn build(
        &mut self,
        egui_ctx: egui::Context,
        gui: GuiContext,
        _frame: &mut Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        egui_ctx.set_visuals(egui::Visuals::dark());
        self.gui = Some(gui);
        Ok(())
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut Frame) {
        self.consume();
        // Keep animating while the window is open, even if the host sends no audio.
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(33));
        let status = self.loader.status();
        let Some(gui) = self.gui.clone() else { return };
        let setter = gui.param_setter();
        nice_plug_egui::resizable_window::ResizableWindow::new("isola-window")
            .min_size(vec2(MIN_SIZE.0, MIN_SIZE.1))
            .show(ui, |ui| {
                // The panel has no margin of its own here: keep text off the window edge.
                egui::Frame::new().inner_margin(10.0).show(ui, |ui| {
                    egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
                        ui.add_space(4.0);
                        self.header(ui);
                        ui.separator();
                        Self::legend(ui);
                        let w = ui.available_width();
                        let h = (ui.available_height() * 0.36).clamp(120.0, 420.0);
                        self.spectrogram.show(ui, vec2(w, h));
                        ui.add_space(6.0);
                        ui.columns(2, |cols| {
                            cols[0].label(RichText::new("Parameters").strong());
                            self.parameters(&mut cols[0], &setter);
                            cols[1].label(RichText::new("Output meters").strong());
                            let mw = cols[1].available_width();
                            self.meters.show(&mut cols[1], mw);
                        });
                        ui.separator();
                        ui.label(RichText::new("Status").strong());
                        self.status.show(ui, &self.telemetry, &status);
                        ui.separator();
                        let kept =
                            status.last_error.as_ref().map(|e| format!("{e} — the previous model keeps running."));
                        self.weights.show(ui, "Weights", &self.params.weights_path, kept.as_deref());
                        let worker_error = status.worker.as_ref().and_then(|w| w.error.as_deref());
                        self.worker_weights.show(ui, "Worker weights", &self.params.worker_weights_path, worker_error);
                    });
                });
            });
    }

    fn editor_closed(&mut self) {
        self.last_frame = None;
    }
}
