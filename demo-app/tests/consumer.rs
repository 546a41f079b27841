//! The consumer loop on PostgreSQL with a record the database refuses for its data (a NUL
//! byte, which PostgreSQL does not store in text): the record goes to the dead-letter topic
//! with the database's reason, and the records after it are handled.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{eventually, TestDatabase};
use demo_app::chaos::Faults;
use demo_app::consumer::{self, HandleError, Incoming, Tx, Writer, DEAD_LETTERS};
use demo_app::db::Database;
use demo_app::producer::Producer;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Message};
use sqlx::Row;

/// Stores each record's payload as text.
struct Texts;

impl Writer for Texts {
    async fn write(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        for record in records {
            sqlx::query("INSERT INTO processed_events (consumer, event_id) VALUES ('texts', $1)")
                .bind(String::from_utf8_lossy(&record.payload).into_owned())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_postgresql_refuses_is_dead_lettered_and_the_rest_handled() {
    let broker = tokio::task::spawn_blocking(kstreams_testkit::EmbeddedBroker::start)
        .await
        .unwrap()
        .unwrap();
    let bootstrap = broker.bootstrap_servers().to_owned();
    let test_db = TestDatabase::create("shop_consumer").await;
    let db = Database::connect(&test_db.url).await.unwrap();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &bootstrap);
    let producer = Producer::new(&client).unwrap();
    for payload in ["before", "bad\0byte", "after"] {
        producer
            .send(
                FutureRecord::<str, str>::to("texts")
                    .key("k")
                    .payload(payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let run = tokio::spawn(consumer::run(
        client.clone(),
        "texts-group",
        &["texts"],
        db.clone(),
        producer.clone(),
        Arc::new(Faults::default()),
        Texts,
    ));

    let stored = eventually("the records around the bad one", 120, || async {
        let rows: Vec<String> =
            sqlx::query("SELECT event_id FROM processed_events WHERE consumer = 'texts'")
                .fetch_all(db.pool())
                .await
                .unwrap()
                .iter()
                .map(|row| row.get("event_id"))
                .collect();
        (rows.len() == 2).then_some(rows)
    })
    .await;
    let mut stored = stored;
    stored.sort();
    assert_eq!(stored, ["after", "before"]);

    let letter = tokio::task::spawn_blocking(move || {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "dead-letter-reader")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        reader.subscribe(&[DEAD_LETTERS]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Some(Ok(message)) = reader.poll(Duration::from_millis(200)) {
                let header = |name: &str| {
                    message
                        .headers()
                        .and_then(|h| h.iter().find(|h| h.key == name))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                };
                return Some((
                    message.payload().unwrap_or_default().to_vec(),
                    header("dlq.error.kind"),
                    header("dlq.error.message"),
                ));
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("a dead letter");
    assert_eq!(letter.0, b"bad\0byte");
    assert_eq!(letter.1, "unprocessable");
    assert!(
        letter.2.contains("22021") || letter.2.to_lowercase().contains("0x00"),
        "{}",
        letter.2
    );

    run.abort();
    test_db.drop_database().await;
    tokio::task::spawn_blocking(move || drop(broker))
        .await
        .unwrap();
}

/// A topic written in transactions (as the streams apps write `notification-events`)
/// holds a marker after each transaction, which the consumer skips without handing it out:
/// the loop commits its position, past the marker, so the group's lag reaches zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commits_past_transaction_markers() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};

    let broker = tokio::task::spawn_blocking(kstreams_testkit::EmbeddedBroker::start)
        .await
        .unwrap()
        .unwrap();
    let bootstrap = broker.bootstrap_servers().to_owned();
    let db = Database::connect("sqlite::memory:").await.unwrap();
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &bootstrap);
    let writer_config = client.clone();
    tokio::task::spawn_blocking(move || {
        let writer: BaseProducer = writer_config
            .clone()
            .set("transactional.id", "marker-writer")
            .create()
            .unwrap();
        writer.init_transactions(Duration::from_secs(10)).unwrap();
        writer.begin_transaction().unwrap();
        for value in ["one", "two"] {
            writer
                .send(BaseRecord::to("marked").key("k").payload(value))
                .unwrap();
        }
        writer.commit_transaction(Duration::from_secs(10)).unwrap();
    })
    .await
    .unwrap();
    let run = tokio::spawn(consumer::run(
        client.clone(),
        "marked-group",
        &["marked"],
        db.clone(),
        Producer::new(&client).unwrap(),
        Arc::new(Faults::default()),
        Texts,
    ));
    // Two records and the commit marker.
    let reader: BaseConsumer = client
        .clone()
        .set("group.id", "marked-group")
        .create()
        .unwrap();
    let committed = eventually("a commit past the marker", 30, || {
        let mut wanted = rdkafka::TopicPartitionList::new();
        wanted.add_partition("marked", 0);
        let offset = reader
            .committed_offsets(wanted, Duration::from_secs(5))
            .ok()
            .and_then(|list| list.find_partition("marked", 0).map(|p| p.offset()));
        async move { (offset == Some(rdkafka::Offset::Offset(3))).then_some(offset) }
    })
    .await;
    assert_eq!(committed, Some(rdkafka::Offset::Offset(3)));
    run.abort();
    tokio::task::spawn_blocking(move || drop(broker))
        .await
        .unwrap();
}
