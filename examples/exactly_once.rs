//! Exactly-once processing: a crash in the middle of a batch leaves no trace in the output,
//! and after the restart every balance update appears exactly once.
//!
//! A kstreams application under `ProcessingGuarantee::ExactlyOnce` sums deposits per account
//! and writes each new balance to `balances`. Under exactly-once, the outputs, the store's
//! changelog writes and the consumer offsets of each commit interval are one Kafka
//! transaction. The first four deposits are processed and committed. While the next four are
//! processed, the application crashes (a processor fails on the 7th deposit, once): the open
//! transaction, holding two balances already written, is aborted. A new instance restores
//! the balances from the changelog as of the last commit, resumes from the committed
//! offsets and processes deposits 5 to 8 again. A `read_committed` consumer sees each of the
//! 8 balance updates once; a `read_uncommitted` one also sees the aborted attempt's records.
//! The embedded broker runs transactions (see `kstreams_testkit::EmbeddedBroker`). The
//! store's write cache is off (`Materialized::with_caching_disabled`), so that every
//! deposit's balance is written; with it on, the sum would forward one balance per account
//! per commit. Exits non-zero if a committed balance is missing, repeated or wrong.
//!
//! ```text
//! cargo run --example exactly_once
//! ```

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kstreams::config::ProcessingGuarantee;
use kstreams::dsl::{Materialized, StreamsBuilder};
use kstreams::kafka::State;
use kstreams::processor::{Processor, ProcessorContext, Record};
use kstreams::BoxError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::ClientConfig;

/// The deposit whose balance update fails, the first time only.
const CRASH_AT: usize = 7;
static CRASH_PENDING: AtomicBool = AtomicBool::new(true);

/// Passes balance updates on; fails once on the `CRASH_AT`-th, as a crash would.
#[derive(Default)]
struct CrashOnce {
    seen: usize,
}

impl Processor<String, Option<i64>, String, Option<i64>> for CrashOnce {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Option<i64>>,
        record: Record<String, Option<i64>>,
    ) -> Result<(), BoxError> {
        self.seen += 1;
        if self.seen == CRASH_AT && CRASH_PENDING.swap(false, Ordering::SeqCst) {
            // Let the producer send what the transaction holds, so the aborted records
            // really are on the broker, then fail.
            std::thread::sleep(Duration::from_millis(500));
            return Err("simulated crash".into());
        }
        ctx.forward(record)
    }
}

/// A consumer of `balances` from the beginning, in a group of its own.
fn balances_reader(
    bootstrap: &str,
    group: &str,
    isolation: &str,
) -> Result<BaseConsumer, BoxError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .create()?;
    consumer.subscribe(&["balances"])?;
    Ok(consumer)
}

fn send_deposits(bootstrap: &str, deposits: &[(&str, i64)]) -> Result<(), BoxError> {
    let producer = common::producer(bootstrap)?;
    for (account, cents) in deposits {
        println!("  {account} +{cents}");
        let payload = cents.to_be_bytes();
        let record = BaseRecord::to("deposits")
            .key(*account)
            .payload(&payload[..]);
        producer.send(record).map_err(|(e, _)| e)?;
    }
    producer.flush(common::TIMEOUT)?; // one batch: the application gets it in one poll
    Ok(())
}

fn main() -> Result<(), BoxError> {
    common::header(
        "Exactly-once",
        "Balances per account; a crash mid-transaction is rolled back and replayed without duplicates.",
    );
    let broker = common::start_broker(&[("deposits", 1), ("balances", 1)])?;
    let bootstrap = broker.bootstrap_servers();

    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("deposits")
        .group_by_key()
        // Every balance, not one per account per commit.
        .reduce_with(
            |a, b| a + b,
            Materialized::default().with_caching_disabled(),
        )
        .to_stream()
        .process(CrashOnce::default, &[])
        .to("balances");
    let topology = builder.build()?;
    let state = tempfile::tempdir()?;
    let config = || {
        common::streams_config(bootstrap, "balances-app", state.path())
            .with_processing_guarantee(ProcessingGuarantee::ExactlyOnce)
            .with_commit_interval(Duration::from_secs(1))
    };

    let deposits = [
        ("acct-1", 100),
        ("acct-2", 40),
        ("acct-1", 25),
        ("acct-2", 10),
        ("acct-1", 5),
        ("acct-2", 60),
        ("acct-1", 70),
        ("acct-2", 1),
    ];
    println!("Deposits 1-4 (topic `deposits`):");
    send_deposits(bootstrap, &deposits[..4])?;
    let mut first = common::start_streams(&topology, config())?;
    let phase_1 = balances_reader(bootstrap, "phase-1-check", "read_committed")?;
    common::read_n(&phase_1, 4)?;
    println!("  -> 4 balances committed");

    println!("Deposits 5-8:");
    send_deposits(bootstrap, &deposits[4..])?;
    if !first.wait_for_state(State::Error, common::TIMEOUT) {
        return Err("the simulated crash did not happen".into());
    }
    println!(
        "  -> the application crashed: {}",
        first.error().unwrap_or_default()
    );
    first.close();

    println!("Restarting with the same state directory...");
    let mut second = common::start_streams(&topology, config())?;
    let committed = balances_reader(bootstrap, "final-committed", "read_committed")?;
    let mut read_committed = common::read_n(&committed, deposits.len())?;
    read_committed.extend(common::drain(&committed, Duration::from_secs(1))?);
    let uncommitted = balances_reader(bootstrap, "final-uncommitted", "read_uncommitted")?;
    let read_uncommitted = common::drain(&uncommitted, Duration::from_secs(2))?;
    second.close();

    let history = |messages: &[OwnedMessage]| -> BTreeMap<String, Vec<i64>> {
        let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for m in messages {
            out.entry(common::key_str(m))
                .or_default()
                .extend(common::value_i64(m));
        }
        out
    };
    // The reference: running sums per account, each once.
    let mut expected: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (account, cents) in deposits {
        let sums = expected.entry(account.to_string()).or_default();
        sums.push(sums.last().copied().unwrap_or(0) + cents);
    }
    println!(
        "\nOutput read with read_committed ({} records):",
        read_committed.len()
    );
    for (account, balances) in history(&read_committed) {
        println!("  {account}: {balances:?}");
    }
    println!(
        "Output read with read_uncommitted ({} records, aborted ones included):",
        read_uncommitted.len()
    );
    for (account, balances) in history(&read_uncommitted) {
        println!("  {account}: {balances:?}");
    }

    assert_eq!(
        history(&read_committed),
        expected,
        "each balance update exactly once"
    );
    assert!(
        read_uncommitted.len() > read_committed.len(),
        "the aborted transaction had written records"
    );
    println!(
        "\nOK: {} committed balance updates, each exactly once, after a crash that aborted {} written records",
        read_committed.len(),
        read_uncommitted.len() - read_committed.len()
    );
    Ok(())
}
