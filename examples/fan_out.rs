//! Fan-out: one input stream feeding several outputs, each for its own consumers.
//!
//! A kstreams application reads orders from `orders` and, from that one stream:
//! * copies every order to `orders-audit` (a stream can feed any number of operators);
//! * routes each order by region with `split()`: `orders-eu`, `orders-us`, and
//!   `orders-other` for the rest (each record goes to the first branch that matches);
//! * turns each order into one notification per channel the customer chose, with
//!   `flat_map_values`, on `notifications` (one record in, zero or more out).
//!
//! Exits non-zero if any output topic holds other records than it should.
//!
//! ```text
//! cargo run --example fan_out
//! ```

#[path = "common/mod.rs"]
mod common;

use kstreams::dsl::StreamsBuilder;
use kstreams::BoxError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    customer: String,
    region: String,
    total_cents: i64,
    /// Where the customer wants to hear about it: "email", "sms".
    channels: Vec<String>,
}
kstreams::json_serde!(Order);

const OUTPUTS: [&str; 5] = [
    "orders-audit",
    "orders-eu",
    "orders-us",
    "orders-other",
    "notifications",
];

fn main() -> Result<(), BoxError> {
    common::header(
        "Fan-out",
        "One order stream feeds an audit copy, per-region topics and per-channel notifications.",
    );
    let mut topics = vec![("orders", 1)];
    topics.extend(OUTPUTS.iter().map(|t| (*t, 1)));
    let broker = common::start_broker(&topics)?;
    let bootstrap = broker.bootstrap_servers();

    let builder = StreamsBuilder::new();
    let orders = builder.stream::<String, Order>("orders");
    orders.to("orders-audit");
    let mut by_region = orders.split();
    by_region.branch(|_, o| o.region == "eu").to("orders-eu");
    by_region.branch(|_, o| o.region == "us").to("orders-us");
    by_region.default_branch().to("orders-other");
    orders
        .flat_map_values(|o| {
            o.channels
                .iter()
                .map(|c| {
                    format!(
                        "{c} to {}: your order of {} cents is confirmed",
                        o.customer, o.total_cents
                    )
                })
                .collect::<Vec<_>>()
        })
        .to("notifications");
    let topology = builder.build()?;

    let producer = common::producer(bootstrap)?;
    let order = |customer: &str, region: &str, total_cents, channels: &[&str]| Order {
        customer: customer.into(),
        region: region.into(),
        total_cents,
        channels: channels.iter().map(|c| c.to_string()).collect(),
    };
    let inputs = [
        ("o1", order("alice", "eu", 1_200, &["email"])),
        ("o2", order("bob", "us", 300, &["email", "sms"])),
        ("o3", order("chen", "apac", 4_500, &[])),
        ("o4", order("dora", "eu", 990, &["sms"])),
    ];
    println!("Input (topic `orders`):");
    for (id, o) in &inputs {
        println!("  {id}: {o:?}");
        common::send_json(&producer, "orders", id, o, None)?;
    }

    let state = tempfile::tempdir()?;
    let mut streams = common::start_streams(
        &topology,
        common::streams_config(bootstrap, "fan-out-app", state.path()),
    )?;

    let expected: [(&str, Vec<&str>); 5] = [
        ("orders-audit", vec!["o1", "o2", "o3", "o4"]),
        ("orders-eu", vec!["o1", "o4"]),
        ("orders-us", vec!["o2"]),
        ("orders-other", vec!["o3"]),
        ("notifications", vec!["o1", "o2", "o2", "o4"]),
    ];
    println!("\nOutputs:");
    for (topic, keys) in &expected {
        let consumer = common::consumer(bootstrap, &format!("{topic}-reader"), &[topic])?;
        let mut records = common::read_n(&consumer, keys.len())?;
        records.extend(common::drain(
            &consumer,
            std::time::Duration::from_millis(300),
        )?);
        println!("  {topic}:");
        for m in &records {
            let value = common::value_str(m).unwrap_or_default();
            let shown = match serde_json::from_str::<Order>(&value) {
                Ok(o) => format!("order of {} in {}", o.customer, o.region),
                Err(_) => value, // a notification
            };
            println!("    {}: {shown}", common::key_str(m));
        }
        let read: Vec<String> = records.iter().map(common::key_str).collect();
        assert_eq!(&read, keys, "records on {topic}");
    }
    streams.close();
    println!("\nOK: 4 orders fanned out to 5 topics: 4 audit copies, 2 eu + 1 us + 1 other, 4 notifications");
    Ok(())
}
