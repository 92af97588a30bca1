//! The audio thread's side of the inference worker: the frame slots, the three lock-free
//! queues they cycle through, and the submit/collect operations the mask stage calls.
//! No candle here: the worker thread that computes the masks is [`crate::worker`].
//!
//! Frames travel in preallocated [`FrameSlot`]s: `free` → (audio thread fills magnitudes)
//! → `todo` → (worker fills logits) → `done` → (audio thread copies the logits out) →
//! `free`. Nothing is allocated or freed after the link is made, nobody blocks: when a
//! queue is full the frame is dropped, and the audio thread falls back to the light
//! network for any frame whose worker mask is not back within `budget_hops` frames.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

use crate::config::{FrameGrid, ModelConfig, StftConfig};

/// Extra frames (hops) of latency the worker gets by default: its mask for frame t is used
/// when frame t + 2 arrives (the plugin's `Worker budget` default, `isola separate`'s).
pub const DEFAULT_BUDGET_HOPS: usize = 2;

/// What the worker thread is doing. Read from any thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    Running = 0,
    /// Told to stop, or its owner was dropped.
    Stopped = 1,
    /// The model failed (error or panic); the thread has exited and the audio thread runs
    /// on the light network alone.
    Failed = 2,
}

impl WorkerState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => WorkerState::Running,
            1 => WorkerState::Stopped,
            _ => WorkerState::Failed,
        }
    }
}

/// One frame in flight: the audio thread's model-grid magnitudes in, mask logits out.
pub struct FrameSlot {
    pub index: u64,
    pub mags: Vec<f32>,
    pub logits: Vec<f32>,
}

/// Test and bench hooks that make the worker late, stuck or broken on purpose.
#[derive(Debug, Default)]
pub struct FaultInjection {
    /// Sleep this long after each batch (µs).
    pub delay_us: AtomicU64,
    /// Plus a pseudo-random extra delay in 0..jitter_us (µs).
    pub jitter_us: AtomicU64,
    /// While set, the worker takes no frames at all.
    pub stall: AtomicBool,
    /// The next batch panics inside the model call.
    pub panic_next: AtomicBool,
}

/// What the audio thread and the worker thread share.
pub(crate) struct Shared {
    pub free: ArrayQueue<Box<FrameSlot>>,
    pub todo: ArrayQueue<Box<FrameSlot>>,
    pub done: ArrayQueue<Box<FrameSlot>>,
    pub stop: AtomicBool,
    /// Set before the worker looks for frames, cleared once their results are out.
    pub working: AtomicBool,
    pub state: AtomicU8,
    pub processed: AtomicU64,
    pub faults: FaultInjection,
}

impl Shared {
    /// Queues with every slot for `budget_hops` frames in flight (plus slack), each slot
    /// sized for `features` values. Any thread but the audio thread (allocates every slot).
    pub fn new(budget_hops: usize, features: usize) -> Self {
        let slots = Self::slots(budget_hops);
        let shared = Shared {
            free: ArrayQueue::new(slots),
            todo: ArrayQueue::new(slots),
            done: ArrayQueue::new(slots),
            stop: AtomicBool::new(false),
            working: AtomicBool::new(false),
            state: AtomicU8::new(WorkerState::Running as u8),
            processed: AtomicU64::new(0),
            faults: FaultInjection::default(),
        };
        for _ in 0..slots {
            let slot = Box::new(FrameSlot { index: 0, mags: vec![0.0; features], logits: vec![0.0; features] });
            let _ = shared.free.push(slot);
        }
        shared
    }

    /// Slots in circulation for a budget of `budget_hops` frames.
    pub fn slots(budget_hops: usize) -> usize {
        2 * (budget_hops + 1) + 8
    }

    pub fn state(&self) -> WorkerState {
        WorkerState::from_u8(self.state.load(Ordering::Acquire))
    }
}

/// The audio thread's end of the worker: hand it to [`crate::rt::Separator::set_worker`].
pub struct WorkerLink {
    pub(crate) shared: Arc<Shared>,
    pub(crate) budget_hops: usize,
    pub(crate) model: ModelConfig,
    pub(crate) stft: StftConfig,
}

impl WorkerLink {
    /// Any thread.
    pub fn budget_hops(&self) -> usize {
        self.budget_hops
    }

    /// The frame grid of the worker's model (its masks replace the light ones frame by
    /// frame, so the two grids must be equal). Any thread.
    pub fn grid(&self) -> FrameGrid {
        self.model.frame_grid(&self.stft)
    }

    /// The worker thread's state. Any thread.
    pub fn state(&self) -> WorkerState {
        self.shared.state()
    }

    /// Hands frame `index` (model-grid magnitudes `[channels · n_bins]`) to the worker.
    /// Returns false when the frame was dropped (every slot in flight or a queue full).
    /// Audio thread; lock-free queue operations only.
    pub(crate) fn submit(&self, index: u64, mags: &[f32]) -> bool {
        let shared = &self.shared;
        let Some(mut slot) = shared.free.pop() else { return false };
        slot.index = index;
        slot.mags.copy_from_slice(mags);
        match shared.todo.push(slot) {
            Ok(()) => true,
            Err(slot) => {
                let _ = shared.free.push(slot);
                false
            }
        }
    }

    /// Passes every result that came back to `store(index, logits)` and recycles its slot.
    /// Audio thread; lock-free queue operations only.
    pub(crate) fn collect(&self, mut store: impl FnMut(u64, &[f32])) {
        let shared = &self.shared;
        while let Some(slot) = shared.done.pop() {
            store(slot.index, &slot.logits);
            let _ = shared.free.push(slot);
        }
    }
}
