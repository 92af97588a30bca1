//! Errors raised while building or preparing the engine (never while processing).

use crate::config::ConfigError;
use crate::weights::WeightsError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("unsupported channel count {0}: Isola processes mono or stereo")]
    Channels(usize),
    #[error(
        "unsupported sample rate {0} Hz (the separator runs at {min}..={max} Hz)",
        min = crate::config::MIN_SAMPLE_RATE,
        max = crate::config::MAX_SAMPLE_RATE
    )]
    SampleRate(f32),
    #[error("inference worker: {0}")]
    Worker(String),
    #[error("worker model does not fit the light model: {0}")]
    WorkerMismatch(String),
}
