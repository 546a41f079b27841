//! Runs every example of `examples/` and checks that it succeeds.
//!
//! `cargo test` builds the examples next to the test binaries: this test lives in
//! `<target>/<profile>/deps/`, the examples in `<target>/<profile>/examples/`. Examples are
//! discovered by listing `examples/*.rs`, so a new example is covered without editing this
//! file. Each example asserts its own results (exiting non-zero otherwise) and ends by
//! printing a line that starts with `OK:`; some have extra expected lines below.
//!
//! Most examples start an in-process broker; two run at a time, and one that has not
//! finished after [`TIMEOUT`] is killed and reported as failed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one example may run.
const TIMEOUT: Duration = Duration::from_secs(120);

/// How many examples run at once.
const PARALLEL: usize = 2;

/// Every example this repository promises; `examples_are_discovered` checks they exist.
const REQUIRED: &[&str] = &[
    "word_count",
    "table_aggregation",
    "producer_consumer",
    "customer_partitioning",
    "schema_evolution",
    "consumer_groups",
    "dead_letter_topic",
    "idempotent_processing",
    "fan_out",
    "windowed_aggregation",
    "stream_table_join",
    "stream_stream_join",
    "state_store",
    "interactive_queries",
    "exactly_once",
];

/// Lines (besides the final `OK:` line) that specific examples must print.
const EXPECTED_LINES: &[(&str, &str)] = &[
    ("word_count", "OK: 11 distinct words, `to` counted 4 times"),
    ("word_count", "Topologies:"),
    ("table_aggregation", "    region-counts: eu -> Some(1)"),
    ("table_aggregation", "Topologies:"),
    (
        "idempotent_processing",
        "OK: 7 deliveries of 4 payments applied once each: acct-1 = 1750, acct-2 = 2000 cents",
    ),
    (
        "windowed_aggregation",
        "OK: 6 updates, 4 final window results (alice@0s = 1250), 1 late order dropped",
    ),
    (
        "dead_letter_topic",
        "OK: 2 valid orders totalled, 3 bad records dead-lettered with their reason",
    ),
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

/// The example's own sources (under `examples/`, from the dep-info file cargo writes next to
/// the binary) that changed after the binary was built: `cargo test --test examples` does not
/// rebuild examples, a plain `cargo test` or `cargo build --examples` does.
fn newer_sources(binary: &Path) -> Vec<PathBuf> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(binary) else {
        return Vec::new();
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dep_info = std::fs::read_to_string(binary.with_extension("d")).unwrap_or_default();
    dep_info
        .split_whitespace()
        .skip(1)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(&examples))
        .filter(|p| modified(p).is_some_and(|m| m > built))
        .collect()
}

/// What one run of an example printed, and how it ended.
struct Run {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs an example binary, killing it after [`TIMEOUT`].
fn run(binary: &Path) -> Run {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    // Read both pipes while the child runs, so a full pipe cannot block it.
    let pipe = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = from.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = pipe(Box::new(child.stderr.take().expect("piped stderr")));
    let (success, status) = loop {
        match child.try_wait() {
            Ok(Some(status)) => break (status.success(), status.to_string()),
            Ok(None) if started.elapsed() >= TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break (false, format!("killed after {TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("waiting for {}: {e}", binary.display()),
        }
    };
    Run {
        success,
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// What is wrong with a run of `name`, if anything.
fn problems(name: &str, run: &Run) -> Vec<String> {
    let mut problems = Vec::new();
    if !run.success {
        problems.push(format!("exit status {}", run.status));
    }
    if !run.stdout.lines().any(|l| l.starts_with("OK:")) {
        problems.push("no line starting with `OK:`".to_string());
    }
    for (_, line) in EXPECTED_LINES.iter().filter(|(ex, _)| *ex == name) {
        if !run.stdout.lines().any(|l| l == *line) {
            problems.push(format!("missing line {line:?}"));
        }
    }
    problems
}

#[test]
fn examples_are_discovered() {
    let names = example_names();
    for required in REQUIRED {
        assert!(
            names.iter().any(|n| n == required),
            "missing example {required}: {names:?}"
        );
    }
}

#[test]
fn every_example_runs_and_prints_its_results() {
    // Popped from the end: alphabetical order.
    let queue = Mutex::new(example_names().into_iter().rev().collect::<Vec<_>>());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| loop {
                let Some(name) = queue.lock().unwrap().pop() else {
                    return;
                };
                let binary = example_binary(&name);
                let stale = newer_sources(&binary);
                let unusable = if !binary.exists() {
                    Some(format!("{} is not built", binary.display()))
                } else if !stale.is_empty() {
                    Some(format!("{} is older than {stale:?}", binary.display()))
                } else {
                    None
                };
                if let Some(why) = unusable {
                    failures.lock().unwrap().push(format!(
                        "example `{name}`: {why}: build the examples first \
                         (`cargo build --workspace --all-features --examples`, or a plain `cargo test`)"
                    ));
                    continue;
                }
                let run = run(&binary);
                let problems = problems(&name, &run);
                println!(
                    "example {name}: {} in {:.1} s",
                    if problems.is_empty() { "ok" } else { "FAILED" },
                    run.elapsed.as_secs_f64()
                );
                if !problems.is_empty() {
                    failures.lock().unwrap().push(format!(
                        "example `{name}`: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                        problems.join("; "),
                        run.stdout,
                        run.stderr
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
