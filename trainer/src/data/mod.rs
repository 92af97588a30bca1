//! Data sets: discovering the supported layouts, loading and validating
//! stems, and `isola data check`.
//!
//! Layouts (any combination, one `--data` each):
//! - MUSDB18-HQ: `root/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav`
//!   (accompaniment = every stem except vocals and mixture);
//! - MUSDB18: `root/{train,test}/<track>.stem.mp4` (stream 4 = vocals,
//!   streams 1-3 = accompaniment);
//! - track folders: `<track>/vocals.* + accompaniment.*`, or vocals plus any
//!   other stems, which are summed as accompaniment;
//! - loose sources for remixing: a folder of isolated vocals and a folder of
//!   instrumentals, recognised by name (`vocals`, `instrumental`, ...) or
//!   forced with `vocals:DIR` / `instrumental:DIR`.

pub mod check;
pub mod discover;
pub mod load;
pub mod pool;
pub mod remix;

pub use discover::{DataSpec, Entry, LooseRole, Source, discover, discover_all};
pub use load::{DataErrors, LoadOptions, Loaded, LoadedData, LooseAudio, TrackAudio, load_entries, load_entry};
pub use pool::{PoolData, load_pool};
