//! `isola separate`, `isola eval` and `isola info` end to end on synthetic
//! data written at test time.

use std::path::Path;
use std::process::Command;

use isola_trainer::audio::decode::decode_file;
use isola_trainer::audio::wav::write_wav;
use isola_trainer::synth;

fn isola(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_isola")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn separate_writes_aligned_full_length_stems() {
    let d = tempfile::tempdir().unwrap();
    let t = synth::track(22_050, 1.3, 21);
    let mut mix = t.vocals.clone();
    mix.add_assign(&t.accompaniment);
    write_wav(&d.path().join("song one.wav"), &mix).unwrap();
    write_wav(&d.path().join("mono.wav"), &mix.with_channels(1)).unwrap();
    let out = d.path().join("out");
    let (ok, log) =
        isola(&["separate", "-q", s(&d.path().join("song one.wav")), s(&d.path().join("mono.wav")), "--out", s(&out)]);
    assert!(ok, "{log}");
    for (name, input) in [("song one", mix.clone()), ("mono", mix.with_channels(1))] {
        let v = decode_file(&out.join(name).join("vocals.wav")).unwrap();
        let a = decode_file(&out.join(name).join("accompaniment.wav")).unwrap();
        for x in [&v, &a] {
            assert_eq!(
                (x.sample_rate, x.n_channels(), x.frames()),
                (22_050, input.n_channels(), input.frames()),
                "{name}"
            );
        }
        let mut sum = v.clone();
        sum.add_assign(&a);
        let err = sum
            .channels
            .iter()
            .flatten()
            .zip(input.channels.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-4, "{name}: stems do not add up to the input (latency left in?): {err}");
    }
    // A bad file is an error naming it.
    std::fs::write(d.path().join("junk.wav"), b"junk").unwrap();
    let (ok, log) = isola(&["separate", "-q", s(&d.path().join("junk.wav")), "--out", s(&out)]);
    assert!(!ok && log.contains("junk.wav"), "{log}");
}

#[test]
fn eval_scores_model_and_baselines_and_writes_reports() {
    let d = tempfile::tempdir().unwrap();
    for k in 0..2 {
        let t = synth::track(16_000, 3.0, 30 + k);
        write_wav(&d.path().join(format!("data/test/t{k}/vocals.wav")), &t.vocals).unwrap();
        write_wav(&d.path().join(format!("data/test/t{k}/accompaniment.wav")), &t.accompaniment).unwrap();
    }
    let t = synth::track(16_000, 3.0, 40);
    write_wav(&d.path().join("data/train/x/vocals.wav"), &t.vocals).unwrap();
    write_wav(&d.path().join("data/train/x/accompaniment.wav"), &t.accompaniment).unwrap();
    let out = d.path().join("eval");
    let data = d.path().join("data");
    let (ok, log) =
        isola(&["eval", "-q", "--data", s(&data), "--split", "test", "--input-bits", "16", "--out", s(&out)]);
    assert!(ok, "{log}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    let tracks = json["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2, "only the test split");
    let summary = json["summary"].as_array().unwrap();
    let sdr = |m: &str| summary.iter().find(|x| x["method"] == m).unwrap()["vocals_sdr"].as_f64().unwrap();
    assert!(sdr("oracle IRM") > sdr("mixture") + 6.0, "{log}");
    assert!(sdr("isola").is_finite() && sdr("mid/side").is_finite());
    // The quantised input is a different signal: its own row, scored, close to the float one.
    assert_ne!(sdr("isola, 16-bit input"), sdr("isola"));
    assert!((sdr("isola, 16-bit input") - sdr("isola")).abs() < 3.0, "{log}");
    // windows.csv: every 1 s window of every track, method and source; a track's vocals SDR
    // is the median of its windows.
    let csv = std::fs::read_to_string(out.join("windows.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(csv.lines().next(), Some("set,track,method,source,start_s,sdr_db"));
    assert_eq!(rows.len(), 2 * 5 * 2 * 3, "2 tracks, 5 methods, 2 sources, 3 windows");
    let t0 = tracks[0]["name"].as_str().unwrap();
    let mut w: Vec<f64> = rows
        .iter()
        .filter(|r| r[1] == t0 && r[2] == "isola" && r[3] == "vocals")
        .map(|r| r[5].parse().unwrap())
        .collect();
    w.sort_by(f64::total_cmp);
    let isola0 = tracks[0]["methods"].as_array().unwrap().iter().find(|m| m["method"] == "isola").unwrap();
    assert!((w[1] - isola0["scores"]["vocals"]["sdr"].as_f64().unwrap()).abs() < 1e-3, "{w:?}");
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.contains("| oracle IRM |") && md.contains("test/t1"), "{md}");
    assert!(md.contains("| isola | isola, 16-bit input | mixture |"), "{md}");
    let delta = sdr("isola, 16-bit input") - sdr("isola");
    assert!(md.contains(&format!("isola, 16-bit input: vocals SDR {delta:+.2} dB")), "{md}");
    let (ok, log) = isola(&["eval", "-q", "--data", s(&data), "--input-bits", "8", "--out", s(&out)]);
    assert!(!ok && log.contains("--input-bits") && log.contains("16, 24"), "{log}");
    // The noise-floor gate: a limit below the change fails, naming it; a wide one passes.
    let gate = |limit: &str| {
        let args = ["eval", "-q", "--data", s(&data), "--split", "test", "--input-bits", "16"];
        isola(&[&args[..], &["--max-input-change", limit, "--out", s(&out)]].concat())
    };
    let (ok, log) = gate("0");
    assert!(!ok && log.contains("isola, 16-bit input: vocals SDR changed by") && log.contains("allows 0 dB"), "{log}");
    let (ok, log) = gate("100");
    assert!(ok && log.contains("within 100 dB of float input"), "{log}");
    let png = std::fs::read(out.join("eval.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // --max-seconds scores the sung part: a track whose first 2 s have no vocals.
    let mut t = synth::track(16_000, 4.0, 50);
    t.vocals.channels.iter_mut().for_each(|c| c[..32_000].fill(0.0));
    let intro = d.path().join("intro/test/song");
    write_wav(&intro.join("vocals.wav"), &t.vocals).unwrap();
    write_wav(&intro.join("accompaniment.wav"), &t.accompaniment).unwrap();
    let (ok, log) = isola(&["eval", "--data", s(&d.path().join("intro")), "--max-seconds", "1.5", "--out", s(&out)]);
    assert!(ok && log.contains("scoring each track's 1.5 s with the most vocal energy"), "{log}");
    // Not a terminal: progress comes as plain lines (here only the last, at 100 %).
    assert!(log.contains("scoring: audio frame 24000/24000 (100.0 %)"), "{log}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    let mixture = json["summary"].as_array().unwrap().iter().find(|x| x["method"] == "mixture").unwrap();
    // On the intro the vocals are silent: every window skipped, no score (NaN is null).
    assert!(mixture["vocals_sdr"].as_f64().is_some_and(f64::is_finite), "{log}");
}

#[test]
fn eval_scores_the_worker_path_on_the_input_the_light_network_gets() {
    let d = tempfile::tempdir().unwrap();
    let t = synth::track(16_000, 3.0, 60);
    write_wav(&d.path().join("data/song/vocals.wav"), &t.vocals).unwrap();
    write_wav(&d.path().join("data/song/accompaniment.wav"), &t.accompaniment).unwrap();
    let data = d.path().join("data");
    let summary = |out: &Path, extra: &[&str]| {
        let args = ["eval", "-q", "--data", s(&data), "--worker-weights", "default", "--out", s(out)];
        let (ok, log) = isola(&[&args[..], extra].concat());
        assert!(ok, "{log}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
        let rows: Vec<(String, f64)> = json["summary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["method"].as_str().unwrap().to_owned(), m["vocals_sdr"].as_f64().unwrap()))
            .collect();
        // Each track lists its methods in the summary's order.
        let track: Vec<&str> =
            json["tracks"][0]["methods"].as_array().unwrap().iter().map(|m| m["method"].as_str().unwrap()).collect();
        assert_eq!(track, rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>());
        (rows, log)
    };
    let names = |rows: &[(String, f64)]| rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    let sdr = |rows: &[(String, f64)], m: &str| rows.iter().find(|r| r.0 == m).unwrap().1;

    // Float input: the worker row beside the light one, a different network.
    let (float, _) = summary(&d.path().join("float"), &[]);
    assert_eq!(names(&float), ["isola", "isola worker", "mixture", "mid/side", "oracle IRM"]);
    assert!(sdr(&float, "isola worker").is_finite() && sdr(&float, "isola worker") != sdr(&float, "isola"));

    // 16-bit input: the worker is scored on the quantised mixture, in place of the float row;
    // --max-input-change still compares the light network's two rows.
    let (q, log) = summary(&d.path().join("q16"), &["--input-bits", "16", "--max-input-change", "100"]);
    assert_eq!(
        names(&q),
        ["isola", "isola, 16-bit input", "isola worker, 16-bit input", "mixture", "mid/side", "oracle IRM"]
    );
    let worker16 = sdr(&q, "isola worker, 16-bit input");
    assert!(worker16.is_finite() && worker16 != sdr(&float, "isola worker"), "{q:?}");
    assert!((worker16 - sdr(&float, "isola worker")).abs() < 3.0, "{q:?}");
    let light_change = sdr(&q, "isola, 16-bit input") - sdr(&q, "isola");
    assert!(log.contains(&format!("isola, 16-bit input: vocals SDR {light_change:+.2} dB")), "{log}");
    assert!(log.contains("isola, 16-bit input: within 100 dB of float input"), "{log}");
}

#[test]
fn remixes_are_made_from_loose_files_and_eval_reports_each_data_set() {
    let d = tempfile::tempdir().unwrap();
    for k in 0..2 {
        let t = synth::track(16_000, 2.0, 50 + k);
        write_wav(&d.path().join(format!("held/vocals/v{k}.wav")), &t.vocals.with_channels(1)).unwrap();
        write_wav(&d.path().join(format!("held/music/m{k}.wav")), &t.accompaniment).unwrap();
        write_wav(&d.path().join(format!("songs/s{k}/vocals.wav")), &t.vocals).unwrap();
        write_wav(&d.path().join(format!("songs/s{k}/accompaniment.wav")), &t.accompaniment).unwrap();
    }
    let remix = d.path().join("remix");
    let (ok, log) = isola(&[
        "data",
        "remix",
        s(&remix),
        "--vocals",
        s(&d.path().join("held/vocals")),
        "--instrumental",
        s(&d.path().join("held/music")),
        "--count",
        "3",
        "--seconds",
        "4",
        "--rate",
        "16000",
    ]);
    assert!(ok && log.contains("wrote 3 remixes of 2 vocal and 2 instrumental files"), "{log}");
    let out = d.path().join("eval");
    let (ok, log) = isola(&["eval", "-q", "--data", s(&d.path().join("songs")), "--data", s(&remix), "--out", s(&out)]);
    assert!(ok, "{log}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    assert_eq!(json["tracks"].as_array().unwrap().len(), 5);
    let sets = json["sets"].as_array().unwrap();
    let tracks_of = |i: usize| sets[i]["summary"][0]["tracks"].as_u64().unwrap();
    assert_eq!((sets.len(), tracks_of(0), tracks_of(1)), (2, 2, 3), "{log}");
    assert!(sets[1]["set"].as_str().unwrap().ends_with("remix"));
    let md = std::fs::read_to_string(out.join("eval.md")).unwrap();
    assert!(md.matches("| oracle IRM |").count() >= 3 && md.contains("remix-000"), "{md}");
}

#[test]
fn info_prints_the_default_weights_metadata() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/weights/default.safetensors");
    let (ok, log) = isola(&["info", path]);
    assert!(ok, "{log}");
    let meta = isola_engine::Weights::load(path).unwrap().meta;
    let fft = format!("fft {}, hop {}", meta.stft.fft_size, meta.stft.hop);
    assert!(log.contains(&fft) && log.contains(&format!("parameters:      {}", meta.model.param_count())), "{log}");
    let latency = meta.stft.latency_samples() + meta.model.lookahead * meta.stft.hop;
    assert!(log.contains(&format!("latency:         {latency} samples (")), "{log}");
    // 1008/252 at 44.1 kHz runs as 1080/270 at 48 kHz: 1079 samples.
    assert!(log.contains("1079 samples (22.5 ms) at 48000 Hz"), "{log}");
    // `default` names the built-in weights: both are shown, without a checkout.
    let (ok, log) = isola(&["info", "default"]);
    assert!(ok && log.contains("built-in light weights") && log.contains("built-in worker weights"), "{log}");
    assert!(log.contains(&fft), "{log}");
    let worker = isola_engine::embedded::worker().unwrap().meta.model.param_count();
    assert!(log.contains(&format!("parameters:      {worker}")), "{log}");
    let (ok, log) = isola(&["info", "/nonexistent.safetensors"]);
    assert!(!ok && log.contains("nonexistent"), "{log}");
    // The file and the OS error are each named once.
    assert_eq!((log.matches("nonexistent").count(), log.matches("os error").count()), (1, 1), "{log}");
}
