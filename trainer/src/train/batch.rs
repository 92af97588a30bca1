//! From examples to tensors, the loss, and the input normalisation.

use candle_core::{Device, Tensor};
use isola_engine::model::MaskNet;

use super::sampler::Example;
use isola_engine::StftConfig;
use isola_engine::offline;

/// Magnitude tensors `[B, T, 2, n_bins]` of the batch's mixture, vocals and accompaniment.
pub(super) fn batch_tensors(examples: &[Example], stft: &StftConfig, device: &Device) -> anyhow::Result<[Tensor; 3]> {
    let pick: [fn(&Example) -> &crate::audio::Audio; 3] = [|e| &e.mixture, |e| &e.vocals, |e| &e.accompaniment];
    let b = examples.len();
    let frames = offline::frame_count(stft, examples[0].mixture.frames());
    let n = stft.n_bins();
    let mut out = Vec::with_capacity(3);
    for get in pick {
        let mut data = vec![0.0f32; b * frames * 2 * n];
        for (i, e) in examples.iter().enumerate() {
            for c in 0..2 {
                let mags = offline::magnitudes(stft, &get(e).channels[c]);
                for t in 0..frames {
                    let dst = ((i * frames + t) * 2 + c) * n;
                    data[dst..dst + n].copy_from_slice(&mags[t * n..(t + 1) * n]);
                }
            }
        }
        out.push(Tensor::from_vec(data, (b, frames, 2, n), device)?);
    }
    Ok([out.remove(0), out.remove(0), out.remove(0)])
}

/// L1 between masked mixture and targets (magnitudes to the power `power`),
/// vocals plus accompaniment, relative to the mixture's mean (compressed)
/// magnitude. The normalisation makes the loss independent of level: raw
/// window-normalised magnitudes are ~1e-3, which would leave gradients
/// below AdamW's epsilon. With lookahead D the network's output frame t
/// masks input frame t - D.
pub(super) fn loss(
    net: &MaskNet,
    [mix, voc, acc]: &[Tensor; 3],
    lookahead: usize,
    power: f64,
) -> anyhow::Result<Tensor> {
    let t = mix.dim(1)?;
    anyhow::ensure!(t > lookahead, "chunk too short for the lookahead");
    let logits = net.forward_seq(mix)?.narrow(1, lookahead, t - lookahead)?;
    let mask = candle_nn::ops::sigmoid(&logits)?;
    let (mix, voc, acc) =
        (mix.narrow(1, 0, t - lookahead)?, voc.narrow(1, 0, t - lookahead)?, acc.narrow(1, 0, t - lookahead)?);
    let est_v = (&mask * &mix)?;
    let est_a = (&mix - &est_v)?;
    // The small offset keeps the gradient of x^p finite at 0 for p < 1.
    let compress = |x: &Tensor| -> candle_core::Result<Tensor> {
        if power == 1.0 { Ok(x.clone()) } else { (x + 1e-8)?.powf(power) }
    };
    let l1 =
        |a: &Tensor, b: &Tensor| -> candle_core::Result<Tensor> { (compress(a)? - compress(b)?)?.abs()?.mean_all() };
    let scale = (compress(&mix)?.mean_all()? + 1e-8)?;
    Ok(((l1(&est_v, &voc)? + l1(&est_a, &acc)?)? / scale)?)
}

/// Per-feature mean and 1/std of the network's log features over `examples`.
pub(super) fn normalisation(
    examples: &[Example],
    stft: &StftConfig,
    device: &Device,
) -> anyhow::Result<(Tensor, Tensor)> {
    let [mix, _, _] = batch_tensors(examples, stft, device)?;
    let (b, t, c, n) = mix.dims4()?;
    let x = (mix + f64::from(isola_engine::features::MAG_EPS))?.log()?.reshape((b * t, c * n))?;
    let mean = x.mean(0)?;
    let std = x.broadcast_sub(&mean)?.sqr()?.mean(0)?.sqrt()?;
    // Bins that are (near) silent in the sample have std ~ 0; a floor of 1 neper keeps
    // their features from being blown up by any later noise.
    Ok((mean, std.maximum(1.0)?.recip()?))
}
