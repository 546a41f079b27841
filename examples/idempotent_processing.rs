//! Idempotent processing: a consumer that remembers which events it has applied, so a
//! redelivered event (a producer retry, a replay after a crash) changes nothing.
//!
//! Payments arrive on `payments`, keyed by account, each with a unique payment id; some
//! are delivered twice or three times, as at-least-once delivery allows. A kstreams
//! processor (Processor API) keeps the ids it has seen in a state store, `seen-payments`
//! (changelogged, so it survives restarts and moves), and forwards only the first copy of each
//! payment; the balances summed after it are right. The same payments summed without the
//! check count every duplicate. Exits non-zero if a duplicate gets through or a payment is
//! lost.
//!
//! ```text
//! cargo run --example idempotent_processing
//! ```

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use kstreams::dsl::{Materialized, StreamsBuilder};
use kstreams::processor::{Processor, ProcessorContext, Record};
use kstreams::state::{KeyValueStore, Stores};
use kstreams::BoxError;
use serde::{Deserialize, Serialize};

const SEEN: &str = "seen-payments";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payment {
    payment_id: String,
    cents: i64,
}
kstreams::json_serde!(Payment);

/// Forwards the first record of each payment id and drops the rest.
#[derive(Default)]
struct Deduplicate {
    /// payment id → timestamp of the first copy.
    seen: Option<KeyValueStore<String, i64>>,
}

impl Processor<String, Payment, String, Payment> for Deduplicate {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, Payment>) -> Result<(), BoxError> {
        self.seen = Some(ctx.key_value_store(SEEN)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Payment>,
        record: Record<String, Payment>,
    ) -> Result<(), BoxError> {
        let seen = self.seen.as_ref().ok_or("init() was not called")?;
        if seen.get(&record.value.payment_id)?.is_some() {
            return Ok(()); // already applied: drop the duplicate
        }
        seen.put(&record.value.payment_id, &record.timestamp)?;
        ctx.forward(record)
    }
}

fn main() -> Result<(), BoxError> {
    common::header(
        "Idempotent processing",
        "Duplicated payments are recognised by id in a state store and applied once.",
    );
    let broker = common::start_broker(&[("payments", 2), ("payments-deduplicated", 2)])?;
    let bootstrap = broker.bootstrap_servers();

    // payments → dedup → payments-deduplicated → sum per account (store `balances`)
    //          ↘ sum per account without dedup (store `naive-balances`)
    let builder = StreamsBuilder::new();
    builder.add_state_store(Stores::key_value_store_builder::<String, i64>(SEEN));
    let payments = builder.stream::<String, Payment>("payments");
    let unique = payments.process(Deduplicate::default, &[SEEN]);
    unique.to("payments-deduplicated");
    unique
        .map_values(|p| p.cents)
        .group_by_key()
        .reduce_with(|a, b| a + b, Materialized::named("balances"));
    payments
        .map_values(|p| p.cents)
        .group_by_key()
        .reduce_with(|a, b| a + b, Materialized::named("naive-balances"));
    let topology = builder.build()?;

    let producer = common::producer(bootstrap)?;
    let deliveries = [
        ("acct-1", "pay-1", 1_000),
        ("acct-1", "pay-2", 500),
        ("acct-2", "pay-3", 2_000),
        ("acct-1", "pay-1", 1_000), // producer retry
        ("acct-2", "pay-3", 2_000), // redelivered twice
        ("acct-2", "pay-3", 2_000),
        ("acct-1", "pay-4", 250),
    ];
    println!("Input (topic `payments`):");
    for (account, id, cents) in deliveries {
        println!("  {account} {id} {cents:>5} cents");
        let payment = Payment {
            payment_id: id.into(),
            cents,
        };
        common::send_json(&producer, "payments", account, &payment, None)?;
    }

    let state = tempfile::tempdir()?;
    let streams = common::start_streams(
        &topology,
        common::streams_config(bootstrap, "payments-app", state.path()),
    )?;
    let reader = common::consumer(bootstrap, "dedup-reader", &["payments-deduplicated"])?;
    let mut forwarded: Vec<String> = common::read_n(&reader, 4)?
        .iter()
        .map(|m| {
            serde_json::from_slice::<Payment>(rdkafka::Message::payload(m).unwrap_or_default())
        })
        .map(|p| p.map(|p| p.payment_id))
        .collect::<Result<_, _>>()?;
    let extra = common::drain(&reader, Duration::from_secs(1))?;
    forwarded.sort();
    println!("\nForwarded after the check (topic `payments-deduplicated`): {forwarded:?}");

    let expected = BTreeMap::from([("acct-1".to_string(), 1_750), ("acct-2".to_string(), 2_000)]);
    let naive_expected =
        BTreeMap::from([("acct-1".to_string(), 2_750), ("acct-2".to_string(), 6_000)]);
    let read_store = |name: &str| -> Result<BTreeMap<String, i64>, BoxError> {
        Ok(streams
            .store::<String, i64>(name)?
            .all()?
            .into_iter()
            .collect())
    };
    common::wait_until("both balances", || {
        read_store("balances").is_ok_and(|b| b == expected)
            && read_store("naive-balances").is_ok_and(|b| b == naive_expected)
    })?;
    let seen: Vec<String> = read_store(SEEN)?.into_keys().collect();
    println!("Store `{SEEN}`: {seen:?}");
    println!(
        "Balances with the check (store `balances`):          {:?}",
        read_store("balances")?
    );
    println!(
        "Balances without the check (store `naive-balances`): {:?}",
        read_store("naive-balances")?
    );

    assert_eq!(forwarded, ["pay-1", "pay-2", "pay-3", "pay-4"]);
    assert!(extra.is_empty(), "duplicates forwarded: {}", extra.len());
    println!(
        "\nOK: 7 deliveries of 4 payments applied once each: acct-1 = 1750, acct-2 = 2000 cents"
    );
    Ok(())
}
