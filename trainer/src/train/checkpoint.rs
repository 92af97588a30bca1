//! Checkpoints: one safetensors file holding the model (`model.<name>`),
//! the AdamW moments (`adam.m.*`, `adam.v.*`) and, in its header metadata,
//! the training state and config as JSON. Written to a temp file, synced,
//! then renamed over the old one, so a kill at any moment leaves either the
//! previous or the new checkpoint, never a torn one.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
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

/// Writes atomically (temp + fsync + rename).
pub fn save(
    path: &Path,
    config: &TrainConfig,
    state: &TrainState,
    model: &HashMap<String, Tensor>,
    optimizer: &HashMap<String, Tensor>,
) -> anyhow::Result<()> {
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (prefix, set) in [("model.", model), ("", optimizer)] {
        for (name, t) in set {
            let data = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            named.push((format!("{prefix}{name}"), t.dims().to_vec(), bytes));
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let views = named
        .iter()
        .map(|(n, shape, bytes)| Ok((n.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let meta = HashMap::from([
        ("isola.format".to_string(), "isola-checkpoint".to_string()),
        ("isola.state".to_string(), serde_json::to_string(state)?),
        ("isola.config".to_string(), serde_json::to_string(config)?),
    ]);
    let bytes = safetensors::serialize(views, Some(meta))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move checkpoint into place at {}", path.display()))?;
    Ok(())
}

pub fn load(path: &Path, device: &Device) -> anyhow::Result<Checkpoint> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    let bad = |what: &str| anyhow::anyhow!("{}: not an isola checkpoint ({what})", path.display());
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(&e.to_string()))?;
    let info = meta.metadata().as_ref().ok_or_else(|| bad("no metadata"))?;
    if info.get("isola.format").map(String::as_str) != Some("isola-checkpoint") {
        return Err(bad("wrong format tag"));
    }
    let state: TrainState = serde_json::from_str(info.get("isola.state").ok_or_else(|| bad("no state"))?)?;
    let config: TrainConfig = serde_json::from_str(info.get("isola.config").ok_or_else(|| bad("no config"))?)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(&e.to_string()))?;
    let (mut model, mut optimizer) = (HashMap::new(), HashMap::new());
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(&format!("tensor {name} is not f32")));
        }
        let data: Vec<f32> =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        let t = Tensor::from_vec(data, view.shape(), device)?;
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
