//! Offline STFT for training and evaluation: the same frame analysis ([`FrameAnalyzer`])
//! and resynthesis ([`FrameSynthesizer`]) the streaming STFT performs, over a whole signal.
//! Not for the audio thread (allocates).

use std::ops::Range;
use std::sync::Arc;

use crate::config::StftConfig;
use crate::rt::stft::{FrameAnalyzer, FrameSynthesizer, synthesis_gain};
use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};

/// Full frames a signal of `len` samples yields (frame `t` starts at `t · hop`).
pub fn frame_count(config: &StftConfig, len: usize) -> usize {
    if len < config.fft_size { 0 } else { (len - config.fft_size) / config.hop + 1 }
}

/// Spectra of one channel, frame-major `[frames][n_bins]` flattened; each frame is exactly
/// what the streaming STFT analyses for the same samples.
pub fn spectra(config: &StftConfig, signal: &[f32]) -> Vec<Complex32> {
    let mut analyzer = FrameAnalyzer::new(config);
    let bins = config.n_bins();
    let frames = frame_count(config, signal.len());
    let mut out = vec![Complex32::new(0.0, 0.0); frames * bins];
    for (t, spectrum) in out.chunks_exact_mut(bins).enumerate() {
        analyzer.analyse(&signal[t * config.hop..t * config.hop + config.fft_size], spectrum);
    }
    out
}

/// Magnitudes of one channel, frame-major `[frames][n_bins]` flattened; each frame is
/// exactly what the network is fed at run time for the same samples.
pub fn magnitudes(config: &StftConfig, signal: &[f32]) -> Vec<f32> {
    spectra(config, signal).iter().map(|&c| crate::features::magnitude(c)).collect()
}

/// Overlap-add resynthesis of frame-major spectra `[frames][n_bins]` (frame `t` starting at
/// sample `t · hop`, as [`spectra`] gives them): `(frames − 1) · hop + fft_size` samples,
/// of which [`complete_samples`] have every frame that covers them. The resynthesis of
/// [`spectra`] equals the signal there.
pub fn overlap_add(config: &StftConfig, spectra: &[Complex32]) -> Vec<f32> {
    let (n, hop, bins) = (config.fft_size, config.hop, config.n_bins());
    let frames = spectra.len() / bins;
    let mut synthesizer = FrameSynthesizer::new(config);
    let mut out = vec![0.0f32; if frames == 0 { 0 } else { (frames - 1) * hop + n }];
    let mut frame = vec![0.0f32; n];
    for (t, spectrum) in spectra.chunks_exact(bins).enumerate() {
        synthesizer.synthesise(spectrum, &mut frame);
        for (o, x) in out[t * hop..t * hop + n].iter_mut().zip(&frame) {
            *o += x;
        }
    }
    out
}

/// The samples of an [`overlap_add`] of `frames` frames that every covering frame reaches:
/// `fft_size − hop .. frames · hop` (empty for fewer than `fft_size / hop` frames).
pub fn complete_samples(config: &StftConfig, frames: usize) -> Range<usize> {
    let start = config.fft_size - config.hop;
    start..(frames * config.hop).max(start)
}

/// The transpose of [`FrameSynthesizer::synthesise`], for gradients of losses on
/// resynthesised waveforms (training).
pub struct SynthesisAdjoint {
    gain: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    time: Vec<f32>,
    scratch: Vec<Complex32>,
}

impl SynthesisAdjoint {
    pub fn new(config: &StftConfig) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(config.fft_size);
        Self {
            gain: synthesis_gain(config),
            time: vec![0.0; config.fft_size],
            scratch: vec![Complex32::new(0.0, 0.0); fft.get_scratch_len()],
            fft,
        }
    }

    /// Given `grad`, the gradient of a loss with respect to the `fft_size` samples
    /// [`FrameSynthesizer::synthesise`] outputs, writes to `out` (`n_bins`) the gradient with
    /// respect to each bin's real part (in `re`) and imaginary part (in `im`; 0 at DC and
    /// Nyquist, which synthesis ignores).
    pub fn apply(&mut self, grad: &[f32], out: &mut [Complex32]) {
        let n = self.time.len();
        for ((t, g), w) in self.time.iter_mut().zip(grad).zip(&self.gain) {
            *t = g * w;
        }
        // y[i] = Σ_k c_k (Re Y_k cos θ − Im Y_k sin θ), θ = 2πki/n, c_k = 1 at DC and
        // Nyquist, else 2; the forward FFT of u gives Σ u cos θ − i Σ u sin θ.
        let _ = self.fft.process_with_scratch(&mut self.time, out, &mut self.scratch);
        for v in &mut out[1..n / 2] {
            *v *= 2.0;
        }
        out[0].im = 0.0;
        out[n / 2].im = 0.0;
    }
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
        stft.process(&[&signal], &mut [&mut out], |s| {
            streamed.push(s[0].iter().map(|&c| crate::features::magnitude(c)).collect::<Vec<_>>())
        });
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

    #[test]
    fn overlap_add_inverts_spectra_on_the_complete_samples() {
        for config in [StftConfig::default(), StftConfig { fft_size: 1024, hop: 512, ..StftConfig::default() }] {
            let signal: Vec<f32> = (0..20_000).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
            let frames = frame_count(&config, signal.len());
            let back = overlap_add(&config, &spectra(&config, &signal));
            assert_eq!(back.len(), (frames - 1) * config.hop + config.fft_size);
            let range = complete_samples(&config, frames);
            assert_eq!(range.start, config.fft_size - config.hop);
            let err = range.clone().map(|i| (back[i] - signal[i]).abs()).fold(0.0, f32::max);
            assert!(err < 1e-5, "{config:?}: max error {err}");
            // Before, frames are missing.
            let before = (0..range.start).map(|i| (back[i] - signal[i]).abs()).fold(0.0, f32::max);
            assert!(before > 1e-2, "{config:?}: {before}");
        }
    }

    /// `SynthesisAdjoint` is the transpose of `synthesise`: ⟨synthesise(Y), u⟩ = ⟨Y, adjoint(u)⟩
    /// with Y and its gradient as real pairs (the imaginary DC and Nyquist parts unused).
    #[test]
    fn the_synthesis_adjoint_is_its_transpose() {
        let config = StftConfig::default();
        let (n, bins) = (config.fft_size, config.n_bins());
        let mut synth = FrameSynthesizer::new(&config);
        let y: Vec<Complex32> = (0..bins)
            .map(|k| Complex32::new(((k * 37) % 101) as f32 / 50.0 - 1.0, ((k * 61) % 97) as f32 / 48.0 - 1.0))
            .collect();
        let u: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let mut frame = vec![0.0; n];
        synth.synthesise(&y, &mut frame);
        let lhs: f64 = frame.iter().zip(&u).map(|(a, b)| f64::from(a * b)).sum();
        let mut g = vec![Complex32::new(0.0, 0.0); bins];
        SynthesisAdjoint::new(&config).apply(&u, &mut g);
        let rhs: f64 = y.iter().zip(&g).map(|(a, b)| f64::from(a.re * b.re + a.im * b.im)).sum();
        assert!((lhs - rhs).abs() <= 1e-4 * lhs.abs().max(1e-3), "{lhs} vs {rhs}");
        assert_eq!((g[0].im, g[n / 2].im), (0.0, 0.0));
    }
}
