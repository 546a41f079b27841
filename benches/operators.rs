//! Operator throughput through the in-memory `TestDriver`.
//!
//! Every benchmark pipes the same batch of pre-serialized records with `TestDriver::pipe_raw`,
//! so the timed work is what the library does per record — source deserialization, the
//! operators, sink serialization, state-store and changelog writes, and the driver's routing
//! of produced records — and not the test harness' typed serialization
//! (`TestInputTopic`). Output queues are drained between iterations, outside the timing.
//!
//! * `passthrough` — the baseline: `stream("in").to("out")`, one operator (the sink).
//! * `stateless_chain` — `filter → map_values → map → to` (the filter keeps every record, so
//!   every stage runs for every record).
//! * `count_10k_keys` — `group_by_key().count().to_stream().to(..)` over 10,000 distinct keys;
//!   the store is warm (every key already counted) before measuring, so each record is a
//!   read-modify-write plus a changelog record and an output record.
//! * `windowed_count_10k_keys` — the same count in one-minute tumbling windows (grace 10 s)
//!   on the in-memory window store; timestamps advance 1 ms per record, so windows open,
//!   fill and close during the run.
//! * `stream_table_join_10k_rows` — each record joined with a 10,000-row table (every key
//!   has a row), one store read per record.
//!
//! Compare figures as ratios within one run: the machine is shared and noisy.
//!
//! ```text
//! cargo bench --bench operators
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kstreams::config::StreamsConfig;
use kstreams::dsl::{Materialized, StreamsBuilder, TimeWindows};
use kstreams::processor::Headers;
use kstreams::testing::TestDriver;
use kstreams::topology::Topology;

/// Records per measured iteration (and distinct keys of the count benchmark).
const BATCH: usize = 10_000;

/// Pre-serialized `(key, value)` pairs: String keys `user-00000`.., String values.
fn records() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..BATCH)
        .map(|i| {
            let key = format!("user-{i:05}").into_bytes();
            let value = format!("page-{:03} clicked at {i}", i % 997).into_bytes();
            (key, value)
        })
        .collect()
}

fn passthrough() -> Topology {
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("in").to("out");
    builder.build().unwrap()
}

fn stateless_chain() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .filter(|_, v| !v.is_empty())
        .map_values(|v| v.to_uppercase())
        .map(|k, v| (v.len() as i64, format!("{k}:{v}")))
        .to("out");
    builder.build().unwrap()
}

fn count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .count()
        .to_stream()
        .to("out");
    builder.build().unwrap()
}

fn windowed_count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(10),
        ))
        .count()
        .to_stream()
        .to("out");
    builder.build().unwrap()
}

/// `in` joined with a table of 10k rows (filled by the warm-up from `rows`).
fn stream_table_join() -> Topology {
    let builder = StreamsBuilder::new();
    let rows = builder.table::<String, String>("rows", Materialized::default());
    builder
        .stream::<String, String>("in")
        .join(&rows, |v, row| format!("{v}|{row}"))
        .to("out");
    builder.build().unwrap()
}

fn pipe_all(driver: &TestDriver, records: &[(Vec<u8>, Vec<u8>)], timestamp: &mut i64) {
    for (key, value) in records {
        *timestamp += 1;
        driver
            .pipe_raw("in", Some(key), Some(value), *timestamp, Headers::new())
            .expect("record processed");
    }
}

/// Empties every topic the driver has written (outputs, changelogs, repartition topics),
/// so memory stays flat across iterations. Returns how many records were drained.
fn drain(driver: &TestDriver) -> usize {
    let mut drained = 0;
    for topic in driver.produced_topic_names() {
        let out = driver.create_output_topic::<Option<Vec<u8>>, Option<Vec<u8>>>(&topic);
        while out.read_record().is_some() {
            drained += 1;
        }
    }
    drained
}

fn bench(c: &mut Criterion) {
    let records = records();
    let mut group = c.benchmark_group("operators");
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(15));

    for (name, topology) in [
        ("passthrough", passthrough()),
        ("stateless_chain", stateless_chain()),
        ("count_10k_keys", count()),
        ("windowed_count_10k_keys", windowed_count()),
        ("stream_table_join_10k_rows", stream_table_join()),
    ] {
        let driver = TestDriver::new(&topology, StreamsConfig::new("bench")).unwrap();
        let mut timestamp = 0;
        if name.starts_with("stream_table_join") {
            for (key, value) in &records {
                driver
                    .pipe_raw("rows", Some(key), Some(value), 0, Headers::new())
                    .expect("table row");
            }
        }
        // Warm up state (the count store holds all 10k keys) and check the pipeline works.
        pipe_all(&driver, &records, &mut timestamp);
        let produced = drain(&driver);
        assert!(
            produced >= BATCH,
            "{name}: only {produced} records produced"
        );
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    drain(&driver);
                },
                |()| pipe_all(&driver, &records, &mut timestamp),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
