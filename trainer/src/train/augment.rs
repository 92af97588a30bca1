//! Augmentation that makes a few hours of stems sound like many songs: random EQ, synthetic
//! reverb, stereo placement, backing vocals, band-limited accompaniment and mix-bus dynamics,
//! on top of the sampler's remixing, gain, left/right swap and speed change.
//!
//! Every op is a pure function of stereo stems and of parameters drawn by its `draw_*`
//! function from the step RNG, so a resumed run sees exactly what the uninterrupted run saw.
//! A disabled op (probability 0) draws nothing, so runs that do not use it keep their random
//! stream (the same rule as `speed_percent`).
//!
//! `mixture = vocals + accompaniment` after every op: the ops change the stems and the
//! sampler sums them afterwards. The per-stem ops are linear (EQ, reverb, placement,
//! band-limiting, backing vocals), so they are what a mix engineer's processing of that stem
//! does to the mixture too; the one op that acts on the mixture itself (dynamics) is carried
//! into the stems as the per-sample gain it applies to the mixture, see [`dynamics`].
//!
//! Chain order, the signal flow of a mix (and the order of the draws, which is part of a
//! seed's random stream): backing vocals; per stem (vocals, then accompaniment): stereo
//! placement, EQ, reverb; band-limiting of the accompaniment; exposed vocals (the
//! accompaniment turned down); mix-bus dynamics; the delivery format's noise floor.

use std::cell::RefCell;
use std::f64::consts::{FRAC_PI_4, PI, SQRT_2};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use realfft::RealFftPlanner;

use super::config::TrainConfig;
use crate::audio::Audio;

/// The config keys of the augmentations' probabilities (0 = off, nothing drawn).
pub const PROBABILITY_KEYS: [&str; 8] = [
    "eq_prob",
    "reverb_prob",
    "stereo_prob",
    "dynamics_prob",
    "band_limit_prob",
    "backing_prob",
    "noise_floor_prob",
    "exposed_prob",
];

/// Applies the enabled ops to one example's stereo stems (see the module docs for the order).
/// Draws nothing when every op is off.
pub fn augment(vocals: &mut Audio, accompaniment: &mut Audio, cfg: &TrainConfig, rng: &mut ChaCha8Rng) {
    if let Some(p) = draw_backing(cfg, rng) {
        *vocals = add_backing(vocals, &p);
    }
    for x in [&mut *vocals, &mut *accompaniment] {
        if let Some(p) = draw_stereo(cfg, rng) {
            *x = place(x, &p);
        }
        if let Some(p) = draw_eq(cfg, rng) {
            *x = eq(x, &p);
        }
        if let Some(p) = draw_reverb(cfg, rng) {
            *x = reverb(x, &p);
        }
    }
    if let Some(cutoff_hz) = draw_band_limit(cfg, rng) {
        *accompaniment = band_limit(accompaniment, cutoff_hz);
    }
    if let Some(db) = draw_exposed(cfg, rng) {
        *accompaniment = turned_down(accompaniment, db);
    }
    if let Some(d) = draw_dynamics(cfg, rng) {
        let (v, a) = dynamics(vocals, accompaniment, &d);
        (*vocals, *accompaniment) = (v, a);
    }
    if let Some(n) = draw_noise_floor(cfg, rng) {
        *accompaniment = noise_floor(vocals, accompaniment, n);
    }
}

/// Checks the augmentation keys of `cfg` (called by `TrainConfig::validate`).
pub fn validate(cfg: &TrainConfig) -> anyhow::Result<()> {
    let probs = [
        cfg.eq_prob,
        cfg.reverb_prob,
        cfg.stereo_prob,
        cfg.dynamics_prob,
        cfg.band_limit_prob,
        cfg.backing_prob,
        cfg.noise_floor_prob,
        cfg.exposed_prob,
    ];
    for (name, p) in PROBABILITY_KEYS.into_iter().zip(probs) {
        anyhow::ensure!((0.0..=1.0).contains(&p), "{name} must be a probability in [0, 1], got {p}");
    }
    let ranges = [
        ("reverb_rt60_s", cfg.reverb_rt60_s, 0.01),
        ("reverb_wet_db", cfg.reverb_wet_db, f64::NEG_INFINITY),
        ("stereo_width", cfg.stereo_width, 0.0),
        ("compressor_depth_db", cfg.compressor_depth_db, 0.0),
        ("compressor_ratio", cfg.compressor_ratio, 1.0),
        ("clip_drive_db", cfg.clip_drive_db, 0.0),
        ("band_limit_hz", cfg.band_limit_hz, 100.0),
        ("backing_db", cfg.backing_db, f64::NEG_INFINITY),
        ("noise_floor_dbfs", cfg.noise_floor_dbfs, -200.0),
        ("exposed_db", cfg.exposed_db, 0.0),
    ];
    for (name, (lo, hi), min) in ranges {
        anyhow::ensure!(lo.is_finite() && hi.is_finite() && lo <= hi, "{name} must be (low, high), got ({lo}, {hi})");
        anyhow::ensure!(lo >= min, "{name} must start at {min} or above, got {lo}");
    }
    anyhow::ensure!(cfg.eq_db >= 0.0 && cfg.eq_db <= 24.0, "eq_db must be within [0, 24]");
    anyhow::ensure!((0.0..=1.0).contains(&cfg.stereo_pan), "stereo_pan must be within [0, 1]");
    anyhow::ensure!((0.0..=50.0).contains(&cfg.stereo_delay_ms), "stereo_delay_ms must be within [0, 50]");
    Ok(())
}

/// `true` with probability `p`; draws nothing when `p` is 0 (the op is off).
fn enabled(p: f64, rng: &mut ChaCha8Rng) -> bool {
    p > 0.0 && rng.random::<f64>() < p
}

fn uniform(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    if lo < hi { rng.random_range(lo..hi) } else { lo }
}

/// Log-uniform in `[lo, hi)` (frequencies, times, ratios).
fn log_uniform(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    uniform(rng, (lo.ln(), hi.ln())).exp()
}

fn db_to_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// Left and right gains of a constant-power pan (sin/cos law) at `pan` in [-1, 1]
/// (-1 hard left), scaled to unity at the centre.
fn pan_gains(pan: f64) -> (f32, f32) {
    let theta = FRAC_PI_4 * (1.0 + pan.clamp(-1.0, 1.0));
    ((SQRT_2 * theta.cos()) as f32, (SQRT_2 * theta.sin()) as f32)
}

// ---------------------------------------------------------------------------------------
// Biquads (EQ and band-limiting)

/// A second-order IIR section, coefficients normalised by `a0`. Designs are those of
/// R. Bristow-Johnson, "Cookbook formulae for audio EQ biquad filter coefficients"
/// (the RBJ Audio EQ Cookbook; W3C Audio EQ Cookbook note, 2021): bilinear transforms of
/// analogue prototypes, pre-warped at the centre/corner frequency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    fn new(b: [f64; 3], a: [f64; 3]) -> Self {
        Self { b: [b[0] / a[0], b[1] / a[0], b[2] / a[0]], a: [a[1] / a[0], a[2] / a[0]] }
    }

    /// `cos w0, sin w0` at `hz`, kept within (10 Hz, 0.45 × rate) so a design drawn for
    /// 44.1 kHz stays stable at any model rate.
    fn w0(rate: f64, hz: f64) -> (f64, f64) {
        let w0 = 2.0 * PI * hz.clamp(10.0, 0.45 * rate) / rate;
        (w0.cos(), w0.sin())
    }

    /// Peaking EQ: `gain_db` at `hz`, bandwidth set by `q`.
    pub fn peaking(rate: f64, hz: f64, q: f64, gain_db: f64) -> Self {
        let a = 10f64.powf(gain_db / 40.0);
        let (cos, sin) = Self::w0(rate, hz);
        let alpha = sin / (2.0 * q);
        Self::new([1.0 + alpha * a, -2.0 * cos, 1.0 - alpha * a], [1.0 + alpha / a, -2.0 * cos, 1.0 - alpha / a])
    }

    /// Low shelf with slope S = 1 (the steepest without overshoot): `gain_db` below `hz`.
    pub fn low_shelf(rate: f64, hz: f64, gain_db: f64) -> Self {
        let a = 10f64.powf(gain_db / 40.0);
        let (cos, sin) = Self::w0(rate, hz);
        let k = 2.0 * a.sqrt() * sin / SQRT_2; // 2 √A α with α = sin w0 / √2 at S = 1
        Self::new(
            [
                a * ((a + 1.0) - (a - 1.0) * cos + k),
                2.0 * a * ((a - 1.0) - (a + 1.0) * cos),
                a * ((a + 1.0) - (a - 1.0) * cos - k),
            ],
            [(a + 1.0) + (a - 1.0) * cos + k, -2.0 * ((a - 1.0) + (a + 1.0) * cos), (a + 1.0) + (a - 1.0) * cos - k],
        )
    }

    /// High shelf with slope S = 1: `gain_db` above `hz`.
    pub fn high_shelf(rate: f64, hz: f64, gain_db: f64) -> Self {
        let a = 10f64.powf(gain_db / 40.0);
        let (cos, sin) = Self::w0(rate, hz);
        let k = 2.0 * a.sqrt() * sin / SQRT_2;
        Self::new(
            [
                a * ((a + 1.0) + (a - 1.0) * cos + k),
                -2.0 * a * ((a - 1.0) + (a + 1.0) * cos),
                a * ((a + 1.0) + (a - 1.0) * cos - k),
            ],
            [(a + 1.0) - (a - 1.0) * cos + k, 2.0 * ((a - 1.0) - (a + 1.0) * cos), (a + 1.0) - (a - 1.0) * cos - k],
        )
    }

    /// Second-order low-pass at `hz` with quality `q`.
    pub fn lowpass(rate: f64, hz: f64, q: f64) -> Self {
        let (cos, sin) = Self::w0(rate, hz);
        let alpha = sin / (2.0 * q);
        Self::new([(1.0 - cos) / 2.0, 1.0 - cos, (1.0 - cos) / 2.0], [1.0 + alpha, -2.0 * cos, 1.0 - alpha])
    }

    /// One sample through the section (transposed direct form II, f64 state `s`).
    #[inline(always)]
    fn tick(&self, x: f64, s: &mut [f64; 2]) -> f64 {
        let y = self.b[0] * x + s[0];
        s[0] = self.b[1] * x - self.a[0] * y + s[1];
        s[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

/// `x` through a cascade of `N` biquads from silence, every channel alike. The sections
/// and both channels run in one pass over the samples, so their recursions overlap in
/// the CPU (one section at a time is bound by its feedback latency: ~4x slower).
fn filter<const N: usize>(x: &Audio, sections: &[Biquad; N]) -> Audio {
    let mut out = x.clone();
    let run = |ch: &mut [f32]| {
        let mut state = [[0.0f64; 2]; N];
        for v in ch {
            let mut s = f64::from(*v);
            for (q, st) in sections.iter().zip(&mut state) {
                s = q.tick(s, st);
            }
            *v = s as f32;
        }
    };
    match out.channels.as_mut_slice() {
        [l, r] => {
            let (mut sl, mut sr) = ([[0.0f64; 2]; N], [[0.0f64; 2]; N]);
            for (a, b) in l.iter_mut().zip(r.iter_mut()) {
                let (mut x, mut y) = (f64::from(*a), f64::from(*b));
                for ((q, a), b) in sections.iter().zip(&mut sl).zip(&mut sr) {
                    x = q.tick(x, a);
                    y = q.tick(y, b);
                }
                (*a, *b) = (x as f32, y as f32);
            }
        }
        chs => chs.iter_mut().for_each(|ch| run(ch)),
    }
    out
}

// ---------------------------------------------------------------------------------------
// Random EQ

/// A random EQ: a low shelf, a high shelf and two peaks (frequency in Hz, gain in dB; peaks
/// with a Q), like a mix engineer's channel EQ or the tone of a different microphone/room.
#[derive(Debug, Clone, PartialEq)]
pub struct EqParams {
    pub low_shelf: (f64, f64),
    pub high_shelf: (f64, f64),
    /// `(hz, q, gain_db)`.
    pub peaks: [(f64, f64, f64); 2],
}

/// With probability `eq_prob`: shelves at 60-400 Hz and 2-10 kHz, peaks at 150 Hz-6 kHz with
/// Q 0.5-3 (log-uniform), each band's gain uniform in ±`eq_db`.
pub fn draw_eq(cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Option<EqParams> {
    if !enabled(cfg.eq_prob, rng) {
        return None;
    }
    let range = (-cfg.eq_db, cfg.eq_db);
    let low_shelf = (log_uniform(rng, (60.0, 400.0)), uniform(rng, range));
    let high_shelf = (log_uniform(rng, (2000.0, 10_000.0)), uniform(rng, range));
    let mut peak = || (log_uniform(rng, (150.0, 6000.0)), log_uniform(rng, (0.5, 3.0)), uniform(rng, range));
    let peaks = [peak(), peak()];
    Some(EqParams { low_shelf, high_shelf, peaks })
}

/// `x` through the EQ (RBJ cookbook shelves and peaks; frequencies above 0.45 × the rate
/// are moved down to it). Linear and time-invariant: EQ of the sum = sum of the EQs.
pub fn eq(x: &Audio, p: &EqParams) -> Audio {
    let rate = f64::from(x.sample_rate);
    let [(f1, q1, g1), (f2, q2, g2)] = p.peaks;
    let sections = [
        Biquad::low_shelf(rate, p.low_shelf.0, p.low_shelf.1),
        Biquad::high_shelf(rate, p.high_shelf.0, p.high_shelf.1),
        Biquad::peaking(rate, f1, q1, g1),
        Biquad::peaking(rate, f2, q2, g2),
    ];
    filter(x, &sections)
}

// ---------------------------------------------------------------------------------------
// Reverb

/// A synthetic room: exponentially decaying noise as the impulse response, after
/// J. A. Moorer, "About this reverberation business", Computer Music Journal 3(2), 1979
/// (a late reverb tail is well modelled by exponentially decaying noise), with a
/// frequency-dependent decay (the band above `damping_hz` reaches -60 dB after
/// `hf_ratio × rt60_s`: the air and wall absorption that J.-M. Jot and A. Chaigne's
/// feedback-delay reverberators model with absorptive filters, "Digital delay networks for
/// designing artificial reverberators", AES 90th Convention, 1991) and a pre-delay. The
/// noise is split in two bands by a one-pole low-pass, each with its own exponential
/// envelope. Each channel gets its own noise, so the tail is decorrelated left/right like a
/// room's.
#[derive(Debug, Clone, PartialEq)]
pub struct ReverbParams {
    /// Time for the low band to decay by 60 dB.
    pub rt60_s: f64,
    /// RT60 of the band above `damping_hz`, as a fraction of `rt60_s`.
    pub hf_ratio: f64,
    /// Crossover of the two decay bands (one-pole split).
    pub damping_hz: f64,
    pub predelay_s: f64,
    /// Level of the (unit-energy) reverberant part relative to the dry signal.
    pub wet_db: f64,
    /// Seed of the impulse response's noise.
    pub seed: u64,
}

/// With probability `reverb_prob`: RT60 log-uniform in `reverb_rt60_s`, wet level uniform in
/// `reverb_wet_db`, highs decaying 0.25-0.75 times as long above 1.5-6 kHz, pre-delay 0-30 ms.
pub fn draw_reverb(cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Option<ReverbParams> {
    if !enabled(cfg.reverb_prob, rng) {
        return None;
    }
    Some(ReverbParams {
        rt60_s: log_uniform(rng, cfg.reverb_rt60_s),
        hf_ratio: uniform(rng, (0.25, 0.75)),
        damping_hz: log_uniform(rng, (1500.0, 6000.0)),
        predelay_s: uniform(rng, (0.0, 0.03)),
        wet_db: uniform(rng, cfg.reverb_wet_db),
        seed: rng.random(),
    })
}

/// The reverberant part of the impulse response for `channel` (the direct sound is not in
/// it), `max_len` samples at most, with unit energy.
pub fn impulse_response(p: &ReverbParams, rate: u32, channel: usize, max_len: usize) -> Vec<f32> {
    let sr = f64::from(rate);
    let predelay = (p.predelay_s * sr).round() as usize;
    let len = (predelay + (p.rt60_s * sr).ceil() as usize).min(max_len);
    let mut noise = ChaCha8Rng::seed_from_u64(p.seed);
    noise.set_stream(channel as u64);
    // 60 dB over RT60: amplitude × 10^(-3 / (RT60 × rate)) per sample.
    let (lo_step, hi_step) = (10f64.powf(-3.0 / (p.rt60_s * sr)), 10f64.powf(-3.0 / (p.rt60_s * p.hf_ratio * sr)));
    let pole = (-2.0 * PI * p.damping_hz.min(0.45 * sr) / sr).exp();
    let (mut lo_env, mut hi_env, mut lowpassed) = (1.0f64, 1.0f64, 0.0f64);
    let mut h = vec![0.0f32; len];
    for v in h.iter_mut().skip(predelay) {
        let white: f64 = noise.random_range(-1.0..1.0);
        lowpassed = pole * lowpassed + (1.0 - pole) * white;
        *v = (lo_env * lowpassed + hi_env * (white - lowpassed)) as f32;
        lo_env *= lo_step;
        hi_env *= hi_step;
    }
    let norm = h.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    if norm > 0.0 {
        h.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
    h
}

/// `x` plus its reverberation: `y = x + wet × (h ∗ x)` per channel, `h` from
/// [`impulse_response`] (FFT convolution, the first `frames` samples: the chunk's own tail).
/// Linear and time-invariant.
pub fn reverb(x: &Audio, p: &ReverbParams) -> Audio {
    let wet = db_to_gain(p.wet_db) as f32;
    let mut out = x.clone();
    for (c, ch) in out.channels.iter_mut().enumerate() {
        let h = impulse_response(p, x.sample_rate, c, ch.len());
        let tail = convolve(ch, &h);
        ch.iter_mut().zip(tail).for_each(|(y, t)| *y += wet * t);
    }
    out
}

thread_local! {
    static PLANNER: RefCell<RealFftPlanner<f32>> = RefCell::new(RealFftPlanner::new());
}

/// The smallest 2^a 3^b 5^c at or above `n` (fast FFT sizes).
fn fft_len(n: usize) -> usize {
    let mut best = n.next_power_of_two();
    let mut p5 = 1;
    while p5 < best {
        let mut p35 = p5;
        while p35 < best {
            let mut m = p35;
            while m < n {
                m *= 2;
            }
            best = best.min(m);
            p35 *= 3;
        }
        p5 *= 5;
    }
    best
}

/// The first `x.len()` samples of the linear convolution `x ∗ h` (FFT, zero-padded so
/// nothing wraps around).
fn convolve(x: &[f32], h: &[f32]) -> Vec<f32> {
    if x.is_empty() || h.is_empty() {
        return vec![0.0; x.len()];
    }
    let n = fft_len(x.len() + h.len() - 1);
    let (forward, inverse) = PLANNER.with(|p| {
        let mut p = p.borrow_mut();
        (p.plan_fft_forward(n), p.plan_fft_inverse(n))
    });
    let spectrum = |signal: &[f32]| {
        let mut buf = forward.make_input_vec();
        buf[..signal.len()].copy_from_slice(signal);
        let mut out = forward.make_output_vec();
        forward.process(&mut buf, &mut out).expect("buffer sizes come from the plan");
        out
    };
    let (mut xs, hs) = (spectrum(x), spectrum(h));
    let scale = 1.0 / n as f32; // realfft's inverse is unnormalised
    xs.iter_mut().zip(&hs).for_each(|(a, b)| *a = *a * *b * scale);
    // DC (and Nyquist, for even n) are real in exact arithmetic; make them so for realfft.
    xs[0].im = 0.0;
    if n.is_multiple_of(2) {
        xs[n / 2].im = 0.0;
    }
    let mut y = inverse.make_output_vec();
    inverse.process(&mut xs, &mut y).expect("buffer sizes come from the plan");
    y.truncate(x.len());
    y
}

// ---------------------------------------------------------------------------------------
// Stereo placement

/// Where a source sits in the stereo field: width (mid/side), pan and a short inter-channel
/// delay (the precedence/Haas effect: a 1-30 ms delay moves a mono source towards the
/// earlier side and widens it without changing its level).
#[derive(Debug, Clone, PartialEq)]
pub struct StereoParams {
    /// Side-signal gain: 0 = mono, 1 = unchanged, above 1 = wider.
    pub width: f64,
    /// -1 (left) to 1 (right), constant-power.
    pub pan: f64,
    pub delay_s: f64,
    /// Which channel is delayed.
    pub delay_left: bool,
}

/// With probability `stereo_prob`: width uniform in `stereo_width`, pan uniform in
/// ±`stereo_pan`, delay uniform in 0-`stereo_delay_ms` ms on a random side.
pub fn draw_stereo(cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Option<StereoParams> {
    if !enabled(cfg.stereo_prob, rng) {
        return None;
    }
    Some(StereoParams {
        width: uniform(rng, cfg.stereo_width),
        pan: uniform(rng, (-cfg.stereo_pan, cfg.stereo_pan)),
        delay_s: uniform(rng, (0.0, cfg.stereo_delay_ms / 1000.0)),
        delay_left: rng.random::<f64>() < 0.5,
    })
}

/// A stereo `x` re-placed: side × width, then constant-power pan, then one channel delayed
/// (zeros before the delayed channel's first sample: the chunk has no earlier audio).
/// A mono source (left = right) has no side, so width leaves it alone and pan and delay
/// place it. Linear and time-invariant.
pub fn place(x: &Audio, p: &StereoParams) -> Audio {
    assert_eq!(x.n_channels(), 2, "stereo placement needs stereo");
    let w = p.width as f32;
    let (gl, gr) = pan_gains(p.pan);
    let (l, r) = (&x.channels[0], &x.channels[1]);
    let mut left = Vec::with_capacity(l.len());
    let mut right = Vec::with_capacity(l.len());
    for (&a, &b) in l.iter().zip(r) {
        let (mid, side) = ((a + b) * 0.5, (a - b) * 0.5 * w);
        left.push(gl * (mid + side));
        right.push(gr * (mid - side));
    }
    let delay = ((p.delay_s * f64::from(x.sample_rate)).round() as usize).min(left.len());
    if delay > 0 {
        let ch = if p.delay_left { &mut left } else { &mut right };
        ch.rotate_right(delay);
        ch[..delay].fill(0.0);
    }
    Audio { sample_rate: x.sample_rate, channels: vec![left, right] }
}

// ---------------------------------------------------------------------------------------
// Band-limiting

/// With probability `band_limit_prob`: a cut-off log-uniform in `band_limit_hz`.
pub fn draw_band_limit(cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Option<f64> {
    enabled(cfg.band_limit_prob, rng).then(|| log_uniform(rng, cfg.band_limit_hz))
}

/// `x` low-passed at `cutoff_hz` (at most 0.45 × the rate) by an 8th-order Butterworth
/// filter, 48 dB/octave: four RBJ low-pass sections with the Butterworth pole-pair Qs
/// `1 / (2 sin((2k - 1) π / 16))`. Used on the accompaniment, like a low-rate or heavily
/// compressed recording, or a filtered instrumental: the vocals above the cut-off are still
/// the vocals' (the example's `bandwidth_hz` is unchanged, the loss keeps those bins).
pub fn band_limit(x: &Audio, cutoff_hz: f64) -> Audio {
    const ORDER: usize = 8;
    let rate = f64::from(x.sample_rate);
    let sections: [Biquad; ORDER / 2] = std::array::from_fn(|k| {
        let q = 1.0 / (2.0 * ((2 * k + 1) as f64 * PI / (2 * ORDER) as f64).sin());
        Biquad::lowpass(rate, cutoff_hz, q)
    });
    filter(x, &sections)
}

// ---------------------------------------------------------------------------------------
// Backing vocals

/// Harmony intervals (semitones) of a derived backing vocal.
const HARMONY_SEMITONES: [i32; 8] = [-12, -7, -5, -3, 3, 4, 5, 7];
/// Detunes (percent) of a derived double.
const DOUBLE_PERCENT: [i32; 4] = [-2, -1, 1, 2];

/// A backing vocal derived from the lead chunk itself: its mono mid played at another speed
/// (pitch and tempo together, band-limited resampling on a 1 % grid as for `speed_percent`),
/// delayed, panned and quieter. The sampler's remix branch draws one vocal source; to stay
/// out of its chunk extraction, the second voice is this copy rather than another singer.
/// A double (±1-2 %, 15-60 ms late) is a realistic double-tracked vocal; a harmony interval
/// (±3-12 semitones) is the same singer at another pitch, but also at another tempo, so it
/// drifts from the lead: not real harmony singing, yet a second, pitched vocal line in the
/// mix that the model must also count as vocals.
#[derive(Debug, Clone, PartialEq)]
pub struct BackingParams {
    /// Speed change in percent (the pitch moves by the same factor).
    pub percent: i32,
    pub delay_s: f64,
    /// Level relative to the lead.
    pub gain_db: f64,
    /// Constant-power pan, -1 (left) to 1 (right).
    pub pan: f64,
}

/// With probability `backing_prob`: half the time a double, otherwise a harmony interval;
/// level uniform in `backing_db`, pan uniform in ±0.8.
pub fn draw_backing(cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Option<BackingParams> {
    if !enabled(cfg.backing_prob, rng) {
        return None;
    }
    let (percent, delay_s) = if rng.random::<f64>() < 0.5 {
        (DOUBLE_PERCENT[rng.random_range(0..DOUBLE_PERCENT.len())], uniform(rng, (0.015, 0.06)))
    } else {
        let semitones = HARMONY_SEMITONES[rng.random_range(0..HARMONY_SEMITONES.len())];
        let percent = (100.0 * (2f64.powf(f64::from(semitones) / 12.0) - 1.0)).round() as i32;
        (percent, uniform(rng, (0.0, 0.04)))
    };
    Some(BackingParams { percent, delay_s, gain_db: uniform(rng, cfg.backing_db), pan: uniform(rng, (-0.8, 0.8)) })
}

/// The lead vocals `v` plus the backing vocal derived from them (see [`BackingParams`]). The
/// copy starts `delay_s` in and, when sped up, ends before the chunk does (with a 10 ms
/// fade-out): backing vocals come and go. Linear in `v`.
pub fn add_backing(v: &Audio, p: &BackingParams) -> Audio {
    let (rate, len) = (v.sample_rate, v.frames());
    let factor = 1.0 + f64::from(p.percent) / 100.0;
    let Ok(shifted) = crate::audio::resample::change_speed(v.with_channels(1), factor) else {
        return v.clone(); // cannot happen for these rates; the lead alone is still valid
    };
    let mut copy = shifted.channels.into_iter().next().unwrap_or_default();
    let delay = ((p.delay_s * f64::from(rate)).round() as usize).min(len);
    copy.truncate(len - delay);
    if copy.len() < len - delay {
        let fade = ((0.01 * f64::from(rate)) as usize).clamp(1, copy.len().max(1));
        let n = copy.len();
        for (k, s) in copy[n.saturating_sub(fade)..].iter_mut().enumerate() {
            *s *= 1.0 - (k + 1) as f32 / fade as f32;
        }
    }
    let gain = db_to_gain(p.gain_db) as f32;
    let (gl, gr) = pan_gains(p.pan);
    let mut out = v.clone();
    for (ch, g) in out.channels.iter_mut().zip([gl, gr]) {
        for (y, &s) in ch[delay..].iter_mut().zip(&copy) {
            *y += gain * g * s;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Mix-bus dynamics

/// Dynamics on the mixture, the mastering stage of a mix.
#[derive(Debug, Clone, PartialEq)]
pub enum Dynamics {
    /// A feed-forward, stereo-linked compressor after D. Giannoulis, M. Massberg and
    /// J. D. Reiss, "Digital Dynamic Range Compressor Design—A Tutorial and Analysis",
    /// JAES 60(6), 2012: peak level in dB, soft-knee gain computer, then their smooth
    /// branching peak detector on the gain reduction (log domain). No make-up gain (the
    /// loss is relative to the mixture's level).
    Compressor {
        /// Threshold below the mixture's peak.
        depth_db: f64,
        ratio: f64,
        knee_db: f64,
        attack_s: f64,
        release_s: f64,
    },
    /// `tanh` soft clipping of each mixture channel, driven `drive_db` above the mixture's
    /// peak: `y = tanh(k m) / k`, `k = 10^(drive_db / 20) / peak`, so quiet passages pass
    /// unchanged and the peaks are squashed.
    SoftClip { drive_db: f64 },
}

/// With probability `dynamics_prob`: half the time the compressor (threshold
/// `compressor_depth_db` below the peak, ratio log-uniform in `compressor_ratio`, knee 0-12 dB,
/// attack 0.5-20 ms, release 40-400 ms), otherwise the soft clipper (drive uniform in
/// `clip_drive_db`).
pub fn draw_dynamics(cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Option<Dynamics> {
    if !enabled(cfg.dynamics_prob, rng) {
        return None;
    }
    Some(if rng.random::<f64>() < 0.5 {
        Dynamics::Compressor {
            depth_db: uniform(rng, cfg.compressor_depth_db),
            ratio: log_uniform(rng, cfg.compressor_ratio),
            knee_db: uniform(rng, (0.0, 12.0)),
            attack_s: log_uniform(rng, (0.0005, 0.02)),
            release_s: log_uniform(rng, (0.04, 0.4)),
        }
    } else {
        Dynamics::SoftClip { drive_db: uniform(rng, cfg.clip_drive_db) }
    })
}

/// The gain `g[channel][frame]` the dynamics apply to the mixture `m`: the processed
/// mixture is `g · m`, sample by sample.
pub fn dynamics_gain(m: &Audio, d: &Dynamics) -> Vec<Vec<f32>> {
    let peak = f64::from(m.peak());
    let (channels, frames) = (m.n_channels(), m.frames());
    if peak <= 0.0 {
        return vec![vec![1.0; frames]; channels];
    }
    match *d {
        Dynamics::SoftClip { drive_db } => {
            let k = (db_to_gain(drive_db) / peak) as f32;
            m.channels.iter().map(|ch| ch.iter().map(|&x| tanh_ratio(k * x)).collect()).collect()
        }
        Dynamics::Compressor { depth_db, ratio, knee_db, attack_s, release_s } => {
            let sr = f64::from(m.sample_rate);
            let threshold = 20.0 * peak.log10() - depth_db;
            let (alpha_a, alpha_r) = ((-1.0 / (attack_s * sr)).exp(), (-1.0 / (release_s * sr)).exp());
            // Gain reduction of the static curve at input level `x` dB: input minus output
            // level (Giannoulis et al., eq. 4, soft knee of width `knee_db`).
            let static_reduction = |x: f64| {
                let over = x - threshold;
                if 2.0 * over <= -knee_db {
                    0.0
                } else if 2.0 * over < knee_db {
                    (1.0 - 1.0 / ratio) * (over + knee_db / 2.0).powi(2) / (2.0 * knee_db)
                } else {
                    over * (1.0 - 1.0 / ratio)
                }
            };
            // Below the knee there is no reduction: no logarithm needed.
            let knee_start = db_to_gain(threshold - knee_db / 2.0) as f32;
            let mut reduction = 0.0f64; // smoothed gain reduction y_L, dB
            let gains: Vec<f32> = (0..frames)
                .map(|i| {
                    let level = m.channels.iter().fold(0.0f32, |a, ch| a.max(ch[i].abs()));
                    let target =
                        if level <= knee_start { 0.0 } else { static_reduction(f64::from(20.0 * level.log10())) };
                    let alpha = if target > reduction { alpha_a } else { alpha_r };
                    reduction = alpha * reduction + (1.0 - alpha) * target;
                    if reduction < 1e-7 { 1.0 } else { (-(reduction as f32) * (std::f32::consts::LN_10 / 20.0)).exp() }
                })
                .collect();
            vec![gains; channels]
        }
    }
}

/// `tanh(u) / u` in f32, to about 2e-7 relative: a series below |u| = 1/4, else from one
/// `exp` (several times cheaper than `tanh`, which dominated the clipper's cost).
fn tanh_ratio(u: f32) -> f32 {
    let a = u.abs();
    if a < 0.25 {
        // tanh(u)/u = 1 - u²/3 + 2u⁴/15 - 17u⁶/315 + 62u⁸/2835 - 1382u¹⁰/155925 + ...
        let z = a * a;
        1.0 + z * (-1.0 / 3.0 + z * (2.0 / 15.0 + z * (-17.0 / 315.0 + z * (62.0 / 2835.0 - z * (1382.0 / 155_925.0)))))
    } else {
        let e = (-2.0 * a).exp();
        (1.0 - e) / ((1.0 + e) * a)
    }
}

/// `x · g`, sample by sample.
fn apply_gain(x: &Audio, g: &[Vec<f32>]) -> Audio {
    let channels = x.channels.iter().zip(g).map(|(ch, g)| ch.iter().zip(g).map(|(s, g)| s * g).collect()).collect();
    Audio { sample_rate: x.sample_rate, channels }
}

/// The dynamics of the mixture `v + a`, carried into the stems: the per-sample gain `g`
/// that the compressor or clipper applies to the mixture ([`dynamics_gain`]) is applied to
/// both stems, so `g·v + g·a = g·m` is the processed mixture (to float rounding). For the
/// soft clipper that is `g = tanh(k m) / (k m)` per channel and sample: the stems are
/// scaled by how much the clipper squashed the mixture at that instant (their own
/// waveforms are not clipped: clipping cannot be split into parts, this gain is the share
/// of the clipped mixture that each stem's sample makes up).
pub fn dynamics(v: &Audio, a: &Audio, d: &Dynamics) -> (Audio, Audio) {
    let mut m = v.clone();
    m.add_assign(a);
    let g = dynamics_gain(&m, d);
    (apply_gain(v, &g), apply_gain(a, &g))
}

// ---------------------------------------------------------------------------------------
// Noise floor of the delivery format

/// What [`noise_floor`] adds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoiseFloor {
    /// The error of rounding the mixture to 16-bit integers (no dither), as a 16-bit file
    /// of it holds.
    Quantize16,
    /// White noise of this RMS (linear, full scale 1), independent per channel, from `seed`.
    White { rms: f32, seed: u64 },
}

/// With probability `exposed_prob`: by how many dB the accompaniment is turned down.
pub fn draw_exposed(cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Option<f64> {
    enabled(cfg.exposed_prob, rng).then(|| uniform(rng, cfg.exposed_db))
}

/// `x` turned down by `db`: with the vocals as they were, an exposed voice over a quiet
/// arrangement (what an a-cappella break or a sparse verse sounds like). Full mixes put the
/// voice near the accompaniment's level; a model trained only on those learns to remove
/// part of a voice that stands alone.
pub fn turned_down(x: &Audio, db: f64) -> Audio {
    let mut out = x.clone();
    out.scale(db_to_gain(-db) as f32);
    out
}

pub fn draw_noise_floor(cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Option<NoiseFloor> {
    if !enabled(cfg.noise_floor_prob, rng) {
        return None;
    }
    let white = rng.random::<bool>();
    let rms = db_to_gain(uniform(rng, cfg.noise_floor_dbfs)) as f32;
    let seed = rng.random::<u64>();
    Some(if white { NoiseFloor::White { rms, seed } } else { NoiseFloor::Quantize16 })
}

/// The accompaniment `a` plus the noise floor `n` of the mixture `v + a`: the mixture then
/// is the quantised (or noisy) signal, and still `vocals + accompaniment`.
pub fn noise_floor(v: &Audio, a: &Audio, n: NoiseFloor) -> Audio {
    let mut out = a.clone();
    match n {
        NoiseFloor::Quantize16 => {
            let mut mix = v.clone();
            mix.add_assign(a);
            let q = mix.quantized(16);
            for ((o, q), m) in out.channels.iter_mut().zip(&q.channels).zip(&mix.channels) {
                o.iter_mut().zip(q).zip(m).for_each(|((o, q), m)| *o += q - m);
            }
        }
        NoiseFloor::White { rms, seed } => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            // Uniform noise of variance rms²: amplitude rms·√3.
            let amp = rms * 3f32.sqrt();
            for o in &mut out.channels {
                o.iter_mut().for_each(|x| *x += amp * rng.random_range(-1.0f32..1.0));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sampler::{sample, step_rng};
    use super::*;
    use crate::synth;

    const RATE: u32 = 44_100;

    /// Every op off.
    fn off() -> TrainConfig {
        TrainConfig {
            eq_prob: 0.0,
            reverb_prob: 0.0,
            stereo_prob: 0.0,
            dynamics_prob: 0.0,
            band_limit_prob: 0.0,
            backing_prob: 0.0,
            noise_floor_prob: 0.0,
            exposed_prob: 0.0,
            ..TrainConfig::default()
        }
    }

    /// Every op always on.
    fn all_on() -> TrainConfig {
        TrainConfig {
            eq_prob: 1.0,
            reverb_prob: 1.0,
            stereo_prob: 1.0,
            dynamics_prob: 1.0,
            band_limit_prob: 1.0,
            backing_prob: 1.0,
            noise_floor_prob: 1.0,
            exposed_prob: 1.0,
            ..TrainConfig::default()
        }
    }

    /// Synthetic stems (vocals, accompaniment), 1 s at `rate`.
    fn stems(rate: u32, seed: u64) -> (Audio, Audio) {
        let t = synth::track(rate, 1.0, seed);
        (t.vocals, t.accompaniment)
    }

    fn sum(a: &Audio, b: &Audio) -> Audio {
        let mut s = a.clone();
        s.add_assign(b);
        s
    }

    /// ‖x − y‖ / ‖y‖ over all samples.
    fn rel_err(x: &Audio, y: &Audio) -> f64 {
        assert_eq!((x.n_channels(), x.frames()), (y.n_channels(), y.frames()));
        let (mut num, mut den) = (0.0, 0.0);
        for (a, b) in x.channels.iter().flatten().zip(y.channels.iter().flatten()) {
            num += (f64::from(*a) - f64::from(*b)).powi(2);
            den += f64::from(*b).powi(2);
        }
        (num / den.max(1e-30)).sqrt()
    }

    fn assert_sane(x: &Audio, like: &Audio) {
        assert_eq!((x.sample_rate, x.n_channels(), x.frames()), (like.sample_rate, 2, like.frames()));
        assert_eq!(x.first_non_finite(), None);
    }

    /// One op as a function of (vocals, accompaniment, config, rng), applied the way
    /// `augment` applies it (per-stem ops draw for the vocals, then the accompaniment).
    type Op = fn(&Audio, &Audio, &TrainConfig, &mut ChaCha8Rng) -> Option<(Audio, Audio)>;

    fn per_stem<P>(
        draw: fn(&TrainConfig, &mut ChaCha8Rng) -> Option<P>,
        f: fn(&Audio, &P) -> Audio,
        (v, a, cfg, rng): (&Audio, &Audio, &TrainConfig, &mut ChaCha8Rng),
    ) -> Option<(Audio, Audio)> {
        match (draw(cfg, rng), draw(cfg, rng)) {
            (Some(pv), Some(pa)) => Some((f(v, &pv), f(a, &pa))),
            (None, None) => None,
            _ => panic!("tests use probability 0 or 1 for per-stem ops"),
        }
    }
    fn op_eq(v: &Audio, a: &Audio, c: &TrainConfig, r: &mut ChaCha8Rng) -> Option<(Audio, Audio)> {
        per_stem(draw_eq, eq, (v, a, c, r))
    }
    fn op_reverb(v: &Audio, a: &Audio, c: &TrainConfig, r: &mut ChaCha8Rng) -> Option<(Audio, Audio)> {
        per_stem(draw_reverb, reverb, (v, a, c, r))
    }
    fn op_stereo(v: &Audio, a: &Audio, c: &TrainConfig, r: &mut ChaCha8Rng) -> Option<(Audio, Audio)> {
        per_stem(draw_stereo, place, (v, a, c, r))
    }
    fn op_band_limit(v: &Audio, a: &Audio, c: &TrainConfig, r: &mut ChaCha8Rng) -> Option<(Audio, Audio)> {
        draw_band_limit(c, r).map(|hz| (v.clone(), band_limit(a, hz)))
    }
    fn op_backing(v: &Audio, a: &Audio, c: &TrainConfig, r: &mut ChaCha8Rng) -> Option<(Audio, Audio)> {
        draw_backing(c, r).map(|p| (add_backing(v, &p), a.clone()))
    }
    fn op_dynamics(v: &Audio, a: &Audio, c: &TrainConfig, r: &mut ChaCha8Rng) -> Option<(Audio, Audio)> {
        draw_dynamics(c, r).map(|d| dynamics(v, a, &d))
    }
    fn op_exposed(v: &Audio, a: &Audio, c: &TrainConfig, r: &mut ChaCha8Rng) -> Option<(Audio, Audio)> {
        draw_exposed(c, r).map(|db| (v.clone(), turned_down(a, db)))
    }
    fn op_noise_floor(v: &Audio, a: &Audio, c: &TrainConfig, r: &mut ChaCha8Rng) -> Option<(Audio, Audio)> {
        draw_noise_floor(c, r).map(|n| (v.clone(), noise_floor(v, a, n)))
    }

    /// Sets an op's probability.
    type Set = fn(&mut TrainConfig, f64);

    /// Every op: name, function, and the setter of its probability.
    fn ops() -> Vec<(&'static str, Op, Set)> {
        vec![
            ("eq", op_eq as Op, (|c, p| c.eq_prob = p) as Set),
            ("reverb", op_reverb as Op, (|c, p| c.reverb_prob = p) as Set),
            ("stereo", op_stereo as Op, (|c, p| c.stereo_prob = p) as Set),
            ("band_limit", op_band_limit as Op, (|c, p| c.band_limit_prob = p) as Set),
            ("backing", op_backing as Op, (|c, p| c.backing_prob = p) as Set),
            ("dynamics", op_dynamics as Op, (|c, p| c.dynamics_prob = p) as Set),
            ("noise_floor", op_noise_floor as Op, (|c, p| c.noise_floor_prob = p) as Set),
            ("exposed", op_exposed as Op, (|c, p| c.exposed_prob = p) as Set),
        ]
    }

    #[test]
    fn every_op_keeps_the_mixture_the_sum_of_the_stems_and_changes_the_signal() {
        for (name, op, set) in ops() {
            for seed in 0..6 {
                let (v, a) = stems(RATE, seed);
                let mut cfg = off();
                set(&mut cfg, 1.0);
                let (v2, a2) = op(&v, &a, &cfg, &mut step_rng(seed, 1)).expect("on");
                assert_sane(&v2, &v);
                assert_sane(&a2, &a);
                // The mixture after the op is the sum of the processed stems (what the
                // sampler forms); the tests below show that sum is the processed mixture.
                assert_eq!(sum(&v2, &a2).first_non_finite(), None);
                let changed = rel_err(&v2, &v).max(rel_err(&a2, &a));
                // A noise floor is meant to be tiny (see the op's own test).
                let least = if name == "noise_floor" { 1e-7 } else { 1e-3 };
                assert!(changed > least, "{name} (seed {seed}) left the stems alone: {changed}");
                // `augment` with only this op on does exactly this.
                let (mut v3, mut a3) = (v.clone(), a.clone());
                augment(&mut v3, &mut a3, &cfg, &mut step_rng(seed, 1));
                assert_eq!((v3, a3), (v2, a2), "{name}");
            }
        }
    }

    #[test]
    fn exposed_vocals_turn_the_accompaniment_down_by_the_drawn_level() {
        let (v, a) = stems(RATE, 2);
        let cfg = TrainConfig { exposed_prob: 1.0, exposed_db: (20.0, 20.0), ..off() };
        let db = draw_exposed(&cfg, &mut step_rng(0, 0)).expect("on");
        assert_eq!(db, 20.0);
        let quiet = turned_down(&a, db);
        assert!((rel_err(&quiet, &a) - 0.9).abs() < 1e-6, "{}", rel_err(&quiet, &a));
        let (mut v2, mut a2) = (v.clone(), a.clone());
        augment(&mut v2, &mut a2, &cfg, &mut step_rng(0, 0));
        assert_eq!((v2, a2), (v, quiet), "the vocals stay as they were");
        // Drawn from the range, off at probability 0 (nothing drawn).
        let cfg = TrainConfig { exposed_prob: 1.0, ..off() };
        let mut rng = step_rng(1, 0);
        let draws: Vec<f64> = (0..200).map(|_| draw_exposed(&cfg, &mut rng).unwrap()).collect();
        assert!(draws.iter().all(|d| (6.0..30.0).contains(d)) && draws.iter().any(|d| *d > 25.0));
        assert_eq!(draw_exposed(&off(), &mut rng), None);
    }

    #[test]
    fn the_noise_floor_makes_the_mixture_a_16_bit_signal_or_adds_white_noise_at_its_level() {
        let (v, a) = stems(RATE, 3);
        let mix = sum(&v, &a);
        let a2 = noise_floor(&v, &a, NoiseFloor::Quantize16);
        let m2 = sum(&v, &a2);
        let q = mix.quantized(16);
        // Exactly on the 16-bit grid but for the float rounding of v + (a + error).
        assert!(rel_err(&m2, &q) < 1e-5, "{}", rel_err(&m2, &q));
        assert!(rel_err(&a2, &a) > 0.0);

        let level_want = 1e-5f32; // −100 dBFS
        let a3 = noise_floor(&v, &a, NoiseFloor::White { rms: level_want, seed: 7 });
        for (x, y) in a3.channels.iter().zip(&a.channels) {
            let noise: Vec<f32> = x.iter().zip(y).map(|(x, y)| x - y).collect();
            let level = rms(&noise) as f32;
            assert!((level / level_want - 1.0).abs() < 0.1, "noise RMS {level} for {level_want}");
        }
        assert_ne!(a3.channels[0][..100], a3.channels[1][..100], "independent channels");
        assert_eq!(a3, noise_floor(&v, &a, NoiseFloor::White { rms: level_want, seed: 7 }), "seeded");
    }

    #[test]
    fn linear_ops_process_the_mixture_as_they_process_each_stem() {
        // What a linear op does to each stem, it does to their sum: with one draw of the
        // parameters, op(v) + op(a) = op(v + a). So the summed stems are the processed mix.
        let (v, a) = stems(RATE, 3);
        let m = sum(&v, &a);
        let rng = &mut step_rng(5, 5);
        let cfg = all_on();
        let check = |name: &str, f: &dyn Fn(&Audio) -> Audio| {
            let err = rel_err(&sum(&f(&v), &f(&a)), &f(&m));
            assert!(err <= 1e-6, "{name}: op(v) + op(a) vs op(v + a): {err}");
        };
        let p = draw_eq(&cfg, rng).unwrap();
        check("eq", &|x| eq(x, &p));
        let p = draw_reverb(&cfg, rng).unwrap();
        check("reverb", &|x| reverb(x, &p));
        let p = draw_stereo(&cfg, rng).unwrap();
        check("stereo", &|x| place(x, &p));
        let hz = draw_band_limit(&cfg, rng).unwrap();
        check("band_limit", &|x| band_limit(x, hz));
        for _ in 0..4 {
            let p = draw_backing(&cfg, rng).unwrap();
            check("backing", &|x| add_backing(x, &p));
        }
    }

    #[test]
    fn dynamics_of_the_mixture_are_carried_into_the_stems() {
        let (v, a) = stems(RATE, 4);
        let m = sum(&v, &a);
        let peak = f64::from(m.peak());
        // Soft clip: the stems sum to tanh(k m) / k, the clipped mixture.
        let d = Dynamics::SoftClip { drive_db: 9.0 };
        let (v2, a2) = dynamics(&v, &a, &d);
        let k = db_to_gain(9.0) / peak;
        let clipped = Audio {
            sample_rate: RATE,
            channels: m
                .channels
                .iter()
                .map(|c| c.iter().map(|&x| ((k * f64::from(x)).tanh() / k) as f32).collect())
                .collect(),
        };
        let err = rel_err(&sum(&v2, &a2), &clipped);
        assert!(err <= 1e-6, "soft clip: {err}");
        let expected_peak = (db_to_gain(9.0).tanh() / k) as f32;
        assert!((sum(&v2, &a2).peak() - expected_peak).abs() < 1e-4 * expected_peak);
        // Compressor: one gain for both channels and both stems, reducing the peak, never
        // raising anything.
        let d = Dynamics::Compressor { depth_db: 12.0, ratio: 4.0, knee_db: 6.0, attack_s: 0.002, release_s: 0.1 };
        let g = dynamics_gain(&m, &d);
        assert_eq!(g[0], g[1], "stereo-linked");
        assert!(g[0].iter().all(|&g| g > 0.0 && g <= 1.0));
        let (v2, a2) = dynamics(&v, &a, &d);
        let err = rel_err(&sum(&v2, &a2), &apply_gain(&m, &g));
        assert!(err <= 1e-6, "compressor: {err}");
        let min_gain = g[0].iter().fold(1.0f32, |m, &g| m.min(g));
        assert!(min_gain < 0.5, "12 dB above a 4:1 threshold: about 9 dB of reduction, got {min_gain}");
        // Loud and quiet 50 ms windows move closer together.
        let spread = |x: &Audio| {
            let levels: Vec<f64> =
                x.channels[0].chunks(2205).map(|w| 20.0 * rms(w).max(1e-9).log10()).filter(|&l| l > -40.0).collect();
            levels.iter().fold(f64::MIN, |a, &b| a.max(b)) - levels.iter().fold(f64::MAX, |a, &b| a.min(b))
        };
        let (before, after) = (spread(&m), spread(&sum(&v2, &a2)));
        assert!(after < before - 2.0, "level spread {before} dB -> {after} dB");
        // Silence stays silence.
        let s = Audio::silence(RATE, 2, 100);
        assert_eq!(dynamics(&s, &s, &d).0, s);
    }

    #[test]
    fn tanh_ratio_is_tanh_over_its_argument() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let u = (i as f64 * 1e-4 - 10.0) as f32;
            let exact = if u == 0.0 { 1.0 } else { f64::from(u).tanh() / f64::from(u) };
            worst = worst.max((f64::from(tanh_ratio(u)) - exact).abs() / exact);
        }
        assert!(worst < 5e-7, "{worst}");
    }

    #[test]
    fn ops_are_deterministic_for_a_seed() {
        let (v, a) = stems(RATE, 1);
        for (name, op, set) in ops() {
            let mut cfg = off();
            set(&mut cfg, 1.0);
            let x = op(&v, &a, &cfg, &mut step_rng(9, 2));
            assert_eq!(x, op(&v, &a, &cfg, &mut step_rng(9, 2)), "{name}");
            assert_ne!(x, op(&v, &a, &cfg, &mut step_rng(9, 3)), "{name}: another seed, another draw");
        }
        let cfg = all_on();
        let run = |step| {
            let (mut v, mut a) = (v.clone(), a.clone());
            augment(&mut v, &mut a, &cfg, &mut step_rng(9, step));
            (v, a)
        };
        assert_eq!(run(4), run(4));
        assert_ne!(run(4), run(5));
    }

    #[test]
    fn disabled_ops_draw_nothing() {
        let (v, a) = stems(RATE, 2);
        let cfg = off();
        let start = step_rng(11, 3);
        let mut rng = start.clone();
        assert!(draw_eq(&cfg, &mut rng).is_none());
        assert!(draw_reverb(&cfg, &mut rng).is_none());
        assert!(draw_stereo(&cfg, &mut rng).is_none());
        assert!(draw_band_limit(&cfg, &mut rng).is_none());
        assert!(draw_backing(&cfg, &mut rng).is_none());
        assert!(draw_dynamics(&cfg, &mut rng).is_none());
        for (_, op, _) in ops() {
            assert!(op(&v, &a, &cfg, &mut rng).is_none());
        }
        let (mut v2, mut a2) = (v.clone(), a.clone());
        augment(&mut v2, &mut a2, &cfg, &mut rng);
        assert_eq!((&v2, &a2), (&v, &a), "all off: the stems are untouched");
        assert_eq!(rng.get_word_pos(), start.get_word_pos());
        assert!(rng == start);
        assert_eq!(rng.random::<u64>(), start.clone().random::<u64>());
        // Each op turned on draws (so the check above is not vacuous).
        for (name, op, set) in ops() {
            let mut cfg = off();
            set(&mut cfg, 1.0);
            let mut rng = start.clone();
            let _ = op(&v, &a, &cfg, &mut rng);
            assert!(rng != start, "{name}");
        }
    }

    #[test]
    fn sampled_examples_keep_the_identity_with_every_op_on() {
        let pools = crate::train::sampler::test_pools();
        for cfg in [all_on(), TrainConfig::default()] {
            let mut cfg = TrainConfig { chunk_seconds: 1.0, speed_percent: 5, ..cfg };
            cfg.stft.sample_rate = 8000;
            for step in 0..30 {
                let e = sample(&pools, &cfg, &mut step_rng(1, step));
                for x in [&e.mixture, &e.vocals, &e.accompaniment] {
                    assert_sane(x, &e.mixture);
                    assert_eq!(x.frames(), 8000);
                }
                assert!(rel_err(&sum(&e.vocals, &e.accompaniment), &e.mixture) <= 1e-6);
                let again = sample(&pools, &cfg, &mut step_rng(1, step));
                assert_eq!((again.mixture, again.vocals), (e.mixture, e.vocals));
            }
        }
    }

    /// Root-mean-square of `x`.
    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    /// Level of a steady sine at `hz` through `f`, in dB (after the transient).
    fn response_db(rate: u32, hz: f64, f: impl Fn(&Audio) -> Audio) -> f64 {
        let tone: Vec<f32> =
            (0..rate as usize).map(|i| (2.0 * PI * hz * i as f64 / f64::from(rate)).sin() as f32).collect();
        let x = Audio { sample_rate: rate, channels: vec![tone.clone(), tone] };
        let y = f(&x);
        let half = rate as usize / 2;
        20.0 * (rms(&y.channels[0][half..]) / rms(&x.channels[0][half..])).log10()
    }

    #[test]
    fn eq_bands_have_the_cookbook_gains() {
        let p = EqParams {
            low_shelf: (100.0, 6.0),
            high_shelf: (8000.0, -6.0),
            peaks: [(1000.0, 2.0, 9.0), (3000.0, 1.0, 0.0)],
        };
        let db = |hz| response_db(RATE, hz, |x| eq(x, &p));
        assert!((db(30.0) - 6.0).abs() < 0.3, "low shelf {}", db(30.0));
        assert!((db(1000.0) - 9.0).abs() < 0.3, "peak {}", db(1000.0));
        assert!((db(18_000.0) + 6.0).abs() < 0.3, "high shelf {}", db(18_000.0));
        assert!(db(400.0).abs() < 1.5 && db(400.0) > -0.5, "between the bands {}", db(400.0));
        // At a low model rate, bands above 0.45 × the rate are moved down and stay stable.
        let y = eq(&stems(8000, 0).0, &EqParams { high_shelf: (10_000.0, 12.0), ..p.clone() });
        assert_eq!(y.first_non_finite(), None);
    }

    #[test]
    fn band_limit_is_a_steep_low_pass() {
        for (rate, cutoff) in [(RATE, 4000.0), (RATE, 12_000.0), (8000, 3000.0)] {
            let db = |hz| response_db(rate, hz, |x| band_limit(x, cutoff));
            assert!(db(cutoff * 0.5).abs() < 0.1, "pass band {}", db(cutoff * 0.5));
            assert!((db(cutoff) + 3.0).abs() < 0.2, "-3 dB at the cut-off: {}", db(cutoff));
            if cutoff * 1.25 < 0.5 * f64::from(rate) {
                assert!(db(cutoff * 1.25) < -12.0, "stop band {}", db(cutoff * 1.25));
            }
        }
        assert!(response_db(RATE, 8000.0, |x| band_limit(x, 4000.0)) < -45.0);
    }

    #[test]
    fn reverb_tails_decay_at_their_rt60_and_differ_between_channels() {
        let p =
            ReverbParams { rt60_s: 0.8, hf_ratio: 0.5, damping_hz: 3000.0, predelay_s: 0.01, wet_db: -6.0, seed: 3 };
        let (l, r) = (impulse_response(&p, RATE, 0, 1 << 20), impulse_response(&p, RATE, 1, 1 << 20));
        assert_eq!(l.len(), (0.01 * 44_100.0) as usize + (0.8 * 44_100.0_f64).ceil() as usize);
        assert!(l[..441].iter().all(|&x| x == 0.0), "pre-delay");
        let energy = |h: &[f32]| h.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
        assert!((energy(&l) - 1.0).abs() < 1e-4);
        let corr = l.iter().zip(&r).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>();
        assert!(corr.abs() < 0.1, "left/right tails are decorrelated: {corr}");
        // Energy over 100 ms windows falls by ~60 dB over the RT60 (the low band dominates
        // late): between 0.2 s and 0.6 s, ~30 dB.
        let w = |t: f64| energy(&l[441 + (t * 44_100.0) as usize..][..4410]);
        let drop = 10.0 * (w(0.2) / w(0.6)).log10();
        assert!((drop - 30.0).abs() < 6.0, "decay {drop} dB over 0.4 s");
        // Convolution matches the direct sum.
        let x: Vec<f32> = stems(8000, 0).0.channels[0][..700].to_vec();
        let h = &l[..300];
        let fast = convolve(&x, h);
        for n in [0, 1, 299, 450, 699] {
            let direct: f64 = (0..=n.min(299)).map(|k| f64::from(h[k]) * f64::from(x[n - k])).sum();
            assert!((f64::from(fast[n]) - direct).abs() < 1e-5, "{n}: {} vs {direct}", fast[n]);
        }
        assert_eq!(fft_len(154_351), 155_520);
        assert_eq!(fft_len(1025), 1080);
        assert_eq!(fft_len(1), 1);
    }

    #[test]
    fn stereo_placement_pans_widens_and_delays() {
        let mono = Audio { sample_rate: 8000, channels: vec![stems(8000, 0).0.channels[0].clone(); 2] };
        let centre = StereoParams { width: 1.0, pan: 0.0, delay_s: 0.0, delay_left: false };
        assert!(rel_err(&place(&mono, &centre), &mono) < 1e-7, "identity at the centre");
        let right = place(&mono, &StereoParams { pan: 0.5, ..centre.clone() });
        let (l, r) = (rms(&right.channels[0]), rms(&right.channels[1]));
        assert!(r > 2.0 * l, "panned right: {l} {r}");
        assert!(((l * l + r * r) / (2.0 * rms(&mono.channels[0]).powi(2)) - 1.0).abs() < 1e-4, "constant power");
        let delayed = place(&mono, &StereoParams { delay_s: 0.01, delay_left: true, ..centre.clone() });
        assert_eq!(delayed.channels[0][80..], mono.channels[0][..8000 - 80]);
        assert_eq!(delayed.channels[1], mono.channels[1]);
        // Width 0 makes a stereo source mono.
        let (v, _) = stems(8000, 0);
        let narrow = place(&v, &StereoParams { width: 0.0, ..centre });
        assert_eq!(narrow.channels[0], narrow.channels[1]);
    }

    #[test]
    fn backing_vocals_add_a_quieter_pitched_voice() {
        let tone = |hz: f64| -> Vec<f32> {
            (0..8000).map(|i| (0.5 * (2.0 * PI * hz * i as f64 / 8000.0).sin()) as f32).collect()
        };
        let lead = Audio { sample_rate: 8000, channels: vec![tone(440.0); 2] };
        let p = BackingParams { percent: 26, delay_s: 0.02, gain_db: -6.0, pan: 0.0 };
        let out = add_backing(&lead, &p);
        let backing: Vec<f32> = out.channels[0].iter().zip(&lead.channels[0]).map(|(y, x)| y - x).collect();
        assert!(backing[..160].iter().all(|&x| x == 0.0), "20 ms late");
        // 26 % faster: 554 Hz (a major third up), ending ~1/1.26 of the way through.
        let part = &backing[400..5800];
        let crossings = part.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
        let hz = crossings as f64 / 2.0 / (part.len() as f64 / 8000.0);
        assert!((hz - 440.0 * 1.26).abs() < 3.0, "{hz} Hz");
        assert!(backing[6600..].iter().all(|&x| x == 0.0), "the sped-up copy ends early");
        let level = 20.0 * (rms(&backing[400..5800]) / rms(&lead.channels[0])).log10();
        assert!((level + 6.0).abs() < 0.3, "{level} dB");
    }
}
