//! WAV output with hound: 32-bit float, the rate and channel count of the
//! given audio.

use std::path::Path;

use super::{Audio, AudioError};

/// Writes `audio` as a 32-bit float WAV file, creating parent folders.
pub fn write_wav(path: &Path, audio: &Audio) -> Result<(), AudioError> {
    let err = |e: &dyn std::fmt::Display| AudioError::new(path, format!("cannot write WAV: {e}"));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| err(&e))?;
    }
    let spec = hound::WavSpec {
        channels: u16::try_from(audio.n_channels()).map_err(|e| err(&e))?,
        sample_rate: audio.sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| err(&e))?;
    for i in 0..audio.frames() {
        for ch in &audio.channels {
            w.write_sample(ch[i]).map_err(|e| err(&e))?;
        }
    }
    w.finalize().map_err(|e| err(&e))
}

/// Writes 16-bit PCM (used by tests to produce the most common WAV flavour).
pub fn write_wav_i16(path: &Path, audio: &Audio) -> Result<(), AudioError> {
    let err = |e: &dyn std::fmt::Display| AudioError::new(path, format!("cannot write WAV: {e}"));
    let spec = hound::WavSpec {
        channels: u16::try_from(audio.n_channels()).map_err(|e| err(&e))?,
        sample_rate: audio.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| err(&e))?;
    let (q, full) = (audio.quantized(16), super::buffer::quantizer_full_scale(16));
    for i in 0..q.frames() {
        for ch in &q.channels {
            w.write_sample((ch[i] * full).round() as i16).map_err(|e| err(&e))?;
        }
    }
    w.finalize().map_err(|e| err(&e))
}
