//! The inference worker thread: runs a heavier mask network with candle, fed by the audio
//! thread through the lock-free queues of [`crate::rt::link`] (the audio thread's side,
//! which never touches candle), with a fixed deadline. Nothing is allocated or freed on the
//! audio thread after [`Worker::spawn`]; the audio thread falls back to the light network
//! for any frame whose worker mask is not back within `budget_hops` frames (see
//! [`crate::rt::Separator::set_worker`]).
//!
//! The worker steps its frames one by one (several per wake-up when it is catching up).
//! candle runs inside a rayon pool of exactly `threads` threads owned by the worker, so it
//! never starts the global pool inside a host.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use candle_core::{Device, Tensor};

use crate::error::EngineError;
use crate::model::{self, MaskNet, MaskNetState};
use crate::rt::link::Shared;
pub use crate::rt::link::{DEFAULT_BUDGET_HOPS, FaultInjection, FrameSlot, WorkerLink, WorkerState};
use crate::weights::Weights;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Extra frames (hops) of latency the worker is allowed: the mask for frame t is used
    /// when frame t + budget_hops arrives. In real time this must span the host's block
    /// (`budget_hops · hop ≥` block): frames that arrive in one `process` call are stepped
    /// back to back, and the worker cannot answer within the call.
    pub budget_hops: usize,
    /// CPU threads candle may use (its rayon pool). 1 keeps the worker on one core.
    pub threads: usize,
    /// Where the model runs: `Device::Cpu`, or a CUDA/Metal device when built with the
    /// `cuda`/`metal` feature.
    pub device: Device,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self { budget_hops: DEFAULT_BUDGET_HOPS, threads: 1, device: Device::Cpu }
    }
}

/// The device a worker runs on by default, and its name for display: the first CUDA GPU
/// (`cuda` feature) or the Metal GPU (`metal` feature) when one is present, else the CPU.
/// Any thread but the audio thread (probing a GPU allocates and may take a while).
pub fn preferred_device() -> (Device, String) {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return (d, "CUDA GPU 0".to_owned());
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = Device::new_metal(0) {
        return (d, "Metal GPU".to_owned());
    }
    (Device::Cpu, "CPU".to_owned())
}

/// Owner of the worker thread (any non-audio thread). Dropping it stops and joins the
/// thread.
pub struct Worker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Loads `weights` with candle on `config.device` and starts the thread. Any thread but
    /// the audio thread (allocates every slot here).
    pub fn spawn(weights: &Weights, config: WorkerConfig) -> Result<(Worker, WorkerLink), EngineError> {
        let model_cfg = weights.meta.model;
        let slots = Shared::slots(config.budget_hops);
        let shared = Arc::new(Shared::new(config.budget_hops, model_cfg.features()));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads.max(1))
            .thread_name(|i| format!("isola-worker-candle-{i}"))
            .build()
            .map_err(|e| EngineError::Worker(e.to_string()))?;
        let net = model::load(weights, &config.device).map_err(|e| EngineError::Worker(e.to_string()))?;
        let state = net.initial_state(1, &config.device).map_err(|e| EngineError::Worker(e.to_string()))?;
        let thread_shared = Arc::clone(&shared);
        let device = config.device.clone();
        let thread = std::thread::Builder::new()
            .name("isola-worker".into())
            .spawn(move || {
                let mut runner = Runner { net, state, device, shared: thread_shared, batch: Vec::with_capacity(slots) };
                pool.install(|| runner.run());
            })
            .map_err(|e| EngineError::Worker(e.to_string()))?;
        let link = WorkerLink {
            shared: Arc::clone(&shared),
            budget_hops: config.budget_hops,
            model: model_cfg,
            stft: weights.meta.stft,
        };
        Ok((Worker { shared, thread: Some(thread) }, link))
    }

    pub fn state(&self) -> WorkerState {
        self.shared.state()
    }

    /// Frames the model has computed so far.
    pub fn processed(&self) -> u64 {
        self.shared.processed.load(Ordering::Acquire)
    }

    /// Hooks for tests and benches.
    pub fn faults(&self) -> &FaultInjection {
        &self.shared.faults
    }

    /// Waits (sleeping, never on the audio thread) until every submitted frame has been
    /// computed or the worker is no longer running. For tests and offline rendering.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if self.state() != WorkerState::Running {
                return false;
            }
            if self.shared.todo.is_empty() && !self.shared.working.load(Ordering::Acquire) {
                return true;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        false
    }

    /// Stops and joins the thread. Any thread but the audio thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.shared.state.compare_exchange(
            WorkerState::Running as u8,
            WorkerState::Stopped as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The worker thread's own state.
struct Runner {
    net: MaskNet,
    state: MaskNetState,
    device: Device,
    shared: Arc<Shared>,
    /// Slots taken from `todo`, kept boxed: they go back to the queues as the same
    /// allocations the audio thread handed over (moving a pointer, not a frame).
    #[allow(clippy::vec_box)]
    batch: Vec<Box<FrameSlot>>,
}

impl Runner {
    fn run(&mut self) {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let shared = Arc::clone(&self.shared);
        let faults = &shared.faults;
        while !shared.stop.load(Ordering::Acquire) {
            if faults.stall.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_micros(500));
                continue;
            }
            self.shared.working.store(true, Ordering::Release);
            while let Some(slot) = self.shared.todo.pop() {
                self.batch.push(slot);
            }
            if self.batch.is_empty() {
                self.shared.working.store(false, Ordering::Release);
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            let panic_now = faults.panic_next.swap(false, Ordering::AcqRel);
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                if panic_now {
                    panic!("injected worker panic");
                }
                self.compute()
            }));
            match result {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    self.shared.state.store(WorkerState::Failed as u8, Ordering::Release);
                    self.shared.working.store(false, Ordering::Release);
                    return;
                }
            }
            let delay = faults.delay_us.load(Ordering::Acquire);
            let jitter = faults.jitter_us.load(Ordering::Acquire);
            if delay + jitter > 0 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let extra = if jitter > 0 { rng % jitter } else { 0 };
                std::thread::sleep(Duration::from_micros(delay + extra));
            }
            self.shared.processed.fetch_add(self.batch.len() as u64, Ordering::AcqRel);
            for slot in self.batch.drain(..) {
                // The audio thread is behind on collecting: drop the result, recycle the slot.
                if let Err(slot) = self.shared.done.push(slot) {
                    let _ = self.shared.free.push(slot);
                }
            }
            self.shared.working.store(false, Ordering::Release);
        }
    }

    /// Every pending frame in order, continuing the recurrent state. One step per frame:
    /// batching frames into one sequence measured slower per frame with candle on CPU.
    fn compute(&mut self) -> candle_core::Result<()> {
        let m = *self.net.config();
        for slot in self.batch.iter_mut() {
            let x = Tensor::from_slice(&slot.mags, (1, m.channels, m.n_bins), &self.device)?;
            let logits = self.net.step(&x, &mut self.state)?.flatten_all()?.to_vec1::<f32>()?;
            slot.logits.copy_from_slice(&logits);
        }
        Ok(())
    }
}
