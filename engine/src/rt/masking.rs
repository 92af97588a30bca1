//! Frame-rate work of the separator: magnitudes onto the model grid, the light network's
//! step, the worker's mask when it is on time (light mask otherwise, crossfaded), and the
//! masked spectrum of the frame the mask belongs to.
//!
//! Frame bookkeeping, for frame `f` (lookahead `D`, worker budget `K`, `K = 0` without a
//! worker): the networks see frame `f` and produce the mask for spectrum `f − D`; that mask
//! is applied `K` frames later, to spectrum `f − D − K`, so the worker has `K` hops to answer.
//!
//! With the step spread (`K ≥ 1`), the light network only begins frame `f`'s step here; the
//! separator advances it in the blocks of the next hop and it completes at frame `f + 1`,
//! before its mask is due.

use realfft::num_complex::Complex32;

use crate::features::magnitude;
use crate::rt::grid::BinMap;
use crate::rt::link::{WorkerLink, WorkerState};
use crate::rt::math::sigmoid;
use crate::rt::net::RtMaskNet;

/// Frames over which the mask crossfades between worker and light network.
const CROSSFADE_FRAMES: f32 = 4.0;
const NO_FRAME: u64 = u64::MAX;
/// Longest wait for one worker mask when rendering offline; after it the light mask is used.
const OFFLINE_WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Counters of the worker path; read by the plugin and the editor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames whose worker mask arrived in time.
    pub hits: u64,
    /// Frames whose worker mask was late (or never came): the light mask was used.
    pub misses: u64,
    /// Frames the audio thread could not hand to the worker (queues full).
    pub dropped: u64,
}

pub(crate) struct MaskStage {
    model_bins: usize,
    to_model: BinMap,
    to_runtime: BinMap,
    /// Spectra kept back: lookahead + worker budget.
    delay_frames: usize,
    budget: usize,
    /// The light network's step is spread over the next hop (needs `budget ≥ 1`).
    spread: bool,
    /// A spread step was begun whose logits were not collected yet.
    step_begun: bool,
    runtime_mags: Vec<f32>,
    model_mags: Vec<f32>,
    /// `budget + 1` frames of light-network logits, indexed by frame % (budget + 1).
    light_logits: Vec<Vec<f32>>,
    /// Worker results waiting for their deadline, with the frame each belongs to.
    worker_logits: Vec<Vec<f32>>,
    worker_frames: Vec<u64>,
    /// The most recent on-time worker logits: used while fading out after a miss.
    last_worker: Vec<f32>,
    have_last_worker: bool,
    /// Weight of the worker mask (0 = light only), moved towards 1 on hits and 0 on misses.
    worker_weight: f32,
    model_mask: Vec<f32>,
    /// Per channel: the last frame's vocal mask on the runtime grid.
    pub runtime_masks: Vec<Vec<f32>>,
    /// The last frame's input magnitudes on the runtime grid, averaged over channels (for
    /// displays).
    pub input_spectrum: Vec<f32>,
    /// `delay_frames + 1` past spectra per channel.
    history: Vec<Vec<Vec<Complex32>>>,
    frame: u64,
    pub reset_pending: bool,
    pub stats: WorkerStats,
    /// Offline rendering: wait for each due worker mask instead of falling back.
    pub wait_for_worker: bool,
}

impl MaskStage {
    /// `spread` spreads the light network's step over the next hop; it needs `budget ≥ 1`.
    /// Any thread but the audio thread (allocates).
    #[allow(clippy::too_many_arguments)] // one per grid and latency fact, each named
    pub fn new(
        channels: usize,
        runtime_bins: usize,
        runtime_hz: f64,
        model_bins: usize,
        model_hz: f64,
        lookahead: usize,
        budget: usize,
        spread: bool,
    ) -> Self {
        debug_assert!(!spread || budget >= 1, "a spread step needs a budget of one hop");
        let features = 2 * model_bins;
        Self {
            model_bins,
            to_model: BinMap::new(runtime_bins, runtime_hz, model_bins, model_hz, false),
            to_runtime: BinMap::new(model_bins, model_hz, runtime_bins, runtime_hz, true),
            delay_frames: lookahead + budget,
            budget,
            spread: spread && budget >= 1,
            step_begun: false,
            runtime_mags: vec![0.0; runtime_bins],
            model_mags: vec![0.0; features],
            light_logits: vec![vec![0.0; features]; budget + 1],
            worker_logits: vec![vec![0.0; features]; budget + 1],
            worker_frames: vec![NO_FRAME; budget + 1],
            last_worker: vec![0.0; features],
            have_last_worker: false,
            worker_weight: 0.0,
            model_mask: vec![0.0; features],
            runtime_masks: vec![vec![0.0; runtime_bins]; channels],
            input_spectrum: vec![0.0; runtime_bins],
            history: vec![vec![vec![Complex32::new(0.0, 0.0); runtime_bins]; channels]; lookahead + budget + 1],
            frame: 0,
            reset_pending: false,
            stats: WorkerStats::default(),
            wait_for_worker: false,
        }
    }

    /// Audio thread; no allocation.
    pub fn reset(&mut self) {
        for h in self.history.iter_mut().flatten() {
            h.fill(Complex32::new(0.0, 0.0));
        }
        for l in self.light_logits.iter_mut().chain(self.worker_logits.iter_mut()) {
            l.fill(0.0);
        }
        self.worker_frames.fill(NO_FRAME);
        self.input_spectrum.fill(0.0);
        self.have_last_worker = false;
        self.worker_weight = 0.0;
        self.frame = 0;
        self.reset_pending = false;
        self.step_begun = false;
    }

    /// Replaces each channel's spectrum with the masked vocals spectrum of the frame the
    /// mask belongs to. Returns false if the light network had to be reset.
    /// Audio thread; no allocation, no blocking (the worker queues are lock-free).
    pub fn apply(
        &mut self,
        spectra: &mut [Vec<Complex32>],
        net: &mut RtMaskNet,
        worker: Option<&WorkerLink>,
        strength: f32,
    ) -> bool {
        let mb = self.model_bins;
        let channels = spectra.len();
        let f = self.frame;
        let k = (self.budget + 1) as u64;
        // The model always sees two channels; mono feeds the same magnitudes to both.
        let share = 1.0 / channels as f32;
        for mc in 0..2 {
            for (m, x) in self.runtime_mags.iter_mut().zip(spectra[mc.min(channels - 1)].iter()) {
                *m = magnitude(*x);
            }
            self.to_model.apply(&self.runtime_mags, &mut self.model_mags[mc * mb..(mc + 1) * mb]);
            if mc < channels {
                for (d, m) in self.input_spectrum.iter_mut().zip(&self.runtime_mags) {
                    *d = if mc == 0 { m * share } else { *d + m * share };
                }
            }
        }
        let mut healthy = true;
        if self.reset_pending {
            net.reset();
            self.reset_pending = false;
            healthy = false;
            if self.step_begun {
                // The dropped step's mask: neutral.
                self.step_begun = false;
                self.light_logits[((f - 1) % k) as usize].fill(0.0);
            }
        }
        if self.spread {
            healthy &= self.complete_light_step(net);
            net.begin(&self.model_mags);
            self.step_begun = true;
        } else {
            healthy &= net.step(&self.model_mags, &mut self.light_logits[(f % k) as usize]);
        }

        if let Some(w) = worker {
            self.submit(w, f);
            self.collect(w, f);
        }

        // The mask applied now belongs to network step f − budget.
        let due = f.checked_sub(self.budget as u64);
        let slot = due.map_or(0, |d| (d % k) as usize);
        if let (true, Some(w), Some(d)) = (self.wait_for_worker, worker, due) {
            // Offline rendering only (no real-time deadline): sleep until the worker has the
            // due frame, unless it is no longer running or far too slow.
            let start = std::time::Instant::now();
            while self.worker_frames[slot] != d
                && w.state() == WorkerState::Running
                && start.elapsed() < OFFLINE_WAIT_LIMIT
            {
                std::thread::sleep(std::time::Duration::from_micros(50));
                self.collect(w, f);
            }
        }
        let worker_on_time = worker.is_some() && due.is_some_and(|d| self.worker_frames[slot] == d);
        if worker.is_some() && due.is_some() {
            if worker_on_time {
                self.stats.hits += 1;
                self.last_worker.copy_from_slice(&self.worker_logits[slot]);
                self.have_last_worker = true;
            } else {
                self.stats.misses += 1;
            }
        }
        let step = 1.0 / CROSSFADE_FRAMES;
        self.worker_weight =
            if worker_on_time { (self.worker_weight + step).min(1.0) } else { (self.worker_weight - step).max(0.0) };
        let w = if self.have_last_worker { self.worker_weight } else { 0.0 };
        logits_to_mask(&self.light_logits[slot], channels, mb, strength, 1.0 - w, false, &mut self.model_mask);
        if w > 0.0 {
            logits_to_mask(&self.last_worker, channels, mb, strength, w, true, &mut self.model_mask);
        }

        let slots = self.delay_frames + 1;
        let newest = (f % slots as u64) as usize;
        let oldest = ((f + 1) % slots as u64) as usize;
        self.frame = f.wrapping_add(1);
        for (c, spectrum) in spectra.iter_mut().enumerate() {
            self.history[newest][c].copy_from_slice(spectrum);
            let mask = &mut self.runtime_masks[c];
            self.to_runtime.apply(&self.model_mask[c * mb..(c + 1) * mb], mask);
            for ((out, x), m) in spectrum.iter_mut().zip(&self.history[oldest][c]).zip(mask.iter()) {
                *out = *x * *m;
            }
        }
        healthy
    }

    /// With a spread step: completes the light network's step of the previous frame (begun
    /// by the last `apply`) into its logits. Also called before a model swap, so the old
    /// network's last mask is not lost. Returns false if the network had to be reset.
    /// Audio thread; no allocation.
    pub fn complete_light_step(&mut self, net: &mut RtMaskNet) -> bool {
        if !self.step_begun {
            return true;
        }
        self.step_begun = false;
        let k = (self.budget + 1) as u64;
        net.finish(&mut self.light_logits[((self.frame - 1) % k) as usize])
    }

    /// Frames analysed since the last reset.
    pub fn frames(&self) -> u64 {
        self.frame
    }

    /// Hands frame `f` to the worker. Audio thread; lock-free queue operations only.
    fn submit(&mut self, w: &WorkerLink, f: u64) {
        if !w.submit(f, &self.model_mags) {
            self.stats.dropped += 1;
        }
    }

    /// Collects whatever worker results came back by frame `f`. Audio thread; lock-free.
    fn collect(&mut self, w: &WorkerLink, f: u64) {
        let (budget, k) = (self.budget as u64, (self.budget + 1) as u64);
        w.collect(|index, logits| {
            // Keep results that can still meet their deadline (frame index + budget ≥ f).
            if index <= f && index + budget >= f {
                let i = (index % k) as usize;
                self.worker_logits[i].copy_from_slice(logits);
                self.worker_frames[i] = index;
            }
        });
    }
}

/// Writes (or, with `accumulate`, adds) `weight · sigmoid(strength · logit)` per model-grid
/// bin and channel. For a mono stream both model channels' logits are averaged into one mask.
fn logits_to_mask(
    logits: &[f32],
    channels: usize,
    bins: usize,
    strength: f32,
    weight: f32,
    accumulate: bool,
    out: &mut [f32],
) {
    // Branch-free inner loops over zipped slices, so they vectorise (`sigmoid` is the
    // vectorisable `rt::math` one): the per-bin closure this replaces cost 6 % of `process`.
    let mask = |z: f32| weight * sigmoid(strength * z);
    let out = &mut out[..if channels == 1 { bins } else { logits.len() }];
    match (channels == 1, accumulate) {
        (true, false) => {
            for ((o, &l), &r) in out.iter_mut().zip(&logits[..bins]).zip(&logits[bins..2 * bins]) {
                *o = mask(0.5 * (l + r));
            }
        }
        (true, true) => {
            for ((o, &l), &r) in out.iter_mut().zip(&logits[..bins]).zip(&logits[bins..2 * bins]) {
                *o += mask(0.5 * (l + r));
            }
        }
        (false, false) => out.iter_mut().zip(logits).for_each(|(o, &z)| *o = mask(z)),
        (false, true) => out.iter_mut().zip(logits).for_each(|(o, &z)| *o += mask(z)),
    }
}
