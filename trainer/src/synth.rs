//! Synthetic stems for tests and `isola data synth`: the engine's generator
//! ([`isola_engine::synth`]) as [`Audio`], with lengths in seconds.

use crate::audio::Audio;

/// One synthetic track: stereo vocals and accompaniment, same length.
#[derive(Debug, Clone)]
pub struct SynthTrack {
    pub vocals: Audio,
    pub accompaniment: Audio,
}

/// [`isola_engine::synth::track`] of `secs` seconds (rounded to samples) at `rate` Hz.
pub fn track(rate: u32, secs: f64, seed: u64) -> SynthTrack {
    let len = (f64::from(rate) * secs).round() as usize;
    let t = isola_engine::synth::track(rate, len, seed);
    let audio = |channels| Audio { sample_rate: rate, channels };
    SynthTrack { vocals: audio(t.vocals), accompaniment: audio(t.accompaniment) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tracks_have_the_requested_length_in_seconds() {
        let t = super::track(16_000, 3.0, 7);
        for x in [&t.vocals, &t.accompaniment] {
            assert_eq!((x.sample_rate, x.n_channels(), x.frames()), (16_000, 2, 48_000));
        }
    }
}
