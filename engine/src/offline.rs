//! Offline feature extraction for training and evaluation: the same frame analysis the
//! streaming STFT performs ([`FrameAnalyzer`]), over a whole signal. Not for the audio
//! thread (allocates).

use crate::config::StftConfig;
use crate::rt::stft::FrameAnalyzer;
use realfft::num_complex::Complex32;

/// Full frames a signal of `len` samples yields (frame `t` starts at `t · hop`).
pub fn frame_count(config: &StftConfig, len: usize) -> usize {
    if len < config.fft_size { 0 } else { (len - config.fft_size) / config.hop + 1 }
}

/// Magnitudes of one channel, frame-major `[frames][n_bins]` flattened; each frame is
/// exactly what the network is fed at run time for the same samples.
pub fn magnitudes(config: &StftConfig, signal: &[f32]) -> Vec<f32> {
    let mut analyzer = FrameAnalyzer::new(config);
    let bins = config.n_bins();
    let frames = frame_count(config, signal.len());
    let mut spectrum = vec![Complex32::new(0.0, 0.0); bins];
    let mut out = Vec::with_capacity(frames * bins);
    for t in 0..frames {
        analyzer.analyse(&signal[t * config.hop..t * config.hop + config.fft_size], &mut spectrum);
        out.extend(spectrum.iter().map(|c| c.norm()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rt::StreamingStft;

    #[test]
    fn offline_frames_equal_streaming_frames() {
        let config = StftConfig { fft_size: 1024, hop: 256, ..StftConfig::default() };
        let signal: Vec<f32> = (0..8192).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let offline = magnitudes(&config, &signal);
        assert_eq!(offline.len(), frame_count(&config, 8192) * 513);
        // The streaming STFT's frame k ends at sample (k + 1)·hop − 1: it equals offline
        // frame t = k + 1 − fft_size/hop once the buffer has filled.
        let mut stft = StreamingStft::new(&config, 1);
        let mut out = vec![0.0; 8192];
        let mut streamed = Vec::new();
        stft.process(&[&signal], &mut [&mut out], |s| streamed.push(s[0].iter().map(|c| c.norm()).collect::<Vec<_>>()));
        let lag = config.fft_size / config.hop - 1;
        for t in 0..frame_count(&config, 8192) {
            let (a, b) = (&offline[t * 513..(t + 1) * 513], &streamed[t + lag]);
            assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6), "frame {t}");
        }
        // A full-scale bin-centred sine reads 0.5.
        let f = 40.0 * 44_100.0 / 1024.0;
        let sine: Vec<f32> = (0..4096).map(|i| (std::f32::consts::TAU * f * i as f32 / 44_100.0).sin()).collect();
        assert!((magnitudes(&config, &sine)[40] - 0.5).abs() < 1e-3);
    }
}
