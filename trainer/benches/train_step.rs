//! Training throughput on the CPU: seconds of audio trained per second of wall time, for the
//! light and the worker model, with each step's time split into its phases (drawing and
//! augmenting examples, STFT, forward with the loss, backward, optimiser). Synthetic tracks
//! at 44.1 kHz held in RAM, the shipped configs' batch (12 × 2 s) and the default
//! augmentations; 2 warm-up steps, then the mean of 8. `light+sdr` adds the waveform SDR term,
//! `band32` the band-split front end and mask head.
//! `cargo bench -p isola-trainer --bench train_step` (`RAYON_NUM_THREADS` sets the threads).

use isola_trainer::data::{LooseAudio, TrackAudio};
use isola_trainer::synth;
use isola_trainer::train::config::TrainConfig;
use isola_trainer::train::sampler::Pools;
use isola_trainer::train::{RunData, StepTimes, Trainer};

const RATE: u32 = 44_100;

fn data() -> RunData {
    let track = |k: u64| {
        let t = synth::track(RATE, 8.0, k);
        TrackAudio {
            name: format!("t{k}"),
            split: None,
            vocals: t.vocals.into(),
            accompaniment: t.accompaniment.into(),
            source_rate: RATE,
        }
    };
    let loose = |k: u64, vocal: bool| {
        let t = synth::track(RATE, 8.0, k);
        LooseAudio {
            name: format!("l{k}"),
            audio: if vocal { t.vocals } else { t.accompaniment }.into(),
            source_rate: RATE,
        }
    };
    let val = synth::track(RATE, 4.0, 99);
    RunData {
        pools: Pools {
            tracks: (0..4).map(track).collect(),
            vocals: (10..12).map(|k| loose(k, true)).collect(),
            instrumentals: (20..22).map(|k| loose(k, false)).collect(),
        },
        val_tracks: vec![TrackAudio {
            name: "val".into(),
            split: None,
            vocals: val.vocals,
            accompaniment: val.accompaniment,
            source_rate: RATE,
        }],
        skipped: Vec::new(),
    }
}

fn report(name: &str, hidden: usize, band_dim: usize, sdr_loss_weight: f64) {
    let cfg = TrainConfig {
        hidden,
        gru_layers: 3,
        batch_size: 12,
        chunk_seconds: 2.0,
        band_dim,
        sdr_loss_weight,
        ..TrainConfig::default()
    };
    let audio_per_step = cfg.batch_size as f64 * cfg.chunk_seconds;
    let mut tr = Trainer::new(cfg, data(), None).expect("trainer");
    for _ in 0..2 {
        tr.step().expect("step");
    }
    let n = 8;
    let mut sum = StepTimes::default();
    for _ in 0..n {
        tr.step().expect("step");
        let t = tr.last_step_times();
        sum.sample_s += t.sample_s;
        sum.stft_s += t.stft_s;
        sum.forward_s += t.forward_s;
        sum.backward_s += t.backward_s;
        sum.optimiser_s += t.optimiser_s;
    }
    let ms = |s: f64| s / n as f64 * 1e3;
    println!(
        "{name:>10} (hidden {hidden}): {:>5.1} s audio/s | step {:>6.0} ms = sample {:.0} + stft {:.0} + forward {:.0} + backward {:.0} + optimiser {:.0}",
        audio_per_step * n as f64 / sum.total_s(),
        ms(sum.total_s()),
        ms(sum.sample_s),
        ms(sum.stft_s),
        ms(sum.forward_s),
        ms(sum.backward_s),
        ms(sum.optimiser_s),
    );
}

fn main() {
    report("light", 128, 0, 0.0);
    // The waveform SDR term costs a resynthesis forward and its adjoint backward.
    report("light+sdr", 128, 0, 0.03);
    // The band split (32 per band) adds per-band layers at both ends.
    report("band32", 128, 32, 0.0);
    report("worker", 256, 0, 0.0);
}
