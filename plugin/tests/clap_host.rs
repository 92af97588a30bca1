//! In-process CLAP host tests against the built `Isola.clap` (debug build: nice-plug's
//! `assert_process_allocs` aborts the test process if `process()` ever allocates).

// Parallel per-channel buffers read clearer with explicit indices.
#![allow(clippy::needless_range_loop)]

mod common;

use common::clap::{ParamChange, Plugin, Rendered, clap_state_blob, load_isola};
use common::*;
use isola_engine::embedded::LatencyMode;
use isola_engine::rt::{RtMaskNet, Separator};
use isola_engine::weights::Weights;

const SAMPLE_RATES: [f64; 3] = [44_100.0, 48_000.0, 96_000.0];
const BLOCK_SIZES: [usize; 5] = [1, 64, 256, 1000, 4096];

/// Latency the engine itself reports for the embedded weights at this rate.
fn engine_latency(sample_rate: f64, channels: usize) -> usize {
    let w = isola_engine::embedded::light().unwrap();
    let mut sep = Separator::new(RtMaskNet::new(&w).unwrap());
    sep.prepare(sample_rate as f32, 4096, channels).unwrap();
    sep.latency_samples()
}

fn load() -> Plugin {
    load_isola()
}

fn assert_finite(r: &Rendered, what: &str) {
    for (port, chans) in [("main", &r.main), ("vocals", &r.vocals), ("accompaniment", &r.accompaniment)] {
        for (c, ch) in chans.iter().enumerate() {
            if let Some(i) = ch.iter().position(|x| !x.is_finite()) {
                panic!("{what}: {port}[{c}][{i}] = {}", ch[i]);
            }
        }
    }
}

/// vocals + accompaniment == input delayed by `latency`, from `from` on.
fn assert_stems_sum_to_delayed_input(r: &Rendered, input: &[Vec<f32>], latency: usize, what: &str) {
    for c in 0..r.main.len() {
        let src = &input[c.min(input.len() - 1)];
        let mut worst = (0.0f32, 0usize);
        for i in 0..r.vocals[c].len() {
            let d = if i >= latency { src[i - latency] } else { 0.0 };
            let s = r.vocals[c][i] + r.accompaniment[c][i];
            let err = (s - d).abs();
            if err > worst.0 {
                worst = (err, i);
            }
        }
        assert!(
            worst.0 <= 1e-4,
            "{what}: ch {c}: vocals+accompaniment differs from the delayed input by {} at sample {}",
            worst.0,
            worst.1
        );
    }
}

#[test]
fn offers_a_resizable_x11_editor_at_its_default_size() {
    let mut p = load();
    let (x11, resizable, size) = p.editor_info();
    assert!(x11, "X11 embedding not supported");
    assert!(resizable, "the editor must be resizable");
    assert_eq!(size, Some(isola_plugin::editor::DEFAULT_SIZE));
}

#[test]
fn ports_params_and_text_entry() {
    let mut p = load();
    let ports = p.output_ports();
    assert_eq!(ports.len(), 3, "{ports:?}");
    assert_eq!(ports[1], ("Vocals".to_owned(), 2));
    assert_eq!(ports[2], ("Accompaniment".to_owned(), 2));
    assert_eq!(ports[0].1, 2);
    for name in [
        "Output",
        "Vocal level",
        "Accompaniment level",
        "Strength",
        "Mix",
        "Bypass",
        "Latency",
        "Quality",
        "Worker budget",
    ] {
        p.id(name);
    }
    // Text entry round trips through the plugin's own formatters, with units.
    let v = p.text_to_value("Vocal level", "-6 dB");
    assert_eq!(p.value_to_text("Vocal level", v), "-6.0 dB");
    let v = p.text_to_value("Accompaniment level", "3.5");
    assert_eq!(p.value_to_text("Accompaniment level", v), "3.5 dB");
    let v = p.text_to_value("Mix", "50%");
    assert_eq!(p.value_to_text("Mix", v), "50%");
    let v = p.text_to_value("Strength", "2.5");
    assert_eq!(p.value_to_text("Strength", v), "2.50");
    let v = p.text_to_value("Output", "Accompaniment");
    assert_eq!(p.value_to_text("Output", v), "Accompaniment");
    // Defaults: vocals out, unity levels, neutral strength, fully wet, not bypassed.
    assert_eq!(p.text("Output"), "Vocals");
    assert_eq!(p.text("Vocal level"), "0.0 dB");
    assert_eq!(p.text("Strength"), "1.00");
    assert_eq!(p.text("Mix"), "100%");
    assert_eq!(p.text("Quality"), "Light");
    assert_eq!(p.text("Worker budget"), "2 hops");
}

/// The full matrix: latency, finite non-silent output, stems summing to the delayed input,
/// mid-block parameter events taking effect at their sample, and state round trips.
#[test]
fn sample_rates_and_block_sizes() {
    let seconds = 0.6;
    for &sr in &SAMPLE_RATES {
        let expected_latency = engine_latency(sr, 2);
        let len = (sr * seconds) as usize;
        let input: Vec<Vec<f32>> = mixture(sr as f32, len).into();
        let mut p = load();
        for &block in &BLOCK_SIZES {
            let what = format!("{sr} Hz, block {block}");
            let proc = p.activate(sr, block as u32, 2);
            let latency = p.latency() as usize;
            assert_eq!(latency, expected_latency, "{what}: reported latency");

            // Run A: default settings.
            let (proc, a) = p.on_audio_thread(proc, |pr| pr.run(&input, &[block], &[]));
            assert_finite(&a, &what);
            assert_stems_sum_to_delayed_input(&a, &input, latency, &what);
            let tail = latency + (0.05 * sr) as usize;
            for c in 0..2 {
                let r = rms(&a.main[c][tail..]);
                assert!(r > 1e-3, "{what}: main output is silent (rms {r})");
                assert!(r < 10.0, "{what}: main output is implausibly loud (rms {r})");
                assert!(rms(&a.vocals[c][tail..]) > 1e-4, "{what}: vocals aux silent");
                assert!(rms(&a.accompaniment[c][tail..]) > 1e-4, "{what}: accomp aux silent");
            }

            // Run B: same input after a reset, with parameter events in the middle of blocks.
            // At t0: Output -> Balance and Vocal level -> -6 dB; at t1: Bypass on.
            let t0 = latency + block * ((0.2 * sr) as usize / block) + block / 3;
            let t1 = t0 + (0.15 * sr) as usize + block / 2;
            let balance = p.text_to_value("Output", "Balance");
            let minus6 = p.text_to_value("Vocal level", "-6 dB");
            let changes = [
                ParamChange { at: t0, id: p.id("Output"), value: balance },
                ParamChange { at: t0, id: p.id("Vocal level"), value: minus6 },
                ParamChange { at: t1, id: p.id("Bypass"), value: 1.0 },
            ];
            let (mut proc, b) = p.on_audio_thread(proc, |pr| {
                pr.reset();
                pr.run(&input, &[block], &changes)
            });
            assert_finite(&b, &what);
            assert_stems_sum_to_delayed_input(&b, &input, latency, &what);
            let settle = (0.1 * sr) as usize; // ten 10 ms time constants
            let g = 10f32.powf(-6.0 / 20.0);
            for c in 0..2 {
                // Nothing changes before the event's sample...
                assert_eq!(&b.main[c][..t0], &a.main[c][..t0], "{what}: output changed before the parameter event");
                // ...the change starts right at it...
                let after = &b.main[c][t0..t0 + settle / 4];
                assert!(
                    max_abs_diff(after, &a.main[c][t0..t0 + settle / 4]) > 1e-4,
                    "{what}: no effect right after the parameter event"
                );
                // ...and settles to the requested blend: main = 0.5 * V + A.
                for i in t0 + settle..t1 {
                    let want = g * b.vocals[c][i] + b.accompaniment[c][i];
                    assert!(
                        (b.main[c][i] - want).abs() < 2e-3,
                        "{what}: ch {c} sample {i}: main {} != -6 dB vocals + accomp {want}",
                        b.main[c][i]
                    );
                }
                // Bypassing crossfades (no click): no step in the output bigger than the
                // steps of the two signals it fades between, plus a hair.
                let jump = |x: &[f32]| x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max);
                let fade = &b.main[c][t1 - 1..t1 + settle];
                let wet_before = &b.main[c][t1 - settle..t1];
                let dry = &input[c][t1 - 1 - latency..t1 + settle - latency];
                assert!(
                    jump(fade) <= jump(wet_before).max(jump(dry)) + 0.01,
                    "{what}: bypass clicks: step {} vs {} / {}",
                    jump(fade),
                    jump(wet_before),
                    jump(dry)
                );
                // Bypass: the latency-aligned dry input.
                for i in t1 + settle..len {
                    let want = input[c][i - latency];
                    assert!(
                        (b.main[c][i] - want).abs() < 2e-3,
                        "{what}: ch {c} sample {i}: bypassed output {} != delayed input {want}",
                        b.main[c][i]
                    );
                }
            }
            assert!(p.value("Bypass") > 0.5, "{what}: bypass event not applied");

            // State: save, load into a fresh instance, compare every parameter; save again
            // and compare the bytes.
            let blob = p.save_state();
            let mut q = load();
            assert!(q.load_state(&blob), "{what}: state load failed");
            assert_eq!(q.all_values(), p.all_values(), "{what}: state round trip");
            assert_eq!(q.save_state(), blob, "{what}: re-saved state differs");

            // Back to defaults for the next block size.
            let defaults = load().save_state();
            assert!(p.load_state(&defaults));
            proc.reset();
            p.deactivate(proc);
        }
    }
}

#[test]
fn mono_layout() {
    let sr = 48_000.0;
    let mut p = load();
    p.select_layout("Mono");
    let ports = p.output_ports();
    assert_eq!(ports.iter().map(|(_, c)| *c).collect::<Vec<_>>(), vec![1, 1, 1], "{ports:?}");
    let proc = p.activate(sr, 512, 1);
    let latency = p.latency() as usize;
    assert_eq!(latency, engine_latency(sr, 1));
    let [l, _] = mixture(sr as f32, (0.5 * sr) as usize);
    let input = vec![l];
    let (proc, out) = p.on_audio_thread(proc, |pr| pr.run(&input, &[512, 17, 300], &[]));
    assert_finite(&out, "mono");
    assert_stems_sum_to_delayed_input(&out, &input, latency, "mono");
    assert!(rms(&out.main[0][latency..]) > 1e-3);

    // Mix 50 % (Output: Vocals): main = 0.5 * vocals + 0.5 * latency-aligned dry input.
    // Strength 3: a sharper mask gives different stems that still sum to the input.
    let changes = [
        ParamChange { at: 0, id: p.id("Mix"), value: p.text_to_value("Mix", "50%") },
        ParamChange { at: 0, id: p.id("Strength"), value: p.text_to_value("Strength", "3") },
    ];
    let (mut proc, mixed) = p.on_audio_thread(proc, |pr| {
        pr.reset();
        pr.run(&input, &[512, 17, 300], &changes)
    });
    assert_finite(&mixed, "mono, mix 50 %");
    assert_stems_sum_to_delayed_input(&mixed, &input, latency, "mono, strength 3");
    assert!(max_abs_diff(&mixed.vocals[0], &out.vocals[0]) > 1e-4, "strength had no effect on the stems");
    for i in latency + (0.1 * sr) as usize..input[0].len() {
        let want = 0.5 * mixed.vocals[0][i] + 0.5 * input[0][i - latency];
        assert!((mixed.main[0][i] - want).abs() < 2e-3, "sample {i}: mix 50 % gave {} not {want}", mixed.main[0][i]);
    }
    proc.reset();
    p.deactivate(proc);
}

/// Builds a CLAP state blob the way nice-plug writes it: little-endian u64 length + JSON.
#[test]
fn corrupt_or_foreign_state_restores_defaults_without_crashing() {
    let sr = 48_000.0;
    let mut p = load();
    let defaults = p.all_values();
    let default_blob = p.save_state();

    let changed = |p: &mut Plugin| {
        let mut blob: serde_json::Value = serde_json::from_slice(&default_blob[8..]).expect("our state is JSON");
        blob["params"]["mix"] = serde_json::json!({ "f32": 0.25 });
        blob["params"]["bypass"] = serde_json::json!({ "bool": true });
        assert!(p.load_state(&clap_state_blob(&blob.to_string())));
        assert_ne!(p.all_values(), defaults);
    };

    // A foreign plugin's state (valid JSON, none of our IDs), out-of-range and non-finite
    // values, wrong types: every parameter falls back to its default.
    let foreign = [
        r#"{"version":"9.9","params":{"gain":{"f32":3.0},"cutoff":{"i32":4}},"fields":{"patch":"\"x\""}}"#.to_owned(),
        r#"{"params":{"mix":{"f32":7.5},"vocal-level":{"f32":-1.0},"output":{"string":"karaoke"},"bypass":{"f32":1.0},"strength":{"i32":3}},"fields":{"weights-path":"42"}}"#.to_owned(),
        r#"{"params":{"mix":{"f32":1e39}},"fields":{}}"#.to_owned(),
    ];
    for json in &foreign {
        changed(&mut p);
        assert!(p.load_state(&clap_state_blob(json)), "foreign state rejected: {json}");
        assert_eq!(p.all_values(), defaults, "foreign state {json} did not restore defaults");
    }

    // Garbage that is not a state at all: nice-plug rejects it before any plugin code runs
    // (load returns false, the host keeps its copy); parameters stay valid, nothing crashes,
    // and the plugin keeps working.
    let noise = isola_engine::synth::white_noise(4096, 3);
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![1, 2, 3],
        clap_state_blob("{not json"),
        clap_state_blob("\u{0}\u{1}binary"),
        u64::MAX.to_le_bytes().to_vec(),
        {
            let mut b = 1000u64.to_le_bytes().to_vec();
            b.extend_from_slice(b"{}");
            b
        },
        noise.iter().map(|x| (x * 127.0 + 128.0) as u8).collect(),
    ];
    changed(&mut p);
    let before = p.all_values();
    for g in &garbage {
        assert!(!p.load_state(g), "garbage state accepted: {g:?}");
        assert_eq!(p.all_values(), before);
    }
    let mut fresh = load();
    for g in &garbage {
        assert!(!fresh.load_state(g));
        assert_eq!(fresh.all_values(), defaults, "a fresh instance must stay at defaults");
    }
    let proc = p.activate(sr, 256, 2);
    let input: Vec<Vec<f32>> = mixture(sr as f32, 24_000).into();
    let (proc, out) = p.on_audio_thread(proc, |pr| pr.run(&input, &[256], &[]));
    assert_finite(&out, "after garbage state");
    assert!(rms(&out.main[0][p.latency() as usize..]) > 1e-3);
    // State loads while active behave the same.
    let mut proc = proc;
    for g in &garbage {
        let _ = p.load_state(g);
    }
    assert!(p.load_state(&clap_state_blob(&foreign[0])));
    assert_eq!(p.all_values(), defaults);
    proc.reset();
    p.deactivate(proc);
}

fn write_weights(dir: &std::path::Path, name: &str, w: &Weights) -> String {
    let path = dir.join(name);
    w.save(&path).unwrap();
    path.to_string_lossy().into_owned()
}

fn state_with_weights_path(p: &mut Plugin, path: Option<&str>) -> Vec<u8> {
    let blob = p.save_state();
    let mut json: serde_json::Value = serde_json::from_slice(&blob[8..]).unwrap();
    json["fields"]["weights-path"] = serde_json::Value::String(serde_json::to_string(&path).unwrap());
    clap_state_blob(&json.to_string())
}

/// Custom weights chosen at run time (through the persisted path): an invalid file leaves the
/// running model untouched; a valid one on the same grid is swapped in while processing, with
/// no restart and the stems still summing to the delayed input; one on another grid asks the
/// host for a restart and re-reports the (new) latency.
#[test]
fn custom_weights_swap_invalid_file_and_latency_change() {
    let sr = 48_000.0;
    let block = 256;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("isola-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let default = isola_engine::embedded::light().unwrap();
    let same_grid = write_weights(
        &dir,
        "custom.safetensors",
        &isola_engine::weights::random_weights(default.meta.model, default.meta.stft, 4242),
    );
    let bad = dir.join("broken.safetensors");
    std::fs::write(&bad, b"this is not a safetensors file").unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let other_stft = isola_engine::StftConfig { fft_size: 2048, hop: 512, ..default.meta.stft };
    let other_grid = write_weights(
        &dir,
        "wide.safetensors",
        &isola_engine::weights::random_weights(isola_engine::ModelConfig::light(&other_stft), other_stft, 7),
    );

    let mut reference = load();
    let mut p = load();
    let input: Vec<Vec<f32>> = mixture(sr as f32, (3.0 * sr) as usize).into();
    let seg = (0.5 * sr) as usize / block * block;
    let mut proc_ref = reference.activate(sr, block as u32, 2);
    let mut proc = p.activate(sr, block as u32, 2);
    let latency = p.latency() as usize;
    let mut pos = 0;
    let run = |pl: &mut Plugin, pr: common::clap::Processor, pos: usize, n: usize| {
        let slice: Vec<Vec<f32>> = input.iter().map(|c| c[pos..pos + n].to_vec()).collect();
        pl.on_audio_thread(pr, move |x| x.run(&slice, &[block], &[]))
    };

    // Segment 1: both run the default model.
    let (pr, a) = run(&mut reference, proc_ref, pos, seg);
    proc_ref = pr;
    let (pr, b) = run(&mut p, proc, pos, seg);
    proc = pr;
    assert_eq!(a.main, b.main);
    pos += seg;

    // Segment 2: an invalid file is chosen: the default model keeps running, bit for bit.
    let blob = state_with_weights_path(&mut p, Some(&bad));
    assert!(p.load_state(&blob));
    let (pr, a) = run(&mut reference, proc_ref, pos, seg);
    proc_ref = pr;
    let (pr, b) = run(&mut p, proc, pos, seg);
    proc = pr;
    assert_eq!(a.main, b.main, "an invalid weights file changed the running model");
    assert!(!p.restart_requested());
    pos += seg;

    // Segment 3: a valid file on the same grid: swapped in while running, no restart. The
    // first block lets the plugin notice the new path; the load then runs in the background.
    let blob = state_with_weights_path(&mut p, Some(&same_grid));
    assert!(p.load_state(&blob));
    let (pr, _) = run(&mut reference, proc_ref, pos, block);
    proc_ref = pr;
    let (pr, _) = run(&mut p, proc, pos, block);
    proc = pr;
    pos += block;
    std::thread::sleep(std::time::Duration::from_millis(500));
    p.pump();
    let (pr, a) = run(&mut reference, proc_ref, pos, 2 * seg);
    proc_ref = pr;
    let (pr, b) = run(&mut p, proc, pos, 2 * seg);
    proc = pr;
    assert!(!p.restart_requested(), "same-grid weights must not need a restart");
    assert_finite(&b, "after swap");
    assert!(max_abs_diff(&a.vocals[0], &b.vocals[0]) > 1e-4, "the custom weights were never swapped in");
    let delayed: Vec<Vec<f32>> = input
        .iter()
        .map(|c| (0..2 * seg).map(|i| if pos + i >= latency { c[pos + i - latency] } else { 0.0 }).collect())
        .collect();
    assert_stems_sum_to_delayed_input(&b, &delayed, 0, "through the swap");
    assert_eq!(p.latency() as usize, latency);
    pos += 2 * seg;
    // The path is persisted.
    let saved: serde_json::Value = serde_json::from_slice(&p.save_state()[8..]).unwrap();
    assert!(saved["fields"]["weights-path"].as_str().unwrap().contains("custom.safetensors"));

    // Segment 4: weights on another STFT grid change the latency: restart, new latency.
    let blob = state_with_weights_path(&mut p, Some(&other_grid));
    assert!(p.load_state(&blob));
    let mut restarted = false;
    for _ in 0..200 {
        let (pr, _) = run(&mut p, proc, pos, block);
        proc = pr;
        if p.restart_requested() {
            restarted = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(restarted, "weights with another latency did not request a restart");
    p.deactivate(proc);
    let changes_before = p.latency_changes();
    let proc = p.activate(sr, block as u32, 2);
    let new_latency = p.latency() as usize;
    let w = Weights::load(&other_grid).unwrap();
    let mut sep = Separator::new(RtMaskNet::new(&w).unwrap());
    sep.prepare(sr as f32, block, 2).unwrap();
    assert_eq!(new_latency, sep.latency_samples());
    assert_ne!(new_latency, latency);
    assert!(p.latency_changes() > changes_before, "host was not told about the new latency");
    let (proc, out) = run(&mut p, proc, 0, seg);
    assert_finite(&out, "other grid");
    p.deactivate(proc);
    reference.deactivate(proc_ref);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Latency (issue 18): each mode runs its own built-in weights, and the plugin reports their
/// latency exactly after the restart a change asks for (≤ 6 ms and ≤ 12 ms at 44.1 and
/// 48 kHz). The main output is, to the sample, the engine's with that mode's weights.
#[test]
fn each_latency_mode_runs_its_weights_and_reports_its_latency() {
    let block = 128;
    for sr in [44_100.0, 48_000.0] {
        let input: Vec<Vec<f32>> = mixture(sr as f32, (0.6 * sr) as usize).into();
        let mut p = load();
        let id = p.id("Latency");
        assert_eq!(p.text("Latency"), LatencyMode::default().to_string());
        let mut proc = p.activate(sr, block as u32, 2);
        let mut reported = Vec::new();
        // Every mode, then back to the default: each change is one restart away.
        for (step, mode) in LatencyMode::ALL.into_iter().chain([LatencyMode::Ms23]).enumerate() {
            if step > 0 {
                let value = p.text_to_value("Latency", &mode.to_string());
                let first = [&input[0][..block], &input[1][..block]];
                let (pr, ()) = p.on_audio_thread(proc, move |x| {
                    let mut out = Rendered::default();
                    x.block(&first, &[(0, id, value)], &mut out);
                });
                proc = pr;
                assert!(p.restart_requested(), "{sr} Hz: Latency = {mode} asked for no restart");
                assert_eq!(p.text("Latency"), mode.to_string());
                let changes = p.latency_changes();
                p.deactivate(proc);
                proc = p.activate(sr, block as u32, 2);
                assert!(p.latency_changes() > changes, "{sr} Hz, {mode}: host not told of the latency");
            }
            let w = mode.light().unwrap();
            let want_latency = w.meta.model.frame_grid(&w.meta.stft).latency_samples(sr, 0);
            let latency = p.latency() as usize;
            assert_eq!(latency, want_latency, "{sr} Hz, Latency = {mode}");
            assert!(latency as f64 * 1e3 / sr <= f64::from(mode.bound_ms()), "{sr} Hz, {mode}: {latency} samples");
            reported.push(latency);
            let data = input.clone();
            let (pr, out) = p.on_audio_thread(proc, move |x| x.run(&data, &[block], &[]));
            proc = pr;
            assert_finite(&out, &format!("{sr} Hz, {mode}"));
            assert_stems_sum_to_delayed_input(&out, &input, latency, &format!("{sr} Hz, {mode}"));
            let want = engine_main_output_with(&w, &input, sr, block);
            for c in 0..2 {
                let err = max_abs_diff(&out.main[c], &want[c]);
                assert!(err < 1e-5, "{sr} Hz, {mode}: main output differs from the engine's by {err}");
            }
            p.deactivate(proc);
            proc = p.activate(sr, block as u32, 2);
        }
        assert!(reported[0] > reported[1] && reported[1] > reported[2] && reported[3] == reported[0], "{reported:?}");
        p.deactivate(proc);
    }
}

/// A host may pass fewer output ports than the plugin declares: only the main port from the
/// first block on (no aux port at all), or a number that changes between blocks. The main
/// output must be the separated signal every time (not the dry input), and ports that were not
/// offered must not be written (nice-plug 0.4.2 read one port past the host's array and wrote
/// the stems through stale pointers, or crashed).
#[test]
fn stems_are_optional_whatever_ports_the_host_passes() {
    let sr = 48_000.0;
    let block = 256;
    let input: Vec<Vec<f32>> = mixture(sr as f32, (0.8 * sr) as usize).into();
    let want = engine_main_output(&input, sr, block);
    let check = |out: &Rendered, what: &str, ports: &[usize]| {
        for c in 0..2 {
            let err = max_abs_diff(&out.main[c], &want[c]);
            assert!(err < 1e-5, "{what}: main output differs from the engine's by {err}");
            let latency = engine_latency(sr, 2);
            let dry: Vec<f32> =
                (0..input[c].len()).map(|i| if i >= latency { input[c][i - latency] } else { 0.0 }).collect();
            let diff: Vec<f32> = out.main[c].iter().zip(&dry).map(|(a, b)| a - b).collect();
            assert!(rms(&diff) > 0.2 * rms(&dry), "{what}: main output is the dry input");
        }
        // Per block: the stems of ports not offered keep the host's NaN fill.
        for (b, &n) in ports.iter().enumerate() {
            let range = b * block..(b + 1) * block;
            for (k, stem) in [&out.vocals, &out.accompaniment].into_iter().enumerate() {
                let offered = n > k + 1;
                for ch in stem {
                    let written = ch[range.clone()].iter().any(|x| !x.is_nan());
                    assert_eq!(written, offered, "{what}: block {b} with {n} ports: stem {k} written = {written}");
                }
            }
        }
    };

    // Only the main port, from the first block of a fresh instance on.
    let mut p = load();
    let proc = p.activate(sr, block as u32, 2);
    let blocks = input[0].len() / block;
    let main_only = vec![1; blocks];
    let run = |pr: &mut common::clap::Processor, ports: &[usize]| {
        let mut out = Rendered::default();
        for (b, &n) in ports.iter().enumerate() {
            pr.output_ports = n;
            let slices: Vec<&[f32]> = input.iter().map(|c| &c[b * block..(b + 1) * block]).collect();
            pr.block(&slices, &[], &mut out);
        }
        out
    };
    let (proc, out) = p.on_audio_thread(proc, |pr| run(pr, &main_only));
    check(&out, "main port only", &main_only);
    p.deactivate(proc);

    // The port count changing between blocks (all, main only, main + Vocals, ...), after the
    // host's arrays held all three ports.
    let proc = p.activate(sr, block as u32, 2);
    let varying: Vec<usize> = (0..blocks).map(|b| [3, 1, 2, 1, 3, 2][b % 6]).collect();
    let (proc, out) = p.on_audio_thread(proc, |pr| run(pr, &varying));
    check(&out, "varying ports", &varying);
    p.deactivate(proc);
}

/// Every rate from 8 kHz to 768 kHz separates with the engine's latency; outside that range
/// the plugin still activates, as a pass-through with latency 0 and silent stems.
#[test]
fn every_sample_rate_activates() {
    for sr in [8_000.0, 22_050.0, 192_000.0, 384_000.0, 768_000.0, 1_234.5678, 4_000.0, 800_000.0, 1_536_000.0] {
        let what = format!("{sr} Hz");
        let mut p = load();
        let block = 512;
        let proc = p.activate(sr, block as u32, 2);
        let input: Vec<Vec<f32>> = mixture(sr as f32, (0.3 * sr).max(4096.0) as usize).into();
        let (proc, out) = p.on_audio_thread(proc, |pr| pr.run(&input, &[block, 7], &[]));
        assert_finite(&out, &what);
        if isola_engine::config::supports_sample_rate(sr) {
            let latency = engine_latency(sr, 2);
            assert_eq!(p.latency() as usize, latency, "{what}");
            assert_stems_sum_to_delayed_input(&out, &input, latency, &what);
            assert!(rms(&out.vocals[0][latency..]) > 1e-4, "{what}: vocals silent");
        } else {
            assert_eq!(p.latency(), 0, "{what}: pass-through reports latency 0");
            for c in 0..2 {
                assert_eq!(out.main[c], input[c], "{what}: pass-through changed the audio");
                assert!(
                    out.vocals[c].iter().chain(&out.accompaniment[c]).all(|&x| x == 0.0),
                    "{what}: stems not silent"
                );
            }
        }
        p.deactivate(proc);
        // The same instance separates again at a supported rate.
        let proc = p.activate(44_100.0, 256, 2);
        assert_eq!(p.latency() as usize, engine_latency(44_100.0, 2), "{what}, then 44.1 kHz");
        p.deactivate(proc);
    }
}
