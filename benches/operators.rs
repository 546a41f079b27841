//! Operator throughput through the in-memory `TestDriver`.
//!
//! Every benchmark pipes the same batch of pre-serialized records with `TestDriver::pipe_raw`,
//! so the timed work is what the library does per record — source deserialization, the
//! operators, sink serialization, state-store and changelog writes, and the driver's routing
//! of produced records — and not the test harness' typed serialization
//! (`TestInputTopic`). Output queues are drained between iterations, outside the timing.
//! A batch is 10,000 records; timestamps advance 1 ms per record, across iterations.
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
//! * `hopping_count_10k_keys` — the same count in one-minute windows advancing by 10 s:
//!   every record updates six windows (six store reads and writes, six output records).
//! * `session_count_10k_keys` — the count in session windows (inactivity gap 30 s, grace
//!   10 s); each key comes back every 10 s, so every record extends its key's session: a
//!   session lookup, a remove and a put, and two output records (retraction and update).
//! * `*_rocksdb` — the same topology with every store on RocksDB
//!   (`StreamsConfig::with_default_store_type(StoreType::RocksDb)`, state directory in a
//!   temporary directory). The driver commits after every record, so the write cache goes
//!   down after each one: one RocksDB write per store update, not one batch per commit
//!   interval as on a broker.
//! * `stream_table_join_10k_rows` — each record joined with a 10,000-row table (every key
//!   has a row), one store read per record.
//! * `stream_stream_join_5k_pairs` — `join_stream` of two streams within 1 s: the batch is
//!   5,000 keys, each piped to `left` and then 1 ms later to `right`, so every right record
//!   finds one left record (5,000 results). Each record is a put into its side's window
//!   store (with a changelog record) and a fetch from the other side's.
//! * `table_table_join_10k_rows` — `left.join(&right)` on the key, with `right` holding
//!   10,000 rows; each record updates a `left` row (store write) and reads the `right` row.
//! * `fk_join_10k_rows` — `orders.join_on_foreign_key(&customers, ..)`: each record updates an
//!   order whose value is a customer key (10,000 customers); the update goes through the
//!   subscription topic to the customer side and back through the response topic.
//! * `global_table_join_10k_rows` — `join_global` with a 10,000-row global table, looked up
//!   by the record key.
//!
//! Compare figures as ratios within one run: the machine is shared and noisy.
//!
//! ```text
//! cargo bench --bench operators
//! cargo bench --bench operators -- --warm-up-time 1 --measurement-time 3   # shorter
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kstreams::config::StreamsConfig;
use kstreams::dsl::{JoinWindows, Materialized, SessionWindows, StreamsBuilder, TimeWindows};
use kstreams::processor::Headers;
use kstreams::state::StoreType;
use kstreams::testing::TestDriver;
use kstreams::topology::Topology;
use tempfile::TempDir;

/// Records per measured iteration (and distinct keys of the count benchmark).
const BATCH: usize = 10_000;

/// A pre-serialized record and the topic it is piped to.
type Input = (&'static str, Vec<u8>, Vec<u8>);

fn key(i: usize) -> Vec<u8> {
    format!("user-{i:05}").into_bytes()
}

/// Pre-serialized `(key, value)` pairs: String keys `user-00000`.., String values.
fn records() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..BATCH)
        .map(|i| {
            let value = format!("page-{:03} clicked at {i}", i % 997).into_bytes();
            (key(i), value)
        })
        .collect()
}

/// The records of [`records`], all piped to `topic`.
fn on(topic: &'static str, records: &[(Vec<u8>, Vec<u8>)]) -> Vec<Input> {
    records
        .iter()
        .map(|(k, v)| (topic, k.clone(), v.clone()))
        .collect()
}

/// 5,000 keys, each piped to `left` and then to `right`.
fn pairs(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<Input> {
    records[..BATCH / 2]
        .iter()
        .flat_map(|(k, v)| {
            [
                ("left", k.clone(), v.clone()),
                ("right", k.clone(), v.clone()),
            ]
        })
        .collect()
}

/// Order updates: order keys `order-00000`.., each naming a customer key as its value.
fn orders() -> Vec<Input> {
    (0..BATCH)
        .map(|i| {
            let order = format!("order-{i:05}").into_bytes();
            ("orders", order, key(i * 7919 % BATCH))
        })
        .collect()
}

/// 10,000 customer rows, one per key of [`records`].
fn customers() -> Vec<Input> {
    (0..BATCH)
        .map(|i| ("customers", key(i), format!("customer {i}").into_bytes()))
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

fn windowed_count(windows: TimeWindows) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(windows)
        .count()
        .to_stream()
        .to("out");
    builder.build().unwrap()
}

fn tumbling() -> TimeWindows {
    TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10))
}

fn hopping() -> TimeWindows {
    tumbling().advance_by(Duration::from_secs(10))
}

fn session_count() -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_secs(30),
            Duration::from_secs(10),
        ))
        .count()
        .to_stream()
        .to("out");
    builder.build().unwrap()
}

/// `in` joined with a table of 10k rows (filled before the warm-up from `rows`).
fn stream_table_join() -> Topology {
    let builder = StreamsBuilder::new();
    let rows = builder.table::<String, String>("rows", Materialized::default());
    builder
        .stream::<String, String>("in")
        .join(&rows, |v, row| format!("{v}|{row}"))
        .to("out");
    builder.build().unwrap()
}

fn stream_stream_join() -> Topology {
    let builder = StreamsBuilder::new();
    let right = builder.stream::<String, String>("right");
    builder
        .stream::<String, String>("left")
        .join_stream(
            &right,
            |l, r| format!("{l}|{r}"),
            JoinWindows::of_time_difference_without_grace(Duration::from_secs(1)),
        )
        .to("out");
    builder.build().unwrap()
}

/// `left` joined with `right` (10k rows filled before the warm-up).
fn table_table_join() -> Topology {
    let builder = StreamsBuilder::new();
    let left = builder.table::<String, String>("left", Materialized::default());
    let right = builder.table::<String, String>("right", Materialized::default());
    left.join(&right, |l, r| format!("{l}|{r}"))
        .to_stream()
        .to("out");
    builder.build().unwrap()
}

/// Orders (value: a customer key) joined with 10k customers (filled before the warm-up).
fn fk_join() -> Topology {
    let builder = StreamsBuilder::new();
    let orders = builder.table::<String, String>("orders", Materialized::default());
    let customers = builder.table::<String, String>("customers", Materialized::default());
    orders
        .join_on_foreign_key(
            &customers,
            |customer| customer.clone(),
            |customer, row| format!("{customer}|{row}"),
        )
        .to_stream()
        .to("out");
    builder.build().unwrap()
}

/// `in` joined with a global table of 10k rows (filled before the warm-up from `rows`).
fn global_table_join() -> Topology {
    let builder = StreamsBuilder::new();
    let rows = builder.global_table::<String, String>("rows", Materialized::default());
    builder
        .stream::<String, String>("in")
        .join_global(&rows, |k, _| k.clone(), |v, row| format!("{v}|{row}"))
        .to("out");
    builder.build().unwrap()
}

/// Where a benchmark's stores live.
enum Backend {
    InMemory,
    /// RocksDB, under a temporary state directory.
    RocksDb,
}

/// One benchmark: its topology, table rows piped once at time 0 before the warm-up, and the
/// batch piped per iteration.
struct Case {
    name: String,
    topology: Topology,
    backend: Backend,
    rows: Vec<Input>,
    input: Vec<Input>,
}

impl Case {
    fn new(name: &str, topology: Topology, input: Vec<Input>) -> Self {
        Case {
            name: name.to_string(),
            topology,
            backend: Backend::InMemory,
            rows: Vec::new(),
            input,
        }
    }

    fn with_rows(mut self, rows: Vec<Input>) -> Self {
        self.rows = rows;
        self
    }

    /// The same benchmark with every store on RocksDB, named `<name>_rocksdb`.
    fn on_rocksdb(mut self) -> Self {
        self.name.push_str("_rocksdb");
        self.backend = Backend::RocksDb;
        self
    }
}

fn pipe_all(driver: &TestDriver, input: &[Input], timestamp: &mut i64) {
    for (topic, key, value) in input {
        *timestamp += 1;
        driver
            .pipe_raw(topic, Some(key), Some(value), *timestamp, Headers::new())
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
    let input = on("in", &records);
    let rows = on("rows", &records);
    let cases = vec![
        Case::new("passthrough", passthrough(), input.clone()),
        Case::new("stateless_chain", stateless_chain(), input.clone()),
        Case::new("count_10k_keys", count(), input.clone()),
        Case::new("count_10k_keys", count(), input.clone()).on_rocksdb(),
        Case::new(
            "windowed_count_10k_keys",
            windowed_count(tumbling()),
            input.clone(),
        ),
        Case::new(
            "windowed_count_10k_keys",
            windowed_count(tumbling()),
            input.clone(),
        )
        .on_rocksdb(),
        Case::new(
            "hopping_count_10k_keys",
            windowed_count(hopping()),
            input.clone(),
        ),
        Case::new(
            "hopping_count_10k_keys",
            windowed_count(hopping()),
            input.clone(),
        )
        .on_rocksdb(),
        Case::new("session_count_10k_keys", session_count(), input.clone()),
        Case::new("session_count_10k_keys", session_count(), input.clone()).on_rocksdb(),
        Case::new(
            "stream_table_join_10k_rows",
            stream_table_join(),
            input.clone(),
        )
        .with_rows(rows.clone()),
        Case::new(
            "stream_stream_join_5k_pairs",
            stream_stream_join(),
            pairs(&records),
        ),
        Case::new(
            "stream_stream_join_5k_pairs",
            stream_stream_join(),
            pairs(&records),
        )
        .on_rocksdb(),
        Case::new(
            "table_table_join_10k_rows",
            table_table_join(),
            on("left", &records),
        )
        .with_rows(on("right", &records)),
        Case::new("fk_join_10k_rows", fk_join(), orders()).with_rows(customers()),
        Case::new(
            "global_table_join_10k_rows",
            global_table_join(),
            input.clone(),
        )
        .with_rows(rows),
    ];

    let mut group = c.benchmark_group("operators");
    group.throughput(Throughput::Elements(BATCH as u64));
    for case in cases {
        let name = case.name.as_str();
        assert_eq!(case.input.len(), BATCH, "{name}: batch size");
        // Declared before the driver, so the driver (and its stores) go first.
        let state_dir = TempDir::new().expect("state directory");
        let config = match case.backend {
            Backend::InMemory => StreamsConfig::new("bench"),
            Backend::RocksDb => StreamsConfig::new("bench")
                .with_state_dir(state_dir.path())
                .with_default_store_type(StoreType::RocksDb),
        };
        let driver = TestDriver::new(&case.topology, config).unwrap();
        let mut timestamp = 0;
        for (topic, key, value) in &case.rows {
            driver
                .pipe_raw(topic, Some(key), Some(value), 0, Headers::new())
                .expect("table row");
        }
        drain(&driver);
        // Warm up state (stores hold every key) and check the pipeline produces output.
        pipe_all(&driver, &case.input, &mut timestamp);
        let out = driver
            .create_output_topic::<Option<Vec<u8>>, Option<Vec<u8>>>("out")
            .queue_size();
        assert!(out >= BATCH / 2, "{name}: only {out} output records");
        drain(&driver);
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    drain(&driver);
                },
                |()| pipe_all(&driver, &case.input, &mut timestamp),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Defaults for a full run; command-line options (`--measurement-time`, ...) override them.
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(15));
    targets = bench
}
criterion_main!(benches);
