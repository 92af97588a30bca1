//! Maps between the model's frequency grid (its training rate and FFT size) and the
//! runtime STFT grid, so one set of weights works at any sample rate.
//!
//! Choice (documented in the README): the runtime STFT is the model's grid rescaled to the
//! host rate ([`crate::config::StftConfig::for_rate`]): frames as long in seconds and bins
//! as wide in Hz as in training, to within 2 % (0.5 % at 48/96 kHz; 1120/280 at 48 kHz for a 1024/256 model at
//! 44.1 kHz). The remaining difference is absorbed by linearly interpolating magnitudes onto
//! the model's bin frequencies, and masks back onto the runtime bins. Cost: two
//! interpolations per frame (a few µs) and a mixed-radix FFT; no resampler, and the latency
//! stays about the same in milliseconds at every rate. At the model's own rate the map is
//! the identity.

/// Linear interpolation from a source grid onto destination bins, precomputed.
#[derive(Debug, Clone)]
pub struct BinMap {
    /// For each destination bin: (left source index, its weight, right weight).
    taps: Vec<(u32, f32, f32)>,
}

impl BinMap {
    /// Destination bin `k` sits at `k * dst_hz_per_bin` Hz. A destination frequency past the
    /// source's top bin gets 0 (no energy there), or with `clamp_top` the top bin's value
    /// (used for masks, which should not vanish above the model's Nyquist).
    /// Any thread but the audio thread (allocates).
    pub fn new(src_bins: usize, src_hz_per_bin: f64, dst_bins: usize, dst_hz_per_bin: f64, clamp_top: bool) -> Self {
        let top = (src_bins - 1) as f64;
        let taps = (0..dst_bins)
            .map(|k| {
                let mut pos = k as f64 * dst_hz_per_bin / src_hz_per_bin;
                // Snap positions that are integers up to rounding error: identity maps stay exact.
                if (pos - pos.round()).abs() < 1e-9 {
                    pos = pos.round();
                }
                if pos > top {
                    return if clamp_top { (top as u32, 1.0, 0.0) } else { (0, 0.0, 0.0) };
                }
                let i = pos.floor().min(top - 1.0).max(0.0);
                let frac = (pos - i) as f32;
                (i as u32, 1.0 - frac, frac)
            })
            .collect();
        Self { taps }
    }

    pub fn dst_len(&self) -> usize {
        self.taps.len()
    }

    /// Audio thread. `dst.len()` must equal `dst_len()`.
    #[inline]
    pub fn apply(&self, src: &[f32], dst: &mut [f32]) {
        for (d, &(i, w0, w1)) in dst.iter_mut().zip(&self.taps) {
            let i = i as usize;
            let right = src.get(i + 1).copied().unwrap_or(0.0);
            *d = src[i] * w0 + right * w1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_map_is_exact() {
        let m = BinMap::new(513, 44100.0 / 1024.0, 513, 44100.0 / 1024.0, false);
        let src: Vec<f32> = (0..513).map(|i| i as f32 * 0.37).collect();
        let mut dst = vec![0.0; 513];
        m.apply(&src, &mut dst);
        assert_eq!(src, dst);
    }

    #[test]
    fn maps_by_frequency_not_by_index() {
        // Source 96 kHz / 2048 (46.875 Hz/bin) onto model 44.1 kHz / 1024 (43.07 Hz/bin).
        let src_hz = 96000.0 / 2048.0;
        let dst_hz = 44100.0 / 1024.0;
        let m = BinMap::new(1025, src_hz, 513, dst_hz, false);
        // A linear ramp in Hz stays the same ramp in Hz.
        let src: Vec<f32> = (0..1025).map(|i| (i as f64 * src_hz) as f32).collect();
        let mut dst = vec![0.0; 513];
        m.apply(&src, &mut dst);
        for (k, v) in dst.iter().enumerate() {
            let hz = k as f64 * dst_hz;
            assert!((*v as f64 - hz).abs() < 0.05 * hz.max(1.0), "bin {k}: {v} vs {hz}");
        }
        // Beyond the source's Nyquist: zero, or the top value when clamping.
        let low = BinMap::new(513, 22050.0 / 1024.0, 513, 44100.0 / 1024.0, false);
        let mut dst = vec![1.0; 513];
        low.apply(&vec![1.0; 513], &mut dst);
        assert_eq!(dst[400], 0.0);
        let clamped = BinMap::new(513, 22050.0 / 1024.0, 513, 44100.0 / 1024.0, true);
        clamped.apply(&vec![1.0; 513], &mut dst);
        assert_eq!(dst[400], 1.0);
    }
}
