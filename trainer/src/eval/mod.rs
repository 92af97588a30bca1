//! `isola eval`: the model (through the engine's streaming separator) and
//! the baselines scored on every track, plus the over-tracks summary in
//! museval's convention (median over windows per track, then median over
//! tracks); SI-SDR is the median over tracks and the MDX global SDR the mean,
//! as the MDX challenge averaged it.

pub mod baselines;
pub mod report;

use isola_engine::Weights;
use serde::Serialize;

use crate::audio::Chunks;
use crate::data::TrackAudio;
use crate::metrics::{TrackScores, evaluate_track, mean, nanmedian};
use crate::progress::Progress;
use crate::separate::{Stems, separate_with};
use isola_engine::rt::Precision;

/// Names of the compared methods, in table order.
pub const METHODS: [&str; 4] = ["isola", "mixture", "mid/side", "oracle IRM"];
/// The extra row of `isola eval --worker-weights`: the plugin's Quality = Worker, on float
/// input (with `--input-bits`, the worker row of [`QUANTIZED`] takes its place).
pub const WORKER_METHOD: &str = "isola worker";

/// One method on one track: scores, or why there are none.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    pub method: &'static str,
    pub scores: Option<TrackScores>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrackResult {
    /// The data set (`--data` folder) the track came from.
    pub set: String,
    pub name: String,
    pub seconds: f64,
    pub sample_rate: u32,
    pub channels: usize,
    pub methods: Vec<MethodResult>,
}

/// One method over all tracks that it could be scored on.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub method: &'static str,
    pub tracks: usize,
    pub vocals_sdr: f64,
    pub accompaniment_sdr: f64,
    pub vocals_si_sdr: f64,
    pub accompaniment_si_sdr: f64,
    pub vocals_global_sdr: f64,
    pub accompaniment_global_sdr: f64,
}

/// The summary of the tracks of one data set.
#[derive(Debug, Clone, Serialize)]
pub struct SetSummary {
    pub set: String,
    pub summary: Vec<Summary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The weights' name and the precision they ran at.
    pub weights: String,
    pub tracks: Vec<TrackResult>,
    /// Over all tracks.
    pub summary: Vec<Summary>,
    /// Per data set, in `--data` order, when there is more than one (real songs and fixed
    /// remixes, say, which measure different things).
    pub sets: Vec<SetSummary>,
}

/// The methods of a report, in table order: the one home of that order (`evaluate` scores its
/// rows in it).
pub fn methods(with_worker: bool, quantized: Option<QuantizedRows>) -> Vec<&'static str> {
    let mut m = METHODS.to_vec();
    if with_worker {
        m.insert(1, worker_method(quantized));
    }
    if let Some(q) = quantized {
        m.insert(1, q.light);
    }
    m
}

/// The rows of `isola eval --input-bits N`: the models fed the mixture quantised to N bits, as
/// a user's integer file gives it; the scores are against the same float references.
#[derive(Debug, Clone, Copy)]
pub struct QuantizedRows {
    pub bits: u32,
    /// The light network; the float row [`METHODS`]`[0]` stays beside it (`--max-input-change`
    /// compares the two).
    pub light: &'static str,
    /// Quality = Worker, in place of [`WORKER_METHOD`]: the worker is scored on the input a
    /// user's file gives it, once.
    pub worker: &'static str,
}

/// One entry per input width `isola eval --input-bits` accepts.
pub const QUANTIZED: [QuantizedRows; 2] = [
    QuantizedRows { bits: 16, light: "isola, 16-bit input", worker: "isola worker, 16-bit input" },
    QuantizedRows { bits: 24, light: "isola, 24-bit input", worker: "isola worker, 24-bit input" },
];

/// Input widths `isola eval --input-bits` accepts.
pub const INPUT_BITS: [u32; 2] = [QUANTIZED[0].bits, QUANTIZED[1].bits];

/// The rows of input width `bits`; an error for a width [`INPUT_BITS`] does not list.
fn quantized(bits: u32) -> anyhow::Result<QuantizedRows> {
    QUANTIZED
        .iter()
        .find(|q| q.bits == bits)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("input bits must be one of {INPUT_BITS:?}, got {bits}"))
}

fn worker_method(quantized: Option<QuantizedRows>) -> &'static str {
    quantized.map_or(WORKER_METHOD, |q| q.worker)
}

/// Scores every method on every track, the model's weights in `precision` in the real-time
/// network (plus the worker path when `worker` weights are
/// given, and the model on the mixture quantised to `input_bits`, one of [`INPUT_BITS`]);
/// `sets[i]` names the data set of `tracks[i]`; `bar` advances by track frames.
/// Tracks may live in RAM or in cache files (`data::pool`): one track at a time is read
/// into memory.
pub fn evaluate<S: Chunks>(
    tracks: &[TrackAudio<S>],
    sets: &[String],
    weights: &Weights,
    precision: Precision,
    worker: Option<&Weights>,
    input_bits: Option<u32>,
    bar: &Progress,
) -> anyhow::Result<EvalReport> {
    anyhow::ensure!(sets.len() == tracks.len(), "one data-set name per track");
    let rows = input_bits.map(quantized).transpose()?;
    let names = methods(worker.is_some(), rows);
    let mut results = Vec::with_capacity(tracks.len());
    for (t, set) in tracks.iter().zip(sets) {
        bar.set_message(t.name.clone());
        let t = TrackAudio {
            name: t.name.clone(),
            split: t.split.clone(),
            vocals: t.vocals.to_audio(),
            accompaniment: t.accompaniment.to_audio(),
            source_rate: t.source_rate,
        };
        let mix = t.mixture();
        let quantized_mix = input_bits.map(|bits| mix.quantized(bits));
        let model = separate_with(weights, precision, None, &mix, None)?;
        let mut candidates: Vec<(&'static str, Option<Stems>, &str)> = vec![
            (METHODS[0], Some(model), ""),
            (METHODS[1], Some(baselines::mixture(&mix)), ""),
            (METHODS[2], baselines::mid_side(&mix), "mono track: no stereo image for mid/side"),
            (METHODS[3], Some(baselines::oracle_irm(&t.vocals, &t.accompaniment, &weights.meta.stft)), ""),
        ];
        if let Some(w) = worker {
            let stems = separate_with(weights, precision, Some(w), quantized_mix.as_ref().unwrap_or(&mix), None)?;
            candidates.push((worker_method(rows), Some(stems), ""));
        }
        if let (Some(rows), Some(q)) = (rows, &quantized_mix) {
            let stems = separate_with(weights, precision, None, q, None)?;
            candidates.push((rows.light, Some(stems), ""));
        }
        // In table order, which `methods` alone defines.
        let methods = names
            .iter()
            .map(|&name| {
                let i = candidates
                    .iter()
                    .position(|c| c.0 == name)
                    .ok_or_else(|| anyhow::anyhow!("{}: no separation for the row '{name}'", t.name))?;
                let (method, stems, why_none) = candidates.swap_remove(i);
                Ok(match stems {
                    None => MethodResult { method, scores: None, note: Some(why_none.to_string()) },
                    Some(s) => match evaluate_track(&t.vocals, &t.accompaniment, &s.vocals, &s.accompaniment) {
                        Ok(scores) => MethodResult { method, scores: Some(scores), note: None },
                        Err(e) => MethodResult { method, scores: None, note: Some(e.to_string()) },
                    },
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        results.push(TrackResult {
            set: set.clone(),
            name: t.name.clone(),
            seconds: t.vocals.duration_secs(),
            sample_rate: t.vocals.sample_rate,
            channels: t.vocals.n_channels(),
            methods,
        });
        bar.inc(t.vocals.frames() as u64);
    }
    let summary = names.iter().map(|&m| summarise(m, results.iter())).collect();
    let mut set_names: Vec<&String> = Vec::new();
    for s in sets {
        if !set_names.contains(&s) {
            set_names.push(s);
        }
    }
    let sets = if set_names.len() < 2 {
        Vec::new()
    } else {
        set_names
            .into_iter()
            .map(|set| SetSummary {
                set: set.clone(),
                summary: names.iter().map(|&m| summarise(m, results.iter().filter(|t| &t.set == set))).collect(),
            })
            .collect()
    };
    // The precision is part of what was scored: the same weights score (very slightly)
    // differently in f32 and int8.
    let weights = format!("{} ({} in the real-time network)", weights.meta.provenance.name, precision.name());
    Ok(EvalReport { weights, tracks: results, summary, sets })
}

fn summarise<'a>(method: &'static str, tracks: impl Iterator<Item = &'a TrackResult>) -> Summary {
    let scored: Vec<&TrackScores> =
        tracks.filter_map(|t| t.methods.iter().find(|m| m.method == method).and_then(|m| m.scores.as_ref())).collect();
    let col = |f: &dyn Fn(&TrackScores) -> f64| scored.iter().map(|s| f(s)).collect::<Vec<f64>>();
    Summary {
        method,
        tracks: scored.len(),
        vocals_sdr: nanmedian(&col(&|s| s.vocals.sdr)),
        accompaniment_sdr: nanmedian(&col(&|s| s.accompaniment.sdr)),
        vocals_si_sdr: nanmedian(&col(&|s| s.vocals.si_sdr)),
        accompaniment_si_sdr: nanmedian(&col(&|s| s.accompaniment.si_sdr)),
        vocals_global_sdr: mean(&col(&|s| s.vocals.global_sdr)),
        accompaniment_global_sdr: mean(&col(&|s| s.accompaniment.global_sdr)),
    }
}
