//! Gapless MP4/M4A: the edit list (`moov/trak/edts/elst`) that says which
//! decoded samples are playable.
//!
//! An AAC encoder adds priming samples in front of the signal (1024 for
//! FFmpeg, 2112 for Apple) and pads the last packet; the container's edit
//! list skips the priming and cuts the padding. symphonia's isomp4 demuxer
//! (0.6) parses `elst` but does not apply it, so without this every m4a and
//! every MUSDB18 `.stem.mp4` would decode ~23 ms late and too long (the
//! MUSDB18 stems would stay aligned with each other, but not with anything
//! decoded elsewhere, e.g. a `.wav` of the same song).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// `moov` larger than this is not read (a `moov` is a few KB per minute of audio).
const MAX_MOOV_BYTES: u64 = 256 << 20;

/// One `elst` entry, in the file's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit {
    /// In movie (`mvhd`) timescale units; 0 in a normal edit means "to the end".
    pub segment_duration: u64,
    /// In media (`mdhd`) timescale units; -1 is an empty edit (silence).
    pub media_time: i64,
    /// Playback rate as 16.16 fixed point (`0x1_0000` = normal speed).
    pub media_rate: i32,
}

/// What the container says about one track's timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackTiming {
    pub movie_timescale: u32,
    pub media_timescale: u32,
    /// `mdhd` duration in media units (priming included).
    pub media_duration: u64,
    /// Empty when the track has no edit list.
    pub edits: Vec<Edit>,
}

/// A part of the presented signal: decoded frames `start..end`, or silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Frames { start: usize, end: usize },
    Silence(usize),
}

/// Timing of every track in the MP4 file at `path`, by track id (`tkhd`; the
/// id symphonia gives the track). Every top-level box is checked to lie
/// within the file, so a cut-off download is reported as truncated.
pub fn read_track_timing(path: &Path) -> Result<HashMap<u32, TrackTiming>, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file.metadata().map_err(|e| format!("cannot stat: {e}"))?.len();
    let mut pos = 0u64;
    let mut moov = None;
    while pos < len {
        file.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
        let mut head = [0u8; 16];
        let n = read_up_to(&mut file, &mut head).map_err(|e| e.to_string())?;
        if n < 8 {
            return Err(format!("truncated or corrupt: {n} stray bytes at the end of the file"));
        }
        let kind = String::from_utf8_lossy(&head[4..8]).into_owned();
        let (size, header) = match be32(&head[0..4]) {
            0 => (len - pos, 8),
            1 if n == 16 => (be64(&head[8..16]), 16),
            s => (u64::from(s), 8),
        };
        if size < header {
            return Err(format!("corrupt: box {kind:?} at byte {pos} has an invalid size ({size})"));
        }
        if size > len - pos {
            return Err(format!(
                "truncated or corrupt: box {kind:?} at byte {pos} holds {size} bytes but the file ends {} bytes later",
                len - pos
            ));
        }
        if kind == "moov" {
            moov = Some((pos + header, size - header));
        }
        pos += size;
    }
    let (start, size) = moov.ok_or("no moov box")?;
    if size > MAX_MOOV_BYTES {
        return Err(format!("moov box of {size} bytes is implausibly large"));
    }
    let mut body = vec![0u8; size as usize];
    file.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    file.read_exact(&mut body).map_err(|e| format!("cannot read the moov box: {e}"))?;
    parse_moov(&body).map_err(|e| format!("corrupt MP4 header: {e}"))
}

impl TrackTiming {
    /// The presented signal as segments of the decoded frames (at
    /// `sample_rate`), or `None` when there is no edit list (keep everything).
    pub fn segments(&self, sample_rate: u32) -> Result<Option<Vec<Segment>>, String> {
        if self.edits.is_empty() {
            return Ok(None);
        }
        if self.movie_timescale == 0 || self.media_timescale == 0 {
            return Err("edit list with a zero timescale".into());
        }
        let (movie, media) = (u128::from(self.movie_timescale), u128::from(self.media_timescale));
        // Movie units (often 1/1000 s) are coarser than samples: an edit that ends
        // within one movie unit of the end of the media ends exactly there.
        let slack = media.div_ceil(movie) as u64;
        let to_frames =
            |media_units: u64| -> usize { (u128::from(media_units) * u128::from(sample_rate) / media) as usize };
        let mut out = Vec::new();
        for e in &self.edits {
            let duration = ((u128::from(e.segment_duration) * media + movie / 2) / movie) as u64;
            if e.media_time == -1 {
                out.push(Segment::Silence(to_frames(duration)));
                continue;
            }
            if e.media_rate != 0x1_0000 {
                return Err(format!("unsupported edit list (playback rate {:#x})", e.media_rate));
            }
            let start = u64::try_from(e.media_time).map_err(|_| format!("invalid edit media time {}", e.media_time))?;
            let mut end = if e.segment_duration == 0 { self.media_duration } else { start + duration };
            if self.media_duration > start && end.abs_diff(self.media_duration) <= slack {
                end = self.media_duration;
            }
            out.push(Segment::Frames { start: to_frames(start), end: to_frames(end) });
        }
        Ok(Some(out))
    }
}

/// Applies `segments` to planar audio; errors when they reach past the decoded frames.
pub fn apply_segments(channels: &[Vec<f32>], segments: &[Segment]) -> Result<Vec<Vec<f32>>, String> {
    let decoded = channels.first().map_or(0, Vec::len);
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); channels.len()];
    for seg in segments {
        match *seg {
            Segment::Silence(n) => out.iter_mut().for_each(|c| c.resize(c.len() + n, 0.0)),
            Segment::Frames { start, end } => {
                if start > end || end > decoded {
                    return Err(format!(
                        "truncated or corrupt: the edit list plays frames {start}..{end} but only {decoded} decode"
                    ));
                }
                for (o, c) in out.iter_mut().zip(channels) {
                    o.extend_from_slice(&c[start..end]);
                }
            }
        }
    }
    Ok(out)
}

fn parse_moov(moov: &[u8]) -> Result<HashMap<u32, TrackTiming>, String> {
    let mut movie_timescale = None;
    let mut tracks = Vec::new();
    for (kind, body) in boxes(moov)? {
        match kind {
            b"mvhd" => movie_timescale = Some(timescale_and_duration(body, "mvhd")?.0),
            b"trak" => tracks.push(body),
            _ => {}
        }
    }
    let movie_timescale = movie_timescale.ok_or("moov without mvhd")?;
    let mut out = HashMap::new();
    for trak in tracks {
        let (mut id, mut media, mut edits) = (None, None, Vec::new());
        for (kind, body) in boxes(trak)? {
            match kind {
                b"tkhd" => {
                    let at = if full_box_version(body, "tkhd")? == 1 { 20 } else { 12 };
                    id = Some(be32(field(body, at, 4, "tkhd")?));
                }
                b"edts" => {
                    for (kind, body) in boxes(body)? {
                        if kind == b"elst" {
                            edits = parse_elst(body)?;
                        }
                    }
                }
                b"mdia" => {
                    for (kind, body) in boxes(body)? {
                        if kind == b"mdhd" {
                            media = Some(timescale_and_duration(body, "mdhd")?);
                        }
                    }
                }
                _ => {}
            }
        }
        let (Some(id), Some((media_timescale, media_duration))) = (id, media) else {
            return Err("trak without tkhd or mdhd".into());
        };
        out.insert(id, TrackTiming { movie_timescale, media_timescale, media_duration, edits });
    }
    Ok(out)
}

fn parse_elst(body: &[u8]) -> Result<Vec<Edit>, String> {
    let v1 = full_box_version(body, "elst")? == 1;
    let count = be32(field(body, 4, 4, "elst")?) as usize;
    let width = if v1 { 20 } else { 12 };
    if count > (body.len() - 8) / width {
        return Err(format!("elst declares {count} entries but holds fewer"));
    }
    Ok((0..count)
        .map(|i| {
            let e = &body[8 + i * width..8 + (i + 1) * width];
            let (segment_duration, media_time, rate) = if v1 {
                (be64(&e[0..8]), be64(&e[8..16]) as i64, &e[16..20])
            } else {
                (u64::from(be32(&e[0..4])), i64::from(be32(&e[4..8]) as i32), &e[8..12])
            };
            Edit { segment_duration, media_time, media_rate: be32(rate) as i32 }
        })
        .collect())
}

/// (timescale, duration) of an `mvhd` or `mdhd`.
fn timescale_and_duration(body: &[u8], name: &str) -> Result<(u32, u64), String> {
    Ok(if full_box_version(body, name)? == 1 {
        (be32(field(body, 20, 4, name)?), be64(field(body, 24, 8, name)?))
    } else {
        (be32(field(body, 12, 4, name)?), u64::from(be32(field(body, 16, 4, name)?)))
    })
}

fn full_box_version(body: &[u8], name: &str) -> Result<u8, String> {
    Ok(field(body, 0, 1, name)?[0])
}

fn field<'a>(body: &'a [u8], at: usize, len: usize, name: &str) -> Result<&'a [u8], String> {
    body.get(at..at + len).ok_or_else(|| format!("{name} box too short"))
}

/// A child box: (type, body).
type Child<'a> = (&'a [u8; 4], &'a [u8]);

/// The child boxes of a container box's body.
fn boxes(mut data: &[u8]) -> Result<Vec<Child<'_>>, String> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let kind: &[u8; 4] = data[4..8].try_into().expect("4 bytes");
        let (size, header) = match be32(&data[0..4]) {
            0 => (data.len() as u64, 8),
            1 if data.len() >= 16 => (be64(&data[8..16]), 16),
            s => (u64::from(s), 8),
        };
        if size < header as u64 || size > data.len() as u64 {
            return Err(format!("box {} overruns its parent", String::from_utf8_lossy(kind)));
        }
        out.push((kind, &data[header..size as usize]));
        data = &data[size as usize..];
    }
    Ok(out)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(edits: Vec<Edit>) -> TrackTiming {
        TrackTiming { movie_timescale: 1000, media_timescale: 44_100, media_duration: 23_074, edits }
    }

    fn edit(segment_duration: u64, media_time: i64) -> Edit {
        Edit { segment_duration, media_time, media_rate: 0x1_0000 }
    }

    #[test]
    fn priming_is_skipped_and_the_end_snaps_to_the_media_duration() {
        // FFmpeg: 1024 priming frames, 22050 frames = 500 ms, mdhd = 1024 + 22050.
        let t = timing(vec![edit(500, 1024)]);
        assert_eq!(t.segments(44_100).unwrap(), Some(vec![Segment::Frames { start: 1024, end: 23_074 }]));
        // 499 ms is within one movie unit (45 frames) of the end: rounding, so the end snaps.
        let t = timing(vec![edit(499, 1024)]);
        assert_eq!(t.segments(44_100).unwrap(), Some(vec![Segment::Frames { start: 1024, end: 23_074 }]));
        // 498 ms ends 88 frames early: more than rounding, so kept as stated.
        let t = timing(vec![edit(498, 1024)]);
        assert_eq!(t.segments(44_100).unwrap(), Some(vec![Segment::Frames { start: 1024, end: 1024 + 21_962 }]));
    }

    #[test]
    fn empty_edits_are_silence_and_no_edit_list_keeps_everything() {
        let t = timing(vec![edit(10, -1), edit(0, 2112)]);
        assert_eq!(
            t.segments(44_100).unwrap(),
            Some(vec![Segment::Silence(441), Segment::Frames { start: 2112, end: 23_074 }])
        );
        assert_eq!(timing(vec![]).segments(44_100).unwrap(), None);
        let slow = Edit { media_rate: 0x8000, ..edit(500, 0) };
        assert!(timing(vec![slow]).segments(44_100).is_err());
    }

    #[test]
    fn segments_apply_and_reject_reading_past_the_end() {
        let ch = vec![(0..10).map(|i| i as f32).collect::<Vec<_>>()];
        let out = apply_segments(&ch, &[Segment::Silence(2), Segment::Frames { start: 7, end: 10 }]).unwrap();
        assert_eq!(out, vec![vec![0.0, 0.0, 7.0, 8.0, 9.0]]);
        assert!(apply_segments(&ch, &[Segment::Frames { start: 2, end: 11 }]).is_err());
    }
}
