//! "Load weights…": a path field, a native file dialog where one is installed (zenity or
//! kdialog, run on its own thread so the GUI keeps drawing), and the loader's last error shown
//! inline. A failed load keeps the running model (see `handover.rs`). GUI thread only.

use std::process::Command;
use std::sync::mpsc::{Receiver, channel};

use egui::{Color32, Ui};

use crate::params::WeightsPath;

#[derive(Default)]
pub struct WeightsPicker {
    /// Text in the path field.
    path: String,
    /// Whether `path` has been seeded from the persisted value.
    seeded: bool,
    /// A file dialog in flight: its answer (`None` = cancelled).
    dialog: Option<Receiver<Option<String>>>,
    /// Whether a dialog program is installed (looked up once).
    has_dialog: Option<bool>,
}

/// A file dialog program found in `PATH`, with its arguments.
fn dialog_command() -> Option<Command> {
    let find = |name: &str| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    if let Some(z) = find("zenity") {
        let mut c = Command::new(z);
        c.args(["--file-selection", "--title=Load Isola weights", "--file-filter=*.safetensors"]);
        return Some(c);
    }
    find("kdialog").map(|k| {
        let mut c = Command::new(k);
        c.args(["--getopenfilename", ".", "*.safetensors"]);
        c
    })
}

impl WeightsPicker {
    /// `label` names the network ("Weights", "Worker weights"), `error` is its last loading
    /// problem. GUI thread.
    pub fn show(&mut self, ui: &mut Ui, label: &str, weights: &WeightsPath, error: Option<&str>) {
        if !self.seeded {
            self.path = weights.get().unwrap_or_default();
            self.seeded = true;
        }
        if let Some(rx) = &self.dialog
            && let Ok(answer) = rx.try_recv()
        {
            self.dialog = None;
            if let Some(p) = answer {
                self.path = p;
                weights.choose(Some(self.path.clone()));
            }
        }
        ui.horizontal(|ui| {
            ui.label(label);
            let edit = ui.add(
                egui::TextEdit::singleline(&mut self.path)
                    .hint_text("embedded default — type a .safetensors path")
                    .desired_width((ui.available_width() - 330.0).max(120.0)),
            );
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Load").clicked() || enter {
                let p = self.path.trim();
                weights.choose(if p.is_empty() { None } else { Some(p.to_owned()) });
            }
            let browse = ui.add_enabled(self.dialog.is_none(), egui::Button::new("Load weights…"));
            if browse.clicked() {
                match dialog_command() {
                    Some(mut cmd) => {
                        let (tx, rx) = channel();
                        std::thread::spawn(move || {
                            let answer = cmd.output().ok().filter(|o| o.status.success()).and_then(|o| {
                                let s = String::from_utf8_lossy(&o.stdout).trim().to_owned();
                                (!s.is_empty()).then_some(s)
                            });
                            let _ = tx.send(answer);
                        });
                        self.dialog = Some(rx);
                    }
                    None => {
                        browse.highlight();
                    }
                }
            }
            if ui.button("Default").on_hover_text("Use the embedded default weights").clicked() {
                self.path.clear();
                weights.choose(None);
            }
        });
        if !*self.has_dialog.get_or_insert_with(|| dialog_command().is_some()) {
            ui.weak("No file dialog (zenity/kdialog) found: type the path and press Load.");
        }
        if let Some(err) = error {
            ui.colored_label(Color32::from_rgb(240, 90, 70), format!("⚠ {err}"));
        }
    }
}
