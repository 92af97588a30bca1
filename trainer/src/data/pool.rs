//! Training pools that do not live in RAM. Each data entry (a track with its summed stems, or
//! a loose file) is prepared once at the model rate and written to the decoded-audio cache as
//! one file of planar f32 samples, which every later run opens and reads chunk by chunk
//! ([`Clip::File`]): a pool of any size starts in the time it takes to open its files and
//! read their headers, and resident memory does not grow with it.
//!
//! File layout (little endian): `ISOLAP01`, source rate u32, clip count u32, then per clip:
//! rate u32, channels u32, frames u64 and the energy (sum of squares, f64) of each channel;
//! then each clip's samples, planar f32. Entries are keyed by the identity of every file they
//! read (see [`AudioLoader`]'s cache), so an edited file is prepared afresh; written to a
//! temporary file and renamed, so a killed run never leaves half an entry.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::discover::{Entry, Source};
use super::load::{DataErrors, LoadOptions, Loaded, LoadedData, TrackAudio, load_entry};
use crate::audio::cache::{AudioLoader, fnv1a};
use crate::audio::{Audio, AudioError, Clip, FileAudio};

const MAGIC: &[u8; 8] = b"ISOLAP01";

/// Training material: tracks and loose sources whose samples are [`Clip`]s.
pub type PoolData = LoadedData<Clip>;

/// Like [`super::load_entries`], but each entry's samples stay in its cache file (prepared
/// there first when missing); without a cache folder they are held in RAM. Peak memory
/// while preparing is one entry.
pub fn load_pool(
    entries: &[Entry],
    discovery_problems: Vec<AudioError>,
    loader: &AudioLoader,
    opts: LoadOptions,
) -> Result<PoolData, DataErrors> {
    LoadedData::collect(entries, discovery_problems, opts, |e| pooled_entry(e, loader))
}

fn pooled_entry(entry: &Entry, loader: &AudioLoader) -> Result<Loaded<Clip>, AudioError> {
    let Some(file) = pool_file(entry, loader)? else {
        return Ok(in_ram(load_entry(entry, loader)?));
    };
    if let Ok(p) = open_file(&file, entry) {
        return Ok(p);
    }
    // The pool file is this entry's cache: decoding without the per-file cache keeps the
    // audio on disk once, not twice.
    let loaded = load_entry(entry, &AudioLoader { cache_dir: None, ..loader.clone() })?;
    if let Err(e) = write_file(&file, &loaded) {
        // A cache that cannot be written costs memory, not correctness: keep this entry in RAM.
        eprintln!("warning: cannot write pool cache {}: {e}", file.display());
        return Ok(in_ram(loaded));
    }
    drop(loaded);
    open_file(&file, entry)
        .map_err(|e| AudioError::new(&file, format!("cannot open the pool cache entry just written: {e}")))
}

fn in_ram(loaded: Loaded) -> Loaded<Clip> {
    match loaded {
        Loaded::Track(t) => Loaded::Track(TrackAudio {
            name: t.name,
            split: t.split,
            vocals: Clip::Ram(t.vocals),
            accompaniment: Clip::Ram(t.accompaniment),
            source_rate: t.source_rate,
        }),
        Loaded::Loose { name, role, audio, source_rate } => {
            Loaded::Loose { name, role, audio: Clip::Ram(audio), source_rate }
        }
    }
}

/// The cache file of `entry`, `None` without a cache folder.
fn pool_file(entry: &Entry, loader: &AudioLoader) -> Result<Option<PathBuf>, AudioError> {
    let Some(dir) = &loader.cache_dir else { return Ok(None) };
    let mut id = String::from("pool-v1");
    let keys = match &entry.source {
        Source::Stems { vocals, accompaniment } => {
            id.push_str(&format!("|stems {}", vocals.len()));
            vocals.iter().chain(accompaniment).map(|p| loader.key(p, Some(1))).collect::<Result<Vec<_>, _>>()?
        }
        Source::StemMp4(p) => vec![loader.key(p, None)?],
        Source::Loose(_, p) => vec![loader.key(p, Some(1))?],
    };
    for k in keys {
        id.push_str(&format!("|{k:016x}"));
    }
    Ok(Some(dir.join(format!("{:016x}.pool", fnv1a(id.as_bytes())))))
}

/// Sum of squares of each channel, the per-channel statistic stored in the header.
pub fn channel_energy(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

fn write_file(path: &Path, loaded: &Loaded) -> Result<(), String> {
    let clips: Vec<&Audio> = match loaded {
        Loaded::Track(t) => vec![&t.vocals, &t.accompaniment],
        Loaded::Loose { audio, .. } => vec![audio],
    };
    let samples: usize = clips.iter().map(|a| a.n_channels() * a.frames()).sum();
    let mut bytes = Vec::with_capacity(16 + clips.len() * 32 + samples * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&loaded.source_rate().to_le_bytes());
    bytes.extend_from_slice(&(clips.len() as u32).to_le_bytes());
    for a in &clips {
        bytes.extend_from_slice(&a.sample_rate.to_le_bytes());
        bytes.extend_from_slice(&(a.n_channels() as u32).to_le_bytes());
        bytes.extend_from_slice(&(a.frames() as u64).to_le_bytes());
        for c in &a.channels {
            bytes.extend_from_slice(&channel_energy(c).to_le_bytes());
        }
    }
    for a in &clips {
        for x in a.channels.iter().flatten() {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // What a process killed while writing this entry left behind (see cache.rs).
        isola_engine::atomic_file::remove_stale_for(path).map_err(|e| e.to_string())?;
    }
    isola_engine::atomic_file::write_bytes(path, &bytes).map_err(|e| e.to_string())
}

/// Opens the prepared file of `entry` and checks its header; `Err` (then it is rebuilt) for
/// a missing, truncated or foreign file, or one whose clips do not fit the entry's kind.
fn open_file(path: &Path, entry: &Entry) -> Result<Loaded<Clip>, String> {
    use std::io::Read;
    let bad = |what: &str| format!("{}: {what}", path.display());
    let file = fs::File::open(path).map_err(|e| bad(&e.to_string()))?;
    let file_len = file.metadata().map_err(|e| bad(&e.to_string()))?.len();
    let mut r = std::io::BufReader::new(&file);
    let mut take = |n: usize| -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; n];
        r.read_exact(&mut b).map_err(|_| bad("truncated header"))?;
        Ok(b)
    };
    if take(8)? != MAGIC {
        return Err(bad("not a pool cache entry"));
    }
    let u32_of = |b: Vec<u8>| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    let u64_of = |b: Vec<u8>| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let source_rate = u32_of(take(4)?);
    let n_clips = u32_of(take(4)?) as usize;
    if !(1..=2).contains(&n_clips) {
        return Err(bad("wrong clip count"));
    }
    let mut heads = Vec::new();
    let mut at = 16u64;
    for _ in 0..n_clips {
        let rate = u32_of(take(4)?);
        let channels = u32_of(take(4)?) as usize;
        let frames = usize::try_from(u64_of(take(8)?)).map_err(|_| bad("frame count"))?;
        if !(1..=8).contains(&channels) {
            return Err(bad("wrong channel count"));
        }
        let energy =
            (0..channels).map(|_| take(8).map(|b| f64::from_bits(u64_of(b)))).collect::<Result<Vec<_>, _>>()?;
        at += 16 + 8 * channels as u64;
        heads.push((rate, channels, frames, energy));
    }
    let file = Arc::new(file);
    let mut clips = Vec::new();
    for (rate, channels, frames, energy) in heads {
        let f = FileAudio::new(path, Arc::clone(&file), file_len, rate, channels, frames, at, energy)?;
        at += (channels * frames * 4) as u64;
        clips.push(Clip::File(f));
    }
    if at != file_len {
        return Err(bad("trailing bytes"));
    }
    let mut clips = clips.into_iter();
    match (&entry.source, clips.next(), clips.next()) {
        (Source::Loose(role, _), Some(audio), None) => {
            Ok(Loaded::Loose { name: entry.name.clone(), role: *role, audio, source_rate })
        }
        (Source::Stems { .. } | Source::StemMp4(_), Some(vocals), Some(accompaniment)) => {
            Ok(Loaded::Track(TrackAudio {
                name: entry.name.clone(),
                split: entry.split.clone(),
                vocals,
                accompaniment,
                source_rate,
            }))
        }
        _ => Err(bad("clips do not fit the entry")),
    }
}
