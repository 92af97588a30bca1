//! Allocation-free numeric kernels for the real-time network. Audio thread.
//!
//! Matrix-vector products dominate the per-frame cost, so on x86-64 a copy of each
//! kernel is compiled for AVX2+FMA(+F16C) and picked once, when the network is built.

use std::ops::Range;

use crate::rt::matrix::Matrix;

/// Which kernel set runs: decided once per network (feature detection is not free).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Kernels {
    /// The fastest kernels this CPU supports. `Avx2Fma` also needs F16C (every AVX2 CPU
    /// has it) to widen f16 weights.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return Kernels::Avx2Fma;
        }
        Kernels::Portable
    }

    /// Every kernel set this CPU can run (tests check each).
    pub fn available() -> Vec<Self> {
        let mut all = vec![Kernels::Portable];
        if Self::detect() != Kernels::Portable {
            all.push(Self::detect());
        }
        all
    }

    /// `y = W x + b` for a weight matrix in any [`Precision`](crate::rt::matrix::Precision).
    /// Audio thread.
    #[inline]
    pub fn matrix_vector(self, w: &Matrix, x: &[f32], b: &[f32], y: &mut [f32]) {
        self.matrix_vector_rows(w, x, b, y, 0..w.rows());
    }

    /// [`Kernels::matrix_vector`] for the rows `rows` only (see [`Matrix::matvec_rows`]).
    /// Audio thread.
    #[inline]
    pub fn matrix_vector_rows(self, w: &Matrix, x: &[f32], b: &[f32], y: &mut [f32], rows: Range<usize>) {
        match self {
            Kernels::Portable => w.matvec_rows::<false>(x, b, y, rows),
            // SAFETY: only constructed by `detect()` after confirming AVX2, FMA and F16C.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => unsafe { matrix_vector_avx2(w, x, b, y, rows) },
        }
    }

    /// `y = W x + b` with `W` row-major `[y.len(), x.len()]`. Audio thread.
    #[inline]
    pub fn matvec(self, w: &[f32], x: &[f32], b: &[f32], y: &mut [f32]) {
        debug_assert_eq!(w.len(), x.len() * y.len());
        match self {
            Kernels::Portable => matvec_body::<false>(w, x, b, y),
            // SAFETY: only constructed by `detect()` after confirming AVX2, FMA and F16C.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => unsafe { matvec_avx2(w, x, b, y) },
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn matvec_avx2(w: &[f32], x: &[f32], b: &[f32], y: &mut [f32]) {
    matvec_body::<true>(w, x, b, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn matrix_vector_avx2(w: &Matrix, x: &[f32], b: &[f32], y: &mut [f32], rows: Range<usize>) {
    w.matvec_rows::<true>(x, b, y, rows)
}

/// `y = W x + b`. With `FMA` (only inside functions compiled for AVX2+FMA+F16C) this runs
/// the explicit AVX2 kernel, otherwise a portable loop the compiler vectorises for SSE2.
/// Inlined into callers compiled for a target feature set.
#[inline(always)]
pub fn matvec_body<const FMA: bool>(w: &[f32], x: &[f32], b: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: `FMA` is only true on paths entered after detecting AVX2, FMA and F16C.
        unsafe { avx2::matvec(w, x, b, y) };
        return;
    }
    portable_matvec(w, x, b, y);
}

/// [`matvec_body`] for IEEE half-float weights (bit patterns), widened to f32.
#[inline(always)]
pub fn matvec_f16_body<const FMA: bool>(w: &[u16], x: &[f32], b: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: as in `matvec_body`.
        unsafe { avx2::matvec(w, x, b, y) };
        return;
    }
    portable_matvec(w, x, b, y);
}

/// Columns that share one int8 scale (a multiple of 8, the AVX2 width).
pub const INT8_GROUP: usize = 32;

/// [`matvec_body`] for int8 weights with one scale per [`INT8_GROUP`] columns of a row
/// (`scales [rows, ⌈cols / 32⌉]`): `y[r] = Σ_g scale[r, g] · Σ_{c ∈ g} q[r, c] x[c] + b[r]`.
#[inline(always)]
pub fn matvec_i8_body<const FMA: bool>(q: &[i8], scales: &[f32], x: &[f32], b: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: as in `matvec_body`.
        unsafe { avx2::matvec_i8(q, scales, x, b, y) };
        return;
    }
    let n = x.len();
    let groups = n.div_ceil(INT8_GROUP);
    if n == 0 || scales.len() < groups * y.len() {
        y.iter_mut().zip(b).for_each(|(y, b)| *y = *b);
        return;
    }
    for ((yo, (row, sc)), bo) in y.iter_mut().zip(q.chunks_exact(n).zip(scales.chunks_exact(groups))).zip(b) {
        let mut s = 0.0;
        for ((qg, xg), &scale) in row.chunks(INT8_GROUP).zip(x.chunks(INT8_GROUP)).zip(sc) {
            s += scale * dot8(qg, xg);
        }
        *yo = s + bo;
    }
}

/// A stored weight, widened to f32 (exactly: every f16 and i8 value is an f32).
pub trait Weight: Copy {
    fn widen(self) -> f32;
}

impl Weight for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Weight for u16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        half::f16::from_bits(self).to_f32()
    }
}

impl Weight for i8 {
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from(self)
    }
}

#[inline(always)]
fn portable_matvec<T: Weight>(w: &[T], x: &[f32], b: &[f32], y: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        y.iter_mut().zip(b).for_each(|(y, b)| *y = *b);
        return;
    }
    for ((yo, row), bo) in y.iter_mut().zip(w.chunks_exact(n)).zip(b) {
        *yo = dot8(row, x) + bo;
    }
}

/// `Σ w·x` over eight independent accumulators, which lets the compiler vectorise without
/// reassociating.
#[inline(always)]
fn dot8<T: Weight>(w: &[T], x: &[f32]) -> f32 {
    let split = x.len() - x.len() % 8;
    let ((wc, wr), (xc, xr)) = (w.split_at(split.min(w.len())), x.split_at(split));
    let mut acc = [0.0f32; 8];
    for (wc, xv) in wc.chunks_exact(8).zip(xc.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += wc[k].widen() * xv[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (a, c) in wr.iter().zip(xr) {
        s += a.widen() * c;
    }
    s
}

/// Asks the CPU to move the cache line holding `bytes[0]` towards L2 without waiting for
/// it (a hint: nothing happens on targets without one). Any thread.
#[inline(always)]
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(first) = bytes.first() {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        // SAFETY: SSE is part of x86-64; a prefetch never faults, and the address is valid.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T1>(std::ptr::from_ref(first).cast::<i8>())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{INT8_GROUP, Weight};

    /// Loads eight consecutive weights as f32.
    pub trait Load8: Weight {
        /// # Safety
        /// `p..p + 8` must be readable; only called from AVX2+FMA+F16C code.
        unsafe fn load8(p: *const Self) -> __m256;
    }

    impl Load8 for f32 {
        #[inline(always)]
        unsafe fn load8(p: *const f32) -> __m256 {
            // SAFETY: the caller's contract.
            unsafe { _mm256_loadu_ps(p) }
        }
    }

    impl Load8 for u16 {
        #[inline(always)]
        unsafe fn load8(p: *const u16) -> __m256 {
            // SAFETY: the caller's contract; F16C widens eight halves exactly.
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
        }
    }

    impl Load8 for i8 {
        #[inline(always)]
        unsafe fn load8(p: *const i8) -> __m256 {
            // SAFETY: the caller's contract; 8 bytes are read (a 64-bit load).
            unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast()))) }
        }
    }

    /// `y = W x + b`, four rows at a time, then single rows ([`row_sums`]).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub unsafe fn matvec<T: Load8>(w: &[T], x: &[f32], b: &[f32], y: &mut [f32]) {
        let n = x.len();
        if n == 0 {
            y.iter_mut().zip(b).for_each(|(y, b)| *y = *b);
            return;
        }
        // Clamped rather than asserted: the audio thread must not panic, and the pointer
        // arithmetic below stays inside `w` for any input.
        let rows = y.len().min(b.len()).min(w.len() / n);
        let split = n - n % 8;
        let wp = w.as_ptr();
        let mut r = 0;
        while r + 4 <= rows {
            // SAFETY: rows r..r+4 < rows and columns < n are inside `w` (rows is clamped above).
            unsafe {
                for (k, acc) in row_sums::<T, 4>(wp, x, r, split).into_iter().enumerate() {
                    y[r + k] = hsum(acc) + tail(wp.add((r + k) * n), x, split) + b[r + k];
                }
            }
            r += 4;
        }
        while r < rows {
            // SAFETY: as above, one row.
            unsafe {
                let [acc] = row_sums::<T, 1>(wp, x, r, split);
                y[r] = hsum(acc) + tail(wp.add(r * n), x, split) + b[r];
            }
            r += 1;
        }
    }

    /// The 8-wide partial sums of rows `r..r + R` over the columns `..split`: one FMA chain
    /// per row, `x` loaded once per 8 columns for all `R` rows. Four rows keep enough FMAs in
    /// flight to hide their latency (a single chain ran at a quarter of the speed); the
    /// leftover rows go one by one through the same arithmetic, so a product split into row
    /// ranges anywhere is bit-identical to the whole.
    /// # Safety
    /// Rows `r..r + R` of `x.len()` columns must be readable from `wp`; AVX2+FMA+F16C code only.
    #[inline(always)]
    unsafe fn row_sums<T: Load8, const R: usize>(wp: *const T, x: &[f32], r: usize, split: usize) -> [__m256; R] {
        let (n, xp) = (x.len(), x.as_ptr());
        // SAFETY: the caller's contract; c < split <= n.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); R];
            let mut c = 0;
            while c < split {
                let xv = _mm256_loadu_ps(xp.add(c));
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(T::load8(wp.add((r + k) * n + c)), xv, *a);
                }
                c += 8;
            }
            acc
        }
    }

    /// `Σ row[c]·x[c]` over the columns `split..` that the 8-wide loop left.
    /// # Safety
    /// `row..row + x.len()` must be readable.
    #[inline(always)]
    unsafe fn tail<T: Weight>(row: *const T, x: &[f32], split: usize) -> f32 {
        let mut s = 0.0;
        for (c, &xc) in x.iter().enumerate().skip(split) {
            // SAFETY: the caller's contract; c < x.len().
            s += unsafe { *row.add(c) }.widen() * xc;
        }
        s
    }

    /// [`super::matvec_i8_body`]: as [`matvec`], with each [`INT8_GROUP`] columns' partial
    /// sums scaled into the row's accumulator.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    pub unsafe fn matvec_i8(q: &[i8], scales: &[f32], x: &[f32], b: &[f32], y: &mut [f32]) {
        let n = x.len();
        let groups = n.div_ceil(INT8_GROUP);
        if n == 0 || scales.len() < groups * y.len() {
            y.iter_mut().zip(b).for_each(|(y, b)| *y = *b);
            return;
        }
        // Clamped as in `matvec`: every pointer below stays inside `q` and `scales`.
        let rows = y.len().min(b.len()).min(q.len() / n);
        let split = n - n % 8;
        // The scalar tail `split..n` lies in the last group.
        let tail = |r: usize| -> f32 {
            let s: f32 = (split..n).map(|c| f32::from(q[r * n + c]) * x[c]).sum();
            s * scales[r * groups + groups - 1]
        };
        let mut r = 0;
        while r + 4 <= rows {
            // SAFETY: rows r..r+4 < rows, columns < n, groups < ⌈n/32⌉: inside `q`, `scales`.
            unsafe {
                for (k, a) in i8_row_sums::<4>(q, scales, x, r, split).into_iter().enumerate() {
                    y[r + k] = hsum(a) + tail(r + k) + b[r + k];
                }
            }
            r += 4;
        }
        while r < rows {
            // SAFETY: as above, one row.
            unsafe {
                let [a] = i8_row_sums::<1>(q, scales, x, r, split);
                y[r] = hsum(a) + tail(r) + b[r];
            }
            r += 1;
        }
    }

    /// [`row_sums`] for int8 rows: per [`INT8_GROUP`] columns a partial sum, scaled into the
    /// row's accumulator; the same arithmetic for any `R`.
    /// # Safety
    /// Rows `r..r + R` must be inside `q` (`x.len()` columns) and `scales`
    /// (`⌈x.len() / 32⌉` per row); AVX2+FMA+F16C code only.
    #[inline(always)]
    unsafe fn i8_row_sums<const R: usize>(q: &[i8], scales: &[f32], x: &[f32], r: usize, split: usize) -> [__m256; R] {
        let (n, qp, xp) = (x.len(), q.as_ptr(), x.as_ptr());
        let groups = n.div_ceil(INT8_GROUP);
        // SAFETY: the caller's contract; c < split <= n, g < groups.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); R];
            for g in 0..groups {
                let (start, end) = (g * INT8_GROUP, ((g + 1) * INT8_GROUP).min(split));
                let mut part = [_mm256_setzero_ps(); R];
                let mut c = start;
                while c < end {
                    let xv = _mm256_loadu_ps(xp.add(c));
                    for (k, p) in part.iter_mut().enumerate() {
                        *p = _mm256_fmadd_ps(i8::load8(qp.add((r + k) * n + c)), xv, *p);
                    }
                    c += 8;
                }
                for (k, (a, p)) in acc.iter_mut().zip(part).enumerate() {
                    *a = _mm256_fmadd_ps(p, _mm256_set1_ps(*scales.get_unchecked((r + k) * groups + g)), *a);
                }
            }
            acc
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

/// `e^x` to about 2 ulp, branch-free so loops over it vectorise (Cephes `expf`:
/// `x = n·ln2 + r`, a degree-6 polynomial for `e^r`, `2^n` built from bits). The input is
/// clamped to [-86, 80], which keeps every result a normal float.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-86.0, 80.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p =
        ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5e-1;
    let er = p * r * r + r + 1.0;
    er * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Natural log for positive normal inputs, to about 2 ulp, branch-free (Cephes `logf`).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 126;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000); // mantissa in [0.5, 1)
    let small = m < SQRT_HALF;
    let e = (if small { e - 1 } else { e }) as f32;
    let m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let poly = ((((((((7.037_683_6e-2 * m - 1.151_461e-1) * m + 1.167_699_9e-1) * m - 1.242_014_1e-1) * m
        + 1.424_932_3e-1)
        * m
        - 1.666_805_8e-1)
        * m
        + 2.000_071_4e-1)
        * m
        - 2.499_999_4e-1)
        * m
        + 3.333_333e-1)
        * m
        * z;
    let y = poly + -2.121_944_4e-4 * e - 0.5 * z;
    m + y + 0.693_359_4 * e
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh`, branch-free: `(1 − e^{−2|x|}) / (1 + e^{−2|x|})`, with a Taylor series near 0
/// where that quotient would lose relative precision.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let e = exp(-2.0 * a);
    let big = (1.0 - e) / (1.0 + e);
    let x2 = x * x;
    let series = a * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 - x2 * (17.0 / 315.0))));
    let t = if a < 0.0625 { series } else { big };
    t.copysign(x)
}

/// Values this small are denormal-adjacent: flushing them keeps recurrent state and
/// spectra off the slow denormal path (-600 dB is far below anything audible).
#[inline]
pub fn flush_tiny(x: f32) -> f32 {
    if x.abs() < 1e-30 { 0.0 } else { x }
}

/// Largest input magnitude the separator takes (+30 dBFS). Hotter samples are legal floats
/// but only come from broken upstream gain staging; clamping here keeps the STFT and the
/// network far from overflow and bounds every output (with hot garbage input at random
/// gains the plugin's main output stays within ±1000, which its fuzz test checks).
pub const MAX_INPUT: f32 = 31.6;

/// The input guard, for every sample the plugin or the separator takes in: NaN/Inf become
/// `None` (the caller substitutes silence), the rest is clamped to ±[`MAX_INPUT`] and
/// flushed below 1e-30. Any thread; no allocation.
#[inline]
pub fn guard_input(x: f32) -> Option<f32> {
    if x.is_finite() { Some(flush_tiny(x.clamp(-MAX_INPUT, MAX_INPUT))) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_math_matches_std() {
        let mut worst = [0.0f64; 4];
        for i in 0..200_000 {
            let x = -30.0 + 60.0 * i as f32 / 200_000.0;
            let rel = |a: f32, b: f32| ((a as f64 - b as f64) / (b as f64).abs().max(1e-30)).abs();
            worst[0] = worst[0].max(rel(exp(x), x.exp()));
            worst[1] = worst[1].max(rel(tanh(x), x.tanh()));
            worst[2] = worst[2].max(rel(sigmoid(x), 1.0 / (1.0 + (-x).exp())));
            let y = 10f32.powf(x / 3.0); // 1e-10 .. 1e10
            worst[3] = worst[3].max((ln(y) as f64 - (y as f64).ln()).abs());
        }
        assert!(worst[0] < 1e-6 && worst[1] < 1e-6 && worst[2] < 1e-6, "{worst:?}");
        assert!(worst[3] < 1e-6, "ln abs error {}", worst[3]);
        assert!(tanh(1e-4) / 1e-4 - 1.0 < 1e-6);
        assert_eq!(tanh(-3.0), -tanh(3.0));
        assert!(sigmoid(-1000.0) > 0.0 && sigmoid(1000.0) == 1.0);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn kernels_agree_with_naive_matvec() {
        let (rows, cols) = (37, 1029);
        let (w, x, b) = crate::rt::matrix::tests::product_case(rows, cols);
        let naive: Vec<f32> = (0..rows)
            .map(|r| (0..cols).map(|c| w[r * cols + c] as f64 * x[c] as f64).sum::<f64>() as f32 + b[r])
            .collect();
        for k in [Kernels::Portable, Kernels::detect()] {
            let mut y = vec![0.0; rows];
            k.matvec(&w, &x, &b, &mut y);
            for (a, e) in y.iter().zip(&naive) {
                assert!((a - e).abs() < 1e-3, "{k:?}: {a} vs {e}");
            }
        }
    }
}
