//! Training configuration: a TOML file (`isola train --config FILE`), every
//! field optional with the defaults below; command-line flags override it.

use std::path::{Path, PathBuf};

use isola_engine::{ModelConfig, StftConfig};
use serde::{Deserialize, Serialize};

/// `train.example.toml`: every key with its default and a comment (`isola train
/// --example-config` prints it; a test keeps it in sync with [`TrainConfig::default`]).
pub const EXAMPLE: &str = include_str!("../../train.example.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Training data (`DIR`, `vocals:DIR`, `instrumental:DIR`).
    pub data: Vec<String>,
    /// Validation tracks; when empty, tracks of split `test`/`valid` in `data`
    /// are held out, else `val_tracks` tracks chosen by the seed.
    pub val_data: Vec<String>,
    pub val_tracks: usize,
    /// Run folder: checkpoints, CSV log, plots.
    pub out: PathBuf,
    /// Decoded-audio cache folder (default: see [`TrainConfig::cache_dir`]; shared by runs).
    pub cache: Option<PathBuf>,
    pub seed: u64,
    /// `cpu`, `cuda:N` or `metal` (the latter two need the matching cargo feature).
    pub device: String,

    /// Model STFT (the rate is also the training rate).
    pub stft: StftConfig,
    pub hidden: usize,
    pub gru_layers: usize,
    pub lookahead: usize,
    /// Floor of the input feature `ln(|X| + floor)`, in dB (see `isola_engine::features`).
    pub feature_floor_db: i32,
    /// Band split: each band's embedding width, 0 for none (see `isola_engine::config::BandLayout`).
    pub band_dim: usize,

    pub batch_size: usize,
    /// Seconds per training example.
    pub chunk_seconds: f64,
    pub steps_per_epoch: usize,
    pub epochs: usize,
    /// Peak learning rate (AdamW), reached after `warmup_steps`, then cosine decay to
    /// `lr * min_lr_fraction` at the last step.
    pub lr: f64,
    pub warmup_steps: usize,
    pub min_lr_fraction: f64,
    pub weight_decay: f64,
    /// Magnitudes are raised to this power before the L1 loss (1 = linear; below 1
    /// compresses, so quiet bins and quiet examples count more).
    pub loss_power: f64,
    /// Weight, per dB, of a waveform term added to the magnitude loss: minus the mean SDR
    /// of the vocals and accompaniment the masks resynthesise (see `sdr_loss`). 0 = off.
    pub sdr_loss_weight: f64,
    /// Leave bins above an example's bandwidth (half its lower source rate) out of the loss:
    /// a 16 kHz recording is silent above 8 kHz whatever the singer does, and training on
    /// that would teach the model that vocals (or instruments) have no highs.
    pub band_limited_loss: bool,
    /// Global gradient-norm clip.
    pub grad_clip: f64,
    /// Decay per step of an exponential moving average of the weights (see `ema`): when above
    /// 0, validation, `best.safetensors` and `isola export` use the average; 0 = off.
    pub ema_decay: f64,
    /// Stop after this many epochs without a better validation SDR.
    pub patience: usize,
    /// Write a checkpoint every this many steps (and at every epoch end).
    pub checkpoint_every: usize,

    /// Sources are drawn in proportion to their length; those recorded below the model rate
    /// (band-limited) are weighted by this factor on top.
    pub low_rate_weight: f64,
    /// Probability of pairing vocals and accompaniment from different sources.
    pub remix_prob: f64,
    /// Per-source random gain range in dB.
    pub gain_db: (f64, f64),
    /// Probability of swapping left and right.
    pub swap_prob: f64,
    /// Random speed change (tempo and pitch together, by resampling) of each source, up to
    /// ± this many percent in 1 % steps; 0 = off. Aligned stems share one speed.
    pub speed_percent: u32,
    /// Vocal chunks quieter than this (RMS dBFS) are re-drawn (silence-aware sampling)...
    pub silence_db: f64,
    /// ...except with this probability, so the model also learns silent vocals.
    pub silent_prob: f64,

    // Mix augmentation (`augment.rs`), after gain and swap. Probabilities are per example
    // (EQ, reverb and stereo placement: per stem, drawn separately for vocals and
    // accompaniment); an op at probability 0 draws no random numbers, so turning one off
    // gives exactly the examples a run without it would see.
    /// Random EQ (RBJ-cookbook low shelf, high shelf, two peaks) of a stem.
    pub eq_prob: f64,
    /// Largest boost or cut of each EQ band, dB.
    pub eq_db: f64,
    /// Synthetic reverb of a stem (exponentially decaying noise, its own per stem and channel).
    pub reverb_prob: f64,
    /// Reverb decay time (RT60) range, seconds (log-uniform).
    pub reverb_rt60_s: (f64, f64),
    /// Level of the reverberant part relative to the dry stem, dB.
    pub reverb_wet_db: (f64, f64),
    /// Stereo placement of a stem: width (side gain), pan and a short one-channel delay.
    pub stereo_prob: f64,
    /// Side-signal gain range (0 = mono, 1 = unchanged).
    pub stereo_width: (f64, f64),
    /// Largest pan, 0-1 (1 = hard left/right), constant-power.
    pub stereo_pan: f64,
    /// Largest inter-channel delay, ms (Haas effect).
    pub stereo_delay_ms: f64,
    /// Mix-bus dynamics: a compressor or a tanh soft clipper on the mixture, carried into the
    /// stems as the per-sample gain it applies to the mixture (half each).
    pub dynamics_prob: f64,
    /// Compressor threshold below the mixture's peak, dB.
    pub compressor_depth_db: (f64, f64),
    /// Compressor ratio range (log-uniform).
    pub compressor_ratio: (f64, f64),
    /// Soft-clipper drive above the mixture's peak, dB.
    pub clip_drive_db: (f64, f64),
    /// Band-limiting of the accompaniment (8th-order low-pass); the vocals keep their band.
    pub band_limit_prob: f64,
    /// Its cut-off range, Hz (log-uniform; at most 0.45 x the model rate).
    pub band_limit_hz: (f64, f64),
    /// A backing vocal derived from the lead (a detuned double or another pitch, delayed,
    /// panned, quieter) added to the vocals.
    pub backing_prob: f64,
    /// Its level relative to the lead, dB.
    pub backing_db: (f64, f64),
    /// The delivery format's noise floor, added to the accompaniment (so the mixture is
    /// what a file holds): half the time the mixture's 16-bit quantisation error, else
    /// white noise at a level drawn from `noise_floor_dbfs`. Teaches the model that a
    /// noise floor is not signal.
    pub noise_floor_prob: f64,
    /// The white noise's RMS level range, dBFS.
    pub noise_floor_dbfs: (f64, f64),
    /// Exposed vocals: the accompaniment turned down by `exposed_db` (a sparse arrangement,
    /// an a-cappella break), so the model also hears voices that stand alone. 0 = off (the
    /// default, so earlier configs train as they did).
    pub exposed_prob: f64,
    /// How far the accompaniment is turned down, dB (uniform).
    pub exposed_db: (f64, f64),

    /// Validation: fixed chunks for the loss, and at most this many seconds per track
    /// through the streaming engine for SDR.
    pub val_chunks: usize,
    pub val_seconds: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let stft = StftConfig::default();
        let light = ModelConfig::light(&stft);
        Self {
            data: Vec::new(),
            val_data: Vec::new(),
            val_tracks: 2,
            out: PathBuf::from("runs/isola"),
            cache: None,
            seed: 0,
            device: "cpu".into(),
            stft,
            hidden: light.hidden,
            gru_layers: light.gru_layers,
            lookahead: light.lookahead,
            feature_floor_db: light.feature_floor_db,
            band_dim: light.band_dim,
            // Short chunks, wide batches: the GRU's time steps are sequential, so this
            // trains ~2x more audio per second than 3 s x 8 on CPU.
            batch_size: 12,
            chunk_seconds: 2.0,
            steps_per_epoch: 200,
            epochs: 100,
            lr: 1e-3,
            warmup_steps: 200,
            min_lr_fraction: 0.05,
            weight_decay: 1e-4,
            loss_power: 1.0,
            sdr_loss_weight: 0.0,
            band_limited_loss: true,
            grad_clip: 5.0,
            ema_decay: 0.0,
            patience: 10,
            checkpoint_every: 100,
            low_rate_weight: 1.0,
            remix_prob: 0.5,
            gain_db: (-9.0, 3.0),
            swap_prob: 0.5,
            speed_percent: 0,
            silence_db: -50.0,
            silent_prob: 0.05,
            eq_prob: 0.5,
            eq_db: 6.0,
            reverb_prob: 0.25,
            reverb_rt60_s: (0.2, 1.2),
            reverb_wet_db: (-20.0, -6.0),
            stereo_prob: 0.25,
            stereo_width: (0.5, 1.5),
            stereo_pan: 0.5,
            stereo_delay_ms: 15.0,
            dynamics_prob: 0.25,
            compressor_depth_db: (3.0, 15.0),
            compressor_ratio: (2.0, 8.0),
            clip_drive_db: (0.0, 9.0),
            band_limit_prob: 0.1,
            band_limit_hz: (3000.0, 16000.0),
            backing_prob: 0.15,
            backing_db: (-12.0, -4.0),
            noise_floor_prob: 0.5,
            noise_floor_dbfs: (-120.0, -70.0),
            exposed_prob: 0.0,
            exposed_db: (6.0, 30.0),
            val_chunks: 16,
            val_seconds: 30.0,
        }
    }
}

impl TrainConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn model(&self) -> ModelConfig {
        ModelConfig {
            channels: 2,
            n_bins: self.stft.n_bins(),
            hidden: self.hidden,
            gru_layers: self.gru_layers,
            lookahead: self.lookahead,
            feature_floor_db: self.feature_floor_db,
            band_dim: self.band_dim,
        }
    }

    /// The decoded-audio cache folder: `cache`, else [`default_dir`](crate::audio::cache::default_dir);
    /// `None` (decode into RAM) only where the system names no cache folder.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache.clone().or_else(crate::audio::cache::default_dir)
    }

    pub fn total_steps(&self) -> usize {
        self.epochs * self.steps_per_epoch
    }

    /// Learning rate at `step` (0-based): linear warm-up, then cosine decay.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps().saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        let floor = self.lr * self.min_lr_fraction;
        floor + (self.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.model().validate_with(&self.stft)?;
        anyhow::ensure!(!self.data.is_empty(), "no training data: pass --data DIR or set `data` in the config");
        anyhow::ensure!(
            self.batch_size > 0 && self.steps_per_epoch > 0 && self.epochs > 0,
            "batch_size, steps_per_epoch and epochs must be positive"
        );
        let min_chunk = (self.stft.fft_size + self.stft.hop * 4) as f64 / f64::from(self.stft.sample_rate);
        anyhow::ensure!(
            self.chunk_seconds >= min_chunk,
            "chunk_seconds must be at least {min_chunk:.3} s for this STFT"
        );
        anyhow::ensure!(self.gain_db.0 <= self.gain_db.1, "gain_db must be (low, high)");
        anyhow::ensure!(self.speed_percent <= 50, "speed_percent must be at most 50");
        anyhow::ensure!(self.lr > 0.0 && self.grad_clip > 0.0, "lr and grad_clip must be positive");
        anyhow::ensure!(self.low_rate_weight >= 0.0, "low_rate_weight must be >= 0");
        anyhow::ensure!(self.loss_power > 0.0 && self.loss_power <= 2.0, "loss_power must be within (0, 2]");
        anyhow::ensure!(
            self.sdr_loss_weight.is_finite() && self.sdr_loss_weight >= 0.0,
            "sdr_loss_weight must be a finite number >= 0"
        );
        anyhow::ensure!((0.0..1.0).contains(&self.ema_decay), "ema_decay must be within [0, 1)");
        super::augment::validate(self)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_typos() {
        let c: TrainConfig = toml::from_str("data = [\"a\"]\nbatch_size = 4\n[stft]\nsample_rate = 16000\nfft_size = 512\nhop = 128\nwindow = \"sqrt-hann\"\n").unwrap();
        assert_eq!((c.batch_size, c.stft.fft_size, c.epochs), (4, 512, TrainConfig::default().epochs));
        assert_eq!(c.model().n_bins, 257);
        assert!(toml::from_str::<TrainConfig>("batch_sise = 4").is_err());
    }

    #[test]
    fn example_config_lists_the_defaults() {
        let c: TrainConfig = toml::from_str(EXAMPLE).unwrap();
        let defaults = TrainConfig { data: c.data.clone(), ..TrainConfig::default() };
        assert_eq!(c, defaults, "train.example.toml drifted from TrainConfig::default()");
        assert_eq!(c.data.len(), 3);
        // It lists every key: values equal to the defaults would pass with keys left out.
        fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in t {
                match v.as_table() {
                    Some(inner) => keys(inner, &format!("{prefix}{k}."), out),
                    None => out.push(format!("{prefix}{k}")),
                }
            }
        }
        let (mut listed, mut all) = (Vec::new(), Vec::new());
        keys(&EXAMPLE.parse().unwrap(), "", &mut listed);
        keys(&toml::to_string(&TrainConfig::default()).unwrap().parse().unwrap(), "", &mut all);
        let missing: Vec<_> = all.iter().filter(|k| !listed.contains(k)).collect();
        assert!(missing.is_empty(), "train.example.toml does not list {missing:?}");
    }

    /// The shipped weights' configs and the exploration configs must keep loading (no
    /// renamed or removed option) and validating, so their runs stay reproducible.
    #[test]
    fn committed_configs_load_and_validate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut n = 0;
        for dir in ["assets/weights", "docs/exploration"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let c = TrainConfig::load(&path).unwrap();
                    c.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    n += 1;
                }
            }
        }
        assert!(n >= 10, "found only {n} configs");
    }

    #[test]
    fn lr_schedule_warms_up_then_decays() {
        let c = TrainConfig {
            lr: 1.0,
            warmup_steps: 10,
            steps_per_epoch: 10,
            epochs: 11,
            min_lr_fraction: 0.1,
            ..Default::default()
        };
        assert!((c.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(9) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(10) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(110) - 0.1).abs() < 1e-12);
        assert!(c.lr_at(60) < c.lr_at(30));
    }
}
