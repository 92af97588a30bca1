//! Whole-signal metrics: SI-SDR and the MDX-challenge global SDR. Both take
//! every channel together; estimates must match the reference's shape.

use crate::audio::Audio;

/// MDX 2021 "global SDR" (Mitsufuji et al.): 10 log10((‖s‖² + δ) / (‖s - ŝ‖² + δ))
/// over the whole track, δ = 1e-7.
pub fn global_sdr(reference: &Audio, estimate: &Audio) -> f64 {
    const DELTA: f64 = 1e-7;
    let (num, den) = sums(reference, estimate, |s, e| (s * s, (s - e) * (s - e)));
    10.0 * ((num + DELTA) / (den + DELTA)).log10()
}

/// Scale-invariant SDR (Le Roux et al. 2019) with both signals made
/// zero-mean per channel; the optimal scale α = ⟨ŝ, s⟩ / ‖s‖² is shared by
/// all channels: 10 log10(‖αs‖² / ‖αs - ŝ‖²). NaN for a silent reference.
pub fn si_sdr(reference: &Audio, estimate: &Audio) -> f64 {
    let r = zero_mean(reference);
    let e = zero_mean(estimate);
    let (dot, energy) = sums(&r, &e, |s, e| (s * e, s * s));
    if energy == 0.0 {
        return f64::NAN;
    }
    let alpha = dot / energy;
    let (num, den) = sums(&r, &e, |s, e| ((alpha * s) * (alpha * s), (alpha * s - e) * (alpha * s - e)));
    10.0 * (num / den).log10()
}

fn sums(r: &Audio, e: &Audio, f: impl Fn(f64, f64) -> (f64, f64)) -> (f64, f64) {
    assert_eq!((r.n_channels(), r.frames()), (e.n_channels(), e.frames()), "reference and estimate shapes differ");
    let mut acc = (0.0, 0.0);
    for (rc, ec) in r.channels.iter().zip(&e.channels) {
        for (&s, &x) in rc.iter().zip(ec) {
            let (a, b) = f(f64::from(s), f64::from(x));
            acc.0 += a;
            acc.1 += b;
        }
    }
    acc
}

fn zero_mean(a: &Audio) -> Audio {
    let channels = a
        .channels
        .iter()
        .map(|c| {
            let m = c.iter().map(|&x| f64::from(x)).sum::<f64>() / c.len().max(1) as f64;
            c.iter().map(|&x| (f64::from(x) - m) as f32).collect()
        })
        .collect();
    Audio { sample_rate: a.sample_rate, channels }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(ch: Vec<Vec<f32>>) -> Audio {
        Audio { sample_rate: 4, channels: ch }
    }

    #[test]
    fn si_sdr_ignores_scale_but_global_sdr_does_not() {
        let s = audio(vec![vec![1.0, -1.0, 2.0, -2.0]]);
        let mut half = s.clone();
        half.scale(0.5);
        assert!(si_sdr(&s, &half) > 100.0, "a scaled copy is perfect for SI-SDR");
        // ‖s‖² / ‖s/2‖² = 4: 6.02 dB.
        assert!((global_sdr(&s, &half) - 10.0 * 4f64.log10()).abs() < 1e-6);
    }

    #[test]
    fn si_sdr_of_orthogonal_error() {
        let s = audio(vec![vec![1.0, -1.0, 1.0, -1.0]]);
        let e = audio(vec![vec![1.1, -0.9, 0.9, -1.1]]); // s + 0.1·[1, 1, -1, -1] (orthogonal)
        assert!((si_sdr(&s, &e) - 20.0).abs() < 1e-4, "{}", si_sdr(&s, &e));
    }
}
