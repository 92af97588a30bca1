//! Training examples: random chunks of aligned tracks or random remixes
//! (vocals of one source over the accompaniment of another), with random
//! gain per source, random left/right swap and silence-aware chunk choice.
//! Everything is drawn from an RNG derived from (seed, step), so a resumed
//! run sees exactly the batches the killed run would have seen.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::TrainConfig;
use crate::audio::Audio;
use crate::data::{LooseAudio, TrackAudio};

/// Audio at the model rate to draw examples from.
#[derive(Debug, Default)]
pub struct Pools {
    pub tracks: Vec<TrackAudio>,
    pub vocals: Vec<LooseAudio>,
    pub instrumentals: Vec<LooseAudio>,
}

/// A source to draw a chunk from, with the rate it was recorded at.
#[derive(Clone, Copy)]
struct Src<'a> {
    audio: &'a Audio,
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
    let (mut v, mut a, lowest_rate) = if remix {
        let pick = |sources: Vec<Src<'a>>, rng: &mut ChaCha8Rng| -> Src<'a> {
            let weights = sources.iter().map(|s| source_weight(s.audio.frames(), s.source_rate, cfg));
            sources[weighted_index(weights, rng)]
        };
        let v_src = pick(pools.vocal_sources(), rng);
        let start = voiced_start(v_src.audio, len, cfg.silence_db, accept_silent, rng);
        let a_src = pick(pools.accompaniment_sources(), rng);
        let a_start = rng.random_range(0..=a_src.audio.frames().saturating_sub(len));
        let rate = v_src.source_rate.min(a_src.source_rate);
        (v_src.audio.slice_padded(start, len), a_src.audio.slice_padded(a_start, len), rate)
    } else {
        let weights = pools.tracks.iter().map(|t| source_weight(t.vocals.frames(), t.source_rate, cfg));
        let t = &pools.tracks[weighted_index(weights, rng)];
        let start = voiced_start(&t.vocals, len, cfg.silence_db, accept_silent, rng);
        (t.vocals.slice_padded(start, len), t.accompaniment.slice_padded(start, len), t.source_rate)
    };
    for x in [&mut v, &mut a] {
        *x = x.with_channels(2);
        x.scale(10f64.powf(rng.random_range(cfg.gain_db.0..=cfg.gain_db.1) / 20.0) as f32);
        if rng.random::<f64>() < cfg.swap_prob {
            x.channels.swap(0, 1);
        }
    }
    let mut mixture = v.clone();
    mixture.add_assign(&a);
    Example { mixture, vocals: v, accompaniment: a, bandwidth_hz: bandwidth(lowest_rate, cfg) }
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
fn voiced_start(src: &Audio, len: usize, silence_db: f64, accept_silent: bool, rng: &mut ChaCha8Rng) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    fn pools() -> Pools {
        let tracks = (0..3)
            .map(|k| {
                let t = synth::track(8000, 4.0, k);
                TrackAudio {
                    name: format!("t{k}"),
                    split: None,
                    vocals: t.vocals,
                    accompaniment: t.accompaniment,
                    source_rate: 8000,
                }
            })
            .collect();
        let loose = LooseAudio {
            name: "v".into(),
            audio: synth::track(8000, 2.0, 9).vocals.with_channels(1),
            source_rate: 8000,
        };
        Pools { tracks, vocals: vec![loose], instrumentals: Vec::new() }
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
}
