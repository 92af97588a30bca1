//! The editor's data path is real-time safe: the audio side (separator + `Taps::publish`, as in
//! `Isola::process`) allocates nothing, both while a GUI-like thread consumes the telemetry
//! and while nobody does (editor closed: the frame ring fills and frames are dropped).
//! The audio loop runs inside `assert_no_alloc`, the same guard nice-plug puts around
//! `process` (`assert_process_allocs`, debug builds): any allocation or free aborts the test.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use isola_engine::rt::SeparatorParams;
use isola_plugin::inference::build_separator;
use isola_plugin::telemetry::{STEMS, Taps, Telemetry, WorkerView};
use isola_plugin::weights::load_weights;

const RATE: f32 = 48_000.0;
const BLOCK: usize = 256;

/// Runs `blocks` blocks of a 440 Hz tone (amplitude 0.5) through separator and taps, as the
/// audio thread does, under the allocation guard.
fn run_audio(taps: &mut Taps, sep: &mut isola_engine::rt::Separator, blocks: usize, phase: &mut usize) {
    let params = SeparatorParams::default();
    let mut l = vec![0.0f32; BLOCK];
    let mut r = vec![0.0f32; BLOCK];
    let mut v = [vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]];
    let mut a = [vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]];
    nice_assert_no_alloc::assert_no_alloc(|| {
        for _ in 0..blocks {
            let started = Instant::now();
            for i in 0..BLOCK {
                let s = 0.5 * (2.0 * std::f32::consts::PI * 440.0 * (*phase + i) as f32 / RATE).sin();
                l[i] = s;
                r[i] = s;
            }
            *phase += BLOCK;
            let mut main: [&mut [f32]; 2] = [&mut l, &mut r];
            let (v0, v1) = v.split_at_mut(1);
            let mut vs: [&mut [f32]; 2] = [&mut v0[0], &mut v1[0]];
            let (a0, a1) = a.split_at_mut(1);
            let mut accs: [&mut [f32]; 2] = [&mut a0[0], &mut a1[0]];
            sep.process(&mut main, Some(&mut vs), Some(&mut accs), &params);
            let stems = [Some(&main[..]), Some(&vs[..]), Some(&accs[..])];
            taps.publish(sep, stems, BLOCK, RATE, started.elapsed());
        }
    });
}

/// Set in the child process that proves the guard is armed.
const PROBE_ENV: &str = "ISOLA_ALLOC_GUARD_PROBE";

/// The guard must abort on an allocation, or the checks below prove nothing: this binary
/// re-runs itself with `PROBE_ENV` set, where the test allocates under the guard instead.
fn assert_guard_is_armed() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "publishing_never_allocates_with_the_editor_consuming_or_closed", "--test-threads=1"])
        .env(PROBE_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("memory allocation of"),
        "an allocation under the guard did not abort (status {:?}): {stderr}",
        out.status
    );
}

#[test]
fn publishing_never_allocates_with_the_editor_consuming_or_closed() {
    if std::env::var_os(PROBE_ENV).is_some() {
        // Child process of `assert_guard_is_armed`: this must abort.
        let v = nice_assert_no_alloc::assert_no_alloc(|| vec![1u8; 64]);
        println!("not aborted: {}", v.len());
        return;
    }
    assert_guard_is_armed();
    let info = load_weights(None, Default::default()).unwrap();
    let mut sep = build_separator(&info, RATE, BLOCK, 2).unwrap();
    let telemetry = Arc::new(Telemetry::default());
    let mut taps = Taps::new(telemetry.clone());
    taps.prepare(&sep, RATE);
    let bins = sep.last_spectrum().len();
    assert!(bins > 0);
    let mut phase = 0;

    // Editor open: a thread drains frames and reads meters and status as the GUI does.
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let (t, stop) = (telemetry.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut frames, mut loudest, mut max_mask) = (0usize, 0.0f32, 0.0f32);
            let mut peaks = [0.0f32; 3];
            loop {
                let done = stop.load(Ordering::Acquire);
                let g = t.drain_frames(|mags, mask| {
                    assert_eq!(mags.len(), mask.len());
                    frames += 1;
                    loudest = mags.iter().copied().fold(loudest, f32::max);
                    max_mask = mask.iter().copied().fold(max_mask, f32::max);
                    assert!(mask.iter().all(|m| (0.0..=1.0).contains(m)), "mask outside 0..1");
                });
                assert!(g.is_some());
                for (i, p) in peaks.iter_mut().enumerate() {
                    *p = p.max(t.meter(i).peak);
                }
                let _ = (t.load(), t.latency(), t.worker(), t.frame_counts());
                if done {
                    return (frames, loudest, max_mask, peaks);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    run_audio(&mut taps, &mut sep, 600, &mut phase);
    stop.store(true, Ordering::Release);
    let (frames, loudest, _max_mask, peaks) = consumer.join().unwrap();

    let (published, _dropped) = telemetry.frame_counts();
    assert!(published >= 500, "only {published} frames published for 600 hop-sized blocks");
    assert!(frames >= 400, "the consumer saw only {frames} frames");
    // A 0.5-amplitude sine reads ~0.25 in the engine's window-normalised magnitudes.
    assert!((0.1..0.5).contains(&loudest), "spectrum peak {loudest}");
    // The stems split a 0.5 tone: each is at most the tone (plus overlap-add ripple).
    assert!(peaks.iter().all(|p| *p <= 0.6) && peaks.iter().any(|p| *p > 0.05), "stem peaks {peaks:?}");
    let (latency, rate) = telemetry.latency();
    assert_eq!((latency as usize, rate), (sep.latency_samples(), RATE));
    assert_eq!(telemetry.worker(), (WorkerView::Light, 0));
    let load = telemetry.load();
    assert!(load.average > 0.0 && load.average.is_finite(), "{load:?}");
    for i in 0..STEMS.len() {
        assert!(telemetry.meter(i).rms.is_finite());
    }

    // Editor closed: nobody drains, the ring fills, frames are dropped, still no allocation.
    run_audio(&mut taps, &mut sep, 400, &mut phase);
    let (_, dropped) = telemetry.frame_counts();
    assert!(dropped > 100, "a full ring must drop frames, dropped {dropped}");
    // Reopening drains what is queued, at most the ring's capacity.
    let mut queued = 0;
    telemetry.drain_frames(|_, _| queued += 1).unwrap();
    assert!((1..=128).contains(&queued), "{queued} frames queued");
}
