//! An exponential moving average of the trained weights (Polyak & Juditsky, "Acceleration of
//! stochastic approximation by averaging", 1992; as in TensorFlow's
//! `ExponentialMovingAverage` and Demucs' training). A run with `ema_decay > 0` validates,
//! keeps as best and exports the average rather than the last step's weights: late in a run
//! the validation SDR of single steps swings by most of a dB (docs/exploration.md), and the
//! average smooths that noise out.
//!
//! After update `t` (1-based) the average moves towards the weights by `1 − d_t`, with
//! `d_t = min(decay, (1 + t) / (10 + t))`: early averages follow the fast-moving weights
//! instead of remembering the random init for thousands of steps.

use std::collections::HashMap;

use candle_core::{Result, Tensor, Var};

/// Prefix of the average's tensors in a checkpoint (`ema.<variable>`), beside `model.*` and
/// the optimiser's `adam.*`.
pub const PREFIX: &str = "ema.";

pub struct Ema {
    decay: f64,
    /// The averaged variables by name, sorted, with their averages.
    vars: Vec<(String, Var, Tensor)>,
}

impl Ema {
    /// An average of `vars` that starts at their current values.
    pub fn new(mut vars: Vec<(String, Var)>, decay: f64) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let vars = vars.into_iter().map(|(n, v)| {
            let avg = v.as_tensor().detach().copy()?;
            Ok((n, v, avg))
        });
        Ok(Self { decay, vars: vars.collect::<Result<_>>()? })
    }

    /// The decay of update `t` (1-based).
    pub fn decay_at(&self, t: u64) -> f64 {
        self.decay.min((1.0 + t as f64) / (10.0 + t as f64))
    }

    /// Moves the average towards the variables' current values; `t` is the number of
    /// optimiser steps taken, this one included.
    pub fn update(&mut self, t: u64) -> Result<()> {
        let d = self.decay_at(t);
        for (_, var, avg) in &mut self.vars {
            // Detached: arithmetic on a variable records its op graph, and each average would
            // keep every earlier one alive (a run grew by gigabytes per thousand steps).
            *avg = ((&*avg * d)? + (var.as_tensor().detach() * (1.0 - d))?)?;
        }
        Ok(())
    }

    /// The averages by variable name.
    pub fn averages(&self) -> HashMap<String, Tensor> {
        self.vars.iter().map(|(n, _, a)| (n.clone(), a.clone())).collect()
    }

    /// The averages as checkpoint tensors (`ema.<variable>`).
    pub fn state(&self) -> HashMap<String, Tensor> {
        self.vars.iter().map(|(n, _, a)| (format!("{PREFIX}{n}"), a.clone())).collect()
    }

    /// Restores averages saved by [`Ema::state`].
    ///
    /// Errors: a variable whose average is missing or has another shape.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> anyhow::Result<()> {
        for (name, _, avg) in &mut self.vars {
            let key = format!("{PREFIX}{name}");
            let saved =
                tensors.get(&key).ok_or_else(|| anyhow::anyhow!("checkpoint lacks the weight average {key}"))?;
            anyhow::ensure!(saved.dims() == avg.dims(), "weight average {key} has the wrong shape");
            *avg = saved.clone();
        }
        Ok(())
    }
}

/// The averages a checkpoint's tensors hold (`ema.<variable>`, by variable name); empty for a
/// run without an average.
pub fn from_checkpoint(tensors: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors.iter().filter_map(|(k, t)| k.strip_prefix(PREFIX).map(|n| (n.to_string(), t.clone()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_average_follows_the_ramped_decay_and_round_trips() {
        let x = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let mut ema = Ema::new(vec![("x".into(), x.clone())], 0.99).unwrap();
        // Early steps: (1 + t) / (10 + t) is below the decay.
        assert_eq!(ema.decay_at(1), 2.0 / 11.0);
        assert_eq!(ema.decay_at(10_000), 0.99);
        // Weights that stay put keep the average where it is.
        ema.update(1).unwrap();
        assert_eq!(ema.averages()["x"].to_vec1::<f32>().unwrap(), [1.0, -2.0]);
        // A jump moves it by 1 - d_t.
        x.set(&Tensor::new(&[3.0f32, 0.0], &Device::Cpu).unwrap()).unwrap();
        ema.update(2).unwrap();
        let d = 3.0 / 12.0;
        let want = [1.0 * d + 3.0 * (1.0 - d), -2.0 * d];
        let got = ema.averages()["x"].to_vec1::<f32>().unwrap();
        assert!(got.iter().zip(want).all(|(g, w)| (f64::from(*g) - w).abs() < 1e-6), "{got:?} vs {want:?}");
        // Outside the autograd graph, or it would hold every earlier average alive.
        assert!(!ema.averages()["x"].track_op());
        // The average is a copy: changing the weights does not change it.
        x.set(&Tensor::new(&[9.0f32, 9.0], &Device::Cpu).unwrap()).unwrap();
        assert_eq!(ema.averages()["x"].to_vec1::<f32>().unwrap(), got);
        // Checkpoint round trip, and what a checkpoint without it says.
        let state = ema.state();
        assert_eq!(from_checkpoint(&state).keys().collect::<Vec<_>>(), ["x"]);
        let mut other = Ema::new(vec![("x".into(), x.clone())], 0.99).unwrap();
        other.load_state(&state).unwrap();
        assert_eq!(other.averages()["x"].to_vec1::<f32>().unwrap(), got);
        let err = other.load_state(&HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("lacks the weight average ema.x"), "{err}");
    }
}
