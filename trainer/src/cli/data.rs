//! `isola data check` and `isola data synth`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::audio::wav::write_wav;
use crate::data::DataSpec;

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
    let mut k = 0;
    for (split, n) in [("train", args.train), ("test", args.test)] {
        for _ in 0..n {
            let t = crate::synth::track(args.rate, args.seconds, args.seed.wrapping_mul(1000).wrapping_add(k));
            let dir = args.out.join(split).join(format!("synth-{k:03}"));
            write_wav(&dir.join("vocals.wav"), &t.vocals)?;
            write_wav(&dir.join("accompaniment.wav"), &t.accompaniment)?;
            k += 1;
        }
    }
    println!("wrote {k} tracks to {}", args.out.display());
    Ok(())
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
