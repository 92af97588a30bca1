//! The epoch loop of `isola train`: steps, validation, logging, early
//! stopping and checkpoints.

use std::time::Instant;

use anyhow::Context;
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};

use super::checkpoint::{self, Start, TrainState};
use super::config::TrainConfig;
use super::log::{self, LogRow};
use super::{Trainer, best_path, checkpoint_path, load_data};

/// Runs a training to the end of the epoch budget or early stop, starting as `start` says:
/// `false` / [`Start::Fresh`] a new run from random weights, `true` / [`Start::Resume`]
/// the run in `cfg.out` from its checkpoint (its saved config wins), or
/// [`Start::Init`] a fine-tuning run from given weights (fresh optimiser, step 0).
///
/// Errors, before any data is loaded: a new run whose folder already holds a checkpoint,
/// `--resume` without one, an invalid config, or (fine-tuning) a model config that differs
/// from the init weights', each difference named.
pub fn run(cfg: TrainConfig, start: impl Into<Start>, skip_bad: bool, quiet: bool) -> anyhow::Result<TrainState> {
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("cannot create {}", cfg.out.display()))?;
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
            // The run's own config wins; only where it lives may differ.
            let out = cfg.out.clone();
            let c = TrainConfig { out, ..ck.config.clone() };
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
        return Ok(ck.expect("checked").state);
    }
    let data = load_data(&cfg, skip_bad)?;
    for s in &data.skipped {
        println!("skipped: {s}");
    }
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
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_position(tr.state.step);
    let audio_per_step = cfg.batch_size as f64 * cfg.chunk_seconds;
    while tr.state.step < total {
        bar.set_prefix(format!("{}", tr.state.step / spe + 1));
        let t0 = Instant::now();
        let (loss, norm) = tr.step()?;
        anyhow::ensure!(loss.is_finite(), "loss became {loss} at step {}", tr.state.step);
        let sums = &mut tr.state.epoch_sums;
        sums.busy_s += t0.elapsed().as_secs_f64();
        (sums.loss, sums.grad_norm, sums.steps) = (sums.loss + loss, sums.grad_norm + norm, sums.steps + 1);
        let (n, busy) = (sums.steps as f64, sums.busy_s);
        bar.inc(1);
        bar.set_message(format!("loss {:.3e}, {:.1} s audio/s", sums.loss / n, audio_per_step * n / busy));
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
        if epoch_end || tr.state.step % cfg.checkpoint_every.max(1) as u64 == 0 || tr.state.step == total {
            tr.state.finished |= tr.state.step == total;
            tr.save(&ck_path)?;
        }
        if tr.state.finished {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(tr.state)
}
