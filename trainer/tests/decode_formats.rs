//! Every supported codec decodes to the right rate, channels, length and
//! content. FLAC/Vorbis/MP3 fixtures come from `fixtures/make_codec_fixtures.py`
//! (0.25 s, 16 kHz stereo, 440 Hz left and 660 Hz right at amplitude 0.5);
//! WAV files are written here.

use std::f64::consts::PI;
use std::path::PathBuf;

use isola_trainer::audio::decode::decode_file;
use isola_trainer::audio::wav::{write_wav, write_wav_i16};
use isola_trainer::audio::{Audio, resample::resample};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Power of `x` at `freq` (Goertzel), normalised by length.
fn tone_power(x: &[f32], rate: f64, freq: f64) -> f64 {
    let w = 2.0 * PI * freq / rate;
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &s) in x.iter().enumerate() {
        re += f64::from(s) * (w * i as f64).cos();
        im += f64::from(s) * (w * i as f64).sin();
    }
    (re * re + im * im) / (x.len() as f64).powi(2)
}

fn assert_tones(a: &Audio, name: &str, max_frame_error: usize) {
    assert_eq!(a.sample_rate, 16_000, "{name}");
    assert_eq!(a.n_channels(), 2, "{name}");
    assert!(a.frames().abs_diff(4000) <= max_frame_error, "{name}: {} frames", a.frames());
    let rate = f64::from(a.sample_rate);
    for (ch, (want, other)) in [(440.0, 660.0), (660.0, 440.0)].into_iter().enumerate() {
        let x = &a.channels[ch][500..3500];
        let (p_want, p_other) = (tone_power(x, rate, want), tone_power(x, rate, other));
        // A sine of amplitude 0.5 has Goertzel power (0.5/2)^2 = 0.0625.
        assert!((p_want - 0.0625).abs() < 0.01, "{name} ch{ch}: power at {want} Hz = {p_want}");
        assert!(p_other < 1e-3, "{name} ch{ch}: leakage at {other} Hz = {p_other}");
    }
}

#[test]
fn flac_is_lossless() {
    let a = decode_file(&fixture("tone.flac")).unwrap();
    assert_tones(&a, "flac", 0);
    let want = 0.5 * (2.0 * PI * 440.0 * 1000.0 / 16_000.0).sin();
    assert!((f64::from(a.channels[0][1000]) - want).abs() < 1e-4);
}

#[test]
fn ogg_vorbis_decodes_gaplessly() {
    assert_tones(&decode_file(&fixture("tone.ogg")).unwrap(), "ogg", 0);
}

/// Granule positions a sample ahead of the packets at a page (fixture: drift.ogg, see
/// make_codec_fixtures.py) leave a gap in symphonia's timeline, so the stream decodes a frame
/// short of its last granule. The file is whole: its timeline reaches the declared end, so it
/// is not taken for a truncated one (the Debian music of the training data has such files).
#[test]
fn ogg_vorbis_with_granule_drift_is_whole_not_truncated() {
    let a = decode_file(&fixture("drift.ogg")).unwrap();
    assert_eq!(a.sample_rate, 16_000);
    assert_eq!(a.frames(), 96_000, "every sample the packets hold, none invented");
    let p = tone_power(&a.channels[0][16_000..80_000], 16_000.0, 440.0);
    assert!((p - 0.0625).abs() < 0.01, "{p}");
}

#[test]
fn mp3_decodes() {
    // MP3 frames are 576 samples at 16 kHz; without gapless info the tail may be padded.
    assert_tones(&decode_file(&fixture("tone.mp3")).unwrap(), "mp3", 1152);
}

#[test]
fn wav_float_and_int_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let t = (0..4000).map(|i| i as f64 / 16_000.0);
    let audio = Audio {
        sample_rate: 16_000,
        channels: vec![
            t.clone().map(|t| (0.5 * (2.0 * PI * 440.0 * t).sin()) as f32).collect(),
            t.map(|t| (0.5 * (2.0 * PI * 660.0 * t).sin()) as f32).collect(),
        ],
    };
    write_wav(&dir.path().join("f.wav"), &audio).unwrap();
    assert_eq!(decode_file(&dir.path().join("f.wav")).unwrap(), audio, "float WAV is bit exact");
    write_wav_i16(&dir.path().join("i.wav"), &audio).unwrap();
    let i16 = decode_file(&dir.path().join("i.wav")).unwrap();
    assert_tones(&i16, "wav16", 0);
    let err = i16.channels[0].iter().zip(&audio.channels[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(err < 1.0 / 32_000.0, "16-bit quantisation error {err}");
}

#[test]
fn decoded_audio_resamples_to_the_model_rate() {
    let a = decode_file(&fixture("tone.ogg")).unwrap();
    let b = resample(&a, 44_100).unwrap();
    assert!(b.frames().abs_diff(11_025) <= 1, "{}", b.frames());
    let p = tone_power(&b.channels[0][1500..9500], 44_100.0, 440.0);
    assert!((p - 0.0625).abs() < 0.01, "{p}");
}
