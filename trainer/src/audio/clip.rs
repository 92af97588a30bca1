//! Training audio that need not live in RAM: a [`Clip`] is either an [`Audio`] buffer or a
//! region of planar little-endian f32 samples in a cache file, read chunk by chunk with
//! positioned reads. The sampler copies only the chunks it draws, so resident memory does not
//! grow with the pool; recently read data stays in the OS page cache, which is not the
//! process's and is dropped under memory pressure. (A memory map would count every page the
//! sampler ever touched as resident.)

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Audio;

/// Samples of one source: in RAM or in a cache file.
#[derive(Debug, Clone)]
pub enum Clip {
    Ram(Audio),
    File(FileAudio),
}

/// Planar f32 channels inside a cache file (shared, read-only).
#[derive(Debug, Clone)]
pub struct FileAudio {
    file: Arc<File>,
    path: Arc<PathBuf>,
    sample_rate: u32,
    n_channels: usize,
    frames: usize,
    /// Byte offset of channel 0; channel `c` follows at `offset + c · frames · 4`.
    offset: u64,
    /// Sum of squares of each channel, stored with the samples.
    energy: Vec<f64>,
}

impl FileAudio {
    /// A view of `n_channels × frames` planar f32 samples starting `offset` bytes into `file`
    /// (of `file_len` bytes, at `path`), with each channel's `energy` (sum of squares) as
    /// stored beside them. Errors, naming `path`, when the region lies outside the file or the
    /// energies do not match the channel count.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        path: &Path,
        file: Arc<File>,
        file_len: u64,
        sample_rate: u32,
        n_channels: usize,
        frames: usize,
        offset: u64,
        energy: Vec<f64>,
    ) -> Result<Self, String> {
        if energy.len() != n_channels {
            return Err(format!("{}: {} channel energies for {n_channels} channels", path.display(), energy.len()));
        }
        let bytes = (n_channels as u64).checked_mul(frames as u64).and_then(|n| n.checked_mul(4));
        if bytes.and_then(|b| b.checked_add(offset)).is_none_or(|e| e > file_len) {
            return Err(format!("{}: {n_channels} × {frames} samples at byte {offset} do not fit", path.display()));
        }
        let path = Arc::new(path.to_path_buf());
        Ok(Self { file, path, sample_rate, n_channels, frames, offset, energy })
    }

    /// Frames `start..start + n` of channel `c` (in range) into `out`.
    fn read(&self, c: usize, start: usize, out: &mut [f32]) {
        let mut bytes = vec![0u8; out.len() * 4];
        let at = self.offset + ((c * self.frames + start) as u64) * 4;
        if let Err(e) = read_exact_at(&self.file, &mut bytes, at) {
            // The cache file vanished or broke mid-run: nothing sensible to train on.
            panic!("cannot read training audio from {}: {e}", self.path.display());
        }
        for (x, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *x = f32::from_le_bytes(b.try_into().expect("4 bytes"));
        }
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// What the sampler reads from a source: its length and padded chunk copies, from RAM or a
/// file alike.
pub trait Chunks {
    fn sample_rate(&self) -> u32;
    fn frames(&self) -> usize;
    fn slice_padded(&self, start: usize, len: usize) -> Audio;
    /// All of it, as an [`Audio`] buffer.
    fn to_audio(&self) -> Audio {
        self.slice_padded(0, self.frames())
    }
}

impl Chunks for Audio {
    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }
    fn frames(&self) -> usize {
        Audio::frames(self)
    }
    fn slice_padded(&self, start: usize, len: usize) -> Audio {
        Audio::slice_padded(self, start, len)
    }
}

impl Chunks for Clip {
    fn sample_rate(&self) -> u32 {
        match self {
            Clip::Ram(a) => a.sample_rate,
            Clip::File(f) => f.sample_rate,
        }
    }

    fn frames(&self) -> usize {
        match self {
            Clip::Ram(a) => a.frames(),
            Clip::File(f) => f.frames,
        }
    }

    /// Copy of frames `start..start + len`, zero-padded past the end (see
    /// [`Audio::slice_padded`]). Panics, naming the file, if a cache file cannot be read.
    fn slice_padded(&self, start: usize, len: usize) -> Audio {
        match self {
            Clip::Ram(a) => a.slice_padded(start, len),
            Clip::File(f) => {
                let mut out = Audio::silence(f.sample_rate, f.n_channels, len);
                let n = f.frames.saturating_sub(start).min(len);
                if n > 0 {
                    for (c, ch) in out.channels.iter_mut().enumerate() {
                        f.read(c, start, &mut ch[..n]);
                    }
                }
                out
            }
        }
    }
}

impl From<Audio> for Clip {
    fn from(a: Audio) -> Self {
        Clip::Ram(a)
    }
}

impl Clip {
    pub fn n_channels(&self) -> usize {
        match self {
            Clip::Ram(a) => a.n_channels(),
            Clip::File(f) => f.n_channels,
        }
    }

    /// Sum of squares of channel `c` (stored for file clips, so reading it reads no samples).
    pub fn channel_energy(&self, c: usize) -> f64 {
        match self {
            Clip::Ram(a) => crate::data::pool::channel_energy(&a.channels[c]),
            Clip::File(f) => f.energy[c],
        }
    }

    /// The first `frames` frames (all of them when there are fewer); reads nothing.
    pub fn truncated(self, frames: usize) -> Clip {
        match self {
            Clip::Ram(a) => Clip::Ram(a.slice_padded(0, frames.min(a.frames()))),
            Clip::File(f) => Clip::File(FileAudio { frames: frames.min(f.frames), ..f }),
        }
    }
}
