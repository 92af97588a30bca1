//! Quality = Worker through the CLAP host: the worker's deadline is added to the reported
//! latency (Light, even load: one hop), switching asks the host for a restart, the worker path runs the embedded worker
//! model (checked against the engine), in every latency mode with that mode's weights, and
//! worker weights that do not fit leave the light network running alone.

mod common;

use common::clap::{ParamChange, Plugin, Rendered, clap_state_blob, load_isola};
use common::*;
use isola_engine::embedded::LatencyMode;
use isola_engine::render::Render;
use isola_engine::rt::{RtMaskNet, Separator, SeparatorParams};
use isola_engine::weights::{Weights, random_weights};
use isola_engine::worker::{Worker, WorkerConfig};

const SR: f64 = 48_000.0;
const BLOCK: usize = 256;

fn light_weights() -> Weights {
    isola_engine::embedded::light().unwrap()
}

/// The engine's vocal stem for `input`, light model alone or with the embedded worker
/// (rendered offline: every worker mask waited for), and the separator's latency and hop.
fn engine_vocals(input: &[Vec<f32>], budget: Option<usize>) -> (Vec<Vec<f32>>, usize, usize) {
    engine_vocals_in(LatencyMode::default(), input, budget)
}

/// [`engine_vocals`] with latency `mode`'s built-in light and worker weights.
fn engine_vocals_in(mode: LatencyMode, input: &[Vec<f32>], budget: Option<usize>) -> (Vec<Vec<f32>>, usize, usize) {
    let mut sep = Separator::new(RtMaskNet::new(&mode.light().unwrap()).unwrap());
    let _worker = budget.map(|k| {
        let heavy = mode.worker().unwrap();
        let (worker, link) =
            Worker::spawn(&heavy, WorkerConfig { budget_hops: k, threads: 1, ..Default::default() }).unwrap();
        sep.set_worker(Some(link)).unwrap();
        sep.set_offline(true);
        worker
    });
    sep.prepare(SR as f32, BLOCK, 2).unwrap();
    let render = Render { blocks: &[BLOCK], stem_channels: Some(2), align: false };
    let vocals = render.run(&mut sep, input, &SeparatorParams::default()).vocals;
    (vocals, sep.latency_samples(), sep.hop())
}

/// Sends one block with a parameter change; returns whether the plugin asked for a restart.
fn change(p: &mut Plugin, proc: common::clap::Processor, name: &str, value: f64) -> common::clap::Processor {
    let id = p.id(name);
    let silence = vec![vec![0.0f32; BLOCK]; 2];
    let (proc, _) = p.on_audio_thread(proc, move |x| x.run(&silence, &[BLOCK], &[ParamChange { at: 0, id, value }]));
    proc
}

fn render(p: &mut Plugin, proc: common::clap::Processor, input: &[Vec<f32>]) -> (common::clap::Processor, Rendered) {
    let input = input.to_vec();
    p.on_audio_thread(proc, move |x| x.run(&input, &[BLOCK], &[]))
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().zip(b).map(|(x, y)| max_abs_diff(x, y)).fold(0.0, f32::max)
}

#[test]
fn worker_quality_latency_restart_output_and_fallback() {
    let input: Vec<Vec<f32>> = mixture(SR as f32, (2.0 * SR) as usize).into();
    let (light_out, light_latency, hop) = engine_vocals(&input, None);

    let mut p = load_isola();
    assert_eq!(p.text("Quality"), "Light");
    let proc = p.activate(SR, BLOCK as u32, 2);
    assert_eq!(p.latency() as usize, light_latency);
    let (proc, out) = render(&mut p, proc, &input);
    assert!(max_diff(&out.vocals, &light_out) < 1e-6, "Light is not the light network alone");

    // Switching to Worker changes the latency: the plugin asks the host to restart it.
    let worker_value = p.text_to_value("Quality", "Worker");
    let proc = change(&mut p, proc, "Quality", worker_value);
    assert!(p.restart_requested(), "switching Quality did not request a restart");
    p.deactivate(proc);
    // Offline render: the worker's masks are waited for, so the output is deterministic.
    p.set_offline(true);
    let changes = p.latency_changes();
    let proc = p.activate(SR, BLOCK as u32, 2);
    assert_eq!(p.latency() as usize, light_latency + 2 * hop, "worker deadline (2 hops) not in the latency");
    assert!(p.latency_changes() > changes, "latency change not reported to the host");
    let (proc, out) = render(&mut p, proc, &input);
    let (worker_out, worker_latency, _) = engine_vocals(&input, Some(2));
    assert_eq!(worker_latency, light_latency + 2 * hop);
    let err = max_diff(&out.vocals, &worker_out);
    assert!(err < 1e-5, "plugin worker path differs from the engine's worker path by {err}");
    let shifted: Vec<Vec<f32>> =
        light_out.iter().map(|c| [vec![0.0; 2 * hop], c[..c.len() - 2 * hop].to_vec()].concat()).collect();
    assert!(max_diff(&out.vocals, &shifted) > 1e-3, "Worker output equals the light network's");
    for c in 0..2 {
        let sum: Vec<f32> = out.vocals[c].iter().zip(&out.accompaniment[c]).map(|(v, a)| v + a).collect();
        let delayed: Vec<f32> =
            (0..sum.len()).map(|i| if i >= worker_latency { input[c][i - worker_latency] } else { 0.0 }).collect();
        assert!(max_abs_diff(&sum, &delayed) < 1e-4, "stems do not sum to the delayed input");
        assert!(out.main[c].iter().all(|x| x.is_finite()));
    }

    // A larger budget: more latency.
    let four = p.text_to_value("Worker budget", "4");
    let proc = change(&mut p, proc, "Worker budget", four);
    assert_eq!(p.text("Worker budget"), "4 hops");
    assert!(p.restart_requested());
    p.deactivate(proc);
    let mut proc = p.activate(SR, BLOCK as u32, 2);
    assert_eq!(p.latency() as usize, light_latency + 4 * hop);

    // A host block longer than the budget's hops: the deadline covers the block, since a
    // mask due within the `process` call that analysed its frame is always late.
    // (The budget is 4 hops of 270 samples here: 1024 samples need 4, 2048 need 8.)
    assert_eq!(hop, 270, "the cases below assume the 23 ms grid at 48 kHz");
    for (max_block, hops) in [(1024, 4), (2048, 8)] {
        p.deactivate(proc);
        proc = p.activate(SR, max_block, 2);
        assert_eq!(p.latency() as usize, light_latency + hops * hop, "deadline at {max_block}-sample blocks");
    }

    // Worker weights on another STFT grid cannot replace light masks: light network only,
    // light latency, and the state keeps the chosen path.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("isola-quality-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stft = isola_engine::StftConfig { fft_size: 2048, hop: 512, ..light_weights().meta.stft };
    let other = dir.join("other-grid-worker.safetensors");
    random_weights(isola_engine::ModelConfig::worker(&stft), stft, 3).save(&other).unwrap();
    p.deactivate(proc);
    let blob = p.save_state();
    let mut json: serde_json::Value = serde_json::from_slice(&blob[8..]).unwrap();
    json["fields"]["worker-weights-path"] =
        serde_json::Value::String(serde_json::to_string(&Some(other.to_string_lossy())).unwrap());
    assert!(p.load_state(&clap_state_blob(&json.to_string())));
    let proc = p.activate(SR, BLOCK as u32, 2);
    assert_eq!(p.latency() as usize, light_latency, "a worker that cannot run must not add latency");
    let (proc, out) = render(&mut p, proc, &input);
    assert!(max_diff(&out.vocals, &light_out) < 1e-6, "without a usable worker the output is the light network's");
    let saved: serde_json::Value = serde_json::from_slice(&p.save_state()[8..]).unwrap();
    assert!(saved["fields"]["worker-weights-path"].as_str().unwrap().contains("other-grid-worker"));

    // Back to Light.
    let light_value = p.text_to_value("Quality", "Light");
    let proc = change(&mut p, proc, "Quality", light_value);
    assert!(p.restart_requested());
    p.deactivate(proc);
    p.set_offline(false);
    let proc = p.activate(SR, BLOCK as u32, 2);
    assert_eq!(p.latency() as usize, light_latency);
    p.deactivate(proc);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 18: Quality = Worker in every latency mode runs that mode's built-in worker on the
/// mode's grid: the latency is the mode's light latency plus the worker's two hops, and the
/// output is the engine's worker path with the mode's weights (offline render, so every
/// worker mask is waited for), not the light network's.
#[test]
fn worker_quality_runs_in_every_latency_mode() {
    let input: Vec<Vec<f32>> = mixture(SR as f32, SR as usize).into();
    let mut p = load_isola();
    let worker_value = p.text_to_value("Quality", "Worker");
    let proc = p.activate(SR, BLOCK as u32, 2);
    let mut proc = change(&mut p, proc, "Quality", worker_value);
    p.deactivate(proc);
    p.set_offline(true);
    for mode in LatencyMode::ALL {
        let value = p.text_to_value("Latency", &mode.to_string());
        proc = p.activate(SR, BLOCK as u32, 2);
        proc = change(&mut p, proc, "Latency", value);
        p.deactivate(proc);
        proc = p.activate(SR, BLOCK as u32, 2);
        assert_eq!((p.text("Latency"), p.text("Quality")), (mode.to_string(), "Worker".to_owned()));
        let (light_out, light_latency, hop) = engine_vocals_in(mode, &input, None);
        let (worker_out, worker_latency, _) = engine_vocals_in(mode, &input, Some(2));
        assert_eq!(worker_latency, light_latency + 2 * hop, "{mode}");
        assert_eq!(p.latency() as usize, worker_latency, "{mode}: worker deadline not in the latency");
        let (pr, out) = render(&mut p, proc, &input);
        proc = pr;
        let err = max_diff(&out.vocals, &worker_out);
        assert!(err < 1e-5, "{mode}: plugin worker path differs from the engine's by {err}");
        let shifted: Vec<Vec<f32>> =
            light_out.iter().map(|c| [vec![0.0; 2 * hop], c[..c.len() - 2 * hop].to_vec()].concat()).collect();
        assert!(max_diff(&out.vocals, &shifted) > 1e-3, "{mode}: Worker output equals the light network's");
        p.deactivate(proc);
    }
}

#[test]
fn light_even_load_adds_one_hop_and_delays_the_light_output_by_it() {
    let input: Vec<Vec<f32>> = mixture(SR as f32, SR as usize).into();
    let (light_out, light_latency, hop) = engine_vocals(&input, None);
    let mut p = load_isola();
    let proc = p.activate(SR, BLOCK as u32, 2);
    let even = p.text_to_value("Quality", "Light, even load");
    let proc = change(&mut p, proc, "Quality", even);
    assert_eq!(p.text("Quality"), "Light, even load");
    assert!(p.restart_requested(), "switching Quality did not request a restart");
    p.deactivate(proc);
    let proc = p.activate(SR, BLOCK as u32, 2);
    assert_eq!(p.latency() as usize, light_latency + hop);
    let (proc, out) = render(&mut p, proc, &input);
    // The light network's output, one hop later (the engine test checks it to the bit).
    let shifted: Vec<Vec<f32>> =
        light_out.iter().map(|c| [vec![0.0; hop], c[..c.len() - hop].to_vec()].concat()).collect();
    assert!(max_diff(&out.vocals, &shifted) < 1e-6, "Light, even load is not the light output one hop later");
    assert!(max_diff(&out.vocals, &light_out) > 1e-3);
    p.deactivate(proc);
}
