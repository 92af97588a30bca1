//! Isola: real-time vocal isolation as a CLAP and VST3 plugin.
//!
//! This file is host glue only: layouts, lifecycle and the process callback, calling into one
//! module per job. [`params`]: parameters and the persisted weights paths. [`weights`]: loading
//! and naming weights (never the audio thread). [`handover`]: the lock-free loader ↔ audio
//! thread model hand-over. [`inference`]: which network runs where (in-thread, worker,
//! pass-through), set up in `activate()`. [`telemetry`]: audio → GUI data. [`dsp`]: per-sample
//! helpers. [`editor`]: the GUI. The separation itself is `isola_engine`.

use std::num::NonZeroU32;
use std::sync::Arc;

use nice_plug::prelude::*;

pub mod dsp;
pub mod editor;
pub mod handover;
pub mod inference;
pub mod params;
pub mod telemetry;
pub mod weights;

use handover::{Loader, ModelSlot, PollAction};
use inference::{Mode, Prepared};
use isola_engine::config::supports_sample_rate;
use isola_engine::worker::Worker;
use params::IsolaParams;
use telemetry::{Taps, Telemetry};

/// Names of the two auxiliary outputs, in port order.
pub const AUX_OUTPUT_NAMES: [&str; 2] = ["Vocals", "Accompaniment"];

/// Work the audio thread hands to nice-plug's background thread (no heap data, as required).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Load the weights file currently chosen in [`params::WeightsPath`].
    LoadWeights,
    /// Drop models the audio thread retired.
    DropRetired,
}

pub struct Isola {
    params: Arc<IsolaParams>,
    loader: Arc<Loader>,
    slot: ModelSlot,
    prepared: Option<Prepared>,
    /// The inference worker of Quality = Worker (owned here, off the audio thread; the
    /// separator holds its lock-free link).
    worker: Option<Worker>,
    mode: Option<Mode>,
    /// A restart was requested for a mode change and has not happened yet.
    restart_requested: bool,
    /// Audio-thread end of the editor's data path; written every block, editor open or not.
    taps: Taps,
    editor_state: Arc<nice_plug_egui::EguiEditorState>,
}

impl Default for Isola {
    fn default() -> Self {
        let params = Arc::new(IsolaParams::default());
        let (loader, slot) = handover::channel(params.clone());
        let taps = Taps::new(Arc::default());
        Self {
            params,
            loader,
            slot,
            prepared: None,
            worker: None,
            mode: None,
            restart_requested: false,
            taps,
            editor_state: editor::default_state(),
        }
    }
}

impl Isola {
    /// Loading status (active model, last error) for a GUI. Any thread but the audio thread.
    pub fn loader(&self) -> Arc<Loader> {
        self.loader.clone()
    }

    /// What the audio thread publishes for the editor (meters, spectrogram frames, load).
    /// Any thread but the audio thread (clones an `Arc`).
    pub fn telemetry(&self) -> Arc<Telemetry> {
        self.taps.shared().clone()
    }

    /// Latency of the prepared separator in samples (0 before the first activation).
    /// Main thread, after `activate()` (and tests).
    pub fn latency_samples(&self) -> usize {
        self.slot.sep.as_ref().map_or(0, |s| s.latency_samples())
    }
}

impl Plugin for Isola {
    const NAME: &'static str = "Isola";
    const VENDOR: &'static str = "Isola contributors";
    const URL: &'static str = "https://example.invalid/isola";
    const EMAIL: &'static str = "isola@example.invalid";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    // Stereo first (the default layout hosts fall back to), then mono. Each stem gets its own
    // output bus with the main bus's channel count so it can be routed to a mixer channel.
    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            aux_output_ports: &[new_nonzero_u32(2), new_nonzero_u32(2)],
            names: PortNames {
                layout: Some("Stereo"),
                main_input: Some("Input"),
                main_output: Some("Output"),
                aux_inputs: &[],
                aux_outputs: &AUX_OUTPUT_NAMES,
            },
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(1),
            main_output_channels: NonZeroU32::new(1),
            aux_output_ports: &[new_nonzero_u32(1), new_nonzero_u32(1)],
            names: PortNames {
                layout: Some("Mono"),
                main_input: Some("Input"),
                main_output: Some("Output"),
                aux_inputs: &[],
                aux_outputs: &AUX_OUTPUT_NAMES,
            },
            ..AudioIOLayout::const_default()
        },
    ];

    // Parameter events split the block, so a change starts at its own sample.
    const SAMPLE_ACCURATE_AUTOMATION: bool = true;

    type Editor = nice_plug_egui::EguiEditor<editor::IsolaEditor>;
    type SysExMessage = ();
    type BackgroundTask = Task;

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(self.editor_state.clone(), self.params.clone(), self.loader.clone(), self.telemetry())
    }

    fn task_executor(&mut self) -> TaskExecutor<Self> {
        let loader = self.loader.clone();
        Box::new(move |task| match task {
            Task::LoadWeights => loader.load_requested(),
            Task::DropRetired => loader.drop_retired(),
        })
    }

    fn filter_state(state: &mut PluginState) {
        params::sanitize_state(state);
    }

    fn activate(
        &mut self,
        audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        context: &mut impl ActivateContext<Self>,
    ) -> bool {
        self.loader.drop_retired();
        let want = Prepared {
            sample_rate: buffer_config.sample_rate,
            // The engine chunks any block internally; this only sizes its scratch buffers.
            max_block: buffer_config.max_buffer_size.max(1) as usize,
            channels: audio_io_layout.main_output_channels.map_or(2, NonZeroU32::get) as usize,
        };
        // Every buffer the audio thread touches is sized here (the engine's `prepare` for the
        // host's sample rate and channel count), so `process` never allocates.
        self.restart_requested = false;
        if !supports_sample_rate(buffer_config.sample_rate as f64) {
            self.pass_through(buffer_config.sample_rate);
            context.set_latency_samples(0);
            return true;
        }
        self.loader.set_passthrough(None);
        // An error was already logged (and shown in the editor) where it was found: once.
        if self.ensure_separator(want).and_then(|()| self.setup_worker(want)).is_err() {
            return false;
        }
        if let Some(sep) = self.slot.sep.as_deref_mut() {
            // A bounce waits for every worker mask (no real-time deadline); nice-plug
            // re-activates us when the host switches the render mode.
            sep.set_offline(buffer_config.process_mode == ProcessMode::Offline);
            self.taps.prepare(sep, want.sample_rate);
        }
        // Exact engine latency; nice-plug tells the host (and restarts it if it changed).
        context.set_latency_samples(self.latency_samples() as u32);
        true
    }

    /// Main thread. Stops the worker thread (the separator falls back to the light network
    /// if the host processes anyway); the next `activate()` starts a new one.
    fn deactivate(&mut self) {
        self.stop_worker();
        self.loader.drop_retired();
    }

    /// Audio thread (nice-plug calls it after `activate()` and on host resets): no allocation.
    fn reset(&mut self) {
        if let Some(sep) = self.slot.sep.as_mut() {
            sep.reset();
        }
    }

    /// Audio thread: never allocates, locks, logs or blocks. All buffers were sized in
    /// `activate()` (the engine's `prepare`), the model queues are lock-free.
    fn process(
        &mut self,
        buffer: &mut Buffer,
        aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        // Reads the monotonic clock (vDSO, no allocation) for the editor's CPU load display.
        let started = std::time::Instant::now();
        match self.slot.poll(self.params.weights_path.generation()) {
            PollAction::Nothing => {}
            PollAction::StartLoad => context.execute_background(Task::LoadWeights),
            PollAction::DropRetired => context.execute_background(Task::DropRetired),
            PollAction::Restart => context.request_restart(),
        }
        // Quality, worker budget and worker weights change the latency: applied by `activate()`.
        if !self.restart_requested && self.mode_changed() {
            self.restart_requested = true;
            context.request_restart();
        }

        let main = buffer.as_slice();
        let (mut vocals, mut accompaniment) = match aux.outputs {
            [v, a, ..] => (Some(v.as_slice()), Some(a.as_slice())),
            _ => (None, None),
        };
        let Some(sep) = self.slot.sep.as_mut() else {
            // Pass-through (a sample rate the engine does not run at): the main buffer already
            // holds the input (nice-plug processes in place); garbage still never leaves.
            dsp::sanitize(main);
            vocals.map(dsp::silence);
            accompaniment.map(dsp::silence);
            return ProcessStatus::Normal;
        };
        // The engine also guards, but garbage never leaves the glue layer.
        dsp::sanitize(main);
        let params = self.params.separator_params();
        sep.process(main, vocals.as_deref_mut(), accompaniment.as_deref_mut(), &params);
        let len = main.first().map_or(0, |c| c.len());
        let rate = self.prepared.map_or(48_000.0, |p| p.sample_rate);
        let stems = [Some(&*main), vocals.as_deref(), accompaniment.as_deref()];
        self.taps.publish(sep, stems, len, rate, started.elapsed());
        // The delay line still holds audio after the input goes quiet.
        ProcessStatus::Tail(sep.latency_samples() as u32)
    }
}

impl ClapPlugin for Isola {
    const CLAP_ID: &'static str = "org.isola.vocal-isolator";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Real-time vocal isolation: vocals and accompaniment as separate outputs");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] =
        &[ClapFeature::AudioEffect, ClapFeature::Stereo, ClapFeature::Mono, ClapFeature::Utility, ClapFeature::Mixing];
}

impl Vst3Plugin for Isola {
    const VST3_CLASS_ID: [u8; 16] = *b"IsolaVocalIsoltr";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] = &[Vst3SubCategory::Fx, Vst3SubCategory::Tools];
}

nice_export_clap!(Isola);
nice_export_vst3!(Isola);
