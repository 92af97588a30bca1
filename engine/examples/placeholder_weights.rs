//! Writes untrained weights (deterministic random initialisation, clearly labelled
//! PLACEHOLDER) for a chosen STFT grid and model size. Uses: a weights file of a given grid
//! for `isola eval`'s oracle-mask ceiling at that grid (docs/exploration.md), and tests by hand.
//! The embedded defaults are trained (assets/weights/*.toml); this never writes them unless
//! asked to.
//!
//! `cargo run -p isola-engine --example placeholder_weights [OUT] [--worker] [--fft N --hop H]`
//! (`--worker`: the worker model's size instead of the light one.)

use isola_engine::config::{ModelConfig, StftConfig};
use isola_engine::weights::{Provenance, random_weights};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name);
    let number = |name: &str| flag(name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<usize>().ok());
    let out = args.first().filter(|a| !a.starts_with("--")).cloned();
    let out = out.unwrap_or_else(|| "assets/weights/default.safetensors".into());
    let mut stft = StftConfig::default();
    if let (Some(fft_size), Some(hop)) = (number("--fft"), number("--hop")) {
        stft = StftConfig { fft_size, hop, ..stft };
    }
    let model = if flag("--worker").is_some() { ModelConfig::worker(&stft) } else { ModelConfig::light(&stft) };
    let mut weights = random_weights(model, stft, 0);
    weights.meta.provenance = Provenance {
        name: "PLACEHOLDER (untrained)".into(),
        datasets: vec![],
        steps: 0,
        validation_sdr_db: None,
        git_commit: None,
        notes: "Deterministic random initialisation (seed 0), written by \
                `cargo run -p isola-engine --example placeholder_weights`. Not trained: it does not \
                isolate vocals. Replaced by trained default weights in the default-weights issue."
            .into(),
    };
    weights.save(&out)?;
    println!("wrote {out}: {} parameters", weights.meta.model.param_count());
    Ok(())
}
