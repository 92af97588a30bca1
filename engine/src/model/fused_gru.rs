//! A GRU layer's recurrence over a whole sequence as one candle op, forward and backward,
//! for training on the CPU.
//!
//! Built from candle's elementary ops, a sequence of `T` steps is ~15 graph nodes per step,
//! and the backward pass of each step's slice of the projected inputs pads its gradient to
//! the whole sequence. At the shipped batch (12 × 2 s, T = 350 frames) that made the
//! backward pass ten times slower than the forward pass, most of it allocation, copies
//! and thread synchronisation. This op runs each batch row's recurrence in plain loops
//! (rows in parallel) and its backward pass is backpropagation through time written out
//! (Werbos 1990), recomputing the gates from the saved outputs. Both match the
//! elementary-op GRU to float rounding (tests below).
//!
//! Gate order and equations are PyTorch's `nn.GRU` (r, z, n):
//! ```text
//! gh = W_hh h + b_hh
//! r = σ(gi_r + gh_r)    z = σ(gi_z + gh_z)    n = tanh(gi_n + r · gh_n)
//! h' = n + z · (h − n)
//! ```

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::rt::math::Kernels;

/// The op: `gi [B, T, 3H]` (input projections with `b_ih`), `w_hh [3H, H]`, `b_hh [3H]`
/// → hidden states `[B, T, H]`, starting from a zero state. Inputs must be contiguous f32.
pub(super) struct GruSequence;

/// Runs the recurrence (see module docs) on a CPU tensor.
pub(super) fn forward(gi: &Tensor, w_hh: &Tensor, b_hh: &Tensor) -> Result<Tensor> {
    gi.contiguous()?.apply_op3(&w_hh.contiguous()?, &b_hh.contiguous()?, GruSequence)
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    super::cpu_operand(s, l, "fused GRU", None)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Gate values of one step: `r`, `z`, `n` and the recurrent part `gh_n`, each `[H]`.
struct Gates<'a> {
    r: &'a mut [f32],
    z: &'a mut [f32],
    n: &'a mut [f32],
    gh_n: &'a mut [f32],
}

/// The recurrent weights and the kernels to apply them with.
#[derive(Clone, Copy)]
struct Recurrent<'a> {
    k: Kernels,
    w_hh: &'a [f32],
    b_hh: &'a [f32],
}

impl Recurrent<'_> {
    /// One step for one batch row: `gh` is scratch `[3H]`; writes the gates and returns
    /// the new state in `h_out`.
    fn step(self, gi: &[f32], h: &[f32], gh: &mut [f32], g: Gates, h_out: &mut [f32]) {
        let hs = h.len();
        self.k.matvec(self.w_hh, h, self.b_hh, gh);
        for j in 0..hs {
            let r = sigmoid(gi[j] + gh[j]);
            let z = sigmoid(gi[hs + j] + gh[hs + j]);
            let n = (gi[2 * hs + j] + r * gh[2 * hs + j]).tanh();
            (g.r[j], g.z[j], g.n[j], g.gh_n[j]) = (r, z, n, gh[2 * hs + j]);
            h_out[j] = n + z * (h[j] - n);
        }
    }
}

impl CustomOp3 for GruSequence {
    fn name(&self) -> &'static str {
        "isola-gru-sequence"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, t, h3) = l1.shape().dims3()?;
        let hs = h3 / 3;
        if l2.shape().dims() != [h3, hs] || l3.shape().dims() != [h3] {
            candle_core::bail!(
                "fused GRU: gi {:?}, w_hh {:?}, b_hh {:?} do not fit",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let (gi, w_hh, b_hh) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let rec = Recurrent { k: Kernels::detect(), w_hh, b_hh };
        let mut out = vec![0.0f32; b * t * hs];
        out.par_chunks_mut((t * hs).max(1)).zip(gi.par_chunks((t * h3).max(1))).for_each(|(out, gi)| {
            let (mut gh, mut scratch) = (vec![0.0f32; h3], vec![0.0f32; 4 * hs]);
            let mut h = vec![0.0f32; hs];
            for (o, gi) in out.chunks_exact_mut(hs).zip(gi.chunks_exact(h3)) {
                let (r, rest) = scratch.split_at_mut(hs);
                let (z, rest) = rest.split_at_mut(hs);
                let (n, gh_n) = rest.split_at_mut(hs);
                rec.step(gi, &h, &mut gh, Gates { r, z, n, gh_n }, o);
                h.copy_from_slice(o);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, t, hs))))
    }

    /// Backpropagation through time. Per row, from the last step back: with `dh` the
    /// gradient reaching `h'` (from the output and from the next step),
    /// `dn = dh(1 − z)`, `dz = dh(h − n)`, `da_n = dn(1 − n²)`, `da_r = da_n gh_n r(1 − r)`,
    /// `da_z = dz z(1 − z)`; `d gi = [da_r, da_z, da_n]`, `d gh = [da_r, da_z, da_n r]`, and
    /// the state before gets `dh z + W_hhᵀ d gh`. `d W_hh = Σ d gh ⊗ h` and `d b_hh = Σ d gh`
    /// over rows and steps, as two matrix products after the loop.
    fn bwd(
        &self,
        gi: &Tensor,
        w_hh: &Tensor,
        b_hh: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, h3) = gi.dims3()?;
        let hs = h3 / 3;
        let dev = gi.device();
        let gi_v = gi.flatten_all()?.to_vec1::<f32>()?;
        let w_v = w_hh.flatten_all()?.to_vec1::<f32>()?;
        let wt_v = w_hh.t()?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let b_v = b_hh.flatten_all()?.to_vec1::<f32>()?;
        let h_v = res.flatten_all()?.to_vec1::<f32>()?;
        let dh_v = grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let k = Kernels::detect();
        let rec = Recurrent { k, w_hh: &w_v, b_hh: &b_v };
        let zeros_h3 = vec![0.0f32; h3];
        // Per row: d gi and d gh, each [T, 3H].
        let mut d_gi = vec![0.0f32; b * t * h3];
        let mut d_gh = vec![0.0f32; b * t * h3];
        let row = (t * h3).max(1);
        d_gi.par_chunks_mut(row).zip(d_gh.par_chunks_mut(row)).enumerate().for_each(|(i, (d_gi, d_gh))| {
            let gi = &gi_v[i * t * h3..(i + 1) * t * h3];
            let hseq = &h_v[i * t * hs..(i + 1) * t * hs];
            let dout = &dh_v[i * t * hs..(i + 1) * t * hs];
            // Gates recomputed from the saved states: [T, H] each.
            let (mut r, mut z, mut n, mut gh_n) =
                (vec![0.0f32; t * hs], vec![0.0f32; t * hs], vec![0.0f32; t * hs], vec![0.0f32; t * hs]);
            let (mut gh, mut h_new) = (vec![0.0f32; h3], vec![0.0f32; hs]);
            let zero = vec![0.0f32; hs];
            for s in 0..t {
                let h_prev = if s == 0 { &zero[..] } else { &hseq[(s - 1) * hs..s * hs] };
                let at = s * hs..(s + 1) * hs;
                let g =
                    Gates { r: &mut r[at.clone()], z: &mut z[at.clone()], n: &mut n[at.clone()], gh_n: &mut gh_n[at] };
                rec.step(&gi[s * h3..(s + 1) * h3], h_prev, &mut gh, g, &mut h_new);
            }
            let (mut dh, mut back) = (vec![0.0f32; hs], vec![0.0f32; hs]);
            for s in (0..t).rev() {
                let h_prev = if s == 0 { &zero[..] } else { &hseq[(s - 1) * hs..s * hs] };
                let (dgi, dgh) = (&mut d_gi[s * h3..(s + 1) * h3], &mut d_gh[s * h3..(s + 1) * h3]);
                for j in 0..hs {
                    let at = s * hs + j;
                    let d = dh[j] + dout[at];
                    let (r, z, n) = (r[at], z[at], n[at]);
                    let da_n = d * (1.0 - z) * (1.0 - n * n);
                    let da_r = da_n * gh_n[at] * r * (1.0 - r);
                    let da_z = d * (h_prev[j] - n) * z * (1.0 - z);
                    (dgi[j], dgi[hs + j], dgi[2 * hs + j]) = (da_r, da_z, da_n);
                    (dgh[j], dgh[hs + j], dgh[2 * hs + j]) = (da_r, da_z, da_n * r);
                    dh[j] = d * z;
                }
                // W_hhᵀ d gh: wt_v is W_hh transposed, [H, 3H].
                k.matvec(&wt_v, dgh, &zeros_h3[..hs], &mut back);
                dh.iter_mut().zip(&back).for_each(|(d, b)| *d += b);
            }
        });
        // A plain sum: candle's reduction over the leading dimension is strided and slow.
        let mut d_b = vec![0.0f32; h3];
        for row in d_gh.chunks_exact(h3) {
            d_b.iter_mut().zip(row).for_each(|(s, x)| *s += x);
        }
        let d_gh = Tensor::from_vec(d_gh, (b * t, h3), dev)?;
        // States entering each step: zero, then the outputs shifted by one step.
        let h_prev = Tensor::cat(&[&Tensor::zeros((b, 1, hs), res.dtype(), dev)?, &res.narrow(1, 0, t - 1)?], 1)?
            .reshape((b * t, hs))?;
        let d_w = d_gh.t()?.matmul(&h_prev)?;
        let d_b = Tensor::from_vec(d_b, h3, dev)?;
        Ok((Some(Tensor::from_vec(d_gi, (b, t, h3), dev)?), Some(d_w), Some(d_b)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};
    use candle_nn::VarBuilder;

    use super::super::Gru;
    use super::*;

    /// A GRU with seeded weights, its input and a fixed output weighting for a scalar loss.
    fn setup(b: usize, t: usize, input: usize, hs: usize) -> (Gru, Vec<Var>, Var, Tensor) {
        let dev = Device::Cpu;
        let var = |shape: &[usize], seed: u64| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|i| {
                    let x = ((i as u64 + 1) * 2_654_435_761 + seed * 40_503) % 10_007;
                    (x as f32 / 10_007.0 - 0.5) * 1.6
                })
                .collect();
            Var::from_tensor(&Tensor::from_vec(v, shape, &dev).unwrap()).unwrap()
        };
        let vars = vec![var(&[3 * hs, input], 1), var(&[3 * hs, hs], 2), var(&[3 * hs], 3), var(&[3 * hs], 4)];
        let mut map = std::collections::HashMap::new();
        for (name, v) in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].iter().zip(&vars) {
            map.insert(name.to_string(), v.as_tensor().clone());
        }
        let gru = Gru::new(input, hs, VarBuilder::from_tensors(map, DType::F32, &dev)).unwrap();
        let x = var(&[b, t, input], 5);
        let weighting = var(&[b, t, hs], 6).as_tensor().clone();
        (gru, vars, x, weighting)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn forward_and_gradients_match_the_elementary_op_gru() {
        for (b, t, input, hs) in [(3, 17, 5, 8), (1, 1, 4, 4), (2, 40, 7, 12)] {
            let (gru, vars, x, weighting) = setup(b, t, input, hs);
            let fused = gru.forward_seq(x.as_tensor(), None).unwrap();
            let plain = gru.forward_seq_elementary(x.as_tensor(), None).unwrap();
            assert!(max_diff(&fused, &plain) < 1e-5, "forward {b}x{t}x{hs}: {}", max_diff(&fused, &plain));

            let grads = |out: &Tensor| (out * &weighting).unwrap().sum_all().unwrap().backward().unwrap();
            let (gf, gp) = (grads(&fused), grads(&plain));
            for v in vars.iter().chain([&x]) {
                let (a, b) = (gf.get(v.as_tensor()).unwrap(), gp.get(v.as_tensor()).unwrap());
                let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
                assert!(
                    max_diff(a, b) <= 1e-5 * scale.max(1.0),
                    "gradient {:?}: {} of {scale}",
                    v.dims(),
                    max_diff(a, b)
                );
            }
        }
    }
}
