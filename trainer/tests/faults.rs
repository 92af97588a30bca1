//! Nothing lost, nothing partial: `isola separate` and `isola export` under a full disk, kills
//! at random points, bad inputs in a batch, existing outputs and odd names. Every input is
//! synthesised here; the full disk is a real tmpfs mounted in a private mount namespace.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use isola_trainer::audio::Audio;
use isola_trainer::audio::decode::decode_file;
use isola_trainer::audio::wav::{TRACK_STEMS, write_wav};
use isola_trainer::synth;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_isola");
const RATE: u32 = 22_050;

fn isola(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (out.status.success(), text(&out))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mixture(seconds: f64, seed: u64) -> Audio {
    let t = synth::track(RATE, seconds, seed);
    let mut mix = t.vocals.clone();
    mix.add_assign(&t.accompaniment);
    mix
}

/// Every entry of `dir`, hidden ones included, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// The stems of a track folder as bytes, in [`TRACK_STEMS`] order.
fn pair(dir: &Path) -> Vec<Vec<u8>> {
    TRACK_STEMS.iter().map(|n| std::fs::read(dir.join(n)).unwrap()).collect()
}

/// A complete pair: both stems decode, with the input's length and channels.
fn assert_complete(dir: &Path, input: &Audio, what: &str) {
    assert_eq!(listing(dir), {
        let mut v: Vec<String> = TRACK_STEMS.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    });
    for n in TRACK_STEMS {
        let a = decode_file(&dir.join(n)).unwrap_or_else(|e| panic!("{what}: {n}: {e}"));
        assert_eq!((a.n_channels(), a.frames()), (input.n_channels(), input.frames()), "{what}: {n}");
    }
}

#[test]
fn a_batch_goes_on_past_bad_inputs_and_lists_them_with_their_reasons() {
    let d = tempfile::tempdir().unwrap();
    let mix = mixture(0.5, 3);
    for name in ["good.wav", "good2.wav", ".wav", "other/good.flac.wav"] {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        write_wav(&p, &mix).unwrap();
    }
    std::fs::write(d.path().join("bad.wav"), b"RIFF but not a wav").unwrap();
    let out = d.path().join("out");
    let inputs = ["good.wav", "bad.wav", "missing.wav", "good2.wav", ".wav", "other/good.flac.wav"];
    let mut args = vec!["separate".to_string(), "-q".into(), "--out".into(), s(&out).into()];
    args.extend(inputs.iter().map(|n| s(&d.path().join(n)).to_string()));
    let o = Command::new(BIN).args(&args).output().unwrap();
    let log = text(&o);
    assert_eq!(o.status.code(), Some(1), "{log}");
    // The good inputs were all separated, after the bad ones, into their documented folders:
    // `.wav` -> `wav`; `good.flac.wav` -> `good.flac`.
    assert_eq!(listing(&out), ["good", "good.flac", "good2", "wav"], "{log}");
    for name in ["good", "good2", "wav", "good.flac"] {
        assert_complete(&out.join(name), &mix, name);
    }
    let summary = log.split("2 of 6 inputs failed:").nth(1).unwrap_or_else(|| panic!("no summary: {log}"));
    assert!(summary.contains("bad.wav") && summary.contains("missing.wav"), "{summary}");
    assert!(summary.contains("No such file"), "the reason is given: {summary}");
}

#[test]
fn colliding_names_get_numbered_folders_and_existing_ones_need_overwrite() {
    let d = tempfile::tempdir().unwrap();
    let (short, long) = (mixture(0.5, 4), mixture(0.8, 5));
    write_wav(&d.path().join("a/song.wav"), &short).unwrap();
    write_wav(&d.path().join("b/Song.wav"), &long).unwrap();
    let out = d.path().join("out");
    let (a, b) = (d.path().join("a/song.wav"), d.path().join("b/Song.wav"));
    let (ok, log) = isola(&["separate", s(&a), s(&b), "--out", s(&out)]);
    assert!(ok, "{log}");
    assert!(log.contains("-> ") && log.contains("Song-2"), "{log}");
    assert_complete(&out.join("song"), &short, "song");
    assert_complete(&out.join("Song-2"), &long, "Song-2");
    let before = pair(&out.join("song"));

    // A second run with a different input of the same name: refused, nothing touched.
    let c = d.path().join("c/song.wav");
    write_wav(&c, &long).unwrap();
    let (ok, log) = isola(&["separate", "-q", s(&c), "--out", s(&out)]);
    assert!(!ok && log.contains("already exists") && log.contains("--overwrite"), "{log}");
    assert_eq!(pair(&out.join("song")), before, "the earlier stems are untouched");

    // --overwrite replaces the pair as a whole.
    let (ok, log) = isola(&["separate", "--overwrite", s(&c), "--out", s(&out)]);
    assert!(ok && log.contains("(replaced)"), "{log}");
    assert_complete(&out.join("song"), &long, "replaced");

    // A folder holding anything else is never replaced.
    std::fs::write(out.join("song/notes.txt"), b"mine").unwrap();
    let (ok, log) = isola(&["separate", "-q", "--overwrite", s(&a), "--out", s(&out)]);
    assert!(!ok && log.contains("notes.txt") && log.contains("not replacing"), "{log}");
    assert_eq!(std::fs::read(out.join("song/notes.txt")).unwrap(), b"mine");
    assert_eq!(listing(&out), ["Song-2", "song"], "no temporaries left");
}

#[test]
fn clamped_input_is_reported_once_per_file_with_where() {
    let d = tempfile::tempdir().unwrap();
    let mut mix = mixture(1.0, 6);
    for (c, i, x) in [(1, 11_025, 2000.0), (0, 15_000, -50.0), (1, 20_000, 40.0)] {
        mix.channels[c][i] = x;
    }
    let hot = d.path().join("hot.wav");
    write_wav(&hot, &mix).unwrap();
    let (ok, log) = isola(&["separate", "-q", s(&hot), "--out", s(&d.path().join("out"))]);
    assert!(ok, "{log}");
    assert_eq!(log.matches("samples beyond").count(), 1, "once per file: {log}");
    assert!(
        log.contains("hot.wav: 3 samples beyond ±31.6") && log.contains("0.500 s (frame 11025, channel 2)"),
        "{log}"
    );
}

/// Runs `script` with sh in a private user and mount namespace (`unshare -rm`), where it may
/// mount a tmpfs: a real full disk without touching the machine. Fails, never skips, where
/// the platform cannot.
#[cfg(target_os = "linux")]
fn in_mount_namespace(script: &str, env: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", script]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o =
        cmd.output().expect("this test needs util-linux `unshare` (user and mount namespaces) to mount a small tmpfs");
    let log = text(&o);
    assert!(o.status.success(), "the namespace script failed (are user namespaces allowed?): {log}");
    log
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_leaves_no_partial_stems_and_keeps_the_earlier_pair() {
    let d = tempfile::tempdir().unwrap();
    // One stem of 1 s at 22.05 kHz stereo, float: 176 kB; of 4 s: 706 kB.
    let (short, long) = (mixture(1.0, 7), mixture(4.0, 8));
    write_wav(&d.path().join("short/song.wav"), &short).unwrap();
    write_wav(&d.path().join("long/song.wav"), &long).unwrap();
    write_wav(&d.path().join("other.wav"), &long).unwrap();
    // 0.3 s: its pair fits in what the short pair leaves free.
    write_wav(&d.path().join("tiny.wav"), &mixture(0.3, 11)).unwrap();
    // 600 kB: the short pair fits, the long vocals stem does not. 1300 kB: the long vocals
    // stem fits beside the short pair, its accompaniment does not.
    for size_kb in [600, 1300] {
        let keep = d.path().join(format!("keep-{size_kb}"));
        let mnt = d.path().join(format!("mnt-{size_kb}"));
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        let script = format!(
            r#"mount -t tmpfs -o size={size_kb}k tmpfs "$MNT" || exit 97
"$ISOLA" separate -q "$D/short/song.wav" --out "$MNT/out"; echo "first=$?"
cp -a "$MNT/out" "$KEEP/first"
"$ISOLA" separate -q --overwrite "$D/long/song.wav" --out "$MNT/out"; echo "second=$?"
cp -a "$MNT/out" "$KEEP/second"
"$ISOLA" separate -q "$D/other.wav" --out "$MNT/out"; echo "third=$?"
cp -a "$MNT/out" "$KEEP/third"
"$ISOLA" separate -q "$D/tiny.wav" --out "$MNT/out"; echo "again=$?"
"#
        );
        let log =
            in_mount_namespace(&script, &[("ISOLA", Path::new(BIN)), ("MNT", &mnt), ("KEEP", &keep), ("D", d.path())]);
        assert!(log.contains("first=0"), "{log}");
        assert!(log.contains("second=1") && log.contains("third=1"), "{log}");
        assert!(log.contains("No space left on device"), "the disk was really full: {log}");
        assert!(log.contains("again=0"), "the failed runs left no temporaries taking space: {log}");
        assert_complete(&keep.join("first/song"), &short, "first");
        let earlier = pair(&keep.join("first/song"));
        for step in ["second", "third"] {
            assert_eq!(listing(&keep.join(step)), ["song"], "{size_kb} kB, {step}: no partial or temporary files");
            assert_eq!(pair(&keep.join(step).join("song")), earlier, "{size_kb} kB, {step}: earlier pair intact");
        }
    }
}

/// Starts `args`, kills it (SIGKILL) after `delay`, and returns whether it had already ended.
fn kill_after(args: &[&str], delay: Duration) -> bool {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let ended = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    child.wait().unwrap();
    ended
}

#[test]
fn kills_at_random_points_of_separate_and_export_leave_no_partial_output() {
    let d = tempfile::tempdir().unwrap();
    let (first, second) = (mixture(3.0, 9), mixture(12.0, 10));
    write_wav(&d.path().join("a/song.wav"), &first).unwrap();
    write_wav(&d.path().join("b/song.wav"), &second).unwrap();
    let out = d.path().join("out");
    let (a, b) = (d.path().join("a/song.wav"), d.path().join("b/song.wav"));
    let (ok, log) = isola(&["separate", "-q", s(&a), "--out", s(&out)]);
    assert!(ok, "{log}");
    let earlier = pair(&out.join("song"));
    // How long an uninterrupted replacing run takes: the kills land anywhere inside it.
    let t0 = Instant::now();
    let (ok, log) = isola(&["separate", "-q", "--overwrite", s(&b), "--out", s(&d.path().join("timing"))]);
    assert!(ok, "{log}");
    let full = t0.elapsed();
    let newer = pair(&d.path().join("timing/song"));

    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let (mut old_seen, mut new_seen) = (0, 0);
    for k in 0..12 {
        let delay = full.mul_f64(rng.random_range(0.0..1.2));
        kill_after(&["separate", "-q", "--overwrite", s(&b), "--out", s(&out)], delay);
        // Visible: the earlier pair or the complete new one, never a mix or a torn file.
        let visible: Vec<String> = listing(&out).into_iter().filter(|n| !n.starts_with('.')).collect();
        assert_eq!(visible, ["song"], "kill {k} after {delay:?}");
        let now = pair(&out.join("song"));
        assert!(now == earlier || now == newer, "kill {k} after {delay:?}: a pair that is neither the old nor the new");
        if now == earlier {
            old_seen += 1
        } else {
            new_seen += 1
        }
        // Put the earlier pair back for the next kill.
        let (ok, log) = isola(&["separate", "-q", "--overwrite", s(&a), "--out", s(&out)]);
        assert!(ok, "the next run succeeds after kill {k}: {log}");
        assert_eq!(listing(&out), ["song"], "the next run removed the temporaries of kill {k}");
    }
    eprintln!("separate: {old_seen} kills left the earlier pair, {new_seen} the new one (full run {full:?})");

    // Export: the file is the earlier export or the new one, whole.
    let weights = d.path().join("w.safetensors");
    let light = isola_engine::embedded::light().unwrap();
    light.save(&weights).unwrap();
    // Compared by content: metadata is a map, so its byte order differs between writes.
    let content = |p: &Path| {
        let f = isola_engine::tensor_file::TensorFile::read(p).unwrap_or_else(|e| panic!("a torn weights file: {e}"));
        (f.metadata().clone(), f.tensors().unwrap())
    };
    let earlier = content(&weights);
    let train = common::tiny_run(&d.path().join("ck")).join("checkpoint.safetensors");
    let t0 = Instant::now();
    let (ok, log) = isola(&["export", s(&train), "-o", s(&d.path().join("timing.safetensors"))]);
    assert!(ok, "{log}");
    let full = t0.elapsed();
    let newer = content(&d.path().join("timing.safetensors"));
    for k in 0..12 {
        let delay = full.mul_f64(rng.random_range(0.0..1.2));
        kill_after(&["export", s(&train), "-o", s(&weights)], delay);
        let now = content(&weights);
        assert!(now == earlier || now == newer, "export kill {k} after {delay:?}: neither the old nor the new weights");
        light.save(&weights).unwrap();
    }
    let (ok, log) = isola(&["export", s(&train), "-o", s(&weights)]);
    assert!(ok && log.contains("replaced"), "{log}");
    assert_eq!(listing(d.path()).iter().filter(|n| n.starts_with('.')).count(), 0, "export removed stale temporaries");
}
