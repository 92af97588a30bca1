//! `isola eval`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use clap::builder::TypedValueParser as _;
use isola_engine::atomic_file;

use super::{ModelArgs, frames_bar};
use crate::audio::cache::AudioLoader;
use crate::audio::{Chunks, Clip};
use crate::data::{DataSpec, LoadOptions, Source, discover_all, load_pool};
use crate::eval::{evaluate, report};
use crate::progress::Style;
use crate::train::loudest_window;

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Data set folder with vocals/accompaniment tracks (repeatable; loose folders are ignored).
    #[arg(long = "data", required = true, value_name = "DIR")]
    pub data: Vec<DataSpec>,
    /// Only tracks of this split (e.g. `test` of a MUSDB18 layout).
    #[arg(long)]
    pub split: Option<String>,
    /// Score only SECONDS of each track (quick checks): the window with the most vocal
    /// energy, as training validation does (a song's first seconds are often near-silent
    /// vocals, where SDR measures only leakage).
    #[arg(long, value_name = "SECONDS")]
    pub max_seconds: Option<f64>,
    /// Output folder for eval.json, eval.md, eval.png and windows.csv.
    #[arg(long, short, default_value = "eval", value_name = "DIR")]
    pub out: PathBuf,
    /// Decoded-audio cache folder (speeds up repeated runs).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Also score the model on the mixture quantised to 16 or 24 bits (as an integer file
    /// holds it; no dither), against the same references: the row "isola, N-bit input".
    /// With --worker-weights the worker is scored on the quantised mixture instead of the
    /// float one: the row "isola worker, N-bit input".
    #[arg(long, value_name = "BITS", value_parser = clap::builder::PossibleValuesParser::new(["16", "24"]).map(|s| s.parse::<u32>().expect("a listed value")))]
    pub input_bits: Option<u32>,
    /// With --input-bits: fail (exit status 1, after writing the report) when quantising
    /// the input changes vocals SDR (median) or vocals global SDR (mean) over all tracks by
    /// more than DB decibels either way.
    #[arg(long, value_name = "DB", requires = "input_bits")]
    pub max_input_change: Option<f64>,
    /// Skip unreadable or inconsistent tracks (listed) instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

pub(super) fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let (weights, worker) = args.model.load()?;
    let loader = AudioLoader::new(None, args.cache.clone());
    // One data set at a time, so every track keeps the name of the `--data` it came from.
    // Tracks stay in the cache's files when there is a cache: one at a time is read.
    let (mut tracks, mut sets, mut loose) = (Vec::new(), Vec::new(), 0);
    // Split folders seen, to name them when --split matches none.
    let mut splits = std::collections::BTreeSet::new();
    for spec in &args.data {
        let (found, problems) = discover_all([spec]);
        let mut entries = Vec::new();
        for e in found {
            if let Some(s) = &e.split {
                splits.insert(s.clone());
            }
            if matches!(e.source, Source::Loose(..)) {
                loose += 1;
            } else if args.split.is_none() || e.split == args.split {
                entries.push(e);
            }
        }
        let data = load_pool(
            &entries,
            problems,
            &loader,
            LoadOptions { skip_bad: args.skip_bad, progress: Style::detect(args.quiet) },
        )?;
        for p in &data.skipped {
            println!("skipped: {p}");
        }
        sets.extend(std::iter::repeat_n(spec.path.display().to_string(), data.tracks.len()));
        tracks.extend(data.tracks);
    }
    if loose > 0 && !args.quiet {
        println!("ignoring {loose} loose vocal/instrumental file(s): eval needs aligned stems");
    }
    if tracks.is_empty() {
        match &args.split {
            Some(split) if !splits.contains(split) => {
                let found: Vec<&str> = splits.iter().map(String::as_str).collect();
                let found = if found.is_empty() { "none".to_owned() } else { found.join(", ") };
                anyhow::bail!("no tracks in split folder {split:?} (split folders found: {found})");
            }
            _ => anyhow::bail!("no tracks to evaluate (eval needs folders of aligned stems)"),
        }
    }
    if let Some(secs) = args.max_seconds {
        if !args.quiet {
            println!("--max-seconds {secs}: scoring each track's {secs} s with the most vocal energy");
        }
        for t in &mut tracks {
            let vocals = t.vocals.to_audio();
            let n = ((secs * f64::from(vocals.sample_rate)) as usize).min(vocals.frames());
            let start = loudest_window(&vocals, n, vocals.sample_rate as usize);
            t.vocals = Clip::Ram(vocals.slice_padded(start, n));
            t.accompaniment = Clip::Ram(t.accompaniment.slice_padded(start, n));
        }
    }
    let bar = frames_bar(tracks.iter().map(|t| t.vocals.frames() as u64).sum(), args.quiet, "scoring");
    let result = evaluate(&tracks, &sets, &weights, args.model.precision, worker.as_ref(), args.input_bits, &bar)?;
    bar.finish();

    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let json = args.out.join("eval.json");
    atomic_file::write_bytes(&json, serde_json::to_string_pretty(&result)?.as_bytes())?;
    let md = report::markdown(&result);
    atomic_file::write_bytes(&args.out.join("eval.md"), md.as_bytes())?;
    report::chart(&result, &args.out.join("eval.png"))?;
    atomic_file::write_bytes(&args.out.join("windows.csv"), report::windows_csv(&result).as_bytes())?;
    print!("{md}");
    println!("\nwrote {}, eval.md, eval.png and windows.csv (SDR of every 1 s window)", json.display());
    if let Some(limit) = args.max_input_change {
        let change = report::input_change(&result.summary).context("no quantised-input row to check")?;
        let largest = change.largest_db();
        // NaN (no scores) fails too.
        anyhow::ensure!(
            largest <= limit,
            "{}: vocals SDR changed by {:+.2} dB and vocals global SDR by {:+.2} dB against float input; \
             --max-input-change allows {limit} dB",
            change.method,
            change.vocals_sdr_db,
            change.vocals_global_sdr_db
        );
        println!("{}: within {limit} dB of float input ({largest:.2} dB)", change.method);
    }
    Ok(())
}
