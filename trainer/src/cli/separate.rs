//! `isola separate`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{ModelArgs, frames_bar};
use std::process::ExitCode;

use isola_engine::Weights;
use isola_engine::rt::math::MAX_INPUT;

use crate::audio::Audio;
use crate::audio::decode::decode_file;
use crate::audio::wav::{TRACK_STEMS, write_track};
use crate::separate::separate_with;

#[derive(Debug, Args)]
pub struct SeparateArgs {
    /// Audio files (wav, flac, ogg, mp3, m4a; a .stem.mp4 is read as its mixture stream).
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
    /// Output folder: each input's stems go to DIR/<name>/{vocals,accompaniment}.wav, where
    /// <name> is the file name without its extension, without leading dots, cut to 200
    /// bytes, and made unique within the run by `-2`, `-3`, ...
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Replace the output folders of earlier runs (each as a whole, and only when it holds
    /// nothing but stems); without it an existing output folder fails that input.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Longest output folder name, in bytes: file systems allow 255 per name, and the hidden temp
/// folder beside it adds 18 (`.` + name + `.XXXXXX.isola-tmp`) plus room for a `-N` suffix.
const MAX_FOLDER_BYTES: usize = 200;

/// The output folder name of each input, in order (documented in `--help` and the trainer
/// README):
/// - the file name without its extension (`a/Song X.stem.mp4` -> `Song X`, `b.flac` -> `b`);
/// - leading dots dropped, so no output is hidden (`.hidden.wav` -> `hidden`), and a name
///   that is only an extension keeps it (`.wav` -> `wav`);
/// - cut to 200 bytes at a character boundary;
/// - a name an earlier input of the same run already took (compared case-insensitively, as
///   macOS and Windows folders are) gets `-2`, `-3`, ... (`a/song.wav`, `b/song.flac` ->
///   `song`, `song-2`).
fn output_names(inputs: &[PathBuf]) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    inputs
        .iter()
        .map(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let lower = name.to_ascii_lowercase();
            let cut = if lower.ends_with(".stem.mp4") {
                name.len() - ".stem.mp4".len()
            } else {
                name.rfind('.').unwrap_or(name.len())
            };
            let mut base = name[..cut].trim_start_matches('.');
            if base.is_empty() {
                base = name.trim_start_matches('.');
            }
            if base.is_empty() {
                base = "track";
            }
            let mut end = base.len().min(MAX_FOLDER_BYTES);
            while !base.is_char_boundary(end) {
                end -= 1;
            }
            let base = &base[..end];
            let mut candidate = base.to_string();
            for k in 2.. {
                if taken.insert(candidate.to_lowercase()) {
                    break;
                }
                candidate = format!("{base}-{k}");
            }
            candidate
        })
        .collect()
}

/// Why an existing output folder may not be replaced; `None` when `dir` is free or may be
/// replaced.
fn refuse_existing(dir: &Path, overwrite: bool) -> Option<String> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    if !meta.is_dir() {
        return Some(format!("{} exists and is not a folder", dir.display()));
    }
    if !overwrite {
        return Some(format!("{} already exists (pass --overwrite to replace it)", dir.display()));
    }
    // Replacing swaps the whole folder: refuse when it holds anything Isola did not write.
    let foreign: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| !TRACK_STEMS.contains(&n.as_str()))
        .collect();
    (!foreign.is_empty()).then(|| {
        format!("{} also holds {}, which isola did not write; not replacing it", dir.display(), foreign.join(", "))
    })
}

/// Counts the samples the engine's input guard changes (beyond ±`MAX_INPUT`, clamped) and
/// where the first one is, as one line; `None` when the input is taken as it is.
fn sanitised_note(audio: &Audio) -> Option<String> {
    let mut count = 0usize;
    let mut first: Option<(usize, usize)> = None;
    for (c, ch) in audio.channels.iter().enumerate() {
        for (i, &x) in ch.iter().enumerate() {
            if x.abs() > MAX_INPUT {
                count += 1;
                if first.is_none_or(|(_, f)| i < f) {
                    first = Some((c, i));
                }
            }
        }
    }
    let (c, i) = first?;
    Some(format!(
        "{count} samples beyond ±{MAX_INPUT} (+30 dBFS) were clamped, the first at {:.3} s (frame {i}, channel {}); \
         the stems sum to the clamped input",
        i as f64 / f64::from(audio.sample_rate),
        c + 1
    ))
}

/// Everything that must hold before a batch starts.
struct Setup {
    weights: Weights,
    worker: Option<Weights>,
}

fn separate_one(args: &SeparateArgs, setup: &Setup, input: &Path, dir: &Path) -> anyhow::Result<()> {
    if input.is_dir() {
        anyhow::bail!("{} is a folder: pass the audio files in it (e.g. {}/*.wav)", input.display(), input.display());
    }
    if let Some(why) = refuse_existing(dir, args.overwrite) {
        anyhow::bail!(why);
    }
    let audio = decode_file(input)?;
    if !(1..=2).contains(&audio.n_channels()) {
        anyhow::bail!("{}: {} channels; isola separates mono or stereo files", input.display(), audio.n_channels());
    }
    if let Some(note) = sanitised_note(&audio) {
        eprintln!("warning: {}: {note}", input.display());
    }
    let bar = frames_bar(audio.frames() as u64, args.quiet, "separating");
    bar.set_message(dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let stems = separate_with(&setup.weights, args.model.precision, setup.worker.as_ref(), &audio, Some(&bar))
        .with_context(|| format!("separating {}", input.display()))?;
    bar.finish();
    let replaced = write_track(dir, &stems.vocals, &stems.accompaniment, args.overwrite)?;
    if !args.quiet {
        println!("{} -> {}{}", input.display(), dir.display(), if replaced { " (replaced)" } else { "" });
    }
    Ok(())
}

/// Separates every input, going on past failures; lists them at the end. Exit code 1 when
/// any input failed.
pub(super) fn run(args: &SeparateArgs) -> anyhow::Result<ExitCode> {
    let (weights, worker) = args.model.load()?;
    let setup = Setup { weights, worker };
    let names = output_names(&args.inputs);
    let mut failed = Vec::new();
    for (input, name) in args.inputs.iter().zip(&names) {
        if let Err(e) = separate_one(args, &setup, input, &args.out.join(name)) {
            eprintln!("error: {e:#}");
            failed.push((input, e));
        }
    }
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("\n{} of {} inputs failed:", failed.len(), args.inputs.len());
    for (input, e) in &failed {
        // Most errors already start with the input's name; say it once.
        let (name, why) = (input.display().to_string(), format!("{e:#}"));
        if why.starts_with(&name) { eprintln!("  {why}") } else { eprintln!("  {name}: {why}") }
    }
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(inputs: &[&str]) -> Vec<String> {
        output_names(&inputs.iter().map(PathBuf::from).collect::<Vec<_>>())
    }

    #[test]
    fn output_names_are_defined_for_odd_and_colliding_names() {
        assert_eq!(names(&["a/Song X.stem.mp4", "b.flac", "noext"]), ["Song X", "b", "noext"]);
        assert_eq!(names(&[".wav", ".hidden.wav", "..."]), ["wav", "hidden", "track"]);
        assert_eq!(
            names(&["a/song.wav", "b/song.flac", "SONG.mp3", "song-2.wav"]),
            ["song", "song-2", "SONG-3", "song-2-2"]
        );
        let long = format!("{}.wav", "é".repeat(150)); // 300 bytes of name
        let got = names(&[&long, &long]);
        assert_eq!(got[0], "é".repeat(100));
        assert_eq!(got[1], format!("{}-2", "é".repeat(100)));
    }
}
