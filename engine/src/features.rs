//! The network's input feature, `ln(|X| + floor)`: defined here once. The real-time port
//! calls [`log_magnitude`]; the candle model's tensor form (training, worker) is
//! `model::log_magnitudes`; both take the floor from the weights' `ModelConfig`.
//!
//! The floor keeps silent bins finite and constant. It also sets how much the features move
//! when silence turns into a noise floor (16-bit quantisation, or a −100 dBFS hiss), whose
//! bins lie around −130 dB with the default 1008-sample window: the larger the floor, the
//! smaller the relative change of the silent bins' features.

/// The floor of weights written before it was a setting: −100 dB (1e-5).
pub const LEGACY_FLOOR_DB: i32 = -100;
/// The floor of new models: the shipped light weights' (−80 dB, since 2026-11-30), so that
/// `isola train --init default` needs no model settings. The shipped worker still uses −100.
pub const DEFAULT_FLOOR_DB: i32 = -80;

/// Serde default of `ModelConfig::feature_floor_db`: weights without it used the legacy floor.
pub fn legacy_floor_db() -> i32 {
    LEGACY_FLOOR_DB
}

/// The linear magnitude of a floor in dB.
pub fn floor_magnitude(floor_db: i32) -> f32 {
    10f32.powf(floor_db as f32 / 20.0)
}

/// Magnitude `|X|` of one STFT bin: what the network's features and the masks are computed
/// from, here once. `sqrt(re² + im²)` rather than `hypot`: the spectra are window-normalised
/// (|X| ≤ about 1 for full-scale input, non-finite input is guarded before the STFT), so
/// `hypot`'s overflow care buys nothing, and it cost 8 % of the 6 ms mode's `process` time.
/// Any thread.
#[inline(always)]
pub fn magnitude(x: realfft::num_complex::Complex32) -> f32 {
    x.norm_sqr().sqrt()
}

/// Feature of one STFT magnitude (window-normalised, so a full-scale sine peaks near 0.5),
/// with `floor` from [`floor_magnitude`]. Uses the audio thread's vectorisable `ln`
/// (`rt::math::ln`, tested against `f64::ln`). Any thread.
#[inline(always)]
pub fn log_magnitude(mag: f32, floor: f32) -> f32 {
    crate::rt::math::ln(mag + floor)
}
