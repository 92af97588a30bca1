//! `isola separate`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use isola_engine::rt::Precision;

use super::{frames_bar, load_weights, load_worker_weights, parse_precision};
use crate::audio::decode::decode_file;
use crate::audio::wav::write_wav;
use crate::separate::separate_with;

#[derive(Debug, Args)]
pub struct SeparateArgs {
    /// Audio files (wav, flac, ogg, mp3, m4a; a .stem.mp4 is read as its mixture stream).
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Weights file (.safetensors); the built-in default weights otherwise.
    #[arg(long, value_name = "W")]
    pub weights: Option<PathBuf>,
    /// The plugin's Quality = Worker: also run this heavier worker model (`default` = the
    /// built-in worker weights), with the light model as fallback; rendered offline.
    #[arg(long, value_name = "W")]
    pub worker_weights: Option<PathBuf>,
    /// Storage precision of the light model's weights in the real-time network: f32, f16,
    /// int8 or mixed (the plugin runs the default).
    #[arg(long, value_name = "P", default_value = Precision::default().name(), value_parser = parse_precision)]
    pub precision: Precision,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `song.stem.mp4` -> `song`, `a/b.flac` -> `b`.
fn output_name(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let cut = if lower.ends_with(".stem.mp4") {
        name.len() - ".stem.mp4".len()
    } else {
        name.rfind('.').unwrap_or(name.len())
    };
    name[..cut].to_string()
}

pub(super) fn run(args: &SeparateArgs) -> anyhow::Result<()> {
    let weights = load_weights(args.weights.as_deref())?;
    let worker = load_worker_weights(args.worker_weights.as_deref())?;
    // Refuse before any work rather than let one input overwrite another's stems.
    let mut seen = std::collections::HashMap::new();
    for input in &args.inputs {
        if let Some(prev) = seen.insert(output_name(input), input) {
            anyhow::bail!(
                "{} and {} would both be written to {}; separate them in two runs or rename one",
                prev.display(),
                input.display(),
                args.out.join(output_name(input)).display()
            );
        }
    }
    for input in &args.inputs {
        let audio = decode_file(input)?;
        if !(1..=2).contains(&audio.n_channels()) {
            anyhow::bail!("{}: {} channels; isola separates mono or stereo files", input.display(), audio.n_channels());
        }
        let bar = frames_bar(audio.frames() as u64, args.quiet);
        let name = output_name(input);
        bar.set_message(name.clone());
        let stems = separate_with(&weights, args.precision, worker.as_ref(), &audio, Some(&bar))
            .with_context(|| format!("separating {}", input.display()))?;
        bar.finish_and_clear();
        let dir = args.out.join(&name);
        write_wav(&dir.join("vocals.wav"), &stems.vocals)?;
        write_wav(&dir.join("accompaniment.wav"), &stems.accompaniment)?;
        if !args.quiet {
            println!("{} -> {}", input.display(), dir.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::output_name;
    use std::path::Path;

    #[test]
    fn output_names() {
        assert_eq!(output_name(Path::new("a/Song X.stem.mp4")), "Song X");
        assert_eq!(output_name(Path::new("b.flac")), "b");
        assert_eq!(output_name(Path::new("noext")), "noext");
    }
}
