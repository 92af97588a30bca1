//! `isola train`: the training loop.
//!
//! Each step draws `batch_size` augmented examples (see `sampler`), turns
//! them into STFT magnitudes on the engine's grid, runs the candle
//! `MaskNet` and minimises the L1 distance between the masked mixture and
//! the target magnitudes (vocals with the mask, accompaniment with its
//! complement). Each epoch ends with validation: the loss on fixed held-out
//! chunks, and vocals SDR of held-out tracks separated by the engine's
//! streaming `Separator` with the current weights.

pub mod augment;
mod batch;
pub mod checkpoint;
pub mod config;
mod data;
mod fused_loss;
pub mod log;
pub mod optim;
mod run;
pub mod sampler;
mod sdr_loss;
mod trainer;

use std::path::{Path, PathBuf};

use candle_core::Device;

pub use self::data::{RunData, load_data};
pub use self::run::run;
pub use self::trainer::{StepTimes, Trainer};

/// Paths inside a run folder.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    out.join("checkpoint.safetensors")
}
pub fn best_path(out: &Path) -> PathBuf {
    out.join("best.safetensors")
}

/// `cpu`, `cuda:N` (feature `cuda`) or `metal` (feature `metal`).
pub fn parse_device(name: &str) -> anyhow::Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        n if n.starts_with("cuda") => {
            let index: usize = match n.strip_prefix("cuda:") {
                Some(i) => i.parse().map_err(|_| anyhow::anyhow!("--device cuda:N needs a number, got {n:?}"))?,
                None => 0,
            };
            Ok(Device::new_cuda(index)?)
        }
        #[cfg(feature = "metal")]
        "metal" => Ok(Device::new_metal(0)?),
        n if n.starts_with("cuda") => {
            anyhow::bail!("this isola was built without CUDA: cargo build --release -p isola-trainer --features cuda")
        }
        "metal" => {
            anyhow::bail!("this isola was built without Metal: cargo build --release -p isola-trainer --features metal")
        }
        n => anyhow::bail!("unknown device {n:?}: use cpu, cuda:N or metal"),
    }
}
