//! Proof that the audio-thread path never allocates: a counting global allocator around
//! `Separator::process` (and the other audio-thread calls) for every output mode, mono and
//! stereo, block sizes 1, 64, 333 and 4096, with hostile input and a model swap.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{default_random_weights, instruments, voice};
use isola_engine::rt::{OutputMode, Precision, RtMaskNet, Separator, SeparatorParams};

struct CountingAllocator;

thread_local! {
    // Const-initialised: touching these never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations (and frees) made by `f` on this thread.
fn count_allocations(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn the_counter_sees_allocations() {
    assert!(count_allocations(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
    assert!(count_allocations(|| drop(std::hint::black_box(Box::new(5)))) >= 1);
}

#[test]
fn cache_warming_never_allocates() {
    let weights = default_random_weights(79);
    for precision in Precision::ALL {
        let mut net = RtMaskNet::with_precision(&weights, precision).unwrap();
        let lines = net.weight_lines();
        let allocations = count_allocations(|| {
            for _ in 0..3 {
                net.warm(lines / 3 + 1);
            }
            net.warm(lines);
        });
        assert_eq!(allocations, 0, "{precision:?}");
    }
}

#[test]
fn process_never_allocates() {
    let weights = default_random_weights(77);
    // Swapped in halfway: a band-split model, so its per-band layers run through the
    // hostile stretches too.
    let banded = {
        use isola_engine::config::ModelConfig;
        let stft = common::grid_1024();
        isola_engine::weights::random_weights(ModelConfig { band_dim: 16, ..ModelConfig::light(&stft) }, stft, 78)
    };
    let rate = 48_000.0;
    let len = 48_000;
    let v = voice(rate, len);
    let i = instruments(rate, len, 3);
    let mut signal: Vec<Vec<f32>> =
        vec![v.iter().zip(&i).map(|(a, b)| a + b).collect(), v.iter().zip(&i).map(|(a, b)| a - 0.5 * b).collect()];
    // Hostile stretches in the middle: NaN, Inf, denormals, full scale.
    signal[0][20_000..20_100].fill(f32::NAN);
    signal[1][21_000..21_100].fill(f32::INFINITY);
    signal[0][22_000..23_000].fill(1e-39);
    signal[1][24_000..25_000].iter_mut().enumerate().for_each(|(n, x)| *x = if n % 2 == 0 { 1.0 } else { -1.0 });

    let modes = [OutputMode::Vocals, OutputMode::Accompaniment, OutputMode::Balance];
    for channels in [1, 2] {
        for block in [1usize, 64, 333, 4096] {
            for (k, &output) in modes.iter().enumerate() {
                // Every weight precision runs through the hostile stretches too.
                let precision = Precision::ALL[(k + block + channels) % Precision::ALL.len()];
                let mut sep = Separator::new(RtMaskNet::with_precision(&weights, precision).unwrap());
                sep.set_cache_warming(block % 2 == 0);
                // The spread step, in one output mode per block size and channel count.
                sep.set_spread_step(k == 1);
                sep.prepare(rate, 4096, channels).unwrap();
                assert_eq!(sep.spreads_step(), k == 1);
                let params = [
                    SeparatorParams { output, ..Default::default() },
                    SeparatorParams {
                        output,
                        vocal_gain: 0.5,
                        accompaniment_gain: 2.0,
                        strength: 3.0,
                        mix: 0.7,
                        bypass: false,
                    },
                    SeparatorParams { output, bypass: true, strength: 0.0, ..Default::default() },
                ];
                let mut main = signal[..channels].to_vec();
                let mut vocals = vec![vec![0.0f32; block]; 2];
                let mut accompaniment = vec![vec![0.0f32; block]; 2];
                let swap_in = Some(Box::new(RtMaskNet::new(&banded).unwrap()));
                let mut swap_in = swap_in;
                let mut retired = None;
                let allocations = count_allocations(|| {
                    let mut at = 0;
                    let mut n_block = 0;
                    while at < len {
                        let n = block.min(len - at);
                        let mut m: [&mut [f32]; 2] = {
                            let (a, b) = main.split_at_mut(1);
                            [&mut a[0][at..at + n], b.first_mut().map_or(&mut [][..], |c| &mut c[at..at + n])]
                        };
                        let (va, vb) = vocals.split_at_mut(1);
                        let mut v: [&mut [f32]; 2] = [&mut va[0][..n], &mut vb[0][..n]];
                        let (aa, ab) = accompaniment.split_at_mut(1);
                        let mut a: [&mut [f32]; 2] = [&mut aa[0][..n], &mut ab[0][..n]];
                        let p = &params[(n_block / 7 + k) % params.len()];
                        sep.process(&mut m[..channels], Some(&mut v), Some(&mut a), p);
                        if at > len / 2
                            && let Some(net) = swap_in.take()
                        {
                            assert!(sep.queue_model(net).is_ok());
                        }
                        if retired.is_none() {
                            retired = sep.take_retired_model();
                        }
                        at += n;
                        n_block += 1;
                    }
                    sep.reset();
                });
                assert_eq!(allocations, 0, "{channels} ch, block {block}, {output:?}: {allocations} allocations");
                assert!(retired.is_some(), "the swap did not happen");
                assert!(main.iter().flatten().all(|x| x.is_finite()));
                assert!(sep.recoveries() >= 1);
            }
        }
    }
}

#[test]
fn process_with_a_worker_never_allocates_on_the_audio_thread() {
    use isola_engine::config::ModelConfig;
    use isola_engine::weights::random_weights;
    use isola_engine::worker::{Worker, WorkerConfig};
    use std::sync::atomic::Ordering;

    let stft = common::grid_1024();
    let heavy = random_weights(ModelConfig { hidden: 64, gru_layers: 2, ..ModelConfig::light(&stft) }, stft, 9);
    let (worker, link) = Worker::spawn(&heavy, WorkerConfig { budget_hops: 2, ..Default::default() }).unwrap();
    let mut sep = Separator::new(RtMaskNet::new(&default_random_weights(3)).unwrap());
    sep.set_worker(Some(link)).unwrap();
    sep.prepare(44_100.0, 4096, 2).unwrap();
    let len = 44_100;
    let v = voice(44_100.0, len);
    let mut main = vec![v.clone(), v];
    let (mut voc, mut acc) = (vec![vec![0.0f32; 333]; 2], vec![vec![0.0f32; 333]; 2]);
    let params = SeparatorParams::default();
    // The worker's own allocations happen on its thread; only this thread is counted.
    let mut total = 0;
    for (k, at) in (0..len).step_by(333).enumerate() {
        match k {
            20 => worker.faults().jitter_us.store(20_000, Ordering::Release),
            50 => worker.faults().stall.store(true, Ordering::Release),
            80 => worker.faults().stall.store(false, Ordering::Release),
            100 => worker.faults().panic_next.store(true, Ordering::Release),
            _ => {}
        }
        let n = 333.min(len - at);
        let (l, r) = main.split_at_mut(1);
        let (v0, v1) = voc.split_at_mut(1);
        let (a0, a1) = acc.split_at_mut(1);
        total += count_allocations(|| {
            sep.process(
                &mut [&mut l[0][at..at + n], &mut r[0][at..at + n]],
                Some(&mut [&mut v0[0][..n], &mut v1[0][..n]]),
                Some(&mut [&mut a0[0][..n], &mut a1[0][..n]]),
                &params,
            );
        });
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
    assert_eq!(total, 0, "{total} allocations on the audio thread");
    let stats = sep.worker_stats();
    assert!(stats.hits > 0 && stats.misses > 0 && stats.dropped > 0, "{stats:?}");
    drop(worker);
}
