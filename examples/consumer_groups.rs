//! Consumer groups: members of one group share a topic's partitions; separate groups each
//! get every record; when a member leaves, the others take over its partitions.
//!
//! Two consumers in the group `billing` split the 4 partitions of `payments` between them,
//! so each payment is billed once. A consumer in the group `analytics` reads all payments
//! independently. Then one billing consumer commits and leaves; the other is assigned all 4
//! partitions and continues from the committed offsets, so the payments that follow are
//! billed once and none is billed twice. Exits non-zero if a payment is missed or repeated.
//!
//! ```text
//! cargo run --example consumer_groups
//! ```

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kstreams::BoxError;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

const TOPIC: &str = "payments";

/// The partitions of `payments` a consumer owns now.
fn owned(consumer: &BaseConsumer) -> Result<BTreeSet<i32>, BoxError> {
    Ok(consumer
        .assignment()?
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect())
}

/// Polls all consumers (their group work happens in `poll`) until `done` holds; returns the
/// keys each consumer read.
fn poll_until(
    consumers: &[&BaseConsumer],
    mut done: impl FnMut(&[Vec<String>]) -> Result<bool, BoxError>,
) -> Result<Vec<Vec<String>>, BoxError> {
    let deadline = Instant::now() + common::TIMEOUT;
    let mut read = vec![Vec::new(); consumers.len()];
    while !done(&read)? {
        if Instant::now() >= deadline {
            return Err(format!("timed out; read so far {read:?}").into());
        }
        for (consumer, keys) in consumers.iter().zip(&mut read) {
            if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                keys.push(common::key_str(&m?.detach()));
            }
        }
    }
    Ok(read)
}

/// Commits what the consumer has read; "no offset stored" means nothing new to commit.
fn commit(consumer: &BaseConsumer) -> Result<(), BoxError> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        result => Ok(result?),
    }
}

fn send_payments(bootstrap: &str, from: u32, to: u32) -> Result<BTreeSet<String>, BoxError> {
    let producer = common::producer(bootstrap)?;
    let mut sent = BTreeSet::new();
    for n in from..=to {
        let key = format!("payment-{n:02}");
        common::send(&producer, TOPIC, &key, b"{\"cents\":100}", None)?;
        sent.insert(key);
    }
    println!(
        "Produced {} payments: payment-{from:02} .. payment-{to:02}",
        sent.len()
    );
    Ok(sent)
}

fn main() -> Result<(), BoxError> {
    common::header(
        "Consumer groups",
        "Two `billing` members share the partitions; `analytics` reads everything on its own.",
    );
    let broker = common::start_broker(&[(TOPIC, 4)])?;
    let bootstrap = broker.bootstrap_servers();

    // 1. Two members join `billing`; wait until the group has split the partitions.
    let billing_1 = common::consumer(bootstrap, "billing", &[TOPIC])?;
    let billing_2 = common::consumer(bootstrap, "billing", &[TOPIC])?;
    let analytics = common::consumer(bootstrap, "analytics", &[TOPIC])?;
    poll_until(&[&billing_1, &billing_2, &analytics], |_| {
        let (a, b) = (owned(&billing_1)?, owned(&billing_2)?);
        Ok(!a.is_empty()
            && !b.is_empty()
            && a.len() + b.len() == 4
            && !owned(&analytics)?.is_empty())
    })?;
    let (parts_1, parts_2) = (owned(&billing_1)?, owned(&billing_2)?);
    println!("billing-1 owns partitions {parts_1:?}, billing-2 owns {parts_2:?}");
    assert!(
        parts_1.is_disjoint(&parts_2),
        "a partition has one owner in a group"
    );

    // 2. Each payment goes to exactly one billing member, and to analytics.
    let first = send_payments(bootstrap, 1, 12)?;
    let read = poll_until(&[&billing_1, &billing_2, &analytics], |r| {
        Ok(r[0].len() + r[1].len() >= first.len() && r[2].len() >= first.len())
    })?;
    println!("  billing-1 read {:?}", read[0]);
    println!("  billing-2 read {:?}", read[1]);
    println!("  analytics read {} payments", read[2].len());
    let billed: BTreeSet<String> = read[0].iter().chain(&read[1]).cloned().collect();
    assert_eq!(billed, first, "billing saw every payment");
    assert_eq!(
        read[0].len() + read[1].len(),
        first.len(),
        "billed once each"
    );
    assert_eq!(read[2].iter().cloned().collect::<BTreeSet<_>>(), first);

    // 3. billing-2 commits and leaves: billing-1 takes over all partitions.
    commit(&billing_1)?;
    commit(&billing_2)?;
    drop(billing_2);
    println!("\nbilling-2 committed and left the group");
    poll_until(&[&billing_1], |_| Ok(owned(&billing_1)?.len() == 4))?;
    println!("billing-1 now owns partitions {:?}", owned(&billing_1)?);

    // 4. It continues from the committed offsets: only the new payments arrive.
    let second = send_payments(bootstrap, 13, 18)?;
    let read = poll_until(&[&billing_1], |r| Ok(r[0].len() >= second.len()))?;
    let extra = common::drain(&billing_1, Duration::from_secs(1))?;
    println!("  billing-1 read {:?}", read[0]);
    assert_eq!(read[0].iter().cloned().collect::<BTreeSet<_>>(), second);
    assert!(extra.is_empty(), "{} payments billed twice", extra.len());

    println!(
        "\nOK: {} payments, each billed once by the group `billing` (also across the hand-over) and all seen by `analytics`",
        first.len() + second.len()
    );
    Ok(())
}
