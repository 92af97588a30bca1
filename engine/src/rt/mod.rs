//! Audio-thread code. After `prepare()`, nothing here allocates, locks, does IO, logs or
//! panics; each public function says which thread owns it.

pub mod grid;
pub mod link;
pub mod masking;
pub mod math;
pub mod matrix;
pub mod net;
pub mod separator;
pub mod stft;

pub use masking::WorkerStats;
pub use matrix::{Matrix, MatrixRole, Precision};
pub use net::RtMaskNet;
pub use separator::{MAX_STRENGTH, OutputMode, Separator, SeparatorParams};
pub use stft::StreamingStft;
