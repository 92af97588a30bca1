//! The weights file: one `.safetensors` with every tensor of [`ModelConfig::tensor_specs`]
//! (f32, little endian) and metadata describing the model, its STFT and where it came from.
//!
//! Metadata keys (all strings, as safetensors requires):
//! - `format` = `"isola-weights"`, `format_version` = [`FORMAT_VERSION`]
//! - `model_config`, `stft_config`, `provenance`: JSON of the corresponding structs.
//!
//! The loader checks everything it can before anything touches the audio thread and
//! names the problem in its error; it never panics on a bad file. Reading and the atomic
//! write go through [`crate::tensor_file`], the reader/writer the trainer's checkpoints use.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, ModelConfig, StftConfig, tensor_names};
use crate::tensor_file::{self, FormatError, TensorFile, TensorFileError};

/// One named tensor: row-major f32 data with its shape (defined with the file reader).
pub use crate::tensor_file::Tensor;

pub const FORMAT_NAME: &str = "isola-weights";
/// The metadata key holding [`FORMAT_NAME`].
pub const FORMAT_KEY: &str = "format";
pub const FORMAT_VERSION: u32 = 1;

/// Why a weights file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights file {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("not a valid safetensors file (truncated or corrupt?): {0}")]
    Container(String),
    #[error("metadata key `{0}` is missing: not an Isola weights file?")]
    MissingMetadata(&'static str),
    #[error("metadata `format` is {0:?}, expected \"isola-weights\"")]
    WrongFormat(String),
    #[error("weights format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion { found: String, supported: u32 },
    #[error("metadata `{key}` is not valid JSON for its type: {message}")]
    BadMetadata { key: &'static str, message: String },
    #[error("invalid configuration in weights: {0}")]
    Config(#[from] ConfigError),
    #[error("tensor `{0}` is missing")]
    MissingTensor(String),
    #[error("tensor `{0}` is not part of this model's weights contract")]
    UnknownTensor(String),
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    WrongShape { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor `{name}` has dtype {found}, expected F32")]
    WrongDtype { name: String, found: String },
    #[error("tensor `{name}` contains a non-finite value at index {index}")]
    NonFinite { name: String, index: usize },
}

/// Container problems keep the variants (and messages) the weights loader always had;
/// read failures name the file.
impl From<TensorFileError> for WeightsError {
    fn from(e: TensorFileError) -> Self {
        match e {
            TensorFileError::Read { path, cause } | TensorFileError::Write { path, cause, .. } => {
                WeightsError::Io { path: path.display().to_string(), cause }
            }
            TensorFileError::Format { problem, .. } => match problem {
                FormatError::Container(message) => WeightsError::Container(message),
                FormatError::WrongDtype { name, found } => WeightsError::WrongDtype { name, found },
                bad @ FormatError::BadTensor { .. } => WeightsError::Container(bad.to_string()),
            },
        }
    }
}

/// Where a set of weights came from: shown to users, never used for computation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Short human name, e.g. "Isola light (default)".
    pub name: String,
    /// Data sets the weights were trained on.
    pub datasets: Vec<String>,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Median vocals SDR (dB) on held-out validation tracks, if measured.
    pub validation_sdr_db: Option<f32>,
    /// Commit of the code that trained them.
    pub git_commit: Option<String>,
    /// Anything else worth knowing (placeholder status, licences, ...).
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeightsMeta {
    pub format_version: u32,
    pub model: ModelConfig,
    pub stft: StftConfig,
    pub provenance: Provenance,
}

/// Validated weights: every tensor of the contract, with the right shape, finite.
#[derive(Debug, Clone)]
pub struct Weights {
    pub meta: WeightsMeta,
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    /// Builds weights from tensors, checking them against `model`/`stft` exactly as
    /// loading a file would.
    pub fn new(
        model: ModelConfig,
        stft: StftConfig,
        provenance: Provenance,
        tensors: HashMap<String, Tensor>,
    ) -> Result<Self, WeightsError> {
        model.validate_with(&stft)?;
        check_tensors(&model, &tensors)?;
        Ok(Self { meta: WeightsMeta { format_version: FORMAT_VERSION, model, stft, provenance }, tensors })
    }

    /// Reads and validates a weights file. Any thread but the audio thread.
    ///
    /// Errors: [`WeightsError::Io`] (naming the file) when it cannot be read, otherwise
    /// the same errors as [`Weights::from_bytes`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        Self::from_file(&TensorFile::read(path).map_err(WeightsError::from)?)
    }

    /// Parses and validates weights from memory (e.g. embedded with `include_bytes!`).
    ///
    /// Checks, in order: the safetensors container ([`WeightsError::Container`]), the
    /// metadata (format tag, version, JSON of the configs and provenance), the
    /// configuration, then every tensor (dtype F32, presence, shape, finite values).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WeightsError> {
        Self::from_file(&TensorFile::parse(bytes).map_err(WeightsError::from)?)
    }

    /// Validates a parsed container: metadata first, then the tensors.
    fn from_file(file: &TensorFile<'_>) -> Result<Self, WeightsError> {
        let meta_map = file.metadata();
        let get = |key: &'static str| meta_map.get(key).ok_or(WeightsError::MissingMetadata(key));

        let format = get(FORMAT_KEY)?;
        if format != FORMAT_NAME {
            return Err(WeightsError::WrongFormat(format.clone()));
        }
        let version = get("format_version")?;
        if version.parse::<u32>().ok() != Some(FORMAT_VERSION) {
            return Err(WeightsError::UnsupportedVersion { found: version.clone(), supported: FORMAT_VERSION });
        }
        let model: ModelConfig = parse_json(get("model_config")?, "model_config")?;
        let stft: StftConfig = parse_json(get("stft_config")?, "stft_config")?;
        let provenance: Provenance = parse_json(get("provenance")?, "provenance")?;
        model.validate_with(&stft)?;
        let tensors = file.tensors().map_err(WeightsError::from)?;
        Self::new(model, stft, provenance, tensors)
    }

    /// The file's metadata map: format tag and version, configs and provenance as JSON.
    fn metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            (FORMAT_KEY.to_string(), FORMAT_NAME.to_string()),
            ("format_version".to_string(), self.meta.format_version.to_string()),
            ("model_config".to_string(), to_json(&self.meta.model)),
            ("stft_config".to_string(), to_json(&self.meta.stft)),
            ("provenance".to_string(), to_json(&self.meta.provenance)),
        ])
    }

    /// Serialises to safetensors bytes with full metadata (the contents of [`Weights::save`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        tensor_file::to_bytes(&self.metadata(), &self.tensors).expect("validated tensors always serialise")
    }

    /// Writes the file atomically ([`tensor_file::write_atomic`]: temp file in the same
    /// folder, fsync, rename) so a crash never leaves half a file.
    ///
    /// Errors: [`TensorFileError::Write`] naming `path` and the step that failed.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), TensorFileError> {
        tensor_file::write_atomic(path, &self.metadata(), &self.tensors)
    }

    /// A tensor of the contract. Panics only for names outside the contract, which is a
    /// programming error (the loader guarantees every contract tensor exists).
    pub fn tensor(&self, name: &str) -> &Tensor {
        self.tensors.get(name).unwrap_or_else(|| panic!("`{name}` is not in the weights contract"))
    }

    pub fn tensors(&self) -> &HashMap<String, Tensor> {
        &self.tensors
    }
}

fn check_tensors(model: &ModelConfig, tensors: &HashMap<String, Tensor>) -> Result<(), WeightsError> {
    let specs = model.tensor_specs();
    for (name, shape) in &specs {
        let t = tensors.get(name).ok_or_else(|| WeightsError::MissingTensor(name.clone()))?;
        if &t.shape != shape || t.data.len() != shape.iter().product::<usize>() {
            return Err(WeightsError::WrongShape {
                name: name.clone(),
                expected: shape.clone(),
                found: t.shape.clone(),
            });
        }
        if let Some(index) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(WeightsError::NonFinite { name: name.clone(), index });
        }
    }
    let mut unknown: Vec<&String> = tensors.keys().filter(|k| !specs.iter().any(|(n, _)| n == *k)).collect();
    unknown.sort();
    if let Some(name) = unknown.first() {
        return Err(WeightsError::UnknownTensor((*name).clone()));
    }
    Ok(())
}

fn parse_json<T: for<'de> Deserialize<'de>>(s: &str, key: &'static str) -> Result<T, WeightsError> {
    serde_json::from_str(s).map_err(|e| WeightsError::BadMetadata { key, message: e.to_string() })
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("config structs always serialise")
}

/// Deterministic random weights for tests, benches and the labelled placeholder:
/// uniform(±1/sqrt(fan_in)) like PyTorch's default init, unit input scale.
pub fn random_weights(model: ModelConfig, stft: StftConfig, seed: u64) -> Weights {
    let mut rng = SplitMix64(seed);
    let tensors = model
        .tensor_specs()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let data = if name == tensor_names::INPUT_SCALE {
                vec![1.0; n]
            } else if name == tensor_names::INPUT_MEAN {
                // log-magnitudes of typical music sit around ln(1e-3)
                vec![-7.0; n]
            } else {
                let fan_in = *shape.last().unwrap_or(&1) as f32;
                let fan_in = if shape.len() == 1 { model.hidden as f32 } else { fan_in };
                // A band layer's `[D, F]` weight: each output sums one band (split) or D
                // embeddings (merge), not all F features.
                let banded = [tensor_names::BAND_IN, tensor_names::BAND_OUT].iter().any(|b| name.starts_with(b));
                let fan_in = if banded && shape.len() == 2 { shape[0] as f32 } else { fan_in };
                let bound = 1.0 / fan_in.sqrt();
                (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * bound).collect()
            };
            (name, Tensor { shape, data })
        })
        .collect();
    let provenance = Provenance {
        name: format!("random init (seed {seed})"),
        notes: "untrained: random weights for tests and placeholders".into(),
        ..Provenance::default()
    };
    Weights::new(model, stft, provenance, tensors).expect("random weights follow the contract")
}

/// Small dependency-free PRNG so weight generation is reproducible everywhere.
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}
