//! The real-time port computes what the candle model computes, frame by frame.

mod common;

use isola_engine::candle_core::{Device, Tensor};
use isola_engine::config::ModelConfig;
use isola_engine::model;
use isola_engine::rt::math::Kernels;
use isola_engine::rt::{Precision, RtMaskNet};
use isola_engine::synth::{self, white_noise};
use isola_engine::weights::random_weights;
use isola_engine::{embedded, offline};

const FRAMES: usize = 240;

/// Log-uniform magnitudes between -100 dB and 0 dB, like real spectra.
fn random_mags(frames: usize, features: usize, seed: u64) -> Vec<f32> {
    white_noise(frames * features, seed).into_iter().map(|x| 10f32.powf(-5.0 * (0.5 * x + 0.5))).collect()
}

/// Largest element-wise |a − b| / max(|b|, 1e-2): relative error, with a floor so that
/// logits crossing zero are judged by their absolute error.
fn max_relative_error(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1e-2)).fold(0.0, f32::max)
}

fn candle_logits(weights: &isola_engine::Weights, mags: &[f32], frames: usize) -> Vec<f32> {
    let m = weights.meta.model;
    let net = model::load(weights, &Device::Cpu).unwrap();
    let x = Tensor::from_slice(mags, (1, frames, m.channels, m.n_bins), &Device::Cpu).unwrap();
    net.forward_seq(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn rt_logits(weights: &isola_engine::Weights, mags: &[f32], frames: usize, kernels: Kernels) -> Vec<f32> {
    rt_logits_at(weights, mags, frames, kernels, Precision::F32)
}

fn rt_logits_at(
    weights: &isola_engine::Weights,
    mags: &[f32],
    frames: usize,
    kernels: Kernels,
    precision: Precision,
) -> Vec<f32> {
    let f = weights.meta.model.features();
    let mut net = RtMaskNet::with_precision(weights, precision).unwrap();
    net.set_kernels(kernels);
    let mut out = vec![0.0; frames * f];
    for t in 0..frames {
        assert!(net.step(&mags[t * f..(t + 1) * f], &mut out[t * f..(t + 1) * f]));
    }
    out
}

#[test]
fn rt_matches_candle_for_200_plus_frames() {
    for (seed, model) in [
        (3, ModelConfig::light(&common::grid_1024())),
        (4, ModelConfig { hidden: 64, gru_layers: 2, lookahead: 2, ..ModelConfig::light(&common::grid_1024()) }),
        // Another feature floor: both paths take it from the weights.
        (
            5,
            ModelConfig {
                hidden: 32,
                gru_layers: 1,
                feature_floor_db: -60,
                ..ModelConfig::light(&common::grid_1024())
            },
        ),
        // A band split: per-band layers before fc1 and after fc3.
        (6, ModelConfig { hidden: 48, gru_layers: 2, band_dim: 8, ..ModelConfig::light(&common::grid_1024()) }),
    ] {
        let weights = random_weights(model, common::grid_1024(), seed);
        let mags = random_mags(FRAMES, model.features(), seed);
        let reference = candle_logits(&weights, &mags, FRAMES);
        for kernels in Kernels::available() {
            let rt = rt_logits(&weights, &mags, FRAMES, kernels);
            let err = max_relative_error(&rt, &reference);
            println!("hidden {} layers {} {kernels:?}: max relative error {err:e}", model.hidden, model.gru_layers);
            assert!(err <= 1e-4, "{kernels:?}: max relative error {err}");
            // The comparison is meaningful: outputs vary and are far from trivially equal.
            let spread = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(spread > 0.05, "logits are all near zero ({spread})");
        }
    }
}

#[test]
fn parity_check_detects_a_perturbed_weight() {
    let weights = common::default_random_weights(5);
    let model = weights.meta.model;
    let mut tensors = weights.tensors().clone();
    tensors.get_mut("gru.2.weight_hh").unwrap().data[17] += 0.05;
    let perturbed = isola_engine::Weights::new(model, weights.meta.stft, Default::default(), tensors).unwrap();
    let mags = random_mags(FRAMES, model.features(), 9);
    let reference = candle_logits(&weights, &mags, FRAMES);
    let rt = rt_logits(&perturbed, &mags, FRAMES, Kernels::detect());
    assert!(max_relative_error(&rt, &reference) > 1e-4);
}

#[test]
fn candle_step_matches_candle_sequence() {
    let weights = common::default_random_weights(6);
    let m = weights.meta.model;
    let net = model::load(&weights, &Device::Cpu).unwrap();
    let frames = 32;
    let mags = random_mags(frames, m.features(), 2);
    let reference = candle_logits(&weights, &mags, frames);
    let mut state = net.initial_state(1, &Device::Cpu).unwrap();
    let f = m.features();
    for t in 0..frames {
        let x = Tensor::from_slice(&mags[t * f..(t + 1) * f], (1, m.channels, m.n_bins), &Device::Cpu).unwrap();
        let y = net.step(&x, &mut state).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(max_relative_error(&y, &reference[t * f..(t + 1) * f]) <= 1e-4, "frame {t}");
    }
}

/// Linear STFT magnitudes `[frames][channels · n_bins]` of a synthetic song (voice and
/// instruments; each channel its own mix) on the weights' grid.
fn music_mags(weights: &isola_engine::Weights, frames: usize) -> Vec<f32> {
    let (stft, m) = (weights.meta.stft, weights.meta.model);
    let len = (frames - 1) * stft.hop + stft.fft_size;
    let track = synth::track(stft.sample_rate, len, 7);
    let per_channel: Vec<Vec<f32>> = (0..m.channels)
        .map(|c| {
            let (v, a) = (&track.vocals[c % track.vocals.len()], &track.accompaniment[c % track.accompaniment.len()]);
            let mix: Vec<f32> = v.iter().zip(a).map(|(v, a)| v + a).collect();
            offline::magnitudes(&stft, &mix)
        })
        .collect();
    let n = m.n_bins;
    (0..frames).flat_map(|t| per_channel.iter().flat_map(move |c| c[t * n..(t + 1) * n].iter().copied())).collect()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Reduced-precision weights (issue 15): f16 keeps the masks within 2e-3 (absolute) of the
/// f32 port over 1200 frames of music-like input, for the embedded light and worker weights
/// and random ones, on every kernel set this CPU runs; so does mixed (the default); int8
/// within its own bound.
#[test]
fn reduced_precision_masks_stay_close_to_f32() {
    const MUSIC_FRAMES: usize = 1200;
    let cases = [
        ("embedded light", embedded::light().unwrap()),
        ("embedded worker", embedded::worker().unwrap()),
        ("random light", common::default_random_weights(11)),
    ];
    for (name, weights) in &cases {
        let mags = music_mags(weights, MUSIC_FRAMES);
        let reference: Vec<f32> =
            rt_logits(weights, &mags, MUSIC_FRAMES, Kernels::detect()).into_iter().map(sigmoid).collect();
        for precision in [Precision::F16, Precision::Int8, Precision::Mixed] {
            for kernels in Kernels::available() {
                let masks = rt_logits_at(weights, &mags, MUSIC_FRAMES, kernels, precision);
                let (mut worst, mut sum) = (0.0f32, 0.0f64);
                for (l, r) in masks.iter().zip(&reference) {
                    let d = (sigmoid(*l) - r).abs();
                    worst = worst.max(d);
                    sum += d as f64;
                }
                let mean = sum / reference.len() as f64;
                println!("{name} {precision:?} {kernels:?}: mask error max {worst:.2e}, mean {mean:.2e}");
                // f16 and mixed (the default) meet issue 15's 2e-3; int8 does not, and is held
                // near what it measured as a guard (max 7e-3 on the 700-step light default,
                // 1.11e-2 on the light-v2 default of 2026-11-30, 1.23e-2 on the worker-v2 of
                // 2026-12-01; mean 8e-4).
                let bound = if precision == Precision::Int8 { 1.5e-2 } else { 2e-3 };
                assert!(worst <= bound, "{name} {precision:?} {kernels:?}: mask error {worst} > {bound}");
                // The weights really were rounded (else the check above proves nothing).
                assert!(worst > 0.0, "{name} {precision:?}: identical to f32");
            }
        }
    }
}

/// Issue 15's size goal: the light default's weights, at the default precision, fit in a
/// 1 MiB L2 (weight matrices, biases and normalisation together).
#[test]
fn the_default_light_weights_fit_in_one_mebibyte() {
    let net = RtMaskNet::new(&embedded::light().unwrap());
    let bytes = net.unwrap().weight_bytes();
    println!("light default at {}: {bytes} bytes", Precision::default().name());
    assert!(bytes <= 1 << 20, "{bytes} bytes");
}

/// A step done in pieces (`begin`, `advance` by any number of multiply-accumulates,
/// `finish`), as the separator spreads it over a hop's blocks, gives `step`'s logits to the
/// bit, for flat and band-split models, every precision and kernel set.
#[test]
fn a_step_in_pieces_equals_a_whole_step() {
    let band = ModelConfig { hidden: 48, gru_layers: 2, band_dim: 8, ..ModelConfig::light(&common::grid_1024()) };
    let cases = [("flat", common::default_random_weights(12)), ("band", random_weights(band, common::grid_1024(), 13))];
    for (name, weights) in &cases {
        let f = weights.meta.model.features();
        let frames = 24;
        let mags = random_mags(frames, f, 14);
        for precision in Precision::ALL {
            for kernels in Kernels::available() {
                let whole = rt_logits_at(weights, &mags, frames, kernels, precision);
                let mut net = RtMaskNet::with_precision(weights, precision).unwrap();
                net.set_kernels(kernels);
                let total = net.step_macs();
                let mut pieces = vec![0.0; frames * f];
                for t in 0..frames {
                    net.begin(&mags[t * f..(t + 1) * f]);
                    // An empty piece does nothing (nor twice the input normalisation).
                    assert!(!net.advance(0));
                    // Piece sizes from one row's worth to a third of the step, varying by frame.
                    let piece = 1 + (t * 7919) % (total / 3);
                    let mut calls = 0;
                    while !net.advance(piece) {
                        calls += 1;
                        assert!(calls <= total, "{name}: advance makes no progress");
                    }
                    assert!(!net.in_progress());
                    assert!(net.finish(&mut pieces[t * f..(t + 1) * f]));
                }
                assert_eq!(whole, pieces, "{name} {precision:?} {kernels:?}");
            }
        }
    }
}

/// Issue 15's second accuracy bar, on every kernel set this CPU runs: the default precision
/// moves the separator's vocals global SDR (on a synthetic song, embedded light weights) by at
/// most 0.05 dB against f32 weights on the same kernels. (`isola eval --precision` measures
/// it on the held-out tracks.)
#[test]
fn the_default_precision_keeps_vocals_sdr_within_0_05_db_on_every_kernel_set() {
    use isola_engine::render::Render;
    use isola_engine::rt::{Separator, SeparatorParams};
    let weights = embedded::light().unwrap();
    let rate = weights.meta.stft.sample_rate;
    let track = synth::track(rate, rate as usize * 6, 9);
    let sdr = |estimate: &[Vec<f32>]| {
        let (mut signal, mut error) = (0.0f64, 0.0f64);
        for (s, e) in track.vocals.iter().zip(estimate) {
            for (&s, &e) in s.iter().zip(e) {
                signal += f64::from(s) * f64::from(s);
                error += f64::from(s - e) * f64::from(s - e);
            }
        }
        10.0 * (signal / error).log10()
    };
    for kernels in Kernels::available() {
        let vocals = |precision| {
            let mut net = RtMaskNet::with_precision(&weights, precision).unwrap();
            net.set_kernels(kernels);
            let mut sep = Separator::new(net);
            sep.prepare(rate as f32, 512, 2).unwrap();
            let render = Render { stem_channels: Some(2), ..Render::default() };
            render.run(&mut sep, &track.mixture(), &SeparatorParams::default()).vocals
        };
        let (reference, reduced) = (vocals(Precision::F32), vocals(Precision::default()));
        let change = sdr(&reduced) - sdr(&reference);
        println!("{kernels:?}: vocals SDR {:.4} dB with f32, {change:+.5} dB with the default", sdr(&reference));
        assert!(change.abs() <= 0.05, "{kernels:?}: vocals SDR moves {change} dB");
        assert_ne!(reduced, reference, "{kernels:?}: the weights were not rounded");
    }
}
