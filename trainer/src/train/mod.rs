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
pub mod ema;
mod fused_loss;
pub mod log;
pub mod optim;
mod run;
pub mod sampler;
mod sdr_loss;
mod trainer;

/// Checks shared by the tests of the fused loss ops.
#[cfg(test)]
mod test_util {
    use candle_core::{Tensor, Var};

    /// A fused loss and its elementary twin agree: in value within `value_tol(plain value)`,
    /// and in the gradient with respect to `var` element by element within `grad_rel` of the
    /// gradient's largest element, which must not be 0.
    pub(super) fn assert_same_loss_and_gradient(
        fused: &Tensor,
        plain: &Tensor,
        var: &Var,
        value_tol: impl Fn(f32) -> f32,
        grad_rel: f32,
        what: &str,
    ) {
        let (f, p) = (fused.to_scalar::<f32>().unwrap(), plain.to_scalar::<f32>().unwrap());
        assert!((f - p).abs() <= value_tol(p), "{what}: loss {f} vs {p}");
        let grad = |l: &Tensor| {
            l.backward().unwrap().get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let (gf, gp) = (grad(fused), grad(plain));
        let big = gp.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(big > 0.0, "{what}: zero gradient");
        for (x, y) in gf.iter().zip(&gp) {
            assert!((x - y).abs() <= grad_rel * big, "{what}: gradient {x} vs {y} (largest {big})");
        }
    }
}

use std::path::{Path, PathBuf};

use candle_core::Device;

pub(crate) use self::data::loudest_window;
pub use self::data::{RunData, load_data};
pub use self::run::{RunEnd, RunOptions, run};
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
