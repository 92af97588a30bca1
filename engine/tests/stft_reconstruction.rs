//! With a unity mask the streaming STFT returns its input delayed by exactly
//! `latency_samples()`, whatever the block sizes, for the symmetric window pairs and the
//! low-latency (asymmetric) pair at the rates hosts use.

use isola_engine::config::{StftConfig, Window};
use isola_engine::rt::StreamingStft;
use isola_engine::synth::white_noise;
use proptest::prelude::*;

/// Streams `signal` through in blocks cycling over `blocks`; returns the output.
fn stream(stft: &mut StreamingStft, signal: &[Vec<f32>], blocks: &[usize]) -> Vec<Vec<f32>> {
    let channels = signal.len();
    let len = signal[0].len();
    let mut out = vec![vec![0.0; len]; channels];
    let mut at = 0;
    let mut k = 0;
    while at < len {
        let n = blocks[k % blocks.len()].min(len - at);
        k += 1;
        let ins: Vec<&[f32]> = signal.iter().map(|c| &c[at..at + n]).collect();
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|c| &mut c[at..at + n]).collect();
        stft.process(&ins, &mut outs, |_| {});
        at += n;
    }
    out
}

fn max_delay_error(input: &[Vec<f32>], output: &[Vec<f32>], latency: usize) -> f32 {
    let mut err = 0.0f32;
    for (i, o) in input.iter().zip(output) {
        for n in 0..o.len() {
            let expected = if n >= latency { i[n - latency] } else { 0.0 };
            err = err.max((o[n] - expected).abs());
        }
    }
    err
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn unity_mask_is_a_pure_delay(
        fft_pow in 9usize..=11,
        half_hop in any::<bool>(),
        stereo in any::<bool>(),
        window in prop_oneof![Just(Window::SqrtHann), Just(Window::Hann)],
        blocks in prop::collection::vec(1usize..=9000, 1..12),
        seed in any::<u64>(),
    ) {
        let fft_size = 1 << fft_pow;
        let hop = if half_hop { fft_size / 2 } else { fft_size / 4 };
        let config = StftConfig { sample_rate: 48_000, fft_size, hop, window, synthesis_len: None };
        config.validate().unwrap();
        let channels = if stereo { 2 } else { 1 };
        let mut stft = StreamingStft::new(&config, channels);
        prop_assert_eq!(stft.latency_samples(), fft_size - 1);
        let len = 3 * fft_size + 5000;
        let signal: Vec<Vec<f32>> = (0..channels).map(|c| white_noise(len, seed.wrapping_add(c as u64))).collect();
        let out = stream(&mut stft, &signal, &blocks);
        let err = max_delay_error(&signal, &out, stft.latency_samples());
        prop_assert!(err <= 1e-5, "max abs error {} (fft {}, hop {}, blocks {:?})", err, fft_size, hop, blocks);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The low-latency pair: a model grid at 44.1 kHz (FFT 1008 or 1024, synthesis window
    /// 2 or 4 hops), run at the model's rate, 48 kHz or 96 kHz as the separator would.
    #[test]
    fn unity_mask_is_a_pure_delay_with_the_low_latency_window_pair(
        fft_size in prop_oneof![Just(1008usize), Just(1024)],
        hop_div in prop_oneof![Just(4usize), Just(8), Just(16)],
        hops_per_synthesis in prop_oneof![Just(2usize), Just(4)],
        rate in prop_oneof![Just(44_100.0f64), Just(48_000.0), Just(96_000.0)],
        stereo in any::<bool>(),
        blocks in prop::collection::vec(1usize..=9000, 1..12),
        seed in any::<u64>(),
    ) {
        let hop = fft_size / hop_div;
        let model = StftConfig {
            sample_rate: 44_100,
            fft_size,
            hop,
            window: Window::SqrtHann,
            synthesis_len: Some(hops_per_synthesis * hop),
        };
        model.validate().unwrap();
        let config = model.for_rate(rate);
        config.validate().unwrap();
        let m = config.synthesis_len.unwrap();
        prop_assert_eq!(m, hops_per_synthesis * config.hop, "{:?}", config);
        let channels = if stereo { 2 } else { 1 };
        let mut stft = StreamingStft::new(&config, channels);
        prop_assert_eq!(stft.latency_samples(), m - 1);
        prop_assert_eq!(config.latency_samples(), m - 1);
        let len = 3 * config.fft_size + 5000;
        let signal: Vec<Vec<f32>> = (0..channels).map(|c| white_noise(len, seed.wrapping_add(c as u64))).collect();
        let out = stream(&mut stft, &signal, &blocks);
        let err = max_delay_error(&signal, &out, stft.latency_samples());
        prop_assert!(err <= 1e-5, "max abs error {} ({:?}, blocks {:?})", err, config, blocks);
    }
}

/// The low-latency grids of the latency modes keep their latency in milliseconds at the
/// rates hosts use: 1008/126 with a 252-sample synthesis window is 5.7 ms at 44.1 kHz.
#[test]
fn low_latency_grids_stay_under_their_bound_at_every_common_rate() {
    for (hop, bound_ms) in [(126, 6.0), (252, 12.0)] {
        let model = StftConfig { fft_size: 1008, hop, synthesis_len: Some(2 * hop), ..StftConfig::default() };
        for rate in [44_100.0, 48_000.0, 88_200.0, 96_000.0] {
            let grid = model.for_rate(rate);
            let mut stft = StreamingStft::new(&grid, 2);
            let ms = stft.latency_samples() as f64 / rate * 1e3;
            assert!(ms <= bound_ms, "{grid:?}: {ms:.2} ms");
            // Longer than the bound's half: the window is not shorter than asked.
            assert!(ms > 0.8 * bound_ms * 0.5, "{grid:?}: {ms:.2} ms");
            let signal = vec![white_noise(20_000, 3), white_noise(20_000, 4)];
            let out = stream(&mut stft, &signal, &[1, 333, 8192]);
            assert!(max_delay_error(&signal, &out, stft.latency_samples()) <= 1e-5, "{grid:?}");
        }
    }
}

#[test]
fn off_by_one_latency_would_be_caught() {
    let symmetric = StftConfig { fft_size: 1024, hop: 256, ..StftConfig::default() };
    let low = StftConfig { synthesis_len: Some(512), ..symmetric };
    for (config, latency) in [(symmetric, 1023), (low, 511)] {
        let mut stft = StreamingStft::new(&config, 1);
        assert_eq!(stft.latency_samples(), latency);
        let signal = vec![white_noise(8192, 7)];
        let out = stream(&mut stft, &signal, &[1, 100, 4096]);
        assert!(max_delay_error(&signal, &out, latency) <= 1e-5);
        assert!(max_delay_error(&signal, &out, latency + 1) > 0.1);
        assert!(max_delay_error(&signal, &out, latency - 1) > 0.1);
    }
}

#[test]
fn frames_arrive_once_per_hop_for_any_block_sizes() {
    let config = StftConfig { fft_size: 1024, hop: 256, ..StftConfig::default() };
    let mut stft = StreamingStft::new(&config, 2);
    let mut frames = 0;
    let len = 100_000;
    let zeros = vec![0.0f32; 8192];
    let mut out = vec![vec![0.0f32; 8192]; 2];
    let mut at = 0;
    for n in [1usize, 7, 255, 256, 257, 4096, 8192].iter().cycle() {
        let n = (*n).min(len - at);
        let ins = [&zeros[..n], &zeros[..n]];
        let (a, b) = out.split_at_mut(1);
        let mut outs = [&mut a[0][..n], &mut b[0][..n]];
        stft.process(&ins, &mut outs, |spectra| {
            assert_eq!(spectra.len(), 2);
            assert_eq!(spectra[0].len(), 513);
            frames += 1;
        });
        at += n;
        if at == len {
            break;
        }
    }
    assert_eq!(frames, len / config.hop);
}
