//! STFT and model configuration: the numbers that make a set of weights meaningful.
//!
//! Both travel inside every weights file; the loader refuses weights whose tensors do not
//! match them, and the runtime derives its STFT grid from them.

use serde::{Deserialize, Serialize};

/// Lowest host sample rate the separator runs at (Hz). Below it (and above
/// [`MAX_SAMPLE_RATE`]) the plugin passes audio through, latency 0, stems silent.
pub const MIN_SAMPLE_RATE: f64 = 8_000.0;
/// Highest host sample rate the separator runs at (Hz): the highest rate hosts offer.
pub const MAX_SAMPLE_RATE: f64 = 768_000.0;
/// Largest FFT size of any grid, the model's or a runtime one (2^17: 171 ms at 768 kHz).
/// [`StftConfig::validate`] only accepts model grids whose runtime grid at
/// [`MAX_SAMPLE_RATE`] stays within it, so every valid weights file runs at every
/// supported rate.
pub const MAX_FFT_SIZE: usize = 131_072;
const MIN_FFT_SIZE: usize = 16;

/// Whether the separator runs at `rate` Hz ([`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`]).
pub fn supports_sample_rate(rate: f64) -> bool {
    rate.is_finite() && (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate)
}

/// Why a configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("sample rate {0} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE}")]
    SampleRate(u32),
    #[error("fft size {0} must be even and within {MIN_FFT_SIZE}..={MAX_FFT_SIZE}")]
    FftSize(usize),
    #[error(
        "fft size {fft_size} at {sample_rate} Hz becomes {at_max} at {MAX_SAMPLE_RATE} Hz, more than \
         {MAX_FFT_SIZE}: use frames of at most {max_ms} ms"
    )]
    FramesTooLong { fft_size: usize, sample_rate: u32, at_max: usize, max_ms: u32 },
    #[error("hop {hop} must be within 1..=fft_size/2 ({max})")]
    Hop { hop: usize, max: usize },
    #[error("window {window:?} with hop {hop} does not overlap-add to a non-zero sum for fft size {fft_size}")]
    NotInvertible { window: Window, fft_size: usize, hop: usize },
    #[error("model channels must be 2 (stereo-aware model), got {0}")]
    Channels(usize),
    #[error("model expects {model} frequency bins but the STFT gives {stft}")]
    Bins { model: usize, stft: usize },
    #[error("hidden size {0} must be within 1..=4096")]
    Hidden(usize),
    #[error("gru layers {0} must be within 1..=8")]
    Layers(usize),
    #[error("lookahead {0} frames is more than the allowed 16")]
    Lookahead(usize),
    #[error("feature floor {0} dB must be within -160..=-40 dB")]
    FeatureFloor(i32),
    #[error("band dimension {0} must be within 0..={MAX_BAND_DIM} (0: no band split)")]
    BandDim(usize),
    #[error("synthesis length {len} must be even and within 2 · hop ({min}) ..= fft size ({fft_size})")]
    SynthesisLen { len: usize, min: usize, fft_size: usize },
    #[error("a synthesis length (the low-latency window pair) needs window \"sqrt-hann\", not \"{0}\"")]
    AsymmetricWindow(&'static str),
}

/// Largest [`ModelConfig::band_dim`].
pub const MAX_BAND_DIM: usize = 256;

/// Analysis/synthesis window pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Window {
    /// Periodic sqrt-Hann for analysis and synthesis: their product is a Hann window,
    /// which overlap-adds to a constant at hops N/2 and N/4.
    #[default]
    SqrtHann,
    /// Periodic Hann for analysis and synthesis (product Hann²; constant at hop N/4,
    /// per-phase normalised otherwise).
    Hann,
}

impl Window {
    /// The name config files use (`sqrt-hann`, `hann`).
    pub fn name(self) -> &'static str {
        match self {
            Window::SqrtHann => "sqrt-hann",
            Window::Hann => "hann",
        }
    }

    /// The analysis (= synthesis) window of length `n`.
    pub fn coefficients(self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let hann = hann(i, n);
                match self {
                    Window::SqrtHann => hann.sqrt() as f32,
                    Window::Hann => hann as f32,
                }
            })
            .collect()
    }
}

/// Sample `i` of the periodic Hann window of length `len`.
fn hann(i: usize, len: usize) -> f64 {
    0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / len as f64).cos()
}

/// The low-latency (asymmetric) window pair of length `n` whose synthesis window spans only
/// the newest `m` samples (`m` even, `m ≤ n`): analysis and synthesis windows, in that
/// order. The analysis window rises over `n − m/2` samples as the first half of a sqrt-Hann
/// window of length `2n − m` and falls over the last `m/2` as the second half of a sqrt-Hann
/// window of length `m`; the synthesis window is zero but for the last `m` samples, where the
/// two windows' product is a Hann window of length `m`, which overlap-adds to a constant at
/// hops `m/2` and `m/4`. The algorithmic latency is then `m − 1` samples, not `n − 1`, while
/// the frequency resolution stays that of `n` samples. With `m = n` it is the sqrt-Hann pair.
///
/// Sources: D. Mauler and R. Martin, "A low delay, variable resolution, perfect
/// reconstruction spectral analysis-synthesis system for speech enhancement", EUSIPCO 2007;
/// Z.-Q. Wang, G. Wichern, S. Watanabe and J. Le Roux, "STFT-domain neural speech
/// enhancement with very low algorithmic latency", IEEE/ACM TASLP 31, 2023.
pub fn asymmetric_windows(n: usize, m: usize) -> (Vec<f32>, Vec<f32>) {
    let (rise, tail) = (n - m / 2, n - m);
    let analysis: Vec<f64> =
        (0..n).map(|i| if i < rise { hann(i, 2 * rise).sqrt() } else { hann(i - tail, m).sqrt() }).collect();
    let synthesis = (0..n)
        .map(|i| match i {
            _ if i < tail => 0.0,
            // Hann / analysis; the analysis window is only 0 at i = 0 (when m = n), where
            // the Hann window is 0 as well.
            _ if i < rise => {
                if analysis[i] > 0.0 {
                    hann(i - tail, m) / analysis[i]
                } else {
                    0.0
                }
            }
            _ => hann(i - tail, m).sqrt(),
        })
        .map(|w| w as f32)
        .collect();
    (analysis.into_iter().map(|w| w as f32).collect(), synthesis)
}

/// How audio becomes frames. Stored with the weights: the model only means something on
/// the frequency grid and frame rate it was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StftConfig {
    /// Rate the model was trained at (Hz).
    pub sample_rate: u32,
    /// Frame (analysis window) length in samples at `sample_rate`.
    pub fft_size: usize,
    /// Samples between frames at `sample_rate`.
    pub hop: usize,
    pub window: Window,
    /// Length in samples of the synthesis window of the low-latency window pair
    /// ([`asymmetric_windows`]; `window` must be sqrt-Hann), which sets the algorithmic
    /// latency to `synthesis_len − 1`. `None`: the symmetric pair, latency `fft_size − 1`.
    /// Weights written before it existed read as `None`, and `None` is not written, so their
    /// files stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthesis_len: Option<usize>,
}

impl Default for StftConfig {
    /// The grid of the shipped weights: 1008/252 at 44.1 kHz (22.8 ms frames; 1008 = 2⁴·3²·7
    /// is fast in rustfft), so `isola train` without a config makes weights the shipped
    /// worker accepts.
    fn default() -> Self {
        Self { sample_rate: 44_100, fft_size: 1008, hop: 252, window: Window::SqrtHann, synthesis_len: None }
    }
}

impl StftConfig {
    /// Number of non-negative frequency bins, `fft_size / 2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.fft_size / 2 + 1
    }

    /// Samples the synthesis window spans (the newest of each frame): `synthesis_len`, or the
    /// whole frame.
    pub fn synthesis_span(&self) -> usize {
        self.synthesis_len.unwrap_or(self.fft_size)
    }

    /// Algorithmic latency of analysis + resynthesis in samples at `sample_rate`: the oldest
    /// sample the synthesis window spans leaves when the frame's newest sample arrives.
    pub fn latency_samples(&self) -> usize {
        self.synthesis_span() - 1
    }

    /// Analysis and synthesis windows (`fft_size` each), in that order.
    pub fn windows(&self) -> (Vec<f32>, Vec<f32>) {
        match self.synthesis_len {
            Some(m) => asymmetric_windows(self.fft_size, m),
            None => (self.window.coefficients(self.fft_size), self.window.coefficients(self.fft_size)),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !supports_sample_rate(self.sample_rate as f64) {
            return Err(ConfigError::SampleRate(self.sample_rate));
        }
        if !self.fft_size.is_multiple_of(2) || !(MIN_FFT_SIZE..=MAX_FFT_SIZE).contains(&self.fft_size) {
            return Err(ConfigError::FftSize(self.fft_size));
        }
        let at_max = self.for_rate(MAX_SAMPLE_RATE).fft_size;
        if at_max > MAX_FFT_SIZE {
            return Err(ConfigError::FramesTooLong {
                fft_size: self.fft_size,
                sample_rate: self.sample_rate,
                at_max,
                max_ms: (MAX_FFT_SIZE as f64 / MAX_SAMPLE_RATE * 1e3) as u32,
            });
        }
        let max = self.fft_size / 2;
        if self.hop == 0 || self.hop > max {
            return Err(ConfigError::Hop { hop: self.hop, max });
        }
        if let Some(len) = self.synthesis_len {
            if self.window != Window::SqrtHann {
                return Err(ConfigError::AsymmetricWindow(self.window.name()));
            }
            if !len.is_multiple_of(2) || len < 2 * self.hop || len > self.fft_size {
                return Err(ConfigError::SynthesisLen { len, min: 2 * self.hop, fft_size: self.fft_size });
            }
        }
        if overlap_add_sum(self).iter().any(|&s| s < 1e-3) {
            return Err(ConfigError::NotInvertible { window: self.window, fft_size: self.fft_size, hop: self.hop });
        }
        Ok(())
    }

    /// The runtime grid for audio at `rate` Hz: frames as long in seconds as the model's and
    /// bins as wide in Hz, to within 2 % (0.5 % at 48 and 96 kHz; 4 % near 8 kHz, where the grid is coarse). The FFT size is the nearest size with only
    /// the prime factors 2, 3, 5, 7 (fast in rustfft) that keeps `hop / fft_size` exact, so
    /// the network sees what it saw in training at every rate (e.g. 1024/256 at 44.1 kHz →
    /// 1120/280 at 48 kHz, 2240/560 at 96 kHz). A synthesis length scales with the hop, so
    /// the latency stays about the same in milliseconds.
    pub fn for_rate(&self, rate: f64) -> StftConfig {
        let target = self.fft_size as f64 * rate / self.sample_rate as f64;
        // Smallest FFT-size step that keeps the hop and the synthesis length integers, and
        // keeps sizes even.
        let span = self.synthesis_span();
        let step = {
            let q = self.fft_size / gcd(self.fft_size, gcd(self.hop, span));
            if q.is_multiple_of(2) { q } else { 2 * q }
        };
        // `step · x / fft_size` is an integer for x = hop and x = span by construction of `step`.
        let scaled = |fft_size: usize, x: usize| fft_size / step * (step * x / self.fft_size);
        let smooth = |mut n: usize| {
            for p in [2, 3, 5, 7] {
                while n.is_multiple_of(p) {
                    n /= p;
                }
            }
            n == 1
        };
        let base = ((target / step as f64).round() as usize).max(1);
        let fft_size = (0..)
            .flat_map(|d| [base + d, base.saturating_sub(d)])
            .map(|k| k.max(1) * step)
            // The asymmetric pair needs an even synthesis length.
            .find(|&n| smooth(n) && n >= MIN_FFT_SIZE && scaled(n, span).is_multiple_of(2))
            .unwrap_or(self.fft_size);
        StftConfig {
            sample_rate: rate.round() as u32,
            fft_size,
            hop: scaled(fft_size, self.hop),
            window: self.window,
            synthesis_len: self.synthesis_len.map(|m| scaled(fft_size, m)),
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Sum of analysis·synthesis window products at each of the `hop` phases. Dividing by it
/// makes overlap-add resynthesis exact for any window/hop pair where it is non-zero.
pub fn overlap_add_sum(config: &StftConfig) -> Vec<f32> {
    let (a, s) = config.windows();
    (0..config.hop)
        .map(|phase| {
            (phase..config.fft_size).step_by(config.hop).map(|i| f64::from(a[i]) * f64::from(s[i])).sum::<f64>() as f32
        })
        .collect()
}

/// What two models must share for one's masks to stand in for the other's frame by frame
/// (worker and light network) or for one to replace the other without re-preparing (a
/// model swap): the model STFT, hence the runtime grid and latency, the bins and the
/// lookahead. Equality is the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameGrid {
    pub stft: StftConfig,
    pub n_bins: usize,
    pub lookahead: usize,
}

impl FrameGrid {
    /// Exact delay of a separator's output relative to its input, in samples at
    /// `sample_rate` (Hz): the runtime STFT's latency ([`StftConfig::latency_samples`] of
    /// [`StftConfig::for_rate`]) plus one hop per lookahead frame and per `extra_hops` (the
    /// worker's budget, or the one hop of a spread step). The one formula behind
    /// [`Separator::latency_samples`](crate::rt::Separator::latency_samples), `isola info` and
    /// the plugin's reported latency.
    pub fn latency_samples(&self, sample_rate: f64, extra_hops: usize) -> usize {
        let runtime = self.stft.for_rate(sample_rate);
        runtime.latency_samples() + (self.lookahead + extra_hops) * runtime.hop
    }

    /// Each field where `self` (called `ours`) and `other` (`theirs`) differ, in words with
    /// both values: `"FFT size 256 (worker) vs 1008 (light)"`. Empty when they are equal.
    pub fn differences(&self, ours: &str, other: &FrameGrid, theirs: &str) -> Vec<String> {
        let (a, b) = (self.stft, other.stft);
        let synthesis = |s: StftConfig| s.synthesis_len.map_or("the whole frame".to_owned(), |m| m.to_string());
        let fields = [
            ("sample rate", format!("{} Hz", a.sample_rate), format!("{} Hz", b.sample_rate)),
            ("FFT size", a.fft_size.to_string(), b.fft_size.to_string()),
            ("hop", a.hop.to_string(), b.hop.to_string()),
            ("window", a.window.name().to_owned(), b.window.name().to_owned()),
            ("synthesis length", synthesis(a), synthesis(b)),
            ("frequency bins", self.n_bins.to_string(), other.n_bins.to_string()),
            ("lookahead (frames)", self.lookahead.to_string(), other.lookahead.to_string()),
        ];
        fields
            .into_iter()
            .filter(|(_, x, y)| x != y)
            .map(|(what, x, y)| format!("{what} {x} ({ours}) vs {y} ({theirs})"))
            .collect()
    }
}

impl std::fmt::Display for StftConfig {
    /// `44100 Hz 1008/252 sqrt-hann`, plus `synthesis 252` for the low-latency pair.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz {}/{} {}", self.sample_rate, self.fft_size, self.hop, self.window.name())?;
        if let Some(m) = self.synthesis_len {
            write!(f, " synthesis {m}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for FrameGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {} bins, lookahead {}", self.stft, self.n_bins, self.lookahead)
    }
}

/// Tensor names of the weights contract, spelled only here: [`ModelConfig::tensor_specs`]
/// lists them with their shapes, the candle model uses them as `vb.pp` paths and the
/// real-time port looks them up.
pub mod tensor_names {
    /// Per-feature mean subtracted from the log magnitudes `[F]`.
    pub const INPUT_MEAN: &str = "input_mean";
    /// Per-feature scale applied after the mean `[F]`.
    pub const INPUT_SCALE: &str = "input_scale";
    /// Linear layers (`{layer}.weight` `[out, in]`, `{layer}.bias` `[out]`, candle_nn's names).
    pub const FC1: &str = "fc1";
    pub const FC2: &str = "fc2";
    pub const FC3: &str = "fc3";
    pub const WEIGHT: &str = "weight";
    pub const BIAS: &str = "bias";
    /// GRU layers: `gru.{l}.{weight_ih, weight_hh, bias_ih, bias_hh}` (PyTorch's names).
    pub const GRU: &str = "gru";
    pub const WEIGHT_IH: &str = "weight_ih";
    pub const WEIGHT_HH: &str = "weight_hh";
    pub const BIAS_IH: &str = "bias_ih";
    pub const BIAS_HH: &str = "bias_hh";
    /// Band-split front end and mask head (with `band_dim` > 0): `band_in.weight` and
    /// `band_out.weight` `[D, F]` (column `j` serves feature `j`'s band only), biases
    /// `band_in.bias` `[K · D]` and `band_out.bias` `[F]`.
    pub const BAND_IN: &str = "band_in";
    pub const BAND_OUT: &str = "band_out";

    /// Full name of parameter `param` of linear layer `layer`, e.g. `fc1.weight`.
    pub fn linear(layer: &str, param: &str) -> String {
        format!("{layer}.{param}")
    }

    /// Full name of parameter `param` of GRU layer `l`, e.g. `gru.0.weight_ih`.
    pub fn gru(l: usize, param: &str) -> String {
        format!("{GRU}.{l}.{param}")
    }
}

/// The mask network's shape. See `model.rs` for the architecture, [`tensor_names`] for the
/// tensor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Input/output channels of the network (2: the model sees and masks L and R).
    pub channels: usize,
    /// Frequency bins per channel (= `StftConfig::n_bins`).
    pub n_bins: usize,
    /// Width of the bottleneck and of every GRU layer.
    pub hidden: usize,
    /// Stacked unidirectional GRU layers.
    pub gru_layers: usize,
    /// Future frames the network may see: the mask for frame t is produced after frame
    /// t + lookahead arrives, adding `lookahead * hop` samples of latency.
    pub lookahead: usize,
    /// The magnitude floor of the input feature `ln(|X| + floor)`, in dB re 1 (a
    /// full-scale sine's bin is about −6 dB); see [`crate::features`]. Weights written before
    /// it existed read as [`features::LEGACY_FLOOR_DB`](crate::features::LEGACY_FLOOR_DB).
    #[serde(default = "crate::features::legacy_floor_db")]
    pub feature_floor_db: i32,
    /// Band split (see [`BandLayout`]): 0 for the flat front end and mask head, else the
    /// width `D` of each band's embedding. Weights written before it existed are flat.
    #[serde(default)]
    pub band_dim: usize,
}

/// The bands of a band-split model (Luo & Yu, "Music Source Separation with Band-split
/// RNN", 2023, their vocals layout): 100 Hz wide up to 1 kHz, 250 Hz to 4 kHz, 500 Hz to
/// 8 kHz, 1 kHz to 16 kHz, 2 kHz to 20 kHz and one band above, at 44.1 kHz; other model
/// rates scale the layout with their Nyquist frequency. A band has at least 2 bins
/// (narrower ones merge into the next); both channels of a bin share its band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BandLayout {
    /// `K + 1` bin edges from 0 to `n_bins`: band `k` is bins `edges[k]..edges[k + 1]`.
    pub edges: Vec<usize>,
    /// The band of each feature `j = c · n_bins + bin` (`[channels · n_bins]`).
    pub feature_band: Vec<usize>,
}

impl BandLayout {
    pub fn new(n_bins: usize, channels: usize) -> Self {
        // Band edges in Hz at 44.1 kHz (Nyquist 22 050 Hz).
        let mut hz = Vec::new();
        for (end, width) in [(1000, 100), (4000, 250), (8000, 500), (16000, 1000), (20000, 2000)] {
            let start = hz.last().copied().unwrap_or(0);
            hz.extend((start + width..=end).step_by(width));
        }
        let nyquist_bin = (n_bins - 1) as f64;
        let mut edges = vec![0];
        for f in hz {
            let e = (f as f64 / 22_050.0 * nyquist_bin).round() as usize;
            if e >= edges[edges.len() - 1] + 2 && e + 2 <= n_bins {
                edges.push(e);
            }
        }
        edges.push(n_bins);
        let mut band_of_bin = vec![0; n_bins];
        for (k, w) in edges.windows(2).enumerate() {
            band_of_bin[w[0]..w[1]].fill(k);
        }
        let feature_band = (0..channels).flat_map(|_| band_of_bin.iter().copied()).collect();
        Self { edges, feature_band }
    }

    /// Number of bands, `K`.
    pub fn bands(&self) -> usize {
        self.edges.len() - 1
    }
}
impl ModelConfig {
    /// The default in-thread model: 3 GRU layers of 128, about 0.6 M parameters on the
    /// default grid.
    pub fn light(stft: &StftConfig) -> Self {
        Self {
            channels: 2,
            n_bins: stft.n_bins(),
            hidden: 128,
            gru_layers: 3,
            lookahead: 0,
            feature_floor_db: crate::features::DEFAULT_FLOOR_DB,
            band_dim: 0,
        }
    }

    /// The default worker model: same grid and lookahead, 3 GRU layers of 256 (about 1.8 M
    /// parameters on the default grid). Runs off the audio thread only.
    pub fn worker(stft: &StftConfig) -> Self {
        Self { hidden: 256, ..Self::light(stft) }
    }

    /// The linear magnitude floor of the input feature (from `feature_floor_db`).
    pub fn feature_floor(&self) -> f32 {
        crate::features::floor_magnitude(self.feature_floor_db)
    }

    /// Input (and output) features: `channels * n_bins`.
    pub fn features(&self) -> usize {
        self.channels * self.n_bins
    }

    /// The band layout when `band_dim` > 0.
    pub fn band_layout(&self) -> Option<BandLayout> {
        (self.band_dim > 0).then(|| BandLayout::new(self.n_bins, self.channels))
    }

    /// Width of what `fc1` reads and `fc3` writes: the features, or `K · band_dim` band
    /// embeddings with a band split.
    pub fn embedding(&self) -> usize {
        self.band_layout().map_or(self.features(), |b| b.bands() * self.band_dim)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.channels != 2 {
            return Err(ConfigError::Channels(self.channels));
        }
        if !(1..=4096).contains(&self.hidden) {
            return Err(ConfigError::Hidden(self.hidden));
        }
        if !(1..=8).contains(&self.gru_layers) {
            return Err(ConfigError::Layers(self.gru_layers));
        }
        if self.lookahead > 16 {
            return Err(ConfigError::Lookahead(self.lookahead));
        }
        if !(-160..=-40).contains(&self.feature_floor_db) {
            return Err(ConfigError::FeatureFloor(self.feature_floor_db));
        }
        if self.band_dim > MAX_BAND_DIM {
            return Err(ConfigError::BandDim(self.band_dim));
        }
        Ok(())
    }

    /// Checks that this model fits frames of `stft`.
    pub fn validate_with(&self, stft: &StftConfig) -> Result<(), ConfigError> {
        stft.validate()?;
        self.validate()?;
        if self.n_bins != stft.n_bins() {
            return Err(ConfigError::Bins { model: self.n_bins, stft: stft.n_bins() });
        }
        Ok(())
    }

    /// What another model must share with this one to run beside it or replace it
    /// (see [`FrameGrid`]), when this model runs on `stft`.
    pub fn frame_grid(&self, stft: &StftConfig) -> FrameGrid {
        FrameGrid { stft: *stft, n_bins: self.n_bins, lookahead: self.lookahead }
    }

    /// Every tensor of the weights contract with its shape, in a stable order.
    /// Both the candle model (`vb.pp(..)` paths) and the real-time port use these names.
    pub fn tensor_specs(&self) -> Vec<(String, Vec<usize>)> {
        use tensor_names::*;
        let (f, h, e, d) = (self.features(), self.hidden, self.embedding(), self.band_dim);
        let mut specs = vec![(INPUT_MEAN.to_string(), vec![f]), (INPUT_SCALE.to_string(), vec![f])];
        if d > 0 {
            specs.extend([(linear(BAND_IN, WEIGHT), vec![d, f]), (linear(BAND_IN, BIAS), vec![e])]);
        }
        specs.extend([(linear(FC1, WEIGHT), vec![h, e]), (linear(FC1, BIAS), vec![h])]);
        for l in 0..self.gru_layers {
            specs.push((gru(l, WEIGHT_IH), vec![3 * h, h]));
            specs.push((gru(l, WEIGHT_HH), vec![3 * h, h]));
            specs.push((gru(l, BIAS_IH), vec![3 * h]));
            specs.push((gru(l, BIAS_HH), vec![3 * h]));
        }
        specs.extend([
            (linear(FC2, WEIGHT), vec![h, 2 * h]),
            (linear(FC2, BIAS), vec![h]),
            (linear(FC3, WEIGHT), vec![e, h]),
            (linear(FC3, BIAS), vec![e]),
        ]);
        if d > 0 {
            specs.extend([(linear(BAND_OUT, WEIGHT), vec![d, f]), (linear(BAND_OUT, BIAS), vec![f])]);
        }
        specs
    }

    pub fn param_count(&self) -> usize {
        self.tensor_specs().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_configs_validate() {
        let stft = StftConfig::default();
        stft.validate().unwrap();
        let model = ModelConfig::light(&stft);
        model.validate_with(&stft).unwrap();
        assert!(model.param_count() <= 1_000_000, "{} params", model.param_count());
        let banded = ModelConfig { band_dim: 32, ..model };
        banded.validate_with(&stft).unwrap();
        assert!(banded.param_count() <= 1_000_000, "{} params", banded.param_count());
    }

    #[test]
    fn band_layout_follows_the_band_split_rnn_vocals_layout() {
        // 1008-point FFT at 44.1 kHz: 43.75 Hz per bin, 505 bins.
        let b = BandLayout::new(505, 2);
        let hz = |k: usize| b.edges[k] as f64 * 43.75;
        assert_eq!((b.edges[0], *b.edges.last().unwrap()), (0, 505));
        assert!(b.edges.windows(2).all(|w| w[1] >= w[0] + 2), "{:?}", b.edges);
        // 10 bands up to 1 kHz, 12 to 4 kHz, 8 to 8 kHz, 8 to 16 kHz, 2 to 20 kHz, 1 above.
        assert_eq!(b.bands(), 41, "{:?}", b.edges);
        assert!((hz(10) - 1000.0).abs() < 44.0 && (hz(22) - 4000.0).abs() < 44.0 && (hz(40) - 20_000.0).abs() < 44.0);
        assert_eq!(b.feature_band.len(), 1010);
        assert_eq!((b.feature_band[0], b.feature_band[504], b.feature_band[505], b.feature_band[1009]), (0, 40, 0, 40));
        // A coarse grid merges bands below 2 bins.
        let small = BandLayout::new(33, 2);
        assert!(small.edges.windows(2).all(|w| w[1] >= w[0] + 2) && small.bands() < 41, "{:?}", small.edges);
    }

    #[test]
    fn bad_configs_are_typed_errors() {
        let ok = StftConfig { fft_size: 1024, hop: 256, ..StftConfig::default() };
        assert_eq!(StftConfig { fft_size: 1023, ..ok }.validate(), Err(ConfigError::FftSize(1023)));
        assert_eq!(StftConfig { hop: 0, ..ok }.validate(), Err(ConfigError::Hop { hop: 0, max: 512 }));
        assert_eq!(StftConfig { hop: 513, ..ok }.validate(), Err(ConfigError::Hop { hop: 513, max: 512 }));
        assert_eq!(StftConfig { sample_rate: 10, ..ok }.validate(), Err(ConfigError::SampleRate(10)));
        let model = ModelConfig::light(&ok);
        assert_eq!(
            ModelConfig { n_bins: 100, ..model }.validate_with(&ok),
            Err(ConfigError::Bins { model: 100, stft: 513 })
        );
        assert_eq!(ModelConfig { channels: 1, ..model }.validate(), Err(ConfigError::Channels(1)));
        assert_eq!(ModelConfig { gru_layers: 0, ..model }.validate(), Err(ConfigError::Layers(0)));
        assert_eq!(ModelConfig { feature_floor_db: -20, ..model }.validate(), Err(ConfigError::FeatureFloor(-20)));
        assert_eq!(ModelConfig { band_dim: 257, ..model }.validate(), Err(ConfigError::BandDim(257)));
    }

    #[test]
    fn config_round_trips_through_json() {
        let stft = StftConfig { window: Window::Hann, ..StftConfig::default() };
        let json = serde_json::to_string(&stft).unwrap();
        assert_eq!(serde_json::from_str::<StftConfig>(&json).unwrap(), stft);
        let model = ModelConfig { lookahead: 2, feature_floor_db: -80, band_dim: 16, ..ModelConfig::light(&stft) };
        let json = serde_json::to_string(&model).unwrap();
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), model);
        // Weights from before the floor and the band split were settings: the legacy floor,
        // no band split.
        let old = json.replace(",\"feature_floor_db\":-80", "").replace(",\"band_dim\":16", "");
        assert!(!old.contains("floor") && !old.contains("band"), "{old}");
        let read = serde_json::from_str::<ModelConfig>(&old).unwrap();
        assert_eq!(read, ModelConfig { feature_floor_db: crate::features::LEGACY_FLOOR_DB, band_dim: 0, ..model });
    }

    #[test]
    fn runtime_grids_keep_frame_duration() {
        let model = StftConfig { fft_size: 1024, hop: 256, ..StftConfig::default() };
        let grid = |rate: f64| {
            let g = model.for_rate(rate);
            g.validate().unwrap();
            (g.fft_size, g.hop)
        };
        assert_eq!(grid(44_100.0), (1024, 256));
        assert_eq!(grid(88_200.0), (2048, 512));
        assert_eq!(grid(48_000.0), (1120, 280));
        assert_eq!(grid(96_000.0), (2240, 560));
        for rate in [22_050.0, 32_000.0, 44_100.0, 48_000.0, 88_200.0, 96_000.0, 176_400.0, 192_000.0, 768_000.0] {
            let g = model.for_rate(rate);
            let seconds = g.fft_size as f64 / rate;
            let trained = 1024.0 / 44_100.0;
            assert!((seconds / trained - 1.0).abs() < 0.02, "{rate}: {g:?}");
            assert_eq!(g.fft_size, 4 * g.hop);
        }
    }

    #[test]
    fn every_supported_rate_has_a_valid_runtime_grid() {
        // The default and the shipped grid, at the rate limits and the rates hosts offer.
        for model in [StftConfig { fft_size: 1024, hop: 256, ..StftConfig::default() }, StftConfig::default()] {
            model.validate().unwrap();
            for rate in [
                MIN_SAMPLE_RATE,
                8_000.5,
                11_025.0,
                16_000.0,
                44_100.0,
                352_800.0,
                384_000.0,
                705_600.0,
                MAX_SAMPLE_RATE,
            ] {
                assert!(supports_sample_rate(rate));
                let g = model.for_rate(rate);
                g.validate().unwrap_or_else(|e| panic!("{model:?} at {rate} Hz: {e}"));
                let ratio = (g.fft_size as f64 / rate) / (model.fft_size as f64 / model.sample_rate as f64);
                // The grid is coarse at low rates (8 kHz: 180 instead of 185.8 samples).
                assert!((ratio - 1.0).abs() < 0.04, "{rate}: {g:?}");
            }
        }
        for rate in [0.0, 7_999.9, 1_234.5678, 768_000.1, f64::NAN, f64::INFINITY] {
            assert!(!supports_sample_rate(rate), "{rate}");
        }
        // A model grid that could not run at the top rate is refused when it is made.
        let long = StftConfig { sample_rate: 44_100, fft_size: 16_384, hop: 4_096, ..StftConfig::default() };
        assert!(matches!(long.validate(), Err(ConfigError::FramesTooLong { .. })), "{:?}", long.validate());
    }

    #[test]
    fn the_low_latency_pair_multiplies_to_a_short_hann_window() {
        let (n, m) = (1008, 252);
        let (a, s) = asymmetric_windows(n, m);
        let hann = |i: usize| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / m as f64).cos();
        for i in 0..n {
            let product = f64::from(a[i]) * f64::from(s[i]);
            let expected = if i < n - m { 0.0 } else { hann(i - (n - m)) };
            assert!((product - expected).abs() < 1e-6, "{i}: {product} vs {expected}");
            assert!(a[i].is_finite() && s[i].is_finite() && a[i] >= 0.0 && s[i] >= 0.0);
        }
        // The analysis window rises over the frame's first n − m/2 samples, then falls.
        let peak = a.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).unwrap().0;
        assert_eq!(peak, n - m / 2);
        // Its full length is the frame, so the frequency resolution is that of n samples.
        assert!(a[1] > 0.0 && a[n / 2] > 0.5);
        // With m = n it is the symmetric sqrt-Hann pair.
        let (a, s) = asymmetric_windows(512, 512);
        let sqrt_hann = Window::SqrtHann.coefficients(512);
        for i in 0..512 {
            assert!((a[i] - sqrt_hann[i]).abs() < 1e-6 && (s[i] - sqrt_hann[i]).abs() < 1e-6, "{i}");
        }
    }

    #[test]
    fn synthesis_lengths_are_validated_serialised_and_scaled() {
        let low = StftConfig { hop: 126, synthesis_len: Some(252), ..StftConfig::default() };
        low.validate().unwrap();
        assert_eq!((low.latency_samples(), StftConfig::default().latency_samples()), (251, 1007));
        let err = |len| Err(ConfigError::SynthesisLen { len, min: 252, fft_size: 1008 });
        for len in [251, 250, 1010] {
            assert_eq!(StftConfig { synthesis_len: Some(len), ..low }.validate(), err(len));
        }
        assert_eq!(StftConfig { window: Window::Hann, ..low }.validate(), Err(ConfigError::AsymmetricWindow("hann")));
        // Written only when set: files of symmetric weights are unchanged.
        let json = serde_json::to_string(&StftConfig::default()).unwrap();
        assert!(!json.contains("synthesis"), "{json}");
        let json = serde_json::to_string(&low).unwrap();
        assert_eq!(serde_json::from_str::<StftConfig>(&json).unwrap(), low);
        // The synthesis window scales with the hop.
        let at_48k = low.for_rate(48_000.0);
        assert_eq!((at_48k.fft_size, at_48k.hop, at_48k.synthesis_len), (1080, 135, Some(270)));
        at_48k.validate().unwrap();
        // Two grids that differ only there are not interchangeable.
        let model = ModelConfig::light(&low);
        let diff = model.frame_grid(&low).differences(
            "a",
            &model.frame_grid(&StftConfig { hop: 126, ..low.for_rate(44_100.0) }),
            "b",
        );
        assert!(diff.is_empty(), "{diff:?}");
        let sym = StftConfig { synthesis_len: None, ..low };
        let diff = model.frame_grid(&low).differences("low", &model.frame_grid(&sym), "symmetric");
        assert_eq!(diff, ["synthesis length 252 (low) vs the whole frame (symmetric)"]);
    }

    #[test]
    fn sqrt_hann_overlap_adds_to_constant_at_quarter_and_half_hops() {
        for n in [512, 1024, 2048] {
            for hop in [n / 4, n / 2] {
                let sums = overlap_add_sum(&StftConfig { fft_size: n, hop, ..StftConfig::default() });
                let expected = n as f32 / hop as f32 / 2.0;
                for s in sums {
                    assert!((s - expected).abs() < 1e-4, "n={n} hop={hop} sum={s}");
                }
            }
        }
    }
}
