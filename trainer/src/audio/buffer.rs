/// Planar floating-point audio: `channels[c][frame]`, every channel the same
/// length. Samples are nominally in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub sample_rate: u32,
    pub channels: Vec<Vec<f32>>,
}

impl Audio {
    /// Silent audio of the given shape.
    pub fn silence(sample_rate: u32, n_channels: usize, frames: usize) -> Self {
        Self { sample_rate, channels: vec![vec![0.0; frames]; n_channels] }
    }

    pub fn n_channels(&self) -> usize {
        self.channels.len()
    }

    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// First non-finite sample as `(channel, frame)`, if any.
    pub fn first_non_finite(&self) -> Option<(usize, usize)> {
        self.channels.iter().enumerate().find_map(|(c, ch)| ch.iter().position(|x| !x.is_finite()).map(|i| (c, i)))
    }

    /// Largest absolute sample value.
    pub fn peak(&self) -> f32 {
        self.channels.iter().flatten().fold(0.0f32, |m, x| m.max(x.abs()))
    }

    /// Mean square over all channels and frames (0 for empty audio).
    pub fn mean_square(&self) -> f64 {
        let n = self.frames() * self.n_channels();
        if n == 0 {
            return 0.0;
        }
        let sum: f64 = self.channels.iter().flatten().map(|&x| f64::from(x) * f64::from(x)).sum();
        sum / n as f64
    }

    /// Converts to `n` channels: mono is duplicated, more channels are
    /// averaged down to mono first (so stereo -> mono is (L+R)/2).
    pub fn with_channels(&self, n: usize) -> Audio {
        assert!(n > 0, "channel count must be positive");
        if self.n_channels() == n {
            return self.clone();
        }
        let mono = if self.n_channels() == 1 {
            self.channels[0].clone()
        } else {
            let k = self.n_channels() as f32;
            (0..self.frames()).map(|i| self.channels.iter().map(|c| c[i]).sum::<f32>() / k).collect()
        };
        Audio { sample_rate: self.sample_rate, channels: vec![mono; n] }
    }

    /// Adds `other` sample by sample. Shapes must match (checked by callers,
    /// which report the offending files).
    pub fn add_assign(&mut self, other: &Audio) {
        assert_eq!(self.n_channels(), other.n_channels(), "channel count mismatch");
        assert_eq!(self.frames(), other.frames(), "length mismatch");
        for (a, b) in self.channels.iter_mut().zip(&other.channels) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
    }

    /// Scales every sample by `gain`.
    /// The samples as a `bits`-bit integer file stores them (2..=24): clamped to ±1, scaled
    /// by `2^(bits−1) − 1` and rounded to the nearest step, no dither. 16-bit WAV writing
    /// uses this rule; `isola eval --input-bits` feeds the model mixtures quantised by it.
    pub fn quantized(&self, bits: u32) -> Audio {
        let full = quantizer_full_scale(bits);
        let channels = self
            .channels
            .iter()
            .map(|c| c.iter().map(|x| (x.clamp(-1.0, 1.0) * full).round() / full).collect())
            .collect();
        Audio { sample_rate: self.sample_rate, channels }
    }

    pub fn scale(&mut self, gain: f32) {
        self.channels.iter_mut().flatten().for_each(|x| *x *= gain);
    }

    /// Copy of frames `start..start + len`, zero-padded past the end.
    pub fn slice_padded(&self, start: usize, len: usize) -> Audio {
        let channels = self
            .channels
            .iter()
            .map(|ch| {
                let mut out = vec![0.0; len];
                if start < ch.len() {
                    let end = (start + len).min(ch.len());
                    out[..end - start].copy_from_slice(&ch[start..end]);
                }
                out
            })
            .collect();
        Audio { sample_rate: self.sample_rate, channels }
    }
}

/// Largest code of a `bits`-bit signed sample, as a float: `2^(bits−1) − 1`.
pub(crate) fn quantizer_full_scale(bits: u32) -> f32 {
    assert!((2..=24).contains(&bits), "quantiser width {bits} outside 2..=24 bits");
    ((1u32 << (bits - 1)) - 1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_conversion_duplicates_mono_and_averages_stereo() {
        let mono = Audio { sample_rate: 8000, channels: vec![vec![1.0, -1.0]] };
        assert_eq!(mono.with_channels(2).channels, vec![vec![1.0, -1.0]; 2]);
        let stereo = Audio { sample_rate: 8000, channels: vec![vec![1.0, 0.0], vec![0.0, 1.0]] };
        assert_eq!(stereo.with_channels(1).channels, vec![vec![0.5, 0.5]]);
    }

    #[test]
    fn finds_non_finite_samples() {
        let a = Audio { sample_rate: 8000, channels: vec![vec![0.0; 4], vec![0.0, 0.0, f32::NAN, 0.0]] };
        assert_eq!(a.first_non_finite(), Some((1, 2)));
        assert_eq!(Audio::silence(8000, 2, 4).first_non_finite(), None);
    }

    #[test]
    fn slice_pads_past_the_end() {
        let a = Audio { sample_rate: 8000, channels: vec![vec![1.0, 2.0, 3.0]] };
        assert_eq!(a.slice_padded(1, 4).channels, vec![vec![2.0, 3.0, 0.0, 0.0]]);
        assert_eq!(a.slice_padded(5, 2).channels, vec![vec![0.0, 0.0]]);
    }
}
