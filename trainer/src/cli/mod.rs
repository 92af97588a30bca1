//! The `isola` command line (clap derive; doc comments are the help text).
//!
//! One submodule per command family: argument structs next to the code that runs them.

mod data;
mod eval;
mod separate;
mod train;
mod weights;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use isola_engine::Weights;
use isola_engine::embedded::LatencyMode;

use crate::progress::{Progress, Style};

pub use self::data::{CheckArgs, DataCommand, RemixArgs, SynthArgs};
pub use self::eval::EvalArgs;
pub use self::separate::SeparateArgs;
pub use self::train::TrainArgs;
pub use self::weights::{ExportArgs, InfoArgs};

/// Isola: train, evaluate and use the vocal isolation model.
#[derive(Debug, Parser)]
#[command(name = "isola", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect data sets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Split audio files into vocals and accompaniment.
    ///
    /// Writes OUT/<name>/vocals.wav and OUT/<name>/accompaniment.wav (32-bit float, the
    /// input's rate and channels, latency removed, full length). Runs the engine's
    /// streaming separator, the same code as the plugin. Mono and stereo inputs.
    Separate(SeparateArgs),
    /// Score the model against the mixture, mid/side and oracle-mask baselines.
    ///
    /// Per track and method: vocals and accompaniment SDR (BSSEval v4 as museval computes
    /// it: 1 s windows, median over windows), SI-SDR and the MDX global SDR; then the
    /// summary over tracks. The model runs through the engine's streaming separator at
    /// each track's own rate. Writes OUT/eval.json, OUT/eval.md, OUT/eval.png and
    /// OUT/windows.csv (the SDR of every 1 s window behind each median).
    Eval(EvalArgs),
    /// Train the mask network (CPU by default; see --device).
    ///
    /// Settings come from --config FILE (TOML, every key optional; `isola train
    /// --example-config` prints them all with their defaults), overridden by the flags below. The run folder gets
    /// checkpoint.safetensors (written atomically every --checkpoint-every steps and at each
    /// epoch end), best.safetensors (best validation SDR), log.csv, loss.png and sdr.png.
    /// --resume continues a stopped or killed run from its last checkpoint. Ctrl-C (SIGINT,
    /// SIGTERM) writes a checkpoint after the step in progress, prints the command that
    /// resumes the run, and exits with status 130; a second Ctrl-C exits at once.
    Train(TrainArgs),
    /// Turn a training checkpoint into plugin-ready weights with full metadata.
    Export(ExportArgs),
    /// Print a weights file's metadata (model, STFT, provenance).
    Info(InfoArgs),
}

/// Runs a parsed command line; the returned code is the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Data(DataCommand::Check(args)) => data::check(&args),
        Command::Data(DataCommand::Synth(args)) => data::synth(&args).map(|()| ExitCode::SUCCESS),
        Command::Data(DataCommand::Remix(args)) => data::remix(&args).map(|()| ExitCode::SUCCESS),
        Command::Separate(args) => separate::run(&args),
        Command::Eval(args) => eval::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Train(args) => train::run(&args),
        Command::Export(args) => weights::export(&args).map(|()| ExitCode::SUCCESS),
        Command::Info(args) => weights::info(&args).map(|()| ExitCode::SUCCESS),
    }
}

/// A weights error naming the file once: IO errors already name it. A training checkpoint
/// is named as one, with the command that turns it into weights.
fn named(e: isola_engine::WeightsError, path: &Path, what: &str) -> anyhow::Error {
    if matches!(e, isola_engine::WeightsError::Io { .. }) {
        e.into()
    } else if crate::train::checkpoint::is_checkpoint(path) {
        anyhow::anyhow!(
            "{} is a training checkpoint, not {what}: export it first \
             (isola export {} -o weights.safetensors), then pass weights.safetensors",
            path.display(),
            path.display()
        )
    } else {
        anyhow::Error::new(e).context(format!("cannot load {what} {}", path.display()))
    }
}

/// Which model runs and how: the arguments `isola separate` and `isola eval` share.
#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// Weights file (.safetensors); the built-in light weights of --latency otherwise (or
    /// `default`).
    #[arg(long, value_name = "W")]
    pub weights: Option<PathBuf>,
    /// Latency mode of the built-in weights, as the plugin's Latency parameter: 23ms
    /// (default; 22.8 ms at 44.1 kHz), 12ms (11.4 ms) or 6ms (5.7 ms). A --weights file runs
    /// at its own grid's latency.
    #[arg(long, value_name = "MODE", value_parser = parse_latency, conflicts_with = "weights")]
    pub latency: Option<LatencyMode>,
    /// The plugin's Quality = Worker: also run this heavier worker model (`default` = the
    /// built-in worker weights of --latency), with the light model as fallback; rendered
    /// offline so no frame falls back.
    #[arg(long, value_name = "W")]
    pub worker_weights: Option<PathBuf>,
    /// Storage precision of the light model's weights in the real-time network: f32, f16,
    /// int8 or mixed (the plugin runs the default).
    #[arg(long, value_name = "P", default_value = isola_engine::rt::Precision::default().name(), value_parser = parse_precision)]
    pub precision: isola_engine::rt::Precision,
}

impl ModelArgs {
    /// The light weights and the worker weights (if asked for). Reads files: not for the
    /// audio thread.
    pub fn load(&self) -> anyhow::Result<(Weights, Option<Weights>)> {
        Ok((
            load_weights(self.weights.as_deref(), self.latency.unwrap_or_default())?,
            load_worker_weights(self.worker_weights.as_deref(), self.latency.unwrap_or_default())?,
        ))
    }
}

/// Loads `--weights`, or the built-in light weights of `--latency` (default: 23 ms).
pub fn load_weights(path: Option<&Path>, mode: LatencyMode) -> anyhow::Result<Weights> {
    match path {
        Some(p) if !isola_engine::embedded::is_built_in(p) => Weights::load(p).map_err(|e| named(e, p, "weights")),
        _ => mode.light().with_context(|| format!("built-in light weights of latency mode {mode}")),
    }
}

/// Worker weights for `--worker-weights`: none, `default` (the built-in worker weights of
/// `--latency`) or a file.
pub fn load_worker_weights(path: Option<&Path>, mode: LatencyMode) -> anyhow::Result<Option<Weights>> {
    Ok(match path {
        None => None,
        Some(p) if isola_engine::embedded::is_built_in(p) => {
            Some(mode.worker().with_context(|| format!("built-in worker weights of latency mode {mode}"))?)
        }
        Some(p) => Some(Weights::load(p).map_err(|e| named(e, p, "worker weights"))?),
    })
}

/// `--latency`: a [`LatencyMode`] by name (`23ms`, `12`, `6 ms`, ...).
pub fn parse_latency(name: &str) -> Result<LatencyMode, String> {
    LatencyMode::from_name(name).ok_or_else(|| {
        let names: Vec<_> = LatencyMode::ALL.iter().map(|m| m.name()).collect();
        format!("unknown latency mode {name:?}; one of {}", names.join(", "))
    })
}

/// `--precision`: a [`Precision`](isola_engine::rt::Precision) by name.
pub fn parse_precision(name: &str) -> Result<isola_engine::rt::Precision, String> {
    isola_engine::rt::Precision::from_name(name).ok_or_else(|| {
        let names: Vec<_> = isola_engine::rt::Precision::ALL.iter().map(|p| p.name()).collect();
        format!("unknown weight precision {name:?}; one of {}", names.join(", "))
    })
}

/// Progress counting audio frames (`what` names the job in plain lines): a bar on a
/// terminal, lines in a log, nothing when `quiet`.
pub fn frames_bar(total: u64, quiet: bool, what: &str) -> Progress {
    let template = "{msg:20!} [{bar:30}] {percent:>3}% {elapsed_precise} ETA {eta}";
    Progress::new(Style::detect(quiet), &format!("{what}: audio frame"), total, template)
}
