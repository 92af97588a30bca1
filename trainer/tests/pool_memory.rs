//! Training pools larger than RAM: loading a pool from the cache and drawing examples from it
//! must not grow resident memory with the pool's size, while the same pool held in RAM does.
//! One test in this binary, so no other test's allocations blur the RSS readings (Linux:
//! VmRSS from /proc/self/status).

use std::path::Path;

use isola_trainer::audio::cache::AudioLoader;
use isola_trainer::audio::wav::write_wav_i16;
use isola_trainer::data::{DataSpec, LoadOptions, discover, load_entries, load_pool};
use isola_trainer::synth;
use isola_trainer::train::config::TrainConfig;
use isola_trainer::train::sampler::{Pools, sample, step_rng};

const RATE: u32 = 44_100;

/// Resident set size of this process in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// `n` tracks of `secs` seconds, stereo, as track folders of 16-bit WAVs.
fn write_tracks(root: &Path, n: u64, secs: f64) {
    for k in 0..n {
        let t = synth::track(RATE, secs, k);
        let dir = root.join(format!("song{k}"));
        std::fs::create_dir_all(&dir).unwrap();
        write_wav_i16(&dir.join("vocals.wav"), &t.vocals).unwrap();
        write_wav_i16(&dir.join("accompaniment.wav"), &t.accompaniment).unwrap();
    }
}

#[test]
#[cfg(target_os = "linux")]
fn pool_memory_does_not_grow_with_pool_size() {
    let d = tempfile::tempdir().unwrap();
    let (n, secs) = (8, 30.0);
    write_tracks(&d.path().join("data"), n, secs);
    // Bytes the pool's samples take as f32: tracks × (vocals + accompaniment) × stereo.
    let pool_bytes = n * 2 * 2 * (secs * f64::from(RATE)) as u64 * 4;
    let spec: DataSpec = d.path().join("data").to_str().unwrap().parse().unwrap();
    let (entries, problems) = discover(&spec);
    assert_eq!((entries.len(), problems.len()), (n as usize, 0));
    let loader = AudioLoader::new(Some(RATE), Some(d.path().join("cache")));
    let opts = LoadOptions::default();

    // First run: decodes and prepares every entry in the cache (one entry in RAM at a time).
    drop(load_pool(&entries, Vec::new(), &loader, opts).unwrap());

    // Warm cache: the pool is opened, not read.
    let before = rss();
    let t0 = std::time::Instant::now();
    let data = load_pool(&entries, Vec::new(), &loader, opts).unwrap();
    let opened = t0.elapsed();
    let pools = Pools { tracks: data.tracks, vocals: data.vocals, instrumentals: data.instrumentals };
    // Drawing examples reads only their chunks: 400 two-second examples cover far more
    // audio (4 × 400 × 2 s) than the pool holds, so every part of it is read.
    let cfg = TrainConfig { chunk_seconds: 2.0, ..TrainConfig::default() };
    let mut energy = 0.0;
    for step in 0..400 {
        energy += sample(&pools, &cfg, &mut step_rng(1, step)).mixture.mean_square();
    }
    assert!(energy > 0.0);
    let grown = rss().saturating_sub(before);
    eprintln!(
        "pool of {:.0} MB: opened in {:.1} ms, RSS grew by {:.1} MB after 400 examples",
        pool_bytes as f64 / 1e6,
        opened.as_secs_f64() * 1e3,
        grown as f64 / 1e6
    );
    assert!(grown < pool_bytes / 8, "RSS grew by {grown} bytes for a pool of {pool_bytes}");
    drop(pools);

    // The measurement can see a pool held in RAM: loading it the old way grows RSS by about
    // its size.
    let before = rss();
    let in_ram = load_entries(&entries, Vec::new(), &loader, opts).unwrap();
    let grown = rss().saturating_sub(before);
    assert!(grown > pool_bytes / 2, "RAM pool: RSS grew by {grown} bytes for a pool of {pool_bytes}");
    drop(in_ram);
}
