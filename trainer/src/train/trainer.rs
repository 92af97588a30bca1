//! The state of a training run and its step / validation / checkpoint operations.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use isola_engine::config::tensor_names;
use isola_engine::model::{MaskNet, weights_from_varmap};
use isola_engine::{Provenance, Weights};

use super::batch::{batch, loss, normalisation};
use super::checkpoint::{self, InitWeights, TrainState};
use super::config::TrainConfig;
use super::data::RunData;
use super::ema::Ema;
use super::optim::AdamW;
use super::parse_device;
use super::sampler::{Example, sample, step_rng, validation_examples};
use crate::metrics::{evaluate_track, nanmedian};
use crate::separate::separate;

/// Variables fixed from data statistics before training, not optimised.
const NORMALISATION: [&str; 2] = [tensor_names::INPUT_MEAN, tensor_names::INPUT_SCALE];

/// Everything a running training holds.
pub struct Trainer {
    pub cfg: TrainConfig,
    pub state: TrainState,
    device: Device,
    varmap: VarMap,
    net: MaskNet,
    opt: AdamW,
    /// The weights' moving average, where the run keeps one (`ema_decay > 0`).
    ema: Option<Ema>,
    /// The model's grid: training features come from the engine's own frame analysis.
    stft: isola_engine::StftConfig,
    data: RunData,
    val_examples: Vec<Example>,
    mixture_sdr: f64,
    times: StepTimes,
}

/// Where one training step's wall time goes, in seconds: drawing and augmenting the
/// examples, their STFT magnitudes, the forward pass with the loss, the backward pass,
/// and the optimiser update. On a GPU the forward time includes waiting for the device.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepTimes {
    pub sample_s: f64,
    pub stft_s: f64,
    pub forward_s: f64,
    pub backward_s: f64,
    pub optimiser_s: f64,
}

impl StepTimes {
    pub fn total_s(&self) -> f64 {
        self.sample_s + self.stft_s + self.forward_s + self.backward_s + self.optimiser_s
    }
}

/// Where a [`Trainer`]'s variables come from.
enum Origin<'a> {
    Random,
    Checkpoint(&'a checkpoint::Checkpoint),
    Init(&'a InitWeights),
}

impl Trainer {
    /// A fresh run (`resume = None`) or one continued from a checkpoint.
    pub fn new(cfg: TrainConfig, data: RunData, resume: Option<checkpoint::Checkpoint>) -> anyhow::Result<Self> {
        match &resume {
            Some(ck) => Self::build(cfg, data, Origin::Checkpoint(ck)),
            None => Self::build(cfg, data, Origin::Random),
        }
    }

    /// A fine-tuning run: every variable, the input normalisation included, is `init`'s, so
    /// at step 0 the model computes exactly what `init` computes (on `init`'s grid; the run
    /// may use another hop or window pair, [`InitWeights::grid_changes`]); the optimiser
    /// starts fresh at step 0.
    ///
    /// Errors: the run's model config differs from `init`'s (each difference named).
    pub fn fine_tune(cfg: TrainConfig, data: RunData, init: &InitWeights) -> anyhow::Result<Self> {
        init.check(&cfg)?;
        Self::build(cfg, data, Origin::Init(init))
    }

    fn build(cfg: TrainConfig, data: RunData, origin: Origin<'_>) -> anyhow::Result<Self> {
        let device = parse_device(&cfg.device)?;
        let model = cfg.model();
        let stft = cfg.stft;
        let mut varmap = VarMap::new();
        let net = MaskNet::new(&model, VarBuilder::from_varmap(&varmap, DType::F32, &device))?;
        let set_all = |varmap: &mut VarMap, weights: &Weights| -> anyhow::Result<()> {
            for (name, t) in weights.tensors() {
                varmap
                    .set_one(name, Tensor::from_slice(&t.data, t.shape.as_slice(), &device)?)
                    .with_context(|| format!("weights tensor {name}"))?;
            }
            Ok(())
        };
        let state = match origin {
            Origin::Checkpoint(ck) => {
                for (name, t) in &ck.model {
                    varmap.set_one(name, t).with_context(|| format!("checkpoint tensor {name}"))?;
                }
                ck.state.clone()
            }
            Origin::Init(init) => {
                // The init's normalisation too: fine-tuning starts from exactly its function.
                set_all(&mut varmap, &init.weights)?;
                TrainState { fine_tuned_from: Some(init.source.clone()), ..TrainState::default() }
            }
            Origin::Random => {
                // candle's CPU init is unseeded; the engine's seeded PyTorch-style init
                // makes `--seed` reproduce a run.
                set_all(&mut varmap, &isola_engine::weights::random_weights(model, cfg.stft, cfg.seed))?;
                let mut rng = step_rng(cfg.seed, u64::MAX);
                let examples: Vec<Example> = (0..16).map(|_| sample(&data.pools, &cfg, &mut rng)).collect();
                let (mean, scale) = normalisation(&examples, &stft, model.feature_floor(), &device)?;
                varmap.set_one(tensor_names::INPUT_MEAN, mean)?;
                varmap.set_one(tensor_names::INPUT_SCALE, scale)?;
                TrainState::default()
            }
        };
        let trainable: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(n, _)| !NORMALISATION.contains(&n.as_str()))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let mut ema = (cfg.ema_decay > 0.0).then(|| Ema::new(trainable.clone(), cfg.ema_decay)).transpose()?;
        let mut opt = AdamW::new(trainable, cfg.weight_decay)?;
        if let Origin::Checkpoint(ck) = origin {
            opt.load_state(&ck.optimizer, ck.state.step)?;
            if let Some(ema) = &mut ema {
                ema.load_state(&ck.optimizer)?;
            }
        }
        let val_examples = validation_examples(&data.val_tracks, &cfg, cfg.val_chunks);
        let mixture_sdr = nanmedian(
            &data
                .val_tracks
                .iter()
                .filter_map(|t| {
                    evaluate_track(&t.vocals, &t.accompaniment, &t.mixture(), &t.mixture()).ok().map(|s| s.vocals.sdr)
                })
                .collect::<Vec<_>>(),
        );
        Ok(Self {
            cfg,
            state,
            device,
            varmap,
            net,
            opt,
            ema,
            stft,
            data,
            val_examples,
            mixture_sdr,
            times: StepTimes::default(),
        })
    }

    /// One optimiser step; returns (loss, gradient norm). Its phases' wall times are
    /// [`Trainer::last_step_times`].
    pub fn step(&mut self) -> anyhow::Result<(f64, f64)> {
        let mut clock = Instant::now();
        let mut lap = || std::mem::replace(&mut clock, Instant::now()).elapsed().as_secs_f64();
        let mut rng = step_rng(self.cfg.seed, self.state.step);
        let examples: Vec<Example> =
            (0..self.cfg.batch_size).map(|_| sample(&self.data.pools, &self.cfg, &mut rng)).collect();
        let sample_s = lap();
        let batch = batch(&examples, &self.cfg, &self.stft, &self.device)?;
        let stft_s = lap();
        let loss = loss(&self.net, &batch, &self.cfg)?;
        let loss_value = f64::from(loss.to_scalar::<f32>()?);
        let forward_s = lap();
        let grads = loss.backward()?;
        let backward_s = lap();
        let norm = self.opt.step(&grads, self.cfg.lr_at(self.state.step as usize), self.cfg.grad_clip)?;
        if let Some(ema) = &mut self.ema {
            ema.update(self.state.step + 1)?;
        }
        self.times = StepTimes { sample_s, stft_s, forward_s, backward_s, optimiser_s: lap() };
        self.state.step += 1;
        Ok((loss_value, norm))
    }

    /// Wall times of the last [`Trainer::step`]'s phases.
    pub fn last_step_times(&self) -> StepTimes {
        self.times
    }

    /// Mean loss over the fixed validation chunks, of the weights' moving average where the
    /// run keeps one.
    pub fn val_loss(&self) -> anyhow::Result<f64> {
        let averaged = match &self.ema {
            Some(_) => Some(MaskNet::new(
                &self.cfg.model(),
                VarBuilder::from_varmap(&self.eval_vars()?, DType::F32, &self.device),
            )?),
            None => None,
        };
        let net = averaged.as_ref().unwrap_or(&self.net);
        let mut total = 0.0;
        let chunks: Vec<&[Example]> = self.val_examples.chunks(self.cfg.batch_size.max(1)).collect();
        for c in &chunks {
            let batch = batch(c, &self.cfg, &self.stft, &self.device)?;
            total += f64::from(loss(net, &batch, &self.cfg)?.to_scalar::<f32>()?);
        }
        Ok(total / chunks.len() as f64)
    }

    /// Current weights in the engine's format: the weights' moving average where the run
    /// keeps one.
    pub fn weights(&self, provenance: Provenance) -> anyhow::Result<Weights> {
        Ok(weights_from_varmap(&self.eval_vars()?, self.cfg.model(), self.cfg.stft, provenance)?)
    }

    /// The variables validation and export use: the run's own, or a copy with the trained ones
    /// replaced by their moving average.
    fn eval_vars(&self) -> anyhow::Result<VarMap> {
        let Some(ema) = &self.ema else { return Ok(self.varmap.clone()) };
        let averages = ema.averages();
        let out = VarMap::new();
        {
            let mut vars = out.data().lock().expect("not poisoned");
            for (name, var) in self.varmap.data().lock().expect("not poisoned").iter() {
                vars.insert(name.clone(), Var::from_tensor(averages.get(name).unwrap_or(var.as_tensor()))?);
            }
        }
        Ok(out)
    }

    /// Median vocals SDR of the validation tracks through the streaming engine.
    pub fn val_sdr(&self) -> anyhow::Result<f64> {
        let weights = self.weights(Provenance::default())?;
        let mut sdrs = Vec::new();
        for t in &self.data.val_tracks {
            let stems = separate(&weights, &t.mixture(), None)?;
            if let Ok(s) = evaluate_track(&t.vocals, &t.accompaniment, &stems.vocals, &stems.accompaniment) {
                sdrs.push(s.vocals.sdr);
            }
        }
        Ok(nanmedian(&sdrs))
    }

    pub fn mixture_sdr(&self) -> f64 {
        self.mixture_sdr
    }

    /// Writes the checkpoint (atomically) to `path`.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let model: HashMap<String, Tensor> = self
            .varmap
            .data()
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let mut rest = self.opt.state();
        if let Some(ema) = &self.ema {
            rest.extend(ema.state());
        }
        checkpoint::save(path, &self.cfg, &self.state, &model, &rest)
    }
}
