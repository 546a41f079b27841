//! Stream–stream join: match each order with its payment when the payment comes within 15
//! minutes, and report orders left unpaid once their window has closed.
//!
//! `orders` (key order id, value cents) and `payments` (key order id, value payment method)
//! are two streams with event-time timestamps. `left_join_stream` with a window of 0 before
//! and 15 minutes after the order keeps both sides in window stores: a payment inside the
//! window joins its order at once; an order without one is emitted with `None` only when
//! stream time has passed its window, never early. A payment outside the window joins
//! nothing. Exits non-zero if a result is missing, early, or wrong.
//!
//! ```text
//! cargo run --example stream_stream_join
//! ```

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use kstreams::dsl::{JoinWindows, StreamsBuilder};
use kstreams::BoxError;
use rdkafka::consumer::BaseConsumer;

const BASE: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

/// Reads `n` results and checks that nothing else arrives.
fn results(consumer: &BaseConsumer, n: usize) -> Result<Vec<(String, String)>, BoxError> {
    let mut records = common::read_n(consumer, n)?;
    records.extend(common::drain(consumer, Duration::from_secs(1))?);
    let out: Vec<(String, String)> = records
        .iter()
        .map(|m| (common::key_str(m), common::value_str(m).unwrap_or_default()))
        .collect();
    for (order, result) in &out {
        println!("  {order}: {result}");
    }
    Ok(out)
}

fn main() -> Result<(), BoxError> {
    common::header(
        "Stream-stream join",
        "Orders joined with payments made within 15 minutes; unpaid orders reported when their window closes.",
    );
    let broker = common::start_broker(&[("orders", 1), ("payments", 1), ("order-payments", 1)])?;
    let bootstrap = broker.bootstrap_servers();

    let builder = StreamsBuilder::new();
    let orders = builder.stream::<String, i64>("orders");
    let payments = builder.stream::<String, String>("payments");
    orders
        .left_join_stream(
            &payments,
            |cents, payment: Option<&String>| match payment {
                Some(method) => format!("{cents} cents paid by {method}"),
                None => format!("{cents} cents UNPAID"),
            },
            JoinWindows::of_time_difference_without_grace(Duration::from_secs(15 * 60))
                .before(Duration::ZERO),
        )
        .to("order-payments");
    let topology = builder.build()?;

    let producer = common::producer(bootstrap)?;
    let order = |id: &str, minute: i64, cents: i64| -> Result<(), BoxError> {
        println!("  t={minute:>2} min  order   {id} {cents} cents");
        common::send(
            &producer,
            "orders",
            id,
            &cents.to_be_bytes(),
            Some(BASE + minute * MINUTE),
        )
    };
    let payment = |id: &str, minute: i64, method: &str| -> Result<(), BoxError> {
        println!("  t={minute:>2} min  payment {id} by {method}");
        common::send(
            &producer,
            "payments",
            id,
            method.as_bytes(),
            Some(BASE + minute * MINUTE),
        )
    };

    println!("Input, part 1:");
    order("o1", 0, 1_000)?;
    order("o2", 1, 2_500)?;
    order("o3", 2, 400)?;
    payment("o1", 3, "card")?;
    let state = tempfile::tempdir()?;
    let mut streams = common::start_streams(
        &topology,
        common::streams_config(bootstrap, "order-payment-app", state.path()),
    )?;
    let output = common::consumer(bootstrap, "join-reader", &["order-payments"])?;
    println!("Output (topic `order-payments`):");
    let first = results(&output, 1)?;

    println!("\nInput, part 2 (stream time moves to 20 min):");
    payment("o2", 20, "bank transfer")?;
    println!("Output:");
    let second = results(&output, 2)?;
    streams.close();

    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, r)| (k.to_string(), r.to_string()))
            .collect()
    };
    assert_eq!(
        first,
        pairs(&[("o1", "1000 cents paid by card")]),
        "o1 joined at once; o2 and o3 not reported while their windows are open"
    );
    assert_eq!(
        second,
        pairs(&[("o2", "2500 cents UNPAID"), ("o3", "400 cents UNPAID")]),
        "o2's payment came after its window; o3 was never paid"
    );
    println!("\nOK: o1 matched its payment after 3 minutes; o2 (paid after 19 minutes) and o3 reported unpaid when their windows closed");
    Ok(())
}
