//! Scores of one track's vocals/accompaniment estimate, as `isola eval`
//! reports them.

use serde::Serialize;

use super::bsseval::{BssError, framewise_sdr};
use super::simple::{global_sdr, si_sdr};
use super::stats::nanmedian;
use crate::audio::Audio;

/// Scores of one source of one track.
#[derive(Debug, Clone, Serialize)]
pub struct SourceScores {
    /// BSSEval v4 SDR: median over the 1 s windows (museval's track score).
    pub sdr: f64,
    /// SI-SDR over the whole track.
    pub si_sdr: f64,
    /// MDX-style global SDR over the whole track.
    pub global_sdr: f64,
    /// Per-window BSSEval v4 SDR (NaN = window skipped as silent).
    #[serde(skip)]
    pub sdr_frames: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackScores {
    pub vocals: SourceScores,
    pub accompaniment: SourceScores,
}

/// Evaluates vocals and accompaniment jointly (as museval does for the
/// vocals/accompaniment pair), with 1 s windows and hops at the references'
/// rate. Estimates are padded or truncated to the reference length.
pub fn evaluate_track(
    vocals: &Audio,
    accompaniment: &Audio,
    est_vocals: &Audio,
    est_accompaniment: &Audio,
) -> Result<TrackScores, BssError> {
    let second = vocals.sample_rate as usize;
    let frames = framewise_sdr(&[vocals, accompaniment], &[est_vocals, est_accompaniment], second, second)?;
    let score = |reference: &Audio, estimate: &Audio, sdr_frames: &Vec<f64>| {
        let estimate = estimate.slice_padded(0, reference.frames());
        SourceScores {
            sdr: nanmedian(sdr_frames),
            si_sdr: si_sdr(reference, &estimate),
            global_sdr: global_sdr(reference, &estimate),
            sdr_frames: sdr_frames.clone(),
        }
    };
    Ok(TrackScores {
        vocals: score(vocals, est_vocals, &frames[0]),
        accompaniment: score(accompaniment, est_accompaniment, &frames[1]),
    })
}
