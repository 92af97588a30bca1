//! Checkpoints: one safetensors file holding the model (`model.<name>`),
//! the AdamW moments (`adam.m.*`, `adam.v.*`) and, in its header metadata,
//! the training state and config as JSON. Read and written with the engine's
//! [`isola_engine::tensor_file`] (the weights file's reader and atomic writer):
//! a temp file, synced, then renamed over the old one, so a kill at any moment
//! leaves either the previous or the new checkpoint, never a torn one.
//!
//! Also how a run starts ([`Start`]): fresh, resumed from its checkpoint, or fine-tuned
//! from [`InitWeights`] (`isola train --init`: exported weights, another run's checkpoint
//! or the built-in default).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use isola_engine::Weights;
use isola_engine::tensor_file::{self, TensorFile, TensorFileError};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;

/// Progress that `--resume` needs besides tensors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimiser steps completed.
    pub step: u64,
    /// Epochs completed.
    pub epoch: u64,
    pub best_val_sdr: Option<f64>,
    pub best_step: u64,
    /// Validation SDR measured at step `last_val_step` (the latest epoch end).
    pub last_val_sdr: Option<f64>,
    pub last_val_step: u64,
    pub epochs_without_improvement: u64,
    /// Set when early stopping or the epoch budget ended the run.
    pub finished: bool,
    /// The weights a fine-tuning run started from ([`InitWeights::source`]); `None` for a
    /// run from random weights. Export records it in the weights' provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_tuned_from: Option<String>,
    /// The running sums of the epoch in progress (reset at each epoch end), so a run resumed
    /// mid-epoch logs the same epoch figures as one that was never interrupted.
    #[serde(default)]
    pub epoch_sums: EpochSums,
}

/// Sums over the steps of the epoch in progress, for the epoch's row in `log.csv`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochSums {
    pub loss: f64,
    pub grad_norm: f64,
    pub steps: u64,
    /// Seconds spent in training steps (a speed measurement: differs between runs).
    pub busy_s: f64,
}

#[derive(Debug)]
pub struct Checkpoint {
    pub config: TrainConfig,
    pub state: TrainState,
    /// Model variables by contract name.
    pub model: HashMap<String, Tensor>,
    /// Optimiser moments (`adam.*`).
    pub optimizer: HashMap<String, Tensor>,
}

/// Metadata key and value that mark a checkpoint.
const FORMAT_KEY: &str = "isola.format";
const FORMAT_TAG: &str = "isola-checkpoint";

/// Writes a checkpoint atomically through the engine's [`tensor_file::write_atomic`]
/// (temp file in the same folder, fsync, rename): a kill at any moment leaves the previous
/// or the new checkpoint. Tensors of any float dtype are stored as f32, `model` under
/// `model.<name>`, `optimizer` under its own names (`adam.*`).
///
/// Errors: a tensor that cannot be read back from its device, or a write failure naming
/// `path` and the step that failed.
pub fn save(
    path: &Path,
    config: &TrainConfig,
    state: &TrainState,
    model: &HashMap<String, Tensor>,
    optimizer: &HashMap<String, Tensor>,
) -> anyhow::Result<()> {
    let mut named: Vec<(String, tensor_file::Tensor)> = Vec::new();
    for (prefix, set) in [("model.", model), ("", optimizer)] {
        for (name, t) in set {
            let data = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            named.push((format!("{prefix}{name}"), tensor_file::Tensor { shape: t.dims().to_vec(), data }));
        }
    }
    let meta = HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT_TAG.to_string()),
        ("isola.state".to_string(), serde_json::to_string(state)?),
        ("isola.config".to_string(), serde_json::to_string(config)?),
    ]);
    tensor_file::write_atomic(path, &meta, named.iter().map(|(n, t)| (n, t)))?;
    Ok(())
}

/// Whether `path` is a training checkpoint (a readable file with the checkpoint format tag);
/// for error messages that would otherwise call it "not weights".
pub fn is_checkpoint(path: &Path) -> bool {
    TensorFile::read(path).is_ok_and(|f| tagged(f.metadata()))
}

/// Whether a file's metadata carries the checkpoint format tag.
fn tagged(meta: &HashMap<String, String>) -> bool {
    meta.get(FORMAT_KEY).map(String::as_str) == Some(FORMAT_TAG)
}

/// Reads a checkpoint written by [`save`], putting its tensors on `device` (f32).
///
/// Errors name `path`: unreadable file, not a safetensors file or not a checkpoint
/// ("not an isola checkpoint (...)": no metadata, wrong format tag, missing or invalid
/// state/config JSON, a tensor that is not f32).
pub fn load(path: &Path, device: &Device) -> anyhow::Result<Checkpoint> {
    let bad = |what: &str| anyhow::anyhow!("{}: not an isola checkpoint ({what})", path.display());
    let file = match TensorFile::read(path) {
        Ok(file) => file,
        Err(TensorFileError::Format { problem, .. }) => return Err(bad(&problem.to_string())),
        Err(TensorFileError::Read { cause, .. }) => {
            return Err(anyhow::anyhow!("cannot read checkpoint {}: {cause}", path.display()));
        }
        Err(e) => return Err(e.into()),
    };
    let info = file.metadata();
    if info.is_empty() {
        return Err(bad("no metadata"));
    }
    if !tagged(info) {
        if info.contains_key(isola_engine::weights::FORMAT_KEY) {
            anyhow::bail!(
                "{}: these are exported weights (what isola export makes), not a training checkpoint: \
                 use them as they are (--weights), or fine-tune from them (isola train --init)",
                path.display()
            );
        }
        return Err(bad("wrong format tag"));
    }
    let json = |key: &str| info.get(key).ok_or_else(|| bad(&format!("no {}", key.trim_start_matches("isola."))));
    let state: TrainState =
        serde_json::from_str(json("isola.state")?).map_err(|e| bad(&format!("invalid state: {e}")))?;
    let config = config_from_json(json("isola.config")?).map_err(|e| bad(&format!("invalid config: {e}")))?;
    let tensors = match file.tensors() {
        Ok(t) => t,
        Err(TensorFileError::Format { problem, .. }) => return Err(bad(&problem.to_string())),
        Err(e) => return Err(e.into()),
    };
    let (mut model, mut optimizer) = (HashMap::new(), HashMap::new());
    for (name, t) in tensors {
        let t = Tensor::from_vec(t.data, t.shape, device)?;
        match name.strip_prefix("model.") {
            Some(n) => model.insert(n.to_string(), t),
            None => optimizer.insert(name, t),
        };
    }
    Ok(Checkpoint { config, state, model, optimizer })
}

/// How [`crate::train::run`] starts. `false` and `true` convert to [`Start::Fresh`] and
/// [`Start::Resume`], [`InitWeights`] to [`Start::Init`].
#[derive(Debug, Clone)]
pub enum Start {
    /// Random weights (seeded), input normalisation measured on the data.
    Fresh,
    /// Continue the run in `out` from its checkpoint (its saved config wins).
    Resume,
    /// Fine-tune: start from these weights, normalisation included, with a fresh
    /// optimiser at step 0. The run's model config must match them.
    Init(Box<InitWeights>),
}

impl From<bool> for Start {
    fn from(resume: bool) -> Self {
        if resume { Start::Resume } else { Start::Fresh }
    }
}

impl From<InitWeights> for Start {
    fn from(init: InitWeights) -> Self {
        Start::Init(Box::new(init))
    }
}

/// The model settings of a [`TrainConfig`] that must match the weights a run starts from
/// (the keys a config file may set).
pub const MODEL_KEYS: [&str; 6] = ["stft", "hidden", "gru_layers", "lookahead", "feature_floor_db", "band_dim"];

/// `source`, followed by what `weights` were themselves fine-tuned from (the chain their
/// notes record, back to weights trained from scratch), so that fine-tuning a fine-tuned
/// model keeps the whole lineage: `runs/b/best.safetensors ("b"), itself fine-tuned from
/// runs/a/best.safetensors ("a"), itself fine-tuned from built-in default "…"`.
fn with_lineage(source: String, weights: &Weights) -> String {
    match weights.meta.provenance.notes.split_once(FINE_TUNED_FROM) {
        Some((_, earlier)) => format!("{source}, itself {FINE_TUNED_FROM}{earlier}"),
        None => source,
    }
}

/// How exported notes introduce what a model was fine-tuned from.
pub const FINE_TUNED_FROM: &str = "fine-tuned from ";

/// Weights a fine-tuning run starts from (`isola train --init`), validated against the
/// weights contract.
#[derive(Debug, Clone)]
pub struct InitWeights {
    /// Where they came from, for messages and provenance: `built-in default "NAME"`,
    /// `PATH ("NAME")` for a weights file, `PATH (checkpoint at step N)`.
    pub source: String,
    pub weights: Weights,
}

impl InitWeights {
    /// Reads `spec`: the word [`isola_engine::embedded::BUILT_IN`] (the built-in light weights), an exported
    /// weights file (validated as the plugin validates it) or a training checkpoint (its
    /// model tensors only, validated against its own config).
    ///
    /// Errors name the file: unreadable, neither weights nor a checkpoint, or invalid.
    pub fn load(spec: &Path) -> anyhow::Result<Self> {
        if isola_engine::embedded::is_built_in(spec) {
            let weights = isola_engine::embedded::light().context("built-in default weights")?;
            let source = format!("built-in default {:?}", weights.meta.provenance.name);
            return Ok(Self { source, weights });
        }
        let file = TensorFile::read(spec).with_context(|| {
            // A bare word that is not a file is most likely a misspelt `default`.
            let bare = spec.components().count() == 1 && spec.extension().is_none() && !spec.exists();
            if bare {
                "cannot read the --init weights (`default` names the built-in weights)"
            } else {
                "cannot read the --init weights"
            }
        })?;
        if tagged(file.metadata()) {
            drop(file);
            let ck = load(spec, &Device::Cpu)?;
            let weights = crate::export::weights_from_checkpoint(&ck, &Default::default())
                .with_context(|| format!("checkpoint {} does not make valid weights", spec.display()))?;
            let source = format!("{} (checkpoint at step {})", spec.display(), ck.state.step);
            return Ok(Self { source: with_lineage(source, &weights), weights });
        }
        let what = if file.metadata().contains_key(isola_engine::weights::FORMAT_KEY) {
            "invalid weights"
        } else {
            "neither Isola weights (isola export) nor a training checkpoint"
        };
        drop(file);
        let weights = Weights::load(spec).with_context(|| format!("--init {}: {what}", spec.display()))?;
        let name = &weights.meta.provenance.name;
        let source =
            if name.is_empty() { spec.display().to_string() } else { format!("{} ({name:?})", spec.display()) };
        Ok(Self { source: with_lineage(source, &weights), weights })
    }

    /// Each model setting where `cfg` differs from these weights and a fine-tuning run cannot
    /// follow, as `"hidden 256 vs the run's 128"` (the weights' value first). The frame grid
    /// is not among them ([`InitWeights::grid_changes`]).
    pub fn mismatches(&self, cfg: &TrainConfig) -> Vec<String> {
        self.differences(cfg).into_iter().filter(|(grid, _)| !grid).map(|(_, d)| d).collect()
    }

    /// Where the run's STFT grid differs from these weights' in a way fine-tuning can follow
    /// (hop, window pair), same form as [`InitWeights::mismatches`]: the network's shapes and
    /// bin frequencies depend only on the sample rate and FFT size, so weights trained on one
    /// hop or window pair can be fine-tuned onto another, such as a low-latency mode's
    /// (issue 18). The fine-tuned model then starts from a network that saw other frames.
    pub fn grid_changes(&self, cfg: &TrainConfig) -> Vec<String> {
        self.differences(cfg).into_iter().filter(|(grid, _)| *grid).map(|(_, d)| d).collect()
    }

    /// Every setting where `cfg` differs from these weights, each with whether it is a
    /// grid change a fine-tuning run can follow (the hop and the window pair).
    fn differences(&self, cfg: &TrainConfig) -> Vec<(bool, String)> {
        let (m, s, run) = (&self.weights.meta.model, &self.weights.meta.stft, cfg.model());
        let pairs = [
            ("stft sample_rate", false, s.sample_rate.to_string(), cfg.stft.sample_rate.to_string()),
            ("stft fft_size", false, s.fft_size.to_string(), cfg.stft.fft_size.to_string()),
            ("stft hop", true, s.hop.to_string(), cfg.stft.hop.to_string()),
            ("stft window", true, s.window.name().to_owned(), cfg.stft.window.name().to_owned()),
            ("stft synthesis_len", true, s.synthesis_span().to_string(), cfg.stft.synthesis_span().to_string()),
            ("hidden", false, m.hidden.to_string(), cfg.hidden.to_string()),
            ("gru_layers", false, m.gru_layers.to_string(), cfg.gru_layers.to_string()),
            ("lookahead", false, m.lookahead.to_string(), cfg.lookahead.to_string()),
            ("feature_floor_db", false, m.feature_floor_db.to_string(), cfg.feature_floor_db.to_string()),
            ("band_dim", false, m.band_dim.to_string(), cfg.band_dim.to_string()),
            ("channels", false, m.channels.to_string(), run.channels.to_string()),
        ];
        let mut out: Vec<(bool, String)> = pairs
            .iter()
            .filter(|(_, _, i, r)| i != r)
            .map(|(w, grid, i, r)| (*grid, format!("{w} {i} vs the run's {r}")))
            .collect();
        if out.is_empty() && *m != run {
            // Anything else (a model field this check does not list yet).
            out.push((false, format!("model {m:?} vs the run's {run:?}")));
        }
        out
    }

    /// Ok when the run's model and STFT are these weights', up to [grid
    /// changes](InitWeights::grid_changes); otherwise an error naming the weights and every
    /// difference.
    pub fn check(&self, cfg: &TrainConfig) -> anyhow::Result<()> {
        let diffs = self.mismatches(cfg);
        anyhow::ensure!(
            diffs.is_empty(),
            "init weights {}: {} (a fine-tuning run keeps the model it starts from: set these to the \
             weights' values in the config, or leave them out to take the weights')",
            self.source,
            diffs.join("; ")
        );
        Ok(())
    }

    /// Sets every model setting of `cfg` ([`MODEL_KEYS`]) that is not in `keep` to these
    /// weights' value, and returns what changed (`"hidden 256 (instead of 128)"`).
    pub fn adopt(&self, cfg: &mut TrainConfig, keep: &[&str]) -> Vec<String> {
        let (m, s) = (self.weights.meta.model, self.weights.meta.stft);
        let before = cfg.clone();
        let take = |key: &str| !keep.contains(&key);
        if take("stft") {
            cfg.stft = s;
        }
        if take("hidden") {
            cfg.hidden = m.hidden;
        }
        if take("gru_layers") {
            cfg.gru_layers = m.gru_layers;
        }
        if take("lookahead") {
            cfg.lookahead = m.lookahead;
        }
        if take("feature_floor_db") {
            cfg.feature_floor_db = m.feature_floor_db;
        }
        if take("band_dim") {
            cfg.band_dim = m.band_dim;
        }
        let mut changed = Vec::new();
        let s0 = before.stft;
        if cfg.stft != s0 {
            changed.push(format!("stft {s} (instead of {s0})"));
        }
        for (what, new, old) in [
            ("hidden", cfg.hidden.to_string(), before.hidden.to_string()),
            ("gru_layers", cfg.gru_layers.to_string(), before.gru_layers.to_string()),
            ("lookahead", cfg.lookahead.to_string(), before.lookahead.to_string()),
            ("feature_floor_db", cfg.feature_floor_db.to_string(), before.feature_floor_db.to_string()),
            ("band_dim", cfg.band_dim.to_string(), before.band_dim.to_string()),
        ] {
            if new != old {
                changed.push(format!("{what} {new} (instead of {old})"));
            }
        }
        changed
    }
}

/// A checkpoint's config. Options added after the checkpoint was written take their
/// defaults, except augmentations and the feature floor: a run that started without them
/// resumes without them (their probabilities read as 0, the floor as the legacy one), so a
/// resumed run trains as it began.
fn config_from_json(text: &str) -> serde_json::Result<TrainConfig> {
    let mut value: serde_json::Value = serde_json::from_str(text)?;
    if let Some(map) = value.as_object_mut() {
        for key in super::augment::PROBABILITY_KEYS {
            map.entry(key).or_insert(serde_json::json!(0.0));
        }
        map.entry("feature_floor_db").or_insert(serde_json::json!(isola_engine::features::LEGACY_FLOOR_DB));
    }
    serde_json::from_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fine-tuning a fine-tuned model keeps the chain its notes record.
    #[test]
    fn init_weights_name_their_whole_lineage() {
        let d = tempfile::tempdir().unwrap();
        let stft = isola_engine::StftConfig::default();
        let mut a = isola_engine::weights::random_weights(isola_engine::ModelConfig::light(&stft), stft, 1);
        a.meta.provenance.name = "a".into();
        a.meta.provenance.notes = format!("isola train: seed 0; {FINE_TUNED_FROM}built-in default \"Isola light\"");
        let path = d.path().join("a.safetensors");
        a.save(&path).unwrap();
        let init = InitWeights::load(&path).unwrap();
        assert_eq!(
            init.source,
            format!("{} (\"a\"), itself fine-tuned from built-in default \"Isola light\"", path.display())
        );
        // Weights trained from scratch have no earlier link.
        a.meta.provenance.notes = "isola train: seed 0".into();
        a.save(&path).unwrap();
        assert_eq!(InitWeights::load(&path).unwrap().source, format!("{} (\"a\")", path.display()));
    }

    #[test]
    fn a_checkpoint_from_before_the_augmentations_resumes_without_them() {
        let mut old = serde_json::to_value(TrainConfig::default()).unwrap();
        for key in super::super::augment::PROBABILITY_KEYS.into_iter().chain(["feature_floor_db"]) {
            old.as_object_mut().unwrap().remove(key);
        }
        let c = config_from_json(&old.to_string()).unwrap();
        assert_eq!((c.eq_prob, c.reverb_prob, c.backing_prob, c.noise_floor_prob), (0.0, 0.0, 0.0, 0.0));
        assert_eq!(c.feature_floor_db, isola_engine::features::LEGACY_FLOOR_DB);
        // A config that has them keeps them.
        let now = config_from_json(&serde_json::to_string(&TrainConfig::default()).unwrap()).unwrap();
        assert_eq!(now, TrainConfig::default());
    }

    #[test]
    fn round_trip_and_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("checkpoint.safetensors");
        let dev = Device::Cpu;
        let model =
            HashMap::from([("fc1.weight".to_string(), Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &dev).unwrap())]);
        let opt = HashMap::from([(
            "adam.m.fc1.weight".to_string(),
            Tensor::new(&[[0.5f32, 0.0], [0.0, 0.5]], &dev).unwrap(),
        )]);
        let state = TrainState { step: 42, epoch: 2, best_val_sdr: Some(3.5), ..Default::default() };
        let config = TrainConfig { data: vec!["x".into()], ..Default::default() };
        save(&path, &config, &state, &model, &opt).unwrap();
        save(&path, &config, &state, &model, &opt).unwrap(); // overwrite in place
        let c = load(&path, &dev).unwrap();
        assert_eq!((c.state, c.config), (state, config));
        assert_eq!(c.model["fc1.weight"].to_vec2::<f32>().unwrap(), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(c.optimizer["adam.m.fc1.weight"].to_vec2::<f32>().unwrap(), vec![vec![0.5, 0.0], vec![0.0, 0.5]]);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "temp file renamed away");
        std::fs::write(&path, b"garbage").unwrap();
        assert!(load(&path, &dev).unwrap_err().to_string().contains("not an isola checkpoint"));
    }

    #[test]
    fn init_mismatches_and_adoption() {
        let init = InitWeights {
            source: "w.safetensors".into(),
            weights: isola_engine::weights::random_weights(
                isola_engine::ModelConfig { hidden: 8, gru_layers: 1, lookahead: 2, ..TrainConfig::default().model() },
                TrainConfig::default().stft,
                1,
            ),
        };
        let mut cfg = TrainConfig { lookahead: 2, ..TrainConfig::default() };
        cfg.stft.window = isola_engine::config::Window::Hann;
        assert_eq!(init.mismatches(&cfg), ["hidden 8 vs the run's 128", "gru_layers 1 vs the run's 3"]);
        assert!(init.check(&cfg).unwrap_err().to_string().contains("hidden 8 vs the run's 128"));
        let changed = init.adopt(&mut cfg, &["stft", "lookahead"]);
        assert_eq!(changed, ["hidden 8 (instead of 128)", "gru_layers 1 (instead of 3)"]);
        // Another window pair and hop (a low-latency grid) can be fine-tuned onto.
        cfg.stft.hop /= 2;
        cfg.stft.synthesis_len = Some(2 * cfg.stft.hop);
        assert_eq!(init.mismatches(&cfg), Vec::<String>::new());
        assert_eq!(
            init.grid_changes(&cfg),
            [
                "stft hop 252 vs the run's 126",
                "stft window sqrt-hann vs the run's hann",
                "stft synthesis_len 1008 vs the run's 252"
            ]
        );
        init.check(&cfg).unwrap();
        // Another FFT size changes the network's shapes.
        let mut other = cfg.clone();
        other.stft.fft_size = 512;
        assert!(init.mismatches(&other).iter().any(|d| d.starts_with("stft fft_size 1008")));
        assert!(init.check(&other).is_err());
        init.adopt(&mut cfg, &[]);
        assert!(init.grid_changes(&cfg).is_empty());
        init.check(&cfg).unwrap();
        // Checkpoints from before fine-tuning existed still load.
        let old: TrainState = serde_json::from_str(r#"{"step":3,"epoch":0,"best_val_sdr":null,"best_step":0,"last_val_sdr":null,"last_val_step":0,"epochs_without_improvement":0,"finished":false}"#).unwrap();
        assert_eq!(old, TrainState { step: 3, ..Default::default() });
    }
}
