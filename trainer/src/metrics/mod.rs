//! Separation metrics: BSSEval v4 SDR as museval computes it, SI-SDR and
//! the MDX-challenge global SDR, plus per-track and over-tracks aggregation.

pub mod bsseval;
pub mod simple;
mod stats;
pub mod track;

pub use stats::{mean, nanmedian};
pub use track::{SourceScores, TrackScores, evaluate_track};
