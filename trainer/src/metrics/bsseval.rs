//! BSSEval v4 SDR exactly as museval 0.4 (`museval.evaluate`, mode "v4")
//! computes it: `bss_eval_images` with time-invariant 512-tap distortion
//! filters estimated on the whole track, metrics on 1 s windows with 1 s hops.
//!
//! Why no filters appear below: museval decomposes an estimate ŝ of source
//! j (in a window, zero-padded by 511 samples) as
//!   e_spat   = P_j(s_j) - s_j,
//!   e_interf = P(s) - s_j - e_spat,
//!   e_artif  = ŝ - s_j - e_spat - e_interf,
//! where P_j, P are the filter projections, and its image-version SDR is
//!   10 log10(‖s_j‖² / ‖e_spat + e_interf + e_artif‖²).
//! The three error terms telescope to ŝ - s_j, so the projections cancel
//! and SDR is the windowed signal-to-error ratio ‖s_j‖²/‖ŝ - s_j‖² (the
//! filters only matter for ISR/SIR/SAR, which Isola does not report). This
//! module reproduces everything else museval does around it: the framing,
//! the padding/truncation of estimates, the rule that a window where any
//! reference or estimate is silent is NaN for every source, the rejection of
//! entirely silent sources, and +inf for an error-free window. The
//! cross-check against museval's own numbers is
//! `tests/museval_crosscheck.rs`.

use std::ops::Range;

use crate::audio::Audio;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BssError {
    #[error("need the same number of references and estimates (got {0} and {1}), at least one")]
    SourceCount(usize, usize),
    #[error("source {0}: reference and estimate have different channel counts")]
    Channels(usize),
    #[error("reference sources have different shapes")]
    References,
    #[error("{0} source {1} is silent (all zeros); BSSEval is undefined for it")]
    Silent(&'static str, usize),
}

/// museval's `Framing`: windows of `window` samples every `hop` samples;
/// a tail shorter than a window is not evaluated; a signal shorter than one
/// window is one window.
pub fn frames(len: usize, window: usize, hop: usize) -> Vec<Range<usize>> {
    if window >= len {
        return std::iter::once(0..len).collect();
    }
    let n = (len - window + hop) / hop;
    (0..n).map(|t| t * hop..(t * hop + window).min(len)).collect()
}

/// Framewise SDR in dB, `[source][window]`, of `estimates` against
/// `references` (all sources evaluated jointly, like museval). Estimates are
/// zero-padded or truncated to the reference length. NaN marks windows where
/// some reference or estimate is silent.
pub fn framewise_sdr(
    references: &[&Audio],
    estimates: &[&Audio],
    window: usize,
    hop: usize,
) -> Result<Vec<Vec<f64>>, BssError> {
    if references.is_empty() || references.len() != estimates.len() {
        return Err(BssError::SourceCount(references.len(), estimates.len()));
    }
    let len = references[0].frames();
    let n_ch = references[0].n_channels();
    if references.iter().any(|r| r.frames() != len || r.n_channels() != n_ch) {
        return Err(BssError::References);
    }
    let estimates: Vec<Audio> = estimates.iter().map(|e| e.slice_padded(0, len)).collect();
    for (j, e) in estimates.iter().enumerate() {
        if e.n_channels() != n_ch {
            return Err(BssError::Channels(j));
        }
    }
    for (j, r) in references.iter().enumerate() {
        if silent(r, 0..len) {
            return Err(BssError::Silent("reference", j));
        }
        if silent(&estimates[j], 0..len) {
            return Err(BssError::Silent("estimate", j));
        }
    }
    let windows = frames(len, window, hop);
    let mut sdr = vec![Vec::with_capacity(windows.len()); references.len()];
    for w in windows {
        let any_silent =
            references.iter().any(|r| silent(r, w.clone())) || estimates.iter().any(|e| silent(e, w.clone()));
        for (j, (r, e)) in references.iter().zip(&estimates).enumerate() {
            sdr[j].push(if any_silent { f64::NAN } else { window_sdr(r, e, w.clone()) });
        }
    }
    Ok(sdr)
}

/// museval's `_any_source_silent` for one source: the sum over channels is
/// exactly zero at every sample of the window.
fn silent(a: &Audio, w: Range<usize>) -> bool {
    w.into_iter().all(|i| a.channels.iter().map(|c| f64::from(c[i])).sum::<f64>() == 0.0)
}

fn window_sdr(r: &Audio, e: &Audio, w: Range<usize>) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (rc, ec) in r.channels.iter().zip(&e.channels) {
        for i in w.clone() {
            let s = f64::from(rc[i]);
            let d = f64::from(ec[i]) - s;
            num += s * s;
            den += d * d;
        }
    }
    if den == 0.0 { f64::INFINITY } else { 10.0 * (num / den).log10() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(ch: Vec<Vec<f32>>) -> Audio {
        Audio { sample_rate: 4, channels: ch }
    }

    #[test]
    fn framing_matches_museval() {
        assert_eq!(frames(10, 4, 4), vec![0..4, 4..8]);
        assert_eq!(frames(10, 4, 2), vec![0..4, 2..6, 4..8, 6..10]);
        assert_eq!(frames(3, 4, 4), vec![0..3]);
        assert_eq!(frames(4, 4, 4), vec![0..4]);
    }

    #[test]
    fn sdr_of_scaled_error_and_silent_windows() {
        let r1 = audio(vec![vec![1.0, -1.0, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0]]);
        let r2 = audio(vec![vec![0.5; 8]]);
        // Error of a tenth of the signal amplitude: 20 dB.
        let e1 = audio(vec![vec![1.1, -1.1, 1.1, -1.1, 0.1, 0.0, 0.0, 0.0]]);
        let sdr = framewise_sdr(&[&r1, &r2], &[&e1, &r2], 4, 4).unwrap();
        assert!((sdr[0][0] - 20.0).abs() < 1e-5, "{}", sdr[0][0]);
        assert_eq!(sdr[1][0], f64::INFINITY, "error-free window");
        // r1 is silent in the second window: NaN for both sources.
        assert!(sdr[0][1].is_nan() && sdr[1][1].is_nan());
    }

    #[test]
    fn silence_is_the_channel_sum_and_whole_silence_is_an_error() {
        // L = -R sums to zero: museval treats that as silent.
        let antiphase = audio(vec![vec![1.0; 4], vec![-1.0; 4]]);
        let other = audio(vec![vec![1.0; 4], vec![1.0; 4]]);
        assert_eq!(framewise_sdr(&[&antiphase], &[&other], 4, 4), Err(BssError::Silent("reference", 0)));
        assert_eq!(framewise_sdr(&[&other], &[&antiphase], 4, 4), Err(BssError::Silent("estimate", 0)));
    }

    #[test]
    fn estimates_are_padded_or_truncated() {
        let r = audio(vec![vec![1.0; 8]]);
        let short = audio(vec![vec![1.0; 6]]);
        let sdr = framewise_sdr(&[&r], &[&short], 4, 4).unwrap();
        assert_eq!(sdr[0][0], f64::INFINITY);
        assert!((sdr[0][1] - 10.0 * 2f64.log10()).abs() < 1e-9, "half the window missing: 3 dB");
    }
}
