//! The mask network, hand-ported for the audio thread: same weights and arithmetic as
//! [`crate::model::MaskNet`], stepped one frame at a time with preallocated state. Its weight
//! matrices are stored in the [`Precision`] chosen at load (mixed int8/f16 by default; f32
//! is exactly the candle model's arithmetic), accumulating in f32 (`crate::rt::matrix`).
//!
//! Per frame, with `F = channels * n_bins` and `H = hidden`:
//! ```text
//! z      = (ln(|X| + eps) - input_mean) * input_scale      [F]
//! a      = tanh(fc1 · z)                                   [H]
//! h_l    = GRU_l(h_{l-1}, state_l),  h_0 = a               [H] per layer
//! b      = relu(fc2 · [a, h_L])                            [H]
//! logits = fc3 · b                                         [F]   mask = sigmoid(logits)
//! ```
//! With a band split (`K` bands of `D`): `fc1` reads `tanh(band_in(z))` `[K·D]` and
//! `logits = band_out(tanh(fc3 · b))` (see `crate::model::band_split`).

use std::ops::Range;

use crate::config::tensor_names::{
    self as names, BAND_IN, BAND_OUT, BIAS, BIAS_HH, BIAS_IH, FC1, FC2, FC3, WEIGHT, WEIGHT_HH, WEIGHT_IH,
};
use crate::config::{FrameGrid, ModelConfig, StftConfig};
use crate::error::EngineError;
use crate::features::log_magnitude;
use crate::rt::math::{self, Kernels, flush_tiny};
use crate::rt::matrix::{Matrix, MatrixRole, Precision};
use crate::weights::{Provenance, Weights};

struct GruLayer {
    w_ih: Matrix,
    w_hh: Matrix,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
    state: Vec<f32>,
}

/// The per-band layers of a band-split model, with their scratch. Their weights stay f32
/// whatever the network's [`Precision`]: each feature's `D` weights are read with a stride.
struct BandLayers {
    /// `D`.
    dim: usize,
    /// The band of each feature.
    feature_band: Vec<usize>,
    /// `[D, F]` each.
    in_w: Vec<f32>,
    in_b: Vec<f32>,
    out_w: Vec<f32>,
    out_b: Vec<f32>,
    /// Band embeddings `[K·D]`: `fc1`'s input, then `fc3`'s output.
    embedding: Vec<f32>,
}

impl BandLayers {
    /// Rows `c` of `embedding = tanh(band_in(z))` (row `c` is output `c` of every band);
    /// the bias before the first row, the tanh after the last.
    #[inline(always)]
    fn split_rows(&mut self, z: &[f32], rows: Range<usize>) {
        let (d, f) = (self.dim, z.len());
        if rows.start == 0 {
            self.embedding.copy_from_slice(&self.in_b);
        }
        for c in rows.clone() {
            for ((&w, &x), &b) in self.in_w[c * f..(c + 1) * f].iter().zip(z).zip(&self.feature_band) {
                self.embedding[b * d + c] += w * x;
            }
        }
        if rows.end == d {
            self.embedding.iter_mut().for_each(|v| *v = math::tanh(*v));
        }
    }

    /// Rows `c` of `logits = band_out(tanh(embedding))`; the tanh and bias before the first.
    #[inline(always)]
    fn merge_rows(&mut self, logits: &mut [f32], rows: Range<usize>) {
        let (d, f) = (self.dim, logits.len());
        if rows.start == 0 {
            self.embedding.iter_mut().for_each(|v| *v = math::tanh(*v));
            logits.copy_from_slice(&self.out_b);
        }
        for c in rows {
            for ((o, &w), &b) in logits.iter_mut().zip(&self.out_w[c * f..(c + 1) * f]).zip(&self.feature_band) {
                *o += w * self.embedding[b * d + c];
            }
        }
    }
}

/// The stages of one frame step, in order. Each is a product split by output rows, so a
/// step can be done in pieces (`RtMaskNet::advance`); its element-wise work runs after its
/// last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    BandIn,
    Fc1,
    /// `gi = W_ih · input` of a GRU layer.
    GruInput(usize),
    /// `gh = W_hh · state`, then the gates update the layer's state.
    GruHidden(usize),
    Fc2,
    Fc3,
    BandOut,
    /// No step in progress.
    Idle,
}

/// Allocation-free GRU mask network. Built off the audio thread, stepped on it.
pub struct RtMaskNet {
    model: ModelConfig,
    stft: StftConfig,
    provenance: Provenance,
    kernels: Kernels,
    /// `ModelConfig::feature_floor`, computed once.
    floor: f32,
    input_mean: Vec<f32>,
    input_scale: Vec<f32>,
    bands: Option<BandLayers>,
    fc1_w: Matrix,
    fc1_b: Vec<f32>,
    layers: Vec<GruLayer>,
    fc2_w: Matrix,
    fc2_b: Vec<f32>,
    fc3_w: Matrix,
    fc3_b: Vec<f32>,
    /// The next cache line [`RtMaskNet::warm`] prefetches; 0 after each frame.
    warm_cursor: usize,
    /// The step in progress: its stage and the next row of that stage's product.
    stage: Stage,
    row: usize,
    /// Whether the last completed step stayed finite.
    finite: bool,
    /// `z` still holds magnitudes, not yet features.
    raw_input: bool,
    /// [`RtMaskNet::step_macs`], counted once.
    macs: usize,
    precision: Precision,
    // Scratch, sized once here so `step` never allocates.
    z: Vec<f32>,
    a_cat: Vec<f32>,
    gi: Vec<f32>,
    gh: Vec<f32>,
    b: Vec<f32>,
    /// The step's logits `[F]`.
    out: Vec<f32>,
}

impl RtMaskNet {
    /// [`RtMaskNet::with_precision`] at the default [`Precision`]. Any thread but the
    /// audio thread (allocates).
    pub fn new(weights: &Weights) -> Result<Self, EngineError> {
        Self::with_precision(weights, Precision::default())
    }

    /// Copies validated weights into the network's own buffers, its weight matrices
    /// converted to `precision` (biases and state stay f32). Errors: weights that fail
    /// `ModelConfig::validate_with`. Any thread but the audio thread (allocates).
    pub fn with_precision(weights: &Weights, precision: Precision) -> Result<Self, EngineError> {
        let model = weights.meta.model;
        model.validate_with(&weights.meta.stft)?;
        let t = |name: &str| weights.tensor(name).data.clone();
        // Shapes were checked against the config by `Weights` validation.
        let m = |name: &str, role: MatrixRole| {
            let tensor = weights.tensor(name);
            let (rows, cols) = (tensor.shape[0], tensor.shape[1]);
            Matrix::new(&tensor.data, rows, cols, precision.for_matrix(role))
        };
        let h = model.hidden;
        let layers = (0..model.gru_layers)
            .map(|l| GruLayer {
                w_ih: m(&names::gru(l, WEIGHT_IH), MatrixRole::Gru(l)),
                w_hh: m(&names::gru(l, WEIGHT_HH), MatrixRole::Gru(l)),
                b_ih: t(&names::gru(l, BIAS_IH)),
                b_hh: t(&names::gru(l, BIAS_HH)),
                state: vec![0.0; h],
            })
            .collect();
        let bands = model.band_layout().map(|layout| BandLayers {
            dim: model.band_dim,
            embedding: vec![0.0; model.embedding()],
            feature_band: layout.feature_band,
            in_w: t(&names::linear(BAND_IN, WEIGHT)),
            in_b: t(&names::linear(BAND_IN, BIAS)),
            out_w: t(&names::linear(BAND_OUT, WEIGHT)),
            out_b: t(&names::linear(BAND_OUT, BIAS)),
        });
        let mut net = Self {
            model,
            stft: weights.meta.stft,
            provenance: weights.meta.provenance.clone(),
            kernels: Kernels::detect(),
            floor: model.feature_floor(),
            input_mean: t(names::INPUT_MEAN),
            input_scale: t(names::INPUT_SCALE),
            bands,
            fc1_w: m(&names::linear(FC1, WEIGHT), MatrixRole::Dense),
            fc1_b: t(&names::linear(FC1, BIAS)),
            layers,
            fc2_w: m(&names::linear(FC2, WEIGHT), MatrixRole::Dense),
            fc2_b: t(&names::linear(FC2, BIAS)),
            fc3_w: m(&names::linear(FC3, WEIGHT), MatrixRole::Dense),
            fc3_b: t(&names::linear(FC3, BIAS)),
            warm_cursor: 0,
            stage: Stage::Idle,
            row: 0,
            finite: true,
            raw_input: false,
            macs: 0,
            precision,
            z: vec![0.0; model.features()],
            a_cat: vec![0.0; 2 * h],
            gi: vec![0.0; 3 * h],
            gh: vec![0.0; 3 * h],
            b: vec![0.0; h],
            out: vec![0.0; model.features()],
        };
        net.macs = net.count_macs();
        Ok(net)
    }

    pub fn model_config(&self) -> &ModelConfig {
        &self.model
    }

    pub fn stft_config(&self) -> &StftConfig {
        &self.stft
    }

    /// What a replacement or a worker must share with this network (see [`FrameGrid`]).
    pub fn grid(&self) -> FrameGrid {
        self.model.frame_grid(&self.stft)
    }

    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// The storage precision of the weight matrices. Any thread.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Bytes of weights one frame step reads (all matrices, biases and normalisation; the
    /// band layers included). Any thread.
    pub fn weight_bytes(&self) -> usize {
        let vecs: usize = [&self.input_mean, &self.input_scale, &self.fc1_b, &self.fc2_b, &self.fc3_b]
            .iter()
            .map(|v| v.len())
            .sum::<usize>()
            + self.layers.iter().map(|l| l.b_ih.len() + l.b_hh.len()).sum::<usize>()
            + self.bands.as_ref().map_or(0, |b| b.in_w.len() + b.in_b.len() + b.out_w.len() + b.out_b.len());
        4 * vecs + self.matrices().map(Matrix::bytes).sum::<usize>()
    }

    /// The weight matrices in the order a frame step reads them.
    fn matrices(&self) -> impl Iterator<Item = &Matrix> {
        std::iter::once(&self.fc1_w)
            .chain(self.layers.iter().flat_map(|l| [&l.w_ih, &l.w_hh]))
            .chain([&self.fc2_w, &self.fc3_w])
    }

    /// Cache lines of the weight matrices: what [`RtMaskNet::warm`] walks between frames.
    /// Any thread.
    pub fn weight_lines(&self) -> usize {
        self.matrices().map(Matrix::lines).sum()
    }

    /// Cache warming: prefetches the next `lines` cache lines of the weight matrices
    /// towards L2, in the order the next frame reads them, without waiting for them. Call it
    /// in the blocks between frames with a share of [`RtMaskNet::weight_lines`], so the
    /// frame's block finds the weights in cache even when the host evicted them. Stops once
    /// every line was touched since the last frame. Audio thread; no allocation.
    pub fn warm(&mut self, lines: usize) {
        let (mut first, mut left) = (self.warm_cursor, lines);
        let mut advanced = 0;
        for m in self.matrices() {
            if left == 0 {
                break;
            }
            let total = m.lines();
            if first >= total {
                first -= total;
                continue;
            }
            let n = left.min(total - first);
            m.prefetch_lines(first, n);
            advanced += n;
            left -= n;
            first = 0;
        }
        self.warm_cursor += advanced;
    }

    /// Forces the portable kernels (tests compare kernel sets). Any thread.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// Clears the recurrent state and drops any step in progress. Audio thread; no
    /// allocation.
    pub fn reset(&mut self) {
        for layer in &mut self.layers {
            layer.state.fill(0.0);
        }
        self.stage = Stage::Idle;
        self.raw_input = false;
    }

    /// One frame: `mags` are linear magnitudes `[channels * n_bins]` (channel-major), `logits`
    /// receives mask logits in the same layout. Returns false (and resets the state, with
    /// zero logits = a neutral 0.5 mask) if anything became non-finite.
    /// Audio thread; no allocation.
    pub fn step(&mut self, mags: &[f32], logits: &mut [f32]) -> bool {
        self.begin(mags);
        self.finish(logits)
    }

    /// Starts the step of frame `mags` (as in [`RtMaskNet::step`]) without computing it:
    /// [`RtMaskNet::advance`] does it in pieces, [`RtMaskNet::finish`] completes it. Lets the
    /// separator spread a frame's work over the blocks of the next hop. A step still in
    /// progress is completed first (its logits are dropped). Audio thread; no allocation.
    pub fn begin(&mut self, mags: &[f32]) {
        if self.stage != Stage::Idle {
            self.advance(usize::MAX);
        }
        self.warm_cursor = 0;
        // Normalised by the first `advance`, which runs with the vector kernels.
        let n = self.z.len().min(mags.len());
        self.z[..n].copy_from_slice(&mags[..n]);
        self.raw_input = true;
        self.stage = self.first_stage();
        self.row = 0;
    }

    /// Does about `macs` multiply-accumulates of the step in progress (whole rows: at least
    /// one for any `macs > 0` while rows are left, none for 0; [`RtMaskNet::step_macs`] is
    /// the whole step). Returns whether
    /// the step is complete (also when none was begun). Pieces of any size give the same
    /// logits, to the bit, as one [`RtMaskNet::step`]. Audio thread; no allocation.
    pub fn advance(&mut self, macs: usize) -> bool {
        match self.kernels {
            Kernels::Portable => self.advance_body::<false>(macs),
            // SAFETY: `Kernels::Avx2Fma` is only produced after detecting AVX2, FMA and F16C.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2Fma => unsafe { self.advance_avx2(macs) },
        }
    }

    /// Completes the step in progress and writes its `logits`; returns false as
    /// [`RtMaskNet::step`] does. Without a step in progress, writes the last step's logits.
    /// Audio thread; no allocation.
    pub fn finish(&mut self, logits: &mut [f32]) -> bool {
        self.advance(usize::MAX);
        logits.copy_from_slice(&self.out);
        self.finite
    }

    /// Whether a step was begun and not yet completed. Any thread that owns the network.
    pub fn in_progress(&self) -> bool {
        self.stage != Stage::Idle
    }

    /// Multiply-accumulates of one frame step: the unit of [`RtMaskNet::advance`].
    /// Any thread.
    pub fn step_macs(&self) -> usize {
        self.macs
    }

    fn count_macs(&self) -> usize {
        let mut stage = self.first_stage();
        let mut total = 0;
        while stage != Stage::Idle {
            let (rows, cols) = self.shape(stage);
            total += rows * cols;
            stage = self.next(stage);
        }
        total
    }

    /// The whole advance compiled for AVX2+FMA: the element-wise nonlinearities vectorise
    /// 8-wide too, not only the matrix products.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn advance_avx2(&mut self, macs: usize) -> bool {
        self.advance_body::<true>(macs)
    }

    fn first_stage(&self) -> Stage {
        if self.bands.is_some() { Stage::BandIn } else { Stage::Fc1 }
    }

    fn next(&self, stage: Stage) -> Stage {
        let last = self.layers.len() - 1;
        match stage {
            Stage::BandIn => Stage::Fc1,
            Stage::Fc1 => Stage::GruInput(0),
            Stage::GruInput(l) => Stage::GruHidden(l),
            Stage::GruHidden(l) if l < last => Stage::GruInput(l + 1),
            Stage::GruHidden(_) => Stage::Fc2,
            Stage::Fc2 => Stage::Fc3,
            Stage::Fc3 if self.bands.is_some() => Stage::BandOut,
            Stage::Fc3 | Stage::BandOut | Stage::Idle => Stage::Idle,
        }
    }

    /// `[rows, cols]` of a stage's product.
    fn shape(&self, stage: Stage) -> (usize, usize) {
        let m = |w: &Matrix| (w.rows(), w.cols());
        let bands = |b: Option<&BandLayers>| b.map_or((0, 0), |b| (b.dim, b.feature_band.len()));
        match stage {
            Stage::BandIn | Stage::BandOut => bands(self.bands.as_ref()),
            Stage::Fc1 => m(&self.fc1_w),
            Stage::GruInput(l) => m(&self.layers[l].w_ih),
            Stage::GruHidden(l) => m(&self.layers[l].w_hh),
            Stage::Fc2 => m(&self.fc2_w),
            Stage::Fc3 => m(&self.fc3_w),
            Stage::Idle => (0, 0),
        }
    }

    #[inline(always)]
    fn advance_body<const FMA: bool>(&mut self, macs: usize) -> bool {
        if self.raw_input {
            // `z` holds the frame's magnitudes (`begin`): the model's input features.
            self.raw_input = false;
            for ((z, &mean), &scale) in self.z.iter_mut().zip(&self.input_mean).zip(&self.input_scale) {
                *z = (log_magnitude(*z, self.floor) - mean) * scale;
            }
        }
        let mut left = macs;
        while self.stage != Stage::Idle {
            let (rows, cols) = self.shape(self.stage);
            let n = (rows - self.row).min(left.div_ceil(cols.max(1)));
            if n == 0 && self.row < rows {
                break; // `left` is spent
            }
            self.rows::<FMA>(self.stage, self.row..self.row + n);
            self.row += n;
            left = left.saturating_sub(n * cols);
            if self.row == rows {
                self.stage = self.next(self.stage);
                self.row = 0;
            }
        }
        self.stage == Stage::Idle
    }

    /// Rows `rows` of `stage`, with the stage's element-wise work before its first or after
    /// its last row.
    #[inline(always)]
    fn rows<const FMA: bool>(&mut self, stage: Stage, rows: Range<usize>) {
        let h = self.model.hidden;
        let (first, last) = (rows.start == 0, rows.end == self.shape(stage).0);
        match stage {
            Stage::BandIn => {
                if let Some(bands) = &mut self.bands {
                    bands.split_rows(&self.z, rows);
                }
            }
            Stage::Fc1 => {
                let x = self.bands.as_ref().map_or(&self.z[..], |b| &b.embedding[..]);
                let a = &mut self.a_cat[..h];
                self.fc1_w.matvec_rows::<FMA>(x, &self.fc1_b, a, rows);
                if last {
                    a.iter_mut().for_each(|v| *v = math::tanh(*v));
                }
            }
            Stage::GruInput(l) => {
                // The first layer reads `a`, the others the previous layer's new state.
                let x = if l == 0 { &self.a_cat[..h] } else { &self.layers[l - 1].state[..] };
                let layer = &self.layers[l];
                layer.w_ih.matvec_rows::<FMA>(x, &layer.b_ih, &mut self.gi, rows);
            }
            Stage::GruHidden(l) => {
                let layer = &mut self.layers[l];
                layer.w_hh.matvec_rows::<FMA>(&layer.state, &layer.b_hh, &mut self.gh, rows);
                if last {
                    let (gi_rz, gi_n) = self.gi.split_at_mut(2 * h);
                    let (gh_rz, gh_n) = self.gh.split_at(2 * h);
                    // Reset and update gates side by side: r = gi[..h], u = gi[h..2h].
                    for (g, &x) in gi_rz.iter_mut().zip(gh_rz) {
                        *g = math::sigmoid(*g + x);
                    }
                    let (r, u) = gi_rz.split_at(h);
                    for (((s, &r), &u), (&xn, &hn)) in layer.state.iter_mut().zip(r).zip(u).zip(gi_n.iter().zip(gh_n)) {
                        let n = math::tanh(xn + r * hn);
                        *s = flush_tiny(n + u * (*s - n));
                    }
                }
            }
            Stage::Fc2 => {
                if first {
                    // The skip concatenation `[a, h_L]`.
                    let top = &self.layers[self.layers.len() - 1].state;
                    self.a_cat[h..].copy_from_slice(top);
                }
                self.fc2_w.matvec_rows::<FMA>(&self.a_cat, &self.fc2_b, &mut self.b, rows);
                if last {
                    self.b.iter_mut().for_each(|v| *v = v.max(0.0));
                }
            }
            Stage::Fc3 => {
                let y = self.bands.as_mut().map_or(&mut self.out[..], |b| &mut b.embedding[..]);
                self.fc3_w.matvec_rows::<FMA>(&self.b, &self.fc3_b, y, rows);
            }
            Stage::BandOut => {
                if let Some(bands) = &mut self.bands {
                    bands.merge_rows(&mut self.out, rows);
                }
            }
            Stage::Idle => {}
        }
        if last && self.next(stage) == Stage::Idle {
            self.check_finite();
        }
    }

    /// After the last stage: a non-finite output or state resets the network, with zero
    /// logits (a neutral 0.5 mask).
    fn check_finite(&mut self) {
        self.finite =
            self.out.iter().all(|v| v.is_finite()) && self.layers.iter().all(|l| l.state.iter().all(|v| v.is_finite()));
        if !self.finite {
            for layer in &mut self.layers {
                layer.state.fill(0.0);
            }
            self.out.fill(0.0);
        }
    }
}
