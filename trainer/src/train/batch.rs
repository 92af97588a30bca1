//! From examples to tensors, the loss, and the input normalisation.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use isola_engine::model::MaskNet;
use rayon::prelude::*;
use realfft::num_complex::Complex32;

use super::config::TrainConfig;
use super::fused_loss::MaskL1;
use super::sampler::Example;
use super::sdr_loss::SdrTargets;
use isola_engine::StftConfig;
use isola_engine::features::magnitude;
use isola_engine::offline;

/// A batch: magnitude tensors `[B, T, 2, n_bins]` of the mixture, vocals and
/// accompaniment, the loss weight of each bin `[B, 1, 1, n_bins]` (1, or 0 above the
/// example's bandwidth), and what the waveform term needs when it is on.
pub(super) struct Batch {
    pub mix: Tensor,
    pub voc: Tensor,
    pub acc: Tensor,
    pub bins: Tensor,
    pub sdr: Option<Arc<SdrTargets>>,
}

/// Per-bin loss weights: bins above an example's bandwidth count only when `band_limited`
/// is off. A bin counts if its lower edge is below the bandwidth.
fn bin_weights(examples: &[Example], stft: &StftConfig, band_limited: bool) -> Vec<f32> {
    let n = stft.n_bins();
    let hz_per_bin = stft.sample_rate as f32 / stft.fft_size as f32;
    let mut w = vec![1.0f32; examples.len() * n];
    if band_limited {
        for (i, e) in examples.iter().enumerate() {
            for (k, x) in w[i * n..(i + 1) * n].iter_mut().enumerate() {
                if (k as f32 - 0.5) * hz_per_bin >= e.bandwidth_hz {
                    *x = 0.0;
                }
            }
        }
    }
    w
}

/// The batch of `examples` on the model grid `stft` with the loss settings of `cfg`.
pub(super) fn batch(
    examples: &[Example],
    cfg: &TrainConfig,
    stft: &StftConfig,
    device: &Device,
) -> anyhow::Result<Batch> {
    let [(mix, mix_spec), (voc, voc_spec), (acc, _)] = batch_tensors(examples, stft, device)?;
    let bins = Tensor::from_vec(
        bin_weights(examples, stft, cfg.band_limited_loss),
        (examples.len(), 1, 1, stft.n_bins()),
        device,
    )?;
    let sdr = if cfg.sdr_loss_weight > 0.0 {
        let (b, t, c, n) = mix.dims4()?;
        anyhow::ensure!(t > cfg.lookahead, "chunk too short for the lookahead");
        // The masks cover input frames 0..T−D (see `loss`): those frames' spectra.
        let frames = |x: Vec<Complex32>| -> Vec<Complex32> {
            x.chunks_exact(t * c * n).flat_map(|e| e[..(t - cfg.lookahead) * c * n].iter().copied()).collect()
        };
        Some(Arc::new(SdrTargets::new(stft, (b, t - cfg.lookahead, c, n), frames(mix_spec), &frames(voc_spec))))
    } else {
        None
    };
    Ok(Batch { mix, voc, acc, bins, sdr })
}

/// Magnitude tensors `[B, T, 2, n_bins]` of the batch's mixture, vocals and accompaniment,
/// each with its spectra in the same layout.
fn batch_tensors(
    examples: &[Example],
    stft: &StftConfig,
    device: &Device,
) -> anyhow::Result<[(Tensor, Vec<Complex32>); 3]> {
    let pick: [fn(&Example) -> &crate::audio::Audio; 3] = [|e| &e.mixture, |e| &e.vocals, |e| &e.accompaniment];
    let b = examples.len();
    let frames = offline::frame_count(stft, examples[0].mixture.frames());
    let n = stft.n_bins();
    let mut out = Vec::with_capacity(3);
    for get in pick {
        let mut spectra = vec![Complex32::new(0.0, 0.0); b * frames * 2 * n];
        // Examples in parallel: on a GPU the STFTs would otherwise bound the step time.
        spectra.par_chunks_mut(frames * 2 * n).zip(examples).for_each(|(out, e)| {
            for c in 0..2 {
                let spec = offline::spectra(stft, &get(e).channels[c]);
                for t in 0..frames {
                    let dst = (t * 2 + c) * n;
                    out[dst..dst + n].copy_from_slice(&spec[t * n..(t + 1) * n]);
                }
            }
        });
        let mags = spectra.par_iter().map(|&c| magnitude(c)).collect();
        out.push((Tensor::from_vec(mags, (b, frames, 2, n), device)?, spectra));
    }
    let mut out = out.into_iter();
    Ok([(); 3].map(|_| out.next().expect("three sources")))
}

/// The training loss of `cfg`: L1 between masked mixture and targets (magnitudes to the
/// power `loss_power`), vocals plus accompaniment, over the bins `bins` marks, relative to
/// the mixture's mean (compressed) magnitude there; plus, with `sdr_loss_weight` > 0, that
/// weight times the waveform term of [`super::sdr_loss`] (−SDR in dB). The normalisation
/// makes the L1 independent of level: raw window-normalised magnitudes are ~1e-3, which
/// would leave gradients below AdamW's epsilon. With lookahead D the network's output
/// frame t masks input frame t - D.
pub(super) fn loss(
    net: &MaskNet,
    Batch { mix, voc, acc, bins, sdr }: &Batch,
    cfg: &TrainConfig,
) -> anyhow::Result<Tensor> {
    let (lookahead, power) = (cfg.lookahead, cfg.loss_power);
    let t = mix.dim(1)?;
    anyhow::ensure!(t > lookahead, "chunk too short for the lookahead");
    let logits = net.forward_seq(mix)?.narrow(1, lookahead, t - lookahead)?;
    let [mix, voc, acc] = [mix, voc, acc].map(|x| x.narrow(1, 0, t - lookahead));
    let (mix, voc, acc) = (mix?, voc?, acc?);
    let l1 = if logits.device().is_cpu() {
        logits.contiguous()?.apply_op1(MaskL1::new(&mix, &voc, &acc, bins, power)?)?
    } else {
        mask_loss_elementary(&logits, &mix, &voc, &acc, bins, power)?
    };
    match sdr {
        Some(targets) if cfg.sdr_loss_weight > 0.0 => Ok((l1 + (targets.loss(&logits)? * cfg.sdr_loss_weight)?)?),
        _ => Ok(l1),
    }
}

/// The loss of mask logits `[B, T, C, n]` (see [`loss`]) from candle's elementary ops, on
/// any device; on the CPU [`MaskL1`] computes the same in one pass.
fn mask_loss_elementary(
    logits: &Tensor,
    mix: &Tensor,
    voc: &Tensor,
    acc: &Tensor,
    bins: &Tensor,
    power: f64,
) -> candle_core::Result<Tensor> {
    let mask = candle_nn::ops::sigmoid(logits)?;
    let est_v = (&mask * mix)?;
    let est_a = (mix - &est_v)?;
    // The small offset keeps the gradient of x^p finite at 0 for p < 1.
    let compress = |x: &Tensor| -> candle_core::Result<Tensor> {
        if power == 1.0 { Ok(x.clone()) } else { (x + 1e-8)?.powf(power) }
    };
    // Weighted sums; the common divisor (number of counted bins) cancels in the ratio.
    let masked_sum = |x: Tensor| -> candle_core::Result<Tensor> { x.broadcast_mul(bins)?.sum_all() };
    let l1 =
        |a: &Tensor, b: &Tensor| -> candle_core::Result<Tensor> { masked_sum((compress(a)? - compress(b)?)?.abs()?) };
    let scale = (masked_sum(compress(mix)?)? + 1e-8)?;
    (l1(&est_v, voc)? + l1(&est_a, acc)?)? / scale
}

/// Per-feature mean and 1/std of the network's log features (magnitude floor `floor`) over
/// `examples`.
pub(super) fn normalisation(
    examples: &[Example],
    stft: &StftConfig,
    floor: f32,
    device: &Device,
) -> anyhow::Result<(Tensor, Tensor)> {
    let [(mix, _), _, _] = batch_tensors(examples, stft, device)?;
    let (b, t, c, n) = mix.dims4()?;
    let x = isola_engine::model::log_magnitudes(&mix, floor)?.reshape((b * t, c * n))?;
    let mean = x.mean(0)?;
    let std = x.broadcast_sub(&mean)?.sqr()?.mean(0)?.sqrt()?;
    // Bins that are (near) silent in the sample have std ~ 0; a floor of 1 neper keeps
    // their features from being blown up by any later noise.
    Ok((mean, std.maximum(1.0)?.recip()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::Audio;

    fn example(seed: u32, bandwidth_hz: f32) -> Example {
        let tone = |f: f32, a: f32| -> Audio {
            // A Hann envelope over the second: no onset clicks, whose broadband energy would
            // leak the 3 kHz tone into the low bins.
            let env = |i: usize| 0.5 - 0.5 * (i as f32 * std::f32::consts::TAU / 8000.0).cos();
            let x: Vec<f32> = (0..8000)
                .map(|i| env(i) * a * (i as f32 * f * std::f32::consts::TAU / 8000.0 + seed as f32).sin())
                .collect();
            Audio { sample_rate: 8000, channels: vec![x.clone(), x] }
        };
        let (vocals, accompaniment) = (tone(440.0, 0.3), tone(3000.0, 0.2));
        let mut mixture = vocals.clone();
        mixture.add_assign(&accompaniment);
        Example { mixture, vocals, accompaniment, bandwidth_hz }
    }

    #[test]
    fn the_fused_loss_matches_the_elementary_loss_and_its_gradient() {
        use crate::train::test_util::assert_same_loss_and_gradient;
        use candle_core::Var;
        let dev = Device::Cpu;
        let (b, t, c, n) = (2, 5, 2, 9);
        let len = b * t * c * n;
        let data = |seed: u64, lo: f32| -> Tensor {
            let v: Vec<f32> =
                (0..len).map(|i| lo + ((i as u64 * 7919 + seed * 104_729) % 1000) as f32 / 1000.0).collect();
            Tensor::from_vec(v, (b, t, c, n), &dev).unwrap()
        };
        let (mix, voc) = (data(1, 0.0), data(2, 0.0));
        let acc = (&mix - &voc).unwrap().abs().unwrap();
        let bins =
            Tensor::from_vec((0..b * n).map(|i| (i % 3 != 0) as u8 as f32).collect(), (b, 1, 1, n), &dev).unwrap();
        for power in [1.0, 0.5] {
            let logits = Var::from_tensor(&data(3, -0.5).affine(4.0, 0.0).unwrap()).unwrap();
            let fused = logits.as_tensor().apply_op1(MaskL1::new(&mix, &voc, &acc, &bins, power).unwrap()).unwrap();
            let plain = mask_loss_elementary(logits.as_tensor(), &mix, &voc, &acc, &bins, power).unwrap();
            let what = format!("power {power}");
            assert_same_loss_and_gradient(&fused, &plain, &logits, |p| 1e-5 * p.abs(), 1e-4, &what);
        }
    }

    #[test]
    fn bins_above_the_bandwidth_are_left_out_of_the_loss() {
        let stft = StftConfig { sample_rate: 8000, fft_size: 256, hop: 64, ..StftConfig::default() };
        let w = bin_weights(&[example(0, 4000.0), example(1, 1000.0)], &stft, true);
        let n = stft.n_bins();
        assert!(w[..n].iter().all(|&x| x == 1.0));
        // 31.25 Hz per bin: bins 0..=32 start below 1 kHz.
        assert_eq!(w[n..].iter().filter(|&&x| x == 1.0).count(), 33);
        assert!(bin_weights(&[example(1, 1000.0)], &stft, false).iter().all(|&x| x == 1.0));

        // Changing the targets at 3 kHz (same mixture, same mask) changes the full-band loss; switching the band limit off makes a
        // 1 kHz-limited example count every bin again.
        let cfg = isola_engine::ModelConfig { hidden: 8, gru_layers: 1, ..isola_engine::ModelConfig::light(&stft) };
        let varmap = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &Device::Cpu);
        let net = MaskNet::new(&cfg, vb).unwrap();
        let l = |e: Example, limited: bool| {
            let cfg = TrainConfig { band_limited_loss: limited, lookahead: 0, loss_power: 1.0, ..Default::default() };
            let b = batch(&[e], &cfg, &stft, &Device::Cpu).unwrap();
            loss(&net, &b, &cfg).unwrap().to_scalar::<f32>().unwrap()
        };
        let moved = |bw: f32| {
            let mut e = example(0, bw);
            // Vocals target: the 440 Hz tone plus twice the 3 kHz one; no accompaniment.
            e.vocals = e.mixture.clone();
            e.vocals.add_assign(&e.accompaniment);
            e.accompaniment.scale(0.0);
            e
        };
        let (full, full_moved) = (l(example(0, 4000.0), true), l(moved(4000.0), true));
        assert!((full - full_moved).abs() > 0.1 * full, "{full} vs {full_moved}");
        assert_ne!(l(example(0, 1000.0), true), full);
        assert_eq!(l(example(0, 1000.0), false), full);
    }
}
