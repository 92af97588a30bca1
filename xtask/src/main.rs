//! `cargo xtask`: nice-plug's bundler plus `cargo xtask install`.
//!
//! - `cargo xtask bundle isola-plugin --release` → `target/bundled/Isola.{clap,vst3}`
//! - `cargo xtask install [--debug] [--no-cli] [--clap-dir DIR] [--vst3-dir DIR]`: bundles the
//!   plugin, copies `Isola.clap` and `Isola.vst3` into the user's plugin folders (`~/.clap` and
//!   `~/.vst3` on Linux) and installs the `isola` CLI with `cargo install --path trainer`.

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
