//! The epoch loop of `isola train`: steps, validation, logging, early
//! stopping, checkpoints, and stopping on request (Ctrl-C) with a checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;

use super::checkpoint::{self, Start, TrainState};
use super::config::TrainConfig;
use super::log::{self, LogRow};
use super::{Trainer, best_path, checkpoint_path, load_data};
use crate::data::LoadOptions;
use crate::progress::{self, Progress, Style};

/// How [`run`] reports and when it stops early.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Skip unreadable or inconsistent data (listed) instead of failing.
    pub skip_bad: bool,
    /// Progress of data preparation and steps (see [`Style::detect`]).
    pub progress: Style,
    /// In [`Style::Lines`], a line every this many steps; `None`: every
    /// [`progress::LINE_INTERVAL`].
    pub progress_every: Option<u64>,
    /// Once set (by a signal handler), the run stops after the step in progress and writes a
    /// checkpoint there: [`RunEnd::Stopped`].
    pub stop: Option<Arc<AtomicBool>>,
}

impl RunOptions {
    /// No progress output (tests, scripts).
    pub fn quiet() -> Self {
        Self::default()
    }
}

/// How a [`run`] ended; both carry the state in the run's checkpoint.
#[derive(Debug, Clone)]
pub enum RunEnd {
    /// The step budget is spent, or validation stopped improving.
    Finished(TrainState),
    /// [`RunOptions::stop`] was set; the checkpoint (`checkpoint_path(out)`) holds this step.
    Stopped(TrainState),
}

impl RunEnd {
    /// The state of a finished run; panics on a stopped one (tests).
    pub fn finished(self) -> TrainState {
        match self {
            RunEnd::Finished(s) => s,
            RunEnd::Stopped(state) => panic!("the run was stopped at step {}", state.step),
        }
    }
}

/// Runs a training to the end of the epoch budget or early stop, starting as `start` says:
/// `false` / [`Start::Fresh`] a new run from random weights, `true` / [`Start::Resume`]
/// the run in `cfg.out` from its checkpoint (its saved config wins, except where the
/// decoded-audio cache is: `cfg.cache` when set), or [`Start::Init`] a fine-tuning run from
/// given weights (fresh optimiser, step 0).
///
/// Errors, before any data is loaded: a new run whose folder already holds a checkpoint,
/// `--resume` without one, an invalid config, or (fine-tuning) a model config that differs
/// from the init weights', each difference named.
pub fn run(cfg: TrainConfig, start: impl Into<Start>, opts: RunOptions) -> anyhow::Result<RunEnd> {
    let quiet = opts.progress == Style::Quiet;
    let ck_path = checkpoint_path(&cfg.out);
    let (cfg, ck, init) = match start.into() {
        Start::Resume => {
            let ck = checkpoint::load(&ck_path, &Device::Cpu).with_context(|| "--resume needs the run's checkpoint")?;
            // What a killed earlier process of this run left half-written (the run folder is
            // the run's own).
            let stale = isola_engine::atomic_file::remove_stale(&cfg.out, None)?;
            if !quiet {
                let note = if stale > 0 { format!(" (removed {stale} stale temporary files)") } else { String::new() };
                println!("resuming from step {} of {}{note}", ck.state.step, ck.config.total_steps());
            }
            // The run's own config wins; only where it and the cache live may differ.
            let (out, cache) = (cfg.out.clone(), cfg.cache.clone().or(ck.config.cache.clone()));
            let c = TrainConfig { out, cache, ..ck.config.clone() };
            (c, Some(ck), None)
        }
        start @ (Start::Fresh | Start::Init(_)) => {
            anyhow::ensure!(
                !ck_path.exists(),
                "{} exists: pass --resume to continue that run, or choose another --out",
                ck_path.display()
            );
            (cfg, None, if let Start::Init(init) = start { Some(init) } else { None })
        }
    };
    if let Some(init) = &init {
        init.check(&cfg)?;
    }
    cfg.validate()?;
    if ck.as_ref().is_some_and(|c| c.state.finished) {
        println!("run in {} already finished", cfg.out.display());
        return Ok(RunEnd::Finished(ck.expect("checked").state));
    }
    let data = load_data(&cfg, LoadOptions { skip_bad: opts.skip_bad, progress: opts.progress })?;
    for s in &data.skipped {
        println!("skipped: {s}");
    }
    // Printed even with --quiet: the folder can grow to gigabytes.
    match cfg.cache_dir() {
        Some(dir) => {
            let (bytes, files) = crate::audio::cache::usage(&dir);
            println!("decoded-audio cache: {} ({} in {files} files)", dir.display(), progress::bytes(bytes));
        }
        None => println!("no decoded-audio cache (this system names no cache folder): pass --cache DIR"),
    }
    // Only now that every check has passed: a failed command leaves no empty run folder.
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("cannot create {}", cfg.out.display()))?;
    let log_path = cfg.out.join("log.csv");
    let mut rows = log::read(&log_path)?;
    rows.retain(|r| ck.as_ref().is_some_and(|c| r.step <= c.state.step));
    log::write(&log_path, &rows)?;
    if !quiet {
        println!(
            "training on {} tracks, {} loose vocals, {} instrumentals; validating on {} tracks",
            data.pools.tracks.len(),
            data.pools.vocals.len(),
            data.pools.instrumentals.len(),
            data.val_tracks.len()
        );
    }
    let mut tr = match &init {
        Some(init) => Trainer::fine_tune(cfg, data, init)?,
        None => Trainer::new(cfg, data, ck)?,
    };
    if !quiet {
        if let Some(init) = &init {
            // The baseline fine-tuning has to beat (best.safetensors is the best epoch).
            println!(
                "starting from {}: validation vocals SDR {:.2} dB before fine-tuning (mixture {:.2} dB)",
                init.source,
                tr.val_sdr()?,
                tr.mixture_sdr()
            );
        } else if let Some(from) = tr.state.fine_tuned_from.as_deref() {
            println!("fine-tuning from {from}");
        }
    }
    let cfg = tr.cfg.clone();
    let spe = cfg.steps_per_epoch as u64;
    let total = cfg.total_steps() as u64;
    let bar = Progress::new(opts.progress, "step", total, "[{bar:30}] step {pos}/{len}, {msg} ETA {eta}")
        .lines_every(opts.progress_every);
    bar.set_position(tr.state.step);
    let stop_requested = || opts.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    let audio_per_step = cfg.batch_size as f64 * cfg.chunk_seconds;
    while tr.state.step < total {
        let t0 = Instant::now();
        let (loss, norm) = tr.step()?;
        anyhow::ensure!(loss.is_finite(), "loss became {loss} at step {}", tr.state.step);
        let sums = &mut tr.state.epoch_sums;
        sums.busy_s += t0.elapsed().as_secs_f64();
        (sums.loss, sums.grad_norm, sums.steps) = (sums.loss + loss, sums.grad_norm + norm, sums.steps + 1);
        let (n, busy) = (sums.steps as f64, sums.busy_s);
        bar.set_message(format!(
            "epoch {}, loss {:.3e}, {:.1} s audio/s",
            (tr.state.step - 1) / spe + 1,
            sums.loss / n,
            audio_per_step * n / busy
        ));
        bar.inc(1);
        let epoch_end = tr.state.step % spe == 0;
        if epoch_end {
            let sums = tr.state.epoch_sums;
            tr.state.epoch = tr.state.step / spe;
            let (val_loss, val_sdr) = (tr.val_loss()?, tr.val_sdr()?);
            rows.push(LogRow {
                step: tr.state.step,
                epoch: tr.state.epoch,
                lr: cfg.lr_at(tr.state.step as usize - 1),
                train_loss: sums.loss / n,
                val_loss,
                val_sdr,
                mixture_sdr: tr.mixture_sdr(),
                grad_norm: sums.grad_norm / n,
                audio_sec_per_sec: audio_per_step * n / busy,
            });
            tr.state.epoch_sums = Default::default();
            log::write(&log_path, &rows)?;
            if let Err(e) = log::plots(&rows, &cfg.out) {
                bar.println(format!("warning: no plots: {e:#}"));
            }
            bar.println(format!(
                "epoch {}: train loss {:.4e}, val loss {:.4e}, val vocals SDR {:.2} dB (mixture {:.2} dB)",
                tr.state.epoch,
                rows.last().expect("pushed").train_loss,
                val_loss,
                val_sdr,
                tr.mixture_sdr()
            ));
            (tr.state.last_val_sdr, tr.state.last_val_step) = (Some(val_sdr), tr.state.step);
            if tr.state.best_val_sdr.is_none_or(|b| val_sdr > b) {
                tr.state.best_val_sdr = Some(val_sdr);
                tr.state.best_step = tr.state.step;
                tr.state.epochs_without_improvement = 0;
                tr.save(&best_path(&cfg.out))?;
            } else {
                tr.state.epochs_without_improvement += 1;
            }
            if tr.state.epochs_without_improvement >= cfg.patience as u64 {
                bar.println(format!("early stop: no better validation SDR for {} epochs", cfg.patience));
                tr.state.finished = true;
            }
        }
        let stop = stop_requested() && !tr.state.finished && tr.state.step < total;
        if epoch_end || stop || tr.state.step % cfg.checkpoint_every.max(1) as u64 == 0 || tr.state.step == total {
            tr.state.finished |= tr.state.step == total;
            tr.save(&ck_path)?;
        }
        if stop {
            bar.finish();
            println!("stopped at step {} of {total}: checkpoint written to {}", tr.state.step, ck_path.display());
            return Ok(RunEnd::Stopped(tr.state));
        }
        if tr.state.finished {
            break;
        }
    }
    bar.finish();
    Ok(RunEnd::Finished(tr.state))
}
