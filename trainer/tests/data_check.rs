//! `isola data check` and the loaders on small data sets written at test
//! time: the layouts are found, and every kind of bad input is an error that
//! names the file and the problem, with a non-zero exit (or a printed list
//! under --skip-bad).

use std::fs;
use std::path::Path;
use std::process::Command;

use isola_trainer::audio::Audio;
use isola_trainer::audio::cache::AudioLoader;
use isola_trainer::audio::wav::{write_wav, write_wav_i16};
use isola_trainer::data::{DataSpec, LoadOptions, discover, load_entries};
use isola_trainer::synth;

const RATE: u32 = 16_000;

fn stems(dir: &Path, seed: u64, secs: f64) {
    let t = synth::track(RATE, secs, seed);
    write_wav(&dir.join("vocals.wav"), &t.vocals).unwrap();
    write_wav_i16(&dir.join("accompaniment.wav"), &t.accompaniment).unwrap();
}

/// Runs the binary; returns (success, stdout + stderr).
fn isola(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_isola")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn check(dir: &Path) -> (bool, String) {
    isola(&["data", "check", "--quiet", dir.to_str().unwrap()])
}

#[test]
fn good_data_in_every_layout_passes() {
    let d = tempfile::tempdir().unwrap();
    // MUSDB18-HQ: accompaniment = drums + bass + other; mixture ignored.
    let hq = d.path().join("musdb/train/Song A");
    let t = synth::track(RATE, 1.5, 1);
    write_wav(&hq.join("vocals.wav"), &t.vocals).unwrap();
    write_wav(&hq.join("mixture.wav"), &t.vocals).unwrap();
    for stem in ["drums", "bass", "other"] {
        write_wav(&hq.join(format!("{stem}.wav")), &t.accompaniment).unwrap();
    }
    stems(&d.path().join("tracks/t1"), 2, 2.0);
    write_wav(&d.path().join("vocals/v1.wav"), &synth::track(RATE, 1.0, 3).vocals).unwrap();
    write_wav(&d.path().join("instrumental/i1.wav"), &synth::track(RATE, 1.0, 4).accompaniment).unwrap();

    let (ok, out) = check(d.path());
    assert!(ok, "{out}");
    for needle in [
        "musdb/train/Song A [train]",
        "tracks/t1",
        "vocals/v1.wav",
        "instrumental/i1.wav",
        "no problems found",
        "16000 Hz",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(out.contains("0:02.0"), "t1 lasts 2 s:\n{out}");

    // The loader sums drums + bass + other.
    let specs: DataSpec = d.path().to_str().unwrap().parse().unwrap();
    let (entries, problems) = discover(&specs);
    let data = load_entries(&entries, problems, &AudioLoader::new(Some(RATE), None), LoadOptions::default()).unwrap();
    assert_eq!((data.tracks.len(), data.vocals.len(), data.instrumentals.len()), (2, 1, 1));
    let song = data.tracks.iter().find(|t| t.name == "musdb/train/Song A").unwrap();
    let mut three = t.accompaniment.clone();
    three.scale(3.0);
    let err =
        song.accompaniment.channels[0].iter().zip(&three.channels[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(err < 1e-6, "accompaniment is the sum of the stems ({err})");
    assert_eq!(song.split.as_deref(), Some("train"));
}

#[test]
fn mismatched_stems_are_errors_naming_the_files() {
    let d = tempfile::tempdir().unwrap();
    let long = d.path().join("long");
    stems(&long, 1, 1.0);
    write_wav(&long.join("accompaniment.wav"), &Audio::silence(RATE, 2, 15_000)).unwrap();
    let (ok, out) = check(&long);
    assert!(!ok, "{out}");
    assert!(
        out.contains("different lengths")
            && out.contains("vocals.wav 16000 samples")
            && out.contains("accompaniment.wav 15000 samples"),
        "{out}"
    );

    let rate = d.path().join("rate");
    stems(&rate, 1, 1.0);
    write_wav(&rate.join("accompaniment.wav"), &Audio::silence(22_050, 2, 16_000)).unwrap();
    let (ok, out) = check(&rate);
    assert!(!ok);
    assert!(out.contains("different sample rates") && out.contains("22050 Hz"), "{out}");
}

#[test]
fn corrupt_nan_and_empty_inputs_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let corrupt = d.path().join("corrupt");
    stems(&corrupt, 1, 1.0);
    fs::write(corrupt.join("vocals.wav"), b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
    let (ok, out) = check(&corrupt);
    assert!(!ok);
    assert!(out.contains("corrupt/vocals.wav: unrecognised or corrupt"), "{out}");

    let truncated = d.path().join("truncated");
    fs::create_dir_all(&truncated).unwrap();
    let flac = fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tone.flac")).unwrap();
    fs::write(truncated.join("vocals.flac"), &flac[..flac.len() / 2]).unwrap();
    fs::write(truncated.join("accompaniment.flac"), &flac).unwrap();
    let (ok, out) = check(&truncated);
    assert!(!ok, "a half file must not pass:\n{out}");
    assert!(out.contains("truncated/vocals.flac: truncated or corrupt"), "{out}");

    let nan = d.path().join("nan");
    stems(&nan, 1, 1.0);
    let mut bad = Audio::silence(RATE, 2, 16_000);
    bad.channels[1][1234] = f32::NAN;
    write_wav(&nan.join("vocals.wav"), &bad).unwrap();
    let (ok, out) = check(&nan);
    assert!(!ok);
    assert!(out.contains("nan/vocals.wav: non-finite sample (NaN or Inf) in stream 0, channel 1, frame 1234"), "{out}");

    let empty = d.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let (ok, out) = check(&empty);
    assert!(!ok);
    assert!(out.contains("empty: no audio found"), "{out}");

    let zero = d.path().join("zero");
    stems(&zero, 1, 1.0);
    write_wav(&zero.join("vocals.wav"), &Audio::silence(RATE, 2, 0)).unwrap();
    let (ok, out) = check(&zero);
    assert!(!ok);
    assert!(out.contains("zero/vocals.wav"), "{out}");
}

#[test]
fn skip_bad_lists_what_it_skips() {
    let d = tempfile::tempdir().unwrap();
    stems(&d.path().join("good"), 1, 1.0);
    stems(&d.path().join("bad"), 2, 1.0);
    fs::write(d.path().join("bad/vocals.wav"), b"not audio at all").unwrap();

    let (ok, out) = check(d.path());
    assert!(!ok, "{out}");
    let (ok, out) = isola(&["data", "check", "--quiet", "--skip-bad", d.path().to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("bad/vocals.wav") && out.contains("--skip-bad"), "{out}");

    let spec: DataSpec = d.path().to_str().unwrap().parse().unwrap();
    let (entries, problems) = discover(&spec);
    let loader = AudioLoader::new(Some(RATE), None);
    let err = load_entries(&entries, problems.clone(), &loader, LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("bad/vocals.wav"), "{err}");
    let data = load_entries(&entries, problems, &loader, LoadOptions { skip_bad: true, ..Default::default() }).unwrap();
    assert_eq!(data.tracks.len(), 1);
    assert_eq!(data.skipped.len(), 1);
    assert!(data.skipped[0].to_string().contains("bad/vocals.wav"));
}
