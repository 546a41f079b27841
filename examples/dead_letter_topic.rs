//! Dead-letter topic: records that cannot be read or processed are set aside with the reason
//! in their headers, and the application keeps going.
//!
//! A kstreams application reads JSON orders from `orders`, validates them and writes each
//! valid order's total to `order-totals`. Two kinds of bad records are mixed in: bytes that
//! are not an order (a deserialization error, handled by
//! `deserialization_policy(ErrorPolicy::DeadLetter)`) and orders that fail validation (a
//! processing error, raised by `try_map_values`). Both go, unchanged, to the dead-letter
//! topic `orders-validator-dlq` with headers naming the error kind, the source topic,
//! partition and offset, and the message. Exits non-zero if a good order is lost or a bad
//! record is not dead-lettered as expected.
//!
//! ```text
//! cargo run --example dead_letter_topic
//! ```

#[path = "common/mod.rs"]
mod common;

use kstreams::config::ErrorPolicy;
use kstreams::dead_letter;
use kstreams::dsl::StreamsBuilder;
use kstreams::BoxError;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;
use serde::{Deserialize, Serialize};

const APP: &str = "orders-validator";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    order_id: String,
    quantity: u32,
    unit_price_cents: i64,
}
kstreams::json_serde!(Order);

/// An order's total, or why the order is invalid.
fn total(order: Order) -> Result<i64, String> {
    if order.quantity == 0 {
        return Err(format!("{}: quantity must be positive", order.order_id));
    }
    if order.unit_price_cents < 0 {
        return Err(format!("{}: negative price", order.order_id));
    }
    Ok(i64::from(order.quantity) * order.unit_price_cents)
}

fn header_value(m: &OwnedMessage, name: &str) -> String {
    m.headers()
        .and_then(|h| h.iter().find(|h| h.key == name).and_then(|h| h.value))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn main() -> Result<(), BoxError> {
    common::header(
        "Dead-letter topic",
        "Unreadable and invalid orders go to a dead-letter topic; valid ones are processed.",
    );
    let broker = common::start_broker(&[("orders", 1), ("order-totals", 1)])?;
    let bootstrap = broker.bootstrap_servers();

    let builder = StreamsBuilder::new();
    builder
        .stream::<String, Order>("orders")
        .try_map_values(total)
        .to("order-totals");
    let topology = builder.build()?;

    let producer = common::producer(bootstrap)?;
    let inputs: [(&str, &str); 5] = [
        (
            "o1",
            r#"{"order_id":"o1","quantity":2,"unit_price_cents":500}"#,
        ),
        ("o2", "this is not JSON"),
        (
            "o3",
            r#"{"order_id":"o3","quantity":0,"unit_price_cents":999}"#,
        ),
        (
            "o4",
            r#"{"order_id":"o4","quantity":1,"unit_price_cents":1250}"#,
        ),
        ("o5", r#"{"order_id":"o5"}"#),
    ];
    println!("Input (topic `orders`):");
    for (key, value) in inputs {
        println!("  {key}: {value}");
        common::send(&producer, "orders", key, value.as_bytes(), None)?;
    }

    let state = tempfile::tempdir()?;
    let config = common::streams_config(bootstrap, APP, state.path())
        .deserialization_policy(ErrorPolicy::DeadLetter);
    let dlq_topic = config.dead_letter_topic();
    let mut streams = common::start_streams(&topology, config)?;

    let totals = common::read_n(
        &common::consumer(bootstrap, "totals-reader", &["order-totals"])?,
        2,
    )?;
    println!("\nOutput (topic `order-totals`):");
    for m in &totals {
        println!("  {}: {:?} cents", common::key_str(m), common::value_i64(m));
    }
    let dead = common::read_n(
        &common::consumer(bootstrap, "dlq-reader", &[&dlq_topic])?,
        3,
    )?;
    println!("\nDead letters (topic `{dlq_topic}`):");
    for m in &dead {
        println!(
            "  {}: {:?}\n      kind={} from {}[{}]@{}\n      error: {}",
            common::key_str(m),
            common::value_str(m).unwrap_or_default(),
            header_value(m, dead_letter::ERROR_KIND),
            header_value(m, dead_letter::ERROR_TOPIC),
            header_value(m, dead_letter::ERROR_PARTITION),
            header_value(m, dead_letter::ERROR_OFFSET),
            header_value(m, dead_letter::ERROR_MESSAGE),
        );
    }
    streams.close();

    let good: Vec<(String, Option<i64>)> = totals
        .iter()
        .map(|m| (common::key_str(m), common::value_i64(m)))
        .collect();
    assert_eq!(
        good,
        [
            ("o1".to_string(), Some(1000)),
            ("o4".to_string(), Some(1250))
        ]
    );
    let bad: Vec<(String, String, String)> = dead
        .iter()
        .map(|m| {
            (
                common::key_str(m),
                header_value(m, dead_letter::ERROR_KIND),
                header_value(m, dead_letter::ERROR_OFFSET),
            )
        })
        .collect();
    let expect = |k: &str, kind: &str, offset: &str| (k.into(), kind.into(), offset.into());
    assert_eq!(
        bad,
        [
            expect("o2", "deserialization", "1"),
            expect("o3", "processing", "2"),
            expect("o5", "deserialization", "4"),
        ]
    );
    assert_eq!(
        dead[0].payload(),
        Some(&b"this is not JSON"[..]),
        "the original bytes"
    );
    println!("\nOK: 2 valid orders totalled, 3 bad records dead-lettered with their reason");
    Ok(())
}
