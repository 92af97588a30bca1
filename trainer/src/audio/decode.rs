//! Decoding any supported file (wav, flac, ogg/vorbis, mp3, m4a/aac, and
//! multi-stream MUSDB18 `.stem.mp4`) to planar f32 with symphonia.
//!
//! MP4/M4A (AAC, ALAC) honour the container's edit list (see [`super::mp4`]):
//! encoder priming and padding are cut, so an m4a decodes to exactly the
//! samples that were encoded.
//!
//! Decoding is strict: a packet that fails to decode is an error naming the
//! file, never silently dropped, so a corrupt file cannot shorten one stem
//! and misalign it against the others.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::well_known::FORMAT_ID_ISOMP4;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::mp4::{TrackTiming, apply_segments, read_track_timing};
use super::{Audio, AudioError};

/// File extensions the loaders treat as audio (lower case, without the dot).
pub const AUDIO_EXTENSIONS: &[&str] = &["wav", "wave", "flac", "ogg", "oga", "mp3", "m4a", "mp4", "aac"];

/// True when `path` has one of [`AUDIO_EXTENSIONS`].
pub fn is_audio_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Decodes the first audio stream of `path`.
pub fn decode_file(path: &Path) -> Result<Audio, AudioError> {
    let mut streams = decode_streams(path, Some(1))?;
    Ok(streams.remove(0))
}

/// Decodes every audio stream of `path` in container order (a MUSDB18
/// `.stem.mp4` holds mixture, drums, bass, other, vocals), or only the first
/// `limit` streams.
pub fn decode_streams(path: &Path, limit: Option<usize>) -> Result<Vec<Audio>, AudioError> {
    let err = |problem: String| AudioError::new(path, problem);
    let file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| err(format!("unrecognised or corrupt audio file: {e}")))?;

    let mut streams = open_streams(format.as_ref(), limit).map_err(err)?;
    if streams.is_empty() {
        return Err(err("no audio stream".into()));
    }
    let index: HashMap<u32, usize> = streams.iter().enumerate().map(|(i, s)| (s.track_id, i)).collect();
    // symphonia parses MP4 edit lists but does not apply them; read them here.
    let timing: HashMap<u32, TrackTiming> = if format.format_info().format == FORMAT_ID_ISOMP4 {
        read_track_timing(path).map_err(err)?
    } else {
        HashMap::new()
    };
    read_packets(format.as_mut(), &mut streams, &index).map_err(err)?;

    streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let mut audio = Audio { sample_rate: s.sample_rate, channels: s.channels };
            // A cut-off file can end "cleanly" at a packet boundary; the
            // header's frame count is what gives it away. A stream whose
            // timeline reaches that count is whole even when fewer frames
            // decode: Ogg files whose granule positions run a sample ahead of
            // their packets at a few pages (Debian's hedgewars and supertux
            // music) decode a few frames short of their last granule.
            if let Some(declared) =
                s.declared_frames.filter(|&d| (audio.frames() as u64) < d && s.timeline_end < d as i64)
            {
                return Err(err(format!(
                    "truncated or corrupt: stream {i} declares {declared} frames but only {} decode",
                    audio.frames()
                )));
            }
            if let Some(t) = timing.get(&s.track_id) {
                let segments = t.segments(s.sample_rate).map_err(|e| err(format!("stream {i}: {e}")))?;
                if let Some(segments) = segments {
                    audio.channels =
                        apply_segments(&audio.channels, &segments).map_err(|e| err(format!("stream {i}: {e}")))?;
                }
            }
            if audio.frames() == 0 {
                return Err(err(format!("audio stream {i} decoded to no samples (empty file?)")));
            }
            // NaN/Inf would poison every loss and metric they touch.
            if let Some((c, f)) = audio.first_non_finite() {
                return Err(err(format!("non-finite sample (NaN or Inf) in stream {i}, channel {c}, frame {f}")));
            }
            Ok(audio)
        })
        .collect()
}

/// One audio stream being decoded.
struct Stream {
    track_id: u32,
    sample_rate: u32,
    /// Frame count the container declares, when it declares one.
    declared_frames: Option<u64>,
    /// Where the stream's timeline ends: the latest decoded packet's
    /// timestamp plus its duration, in frames.
    timeline_end: i64,
    decoder: Box<dyn AudioDecoder>,
    /// `channels[c]` grows packet by packet; empty until the first packet.
    channels: Vec<Vec<f32>>,
}

fn open_streams(format: &dyn FormatReader, limit: Option<usize>) -> Result<Vec<Stream>, String> {
    let audio_tracks = format.tracks().iter().filter(|t| t.track_type() == Some(TrackType::Audio));
    let mut streams = Vec::new();
    for track in audio_tracks.take(limit.unwrap_or(usize::MAX)) {
        let params =
            track.codec_params.as_ref().and_then(|p| p.audio()).ok_or("audio track without codec parameters")?;
        let sample_rate = params.sample_rate.filter(|&r| r > 0).ok_or("audio stream without a sample rate")?;
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| format!("unsupported codec in stream {}: {e}", streams.len()))?;
        streams.push(Stream {
            track_id: track.id,
            sample_rate,
            declared_frames: track.num_frames,
            timeline_end: 0,
            decoder,
            channels: Vec::new(),
        });
    }
    Ok(streams)
}

fn read_packets(
    format: &mut dyn FormatReader,
    streams: &mut [Stream],
    index: &HashMap<u32, usize>,
) -> Result<(), String> {
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut n_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(format!("truncated file (unexpected end after {n_packets} packets)"));
            }
            Err(e) => return Err(format!("corrupt container after {n_packets} packets: {e}")),
        };
        n_packets += 1;
        let Some(&i) = index.get(&packet.track_id) else { continue };
        let stream = &mut streams[i];
        let buf = stream
            .decoder
            .decode(&packet)
            .map_err(|e| format!("corrupt data in stream {i}, packet {n_packets}: {e}"))?;
        let end = packet.pts.get().saturating_add(i64::try_from(packet.dur.get()).unwrap_or(i64::MAX));
        stream.timeline_end = stream.timeline_end.max(end);
        if buf.frames() == 0 {
            continue;
        }
        if buf.spec().rate() != stream.sample_rate {
            return Err(format!("sample rate changes mid-stream in stream {i}"));
        }
        buf.copy_to_vecs_planar::<f32>(&mut planes);
        if stream.channels.is_empty() {
            stream.channels = vec![Vec::new(); planes.len()];
        } else if stream.channels.len() != planes.len() {
            return Err(format!("channel count changes mid-stream in stream {i}"));
        }
        for (dst, src) in stream.channels.iter_mut().zip(&planes) {
            dst.extend_from_slice(src);
        }
    }
}
