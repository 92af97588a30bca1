//! Training end to end on a synthetic data set written at test time:
//! learning happens, a killed run resumes to exactly the uninterrupted
//! result, and exported weights compute in the real-time engine what the
//! checkpoint computes in candle.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use isola_engine::candle_core::{DType, Device, Tensor};
use isola_engine::candle_nn::VarBuilder;
use isola_engine::model::MaskNet;
use isola_engine::{RtMaskNet, Weights};
use isola_trainer::audio::wav::write_wav;
use isola_trainer::synth;
use isola_trainer::train::checkpoint;
use isola_trainer::train::config::TrainConfig;
use isola_trainer::train::log;

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
    let state = isola_trainer::train::run(config(&d.path().join("data"), &out, 4), false, false, true).unwrap();
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
    assert!(isola_trainer::train::run(config(&d.path().join("data"), &out, 4), false, false, true).is_err());
}

#[test]
fn killed_run_resumes_to_the_uninterrupted_result() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    dataset(&data);
    let epochs = 3;
    // Reference: the same run, never interrupted.
    let reference = d.path().join("runs/reference");
    isola_trainer::train::run(config(&data, &reference, epochs), false, false, true).unwrap();

    let out = d.path().join("runs/killed");
    let cfg_path = d.path().join("killed.toml");
    write_config(&config(&data, &out, epochs), &cfg_path);
    let bin = env!("CARGO_BIN_EXE_isola");
    let mut child = Command::new(bin).args(["train", "-q", "--config", cfg_path.to_str().unwrap()]).spawn().unwrap();
    // Kill it once a mid-run checkpoint exists.
    let ck = out.join("checkpoint.safetensors");
    let start = Instant::now();
    let seen = loop {
        if let Ok(c) = checkpoint::load(&ck, &Device::Cpu)
            && c.state.step >= 20
        {
            break Some(c.state.step);
        }
        if start.elapsed() > Duration::from_secs(300) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.is_some(), "no checkpoint appeared");
    let killed_at = checkpoint::load(&ck, &Device::Cpu).unwrap().state.step;
    assert!(killed_at < 60, "the run was killed before finishing (checkpoint at step {killed_at})");
    assert_eq!(killed_at % 5, 0, "checkpoints land every 5 steps: at most 5 steps are lost");

    let status = Command::new(bin).args(["train", "-q", "--resume", "--out", out.to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    let (a, b) = (
        checkpoint::load(&reference.join("checkpoint.safetensors"), &Device::Cpu).unwrap(),
        checkpoint::load(&ck, &Device::Cpu).unwrap(),
    );
    assert_eq!(b.state.step, 60);
    for (name, t) in &a.model {
        let diff = (t - &b.model[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "{name} differs from the uninterrupted run by {diff}");
    }
    let rows = log::read(&out.join("log.csv")).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2, 3], "one log row per epoch, none twice");
}

#[test]
fn exported_weights_compute_in_the_engine_what_the_checkpoint_computes() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    dataset(&data);
    let out = d.path().join("run");
    isola_trainer::train::run(config(&data, &out, 1), false, false, true).unwrap();
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
    // ...and the exported file in the real-time port.
    let mut rt = RtMaskNet::new(&weights).unwrap();
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
    let data = isola_trainer::train::load_data(&cfg, false).unwrap();
    assert_eq!(data.val_tracks.len(), 2);
    // 8 tracks in `data`: the 2 validation tracks are removed, whatever folder they came from.
    assert_eq!(data.pools.tracks.len(), 6, "{:?}", data.pools.tracks.iter().map(|t| &t.name).collect::<Vec<_>>());
    assert!(data.pools.tracks.iter().all(|t| !t.name.contains("s6") && !t.name.contains("s7")));
    // Validating on s6 alone still keeps s7 out of training: it lies in the test/ split.
    cfg.val_data.truncate(1);
    let data = isola_trainer::train::load_data(&cfg, false).unwrap();
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
