//! `isola-trainer`: data loading, metrics and the `isola` command line.
//!
//! The library half exists so integration tests (and, later, the plugin's
//! tests) can reuse the decoders, dataset discovery, metrics and the
//! synthetic signal generators without going through the binary.

pub mod audio;
pub mod cli;
pub mod data;
pub mod eval;
pub mod export;
pub mod metrics;
pub mod plot;
pub mod progress;
pub mod separate;
pub mod synth;
pub mod train;
