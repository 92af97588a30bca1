//! The real-time network's weight matrices, stored in the precision chosen at load.
//!
//! The weights file stays the f32 contract; [`Matrix::new`] converts each matrix once, off
//! the audio thread. Products always accumulate in f32 against f32 activations, so only the
//! weights are rounded:
//! - [`Precision::F16`]: IEEE half floats (11-bit significand, relative error ≤ 2⁻¹¹),
//!   widened with F16C on x86-64.
//! - [`Precision::Int8`]: symmetric int8 with one f32 scale per 32 columns of a row
//!   (`W[r, c] ≈ scale[r, g] · q[r, c]` for `c` in group `g`, `scale = max |W| / 127` over
//!   the group): block-wise absmax quantization as in llama.cpp's `Q8_0` (1.125 bytes per
//!   weight); per-row scales put the light model's masks 8e-3 off, groups of 32 bring that
//!   down (parity test).
//!
//! Why: the light network reads every weight once per frame. In f32 that is 2.4 MB, more
//! than a core's L2, so each frame streams them from L3 or memory; int8 is a quarter.

use std::ops::Range;

use crate::rt::math::{self, INT8_GROUP};

/// Storage precision of the real-time network's weight matrices (biases, normalisation and
/// recurrent state stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// The weights as trained.
    F32,
    /// IEEE binary16: half the bytes. Masks within 3e-4 of f32 on the embedded weights
    /// (parity test).
    F16,
    /// int8 with an f32 scale per 32 weights: 28 % of the bytes. Masks up to 7e-3 off f32
    /// on the light default (parity test): above the issue-15 bar of 2e-3.
    Int8,
    /// A network policy rather than a matrix format ([`Precision::for_matrix`]): int8 for
    /// the GRU layers after the first, f16 for everything else. The default: the light
    /// default's weights fit in 1 MiB and its masks stay within 7e-4 of f32 (parity test).
    #[default]
    Mixed,
}

/// Where a matrix sits in the network, which [`Precision::Mixed`] decides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixRole {
    /// fc1, fc2, fc3.
    Dense,
    /// A GRU layer's input or hidden matrix (layer 0 is the first).
    Gru(usize),
}

impl Precision {
    pub const ALL: [Precision; 4] = [Precision::F32, Precision::F16, Precision::Int8, Precision::Mixed];

    /// The name the CLI and benchmarks use: `f32`, `f16`, `int8`, `mixed`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Int8 => "int8",
            Precision::Mixed => "mixed",
        }
    }

    /// The format of one matrix in `role`. Mixed keeps f16 where int8 errors grow into the
    /// masks: measured on the light default (1200 frames), int8 in fc1 alone puts masks
    /// 4.4e-3 off f32, in the first GRU layer's input matrices 3.3e-3, in every GRU hidden
    /// matrix 2.4e-3; the input and hidden matrices of the later GRU layers 6.7e-4.
    pub fn for_matrix(self, role: MatrixRole) -> Precision {
        match (self, role) {
            (Precision::Mixed, MatrixRole::Gru(layer)) if layer > 0 => Precision::Int8,
            (Precision::Mixed, _) => Precision::F16,
            (p, _) => p,
        }
    }

    /// Parses [`Precision::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

#[derive(Debug, Clone)]
enum Data {
    F32(Vec<f32>),
    /// IEEE binary16 bit patterns.
    F16(Vec<u16>),
    Int8 {
        q: Vec<i8>,
        scales: Vec<f32>,
    },
}

/// A row-major `[rows, cols]` weight matrix in one [`Precision`].
#[derive(Debug, Clone)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Data,
}

impl Matrix {
    /// Converts row-major f32 weights `w [rows, cols]` to `precision` (`Mixed`, a network
    /// policy, means int8 here; see [`Precision::for_matrix`]). Any thread but the audio
    /// thread (allocates). Panics if `w.len() != rows · cols` (the weights were validated).
    pub fn new(w: &[f32], rows: usize, cols: usize, precision: Precision) -> Self {
        assert_eq!(w.len(), rows * cols, "matrix [{rows}, {cols}] from {} weights", w.len());
        let data = match precision {
            Precision::F32 => Data::F32(w.to_vec()),
            Precision::F16 => Data::F16(w.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect()),
            Precision::Int8 | Precision::Mixed => {
                let mut q = Vec::with_capacity(w.len());
                let mut scales = Vec::with_capacity(rows * cols.div_ceil(INT8_GROUP));
                for row in w.chunks_exact(cols.max(1)).take(rows) {
                    for group in row.chunks(INT8_GROUP) {
                        let max = group.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                        q.extend(group.iter().map(|&v| (v / scale).round().clamp(-127.0, 127.0) as i8));
                        scales.push(scale);
                    }
                }
                Data::Int8 { q, scales }
            }
        };
        Self { rows, cols, data }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn precision(&self) -> Precision {
        match self.data {
            Data::F32(_) => Precision::F32,
            Data::F16(_) => Precision::F16,
            Data::Int8 { .. } => Precision::Int8,
        }
    }

    /// Bytes the products read per use (weights and scales).
    pub fn bytes(&self) -> usize {
        let (a, b) = self.storage();
        a.len() + b.len()
    }

    /// `y = W x + b` (`x [cols]`, `b` and `y [rows]`). `FMA` selects the AVX2+FMA(+F16C)
    /// kernels and is only true inside functions compiled for them (see
    /// [`math::Kernels`]). Audio thread; no allocation.
    #[inline(always)]
    pub fn matvec<const FMA: bool>(&self, x: &[f32], b: &[f32], y: &mut [f32]) {
        self.matvec_rows::<FMA>(x, b, y, 0..self.rows);
    }

    /// [`Matrix::matvec`] for the rows `rows` only: writes `y[rows]` from `b[rows]`, the
    /// rest of `y` untouched. Each row's arithmetic is the same as in the whole product, so a
    /// product done in pieces is bit-identical. Rows past the end are ignored.
    /// Audio thread; no allocation.
    #[inline(always)]
    pub fn matvec_rows<const FMA: bool>(&self, x: &[f32], b: &[f32], y: &mut [f32], rows: Range<usize>) {
        let (r1, n) = (rows.end.min(self.rows).min(y.len()).min(b.len()), self.cols);
        let r0 = rows.start.min(r1);
        let (b, y) = (&b[r0..r1], &mut y[r0..r1]);
        match &self.data {
            Data::F32(w) => math::matvec_body::<FMA>(&w[r0 * n..r1 * n], x, b, y),
            Data::F16(w) => math::matvec_f16_body::<FMA>(&w[r0 * n..r1 * n], x, b, y),
            Data::Int8 { q, scales } => {
                let g = n.div_ceil(INT8_GROUP);
                math::matvec_i8_body::<FMA>(&q[r0 * n..r1 * n], &scales[r0 * g..r1 * g], x, b, y)
            }
        }
    }

    /// Asks the CPU to bring cache lines `first..first + count` of this matrix's storage
    /// (64-byte lines, counted from its start; scales after the weights) into L2, without
    /// waiting for them. Returns how many of them exist. Audio thread; no allocation.
    #[inline]
    pub fn prefetch_lines(&self, first: usize, count: usize) -> usize {
        let (a, b) = self.storage();
        let (la, lb) = (lines(a), lines(b));
        for line in first..(first + count).min(la + lb) {
            let (s, l) = if line < la { (a, line) } else { (b, line - la) };
            math::prefetch(&s[l * LINE..]);
        }
        la + lb
    }

    /// Cache lines of storage (what [`Matrix::prefetch_lines`] counts).
    pub fn lines(&self) -> usize {
        let (a, b) = self.storage();
        lines(a) + lines(b)
    }

    /// The stored bytes: the weights, then the int8 scales (empty otherwise).
    fn storage(&self) -> (&[u8], &[u8]) {
        match &self.data {
            Data::F32(w) => (bytes_of(w), &[]),
            Data::F16(w) => (bytes_of(w), &[]),
            Data::Int8 { q, scales } => (bytes_of(q), bytes_of(scales)),
        }
    }
}

fn lines(bytes: &[u8]) -> usize {
    bytes.len().div_ceil(LINE)
}

/// x86-64 and Apple/ARM cores all move 64-byte lines between L1 and L2.
const LINE: usize = 64;

fn bytes_of<T: Copy>(s: &[T]) -> &[u8] {
    // SAFETY: f32, u16 and i8 have no padding or invalid byte patterns, and the slice's
    // bytes stay borrowed from `s`.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u8>(), std::mem::size_of_val(s)) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic `W [rows, cols]`, `x [cols]` and `b [rows]` for kernel tests.
    pub(crate) fn product_case(rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let w = (0..rows * cols).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let x = (0..cols).map(|i| ((i * 104_729) % 997) as f32 / 997.0 - 0.5).collect();
        let b = (0..rows).map(|i| i as f32 * 0.01).collect();
        (w, x, b)
    }

    fn naive(w: &[f32], x: &[f32], b: &[f32]) -> Vec<f64> {
        w.chunks_exact(x.len())
            .zip(b)
            .map(|(row, &b)| row.iter().zip(x).map(|(&w, &x)| w as f64 * x as f64).sum::<f64>() + b as f64)
            .collect()
    }

    #[test]
    fn every_precision_and_kernel_set_matches_the_f32_product_within_its_rounding() {
        // Odd sizes exercise the 8-wide remainders and the single-row tail.
        for (rows, cols) in [(37, 1029), (7, 5), (384, 128)] {
            let (w, x, b) = product_case(rows, cols);
            let want = naive(&w, &x, &b);
            // Worst case per row: Σ|x| times the largest weight rounding error.
            let sum_abs_x: f64 = x.iter().map(|v| v.abs() as f64).sum();
            for p in Precision::ALL {
                let m = Matrix::new(&w, rows, cols, p);
                let stored = if p == Precision::Mixed { Precision::Int8 } else { p };
                assert_eq!(m.precision(), stored);
                let step = match stored {
                    Precision::F32 => 1e-6,
                    Precision::F16 => 0.5 * 2f64.powi(-11),
                    _ => 0.5 * 0.5 / 127.0, // half a step of the largest possible scale
                };
                for k in math::Kernels::available() {
                    let mut y = vec![0.0; rows];
                    k.matrix_vector(&m, &x, &b, &mut y);
                    for (r, (a, e)) in y.iter().zip(&want).enumerate() {
                        let err = (*a as f64 - e).abs();
                        assert!(err <= step * sum_abs_x + 1e-4, "{p:?} {k:?} [{rows}, {cols}] row {r}: {a} vs {e}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_product_done_in_row_ranges_is_bit_identical_to_the_whole() {
        let (rows, cols) = (37, 75);
        let (w, x, b) = product_case(rows, cols);
        for p in Precision::ALL {
            let m = Matrix::new(&w, rows, cols, p);
            for k in math::Kernels::available() {
                let mut whole = vec![0.0; rows];
                k.matrix_vector(&m, &x, &b, &mut whole);
                // Ranges of 5 rows cut across the 4-row blocks of the AVX2 kernels.
                let mut pieces = vec![f32::NAN; rows];
                for r in (0..rows).step_by(5) {
                    k.matrix_vector_rows(&m, &x, &b, &mut pieces, r..r + 5);
                }
                assert_eq!(whole, pieces, "{p:?} {k:?}");
            }
        }
    }

    #[test]
    fn int8_rows_use_the_full_range_and_zero_rows_stay_zero() {
        let w = [0.5, -1.0, 0.25, 0.0, 0.0, 0.0];
        let m = Matrix::new(&w, 2, 3, Precision::Int8);
        let Data::Int8 { q, scales } = &m.data else { unreachable!() };
        assert_eq!(&q[..3], &[64, -127, 32]);
        assert_eq!(&q[3..], &[0, 0, 0]);
        assert!((scales[0] - 1.0 / 127.0).abs() < 1e-9 && scales[1] == 1.0);
        // Each 32 columns get their own scale: a large weight in one group leaves the
        // small weights of the next exact.
        let mut wide = vec![0.001f32; 40];
        wide[0] = 1.0;
        let g = Matrix::new(&wide, 1, 40, Precision::Int8);
        let Data::Int8 { q: gq, scales: gs } = &g.data else { unreachable!() };
        assert_eq!(gs.len(), 2);
        assert_eq!((gq[1], gq[32]), (0, 127));
        assert_eq!(m.bytes(), 6 + 8);
        assert_eq!(Matrix::new(&w, 2, 3, Precision::F16).bytes(), 12);
        assert_eq!(m.lines(), 2);
        assert_eq!(m.prefetch_lines(0, 100), 2);
    }

    #[test]
    fn precision_names_round_trip() {
        for p in Precision::ALL {
            assert_eq!(Precision::from_name(p.name()), Some(p));
        }
        assert_eq!(Precision::from_name("bf16"), None);
    }
}
