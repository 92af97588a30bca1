//! The mistakes a newcomer makes in the first hour (found by a first-hour test with a new
//! user) get messages that say what to do, and leave nothing behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use isola_trainer::audio::wav::write_wav;
use isola_trainer::synth;
use isola_trainer::train::RunOptions;
use isola_trainer::train::config::TrainConfig;

const BIN: &str = env!("CARGO_BIN_EXE_isola");

/// (success, stdout + stderr).
fn isola(args: &[&str]) -> (bool, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A data set of 3 tracks (2 train, 1 test) and a finished 2-step run: its run folder.
fn tiny_run(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    for k in 0..3u64 {
        let split = if k < 2 { "train" } else { "test" };
        let t = synth::track(8000, 3.0, 300 + k);
        write_wav(&data.join(format!("{split}/s{k}/vocals.wav")), &t.vocals).unwrap();
        write_wav(&data.join(format!("{split}/s{k}/accompaniment.wav")), &t.accompaniment).unwrap();
    }
    let mut c = TrainConfig {
        data: vec![s(&data).to_string()],
        out: dir.join("run"),
        cache: Some(dir.join(".cache")),
        hidden: 16,
        gru_layers: 1,
        batch_size: 2,
        chunk_seconds: 1.0,
        steps_per_epoch: 2,
        epochs: 1,
        val_chunks: 2,
        ..Default::default()
    };
    (c.stft.sample_rate, c.stft.fft_size, c.stft.hop) = (8000, 256, 64);
    isola_trainer::train::run(c, false, RunOptions::quiet()).unwrap().finished();
    dir.join("run")
}

#[test]
fn a_newcomers_mistakes_get_messages_that_say_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let run = tiny_run(d.path());
    let ck = run.join("checkpoint.safetensors");

    // A training checkpoint where weights are wanted: export it first.
    for args in
        [vec!["separate", s(&ck), "--weights", s(&ck), "--out", s(&d.path().join("stems"))], vec!["info", s(&ck)]]
    {
        let (ok, log) = isola(&args);
        let want = format!(
            "{} is a training checkpoint, not weights: export it first (isola export {}",
            ck.display(),
            ck.display()
        );
        assert!(!ok && log.contains(&want), "{args:?}: {log}");
    }
    // Exported weights where a checkpoint is wanted: they already are what export makes.
    let weights = d.path().join("mine.safetensors");
    assert!(isola(&["export", s(&ck), "-o", s(&weights)]).0);
    let (ok, log) = isola(&["export", s(&weights), "-o", s(&d.path().join("again.safetensors"))]);
    assert!(
        !ok && log.contains("these are exported weights (what isola export makes), not a training checkpoint"),
        "{log}"
    );
    // A misspelt `default`.
    let (ok, log) =
        isola(&["train", "--init", "defualt", "--data", s(&d.path().join("data")), "--out", s(&d.path().join("x"))]);
    assert!(!ok && log.contains("`default` names the built-in weights"), "{log}");

    // Failed train commands leave no run folder, and --resume needs --out.
    let typo = d.path().join("runs/ttty");
    let (ok, log) = isola(&["train", "--resume", "--out", s(&typo)]);
    assert!(!ok && log.contains("checkpoint"), "{log}");
    assert!(!typo.exists() && !typo.parent().unwrap().exists(), "a failed --resume created {}", typo.display());
    let (ok, log) = isola(&["train", "--resume"]);
    assert!(!ok && log.contains("--resume needs the run folder to continue: --out DIR"), "{log}");
    let (ok, log) = isola(&["train", "--data", s(&d.path().join("no-such-data")), "--out", s(&typo)]);
    assert!(!ok && !typo.exists(), "{log}");
    assert!(!d.path().join("x").exists(), "the --init typo left a folder");

    // eval with a misspelt split names the split folders it found.
    let (ok, log) =
        isola(&["eval", "--data", s(&d.path().join("data")), "--split", "tets", "-o", s(&d.path().join("e"))]);
    assert!(!ok && log.contains("no tracks in split folder \"tets\" (split folders found: test, train)"), "{log}");

    // separate given a folder.
    let folder = d.path().join("data/test");
    let (ok, log) = isola(&["separate", s(&folder), "--out", s(&d.path().join("stems"))]);
    let want = format!("{} is a folder: pass the audio files in it", folder.display());
    assert!(!ok && log.contains(&want), "{log}");
}
