//! `cargo bench -p isola-engine`: the real-time network vs candle (1 thread) per frame on
//! the same weights, and `Separator::process` as % of real time at 48 kHz stereo.
//! Criterion gives the detailed statistics; a summary with the ratio and the % of real
//! time is printed at the end.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use isola_engine::candle_core::{Device, Tensor};
use isola_engine::config::{ModelConfig, StftConfig};
use isola_engine::embedded::LatencyMode;
use isola_engine::model;
use isola_engine::render::Render;
use isola_engine::rt::{Precision, RtMaskNet, Separator, SeparatorParams};
use isola_engine::weights::{Weights, random_weights};
use isola_engine::worker::{Worker, WorkerConfig};

const RATE: f32 = 48_000.0;
const BLOCKS: [usize; 4] = [64, 128, 256, 1024];

fn weights() -> Weights {
    let stft = StftConfig::default();
    random_weights(ModelConfig::light(&stft), stft, 1)
}

fn frame_input(features: usize) -> Vec<f32> {
    (0..features).map(|i| 10f32.powf(-4.0 * ((i * 7919) % 1000) as f32 / 1000.0)).collect()
}

/// Stereo synthetic music at the bench rate.
fn music(len: usize) -> Vec<Vec<f32>> {
    isola_engine::synth::track(RATE as u32, len, 1).mixture()
}

struct Bench {
    weights: Weights,
    rt: RtMaskNet,
    candle: model::MaskNet,
    state: model::MaskNetState,
    input: Vec<f32>,
    logits: Vec<f32>,
    tensor_in: Tensor,
}

impl Bench {
    fn new() -> Self {
        let weights = weights();
        let m = weights.meta.model;
        let input = frame_input(m.features());
        let candle = model::load(&weights, &Device::Cpu).unwrap();
        let state = candle.initial_state(1, &Device::Cpu).unwrap();
        let tensor_in = Tensor::from_slice(&input, (1, m.channels, m.n_bins), &Device::Cpu).unwrap();
        Self {
            rt: RtMaskNet::new(&weights).unwrap(),
            logits: vec![0.0; m.features()],
            weights,
            candle,
            state,
            input,
            tensor_in,
        }
    }

    fn rt_step(&mut self) {
        self.rt.step(black_box(&self.input), &mut self.logits);
    }

    fn candle_step(&mut self) {
        // Including the copy of the result back to the host, as the worker must.
        let y = self.candle.step(black_box(&self.tensor_in), &mut self.state).unwrap();
        black_box(y.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
}

/// Seconds to process `audio` through a fresh separator in `block`-sample blocks (the
/// engine's offline render; its per-block bookkeeping is a few small allocations, far
/// below the cost of a block).
fn separator_seconds(weights: &Weights, audio: &[Vec<f32>], block: usize) -> f64 {
    let mut sep = Separator::new(RtMaskNet::new(weights).unwrap());
    sep.prepare(RATE, block, 2).unwrap();
    let render = Render { blocks: &[block], stem_channels: None, align: false };
    let start = Instant::now();
    render.run(&mut sep, audio, &SeparatorParams::default());
    start.elapsed().as_secs_f64()
}

/// Median µs per call of `f` over `rounds` rounds of `iters` calls.
fn median_us(mut f: impl FnMut(), rounds: usize, iters: usize) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / iters as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[rounds / 2]
}

/// Worker model throughput (frames/s, candle CPU 1 thread), stepping frame by frame as the
/// worker does.
fn worker_throughput(heavy: &Weights) -> f64 {
    let m = heavy.meta.model;
    let net = model::load(heavy, &Device::Cpu).unwrap();
    let input = frame_input(m.features());
    let one = Tensor::from_slice(&input, (1, m.channels, m.n_bins), &Device::Cpu).unwrap();
    let mut state = net.initial_state(1, &Device::Cpu).unwrap();
    let step_us = median_us(|| drop(black_box(net.step(&one, &mut state).unwrap().to_vec3::<f32>().unwrap())), 9, 40);
    1e6 / step_us
}

/// Streams `seconds` of audio at real-time pace (48 kHz stereo, `block`-sample blocks) with the
/// worker attached; returns (hits, misses).
fn worker_miss_rate(light: &Weights, heavy: &Weights, seconds: f64, block: usize, budget_hops: usize) -> (u64, u64) {
    let (worker, link) = Worker::spawn(heavy, WorkerConfig { budget_hops, threads: 1, ..Default::default() }).unwrap();
    let mut sep = Separator::new(RtMaskNet::new(light).unwrap());
    sep.set_worker(Some(link)).unwrap();
    sep.prepare(RATE, block, 2).unwrap();
    let audio = music((seconds * RATE as f64) as usize);
    let render = Render { blocks: &[block], stem_channels: None, align: false };
    let start = Instant::now();
    render.run_with(&mut sep, &audio, &mut SeparatorParams::default(), |b, _, _| {
        // Keep real-time pace: block k is due at (k + 1)·block/RATE seconds.
        let due = Duration::from_secs_f64(b.end as f64 / RATE as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    });
    let stats = sep.worker_stats();
    drop(worker);
    (stats.hits, stats.misses)
}

/// Per weight precision: the bytes a frame reads, µs per frame back to back (weights hot
/// in cache), after 64 MB of other memory traffic (cold: what a frame costs at real-time
/// pace in a busy host), and cold but with every weight line prefetched 200 µs before (the
/// cache warming the blocks between frames do). Medians of 41.
fn precision_table(weights: &Weights) {
    let f = weights.meta.model.features();
    let (input, mut logits) = (frame_input(f), vec![0.0; f]);
    let mut traffic = vec![1u8; 64 << 20];
    let mut evict = |round: u8| {
        // Writes, so the lines are owned elsewhere too; one byte per 64-byte line.
        traffic.iter_mut().step_by(64).for_each(|v| *v = v.wrapping_add(round));
        black_box(&traffic);
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for p in Precision::ALL {
        let mut net = RtMaskNet::with_precision(weights, p).unwrap();
        let hot = median_us(
            || {
                black_box(net.step(black_box(&input), &mut logits));
            },
            15,
            400,
        );
        let mut timed = |warm: bool| {
            let v = (0..41u8)
                .map(|i| {
                    evict(i);
                    if warm {
                        let lines = net.weight_lines();
                        net.warm(lines);
                        let until = Instant::now() + Duration::from_micros(200);
                        while Instant::now() < until {}
                    }
                    let start = Instant::now();
                    black_box(net.step(black_box(&input), &mut logits));
                    start.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            median(v)
        };
        let (cold, warmed) = (timed(false), timed(true));
        println!(
            "network step  rt {:>5}: {:7.0} kB weights | hot {hot:6.1} µs/frame | cold {cold:6.1} µs | cold, prefetched {warmed:6.1} µs",
            p.name(),
            net.weight_bytes() as f64 / 1e3,
        );
    }
}

fn main() {
    // candle reads this on every matmul: one thread, as the worker configures it.
    // SAFETY: set before any other thread exists.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };

    let mut criterion = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut b = Bench::new();
    {
        let mut group = criterion.benchmark_group("network_step");
        group.bench_function("rt", |bch| bch.iter(|| b.rt_step()));
        group.bench_function("candle_cpu_1_thread", |bch| bch.iter(|| b.candle_step()));
        group.finish();
    }
    let audio = music(RATE as usize * 2);
    {
        let mut group = criterion.benchmark_group("separator_48k_stereo_2s");
        group.sample_size(10);
        for block in BLOCKS {
            group.bench_with_input(BenchmarkId::from_parameter(block), &block, |bch, &block| {
                bch.iter(|| separator_seconds(&b.weights, &audio, block))
            });
        }
        group.finish();
    }
    criterion.final_summary();

    // Summary: the numbers the acceptance criteria talk about.
    let rt_us = median_us(|| b.rt_step(), 15, 400);
    let candle_us = median_us(|| b.candle_step(), 15, 100);
    let m = b.weights.meta.model;
    println!("\n=== isola-engine summary ===");
    println!(
        "model: hidden {} x {} GRU layers, {} bins/channel, {} parameters",
        m.hidden,
        m.gru_layers,
        m.n_bins,
        m.param_count()
    );
    println!(
        "network step  rt: {rt_us:8.1} µs/frame   candle CPU (1 thread): {candle_us:8.1} µs/frame   ratio candle/rt: {:.2}x",
        candle_us / rt_us
    );
    // The band-split variant of the light model (per-band layers around the GRUs).
    let banded = {
        let stft = StftConfig::default();
        random_weights(ModelConfig { band_dim: 32, ..ModelConfig::light(&stft) }, stft, 3)
    };
    let mut rt_banded = RtMaskNet::new(&banded).unwrap();
    let (input, mut logits) = (frame_input(m.features()), vec![0.0; m.features()]);
    let banded_us = median_us(
        || {
            black_box(rt_banded.step(black_box(&input), &mut logits));
        },
        15,
        400,
    );
    println!(
        "network step  rt, band split ({} bands of {}, {} parameters): {banded_us:8.1} µs/frame",
        banded.meta.model.band_layout().map_or(0, |b| b.bands()),
        banded.meta.model.band_dim,
        banded.meta.model.param_count()
    );
    precision_table(&b.weights);
    // The worker of every latency mode on its built-in weights and grid: the short modes run
    // the network more often (the 6 ms mode twice per 23 ms hop), so each gets its own
    // throughput and deadline figures.
    for mode in LatencyMode::ALL {
        let (light, heavy) = (mode.light().unwrap(), mode.worker().unwrap());
        let step_fps = worker_throughput(&heavy);
        println!(
            "worker, Latency = {mode} (hidden {}, {} parameters), candle CPU 1 thread: {step_fps:.0} frames/s (real time at 48 kHz needs {:.0})",
            heavy.meta.model.hidden,
            heavy.meta.model.param_count(),
            RATE / heavy.meta.stft.for_rate(f64::from(RATE)).hop as f32
        );
        // A budget shorter than the block always misses: frames of one block are stepped
        // in one call (the plugin raises its budget to cover the block).
        for (block, budget) in [(256, 1), (256, 2), (256, 4), (1024, 2), (1024, 4), (1024, 8)] {
            let (hits, misses) = worker_miss_rate(&light, &heavy, 10.0, block, budget);
            println!(
                "worker at real-time pace, Latency = {mode}, 48 kHz stereo, {block}-sample blocks, budget {budget} hop(s): {:.2} % of frames missed the deadline ({misses} of {})",
                100.0 * misses as f64 / (hits + misses).max(1) as f64,
                hits + misses
            );
        }
    }
    let audio_seconds = audio[0].len() as f64 / RATE as f64;
    for block in BLOCKS {
        let mut runs: Vec<f64> = (0..7).map(|_| separator_seconds(&b.weights, &audio, block)).collect();
        runs.sort_by(f64::total_cmp);
        println!(
            "Separator::process 48 kHz stereo, {block:5}-sample blocks: {:.2} % of real time (one core)",
            runs[3] / audio_seconds * 100.0
        );
    }
}
