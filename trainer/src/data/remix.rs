//! Fixed remixes for validation (`isola data remix`): held-out isolated singing over held-out
//! instrumentals, at the levels of real mixes, written as ordinary track folders so that
//! `isola train --val-data` and `isola eval` read them like any song.
//!
//! Each track is `seconds` long: vocal files are laid end to end (in file order, so every
//! held-out singer is heard) with 0.3–1.2 s rests between phrases, over one excerpt of an
//! instrumental. The accompaniment is set to −20 dBFS RMS, the vocals' active level
//! (RMS over 50 ms frames above −50 dBFS) to the accompaniment's plus a ratio drawn in
//! `vocal_ratio_db` (pop and rock mixes put the lead between about 6 dB below and 2 dB above
//! the backing), and one common gain keeps the mixture's peak at or below −1 dBFS.
//! Mono vocals are panned slightly off centre. Deterministic for a seed.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::audio::cache::AudioLoader;
use crate::audio::wav::write_track;
use crate::audio::{Audio, AudioError};

/// How the remixes are made.
#[derive(Debug, Clone)]
pub struct RemixOptions {
    /// Tracks to make.
    pub count: usize,
    /// Length of each track in seconds.
    pub seconds: f64,
    /// Sample rate of the written files (Hz); sources are resampled to it.
    pub rate: u32,
    pub seed: u64,
    /// Range of the vocals' active level relative to the accompaniment's RMS, in dB.
    pub vocal_ratio_db: (f64, f64),
    /// Files passed over without changing the draw: a path ending in one of these
    /// (whole components, e.g. a file name) is drawn like any other file and then skipped,
    /// as an unreadable one is, so a set made while it was unreadable is made again.
    pub pass_over: Vec<PathBuf>,
}

impl Default for RemixOptions {
    fn default() -> Self {
        Self { count: 24, seconds: 20.0, rate: 44_100, seed: 0, vocal_ratio_db: (-6.0, 2.0), pass_over: Vec::new() }
    }
}

/// One remix: stereo stems of the same length; the mixture is their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Remix {
    pub name: String,
    pub vocals: Audio,
    pub accompaniment: Audio,
}

const ACCOMPANIMENT_RMS_DB: f64 = -20.0;
const PEAK_LIMIT: f32 = 0.891; // −1 dBFS

/// Makes `opts.count` remixes of `vocals` (isolated singing files) over `instrumentals`
/// (vocal-free music files). A file that cannot be decoded (or is silent) is skipped and
/// returned with its problem, as is a file in `opts.pass_over`; it is an error, naming the
/// files, when a list is empty or none of its files can be used, and naming the entry when
/// an `opts.pass_over` entry is the end of no file's path (a typo would otherwise make
/// another set without a word).
pub fn remix(
    vocals: &[PathBuf],
    instrumentals: &[PathBuf],
    opts: &RemixOptions,
    loader: &AudioLoader,
) -> Result<(Vec<Remix>, Vec<AudioError>), AudioError> {
    if vocals.is_empty() || instrumentals.is_empty() {
        let which = if vocals.is_empty() { "vocal" } else { "instrumental" };
        return Err(AudioError::new(PathBuf::new(), format!("no {which} files to remix")));
    }
    if let Some(p) = opts.pass_over.iter().find(|p| !vocals.iter().chain(instrumentals).any(|f| f.ends_with(p))) {
        return Err(AudioError::new(p, "--pass-over names no vocal or instrumental file (give its file name)"));
    }
    let len = (opts.seconds * f64::from(opts.rate)).round() as usize;
    let load = |p: &Path| -> Result<Audio, AudioError> {
        let a = loader.load(p)?.audio;
        if a.frames() == 0 || a.peak() == 0.0 {
            return Err(AudioError::new(p, "silent or empty: nothing to remix"));
        }
        Ok(a.with_channels(2))
    };
    let mut skipped: Vec<AudioError> = Vec::new();
    // Loads `list[i]`; a bad file is recorded once and `None` returned.
    let usable = |list: &[PathBuf], i: usize, skipped: &mut Vec<AudioError>| -> Option<Audio> {
        let path = &list[i];
        if skipped.iter().any(|e| e.path == *path) {
            return None;
        }
        if opts.pass_over.iter().any(|p| path.ends_with(p)) {
            skipped.push(AudioError::new(path, "passed over (--pass-over)"));
            return None;
        }
        load(path).map_err(|e| skipped.push(e)).ok()
    };
    let all_bad = |list: &[PathBuf], skipped: &[AudioError]| list.iter().all(|p| skipped.iter().any(|e| e.path == *p));
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut next_vocal = 0usize;
    let mut out = Vec::with_capacity(opts.count);
    for k in 0..opts.count {
        // Vocals: phrases end to end with rests, starting after a short intro.
        let mut v = Audio::silence(opts.rate, 2, len);
        let mut at = (rng.random_range(0.5..2.0) * f64::from(opts.rate)) as usize;
        let first_vocal = next_vocal;
        let pan: f32 = rng.random_range(-0.15..0.15);
        while at < len {
            let i = next_vocal % vocals.len();
            next_vocal += 1;
            let Some(phrase) = usable(vocals, i, &mut skipped) else {
                if all_bad(vocals, &skipped) {
                    return Err(AudioError::new(&vocals[0], "none of the vocal files can be used"));
                }
                continue;
            };
            for (c, gain) in [(0, 1.0 - pan), (1, 1.0 + pan)] {
                let n = phrase.frames().min(len - at);
                for (d, s) in v.channels[c][at..at + n].iter_mut().zip(&phrase.channels[c]) {
                    *d = s * gain;
                }
            }
            at += phrase.frames() + (rng.random_range(0.3..1.2) * f64::from(opts.rate)) as usize;
        }
        // Accompaniment: one excerpt (looped when the file is shorter).
        let (i_path, inst) = loop {
            let i = rng.random_range(0..instrumentals.len());
            if let Some(a) = usable(instrumentals, i, &mut skipped) {
                break (&instrumentals[i], a);
            }
            if all_bad(instrumentals, &skipped) {
                return Err(AudioError::new(&instrumentals[0], "none of the instrumental files can be used"));
            }
        };
        let start = rng.random_range(0..=inst.frames().saturating_sub(len));
        let mut a = Audio::silence(opts.rate, 2, len);
        for (c, ch) in a.channels.iter_mut().enumerate() {
            for (n, d) in ch.iter_mut().enumerate() {
                *d = inst.channels[c][(start + n) % inst.frames()];
            }
        }
        let a_rms = a.mean_square().sqrt();
        let v_rms = active_rms(&v, opts.rate);
        if a_rms > 0.0 {
            a.scale((10f64.powf(ACCOMPANIMENT_RMS_DB / 20.0) / a_rms) as f32);
        }
        if v_rms > 0.0 {
            let ratio = rng.random_range(opts.vocal_ratio_db.0..=opts.vocal_ratio_db.1);
            v.scale((10f64.powf((ACCOMPANIMENT_RMS_DB + ratio) / 20.0) / v_rms) as f32);
        }
        let mut mix = v.clone();
        mix.add_assign(&a);
        let peak = mix.peak().max(v.peak()).max(a.peak());
        if peak > PEAK_LIMIT {
            let g = PEAK_LIMIT / peak;
            v.scale(g);
            a.scale(g);
        }
        let stem = |p: &Path| p.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let v_name: String = stem(&vocals[first_vocal % vocals.len()]).chars().take(24).collect();
        let i_name: String = stem(i_path).chars().take(24).collect();
        out.push(Remix { name: format!("remix-{k:03}-{v_name}-over-{i_name}"), vocals: v, accompaniment: a });
    }
    Ok((out, skipped))
}

/// RMS over the 50 ms frames louder than −50 dBFS (0 when none is): the level of the
/// singing, not of the rests between phrases.
fn active_rms(a: &Audio, rate: u32) -> f64 {
    let frame = (rate as usize / 20).max(1);
    let (mut sum, mut n) = (0.0, 0usize);
    for start in (0..a.frames()).step_by(frame) {
        let e: f64 = a
            .channels
            .iter()
            .flat_map(|c| &c[start..(start + frame).min(c.len())])
            .map(|&x| f64::from(x) * f64::from(x))
            .sum();
        let count = a.n_channels() * (frame.min(a.frames() - start));
        if e / count as f64 > 1e-5 {
            sum += e;
            n += count;
        }
    }
    if n == 0 { 0.0 } else { (sum / n as f64).sqrt() }
}

/// Writes each remix as `out/valid/<name>/{vocals,accompaniment}.wav` (32-bit float): the
/// `valid` split folder keeps them out of training wherever they are passed. Each track
/// folder is written as a set ([`write_track`]), replacing one of the same name; returns
/// how many were replaced.
pub fn write_remixes(out: &Path, remixes: &[Remix]) -> Result<usize, AudioError> {
    let mut replaced = 0;
    for r in remixes {
        replaced += usize::from(write_track(&out.join("valid").join(&r.name), &r.vocals, &r.accompaniment, true)?);
    }
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::wav::write_wav_i16;

    fn files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let (mut v, mut i) = (Vec::new(), Vec::new());
        for k in 0..3 {
            let t = crate::synth::track(16_000, 1.5 + k as f64, k);
            let p = dir.join(format!("v{k}.wav"));
            write_wav_i16(&p, &t.vocals.with_channels(1)).unwrap();
            v.push(p);
            let p = dir.join(format!("i{k}.wav"));
            write_wav_i16(&p, &t.accompaniment).unwrap();
            i.push(p);
        }
        (v, i)
    }

    #[test]
    fn remixes_have_real_levels_and_are_reproducible() {
        let d = tempfile::tempdir().unwrap();
        let (v, i) = files(d.path());
        let opts = RemixOptions { count: 4, seconds: 6.0, rate: 16_000, ..Default::default() };
        let loader = AudioLoader::new(Some(16_000), None);
        let a = remix(&v, &i, &opts, &loader).unwrap().0;
        assert_eq!(a, remix(&v, &i, &opts, &loader).unwrap().0, "same seed, same remixes");
        assert_ne!(a, remix(&v, &i, &RemixOptions { seed: 1, ..opts.clone() }, &loader).unwrap().0);
        assert_eq!(a.len(), 4);
        for r in &a {
            for s in [&r.vocals, &r.accompaniment] {
                assert_eq!((s.sample_rate, s.n_channels(), s.frames()), (16_000, 2, 96_000));
            }
            let mut mix = r.vocals.clone();
            mix.add_assign(&r.accompaniment);
            assert!(mix.peak() <= PEAK_LIMIT + 1e-6, "{}: peak {}", r.name, mix.peak());
            let ratio_db = 20.0 * (active_rms(&r.vocals, 16_000) / r.accompaniment.mean_square().sqrt()).log10();
            assert!((-6.01..=2.01).contains(&ratio_db), "{}: vocals {ratio_db:.2} dB", r.name);
            // Rests between phrases: the vocals are silent somewhere, and sing a good part of the time.
            let silent = r.vocals.channels[0].iter().filter(|x| **x == 0.0).count();
            assert!(silent > 16_000 / 4 && silent < 3 * 96_000 / 4, "{}: {silent} silent samples", r.name);
        }
        write_remixes(&d.path().join("out"), &a).unwrap();
        assert!(d.path().join("out/valid").join(&a[0].name).join("vocals.wav").is_file());
    }

    #[test]
    fn empty_lists_and_bad_files_are_named() {
        let d = tempfile::tempdir().unwrap();
        let (v, i) = files(d.path());
        let loader = AudioLoader::new(Some(16_000), None);
        let opts = RemixOptions { count: 1, seconds: 2.0, rate: 16_000, ..Default::default() };
        assert!(remix(&[], &i, &opts, &loader).unwrap_err().to_string().contains("no vocal files"));
        let bad = d.path().join("broken.wav");
        std::fs::write(&bad, b"RIFF....").unwrap();
        // A bad file among good ones is skipped and reported; alone it is an error.
        let (made, skipped) = remix(&[bad.clone(), v[0].clone()], &i, &opts, &loader).unwrap();
        assert_eq!(made.len(), 1);
        assert!(skipped.len() == 1 && skipped[0].to_string().contains("broken.wav"), "{skipped:?}");
        let e = remix(&[bad], &i, &opts, &loader).unwrap_err().to_string();
        assert!(e.contains("broken.wav") && e.contains("none of the vocal files"), "{e}");
        assert!(remix(&v, &[], &opts, &loader).unwrap_err().to_string().contains("no instrumental files"));
    }

    #[test]
    fn a_passed_over_file_draws_as_an_unreadable_one_did() {
        let d = tempfile::tempdir().unwrap();
        let (v, mut i) = files(d.path());
        let loader = AudioLoader::new(Some(16_000), None);
        let opts = RemixOptions { count: 6, seconds: 3.0, rate: 16_000, ..Default::default() };
        // The instrumental under the first remix: the one to make unreadable.
        let first = remix(&v, &i, &opts, &loader).unwrap().0[0].name.clone();
        let k = (0..i.len()).find(|&k| first.ends_with(&format!("-over-i{k}"))).unwrap();
        // The set made while it could not be decoded...
        let good = std::mem::replace(&mut i[k], d.path().join(format!("i{k}-broken.wav")));
        std::fs::write(&i[k], b"RIFF....").unwrap();
        let (before, _) = remix(&v, &i, &opts, &loader).unwrap();
        // ...is made again once it can, by passing it over; not passing it over changes the set.
        i[k] = good;
        let pass = RemixOptions { pass_over: vec![PathBuf::from(format!("i{k}.wav"))], ..opts.clone() };
        let (again, skipped) = remix(&v, &i, &pass, &loader).unwrap();
        assert_eq!(before, again);
        let e = skipped.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert!(e.len() == 1 && e[0].contains(&format!("i{k}.wav")) && e[0].contains("passed over"), "{e:?}");
        assert_ne!(before, remix(&v, &i, &opts, &loader).unwrap().0);
        // A name that matches no file is an error naming it, not another set.
        let typo = RemixOptions { pass_over: vec![PathBuf::from(format!("i{k}.wv"))], ..opts.clone() };
        let err = remix(&v, &i, &typo, &loader).unwrap_err().to_string();
        assert!(err.contains(&format!("i{k}.wv")) && err.contains("names no vocal or instrumental file"), "{err}");
    }
}
