//! Writers racing for the same rows, on SQLite and on PostgreSQL: concurrent reservations
//! never sell more than the stock (and the stock never goes negative), and concurrent
//! decisions on one payment hold charge or fail its parked request once, and services
//! starting at once against one PostgreSQL database all apply its schema.

mod common;

use std::time::Duration;

use common::TestDatabase;
use demo_app::app::Service;
use demo_app::auth::{JwtKeys, Role};
use demo_app::consumer::{Incoming, Writer};
use demo_app::db::Database;
use demo_app::events::{topics, Envelope, OrderEvent, OrderItem, PaymentEvent};
use demo_app::outbox::OutboxRelay;
use demo_app::producer::Producer;
use demo_app::services::inventory::InventoryService;
use demo_app::services::payment_holds::HoldsApi;
use rust_decimal::Decimal;
use sqlx::Row;

fn relay(db: &Database, service: Service) -> OutboxRelay {
    // Never started: the tests read the outbox table itself.
    let producer =
        Producer::new(rdkafka::ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1"))
            .unwrap();
    OutboxRelay::new(db.clone(), producer, "test", [service])
}

/// `(available, reserved, held units)` of `product`.
async fn stock(db: &Database, product: &str) -> (i64, i64, i64) {
    let row = sqlx::query("SELECT available, reserved FROM products WHERE product_id = $1")
        .bind(product)
        .fetch_one(db.pool())
        .await
        .unwrap();
    let held: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) AS n FROM reservations \
         WHERE product_id = $1 AND status = 'HELD'",
    )
    .bind(product)
    .fetch_one(db.pool())
    .await
    .unwrap()
    .get("n");
    (row.get("available"), row.get("reserved"), held)
}

/// Ten orders of 2 units race for 5 units, each in its own transaction: two are reserved,
/// eight fail, and the stock adds up.
async fn reservations_race_for_the_last_units(db: Database) {
    sqlx::query(
        "INSERT INTO products (product_id, name, unit_price, available, reserved, threshold) \
         VALUES ('P-LAST', 'Last', '1.00', 5, 0, 1)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let service = InventoryService::new(
        db.clone(),
        JwtKeys::new(b"k"),
        relay(&db, Service::Inventory),
    );
    let mut racers = Vec::new();
    for n in 0..10 {
        let (db, service) = (db.clone(), service.clone());
        racers.push(tokio::spawn(async move {
            let event = Envelope::new(OrderEvent::OrderCreated {
                order_id: format!("o-{n}"),
                customer_id: format!("c-{n}"),
                items: vec![OrderItem {
                    product_id: "P-LAST".into(),
                    quantity: 2,
                    unit_price: Decimal::ONE,
                }],
                total: Decimal::TWO,
                currency: "EUR".into(),
                variant: "A".into(),
                shipping_address: None,
                device_id: None,
            });
            let record = Incoming {
                topic: topics::ORDERS.into(),
                payload: event.to_bytes(),
                ..Incoming::default()
            };
            let mut tx = db.pool().begin().await.unwrap();
            service.write(&mut tx, &[&record]).await.unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for racer in racers {
        racer.await.unwrap();
    }
    assert_eq!(stock(&db, "P-LAST").await, (1, 4, 4));
    let outcomes: Vec<String> =
        sqlx::query("SELECT payload FROM outbox WHERE topic = $1 AND record_key LIKE 'o-%'")
            .bind(topics::INVENTORY)
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let payload: serde_json::Value =
                    serde_json::from_str(&row.get::<String, _>("payload")).unwrap();
                payload["type"].as_str().unwrap().to_owned()
            })
            .collect();
    let reserved = outcomes
        .iter()
        .filter(|t| *t == "InventoryReserved")
        .count();
    let failed = outcomes
        .iter()
        .filter(|t| *t == "ReservationFailed")
        .count();
    assert_eq!((reserved, failed), (2, 8), "{outcomes:?}");

    // And the database itself refuses negative stock.
    let negative = sqlx::query("UPDATE products SET available = -1 WHERE product_id = 'P-LAST'")
        .execute(db.pool())
        .await
        .unwrap_err();
    assert!(
        negative.to_string().to_lowercase().contains("check"),
        "{negative}"
    );
}

/// Ten holds, each released by four admins at once: one release per hold succeeds, the
/// others are told it is decided, and each parked request is sent on once.
async fn a_hold_is_decided_once(db: Database) {
    let keys = JwtKeys::new(b"holds-secret");
    for n in 0..10 {
        let request = Envelope::new(PaymentEvent::PaymentRequested {
            order_id: format!("o-{n}"),
            customer_id: "c-1".into(),
            amount: Decimal::TEN,
            currency: "EUR".into(),
        });
        sqlx::query(
            "INSERT INTO payment_holds (order_id, customer_id, score, reasons, status, request, \
             created_at) VALUES ($1, 'c-1', 90, '[]', 'HELD', $2, 0)",
        )
        .bind(format!("o-{n}"))
        .bind(String::from_utf8(request.to_bytes()).unwrap())
        .execute(db.pool())
        .await
        .unwrap();
    }
    let api = HoldsApi::new(db.clone(), keys.clone(), relay(&db, Service::Order));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, api.router()).await });
    let admin = keys.issue("admin-1", Role::Admin, Duration::from_secs(60));
    let http = reqwest::Client::new();
    let mut releases = Vec::new();
    for n in 0..10 {
        for _ in 0..4 {
            let request = http
                .post(format!("{base}/payments/holds/o-{n}/release"))
                .bearer_auth(&admin)
                .send();
            releases.push((n, tokio::spawn(request)));
        }
    }
    let mut accepted = [0; 10];
    for (n, release) in releases {
        let status = release.await.unwrap().unwrap().status();
        match status.as_u16() {
            200 => accepted[n] += 1,
            409 => {}
            other => panic!("release of o-{n}: {other}"),
        }
    }
    assert_eq!(accepted, [1; 10], "one release per hold");
    let sent: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE topic = $1")
        .bind(topics::PAYMENTS)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(sent, 10, "each parked request sent on once");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shop.db").display());
    reservations_race_for_the_last_units(Database::connect(&url).await.unwrap()).await;
    let url = format!("sqlite://{}", dir.path().join("holds.db").display());
    a_hold_is_decided_once(Database::connect(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_on_postgresql() {
    let stock_db = TestDatabase::create("shop_race_stock").await;
    reservations_race_for_the_last_units(Database::connect(&stock_db.url).await.unwrap()).await;
    stock_db.drop_database().await;
    let holds_db = TestDatabase::create("shop_race_holds").await;
    a_hold_is_decided_once(Database::connect(&holds_db.url).await.unwrap()).await;
    holds_db.drop_database().await;
}

/// Services starting at once against one fresh PostgreSQL database (compose, `--role`
/// processes) each apply the schema: they take turns, and every one starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_starting_at_once_share_one_schema_on_postgresql() {
    let test_db = TestDatabase::create("shop_race_schema").await;
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let url = test_db.url.clone();
            tokio::spawn(async move { Database::connect(&url).await.map(|_| ()) })
        })
        .collect();
    for start in starts {
        let started = start.await.unwrap();
        assert!(started.is_ok(), "{started:?}");
    }
    test_db.drop_database().await;
}
