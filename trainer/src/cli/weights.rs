//! `isola export` and `isola info`: the weights files the plugin loads. The export itself
//! is [`crate::export`].

use std::path::PathBuf;

use clap::Args;

use super::{load_weights, load_worker_weights};
use crate::export::ExportOptions;
use isola_engine::embedded::LatencyMode;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// checkpoint.safetensors or best.safetensors of a run.
    #[arg(value_name = "CHECKPOINT")]
    pub checkpoint: PathBuf,
    /// Output weights file.
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Name shown in the plugin.
    #[arg(long, default_value = "Isola (trained)")]
    pub name: String,
    /// Free-text notes stored with the weights.
    #[arg(long)]
    pub notes: Option<String>,
    /// Export the trained weights themselves, not their moving average (a run with
    /// `ema_decay` above 0 validates and, without --raw, exports the average).
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Weights file (.safetensors), or `default` for the built-in light and worker weights of
    /// every latency mode.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub(super) fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let options = ExportOptions {
        name: args.name.clone(),
        notes: args.notes.clone(),
        git_commit: crate::export::git_commit(),
        raw: args.raw,
    };
    // Temporaries of this destination that a killed earlier export left behind.
    let ck = &args.checkpoint;
    let latest = ck.with_file_name("checkpoint.safetensors");
    if !ck.exists() && ck.file_name().is_some_and(|n| n == "best.safetensors") && latest.exists() {
        anyhow::bail!(
            "{} does not exist yet: a run writes it at its first validation (the end of epoch 1). \
             The latest model is {}: isola export {} -o {}",
            ck.display(),
            latest.display(),
            latest.display(),
            args.out.display()
        );
    }
    isola_engine::atomic_file::remove_stale_for(&args.out)?;
    let existed = args.out.exists();
    crate::export::export(&args.checkpoint, &args.out, &options)?;
    println!("wrote {}{}", args.out.display(), if existed { " (replaced the earlier file)" } else { "" });
    Ok(())
}

pub(super) fn info(args: &InfoArgs) -> anyhow::Result<()> {
    if isola_engine::embedded::is_built_in(&args.file) {
        for (i, mode) in LatencyMode::ALL.into_iter().enumerate() {
            let default = if mode == LatencyMode::default() { ", the plugin's default" } else { "" };
            if i > 0 {
                println!();
            }
            print_info(&format!("built-in light weights (Latency = {mode}{default})"), &load_weights(None, mode)?);
            println!();
            let worker = load_worker_weights(Some(&args.file), mode)?.expect("built-in worker weights");
            print_info(&format!("built-in worker weights (Quality = Worker, Latency = {mode})"), &worker);
        }
    } else {
        print_info(&args.file.display().to_string(), &load_weights(Some(&args.file), LatencyMode::default())?);
    }
    Ok(())
}

fn print_info(file: &str, w: &isola_engine::Weights) {
    let (m, s, p) = (&w.meta.model, &w.meta.stft, &w.meta.provenance);
    println!("file:            {file}");
    println!("format version:  {}", w.meta.format_version);
    println!("name:            {}", p.name);
    let bands =
        m.band_layout().map_or("no band split".to_string(), |b| format!("{} bands of {}", b.bands(), m.band_dim));
    println!(
        "model:           {} channels, {} bins, hidden {}, {} GRU layers, lookahead {} frames, {bands}, feature floor {} dB",
        m.channels, m.n_bins, m.hidden, m.gru_layers, m.lookahead, m.feature_floor_db
    );
    println!("parameters:      {}", m.param_count());
    let synthesis = s.synthesis_len.map_or(String::new(), |len| format!(", synthesis window {len} (low-latency pair)"));
    println!(
        "stft:            {} Hz, fft {}, hop {}, window {}{synthesis}",
        s.sample_rate,
        s.fft_size,
        s.hop,
        s.window.name()
    );
    // What the separator reports with Quality = Light at the model's own rate and at 48 kHz
    // (or 44.1 kHz for a 48 kHz model), the two rates hosts run most.
    let other = if s.sample_rate == 48_000 { 44_100 } else { 48_000 };
    let at = |rate: u32| {
        let latency = m.frame_grid(s).latency_samples(f64::from(rate), 0);
        format!("{latency} samples ({:.1} ms) at {rate} Hz", latency as f64 * 1e3 / f64::from(rate))
    };
    println!("latency:         {}, {}, Quality = Light", at(s.sample_rate), at(other));
    println!("datasets:        {}", if p.datasets.is_empty() { "-".to_string() } else { p.datasets.join(", ") });
    println!("steps:           {}", p.steps);
    println!("validation SDR:  {}", p.validation_sdr_db.map_or("-".to_string(), |v| format!("{v:.2} dB")));
    println!("git commit:      {}", p.git_commit.as_deref().unwrap_or("-"));
    println!("notes:           {}", p.notes);
}
