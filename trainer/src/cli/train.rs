//! `isola train`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Args;

use crate::progress::Style;
use crate::train::checkpoint::{InitWeights, MODEL_KEYS, Start};
use crate::train::config::TrainConfig;
use crate::train::{RunEnd, RunOptions};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// TOML config file (`--example-config` prints one with every key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print an example config file listing every key with its default and a comment, then exit.
    #[arg(long, exclusive = true)]
    pub example_config: bool,
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
    /// Decoded-audio cache folder, shared by runs (default: isola/audio in the user's cache
    /// folder, e.g. ~/.cache/isola/audio; about 42 MB per minute of a song's two stereo stems).
    /// Its size is printed at the start; deleting it only costs decoding time.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Skip unreadable or inconsistent data (listed) instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    /// No progress bar or progress lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// When stderr is not a terminal (a log file), print a progress line every N steps
    /// (default: every 30 s).
    #[arg(long, value_name = "N")]
    pub progress_every: Option<u64>,
}

pub(super) fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    if args.example_config {
        print!("{}", crate::train::config::EXAMPLE);
        return Ok(ExitCode::SUCCESS);
    }
    // The default run folder is a new run's; continuing one needs to say which.
    anyhow::ensure!(
        !args.resume || args.out.is_some() || args.config.is_some(),
        "--resume needs the run folder to continue: --out DIR"
    );
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
            for change in init.grid_changes(&cfg) {
                println!("--init onto another frame grid (the network is fine-tuned to it): {change}");
            }
            Start::from(init)
        }
        None => Start::from(args.resume),
    };
    let out = cfg.out.clone();
    let mut resume = format!("isola train --resume --out {}", shell_quote(&out.display().to_string()));
    if args.skip_bad {
        resume.push_str(" --skip-bad");
    }
    if let Some(n) = args.progress_every {
        resume.push_str(&format!(" --progress-every {n}"));
    }
    let opts = RunOptions {
        skip_bad: args.skip_bad,
        progress: Style::detect(args.quiet),
        progress_every: args.progress_every,
        stop: Some(stop_on_signal(resume.clone(), crate::train::checkpoint_path(&out))?),
    };
    match crate::train::run(cfg, start, opts)? {
        RunEnd::Finished(state) => {
            println!(
                "done at step {}: best validation vocals SDR {} (step {})",
                state.step,
                state.best_val_sdr.map_or("-".into(), |s| format!("{s:.2} dB")),
                state.best_step
            );
            Ok(ExitCode::SUCCESS)
        }
        RunEnd::Stopped(_) => {
            println!("resume with: {resume}");
            Ok(ExitCode::from(INTERRUPTED))
        }
    }
}

/// Exit status of a run stopped by a signal: 128 + SIGINT, as shells report Ctrl-C.
const INTERRUPTED: u8 = 130;

/// A flag set by the first SIGINT or SIGTERM (Ctrl-C on Windows): the run writes a
/// checkpoint after the step in progress and ends. A second signal exits at once, losing
/// the steps since the last checkpoint, and says how to resume from that one (`resume`, the
/// command; `checkpoint`, where it is). Installed once per process.
fn stop_on_signal(resume: String, checkpoint: PathBuf) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        // ctrlc runs this on its own thread, not in the signal handler: printing is safe.
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: exiting now without a checkpoint");
            if checkpoint.exists() {
                eprintln!("resume from the last checkpoint with: {resume}");
            }
            std::process::exit(i32::from(INTERRUPTED));
        }
        eprintln!(
            "\ninterrupt: stopping after the current step with a checkpoint \
             (interrupt again to exit at once, losing the steps since the last checkpoint)"
        );
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(stop)
}

/// `s` as one word for a POSIX shell: unchanged when it is safe, else single-quoted.
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:=,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_quote("runs/my-run_2"), "runs/my-run_2");
        assert_eq!(shell_quote("my runs/a"), "'my runs/a'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
