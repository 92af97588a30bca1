//! The weights compiled into every build, from `assets/weights/` (their training configs lie
//! beside them): the light default the audio thread runs and the default worker weights
//! (the heavier network of Quality = Worker). The plugin and the CLI both take them from
//! here.

use crate::weights::{Weights, WeightsError};

/// `assets/weights/default.safetensors`, trained by `assets/weights/default.toml`.
pub const LIGHT_BYTES: &[u8] = include_bytes!("../../assets/weights/default.safetensors");

/// `assets/weights/worker.safetensors`, trained by `assets/weights/worker.toml`; same frame
/// grid as the light default.
pub const WORKER_BYTES: &[u8] = include_bytes!("../../assets/weights/worker.safetensors");

/// The word that names the built-in weights where a weights file is expected (`isola train
/// --init default`, `--worker-weights default`).
pub const BUILT_IN: &str = "default";

/// Whether a weights argument names the built-in weights ([`BUILT_IN`]) rather than a file.
pub fn is_built_in(spec: &std::path::Path) -> bool {
    spec.as_os_str() == BUILT_IN
}

/// Parses and validates [`LIGHT_BYTES`]. Any thread but the audio thread (allocates).
pub fn light() -> Result<Weights, WeightsError> {
    Weights::from_bytes(LIGHT_BYTES)
}

/// Parses and validates [`WORKER_BYTES`]. Any thread but the audio thread (allocates).
pub fn worker() -> Result<Weights, WeightsError> {
    Weights::from_bytes(WORKER_BYTES)
}

#[cfg(test)]
mod tests {
    use crate::config::StftConfig;

    #[test]
    fn embedded_weights_share_the_default_grid() {
        let (light, worker) = (super::light().unwrap(), super::worker().unwrap());
        // A plain `isola train` makes weights the shipped worker accepts.
        assert_eq!(light.meta.stft, StftConfig::default());
        assert_eq!(light.meta.model.frame_grid(&light.meta.stft), worker.meta.model.frame_grid(&worker.meta.stft));
        assert!(worker.meta.model.param_count() > light.meta.model.param_count());
    }
}
