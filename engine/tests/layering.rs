//! The audio thread's code never reaches candle or the worker thread: every module that
//! `src/rt/` uses, directly or through other engine modules, is free of them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Source file of module path `a::b` (`a/b.rs` or `a/b/mod.rs`).
fn module_file(module: &str) -> Option<PathBuf> {
    let rel = module.replace("::", "/");
    [src().join(format!("{rel}.rs")), src().join(rel).join("mod.rs")].into_iter().find(|p| p.exists())
}

/// Engine modules a file names as `crate::a::b…`, longest prefix that is a module file.
fn crate_uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        for n in (1..=parts.len()).rev() {
            let m = parts[..n].join("::");
            if module_file(&m).is_some() {
                found.insert(m);
                break;
            }
        }
    }
    found
}

#[test]
fn rt_never_reaches_candle_or_the_worker_thread() {
    let mut todo: Vec<String> = std::fs::read_dir(src().join("rt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            if stem == "mod" { "rt".to_owned() } else { format!("rt::{stem}") }
        })
        .collect();
    assert!(todo.len() >= 5, "rt modules not found: {todo:?}");
    let mut seen = BTreeSet::new();
    while let Some(m) = todo.pop() {
        if !seen.insert(m.clone()) {
            continue;
        }
        let file = module_file(&m).unwrap_or_else(|| panic!("no file for module {m}"));
        let text = std::fs::read_to_string(&file).unwrap();
        // Code only: doc and line comments may name candle.
        let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        assert!(!code.contains("candle"), "{m} ({}) uses candle, and the audio thread reaches it", file.display());
        for used in crate_uses(&code) {
            assert!(
                !matches!(used.as_str(), "worker" | "model" | "lib"),
                "{m} uses crate::{used}: the audio thread must not reach the candle worker or model"
            );
            todo.push(used);
        }
    }
    // The walk did follow imports out of rt/ (config, weights, ...).
    assert!(seen.contains("config") && seen.contains("weights"), "{seen:?}");
}
