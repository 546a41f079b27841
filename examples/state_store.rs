//! State stores: a processor keeps stock levels in a RocksDB store whose every change also
//! goes to a changelog topic, so the state survives losing the disk.
//!
//! Stock movements (key SKU, value +received / -sold) arrive on `stock-movements`. A
//! Processor API processor reads the SKU's level from the store `inventory`, adds the
//! movement, writes the level back and forwards it to `stock-levels`. The first instance
//! processes a batch and stops. Its state directory is then deleted, as if the machine were
//! replaced. A second instance starts with an empty directory: before processing, it restores
//! `inventory` from the changelog topic `inventory-app-inventory-changelog`, then applies the
//! next batch on top of the restored levels. Exits non-zero if a level is wrong after the
//! restore.
//!
//! ```text
//! cargo run --example state_store
//! ```

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use kstreams::dsl::StreamsBuilder;
use kstreams::kafka::KafkaStreams;
use kstreams::processor::{Processor, ProcessorContext, Record};
use kstreams::state::{KeyValueStore, StoreType, Stores};
use kstreams::topology::Topology;
use kstreams::BoxError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

const APP: &str = "inventory-app";
const STORE: &str = "inventory";
const PARTITIONS: i32 = 2;

/// Applies a stock movement to the SKU's level in the store and forwards the new level.
#[derive(Default)]
struct ApplyMovement {
    levels: Option<KeyValueStore<String, i64>>,
}

impl Processor<String, i64, String, i64> for ApplyMovement {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), BoxError> {
        self.levels = Some(ctx.key_value_store(STORE)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, i64>,
    ) -> Result<(), BoxError> {
        let levels = self.levels.as_ref().ok_or("init() was not called")?;
        let level = levels.get(&record.key)?.unwrap_or(0) + record.value;
        levels.put(&record.key, &level)?;
        ctx.forward(record.with_value(level))
    }
}

fn topology() -> Result<Topology, BoxError> {
    let builder = StreamsBuilder::new();
    builder.add_state_store(
        Stores::key_value_store_builder::<String, i64>(STORE).with_store_type(StoreType::RocksDb),
    );
    builder
        .stream::<String, i64>("stock-movements")
        .process(ApplyMovement::default, &[STORE])
        .to("stock-levels");
    Ok(builder.build()?)
}

fn send_movements(bootstrap: &str, movements: &[(&str, i64)]) -> Result<(), BoxError> {
    let producer = common::producer(bootstrap)?;
    for (sku, delta) in movements {
        println!("  {sku:<8} {delta:+}");
        common::send(
            &producer,
            "stock-movements",
            sku,
            &delta.to_be_bytes(),
            None,
        )?;
    }
    Ok(())
}

/// Waits until the store holds `expected`, then prints it.
fn await_levels(streams: &KafkaStreams, expected: &BTreeMap<String, i64>) -> Result<(), BoxError> {
    let store = streams.store::<String, i64>(STORE)?;
    common::wait_until("the stock levels", || {
        store
            .all()
            .is_ok_and(|all| all.into_iter().collect::<BTreeMap<_, _>>() == *expected)
    })?;
    println!("Store `{STORE}`: {:?}", store.all()?);
    Ok(())
}

fn main() -> Result<(), BoxError> {
    common::header(
        "State store",
        "Stock levels in a RocksDB store, restored from its changelog after the disk is lost.",
    );
    let broker = common::start_broker(&[
        ("stock-movements", PARTITIONS),
        ("stock-levels", PARTITIONS),
    ])?;
    let bootstrap = broker.bootstrap_servers();
    let topology = topology()?;
    let state = tempfile::tempdir()?;
    let levels = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };

    println!("Batch 1 (topic `stock-movements`):");
    send_movements(
        bootstrap,
        &[
            ("kettle", 10),
            ("teapot", 5),
            ("kettle", -3),
            ("mug", 40),
            ("mug", -12),
        ],
    )?;
    let mut first = common::start_streams(
        &topology,
        common::streams_config(bootstrap, APP, state.path()),
    )?;
    await_levels(
        &first,
        &levels(&[("kettle", 7), ("mug", 28), ("teapot", 5)]),
    )?;
    first.close();
    println!("First instance closed.");

    std::fs::remove_dir_all(state.path())?;
    println!("State directory deleted.\n");
    let changelog = format!("{APP}-{STORE}-changelog");
    let watermarks: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let mut changelog_records = 0;
    for partition in 0..PARTITIONS {
        changelog_records += watermarks
            .fetch_watermarks(&changelog, partition, common::TIMEOUT)?
            .1;
    }
    // Fewer records than movements: the store's write cache keeps one update per key
    // between commits.
    println!("Changelog `{changelog}` holds {changelog_records} records.");

    println!("Batch 2:");
    send_movements(bootstrap, &[("kettle", -7), ("teapot", 2), ("mug", -1)])?;
    let mut second = common::start_streams(
        &topology,
        common::streams_config(bootstrap, APP, state.path()),
    )?;
    common::wait_until("the restore", || {
        second.metrics().restored_records as i64 == changelog_records
    })?;
    println!(
        "Second instance restored {} records.",
        second.metrics().restored_records
    );
    await_levels(
        &second,
        &levels(&[("kettle", 0), ("mug", 27), ("teapot", 7)]),
    )?;
    let output = common::consumer(bootstrap, "levels-reader", &["stock-levels"])?;
    let updates = common::read_n(&output, 8)?;
    second.close();

    println!("\nEvery level update (topic `stock-levels`):");
    let mut per_sku: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for m in &updates {
        per_sku
            .entry(common::key_str(m))
            .or_default()
            .extend(common::value_i64(m));
    }
    for (sku, history) in &per_sku {
        println!("  {sku:<8} {history:?}");
    }
    assert!(
        changelog_records > 0,
        "the first instance wrote a changelog"
    );
    assert_eq!(per_sku["kettle"], [10, 7, 0], "the restored 7 minus 7");
    assert_eq!(per_sku["mug"], [40, 28, 27]);
    assert_eq!(per_sku["teapot"], [5, 7]);
    println!("\nOK: after losing its state directory the application restored {changelog_records} changelog records and continued from kettle = 7, mug = 28, teapot = 5");
    Ok(())
}
