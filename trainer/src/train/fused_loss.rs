//! The training loss (see [`super::batch::loss`]) as one candle op on the CPU, forward and
//! backward.
//!
//! Built from elementary ops, the loss is ~10 passes over `[B, T, C, n_bins]` tensors
//! forward and ~30 backward, because candle's backward pass also computes the gradients
//! of the data operands (mixture, targets, bin weights) that nothing uses. This op makes one
//! pass each way and matches the elementary loss to float rounding (test below).

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// The loss of mask logits `[B, T, C, n]` (contiguous f32) against fixed data of the
/// same shape, with per-(example, bin) weights `bins [B, n]`.
pub(super) struct MaskL1 {
    /// `(B, T·C, n)`: the bin weights broadcast over frames and channels.
    dims: (usize, usize, usize),
    mix: Vec<f32>,
    voc: Vec<f32>,
    acc: Vec<f32>,
    bins: Vec<f32>,
    power: f32,
}

impl MaskL1 {
    /// `mix`, `voc`, `acc` `[B, T, C, n]`, `bins` `[B, 1, 1, n]`; `power` > 0.
    pub(super) fn new(mix: &Tensor, voc: &Tensor, acc: &Tensor, bins: &Tensor, power: f64) -> Result<Self> {
        let (b, t, c, n) = mix.dims4()?;
        let flat = |x: &Tensor| x.contiguous()?.flatten_all()?.to_vec1::<f32>();
        Ok(Self {
            dims: (b, t * c, n),
            mix: flat(mix)?,
            voc: flat(voc)?,
            acc: flat(acc)?,
            bins: flat(bins)?,
            power: power as f32,
        })
    }

    /// The compression `x ↦ (x + 1e-8)^p` (identity for p = 1) and its derivative.
    fn compress(&self, x: f32) -> (f32, f32) {
        if self.power == 1.0 {
            (x, 1.0)
        } else {
            let y = (x + 1e-8).powf(self.power - 1.0);
            (y * (x + 1e-8), self.power * y)
        }
    }

    /// Calls `f(i, w, s, …)` for every element: its weight, and the element's mask.
    fn for_each(&self, logits: &[f32], mut f: impl FnMut(usize, f32, f32)) {
        let (b, frames, n) = self.dims;
        for e in 0..b {
            let w = &self.bins[e * n..(e + 1) * n];
            for fr in 0..frames {
                let base = (e * frames + fr) * n;
                for (k, &w) in w.iter().enumerate() {
                    let i = base + k;
                    f(i, w, 1.0 / (1.0 + (-logits[i]).exp()));
                }
            }
        }
    }

    /// The normaliser: the weighted sum of the compressed mixture.
    fn scale(&self) -> f64 {
        let mut s = 0.0f64;
        self.for_each(&self.mix, |i, w, _| s += f64::from(w * self.compress(self.mix[i]).0));
        s + 1e-8
    }
}

impl CustomOp1 for MaskL1 {
    fn name(&self) -> &'static str {
        "isola-mask-l1"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let logits = isola_engine::model::cpu_operand(s, l, "mask loss", Some(self.mix.len()))?;
        let mut total = 0.0f64;
        self.for_each(logits, |i, w, s| {
            let ev = s * self.mix[i];
            let ea = self.mix[i] - ev;
            let d = (self.compress(ev).0 - self.compress(self.voc[i]).0).abs()
                + (self.compress(ea).0 - self.compress(self.acc[i]).0).abs();
            total += f64::from(w * d);
        });
        Ok((CpuStorage::F32(vec![(total / self.scale()) as f32]), Shape::from(())))
    }

    /// `dL/dl = w/S · m · s(1 − s) · [sgn(c(ŝ_v) − c(v)) c'(ŝ_v) − sgn(c(ŝ_a) − c(a)) c'(ŝ_a)]`,
    /// with candle's `abs` convention `sgn(0) = +1`.
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let logits = arg.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let g = grad_res.to_scalar::<f32>()? / self.scale() as f32;
        let sgn = |x: f32| if x >= 0.0 { 1.0 } else { -1.0 };
        let mut out = vec![0.0f32; logits.len()];
        self.for_each(&logits, |i, w, s| {
            let m = self.mix[i];
            let ((cv, dv), (ca, da)) = (self.compress(s * m), self.compress(m - s * m));
            let dl = sgn(cv - self.compress(self.voc[i]).0) * dv - sgn(ca - self.compress(self.acc[i]).0) * da;
            out[i] = g * w * dl * m * s * (1.0 - s);
        });
        Ok(Some(Tensor::from_vec(out, arg.shape(), arg.device())?))
    }
}
