//! The outbox relay when several shop processes share one database (services scaled out
//! with `--role`): per service one relay publishes at a time, every row reaches the topic
//! once and in insertion order, a stand-by relay takes over when the holder stops or its
//! lease expires, and a relay publishes only the rows of the services it runs. Run on SQLite
//! and on the PostgreSQL server of this machine.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use demo_app::app::Service;
use demo_app::db::Database;
use demo_app::events::{Envelope, UserEvent};
use demo_app::outbox::{self, OutboxRelay};
use demo_app::producer::Producer;
use kstreams_testkit::MockKafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};

const TOPIC: &str = "relay-test";

fn relay(db: &Database, kafka: &MockKafka, holder: &str, source: Service) -> OutboxRelay {
    let producer = Producer::new(
        ClientConfig::new()
            .set("bootstrap.servers", kafka.bootstrap_servers())
            .set("enable.idempotence", "true"),
    )
    .unwrap();
    OutboxRelay::new(db.clone(), producer, holder, [source])
}

/// Adds `count` events of `source` to the outbox, several per transaction, round-robin over
/// ten users; returns their ids in insertion order.
async fn enqueue(db: &Database, source: Service, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(50) {
        let mut tx = db.pool().begin().await.unwrap();
        for i in chunk {
            let event = Envelope::new(UserEvent::UserUpdated {
                user_id: format!("user-{}", i % 10),
                email: Some(format!("n{i}@example.com")),
                phone: None,
                preferences: None,
            });
            let key = format!("user-{}", i % 10);
            outbox::enqueue(&mut tx, source, TOPIC, &key, &event)
                .await
                .unwrap();
            ids.push(event.event_id.to_string());
        }
        tx.commit().await.unwrap();
    }
    ids
}

async fn outbox_len(db: &Database, source: Service) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE source = $1")
        .bind(source.name())
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get("n")
}

async fn drained(db: &Database, source: Service) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while outbox_len(db, source).await > 0 {
        assert!(Instant::now() < deadline, "the outbox was not drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The event ids on the topic per key, in offset order (one partition per key): read until
/// `expected` records came, then 2 s more, so duplicates would show.
fn published(kafka: &MockKafka, expected: usize) -> HashMap<String, Vec<String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap_servers())
        .set("group.id", "relay-test-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    let mut count = 0;
    let mut deadline = Instant::now() + Duration::from_secs(60);
    let mut complete = false;
    while Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let event: Envelope<UserEvent> =
                Envelope::from_bytes(message.payload().unwrap()).unwrap();
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            by_key
                .entry(key)
                .or_default()
                .push(event.event_id.to_string());
            count += 1;
        }
        if count >= expected && !complete {
            complete = true;
            deadline = Instant::now() + Duration::from_secs(2);
        }
    }
    assert_eq!(count, expected, "records on the topic");
    by_key
}

/// `ids` (in insertion order, round-robin over ten users) grouped by user.
fn by_user(ids: &[String]) -> HashMap<String, Vec<String>> {
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        by_key
            .entry(format!("user-{}", i % 10))
            .or_default()
            .push(id.clone());
    }
    by_key
}

async fn one_publisher_at_a_time(db: Database) {
    let kafka = MockKafka::start(1).unwrap();
    kafka.create_topic(TOPIC, 3).unwrap();
    // Two processes running the user service, one running the inventory service.
    let a = relay(&db, &kafka, "host-a:/data", Service::User);
    let b = relay(&db, &kafka, "host-b:/data", Service::User);
    let c = relay(&db, &kafka, "host-c:/data", Service::Inventory);

    // A lease: the first taker holds it, renews it, and keeps others out.
    assert_eq!(a.acquire().await.unwrap(), [Service::User]);
    assert_eq!(a.acquire().await.unwrap(), [Service::User]);
    assert_eq!(b.acquire().await.unwrap(), []);
    // Another service's lease is its own.
    assert_eq!(c.acquire().await.unwrap(), [Service::Inventory]);

    // All relays run; per service only the holder publishes, in insertion order per key.
    let mut ids = enqueue(&db, Service::User, 1200).await;
    let inventory_ids = enqueue(&db, Service::Inventory, 200).await;
    let task_a = tokio::spawn(a.clone().run());
    let task_b = tokio::spawn(b.clone().run());
    drained(&db, Service::User).await;
    assert!(
        b.acquire().await.unwrap().is_empty(),
        "b took over a live lease"
    );
    assert_eq!(
        outbox_len(&db, Service::Inventory).await,
        200,
        "not a's or b's rows"
    );

    // Only c publishes the inventory rows.
    let task_c = tokio::spawn(c.clone().run());
    drained(&db, Service::Inventory).await;
    task_c.abort();
    let _ = task_c.await;
    ids.extend(inventory_ids);

    // The holder stops cleanly and gives the lease up: the stand-by takes over at once.
    task_a.abort();
    let _ = task_a.await;
    a.release().await.unwrap();
    ids.extend(enqueue(&db, Service::User, 300).await);
    drained(&db, Service::User).await;
    assert!(
        a.acquire().await.unwrap().is_empty(),
        "b should hold the lease now"
    );

    // The table is empty now, so on SQLite new rows take rowids below the position the
    // relay last published: they are published all the same.
    ids.extend(enqueue(&db, Service::User, 50).await);
    drained(&db, Service::User).await;

    // ids: 1,200 user rows, 200 inventory rows, 300 and 50 user rows, each round-robin from
    // user-0.
    let on_topic = published(&kafka, ids.len());
    let unique: HashSet<&String> = on_topic.values().flatten().collect();
    assert_eq!(unique.len(), ids.len(), "every row published once");
    assert_eq!(on_topic, by_user(&ids), "per-key insertion order");

    // A holder that stopped renewing (crashed) loses the lease once it expires.
    task_b.abort();
    let _ = task_b.await;
    assert!(a.acquire().await.unwrap().is_empty());
    let expired = chrono::Utc::now().timestamp_millis() - 1;
    sqlx::query("UPDATE outbox_relay SET expires_at = $1 WHERE name = 'user'")
        .bind(expired)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(
        a.acquire().await.unwrap(),
        [Service::User],
        "an expired lease is taken over"
    );
    assert!(b.acquire().await.unwrap().is_empty());
    assert!(outbox::LEASE >= Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_sharing_sqlite_publish_each_row_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shop.db").display());
    one_publisher_at_a_time(Database::connect(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_sharing_postgresql_publish_each_row_once_in_order() {
    let database = common::TestDatabase::create("shop_relay").await;
    let db = Database::connect(&database.url).await.unwrap();
    assert!(db.is_postgres());
    one_publisher_at_a_time(db.clone()).await;
    db.pool().close().await;
    database.drop_database().await;
}
