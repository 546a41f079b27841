//! Checks a Kafka cluster for what kstreams relies on.
//!
//! `cargo run -p kstreams-testkit --bin conformance -- <bootstrap> [--no-transactions] [--no-topic-configs]`

use kstreams_testkit::conformance::{check, Options};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(bootstrap) = args.next() else {
        eprintln!(
            "usage: conformance <bootstrap-servers> [--no-transactions] [--no-topic-configs]"
        );
        std::process::exit(2);
    };
    let mut options = Options::default();
    for flag in args {
        match flag.as_str() {
            "--no-transactions" => options.transactions = false,
            "--no-topic-configs" => options.topic_configs = false,
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    let report = check(&bootstrap, &options);
    print!("{report}");
    std::process::exit(if report.passed() { 0 } else { 1 });
}
