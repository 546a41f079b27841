//! State store throughput, in-memory against RocksDB, through the public API: each store is
//! defined with `Stores::…_builder…().with_store_type(..)`, added to a topology with
//! `StreamsBuilder::add_state_store` (connected to an idle processor, so the driver builds
//! it), and used through the typed handle `TestDriver::key_value_store` /
//! `TestDriver::window_store` returns — the same stack of layers a processor gets (typed
//! serdes, notifying layer, write cache when enabled, the bytes store). Changelogs are off:
//! what is measured is the store, not the changelog buffer.
//!
//! Keys are Strings `key-000000`.. (zero-padded, so byte order is numeric order), values
//! ~100-byte Strings; keys and values are built before measuring. Each iteration does 10,000
//! operations (`Throughput::Elements`), visiting keys in a fixed scattered order. Every
//! benchmark gets a fresh store in a fresh temporary state directory.
//!
//! * `kv_put` — 10,000 puts (overwrites) into a store of 100,000 keys, write cache off:
//!   every put goes to the bytes store (RocksDB: one write with the write-ahead log on, no
//!   fsync).
//! * `kv_put_batched` — the same puts with the write cache on (16 MiB): they collect in the
//!   cache and go down as one batch (RocksDB: one `WriteBatch`) at the commit that follows,
//!   triggered by piping one record (the driver commits after every record). Timed: the puts
//!   and the commit.
//! * `kv_get` — 10,000 gets, every one a hit, from a store of 100,000 keys (cache off).
//! * `kv_range` — 100 range scans of 100 consecutive keys each (10,000 entries read).
//! * `window_put` — 10,000 puts into a window store (one-minute windows, retention three
//!   minutes) over 10,000 keys, window start following a clock that advances 1 ms per put:
//!   the windowed-aggregation write pattern, with old windows expiring during the run.
//! * `window_fetch` — 10,000 single-window fetches, every one a hit, from a window store
//!   holding three windows of each of 10,000 keys.
//!
//! Compare figures as ratios within one run: the machine is shared and noisy.
//!
//! ```text
//! cargo bench --bench stores
//! cargo bench --bench stores -- --warm-up-time 1 --measurement-time 3   # shorter
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kstreams::config::StreamsConfig;
use kstreams::dsl::StreamsBuilder;
use kstreams::error::BoxError;
use kstreams::processor::{Headers, Processor, ProcessorContext, Record};
use kstreams::serde::Serdes;
use kstreams::state::{KeyValueStore, StoreType, Stores, WindowStore};
use kstreams::testing::TestDriver;
use kstreams::topology::Topology;
use tempfile::TempDir;

/// Operations per measured iteration.
const BATCH: usize = 10_000;
/// Keys in the key-value store.
const KEYS: usize = 100_000;
/// Window size and retention of the window store, in milliseconds.
const WINDOW: i64 = 60_000;
const RETENTION: i64 = 3 * WINDOW;

/// The `i`-th key of a scattered walk over `n` keys (48271 is prime, coprime with `n`).
fn scattered(i: usize, n: usize) -> usize {
    i * 48_271 % n
}

/// Connects the benchmark's stores to the topology; never sees a record it acts on.
struct Idle;

impl Processor<String, String, String, String> for Idle {
    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, String>,
        _record: Record<String, String>,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}

fn topology(store_type: StoreType) -> Topology {
    let builder = StreamsBuilder::new();
    builder.add_state_store(
        Stores::key_value_store_builder::<String, String>("kv")
            .with_store_type(store_type)
            .with_logging_disabled(),
    );
    builder.add_state_store(
        Stores::window_store_builder_with(
            "windows",
            Duration::from_millis(WINDOW as u64),
            Duration::from_millis(RETENTION as u64),
            false,
            Serdes::string(),
            Serdes::string(),
        )
        .with_store_type(store_type)
        .with_logging_disabled(),
    );
    builder
        .stream::<String, String>("commit")
        .process::<String, String, _>(|| Idle, &["kv", "windows"]);
    builder.build().unwrap()
}

/// A driver holding one key-value and one window store of a backend, in its own directory.
struct Fixture {
    driver: TestDriver,
    clock: i64,
    // Dropped after the driver, which closes the stores first.
    _state_dir: TempDir,
}

impl Fixture {
    fn new(store_type: StoreType, cache_bytes: usize) -> Self {
        let state_dir = TempDir::new().expect("state directory");
        let mut config = StreamsConfig::new("stores-bench").with_state_dir(state_dir.path());
        config.store_cache_max_bytes = cache_bytes;
        let driver = TestDriver::new(&topology(store_type), config).unwrap();
        Fixture {
            driver,
            clock: 0,
            _state_dir: state_dir,
        }
    }

    fn kv(&self) -> KeyValueStore<String, String> {
        self.driver.key_value_store("kv").unwrap()
    }

    fn windows(&self) -> WindowStore<String, String> {
        self.driver.window_store("windows").unwrap()
    }

    /// Pipes one record: the driver commits after it, writing down the write cache.
    fn commit(&mut self) {
        self.clock += 1;
        self.driver
            .pipe_raw("commit", Some(b"k"), Some(b"v"), self.clock, Headers::new())
            .expect("commit");
    }
}

/// Keys and values, built before measuring.
struct Entries {
    keys: Vec<String>,
    values: Vec<String>,
}

impl Entries {
    fn new() -> Self {
        Entries {
            keys: (0..KEYS).map(|i| format!("key-{i:06}")).collect(),
            values: (0..KEYS)
                .map(|i| format!("value-{i:06}-{}", "x".repeat(87)))
                .collect(),
        }
    }

    fn fill(&self, store: &KeyValueStore<String, String>) {
        for (k, v) in self.keys.iter().zip(&self.values) {
            store.put(k, v).unwrap();
        }
    }
}

fn backends() -> [(&'static str, StoreType); 2] {
    [
        ("in_memory", StoreType::InMemory),
        ("rocksdb", StoreType::RocksDb),
    ]
}

fn bench(c: &mut Criterion) {
    let data = Entries::new();
    let mut group = c.benchmark_group("stores");
    group.throughput(Throughput::Elements(BATCH as u64));

    for (backend, store_type) in backends() {
        let fixture = Fixture::new(store_type, 0);
        let store = fixture.kv();
        data.fill(&store);
        let mut next = 0;
        group.bench_function(BenchmarkId::new("kv_put", backend), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let i = scattered(next, KEYS);
                    next += 1;
                    store.put(&data.keys[i], &data.values[i]).unwrap();
                }
            })
        });
    }

    for (backend, store_type) in backends() {
        let mut fixture = Fixture::new(store_type, 16 << 20);
        let store = fixture.kv();
        data.fill(&store);
        fixture.commit();
        let mut next = 0;
        group.bench_function(BenchmarkId::new("kv_put_batched", backend), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let i = scattered(next, KEYS);
                    next += 1;
                    store.put(&data.keys[i], &data.values[i]).unwrap();
                }
                fixture.commit();
            })
        });
    }

    for (backend, store_type) in backends() {
        let fixture = Fixture::new(store_type, 0);
        let store = fixture.kv();
        data.fill(&store);
        let mut next = 0;
        group.bench_function(BenchmarkId::new("kv_get", backend), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let i = scattered(next, KEYS);
                    next += 1;
                    let value = store.get(&data.keys[i]).unwrap();
                    assert!(value.is_some());
                    black_box(value);
                }
            })
        });
    }

    const SCAN: usize = 100;
    for (backend, store_type) in backends() {
        let fixture = Fixture::new(store_type, 0);
        let store = fixture.kv();
        data.fill(&store);
        let mut next = 0;
        group.bench_function(BenchmarkId::new("kv_range", backend), |b| {
            b.iter(|| {
                for _ in 0..BATCH / SCAN {
                    let from = scattered(next, KEYS - SCAN);
                    next += 1;
                    let entries = store
                        .range(&data.keys[from], &data.keys[from + SCAN - 1])
                        .unwrap();
                    assert_eq!(entries.len(), SCAN);
                    black_box(entries);
                }
            })
        });
    }

    for (backend, store_type) in backends() {
        let fixture = Fixture::new(store_type, 0);
        let store = fixture.windows();
        let mut clock = 0;
        let put_batch = |clock: &mut i64| {
            for j in 0..BATCH {
                *clock += 1;
                let start = *clock / WINDOW * WINDOW;
                let i = scattered(j, BATCH);
                store.put(&data.keys[i], &data.values[i], start).unwrap();
            }
        };
        // Fill past the retention, so windows expire from the first measured put.
        while clock < RETENTION {
            put_batch(&mut clock);
        }
        group.bench_function(BenchmarkId::new("window_put", backend), |b| {
            b.iter(|| put_batch(&mut clock))
        });
    }

    for (backend, store_type) in backends() {
        let fixture = Fixture::new(store_type, 0);
        let store = fixture.windows();
        let starts = [0, WINDOW, 2 * WINDOW];
        for start in starts {
            for i in 0..BATCH {
                store.put(&data.keys[i], &data.values[i], start).unwrap();
            }
        }
        let mut next = 0;
        group.bench_function(BenchmarkId::new("window_fetch", backend), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let i = scattered(next, BATCH);
                    let start = starts[next % starts.len()];
                    next += 1;
                    let value = store.fetch(&data.keys[i], start).unwrap();
                    assert!(value.is_some());
                    black_box(value);
                }
            })
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
        .measurement_time(Duration::from_secs(10));
    targets = bench
}
criterion_main!(benches);
