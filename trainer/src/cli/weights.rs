//! `isola export` and `isola info`: the weights files the plugin loads.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use isola_engine::Weights;

use super::load_weights;
use crate::train::checkpoint;

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
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Weights file (.safetensors).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub(super) fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let ck = checkpoint::load(&args.checkpoint, &isola_engine::candle_core::Device::Cpu)?;
    let tensors = ck
        .model
        .iter()
        .map(|(name, t)| {
            let data = t.flatten_all()?.to_vec1::<f32>()?;
            Ok((name.clone(), isola_engine::weights::Tensor { shape: t.dims().to_vec(), data }))
        })
        .collect::<anyhow::Result<std::collections::HashMap<_, _>>>()?;
    let state = &ck.state;
    let c = &ck.config;
    let provenance = isola_engine::Provenance {
        name: args.name.clone(),
        datasets: c.data.iter().chain(&c.val_data).cloned().collect(),
        steps: state.step,
        // Only an SDR measured on exactly these weights.
        validation_sdr_db: state.last_val_sdr.filter(|_| state.last_val_step == state.step).map(|s| s as f32),
        git_commit: git_commit(),
        notes: args.notes.clone().unwrap_or_else(|| {
            format!(
                "isola train: seed {}, batch {} x {} s, lr {}, {} of {} epochs{}",
                c.seed,
                c.batch_size,
                c.chunk_seconds,
                c.lr,
                state.epoch,
                c.epochs,
                if state.finished { ", finished" } else { "" }
            )
        }),
    };
    let weights = Weights::new(c.model(), c.stft, provenance, tensors)?;
    weights.save(&args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    // Read it back as the plugin will.
    Weights::load(&args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// The checked-out commit, when run inside a git work tree.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

pub(super) fn info(args: &InfoArgs) -> anyhow::Result<()> {
    let w = load_weights(Some(&args.file))?;
    let (m, s, p) = (&w.meta.model, &w.meta.stft, &w.meta.provenance);
    println!("file:            {}", args.file.display());
    println!("format version:  {}", w.meta.format_version);
    println!("name:            {}", p.name);
    println!(
        "model:           {} channels, {} bins, hidden {}, {} GRU layers, lookahead {} frames",
        m.channels, m.n_bins, m.hidden, m.gru_layers, m.lookahead
    );
    println!("parameters:      {}", m.param_count());
    println!("stft:            {} Hz, fft {}, hop {}, window {:?}", s.sample_rate, s.fft_size, s.hop, s.window);
    println!("datasets:        {}", if p.datasets.is_empty() { "-".to_string() } else { p.datasets.join(", ") });
    println!("steps:           {}", p.steps);
    println!("validation SDR:  {}", p.validation_sdr_db.map_or("-".to_string(), |v| format!("{v:.2} dB")));
    println!("git commit:      {}", p.git_commit.as_deref().unwrap_or("-"));
    println!("notes:           {}", p.notes);
    Ok(())
}
