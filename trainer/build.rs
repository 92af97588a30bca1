//! Records the git commit the `isola` binary is built from (`ISOLA_GIT_COMMIT`), for the
//! provenance `isola export` writes into weights: the code that trained them, not whatever
//! repository the export happens to run in. Unset outside a git checkout.

use std::path::Path;
use std::process::Command;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Rerun when HEAD moves (a commit, a checkout); the rest of the tree does not matter.
    for p in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if root.join(p).exists() {
            println!("cargo:rerun-if-changed={}", root.join(p).display());
        }
    }
    let commit = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=ISOLA_GIT_COMMIT={commit}");
    }
}
