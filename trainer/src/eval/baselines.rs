//! Reference points printed beside the model: the mixture itself as the
//! estimate (the floor), classic mid/side centre extraction, and the oracle
//! ideal ratio mask on the model's own STFT grid (the ceiling of any mask
//! this STFT can express).

use isola_engine::StftConfig;
use isola_engine::features::magnitude;
use isola_engine::rt::StreamingStft;

use crate::audio::Audio;
use crate::separate::Stems;

/// Both estimates are the mixture.
pub fn mixture(mix: &Audio) -> Stems {
    Stems { vocals: mix.clone(), accompaniment: mix.clone() }
}

/// Vocals = mid (L+R)/2 on both channels, accompaniment = what is left
/// (the side signal). `None` for mono, which has no stereo image to use.
pub fn mid_side(mix: &Audio) -> Option<Stems> {
    if mix.n_channels() != 2 {
        return None;
    }
    let mid: Vec<f32> = mix.channels[0].iter().zip(&mix.channels[1]).map(|(l, r)| 0.5 * (l + r)).collect();
    let side = mix.channels.iter().map(|c| c.iter().zip(&mid).map(|(x, m)| x - m).collect()).collect();
    Some(Stems {
        vocals: Audio { sample_rate: mix.sample_rate, channels: vec![mid.clone(), mid] },
        accompaniment: Audio { sample_rate: mix.sample_rate, channels: side },
    })
}

/// Oracle magnitude ratio mask |V| / (|V| + |A|) applied to the mixture's
/// STFT, on the grid the engine runs at this rate (`model.for_rate`), with
/// the engine's own streaming STFT. Accompaniment = mixture - vocals, as in
/// the engine.
pub fn oracle_irm(vocals: &Audio, accompaniment: &Audio, model: &StftConfig) -> Stems {
    let (n_ch, frames, rate) = (vocals.n_channels(), vocals.frames(), vocals.sample_rate);
    let config = model.for_rate(f64::from(rate));
    // Channels: [mixture.., vocals.., accompaniment..] so one frame callback sees all three.
    let mut stft = StreamingStft::new(&config, 3 * n_ch);
    let latency = stft.latency_samples();
    let mix: Vec<Vec<f32>> = (0..n_ch)
        .map(|c| vocals.channels[c].iter().zip(&accompaniment.channels[c]).map(|(v, a)| v + a).collect())
        .collect();
    let padded = |x: &Vec<f32>| {
        let mut p = x.clone();
        p.resize(frames + latency, 0.0);
        p
    };
    let inputs: Vec<Vec<f32>> = mix.iter().chain(&vocals.channels).chain(&accompaniment.channels).map(padded).collect();
    let input_refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let mut outputs = vec![vec![0.0f32; frames + latency]; 3 * n_ch];
    let mut output_refs: Vec<&mut [f32]> = outputs.iter_mut().map(Vec::as_mut_slice).collect();
    stft.process(&input_refs, &mut output_refs, |spectra| {
        for c in 0..n_ch {
            for k in 0..spectra[c].len() {
                let (v, a) = (magnitude(spectra[n_ch + c][k]), magnitude(spectra[2 * n_ch + c][k]));
                let m = if v + a > 0.0 { v / (v + a) } else { 0.0 };
                spectra[c][k] *= m;
            }
        }
    });
    let est_vocals: Vec<Vec<f32>> = outputs[..n_ch].iter().map(|o| o[latency..].to_vec()).collect();
    let est_acc = mix.iter().zip(&est_vocals).map(|(m, v)| m.iter().zip(v).map(|(m, v)| m - v).collect()).collect();
    Stems {
        vocals: Audio { sample_rate: rate, channels: est_vocals },
        accompaniment: Audio { sample_rate: rate, channels: est_acc },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::evaluate_track;

    #[test]
    fn baselines_order_as_expected_on_a_synthetic_track() {
        let t = crate::synth::track(16_000, 4.0, 11);
        let mix = {
            let mut m = t.vocals.clone();
            m.add_assign(&t.accompaniment);
            m
        };
        let score = |s: &Stems| evaluate_track(&t.vocals, &t.accompaniment, &s.vocals, &s.accompaniment).unwrap();
        let floor = score(&mixture(&mix));
        let oracle = score(&oracle_irm(&t.vocals, &t.accompaniment, &StftConfig::default()));
        let ms = score(&mid_side(&mix).unwrap());
        assert!(
            oracle.vocals.sdr > floor.vocals.sdr + 6.0,
            "oracle {} vs mixture {}",
            oracle.vocals.sdr,
            floor.vocals.sdr
        );
        assert!(oracle.vocals.sdr > ms.vocals.sdr, "the oracle beats mid/side");
        assert!(oracle.accompaniment.sdr > floor.accompaniment.sdr + 6.0);
        assert!(mid_side(&mix.with_channels(1)).is_none());
    }

    #[test]
    fn oracle_of_a_pure_vocal_is_the_vocal() {
        let t = crate::synth::track(16_000, 2.0, 12);
        let silent = Audio::silence(16_000, 2, t.vocals.frames());
        let s = oracle_irm(&t.vocals, &silent, &StftConfig::default());
        let err = s
            .vocals
            .channels
            .iter()
            .flatten()
            .zip(t.vocals.channels.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-4, "mask 1 everywhere reproduces the input, latency removed ({err})");
    }
}
