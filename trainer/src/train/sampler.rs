//! Training examples: random chunks of aligned tracks or random remixes
//! (vocals of one source over the accompaniment of another), with random
//! gain per source, random left/right swap and silence-aware chunk choice,
//! then the mix augmentations of `augment`.
//! Everything is drawn from an RNG derived from (seed, step), so a resumed
//! run sees exactly the batches the killed run would have seen.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::TrainConfig;
use crate::audio::{Audio, Chunks, Clip};
use crate::data::{LooseAudio, TrackAudio};

/// Audio at the model rate to draw examples from: read chunk by chunk from the cache's files
/// when there is a cache (see `data::pool`), so the pool may be larger than RAM.
#[derive(Debug, Default)]
pub struct Pools {
    pub tracks: Vec<TrackAudio<Clip>>,
    pub vocals: Vec<LooseAudio<Clip>>,
    pub instrumentals: Vec<LooseAudio<Clip>>,
}

/// A source to draw a chunk from, with the rate it was recorded at.
#[derive(Clone, Copy)]
struct Src<'a> {
    audio: &'a Clip,
    source_rate: u32,
}

impl Pools {
    fn vocal_sources(&self) -> Vec<Src<'_>> {
        let tracks = self.tracks.iter().map(|t| Src { audio: &t.vocals, source_rate: t.source_rate });
        tracks.chain(self.vocals.iter().map(|l| Src { audio: &l.audio, source_rate: l.source_rate })).collect()
    }
    fn accompaniment_sources(&self) -> Vec<Src<'_>> {
        let tracks = self.tracks.iter().map(|t| Src { audio: &t.accompaniment, source_rate: t.source_rate });
        tracks.chain(self.instrumentals.iter().map(|l| Src { audio: &l.audio, source_rate: l.source_rate })).collect()
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.tracks.is_empty() || (!self.vocals.is_empty() && !self.instrumentals.is_empty()),
            "training needs tracks with stems, or both loose vocals and loose instrumentals"
        );
        Ok(())
    }
}

/// How much a source is drawn: its length, times `low_rate_weight` when it was recorded
/// below the model rate (it has no energy in the top of the spectrum).
fn source_weight(frames: usize, source_rate: u32, cfg: &TrainConfig) -> f64 {
    let band_limited = f64::from(source_rate) < 0.9 * f64::from(cfg.stft.sample_rate);
    frames as f64 * if band_limited { cfg.low_rate_weight } else { 1.0 }
}

/// Index drawn with probability proportional to `weights` (uniform when they are all 0).
fn weighted_index(weights: impl Iterator<Item = f64>, rng: &mut ChaCha8Rng) -> usize {
    let cumulative: Vec<f64> = weights
        .scan(0.0, |acc, w| {
            *acc += w.max(0.0);
            Some(*acc)
        })
        .collect();
    let total = cumulative.last().copied().unwrap_or(0.0);
    if total <= 0.0 {
        return rng.random_range(0..cumulative.len().max(1));
    }
    let x = rng.random::<f64>() * total;
    cumulative.partition_point(|&c| c <= x).min(cumulative.len() - 1)
}

/// One stereo example; `mixture = vocals + accompaniment`.
#[derive(Debug, Clone)]
pub struct Example {
    pub mixture: Audio,
    pub vocals: Audio,
    pub accompaniment: Audio,
    /// Highest frequency both stems can contain (half the lower source rate): above it a
    /// stem is silent because of how it was recorded, not because of the music, so the loss
    /// ignores those bins.
    pub bandwidth_hz: f32,
}

/// The RNG for `step`: independent streams per step from one seed.
pub fn step_rng(seed: u64, step: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step);
    rng
}

/// Draws a training example (augmented).
pub fn sample<'a>(pools: &'a Pools, cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Example {
    let len = (cfg.chunk_seconds * f64::from(cfg.stft.sample_rate)).round() as usize;
    let accept_silent = rng.random::<f64>() < cfg.silent_prob;
    let remix = pools.tracks.is_empty() || rng.random::<f64>() < cfg.remix_prob;
    let (mut v, mut a, bandwidth_hz) = if remix {
        let pick = |sources: Vec<Src<'a>>, rng: &mut ChaCha8Rng| -> Src<'a> {
            let weights = sources.iter().map(|s| source_weight(s.audio.frames(), s.source_rate, cfg));
            sources[weighted_index(weights, rng)]
        };
        let v_src = pick(pools.vocal_sources(), rng);
        let v_speed = draw_speed(cfg, rng);
        let start = voiced_start(v_src.audio, v_speed.span(len), cfg.silence_db, accept_silent, rng);
        let a_src = pick(pools.accompaniment_sources(), rng);
        let a_speed = draw_speed(cfg, rng);
        let a_start = rng.random_range(0..=a_src.audio.frames().saturating_sub(a_speed.span(len)));
        let bandwidth = v_speed.bandwidth(v_src.source_rate, cfg).min(a_speed.bandwidth(a_src.source_rate, cfg));
        (v_speed.chunk(v_src.audio, start, len), a_speed.chunk(a_src.audio, a_start, len), bandwidth)
    } else {
        let weights = pools.tracks.iter().map(|t| source_weight(t.vocals.frames(), t.source_rate, cfg));
        let t = &pools.tracks[weighted_index(weights, rng)];
        let speed = draw_speed(cfg, rng);
        let start = voiced_start(&t.vocals, speed.span(len), cfg.silence_db, accept_silent, rng);
        let bandwidth = speed.bandwidth(t.source_rate, cfg);
        (speed.chunk(&t.vocals, start, len), speed.chunk(&t.accompaniment, start, len), bandwidth)
    };
    for x in [&mut v, &mut a] {
        *x = x.with_channels(2);
        x.scale(10f64.powf(rng.random_range(cfg.gain_db.0..=cfg.gain_db.1) / 20.0) as f32);
        if rng.random::<f64>() < cfg.swap_prob {
            x.channels.swap(0, 1);
        }
    }
    super::augment::augment(&mut v, &mut a, cfg, rng);
    let mut mixture = v.clone();
    mixture.add_assign(&a);
    Example { mixture, vocals: v, accompaniment: a, bandwidth_hz }
}

/// A speed change by `percent` % (0 = none): `span` source frames are played in `len`.
#[derive(Clone, Copy)]
struct Speed {
    percent: i32,
}

/// A random speed when `speed_percent` is on; draws nothing otherwise, so runs without it
/// see the same random numbers as before the option existed.
fn draw_speed(cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Speed {
    let p = cfg.speed_percent as i32;
    Speed { percent: if p == 0 { 0 } else { rng.random_range(-p..=p) } }
}

impl Speed {
    fn factor(self) -> f64 {
        1.0 + f64::from(self.percent) / 100.0
    }

    /// Source frames that make `len` output frames.
    fn span(self, len: usize) -> usize {
        (len as f64 * self.factor()).round() as usize
    }

    /// Highest frequency the sped-up source can contain (pitch moves with speed).
    fn bandwidth(self, source_rate: u32, cfg: &TrainConfig) -> f32 {
        let nyquist = cfg.stft.sample_rate as f32 / 2.0;
        (bandwidth(source_rate, cfg) * self.factor() as f32).min(nyquist)
    }

    /// `len` frames of `src` from `start`, played `factor` times faster: the `span` source
    /// frames are declared to be at `factor` × the rate and resampled back (band-limited).
    /// Rates stay on a 1 % grid so the FFT resampler's ratio is small (100 + percent : 100).
    fn chunk(self, src: &Clip, start: usize, len: usize) -> Audio {
        if self.percent == 0 {
            return src.slice_padded(start, len);
        }
        match crate::audio::resample::change_speed(src.slice_padded(start, self.span(len)), self.factor()) {
            Ok(out) => out.slice_padded(0, len),
            // Cannot happen for the rates above; an unchanged chunk is still a valid example.
            Err(_) => src.slice_padded(start, len),
        }
    }
}

/// Half of the lower of a source's rate and the model rate.
fn bandwidth(source_rate: u32, cfg: &TrainConfig) -> f32 {
    source_rate.min(cfg.stft.sample_rate) as f32 / 2.0
}

/// Validation examples: aligned chunks of the validation tracks, no
/// augmentation, fixed by the seed.
pub fn validation_examples(tracks: &[TrackAudio], cfg: &TrainConfig, n: usize) -> Vec<Example> {
    let len = (cfg.chunk_seconds * f64::from(cfg.stft.sample_rate)).round() as usize;
    let mut rng = step_rng(cfg.seed ^ 0x7661_6c69_6461_7465, 0);
    (0..n)
        .map(|i| {
            let t = &tracks[i % tracks.len()];
            let start = voiced_start(&t.vocals, len, cfg.silence_db, false, &mut rng);
            let v = t.vocals.slice_padded(start, len).with_channels(2);
            let a = t.accompaniment.slice_padded(start, len).with_channels(2);
            let mut mixture = v.clone();
            mixture.add_assign(&a);
            Example { mixture, vocals: v, accompaniment: a, bandwidth_hz: bandwidth(t.source_rate, cfg) }
        })
        .collect()
}

/// A chunk start whose vocals are louder than `silence_db` (up to 20 tries;
/// any start when `accept_silent`).
fn voiced_start(src: &impl Chunks, len: usize, silence_db: f64, accept_silent: bool, rng: &mut ChaCha8Rng) -> usize {
    let max_start = src.frames().saturating_sub(len);
    let mut start = rng.random_range(0..=max_start);
    if accept_silent {
        return start;
    }
    let threshold = 10f64.powf(silence_db / 10.0);
    for _ in 0..20 {
        if src.slice_padded(start, len).mean_square() > threshold {
            break;
        }
        start = rng.random_range(0..=max_start);
    }
    start
}

/// Test pools at 8 kHz: three synthetic tracks and one loose mono vocal.
#[cfg(test)]
pub(crate) fn test_pools() -> Pools {
    use crate::synth;
    let tracks = (0..3)
        .map(|k| {
            let t = synth::track(8000, 4.0, k);
            TrackAudio {
                name: format!("t{k}"),
                split: None,
                vocals: t.vocals.into(),
                accompaniment: t.accompaniment.into(),
                source_rate: 8000,
            }
        })
        .collect();
    let loose = LooseAudio {
        name: "v".into(),
        audio: synth::track(8000, 2.0, 9).vocals.with_channels(1).into(),
        source_rate: 8000,
    };
    Pools { tracks, vocals: vec![loose], instrumentals: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> Pools {
        test_pools()
    }

    fn cfg() -> TrainConfig {
        let mut c = TrainConfig { chunk_seconds: 1.0, ..Default::default() };
        c.stft.sample_rate = 8000;
        c
    }

    #[test]
    fn examples_are_reproducible_stereo_and_consistent() {
        let (p, c) = (pools(), cfg());
        let a = sample(&p, &c, &mut step_rng(1, 5));
        let b = sample(&p, &c, &mut step_rng(1, 5));
        assert_eq!(a.mixture, b.mixture);
        assert_ne!(sample(&p, &c, &mut step_rng(1, 6)).mixture, a.mixture);
        for x in [&a.mixture, &a.vocals, &a.accompaniment] {
            assert_eq!((x.n_channels(), x.frames()), (2, 8000));
        }
        let mut sum = a.vocals.clone();
        sum.add_assign(&a.accompaniment);
        assert_eq!(sum, a.mixture);
    }

    #[test]
    fn silence_aware_sampling_avoids_silent_vocals() {
        let (p, mut c) = (pools(), cfg());
        c.silent_prob = 0.0;
        c.gain_db = (0.0, 0.0);
        let voiced = (0..200).filter(|&s| sample(&p, &c, &mut step_rng(3, s)).vocals.mean_square() > 1e-5).count();
        assert!(voiced >= 195, "{voiced}/200 voiced");
    }

    #[test]
    fn sources_are_drawn_by_length_and_rate_weight() {
        let mut rng = step_rng(4, 0);
        let counts = (0..20_000).fold([0usize; 3], |mut c, _| {
            c[weighted_index([1.0, 3.0, 0.0].into_iter(), &mut rng)] += 1;
            c
        });
        assert_eq!(counts[2], 0);
        let ratio = counts[1] as f64 / counts[0] as f64;
        assert!((ratio - 3.0).abs() < 0.2, "{counts:?}");

        let mut c = cfg();
        c.stft.sample_rate = 44_100;
        assert_eq!(source_weight(1000, 44_100, &c), 1000.0);
        assert_eq!(source_weight(1000, 48_000, &c), 1000.0);
        c.low_rate_weight = 0.25;
        assert_eq!(source_weight(1000, 16_000, &c), 250.0);
    }

    #[test]
    fn example_bandwidth_is_that_of_the_lower_rate_source() {
        let (mut p, mut c) = (pools(), cfg());
        c.stft.sample_rate = 8000;
        p.tracks.iter_mut().for_each(|t| t.source_rate = 44_100);
        p.vocals[0].source_rate = 4000;
        c.remix_prob = 0.0;
        assert_eq!(sample(&p, &c, &mut step_rng(1, 0)).bandwidth_hz, 4000.0, "capped at the model rate");
        c.remix_prob = 1.0;
        let bws: Vec<f32> = (0..300).map(|s| sample(&p, &c, &mut step_rng(2, s)).bandwidth_hz).collect();
        assert!(bws.contains(&2000.0) && bws.contains(&4000.0), "remixes with the 4 kHz vocal are limited to 2 kHz");
        assert!(bws.iter().all(|&b| b == 2000.0 || b == 4000.0));
    }

    /// Frequency of a steady tone from its zero crossings.
    fn tone_hz(x: &[f32], rate: f64) -> f64 {
        let crossings = x.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
        crossings as f64 / 2.0 / (x.len() as f64 / rate)
    }

    #[test]
    fn speed_augmentation_moves_pitch_on_a_one_percent_grid_and_the_bandwidth_with_it() {
        let mut c = cfg();
        c.speed_percent = 10;
        c.remix_prob = 0.0;
        // Vocals: a 1 kHz tone; accompaniment: a 500 Hz tone (aligned stems share the speed).
        let tone = |hz: f32| -> Vec<f32> {
            (0..32_000).map(|i| (std::f32::consts::TAU * hz * i as f32 / 8000.0).sin() * 0.5).collect()
        };
        let vocals = Audio { sample_rate: 8000, channels: vec![tone(1000.0); 2] };
        let accompaniment = Audio { sample_rate: 8000, channels: vec![tone(500.0); 2] };
        let t = TrackAudio {
            name: "tone".into(),
            split: None,
            vocals: vocals.into(),
            accompaniment: accompaniment.into(),
            source_rate: 4000,
        };
        let p = Pools { tracks: vec![t], ..Default::default() };
        let mut seen = std::collections::BTreeSet::new();
        for step in 0..60 {
            let e = sample(&p, &c, &mut step_rng(7, step));
            assert_eq!((e.vocals.frames(), e.accompaniment.frames()), (8000, 8000));
            // Away from the resampler's edges.
            let v = tone_hz(&e.vocals.channels[0][500..7500], 8000.0) / 1000.0;
            let a = tone_hz(&e.accompaniment.channels[0][500..7500], 8000.0) / 500.0;
            let k = ((v - 1.0) * 100.0).round();
            assert!(k.abs() <= 10.0 && (v - (1.0 + k / 100.0)).abs() < 0.003, "speed {v}");
            assert!((a - v).abs() < 0.003, "aligned stems share the speed: {a} vs {v}");
            // A 4 kHz-rate source holds up to 2 kHz; sped up by v it holds up to 2 kHz × v.
            assert!((f64::from(e.bandwidth_hz) - 2000.0 * (1.0 + k / 100.0)).abs() < 0.5, "{}", e.bandwidth_hz);
            seen.insert(k as i32);
        }
        assert!(seen.len() >= 10, "speeds drawn: {seen:?}");
        // Off: plain chunks of the source, no resampling.
        c.speed_percent = 0;
        let e = sample(&p, &c, &mut step_rng(7, 0));
        assert!((tone_hz(&e.vocals.channels[0], 8000.0) - 1000.0).abs() < 1.0);
    }
}
