//! `cargo xtask`: nice-plug's bundler plus `cargo xtask install`.
//!
//! - `cargo xtask bundle isola-plugin --release` → `target/bundled/Isola.{clap,vst3}`
//! - `cargo xtask install [--debug] [--no-cli] [--clap-dir DIR] [--vst3-dir DIR]`: bundles the
//!   plugin, copies `Isola.clap` and `Isola.vst3` into the user's plugin folders (`~/.clap` and
//!   `~/.vst3` on Linux) and installs the `isola` CLI with `cargo install --path trainer`.
//! - `cargo xtask fuzz [--blocks N] [--seed S] [--profile P] [--max-samples N]`: the CLAP host
//!   fuzz (`plugin/tests/clap_fuzz.rs`) at scale; see [`FUZZ_USAGE`].

use std::path::{Path, PathBuf};
use std::process::Command;

use nice_plug_xtask::Result;

const PACKAGE: &str = "isola-plugin";
const BUNDLE_NAME: &str = "Isola";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("install") {
        args.next();
        install(args.collect())
    } else if args.peek().map(String::as_str) == Some("fuzz") {
        args.next();
        fuzz(args.collect())
    } else if matches!(args.peek().map(String::as_str), Some("-h" | "--help" | "help")) {
        println!("Usage:\n  cargo xtask bundle <package> [--release]   (nice-plug's bundler)");
        println!("  cargo xtask {}", usage().trim_start_matches("Usage: cargo xtask "));
        println!("  cargo xtask fuzz ...   (see below)\n\n{FUZZ_USAGE}");
        Ok(())
    } else {
        nice_plug_xtask::main_with_args("cargo xtask", args)
    }
}

struct InstallOptions {
    release: bool,
    cli: bool,
    clap_dir: PathBuf,
    vst3_dir: PathBuf,
}

fn usage() -> String {
    "Usage: cargo xtask install [--debug] [--no-cli] [--clap-dir DIR] [--vst3-dir DIR]".into()
}

fn parse_install_args(args: Vec<String>) -> Result<InstallOptions> {
    let (default_clap, default_vst3) = default_plugin_dirs()?;
    let mut opts = InstallOptions { release: true, cli: true, clap_dir: default_clap, vst3_dir: default_vst3 };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--debug" => opts.release = false,
            "--release" => opts.release = true,
            "--no-cli" => opts.cli = false,
            "--clap-dir" => {
                opts.clap_dir = it.next().ok_or_else(|| anyhow(usage()))?.into();
            }
            "--vst3-dir" => {
                opts.vst3_dir = it.next().ok_or_else(|| anyhow(usage()))?.into();
            }
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other => return Err(anyhow(format!("unknown option '{other}'\n{}", usage()))),
        }
    }
    Ok(opts)
}

fn anyhow(msg: String) -> anyhow::Error {
    anyhow::Error::msg(msg)
}

/// Per-user plugin folders, as CLAP and VST3 hosts scan them.
fn default_plugin_dirs() -> Result<(PathBuf, PathBuf)> {
    if cfg!(windows) {
        let common = std::env::var_os("COMMONPROGRAMFILES")
            .map(PathBuf::from)
            .ok_or_else(|| anyhow("COMMONPROGRAMFILES is not set".into()))?;
        return Ok((common.join("CLAP"), common.join("VST3")));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| anyhow("HOME is not set".into()))?;
    if cfg!(target_os = "macos") {
        let base = home.join("Library/Audio/Plug-Ins");
        Ok((base.join("CLAP"), base.join("VST3")))
    } else {
        Ok((home.join(".clap"), home.join(".vst3")))
    }
}

fn install(args: Vec<String>) -> Result<()> {
    let opts = parse_install_args(args)?;
    nice_plug_xtask::chdir_workspace_root()?;

    let mut bundle_args = vec!["bundle".to_owned(), PACKAGE.to_owned()];
    if opts.release {
        bundle_args.push("--release".to_owned());
    }
    nice_plug_xtask::main_with_args("cargo xtask", bundle_args)?;

    let target_dir = cargo_metadata::MetadataCommand::new()
        .manifest_path("./Cargo.toml")
        .no_deps()
        .exec()?
        .target_directory
        .into_std_path_buf();
    let bundled = target_dir.join("bundled");
    for (ext, dest_dir) in [("clap", &opts.clap_dir), ("vst3", &opts.vst3_dir)] {
        let src = bundled.join(format!("{BUNDLE_NAME}.{ext}"));
        if !src.exists() {
            return Err(anyhow(format!("bundle {} was not produced", src.display())));
        }
        std::fs::create_dir_all(dest_dir)?;
        let dest = dest_dir.join(format!("{BUNDLE_NAME}.{ext}"));
        copy_replacing(&src, &dest)?;
        println!("Installed {}", dest.display());
    }

    if opts.cli {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["install", "--locked", "--path", "trainer"]);
        if !opts.release {
            cmd.arg("--debug");
        }
        let status = cmd.status()?;
        if !status.success() {
            return Err(anyhow(format!("cargo install --path trainer failed: {status}")));
        }
        println!("Installed the `isola` CLI into cargo's bin directory (usually ~/.cargo/bin)");
    }
    Ok(())
}

/// Copies a file or a bundle directory, replacing whatever was installed before (a stale
/// bundle could keep an old binary next to the new one).
fn copy_replacing(src: &Path, dest: &Path) -> Result<()> {
    if dest.is_dir() {
        std::fs::remove_dir_all(dest)?;
    } else if dest.exists() {
        std::fs::remove_file(dest)?;
    }
    copy_recursive(src, dest)
}

fn copy_recursive(src: &Path, dest: &Path) -> Result<()> {
    if src.is_dir() {
        std::fs::create_dir_all(dest)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            copy_recursive(&entry.path(), &dest.join(entry.file_name()))?;
        }
    } else {
        std::fs::copy(src, dest)?;
    }
    Ok(())
}

const FUZZ_USAGE: &str = "\
Usage: cargo xtask fuzz [--blocks N] [--seed S] [--profile P] [--max-samples N]

Drives the built plugin through the in-repo CLAP host (plugin/tests/clap_fuzz.rs) for N blocks
(default 1000000): random block sizes 1..=8192, NaN / Inf / subnormal / huge bursts, parameter
automation, state save and load mid-stream, deactivate and reactivate at other sample rates,
block sizes and layouts, and weights swaps. Checks every output sample (finite, never
subnormal, bounded, stems summing to the delayed input, recovery after bursts); the build
aborts on any allocation in process().

  --blocks N       blocks to process (default 1000000)
  --seed S         replay the run with this seed (default: a new one, printed first)
  --profile P      cargo profile for the test and the plugin (default fuzz: release speed with
                   debug assertions, so nice-plug's allocation check stays on)
  --max-samples N  also stop after N sample frames (default: no limit)

Prints the seed first, progress every 100000 blocks and a summary at the end; exits non-zero
on any failure, naming the seed to replay it with. The CI run is plain `cargo test`
(about 10000 blocks, debug build).";

struct FuzzOptions {
    blocks: u64,
    seed: u64,
    profile: String,
    max_samples: u64,
}

fn parse_fuzz_args(args: Vec<String>) -> Result<FuzzOptions> {
    let mut opts = FuzzOptions { blocks: 1_000_000, seed: random_seed(), profile: "fuzz".into(), max_samples: 0 };
    let mut it = args.into_iter();
    let number = |v: Option<String>, what: &str| -> Result<u64> {
        let v = v.ok_or_else(|| anyhow(format!("{what} needs a value\n{FUZZ_USAGE}")))?;
        v.replace('_', "").parse().map_err(|_| anyhow(format!("{what} {v}: not a whole number")))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--blocks" => opts.blocks = number(it.next(), "--blocks")?,
            "--seed" => opts.seed = number(it.next(), "--seed")?,
            "--max-samples" => opts.max_samples = number(it.next(), "--max-samples")?,
            "--profile" => {
                opts.profile = it.next().ok_or_else(|| anyhow(format!("--profile needs a value\n{FUZZ_USAGE}")))?
            }
            "-h" | "--help" => {
                println!("{FUZZ_USAGE}");
                std::process::exit(0);
            }
            other => return Err(anyhow(format!("unknown option '{other}'\n{FUZZ_USAGE}"))),
        }
    }
    Ok(opts)
}

/// A fresh seed from the clock and the process id (printed, so any run can be replayed).
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mixed = (nanos as u64) ^ ((nanos >> 64) as u64) ^ (u64::from(std::process::id()) << 32);
    // splitmix64 finaliser: nearby clocks give unrelated seeds.
    let mut z = mixed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) >> 1
}

/// `cargo xtask fuzz`: runs the CLAP fuzz test with the given settings (the same driver as the
/// CI test, so no host code is duplicated here).
fn fuzz(args: Vec<String>) -> Result<()> {
    let opts = parse_fuzz_args(args)?;
    nice_plug_xtask::chdir_workspace_root()?;
    let replay = format!(
        "cargo xtask fuzz --blocks {} --seed {} --profile {}{}",
        opts.blocks,
        opts.seed,
        opts.profile,
        if opts.max_samples > 0 { format!(" --max-samples {}", opts.max_samples) } else { String::new() }
    );
    println!("fuzz seed {} ({} blocks, profile {}); replay: {replay}", opts.seed, opts.blocks, opts.profile);
    let progress = (opts.blocks / 10).clamp(1, 100_000);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = std::time::Instant::now();
    let status = Command::new(cargo)
        .args(["test", "-p", PACKAGE, "--profile", &opts.profile, "--test", "clap_fuzz", "--"])
        .args(["--exact", FUZZ_TEST, "--nocapture", "--test-threads=1"])
        .env("ISOLA_FUZZ_SEED", opts.seed.to_string())
        .env("ISOLA_FUZZ_BLOCKS", opts.blocks.to_string())
        .env("ISOLA_FUZZ_MAX_SAMPLES", opts.max_samples.to_string())
        .env("ISOLA_FUZZ_PROGRESS", progress.to_string())
        .status()?;
    let wall = started.elapsed().as_secs_f64();
    if status.success() {
        println!("fuzz passed: seed {}, {} blocks, {wall:.0} s (with the build)", opts.seed, opts.blocks);
        Ok(())
    } else {
        // An allocation in process() aborts the process (SIGABRT): no test message then.
        eprintln!("fuzz FAILED ({status}) with seed {} after {wall:.0} s; replay: {replay}", opts.seed);
        std::process::exit(status.code().filter(|&c| c != 0).unwrap_or(101));
    }
}

/// The fuzz driver in `plugin/tests/clap_fuzz.rs`.
const FUZZ_TEST: &str = "random_blocks_params_state_reactivation_and_weights_swaps";
