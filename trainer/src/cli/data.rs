//! `isola data check`, `isola data synth` and `isola data remix`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::audio::cache::AudioLoader;
use crate::audio::wav::write_track;
use crate::data::remix::RemixOptions;
use crate::data::{DataSpec, discover_all};

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Decode every file and list tracks, durations, rates and problems.
    ///
    /// Layouts: MUSDB18-HQ (root/{train,test}/<track>/{vocals,drums,bass,other}.wav),
    /// MUSDB18 .stem.mp4, track folders (<track>/vocals.* + accompaniment.* or other
    /// stems), and loose folders named vocals/ or instrumental/ (or forced with
    /// vocals:DIR, instrumental:DIR). Exits non-zero when any problem is found.
    Check(CheckArgs),
    /// Write a synthetic data set (voice-like vocals over drums, bass and chords) for smoke
    /// tests: OUT/{train,test}/synth-NNN/{vocals,accompaniment}.wav.
    Synth(SynthArgs),
    /// Write fixed validation remixes: isolated singing over vocal-free music at the levels
    /// of real mixes, as OUT/valid/remix-NNN-*/{vocals,accompaniment}.wav.
    ///
    /// Vocal files are laid end to end with rests between phrases (in file order, so every
    /// singer is heard); the accompaniment is one excerpt of a random instrumental at −20 dBFS
    /// RMS; the vocals' active level is drawn 6 dB below to 2 dB above it; the mixture peaks
    /// at or below −1 dBFS. Use held-out singers and held-out music (scripts/split-shared-data.sh
    /// does) and pass OUT to `isola train --val-data` or `isola eval`.
    Remix(RemixArgs),
}

#[derive(Debug, Args)]
pub struct RemixArgs {
    /// Output folder.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Folders (or files) of isolated singing; repeatable.
    #[arg(long, required = true, value_name = "DIR")]
    pub vocals: Vec<PathBuf>,
    /// Folders (or files) of vocal-free music; repeatable.
    #[arg(long, required = true, value_name = "DIR")]
    pub instrumental: Vec<PathBuf>,
    /// Tracks to write.
    #[arg(long, default_value_t = RemixOptions::default().count)]
    pub count: usize,
    /// Seconds per track.
    #[arg(long, default_value_t = RemixOptions::default().seconds)]
    pub seconds: f64,
    /// Sample rate of the written files.
    #[arg(long, default_value_t = RemixOptions::default().rate)]
    pub rate: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A file to pass over without changing the draw: drawn like any other, then skipped as
    /// an unreadable file is (a file name, or the end of a path); repeatable. Makes again a
    /// set made while that file could not be decoded.
    #[arg(long, value_name = "FILE")]
    pub pass_over: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// Training tracks.
    #[arg(long, default_value_t = 8)]
    pub train: usize,
    /// Test tracks.
    #[arg(long, default_value_t = 2)]
    pub test: usize,
    /// Seconds per track.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Sample rate.
    #[arg(long, default_value_t = 44_100)]
    pub rate: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Data set folders (DIR, vocals:DIR or instrumental:DIR).
    #[arg(required = true, value_name = "DIR")]
    pub paths: Vec<DataSpec>,
    /// List bad files as skipped and exit 0 when usable data remains.
    #[arg(long)]
    pub skip_bad: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

pub(super) fn synth(args: &SynthArgs) -> anyhow::Result<()> {
    let (mut k, mut replaced) = (0, 0);
    for (split, n) in [("train", args.train), ("test", args.test)] {
        for _ in 0..n {
            let t = crate::synth::track(args.rate, args.seconds, args.seed.wrapping_mul(1000).wrapping_add(k));
            let dir = args.out.join(split).join(format!("synth-{k:03}"));
            replaced += usize::from(write_track(&dir, &t.vocals, &t.accompaniment, true)?);
            k += 1;
        }
    }
    println!("wrote {k} tracks to {}{}", args.out.display(), replaced_note(replaced));
    Ok(())
}

pub(super) fn remix(args: &RemixArgs) -> anyhow::Result<()> {
    // Files as discovery finds them in loose folders (sorted, audio only).
    let list = |role: &str, dirs: &[PathBuf]| -> anyhow::Result<Vec<PathBuf>> {
        let specs = dirs
            .iter()
            .map(|d| format!("{role}:{}", d.display()).parse::<DataSpec>().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (entries, problems) = discover_all(&specs);
        if let Some(p) = problems.first() {
            anyhow::bail!("{p}");
        }
        Ok(entries.into_iter().flat_map(|e| e.files().into_iter().map(PathBuf::from).collect::<Vec<_>>()).collect())
    };
    let (vocals, instrumentals) = (list("vocals", &args.vocals)?, list("instrumental", &args.instrumental)?);
    let opts = RemixOptions {
        count: args.count,
        seconds: args.seconds,
        rate: args.rate,
        seed: args.seed,
        pass_over: args.pass_over.clone(),
        ..Default::default()
    };
    let loader = AudioLoader::new(Some(args.rate), None);
    let (remixes, skipped) = crate::data::remix::remix(&vocals, &instrumentals, &opts, &loader)?;
    for p in &skipped {
        println!("skipped: {p}");
    }
    let replaced = crate::data::remix::write_remixes(&args.out, &remixes)?;
    println!(
        "wrote {} remixes of {} vocal and {} instrumental files to {}{}",
        remixes.len(),
        vocals.len(),
        instrumentals.len(),
        args.out.join("valid").display(),
        replaced_note(replaced)
    );
    Ok(())
}

/// Generated data replaces earlier output of the same name (it is made again from the
/// same seed and sources), and says so.
fn replaced_note(replaced: usize) -> String {
    if replaced == 0 { String::new() } else { format!(" ({replaced} existing track folders replaced)") }
}

pub(super) fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let report = crate::data::check::check(&args.paths, !args.quiet);
    print!("{}", report.render());
    if report.problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if args.skip_bad && !report.rows.is_empty() {
        println!("--skip-bad: the {} problem(s) above would be skipped", report.problems.len());
        return Ok(ExitCode::SUCCESS);
    }
    Ok(ExitCode::FAILURE)
}
