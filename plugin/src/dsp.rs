//! Small per-sample helpers for the audio thread.

use isola_engine::rt::math::guard_input;

/// Applies the engine's input guard in place (NaN/Inf → silence, clamp to ±[`MAX_INPUT`](isola_engine::rt::math::MAX_INPUT),
/// flush below 1e-30), so the pass-through path's output obeys the same rule as the
/// separator's. Returns whether anything had to be replaced or clamped.
/// Audio thread: no allocation, no branches that depend on the block size.
pub fn sanitize(channels: &mut [&mut [f32]]) -> bool {
    let mut fixed = false;
    for ch in channels.iter_mut() {
        for x in ch.iter_mut() {
            let v = *x;
            // Tiny values are flushed too: in pass-through they are the output, never subnormal.
            let clean = guard_input(v).unwrap_or(0.0);
            fixed |= clean != v;
            *x = clean;
        }
    }
    fixed
}

/// Fills every channel with zeros. Audio thread.
pub fn silence(channels: &mut [&mut [f32]]) {
    for ch in channels.iter_mut() {
        ch.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_replaces_non_finite_and_clamps() {
        let mut a = [0.5, f32::NAN, f32::INFINITY, -1e9, f32::NEG_INFINITY, -0.25, 9.4e-39];
        let mut chans: [&mut [f32]; 1] = [&mut a];
        assert!(sanitize(&mut chans));
        assert_eq!(a, [0.5, 0.0, 0.0, -isola_engine::rt::math::MAX_INPUT, 0.0, -0.25, 0.0]);
        let mut b = [0.1f32, -1.0, 1.0];
        let mut chans: [&mut [f32]; 1] = [&mut b];
        assert!(!sanitize(&mut chans));
        assert_eq!(b, [0.1, -1.0, 1.0]);
    }
}
