//! Writes `assets/weights/default.safetensors` as a clearly labelled PLACEHOLDER: the
//! default light model with deterministic random weights. It exists so the plugin can embed
//! a valid file before trained default weights land (see the default-weights issue); it
//! does not separate anything meaningfully.
//!
//! `cargo run -p isola-engine --example placeholder_weights [OUT]`

use isola_engine::config::{ModelConfig, StftConfig};
use isola_engine::weights::{Provenance, random_weights};

fn main() -> std::io::Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "assets/weights/default.safetensors".into());
    let stft = StftConfig::default();
    let mut weights = random_weights(ModelConfig::light(&stft), stft, 0);
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
