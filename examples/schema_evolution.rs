//! Schema evolution: old and new versions of an event share a topic, and readers of either
//! version keep working.
//!
//! Version 1 of `OrderPlaced` has an order id, a customer id and a total. Version 2 adds a
//! currency and an optional coupon, both with defaults. Both versions are written to
//! `orders` as JSON (as a service mid-upgrade would), then read back with kstreams' JSON
//! serde twice: by a reader still on version 1 (it ignores fields it does not know: forward
//! compatible) and by a reader on version 2 (it fills in defaults for fields old records
//! lack: backward compatible). Last, a record that renames a required field is written: both
//! readers reject it, which is why a rename is a breaking change (such records belong on a
//! dead-letter topic; see the `dead_letter_topic` example). Exits non-zero if a compatible
//! record fails to read or the breaking one is accepted.
//!
//! ```text
//! cargo run --example schema_evolution
//! ```

#[path = "common/mod.rs"]
mod common;

use kstreams::serde::Serdes;
use kstreams::BoxError;
use rdkafka::Message;
use serde::{Deserialize, Serialize};

/// What the first release of the order service wrote.
#[derive(Debug, Serialize, Deserialize)]
struct OrderV1 {
    order_id: String,
    customer_id: String,
    total_cents: i64,
}

/// The next release: new fields, each with a default, so old records still read.
#[derive(Debug, Serialize, Deserialize)]
struct OrderV2 {
    order_id: String,
    customer_id: String,
    total_cents: i64,
    #[serde(default = "default_currency")]
    currency: String,
    #[serde(default)]
    coupon: Option<String>,
}

fn default_currency() -> String {
    "EUR".to_string()
}

/// A breaking change: `total_cents` renamed to `amount`.
#[derive(Debug, Serialize)]
struct OrderRenamed {
    order_id: String,
    customer_id: String,
    amount: i64,
}

fn main() -> Result<(), BoxError> {
    common::header(
        "Schema evolution",
        "Version 1 and version 2 orders on one topic, read by version 1 and version 2 readers.",
    );
    let broker = common::start_broker(&[("orders", 1)])?;
    let producer = common::producer(broker.bootstrap_servers())?;

    let v1 = |id: &str, customer: &str, total| OrderV1 {
        order_id: id.into(),
        customer_id: customer.into(),
        total_cents: total,
    };
    let v2 = |id: &str, customer: &str, total, currency: &str, coupon: Option<&str>| OrderV2 {
        order_id: id.into(),
        customer_id: customer.into(),
        total_cents: total,
        currency: currency.into(),
        coupon: coupon.map(str::to_string),
    };
    println!("Written to `orders`:");
    for order in [v1("o1", "alice", 1_000), v1("o2", "bob", 2_500)] {
        println!("  v1 {}", serde_json::to_string(&order)?);
        common::send_json(&producer, "orders", &order.order_id, &order, None)?;
    }
    for order in [
        v2("o3", "alice", 700, "USD", Some("WELCOME10")),
        v2("o4", "carol", 4_200, "EUR", None),
    ] {
        println!("  v2 {}", serde_json::to_string(&order)?);
        common::send_json(&producer, "orders", &order.order_id, &order, None)?;
    }
    let renamed = OrderRenamed {
        order_id: "o5".into(),
        customer_id: "dave".into(),
        amount: 990,
    };
    println!("  renamed field {}", serde_json::to_string(&renamed)?);
    common::send_json(&producer, "orders", "o5", &renamed, None)?;

    let consumer = common::consumer(broker.bootstrap_servers(), "schema-reader", &["orders"])?;
    let records = common::read_n(&consumer, 5)?;
    let (as_v1, as_v2) = (Serdes::json::<OrderV1>(), Serdes::json::<OrderV2>());

    println!("\nRead by a version 1 reader:");
    let mut v1_ok = Vec::new();
    for m in &records {
        match as_v1.deserialize(m.payload()) {
            Ok(order) => {
                println!("  ok       {order:?}");
                v1_ok.push(order.order_id);
            }
            Err(e) => println!("  rejected {}: {e}", common::key_str(m)),
        }
    }
    println!("\nRead by a version 2 reader:");
    let mut v2_ok = Vec::new();
    for m in &records {
        match as_v2.deserialize(m.payload()) {
            Ok(order) => {
                println!("  ok       {order:?}");
                v2_ok.push((order.order_id, order.currency));
            }
            Err(e) => println!("  rejected {}: {e}", common::key_str(m)),
        }
    }

    assert_eq!(v1_ok, ["o1", "o2", "o3", "o4"], "v1 reads v2 records");
    let currencies: Vec<(&str, &str)> = v2_ok
        .iter()
        .map(|(id, c)| (id.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        currencies,
        [("o1", "EUR"), ("o2", "EUR"), ("o3", "USD"), ("o4", "EUR")],
        "v2 reads v1 records with the default currency"
    );
    println!(
        "\nOK: adding fields with defaults kept v1 and v2 readers working on all 4 orders; renaming a required field broke both"
    );
    Ok(())
}
