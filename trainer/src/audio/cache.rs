//! Decoded-audio cache: decode + resample once, then reread raw f32 from disk.
//!
//! Decoding Vorbis/AAC/MP3 and resampling costs far more than reading raw
//! samples, and a training run touches every file again each epoch and each
//! run. Entries are keyed by the source's content (xxh3 of its bytes), the
//! target rate and the stream selection, so an edited file is decoded afresh
//! and a copied or touched one is not. Entries are written to a temp file and
//! renamed into place, so a killed process never leaves a half-written entry.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::decode::decode_streams;
use super::resample::resample;
use super::{Audio, AudioError};

const MAGIC: &[u8; 8] = b"ISOLAC01";

/// The decoded-audio cache `isola train` uses unless told otherwise: `isola/audio` in the
/// user's cache folder (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on
/// macOS, `%LOCALAPPDATA%` on Windows); `None` where the system names none.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("isola").join("audio"))
}

/// Bytes and number of files in the cache folder `dir` (0 and 0 when it is missing).
pub fn usage(dir: &Path) -> (u64, usize) {
    let Ok(entries) = fs::read_dir(dir) else { return (0, 0) };
    entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(fs::Metadata::is_file)
        .fold((0, 0), |(bytes, n), m| (bytes + m.len(), n + 1))
}

/// One decoded stream plus what it looked like in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The audio at the loader's rate.
    pub audio: Audio,
    /// Sample rate in the file, before resampling.
    pub source_rate: u32,
    /// Frame count in the file, before resampling.
    pub source_frames: usize,
}

/// Decodes files, resampled to a target rate (or kept at their own rate),
/// optionally through an on-disk cache.
#[derive(Debug, Clone)]
pub struct AudioLoader {
    /// Output sample rate; `None` keeps each file's own rate.
    pub rate: Option<u32>,
    /// Cache folder; `None` decodes every time.
    pub cache_dir: Option<PathBuf>,
}

impl AudioLoader {
    pub fn new(rate: Option<u32>, cache_dir: Option<PathBuf>) -> Self {
        Self { rate, cache_dir }
    }

    /// The first audio stream of `path`, at the loader's rate.
    pub fn load(&self, path: &Path) -> Result<Decoded, AudioError> {
        Ok(self.load_streams(path, Some(1))?.remove(0))
    }

    /// All (or the first `limit`) audio streams of `path`, at the loader's rate.
    pub fn load_streams(&self, path: &Path, limit: Option<usize>) -> Result<Vec<Decoded>, AudioError> {
        let entry = match &self.cache_dir {
            Some(dir) => Some(dir.join(format!("{:016x}.f32", self.key(path, limit)?))),
            None => None,
        };
        if let Some(entry) = &entry
            && let Some(streams) = read_entry(entry)
        {
            return Ok(streams);
        }
        let streams = decode_streams(path, limit)?
            .into_iter()
            .map(|a| {
                let (source_rate, source_frames) = (a.sample_rate, a.frames());
                let audio = match self.rate {
                    Some(rate) => resample(&a, rate).map_err(|e| AudioError::new(path, e))?,
                    None => a,
                };
                Ok(Decoded { audio, source_rate, source_frames })
            })
            .collect::<Result<Vec<_>, AudioError>>()?;
        if let Some(entry) = &entry {
            // A cache that cannot be written only costs speed; say so once per file.
            if let Err(e) = write_entry(entry, &streams) {
                eprintln!("warning: cannot write audio cache {}: {e}", entry.display());
            }
        }
        Ok(streams)
    }

    /// Identity of `path` decoded by this loader (the file's content, its format, the rate and
    /// the streams): equal keys mean equal decoded audio. The content, not the path or the
    /// modification time: a copied, moved, re-linked or touched file keeps its entry (a data
    /// set copied afresh decodes nothing again), and an edited one gets a new entry.
    ///
    /// Errors: the file cannot be read (naming it).
    pub(crate) fn key(&self, path: &Path, limit: Option<usize>) -> Result<u64, AudioError> {
        let (len, content) = content_hash(path).map_err(|e| AudioError::new(path, format!("cannot read: {e}")))?;
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let mut id = format!("content-v2|{content:032x}|{len}|{ext}|{:?}|{:?}", self.rate, limit);
        // MP4/M4A entries cached before the decoder applied edit lists kept the encoder's
        // priming and padding: a new key makes them decode again.
        if matches!(ext.as_str(), "mp4" | "m4a" | "m4b" | "mov") {
            id.push_str("|mp4-edit-list");
        }
        Ok(fnv1a(id.as_bytes()))
    }
}

/// Length and 128-bit xxh3 hash of the file's bytes (stable across versions and machines).
fn content_hash(path: &Path) -> std::io::Result<(u64, u128)> {
    let mut file = fs::File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((len, hasher.digest128()))
}

/// 64-bit FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Layout: MAGIC, n_streams u32, then per stream: source rate u32, source
/// frames u64, rate u32, channels u32, frames u64, samples f32 (planar);
/// all little endian.
fn write_entry(entry: &Path, streams: &[Decoded]) -> std::io::Result<()> {
    let dir = entry.parent().expect("cache entries live in a folder");
    fs::create_dir_all(dir)?;
    // A process killed while writing this entry left its temp file (often hundreds of MB):
    // the entry is missing, so it is written again now, and the leftover goes.
    isola_engine::atomic_file::remove_stale_for(entry)?;
    let samples: usize = streams.iter().map(|d| d.audio.n_channels() * d.audio.frames()).sum();
    let mut w = Vec::with_capacity(12 + 28 * streams.len() + 4 * samples);
    w.extend_from_slice(MAGIC);
    w.extend_from_slice(&(streams.len() as u32).to_le_bytes());
    for d in streams {
        let a = &d.audio;
        w.extend_from_slice(&d.source_rate.to_le_bytes());
        w.extend_from_slice(&(d.source_frames as u64).to_le_bytes());
        w.extend_from_slice(&a.sample_rate.to_le_bytes());
        w.extend_from_slice(&(a.n_channels() as u32).to_le_bytes());
        w.extend_from_slice(&(a.frames() as u64).to_le_bytes());
        for x in a.channels.iter().flatten() {
            w.extend_from_slice(&x.to_le_bytes());
        }
    }
    Ok(isola_engine::atomic_file::write_bytes(entry, &w)?)
}

/// `None` for a missing or unreadable entry (it is then rebuilt).
fn read_entry(entry: &Path) -> Option<Vec<Decoded>> {
    let mut bytes = Vec::new();
    fs::File::open(entry).ok()?.read_to_end(&mut bytes).ok()?;
    let mut r = Reader { bytes: &bytes };
    if r.take(8)? != MAGIC {
        return None;
    }
    let n = r.u32()? as usize;
    // Counts come from the file: no preallocation from them.
    let mut streams = Vec::new();
    for _ in 0..n {
        let source_rate = r.u32()?;
        let source_frames = usize::try_from(r.u64()?).ok()?;
        let sample_rate = r.u32()?;
        let n_ch = r.u32()? as usize;
        let frames = usize::try_from(r.u64()?).ok()?;
        let mut channels = Vec::new();
        for _ in 0..n_ch {
            let raw = r.take(frames.checked_mul(4)?)?;
            channels.push(raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect());
        }
        streams.push(Decoded { audio: Audio { sample_rate, channels }, source_rate, source_frames });
    }
    r.bytes.is_empty().then_some(streams)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::wav::write_wav;

    #[test]
    fn cache_round_trips_and_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        let audio = Audio { sample_rate: 8000, channels: vec![vec![0.25; 800], vec![-0.5; 800]] };
        write_wav(&wav, &audio).unwrap();
        let loader = AudioLoader::new(Some(8000), Some(dir.path().join("cache")));
        let first = loader.load(&wav).unwrap();
        assert_eq!(first.audio, audio);
        let entries: Vec<_> = fs::read_dir(dir.path().join("cache")).unwrap().collect();
        assert_eq!(entries.len(), 1, "one cache entry, no temp files left");
        // Overwrite the entry with different samples of the same layout: a
        // second load must come from the cache, not from the WAV file.
        let entry = entries[0].as_ref().unwrap().path();
        let marked = Decoded {
            audio: Audio { sample_rate: 8000, channels: vec![vec![0.125; 800], vec![0.0; 800]] },
            source_rate: 8000,
            source_frames: 800,
        };
        write_entry(&entry, std::slice::from_ref(&marked)).unwrap();
        assert_eq!(loader.load(&wav).unwrap(), marked);

        // The key is the content: a copy elsewhere, with a new modification time, finds the
        // same entry (a data set copied or re-linked afresh decodes nothing again)...
        let copy = dir.path().join("elsewhere/b.wav");
        fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::copy(&wav, &copy).unwrap();
        assert_eq!(loader.load(&copy).unwrap(), marked);
        // ...and an edited file of the same length is decoded afresh.
        let edited = Audio { sample_rate: 8000, channels: vec![vec![0.25; 800], vec![-0.25; 800]] };
        write_wav(&copy, &edited).unwrap();
        assert_eq!(fs::metadata(&copy).unwrap().len(), fs::metadata(&wav).unwrap().len());
        assert_eq!(loader.load(&copy).unwrap().audio, edited);
        assert_eq!(fs::read_dir(dir.path().join("cache")).unwrap().count(), 2);
    }

    #[test]
    fn corrupt_cache_entry_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        let audio = Audio { sample_rate: 8000, channels: vec![vec![0.25; 100]] };
        write_wav(&wav, &audio).unwrap();
        let loader = AudioLoader::new(Some(16_000), Some(dir.path().join("cache")));
        let first = loader.load(&wav).unwrap();
        assert_eq!((first.source_rate, first.source_frames, first.audio.sample_rate), (8000, 100, 16_000));
        let entry = fs::read_dir(dir.path().join("cache")).unwrap().next().unwrap().unwrap().path();
        fs::write(&entry, b"ISOLAC01garbage").unwrap();
        assert_eq!(loader.load(&wav).unwrap(), first);

        // A kill while the entry was written: no entry, its temp file left (atomic_file's
        // name). Rebuilding the entry removes the leftover.
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        let stale = entry.with_file_name(format!(".{name}.Ab12Cd.isola-tmp"));
        fs::rename(&entry, &stale).unwrap();
        assert_eq!(loader.load(&wav).unwrap(), first);
        assert!(entry.is_file() && !stale.exists());
    }
}
