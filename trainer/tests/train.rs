//! Training end to end on a synthetic data set written at test time:
//! learning happens, a killed run resumes to exactly the uninterrupted
//! result, exported weights compute in the real-time engine what the
//! checkpoint computes in candle, and fine-tuning (`--init`) starts exactly at its
//! init weights.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use isola_engine::candle_core::{DType, Device, Tensor};
use isola_engine::candle_nn::VarBuilder;
use isola_engine::config::tensor_names;
use isola_engine::model::MaskNet;
use isola_engine::{RtMaskNet, Separator, Weights};
use isola_trainer::audio::wav::write_wav;
use isola_trainer::export::ExportOptions;
use isola_trainer::progress;
use isola_trainer::synth;
use isola_trainer::train::checkpoint::{self, InitWeights, Start};
use isola_trainer::train::config::TrainConfig;
use isola_trainer::train::log;
use isola_trainer::train::{RunOptions, Trainer};

const RATE: u32 = 8000;

fn dataset(dir: &Path) {
    for k in 0..8u64 {
        let split = if k < 6 { "train" } else { "test" };
        let t = synth::track(RATE, 6.0, 100 + k);
        write_wav(&dir.join(format!("{split}/s{k}/vocals.wav")), &t.vocals).unwrap();
        write_wav(&dir.join(format!("{split}/s{k}/accompaniment.wav")), &t.accompaniment).unwrap();
    }
}

fn config(data: &Path, out: &Path, epochs: usize) -> TrainConfig {
    let mut c = TrainConfig {
        data: vec![data.to_str().unwrap().to_string()],
        out: out.to_path_buf(),
        hidden: 32,
        gru_layers: 2,
        batch_size: 4,
        chunk_seconds: 1.0,
        steps_per_epoch: 20,
        epochs,
        lr: 3e-3,
        warmup_steps: 10,
        checkpoint_every: 5,
        val_chunks: 8,
        seed: 7,
        // Beside the runs, not in the user's cache folder (the default).
        cache: Some(out.with_file_name(".cache")),
        ..TrainConfig::default()
    };
    c.stft.sample_rate = RATE;
    c.stft.fft_size = 256;
    c.stft.hop = 64;
    c
}

fn write_config(c: &TrainConfig, path: &Path) {
    std::fs::write(path, toml::to_string(c).unwrap()).unwrap();
}

#[test]
fn short_training_lowers_validation_loss_and_beats_the_mixture() {
    let d = tempfile::tempdir().unwrap();
    dataset(&d.path().join("data"));
    let out = d.path().join("runs/a");
    let state = isola_trainer::train::run(config(&d.path().join("data"), &out, 4), false, RunOptions::quiet())
        .unwrap()
        .finished();
    assert_eq!(state.step, 80);
    assert!(state.finished);
    let rows = log::read(&out.join("log.csv")).unwrap();
    assert_eq!(rows.len(), 4);
    let (first, last) = (rows[0], rows[3]);
    assert!(last.val_loss < 0.8 * first.val_loss, "validation loss {} -> {}", first.val_loss, last.val_loss);
    assert!(last.val_sdr > last.mixture_sdr + 3.0, "SDR {} vs mixture {}", last.val_sdr, last.mixture_sdr);
    for f in ["checkpoint.safetensors", "best.safetensors", "loss.png", "sdr.png"] {
        assert!(out.join(f).exists(), "{f}");
    }
    // A second run in the same folder without --resume is refused.
    assert!(isola_trainer::train::run(config(&d.path().join("data"), &out, 4), false, RunOptions::quiet()).is_err());
}

/// The low-latency front end (an asymmetric window pair, issue 18): a model trained on it,
/// with the waveform SDR term, learns; its exported weights carry the synthesis window and
/// run in the separator at the short latency, at the model's rate and at twice it.
#[test]
fn training_on_the_low_latency_window_pair_learns_and_runs_at_its_latency() {
    let d = tempfile::tempdir().unwrap();
    dataset(&d.path().join("data"));
    let out = d.path().join("runs/low");
    let mut c = config(&d.path().join("data"), &out, 3);
    c.stft.synthesis_len = Some(2 * c.stft.hop);
    c.sdr_loss_weight = 0.03;
    isola_trainer::train::run(c, false, RunOptions::quiet()).unwrap().finished();
    let rows = log::read(&out.join("log.csv")).unwrap();
    let last = rows[rows.len() - 1];
    assert!(last.val_sdr > last.mixture_sdr + 3.0, "SDR {} vs mixture {}", last.val_sdr, last.mixture_sdr);
    let exported = d.path().join("low.safetensors");
    let o = isola(&["export", out.join("checkpoint.safetensors").to_str().unwrap(), "-o", exported.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let weights = Weights::load(&exported).unwrap();
    assert_eq!(weights.meta.stft.synthesis_len, Some(128));
    for (rate, latency) in [(RATE as f32, 127), (2.0 * RATE as f32, 255)] {
        let mut sep = Separator::new(RtMaskNet::new(&weights).unwrap());
        sep.prepare(rate, 512, 2).unwrap();
        assert_eq!(sep.latency_samples(), latency, "{rate} Hz");
    }
}

/// With a moving average of the weights (`ema_decay`), whose state the checkpoint carries too;
/// export writes the average, `--raw` the weights themselves.
#[test]
fn killed_run_resumes_to_the_uninterrupted_result() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    dataset(&data);
    let epochs = 3;
    let config = |out: &Path| TrainConfig { ema_decay: 0.9, ..config(&data, out, epochs) };
    // Reference: the same run, never interrupted.
    let reference = d.path().join("runs/reference");
    isola_trainer::train::run(config(&reference), false, RunOptions::quiet()).unwrap().finished();

    let out = d.path().join("runs/killed");
    let cfg_path = d.path().join("killed.toml");
    write_config(&config(&out), &cfg_path);
    let bin = env!("CARGO_BIN_EXE_isola");
    let mut child = Command::new(bin).args(["train", "-q", "--config", cfg_path.to_str().unwrap()]).spawn().unwrap();
    // Kill it once a checkpoint in the middle of the second epoch exists.
    let ck = out.join("checkpoint.safetensors");
    let start = Instant::now();
    let seen = loop {
        if let Ok(c) = checkpoint::load(&ck, &Device::Cpu)
            && c.state.step >= 25
        {
            break Some(c.state.step);
        }
        if start.elapsed() > Duration::from_secs(300) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Then at a random point (also inside a checkpoint write, whose temp file --resume removes).
    let pause = rand::random_range(0..50);
    std::thread::sleep(Duration::from_millis(pause));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.is_some(), "no checkpoint appeared");
    let killed_at = checkpoint::load(&ck, &Device::Cpu).unwrap().state.step;
    assert!(killed_at < 60, "the run was killed {pause} ms later, before finishing (checkpoint at step {killed_at})");
    assert_eq!(killed_at % 5, 0, "checkpoints land every 5 steps: at most 5 steps are lost");

    // What a kill in the middle of a checkpoint write leaves (atomic_file's temp name).
    let stale = out.join(".checkpoint.safetensors.Xy12Zw.isola-tmp");
    std::fs::write(&stale, b"half a checkpoint").unwrap();

    let o = Command::new(bin).args(["train", "--resume", "--out", out.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains(&format!("resuming from step {killed_at} of 60 (removed "))
            && stdout.contains(" stale temporary files)"),
        "{stdout}"
    );
    assert!(!stale.exists());
    let (a, b) = (
        checkpoint::load(&reference.join("checkpoint.safetensors"), &Device::Cpu).unwrap(),
        checkpoint::load(&ck, &Device::Cpu).unwrap(),
    );
    assert_eq!(b.state.step, 60);
    let averages = a.optimizer.keys().filter(|k| k.starts_with("ema.")).count();
    assert_eq!(averages, a.model.len() - 2, "every variable but the input normalisation is averaged");
    for (name, t, other) in
        a.model.iter().map(|(n, t)| (n, t, &b.model[n])).chain(a.optimizer.iter().map(|(n, t)| (n, t, &b.optimizer[n])))
    {
        let diff = (t - other).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "{name} differs from the uninterrupted run by {diff}");
    }
    // Export writes the average, which the run validated; --raw the last step's weights.
    let export = |raw: bool| {
        let file = d.path().join(format!("raw-{raw}.safetensors"));
        let mut args = vec!["export", ck.to_str().unwrap(), "-o", file.to_str().unwrap()];
        if raw {
            args.push("--raw");
        }
        let o = isola(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Weights::load(&file).unwrap()
    };
    let (average, raw) = (export(false), export(true));
    let name = &tensor_names::linear(tensor_names::FC3, tensor_names::WEIGHT);
    let (w_avg, w_raw) = (&average.tensors()[name].data, &raw.tensors()[name].data);
    let want = b.optimizer[&format!("ema.{name}")].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(w_avg, &want);
    assert_eq!(w_raw, &b.model[name].flatten_all().unwrap().to_vec1::<f32>().unwrap());
    assert_ne!(w_avg, w_raw);
    let p = (&average.meta.provenance, &raw.meta.provenance);
    assert_eq!(p.0.validation_sdr_db, b.state.last_val_sdr.map(|s| s as f32));
    assert!(p.0.validation_sdr_db.is_some() && p.1.validation_sdr_db.is_none(), "{p:?}");
    assert!(p.0.notes.contains("weights averaged (decay 0.9)") && !p.1.notes.contains("averaged"), "{p:?}");
    let rows = log::read(&out.join("log.csv")).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2, 3], "one log row per epoch, none twice");
    // The epoch the kill cut in two logs the same figures (all but the speed).
    let speedless = |r: &log::LogRow| log::LogRow { audio_sec_per_sec: 0.0, ..*r };
    let reference_rows = log::read(&reference.join("log.csv")).unwrap();
    assert_eq!(
        rows.iter().map(speedless).collect::<Vec<_>>(),
        reference_rows.iter().map(speedless).collect::<Vec<_>>()
    );
}

/// `isola train` with stdout piped (a log file): waits until a progress line for `step`
/// shows, then sends `signals` (`INT` as Ctrl-C does, `TERM` as `kill` and job schedulers
/// do), each once the previous one was acknowledged on stderr. Returns the exit code,
/// stdout and stderr.
fn interrupt_training(cfg_path: &Path, step: u64, signals: &[&str]) -> (Option<i32>, String, String) {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args(["train", "--config", cfg_path.to_str().unwrap(), "--progress-every", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the run ended before step {step}: {seen}");
        seen.push_str(&line);
        if line.starts_with(&format!("step {step}/")) {
            // `step 3/40 (7.5 %): epoch 1, loss 1.2e-1, 9.1 s audio/s; 1s elapsed, ETA 14s`
            assert!(line.contains(" %): epoch 1, loss ") && line.contains(" elapsed, ETA "), "{line}");
            break;
        }
    }
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut err = String::new();
    for (k, signal) in signals.iter().enumerate() {
        let kill = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        assert!(kill.success(), "signal {k} could not be sent: the run had ended");
        // The handler's acknowledgement, before the next signal (signals do not queue).
        let mut line = String::new();
        while !line.contains("interrupt") {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "no acknowledgement of signal {k}: {err}");
            err.push_str(&line);
        }
    }
    let status = child.wait().unwrap();
    stdout.read_to_string(&mut seen).unwrap();
    stderr.read_to_string(&mut err).unwrap();
    (status.code(), seen, err)
}

#[test]
fn sigterm_or_ctrl_c_checkpoints_the_step_prints_the_resume_command_and_a_second_exits_at_once() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    dataset(&data);
    let reference = d.path().join("runs/reference");
    isola_trainer::train::run(config(&data, &reference, 2), false, RunOptions::quiet()).unwrap().finished();

    // Checkpoints only at epoch ends (every 20 steps): the one Ctrl-C writes is its own.
    let out = d.path().join("runs/stopped");
    let cfg_path = d.path().join("stopped.toml");
    write_config(&TrainConfig { checkpoint_every: 1000, ..config(&data, &out, 2) }, &cfg_path);
    let (code, stdout, stderr) = interrupt_training(&cfg_path, 3, &["TERM"]);
    assert_eq!(code, Some(130), "{stdout}{stderr}");
    assert!(stderr.contains("interrupt: stopping after the current step with a checkpoint"), "{stderr}");
    let at = checkpoint::load(&out.join("checkpoint.safetensors"), &Device::Cpu).unwrap().state.step;
    assert!((3..40).contains(&at), "stopped at step {at}");
    let ck_line =
        format!("stopped at step {at} of 40: checkpoint written to {}", out.join("checkpoint.safetensors").display());
    let resume = format!("resume with: isola train --resume --out {}", out.display());
    assert!(stdout.contains(&ck_line) && stdout.contains(&resume), "{stdout}");

    // Before the first validation there is no best.safetensors: export points to the latest.
    let o = isola(&["export", out.join("best.safetensors").to_str().unwrap(), "-o", "x.safetensors"]);
    let text = String::from_utf8_lossy(&o.stderr);
    let hint = format!(
        "The latest model is {0}: isola export {0} -o x.safetensors",
        out.join("checkpoint.safetensors").display()
    );
    assert!(!o.status.success() && text.contains("does not exist yet") && text.contains(&hint), "{text}");

    // The printed command resumes to exactly the uninterrupted run.
    let o = isola(&["train", "--resume", "--out", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && text.contains(&format!("resuming from step {at} of 40")), "{text}");
    let (a, b) = (
        checkpoint::load(&reference.join("checkpoint.safetensors"), &Device::Cpu).unwrap(),
        checkpoint::load(&out.join("checkpoint.safetensors"), &Device::Cpu).unwrap(),
    );
    for (name, t) in &a.model {
        let diff = (t - &b.model[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "{name} differs from the uninterrupted run by {diff}");
    }

    // A second Ctrl-C exits at once: no checkpoint for the step in progress. Steps of 16
    // four-second examples (0.6 s here) take long enough for the second signal to arrive mid-step.
    let out = d.path().join("runs/abandoned");
    let cfg_path = d.path().join("abandoned.toml");
    let slow = TrainConfig { checkpoint_every: 1000, batch_size: 16, chunk_seconds: 4.0, ..config(&data, &out, 1) };
    write_config(&slow, &cfg_path);
    let (code, stdout, stderr) = interrupt_training(&cfg_path, 3, &["INT", "INT"]);
    assert_eq!(code, Some(130), "{stdout}{stderr}");
    assert!(stderr.contains("second interrupt: exiting now without a checkpoint"), "{stderr}");
    assert!(!stdout.contains("stopped at step") && !stdout.contains("resume with"), "{stdout}");
    assert!(!out.join("checkpoint.safetensors").exists());
}

#[test]
fn exported_weights_compute_in_the_engine_what_the_checkpoint_computes() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    dataset(&data);
    let out = d.path().join("run");
    isola_trainer::train::run(config(&data, &out, 1), false, RunOptions::quiet()).unwrap().finished();
    let exported = d.path().join("isola.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_isola"))
        .args([
            "export",
            out.join("best.safetensors").to_str().unwrap(),
            "-o",
            exported.to_str().unwrap(),
            "--name",
            "test model",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let weights = Weights::load(&exported).unwrap();
    assert_eq!(weights.meta.provenance.name, "test model");
    assert_eq!(weights.meta.provenance.steps, 20);
    assert!(weights.meta.provenance.validation_sdr_db.is_some());
    assert_eq!(weights.meta.stft.sample_rate, RATE);

    // The checkpoint in candle...
    let ck = checkpoint::load(&out.join("best.safetensors"), &Device::Cpu).unwrap();
    let tensors: HashMap<String, Tensor> = ck.model.clone();
    let net = MaskNet::new(&ck.config.model(), VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)).unwrap();
    let (frames, bins) = (40, ck.config.stft.n_bins());
    let t = synth::track(RATE, 1.0, 999);
    let mags: Vec<Vec<f32>> = t
        .accompaniment
        .channels
        .iter()
        .zip(&t.vocals.channels)
        .map(|(a, v)| {
            let mix: Vec<f32> = a.iter().zip(v).map(|(a, v)| a + v).collect();
            isola_engine::offline::magnitudes(&ck.config.stft, &mix)[..frames * bins].to_vec()
        })
        .collect();
    let mut input = Vec::with_capacity(frames * 2 * bins);
    for f in 0..frames {
        for m in &mags {
            input.extend_from_slice(&m[f * bins..(f + 1) * bins]);
        }
    }
    let logits =
        net.forward_seq(&Tensor::from_vec(input.clone(), (1, frames, 2, bins), &Device::Cpu).unwrap()).unwrap();
    let logits = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // ...and the exported file in the real-time port, at f32: the port's arithmetic, not
    // the default reduced precision (whose own bounds engine/tests/parity.rs checks).
    let mut rt = RtMaskNet::with_precision(&weights, isola_engine::rt::Precision::F32).unwrap();
    let mut out_frame = vec![0.0f32; 2 * bins];
    let mut worst = 0.0f32;
    for f in 0..frames {
        assert!(rt.step(&input[f * 2 * bins..(f + 1) * 2 * bins], &mut out_frame));
        for (a, b) in out_frame.iter().zip(&logits[f * 2 * bins..(f + 1) * 2 * bins]) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst < 1e-3, "engine and checkpoint logits differ by {worst}");
}

#[test]
fn validation_tracks_are_never_trained_on() {
    let dir = tempfile_dir("holdout");
    dataset(&dir);
    let mut cfg = config(&dir, &dir.join("run"), 1);
    // Validation names two tracks that `data` also contains (the test/ folder is inside it).
    cfg.val_data = vec![dir.join("test/s6").to_str().unwrap().into(), dir.join("test/s7").to_str().unwrap().into()];
    let data = isola_trainer::train::load_data(&cfg, Default::default()).unwrap();
    assert_eq!(data.val_tracks.len(), 2);
    // 8 tracks in `data`: the 2 validation tracks are removed, whatever folder they came from.
    assert_eq!(data.pools.tracks.len(), 6, "{:?}", data.pools.tracks.iter().map(|t| &t.name).collect::<Vec<_>>());
    assert!(data.pools.tracks.iter().all(|t| !t.name.contains("s6") && !t.name.contains("s7")));
    // Validating on s6 alone still keeps s7 out of training: it lies in the test/ split.
    cfg.val_data.truncate(1);
    let data = isola_trainer::train::load_data(&cfg, Default::default()).unwrap();
    assert_eq!(data.val_tracks.len(), 1);
    assert_eq!(data.pools.tracks.len(), 6);
    assert!(data.pools.tracks.iter().all(|t| !t.name.contains("s7")));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("isola-train-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- Fine-tuning (`isola train --init`) ----

/// Bitwise equality of two sets of weights, every tensor.
fn assert_same_tensors(a: &Weights, b: &Weights, what: &str) {
    assert_eq!(a.tensors().len(), b.tensors().len(), "{what}: tensor count");
    for (name, t) in a.tensors() {
        let u = &b.tensors()[name];
        assert_eq!(t.shape, u.shape, "{what}: {name} shape");
        let same = t.data.iter().zip(&u.data).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{what}: {name} differs");
    }
}

/// The candle model's logits for the same synthetic mixture under `weights`.
fn logits(weights: &Weights) -> Vec<f32> {
    let net = isola_engine::model::load(weights, &Device::Cpu).unwrap();
    let (stft, frames) = (weights.meta.stft, 30);
    let bins = stft.n_bins();
    let t = synth::track(stft.sample_rate, 1.0, 4242);
    let mags: Vec<Vec<f32>> = t
        .vocals
        .channels
        .iter()
        .zip(&t.accompaniment.channels)
        .map(|(v, a)| {
            let mix: Vec<f32> = v.iter().zip(a).map(|(v, a)| v + a).collect();
            isola_engine::offline::magnitudes(&stft, &mix)[..frames * bins].to_vec()
        })
        .collect();
    let input: Vec<f32> =
        (0..frames).flat_map(|f| mags.iter().flat_map(move |m| &m[f * bins..(f + 1) * bins])).copied().collect();
    let x = Tensor::from_vec(input, (1, frames, 2, bins), &Device::Cpu).unwrap();
    net.forward_seq(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Runs the CLI with `cache_home` as the user's cache folder (`XDG_CACHE_HOME`), so the
/// default decoded-audio cache lands in the test's folder.
fn isola_with_cache_home(args: &[&str], cache_home: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_isola")).args(args).env("XDG_CACHE_HOME", cache_home).output().unwrap()
}

fn isola(args: &[&str]) -> std::process::Output {
    // Commands here that decode pass --cache or a config with `cache`; a stray default
    // cache still stays out of the user's folder.
    isola_with_cache_home(args, &std::env::temp_dir().join("isola-test-cache-home"))
}

#[test]
fn fine_tuning_from_exported_weights_starts_exactly_at_them_and_trains() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    dataset(&data);
    // A base model: one epoch, exported as the plugin would get it.
    let base = d.path().join("runs/base");
    isola_trainer::train::run(config(&data, &base, 1), false, RunOptions::quiet()).unwrap().finished();
    let base_rows = log::read(&base.join("log.csv")).unwrap();
    let exported = d.path().join("base.safetensors");
    let options = ExportOptions { name: "base".into(), ..Default::default() };
    isola_trainer::export::export(&base.join("checkpoint.safetensors"), &exported, &options).unwrap();

    let init = InitWeights::load(&exported).unwrap();
    assert!(init.source.contains("base.safetensors") && init.source.contains("\"base\""), "{}", init.source);
    // Another seed: other examples, another normalisation if it were measured.
    let cfg = TrainConfig { seed: 99, ..config(&data, &d.path().join("runs/tuned"), 1) };

    // Step 0 is the init model: every tensor, normalisation included, bit for bit, so the
    // same masks.
    let mut tr =
        Trainer::fine_tune(cfg.clone(), isola_trainer::train::load_data(&cfg, Default::default()).unwrap(), &init)
            .unwrap();
    assert_eq!(tr.state.step, 0);
    let step0 = tr.weights(Default::default()).unwrap();
    assert_same_tensors(&step0, &init.weights, "step 0 vs the init");
    assert_eq!(logits(&step0), logits(&init.weights));
    // Training moves the weights, never the normalisation.
    for _ in 0..3 {
        tr.step().unwrap();
    }
    let after = tr.weights(Default::default()).unwrap();
    for name in [tensor_names::INPUT_MEAN, tensor_names::INPUT_SCALE] {
        assert_eq!(after.tensor(name), init.weights.tensor(name), "{name} is kept");
    }
    assert_ne!(after.tensor("fc1.weight"), init.weights.tensor("fc1.weight"), "fc1 trains");
    drop(tr);

    // The whole run: fresh optimiser and step count, provenance recorded.
    let state = isola_trainer::train::run(cfg.clone(), Start::from(init), RunOptions::quiet()).unwrap().finished();
    assert_eq!(state.step, 20);
    assert!(state.fine_tuned_from.as_deref().is_some_and(|f| f.contains("base.safetensors")));
    let rows = log::read(&cfg.out.join("log.csv")).unwrap();
    assert!(
        rows[0].val_loss < base_rows[0].val_loss,
        "the first epoch continues from the base ({} vs the base's first epoch {})",
        rows[0].val_loss,
        base_rows[0].val_loss
    );
    let tuned = d.path().join("tuned.safetensors");
    let w = isola_trainer::export::export(&cfg.out.join("best.safetensors"), &tuned, &options).unwrap();
    assert!(w.meta.provenance.notes.contains("fine-tuned from"), "{}", w.meta.provenance.notes);
    assert!(w.meta.provenance.notes.contains("base.safetensors"), "{}", w.meta.provenance.notes);
    let explicit = ExportOptions { notes: Some("my songs".into()), ..options };
    let w = isola_trainer::export::export(&cfg.out.join("best.safetensors"), &tuned, &explicit).unwrap();
    assert!(w.meta.provenance.notes.starts_with("my songs; fine-tuned from "), "{}", w.meta.provenance.notes);

    // A run folder with a checkpoint is not overwritten by a second --init run.
    let again = InitWeights::load(&exported).unwrap();
    let err = isola_trainer::train::run(cfg, Start::from(again), RunOptions::quiet()).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err:#}");
}

#[test]
fn fine_tuning_from_a_checkpoint_takes_its_model_only() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    dataset(&data);
    let base = d.path().join("runs/base");
    isola_trainer::train::run(config(&data, &base, 1), false, RunOptions::quiet()).unwrap().finished();
    let ck_path = base.join("checkpoint.safetensors");
    let ck = checkpoint::load(&ck_path, &Device::Cpu).unwrap();
    assert_eq!(ck.state.step, 20);

    let init = InitWeights::load(&ck_path).unwrap();
    assert!(init.source.ends_with("checkpoint.safetensors (checkpoint at step 20)"), "{}", init.source);
    for (name, t) in &ck.model {
        assert_eq!(init.weights.tensor(name).data, t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), "{name}");
    }
    let cfg = config(&data, &d.path().join("runs/tuned"), 1);
    let tr = Trainer::fine_tune(cfg.clone(), isola_trainer::train::load_data(&cfg, Default::default()).unwrap(), &init)
        .unwrap();
    assert_eq!((tr.state.step, tr.state.epoch, tr.state.best_val_sdr), (0, 0, None), "fresh state");
    assert_same_tensors(&tr.weights(Default::default()).unwrap(), &init.weights, "step 0 vs the checkpoint");
    drop(tr);
    // The step count starts at 0 (the checkpoint's 20 steps are not continued).
    let state = isola_trainer::train::run(cfg.clone(), Start::from(init), RunOptions::quiet()).unwrap().finished();
    assert_eq!((state.step, state.epoch), (20, 1));
    let tuned = checkpoint::load(&cfg.out.join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(tuned.state.fine_tuned_from, state.fine_tuned_from, "kept in the checkpoint for --resume and export");
}

#[test]
fn init_mismatch_names_every_difference_and_unset_settings_are_adopted() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    dataset(&data);
    // Init weights on the test grid (8 kHz, 256/64, hidden 32, 2 GRU layers).
    let grid = config(&data, &d.path().join("unused"), 1);
    let init_path = d.path().join("init.safetensors");
    isola_engine::weights::random_weights(grid.model(), grid.stft, 3).save(&init_path).unwrap();
    let init = InitWeights::load(&init_path).unwrap();

    let mut cfg = config(&data, &d.path().join("runs/mismatch"), 1);
    (cfg.stft.fft_size, cfg.stft.hop, cfg.hidden) = (512, 128, 16);
    let err = isola_trainer::train::run(cfg.clone(), Start::from(init), RunOptions::quiet()).unwrap_err().to_string();
    for part in [init_path.to_str().unwrap(), "stft fft_size 256 vs the run's 512", "hidden 32 vs the run's 16"] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    // The hop may differ (fine-tuning onto another grid), so it is no reason to stop.
    assert!(
        !err.contains("gru_layers") && !err.contains("sample_rate") && !err.contains("hop"),
        "only the blocking differences: {err}"
    );
    assert!(!cfg.out.join("checkpoint.safetensors").exists());

    // Another hop and window pair on the same FFT size: the run fine-tunes onto that grid.
    let mut regrid = config(&data, &d.path().join("runs/regrid"), 1);
    (regrid.stft.hop, regrid.stft.synthesis_len) = (32, Some(64));
    regrid.steps_per_epoch = 2;
    let regrid_path = d.path().join("regrid.toml");
    write_config(&regrid, &regrid_path);
    let o = isola(&["train", "--config", regrid_path.to_str().unwrap(), "--init", init_path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout
            .contains("--init onto another frame grid (the network is fine-tuned to it): stft hop 64 vs the run's 32"),
        "{stdout}"
    );
    let ck = checkpoint::load(&regrid.out.join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    assert_eq!((ck.config.stft, ck.config.model()), (regrid.stft, grid.model()));

    // The command line: a config file that sets the model must match...
    let cfg_path = d.path().join("mismatch.toml");
    write_config(&cfg, &cfg_path);
    let o = isola(&["train", "-q", "--config", cfg_path.to_str().unwrap(), "--init", init_path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("hidden 32 vs the run's 16") && stderr.contains("stft fft_size 256"), "{stderr}");
    // ...settings it leaves out are the weights' (here: all of them, no config file).
    let out = d.path().join("runs/adopted");
    #[rustfmt::skip]
    let o = isola(&[
        "train", "-q", "--init", init_path.to_str().unwrap(), "--data", data.to_str().unwrap(),
        "--out", out.to_str().unwrap(), "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "2",
        "--chunk-seconds", "1", "--cache", d.path().join(".cache").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("from --init: stft 8000 Hz 256/64"), "{stdout}");
    assert!(stdout.contains("from --init: hidden 32 (instead of 128)"), "{stdout}");
    let ck = checkpoint::load(&out.join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    assert_eq!((ck.config.model(), ck.config.stft), (grid.model(), grid.stft));

    // Neither weights nor a checkpoint: named as such.
    let junk = d.path().join("junk.safetensors");
    let x = isola_engine::weights::Tensor { shape: vec![2], data: vec![1.0, 2.0] };
    let meta = HashMap::from([("producer".to_string(), "someone else".to_string())]);
    isola_engine::tensor_file::write_atomic(&junk, &meta, [("x", &x)]).unwrap();
    let err = format!("{:#}", InitWeights::load(&junk).unwrap_err());
    assert!(err.contains("junk.safetensors") && err.contains("neither Isola weights"), "{err}");
    let err = format!("{:#}", InitWeights::load(&d.path().join("missing.safetensors")).unwrap_err());
    assert!(err.contains("missing.safetensors"), "{err}");
}

#[test]
fn init_default_fits_the_default_config_and_the_musicians_command_runs() {
    // `isola train --init default` without any model settings: the defaults are the
    // built-in weights' model.
    let init = InitWeights::load(Path::new("default")).unwrap();
    init.check(&TrainConfig::default()).unwrap();
    assert_eq!(init.weights.meta.model, TrainConfig::default().model());
    assert_eq!(init.weights.meta.stft, TrainConfig::default().stft);
    assert!(init.adopt(&mut TrainConfig::default(), &[]).is_empty(), "nothing to adopt");
    assert!(init.source.starts_with("built-in default"), "{}", init.source);

    // The musician's folder: songs as vocals + accompaniment, no split folders (two are
    // held out for validation by the seed). A tiny run: one step.
    let d = tempfile::tempdir().unwrap();
    let songs = d.path().join("mysongs");
    for k in 0..4u64 {
        let t = synth::track(44_100, 2.0, 500 + k);
        write_wav(&songs.join(format!("song{k}/vocals.wav")), &t.vocals).unwrap();
        write_wav(&songs.join(format!("song{k}/accompaniment.wav")), &t.accompaniment).unwrap();
    }
    let out = d.path().join("runs/mine");
    let (songs_s, out_s) = (songs.to_str().unwrap(), out.to_str().unwrap());
    // The decoded-audio cache goes to the user's cache folder, and its size is printed.
    let cache_home = d.path().join("user-cache");
    #[rustfmt::skip]
    let o = isola_with_cache_home(&[
        "train", "-q", "--init", "default", "--data", songs_s, "--out", out_s,
        "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "1", "--chunk-seconds", "0.5",
    ], &cache_home);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(!stdout.contains("from --init"), "the defaults already match: {stdout}");
    if cfg!(target_os = "linux") {
        let cache = cache_home.join("isola/audio");
        let files = std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
        assert_eq!(files, 4, "one pool entry per song in {}", cache.display());
        let (bytes, _) = isola_trainer::audio::cache::usage(&cache);
        let line = format!("decoded-audio cache: {} ({} in 4 files)", cache.display(), progress::bytes(bytes));
        assert!(stdout.contains(&line), "{line:?} missing from {stdout}");
        assert!(!out.parent().unwrap().join(".cache").exists(), "nothing beside the run");
    }
    let ck = checkpoint::load(&out.join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(ck.state.step, 1);
    assert!(ck.state.fine_tuned_from.as_deref().is_some_and(|f| f.starts_with("built-in default")));

    // --resume wins over --init: the run's checkpoint holds the fine-tuned model.
    let o = isola(&["train", "-q", "--resume", "--init", "default", "--out", out_s]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("--init default is ignored") && stdout.contains("already finished"), "{stdout}");
}
