//! Loading a run's data: training pools and held-out validation tracks.

use rand::Rng;

use super::config::TrainConfig;
use super::sampler::{Pools, step_rng};
use crate::audio::Audio;
use crate::audio::cache::AudioLoader;
use crate::audio::{Chunks, Clip};
use crate::data::{DataSpec, LoadOptions, PoolData, TrackAudio, discover_all, load_pool};

/// Data for a run: training pools and validation tracks, at the model rate.
pub struct RunData {
    pub pools: Pools,
    pub val_tracks: Vec<TrackAudio>,
    pub skipped: Vec<String>,
}

/// Loads `cfg.data` (and `cfg.val_data`) and splits off validation tracks. Training audio
/// stays in the cache's files (`data::pool`); the validation excerpts are copied to RAM.
pub fn load_data(cfg: &TrainConfig, opts: LoadOptions) -> anyhow::Result<RunData> {
    let loader = AudioLoader::new(Some(cfg.stft.sample_rate), cfg.cache_dir());
    let load = |specs: &[String]| -> anyhow::Result<PoolData> {
        let specs = specs.iter().map(|s| s.parse::<DataSpec>()).collect::<Result<Vec<_>, _>>();
        let (entries, problems) = discover_all(&specs.map_err(anyhow::Error::msg)?);
        Ok(load_pool(&entries, problems, &loader, opts)?)
    };
    let data = load(&cfg.data)?;
    let mut skipped: Vec<String> = data.skipped.iter().map(ToString::to_string).collect();
    let mut pools = Pools { tracks: Vec::new(), vocals: data.vocals, instrumentals: data.instrumentals };
    let mut val_tracks;
    if !cfg.val_data.is_empty() {
        let val = load(&cfg.val_data)?;
        skipped.extend(val.skipped.iter().map(ToString::to_string));
        val_tracks = val.tracks;
        // A validation track must never be trained on, even when `data` also contains it
        // (e.g. the validation folder lies inside a training folder): match by content.
        // Tracks in test/valid split folders stay held out too: they are never trained on.
        let held: Vec<u64> = val_tracks.iter().map(fingerprint).collect();
        let before = data.tracks.len();
        pools.tracks = data.tracks.into_iter().filter(|t| !held.contains(&fingerprint(t)) && !held_out(t)).collect();
        if pools.tracks.len() < before {
            eprintln!(
                "held out {} track(s): validation tracks or tracks in test/valid folders",
                before - pools.tracks.len()
            );
        }
    } else {
        (val_tracks, pools.tracks) = data.tracks.into_iter().partition(held_out);
        if val_tracks.is_empty() {
            // No split folders: hold out `val_tracks` tracks chosen by the seed.
            let mut rng = step_rng(cfg.seed ^ 0x686f_6c64, 0);
            for _ in 0..cfg.val_tracks.min(pools.tracks.len().saturating_sub(1)) {
                let i = rng.random_range(0..pools.tracks.len());
                val_tracks.push(pools.tracks.swap_remove(i));
            }
        }
    }
    anyhow::ensure!(
        !val_tracks.is_empty(),
        "no validation tracks: add split folders (test/valid), --val-data, or more tracks"
    );
    let val_tracks = val_tracks
        .into_iter()
        .map(|t| {
            let vocals = t.vocals.to_audio();
            let n = ((cfg.val_seconds * f64::from(vocals.sample_rate)) as usize).min(vocals.frames());
            // The excerpt with the most singing: a song's first seconds are often an intro with
            // near-silent vocals, where SDR measures nothing but the model's leakage.
            let start = loudest_window(&vocals, n, vocals.sample_rate as usize);
            TrackAudio {
                name: t.name,
                split: t.split,
                vocals: vocals.slice_padded(start, n),
                accompaniment: t.accompaniment.slice_padded(start, n),
                source_rate: t.source_rate,
            }
        })
        .collect();
    pools.check()?;
    Ok(RunData { pools, val_tracks, skipped })
}

/// Start (a multiple of `step`, or the last possible start) of the `len`-frame window of
/// `audio` with the most energy: training validation and `isola eval --max-seconds` score a
/// song's sung part, not its intro.
pub(crate) fn loudest_window(audio: &Audio, len: usize, step: usize) -> usize {
    // prefix[i] = energy of frames 0..i, all channels.
    let mut prefix = vec![0.0; audio.frames() + 1];
    for i in 0..audio.frames() {
        prefix[i + 1] = prefix[i] + audio.channels.iter().map(|c| f64::from(c[i]) * f64::from(c[i])).sum::<f64>();
    }
    let window = |s: usize| prefix[(s + len).min(audio.frames())] - prefix[s];
    let last = audio.frames().saturating_sub(len);
    let starts = (0..=last).step_by(step.max(1)).chain(std::iter::once(last));
    starts.fold(0, |best, s| if window(s) > window(best) { s } else { best })
}

/// Tracks of a held-out split folder (`test`, `valid`, `validation`).
fn held_out(t: &TrackAudio<Clip>) -> bool {
    matches!(t.split.as_deref(), Some("test" | "valid" | "validation"))
}

/// Identifies a track by its decoded audio (length and energy of every channel), whatever
/// folder or name it was found under. Mapped clips store their energies: no samples read.
fn fingerprint(t: &TrackAudio<Clip>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for clip in [&t.vocals, &t.accompaniment] {
        clip.sample_rate().hash(&mut h);
        for c in 0..clip.n_channels() {
            clip.frames().hash(&mut h);
            clip.channel_energy(c).to_bits().hash(&mut h);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loudest_window_finds_the_sung_part_not_the_intro() {
        // 10 s at 100 Hz: quiet intro, singing from 6 s to 9 s.
        let mut a = Audio::silence(100, 2, 1000);
        for c in &mut a.channels {
            for (i, x) in c.iter_mut().enumerate() {
                *x = if (600..900).contains(&i) { 0.5 } else { 1e-4 };
            }
        }
        let start = loudest_window(&a, 300, 100);
        assert_eq!(start, 600);
        // A window as long as the track (or longer) starts at 0.
        assert_eq!(loudest_window(&a, 1000, 100), 0);
        assert_eq!(loudest_window(&a, 5000, 100), 0);
        // Singing only in the last 50 frames: the window ending at the end wins.
        for c in &mut a.channels {
            for (i, x) in c.iter_mut().enumerate() {
                *x = if i >= 950 { 0.5 } else { 1e-4 };
            }
        }
        assert_eq!(loudest_window(&a, 300, 100), 700);
        assert_eq!(loudest_window(&a, 320, 100), 680);
    }
}
