//! The per-band linear layers of a band-split model ([`BandLayout`]): `split` maps each
//! band's features to its own `D`-wide embedding, `merge` maps each band's embedding back
//! to its features. Both use one weight `W [D, F]` whose column `j` belongs to feature `j`'s
//! band `k(j)`:
//!
//! ```text
//! split:  y[n, k·D + d] = Σ_{j: k(j) = k} W[d, j] · x[n, j]      x [N, F] → y [N, K·D]
//! merge:  z[n, j]       = Σ_d W[d, j] · e[n, k(j)·D + d]          e [N, K·D] → z [N, F]
//! ```
//!
//! (block-diagonal layers, the band split and mask estimation modules of band-split RNNs;
//! biases are added by the caller). On the CPU each is one candle op with a written-out
//! backward pass; elsewhere they are dense products with the block-diagonal weight spelled
//! out, which is also what the tests check the ops against.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use crate::config::BandLayout;

/// `x [N, F]` → `[N, K·D]` (see the module docs).
pub fn split(x: &Tensor, w: &Tensor, bands: &Arc<BandLayout>) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x.contiguous()?.apply_op2(&w.contiguous()?, BandOp { bands: Arc::clone(bands), merge: false });
    }
    x.matmul(&dense(w, bands)?)
}

/// `e [N, K·D]` → `[N, F]` (see the module docs).
pub fn merge(e: &Tensor, w: &Tensor, bands: &Arc<BandLayout>) -> Result<Tensor> {
    if e.device().is_cpu() && e.dtype() == DType::F32 {
        return e.contiguous()?.apply_op2(&w.contiguous()?, BandOp { bands: Arc::clone(bands), merge: true });
    }
    e.matmul(&dense(w, bands)?.t()?)
}

/// The block-diagonal weight `[F, K·D]` of `split` (its transpose is `merge`'s), from
/// elementary ops: `W[d, j]` lands in column `k(j)·D + d` of row `j`.
fn dense(w: &Tensor, bands: &BandLayout) -> Result<Tensor> {
    let (d, f) = w.dims2()?;
    let k = bands.bands();
    let mut onehot = vec![0.0f32; f * k];
    for (j, &b) in bands.feature_band.iter().enumerate() {
        onehot[j * k + b] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (f, k, 1), w.device())?.to_dtype(w.dtype())?;
    w.t()?.unsqueeze(1)?.broadcast_mul(&onehot)?.reshape((f, k * d))
}

struct BandOp {
    bands: Arc<BandLayout>,
    merge: bool,
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    super::cpu_operand(s, l, "band layer", None)
}

impl BandOp {
    /// `(N, F, K, D)` from the operands, checked.
    fn dims(&self, input: &Layout, w: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (d, f) = w.shape().dims2()?;
        let k = self.bands.bands();
        let (n, width) = input.shape().dims2()?;
        let expected = if self.merge { k * d } else { f };
        if width != expected || f != self.bands.feature_band.len() {
            candle_core::bail!("band layer: input width {width} and weight [{d}, {f}] do not fit {k} bands");
        }
        Ok((n, f, k, d))
    }
}

impl CustomOp2 for BandOp {
    fn name(&self) -> &'static str {
        if self.merge { "isola-band-merge" } else { "isola-band-split" }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, f, k, d) = self.dims(l1, l2)?;
        let (x, w) = (slice(s1, l1)?, slice(s2, l2)?);
        // `W` transposed, `[F, D]`: feature `j`'s weights are one contiguous row, so both
        // layers are runs of length-`D` axpys and dots that vectorise (the strided scatter
        // this replaced made a band32 training step 1.6× as slow; train_step bench).
        let wt = transpose(w, d, f);
        let band = &self.bands.feature_band;
        if self.merge {
            let mut out = vec![0.0f32; n * f];
            for (row, e) in out.chunks_exact_mut(f).zip(x.chunks_exact(k * d)) {
                for ((o, wj), &b) in row.iter_mut().zip(wt.chunks_exact(d)).zip(band) {
                    *o = dot(wj, &e[b * d..(b + 1) * d]);
                }
            }
            Ok((CpuStorage::F32(out), Shape::from((n, f))))
        } else {
            let mut out = vec![0.0f32; n * k * d];
            for (y, x) in out.chunks_exact_mut(k * d).zip(x.chunks_exact(f)) {
                for ((&xj, wj), &b) in x.iter().zip(wt.chunks_exact(d)).zip(band) {
                    axpy(&mut y[b * d..(b + 1) * d], xj, wj);
                }
            }
            Ok((CpuStorage::F32(out), Shape::from((n, k * d))))
        }
    }

    /// Split: `dx[n, j] = Σ_d W[d, j] g[n, k(j)·D + d]` (a merge of `g`) and
    /// `dW[d, j] = Σ_n g[n, k(j)·D + d] x[n, j]`. Merge: `de` is a split of `g`, and
    /// `dW[d, j] = Σ_n g[n, j] e[n, k(j)·D + d]`.
    fn bwd(
        &self,
        arg1: &Tensor,
        arg2: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let bands = Arc::clone(&self.bands);
        let d_input = if self.merge { split(grad_res, arg2, &bands)? } else { merge(grad_res, arg2, &bands)? };
        let (d, f) = arg2.dims2()?;
        let (x, g) = (
            arg1.contiguous()?.flatten_all()?.to_vec1::<f32>()?,
            grad_res.contiguous()?.flatten_all()?.to_vec1::<f32>()?,
        );
        let k = bands.bands();
        // Rows of the feature side (`x` for split, `g` for merge) and the band side.
        let (feat, emb) = if self.merge { (&g, &x) } else { (&x, &g) };
        // Accumulated transposed (`[F, D]`, as in the forward pass), then turned back.
        let mut dwt = vec![0.0f32; f * d];
        for (fr, er) in feat.chunks_exact(f).zip(emb.chunks_exact(k * d)) {
            for ((&xj, o), &b) in fr.iter().zip(dwt.chunks_exact_mut(d)).zip(&bands.feature_band) {
                axpy(o, xj, &er[b * d..(b + 1) * d]);
            }
        }
        Ok((Some(d_input), Some(Tensor::from_vec(transpose(&dwt, f, d), (d, f), arg2.device())?)))
    }
}

/// `a [rows, cols]` (row-major) → `[cols, rows]`.
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; a.len()];
    for (r, row) in a.chunks_exact(cols).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    t
}

/// `y += a · x`.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `Σ a·b` over eight partial sums, so that the loop vectorises (a single running sum
/// would fix the order of the additions).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(p, q)| p * q).sum();
    for (p, q) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += p[i] * q[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    #[test]
    fn fused_band_layers_match_the_dense_block_diagonal_ones_and_their_gradients() {
        let dev = Device::Cpu;
        let bands = Arc::new(BandLayout::new(33, 2));
        let (n, f, k, d) = (5, 66, bands.bands(), 3);
        let w = Var::from_tensor(&Tensor::from_vec(data(d * f, 1), (d, f), &dev).unwrap()).unwrap();
        for merge_op in [false, true] {
            let width = if merge_op { k * d } else { f };
            let x = Var::from_tensor(&Tensor::from_vec(data(n * width, 2), (n, width), &dev).unwrap()).unwrap();
            let fused = if merge_op { merge(&x, &w, &bands) } else { split(&x, &w, &bands) }.unwrap();
            let plain = if merge_op {
                x.matmul(&dense(&w, &bands).unwrap().t().unwrap())
            } else {
                x.matmul(&dense(&w, &bands).unwrap())
            }
            .unwrap();
            let close = |a: &Tensor, b: &Tensor, what: &str| {
                let (a, b) = (
                    a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                );
                let big = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(big > 0.1, "{what}: trivial");
                for (p, q) in a.iter().zip(&b) {
                    assert!((p - q).abs() <= 1e-5 * big, "merge {merge_op} {what}: {p} vs {q}");
                }
            };
            close(&fused, &plain, "output");
            // A loss that weighs every output differently.
            let r = Tensor::from_vec(data(fused.elem_count(), 3), fused.shape(), &dev).unwrap();
            let (gf, gp) = (
                (&fused * &r).unwrap().sum_all().unwrap().backward().unwrap(),
                (&plain * &r).unwrap().sum_all().unwrap().backward().unwrap(),
            );
            close(gf.get(&x).unwrap(), gp.get(&x).unwrap(), "input gradient");
            close(gf.get(&w).unwrap(), gp.get(&w).unwrap(), "weight gradient");
        }
        // Split only reads a band's own features: changing feature 0 (band 0) changes only
        // band 0's embedding.
        let x = Tensor::from_vec(data(f, 4), (1, f), &dev).unwrap();
        let mut bumped = data(f, 4);
        bumped[0] += 1.0;
        let (a, b) = (
            split(&x, &w, &bands).unwrap(),
            split(&Tensor::from_vec(bumped, (1, f), &dev).unwrap(), &w, &bands).unwrap(),
        );
        let diff: Vec<f32> = (a - b).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert!(diff[..d].iter().all(|v| v.abs() > 0.0) && diff[d..].iter().all(|v| *v == 0.0), "{diff:?}");
    }
}
