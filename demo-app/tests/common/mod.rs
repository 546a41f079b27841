//! What the shop's end-to-end tests share: a configuration for a fast shop on ephemeral
//! ports, polling with a deadline, reading a topic from the start, and an order API client.

#![allow(dead_code)] // each test file uses a part

use std::future::Future;
use std::time::{Duration, Instant};

use demo_app::app::ShopConfig;
use demo_app::services::payment::GatewayConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use reqwest::StatusCode;
use serde_json::Value;

/// A shop on ephemeral ports: a gateway that never fails, fast delivery, commits and group
/// joins, no payment screening (tests that need it set it).
pub fn shop_config(dir: &std::path::Path) -> ShopConfig {
    let mut config = ShopConfig::ephemeral(dir);
    config.gateway = GatewayConfig {
        failure_rate: 0.0,
        latency: Duration::ZERO,
    };
    config.delivery_delay = Duration::from_millis(300);
    config.payment_screening = Duration::ZERO;
    config.streams_commit_interval = Duration::from_millis(200);
    config.kafka_overrides = vec![
        ("session.timeout.ms".into(), "6000".into()),
        ("heartbeat.interval.ms".into(), "300".into()),
    ];
    config
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every record (key, value) of `topic` from the start, read until `done` says enough or
/// 60 s pass. Blocks.
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    done: impl Fn(&[(Option<String>, Vec<u8>)]) -> bool,
) -> Vec<(Option<String>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&records) && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            records.push((
                message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                message.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    records
}

/// The order API, as a client sees it.
pub struct OrderApi {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// `http://host:port`.
    pub base: String,
}

impl OrderApi {
    /// The order API at `addr`.
    pub fn at(addr: std::net::SocketAddr) -> Self {
        OrderApi {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
        }
    }

    /// Places an order that must be accepted; returns its JSON.
    pub async fn order(&self, token: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/orders", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// Places an order that must be accepted; returns its id.
    pub async fn order_id(&self, token: &str, body: Value) -> String {
        let order = self.order(token, body).await;
        order["order_id"].as_str().unwrap().to_owned()
    }

    /// The order as `GET /orders/{id}` shows it.
    pub async fn get(&self, token: &str, order_id: &str) -> Value {
        self.http
            .get(format!("{}/orders/{order_id}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Its status.
    pub async fn status(&self, token: &str, order_id: &str) -> String {
        let order = self.get(token, order_id).await;
        order["status"].as_str().unwrap_or_default().to_owned()
    }

    /// Polls the order until it has `status` (60 s at most); returns it.
    pub async fn await_status(&self, token: &str, order_id: &str, status: &str) -> Value {
        eventually(&format!("{order_id} to be {status}"), 60, || async {
            let order = self.get(token, order_id).await;
            (order["status"] == status).then_some(order)
        })
        .await
    }
}

/// A PostgreSQL database of its own on the machine's server (`SHOP_TEST_POSTGRES` overrides
/// the server's URL), so runs never see each other's rows.
pub struct TestDatabase {
    admin: sqlx::AnyPool,
    name: String,
    /// The database's URL.
    pub url: String,
}

impl TestDatabase {
    /// Creates a database named `prefix` and a random suffix.
    pub async fn create(prefix: &str) -> Self {
        let server = std::env::var("SHOP_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&format!("{server}/test"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        TestDatabase {
            admin,
            url: format!("{server}/{name}"),
            name,
        }
    }

    /// Drops the database, whoever is still connected.
    pub async fn drop_database(self) {
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await
            .unwrap();
    }
}
