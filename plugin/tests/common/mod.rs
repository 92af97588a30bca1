//! Shared helpers for the host tests: building the plugin library the way a user gets it, and
//! synthetic test audio (no recordings, no downloaded data).
#![allow(dead_code)]

pub mod clap;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Builds the `isola-plugin` cdylib with the profile of this test binary (debug tests → debug
/// plugin, with nice-plug's `assert_process_allocs`; `--profile fuzz` tests → the fuzz profile,
/// optimised with the same checks) and returns the shared library's path.
/// `cargo test` only builds the rlib, so the test must do this itself; any failure panics, so a
/// missing library fails the test instead of skipping it.
pub fn plugin_library() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let cargo = env!("CARGO");
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "isola-plugin", "--lib", "--message-format=json-render-diagnostics"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match test_profile().as_deref() {
            Some("dev") => {}
            Some(profile) => {
                cmd.args(["--profile", profile]);
            }
            None if cfg!(debug_assertions) => {}
            None => {
                cmd.arg("--release");
            }
        }
        let mut child = cmd.spawn().expect("cannot run cargo to build the plugin library");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lib = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.expect("reading cargo output");
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if msg["reason"] != "compiler-artifact" || msg["target"]["name"] != "isola_plugin" {
                continue;
            }
            let is_cdylib = msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib"));
            if !is_cdylib {
                continue;
            }
            for f in msg["filenames"].as_array().into_iter().flatten() {
                let f = f.as_str().unwrap_or_default();
                if f.ends_with(".so") || f.ends_with(".dylib") || f.ends_with(".dll") {
                    lib = Some(PathBuf::from(f));
                }
            }
        }
        let status = child.wait().expect("waiting for cargo");
        assert!(status.success(), "building the isola-plugin cdylib failed: {status}");
        let lib = lib.expect("cargo did not report an isola_plugin cdylib artifact");
        assert!(lib.is_file(), "plugin library {} is missing", lib.display());
        lib
    })
}

/// The cargo profile this test binary was built with, from its path
/// (`target/[<triple>/]<profile dir>/deps/<test>-<hash>`): `debug` is the dev (and test)
/// profile, `release` the release (and bench) profile, any other directory a custom profile
/// of that name. `None` when the path does not look like that.
fn test_profile() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    let dir = deps.parent()?.file_name()?.to_str()?;
    Some(match dir {
        "debug" => "dev".to_owned(),
        other => other.to_owned(),
    })
}

/// Lays out a bundle the way `cargo xtask bundle` does (`Isola.clap` is the library itself on
/// Linux/Windows; `Isola.vst3/Contents/<arch>-<os>/Isola.so`) in a fresh directory under the
/// target's tmp dir, and returns the path to the `.clap` file or the `.vst3` module. Made
/// once per test process: rewriting a library another test has loaded would crash it.
pub fn bundle(kind: &str) -> PathBuf {
    static CLAP: OnceLock<PathBuf> = OnceLock::new();
    static VST3: OnceLock<PathBuf> = OnceLock::new();
    let cell = match kind {
        "clap" => &CLAP,
        "vst3" => &VST3,
        other => panic!("unknown bundle kind {other}"),
    };
    // Tests load and drop instances (and so the library) concurrently on many threads; the
    // plugin links with `-z nodelete` (plugin/build.rs) so that is safe.
    cell.get_or_init(|| make_bundle(kind)).clone()
}

fn make_bundle(kind: &str) -> PathBuf {
    let lib = plugin_library();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    remove_stale_bundles(tmp);
    let dir = tmp.join(format!("isola-bundle-{}-{kind}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating bundle dir");
    let dest = match kind {
        "clap" => dir.join("Isola.clap"),
        "vst3" => {
            let arch_dir = if cfg!(target_os = "windows") {
                format!("{}-win", std::env::consts::ARCH)
            } else if cfg!(target_os = "macos") {
                "MacOS".to_owned()
            } else {
                format!("{}-linux", std::env::consts::ARCH)
            };
            let ext = if cfg!(target_os = "windows") { "vst3" } else { "so" };
            let d = dir.join("Isola.vst3").join("Contents").join(arch_dir);
            std::fs::create_dir_all(&d).expect("creating vst3 bundle dir");
            d.join(format!("Isola.{ext}"))
        }
        other => panic!("unknown bundle kind {other}"),
    };
    // A hard link costs no space (a copy is ~160 MB in a debug build, and CI once ran out of
    // disk on it); copy where links are impossible (another filesystem, no link support).
    if std::fs::hard_link(&lib, &dest).is_err() {
        std::fs::copy(&lib, &dest).unwrap_or_else(|e| {
            panic!("copying the plugin library {} into the bundle {}: {e}", lib.display(), dest.display())
        });
    }
    dest
}

/// Removes the bundles of test processes that have ended (each holds a link to or a copy of
/// the plugin library, ~160 MB in a debug build; left behind, every test run would add two). Bundles
/// of running processes stay: a test may have loaded them. Linux only (`/proc`).
fn remove_stale_bundles(tmp: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid =
            name.strip_prefix("isola-bundle-").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Stereo synthetic music (the engine's generator): a voice slightly off centre over drums,
/// bass and chords; peak around 0.8.
pub fn mixture(sample_rate: f32, len: usize) -> [Vec<f32>; 2] {
    let [l, r]: [Vec<f32>; 2] =
        isola_engine::synth::track(sample_rate as u32, len, 0).mixture().try_into().expect("a stereo track");
    [l, r]
}

pub fn rms(x: &[f32]) -> f32 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt() as f32
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The engine's main output for `input` with the plugin's default settings (Output: Vocals)
/// and the embedded weights, in blocks of `block`: what the plugin's main output must be,
/// whatever output buses or ports the host gives it.
pub fn engine_main_output(input: &[Vec<f32>], sample_rate: f64, block: usize) -> Vec<Vec<f32>> {
    engine_main_output_with(&isola_engine::embedded::light().unwrap(), input, sample_rate, block)
}

/// [`engine_main_output`] for the weights `w`.
pub fn engine_main_output_with(
    w: &isola_engine::Weights,
    input: &[Vec<f32>],
    sample_rate: f64,
    block: usize,
) -> Vec<Vec<f32>> {
    let mut sep = isola_engine::Separator::new(isola_engine::RtMaskNet::new(w).unwrap());
    sep.prepare(sample_rate as f32, block, input.len()).unwrap();
    let params = isola_engine::SeparatorParams { output: isola_engine::OutputMode::Vocals, ..Default::default() };
    let render = isola_engine::render::Render { blocks: &[block], stem_channels: None, align: false };
    render.run(&mut sep, input, &params).main
}
