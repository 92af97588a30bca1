//! Screenshot check: opens the real editor (nice-plug-egui, OpenGL through Mesa) in an Xvfb
//! server while an audio thread runs synthetic music through the separator and the editor
//! taps exactly as `Isola::process` does, then reads the screen back from Xvfb's framebuffer
//! file, saves a PNG and checks that the window is not blank and that the spectrogram moves.
//!
//! Needs `Xvfb` and Mesa's software OpenGL at run time (Debian: `xvfb libgl1-mesa-dri`). The
//! test fails, never skips, when they are missing.
//!
//! README screenshot: `ISOLA_SCREENSHOT=docs/editor.png cargo test -p isola-plugin --test
//! editor_screenshot` (default output: `target/tmp/editor-screenshot.png`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use isola_engine::rt::SeparatorParams;
use isola_plugin::editor;
use isola_plugin::inference::build_separator;
use isola_plugin::params::IsolaParams;
use isola_plugin::telemetry::{Taps, Telemetry};
use isola_plugin::{handover, weights};
use nice_plug::context::gui::GuiContext;
use nice_plug::editor::EditorHandle;
use nice_plug::prelude::*;

const RATE: f32 = 48_000.0;
const BLOCK: usize = 256;
const SCREEN: (usize, usize) = (1280, 1024);

/// Kills Xvfb when the test ends, however it ends.
struct Xvfb(Child, PathBuf);

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Starts Xvfb on a free display with its framebuffer mirrored to a file (`-fbdir`).
fn start_xvfb() -> (Xvfb, String, PathBuf) {
    let dir = std::env::temp_dir().join(format!("isola-xvfb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let display = (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("no free X display number");
    let child = Command::new("Xvfb")
        .arg(format!(":{display}"))
        .args(["-screen", "0", &format!("{}x{}x24", SCREEN.0, SCREEN.1), "-nolisten", "tcp", "-fbdir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start Xvfb: install it (Debian: apt-get install xvfb libgl1-mesa-dri)");
    let guard = Xvfb(child, dir.clone());
    let socket = format!("/tmp/.X11-unix/X{display}");
    let t0 = Instant::now();
    while !Path::new(&socket).exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "Xvfb did not come up on :{display}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, format!(":{display}"), dir.join("Xvfb_screen0"))
}

/// An RGB image read from Xvfb's XWD framebuffer file.
struct Shot {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Shot {
    fn read(path: &Path) -> Shot {
        let data = std::fs::read(path).expect("cannot read the Xvfb framebuffer");
        let be = |i: usize| u32::from_be_bytes(data[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
        let (header, w, h, byte_order, bpp, stride, ncolors) = (be(0), be(4), be(5), be(7), be(11), be(12), be(19));
        assert_eq!(bpp, 32, "expected a 24-bit (32 bpp) screen");
        let start = header + ncolors * 12;
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let p = &data[start + y * stride + x * 4..][..4];
                let v = if byte_order == 0 {
                    u32::from_le_bytes(p.try_into().unwrap())
                } else {
                    u32::from_be_bytes(p.try_into().unwrap())
                };
                rgb.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
            }
        }
        Shot { w, h, rgb }
    }

    fn crop(&self, w: usize, h: usize) -> Shot {
        let (w, h) = (w.min(self.w), h.min(self.h));
        let rgb = (0..h).flat_map(|y| self.rgb[y * self.w * 3..][..w * 3].iter().copied()).collect();
        Shot { w, h, rgb }
    }

    fn px(&self, x: usize, y: usize) -> [u8; 3] {
        self.rgb[(y * self.w + x) * 3..][..3].try_into().unwrap()
    }

    /// Whichever of two shots shows more (the later one unless the window flickered).
    fn max_colours(self, other: Shot) -> Shot {
        if self.distinct_colours() >= other.distinct_colours() { self } else { other }
    }

    fn distinct_colours(&self) -> usize {
        let mut c: Vec<[u8; 3]> = self.rgb.chunks(3).map(|p| [p[0], p[1], p[2]]).collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    }

    fn save(&self, path: &Path) {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut enc = png::Encoder::new(f, self.w as u32, self.h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap().write_image_data(&self.rgb).unwrap();
    }
}

/// The harness stands in for the host: it never edits parameters, so the setters are no-ops.
struct HarnessHost;

impl GuiContextInner for HarnessHost {
    fn plugin_api(&self) -> PluginApi {
        PluginApi::Standalone
    }
    unsafe fn raw_begin_set_parameter(&self, _param: ParamPtr) {}
    unsafe fn raw_set_parameter_normalized(&self, _param: ParamPtr, _normalized: f32) {}
    unsafe fn raw_end_set_parameter(&self, _param: ParamPtr) {}
    fn get_state(&self) -> PluginState {
        PluginState { version: String::new(), params: Default::default(), fields: Default::default() }
    }
    fn set_state(&self, _state: PluginState) {}
    fn request_restart(&self) {}
}

/// The real editor plus a way for the harness to close its window (egui's viewport command).
struct ClosableEditor {
    inner: editor::IsolaEditor,
    close: Arc<AtomicBool>,
}

impl nice_plug_egui::NiceEguiApp for ClosableEditor {
    fn build(
        &mut self,
        ctx: egui::Context,
        gui: GuiContext,
        frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.inner.build(ctx, gui, frame)
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut nice_plug_egui::Frame) {
        self.inner.ui(ui, frame);
        if self.close.load(Ordering::Acquire) {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}

/// Opens the editor in its own top-level window (no parent) at `zoom`, driven by baseview's
/// event loop on its own thread. Returns the thread and the flag that closes the window.
fn open_editor(
    params: &Arc<IsolaParams>,
    loader: &Arc<handover::Loader>,
    telemetry: &Arc<Telemetry>,
    zoom: f32,
) -> (std::thread::JoinHandle<()>, Arc<AtomicBool>) {
    let close = Arc::new(AtomicBool::new(false));
    let app = ClosableEditor {
        inner: editor::IsolaEditor::new(params.clone(), loader.clone(), telemetry.clone()),
        close: close.clone(),
    };
    let (w, h) = editor::DEFAULT_SIZE;
    let state =
        nice_plug_egui::EguiEditorState::from_size(nice_plug::editor::dpi::LogicalSize::new(w as f64, h as f64), zoom);
    let editor = editor::create_for(state, telemetry, app).unwrap();
    let thread = std::thread::spawn(move || {
        let gui = GuiContext::new(Arc::new(HarnessHost));
        let spawned = editor.spawn(None, false, Some(1.0), gui, None).expect("cannot open the editor window");
        spawned.handle.show(&spawned.window).expect("cannot show the editor window");
        let _keep = spawned.handle;
        nice_plug_egui::EguiEditorHandle::run_until_closed(spawned.window).expect("editor event loop failed");
    });
    (thread, close)
}

/// Closes the window and waits for its event loop to end, so the X connection closes before
/// Xvfb goes away (an X client that loses its server mid-frame takes the process down).
fn close_editor(thread: std::thread::JoinHandle<()>, close: &AtomicBool) {
    close.store(true, Ordering::Release);
    let t0 = Instant::now();
    while !thread.is_finished() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the editor window did not close");
        std::thread::sleep(Duration::from_millis(20));
    }
    thread.join().expect("editor thread panicked");
}

/// Waits until the `w` x `h` window area shows more than a flat colour.
fn wait_for_drawing(fb: &Path, w: usize, h: usize) -> Shot {
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let shot = Shot::read(fb).crop(w, h);
        if shot.distinct_colours() > 50 {
            return shot;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "the editor never drew anything (blank window)");
    }
}

/// Pixels bright enough to be text on the dark theme.
fn light_pixels(s: &Shot) -> usize {
    s.rgb.chunks(3).filter(|p| p.iter().all(|&c| c > 170)).count()
}

#[test]
fn editor_renders_and_the_spectrogram_moves() {
    let (_xvfb, display, fb) = start_xvfb();
    // SAFETY: this binary has one test and no other thread reads the environment yet.
    unsafe { std::env::set_var("DISPLAY", &display) };

    // The plugin's pieces, wired as in `Isola`: params, loader, separator, taps.
    let params = Arc::new(IsolaParams::default());
    let (loader, mut slot) = handover::channel(params.clone());
    let info = weights::load_weights(None, Default::default()).unwrap();
    loader.set_ok(info.name.clone(), Some(weights::ModelSummary::of(&info)));
    slot.install(build_separator(&info, RATE, BLOCK, 2).unwrap(), info);
    let telemetry = Arc::new(Telemetry::default());
    let mut taps = Taps::new(telemetry.clone());
    taps.prepare(slot.sep.as_deref().unwrap(), RATE);

    // Audio thread, paced in real time.
    let stop = Arc::new(AtomicBool::new(false));
    let audio = {
        let stop = stop.clone();
        let mut sep = slot.sep.take().unwrap();
        std::thread::spawn(move || {
            // 20 s of the engine's synthetic music, looped.
            let song = isola_engine::synth::track(RATE as u32, 20 * RATE as usize, 3).mixture();
            let mut n = 0usize;
            let sp = SeparatorParams::default();
            let mut bufs = vec![vec![0.0f32; BLOCK]; 6];
            let t0 = Instant::now();
            while !stop.load(Ordering::Acquire) {
                let started = Instant::now();
                let [l, r, v0, v1, a0, a1] = &mut bufs[..] else { unreachable!() };
                for (i, (l, r)) in l.iter_mut().zip(r.iter_mut()).enumerate() {
                    let at = (n + i) % song[0].len();
                    (*l, *r) = (song[0][at], song[1][at]);
                }
                n += BLOCK;
                let mut main: [&mut [f32]; 2] = [l, r];
                let mut vs: [&mut [f32]; 2] = [v0, v1];
                let mut accs: [&mut [f32]; 2] = [a0, a1];
                sep.process(&mut main, Some(&mut vs), Some(&mut accs), &sp);
                let stems = [Some(&main[..]), Some(&vs[..]), Some(&accs[..])];
                taps.publish(&sep, stems, BLOCK, RATE, started.elapsed());
                let due = t0 + Duration::from_secs_f64(n as f64 / RATE as f64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        })
    };

    let (gui_thread, close) = open_editor(&params, &loader, &telemetry, 1.0);
    let (w, h) = editor::DEFAULT_SIZE;
    let (w, h) = (w as usize, h as usize);
    let first = wait_for_drawing(&fb, w, h);
    // Let the spectrogram fill, then take two frames apart.
    std::thread::sleep(Duration::from_millis(2500));
    let a = Shot::read(&fb).crop(w, h);
    std::thread::sleep(Duration::from_millis(700));
    let b = Shot::read(&fb).crop(w, h);
    close_editor(gui_thread, &close);

    // 200 % UI scale: the same editor at twice the size (cropped to the screen) still draws
    // its text; the PNG next to the main one shows it.
    let (gui_thread, close) = open_editor(&params, &loader, &telemetry, 2.0);
    let zoomed = wait_for_drawing(&fb, 2 * w, 2 * h);
    std::thread::sleep(Duration::from_millis(1500));
    let zoomed = Shot::read(&fb).crop(2 * w, 2 * h).max_colours(zoomed);
    close_editor(gui_thread, &close);
    stop.store(true, Ordering::Release);
    audio.join().unwrap();

    // Relative paths are taken from the workspace root (cargo runs tests in `plugin/`).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = std::env::var_os("ISOLA_SCREENSHOT")
        .map(|p| root.join(p))
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("editor-screenshot.png"));
    b.save(&out);
    let out_200 = out.with_file_name(format!("{}-200.png", out.file_stem().unwrap().to_string_lossy()));
    zoomed.save(&out_200);
    eprintln!("screenshots: {} and {}", out.display(), out_200.display());
    assert!(zoomed.distinct_colours() > 200, "the 200 % editor looks blank");
    assert!(light_pixels(&zoomed) > 2000, "no text visible at 200 % ({} light pixels)", light_pixels(&zoomed));
    assert!(zoomed.w > w && zoomed.h > h, "the 200 % window is not larger: {}x{}", zoomed.w, zoomed.h);

    assert!(
        first.distinct_colours() > 50 && b.distinct_colours() > 200,
        "editor looks blank: {} colours",
        b.distinct_colours()
    );
    // Text is drawn (light pixels on the dark theme) somewhere in the window.
    let light = light_pixels(&b);
    assert!(light > 500, "no text visible ({light} light pixels)");

    // The spectrogram occupies the full width below the header; sample its middle band.
    let (sx, sy, sw, sh) = (w / 8, 130, w * 3 / 4, 100);
    let coloured = (sy..sy + sh)
        .flat_map(|y| (sx..sx + sw).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let p = b.px(x, y);
            p.iter().max().unwrap() - p.iter().min().unwrap() > 30
        })
        .count();
    assert!(coloured > sw * sh / 10, "the spectrogram region shows no coloured signal ({coloured} px)");
    let changed = (sy..sy + sh)
        .flat_map(|y| (sx..sx + sw).map(move |x| (x, y)))
        .filter(|&(x, y)| a.px(x, y) != b.px(x, y))
        .count();
    assert!(changed > sw * sh / 20, "the spectrogram did not move between frames ({changed} px changed)");
    let (published, _) = telemetry.frame_counts();
    assert!(published > 300, "only {published} frames reached the editor");
}
