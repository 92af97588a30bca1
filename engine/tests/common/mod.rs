//! Synthetic test audio: a voice-like harmonic source and an instrument-like mix, made at
//! test time (tests never read real data).
#![allow(dead_code)]

use std::f32::consts::TAU;

use isola_engine::config::{ModelConfig, StftConfig};
use isola_engine::weights::{Weights, random_weights};

/// Voice-like: 180 Hz fundamental with 5.5 Hz vibrato, 20 harmonics shaped by two formant
/// peaks, syllable-rate amplitude envelope.
pub fn voice(rate: f32, len: usize) -> Vec<f32> {
    let mut phase = 0.0f32;
    (0..len)
        .map(|i| {
            let t = i as f32 / rate;
            let f0 = 180.0 * (1.0 + 0.03 * (TAU * 5.5 * t).sin());
            phase = (phase + TAU * f0 / rate) % TAU;
            let env = 0.5 + 0.5 * (TAU * 3.0 * t).sin().max(0.0);
            let mut s = 0.0;
            for h in 1..=20 {
                let f = f0 * h as f32;
                let formant = (-((f - 700.0) / 300.0).powi(2)).exp() + 0.6 * (-((f - 2200.0) / 500.0).powi(2)).exp();
                s += (0.05 + formant) * (phase * h as f32).sin() / h as f32;
            }
            0.3 * env * s
        })
        .collect()
}

/// Instrument-like: bass line, a three-note chord and a decaying noise "drum" every 0.5 s.
pub fn instruments(rate: f32, len: usize, seed: u64) -> Vec<f32> {
    let mut noise = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|i| {
            let t = i as f32 / rate;
            noise = noise.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let white = ((noise >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
            let beat = t % 0.5;
            let drum = white * (-beat * 30.0).exp();
            let bass = (TAU * 55.0 * t).sin();
            let chord = [261.6f32, 329.6, 392.0].iter().map(|f| (TAU * f * t).sin()).sum::<f32>() / 3.0;
            0.25 * drum + 0.3 * bass + 0.2 * chord
        })
        .collect()
}

/// The 1024/256 grid at 44.1 kHz these tests' numbers (bins, hops, latencies) are written for.
pub fn grid_1024() -> StftConfig {
    StftConfig { fft_size: 1024, hop: 256, ..StftConfig::default() }
}

pub fn default_random_weights(seed: u64) -> Weights {
    let stft = grid_1024();
    random_weights(ModelConfig::light(&stft), stft, seed)
}

/// Weights whose mask is `sigmoid(bias)` everywhere, whatever the input: every weight zero
/// except the final bias. Lets tests pin the mask to exactly known values.
pub fn constant_mask_weights(bias: f32) -> Weights {
    let stft = grid_1024();
    let model = ModelConfig::light(&stft);
    let mut tensors = random_weights(model, stft, 1).tensors().clone();
    for (name, t) in tensors.iter_mut() {
        let keep = name == "input_scale" || name == "input_mean";
        if !keep {
            t.data.fill(if name == "fc3.bias" { bias } else { 0.0 });
        }
    }
    Weights::new(model, stft, Default::default(), tensors).unwrap()
}
