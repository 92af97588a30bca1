//! Cross-check of Isola's SDR against museval's reference numbers.
//!
//! `fixtures/make_museval_reference.py` generated a deterministic synthetic
//! fixture and evaluated it with museval 0.4.1 (BSSEval v4, 1 s windows and
//! hops); `fixtures/museval_reference.json` holds the numbers. This test
//! regenerates the same fixture with the same arithmetic and requires
//! agreement within 0.1 dB on every window, every per-track median and the
//! median over tracks (and on SI-SDR / global SDR against the numpy formulas).

use std::f64::consts::PI;

use isola_trainer::audio::Audio;
use isola_trainer::metrics::{evaluate_track, nanmedian};
use serde_json::Value;

const RATE: u32 = 8000;
const FRAMES: usize = 52_000;
const LEAK_INTO_VOCALS: [f64; 3] = [0.1, 0.3, 0.6];
const LEAK_INTO_ACCOMPANIMENT: [f64; 3] = [0.05, 0.2, 0.5];
const TOLERANCE_DB: f64 = 0.1;

/// splitmix64 -> uniform [-1, 1), as in the Python script.
fn noise(seed: u64, n: usize) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 * 2f64.powi(-53) * 2.0 - 1.0
        })
        .collect()
}

fn to_audio(channels: [Vec<f64>; 2]) -> Audio {
    Audio {
        sample_rate: RATE,
        channels: channels.into_iter().map(|c| c.into_iter().map(|x| x as f32).collect()).collect(),
    }
}

fn widen(a: &Audio) -> Vec<Vec<f64>> {
    a.channels.iter().map(|c| c.iter().map(|&x| f64::from(x)).collect()).collect()
}

/// (vocals, accompaniment, estimated vocals, estimated accompaniment).
fn track(k: usize) -> (Audio, Audio, Audio, Audio) {
    let t: Vec<f64> = (0..FRAMES).map(|i| i as f64 / f64::from(RATE)).collect();
    let f0 = 196.0 * (1.0 + 0.25 * k as f64);
    let voice: Vec<f64> = t
        .iter()
        .map(|&t| {
            let phase = 2.0 * PI * f0 * t + 0.8 * (2.0 * PI * 5.5 * t).sin();
            let v: f64 = (1..7).map(|h| (0.5 / h as f64) * (h as f64 * phase).sin()).sum();
            let v = v * (0.6 + 0.4 * (2.0 * PI * 0.7 * t).sin());
            if k == 0 && (2.0..3.0).contains(&t) { 0.0 } else { v }
        })
        .collect();
    let vocals = to_audio([voice.iter().map(|v| 0.9 * v).collect(), voice.iter().map(|v| 0.7 * v).collect()]);
    let tone: Vec<f64> = t.iter().map(|&t| 0.3 * (2.0 * PI * 110.0 * t).sin()).collect();
    let (n1, n2) = (noise(100 + k as u64, FRAMES), noise(200 + k as u64, FRAMES));
    let acc = to_audio([
        (0..FRAMES).map(|i| 0.25 * n1[i] + tone[i]).collect(),
        (0..FRAMES).map(|i| 0.25 * n2[i] + tone[i]).collect(),
    ]);

    let mut v = widen(&vocals);
    let a = widen(&acc);
    if k == 2 {
        v = v
            .iter()
            .map(|c| (0..FRAMES).map(|i| 0.8 * c[i] + 0.2 * if i >= 3 { c[i - 3] } else { 0.0 }).collect())
            .collect();
    }
    let vn = [noise(300 + k as u64, FRAMES), noise(400 + k as u64, FRAMES)];
    let an = [noise(500 + k as u64, FRAMES), noise(600 + k as u64, FRAMES)];
    let vw = widen(&vocals);
    let est_v = to_audio(
        [0, 1].map(|c| (0..FRAMES).map(|i| v[c][i] + LEAK_INTO_VOCALS[k] * a[c][i] + 0.05 * vn[c][i]).collect()),
    );
    let est_a = to_audio(
        [0, 1]
            .map(|c| (0..FRAMES).map(|i| a[c][i] + LEAK_INTO_ACCOMPANIMENT[k] * vw[c][i] + 0.02 * an[c][i]).collect()),
    );
    let (est_v, est_a) = if k == 1 {
        (est_v.slice_padded(0, FRAMES - 1000), est_a.slice_padded(0, FRAMES - 1000))
    } else {
        (est_v, est_a)
    };
    (vocals, acc, est_v, est_a)
}

/// Asserts agreement and returns the absolute difference (0 for matching NaN).
fn close(ours: f64, theirs: &Value, what: &str) -> f64 {
    match theirs.as_f64() {
        Some(x) => {
            assert!((ours - x).abs() < TOLERANCE_DB, "{what}: ours {ours:.4} dB, museval {x:.4} dB");
            (ours - x).abs()
        }
        None => {
            assert!(ours.is_nan(), "{what}: ours {ours}, museval NaN (silent window)");
            0.0
        }
    }
}

#[test]
fn sdr_agrees_with_museval_within_a_tenth_of_a_db() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/museval_reference.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reference["rate"].as_u64(), Some(u64::from(RATE)));
    assert_eq!(reference["frames"].as_u64(), Some(FRAMES as u64));
    let tracks = reference["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 3);

    let mut medians = [Vec::new(), Vec::new()];
    let mut nan_windows = 0;
    let mut worst = 0.0f64;
    for (k, expected) in tracks.iter().enumerate() {
        let (v, a, ev, ea) = track(k);
        let scores = evaluate_track(&v, &a, &ev, &ea).unwrap();
        for (j, (name, ours)) in
            [("vocals", &scores.vocals), ("accompaniment", &scores.accompaniment)].into_iter().enumerate()
        {
            let theirs = &expected[name];
            let frames = theirs["sdr_frames"].as_array().unwrap();
            assert_eq!(ours.sdr_frames.len(), frames.len(), "track {k} {name}: window count");
            for (w, (o, t)) in ours.sdr_frames.iter().zip(frames).enumerate() {
                worst = worst.max(close(*o, t, &format!("track {k} {name} window {w}")));
                nan_windows += usize::from(o.is_nan());
            }
            worst = worst.max(close(ours.sdr, &theirs["sdr_median"], &format!("track {k} {name} median")));
            close(ours.si_sdr, &theirs["si_sdr"], &format!("track {k} {name} SI-SDR"));
            close(ours.global_sdr, &theirs["global_sdr"], &format!("track {k} {name} global SDR"));
            medians[j].push(ours.sdr);
        }
    }
    assert_eq!(nan_windows, 2, "the silent vocal window of track 0 is NaN for both sources");
    close(nanmedian(&medians[0]), &reference["over_tracks_median_sdr"]["vocals"], "median over tracks, vocals");
    close(
        nanmedian(&medians[1]),
        &reference["over_tracks_median_sdr"]["accompaniment"],
        "median over tracks, accompaniment",
    );
    println!("largest |Isola - museval| SDR difference: {worst:.3e} dB");
}
