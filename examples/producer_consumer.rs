//! Producer and consumer: the basic Kafka round trip with rdkafka, no kstreams runtime.
//!
//! A producer writes order events as JSON, keyed by order id, to a topic of 3 partitions. A
//! consumer in the group `billing` reads them back, prints where each landed (partition,
//! offset), and commits its offsets. A second consumer of the same group, started later,
//! resumes after the committed offsets: it sees only the orders produced since, not the
//! ones already handled. Exits non-zero if any order is lost, repeated or altered.
//!
//! ```text
//! cargo run --example producer_consumer
//! ```

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use kstreams::BoxError;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::Message;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    customer_id: String,
    total_cents: i64,
}

fn order(n: u32, customer: &str, total_cents: i64) -> OrderPlaced {
    OrderPlaced {
        order_id: format!("order-{n}"),
        customer_id: customer.to_string(),
        total_cents,
    }
}

fn main() -> Result<(), BoxError> {
    common::header(
        "Producer and consumer",
        "Orders go to the topic `orders` as JSON; a consumer group reads and commits them.",
    );
    let broker = common::start_broker(&[("orders", 3)])?;
    let bootstrap = broker.bootstrap_servers();
    let producer = common::producer(bootstrap)?;

    // 1. Produce the first batch.
    let first = vec![
        order(1, "alice", 1_250),
        order(2, "bob", 899),
        order(3, "alice", 4_000),
        order(4, "carol", 150),
    ];
    println!("Produced:");
    for o in &first {
        println!("  {:<8} {o:?}", o.order_id);
        common::send_json(&producer, "orders", &o.order_id, o, None)?;
    }

    // 2. Consume them in the group `billing`, then commit the offsets.
    let billing = common::consumer(bootstrap, "billing", &["orders"])?;
    let read = common::read_n(&billing, first.len())?;
    println!("\nConsumed by `billing` (first consumer):");
    let mut received = Vec::new();
    for m in &read {
        let o: OrderPlaced = serde_json::from_slice(m.payload().unwrap_or_default())?;
        println!(
            "  partition {} offset {}  key {:<8} -> {} cents",
            m.partition(),
            m.offset(),
            common::key_str(m),
            o.total_cents
        );
        received.push(o);
    }
    billing.commit_consumer_state(CommitMode::Sync)?;
    drop(billing); // leaves the group
    println!("  committed; consumer closed");

    // 3. More orders arrive while no consumer runs.
    let second = vec![order(5, "bob", 2_000), order(6, "dave", 75)];
    println!("\nProduced while nobody consumes:");
    for o in &second {
        println!("  {:<8} {o:?}", o.order_id);
        common::send_json(&producer, "orders", &o.order_id, o, None)?;
    }

    // 4. A new consumer of the same group starts after the committed offsets.
    let restarted = common::consumer(bootstrap, "billing", &["orders"])?;
    let resumed: Vec<OrderPlaced> = common::read_n(&restarted, second.len())?
        .iter()
        .map(|m| serde_json::from_slice(m.payload().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    let extra = common::drain(&restarted, Duration::from_secs(1))?;
    println!("\nConsumed by `billing` (restarted consumer):");
    for o in &resumed {
        println!("  {o:?}");
    }

    // 5. Check: every order exactly once, content intact.
    let by_id = |orders: &[OrderPlaced]| {
        let mut v = orders.to_vec();
        v.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        v
    };
    assert_eq!(by_id(&received), by_id(&first), "first batch intact");
    assert_eq!(by_id(&resumed), by_id(&second), "only the new orders");
    assert!(
        extra.is_empty(),
        "the restarted consumer re-read {} committed records",
        extra.len()
    );
    println!(
        "\nOK: {} orders produced, each consumed exactly once; the restarted consumer resumed after the committed offsets",
        first.len() + second.len()
    );
    Ok(())
}
