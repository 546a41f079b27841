//! Stream–table join: enrich each order with the customer's current row.
//!
//! `customers` (key customer id) is read as a `KTable`: the latest profile per customer.
//! `orders` (key customer id, so both topics are partitioned alike) is a `KStream`. A
//! `left_join` looks each order up in the table when the order is processed: an order of a
//! known customer gets the profile, an order of an unknown one gets `None`. Updating a
//! customer changes the enrichment of later orders only, and emits nothing itself: the stream
//! side drives a stream–table join. Exits non-zero if an enriched order is not as described.
//!
//! ```text
//! cargo run --example stream_table_join
//! ```

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use kstreams::dsl::{Materialized, StreamsBuilder};
use kstreams::kafka::KafkaStreams;
use kstreams::BoxError;
use rdkafka::consumer::BaseConsumer;
use rdkafka::Message;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Customer {
    name: String,
    tier: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: String,
    total_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EnrichedOrder {
    order_id: String,
    total_cents: i64,
    customer: Option<String>,
    tier: Option<String>,
}
kstreams::json_serde!(Customer, Order, EnrichedOrder);

fn customer(name: &str, tier: &str) -> Customer {
    Customer {
        name: name.into(),
        tier: tier.into(),
    }
}

/// Waits until the table holds `expected` for `id`: the update has been applied.
fn await_row(streams: &KafkaStreams, id: &str, expected: &Customer) -> Result<(), BoxError> {
    let table = streams.store::<String, Customer>("customers-store")?;
    common::wait_until(&format!("{id} in the table"), || {
        table.get(&id.to_string()).ok().flatten().as_ref() == Some(expected)
    })
}

fn read_enriched(consumer: &BaseConsumer, n: usize) -> Result<Vec<EnrichedOrder>, BoxError> {
    let mut records = common::read_n(consumer, n)?;
    records.extend(common::drain(consumer, Duration::from_millis(500))?);
    let enriched = records
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap_or_default()))
        .collect::<Result<Vec<EnrichedOrder>, _>>()?;
    for e in &enriched {
        println!("  {e:?}");
    }
    Ok(enriched)
}

fn main() -> Result<(), BoxError> {
    common::header(
        "Stream-table join",
        "Orders (a stream) are enriched with the customer's current profile (a table).",
    );
    let broker = common::start_broker(&[("customers", 2), ("orders", 2), ("enriched-orders", 2)])?;
    let bootstrap = broker.bootstrap_servers();

    let builder = StreamsBuilder::new();
    let customers =
        builder.table::<String, Customer>("customers", Materialized::named("customers-store"));
    builder
        .stream::<String, Order>("orders")
        .left_join(&customers, |order, row: Option<&Customer>| EnrichedOrder {
            order_id: order.order_id,
            total_cents: order.total_cents,
            customer: row.map(|c| c.name.clone()),
            tier: row.map(|c| c.tier.clone()),
        })
        .to("enriched-orders");
    let topology = builder.build()?;

    let producer = common::producer(bootstrap)?;
    let send_order = |customer_id: &str, order_id: &str, total_cents| -> Result<(), BoxError> {
        println!("  order {order_id} of {customer_id}: {total_cents} cents");
        let order = Order {
            order_id: order_id.into(),
            total_cents,
        };
        common::send_json(&producer, "orders", customer_id, &order, None)
    };

    println!("Table input (topic `customers`):");
    for (id, c) in [
        ("c1", customer("Alice", "gold")),
        ("c2", customer("Bob", "silver")),
    ] {
        println!("  {id}: {c:?}");
        common::send_json(&producer, "customers", id, &c, None)?;
    }
    let state = tempfile::tempdir()?;
    let mut streams = common::start_streams(
        &topology,
        common::streams_config(bootstrap, "enrich-app", state.path()),
    )?;
    await_row(&streams, "c2", &customer("Bob", "silver"))?;
    await_row(&streams, "c1", &customer("Alice", "gold"))?;
    let output = common::consumer(bootstrap, "enriched-reader", &["enriched-orders"])?;

    println!("\nStream input (topic `orders`):");
    send_order("c1", "o1", 1_000)?;
    send_order("c2", "o2", 250)?;
    send_order("c9", "o3", 75)?;
    println!("Output (topic `enriched-orders`):");
    let mut first = read_enriched(&output, 3)?;
    first.sort_by(|a, b| a.order_id.cmp(&b.order_id));

    println!("\nTable update: c1 becomes platinum (no output expected)");
    let platinum = customer("Alice", "platinum");
    common::send_json(&producer, "customers", "c1", &platinum, None)?;
    await_row(&streams, "c1", &platinum)?;
    let after_update = common::drain(&output, Duration::from_millis(500))?;
    send_order("c1", "o4", 3_000)?;
    println!("Output:");
    let second = read_enriched(&output, 1)?;
    streams.close();

    let enriched = |id: &str, total, who: Option<(&str, &str)>| EnrichedOrder {
        order_id: id.into(),
        total_cents: total,
        customer: who.map(|w| w.0.to_string()),
        tier: who.map(|w| w.1.to_string()),
    };
    assert_eq!(
        first,
        [
            enriched("o1", 1_000, Some(("Alice", "gold"))),
            enriched("o2", 250, Some(("Bob", "silver"))),
            enriched("o3", 75, None),
        ]
    );
    assert!(
        after_update.is_empty(),
        "a table update does not trigger the join"
    );
    assert_eq!(second, [enriched("o4", 3_000, Some(("Alice", "platinum")))]);
    println!("\nOK: 4 orders enriched; the unknown customer joined with None; after the update c1's next order saw platinum");
    Ok(())
}
