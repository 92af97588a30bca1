//! `cargo bench -p isola-engine --bench paced [-- --seconds S --neighbour --precision P
//! --schedule NAME --latency MODE --speed X --spin]`: block times of `Separator::process` at
//! real-time pace (issues 15 and 18). 48 kHz stereo in 64-sample blocks, each block issued
//! when it is due, S seconds of audio (default 60) per configuration: weight precision f32 /
//! f16 / mixed (the default; `--precision` picks some), each plain, with cache warming, with
//! the step spread over the hop (`Separator::set_spread_step`, one hop more latency), and
//! spread with warming (`--schedule plain|warming|spread|spread-warming` picks some), on the
//! built-in light weights of each `--latency` mode (23ms by default; 12ms and 6ms run their
//! own networks on their own grids).
//! `--neighbour` adds a thread that streams a 64 MB buffer meanwhile, evicting the caches as
//! a busy host does. `--speed X` (repeatable) issues the blocks X times faster than real time,
//! `--speed max` back to back: how the cost of a block grows with the idle time before it
//! (caches going cold) is the difference. Between blocks the thread sleeps, or with `--spin`
//! busy-waits (reading the clock, no `pause`, which a hypervisor may treat as idle).
//! Prints mean / p50 / p99 / p99.9 / max block time as % of the real-time block duration
//! (1333 µs; the mean is the share of one core at real time, whatever the speed), and, in
//! the same run, the network step of the real-time port against candle (1 thread), µs per
//! frame, for each mode.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use isola_engine::candle_core::{Device, Tensor};
use isola_engine::embedded::LatencyMode;
use isola_engine::rt::{Precision, RtMaskNet, Separator, SeparatorParams};
use isola_engine::weights::Weights;
use isola_engine::{model, synth};

const RATE: f32 = 48_000.0;
const BLOCK: usize = 64;

/// Writes one byte per 64-byte line of 64 MB until `stop`: a cache-evicting neighbour.
fn neighbour(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 20];
        let mut round = 0u8;
        while !stop.load(Ordering::Relaxed) {
            round = round.wrapping_add(1);
            buf.iter_mut().step_by(64).for_each(|v| *v = v.wrapping_add(round));
            black_box(&buf);
        }
    })
}

/// How the separator schedules the network's work.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The frame's block steps the network.
    Plain,
    /// Blocks between frames prefetch the weights.
    Warming,
    /// Every block does its share of the step.
    Spread,
    /// Every block does its share and prefetches the next block's.
    SpreadWarming,
}

impl Mode {
    const ALL: [Mode; 4] = [Mode::Plain, Mode::Warming, Mode::Spread, Mode::SpreadWarming];

    /// The `--schedule` name.
    fn id(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Warming => "warming",
            Mode::Spread => "spread",
            Mode::SpreadWarming => "spread-warming",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Warming => "cache warming",
            Mode::Spread => "spread step (+1 hop)",
            Mode::SpreadWarming => "spread step + warming",
        }
    }
}

/// How fast blocks are issued, and how the thread waits for the next one.
#[derive(Clone, Copy)]
struct Pace {
    /// Times faster than real time; `None`: back to back.
    speed: Option<f64>,
    spin: bool,
}

impl Pace {
    fn name(self) -> String {
        match self.speed {
            None => "back to back".into(),
            Some(x) if x == 1.0 => "real time".into(),
            Some(x) => format!("{x}x real time"),
        }
    }

    /// Waits until `until` (past `start`).
    fn wait(self, until: Duration, start: Instant) {
        let Some(wait) = until.checked_sub(start.elapsed()) else { return };
        if self.spin {
            let end = Instant::now() + wait;
            while Instant::now() < end {
                black_box(());
            }
        } else {
            std::thread::sleep(wait);
        }
    }
}

/// Block times (µs) of `seconds` of music at `pace`.
fn paced_block_times(
    weights: &Weights,
    precision: Precision,
    mode: Mode,
    seconds: f64,
    music: &[Vec<f32>],
    pace: Pace,
) -> Vec<f64> {
    let mut sep = Separator::new(RtMaskNet::with_precision(weights, precision).unwrap());
    sep.set_cache_warming(matches!(mode, Mode::Warming | Mode::SpreadWarming));
    sep.set_spread_step(matches!(mode, Mode::Spread | Mode::SpreadWarming));
    sep.prepare(RATE, BLOCK, 2).unwrap();
    let params = SeparatorParams::default();
    let blocks = (seconds * f64::from(RATE)) as usize / BLOCK;
    let mut times = Vec::with_capacity(blocks);
    let (mut left, mut right) = (vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]);
    let period = pace.speed.map(|x| Duration::from_secs_f64(BLOCK as f64 / f64::from(RATE) / x));
    let start = Instant::now();
    for k in 0..blocks {
        let at = (k * BLOCK) % (music[0].len() - BLOCK);
        left.copy_from_slice(&music[0][at..at + BLOCK]);
        right.copy_from_slice(&music[1][at..at + BLOCK]);
        let t = Instant::now();
        sep.process(&mut [&mut left[..], &mut right[..]], None, None, &params);
        times.push(t.elapsed().as_secs_f64() * 1e6);
        // Block k + 1 is due one period after block k was.
        if let Some(period) = period {
            pace.wait(period * (k as u32 + 1), start);
        }
    }
    times
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// µs per frame of the real-time port (f32 and the default precision) and of candle on one
/// thread, frames of music, each stepped back to back; medians of 9 rounds.
fn network_steps(weights: &Weights, music: &[Vec<f32>]) -> (f64, f64, f64) {
    let (m, stft) = (weights.meta.model, weights.meta.stft);
    let mags: Vec<Vec<f32>> = music.iter().map(|c| isola_engine::offline::magnitudes(&stft, c)).collect();
    let frames = 400.min(mags[0].len() / m.n_bins);
    let input: Vec<Vec<f32>> = (0..frames)
        .map(|t| mags.iter().flat_map(|c| c[t * m.n_bins..(t + 1) * m.n_bins].iter().copied()).collect())
        .collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rt = |precision| {
        let mut net = RtMaskNet::with_precision(weights, precision).unwrap();
        let mut logits = vec![0.0; m.features()];
        median(
            (0..9)
                .map(|_| {
                    let t = Instant::now();
                    for x in &input {
                        black_box(net.step(x, &mut logits));
                    }
                    t.elapsed().as_secs_f64() * 1e6 / frames as f64
                })
                .collect(),
        )
    };
    let net = model::load(weights, &Device::Cpu).unwrap();
    let tensors: Vec<Tensor> =
        input.iter().map(|x| Tensor::from_slice(x, (1, m.channels, m.n_bins), &Device::Cpu).unwrap()).collect();
    let candle = median(
        (0..9)
            .map(|_| {
                let mut state = net.initial_state(1, &Device::Cpu).unwrap();
                let t = Instant::now();
                for x in &tensors {
                    // With the copy back to the host, as the worker does.
                    black_box(net.step(x, &mut state).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
                }
                t.elapsed().as_secs_f64() * 1e6 / frames as f64
            })
            .collect(),
    );
    (rt(Precision::F32), rt(Precision::default()), candle)
}

fn main() {
    // candle reads this on every matmul: one thread, as the worker configures it.
    // SAFETY: set before any other thread exists.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map_or(60.0, |s| s.parse::<f64>().expect("--seconds takes a number"));
    let with_neighbour = args.iter().any(|a| a == "--neighbour");
    let spin = args.iter().any(|a| a == "--spin");
    // Every value of a repeatable `--flag VALUE`.
    let values =
        |flag: &str| -> Vec<String> { args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].clone()).collect() };
    // `--precision P` (repeatable) limits the rows; f32, f16 and mixed otherwise.
    let mut precisions: Vec<Precision> = values("--precision")
        .iter()
        .map(|n| Precision::from_name(n).expect("--precision takes f32, f16, int8 or mixed"))
        .collect();
    if precisions.is_empty() {
        precisions = vec![Precision::F32, Precision::F16, Precision::Mixed];
    }
    let mut schedules: Vec<Mode> = values("--schedule")
        .iter()
        .map(|n| {
            Mode::ALL
                .into_iter()
                .find(|m| m.id() == n)
                .expect("--schedule takes plain, warming, spread or spread-warming")
        })
        .collect();
    if schedules.is_empty() {
        schedules = Mode::ALL.to_vec();
    }
    let mut latencies: Vec<LatencyMode> = values("--latency")
        .iter()
        .map(|n| LatencyMode::from_name(n).expect("--latency takes 23ms, 12ms or 6ms"))
        .collect();
    if latencies.is_empty() {
        latencies = vec![LatencyMode::default()];
    }
    let mut paces: Vec<Pace> = values("--speed")
        .iter()
        .map(|x| {
            let speed = (x != "max")
                .then(|| x.parse::<f64>().ok().filter(|v| *v > 0.0).expect("--speed takes a positive number or max"));
            Pace { speed, spin }
        })
        .collect();
    if paces.is_empty() {
        paces = vec![Pace { speed: Some(1.0), spin }];
    }
    let music = synth::track(RATE as u32, RATE as usize * 8, 3).mixture();

    let stop = Arc::new(AtomicBool::new(false));
    let noisy = with_neighbour.then(|| neighbour(Arc::clone(&stop)));
    let block_us = BLOCK as f64 / f64::from(RATE) * 1e6;
    println!(
        "paced: {seconds} s of audio per row, 48 kHz stereo, {BLOCK}-sample blocks ({block_us:.0} µs), waiting by {}, neighbour streaming 64 MB: {}",
        if spin { "spinning" } else { "sleeping" },
        if with_neighbour { "yes" } else { "no" }
    );
    println!("| latency | precision | schedule | pace | weights kB | mean % | p50 % | p99 % | p99.9 % | max % |");
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
    for &latency in &latencies {
        let weights = latency.light().unwrap();
        for &precision in &precisions {
            for (&mode, &pace) in schedules.iter().flat_map(|m| paces.iter().map(move |p| (m, p))) {
                let mut t = paced_block_times(&weights, precision, mode, seconds, &music, pace);
                t.sort_by(f64::total_cmp);
                let pct = |p: f64| 100.0 * percentile(&t, p) / block_us;
                let mean = 100.0 * t.iter().sum::<f64>() / t.len() as f64 / block_us;
                let kb = RtMaskNet::with_precision(&weights, precision).unwrap().weight_bytes() as f64 / 1e3;
                println!(
                    "| {latency} | {} | {} | {} | {kb:.0} | {mean:.2} | {:.2} | {:.1} | {:.1} | {:.1} |",
                    precision.name(),
                    mode.name(),
                    pace.name(),
                    pct(0.5),
                    pct(0.99),
                    pct(0.999),
                    pct(1.0)
                );
            }
        }
    }
    let default = Precision::default().name();
    for latency in latencies {
        let (rt32, rt, candle) = network_steps(&latency.light().unwrap(), &music);
        println!(
            "network step (back to back), Latency = {latency}: rt f32 {rt32:.1} µs/frame, rt {default} {rt:.1} µs/frame, candle (1 thread) {candle:.1} µs/frame; candle/rt f32 {:.2}x, candle/rt {default} {:.2}x",
            candle / rt32,
            candle / rt
        );
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(n) = noisy {
        n.join().unwrap();
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the end: {}", load.trim());
}
