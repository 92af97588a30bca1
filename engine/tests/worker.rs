//! The inference worker: on time it is the heavy model, late it is the light model, and the
//! audio thread never notices the difference in anything but the mask.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{instruments, voice};
use isola_engine::config::{ModelConfig, StftConfig};
use isola_engine::render::Render;
use isola_engine::rt::{RtMaskNet, Separator, SeparatorParams};
use isola_engine::weights::{Weights, random_weights};
use isola_engine::worker::{Worker, WorkerConfig, WorkerState};

const RATE: f32 = 44_100.0; // the model's own grid: hop = 256 samples
const HOP: usize = 256;
const BUDGET: usize = 2;

fn light() -> Weights {
    let stft = common::grid_1024();
    random_weights(ModelConfig { hidden: 32, gru_layers: 2, ..ModelConfig::light(&stft) }, stft, 1)
}

fn heavy() -> Weights {
    let stft = common::grid_1024();
    random_weights(ModelConfig { hidden: 64, gru_layers: 2, ..ModelConfig::light(&stft) }, stft, 2)
}

fn mix(len: usize) -> Vec<Vec<f32>> {
    let v = voice(RATE, len);
    (0..2).map(|c| v.iter().zip(instruments(RATE, len, c + 1)).map(|(a, b)| a + b).collect()).collect()
}

fn with_worker(config: WorkerConfig) -> (Separator, Worker) {
    let (worker, link) = Worker::spawn(&heavy(), config).unwrap();
    let mut sep = Separator::new(RtMaskNet::new(&light()).unwrap());
    sep.set_worker(Some(link)).unwrap();
    sep.prepare(RATE, HOP, 2).unwrap();
    (sep, worker)
}

/// Processes hop-sized blocks, calling `between` after each; returns the vocal stem.
fn drive(sep: &mut Separator, input: &[Vec<f32>], mut between: impl FnMut(usize, &Separator)) -> Vec<Vec<f32>> {
    let render = Render { blocks: &[HOP], stem_channels: Some(2), align: false };
    render.run_with(sep, input, &mut SeparatorParams::default(), |block, sep, _| between(block.index, sep)).vocals
}

fn max_step(x: &[f32]) -> f32 {
    x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max)
}

#[test]
fn on_time_worker_equals_the_heavy_model_run_inline() {
    let input = mix(120 * HOP);
    let (mut sep, worker) = with_worker(WorkerConfig { budget_hops: BUDGET, ..Default::default() });
    assert_eq!(sep.latency_samples(), 1023 + BUDGET * HOP);
    let got = drive(&mut sep, &input, |_, _| assert!(worker.wait_idle(Duration::from_secs(10))));
    let stats = sep.worker_stats();
    let frames = (input[0].len() / HOP) as u64;
    assert_eq!(stats.misses, 0, "{stats:?}");
    assert_eq!(stats.hits, frames - BUDGET as u64);

    let mut inline = Separator::new(RtMaskNet::new(&heavy()).unwrap());
    inline.prepare(RATE, HOP, 2).unwrap();
    let want = drive(&mut inline, &input, |_, _| {});
    // Same heavy mask, BUDGET hops later; compare once the crossfade from the light model
    // (first frames) has finished and left the overlap-add window.
    let shift = BUDGET * HOP;
    let start = (BUDGET + 4 + 4) * HOP + 1024 + shift;
    let mut err = 0.0f32;
    for c in 0..2 {
        for n in start..input[0].len() {
            err = err.max((got[c][n] - want[c][n - shift]).abs());
        }
    }
    println!("worker vs inline heavy model: max abs difference {err:e}");
    assert!(err < 1e-4, "max abs difference {err}");
    // And it is not trivially the light model.
    let mut light_only = Separator::new(RtMaskNet::new(&light()).unwrap());
    light_only.prepare(RATE, HOP, 2).unwrap();
    let l = drive(&mut light_only, &input, |_, _| {});
    let diff = (start..input[0].len()).map(|n| (got[0][n] - l[0][n - shift]).abs()).fold(0.0, f32::max);
    assert!(diff > 1e-3, "worker output equals the light model's");
}

#[test]
fn stalled_worker_falls_back_to_exactly_the_light_model() {
    let input = mix(80 * HOP);
    let (mut sep, worker) = with_worker(WorkerConfig { budget_hops: BUDGET, ..Default::default() });
    worker.faults().stall.store(true, Ordering::Release);
    std::thread::sleep(Duration::from_millis(5));
    let got = drive(&mut sep, &input, |_, _| {});
    let frames = (input[0].len() / HOP) as u64;
    let stats = sep.worker_stats();
    assert_eq!(stats.hits, 0);
    assert_eq!(stats.misses, frames - BUDGET as u64, "{stats:?}");
    assert!(stats.dropped > 0, "queues never filled: {stats:?}");
    // Light model, same mask, BUDGET hops later.
    let mut light_only = Separator::new(RtMaskNet::new(&light()).unwrap());
    light_only.prepare(RATE, HOP, 2).unwrap();
    let want = drive(&mut light_only, &input, |_, _| {});
    let shift = BUDGET * HOP;
    let err = (shift..input[0].len()).map(|n| (got[1][n] - want[1][n - shift]).abs()).fold(0.0, f32::max);
    assert!(err < 1e-6, "fallback differs from the light model by {err}");
    drop(worker); // joins even while stalled
}

#[test]
fn misses_are_counted_exactly_across_a_stall() {
    let input = mix(160 * HOP);
    let (mut sep, worker) = with_worker(WorkerConfig { budget_hops: BUDGET, ..Default::default() });
    let (stall_at, resume_at) = (60usize, 110usize);
    let mut before = None;
    drive(&mut sep, &input, |k, sep| {
        if k < stall_at - 1 || k >= resume_at {
            assert!(worker.wait_idle(Duration::from_secs(10)));
        }
        if k == stall_at - 1 {
            assert!(worker.wait_idle(Duration::from_secs(10)));
            worker.faults().stall.store(true, Ordering::Release);
            std::thread::sleep(Duration::from_millis(5)); // the worker is parked from here on
            before = Some(sep.worker_stats());
        }
        if k == resume_at - 1 {
            let stats = sep.worker_stats();
            let b = before.unwrap();
            // Frames stall_at..resume_at were submitted while stalled; the first BUDGET masks
            // due in that stretch had been computed before it.
            let stalled = (resume_at - stall_at) as u64;
            assert_eq!(stats.hits - b.hits, BUDGET as u64, "{b:?} → {stats:?}");
            assert_eq!(stats.misses - b.misses, stalled - BUDGET as u64, "{b:?} → {stats:?}");
            worker.faults().stall.store(false, Ordering::Release);
        }
    });
    let stats = sep.worker_stats();
    let frames = (input[0].len() / HOP) as u64;
    assert_eq!(stats.hits + stats.misses, frames - BUDGET as u64);
    // After the stall the worker is back on time.
    assert!(stats.hits > frames - 60, "{stats:?}");
}

#[test]
fn panicking_worker_is_reported_and_audio_continues_without_clicks() {
    let input = mix(100 * HOP);
    let in_step = max_step(&input[0]);
    let (mut sep, worker) = with_worker(WorkerConfig { budget_hops: BUDGET, ..Default::default() });
    let vocals = drive(&mut sep, &input, |k, _| {
        if k == 40 {
            worker.faults().panic_next.store(true, Ordering::Release);
        }
        if k < 40 {
            assert!(worker.wait_idle(Duration::from_secs(10)));
        } else {
            std::thread::sleep(Duration::from_micros(300));
        }
    });
    // The failure is reported asynchronously (the panic hook may take a while to print).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while worker.state() == WorkerState::Running && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(worker.state(), WorkerState::Failed);
    assert_eq!(sep.worker_state(), Some(WorkerState::Failed));
    assert!(vocals.iter().flatten().all(|v| v.is_finite()));
    let stats = sep.worker_stats();
    assert!(stats.misses >= 55, "{stats:?}");
    // Stated bound: no sample-to-sample step of the stem larger than 1.5× the input's largest.
    assert!(max_step(&vocals[0]) <= 1.5 * in_step, "{} vs {in_step}", max_step(&vocals[0]));
    drop(worker);
}

#[test]
fn late_and_jittery_worker_at_real_time_pace() {
    let input = mix(150 * HOP);
    let in_step = max_step(&input[0]);
    let hop_time = Duration::from_secs_f64(HOP as f64 / RATE as f64);
    let (mut sep, worker) = with_worker(WorkerConfig { budget_hops: BUDGET, ..Default::default() });
    // Each batch takes 0..3 hops extra: some frames make the 2-hop deadline, some do not.
    worker.faults().jitter_us.store((3.0 * hop_time.as_secs_f64() * 1e6) as u64, Ordering::Release);
    let vocals = drive(&mut sep, &input, |_, _| std::thread::sleep(hop_time));
    let stats = sep.worker_stats();
    let frames = (input[0].len() / HOP) as u64;
    println!("jitter: {stats:?}");
    assert_eq!(stats.hits + stats.misses, frames - BUDGET as u64);
    assert!(stats.misses > 0 && stats.hits > 0, "{stats:?}");
    assert!(vocals.iter().flatten().all(|v| v.is_finite()));
    assert!(max_step(&vocals[0]) <= 1.5 * in_step, "{} vs {in_step}", max_step(&vocals[0]));
    worker.stop();
}

#[test]
fn worker_with_another_grid_is_refused() {
    let stft = StftConfig { fft_size: 2048, hop: 512, ..common::grid_1024() };
    let (_worker, link) = Worker::spawn(
        &random_weights(ModelConfig { hidden: 8, gru_layers: 1, ..ModelConfig::light(&stft) }, stft, 1),
        WorkerConfig::default(),
    )
    .unwrap();
    let mut sep = Separator::new(RtMaskNet::new(&light()).unwrap());
    // In words: the fields that differ, both values, nothing else.
    let err = sep.set_worker(Some(link)).unwrap_err().to_string();
    assert_eq!(
        err,
        "worker model does not fit the light model: FFT size 2048 (worker) vs 1024 (light), \
         hop 512 (worker) vs 256 (light), frequency bins 1025 (worker) vs 513 (light)"
    );
}

#[test]
fn offline_rendering_waits_for_a_slow_worker_and_misses_nothing() {
    let input = mix(60 * HOP);
    let (mut sep, worker) = with_worker(WorkerConfig { budget_hops: BUDGET, ..Default::default() });
    // 3 ms per batch: far slower than these blocks arrive.
    worker.faults().delay_us.store(3_000, Ordering::Release);
    sep.set_offline(true);
    let got = drive(&mut sep, &input, |_, _| {});
    let stats = sep.worker_stats();
    let frames = (input[0].len() / HOP) as u64;
    assert_eq!((stats.hits, stats.misses, stats.dropped), (frames - BUDGET as u64, 0, 0), "{stats:?}");

    // The same worker output as with a worker that is always on time.
    let (mut reference, ref_worker) = with_worker(WorkerConfig { budget_hops: BUDGET, ..Default::default() });
    let want = drive(&mut reference, &input, |_, _| assert!(ref_worker.wait_idle(Duration::from_secs(10))));
    let err = (0..input[0].len()).map(|n| (got[0][n] - want[0][n]).abs()).fold(0.0, f32::max);
    assert!(err < 1e-6, "offline render differs from the on-time worker by {err}");

    // Real time again: the same slow worker now misses.
    sep.set_offline(false);
    sep.reset();
    let _ = drive(&mut sep, &input, |_, _| {});
    assert!(sep.worker_stats().misses > 0);
}
