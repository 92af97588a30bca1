//! Isola's host-visible parameters and the non-parameter state (custom weights path).
//!
//! Parameter IDs are part of every saved project and automation lane: never rename them.
//! Smoothing: the values are handed to the engine once per (sub-)block and the engine ramps
//! gains, mix and bypass per sample (~10 ms) where they are applied, and the mask strength per
//! STFT frame (overlap-add crossfades frames), so nice-plug smoothers would only add a second,
//! redundant ramp. With `SAMPLE_ACCURATE_AUTOMATION` the wrapper splits blocks at every
//! parameter event, so a ramp starts at the event's sample.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use isola_engine::embedded::LatencyMode;
use isola_engine::rt::link::DEFAULT_BUDGET_HOPS;
use isola_engine::rt::{MAX_STRENGTH, OutputMode, SeparatorParams};
use nice_plug::params::persist::PersistentField;
use nice_plug::plugin::ParamValue;
use nice_plug::prelude::*;

/// Lowest level offered for the two stem levels; the top is +12 dB.
pub const MIN_LEVEL_DB: f32 = -60.0;
pub const MAX_LEVEL_DB: f32 = 12.0;

/// What the main output carries.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Only the vocal estimate (the accompaniment level is ignored).
    #[id = "vocals"]
    Vocals,
    /// Only the accompaniment estimate (the vocal level is ignored).
    #[id = "accompaniment"]
    Accompaniment,
    /// Vocal level * vocals + accompaniment level * accompaniment.
    #[id = "balance"]
    Balance,
}

impl From<Output> for OutputMode {
    fn from(o: Output) -> Self {
        match o {
            Output::Vocals => OutputMode::Vocals,
            Output::Accompaniment => OutputMode::Accompaniment,
            Output::Balance => OutputMode::Balance,
        }
    }
}

/// Which network computes the masks.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// The light network on the audio thread only: lowest latency.
    #[id = "light"]
    Light,
    /// The light network with its work spread over every audio block of a hop, instead of
    /// one block per hop carrying a whole network step: an even CPU load at small buffer
    /// sizes, for one hop more latency (5.8 ms at 48 kHz).
    #[id = "light-even"]
    #[name = "Light, even load"]
    LightEven,
    /// The heavier network on the inference worker thread (GPU when built for one), with
    /// the light network standing in for every frame the worker delivers late. Adds
    /// `Worker budget` hops of latency, or as many as the host's largest block spans.
    #[id = "worker"]
    Worker,
}

/// The algorithmic latency: which built-in light weights run (the engine's
/// [`LatencyMode`]; the IDs are its names). A custom weights file runs at its own grid's
/// latency whatever this says.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// 22.8 ms at 44.1 kHz: the best separation.
    #[id = "23ms"]
    #[name = "23 ms"]
    Ms23,
    /// 11.4 ms at 44.1 kHz.
    #[id = "12ms"]
    #[name = "12 ms"]
    Ms12,
    /// 5.7 ms at 44.1 kHz, for live monitoring.
    #[id = "6ms"]
    #[name = "6 ms"]
    Ms6,
}

impl From<Latency> for LatencyMode {
    fn from(l: Latency) -> Self {
        match l {
            Latency::Ms23 => LatencyMode::Ms23,
            Latency::Ms12 => LatencyMode::Ms12,
            Latency::Ms6 => LatencyMode::Ms6,
        }
    }
}

/// Range of the worker's deadline in hops.
pub const MAX_WORKER_BUDGET: i32 = 8;

#[derive(Params)]
pub struct IsolaParams {
    #[id = "output"]
    pub output: EnumParam<Output>,
    /// Linear gain (shown and entered in dB).
    #[id = "vocal-level"]
    pub vocal_level: FloatParam,
    /// Linear gain (shown and entered in dB).
    #[id = "accomp-level"]
    pub accompaniment_level: FloatParam,
    /// Mask sharpness: above 1 less bleed but more artifacts, below 1 the reverse.
    #[id = "strength"]
    pub strength: FloatParam,
    /// 0 = dry (latency aligned), 1 = fully processed.
    #[id = "mix"]
    pub mix: FloatParam,
    /// Latency-compensated bypass (the engine crossfades to the delayed dry signal).
    #[id = "bypass"]
    pub bypass: BoolParam,
    /// The latency mode of the built-in weights. Changes the latency, so it applies through a
    /// host restart and is not automatable.
    #[id = "latency"]
    pub latency: EnumParam<Latency>,
    /// Light / Worker. Changes the latency, so it applies through a host restart and is not
    /// automatable.
    #[id = "quality"]
    pub quality: EnumParam<Quality>,
    /// The worker's deadline in hops (added latency), raised to cover the host's largest block
    /// (`inference::deadline_hops`); applies through a host restart.
    #[id = "worker-budget"]
    pub worker_budget: IntParam,
    /// Custom weights file chosen by the user; `None` = the embedded default weights.
    /// Persisted with the plugin state. Setting it (state restore, or a future editor) bumps a
    /// generation counter that the audio thread watches to start a background load.
    #[persist = "weights-path"]
    pub weights_path: WeightsPath,
    /// Custom weights for the worker's network; `None` = the embedded default worker weights.
    #[persist = "worker-weights-path"]
    pub worker_weights_path: WeightsPath,
}

impl Default for IsolaParams {
    fn default() -> Self {
        Self {
            output: EnumParam::new("Output", Output::Vocals),
            vocal_level: level_param("Vocal level"),
            accompaniment_level: level_param("Accompaniment level"),
            strength: FloatParam::new(
                "Strength",
                1.0,
                FloatRange::Skewed {
                    min: 0.0,
                    max: MAX_STRENGTH,
                    // Puts the neutral value 1 near the middle of the knob.
                    factor: FloatRange::skew_factor(-1.0),
                },
            )
            .with_step_size(0.01)
            .with_value_to_string(formatters::v2s_f32_rounded(2))
            .with_string_to_value(Arc::new(|s: &str| s.trim().trim_end_matches(['x', 'X']).trim().parse().ok())),
            mix: FloatParam::new("Mix", 1.0, FloatRange::Linear { min: 0.0, max: 1.0 })
                .with_unit("%")
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage()),
            bypass: BoolParam::new("Bypass", false)
                .with_value_to_string(formatters::v2s_bool_bypass())
                .with_string_to_value(formatters::s2v_bool_bypass())
                .make_bypass(),
            latency: EnumParam::new("Latency", Latency::Ms23).non_automatable(),
            quality: EnumParam::new("Quality", Quality::Light).non_automatable(),
            worker_budget: IntParam::new(
                "Worker budget",
                DEFAULT_BUDGET_HOPS as i32,
                IntRange::Linear { min: 1, max: MAX_WORKER_BUDGET },
            )
            .with_unit(" hops")
            .non_automatable(),
            weights_path: WeightsPath::default(),
            worker_weights_path: WeightsPath::default(),
        }
    }
}

fn level_param(name: &str) -> FloatParam {
    FloatParam::new(
        name,
        1.0,
        FloatRange::Skewed {
            min: util::db_to_gain(MIN_LEVEL_DB),
            max: util::db_to_gain(MAX_LEVEL_DB),
            factor: FloatRange::gain_skew_factor(MIN_LEVEL_DB, MAX_LEVEL_DB),
        },
    )
    .with_unit(" dB")
    .with_value_to_string(formatters::v2s_f32_gain_to_db(1))
    .with_string_to_value(formatters::s2v_f32_gain_to_db())
}

impl IsolaParams {
    /// Current values as engine parameters. Audio thread: reads atomics only.
    pub fn separator_params(&self) -> SeparatorParams {
        SeparatorParams {
            output: self.output.value().into(),
            vocal_gain: self.vocal_level.value(),
            accompaniment_gain: self.accompaniment_level.value(),
            strength: self.strength.value(),
            mix: self.mix.value(),
            bypass: self.bypass.value(),
        }
    }
}

/// The persisted custom weights path plus a change counter.
#[derive(Default)]
pub struct WeightsPath {
    path: RwLock<Option<String>>,
    /// Incremented on every `set`; compared by the audio thread (one atomic load per block).
    generation: AtomicU64,
}

impl WeightsPath {
    /// The chosen path (`None` = embedded default). Not for the audio thread (locks, clones).
    pub fn get(&self) -> Option<String> {
        // A poisoned lock only means a panic elsewhere while holding it; the value is intact.
        self.path.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Chooses a new weights file (`None` = embedded default); the plugin loads it in the
    /// background and swaps it in at a frame boundary. Not for the audio thread.
    pub fn choose(&self, path: Option<String>) {
        *self.path.write().unwrap_or_else(|e| e.into_inner()) = path;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Change counter. Audio thread: one atomic load.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Path and generation read together, so a loader knows which request it serves.
    /// Not for the audio thread.
    pub fn snapshot(&self) -> (Option<String>, u64) {
        let guard = self.path.read().unwrap_or_else(|e| e.into_inner());
        (guard.clone(), self.generation())
    }
}

impl<'a> PersistentField<'a, Option<String>> for WeightsPath {
    fn set(&self, new_value: Option<String>) {
        self.choose(new_value);
    }

    fn map<F, R>(&self, f: F) -> R
    where
        F: Fn(&Option<String>) -> R,
    {
        f(&self.path.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Repairs a state blob before nice-plug applies it (`Plugin::filter_state`): a foreign or
/// damaged blob (unknown IDs, wrong value types, non-finite or out-of-range numbers) must not
/// leave parameters at stale or invalid values, so every parameter that is missing or invalid
/// gets its default, and a blob with none of our parameters restores all defaults.
pub fn sanitize_state(state: &mut PluginState) {
    let defaults = IsolaParams::default();
    let mut valid = std::collections::BTreeMap::new();
    for (id, ptr, _group) in defaults.param_map() {
        // SAFETY: the pointers come from `defaults`, which outlives this loop and is thrown away.
        let value = match state.params.get(&id) {
            Some(v) if unsafe { value_fits(v, ptr) } => v.clone(),
            _ => unsafe { default_value(ptr) },
        };
        valid.insert(id, value);
    }
    state.params = valid;
    // Keep only our persisted fields; the weights paths must be JSON strings or null.
    let mut fields = std::collections::BTreeMap::new();
    for key in ["weights-path", "worker-weights-path"] {
        let path = state
            .fields
            .get(key)
            .filter(|json| serde_json::from_str::<Option<String>>(json).is_ok())
            .cloned()
            .unwrap_or_else(|| "null".to_owned());
        fields.insert(key.to_owned(), path);
    }
    state.fields = fields.into_iter().collect();
}

/// # Safety
/// `ptr` must point to a live parameter.
unsafe fn default_value(ptr: ParamPtr) -> ParamValue {
    unsafe {
        match ptr {
            ParamPtr::FloatParam(p) => ParamValue::F32((*p).default_plain_value()),
            ParamPtr::IntParam(p) => ParamValue::I32((*p).default_plain_value()),
            ParamPtr::BoolParam(p) => ParamValue::Bool((*p).default_plain_value()),
            // nice-plug accepts a variant index for enums as well as the stable ID.
            ParamPtr::EnumParam(p) => ParamValue::I32((*p).default_plain_value()),
        }
    }
}

/// Whether a stored value has the right type and lies in the parameter's range.
///
/// # Safety
/// `ptr` must point to a live, throw-away parameter: for enums it is set to test the ID.
unsafe fn value_fits(v: &ParamValue, ptr: ParamPtr) -> bool {
    unsafe {
        match (ptr, v) {
            (ParamPtr::FloatParam(p), ParamValue::F32(x)) => {
                let r = (*p).range();
                let (lo, hi) = (r.unnormalize(0.0), r.unnormalize(1.0));
                x.is_finite() && *x >= lo && *x <= hi
            }
            (ParamPtr::BoolParam(_), ParamValue::Bool(_)) => true,
            (ParamPtr::EnumParam(p), ParamValue::String(s)) => (*p).set_from_id(s),
            (ParamPtr::EnumParam(p), ParamValue::I32(i)) => *i >= 0 && (*i as usize) < (*p).len(),
            (ParamPtr::IntParam(p), ParamValue::I32(i)) => {
                let r = (*p).range();
                *i >= r.unnormalize(0.0) && *i <= r.unnormalize(1.0)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The saved IDs and shown names are the engine's: one name per mode everywhere.
    #[test]
    fn latency_ids_and_names_are_the_engine_modes() {
        let ids = Latency::ids().expect("stable IDs");
        assert_eq!(ids.len(), LatencyMode::ALL.len());
        for (i, id) in ids.iter().enumerate() {
            let mode = LatencyMode::from(Latency::from_index(i));
            assert_eq!(mode, LatencyMode::ALL[i]);
            assert_eq!(*id, mode.name());
            assert_eq!(Latency::variants()[i], mode.to_string());
        }
    }
}
