//! Whole-clip sample-rate conversion with rubato's synchronous FFT resampler
//! (fixed ratio, band-limited; the startup delay is trimmed by `process_all`).

use rubato::audioadapter::Adapter;
use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

use super::Audio;

/// Chunk size of the FFT resampler, in input frames.
const CHUNK: usize = 1024;

/// Resamples `audio` to `rate`; a no-op copy when the rate already matches.
/// The output has `round(frames * rate / in_rate)` frames (±1).
pub fn resample(audio: &Audio, rate: u32) -> Result<Audio, String> {
    if audio.sample_rate == rate || audio.frames() == 0 {
        return Ok(Audio { sample_rate: rate, channels: audio.channels.clone() });
    }
    let n_ch = audio.n_channels();
    let frames = audio.frames();
    let mut resampler = Fft::<f32>::new(audio.sample_rate as usize, rate as usize, CHUNK, n_ch, FixedSync::Input)
        .map_err(|e| format!("cannot resample {} Hz -> {rate} Hz: {e}", audio.sample_rate))?;
    let input = SequentialSliceOfVecs::new(&audio.channels, n_ch, frames).map_err(|e| e.to_string())?;
    let out = resampler.process_all(&input, frames, None).map_err(|e| format!("resampling failed: {e}"))?;
    let channels =
        (0..n_ch).map(|c| (0..out.frames()).map(|i| out.read_sample(c, i).unwrap_or(0.0)).collect()).collect();
    Ok(Audio { sample_rate: rate, channels })
}

/// `audio` played `factor` times faster, tempo and pitch together: its samples are declared
/// to be at `round(rate · factor)` and resampled back to its rate (band-limited). The result
/// has the same rate and about `frames / factor` frames.
pub fn change_speed(mut audio: Audio, factor: f64) -> Result<Audio, String> {
    let rate = audio.sample_rate;
    audio.sample_rate = (f64::from(rate) * factor).round() as u32;
    resample(&audio, rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::TAU;

    fn sine(rate: u32, freq: f32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n).map(|i| (TAU * freq * i as f32 / rate as f32).sin()).collect()
    }

    #[test]
    fn resampling_keeps_duration_and_frequency() {
        let a = Audio { sample_rate: 16_000, channels: vec![sine(16_000, 440.0, 1.0); 2] };
        let b = resample(&a, 44_100).unwrap();
        assert_eq!(b.sample_rate, 44_100);
        assert_eq!(b.n_channels(), 2);
        assert!((b.frames() as i64 - 44_100).abs() <= 1, "{} frames", b.frames());
        // Compare against an ideal 440 Hz sine away from the edges.
        let want = sine(44_100, 440.0, 1.0);
        let err = (4000..40_000).map(|i| (b.channels[0][i] - want[i]).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-2, "max error {err}");
    }

    #[test]
    fn same_rate_is_identity() {
        let a = Audio { sample_rate: 44_100, channels: vec![vec![0.1, 0.2, 0.3]] };
        assert_eq!(resample(&a, 44_100).unwrap(), a);
    }
}
