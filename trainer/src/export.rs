//! `isola export`: a training checkpoint becomes the weights file the plugin loads.
//!
//! [`export`] reads a run's `checkpoint.safetensors` or `best.safetensors`
//! ([`crate::train::checkpoint`]), builds [`Weights`] from its model tensors (validated
//! against the run's model and STFT config exactly as loading a file is), attaches
//! [`Provenance`] (name, data sets, steps, the validation SDR measured on exactly these
//! weights, git commit, notes; a fine-tuned model's notes name the weights it started
//! from), writes the file atomically ([`isola_engine::tensor_file::write_atomic`]) and
//! reads it back as the plugin will.
//! The command line only parses its arguments and calls [`export`].

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use isola_engine::candle_core::Device;
use isola_engine::weights::Tensor;
use isola_engine::{Provenance, Weights};

use crate::train::checkpoint::{self, Checkpoint, FINE_TUNED_FROM};
use crate::train::config::TrainConfig;

/// What the user adds to the checkpoint's own facts.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Name shown in the plugin.
    pub name: String,
    /// Free-text notes; `None` writes a summary of the run (seed, batch, learning rate,
    /// epochs, whether it finished).
    pub notes: Option<String>,
    /// Commit of the code that trained the weights; `None` stores none.
    pub git_commit: Option<String>,
    /// Export the trained weights themselves, not the moving average that a run with
    /// `ema_decay > 0` keeps beside them (and exports by default).
    pub raw: bool,
}

/// Exports `checkpoint` (a run's `checkpoint.safetensors` or `best.safetensors`) to the
/// weights file `out`, replacing it atomically, and returns the weights as read back from
/// `out`.
///
/// Errors, each naming its file: the checkpoint cannot be read or is not a checkpoint;
/// its tensors do not fit its model config (missing, wrong shape, non-finite); `out`
/// cannot be written or does not read back as valid weights.
pub fn export(checkpoint: &Path, out: &Path, options: &ExportOptions) -> anyhow::Result<Weights> {
    let ck = checkpoint::load(checkpoint, &Device::Cpu)?;
    let weights = weights_from_checkpoint(&ck, options)
        .with_context(|| format!("checkpoint {} does not make valid weights", checkpoint.display()))?;
    weights.save(out)?;
    // Read it back as the plugin will.
    Weights::load(out).with_context(|| format!("cannot load the exported weights {}", out.display()))
}

/// Builds validated [`Weights`] from a checkpoint's model tensors (stored as f32, shapes
/// as in the checkpoint; their moving average where the run kept one, unless
/// `options.raw`), its model/STFT config and [`Provenance`]: `options`' name, notes and commit, the run's data sets (training then validation), its step count,
/// and the last validation SDR (dB) only when it was measured at the checkpoint's step.
/// A fine-tuning run's notes end with `fine-tuned from <init>` (explicit notes too).
///
/// Errors: a tensor that cannot be read from its device, or
/// [`isola_engine::WeightsError`] when the tensors do not fit the config.
pub fn weights_from_checkpoint(ck: &Checkpoint, options: &ExportOptions) -> anyhow::Result<Weights> {
    let averages = if options.raw { HashMap::new() } else { crate::train::ema::from_checkpoint(&ck.optimizer) };
    // A run that keeps an average validates the average, never the raw weights.
    let validated = !(options.raw && ck.config.ema_decay > 0.0);
    let tensors = ck
        .model
        .iter()
        .map(|(name, t)| {
            let t = averages.get(name).unwrap_or(t);
            let data = t.flatten_all()?.to_vec1::<f32>()?;
            Ok((name.clone(), Tensor { shape: t.dims().to_vec(), data }))
        })
        .collect::<anyhow::Result<HashMap<_, _>>>()?;
    let (state, c) = (&ck.state, &ck.config);
    let provenance = Provenance {
        name: options.name.clone(),
        datasets: c.data.iter().chain(&c.val_data).cloned().collect(),
        steps: state.step,
        // Only an SDR measured on exactly these weights.
        validation_sdr_db: state
            .last_val_sdr
            .filter(|_| state.last_val_step == state.step && validated)
            .map(|s| s as f32),
        git_commit: options.git_commit.clone(),
        notes: {
            let notes = options.notes.clone().unwrap_or_else(|| {
                format!(
                    "isola train: seed {}, batch {} x {} s, {}, {} of {} epochs{}{}",
                    c.seed,
                    c.batch_size,
                    c.chunk_seconds,
                    lr_note(c, state.step as usize),
                    state.epoch,
                    c.epochs,
                    if state.finished { ", finished" } else { "" },
                    if averages.is_empty() {
                        String::new()
                    } else {
                        format!(", weights averaged (decay {})", c.ema_decay)
                    }
                )
            });
            // A fine-tuned model always says what it was fine-tuned from (`steps` and
            // `datasets` count the fine-tuning only).
            match &state.fine_tuned_from {
                Some(from) => format!("{notes}; {FINE_TUNED_FROM}{from}"),
                None => notes,
            }
        },
    };
    Ok(Weights::new(c.model(), c.stft, provenance, tensors)?)
}

/// The learning rate in words: `lr 0.001`, or, for a run that stopped inside its warm-up,
/// the peak it reached: `lr 0.0002 (warm-up peak; configured 0.001 after 100 steps)`.
fn lr_note(c: &TrainConfig, steps: usize) -> String {
    if steps >= c.warmup_steps {
        return format!("lr {}", c.lr);
    }
    let peak = c.lr_at(steps.saturating_sub(1));
    format!("lr {peak} (warm-up peak; configured {} after {} steps)", c.lr, c.warmup_steps)
}

/// The git commit this `isola` was built from (recorded at build time by `build.rs`;
/// uncommitted changes are not marked), `None` for a build outside a git checkout.
pub fn git_commit() -> Option<String> {
    option_env!("ISOLA_GIT_COMMIT").map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notes_give_the_learning_rate_a_short_run_reached() {
        let c = TrainConfig { lr: 1e-3, warmup_steps: 100, ..TrainConfig::default() };
        assert_eq!(lr_note(&c, 100), "lr 0.001");
        assert_eq!(lr_note(&c, 5000), "lr 0.001");
        // 20 steps of a 100-step warm-up: the last step ran at 20 % of the configured rate.
        assert_eq!(lr_note(&c, 20), "lr 0.0002 (warm-up peak; configured 0.001 after 100 steps)");
    }
}
