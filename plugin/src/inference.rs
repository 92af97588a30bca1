//! Inference setup: which network runs where, and its lifecycle. The light network runs in the
//! audio thread inside the [`Separator`]; with Quality = Worker a larger one runs on an engine
//! [`Worker`] thread; at a sample rate the engine does not run at, nothing runs (pass-through).
//! Everything here is built, started and stopped off the audio thread, in `activate()` /
//! `deactivate()`; the audio thread only checks [`Isola::mode_changed`](crate::Isola) (atomics).

use isola_engine::embedded::LatencyMode;
use isola_engine::rt::Separator;
use isola_engine::worker::{Worker, WorkerConfig, preferred_device};

use crate::Isola;
use crate::handover::WorkerStatus;
use crate::params::{MAX_WORKER_BUDGET, Quality};
use crate::weights::{self, LoadError, ModelInfo, ModelSummary, build_net};

/// The buffer geometry a separator was prepared for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Prepared {
    pub(crate) sample_rate: f32,
    pub(crate) max_block: usize,
    pub(crate) channels: usize,
}

/// The inference setup the running separator was activated with; a change needs a restart
/// (it changes the latency).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Mode {
    quality: Quality,
    budget_hops: usize,
    /// `worker_weights_path` generation the worker was started with.
    worker_generation: u64,
    /// Which built-in weights run (light and worker).
    latency: LatencyMode,
}

/// The worker's deadline in hops: the `Worker budget` the user asked for, raised to cover the
/// host's largest block. The separator cuts a block into hops and steps them in one `process`
/// call, and no worker can answer within the call. With a deadline of `k` hops, frame t's mask
/// is due when frame t + k arrives, which for a frame at the start of a block is in the same
/// call whenever `k · hop < max_block`: always late (measured: 47 % of the 6 ms mode's frames
/// miss at 256-sample blocks and a 1-hop budget, README "Other figures"). Any thread.
pub(crate) fn deadline_hops(asked: usize, max_block: usize, hop: usize) -> usize {
    asked.max(max_block.div_ceil(hop.max(1)))
}

/// Builds and prepares a separator. Allocates: only from `activate()` or a background thread.
pub fn build_separator(
    info: &ModelInfo,
    sample_rate: f32,
    max_block: usize,
    channels: usize,
) -> Result<Box<Separator>, LoadError> {
    let net = build_net(info)?;
    let mut sep = Box::new(Separator::new(*net));
    sep.prepare(sample_rate, max_block, channels).map_err(|e| {
        LoadError(format!("cannot run '{}' at {sample_rate} Hz, {channels} channel(s): {e}", info.name))
    })?;
    Ok(sep)
}

/// Whether `worker` can run beside the light model `light`: the worker's masks replace the
/// light ones frame by frame, so both need the same STFT grid, bins and lookahead.
/// Called from `activate()`, never the audio thread (allocates the error message).
pub fn worker_fits(light: &ModelInfo, worker: &ModelInfo) -> Result<(), LoadError> {
    let grid = |i: &ModelInfo| i.weights.meta.model.frame_grid(&i.weights.meta.stft);
    if grid(light) != grid(worker) {
        return Err(LoadError(format!(
            "worker weights '{}' ({}) do not match the light model '{}' ({}): running the light network only",
            worker.name,
            grid(worker),
            light.name,
            grid(light)
        )));
    }
    Ok(())
}

impl Isola {
    /// Makes sure a separator for `want` runs the chosen weights. Called from `activate()`
    /// (never the audio thread): all loading and allocation happens here. An unreadable custom
    /// file keeps the previous model (or the embedded default) and records the error.
    pub(crate) fn ensure_separator(&mut self, want: Prepared) -> Result<(), LoadError> {
        let (path, generation) = self.params.weights_path.snapshot();
        // Served from here on, whatever the outcome: do not retry a failing file every block.
        self.slot.set_requested_generation(generation);

        let mode: LatencyMode = self.params.latency.value().into();
        let running = self.slot.info.as_ref().map(|i| i.source_of());
        let mut new_info = None;
        if running != Some(ModelInfo::source(path.as_deref(), mode)) {
            match weights::load_weights(path.as_deref(), mode) {
                Ok(info) => new_info = Some(info),
                Err(e) => self.loader.set_error(e),
            }
        }
        if new_info.is_none() && self.prepared == Some(want) && self.slot.sep.is_some() {
            return Ok(()); // Same model, same geometry: keep the running separator.
        }

        // The requested model, else the running one, else (parsed only if needed) the default.
        let current = self.slot.info.as_deref().cloned();
        let fallback = std::iter::once_with(|| weights::load_weights(None, mode).ok());
        let candidates = [new_info, current].into_iter().chain(fallback).flatten();
        let mut last_err = LoadError("no usable weights".into());
        for info in candidates {
            match build_separator(&info, want.sample_rate, want.max_block, want.channels) {
                Ok(sep) => {
                    self.loader.set_ok(info.name.clone(), Some(ModelSummary::of(&info)));
                    self.slot.install(sep, info);
                    self.prepared = Some(want);
                    return Ok(());
                }
                Err(e) => {
                    self.loader.set_error(e.clone());
                    last_err = e;
                }
            }
        }
        Err(last_err)
    }

    /// Activation at a sample rate the engine does not run at: no separator, no worker; the
    /// audio passes through unchanged with latency 0 and silent stems, and the editor says why.
    /// Called from `activate()` (never the audio thread): drops the separator here.
    pub(crate) fn pass_through(&mut self, sample_rate: f32) {
        self.stop_worker();
        // Keeps `slot.info`: the next activation at a supported rate rebuilds from it.
        self.slot.sep = None;
        self.prepared = None;
        self.mode = None;
        self.loader.set_worker(None);
        // The engine's own wording of the supported range.
        let why = isola_engine::EngineError::SampleRate(sample_rate);
        self.loader
            .set_passthrough(Some(format!("{why}: passing audio through unprocessed (latency 0, stems silent)")));
    }

    /// The mode the parameters ask for. Audio thread safe (atomic loads).
    fn wanted_mode(&self) -> Mode {
        Mode {
            quality: self.params.quality.value(),
            budget_hops: self.params.worker_budget.value().clamp(1, MAX_WORKER_BUDGET) as usize,
            worker_generation: self.params.worker_weights_path.generation(),
            latency: self.params.latency.value().into(),
        }
    }

    /// Whether the parameters ask for another inference setup than the running one.
    /// Audio thread: atomic loads only.
    pub(crate) fn mode_changed(&self) -> bool {
        let (Some(now), want) = (self.mode, self.wanted_mode()) else { return false };
        now.quality != want.quality
            || now.latency != want.latency
            || (want.quality == Quality::Worker
                && (now.budget_hops != want.budget_hops || now.worker_generation != want.worker_generation))
    }

    /// Stops any running worker, starts one for Quality = Worker and (re)prepares the separator
    /// for the resulting latency. Called from `activate()` (never the audio thread): loads the
    /// worker weights, spawns the thread and allocates. A worker that cannot start (bad file,
    /// another STFT grid, no device) leaves the light network alone and reports why.
    pub(crate) fn setup_worker(&mut self, want: Prepared) -> Result<(), LoadError> {
        self.stop_worker();
        let mode = self.wanted_mode();
        self.mode = Some(mode);
        let mut status = None;
        let mut link = None;
        if mode.quality == Quality::Worker {
            let (path, _) = self.params.worker_weights_path.snapshot();
            // `ensure_separator` prepared the separator at `want`: its hop is the runtime grid's.
            let hop = self.slot.sep.as_ref().map_or(0, |s| s.hop());
            let budget_hops = deadline_hops(mode.budget_hops, want.max_block, hop);
            let mut st = WorkerStatus {
                budget_hops,
                asked_hops: mode.budget_hops,
                max_block: want.max_block,
                ..Default::default()
            };
            let started =
                self.slot.info.as_deref().ok_or_else(|| LoadError("no light model".into())).and_then(|light| {
                    let info = weights::load_worker_weights(path.as_deref(), mode.latency)?;
                    worker_fits(light, &info)?;
                    let (device, device_name) = preferred_device();
                    // One candle thread: the worker shares the machine with the host and its plugins.
                    let config = WorkerConfig { budget_hops, threads: 1, device };
                    let (worker, l) = Worker::spawn(&info.weights, config)
                        .map_err(|e| LoadError(format!("cannot start the worker ('{}'): {e}", info.name)))?;
                    Ok((worker, l, info.name, device_name))
                });
            match started {
                Ok((worker, l, name, device)) => {
                    (st.model, st.device) = (name, device);
                    self.worker = Some(worker);
                    link = Some(l);
                }
                Err(e) => st.error = Some(e.0),
            }
            status = Some(st);
        }
        let Some(sep) = self.slot.sep.as_mut() else { return Err(LoadError("no separator".into())) };
        if let Err(e) = sep.set_worker(link) {
            // `worker_fits` checked the grid already; keep running on the light network.
            self.worker = None;
            let _ = sep.set_worker(None);
            if let Some(st) = status.as_mut() {
                st.error = Some(e.to_string());
            }
        }
        // With a worker the step is spread anyway (its budget already delays the masks).
        sep.set_spread_step(mode.quality == Quality::LightEven);
        // The worker's deadline changes the latency: every buffer is resized here.
        let prepared = sep.prepare(want.sample_rate, want.max_block, want.channels);
        if let (Some(st), true) = (status.as_mut(), self.worker.is_some()) {
            st.added_latency = st.budget_hops * sep.hop();
        }
        self.loader.set_worker(status);
        prepared.map_err(|e| {
            let e = LoadError(format!("cannot prepare the separator: {e}"));
            self.loader.set_error(e.clone());
            e
        })
    }

    /// Stops the running worker, if any. Main thread (`activate()` / `deactivate()`), never the
    /// audio thread: joins the worker's thread, which only sleeps between frames.
    pub(crate) fn stop_worker(&mut self) {
        if let Some(old) = self.worker.take() {
            old.stop();
        }
    }
}
