//! The network's input feature, `ln(|X| + eps)`: defined here once. The real-time port
//! calls [`log_magnitude`]; the candle model's tensor form (training, worker) is
//! `model::log_magnitudes`, which uses the same [`MAG_EPS`].

/// Added to magnitudes before the log: -100 dB, below any real signal's bin level but far
/// from f32's limits, so silence gives a finite, constant feature.
pub const MAG_EPS: f32 = 1e-5;

/// Feature of one STFT magnitude (window-normalised, so a full-scale sine peaks near 0.5).
/// Uses the audio thread's vectorisable `ln` (`rt::math::ln`, tested against `f64::ln`).
#[inline(always)]
pub fn log_magnitude(mag: f32) -> f32 {
    crate::rt::math::ln(mag + MAG_EPS)
}
