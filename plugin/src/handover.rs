//! The lock-free hand-over of models between the loader (background executor) and the audio
//! thread.
//!
//! Flow: a new weights path (state restore, or the future editor) bumps
//! [`WeightsPath::generation`](crate::params::WeightsPath). The audio thread notices it in
//! [`ModelSlot::poll`] and asks the background executor to run [`Loader::load_requested`], which
//! parses the file and builds the real-time network. A network that fits the running
//! [`Separator`]'s STFT grid goes through the `ready` queue and is swapped in by the engine at the
//! next frame boundary (no click, no reset). One that does not fit needs a new latency, so the
//! audio thread asks the host for a restart and `activate()` rebuilds the separator. Every retired
//! object goes back through the `retired` queue and is dropped by the background executor. An
//! invalid file changes nothing but the error message in [`LoadStatus`].

use std::sync::{Arc, Mutex};

use isola_engine::rt::{RtMaskNet, Separator};
use rtrb::{Consumer, Producer, RingBuffer};

use crate::params::WeightsPath;
use crate::weights::{LoadError, ModelInfo, ModelSummary, build_net, load_weights};

/// Capacity of the loader -> audio thread queue: one load in flight plus one superseding it.
const READY_CAPACITY: usize = 4;
/// Capacity of the audio thread -> dropper queue: a net, its info and a stale load at once.
const RETIRED_CAPACITY: usize = 16;

/// A model built off the audio thread, waiting to be swapped in.
pub struct ReadyModel {
    /// `Option`s so the audio thread can move the boxes out (pointer moves, no heap traffic)
    /// and retire the shell.
    pub net: Option<Box<RtMaskNet>>,
    pub info: Option<Box<ModelInfo>>,
    /// The `WeightsPath` generation this load answers.
    pub generation: u64,
}

/// Things the audio thread must not drop (they free memory).
pub enum Retired {
    Net(Box<RtMaskNet>),
    Ready(Box<ReadyModel>),
    Info(Box<ModelInfo>),
}

/// What a GUI (or a test) shows about the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStatus {
    /// Name of the model that is running (or about to be swapped in).
    pub active: String,
    /// The last loading error, cleared by the next successful load.
    pub last_error: Option<String>,
    /// Metadata of the active model, for the editor's status panel.
    pub summary: Option<ModelSummary>,
    /// The worker as set up by the last activation (`None` with Quality = Light).
    pub worker: Option<WorkerStatus>,
    /// Why the last activation passes audio through instead of separating (a sample rate
    /// outside the engine's range); `None` while separating.
    pub passthrough: Option<String>,
}

/// What the editor shows about the inference worker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerStatus {
    /// Model name, or why the worker is not running.
    pub model: String,
    /// Device it runs on ("CPU", "CUDA GPU 0", ...); empty when it could not start.
    pub device: String,
    /// Deadline in hops and the latency it adds in samples.
    pub budget_hops: usize,
    pub added_latency: usize,
    /// The `Worker budget` asked for, and the host's largest block: the deadline is raised
    /// above the budget when the block is longer than the budget's hops.
    pub asked_hops: usize,
    pub max_block: usize,
    pub error: Option<String>,
}

/// The loader's side, shared with the background executor (and a future editor).
pub struct Loader {
    params: Arc<crate::params::IsolaParams>,
    ready_tx: Mutex<Producer<Box<ReadyModel>>>,
    retired_rx: Mutex<Consumer<Retired>>,
    status: Mutex<LoadStatus>,
}

impl Loader {
    fn path(&self) -> &WeightsPath {
        &self.params.weights_path
    }

    /// Loads the currently requested weights and queues them for the audio thread. Runs on the
    /// background executor thread.
    pub fn load_requested(&self) {
        let (path, generation) = self.path().snapshot();
        let built = load_weights(path.as_deref(), self.params.latency.value().into()).and_then(|info| {
            let net = build_net(&info)?;
            Ok(Box::new(ReadyModel { net: Some(net), info: Some(Box::new(info)), generation }))
        });
        match built {
            Ok(ready) => {
                let name = ready.info.as_ref().map(|i| i.name.clone()).unwrap_or_default();
                let summary = ready.info.as_deref().map(ModelSummary::of);
                let pushed = self.ready_tx.lock().unwrap_or_else(|e| e.into_inner()).push(ready).is_ok();
                if pushed {
                    self.set_ok(name, summary);
                } else {
                    // Only when loads pile up faster than blocks are processed; the newest
                    // request is retried at the next generation change.
                    self.set_error(LoadError("model queue full, weights not swapped; choose the file again".into()));
                }
            }
            Err(e) => self.set_error(e),
        }
        self.drop_retired();
    }

    /// Drops everything the audio thread retired. Runs on the background executor thread (or
    /// in `activate()` / `deactivate()`).
    pub fn drop_retired(&self) {
        let mut rx = self.retired_rx.lock().unwrap_or_else(|e| e.into_inner());
        while let Ok(item) = rx.pop() {
            drop(item);
        }
    }

    /// A copy of the current status. Any thread but the audio thread (locks, clones).
    pub fn status(&self) -> LoadStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a successfully loaded model and clears the last error. Background executor or
    /// `activate()`, never the audio thread (locks).
    pub fn set_ok(&self, active: String, summary: Option<ModelSummary>) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.active = active;
        s.last_error = None;
        s.summary = summary;
    }

    /// Records why the plugin passes audio through (`None`: separating). Logged once.
    /// Called from `activate()`, never the audio thread (locks, logs).
    pub fn set_passthrough(&self, reason: Option<String>) {
        if let Some(r) = &reason {
            nice_plug::nice_warn!("Isola: {r}");
        }
        self.status.lock().unwrap_or_else(|e| e.into_inner()).passthrough = reason;
    }

    /// Records the worker as set up by the last activation, logging its error if any.
    /// Called from `activate()`, never the audio thread (locks, logs).
    pub fn set_worker(&self, worker: Option<WorkerStatus>) {
        if let Some(e) = worker.as_ref().and_then(|w| w.error.as_ref()) {
            nice_plug::nice_error!("Isola: {e}");
        }
        self.status.lock().unwrap_or_else(|e| e.into_inner()).worker = worker;
    }

    /// Records and logs a loading error; the running model stays. Background executor or
    /// `activate()`, never the audio thread (locks, logs).
    pub fn set_error(&self, e: LoadError) {
        nice_plug::nice_error!("Isola: {e}");
        self.status.lock().unwrap_or_else(|e| e.into_inner()).last_error = Some(e.to_string());
    }
}

/// What [`ModelSlot::poll`] asks the host glue to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollAction {
    Nothing,
    /// Schedule [`Loader::load_requested`] on the background executor.
    StartLoad,
    /// Schedule [`Loader::drop_retired`] on the background executor.
    DropRetired,
    /// The new model needs a different STFT grid (latency): ask the host to restart.
    Restart,
}

/// The audio thread's side: the running separator and the queue ends.
pub struct ModelSlot {
    pub sep: Option<Box<Separator>>,
    /// The model the separator runs (kept so `activate()` can rebuild at a new sample rate).
    pub info: Option<Box<ModelInfo>>,
    ready_rx: Consumer<Box<ReadyModel>>,
    retired_tx: Producer<Retired>,
    /// Latest `WeightsPath` generation a load was requested (or done) for.
    requested_generation: u64,
    /// A retired object waiting for room in the queue (kept rather than dropped here).
    pending_retire: Option<Retired>,
    /// Something was queued for dropping during the current `poll`.
    retired_now: bool,
}

/// Creates the shared loader and the audio-thread slot, connected by two queues.
/// Runs once per plugin instance (never on the audio thread).
pub fn channel(params: Arc<crate::params::IsolaParams>) -> (Arc<Loader>, ModelSlot) {
    // Both queues are sized here for the instance's lifetime: the audio thread only moves
    // boxes through them (pointer-sized pushes and pops), so `process` never allocates.
    let (ready_tx, ready_rx) = RingBuffer::new(READY_CAPACITY);
    let (retired_tx, retired_rx) = RingBuffer::new(RETIRED_CAPACITY);
    let requested_generation = params.weights_path.generation();
    (
        Arc::new(Loader {
            params,
            ready_tx: Mutex::new(ready_tx),
            retired_rx: Mutex::new(retired_rx),
            status: Mutex::new(LoadStatus::default()),
        }),
        ModelSlot {
            sep: None,
            info: None,
            ready_rx,
            retired_tx,
            requested_generation,
            pending_retire: None,
            retired_now: false,
        },
    )
}

impl ModelSlot {
    /// Marks `generation` as served (called by `activate()` after a synchronous load).
    /// Main thread (`activate()`), never the audio thread.
    pub fn set_requested_generation(&mut self, generation: u64) {
        self.requested_generation = generation;
    }

    /// Installs a freshly prepared separator. Not for the audio thread: drops the old one here.
    pub fn install(&mut self, sep: Box<Separator>, info: ModelInfo) {
        self.sep = Some(sep);
        self.info = Some(Box::new(info));
        // Loads that were in flight target the old separator; `activate()` already served the
        // current generation, so anything queued is stale.
        while let Ok(stale) = self.ready_rx.pop() {
            drop(stale);
        }
    }

    /// Handles weights requests, finished loads and retired models.
    /// Audio thread: never allocates, locks or blocks (queue pops/pushes and atomics only).
    pub fn poll(&mut self, current_generation: u64) -> PollAction {
        let mut action = PollAction::Nothing;
        self.retired_now = false;
        if current_generation != self.requested_generation {
            self.requested_generation = current_generation;
            action = PollAction::StartLoad;
        }
        // The engine keeps one retired net until taken, and queues no new model before; take
        // it first, when it can be queued.
        if self.pending_retire.is_none()
            && self.retired_tx.slots() > 0
            && let Some(net) = self.sep.as_mut().and_then(|s| s.take_retired_model())
        {
            self.retire(Retired::Net(net));
        }
        // A swap retires up to three objects: only take a ready model when they all fit, so
        // `retire` never runs out of room, and when the separator can queue it now. A model
        // that is ready while an earlier swap is still in flight waits in the queue for a
        // later poll: popped then, it would be refused and lost, and the plugin would keep
        // running the earlier choice while naming the later one.
        let can_queue = self.sep.as_ref().is_none_or(|s| s.can_queue_model());
        let room = self.pending_retire.is_none() && self.retired_tx.slots() >= 3 && can_queue;
        if room && let Ok(mut ready) = self.ready_rx.pop() {
            let fits = match (&self.sep, &ready.net) {
                (Some(sep), Some(net)) => sep.accepts(net),
                _ => false,
            };
            if ready.generation != self.requested_generation {
                // Superseded by a newer request while loading.
                self.retire(Retired::Ready(ready));
            } else if !fits {
                // Different grid (latency): `activate()` rebuilds from the persisted path.
                self.retire(Retired::Ready(ready));
                return PollAction::Restart;
            } else if let (Some(sep), Some(net), Some(info)) = (self.sep.as_mut(), ready.net.take(), ready.info.take())
            {
                match sep.queue_model(net) {
                    Ok(()) => {
                        if let Some(old) = self.info.replace(info) {
                            self.retire(Retired::Info(old));
                        }
                    }
                    Err(net) => {
                        // Unreachable: `can_queue` and `fits` were checked above.
                        self.retire(Retired::Net(net));
                        self.retire(Retired::Info(info));
                    }
                }
                self.retire(Retired::Ready(ready));
            } else {
                self.retire(Retired::Ready(ready));
            }
        }
        if let Some(item) = self.pending_retire.take() {
            self.retire(item);
        }
        if action == PollAction::Nothing && self.retired_now {
            action = PollAction::DropRetired;
        }
        action
    }

    /// Queues an object for dropping off the audio thread. Audio thread: no allocation.
    fn retire(&mut self, item: Retired) {
        self.retired_now = true;
        if let Err(rtrb::PushError::Full(item)) = self.retired_tx.push(item) {
            // Unreachable by construction (`poll` checks for room first); keeping it back is
            // still better than freeing memory on the audio thread.
            debug_assert!(self.pending_retire.is_none(), "retire queue overflow");
            if let Some(old) = self.pending_retire.replace(item) {
                // Leak rather than deallocate on the audio thread.
                std::mem::forget(old);
            }
        }
    }

    /// Drops the separator and model here. Not for the audio thread (`deactivate`, tests).
    pub fn clear(&mut self) {
        self.sep = None;
        self.info = None;
        self.pending_retire = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::build_separator;
    use crate::params::IsolaParams;
    use isola_engine::weights::random_weights;
    use isola_engine::{ModelConfig, StftConfig};

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("isola-model-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Processes `blocks` blocks of a test tone through the slot's separator; returns the
    /// left vocal stem.
    fn run(slot: &mut ModelSlot, blocks: usize) -> Vec<f32> {
        let tone: Vec<f32> = (0..blocks * 256).map(|n| (n as f32 * 0.05).sin() * 0.3).collect();
        let render = isola_engine::render::Render { blocks: &[256], stem_channels: Some(2), align: false };
        let sep = slot.sep.as_mut().unwrap();
        render.run(sep, &[tone.clone(), tone], &isola_engine::rt::SeparatorParams::default()).vocals.swap_remove(0)
    }

    #[test]
    fn slot_swaps_models_keeps_running_on_errors_and_asks_for_restart_on_new_grid() {
        let params = Arc::new(IsolaParams::default());
        let (loader, mut slot) = channel(params.clone());
        let info = load_weights(None, Default::default()).unwrap();
        let sep = build_separator(&info, 48_000.0, 256, 2).unwrap();
        slot.install(sep, info.clone());
        slot.set_requested_generation(params.weights_path.generation());
        assert_eq!(slot.poll(params.weights_path.generation()), PollAction::Nothing);
        let before = run(&mut slot, 20);

        // Same grid, different weights: swapped at a frame boundary, old net retired.
        let dir = temp_dir("swap");
        let custom = dir.join("custom.safetensors");
        random_weights(info.weights.meta.model, info.weights.meta.stft, 99).save(&custom).unwrap();
        params.weights_path.choose(Some(custom.to_string_lossy().into_owned()));
        assert_eq!(slot.poll(params.weights_path.generation()), PollAction::StartLoad);
        loader.load_requested();
        let st = loader.status();
        assert!(st.active.contains("custom.safetensors"), "{st:?}");
        assert_eq!(st.last_error, None);
        let gen_now = params.weights_path.generation();
        // Picks up the ready model (retiring its shell and the old info).
        assert_eq!(slot.poll(gen_now), PollAction::DropRetired);
        let _ = run(&mut slot, 2); // crosses a frame boundary: the engine swaps
        assert_eq!(slot.poll(gen_now), PollAction::DropRetired, "old net not retired");
        loader.drop_retired();
        assert_eq!(slot.poll(gen_now), PollAction::Nothing);
        assert_eq!(slot.info.as_ref().unwrap().path.as_deref(), custom.to_str());
        let after = run(&mut slot, 20);
        assert!(
            before.iter().zip(&after).any(|(a, b)| (a - b).abs() > 1e-5),
            "the swapped model produces the same stems"
        );

        // An invalid file: error surfaced, nothing queued, the custom model keeps running.
        let bad = dir.join("bad.safetensors");
        std::fs::write(&bad, b"nope").unwrap();
        params.weights_path.choose(Some(bad.to_string_lossy().into_owned()));
        assert_eq!(slot.poll(params.weights_path.generation()), PollAction::StartLoad);
        loader.load_requested();
        let st = loader.status();
        assert!(st.last_error.as_deref().unwrap().contains("bad.safetensors"), "{st:?}");
        assert!(st.active.contains("custom.safetensors"));
        assert_eq!(slot.poll(params.weights_path.generation()), PollAction::Nothing);
        assert_eq!(slot.info.as_ref().unwrap().path.as_deref(), custom.to_str());

        // Another STFT grid: cannot be swapped in place, the host must restart us.
        let stft = StftConfig { fft_size: 2048, hop: 512, ..StftConfig::default() };
        let wide = dir.join("wide.safetensors");
        random_weights(ModelConfig::light(&stft), stft, 5).save(&wide).unwrap();
        params.weights_path.choose(Some(wide.to_string_lossy().into_owned()));
        assert_eq!(slot.poll(params.weights_path.generation()), PollAction::StartLoad);
        loader.load_requested();
        assert_eq!(slot.poll(params.weights_path.generation()), PollAction::Restart);
        assert_eq!(slot.info.as_ref().unwrap().path.as_deref(), custom.to_str());
        loader.drop_retired();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_second_choice_ready_while_the_first_swap_is_in_flight_is_not_lost() {
        let params = Arc::new(IsolaParams::default());
        let (loader, mut slot) = channel(params.clone());
        let info = load_weights(None, Default::default()).unwrap();
        slot.install(build_separator(&info, 48_000.0, 256, 2).unwrap(), info.clone());
        slot.set_requested_generation(params.weights_path.generation());
        let dir = temp_dir("two-choices");
        let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
        for (path, seed) in [(&a, 1), (&b, 2)] {
            random_weights(info.weights.meta.model, info.weights.meta.stft, seed).save(path).unwrap();
        }
        // A is chosen, loaded and queued; before a frame boundary swaps it in, B is chosen
        // and loaded too (two quick clicks in the weights menu).
        for path in [&a, &b] {
            params.weights_path.choose(Some(path.to_string_lossy().into_owned()));
            assert_eq!(slot.poll(params.weights_path.generation()), PollAction::StartLoad);
            loader.load_requested();
            let _ = slot.poll(params.weights_path.generation());
        }
        assert_eq!(slot.info.as_ref().unwrap().path.as_deref(), a.to_str(), "A is queued, B waits");
        // Frame boundaries swap A in, then B; the dropped objects go off the audio thread.
        for _ in 0..4 {
            let _ = run(&mut slot, 2);
            let _ = slot.poll(params.weights_path.generation());
            loader.drop_retired();
        }
        assert_eq!(slot.info.as_ref().unwrap().path.as_deref(), b.to_str(), "the later choice runs");
        assert!(loader.status().active.contains("b.safetensors"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
