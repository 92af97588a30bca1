//! Randomised CLAP host test: 10 000 blocks of random size (1..=4096) with random parameter
//! events at random offsets and occasional NaN / Inf / huge / full-scale input bursts, against
//! the debug build (any allocation in `process()` aborts the test).
//!
//! Checked on every sample: all outputs finite, main output bounded, and the stems still sum to
//! the (sanitised) input delayed by the latency. After every burst: the separation is running
//! normally again (vocal stem neither silent nor exploding) once the burst has left the delay
//! line. `ISOLA_FUZZ_SEED` replays a run.

// Parallel per-channel buffers read clearer with explicit indices.
#![allow(clippy::needless_range_loop)]

mod common;

use std::collections::VecDeque;

use common::clap::{Plugin, Rendered};
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BLOCKS: usize = 10_000;
const MAX_BLOCK: usize = 4096;
const SAMPLE_RATE: f64 = 48_000.0;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Burst {
    Nan,
    PosInf,
    NegInf,
    MixedNonFinite,
    Huge,
    FullScaleSquare,
    FullScaleNoise,
    FullScaleDc,
}

const BURSTS: [Burst; 8] = [
    Burst::Nan,
    Burst::PosInf,
    Burst::NegInf,
    Burst::MixedNonFinite,
    Burst::Huge,
    Burst::FullScaleSquare,
    Burst::FullScaleNoise,
    Burst::FullScaleDc,
];

/// What the plugin feeds the engine (the engine's input guard, as `isola_plugin::dsp::sanitize`).
fn sanitized(x: f32) -> f32 {
    isola_engine::rt::math::guard_input(x).unwrap_or(0.0)
}

/// A post-burst window over which the vocal stem must look normal.
struct Recovery {
    start: usize,
    end: usize,
    kind: Burst,
    sum_sq: f64,
    count: usize,
    in_sum_sq: f64,
    /// Another burst reaches the output inside the window.
    tainted: bool,
}

#[test]
fn random_blocks_params_and_bursts() {
    let seed: u64 = std::env::var("ISOLA_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x15_01A);
    eprintln!("ISOLA_FUZZ_SEED={seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let mut p = Plugin::load(&bundle("clap"));
    let params = ["Output", "Vocal level", "Accompaniment level", "Strength", "Mix", "Bypass"].map(|n| (n, p.id(n)));
    let proc = p.activate(SAMPLE_RATE, MAX_BLOCK as u32, 2);
    let latency = p.latency() as usize;
    assert!(latency > 0);

    // Ten seconds of music, looped.
    let music: Vec<Vec<f32>> = mixture(SAMPLE_RATE as f32, (10.0 * SAMPLE_RATE) as usize).into();
    let music_len = music[0].len();

    let (proc, summary) = p.on_audio_thread(proc, move |pr| {
        let mut pos = 0usize; // absolute sample position
        let mut delay: [VecDeque<f32>; 2] =
            [VecDeque::from(vec![0.0; latency]), VecDeque::from(vec![0.0; latency])];
        let mut out = Rendered::default();
        let mut input = [Vec::with_capacity(MAX_BLOCK), Vec::with_capacity(MAX_BLOCK)];
        let mut changes = Vec::new();
        let mut recoveries: Vec<Recovery> = Vec::new();
        let (mut checked, mut skipped, mut bursts, mut events) = (0usize, 0usize, 0usize, 0usize);
        let mut burst_left = 0usize;
        let mut burst_kind = Burst::Nan;
        let mut total = 0usize;

        for _ in 0..BLOCKS {
            let n = rng.random_range(1..=MAX_BLOCK);
            total += n;
            if burst_left == 0 && rng.random_bool(0.015) {
                burst_kind = BURSTS[rng.random_range(0..BURSTS.len())];
                burst_left = rng.random_range(1..=3);
                bursts += 1;
                for r in recoveries.iter_mut() {
                    if pos + latency < r.end {
                        r.tainted = true;
                    }
                }
            }
            let in_burst = burst_left > 0;
            for c in 0..2 {
                input[c].clear();
                for i in 0..n {
                    let clean = music[c][(pos + i) % music_len];
                    let x = if !in_burst {
                        clean
                    } else {
                        match burst_kind {
                            Burst::Nan => f32::NAN,
                            Burst::PosInf => f32::INFINITY,
                            Burst::NegInf => f32::NEG_INFINITY,
                            Burst::MixedNonFinite => match rng.random_range(0..4) {
                                0 => f32::NAN,
                                1 => f32::INFINITY,
                                2 => f32::NEG_INFINITY,
                                _ => clean,
                            },
                            Burst::Huge => 1e30 * if i % 2 == 0 { 1.0 } else { -1.0 },
                            Burst::FullScaleSquare => {
                                if ((pos + i) / 24).is_multiple_of(2) { 1.0 } else { -1.0 }
                            }
                            Burst::FullScaleNoise => rng.random_range(-1.0f32..1.0).signum(),
                            Burst::FullScaleDc => 1.0,
                        }
                    };
                    input[c].push(x);
                }
            }
            if in_burst {
                burst_left -= 1;
                if burst_left == 0 {
                    let burst_end = pos + n;
                    // Judge the stems from when the burst has left the delay line plus a
                    // quarter second (network state and smoothing), over half a second.
                    let start = burst_end + latency + (0.25 * SAMPLE_RATE) as usize;
                    recoveries.push(Recovery {
                        start,
                        end: start + (0.5 * SAMPLE_RATE) as usize,
                        kind: burst_kind,
                        sum_sq: 0.0,
                        count: 0,
                        in_sum_sq: 0.0,
                        tainted: false,
                    });
                }
            }

            changes.clear();
            if rng.random_bool(0.3) {
                for _ in 0..rng.random_range(1..=4) {
                    let (name, id) = params[rng.random_range(0..params.len())];
                    let value = match name {
                        "Output" => rng.random_range(0..3) as f64,
                        "Bypass" => rng.random_range(0..2) as f64,
                        _ => rng.random_range(0.0..=1.0),
                    };
                    changes.push((rng.random_range(0..n as u32), id, value));
                    events += 1;
                }
                changes.sort_by_key(|c| c.0);
            }

            out.main.iter_mut().chain(&mut out.vocals).chain(&mut out.accompaniment).for_each(Vec::clear);
            let slices = [&input[0][..], &input[1][..]];
            pr.block(&slices, &changes, &mut out);

            for c in 0..2 {
                for i in 0..n {
                    let (m, v, a) = (out.main[c][i], out.vocals[c][i], out.accompaniment[c][i]);
                    let at = pos + i;
                    assert!(
                        m.is_finite() && v.is_finite() && a.is_finite(),
                        "seed {seed}: non-finite output at sample {at} (burst {burst_kind:?}, in burst {in_burst}): main {m} vocals {v} accomp {a}"
                    );
                    assert!(m.abs() <= 1e3, "seed {seed}: main output {m} at sample {at}");
                    delay[c].push_back(sanitized(input[c][i]));
                    let d = delay[c].pop_front().unwrap();
                    let err = (v + a - d).abs();
                    assert!(
                        err <= 1e-4 * (1.0 + d.abs() + v.abs()),
                        "seed {seed}: ch {c} sample {at}: vocals {v} + accompaniment {a} != delayed input {d}"
                    );
                    if c == 0 {
                        for r in recoveries.iter_mut() {
                            if at >= r.start && at < r.end {
                                r.sum_sq += (v as f64).powi(2);
                                r.in_sum_sq += (d as f64).powi(2);
                                r.count += 1;
                            }
                        }
                    }
                }
            }
            pos += n;

            // Judge finished recovery windows (skip those another burst ran into).
            recoveries.retain(|r| {
                if pos < r.end {
                    return true;
                }
                if r.tainted || r.count == 0 || r.in_sum_sq == 0.0 {
                    skipped += 1;
                    return false;
                }
                let v_rms = (r.sum_sq / r.count as f64).sqrt();
                let in_rms = (r.in_sum_sq / r.count as f64).sqrt();
                assert!(
                    v_rms > 1e-3 * in_rms && v_rms < 4.0 * in_rms,
                    "seed {seed}: no recovery after a {:?} burst: vocal stem rms {v_rms} vs input rms {in_rms} at samples {}..{}",
                    r.kind,
                    r.start,
                    r.end
                );
                checked += 1;
                false
            });
        }
        (total, bursts, checked, skipped, events)
    });
    let (total, bursts, checked, skipped, events) = summary;
    eprintln!(
        "{BLOCKS} blocks, {total} samples ({:.0} s of audio), {events} parameter events, {bursts} bursts, {checked} recoveries checked, {skipped} skipped (overlapping bursts)",
        total as f64 / SAMPLE_RATE
    );
    assert!(bursts >= 50, "too few bursts to mean anything: {bursts}");
    assert!(checked >= bursts / 2, "too few recoveries checked: {checked} of {bursts}");
    p.deactivate(proc);
}
