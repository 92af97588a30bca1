//! Decoding discovered entries into vocals/accompaniment pairs and loose
//! sources, with the validation that makes bad input an error naming the
//! file: unreadable or corrupt files, NaN samples (both from the decoder),
//! and stems whose rate or length disagree.

use std::fmt;

use super::discover::{Entry, LooseRole, Source};
use crate::audio::cache::{AudioLoader, Decoded};
use crate::audio::{Audio, AudioError};
use crate::progress::{Progress, Style};

/// MUSDB18 `.stem.mp4` stream order: mixture, drums, bass, other, vocals.
const MP4_VOCALS: usize = 4;
const MP4_ACCOMPANIMENT: std::ops::Range<usize> = 1..4;

#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Skip bad entries (listing them in [`LoadedData::skipped`]) instead of
    /// failing.
    pub skip_bad: bool,
    /// How progress through the entries is shown (decoding a data set the first time
    /// takes minutes).
    pub progress: Style,
}

/// A track with aligned stems: same rate, channels and length; the mixture
/// is `vocals + accompaniment`. `S` holds the samples: [`Audio`] in RAM, or a
/// [`crate::audio::Clip`] for training pools (see [`super::pool`]).
#[derive(Debug, Clone)]
pub struct TrackAudio<S = Audio> {
    pub name: String,
    pub split: Option<String>,
    pub vocals: S,
    pub accompaniment: S,
    /// Rate of the files before resampling.
    pub source_rate: u32,
}

impl TrackAudio {
    pub fn mixture(&self) -> Audio {
        let mut m = self.vocals.clone();
        m.add_assign(&self.accompaniment);
        m
    }
}

/// One loaded entry; `S` holds the samples as in [`TrackAudio`].
#[derive(Debug, Clone)]
pub enum Loaded<S = Audio> {
    Track(TrackAudio<S>),
    Loose { name: String, role: LooseRole, audio: S, source_rate: u32 },
}

impl<S> Loaded<S> {
    pub fn source_rate(&self) -> u32 {
        match self {
            Loaded::Track(t) => t.source_rate,
            Loaded::Loose { source_rate, .. } => *source_rate,
        }
    }
}

impl Loaded {
    /// (channels, frames, seconds) of the loaded audio.
    pub fn shape(&self) -> (usize, usize, f64) {
        let a = match self {
            Loaded::Track(t) => &t.vocals,
            Loaded::Loose { audio, .. } => audio,
        };
        (a.n_channels(), a.frames(), a.duration_secs())
    }
}

/// Everything loaded from the `--data` arguments; `S` holds the samples as in
/// [`TrackAudio`].
#[derive(Debug)]
pub struct LoadedData<S = Audio> {
    pub tracks: Vec<TrackAudio<S>>,
    pub vocals: Vec<LooseAudio<S>>,
    pub instrumentals: Vec<LooseAudio<S>>,
    /// Problems skipped under `--skip-bad` (empty otherwise).
    pub skipped: Vec<AudioError>,
}

impl<S> Default for LoadedData<S> {
    fn default() -> Self {
        Self { tracks: Vec::new(), vocals: Vec::new(), instrumentals: Vec::new(), skipped: Vec::new() }
    }
}

impl<S> LoadedData<S> {
    /// Loads every entry with `load`. Discovery problems and load failures are collected;
    /// without `skip_bad` any problem fails the whole load (listing all of them), with it
    /// they are returned in `skipped`.
    pub(crate) fn collect(
        entries: &[Entry],
        discovery_problems: Vec<AudioError>,
        opts: LoadOptions,
        mut load: impl FnMut(&Entry) -> Result<Loaded<S>, AudioError>,
    ) -> Result<Self, DataErrors> {
        let mut data = Self::default();
        let mut problems = discovery_problems;
        let progress = Progress::new(
            opts.progress,
            "preparing data: entry",
            entries.len() as u64,
            "preparing data [{bar:30}] {pos}/{len} {wide_msg} ETA {eta}",
        );
        for entry in entries {
            progress.set_message(entry.name.clone());
            let loaded = load(entry);
            progress.inc(1);
            match loaded {
                Ok(Loaded::Track(t)) => data.tracks.push(t),
                Ok(Loaded::Loose { name, role, audio, source_rate }) => {
                    let loose = LooseAudio { name, audio, source_rate };
                    match role {
                        LooseRole::Vocals => data.vocals.push(loose),
                        LooseRole::Instrumental => data.instrumentals.push(loose),
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        progress.finish();
        if problems.is_empty() {
            return Ok(data);
        }
        if !opts.skip_bad {
            return Err(DataErrors(problems));
        }
        data.skipped = problems;
        Ok(data)
    }
}

/// A loose vocal or instrumental file, at the model rate.
#[derive(Debug, Clone)]
pub struct LooseAudio<S = Audio> {
    pub name: String,
    pub audio: S,
    /// Rate of the file before resampling (its bandwidth is at most half of it).
    pub source_rate: u32,
}

/// Every problem found, one per line; the error of a failed load.
#[derive(Debug)]
pub struct DataErrors(pub Vec<AudioError>);

impl fmt::Display for DataErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the data:", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DataErrors {}

/// Loads and validates one entry.
pub fn load_entry(entry: &Entry, loader: &AudioLoader) -> Result<Loaded, AudioError> {
    match &entry.source {
        Source::Loose(role, path) => {
            let d = loader.load(path)?;
            Ok(Loaded::Loose { name: entry.name.clone(), role: *role, audio: d.audio, source_rate: d.source_rate })
        }
        Source::Stems { vocals, accompaniment } => {
            let mut stems = Vec::new();
            for path in vocals.iter().chain(accompaniment) {
                stems.push((path.display().to_string(), loader.load(path)?));
            }
            let dir = vocals[0].parent().unwrap_or(&vocals[0]).to_path_buf();
            aligned_track(entry, &dir, stems, vocals.len())
        }
        Source::StemMp4(path) => {
            let streams = loader.load_streams(path, None)?;
            if streams.len() <= MP4_VOCALS {
                let problem = format!("{} audio streams, a MUSDB18 .stem.mp4 has 5", streams.len());
                return Err(AudioError::new(path, problem));
            }
            let mut stems = vec![(format!("stream {MP4_VOCALS} (vocals)"), streams[MP4_VOCALS].clone())];
            for i in MP4_ACCOMPANIMENT {
                stems.push((format!("stream {i}"), streams[i].clone()));
            }
            aligned_track(entry, path, stems, 1)
        }
    }
}

/// Checks that stems agree in rate and length, then sums the first
/// `n_vocals` as vocals and the rest as accompaniment. Stems with fewer
/// channels (a mono bass stem) are upmixed to the widest.
fn aligned_track(
    entry: &Entry,
    location: &std::path::Path,
    stems: Vec<(String, Decoded)>,
    n_vocals: usize,
) -> Result<Loaded, AudioError> {
    let (first_name, first) = &stems[0];
    for (name, s) in &stems[1..] {
        if s.source_rate != first.source_rate {
            let problem = format!(
                "stems have different sample rates: {first_name} {} Hz, {name} {} Hz",
                first.source_rate, s.source_rate
            );
            return Err(AudioError::new(location, problem));
        }
        if s.source_frames != first.source_frames {
            let problem = format!(
                "stems have different lengths: {first_name} {} samples, {name} {} samples",
                first.source_frames, s.source_frames
            );
            return Err(AudioError::new(location, problem));
        }
    }
    let n_ch = stems.iter().map(|(_, s)| s.audio.n_channels()).max().unwrap_or(1);
    let sum = |part: &[(String, Decoded)]| {
        let mut acc = part[0].1.audio.with_channels(n_ch);
        for (_, s) in &part[1..] {
            acc.add_assign(&s.audio.with_channels(n_ch));
        }
        acc
    };
    Ok(Loaded::Track(TrackAudio {
        name: entry.name.clone(),
        split: entry.split.clone(),
        vocals: sum(&stems[..n_vocals]),
        accompaniment: sum(&stems[n_vocals..]),
        source_rate: first.source_rate,
    }))
}

/// Loads every entry into RAM (see [`LoadedData::collect`] for problems).
pub fn load_entries(
    entries: &[Entry],
    discovery_problems: Vec<AudioError>,
    loader: &AudioLoader,
    opts: LoadOptions,
) -> Result<LoadedData, DataErrors> {
    LoadedData::collect(entries, discovery_problems, opts, |e| load_entry(e, loader))
}
