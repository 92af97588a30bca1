//! WAV output with hound, always atomic ([`isola_engine::atomic_file`]): a file appears
//! complete or not at all, and a track's stems appear as a set or not at all.

use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use isola_engine::atomic_file::{self, StagedDir};

use super::{Audio, AudioError};

/// The stem files of a track folder, in the order [`write_track`] takes them: what
/// `isola separate` writes, what `isola data synth`/`remix` write, and what data discovery
/// reads as a track.
pub const TRACK_STEMS: [&str; 2] = ["vocals.wav", "accompaniment.wav"];

/// Writes `audio` to `w` as WAV with `bits` per sample: 32 = float, 16 = PCM (quantised as
/// [`Audio::quantized`] does).
fn encode<W: Write + Seek>(w: W, audio: &Audio, bits: u16) -> Result<(), String> {
    let spec = hound::WavSpec {
        channels: u16::try_from(audio.n_channels()).map_err(|e| e.to_string())?,
        sample_rate: audio.sample_rate,
        bits_per_sample: bits,
        sample_format: if bits == 32 { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut w = hound::WavWriter::new(w, spec).map_err(|e| e.to_string())?;
    if bits == 32 {
        for i in 0..audio.frames() {
            for ch in &audio.channels {
                w.write_sample(ch[i]).map_err(|e| e.to_string())?;
            }
        }
    } else {
        let (q, full) = (audio.quantized(u32::from(bits)), super::buffer::quantizer_full_scale(u32::from(bits)));
        for i in 0..q.frames() {
            for ch in &q.channels {
                w.write_sample((ch[i] * full).round() as i16).map_err(|e| e.to_string())?;
            }
        }
    }
    w.finalize().map_err(|e| e.to_string())
}

fn write_atomic(path: &Path, audio: &Audio, bits: u16) -> Result<(), AudioError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| AudioError::new(parent, format!("cannot create the folder: {e}")))?;
    }
    atomic_file::write_with(path, |w: &mut BufWriter<_>| encode(w, audio, bits).map_err(std::io::Error::other))
        .map_err(|e| AudioError::new(path, format!("cannot write WAV: {}: {}", e.stage, e.cause)))
}

/// Writes `audio` as a 32-bit float WAV file, atomically, creating parent folders.
///
/// Errors: [`AudioError`] naming `path` (a folder that cannot be created, a write that
/// fails, e.g. a full disk); an existing file at `path` is then unchanged.
pub fn write_wav(path: &Path, audio: &Audio) -> Result<(), AudioError> {
    write_atomic(path, audio, 32)
}

/// Writes 16-bit PCM, atomically (tests use it to produce the most common WAV flavour).
pub fn write_wav_i16(path: &Path, audio: &Audio) -> Result<(), AudioError> {
    write_atomic(path, audio, 16)
}

/// Writes a track folder `dir` holding [`TRACK_STEMS`] (32-bit float), as one set: the
/// stems are written into a hidden temp folder beside `dir` and moved into place together.
/// With `replace`, an existing `dir` is swapped for the new one atomically; without it an
/// existing `dir` is an error ("already exists"). Stale temporaries a killed earlier write
/// left for `dir` are removed first. Returns whether an existing `dir` was replaced.
///
/// Errors: [`AudioError`] naming `dir` or the stem that failed; `dir` is then as it was.
pub fn write_track(dir: &Path, vocals: &Audio, accompaniment: &Audio, replace: bool) -> Result<bool, AudioError> {
    let fail = |e: atomic_file::WriteError| match e.cause.kind() {
        std::io::ErrorKind::AlreadyExists => AudioError::new(dir, "already exists"),
        _ => AudioError::new(dir, format!("{}: {}", e.stage, e.cause)),
    };
    atomic_file::remove_stale_for(dir).map_err(|e| AudioError::new(dir, e.to_string()))?;
    let existed = std::fs::symlink_metadata(dir).is_ok();
    let staged = StagedDir::new(dir).map_err(fail)?;
    for (name, audio) in TRACK_STEMS.iter().zip([vocals, accompaniment]) {
        // Named by its final path: the temp folder is an implementation detail.
        write_wav(&staged.path().join(name), audio).map_err(|e| AudioError::new(dir.join(name), e.problem))?;
    }
    staged.commit(replace).map_err(fail)?;
    Ok(existed)
}
