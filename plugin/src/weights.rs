//! Weights: loading a file or the embedded default, naming it for people, and building the
//! real-time network from it. Allocates and does IO: any thread but the audio thread (the
//! background executor, `activate()`, the editor, tests).

use std::fmt;
use std::sync::Arc;

use isola_engine::embedded::LatencyMode;
use isola_engine::rt::RtMaskNet;
use isola_engine::weights::{Weights, WeightsError};

/// Where a model came from: a file, or (`path` = `None`) the built-in weights of a latency
/// mode.
#[derive(Clone)]
pub struct ModelInfo {
    pub path: Option<String>,
    /// The latency mode whose built-in weights these are; `None` for a file.
    pub mode: Option<LatencyMode>,
    pub name: String,
    pub weights: Arc<Weights>,
}

impl ModelInfo {
    /// What a load of (`path`, `mode`) would give, for comparing with a running model: a
    /// file is the same whatever the mode.
    pub fn source(path: Option<&str>, mode: LatencyMode) -> (Option<String>, Option<LatencyMode>) {
        (path.map(str::to_owned), path.is_none().then_some(mode))
    }

    /// This model's [`source`](Self::source).
    pub fn source_of(&self) -> (Option<String>, Option<LatencyMode>) {
        (self.path.clone(), self.mode)
    }
}

/// A readable loading error.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// What the editor shows about a model (from its weights metadata).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelSummary {
    /// Rate the model was trained at (Hz).
    pub sample_rate: u32,
    pub datasets: Vec<String>,
    /// Median validation vocals SDR in dB, if measured.
    pub validation_sdr_db: Option<f32>,
    pub notes: String,
}

impl ModelSummary {
    /// Reads `info`'s metadata. Allocates: any thread but the audio thread.
    pub fn of(info: &ModelInfo) -> Self {
        let meta = &info.weights.meta;
        Self {
            sample_rate: meta.stft.sample_rate,
            datasets: dataset_names(&meta.provenance.datasets),
            validation_sdr_db: meta.provenance.validation_sdr_db,
            notes: meta.provenance.notes.clone(),
        }
    }
}

/// Loads weights from a path or the built-in light weights of latency `mode`. Allocates and
/// does IO: never call it on the audio thread.
pub fn load_weights(path: Option<&str>, mode: LatencyMode) -> Result<ModelInfo, LoadError> {
    load_from(path, mode, || mode.light().map_err(|e| invalid_built_in(mode, e)))
}

/// Loads worker weights from a path or the built-in worker weights of latency `mode`.
/// Not for the audio thread.
pub fn load_worker_weights(path: Option<&str>, mode: LatencyMode) -> Result<ModelInfo, LoadError> {
    load_from(path, mode, || mode.worker().map_err(|e| invalid_built_in(mode, e)))
}

fn invalid_built_in(mode: LatencyMode, e: WeightsError) -> LoadError {
    LoadError(format!("built-in weights of Latency = {mode} are invalid: {e}"))
}

fn load_from(
    path: Option<&str>,
    mode: LatencyMode,
    built_in: impl FnOnce() -> Result<Weights, LoadError>,
) -> Result<ModelInfo, LoadError> {
    let weights = match path {
        Some(p) => Weights::load(p).map_err(|e| LoadError(format!("cannot load weights '{p}': {e}")))?,
        None => built_in()?,
    };
    let name = display_name(&weights.meta.provenance.name, path);
    let (path, mode) = ModelInfo::source(path, mode);
    Ok(ModelInfo { path, mode, name, weights: Arc::new(weights) })
}

/// How the editor and the log name a model: its metadata name and where it came from, each
/// once (`Isola light (default), embedded`; `My model, /path/to/file.safetensors`; a file
/// without a name is its path). Allocates: any thread but the audio thread.
pub fn display_name(meta_name: &str, path: Option<&str>) -> String {
    match (meta_name.trim(), path) {
        ("", None) => "embedded default".to_owned(),
        ("", Some(p)) => p.to_owned(),
        (name, None) => format!("{name}, embedded"),
        (name, Some(p)) => format!("{name}, {p}"),
    }
}

/// A weights file's data-set entries as people name them. The trainer records its `--data`
/// arguments (`DIR`, `vocals:DIR`, `instrumental:DIR`); the folder name says more than a
/// relative path (`../isola-split/vocals` → `vocals (isolated vocals)`). Plain names pass
/// through unchanged. Allocates: any thread but the audio thread.
pub fn dataset_names(datasets: &[String]) -> Vec<String> {
    datasets
        .iter()
        .map(|d| {
            let (role, path) = match d.split_once(':') {
                Some(("vocals", p)) => (Some("isolated vocals"), p),
                Some(("instrumental", p)) => (Some("instrumentals"), p),
                _ => (None, d.as_str()),
            };
            let name = std::path::Path::new(path.trim_end_matches(['/', '\\']))
                .file_name()
                .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned());
            match role {
                Some(role) => format!("{name} ({role})"),
                None => name,
            }
        })
        .collect()
}

/// Builds the real-time network for loaded weights. Allocates: never on the audio thread.
pub fn build_net(info: &ModelInfo) -> Result<Box<RtMaskNet>, LoadError> {
    RtMaskNet::new(&info.weights)
        .map(Box::new)
        .map_err(|e| LoadError(format!("weights '{}' do not fit the engine: {e}", info.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("isola-model-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn unreadable_weights_give_readable_errors() {
        let missing = load_weights(Some("/definitely/not/here.safetensors"), LatencyMode::Ms23).err().unwrap();
        assert!(missing.0.contains("cannot load weights '/definitely/not/here.safetensors'"), "{missing}");
        let dir = temp_dir("errors");
        let bad = dir.join("bad.safetensors");
        std::fs::write(&bad, b"garbage").unwrap();
        let err = load_weights(Some(bad.to_str().unwrap()), LatencyMode::Ms6).err().unwrap();
        assert!(err.0.starts_with("cannot load weights"), "{err}");
        assert!(err.0.len() > "cannot load weights ''".len() + bad.to_str().unwrap().len());
        let default = load_weights(None, LatencyMode::default()).unwrap();
        assert_eq!(default.name, "Isola light (default), embedded");
        assert!(default.path.is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn each_latency_mode_loads_its_own_built_in_weights() {
        for mode in LatencyMode::ALL {
            let info = load_weights(None, mode).unwrap();
            assert_eq!((info.path.as_deref(), info.mode), (None, Some(mode)));
            assert_eq!(info.weights.meta, mode.light().unwrap().meta, "{mode}");
            let worker = load_worker_weights(None, mode).unwrap();
            assert_eq!((worker.path.as_deref(), worker.mode), (None, Some(mode)));
            assert_eq!(worker.weights.meta, mode.worker().unwrap().meta, "{mode}");
        }
        // A file is the same model whatever the mode.
        assert_eq!(ModelInfo::source(Some("/w.safetensors"), LatencyMode::Ms6), (Some("/w.safetensors".into()), None));
        assert_eq!(ModelInfo::source(None, LatencyMode::Ms6), (None, Some(LatencyMode::Ms6)));
    }

    #[test]
    fn model_and_data_set_names_read_as_names() {
        assert_eq!(display_name("", None), "embedded default");
        assert_eq!(display_name(" ", Some("/w/x.safetensors")), "/w/x.safetensors");
        assert_eq!(display_name("Mine", Some("/w/x.safetensors")), "Mine, /w/x.safetensors");
        let default = load_weights(None, LatencyMode::default()).unwrap();
        let worker = load_worker_weights(None, LatencyMode::default()).unwrap();
        assert_eq!(worker.name, "Isola worker (default), embedded");
        for info in [&default, &worker] {
            assert_eq!(info.name.matches("default").count(), 1, "{}", info.name);
            let summary = ModelSummary::of(info);
            assert!(!summary.datasets.is_empty());
            for d in &summary.datasets {
                assert!(!d.contains("..") && !d.contains('/') && !d.contains(':'), "{d:?} is a path, not a name");
            }
        }
        let trainer_args = ["../split/tracks", "vocals:../split/vocals/", "instrumental:/data/music", "MUSDB18-HQ"];
        assert_eq!(
            dataset_names(&trainer_args.map(String::from)),
            ["tracks", "vocals (isolated vocals)", "music (instrumentals)", "MUSDB18-HQ"]
        );
    }
}
