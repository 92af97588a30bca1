//! Checkpoints: one safetensors file holding the model (`model.<name>`),
//! the AdamW moments (`adam.m.*`, `adam.v.*`) and, in its header metadata,
//! the training state and config as JSON. Read and written with the engine's
//! [`isola_engine::tensor_file`] (the weights file's reader and atomic writer):
//! a temp file, synced, then renamed over the old one, so a kill at any moment
//! leaves either the previous or the new checkpoint, never a torn one.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
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
        Err(TensorFileError::Read { source, .. }) => {
            return Err(anyhow::anyhow!("cannot read checkpoint {}: {source}", path.display()));
        }
        Err(e) => return Err(e.into()),
    };
    let info = file.metadata();
    if info.is_empty() {
        return Err(bad("no metadata"));
    }
    if info.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT_TAG) {
        return Err(bad("wrong format tag"));
    }
    let json = |key: &str| info.get(key).ok_or_else(|| bad(&format!("no {}", key.trim_start_matches("isola."))));
    let state: TrainState =
        serde_json::from_str(json("isola.state")?).map_err(|e| bad(&format!("invalid state: {e}")))?;
    let config: TrainConfig =
        serde_json::from_str(json("isola.config")?).map_err(|e| bad(&format!("invalid config: {e}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
