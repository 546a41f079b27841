//! Windowed aggregation: revenue per customer per minute, in tumbling event-time windows,
//! with every update, the final result per window, and a late record dropped.
//!
//! Orders (key customer, value amount in cents) carry their own timestamps. The kstreams
//! application groups them by customer into 1-minute windows with 10 s of grace and sums
//! them: `revenue-updates` gets a new total on every order, and the same table behind
//! `suppress(until_window_closes())` writes `revenue-final` once per window, when stream
//! time passes the window's end plus grace. An order arriving after its window closed is
//! dropped and counted as late. Exits non-zero if an update, a final result or the late
//! count is not what it should be.
//!
//! The example turns the store's write cache off (`Materialized::with_caching_disabled`) to
//! show every update. With it on (the default), as in Kafka Streams, an aggregation forwards
//! one update per window per commit: `revenue-updates` would get alice's 1250 without the
//! 1000 before it when both orders are processed between two commits.
//!
//! ```text
//! cargo run --example windowed_aggregation
//! ```

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use kstreams::dsl::{Materialized, StreamsBuilder, Suppressed, TimeWindows, Windowed};
use kstreams::BoxError;

/// A minute boundary: window starts print as seconds after it.
const BASE: i64 = 1_700_000_000_000 / 60_000 * 60_000;

fn label(w: &Windowed<String>) -> String {
    format!("{}@{}s", w.key, (w.window.start - BASE) / 1000)
}

fn main() -> Result<(), BoxError> {
    common::header(
        "Windowed aggregation",
        "Revenue per customer in 1-minute tumbling windows (10 s grace), by event time.",
    );
    let broker =
        common::start_broker(&[("orders", 1), ("revenue-updates", 1), ("revenue-final", 1)])?;
    let bootstrap = broker.bootstrap_servers();

    let builder = StreamsBuilder::new();
    let revenue = builder
        .stream::<String, i64>("orders")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(10),
        ))
        // Every update, not one per window per commit.
        .reduce_with(
            |a, b| a + b,
            Materialized::default().with_caching_disabled(),
        );
    revenue
        .to_stream()
        .map(|w, total| (label(&w), total))
        .to("revenue-updates");
    revenue
        .suppress(Suppressed::until_window_closes())
        .to_stream()
        .map(|w, total| (label(&w), total))
        .to("revenue-final");
    let topology = builder.build()?;

    let producer = common::producer(bootstrap)?;
    // (customer, seconds after BASE, cents)
    let orders = [
        ("alice", 0, 1_000),
        ("bob", 10, 500),
        ("alice", 30, 250),
        ("alice", 65, 700),
        ("bob", 75, 300), // stream time 75 s: the window [0 s, 60 s) closed at 70 s
        ("alice", 20, 999), // late: its window has closed
        ("dave", 200, 1), // moves stream time on, closing [60 s, 120 s)
    ];
    println!("Input (topic `orders`, key customer, value cents, event time):");
    for (customer, at, cents) in orders {
        println!("  t={at:>3}s {customer:<6} {cents:>5}");
        common::send(
            &producer,
            "orders",
            customer,
            &i64::to_be_bytes(cents),
            Some(BASE + at * 1000),
        )?;
    }

    let state = tempfile::tempdir()?;
    let mut streams = common::start_streams(
        &topology,
        common::streams_config(bootstrap, "revenue-app", state.path()),
    )?;

    let updates = common::read_n(
        &common::consumer(bootstrap, "updates-reader", &["revenue-updates"])?,
        6,
    )?;
    println!("\nEvery update (topic `revenue-updates`):");
    let mut per_window: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for m in &updates {
        println!("  {:<10} -> {:?}", common::key_str(m), common::value_i64(m));
        per_window
            .entry(common::key_str(m))
            .or_default()
            .extend(common::value_i64(m));
    }
    let final_consumer = common::consumer(bootstrap, "final-reader", &["revenue-final"])?;
    let mut finals = common::read_n(&final_consumer, 4)?;
    finals.extend(common::drain(&final_consumer, Duration::from_millis(500))?);
    println!("\nFinal results (topic `revenue-final`):");
    for m in &finals {
        println!("  {:<10} -> {:?}", common::key_str(m), common::value_i64(m));
    }
    common::wait_until("the late-record metric", || {
        streams.metrics().late_records_dropped == 1
    })?;
    println!(
        "\nLate records dropped: {}",
        streams.metrics().late_records_dropped
    );
    streams.close();

    let expect = |pairs: &[(&str, &[i64])]| -> BTreeMap<String, Vec<i64>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    };
    assert_eq!(
        per_window,
        expect(&[
            ("alice@0s", &[1_000, 1_250]),
            ("bob@0s", &[500]),
            ("alice@60s", &[700]),
            ("bob@60s", &[300]),
            ("dave@180s", &[1]),
        ]),
        "one update per accepted order; the late one changed nothing"
    );
    let finals: Vec<(String, Option<i64>)> = finals
        .iter()
        .map(|m| (common::key_str(m), common::value_i64(m)))
        .collect();
    let expected_finals = [
        ("alice@0s", 1_250),
        ("bob@0s", 500),
        ("alice@60s", 700),
        ("bob@60s", 300),
    ];
    assert_eq!(
        finals,
        expected_finals.map(|(k, v)| (k.to_string(), Some(v))),
        "one final result per closed window; dave's window is still open"
    );
    println!("\nOK: 6 updates, 4 final window results (alice@0s = 1250), 1 late order dropped");
    Ok(())
}
