//! The streaming separator the plugin and the trainer's eval/separate both run:
//! STFT → mask network → masked spectrum → overlap-add, plus the latency-aligned dry path
//! and the user's blend.
//!
//! Vocals `V` come from masking; accompaniment is `A = D − V` with `D` the input delayed by
//! the latency. Masking with `1 − m` gives the same `A` (resynthesis is linear and exact),
//! but this way `V + A = D` holds to the last bit and one inverse FFT per channel is saved.

use crate::config::FrameGrid;
use crate::error::EngineError;
use crate::rt::link::{WorkerLink, WorkerState};
use crate::rt::masking::{MaskStage, WorkerStats};
use crate::rt::math::{flush_tiny, guard_input};
use crate::rt::net::RtMaskNet;
use crate::rt::stft::StreamingStft;

/// What the main output carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Vocals only (scaled by `vocal_gain`).
    Vocals,
    /// Accompaniment only (scaled by `accompaniment_gain`): a karaoke version.
    Accompaniment,
    /// Both stems, each at its own gain.
    #[default]
    Balance,
}

/// User controls, read once per `process` call and smoothed inside (about 10 ms), so
/// block-rate changes never click.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeparatorParams {
    pub output: OutputMode,
    /// Linear gain of the vocals in the main output.
    pub vocal_gain: f32,
    /// Linear gain of the accompaniment in the main output.
    pub accompaniment_gain: f32,
    /// Mask sharpness: the mask is `sigmoid(strength · logit)`. 1 is the trained mask, above
    /// 1 pushes bins towards 0/1 (less bleed, more artifacts), below 1 softens; 0 gives 0.5.
    pub strength: f32,
    /// 0 = dry (latency-aligned input), 1 = fully processed.
    pub mix: f32,
    /// Latency-compensated bypass: the main output becomes the delayed input.
    pub bypass: bool,
}

impl Default for SeparatorParams {
    fn default() -> Self {
        Self {
            output: OutputMode::Balance,
            vocal_gain: 1.0,
            accompaniment_gain: 1.0,
            strength: 1.0,
            mix: 1.0,
            bypass: false,
        }
    }
}

pub const MAX_STRENGTH: f32 = 4.0;
const SMOOTHING_SECONDS: f32 = 0.010;

/// One-pole parameter smoother.
#[derive(Debug, Clone, Copy)]
struct Smoothed {
    value: f32,
    coef: f32,
}

impl Smoothed {
    #[inline]
    fn next(&mut self, target: f32) -> f32 {
        self.value += (target - self.value) * self.coef;
        if (target - self.value).abs() < 1e-6 {
            self.value = target;
        }
        self.value
    }
}

/// Everything that depends on the sample rate and channel count; built in `prepare`.
struct Prepared {
    sample_rate: f32,
    channels: usize,
    stft: StreamingStft,
    masks: MaskStage,
    latency: usize,
    /// Whether the light network's step is spread over the blocks of the next hop.
    spread: bool,
    /// Per channel: ring delaying the dry input by `latency` samples.
    delay: Vec<Vec<f32>>,
    delay_pos: usize,
    input: Vec<Vec<f32>>,
    vocals: Vec<Vec<f32>>,
    gains: [Smoothed; 4],
}

/// Streaming vocal separator. Construct and `prepare` off the audio thread; `process`,
/// `reset`, `queue_model` and `take_retired_model` run on it without allocating.
pub struct Separator {
    net: Box<RtMaskNet>,
    worker: Option<WorkerLink>,
    pending: Option<Box<RtMaskNet>>,
    retired: Option<Box<RtMaskNet>>,
    prepared: Option<Prepared>,
    recoveries: u64,
    offline: bool,
    /// Whether blocks without a frame prefetch a share of the network's weights.
    cache_warming: bool,
    /// Spread the light network's step even without a worker (adds a hop of latency).
    spread_step: bool,
}

impl Separator {
    /// Any thread but the audio thread.
    pub fn new(net: RtMaskNet) -> Self {
        Self {
            net: Box::new(net),
            worker: None,
            pending: None,
            retired: None,
            prepared: None,
            recoveries: 0,
            offline: false,
            cache_warming: false,
            spread_step: false,
        }
    }

    /// Spreads each frame's light-network step over the blocks of the following hop (each
    /// block does its length / hop share, `RtMaskNet::advance`), so no block carries a whole
    /// step: at 64-sample blocks the frame's block no longer costs several times the
    /// others. The mask is then applied one hop later. With a worker this is always on and
    /// free (its budget already delays the masks); without one, `true` adds one hop to the
    /// latency. The output is the same, to the bit, delayed by that hop. Takes effect at the
    /// next `prepare`. Any thread but the audio thread.
    pub fn set_spread_step(&mut self, on: bool) {
        self.spread_step = on;
        self.prepared = None;
    }

    /// Whether the prepared separator spreads the light network's step (see
    /// [`Separator::set_spread_step`]). Any thread.
    pub fn spreads_step(&self) -> bool {
        self.prepared.as_ref().is_some_and(|p| p.spread)
    }

    /// Cache warming: each block that computes no frame prefetches its share of the
    /// network's weights (`RtMaskNet::warm`, block length / hop of them), so the block that
    /// computes the next frame finds them in cache even after the host evicted them. With a
    /// spread step, each block instead prefetches the share the next block computes, which
    /// fits in L2 where a whole step may not. Off by default; `cargo bench -p isola-engine
    /// --bench paced` measures both. Takes effect at once. Any thread that owns the separator.
    pub fn set_cache_warming(&mut self, on: bool) {
        self.cache_warming = on;
    }

    /// Attaches (or with `None` detaches) the inference worker. Takes effect at the next
    /// `prepare`, which adds the worker's budget to the latency. The worker's model must
    /// share the light model's STFT grid and lookahead.
    /// Any thread but the audio thread.
    pub fn set_worker(&mut self, link: Option<WorkerLink>) -> Result<(), EngineError> {
        if let Some(l) = &link {
            let light = self.grid();
            if l.grid() != light {
                return Err(EngineError::WorkerMismatch(l.grid().differences("worker", &light, "light").join(", ")));
            }
        }
        self.worker = link;
        self.prepared = None;
        Ok(())
    }

    /// Offline rendering (a host bounce, `isola separate`): with `true` the audio thread waits
    /// (sleeps) for each worker mask instead of falling back to the light network, so the
    /// result does not depend on machine load. Never in real time. Takes effect at once and
    /// survives `prepare`. Any thread that owns the separator.
    pub fn set_offline(&mut self, offline: bool) {
        self.offline = offline;
        if let Some(p) = self.prepared.as_mut() {
            p.masks.wait_for_worker = offline;
        }
    }

    /// Worker counters since `prepare`/`reset` (all zero without a worker). Any thread.
    pub fn worker_stats(&self) -> WorkerStats {
        self.prepared.as_ref().map_or(WorkerStats::default(), |p| p.masks.stats)
    }

    /// The attached worker's state, if any. Any thread.
    pub fn worker_state(&self) -> Option<WorkerState> {
        self.worker.as_ref().map(|w| w.state())
    }

    pub fn net(&self) -> &RtMaskNet {
        &self.net
    }

    /// Sizes every buffer for `sample_rate` and `channels` (1 or 2). The only method that
    /// allocates; blocks of any length are accepted afterwards (they are processed in
    /// hop-sized chunks), `max_block` only documents the host's promise.
    /// Any thread but the audio thread.
    pub fn prepare(&mut self, sample_rate: f32, max_block: usize, channels: usize) -> Result<(), EngineError> {
        let _ = max_block;
        if !(1..=2).contains(&channels) {
            return Err(EngineError::Channels(channels));
        }
        if !crate::config::supports_sample_rate(sample_rate as f64) {
            return Err(EngineError::SampleRate(sample_rate));
        }
        let model_stft = *self.net.stft_config();
        let model = *self.net.model_config();
        let runtime = model_stft.for_rate(sample_rate as f64);
        runtime.validate()?;
        let stft = StreamingStft::new(&runtime, channels);
        let rt_hz = sample_rate as f64 / runtime.fft_size as f64;
        let model_hz = model_stft.sample_rate as f64 / model_stft.fft_size as f64;
        let worker_budget = self.worker.as_ref().map_or(0, |w| w.budget_hops);
        let spread = self.spread_step || worker_budget > 0;
        // A spread step's mask is due one hop after its frame.
        let budget = worker_budget.max(usize::from(spread));
        let latency = model.frame_grid(&model_stft).latency_samples(sample_rate as f64, budget);
        let coef = 1.0 - (-1.0 / (SMOOTHING_SECONDS * sample_rate)).exp();
        let mut masks =
            MaskStage::new(channels, stft.n_bins(), rt_hz, model.n_bins, model_hz, model.lookahead, budget, spread);
        masks.wait_for_worker = self.offline;
        self.prepared = Some(Prepared {
            sample_rate,
            channels,
            masks,
            latency,
            spread,
            delay: vec![vec![0.0; latency]; channels],
            delay_pos: 0,
            input: vec![vec![0.0; runtime.hop]; channels],
            vocals: vec![vec![0.0; runtime.hop]; channels],
            gains: [Smoothed { value: 0.0, coef }; 4],
            stft,
        });
        self.reset();
        Ok(())
    }

    /// Exact delay of every output relative to the input, in samples (0 before `prepare`).
    /// Any thread.
    pub fn latency_samples(&self) -> usize {
        self.prepared.as_ref().map_or(0, |p| p.latency)
    }

    /// The runtime STFT's hop in samples (0 before `prepare`). Any thread.
    pub fn hop(&self) -> usize {
        self.prepared.as_ref().map_or(0, |p| p.stft.hop())
    }

    /// The vocal mask (0..1) of the last frame for `channel`, one value per runtime bin
    /// (empty before `prepare`). Audio thread (it owns the separator); no allocation.
    pub fn last_mask(&self, channel: usize) -> &[f32] {
        self.prepared.as_ref().and_then(|p| p.masks.runtime_masks.get(channel)).map_or(&[], |m| m.as_slice())
    }

    /// The last frame's input magnitudes (channel average, window-normalised: a full-scale
    /// sine reads about 0.5), one per runtime bin; empty before `prepare`. For displays.
    /// Audio thread (it owns the separator); no allocation.
    pub fn last_spectrum(&self) -> &[f32] {
        self.prepared.as_ref().map_or(&[], |p| p.masks.input_spectrum.as_slice())
    }

    /// Frames analysed since `prepare`/`reset`: a display can tell whether a new frame
    /// arrived during the last `process` call. Any thread that owns the separator.
    pub fn frames_analysed(&self) -> u64 {
        self.prepared.as_ref().map_or(0, |p| p.masks.frames())
    }

    /// Width of one runtime bin in Hz (0 before `prepare`). Any thread.
    pub fn bin_hz(&self) -> f32 {
        self.prepared.as_ref().map_or(0.0, |p| p.sample_rate / p.stft.fft_size() as f32)
    }

    /// Times the network was reset after non-finite input or state. Any thread.
    pub fn recoveries(&self) -> u64 {
        self.recoveries
    }

    /// Silence, no history, parameters at their neutral values. Audio thread; no allocation.
    pub fn reset(&mut self) {
        self.net.reset();
        if let Some(p) = &mut self.prepared {
            p.stft.reset();
            for d in &mut p.delay {
                d.fill(0.0);
            }
            p.delay_pos = 0;
            let neutral = SeparatorParams::default();
            p.gains[0].value = neutral.vocal_gain;
            p.gains[1].value = neutral.accompaniment_gain;
            p.gains[2].value = neutral.mix;
            p.gains[3].value = 1.0;
            p.masks.reset();
        }
    }

    /// Whether `net` can replace the running network without re-preparing (same STFT grid
    /// and lookahead, hence same latency). Any thread.
    pub fn accepts(&self, net: &RtMaskNet) -> bool {
        net.grid() == self.grid()
    }

    /// The running network's frame grid: what a worker or a replacement must share.
    /// Any thread.
    pub fn grid(&self) -> FrameGrid {
        self.net.grid()
    }

    /// Whether [`queue_model`](Self::queue_model) would take a fitting net now: no swap is in
    /// flight and the last retired net has been taken. Audio thread; no allocation.
    pub fn can_queue_model(&self) -> bool {
        self.pending.is_none() && self.retired.is_none()
    }

    /// Stages `net` to take over at the next frame boundary (its recurrent state starts
    /// from zero; overlap-add crossfades the change over one frame, so it does not click).
    /// Gives the net back if it does not fit or a swap is already in flight.
    /// Audio thread; no allocation.
    pub fn queue_model(&mut self, net: Box<RtMaskNet>) -> Result<(), Box<RtMaskNet>> {
        if !self.accepts(&net) || !self.can_queue_model() {
            return Err(net);
        }
        self.pending = Some(net);
        Ok(())
    }

    /// The network replaced by the last swap, to be dropped on a non-audio thread.
    /// Audio thread; no allocation.
    pub fn take_retired_model(&mut self) -> Option<Box<RtMaskNet>> {
        self.retired.take()
    }

    /// Separates one block in place. `main` holds the input on entry and the blended
    /// output on exit; `vocals`/`accompaniment`, when given, receive the raw stem estimates
    /// (same latency). Slices must all have the same length; extra aux channels copy the
    /// last input channel. Non-finite input is replaced by silence and resets the network.
    /// Audio thread; never allocates, locks or panics.
    pub fn process(
        &mut self,
        main: &mut [&mut [f32]],
        mut vocals: Option<&mut [&mut [f32]]>,
        mut accompaniment: Option<&mut [&mut [f32]]>,
        params: &SeparatorParams,
    ) {
        let Some(p) = &mut self.prepared else {
            // Not prepared: pass the input through; stems are silent.
            vocals.into_iter().flatten().for_each(|c| c.fill(0.0));
            accompaniment.into_iter().flatten().for_each(|c| c.fill(0.0));
            return;
        };
        let channels = p.channels.min(main.len());
        if channels == 0 {
            return;
        }
        let len = main[..channels].iter().map(|c| c.len()).min().unwrap_or(0);
        let strength = if params.strength.is_finite() { params.strength.clamp(0.0, MAX_STRENGTH) } else { 1.0 };
        let (target_v, target_a) = match params.output {
            OutputMode::Vocals => (params.vocal_gain, 0.0),
            OutputMode::Accompaniment => (0.0, params.accompaniment_gain),
            OutputMode::Balance => (params.vocal_gain, params.accompaniment_gain),
        };
        let finite_or = |v: f32, d: f32| if v.is_finite() { v } else { d };
        let targets = [
            finite_or(target_v, 1.0).clamp(0.0, 16.0),
            finite_or(target_a, 1.0).clamp(0.0, 16.0),
            finite_or(params.mix, 1.0).clamp(0.0, 1.0),
            if params.bypass { 0.0 } else { 1.0 },
        ];

        let hop = p.stft.hop();
        let mut done = 0;
        while done < len {
            let m = (len - done).min(hop);
            let mut bad_input = false;
            for c in 0..p.channels {
                let src = &main[c.min(channels - 1)][done..done + m];
                for (dst, &x) in p.input[c][..m].iter_mut().zip(src) {
                    *dst = guard_input(x).unwrap_or_else(|| {
                        bad_input = true;
                        0.0
                    });
                }
            }
            p.masks.reset_pending |= bad_input;

            let (in0, in1) = p.input.split_at(1);
            let inputs: [&[f32]; 2] = [&in0[0][..m], in1.first().map_or(&[][..], |c| &c[..m])];
            let (v0, v1) = p.vocals.split_at_mut(1);
            let mut outs: [&mut [f32]; 2] = [&mut v0[0][..m], v1.first_mut().map_or(&mut [][..], |c| &mut c[..m])];
            let (net, pending, retired, recoveries, masks) =
                (&mut self.net, &mut self.pending, &mut self.retired, &mut self.recoveries, &mut p.masks);
            let worker = self.worker.as_ref();
            let mut framed = false;
            p.stft.process(&inputs[..p.channels], &mut outs[..p.channels], |spectra| {
                framed = true;
                if let Some(mut next) = pending.take() {
                    if !masks.complete_light_step(net) {
                        *recoveries += 1;
                    }
                    next.reset();
                    *retired = Some(std::mem::replace(net, next));
                }
                if !masks.apply(spectra, net, worker, strength) {
                    *recoveries += 1;
                }
            });
            if p.spread {
                // This chunk's share of the step in progress: a hop's chunks complete it.
                self.net.advance((self.net.step_macs() * m).div_ceil(hop));
                if self.cache_warming {
                    // Prefetch the next chunk's share, which arrives while the host is
                    // elsewhere; from a frame, the shares of this chunk and the next.
                    let share = (self.net.weight_lines() * m).div_ceil(hop);
                    self.net.warm(if framed { 2 * share } else { share });
                }
            } else if self.cache_warming && !framed {
                let lines = self.net.weight_lines();
                self.net.warm((lines * m).div_ceil(hop));
            }

            let latency = p.latency;
            for i in 0..m {
                let [gv, ga, mix, wet] = [
                    p.gains[0].next(targets[0]),
                    p.gains[1].next(targets[1]),
                    p.gains[2].next(targets[2]),
                    p.gains[3].next(targets[3]),
                ];
                let pos = p.delay_pos;
                #[allow(clippy::needless_range_loop)] // `c` indexes five per-channel buffers
                for c in 0..p.channels {
                    let dry = std::mem::replace(&mut p.delay[c][pos], p.input[c][i]);
                    // Every output is flushed: a near-zero mask on quiet input resynthesises
                    // subnormal samples, which are slow downstream where FTZ is off.
                    let v = flush_tiny(p.vocals[c][i]);
                    let a = flush_tiny(dry - v);
                    let wet_out = mix * (gv * v + ga * a) + (1.0 - mix) * dry;
                    p.vocals[c][i] = v;
                    p.input[c][i] = a; // reuse: accompaniment for the aux pass below
                    if c < channels {
                        main[c][done + i] = flush_tiny(wet * wet_out + (1.0 - wet) * dry);
                    }
                }
                p.delay_pos = if pos + 1 == latency { 0 } else { pos + 1 };
            }
            copy_stem(vocals.as_deref_mut(), &p.vocals, done, m);
            copy_stem(accompaniment.as_deref_mut(), &p.input, done, m);
            done += m;
        }
    }
}

/// Writes `m` samples of a stem into an aux bus at `at`; aux channels beyond the engine's
/// repeat its last channel. Audio thread.
fn copy_stem(stems: Option<&mut [&mut [f32]]>, src: &[Vec<f32>], at: usize, m: usize) {
    for (k, out) in stems.into_iter().flatten().enumerate() {
        if let Some(out) = out.get_mut(at..at + m) {
            out.copy_from_slice(&src[k.min(src.len() - 1)][..m]);
        }
    }
}
