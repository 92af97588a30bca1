//! The network's input transform, shared by the candle model and the real-time port so
//! that both see exactly the same numbers.

/// Added to magnitudes before the log: -100 dB, below any real signal's bin level but far
/// from f32's limits, so silence gives a finite, constant feature.
pub const MAG_EPS: f32 = 1e-5;

/// Feature of one STFT magnitude (window-normalised, so a full-scale sine peaks near 0.5).
#[inline]
pub fn log_magnitude(mag: f32) -> f32 {
    (mag + MAG_EPS).ln()
}
