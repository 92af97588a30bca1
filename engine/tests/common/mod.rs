//! Test weights and the engine's synthetic music (tests never read real data).
#![allow(dead_code)]

use isola_engine::config::{ModelConfig, StftConfig, tensor_names as names};
use isola_engine::synth;
use isola_engine::weights::{Weights, random_weights};

/// The vocal of [`isola_engine::synth::track`] (left channel, peak about 0.3).
pub fn voice(rate: f32, len: usize) -> Vec<f32> {
    synth::track(rate as u32, len, 0).vocals.swap_remove(0)
}

/// An accompaniment of [`isola_engine::synth::track`] (left channel, peak about 0.5).
pub fn instruments(rate: f32, len: usize, seed: u64) -> Vec<f32> {
    synth::track(rate as u32, len, seed).accompaniment.swap_remove(0)
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
        let keep = name == names::INPUT_SCALE || name == names::INPUT_MEAN;
        if !keep {
            t.data.fill(if *name == names::linear(names::FC3, names::BIAS) { bias } else { 0.0 });
        }
    }
    Weights::new(model, stft, Default::default(), tensors).unwrap()
}
