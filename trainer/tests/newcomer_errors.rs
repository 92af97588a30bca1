//! The mistakes a newcomer makes in the first hour (found by a first-hour test with a new
//! user) get messages that say what to do, and leave nothing behind.

use std::path::Path;
use std::process::Command;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_isola");

/// (success, stdout + stderr).
fn isola(args: &[&str]) -> (bool, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_newcomers_mistakes_get_messages_that_say_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    let run = common::tiny_run(d.path());
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
