//! Training examples: random chunks of aligned tracks or random remixes
//! (vocals of one source over the accompaniment of another), with random
//! gain per source, random left/right swap and silence-aware chunk choice.
//! Everything is drawn from an RNG derived from (seed, step), so a resumed
//! run sees exactly the batches the killed run would have seen.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::TrainConfig;
use crate::audio::Audio;
use crate::data::TrackAudio;

/// Audio at the model rate to draw examples from.
#[derive(Debug, Default)]
pub struct Pools {
    pub tracks: Vec<TrackAudio>,
    pub vocals: Vec<Audio>,
    pub instrumentals: Vec<Audio>,
}

impl Pools {
    fn vocal_sources(&self) -> Vec<&Audio> {
        self.tracks.iter().map(|t| &t.vocals).chain(&self.vocals).collect()
    }
    fn accompaniment_sources(&self) -> Vec<&Audio> {
        self.tracks.iter().map(|t| &t.accompaniment).chain(&self.instrumentals).collect()
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.tracks.is_empty() || (!self.vocals.is_empty() && !self.instrumentals.is_empty()),
            "training needs tracks with stems, or both loose vocals and loose instrumentals"
        );
        Ok(())
    }
}

/// One stereo example; `mixture = vocals + accompaniment`.
#[derive(Debug, Clone)]
pub struct Example {
    pub mixture: Audio,
    pub vocals: Audio,
    pub accompaniment: Audio,
}

/// The RNG for `step`: independent streams per step from one seed.
pub fn step_rng(seed: u64, step: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step);
    rng
}

/// Draws a training example (augmented).
pub fn sample(pools: &Pools, cfg: &TrainConfig, rng: &mut ChaCha8Rng) -> Example {
    let len = (cfg.chunk_seconds * f64::from(cfg.stft.sample_rate)).round() as usize;
    let accept_silent = rng.random::<f64>() < cfg.silent_prob;
    let remix = pools.tracks.is_empty() || rng.random::<f64>() < cfg.remix_prob;
    let (mut v, mut a) = if remix {
        let vs = pools.vocal_sources();
        let accs = pools.accompaniment_sources();
        let v_src = vs[rng.random_range(0..vs.len())];
        let start = voiced_start(v_src, len, cfg.silence_db, accept_silent, rng);
        let a_src = accs[rng.random_range(0..accs.len())];
        let a_start = rng.random_range(0..=a_src.frames().saturating_sub(len));
        (v_src.slice_padded(start, len), a_src.slice_padded(a_start, len))
    } else {
        let t = &pools.tracks[rng.random_range(0..pools.tracks.len())];
        let start = voiced_start(&t.vocals, len, cfg.silence_db, accept_silent, rng);
        (t.vocals.slice_padded(start, len), t.accompaniment.slice_padded(start, len))
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
    Example { mixture, vocals: v, accompaniment: a }
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
            Example { mixture, vocals: v, accompaniment: a }
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
        Pools { tracks, vocals: vec![synth::track(8000, 2.0, 9).vocals.with_channels(1)], instrumentals: Vec::new() }
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
}
