//! Runs every example of `examples/` and checks that it succeeds.
//!
//! `cargo test` builds the examples next to the test binaries: this test lives in
//! `<target>/<profile>/deps/`, the examples in `<target>/<profile>/examples/`. Examples are
//! discovered by listing `examples/*.rs`, so a new example is covered without editing this
//! file. Each example asserts its own results (exiting non-zero otherwise) and ends by
//! printing a line that starts with `OK:`; some have extra expected lines below.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Lines (besides the final `OK:` line) that specific examples must print.
const EXPECTED_LINES: &[(&str, &str)] = &[
    ("word_count", "OK: 11 distinct words, `to` counted 4 times"),
    ("word_count", "Topologies:"),
    ("table_aggregation", "    region-counts: eu -> Some(1)"),
    ("table_aggregation", "Topologies:"),
];

fn example_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `<target>/<profile>/deps/examples-<hash>` → `<target>/<profile>/examples/<name>`.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test binary");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn examples_are_discovered() {
    let names = example_names();
    for required in ["word_count", "table_aggregation"] {
        assert!(
            names.iter().any(|n| n == required),
            "missing example {required}: {names:?}"
        );
    }
}

#[test]
fn every_example_runs_and_prints_its_results() {
    let mut failures = Vec::new();
    for name in example_names() {
        let binary = example_binary(&name);
        assert!(
            binary.exists(),
            "{} is not built: run the whole `cargo test` (it builds examples), or \
             `cargo build --examples` first",
            binary.display()
        );
        let output = Command::new(&binary)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut problems = Vec::new();
        if !output.status.success() {
            problems.push(format!("exit status {}", output.status));
        }
        if !stdout.lines().any(|l| l.starts_with("OK:")) {
            problems.push("no line starting with `OK:`".to_string());
        }
        for (_, line) in EXPECTED_LINES.iter().filter(|(ex, _)| *ex == name) {
            if !stdout.lines().any(|l| l == *line) {
                problems.push(format!("missing line {line:?}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "example `{name}`: {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
