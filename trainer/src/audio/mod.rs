//! Audio buffers, decoding (symphonia), resampling (rubato), WAV writing
//! (hound) and the on-disk decoded-audio cache.

mod buffer;
pub mod cache;
mod clip;
pub mod decode;
mod error;
pub mod mp4;
pub mod resample;
pub mod wav;

pub use buffer::Audio;
pub use clip::{Chunks, Clip, FileAudio};
pub use error::AudioError;
