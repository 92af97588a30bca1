//! Helpers shared by the trainer's integration tests.

use std::path::{Path, PathBuf};

use isola_trainer::audio::wav::write_wav;
use isola_trainer::synth;
use isola_trainer::train::RunOptions;
use isola_trainer::train::config::TrainConfig;

/// A tiny finished training run in `dir/run` (2 steps on 3 synthetic 8 kHz tracks in
/// `dir/data`, 2 train and 1 test): a checkpoint for `isola export` and friends. Returns the
/// run folder.
pub fn tiny_run(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    for k in 0..3u64 {
        let split = if k < 2 { "train" } else { "test" };
        let t = synth::track(8000, 3.0, 200 + k);
        write_wav(&data.join(format!("{split}/s{k}/vocals.wav")), &t.vocals).unwrap();
        write_wav(&data.join(format!("{split}/s{k}/accompaniment.wav")), &t.accompaniment).unwrap();
    }
    let mut c = TrainConfig {
        data: vec![data.to_str().unwrap().to_string()],
        out: dir.join("run"),
        cache: Some(dir.join(".cache")),
        hidden: 32,
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
