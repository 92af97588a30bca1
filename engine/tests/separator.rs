//! Behaviour of the streaming separator: exact latency, stems that sum to the input,
//! every sample rate, every output mode, hostile input, model swaps.

mod common;

use common::{constant_mask_weights, default_random_weights, instruments, voice};
use isola_engine::config::{ModelConfig, StftConfig};
use isola_engine::render::{Render, Rendered};
use isola_engine::rt::{OutputMode, RtMaskNet, Separator, SeparatorParams};
use isola_engine::weights::{Weights, random_weights};

fn separator(weights: &Weights, rate: f32, channels: usize) -> Separator {
    let mut sep = Separator::new(RtMaskNet::new(weights).unwrap());
    sep.prepare(rate, 4096, channels).unwrap();
    sep
}

/// Streams `input` unaligned (as a host records it) in blocks cycling over `blocks`,
/// collecting main and both stems (stereo aux buses, as the plugin has).
fn run(sep: &mut Separator, input: &[Vec<f32>], blocks: &[usize], params: &SeparatorParams) -> Rendered {
    Render { blocks, stem_channels: Some(2), align: false }.run(sep, input, params)
}

fn stereo_mix(rate: f32, len: usize) -> Vec<Vec<f32>> {
    let v = voice(rate, len);
    let l = instruments(rate, len, 1);
    let r = instruments(rate, len, 2);
    vec![v.iter().zip(&l).map(|(a, b)| a + b).collect(), v.iter().zip(&r).map(|(a, b)| 0.8 * a + b).collect()]
}

fn delayed(x: &[f32], n: usize, latency: usize) -> f32 {
    if n >= latency { x[n - latency] } else { 0.0 }
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

#[test]
fn stems_sum_to_the_delayed_input_at_every_rate() {
    let weights = default_random_weights(21);
    for rate in [44_100.0, 48_000.0, 88_200.0, 96_000.0] {
        for channels in [1, 2] {
            let mut sep = separator(&weights, rate, channels);
            let latency = sep.latency_samples();
            let input: Vec<Vec<f32>> = stereo_mix(rate, rate as usize / 2).into_iter().take(channels).collect();
            let out = run(&mut sep, &input, &[1, 64, 333, 4096, 17], &SeparatorParams::default());
            let mut err = 0.0f32;
            for c in 0..channels {
                for n in 0..input[0].len() {
                    let d = delayed(&input[c], n, latency);
                    err = err.max((out.vocals[c][n] + out.accompaniment[c][n] - d).abs());
                    err = err.max((out.main[c][n] - d).abs());
                }
            }
            assert!(err <= 1e-5, "{rate} Hz, {channels} ch: max error {err}");
            // The separation is doing something: neither stem is empty.
            assert!(rms(&out.vocals[0]) > 1e-3 && rms(&out.accompaniment[0]) > 1e-3);
            println!("{rate} Hz {channels} ch: latency {latency} samples ({:.2} ms)", latency as f32 / rate * 1000.0);
        }
    }
}

#[test]
fn latency_is_exact_for_the_vocal_path() {
    // Mask pinned to 1: vocals must be the input delayed by exactly latency_samples().
    let ones = constant_mask_weights(30.0);
    for rate in [44_100.0, 48_000.0, 96_000.0] {
        let mut sep = separator(&ones, rate, 2);
        let latency = sep.latency_samples();
        let input = stereo_mix(rate, 20_000);
        let out = run(&mut sep, &input, &[1, 100, 4096], &SeparatorParams::default());
        for shift in [0i64, -1, 1] {
            let l = (latency as i64 + shift) as usize;
            let err = (0..20_000).map(|n| (out.vocals[0][n] - delayed(&input[0], n, l)).abs()).fold(0.0, f32::max);
            if shift == 0 {
                assert!(err <= 1e-5, "{rate}: vocals are not the delayed input (err {err})");
                assert!(rms(&out.accompaniment[0]) < 1e-5);
            } else {
                assert!(err > 1e-2, "{rate}: latency {l} also matches, test is blind");
            }
        }
    }
    // Mask pinned to 0: everything is accompaniment.
    let mut sep = separator(&constant_mask_weights(-30.0), 48_000.0, 2);
    let out = run(&mut sep, &stereo_mix(48_000.0, 10_000), &[256], &SeparatorParams::default());
    assert!(rms(&out.vocals[0]) < 1e-5 && rms(&out.accompaniment[0]) > 0.05);
}

#[test]
fn latency_grows_with_lookahead_and_rate() {
    let stft = common::grid_1024();
    let w = random_weights(ModelConfig { lookahead: 2, ..ModelConfig::light(&stft) }, stft, 3);
    assert_eq!(separator(&w, 44_100.0, 2).latency_samples(), 1023 + 2 * 256);
    assert_eq!(separator(&w, 96_000.0, 2).latency_samples(), 2239 + 2 * 560);
    // With lookahead the mask still lands on the right frame: pinned mask = pure delay.
    let mut tensors = constant_mask_weights(30.0).tensors().clone();
    let model = ModelConfig { lookahead: 2, ..ModelConfig::light(&stft) };
    tensors.retain(|_, _| true);
    let ones = Weights::new(model, stft, Default::default(), tensors).unwrap();
    let mut sep = separator(&ones, 48_000.0, 1);
    let latency = sep.latency_samples();
    let input = vec![voice(48_000.0, 12_000)];
    let out = run(&mut sep, &input, &[97], &SeparatorParams::default());
    let err = (0..12_000).map(|n| (out.vocals[0][n] - delayed(&input[0], n, latency)).abs()).fold(0.0, f32::max);
    assert!(err <= 1e-5, "lookahead path misaligned: {err}");
}

#[test]
fn a_tone_gets_the_same_mask_at_44k_and_96k() {
    // Scale the output layer so masks span most of 0..1 and differ strongly between bins.
    let base = default_random_weights(8);
    let mut tensors = base.tensors().clone();
    for name in ["fc3.weight", "fc3.bias"] {
        tensors.get_mut(name).unwrap().data.iter_mut().for_each(|v| *v *= 8.0);
    }
    let weights = Weights::new(base.meta.model, base.meta.stft, Default::default(), tensors).unwrap();
    // 5 bins of the model grid: it falls 0.02 bins off centre on the 96 kHz grid (2240-point
    // FFT), so DFT scalloping — which changes a tone's sidelobes with its position between
    // bins, at any rate — does not blur the comparison of the grid mapping itself.
    let tone_hz = 5.0 * 44_100.0 / 1024.0;
    let mask_at = |rate: f32, hz: f32| {
        let mut sep = separator(&weights, rate, 2);
        let len = (rate * 0.5) as usize;
        let tone: Vec<f32> =
            (0..len).map(|n| 0.3 * (std::f32::consts::TAU * tone_hz * n as f32 / rate).sin()).collect();
        run(&mut sep, &[tone.clone(), tone], &[512], &SeparatorParams::default());
        let mask = sep.last_mask(0);
        let pos = hz / sep.bin_hz();
        let i = pos.floor() as usize;
        let f = pos - i as f32;
        mask[i] * (1.0 - f) + mask[i + 1] * f
    };
    let m44 = mask_at(44_100.0, tone_hz);
    let m96 = mask_at(96_000.0, tone_hz);
    // A separator that kept the model's FFT size and fed bins by index would, at 96 kHz,
    // give the tone the mask of tone·44.1/96 Hz: make sure that value is different.
    let by_index = mask_at(44_100.0, tone_hz * 44_100.0 / 96_000.0);
    println!("mask at {tone_hz} Hz: 44.1 kHz {m44:.4}, 96 kHz {m96:.4}, by-index mapping {by_index:.4}");
    assert!((m44 - m96).abs() < 0.03, "44.1 kHz {m44} vs 96 kHz {m96}");
    assert!((m44 - by_index).abs() > 0.1, "test cannot tell the mappings apart");
}

#[test]
fn output_modes_gains_mix_and_bypass() {
    let weights = default_random_weights(31);
    let rate = 48_000.0;
    let input = stereo_mix(rate, 24_000);
    let settle = 4_000; // smoothing (10 ms) has converged well before this
    let check = |params: SeparatorParams, expect: &dyn Fn(f32, f32, f32) -> f32| {
        let mut sep = separator(&weights, rate, 2);
        let out = run(&mut sep, &input, &[64, 1000, 1], &params);
        let latency = sep.latency_samples();
        let mut err = 0.0f32;
        for c in 0..2 {
            for n in settle..input[0].len() {
                let d = delayed(&input[c], n, latency);
                let want = expect(out.vocals[c][n], out.accompaniment[c][n], d);
                err = err.max((out.main[c][n] - want).abs());
            }
        }
        assert!(err < 1e-4, "{params:?}: error {err}");
    };
    let p = SeparatorParams::default();
    check(SeparatorParams { output: OutputMode::Vocals, vocal_gain: 0.5, ..p }, &|v, _, _| 0.5 * v);
    check(SeparatorParams { output: OutputMode::Accompaniment, accompaniment_gain: 2.0, ..p }, &|_, a, _| 2.0 * a);
    check(SeparatorParams { vocal_gain: 0.25, accompaniment_gain: 1.5, ..p }, &|v, a, _| 0.25 * v + 1.5 * a);
    check(SeparatorParams { output: OutputMode::Vocals, mix: 0.3, ..p }, &|v, _, d| 0.3 * v + 0.7 * d);
    check(SeparatorParams { output: OutputMode::Vocals, bypass: true, ..p }, &|_, _, d| d);
    // Strength changes the stems (sharper mask), but never their sum.
    let mut soft = separator(&weights, rate, 2);
    let mut hard = separator(&weights, rate, 2);
    let a = run(&mut soft, &input, &[256], &SeparatorParams { strength: 0.5, ..p });
    let b = run(&mut hard, &input, &[256], &SeparatorParams { strength: 3.0, ..p });
    let diff: f32 = a.vocals[0].iter().zip(&b.vocals[0]).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(diff > 1e-3, "strength has no effect");
}

#[test]
fn parameter_changes_do_not_click() {
    let weights = default_random_weights(32);
    let rate = 48_000.0;
    let len = 48_000;
    let input = stereo_mix(rate, len);
    let mut sep = separator(&weights, rate, 2);
    let p = SeparatorParams::default();
    let settings = [
        SeparatorParams { output: OutputMode::Vocals, ..p },
        SeparatorParams { bypass: true, ..p },
        SeparatorParams { output: OutputMode::Accompaniment, accompaniment_gain: 3.0, ..p },
        SeparatorParams { mix: 0.0, ..p },
        p,
    ];
    let render = Render { blocks: &[128], stem_channels: None, align: false };
    let mut params = settings[0];
    let main = render
        .run_with(&mut sep, &input, &mut params, |block, _, params| {
            let k = block.index + 1;
            *params = settings[(k / 40) % settings.len()];
        })
        .main;
    assert_eq!(main[0].len(), len);
    // Largest sample-to-sample step of the output vs. of the input: an unsmoothed switch
    // between stems would jump by up to the full signal level.
    let step = |x: &[f32]| x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max);
    let (out_step, in_step) = (step(&main[0]), step(&input[0]));
    assert!(out_step < 3.0 * in_step, "output step {out_step} vs input step {in_step}");
}

#[test]
fn hostile_input_stays_finite_and_recovers() {
    let weights = default_random_weights(41);
    let rate = 48_000.0;
    let len = 96_000;
    let clean = stereo_mix(rate, len);
    let mut input = clean.clone();
    // Bursts: NaN, +Inf, -Inf, denormals, full-scale square noise, huge finite values.
    for (start, value) in [(5_000, f32::NAN), (20_000, f32::INFINITY), (30_000, f32::NEG_INFINITY)] {
        for c in 0..2 {
            input[c][start..start + 700].fill(value);
        }
    }
    input[0][40_000..41_000].fill(1e-40);
    for n in 50_000..60_000 {
        input[1][n] = if (n * 7919) % 13 < 6 { 1.0 } else { -1.0 };
    }
    input[0][70_000..70_010].fill(3e38);
    let mut sep = separator(&weights, rate, 2);
    let latency = sep.latency_samples();
    let out = run(&mut sep, &input, &[1, 333, 4096, 64], &SeparatorParams::default());
    for signal in out.main.iter().chain(&out.vocals).chain(&out.accompaniment) {
        assert!(signal.iter().all(|v| v.is_finite()), "non-finite output");
    }
    assert!(sep.recoveries() >= 3, "recoveries: {}", sep.recoveries());
    // After the last burst the separator is back to normal: stems sum to the delayed input
    // and the vocal stem carries signal comparable to a clean run.
    let tail = 80_000..len;
    let mut clean_sep = separator(&weights, rate, 2);
    let reference = run(&mut clean_sep, &clean, &[256], &SeparatorParams::default());
    for n in tail.clone() {
        let d = delayed(&input[0], n, latency);
        assert!((out.vocals[0][n] + out.accompaniment[0][n] - d).abs() < 1e-5);
    }
    let (got, want) = (rms(&out.vocals[0][tail.clone()]), rms(&reference.vocals[0][tail]));
    assert!(got > 0.3 * want && got < 3.0 * want, "vocals rms {got} vs clean {want}");
}

#[test]
fn silence_and_full_scale_noise_give_finite_output() {
    let weights = default_random_weights(42);
    let mut sep = separator(&weights, 44_100.0, 2);
    let silence = vec![vec![0.0; 20_000]; 2];
    let out = run(&mut sep, &silence, &[8192], &SeparatorParams::default());
    assert!(out.main.iter().flatten().all(|v| *v == 0.0));
    let mut s = 1u64;
    let noise: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            (0..20_000)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    if s >> 63 == 1 { 1.0 } else { -1.0 }
                })
                .collect()
        })
        .collect();
    let out = run(&mut sep, &noise, &[8192, 1], &SeparatorParams { strength: 4.0, ..Default::default() });
    assert!(out.main.iter().chain(&out.vocals).flatten().all(|v| v.is_finite()));
}

#[test]
fn channels_do_not_leak_into_each_other() {
    // Left carries music, right is silent: nothing may appear on the right of any output.
    let weights = default_random_weights(51);
    let mut sep = separator(&weights, 48_000.0, 2);
    let input = vec![stereo_mix(48_000.0, 20_000).remove(0), vec![0.0; 20_000]];
    let out = run(&mut sep, &input, &[300], &SeparatorParams::default());
    assert!(rms(&out.vocals[0]) > 1e-3);
    for right in [&out.main[1], &out.vocals[1], &out.accompaniment[1]] {
        assert!(right.iter().all(|v| *v == 0.0));
    }
}

#[test]
fn model_swap_happens_at_a_frame_boundary_and_returns_the_old_model() {
    let rate = 48_000.0;
    let mut sep = separator(&constant_mask_weights(30.0), rate, 2);
    let hop = sep.hop();
    let latency = sep.latency_samples();
    let input = stereo_mix(rate, 30_000);
    // An incompatible model (different FFT) is refused and handed back.
    let stft = StftConfig { fft_size: 2048, hop: 512, ..common::grid_1024() };
    let other = RtMaskNet::new(&random_weights(ModelConfig::light(&stft), stft, 1)).unwrap();
    assert!(sep.queue_model(Box::new(other)).is_err());
    let zeros = Box::new(RtMaskNet::new(&constant_mask_weights(-30.0)).unwrap());
    let mut queued = Some(zeros);
    let swap_at = 10_000 + 37; // mid-hop on purpose
    let render = Render { blocks: &[100], stem_channels: Some(2), align: false };
    let vocals = render
        .run_with(&mut sep, &input, &mut SeparatorParams::default(), |block, sep, _| {
            // Queued before the first block that starts at or after `swap_at`.
            if block.end >= swap_at
                && let Some(net) = queued.take()
            {
                assert!(sep.queue_model(net).is_ok());
            }
        })
        .vocals;
    assert!(sep.take_retired_model().is_some(), "old model not handed back");
    assert!(sep.take_retired_model().is_none());
    // Before the swap vocals = delayed input, well after it they are silent, and the change
    // happens through overlap-add (bounded step, no click).
    let first_frame_after = (swap_at / hop + 1) * hop + 100; // queued in the block at 10_100
    let before = first_frame_after + latency - 1024 - 200;
    assert!((vocals[0][before] - delayed(&input[0], before, latency)).abs() < 1e-5);
    assert!(vocals[0][first_frame_after + latency + 2048..].iter().all(|v| v.abs() < 1e-5));
    let max_step = vocals[0].windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max);
    let in_step = input[0].windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max);
    assert!(max_step <= 1.5 * in_step, "swap clicked: step {max_step} vs input {in_step}");
}

#[test]
fn display_taps_follow_the_input() {
    let weights = default_random_weights(61);
    let mut sep = separator(&weights, 48_000.0, 2);
    assert_eq!(sep.frames_analysed(), 0);
    let tone: Vec<f32> =
        (0..48_000).map(|n| 0.5 * (std::f32::consts::TAU * 3000.0 * n as f32 / 48_000.0).sin()).collect();
    run(&mut sep, &[tone.clone(), tone], &[480], &SeparatorParams::default());
    assert_eq!(sep.frames_analysed(), 48_000 / sep.hop() as u64);
    let spectrum = sep.last_spectrum();
    let peak = spectrum.iter().enumerate().fold((0, 0.0f32), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
    let peak_hz = peak.0 as f32 * sep.bin_hz();
    assert!((peak_hz - 3000.0).abs() < sep.bin_hz(), "peak at {peak_hz} Hz");
    assert!((0.15..=0.3).contains(&peak.1), "peak magnitude {}", peak.1);
    sep.reset();
    assert_eq!(sep.frames_analysed(), 0);
    assert!(sep.last_spectrum().iter().all(|v| *v == 0.0));
}

#[test]
fn process_before_prepare_is_harmless() {
    let mut sep = Separator::new(RtMaskNet::new(&default_random_weights(1)).unwrap());
    let mut l = vec![0.5f32; 64];
    let mut v = vec![1.0f32; 64];
    sep.process(&mut [&mut l[..]], Some(&mut [&mut v[..]]), None, &SeparatorParams::default());
    assert!(l.iter().all(|x| *x == 0.5) && v.iter().all(|x| *x == 0.0));
    assert!(sep.prepare(44_100.0, 64, 3).is_err());
    assert!(sep.prepare(f32::NAN, 64, 2).is_err());
}

/// Quiet signals at maximum strength: a mask near 1e-35 (`sigmoid(4 · −20)`) times quiet
/// spectra resynthesises subnormal samples unless the outputs are flushed. Runs without FTZ
/// (test threads have the default MXCSR), every mode, a range of levels and gains.
#[test]
fn quiet_input_at_max_strength_gives_no_subnormal_output() {
    use isola_engine::rt::MAX_STRENGTH;
    let is_subnormal = |x: f32| x != 0.0 && x.abs() < f32::MIN_POSITIVE;
    let rate = 48_000.0;
    let mut seen_tiny = false;
    for bias in [-20.0, -10.0, 20.0] {
        let weights = constant_mask_weights(bias);
        for level in [1e-2f32, 1e-4, 1e-6, 1e-8] {
            let input: Vec<Vec<f32>> =
                stereo_mix(rate, 9_000).iter().map(|c| c.iter().map(|x| x * level).collect()).collect();
            for output in [OutputMode::Vocals, OutputMode::Accompaniment, OutputMode::Balance] {
                for (vocal_gain, mix) in [(1.0, 1.0), (0.001, 1.0), (4.0, 0.5)] {
                    let mut sep = separator(&weights, rate, 2);
                    let params =
                        SeparatorParams { output, strength: MAX_STRENGTH, vocal_gain, mix, ..Default::default() };
                    let out = run(&mut sep, &input, &[64, 1, 300], &params);
                    for (name, bus) in
                        [("main", &out.main), ("vocals", &out.vocals), ("accompaniment", &out.accompaniment)]
                    {
                        for (c, ch) in bus.iter().enumerate() {
                            seen_tiny |= ch.iter().any(|&x| x != 0.0 && x.abs() < 1e-30);
                            let bad = ch.iter().position(|&x| is_subnormal(x));
                            assert!(
                                bad.is_none(),
                                "bias {bias} level {level} {output:?}: subnormal {name}[{c}][{}] = {:e}",
                                bad.unwrap_or(0),
                                ch[bad.unwrap_or(0)]
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(!seen_tiny, "outputs below the flush threshold survived");
}

/// `Separator::set_spread_step`: the light network's step spread over the next hop's blocks
/// gives the same output, to the bit, one hop later, whatever the block sizes.
#[test]
fn a_spread_step_changes_only_the_latency_by_one_hop() {
    let rate = 48_000.0;
    let input = stereo_mix(rate, 24_000);
    let weights = default_random_weights(41);
    let mut whole = separator(&weights, rate, 2);
    let (hop, latency) = (whole.hop(), whole.latency_samples());
    assert!(!whole.spreads_step());
    let reference = run(&mut whole, &input, &[4096], &SeparatorParams::default());
    for blocks in [&[1usize][..], &[64], &[300, 17, 1000], &[4096]] {
        let mut sep = Separator::new(RtMaskNet::new(&weights).unwrap());
        sep.set_spread_step(true);
        sep.prepare(rate, 4096, 2).unwrap();
        assert!(sep.spreads_step());
        assert_eq!(sep.latency_samples(), latency + hop);
        let spread = run(&mut sep, &input, blocks, &SeparatorParams::default());
        for (name, a, b) in [("vocals", &reference.vocals, &spread.vocals), ("main", &reference.main, &spread.main)] {
            for c in 0..2 {
                assert_eq!(&a[c][..a[c].len() - hop], &b[c][hop..], "{name} channel {c}, blocks {blocks:?}");
                assert!(b[c][..hop].iter().all(|&v| v == 0.0));
            }
        }
        // Not trivially equal: the vocals are neither silent nor the input.
        assert!(rms(&spread.vocals[0]) > 0.01);
        assert_ne!(spread.vocals[0], spread.main[0]);
    }
}
