//! `isola train`.

use std::path::PathBuf;

use clap::Args;

use crate::train::checkpoint::{InitWeights, MODEL_KEYS, Start};
use crate::train::config::TrainConfig;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// TOML config file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Training data (repeatable; DIR, vocals:DIR or instrumental:DIR). Replaces the config's list.
    #[arg(long = "data", value_name = "DIR")]
    pub data: Vec<String>,
    /// Validation tracks (repeatable); default: test/valid split folders, else tracks held out by seed.
    #[arg(long = "val-data", value_name = "DIR")]
    pub val_data: Vec<String>,
    /// Run folder.
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint (its saved config is used). Wins over
    /// --init: the checkpoint already holds the fine-tuned model, so --init is ignored.
    #[arg(long)]
    pub resume: bool,
    /// Fine-tune: start from these weights instead of random ones. An exported weights file,
    /// a run's checkpoint.safetensors or best.safetensors (its model only: fresh optimiser,
    /// step 0), or `default` for the built-in weights. The weights' input normalisation is
    /// kept. Model settings (stft, hidden, gru_layers, lookahead, feature_floor_db, band_dim)
    /// that --config does not set are taken from the weights; those it sets must match them.
    #[arg(long, value_name = "WEIGHTS")]
    pub init: Option<PathBuf>,
    /// Seed of initialisation and sampling (same seed, same run).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Maximum epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Optimiser steps per epoch (validation runs after each epoch).
    #[arg(long)]
    pub steps_per_epoch: Option<usize>,
    /// Examples per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seconds of audio per example.
    #[arg(long)]
    pub chunk_seconds: Option<f64>,
    /// Epochs without a better validation SDR before stopping.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Steps between checkpoints (a resumed run loses at most this many).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// cpu, cuda:N (build with --features cuda) or metal (--features metal).
    #[arg(long)]
    pub device: Option<String>,
    /// Decoded-audio cache folder (default: .cache beside the run folder).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Skip unreadable or inconsistent data (listed) instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

pub(super) fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(path) => TrainConfig::load(path)?,
        None => TrainConfig::default(),
    };
    // Model settings the config file names: with --init, the others come from the weights.
    let set_in_file: Vec<&str> = match &args.config {
        Some(path) => {
            let table: toml::Table = toml::from_str(&std::fs::read_to_string(path)?)?;
            MODEL_KEYS.into_iter().filter(|k| table.contains_key(*k)).collect()
        }
        None => Vec::new(),
    };
    if !args.data.is_empty() {
        cfg.data = args.data.clone();
    }
    if !args.val_data.is_empty() {
        cfg.val_data = args.val_data.clone();
    }
    macro_rules! set {
        ($($field:ident),*) => { $(if let Some(v) = args.$field.clone() { cfg.$field = v; })* };
    }
    set!(out, seed, epochs, steps_per_epoch, batch_size, lr, chunk_seconds, patience, checkpoint_every, device);
    if args.cache.is_some() {
        cfg.cache = args.cache.clone();
    }
    let start = match &args.init {
        Some(path) if args.resume => {
            // Without a checkpoint the run says that --resume needs one.
            if crate::train::checkpoint_path(&cfg.out).exists() {
                println!(
                    "--resume: the run's checkpoint already holds the fine-tuned model; --init {} is ignored",
                    path.display()
                );
            }
            Start::Resume
        }
        Some(path) => {
            let init = InitWeights::load(path)?;
            for change in init.adopt(&mut cfg, &set_in_file) {
                println!("from --init: {change}");
            }
            Start::from(init)
        }
        None => Start::from(args.resume),
    };
    let state = crate::train::run(cfg, start, args.skip_bad, args.quiet)?;
    println!(
        "done at step {}: best validation vocals SDR {} (step {})",
        state.step,
        state.best_val_sdr.map_or("-".into(), |s| format!("{s:.2} dB")),
        state.best_step
    );
    Ok(())
}
