//! Isola's engine: the one place where the STFT, the mask network and the weights format
//! live. The plugin and the trainer both build on it, so evaluation measures exactly what
//! the plugin plays.
//!
//! - [`config`]: STFT and model configuration (serialised into every weights file).
//! - [`weights`]: the `.safetensors` weights contract and its validating loader.
//! - [`embedded`]: the default light and worker weights compiled into every build.
//! - [`model`]: the mask network in candle (training, worker thread; never the audio thread).
//! - [`offline`]: whole-signal feature extraction (training), same analysis as the rt STFT.
//! - [`render`]: the offline render loop over whole signals (`isola separate`/`eval`, tests).
//! - [`worker`]: the inference worker thread (heavier model, candle); its audio-side link
//!   (queues, deadline) is [`rt::link`].
//! - [`atomic_file`]: atomic file and folder output, the one way Isola writes files.
//! - [`synth`]: synthetic music (tests, benches, `isola data synth`).
//! - [`rt`]: audio-thread code: streaming STFT, allocation-free network port, [`rt::Separator`].
//!   Nothing under `rt/` uses candle.

pub mod atomic_file;
pub mod config;
pub mod embedded;
pub mod error;
pub mod features;
pub mod model;
pub mod offline;
pub mod render;
pub mod rt;
pub mod synth;
pub mod tensor_file;
pub mod weights;
pub mod worker;

pub use config::{ConfigError, ModelConfig, StftConfig, Window};
pub use error::EngineError;
pub use rt::{OutputMode, RtMaskNet, Separator, SeparatorParams};
pub use weights::{Provenance, Weights, WeightsError};

/// Re-exported so dependants use the engine's candle versions.
pub use candle_core;
pub use candle_nn;
