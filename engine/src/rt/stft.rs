//! Streaming STFT with overlap-add resynthesis, for any block size.
//!
//! Input is collected hop by hop into a frame buffer; when a hop is complete the last
//! `fft_size` samples are windowed and transformed, the caller edits the spectra, and the
//! inverse transform is overlap-added. The synthesis window spans the newest
//! `synthesis_span` samples of a frame (all `fft_size` of them, or fewer with the
//! low-latency window pair), and the first `hop` of those are then final and go into an
//! output FIFO. Reading the FIFO one sample per input sample, after the frame that
//! completes on that sample, gives a latency of exactly `synthesis_span - 1`: the oldest
//! sample the synthesis window spans leaves at the moment the frame's newest sample
//! arrives ([`StftConfig::latency_samples`]).
//!
//! Spectra are normalised by the analysis window's sum, so a sinusoid's magnitude does not
//! depend on the FFT size (a full-scale sine reads about 0.5).

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::config::{StftConfig, overlap_add_sum};
use crate::rt::math::flush_tiny;

/// Windowed, normalised forward FFT of one frame: the single definition of what the network
/// sees, shared by the streaming STFT and offline feature extraction (training).
pub struct FrameAnalyzer {
    window: Vec<f32>,
    gain: f32,
    fft: Arc<dyn RealToComplex<f32>>,
    time: Vec<f32>,
    scratch: Vec<Complex32>,
}

impl FrameAnalyzer {
    /// Any thread but the audio thread (allocates).
    pub fn new(config: &StftConfig) -> Self {
        let (window, _) = config.windows();
        let gain = 1.0 / window.iter().sum::<f32>();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(config.fft_size);
        let scratch = vec![Complex32::new(0.0, 0.0); fft.get_scratch_len()];
        Self { time: vec![0.0; config.fft_size], window, gain, fft, scratch }
    }

    pub fn fft_size(&self) -> usize {
        self.window.len()
    }

    /// Spectrum of `frame` (`fft_size` samples) into `out` (`fft_size / 2 + 1` bins), scaled by
    /// 1/Σw. Audio thread or any other; no allocation.
    pub fn analyse(&mut self, frame: &[f32], out: &mut [Complex32]) {
        for ((t, x), w) in self.time.iter_mut().zip(frame).zip(&self.window) {
            *t = x * w;
        }
        // Lengths are fixed at construction, so this cannot fail; ignoring the Result keeps
        // the audio thread panic-free regardless.
        let _ = self.fft.process_with_scratch(&mut self.time, out, &mut self.scratch);
        for v in out.iter_mut() {
            *v = Complex32::new(flush_tiny(v.re * self.gain), flush_tiny(v.im * self.gain));
        }
    }
}

/// Inverse FFT of one spectrum times the synthesis window, scaled so that frames
/// overlap-added at the config's hop give back exactly what [`FrameAnalyzer`] analysed
/// (weighted overlap-add; Griffin & Lim 1984): the single definition of resynthesis, shared
/// by the streaming STFT and the training losses on waveforms.
pub struct FrameSynthesizer {
    /// [`synthesis_gain`].
    gain: Vec<f32>,
    ifft: Arc<dyn ComplexToReal<f32>>,
    /// Copy of the spectrum: the inverse FFT uses its input as scratch.
    spectrum: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

/// What [`FrameSynthesizer`] multiplies realfft's (unnormalised) inverse FFT by at each of
/// the `fft_size` in-frame positions: synthesis window / (overlap-add sum · FFT scale);
/// 0 outside the synthesis span. Any thread but the audio thread (allocates).
pub fn synthesis_gain(config: &StftConfig) -> Vec<f32> {
    let n = config.fft_size;
    let (analysis, synthesis) = config.windows();
    let analysis_sum: f32 = analysis.iter().sum();
    let ola = overlap_add_sum(config);
    // Forward scaled by 1/Σw; realfft's inverse is unnormalised (×n): undo both.
    (0..n).map(|i| synthesis[i] * analysis_sum / n as f32 / ola[i % config.hop]).collect()
}

impl FrameSynthesizer {
    /// Any thread but the audio thread (allocates).
    pub fn new(config: &StftConfig) -> Self {
        let n = config.fft_size;
        let ifft = RealFftPlanner::<f32>::new().plan_fft_inverse(n);
        Self {
            gain: synthesis_gain(config),
            spectrum: vec![Complex32::new(0.0, 0.0); n / 2 + 1],
            scratch: vec![Complex32::new(0.0, 0.0); ifft.get_scratch_len()],
            ifft,
        }
    }

    /// The windowed frame of `spectrum` (`fft_size / 2 + 1` bins; the imaginary parts of
    /// the DC and Nyquist bins are ignored, as a real signal has none) into `out`
    /// (`fft_size` samples), ready to overlap-add. Audio thread or any other; no allocation.
    pub fn synthesise(&mut self, spectrum: &[Complex32], out: &mut [f32]) {
        let n = self.gain.len();
        self.spectrum.copy_from_slice(spectrum);
        self.spectrum[0].im = 0.0;
        self.spectrum[n / 2].im = 0.0;
        // Lengths are fixed at construction, so this cannot fail (see `analyse`).
        let _ = self.ifft.process_with_scratch(&mut self.spectrum, out, &mut self.scratch);
        for (o, g) in out.iter_mut().zip(&self.gain) {
            *o *= g;
        }
    }
}

/// Multichannel streaming STFT. Built off the audio thread; `process`/`reset` run on it.
pub struct StreamingStft {
    fft_size: usize,
    hop: usize,
    /// [`StftConfig::synthesis_span`]: the accumulators' length.
    span: usize,
    channels: usize,
    analyzer: FrameAnalyzer,
    synthesizer: FrameSynthesizer,
    /// Per channel: the last `fft_size` input samples (newest at the end).
    frames: Vec<Vec<f32>>,
    /// Per channel: overlap-add accumulator of length `span` (the frames' newest samples;
    /// the synthesis window is zero before them).
    accumulators: Vec<Vec<f32>>,
    /// Per channel: ring of finished output samples, capacity `2 * hop`.
    fifos: Vec<Vec<f32>>,
    fifo_read: usize,
    fifo_len: usize,
    /// Samples of the current hop collected so far.
    fill: usize,
    spectra: Vec<Vec<Complex32>>,
    time_scratch: Vec<f32>,
}

impl StreamingStft {
    /// `config` must be valid (see [`StftConfig::validate`]). Any thread but the audio
    /// thread: every buffer is sized here so that `process` never allocates.
    pub fn new(config: &StftConfig, channels: usize) -> Self {
        let (n, hop, span) = (config.fft_size, config.hop, config.synthesis_span());
        let mut stft = Self {
            fft_size: n,
            hop,
            span,
            channels,
            analyzer: FrameAnalyzer::new(config),
            synthesizer: FrameSynthesizer::new(config),
            frames: vec![vec![0.0; n]; channels],
            accumulators: vec![vec![0.0; span]; channels],
            fifos: vec![vec![0.0; 2 * hop]; channels],
            fifo_read: 0,
            fifo_len: 0,
            fill: 0,
            spectra: vec![vec![Complex32::new(0.0, 0.0); n / 2 + 1]; channels],
            time_scratch: vec![0.0; n],
        };
        stft.reset();
        stft
    }

    /// Exact input→output delay of the resynthesis, in samples
    /// ([`StftConfig::latency_samples`]). Any thread.
    pub fn latency_samples(&self) -> usize {
        self.span - 1
    }

    pub fn fft_size(&self) -> usize {
        self.fft_size
    }

    pub fn hop(&self) -> usize {
        self.hop
    }

    pub fn n_bins(&self) -> usize {
        self.fft_size / 2 + 1
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Samples still needed before the next frame is analysed.
    pub fn samples_to_next_frame(&self) -> usize {
        self.hop - self.fill
    }

    /// Back to silence: no input history, nothing pending. Audio thread; no allocation.
    pub fn reset(&mut self) {
        for c in 0..self.channels {
            self.frames[c].fill(0.0);
            self.accumulators[c].fill(0.0);
            self.fifos[c].fill(0.0);
        }
        self.fill = 0;
        self.fifo_read = 0;
        // Zeros standing in for output before the first frame: see the module docs.
        self.fifo_len = self.hop - 1;
    }

    /// Streams `input` (one slice per channel, equal lengths) into `output` (same shape),
    /// calling `on_frame` with every channel's spectrum (`n_bins` each) once per hop; what
    /// it leaves in the spectra is resynthesised. Any length, any sequence of lengths.
    /// Audio thread; no allocation.
    pub fn process<F>(&mut self, input: &[&[f32]], output: &mut [&mut [f32]], mut on_frame: F)
    where
        F: FnMut(&mut [Vec<Complex32>]),
    {
        let len = input.first().map_or(0, |c| c.len());
        let mut done = 0;
        while done < len {
            let m = (len - done).min(self.hop - self.fill);
            #[allow(clippy::needless_range_loop)] // `c` indexes both the frames and the input
            for c in 0..self.channels {
                let at = self.fft_size - self.hop + self.fill;
                self.frames[c][at..at + m].copy_from_slice(&input[c][done..done + m]);
            }
            self.fill += m;
            if self.fill == self.hop {
                self.analyse();
                on_frame(&mut self.spectra);
                self.synthesise();
                self.fill = 0;
            }
            self.pop(output, done, m);
            done += m;
        }
    }

    fn analyse(&mut self) {
        for c in 0..self.channels {
            self.analyzer.analyse(&self.frames[c], &mut self.spectra[c]);
            self.frames[c].copy_within(self.hop.., 0);
        }
    }

    fn synthesise(&mut self) {
        let (n, hop, span) = (self.fft_size, self.hop, self.span);
        let write = (self.fifo_read + self.fifo_len) % (2 * hop);
        for c in 0..self.channels {
            self.synthesizer.synthesise(&self.spectra[c], &mut self.time_scratch);
            let acc = &mut self.accumulators[c];
            for (a, t) in acc.iter_mut().zip(&self.time_scratch[n - span..]) {
                *a += t;
            }
            let fifo = &mut self.fifos[c];
            for (i, &v) in acc[..hop].iter().enumerate() {
                fifo[(write + i) % (2 * hop)] = v;
            }
            acc.copy_within(hop.., 0);
            acc[span - hop..].fill(0.0);
        }
        self.fifo_len += hop;
    }

    fn pop(&mut self, output: &mut [&mut [f32]], at: usize, m: usize) {
        let cap = 2 * self.hop;
        for (fifo, out) in self.fifos.iter().zip(output.iter_mut()).take(self.channels) {
            for (i, o) in out[at..at + m].iter_mut().enumerate() {
                *o = fifo[(self.fifo_read + i) % cap];
            }
        }
        self.fifo_read = (self.fifo_read + m) % cap;
        self.fifo_len -= m;
    }
}
