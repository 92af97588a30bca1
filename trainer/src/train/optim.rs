//! AdamW with global gradient-norm clipping. Written out (rather than
//! candle_nn's) because its moments must go into checkpoints for `--resume`
//! to continue exactly where a killed run stopped.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

pub struct AdamW {
    /// Trained variables by name, sorted (stable checkpoint layout).
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates taken (for bias correction).
    pub t: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl AdamW {
    pub fn new(mut vars: Vec<(String, Var)>, weight_decay: f64) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars.iter().map(|(_, v)| v.as_tensor().zeros_like()).collect::<Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self { vars, m, v, t: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay })
    }

    /// One update at learning rate `lr`, gradients scaled so their global L2
    /// norm is at most `clip`. Returns the norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64, clip: f64) -> Result<f64> {
        let mut sq = 0.0f64;
        for (_, var) in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
        }
        let norm = sq.sqrt();
        let scale = if norm > clip { clip / norm } else { 1.0 };
        self.t += 1;
        let c1 = 1.0 - self.beta1.powi(self.t as i32);
        let c2 = 1.0 - self.beta2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let g = (g * scale)?;
            self.m[i] = ((&self.m[i] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            self.v[i] = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&self.m[i] / c1)? / ((&self.v[i] / c2)?.sqrt()? + self.eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(norm)
    }

    /// Moments as named tensors (`adam.m.<var>`, `adam.v.<var>`).
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("adam.m.{name}"), self.m[i].clone());
            out.insert(format!("adam.v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restores moments saved by [`AdamW::state`].
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, t: u64) -> anyhow::Result<()> {
        for (i, (name, _)) in self.vars.iter().enumerate() {
            for (kind, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("adam.{kind}.{name}");
                let saved =
                    tensors.get(&key).ok_or_else(|| anyhow::anyhow!("checkpoint lacks optimizer state {key}"))?;
                anyhow::ensure!(saved.dims() == slot.dims(), "optimizer state {key} has the wrong shape");
                *slot = saved.clone();
            }
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn minimises_a_quadratic_and_clips() {
        let x = Var::from_slice(&[3.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(vec![("x".into(), x.clone())], 0.0).unwrap();
        for _ in 0..300 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, 0.05, 1.0).unwrap();
        }
        let v = x.as_tensor().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|a| a.abs() < 0.05), "{v:?}");
        // The gradient norm is reported before clipping.
        let loss = (x.as_tensor() * 1000.0).unwrap().sum_all().unwrap();
        let norm = opt.step(&loss.backward().unwrap(), 0.0, 1.0).unwrap();
        assert!((norm - 1000.0 * 2f64.sqrt()).abs() < 1e-2, "{norm}");
    }
}
