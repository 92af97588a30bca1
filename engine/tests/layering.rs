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

/// Longest prefix of `path` (`a::b::c`) that is an engine module.
fn resolve(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| module_file(m).is_some())
}

/// `code` with every `super::super::…` path of module `module` written from `crate::`.
fn absolute(module: &str, code: &str) -> String {
    let segments: Vec<&str> = module.split("::").collect();
    let mut out = String::new();
    let mut rest = code;
    while let Some(i) = rest.find("super::") {
        out.push_str(&rest[..i]);
        let mut ups = 0;
        while rest[i + ups * 7..].starts_with("super::") {
            ups += 1;
        }
        let keep = segments.len().saturating_sub(ups);
        out.push_str("crate::");
        for s in &segments[..keep] {
            out.push_str(s);
            out.push_str("::");
        }
        rest = &rest[i + ups * 7..];
    }
    out.push_str(rest);
    out
}

/// Engine modules that the code of module `module` names: `crate::a::b…`, grouped
/// `crate::{a, b::c}` (one level) and `super::x`.
fn crate_uses(module: &str, code: &str) -> BTreeSet<String> {
    let code = absolute(module, code);
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split([',', '{', ' ', '\n']) {
                found.extend(resolve(item.trim()));
            }
        } else {
            found.extend(resolve(&rest.chars().take_while(|&c| ident(c)).collect::<String>()));
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
        for used in crate_uses(&m, &code) {
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
