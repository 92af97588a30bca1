//! AAC in MP4: `.m4a` files and MUSDB18 `.stem.mp4` (stream 0 mixture, 1 drums,
//! 2 bass, 3 other, 4 vocals) decode to the right rate, channels, exact length
//! and content, are found and loaded as tracks, and pass `isola data check`.
//!
//! Fixtures: `fixtures/aac/`, written by `fixtures/make_aac_fixtures.py` (FFmpeg's
//! native AAC-LC encoder via PyAV) from closed-form synthetic notes that
//! `expected.json` lists. [`synth`] re-synthesises them with the same formula,
//! so the decoded audio is compared sample by sample with what was encoded.
//!
//! Length: FFmpeg primes AAC with 1024 frames and pads the last packet; the
//! MP4 edit list says so, and the decoder must honour it, so lengths are
//! checked exactly and the decoded signal must line up with the source at lag
//! 0 (a decoder that ignored the edit list would be 1024 frames late).

use std::f64::consts::TAU;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use isola_trainer::audio::Audio;
use isola_trainer::audio::cache::AudioLoader;
use isola_trainer::audio::decode::{decode_file, decode_streams};
use isola_trainer::data::{DataSpec, Loaded, Source, discover, load_entry};
use serde_json::Value;

const STEM_MP4: &str = "musdb/test/Synth Artist - Test Song.stem.mp4";
const MUSDB_ORDER: [&str; 5] = ["mixture", "drums", "bass", "other", "vocals"];
/// Lags searched for the best alignment: past FFmpeg's (1024) and Apple's (2112) priming.
const MAX_LAG: usize = 2200;

fn aac_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aac")
}

/// `expected.json`'s entry for one fixture; panics (never skips) when missing.
fn expected(name: &str) -> Value {
    let path = aac_dir().join("expected.json");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run fixtures/make_aac_fixtures.py)", path.display()));
    let all: Value = serde_json::from_str(&text).unwrap();
    let file = all["files"][name].clone();
    assert!(file.is_object(), "{name} missing from expected.json");
    assert!(aac_dir().join(name).is_file(), "fixture {name} missing (run fixtures/make_aac_fixtures.py)");
    file
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Mirror of `synth()` in make_aac_fixtures.py: for tau = t - start in [0, dur),
/// phase = 2 pi (f1 tau + (f0 - f1) T (1 - exp(-tau/T))) + f0 depth (1 - cos(2 pi r tau)) / r,
/// env = min(1, tau/attack, (dur - tau)/attack) exp(-decay tau),
/// out[c] += gains[c] env sum_k amp_k sin(ratio_k phase).
fn synth(notes: &Value, rate: u32, frames: usize, channels: usize) -> Audio {
    let mut out = vec![vec![0.0f64; frames]; channels];
    for n in notes.as_array().unwrap() {
        let [start, dur, f0, f1, tau_c, vib_rate, vib_depth, attack, decay] =
            ["start", "dur", "f0", "f1", "tau", "vib_rate", "vib_depth", "attack", "decay"].map(|k| num(&n[k]));
        let partials: Vec<(f64, f64)> =
            n["partials"].as_array().unwrap().iter().map(|p| (num(&p[0]), num(&p[1]))).collect();
        let gains: Vec<f64> = n["gains"].as_array().unwrap().iter().map(num).collect();
        assert_eq!(gains.len(), channels);
        let wave = (0..frames).map(|i| {
            let tau = i as f64 / f64::from(rate) - start;
            if !(0.0..dur).contains(&tau) {
                return 0.0;
            }
            let mut phase = TAU * (f1 * tau + (f0 - f1) * tau_c * (1.0 - (-tau / tau_c).exp()));
            if vib_rate > 0.0 {
                phase += f0 * vib_depth * (1.0 - (TAU * vib_rate * tau).cos()) / vib_rate;
            }
            let env = 1f64.min(tau / attack).min((dur - tau) / attack) * (-decay * tau).exp();
            env * partials.iter().map(|(r, a)| a * (r * phase).sin()).sum::<f64>()
        });
        for (i, w) in wave.enumerate() {
            for (ch, g) in out.iter_mut().zip(&gains) {
                ch[i] += g * w;
            }
        }
    }
    Audio { sample_rate: rate, channels: out.into_iter().map(|c| c.into_iter().map(|x| x as f32).collect()).collect() }
}

/// One stream of a fixture as the generator made it.
struct Reference {
    name: String,
    audio: Audio,
    /// SNR of FFmpeg's own decode of this stream against `audio`.
    ffmpeg_snr_db: f64,
}

/// Reference signals of a fixture's streams at `rate`, checked against the generator's
/// RMS and peak so that the Rust mirror of the formula cannot drift from the Python one.
fn references(name: &str, rate: u32) -> Vec<Reference> {
    let e = expected(name);
    let (channels, frames) = (e["channels"].as_u64().unwrap() as usize, e["frames"].as_u64().unwrap() as usize);
    let frames = (frames as u64 * u64::from(rate) / e["rate"].as_u64().unwrap()) as usize;
    e["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let label = s["name"].as_str().unwrap().to_string();
            let a = synth(&s["notes"], rate, frames, channels);
            let rms: Vec<f64> = a.channels.iter().map(|c| rms(c)).collect();
            for (c, (got, want)) in rms.iter().zip(s["rms"].as_array().unwrap()).enumerate() {
                let want = num(want);
                assert!((got - want).abs() < 1e-3 * want, "{name} {label} ch{c}: synth RMS {got}, generator {want}");
            }
            let want_peak = num(&s["peak"]);
            assert!((f64::from(a.peak()) - want_peak).abs() < 1e-3 * want_peak, "{name} {label} peak");
            Reference { name: label, audio: a, ffmpeg_snr_db: num(&s["ffmpeg_snr_db"]) }
        })
        .collect()
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Signal-to-error ratio of `got` against `reference`, in dB, all channels.
fn snr_db(reference: &Audio, got: &Audio) -> f64 {
    assert_eq!(reference.n_channels(), got.n_channels());
    assert_eq!(reference.frames(), got.frames());
    let (mut sig, mut err) = (0.0, 0.0);
    for (r, g) in reference.channels.iter().zip(&got.channels) {
        for (&r, &g) in r.iter().zip(g) {
            sig += f64::from(r).powi(2);
            err += f64::from(r - g).powi(2);
        }
    }
    10.0 * (sig / err.max(1e-30)).log10()
}

/// Normalised correlation of two equally shaped signals, all channels.
fn correlation(a: &Audio, b: &Audio) -> f64 {
    let dot = |x: &Audio, y: &Audio| -> f64 {
        x.channels.iter().zip(&y.channels).flat_map(|(p, q)| p.iter().zip(q)).map(|(&p, &q)| f64::from(p * q)).sum()
    };
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
}

/// Lag (frames `got` is late, negative: early) that maximises the cross-correlation
/// of the channel sums, searched over +-MAX_LAG.
fn best_lag(reference: &Audio, got: &Audio) -> i64 {
    let mono =
        |a: &Audio| -> Vec<f64> { (0..a.frames()).map(|i| a.channels.iter().map(|c| f64::from(c[i])).sum()).collect() };
    let (r, g) = (mono(reference), mono(got));
    let lag_max = MAX_LAG as i64;
    (-lag_max..=lag_max)
        .max_by(|&a, &b| {
            let xc = |lag: i64| -> f64 {
                let (r0, g0) = if lag >= 0 { (0, lag as usize) } else { ((-lag) as usize, 0) };
                r[r0..].iter().zip(&g[g0..]).map(|(x, y)| x * y).sum()
            };
            xc(a).total_cmp(&xc(b))
        })
        .unwrap()
}

/// SNR floors: AAC is lossy, and FFmpeg's encoder at these bit rates leaves 12-45 dB
/// (`ffmpeg_snr_db` in expected.json). symphonia's decode must come within this
/// margin of FFmpeg's own decoder, and never below the absolute floor.
const MARGIN_DB: f64 = 0.5;
const FLOOR_DB: f64 = 10.0;

/// Shape, alignment and content of one decoded stream against its reference.
fn assert_decoded(label: &str, reference: &Reference, got: &Audio, margin_db: f64) {
    assert_matches(label, &reference.audio, got, (reference.ffmpeg_snr_db - margin_db).max(FLOOR_DB));
}

/// Shape, alignment (best lag 0) and SNR above `min_snr_db`.
fn assert_matches(label: &str, reference: &Audio, got: &Audio, min_snr_db: f64) {
    assert_eq!(got.sample_rate, reference.sample_rate, "{label}: sample rate");
    assert_eq!(got.n_channels(), reference.n_channels(), "{label}: channels");
    assert_eq!(got.frames(), reference.frames(), "{label}: frames (priming/padding not trimmed?)");
    let lag = best_lag(reference, got);
    assert_eq!(lag, 0, "{label}: decoded audio is {lag} frames late");
    let snr = snr_db(reference, got);
    eprintln!("{label}: SNR {snr:.2} dB (floor {min_snr_db:.2} dB)");
    assert!(snr > min_snr_db, "{label}: SNR {snr:.1} dB <= {min_snr_db} dB");
}

#[test]
fn stereo_m4a_decodes_gaplessly_and_faithfully() {
    let refs = references("stereo.m4a", 44_100);
    let got = decode_file(&aac_dir().join("stereo.m4a")).unwrap();
    assert_eq!((got.sample_rate, got.n_channels(), got.frames()), (44_100, 2, 22_050));
    assert_decoded("stereo.m4a", &refs[0], &got, MARGIN_DB);
    // The channels are not swapped or merged: each is closest to its own reference.
    let r = &refs[0].audio;
    for c in 0..2 {
        let one = |a: &Audio, ch: usize| Audio { sample_rate: a.sample_rate, channels: vec![a.channels[ch].clone()] };
        let (own, other) = (snr_db(&one(r, c), &one(&got, c)), snr_db(&one(r, 1 - c), &one(&got, c)));
        assert!(own > other + 6.0, "channel {c}: SNR {own:.1} dB vs the other channel's {other:.1} dB");
    }
}

#[test]
fn mono_48k_m4a_decodes_and_resamples_to_44k1() {
    let path = aac_dir().join("mono48k.m4a");
    let refs = references("mono48k.m4a", 48_000);
    let got = decode_file(&path).unwrap();
    assert_eq!((got.sample_rate, got.n_channels(), got.frames()), (48_000, 1, 24_000));
    assert_decoded("mono48k.m4a", &refs[0], &got, MARGIN_DB);

    // Through the loader, resampled: the resampler may cost a little on top of the codec.
    let loaded = AudioLoader::new(Some(44_100), None).load(&path).unwrap();
    assert_eq!((loaded.source_rate, loaded.source_frames), (48_000, 24_000));
    let refs = references("mono48k.m4a", 44_100);
    assert_decoded("mono48k.m4a at 44.1 kHz", &refs[0], &loaded.audio, 1.0);
}

#[test]
fn stem_mp4_decodes_five_aligned_streams_in_musdb_order() {
    let refs = references(STEM_MP4, 44_100);
    assert_eq!(refs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), MUSDB_ORDER);
    let streams = decode_streams(&aac_dir().join(STEM_MP4), None).unwrap();
    assert_eq!(streams.len(), 5);
    for (i, (got, reference)) in streams.iter().zip(&refs).enumerate() {
        let label = &reference.name;
        assert_eq!((got.sample_rate, got.n_channels(), got.frames()), (44_100, 2, 26_460), "stream {i}");
        assert_decoded(&format!("stem.mp4 stream {i} ({label})"), reference, got, MARGIN_DB);
        // Stream order: each stream resembles its own stem far more than any other.
        // (The mixture, stream 0, resembles all of them and is checked below.)
        let own = correlation(&reference.audio, got);
        assert!(own > 0.95, "stream {i} ({label}): correlation {own:.3} with its own reference");
        for (j, other) in refs.iter().enumerate().filter(|&(j, _)| j != i && i != 0 && j != 0) {
            let cross = correlation(&other.audio, got);
            assert!(cross.abs() < 0.5, "stream {i} ({label}) correlates {cross:.3} with {} (stream {j})", other.name);
        }
    }
    // decode_file reads only the first stream, the mixture.
    assert_eq!(decode_file(&aac_dir().join(STEM_MP4)).unwrap(), streams[0]);
    // The mixture stream is the sum of the four stems (each coded separately, so
    // their coding errors add up: well below the single streams' SNR, far above 0).
    let mut sum = streams[1].clone();
    for s in &streams[2..] {
        sum.add_assign(s);
    }
    let snr = snr_db(&streams[0], &sum);
    eprintln!("mixture vs sum of decoded stems: {snr:.2} dB");
    assert!(snr > 15.0, "mixture vs sum of decoded stems: {snr:.1} dB");
}

#[test]
fn stem_mp4_is_discovered_and_loaded_as_a_musdb_track() {
    let root = aac_dir().join("musdb");
    let (entries, problems) = discover(&DataSpec { role: None, path: root.clone() });
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry.name, "test/Synth Artist - Test Song.stem.mp4");
    assert_eq!(entry.split.as_deref(), Some("test"));
    assert_eq!(entry.kind(), "stem.mp4");
    assert_eq!(entry.source, Source::StemMp4(root.join("test/Synth Artist - Test Song.stem.mp4")));

    let Loaded::Track(track) = load_entry(entry, &AudioLoader::new(None, None)).unwrap() else {
        panic!("a .stem.mp4 loads as a track");
    };
    assert_eq!(track.source_rate, 44_100);
    let streams = decode_streams(&aac_dir().join(STEM_MP4), None).unwrap();
    // vocals = stream 4; accompaniment = drums + bass + other (streams 1..4), the mixture unused.
    assert_eq!(track.vocals, streams[4]);
    let mut acc = streams[1].clone();
    acc.add_assign(&streams[2]);
    acc.add_assign(&streams[3]);
    assert_eq!(track.accompaniment, acc);

    // Against the sources: vocals as well as stream 4 decodes; the sums somewhere
    // between their parts (the sum's SNR depends on how the parts' errors add up).
    let refs = references(STEM_MP4, 44_100);
    let mut acc_ref = refs[1].audio.clone();
    acc_ref.add_assign(&refs[2].audio);
    acc_ref.add_assign(&refs[3].audio);
    assert_decoded("track vocals", &refs[4], &track.vocals, MARGIN_DB);
    assert_matches("track accompaniment", &acc_ref, &track.accompaniment, 18.0);
    assert_matches("track mixture", &refs[0].audio, &track.mixture(), 15.0);
}

/// Runs the binary; returns (success, stdout + stderr).
fn isola(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_isola")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn data_check_lists_stem_mp4_and_m4a_sources() {
    let musdb = aac_dir().join("musdb");
    let (ok, out) = isola(&["data", "check", "--quiet", musdb.to_str().unwrap()]);
    assert!(ok, "{out}");
    let row = out.lines().find(|l| l.contains("test/Synth Artist - Test Song.stem.mp4 [test]")).unwrap_or_else(|| {
        panic!("no row for the .stem.mp4 in:\n{out}");
    });
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[..5], ["stem.mp4", "0:00.6", "44100", "Hz", "2"], "{row}");
    assert!(out.contains("no problems found"), "{out}");

    // m4a files as loose sources, one at 48 kHz mono.
    let d = tempfile::tempdir().unwrap();
    for (dir, file) in [("vocals", "mono48k.m4a"), ("instrumental", "stereo.m4a")] {
        fs::create_dir_all(d.path().join(dir)).unwrap();
        fs::copy(aac_dir().join(file), d.path().join(dir).join(file)).unwrap();
    }
    let (ok, out) = isola(&["data", "check", "--quiet", d.path().to_str().unwrap()]);
    assert!(ok, "{out}");
    for (kind, rate, ch, name) in
        [("vocals", "48000", "1", "vocals/mono48k.m4a"), ("instrumental", "44100", "2", "instrumental/stereo.m4a")]
    {
        let row = out.lines().find(|l| l.ends_with(name)).unwrap_or_else(|| panic!("no row for {name} in:\n{out}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols, [kind, "0:00.5", rate, "Hz", ch, name], "{row}");
    }
    assert!(out.contains("no problems found"), "{out}");
}

/// The first `fraction` of fixture `name`'s bytes, written to `dst`.
fn truncated_copy(name: &str, dst: &Path, fraction: f64) {
    let bytes = fs::read(aac_dir().join(name)).unwrap();
    fs::create_dir_all(dst.parent().unwrap()).unwrap();
    fs::write(dst, &bytes[..(bytes.len() as f64 * fraction) as usize]).unwrap();
}

#[test]
fn truncated_m4a_and_stem_mp4_are_errors_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    // stereo.m4a has its index (moov) first: the cut loses audio packets.
    // mono48k.m4a has it last: the cut loses the index.
    for (name, fraction) in [("stereo.m4a", 0.6), ("stereo.m4a", 0.97), ("mono48k.m4a", 0.6)] {
        let path = d.path().join(format!("cut-{fraction}-{name}"));
        truncated_copy(name, &path, fraction);
        let e = decode_file(&path).expect_err(&format!("{} decoded", path.display()));
        assert_eq!(e.path, path);
        let msg = e.to_string();
        eprintln!("{msg}");
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("truncated") || msg.contains("corrupt"), "{msg}");
    }

    let bad = d.path().join("musdb/train/Bad Song.stem.mp4");
    truncated_copy(STEM_MP4, &bad, 0.7);
    let root = d.path().join("musdb");
    let (ok, out) = isola(&["data", "check", "--quiet", root.to_str().unwrap()]);
    assert!(!ok, "a truncated .stem.mp4 passed:\n{out}");
    let line = out.lines().find(|l| l.contains("Bad Song.stem.mp4:")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(&bad.display().to_string()) && line.contains("truncated"), "{line}");
    assert!(out.contains("1 problem(s)"), "{out}");
}
