//! Every `isola ...` command in the shell examples of README.md and trainer/README.md parses
//! with the CLI as built: a renamed flag or subcommand breaks this test, not a reader's
//! first hour. (The musician's commands also run for real in `train.rs` and
//! `separate_eval_cli.rs`.) The scripts in `scripts/` answer `--help` and print a usage line
//! when called wrongly.

use std::path::Path;

use clap::Parser;
use isola_trainer::cli::Cli;

/// The command lines of the ```sh blocks in `markdown`: continuation lines joined, comments
/// and redirections dropped.
fn shell_commands(markdown: &str) -> Vec<String> {
    let (mut out, mut in_sh, mut pending) = (Vec::new(), false, String::new());
    for line in markdown.lines() {
        let fence = line.trim_start();
        if fence.starts_with("```") {
            in_sh = !in_sh && fence.trim_start_matches('`').trim() == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let line = match line.find(" #") {
            Some(i) if line[..i].matches('"').count() % 2 == 0 => &line[..i],
            _ => line,
        };
        pending.push_str(line.trim().trim_end_matches('\\').trim_end());
        pending.push(' ');
        if !line.trim_end().ends_with('\\') {
            let command = pending.split(" > ").next().expect("split yields one").trim().to_owned();
            if !command.is_empty() {
                out.push(command);
            }
            pending.clear();
        }
    }
    out
}

/// Splits on whitespace outside single or double quotes, removing the quotes.
fn words(command: &str) -> Vec<String> {
    let (mut out, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in command.chars() {
        match (quote, c) {
            (None, '"' | '\'') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (_, c) => (word, any) = (word + &c.to_string(), true),
        }
    }
    if any {
        out.push(word);
    }
    out
}

#[test]
fn every_isola_command_in_the_readmes_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for readme in [root.join("../README.md"), root.join("README.md")] {
        let text = std::fs::read_to_string(&readme).unwrap();
        for command in shell_commands(&text).into_iter().filter(|c| c.starts_with("isola ")) {
            if let Err(e) = Cli::try_parse_from(words(&command)) {
                // --help and --version end parsing early: they are fine.
                use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
                assert!(matches!(e.kind(), DisplayHelp | DisplayVersion), "{}: `{command}`:\n{e}", readme.display());
            }
            checked += 1;
        }
    }
    // Both READMEs have a dozen or more: an extraction that finds none fails here.
    assert!(checked >= 25, "only {checked} isola commands found");
}

#[test]
fn shell_examples_are_extracted_as_a_reader_types_them() {
    let md =
        "text\n```sh\nisola a --x \"two words\"   # comment\nisola b \\\n  --y 1 > file\n```\n```toml\nisola no\n```\n";
    assert_eq!(shell_commands(md), ["isola a --x \"two words\"", "isola b --y 1"]);
    assert_eq!(words("isola a --x \"two words\" 'it s'"), ["isola", "a", "--x", "two words", "it s"]);
}

#[test]
fn scripts_answer_help_and_print_a_usage_line_when_called_wrongly() {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let missing = "/nonexistent/isola-test";
    for (script, wrong) in [
        ("split-shared-data.sh", vec![missing]),
        ("explore.sh", vec!["no-such-exploration"]),
        ("gpu-train.sh", vec![missing]),
        ("score-run.sh", vec![]),
        ("score-run.sh", vec![missing]),
        ("latency-modes.sh", vec!["out", "extra"]),
    ] {
        let path = scripts.join(script);
        let run = |args: &[&str]| std::process::Command::new("bash").arg(&path).args(args).output().unwrap();
        let help = run(&["--help"]);
        assert!(help.status.success() && help.stdout.len() > 100, "{script} --help");
        let o = run(&wrong);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(if script == "gpu-train.sh" { 1 } else { 2 }), "{script}: {stderr}");
        assert!(stderr.contains("usage: ") && stderr.contains(script), "{script}: {stderr}");
    }
}
