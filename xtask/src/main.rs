//! `cargo xtask`: nice-plug's bundler plus `cargo xtask install` and `cargo xtask fuzz`.
//!
//! - `cargo xtask bundle isola-plugin --release` → `target/bundled/Isola.{clap,vst3}`
//! - `cargo xtask install [--debug] [--no-cli] [--clap-dir DIR] [--vst3-dir DIR] [--bin-dir DIR]`:
//!   one `cargo build` of the plugin and the `isola` CLI together (same target dir, one feature
//!   resolution, so no crate is compiled twice), bundles the plugin, then copies `Isola.clap`,
//!   `Isola.vst3` and `isola` into the folders [`INSTALL_USAGE`] lists.
//! - `cargo xtask fuzz [--blocks N] [--seed S] [--profile P] [--max-samples N]`: the CLAP host
//!   fuzz (`plugin/tests/clap_fuzz.rs`) at scale; see [`FUZZ_USAGE`].

use std::path::{Path, PathBuf};
use std::process::Command;

use nice_plug_xtask::Result;

const PACKAGE: &str = "isola-plugin";
const BUNDLE_NAME: &str = "Isola";
/// The package and binary of the `isola` CLI.
const CLI_PACKAGE: &str = "isola-trainer";
const CLI_BIN: &str = "isola";

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
        println!("  cargo xtask install ...   (see below)");
        println!("  cargo xtask fuzz ...   (see below)\n\n{INSTALL_USAGE}\n\n{FUZZ_USAGE}");
        Ok(())
    } else {
        nice_plug_xtask::main_with_args("cargo xtask", args)
    }
}

const INSTALL_USAGE: &str = "\
Usage: cargo xtask install [--debug] [--no-cli] [--clap-dir DIR] [--vst3-dir DIR] [--bin-dir DIR]

Builds the plugin and the `isola` CLI in one `cargo build` (the workspace's target dir, so
nothing is compiled twice), bundles the plugin (target/bundled/Isola.{clap,vst3}) and copies
Isola.clap, Isola.vst3 and isola into the folders below, replacing what was there. Prints
every path it writes.

  --release         release build (the default)
  --debug           debug build instead (target/debug; slower plugin, quicker build)
  --no-cli          plugin only: skip building and installing the `isola` CLI
  --clap-dir DIR    where Isola.clap goes; default ~/.clap (Linux),
                    ~/Library/Audio/Plug-Ins/CLAP (macOS), %COMMONPROGRAMFILES%\\CLAP (Windows)
  --vst3-dir DIR    where Isola.vst3 goes; default ~/.vst3 (Linux),
                    ~/Library/Audio/Plug-Ins/VST3 (macOS), %COMMONPROGRAMFILES%\\VST3 (Windows)
  --bin-dir DIR     where the `isola` CLI goes; default $CARGO_HOME/bin, else ~/.cargo/bin
                    (%USERPROFILE%\\.cargo\\bin on Windows)
  -h, --help        this text";

/// The install options as given; `None` means the platform default ([`default_plugin_dirs`],
/// [`default_bin_dir`]).
#[derive(Debug, Default, PartialEq)]
struct InstallArgs {
    debug: bool,
    no_cli: bool,
    clap_dir: Option<PathBuf>,
    vst3_dir: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
    help: bool,
}

fn parse_install_args(args: Vec<String>) -> Result<InstallArgs> {
    let mut opts = InstallArgs::default();
    let mut it = args.into_iter();
    let dir = |v: Option<String>, what: &str| -> Result<PathBuf> {
        match v {
            Some(v) if !v.is_empty() && !v.starts_with("--") => Ok(v.into()),
            _ => Err(anyhow(format!("{what} needs a folder\n{INSTALL_USAGE}"))),
        }
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--debug" => opts.debug = true,
            "--release" => opts.debug = false,
            "--no-cli" => opts.no_cli = true,
            "--clap-dir" => opts.clap_dir = Some(dir(it.next(), "--clap-dir")?),
            "--vst3-dir" => opts.vst3_dir = Some(dir(it.next(), "--vst3-dir")?),
            "--bin-dir" => opts.bin_dir = Some(dir(it.next(), "--bin-dir")?),
            "-h" | "--help" => opts.help = true,
            other => return Err(anyhow(format!("unknown option '{other}'\n{INSTALL_USAGE}"))),
        }
    }
    Ok(opts)
}

fn anyhow(msg: String) -> anyhow::Error {
    anyhow::Error::msg(msg)
}

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn home_dir() -> Result<PathBuf> {
    let name = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    env_dir(name).ok_or_else(|| anyhow(format!("{name} is not set")))
}

/// Per-user plugin folders, as CLAP and VST3 hosts scan them.
fn default_plugin_dirs() -> Result<(PathBuf, PathBuf)> {
    if cfg!(windows) {
        let common = env_dir("COMMONPROGRAMFILES").ok_or_else(|| anyhow("COMMONPROGRAMFILES is not set".into()))?;
        return Ok((common.join("CLAP"), common.join("VST3")));
    }
    let home = home_dir()?;
    if cfg!(target_os = "macos") {
        let base = home.join("Library/Audio/Plug-Ins");
        Ok((base.join("CLAP"), base.join("VST3")))
    } else {
        Ok((home.join(".clap"), home.join(".vst3")))
    }
}

/// Where `cargo install` would put binaries without an install root: `$CARGO_HOME/bin`, else
/// `~/.cargo/bin`.
fn default_bin_dir() -> Result<PathBuf> {
    match env_dir("CARGO_HOME") {
        Some(cargo_home) => Ok(cargo_home.join("bin")),
        None => Ok(home_dir()?.join(".cargo").join("bin")),
    }
}

fn install(args: Vec<String>) -> Result<()> {
    let args = parse_install_args(args)?;
    if args.help {
        println!("{INSTALL_USAGE}");
        return Ok(());
    }
    let (default_clap, default_vst3) = default_plugin_dirs()?;
    // Relative folders are relative to where the command was run, not the workspace root.
    let clap_dir = std::path::absolute(args.clap_dir.unwrap_or(default_clap))?;
    let vst3_dir = std::path::absolute(args.vst3_dir.unwrap_or(default_vst3))?;
    let bin_dir =
        if args.no_cli { None } else { Some(std::path::absolute(args.bin_dir.map_or_else(default_bin_dir, Ok)?)?) };
    nice_plug_xtask::chdir_workspace_root()?;

    // One cargo invocation for the plugin and the CLI: one feature resolution and one target
    // dir, so the crates they share (candle, gemm, ...) are compiled once. Built separately, the
    // two resolve features differently (bytemuck, syn, rustix, ...) and cargo compiled the shared
    // crates twice; `cargo install --path trainer` even rebuilt all of them in a temp dir. The
    // plugin then gets the union of both packages' dependency features, a subset of what
    // `cargo test --workspace` builds it with (nothing the audio thread uses changes).
    let profile_args: Vec<String> = if args.debug { vec![] } else { vec!["--release".into()] };
    let mut packages = vec![PACKAGE.to_owned()];
    if bin_dir.is_some() {
        packages.push(CLI_PACKAGE.to_owned());
    }
    nice_plug_xtask::build(&packages, &profile_args)?;

    let target_dir = cargo_metadata::MetadataCommand::new()
        .manifest_path("./Cargo.toml")
        .no_deps()
        .exec()?
        .target_directory
        .into_std_path_buf();
    nice_plug_xtask::bundle(&target_dir, PACKAGE, &profile_args, false)?;

    let mut installed = Vec::new();
    let bundled = target_dir.join("bundled");
    for (ext, dest_dir) in [("clap", &clap_dir), ("vst3", &vst3_dir)] {
        let src = bundled.join(format!("{BUNDLE_NAME}.{ext}"));
        if !src.exists() {
            return Err(anyhow(format!("bundle {} was not produced", src.display())));
        }
        std::fs::create_dir_all(dest_dir)?;
        let dest = dest_dir.join(format!("{BUNDLE_NAME}.{ext}"));
        copy_replacing(&src, &dest)?;
        installed.push(dest);
    }

    if let Some(bin_dir) = &bin_dir {
        let exe = format!("{CLI_BIN}{}", std::env::consts::EXE_SUFFIX);
        let src = target_dir.join(if args.debug { "debug" } else { "release" }).join(&exe);
        if !src.is_file() {
            return Err(anyhow(format!("the CLI {} was not produced", src.display())));
        }
        let dest = bin_dir.join(&exe);
        copy_file_atomically(&src, &dest)?;
        installed.push(dest);
    }

    println!();
    for path in &installed {
        println!("Installed {}", path.display());
    }
    if let Some(bin_dir) = &bin_dir {
        let on_path = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == *bin_dir));
        if !on_path {
            println!("Note: {} is not on PATH; add it to run `{CLI_BIN}` by name", bin_dir.display());
        }
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

/// Copies `src` to `dest` through a temp file in `dest`'s folder and a rename, so `dest` is
/// always either the old or the new file: a running `isola` keeps its old inode, and an
/// interrupted install leaves no half-written binary. `fs::copy` keeps the permission bits
/// (the executable bit).
fn copy_file_atomically(src: &Path, dest: &Path) -> Result<()> {
    let dir = dest.parent().ok_or_else(|| anyhow(format!("{} has no parent folder", dest.display())))?;
    std::fs::create_dir_all(dir)?;
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.install-{}.tmp", std::process::id()));
    let result = (|| -> Result<()> {
        std::fs::copy(src, &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| anyhow(format!("cannot install {} as {}: {e}", src.display(), dest.display())))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn install_defaults_to_release_with_cli_and_platform_folders() {
        assert_eq!(parse_install_args(vec![]).unwrap(), InstallArgs::default());
    }

    #[test]
    fn install_parses_every_option() {
        let opts = parse_install_args(args(&[
            "--debug",
            "--no-cli",
            "--clap-dir",
            "/x/clap",
            "--vst3-dir",
            "/x/vst3",
            "--bin-dir",
            "/x/bin",
        ]))
        .unwrap();
        assert_eq!(
            opts,
            InstallArgs {
                debug: true,
                no_cli: true,
                clap_dir: Some("/x/clap".into()),
                vst3_dir: Some("/x/vst3".into()),
                bin_dir: Some("/x/bin".into()),
                help: false,
            }
        );
        assert!(!parse_install_args(args(&["--debug", "--release"])).unwrap().debug);
        assert!(parse_install_args(args(&["--help"])).unwrap().help);
    }

    #[test]
    fn install_refuses_unknown_options_and_missing_folders() {
        let err = parse_install_args(args(&["--bindir", "/x"])).unwrap_err().to_string();
        assert!(err.contains("unknown option '--bindir'"), "{err}");
        for opt in ["--clap-dir", "--vst3-dir", "--bin-dir"] {
            let err = parse_install_args(args(&[opt])).unwrap_err().to_string();
            assert!(err.contains("needs a folder"), "{err}");
            // An option where the folder should be is a forgotten folder, not a folder name.
            assert!(parse_install_args(args(&[opt, "--debug"])).is_err());
        }
    }

    #[test]
    fn install_help_lists_every_option() {
        for opt in ["--release", "--debug", "--no-cli", "--clap-dir", "--vst3-dir", "--bin-dir", "--help"] {
            assert!(INSTALL_USAGE.contains(opt), "{opt} missing from the install help");
            if opt != "--help" && !opt.ends_with("-dir") {
                parse_install_args(args(&[opt])).unwrap();
            }
        }
    }

    #[test]
    fn atomic_copy_replaces_the_file_and_keeps_the_executable_bit() {
        let dir = std::env::temp_dir().join(format!("isola-xtask-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("src");
        std::fs::write(&src, b"new").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let dest = dir.join("bin").join("isola");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, b"old").unwrap();
        copy_file_atomically(&src, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o755);
        }
        // No temp file left behind.
        assert_eq!(std::fs::read_dir(dest.parent().unwrap()).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
