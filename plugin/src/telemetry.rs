//! Audio -> GUI data path: spectrogram frames, stem meters, CPU load and worker counters.
//!
//! The audio thread owns a [`Taps`] and writes through it in `process`, whether an editor is
//! open or not: spectrogram frames go into a preallocated `rtrb` ring of `f32`s (a full ring
//! drops the frame), everything else into atomics. The GUI (or a test) reads the shared
//! [`Telemetry`]. The only lock is around the ring's consumer end, which the audio thread
//! never touches; it is replaced by `activate()` when the bin count changes.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isola_engine::rt::Separator;
use nice_plug_egui::RepaintNotifier;
use rtrb::{Consumer, Producer, RingBuffer};

/// Stems with a meter, in [`Telemetry::meter`] index order.
pub const STEMS: [&str; 3] = ["Output", "Vocals", "Accompaniment"];
/// Spectrogram frames the ring holds: ~0.7 s at 48 kHz with a 256 hop, plenty for a GUI that
/// drains it at 30+ Hz.
const RING_FRAMES: usize = 128;
/// Time constant of the RMS meters (VU-like).
const RMS_SECONDS: f32 = 0.3;
/// Time constant of the CPU load moving average.
const LOAD_SECONDS: f32 = 1.0;

/// What the worker does, as the GUI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerView {
    /// No inference worker attached: the light network runs on the audio thread.
    Light = 0,
    Running = 1,
    Stopped = 2,
    Failed = 3,
}

/// An `f32` in an `AtomicU32` (bit pattern); `fetch_max` is valid for non-negative values,
/// whose bit patterns sort like the numbers.
#[derive(Default)]
struct AtomicF32(AtomicU32);

impl AtomicF32 {
    fn load(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn store(&self, v: f32) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    /// `v` must be non-negative.
    fn fetch_max(&self, v: f32) {
        self.0.fetch_max(v.to_bits(), Ordering::Relaxed);
    }
    fn take(&self) -> f32 {
        f32::from_bits(self.0.swap(0, Ordering::Relaxed))
    }
}

/// Shape of the spectrogram frames (set by `activate()`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Geometry {
    /// Runtime STFT bins per frame.
    pub bins: usize,
    pub bin_hz: f32,
    pub hop: usize,
    pub sample_rate: f32,
}

/// The ring's consumer end and the shape of what it carries.
struct FrameReader {
    consumer: Consumer<f32>,
    geometry: Geometry,
}

/// Peak (since the last read) and RMS of one stem, linear.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MeterReading {
    pub peak: f32,
    pub rms: f32,
}

/// CPU load of `process` as a fraction of the block's real-time budget.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadReading {
    /// Moving average (~1 s).
    pub average: f32,
    /// Highest single block since the last read.
    pub peak: f32,
}

/// The shared, GUI-facing side.
#[derive(Default)]
pub struct Telemetry {
    peaks: [AtomicF32; 3],
    rms: [AtomicF32; 3],
    load_avg: AtomicF32,
    load_peak: AtomicF32,
    latency_samples: AtomicU32,
    sample_rate: AtomicF32,
    worker: AtomicU8,
    worker_misses: AtomicU64,
    frames_published: AtomicU64,
    frames_dropped: AtomicU64,
    /// Locked by readers only; the audio thread holds the producer end in [`Taps`].
    reader: Mutex<Option<FrameReader>>,
    /// The editor's repaint flag (an atomic), so new frames wake the GUI.
    repaint: RepaintNotifier,
}

impl Telemetry {
    /// Peak since the previous call (which resets it) and current RMS of stem `i` ([`STEMS`]).
    /// Any thread but the audio thread.
    pub fn meter(&self, i: usize) -> MeterReading {
        MeterReading { peak: self.peaks[i].take(), rms: self.rms[i].load() }
    }

    /// Load average and the peak since the previous call (which resets it).
    /// Any thread but the audio thread.
    pub fn load(&self) -> LoadReading {
        LoadReading { average: self.load_avg.load(), peak: self.load_peak.take() }
    }

    /// Latency in samples and the sample rate it applies to (0 before activation).
    /// Any thread but the audio thread.
    pub fn latency(&self) -> (u32, f32) {
        (self.latency_samples.load(Ordering::Relaxed), self.sample_rate.load())
    }

    /// What the worker does and how many of its masks missed their deadline.
    /// Any thread but the audio thread.
    pub fn worker(&self) -> (WorkerView, u64) {
        let view = match self.worker.load(Ordering::Relaxed) {
            1 => WorkerView::Running,
            2 => WorkerView::Stopped,
            3 => WorkerView::Failed,
            _ => WorkerView::Light,
        };
        (view, self.worker_misses.load(Ordering::Relaxed))
    }

    /// Spectrogram frames written and frames dropped because the ring was full.
    /// Any thread but the audio thread.
    pub fn frame_counts(&self) -> (u64, u64) {
        (self.frames_published.load(Ordering::Relaxed), self.frames_dropped.load(Ordering::Relaxed))
    }

    /// Hands every queued spectrogram frame to `f` as (input magnitudes, vocal mask 0..1), oldest
    /// first, and returns the frame shape (`None` before activation). Any thread but the audio
    /// thread; call it regularly (the GUI does every repaint) or frames are dropped.
    pub fn drain_frames(&self, mut f: impl FnMut(&[f32], &[f32])) -> Option<Geometry> {
        let mut guard = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let reader = guard.as_mut()?;
        let bins = reader.geometry.bins;
        while reader.consumer.slots() >= 2 * bins && bins > 0 {
            let Ok(chunk) = reader.consumer.read_chunk(2 * bins) else { break };
            let (a, b) = chunk.as_slices();
            if b.is_empty() {
                f(&a[..bins], &a[bins..]);
            } else {
                // The frame wraps around the ring's end: stitch it (GUI thread, may allocate).
                let frame: Vec<f32> = a.iter().chain(b).copied().collect();
                f(&frame[..bins], &frame[bins..]);
            }
            chunk.commit_all();
        }
        Some(reader.geometry)
    }

    /// The flag the editor polls for repaints; set whenever a spectrogram frame arrives.
    /// Main thread, when the editor is created (clones an `Arc`).
    pub fn repaint_notifier(&self) -> RepaintNotifier {
        self.repaint.clone()
    }
}

/// The audio thread's side. Owned by the plugin next to the separator.
pub struct Taps {
    shared: Arc<Telemetry>,
    producer: Option<Producer<f32>>,
    repaint: RepaintNotifier,
    bins: usize,
    last_frame: u64,
    mean_square: [f32; 3],
    load_avg: f32,
}

impl Taps {
    /// The audio thread's end of `shared`, frame ring unsized until [`Taps::prepare`]. Created
    /// with the plugin instance, never on the audio thread.
    pub fn new(shared: Arc<Telemetry>) -> Self {
        // Cloning the notifier clones an `Arc`: done here so `publish` never does.
        let repaint = shared.repaint.clone();
        Self { shared, producer: None, repaint, bins: 0, last_frame: 0, mean_square: [0.0; 3], load_avg: 0.0 }
    }

    /// The GUI-facing side, for handing to an editor. Any thread (cloning it is off the audio
    /// thread's path).
    pub fn shared(&self) -> &Arc<Telemetry> {
        &self.shared
    }

    /// Sizes the frame ring for a freshly prepared separator and publishes its latency.
    /// Allocates: `activate()` only, never the audio thread.
    pub fn prepare(&mut self, sep: &Separator, sample_rate: f32) {
        let bins = sep.last_spectrum().len();
        let (producer, consumer) = RingBuffer::new(RING_FRAMES * 2 * bins.max(1));
        let geometry = Geometry { bins, bin_hz: sep.bin_hz(), hop: sep.hop(), sample_rate };
        *self.shared.reader.lock().unwrap_or_else(|e| e.into_inner()) = Some(FrameReader { consumer, geometry });
        self.producer = Some(producer);
        self.bins = bins;
        self.last_frame = sep.frames_analysed();
        self.shared.latency_samples.store(sep.latency_samples() as u32, Ordering::Relaxed);
        self.shared.sample_rate.store(sample_rate);
    }

    /// Publishes what the last `sep.process` call saw and produced. `stems` are the output,
    /// vocals and accompaniment buffers after processing (`None` where the host gave none),
    /// `elapsed` the time `process` took for `len` samples.
    /// Audio thread: no allocation, no locks (ring writes and atomics only).
    pub fn publish(
        &mut self,
        sep: &Separator,
        stems: [Option<&[&mut [f32]]>; 3],
        len: usize,
        sample_rate: f32,
        elapsed: Duration,
    ) {
        self.publish_frame(sep);
        let block_seconds = len as f32 / sample_rate.max(1.0);
        let rms_coef = 1.0 - (-block_seconds / RMS_SECONDS).exp();
        for (i, stem) in stems.iter().enumerate() {
            let (mut peak, mut sum, mut n) = (0.0f32, 0.0f32, 0usize);
            for ch in stem.iter().flat_map(|s| s.iter()) {
                for &x in ch.iter() {
                    peak = peak.max(x.abs());
                    sum += x * x;
                }
                n += ch.len();
            }
            let ms = if n > 0 { sum / n as f32 } else { 0.0 };
            self.mean_square[i] += (ms - self.mean_square[i]) * rms_coef;
            if !self.mean_square[i].is_finite() {
                self.mean_square[i] = 0.0;
            }
            if peak.is_finite() {
                self.shared.peaks[i].fetch_max(peak);
            }
            self.shared.rms[i].store(self.mean_square[i].sqrt());
        }
        if len > 0 {
            let load = elapsed.as_secs_f32() / block_seconds;
            self.load_avg += (load - self.load_avg) * (1.0 - (-block_seconds / LOAD_SECONDS).exp());
            self.shared.load_avg.store(self.load_avg);
            self.shared.load_peak.fetch_max(load);
        }
        let view = match sep.worker_state() {
            None => WorkerView::Light,
            Some(isola_engine::worker::WorkerState::Running) => WorkerView::Running,
            Some(isola_engine::worker::WorkerState::Stopped) => WorkerView::Stopped,
            Some(isola_engine::worker::WorkerState::Failed) => WorkerView::Failed,
        };
        self.shared.worker.store(view as u8, Ordering::Relaxed);
        self.shared.worker_misses.store(sep.worker_stats().misses, Ordering::Relaxed);
    }

    /// Copies the newest analysed frame (magnitudes, channel-averaged vocal mask) into the
    /// ring. The engine exposes only the last frame, so a block spanning several hops
    /// contributes one column. Audio thread: no allocation.
    fn publish_frame(&mut self, sep: &Separator) {
        let frame = sep.frames_analysed();
        if frame == self.last_frame {
            return;
        }
        self.last_frame = frame;
        let (spectrum, m0, m1) = (sep.last_spectrum(), sep.last_mask(0), sep.last_mask(1));
        let bins = self.bins;
        let Some(producer) = self.producer.as_mut() else { return };
        if bins == 0 || spectrum.len() != bins || m0.len() != bins {
            return;
        }
        let Ok(chunk) = producer.write_chunk_uninit(2 * bins) else {
            // The GUI is closed or slow: drop the frame, never wait.
            self.shared.frames_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mask = (0..bins).map(|i| match m1.get(i) {
            Some(r) => 0.5 * (m0[i] + r),
            None => m0[i],
        });
        chunk.fill_from_iter(spectrum.iter().copied().chain(mask));
        self.shared.frames_published.fetch_add(1, Ordering::Relaxed);
        self.repaint.request_repaint();
    }
}
