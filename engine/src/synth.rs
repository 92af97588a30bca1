//! Synthetic music, the one generator every test, bench and `isola data synth` uses: a
//! voice-like source (harmonics on a sung melody with vibrato, shaped by vowel formants,
//! phrased with rests) and an instrument-like accompaniment (drums, bass, chords).
//! Deterministic for a given seed, so tests build their audio at run time instead of
//! reading real data. Lengths are in samples, rates in Hz. Not for the audio thread.

use std::f64::consts::TAU;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Vowel formants (F1, F2, F3) in Hz, after Peterson & Barney.
const VOWELS: [[f64; 3]; 5] = [
    [800.0, 1150.0, 2900.0],
    [400.0, 1600.0, 2700.0],
    [350.0, 1700.0, 2700.0],
    [450.0, 800.0, 2830.0],
    [325.0, 700.0, 2530.0],
];
/// Formant bandwidths (Hz) and relative gains.
const FORMANT_BW: [f64; 3] = [90.0, 110.0, 170.0];
const FORMANT_GAIN: [f64; 3] = [1.0, 0.6, 0.3];

/// One synthetic track: stereo vocals and accompaniment, `[2][len]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub vocals: Vec<Vec<f32>>,
    pub accompaniment: Vec<Vec<f32>>,
}

impl Track {
    /// `vocals + accompaniment`, `[2][len]`.
    pub fn mixture(&self) -> Vec<Vec<f32>> {
        self.vocals
            .iter()
            .zip(&self.accompaniment)
            .map(|(v, a)| v.iter().zip(a).map(|(v, a)| v + a).collect())
            .collect()
    }
}

/// A stereo track of `len` samples at `rate` Hz: voice slightly off centre, drums and bass
/// centred, chords spread. Vocals peak near 0.3 and the accompaniment near 0.5.
/// Deterministic for a given seed.
pub fn track(rate: u32, len: usize, seed: u64) -> Track {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bpm = rng.random_range(90.0..140.0);
    let key = rng.random_range(0..12);
    let v = voice(rate, len, rng.random(), key);
    let d = drums(rate, len, rng.random(), bpm);
    let b = bass(rate, len, rng.random(), bpm, key);
    let (cl, cr) = chords(rate, len, rng.random(), bpm, key);
    let pan = rng.random_range(-0.2..0.2);
    let vocals = vec![scale(&v, 0.3 * (1.0 - pan)), scale(&v, 0.3 * (1.0 + pan))];
    let mix = |c: &[f32]| -> Vec<f32> { (0..v.len()).map(|i| 0.25 * d[i] + 0.2 * b[i] + 0.15 * c[i]).collect() };
    Track { vocals, accompaniment: vec![mix(&cl), mix(&cr)] }
}

fn scale(x: &[f32], g: f64) -> Vec<f32> {
    x.iter().map(|&s| (f64::from(s) * g) as f32).collect()
}

fn frames(rate: u32, secs: f64) -> usize {
    (f64::from(rate) * secs).round() as usize
}

fn midi_hz(note: f64) -> f64 {
    440.0 * 2f64.powf((note - 69.0) / 12.0)
}

/// Mono sung melody, peak about 1: notes of 0.2-0.6 s on a scale around
/// A3-A4 with portamento, 5-6.5 Hz vibrato, one vowel per note, and rests
/// (true silence) between phrases.
pub fn voice(rate: u32, len: usize, seed: u64, key: i32) -> Vec<f32> {
    const SCALE: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = len;
    let sr = f64::from(rate);
    let mut out = vec![0.0f32; n];
    let (vib_rate, vib_depth) = (rng.random_range(5.0..6.5), rng.random_range(0.2..0.6));
    let mut phase = 0.0f64;
    let mut f_smooth = 0.0f64;
    let mut i = 0;
    while i < n {
        // A phrase of notes, then a rest.
        let phrase_end = (i + frames(rate, rng.random_range(1.0..3.0))).min(n);
        while i < phrase_end {
            let degree = SCALE[rng.random_range(0..SCALE.len())] + 12 * rng.random_range(0..2);
            let f0 = midi_hz(f64::from(57 + key % 12 + degree));
            let vowel = VOWELS[rng.random_range(0..VOWELS.len())];
            let note = frames(rate, rng.random_range(0.2..0.6)).min(phrase_end - i);
            if f_smooth == 0.0 {
                f_smooth = f0;
            }
            for k in 0..note {
                let t = (i + k) as f64 / sr;
                f_smooth += (f0 - f_smooth) * (1.0 - (-1.0 / (0.03 * sr)).exp()); // ~30 ms glide
                let f = f_smooth * 2f64.powf(vib_depth * (TAU * vib_rate * t).sin() / 12.0);
                phase = (phase + TAU * f / sr) % (TAU * 64.0);
                let env = note_envelope(k, note, sr);
                out[i + k] = (env * harmonics(phase, f, sr, &vowel)) as f32;
            }
            i += note;
        }
        let rest = frames(rate, rng.random_range(0.2..0.8));
        i += rest; // `out` is already silent there
        f_smooth = 0.0;
    }
    out
}

/// 20 ms attack, 50 ms release.
fn note_envelope(k: usize, len: usize, sr: f64) -> f64 {
    let a = (k as f64 / (0.02 * sr)).min(1.0);
    let r = ((len - k) as f64 / (0.05 * sr)).min(1.0);
    a * r
}

/// Formant-shaped harmonic series at `phase` (of the fundamental), below
/// 0.45 * rate and 8 kHz.
fn harmonics(phase: f64, f0: f64, sr: f64, vowel: &[f64; 3]) -> f64 {
    let max_h = ((0.45 * sr).min(8000.0) / f0) as usize;
    let mut s = 0.0;
    for h in 1..=max_h {
        let fh = h as f64 * f0;
        let formant: f64 =
            (0..3).map(|k| FORMANT_GAIN[k] * (-0.5 * ((fh - vowel[k]) / FORMANT_BW[k]).powi(2)).exp()).sum();
        s += (0.05 + formant) / (h as f64).sqrt() * (h as f64 * phase).sin();
    }
    0.5 * s
}

/// Mono drum pattern, peak about 1: kick on beats 1 and 3, snare on 2 and
/// 4, closed hats on eighths.
pub fn drums(rate: u32, len: usize, seed: u64, bpm: f64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = len;
    let sr = f64::from(rate);
    let eighth = 30.0 / bpm;
    let mut out = vec![0.0f64; n];
    let mut step = 0usize;
    loop {
        let start = frames(rate, step as f64 * eighth);
        if start >= n {
            break;
        }
        let mut hit = |len_s: f64, f: &mut dyn FnMut(f64) -> f64| {
            for k in 0..frames(rate, len_s).min(n - start) {
                out[start + k] += f(k as f64 / sr);
            }
        };
        match step % 8 {
            0 | 4 => {
                let mut ph = 0.0;
                hit(0.25, &mut |t| {
                    ph += TAU * (50.0 + 90.0 * (-t / 0.03).exp()) / sr;
                    ph.sin() * (-t / 0.12).exp()
                });
            }
            2 | 6 => {
                let mut seed_noise = rng.random::<u64>();
                hit(0.18, &mut |t| {
                    let nz = white(&mut seed_noise);
                    (0.6 * nz + 0.4 * (TAU * 185.0 * t).sin()) * (-t / 0.05).exp()
                });
            }
            _ => {}
        }
        let mut seed_noise = rng.random::<u64>();
        let mut prev = 0.0;
        hit(0.05, &mut |t| {
            // First difference of white noise: a crude high-pass for the hat.
            let nz = white(&mut seed_noise);
            let hp = nz - prev;
            prev = nz;
            0.25 * hp * (-t / 0.015).exp()
        });
        step += 1;
    }
    out.into_iter().map(|x| x as f32).collect()
}

/// `len` samples of deterministic white noise, uniform in [-1, 1) (xorshift64; any seed).
pub fn white_noise(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len).map(|_| white(&mut state) as f32).collect()
}

/// Deterministic white noise in [-1, 1) from a xorshift state.
fn white(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// Mono bass line, peak about 1: one root note per beat, a few harmonics.
pub fn bass(rate: u32, len: usize, seed: u64, bpm: f64, key: i32) -> Vec<f32> {
    const ROOTS: [i32; 4] = [0, 5, 7, 9];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = len;
    let sr = f64::from(rate);
    let beat = frames(rate, 60.0 / bpm).max(1);
    let mut out = vec![0.0f32; n];
    let mut phase = 0.0f64;
    for (b, chunk) in out.chunks_mut(beat).enumerate() {
        let root = if b % 4 == 0 { ROOTS[rng.random_range(0..ROOTS.len())] } else { ROOTS[(b / 4) % ROOTS.len()] };
        let f = midi_hz(f64::from(33 + key % 12 + root));
        let len = chunk.len();
        for (k, s) in chunk.iter_mut().enumerate() {
            phase += TAU * f / sr;
            let env = note_envelope(k, len, sr) * (-(k as f64) / sr / 0.4).exp();
            *s = (env * (0.7 * phase.sin() + 0.2 * (2.0 * phase).sin() + 0.1 * (3.0 * phase).sin())) as f32;
        }
    }
    out
}

/// Stereo chord pad, peak about 1: a triad per bar, left and right voiced
/// an octave apart so the pad is wide, unlike the centred voice.
pub fn chords(rate: u32, len: usize, seed: u64, bpm: f64, key: i32) -> (Vec<f32>, Vec<f32>) {
    const PROGRESSION: [[i32; 3]; 4] = [[0, 4, 7], [5, 9, 12], [7, 11, 14], [9, 12, 16]];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = len;
    let sr = f64::from(rate);
    let bar = frames(rate, 240.0 / bpm).max(1);
    let (mut l, mut r) = (vec![0.0f32; n], vec![0.0f32; n]);
    for start in (0..n).step_by(bar) {
        let chord = PROGRESSION[rng.random_range(0..PROGRESSION.len())];
        let len = bar.min(n - start);
        for k in 0..len {
            let t = k as f64 / sr;
            let env = note_envelope(k, len, sr);
            let (mut sl, mut sr_) = (0.0, 0.0);
            for &iv in &chord {
                let f = midi_hz(f64::from(48 + key % 12 + iv));
                sl += (TAU * f * t).sin() + 0.3 * (TAU * 2.0 * f * t).sin();
                sr_ += (TAU * 2.0 * f * t + 0.5).sin() + 0.3 * (TAU * f * t).sin();
            }
            l[start + k] = (env * sl / 4.0) as f32;
            r[start + k] = (env * sr_ / 4.0) as f32;
        }
    }
    (l, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped() {
        let a = track(16_000, 48_000, 7);
        assert_eq!(a, track(16_000, 48_000, 7));
        assert_ne!(track(16_000, 48_000, 8).vocals, a.vocals);
        for x in [&a.vocals, &a.accompaniment] {
            assert_eq!((x.len(), x[0].len(), x[1].len()), (2, 48_000, 48_000));
            let peak = x.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(x.iter().flatten().all(|v| v.is_finite()));
            assert!(peak > 0.05 && peak < 1.0, "peak {peak}");
        }
    }

    #[test]
    fn voice_has_rests_between_phrases() {
        let v = voice(16_000, 96_000, 3, 0);
        let silent = v.iter().filter(|&&x| x == 0.0).count();
        assert!(silent > 16_000 / 5, "phrases are separated by rests ({silent} silent samples)");
        assert!(silent < v.len() / 2, "but the voice sings most of the time");
    }
}
