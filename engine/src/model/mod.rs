//! The mask network in candle: for training, and for the off-audio-thread worker.
//! Never call this on the audio thread (candle allocates on every op); the real-time port
//! is [`crate::rt::RtMaskNet`], which loads the same weights.
//!
//! Architecture (per frame, `F = channels · n_bins`, `H = hidden`):
//! ```text
//! mag [B, T, C, n_bins] ─ln(·+floor)─ (x − input_mean) · input_scale ─ fc1 ─ tanh ─► a [B, T, H]
//! a ─ GRU 0 ─ … ─ GRU L−1 ─► g [B, T, H]              (unidirectional: causal)
//! [a, g] [B, T, 2H] ─ fc2 ─ relu ─ fc3 ─► logits [B, T, C, n_bins]      mask = sigmoid(logits)
//! ```
//! With a band split (`band_dim = D` > 0, `K` bands, [`crate::config::BandLayout`]), the
//! features pass per-band linear layers before `fc1`, and `fc3`'s output per-band ones
//! ([`band_split`]):
//! ```text
//! features [F] ─ band_in ─ tanh ─► [K·D] ─ fc1 …      … fc3 ─► [K·D] ─ tanh ─ band_out ─► logits [F]
//! ```
//! With `lookahead = D`, output frame `t` is the mask for input frame `t − D`.
//! Tensor names (the weights contract) are [`ModelConfig::tensor_specs`].

pub mod band_split;
mod fused_gru;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{D, DType, Device, IndexOp, Result, Tensor};
use candle_nn::{Init, Linear, Module, VarBuilder, VarMap};

use crate::config::tensor_names::{
    self as names, BAND_IN, BAND_OUT, BIAS, BIAS_HH, BIAS_IH, FC1, FC2, FC3, WEIGHT, WEIGHT_HH, WEIGHT_IH,
};
use crate::config::{BandLayout, ModelConfig, StftConfig};
use crate::weights::{self, Provenance, Weights, WeightsError};

/// One unidirectional GRU layer with PyTorch's gate order (r, z, n).
#[derive(Debug, Clone)]
pub struct Gru {
    w_ih_t: Tensor,
    w_hh_t: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    hidden: usize,
}

impl Gru {
    pub fn new(input: usize, hidden: usize, vb: VarBuilder) -> Result<Self> {
        let bound = 1.0 / (hidden as f64).sqrt();
        let init = Init::Uniform { lo: -bound, up: bound };
        let w_ih = vb.get_with_hints((3 * hidden, input), WEIGHT_IH, init)?;
        let w_hh = vb.get_with_hints((3 * hidden, hidden), WEIGHT_HH, init)?;
        let b_ih = vb.get_with_hints(3 * hidden, BIAS_IH, init)?;
        let b_hh = vb.get_with_hints(3 * hidden, BIAS_HH, init)?;
        Ok(Self { w_ih_t: w_ih.t()?, w_hh_t: w_hh.t()?, b_ih, b_hh, hidden })
    }

    /// Input projections for a whole sequence at once: `x [B, T, in]` → `[B, T, 3H]`.
    fn project_inputs(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_matmul(&self.w_ih_t)?.broadcast_add(&self.b_ih)
    }

    /// One recurrence: `gi [B, 3H]` (projected input), `h [B, H]` → new `h [B, H]`.
    fn cell(&self, gi: &Tensor, h: &Tensor) -> Result<Tensor> {
        let hs = self.hidden;
        let gh = h.matmul(&self.w_hh_t)?.broadcast_add(&self.b_hh)?;
        let r = candle_nn::ops::sigmoid(&(gi.narrow(1, 0, hs)? + gh.narrow(1, 0, hs)?)?)?;
        let z = candle_nn::ops::sigmoid(&(gi.narrow(1, hs, hs)? + gh.narrow(1, hs, hs)?)?)?;
        let n = (gi.narrow(1, 2 * hs, hs)? + (r * gh.narrow(1, 2 * hs, hs)?)?)?.tanh()?;
        // (1 − z)·n + z·h  ==  n + z·(h − n)
        &n + (z * (h - &n)?)?
    }

    /// `x [B, T, in]`, optional initial state `[B, H]` → outputs `[B, T, H]`. From a zero
    /// state on the CPU this is one fused op ([`fused_gru`]), whose backward pass is
    /// written out; otherwise candle's elementary ops.
    pub fn forward_seq(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<Tensor> {
        let (_, t, _) = x.dims3()?;
        if h0.is_none() && t > 0 && x.device().is_cpu() && x.dtype() == DType::F32 {
            let w_hh = self.w_hh_t.t()?;
            return fused_gru::forward(&self.project_inputs(x)?, &w_hh, &self.b_hh);
        }
        self.forward_seq_elementary(x, h0)
    }

    /// [`Gru::forward_seq`] from candle's elementary ops, on any device.
    fn forward_seq_elementary(&self, x: &Tensor, h0: Option<&Tensor>) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let gi = self.project_inputs(x)?;
        let mut h = match h0 {
            Some(h) => h.clone(),
            None => Tensor::zeros((b, self.hidden), x.dtype(), x.device())?,
        };
        let mut outs = Vec::with_capacity(t);
        // The backward pass of a narrow pads its gradient with zeros to the full input, so
        // taking each of T steps straight out of `gi` would cost O(T²) in backward. Steps
        // come out of blocks of ~√T steps instead: O(T·√T).
        let block = (t as f64).sqrt().ceil().max(1.0) as usize;
        for start in (0..t).step_by(block) {
            let len = block.min(t - start);
            let gb = gi.narrow(1, start, len)?;
            for step in 0..len {
                h = self.cell(&gb.i((.., step, ..))?, &h)?;
                outs.push(h.clone());
            }
        }
        Tensor::stack(&outs, 1)
    }
}

/// The per-band layers of a band-split model (see module docs).
#[derive(Debug, Clone)]
struct Bands {
    layout: Arc<BandLayout>,
    in_w: Tensor,
    in_b: Tensor,
    out_w: Tensor,
    out_b: Tensor,
}

impl Bands {
    fn new(config: &ModelConfig, layout: BandLayout, vb: &VarBuilder) -> Result<Self> {
        let (d, f) = (config.band_dim, config.features());
        let e = layout.bands() * d;
        // Each band's layer reads (or writes) its own features only: fan-in C·w_k for the
        // split, D for the merge; the uniform bound of a linear layer with the widest band.
        let widest = layout.edges.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(1) * config.channels;
        let uniform = |fan_in: usize| {
            let b = 1.0 / (fan_in as f64).sqrt();
            Init::Uniform { lo: -b, up: b }
        };
        let (vin, vout) = (vb.pp(BAND_IN), vb.pp(BAND_OUT));
        Ok(Self {
            in_w: vin.get_with_hints((d, f), WEIGHT, uniform(widest))?,
            in_b: vin.get_with_hints(e, BIAS, uniform(widest))?,
            out_w: vout.get_with_hints((d, f), WEIGHT, uniform(d))?,
            out_b: vout.get_with_hints(f, BIAS, uniform(d))?,
            layout: Arc::new(layout),
        })
    }

    /// `[.., F]` → `[.., K·D]`, then tanh.
    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (lead, f) = flatten_leading(x)?;
        let y = band_split::split(&x.reshape((lead.iter().product::<usize>(), f))?, &self.in_w, &self.layout)?;
        let e = y.dim(1)?;
        y.broadcast_add(&self.in_b)?.tanh()?.reshape([lead, vec![e]].concat())
    }

    /// `[.., K·D]` → tanh → `[.., F]`.
    fn merge(&self, x: &Tensor) -> Result<Tensor> {
        let (lead, e) = flatten_leading(x)?;
        let z = band_split::merge(&x.tanh()?.reshape((lead.iter().product::<usize>(), e))?, &self.out_w, &self.layout)?;
        let f = z.dim(1)?;
        z.broadcast_add(&self.out_b)?.reshape([lead, vec![f]].concat())
    }
}

/// The leading dimensions of `x` and its last one.
fn flatten_leading(x: &Tensor) -> Result<(Vec<usize>, usize)> {
    let dims = x.dims();
    let (last, lead) = dims.split_last().ok_or_else(|| candle_core::Error::Msg("a scalar has no features".into()))?;
    Ok((lead.to_vec(), *last))
}

/// The causal mask network (see module docs).
#[derive(Debug, Clone)]
pub struct MaskNet {
    config: ModelConfig,
    input_mean: Tensor,
    input_scale: Tensor,
    bands: Option<Bands>,
    fc1: Linear,
    grus: Vec<Gru>,
    fc2: Linear,
    fc3: Linear,
}

/// Recurrent state for frame-by-frame stepping: one `[B, H]` tensor per GRU layer.
pub type MaskNetState = Vec<Tensor>;

impl MaskNet {
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (f, h, e) = (config.features(), config.hidden, config.embedding());
        // Statistics of the training data, never trained: detached (sharing the variables'
        // storage, so setting them later still reaches the network), so backpropagation
        // spends nothing on their gradients.
        let input_mean = vb.get_with_hints(f, names::INPUT_MEAN, Init::Const(-7.0))?.detach();
        let input_scale = vb.get_with_hints(f, names::INPUT_SCALE, Init::Const(1.0))?.detach();
        let bands = config.band_layout().map(|layout| Bands::new(config, layout, &vb)).transpose()?;
        let fc1 = candle_nn::linear(e, h, vb.pp(FC1))?;
        let grus =
            (0..config.gru_layers).map(|l| Gru::new(h, h, vb.pp(names::GRU).pp(l))).collect::<Result<Vec<_>>>()?;
        let fc2 = candle_nn::linear(2 * h, h, vb.pp(FC2))?;
        let fc3 = candle_nn::linear(h, e, vb.pp(FC3))?;
        Ok(Self { config: *config, input_mean, input_scale, bands, fc1, grus, fc2, fc3 })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// `mag [B, T, C, n_bins]` → `[B, T, F]` normalised log features, or their band
    /// embeddings `[B, T, K·D]` with a band split: what `fc1` reads.
    fn features(&self, mag: &Tensor) -> Result<Tensor> {
        let (b, t, c, n) = mag.dims4()?;
        let x = log_magnitudes(mag, self.config.feature_floor())?.reshape((b, t, c * n))?;
        let x = x.broadcast_sub(&self.input_mean)?.broadcast_mul(&self.input_scale)?;
        match &self.bands {
            Some(bands) => bands.split(&x),
            None => Ok(x),
        }
    }

    fn head(&self, a: &Tensor, g: &Tensor) -> Result<Tensor> {
        let cat = Tensor::cat(&[a, g], D::Minus1)?;
        let out = self.fc3.forward(&self.fc2.forward(&cat)?.relu()?)?;
        match &self.bands {
            Some(bands) => bands.merge(&out),
            None => Ok(out),
        }
    }

    /// Whole sequences, for training: `mag [B, T, C, n_bins]` (linear STFT magnitudes) →
    /// mask logits `[B, T, C, n_bins]`.
    pub fn forward_seq(&self, mag: &Tensor) -> Result<Tensor> {
        let (b, t, c, n) = mag.dims4()?;
        let a = self.fc1.forward(&self.features(mag)?)?.tanh()?;
        let mut g = a.clone();
        for gru in &self.grus {
            g = gru.forward_seq(&g, None)?;
        }
        self.head(&a, &g)?.reshape((b, t, c, n))
    }

    /// Fresh (zero) recurrent state for `batch` streams.
    pub fn initial_state(&self, batch: usize, device: &Device) -> Result<MaskNetState> {
        self.grus.iter().map(|_| Tensor::zeros((batch, self.config.hidden), DType::F32, device)).collect()
    }

    /// One frame, for streaming inference off the audio thread: `mag [B, C, n_bins]` →
    /// logits `[B, C, n_bins]`, advancing `state`.
    pub fn step(&self, mag: &Tensor, state: &mut MaskNetState) -> Result<Tensor> {
        let (b, c, n) = mag.dims3()?;
        let x = self.features(&mag.unsqueeze(1)?)?.squeeze(1)?;
        let a = self.fc1.forward(&x)?.tanh()?;
        let mut input = a.clone();
        for (gru, h) in self.grus.iter().zip(state.iter_mut()) {
            *h = gru.cell(&gru.project_inputs(&input.unsqueeze(1)?)?.squeeze(1)?, h)?;
            input = h.clone();
        }
        self.head(&a, &input)?.reshape((b, c, n))
    }
}

/// The f32 elements of a contiguous operand of a fused CPU op (`op` names the op in the
/// error), optionally checked to hold `len` elements.
pub fn cpu_operand<'a>(
    s: &'a candle_core::CpuStorage,
    l: &candle_core::Layout,
    op: &str,
    len: Option<usize>,
) -> Result<&'a [f32]> {
    let Some((start, end)) = l.contiguous_offsets() else { candle_core::bail!("{op}: operand is not contiguous") };
    let x = &s.as_slice::<f32>()?[start..end];
    if let Some(len) = len.filter(|&n| n != x.len()) {
        candle_core::bail!("{op}: {} elements where {len} were expected", x.len());
    }
    Ok(x)
}

/// The network's input feature `ln(|X| + floor)` (`features::log_magnitude`) of every
/// element of `mag` (linear STFT magnitudes, any shape); `floor` is
/// `ModelConfig::feature_floor`.
pub fn log_magnitudes(mag: &Tensor, floor: f32) -> Result<Tensor> {
    (mag + f64::from(floor))?.log()
}

/// A `VarBuilder` over loaded weights, to build a [`MaskNet`] that computes exactly what
/// the real-time port computes.
pub fn var_builder(weights: &Weights, device: &Device) -> Result<VarBuilder<'static>> {
    let tensors = weights
        .tensors()
        .iter()
        .map(|(name, t)| Ok((name.clone(), Tensor::from_slice(&t.data, t.shape.as_slice(), device)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    Ok(VarBuilder::from_tensors(tensors, DType::F32, device))
}

/// Loads weights into a candle [`MaskNet`] on `device`.
pub fn load(weights: &Weights, device: &Device) -> Result<MaskNet> {
    MaskNet::new(&weights.meta.model, var_builder(weights, device)?)
}

/// Snapshots trained variables into validated [`Weights`] (checked against the contract).
pub fn weights_from_varmap(
    varmap: &VarMap,
    model: ModelConfig,
    stft: StftConfig,
    provenance: Provenance,
) -> std::result::Result<Weights, ModelExportError> {
    let data = varmap.data().lock().map_err(|_| ModelExportError::Poisoned)?;
    let mut tensors = HashMap::new();
    for (name, var) in data.iter() {
        let t = var.as_tensor();
        let shape = t.dims().to_vec();
        let flat = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        tensors.insert(name.clone(), weights::Tensor { shape, data: flat });
    }
    Ok(Weights::new(model, stft, provenance, tensors)?)
}

#[derive(Debug, thiserror::Error)]
pub enum ModelExportError {
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("variable map lock poisoned")]
    Poisoned,
}
