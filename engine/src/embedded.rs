//! The weights compiled into every build, from `assets/weights/` (their training configs lie
//! beside them): per [`LatencyMode`], a light network for the audio thread and worker weights
//! (the heavier network of Quality = Worker), each pair on the mode's STFT grid. The plugin and
//! the CLI both take them from here.

use crate::weights::{Weights, WeightsError};

/// `assets/weights/default.safetensors`, trained by `assets/weights/default.toml`: the light
/// weights of [`LatencyMode::Ms23`], the default mode.
pub const LIGHT_BYTES: &[u8] = include_bytes!("../../assets/weights/default.safetensors");

/// `assets/weights/latency-12ms.safetensors`, fine-tuned by `assets/weights/latency-12ms.toml`
/// from [`LIGHT_BYTES`].
pub const LIGHT_12MS_BYTES: &[u8] = include_bytes!("../../assets/weights/latency-12ms.safetensors");

/// `assets/weights/latency-6ms.safetensors`, trained by `assets/weights/latency-6ms.toml`.
pub const LIGHT_6MS_BYTES: &[u8] = include_bytes!("../../assets/weights/latency-6ms.safetensors");

/// `assets/weights/worker.safetensors`, trained by `assets/weights/worker.toml`; same frame
/// grid as the light default.
pub const WORKER_BYTES: &[u8] = include_bytes!("../../assets/weights/worker.safetensors");

/// `assets/weights/latency-12ms-worker.safetensors`, fine-tuned by
/// `assets/weights/latency-12ms-worker.toml` from [`WORKER_BYTES`].
pub const WORKER_12MS_BYTES: &[u8] = include_bytes!("../../assets/weights/latency-12ms-worker.safetensors");

/// `assets/weights/latency-6ms-worker.safetensors`, fine-tuned by
/// `assets/weights/latency-6ms-worker.toml` from [`WORKER_BYTES`].
pub const WORKER_6MS_BYTES: &[u8] = include_bytes!("../../assets/weights/latency-6ms-worker.safetensors");

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

/// A latency mode: which built-in light weights run, and so which STFT grid and algorithmic
/// latency. Each mode's weights were trained on its own grid (a model only runs on the grid
/// it was trained on). The low-latency modes use the asymmetric analysis/synthesis window
/// pair of [`StftConfig::synthesis_len`](crate::StftConfig::synthesis_len) (Mauler & Martin,
/// EUSIPCO 2007; Wang et al., IEEE/ACM TASLP 2023): a 1008-sample analysis window keeps the
/// frequency resolution of the default mode, and the short synthesis window sets the latency.
///
/// | mode | STFT at 44.1 kHz (FFT/hop/synthesis) | latency at 44.1 / 48 kHz |
/// |---|---|---|
/// | `Ms23` | 1008/252/1008 | 1007 samples = 22.8 ms / 1079 = 22.5 ms |
/// | `Ms12` | 1008/252/504 | 503 = 11.4 ms / 539 = 11.2 ms |
/// | `Ms6` | 1008/126/252 | 251 = 5.7 ms / 269 = 5.6 ms |
///
/// Quality = Light, even load and Quality = Worker add their hops on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LatencyMode {
    /// About 23 ms: the full-frame symmetric sqrt-Hann pair, the best separation.
    #[default]
    Ms23,
    /// At most 12 ms: the asymmetric pair with a 504-sample synthesis window.
    Ms12,
    /// At most 6 ms: the asymmetric pair with a 252-sample synthesis window at half the hop,
    /// so the network runs twice as often (a smaller network keeps the CPU load down).
    Ms6,
}

impl LatencyMode {
    /// Every mode, longest latency first.
    pub const ALL: [LatencyMode; 3] = [LatencyMode::Ms23, LatencyMode::Ms12, LatencyMode::Ms6];

    /// The mode's name in the CLI, the plugin state and file names: `23ms`, `12ms`, `6ms`.
    pub fn name(self) -> &'static str {
        match self {
            LatencyMode::Ms23 => "23ms",
            LatencyMode::Ms12 => "12ms",
            LatencyMode::Ms6 => "6ms",
        }
    }

    /// The mode's bound on its latency at 44.1 and 48 kHz, in milliseconds (Quality = Light).
    pub fn bound_ms(self) -> u32 {
        match self {
            LatencyMode::Ms23 => 23,
            LatencyMode::Ms12 => 12,
            LatencyMode::Ms6 => 6,
        }
    }

    /// A mode by [`name`](Self::name), also accepted as `23`, `23 ms`. `None` for anything else.
    pub fn from_name(name: &str) -> Option<LatencyMode> {
        let number = name.trim().trim_end_matches("ms").trim();
        LatencyMode::ALL.into_iter().find(|m| m.name().trim_end_matches("ms") == number)
    }

    /// The serialised bytes of the mode's built-in light weights.
    pub fn light_bytes(self) -> &'static [u8] {
        match self {
            LatencyMode::Ms23 => LIGHT_BYTES,
            LatencyMode::Ms12 => LIGHT_12MS_BYTES,
            LatencyMode::Ms6 => LIGHT_6MS_BYTES,
        }
    }

    /// Parses and validates the mode's built-in light weights. Any thread but the audio
    /// thread (allocates).
    pub fn light(self) -> Result<Weights, WeightsError> {
        Weights::from_bytes(self.light_bytes())
    }

    /// The serialised bytes of the mode's built-in worker weights (on the mode's grid).
    pub fn worker_bytes(self) -> &'static [u8] {
        match self {
            LatencyMode::Ms23 => WORKER_BYTES,
            LatencyMode::Ms12 => WORKER_12MS_BYTES,
            LatencyMode::Ms6 => WORKER_6MS_BYTES,
        }
    }

    /// Parses and validates the mode's built-in worker weights. Any thread but the audio
    /// thread (allocates).
    pub fn worker(self) -> Result<Weights, WeightsError> {
        Weights::from_bytes(self.worker_bytes())
    }
}

impl std::fmt::Display for LatencyMode {
    /// `23 ms`, `12 ms`, `6 ms`: the mode's bound, as people say it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.bound_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::LatencyMode;
    use crate::config::StftConfig;

    #[test]
    fn embedded_weights_share_the_default_grid() {
        let (light, worker) = (super::light().unwrap(), super::worker().unwrap());
        // A plain `isola train` makes weights the shipped worker accepts.
        assert_eq!(light.meta.stft, StftConfig::default());
        assert_eq!(light.meta.model.frame_grid(&light.meta.stft), worker.meta.model.frame_grid(&worker.meta.stft));
        assert!(worker.meta.model.param_count() > light.meta.model.param_count());
        assert_eq!(LatencyMode::default().light_bytes(), super::LIGHT_BYTES);
    }

    /// Each mode's weights hold its bound at both common rates (issue 18: ≤ 6 ms and ≤ 12 ms
    /// at 44.1 and 48 kHz) with the exact latency in samples, and each mode's worker runs on
    /// its light model's grid and is the larger network.
    #[test]
    fn each_mode_keeps_its_latency_bound() {
        let samples = [[1007, 1079], [503, 539], [251, 269]];
        for (mode, want) in LatencyMode::ALL.into_iter().zip(samples) {
            let light = mode.light().unwrap();
            let grid = light.meta.model.frame_grid(&light.meta.stft);
            for (rate, want) in [44_100.0, 48_000.0].into_iter().zip(want) {
                let latency = grid.latency_samples(rate, 0);
                assert_eq!(latency, want, "{mode} at {rate} Hz");
                let ms = latency as f64 * 1e3 / rate;
                assert!(ms <= f64::from(mode.bound_ms()), "{mode}: {ms:.2} ms at {rate} Hz");
            }
            assert_eq!(mode.to_string().replace(' ', ""), mode.name());
            let worker = mode.worker().unwrap();
            assert_eq!(worker.meta.model.frame_grid(&worker.meta.stft), grid, "{mode}");
            assert!(worker.meta.model.param_count() > light.meta.model.param_count(), "{mode}");
        }
    }

    #[test]
    fn modes_parse_by_name() {
        for mode in LatencyMode::ALL {
            assert_eq!(LatencyMode::from_name(mode.name()), Some(mode));
            assert_eq!(LatencyMode::from_name(&mode.to_string()), Some(mode));
        }
        assert_eq!(LatencyMode::from_name("6"), Some(LatencyMode::Ms6));
        assert_eq!(LatencyMode::from_name("5ms"), None);
        assert_eq!(LatencyMode::from_name(""), None);
    }
}
