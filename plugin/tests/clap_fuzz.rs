//! Randomised CLAP host fuzz of the built plugin: one driver for the CI test (`cargo test`,
//! debug build) and the long runs of `cargo xtask fuzz` (the `fuzz` profile: optimised, with
//! the same debug assertions). Either way nice-plug's `assert_process_allocs` aborts the
//! process on any allocation inside `process()`, and overflow checks are on.
//!
//! Per block: a random size (log-uniform in 1..=max block: many tiny blocks, some huge; max
//! block up to 8192), random parameter events at random offsets (every automatable parameter;
//! rarely Latency, Quality or Worker budget, which ask for a restart), now and then an input
//! burst (NaN, ±Inf, mixed non-finite, subnormals, ±1e6, ±1e30, full-scale square / noise / DC,
//! digital silence, a mix of all) and, rarely, fewer output ports or a host `reset()`. Between
//! segments of blocks, on the main thread as hosts do: state save and load (round trip, an
//! earlier state, a random one, a damaged one), weights swaps (a state naming another weights
//! file: a copy of the default, other weights on the same grid, weights on another grid
//! (restart, new latency), a broken or a missing file, other worker weights), deactivate and
//! reactivate at another sample rate (some outside the engine's range: pass-through), max block
//! size and channel layout, and every restart the plugin asks for.
//!
//! Checked on every sample: all outputs finite and never subnormal, main output bounded; while
//! separating the stems sum to the (sanitised) input delayed by the latency reported at the
//! last activation; in pass-through the main output is the sanitised input and the stems are
//! silent; ports the host did not offer are never written. After every burst: the separation
//! runs normally again (vocal stem neither silent nor exploding) once the burst has left the
//! delay line. Any failure names the seed and the block.
//!
//! Settings (environment): `ISOLA_FUZZ_SEED` (replays a run: same blocks, inputs, events and
//! host actions; only when a background weights load lands can differ),
//! `ISOLA_FUZZ_BLOCKS` (default 10 000), `ISOLA_FUZZ_MAX_SAMPLES` (stop after this many sample
//! frames; the CI default caps the run, 0 = no cap), `ISOLA_FUZZ_PROGRESS` (blocks between
//! progress lines; 0 = none). `cargo xtask fuzz --blocks N --seed S` sets them.

// Parallel per-channel buffers read clearer with explicit indices.
#![allow(clippy::needless_range_loop)]

mod common;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clack_host::prelude::ClapId;
use common::clap::{ParamSpec, Plugin, Processor, Rendered, clap_state_blob};
use common::*;
use isola_engine::config::supports_sample_rate;
use nice_plug::prelude::{ParamPtr, Params};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const DEFAULT_SEED: u64 = 0x15_01A;
const DEFAULT_BLOCKS: u64 = 10_000;
/// Sample frames the CI run stops at (the debug build runs the network at a few times real time).
const DEFAULT_MAX_SAMPLES: u64 = 12_000_000;
/// Largest block a host asks for here.
const MAX_BLOCK: usize = 8192;
/// Max block sizes of the activations that are not [`MAX_BLOCK`].
const MAX_BLOCKS: [usize; 8] = [1, 16, 64, 256, 1000, 2048, 4096, 8192];
/// Sample rates hosts run at...
const RATES: [f64; 6] = [22_050.0, 44_100.0, 48_000.0, 88_200.0, 96_000.0, 192_000.0];
/// ...and rarer ones, two outside the engine's range (pass-through).
const ODD_RATES: [f64; 7] = [8_000.0, 11_025.0, 32_000.0, 176_400.0, 384_000.0, 4_000.0, 1_000_000.0];
/// Blocks per segment (between two main-thread actions): 1..=this.
const SEGMENT_BLOCKS: usize = 120;
/// Main output bound: inputs are clamped to ±31.6, stem levels reach +12 dB.
const MAIN_BOUND: f32 = 1e3;

/// The block being processed, for the panic hook.
static BLOCK: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, Debug)]
struct Settings {
    seed: u64,
    blocks: u64,
    max_samples: u64,
    progress: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    let s = std::env::var(name).ok()?;
    Some(s.trim().replace('_', "").parse().unwrap_or_else(|_| panic!("{name}={s} is not a whole number")))
}

impl Settings {
    fn from_env() -> Self {
        let blocks = env_u64("ISOLA_FUZZ_BLOCKS");
        let max_samples = match env_u64("ISOLA_FUZZ_MAX_SAMPLES") {
            Some(0) => u64::MAX,
            Some(n) => n,
            None if blocks.is_none() => DEFAULT_MAX_SAMPLES,
            None => u64::MAX,
        };
        Self {
            seed: env_u64("ISOLA_FUZZ_SEED").unwrap_or(DEFAULT_SEED),
            blocks: blocks.unwrap_or(DEFAULT_BLOCKS),
            max_samples,
            progress: env_u64("ISOLA_FUZZ_PROGRESS").unwrap_or(0),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Burst {
    Nan,
    PosInf,
    NegInf,
    MixedNonFinite,
    Subnormal,
    Huge1e6,
    Huge1e30,
    FullScaleSquare,
    FullScaleNoise,
    FullScaleDc,
    Silence,
    Chaos,
}

const BURSTS: [Burst; 12] = [
    Burst::Nan,
    Burst::PosInf,
    Burst::NegInf,
    Burst::MixedNonFinite,
    Burst::Subnormal,
    Burst::Huge1e6,
    Burst::Huge1e30,
    Burst::FullScaleSquare,
    Burst::FullScaleNoise,
    Burst::FullScaleDc,
    Burst::Silence,
    Burst::Chaos,
];

/// Subnormal (and tiny normal) inputs: the guard flushes all of them to zero.
const TINY: [f32; 6] = [1e-40, -1e-40, f32::MIN_POSITIVE / 2.0, -f32::from_bits(1), 1e-38, -1e-31];

fn burst_sample(kind: Burst, clean: f32, at: u64, rng: &mut ChaCha8Rng) -> f32 {
    let alt = if at.is_multiple_of(2) { 1.0 } else { -1.0 };
    match kind {
        Burst::Nan => f32::NAN,
        Burst::PosInf => f32::INFINITY,
        Burst::NegInf => f32::NEG_INFINITY,
        Burst::MixedNonFinite => match rng.random_range(0..4) {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            _ => clean,
        },
        Burst::Subnormal => TINY[(at % TINY.len() as u64) as usize],
        Burst::Huge1e6 => 1e6 * alt,
        Burst::Huge1e30 => 1e30 * alt,
        Burst::FullScaleSquare => {
            if (at / 24).is_multiple_of(2) {
                1.0
            } else {
                -1.0
            }
        }
        Burst::FullScaleNoise => rng.random_range(-1.0f32..1.0).signum(),
        Burst::FullScaleDc => 1.0,
        Burst::Silence => 0.0,
        Burst::Chaos => match rng.random_range(0..8) {
            0 => f32::NAN,
            1 => f32::INFINITY * alt,
            2 => TINY[rng.random_range(0..TINY.len())],
            3 => 1e6 * alt,
            4 => 1e30 * alt,
            5 => alt,
            _ => clean,
        },
    }
}

/// What the plugin feeds the engine (the engine's input guard, as `isola_plugin::dsp::sanitize`).
fn sanitized(x: f32) -> f32 {
    isola_engine::rt::math::guard_input(x).unwrap_or(0.0)
}

fn is_subnormal(x: f32) -> bool {
    x != 0.0 && x.abs() < f32::MIN_POSITIVE
}

/// Log-uniform in 1..=max.
fn block_size(rng: &mut ChaCha8Rng, max: usize) -> usize {
    let l = rng.random_range(0.0..((max as f64) + 1.0).ln());
    (l.exp() as usize).clamp(1, max)
}

/// A random CLAP value for a parameter (whole numbers for stepped ones).
fn random_value(rng: &mut ChaCha8Rng, spec: &ParamSpec) -> f64 {
    if spec.stepped {
        rng.random_range(spec.min.round() as i64..=spec.max.round() as i64) as f64
    } else {
        rng.random_range(spec.min..=spec.max)
    }
}

/// How the host activates the plugin.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Config {
    sample_rate: f64,
    max_block: usize,
    channels: usize,
}

impl Config {
    fn random(rng: &mut ChaCha8Rng) -> Self {
        let sample_rate = if rng.random_bool(0.85) {
            RATES[rng.random_range(0..RATES.len())]
        } else {
            ODD_RATES[rng.random_range(0..ODD_RATES.len())]
        };
        let max_block =
            if rng.random_bool(0.5) { MAX_BLOCK } else { MAX_BLOCKS[rng.random_range(0..MAX_BLOCKS.len())] };
        let channels = if rng.random_bool(0.85) { 2 } else { 1 };
        Self { sample_rate, max_block, channels }
    }
}

/// A post-burst window over which the vocal stem must look normal.
struct Recovery {
    start: u64,
    end: u64,
    kind: Burst,
    sum_sq: f64,
    count: usize,
    in_sum_sq: f64,
    /// Another burst, a reset or a reactivation reaches the output inside the window.
    tainted: bool,
}

#[derive(Default, Clone, Copy)]
struct Stats {
    blocks: u64,
    samples: u64,
    audio_seconds: f64,
    events: u64,
    bursts: u64,
    recoveries_checked: u64,
    recoveries_skipped: u64,
    state_saves: u64,
    state_loads: u64,
    damaged_states: u64,
    reactivations: u64,
    restarts: u64,
    passthrough_activations: u64,
    weights_swaps: u64,
    quality_switches: u64,
    resets: u64,
    fewer_ports: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} blocks, {} samples ({:.0} s of audio), {} parameter events, {} bursts ({} recoveries checked, \
             {} skipped), {} state saves, {} state loads ({} damaged), {} reactivations ({} pass-through), {} \
             restarts asked by the plugin, {} weights swaps, {} quality switches, {} host resets, {} blocks with \
             fewer ports",
            self.blocks,
            self.samples,
            self.audio_seconds,
            self.events,
            self.bursts,
            self.recoveries_checked,
            self.recoveries_skipped,
            self.state_saves,
            self.state_loads,
            self.damaged_states,
            self.reactivations,
            self.passthrough_activations,
            self.restarts,
            self.weights_swaps,
            self.quality_switches,
            self.resets,
            self.fewer_ports
        )
    }
}

/// Weights files a state can name: (light choices, worker choices). `None` = embedded default.
struct WeightsFiles {
    dir: PathBuf,
    light: Vec<Option<String>>,
    worker: Vec<Option<String>>,
}

impl WeightsFiles {
    fn write() -> Self {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("isola-fuzz-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let save = |name: &str, w: &isola_engine::weights::Weights| {
            w.save(dir.join(name)).unwrap_or_else(|e| panic!("writing {name}: {e}"));
            Some(file(name))
        };
        let light = isola_engine::embedded::light().unwrap();
        let copy = save("light-copy.safetensors", &light);
        let same_grid = save(
            "random-same-grid.safetensors",
            &isola_engine::weights::random_weights(light.meta.model, light.meta.stft, 4242),
        );
        let wide_stft = isola_engine::StftConfig { fft_size: 2048, hop: 512, ..light.meta.stft };
        let wide = save(
            "wide-grid.safetensors",
            &isola_engine::weights::random_weights(isola_engine::ModelConfig::light(&wide_stft), wide_stft, 7),
        );
        let worker = save("worker-copy.safetensors", &isola_engine::embedded::worker().unwrap());
        std::fs::write(dir.join("broken.safetensors"), b"this is not a safetensors file").unwrap();
        let broken = Some(file("broken.safetensors"));
        let missing = Some(file("missing.safetensors"));
        Self {
            light: vec![None, copy.clone(), same_grid, wide.clone(), broken.clone(), missing],
            worker: vec![None, worker, copy, wide, broken],
            dir,
        }
    }
}

/// The weights paths of a saved state.
fn paths_of(blob: &[u8]) -> (Value, Value) {
    let json: Value = serde_json::from_slice(&blob[8..]).expect("the plugin's state is JSON");
    (json["fields"]["weights-path"].clone(), json["fields"]["worker-weights-path"].clone())
}

/// A state with these weights paths (persisted fields hold JSON text).
fn set_path(json: &mut Value, key: &str, path: &Option<String>) {
    json["fields"][key] = Value::String(serde_json::to_string(path).unwrap());
}

struct Fuzz<'a> {
    s: Settings,
    music: &'a [Vec<f32>],
    automatable: Vec<ParamSpec>,
    /// Latency, Quality and Worker budget: not automatable, a change asks for a restart.
    restarting: Vec<ParamSpec>,
    all_params: Vec<ParamSpec>,
    files: WeightsFiles,
    cfg: Config,
    latency: usize,
    passthrough: bool,
    /// Per channel: the sanitised input of the last `latency` samples (ring).
    delay: Vec<Vec<f32>>,
    delay_pos: usize,
    burst_left: usize,
    burst_kind: Burst,
    recoveries: Vec<Recovery>,
    input: Vec<Vec<f32>>,
    out: Rendered,
    changes: Vec<(u32, ClapId, f64)>,
    /// Absolute output sample position of the run.
    pos: u64,
    ports: usize,
    quality: f64,
    paths: (Value, Value),
    states: Vec<Vec<u8>>,
    stats: Stats,
    started: Instant,
}

impl Fuzz<'_> {
    fn done(&self) -> bool {
        self.stats.blocks >= self.s.blocks || self.stats.samples >= self.s.max_samples
    }

    /// Where we are, for failure messages.
    fn at(&self) -> String {
        format!(
            "seed {} block {} ({} Hz, max block {}, {} ch, latency {}{}, {} ports, burst {:?} {})",
            self.s.seed,
            self.stats.blocks,
            self.cfg.sample_rate,
            self.cfg.max_block,
            self.cfg.channels,
            self.latency,
            if self.passthrough { ", pass-through" } else { "" },
            self.ports,
            self.burst_kind,
            if self.burst_left > 0 { "on" } else { "off" }
        )
    }

    /// The plugin was (re)activated with `cfg`, or reset: it starts from silence.
    fn activated(&mut self, p: &mut Plugin, cfg: Config) {
        self.cfg = cfg;
        self.latency = p.latency() as usize;
        self.passthrough = !supports_sample_rate(cfg.sample_rate);
        if self.passthrough {
            assert_eq!(self.latency, 0, "{}: pass-through must report latency 0", self.at());
            self.stats.passthrough_activations += 1;
        } else {
            assert!(self.latency > 0, "{}: no latency while separating", self.at());
        }
        let quality = p.value("Quality");
        if quality != self.quality {
            self.stats.quality_switches += 1;
            self.quality = quality;
        }
        self.restart_delay_line();
    }

    fn restart_delay_line(&mut self) {
        self.delay = vec![vec![0.0; self.latency]; self.cfg.channels];
        self.delay_pos = 0;
        for r in &mut self.recoveries {
            r.tainted = true;
        }
    }

    /// One block of the audio thread: input, events, process, checks.
    fn block(&mut self, pr: &mut Processor, rng: &mut ChaCha8Rng) {
        BLOCK.store(self.stats.blocks, Ordering::Relaxed);
        let ch = self.cfg.channels;
        let n = block_size(rng, self.cfg.max_block);
        let sr = self.cfg.sample_rate;
        if rng.random_bool(0.001) {
            pr.reset();
            self.restart_delay_line();
            self.stats.resets += 1;
        }
        self.ports = if rng.random_bool(0.97) { 3 } else { rng.random_range(1..=2) };
        if self.ports < 3 {
            self.stats.fewer_ports += 1;
        }
        pr.output_ports = self.ports;

        if self.burst_left == 0 && rng.random_bool(0.015) {
            self.burst_kind = BURSTS[rng.random_range(0..BURSTS.len())];
            self.burst_left = rng.random_range(1..=3);
            self.stats.bursts += 1;
            let reach = self.pos + self.latency as u64;
            for r in self.recoveries.iter_mut() {
                if reach < r.end {
                    r.tainted = true;
                }
            }
        }
        let in_burst = self.burst_left > 0;
        let music_len = self.music[0].len() as u64;
        for c in 0..ch {
            let src = &self.music[c.min(self.music.len() - 1)];
            let buf = &mut self.input[c];
            buf.clear();
            for i in 0..n as u64 {
                let clean = src[((self.pos + i) % music_len) as usize];
                buf.push(if in_burst { burst_sample(self.burst_kind, clean, self.pos + i, rng) } else { clean });
            }
        }
        if in_burst {
            self.burst_left -= 1;
            if self.burst_left == 0 && !self.passthrough {
                // Judge the stems from when the burst has left the delay line plus a quarter
                // second (network state and smoothing), over half a second.
                let start = self.pos + (n + self.latency) as u64 + (0.25 * sr) as u64;
                self.recoveries.push(Recovery {
                    start,
                    end: start + (0.5 * sr) as u64,
                    kind: self.burst_kind,
                    sum_sq: 0.0,
                    count: 0,
                    in_sum_sq: 0.0,
                    tainted: false,
                });
            }
        }

        self.changes.clear();
        if rng.random_bool(0.3) {
            for _ in 0..rng.random_range(1..=4) {
                let spec = &self.automatable[rng.random_range(0..self.automatable.len())];
                self.changes.push((rng.random_range(0..n as u32), spec.id, random_value(rng, spec)));
            }
        }
        if rng.random_bool(0.0005) {
            let spec = &self.restarting[rng.random_range(0..self.restarting.len())];
            self.changes.push((rng.random_range(0..n as u32), spec.id, random_value(rng, spec)));
        }
        self.changes.sort_by_key(|c| c.0);
        self.stats.events += self.changes.len() as u64;

        for port in [&mut self.out.main, &mut self.out.vocals, &mut self.out.accompaniment] {
            port.iter_mut().for_each(Vec::clear);
        }
        let slices: [&[f32]; 2] = [&self.input[0], &self.input[ch - 1]];
        pr.block(&slices[..ch], &self.changes, &mut self.out);
        self.check(n);

        self.pos += n as u64;
        self.stats.blocks += 1;
        self.stats.samples += n as u64;
        self.stats.audio_seconds += n as f64 / sr;
        self.judge_recoveries();
        if self.s.progress > 0 && self.stats.blocks.is_multiple_of(self.s.progress) {
            self.progress();
        }
    }

    fn check(&mut self, n: usize) {
        let l = self.latency;
        let (vocals_on, accomp_on) = (self.ports >= 2, self.ports >= 3);
        for c in 0..self.cfg.channels {
            let (main, voc, acc) = (&self.out.main[c], &self.out.vocals[c], &self.out.accompaniment[c]);
            let mut k = self.delay_pos;
            for i in 0..n {
                let at = self.pos + i as u64;
                let s = sanitized(self.input[c][i]);
                let (m, v, a) = (main[i], voc[i], acc[i]);
                let bad = |x: f32, on: bool| if on { !x.is_finite() || is_subnormal(x) } else { !x.is_nan() };
                if bad(m, true) || bad(v, vocals_on) || bad(a, accomp_on) {
                    panic!(
                        "{}: ch {c} sample {at}: main {m:e}, vocals {v:e}, accompaniment {a:e} (non-finite or \
                         subnormal, or written to a port the host did not offer)",
                        self.at()
                    );
                }
                assert!(m.abs() <= MAIN_BOUND, "{}: ch {c} sample {at}: main output {m}", self.at());
                if self.passthrough {
                    assert!(
                        m == s && (!vocals_on || v == 0.0) && (!accomp_on || a == 0.0),
                        "{}: ch {c} sample {at}: pass-through gave main {m} (want {s}), stems {v} {a} (want 0)",
                        self.at()
                    );
                    continue;
                }
                let d = if l == 0 {
                    s
                } else {
                    let d = std::mem::replace(&mut self.delay[c][k], s);
                    k = if k + 1 == l { 0 } else { k + 1 };
                    d
                };
                if accomp_on {
                    let err = (v + a - d).abs();
                    assert!(
                        err <= 1e-4 * (1.0 + d.abs() + v.abs()),
                        "{}: ch {c} sample {at}: vocals {v} + accompaniment {a} != delayed input {d}",
                        self.at()
                    );
                }
                if c == 0 && vocals_on {
                    for r in self.recoveries.iter_mut() {
                        if at >= r.start && at < r.end {
                            r.sum_sq += (v as f64).powi(2);
                            r.in_sum_sq += (d as f64).powi(2);
                            r.count += 1;
                        }
                    }
                }
            }
        }
        if l > 0 {
            self.delay_pos = (self.delay_pos + n) % l;
        }
    }

    /// Judges finished recovery windows (skipping those something else ran into).
    fn judge_recoveries(&mut self) {
        let pos = self.pos;
        if !self.recoveries.iter().any(|r| pos >= r.end || r.tainted) {
            return;
        }
        let at = self.at();
        let stats = &mut self.stats;
        self.recoveries.retain(|r| {
            if pos < r.end && !r.tainted {
                return true;
            }
            if r.tainted || r.count == 0 || r.in_sum_sq == 0.0 {
                stats.recoveries_skipped += 1;
                return false;
            }
            let v_rms = (r.sum_sq / r.count as f64).sqrt();
            let in_rms = (r.in_sum_sq / r.count as f64).sqrt();
            assert!(
                v_rms > 1e-3 * in_rms && v_rms < 4.0 * in_rms,
                "{at}: no recovery after a {:?} burst: vocal stem rms {v_rms} vs input rms {in_rms} at samples {}..{}",
                r.kind,
                r.start,
                r.end
            );
            stats.recoveries_checked += 1;
            false
        });
    }

    fn progress(&self) {
        let wall = self.started.elapsed().as_secs_f64();
        eprintln!(
            "fuzz: seed {}: {}/{} blocks, {:.0} s of audio, {} bursts, {} weights swaps, {} reactivations, {} \
             state loads, {:.0} s wall ({:.0} blocks/s, {:.1}x real time)",
            self.s.seed,
            self.stats.blocks,
            self.s.blocks,
            self.stats.audio_seconds,
            self.stats.bursts,
            self.stats.weights_swaps,
            self.stats.reactivations,
            self.stats.state_loads,
            wall,
            self.stats.blocks as f64 / wall,
            self.stats.audio_seconds / wall
        );
    }

    /// Loads a state on the main thread; keeps track of weights swaps. Returns whether the
    /// plugin took it.
    fn load(&mut self, p: &mut Plugin, blob: &[u8]) -> bool {
        let ok = p.load_state(blob);
        self.stats.state_loads += 1;
        // Whatever the blob held, every parameter must be a valid value afterwards.
        for spec in &self.all_params {
            let v = p.value(&spec.name);
            assert!(
                v.is_finite() && v >= spec.min && v <= spec.max,
                "{}: after a state load '{}' = {v} (range {}..={})",
                self.at(),
                spec.name,
                spec.min,
                spec.max
            );
        }
        let paths = paths_of(&p.save_state());
        if paths != self.paths {
            self.stats.weights_swaps += 1;
            self.paths = paths;
        }
        ok
    }

    /// A state with random parameter values (now and then a value the plugin must repair)
    /// and perhaps other weights.
    fn random_state(&self, p: &mut Plugin, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let mut json: Value = serde_json::from_slice(&p.save_state()[8..]).unwrap();
        let defaults = isola_plugin::params::IsolaParams::default();
        for (id, ptr, _) in defaults.param_map() {
            let restarting = ["latency", "quality", "worker-budget"].contains(&id.as_str());
            if !rng.random_bool(if restarting { 0.2 } else { 0.6 }) {
                continue;
            }
            let value = if rng.random_bool(0.05) {
                [json!({"f32": 1e30}), json!({"string": "nonsense"}), json!({"i32": -7}), json!({"bool": true})]
                    [rng.random_range(0..4)]
                .clone()
            } else {
                let normalized: f32 = rng.random();
                // SAFETY: `ptr` points into `defaults`, alive for this loop.
                unsafe {
                    let plain = ptr.preview_plain(normalized);
                    match ptr {
                        ParamPtr::FloatParam(_) => json!({ "f32": plain }),
                        ParamPtr::IntParam(_) | ParamPtr::EnumParam(_) => json!({ "i32": plain.round() as i32 }),
                        ParamPtr::BoolParam(_) => json!({ "bool": plain >= 0.5 }),
                    }
                }
            };
            json["params"][id.as_str()] = value;
        }
        if rng.random_bool(0.3) {
            set_path(&mut json, "weights-path", &self.files.light[rng.random_range(0..self.files.light.len())]);
        }
        if rng.random_bool(0.15) {
            set_path(
                &mut json,
                "worker-weights-path",
                &self.files.worker[rng.random_range(0..self.files.worker.len())],
            );
        }
        clap_state_blob(&json.to_string())
    }

    /// What a host does between two stretches of audio, on the main thread.
    fn between_segments(&mut self, p: &mut Plugin, mut proc: Processor, rng: &mut ChaCha8Rng) -> Processor {
        let roll: f64 = rng.random();
        if roll < 0.30 {
            // Nothing: the host just keeps going.
        } else if roll < 0.45 {
            // Save, load it back: same values, same bytes.
            let blob = p.save_state();
            self.stats.state_saves += 1;
            let values = p.all_values();
            assert!(self.load(p, &blob), "{}: the plugin refused its own state", self.at());
            assert_eq!(p.all_values(), values, "{}: state round trip changed parameters", self.at());
            assert_eq!(p.save_state(), blob, "{}: re-saved state differs", self.at());
            self.states.push(blob);
            if self.states.len() > 8 {
                self.states.remove(0);
            }
        } else if roll < 0.55 {
            // An earlier state (a project reopened, an undo).
            if !self.states.is_empty() {
                let blob = self.states[rng.random_range(0..self.states.len())].clone();
                assert!(self.load(p, &blob), "{}: the plugin refused an earlier state of its own", self.at());
            }
        } else if roll < 0.63 {
            let blob = self.random_state(p, rng);
            assert!(self.load(p, &blob), "{}: random state refused", self.at());
        } else if roll < 0.75 {
            // Weights swap: a state naming other light (or worker) weights.
            let mut json: Value = serde_json::from_slice(&p.save_state()[8..]).unwrap();
            if rng.random_bool(0.75) {
                set_path(&mut json, "weights-path", &self.files.light[rng.random_range(0..self.files.light.len())]);
            } else {
                let choice = &self.files.worker[rng.random_range(0..self.files.worker.len())];
                set_path(&mut json, "worker-weights-path", choice);
            }
            assert!(self.load(p, &clap_state_blob(&json.to_string())), "{}: weights state refused", self.at());
        } else if roll < 0.78 {
            // Damaged or foreign state: refused or repaired, never a crash or an invalid value.
            let mut own = p.save_state();
            let damaged = match rng.random_range(0..6) {
                0 => Vec::new(),
                1 => {
                    own.truncate(rng.random_range(0..own.len()));
                    own
                }
                2 => {
                    for _ in 0..rng.random_range(1..8) {
                        let i = rng.random_range(0..own.len());
                        own[i] = rng.random();
                    }
                    own
                }
                3 => u64::MAX.to_le_bytes().to_vec(),
                4 => clap_state_blob(r#"{"version":"9.9","params":{"gain":{"f32":3.0}},"fields":{"patch":"\"x\""}}"#),
                _ => (0..rng.random_range(0..256)).map(|_| rng.random()).collect(),
            };
            self.load(p, &damaged);
            self.stats.damaged_states += 1;
        } else if roll < 0.93 {
            let cfg = Config::random(rng);
            p.deactivate(proc);
            if cfg.channels != self.cfg.channels {
                p.select_layout(if cfg.channels == 1 { "Mono" } else { "Stereo" });
            }
            proc = p.activate(cfg.sample_rate, cfg.max_block as u32, cfg.channels);
            self.stats.reactivations += 1;
            self.activated(p, cfg);
        }
        // A restart the plugin asked for (Quality, weights on another grid): like a DAW, at
        // the next opportunity, with the same settings.
        if p.restart_requested() {
            p.deactivate(proc);
            proc = p.activate(self.cfg.sample_rate, self.cfg.max_block as u32, self.cfg.channels);
            self.stats.restarts += 1;
            let cfg = self.cfg;
            self.activated(p, cfg);
        }
        proc
    }
}

#[test]
fn random_blocks_params_state_reactivation_and_weights_swaps() {
    let s = Settings::from_env();
    let seed = s.seed;
    eprintln!("ISOLA_FUZZ_SEED={seed} ({} blocks, at most {} samples)", s.blocks, s.max_samples);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!(
            "fuzz FAILED at block {} with seed {seed}: replay with ISOLA_FUZZ_SEED={seed} (or cargo xtask fuzz --seed {seed})",
            BLOCK.load(Ordering::Relaxed)
        );
    }));

    let mut p = Plugin::load(&bundle("clap"));
    let specs = p.param_specs();
    let restarting_names = ["Latency", "Quality", "Worker budget"];
    let automatable: Vec<ParamSpec> = specs.iter().filter(|s| s.automatable).cloned().collect();
    let restarting: Vec<ParamSpec> =
        specs.iter().filter(|s| restarting_names.contains(&s.name.as_str())).cloned().collect();
    assert!(automatable.len() >= 6, "automatable parameters: {automatable:?}");
    assert_eq!(restarting.len(), 3, "{specs:?}");

    // Ten seconds of music, looped (at whatever rate the host runs).
    let music: Vec<Vec<f32>> = mixture(48_000.0, 480_000).into();
    let cfg = Config { sample_rate: 48_000.0, max_block: MAX_BLOCK, channels: 2 };
    let mut proc = p.activate(cfg.sample_rate, cfg.max_block as u32, cfg.channels);
    let initial_state = p.save_state();
    let mut fuzz = Fuzz {
        s,
        music: &music,
        automatable,
        restarting,
        all_params: specs,
        files: WeightsFiles::write(),
        cfg,
        latency: 0,
        passthrough: false,
        delay: Vec::new(),
        delay_pos: 0,
        burst_left: 0,
        burst_kind: Burst::Nan,
        recoveries: Vec::new(),
        input: (0..2).map(|_| Vec::with_capacity(MAX_BLOCK)).collect(),
        out: Rendered::default(),
        changes: Vec::new(),
        pos: 0,
        ports: 3,
        quality: p.value("Quality"),
        paths: paths_of(&initial_state),
        states: vec![initial_state],
        stats: Stats::default(),
        started: Instant::now(),
    };
    fuzz.activated(&mut p, cfg);

    // Segment k draws from its own stream: when a background load lands (timing) cannot
    // change what later segments do.
    let mut segment = 0u64;
    while !fuzz.done() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(segment);
        segment += 1;
        if segment > 1 {
            proc = fuzz.between_segments(&mut p, proc, &mut rng);
        }
        let blocks = rng.random_range(1..=SEGMENT_BLOCKS);
        let f = &mut fuzz;
        let (pr, ()) = p.on_audio_thread(proc, move |pr| {
            for _ in 0..blocks {
                if f.done() {
                    break;
                }
                f.block(pr, &mut rng);
            }
        });
        proc = pr;
    }
    p.deactivate(proc);
    let stats = fuzz.stats;
    let wall = fuzz.started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz done: seed {seed}: {stats}; {wall:.1} s wall ({:.0} blocks/s, {:.1}x real time)",
        stats.blocks as f64 / wall,
        stats.audio_seconds / wall
    );
    let _ = std::fs::remove_dir_all(&fuzz.files.dir);

    // A run this long must have exercised everything (the CI run and longer).
    if stats.blocks >= 5_000 {
        assert!(stats.bursts >= 20, "too few bursts to mean anything: {stats}");
        // Most windows overlap the next burst, a reset or a reactivation and are skipped.
        assert!(stats.recoveries_checked >= (stats.bursts / 10).max(5), "too few recoveries checked: {stats}");
        assert!(stats.reactivations >= 3 && stats.weights_swaps >= 3 && stats.state_loads >= 5, "{stats}");
    }
}
