//! Partitioning by key: every order of a customer goes to one partition, so one consumer
//! sees a customer's orders in the order they were placed.
//!
//! The same 12 orders of 4 customers are written twice with rdkafka: to `orders-by-customer`
//! keyed by customer id, and to `orders-by-id` keyed by order id, both with 3 partitions.
//! Kafka's default partitioner picks `murmur2(key) % partitions`; this example computes that
//! itself and checks that the broker agrees. Keyed by customer, each customer's orders share a
//! partition and keep their sequence; keyed by order id they scatter, and with them any
//! per-customer ordering. Exits non-zero if a customer's orders are split or out of order.
//!
//! ```text
//! cargo run --example customer_partitioning
//! ```

#[path = "common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};

use kstreams::BoxError;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use serde::{Deserialize, Serialize};

const PARTITIONS: i32 = 3;

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    order_id: String,
    customer_id: String,
    /// The customer's n-th order.
    sequence: u32,
}

/// Kafka's murmur2 hash, as the Java client's default partitioner and librdkafka's
/// `murmur2_random` use it.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]).wrapping_mul(M);
        h = h.wrapping_mul(M) ^ (k ^ (k >> 24)).wrapping_mul(M);
    }
    let rest = chunks.remainder();
    for (i, byte) in rest.iter().enumerate().rev() {
        h ^= u32::from(*byte) << (8 * i);
    }
    if !rest.is_empty() {
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

fn partition_of(key: &str) -> i32 {
    ((murmur2(key.as_bytes()) & 0x7fff_ffff) % PARTITIONS as u32) as i32
}

/// customer → the (partition, sequence) of each of their orders, in the order read.
fn by_customer(messages: &[OwnedMessage]) -> Result<BTreeMap<String, Vec<(i32, u32)>>, BoxError> {
    let mut out: BTreeMap<String, Vec<(i32, u32)>> = BTreeMap::new();
    for m in messages {
        let order: Order = serde_json::from_slice(m.payload().unwrap_or_default())?;
        assert_eq!(
            m.partition(),
            partition_of(&common::key_str(m)),
            "the broker used murmur2(key) % {PARTITIONS}"
        );
        out.entry(order.customer_id)
            .or_default()
            .push((m.partition(), order.sequence));
    }
    Ok(out)
}

fn main() -> Result<(), BoxError> {
    common::header(
        "Partitioning by customer",
        "A record's key picks its partition: same key, same partition, same order.",
    );
    let broker = common::start_broker(&[
        ("orders-by-customer", PARTITIONS),
        ("orders-by-id", PARTITIONS),
    ])?;
    let producer = common::producer(broker.bootstrap_servers())?;

    let customers = ["alice", "bob", "carol", "dave"];
    println!("Input: 3 orders per customer, placed round-robin");
    for round in 1..=3 {
        for (i, customer) in customers.iter().enumerate() {
            let order = Order {
                order_id: format!("order-{}", (round - 1) * customers.len() + i + 1),
                customer_id: customer.to_string(),
                sequence: round as u32,
            };
            common::send_json(&producer, "orders-by-customer", customer, &order, None)?;
            common::send_json(&producer, "orders-by-id", &order.order_id, &order, None)?;
        }
    }

    let read = |topic: &str| -> Result<_, BoxError> {
        let consumer = common::consumer(
            broker.bootstrap_servers(),
            &format!("{topic}-reader"),
            &[topic],
        )?;
        by_customer(&common::read_n(&consumer, 12)?)
    };
    let keyed = read("orders-by-customer")?;
    let scattered = read("orders-by-id")?;

    println!("\nKeyed by customer id (`orders-by-customer`):");
    for (customer, orders) in &keyed {
        let partitions: BTreeSet<i32> = orders.iter().map(|(p, _)| *p).collect();
        let sequence: Vec<u32> = orders.iter().map(|(_, s)| *s).collect();
        println!("  {customer:<6} partitions {partitions:?}, read in sequence {sequence:?}");
        assert_eq!(
            partitions.len(),
            1,
            "{customer}'s orders share one partition"
        );
        assert_eq!(
            sequence,
            vec![1, 2, 3],
            "{customer}'s orders in placement order"
        );
    }
    println!("\nKeyed by order id (`orders-by-id`):");
    let mut split = 0;
    for (customer, orders) in &scattered {
        let partitions: BTreeSet<i32> = orders.iter().map(|(p, _)| *p).collect();
        println!("  {customer:<6} partitions {partitions:?}");
        split += usize::from(partitions.len() > 1);
    }
    assert!(
        split > 0,
        "keyed by order id, some customer's orders scatter"
    );

    println!(
        "\nOK: keyed by customer, each customer's orders stay in one partition in order; keyed by order id, {split} of {} customers are split across partitions",
        customers.len()
    );
    Ok(())
}
