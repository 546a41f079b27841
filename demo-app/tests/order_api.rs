//! The order API end to end: HTTP → database → outbox → `order-events` on the embedded
//! broker, on SQLite and on the PostgreSQL server of this machine.

use std::time::{Duration, Instant};

use demo_app::app::{Service, Shop, ShopConfig};
use demo_app::auth::Role;
use demo_app::events::{topics, Envelope, OrderEvent, OrderStatus, PaymentEvent};
use demo_app::services::payment::GatewayConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use reqwest::StatusCode;
use serde_json::{json, Value};

mod common;

/// Every `order-events` record of `customer`, read from the start until `settle` passes
/// with nothing new.
fn order_events(bootstrap: &str, customer: &str, settle: Duration) -> Vec<Envelope<OrderEvent>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topics::ORDERS]).unwrap();
    let mut events = Vec::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while quiet_since.elapsed() < settle && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                if message.key() == Some(customer.as_bytes()) {
                    events.push(Envelope::from_bytes(message.payload().unwrap()).unwrap());
                    quiet_since = Instant::now();
                }
            }
            _ => {
                if events.is_empty() {
                    quiet_since = Instant::now();
                }
            }
        }
    }
    events
}

async fn order_count(shop: &Shop, customer: &str) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM orders WHERE customer_id = $1")
        .bind(customer)
        .fetch_one(shop.db.pool())
        .await
        .unwrap()
        .get::<i64, _>("n")
}

async fn exercise(shop: &Shop) {
    let http = reqwest::Client::new();
    let base = format!("http://{}", shop.order_api.expect("the order API runs"));
    let customer = format!("c-{}", uuid::Uuid::new_v4().simple());
    let token = shop
        .keys
        .issue(&customer, Role::Customer, Duration::from_secs(600));
    let body = json!({
        "items": [
            {"product_id": "SKU-MOUSE", "quantity": 2},
            {"product_id": "SKU-CABLE", "quantity": 3}
        ],
        "device_id": "dev-1"
    });

    // Place an order, then repeat the request with the same Idempotency-Key.
    let first = http
        .post(format!("{base}/orders"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "checkout-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "CREATED");
    // Prices depend on the customer's A/B variant: B (the pricing experiment) pays 5% less.
    let variant = demo_app::services::order::variant_of(&customer);
    assert_eq!(first["variant"], variant);
    if variant == "A" {
        assert_eq!(first["total"], "79.95", "2 × 24.99 + 3 × 9.99, exact");
    } else {
        assert_eq!(first["total"], "75.95", "2 × 23.74 + 3 × 9.49, exact");
    }
    let again = http
        .post(format!("{base}/orders"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "checkout-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["order_id"], first["order_id"]);

    // The same key for another request is refused.
    let reused = http
        .post(format!("{base}/orders"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "checkout-1")
        .json(&json!({"items": [{"product_id": "SKU-DOCK", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Bad requests: a clear 4xx with a JSON message, and nothing stored.
    let cases = [
        (
            http.post(format!("{base}/orders")).json(&body),
            StatusCode::UNAUTHORIZED,
        ),
        (
            http.post(format!("{base}/orders"))
                .bearer_auth("not-a-jwt")
                .json(&body),
            StatusCode::UNAUTHORIZED,
        ),
        (
            http.post(format!("{base}/orders"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"items\": [ oops"),
            StatusCode::BAD_REQUEST,
        ),
        (
            http.post(format!("{base}/orders"))
                .bearer_auth(&token)
                .json(&json!({"items": [{"product_id": "SKU-NOPE", "quantity": 1}]})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            http.post(format!("{base}/orders"))
                .bearer_auth(&token)
                .json(&json!({"items": [{"product_id": "SKU-MOUSE", "quantity": 0}]})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            http.post(format!("{base}/orders"))
                .bearer_auth(&token)
                .json(&json!({"items": []})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (request, expected) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), expected);
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
    }
    assert_eq!(order_count(shop, &customer).await, 1);

    // Reading: own orders yes, someone else's no.
    let order_id = first["order_id"].as_str().unwrap();
    let own = http
        .get(format!("{base}/orders/{order_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let listed: Value = http
        .get(format!("{base}/orders?user={customer}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let stranger = shop
        .keys
        .issue("someone-else", Role::Customer, Duration::from_secs(60));
    let denied = http
        .get(format!("{base}/orders/{order_id}"))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let missing = http
        .get(format!("{base}/orders/o-missing"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Inventory reserves, payment authorizes, shipping ships, the carrier delivers.
    let delivered = await_status(&http, &base, &token, order_id, "DELIVERED").await;
    assert_eq!(delivered["reason"], Value::Null);
    // An order for more than the stock is cancelled, with the reason.
    let too_many: Value = http
        .post(format!("{base}/orders"))
        .bearer_auth(&token)
        .json(&json!({"items": [{"product_id": "SKU-CHAIR", "quantity": 1000}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cancelled = await_status(
        &http,
        &base,
        &token,
        too_many["order_id"].as_str().unwrap(),
        "CANCELLED",
    )
    .await;
    assert!(
        cancelled["reason"].as_str().unwrap().contains("in stock"),
        "{cancelled}"
    );

    // Exactly one OrderCreated for the first order, keyed by the customer, schema v2, then
    // its status change.
    let bootstrap = shop.bootstrap_servers.clone();
    let key = customer.clone();
    let events =
        tokio::task::spawn_blocking(move || order_events(&bootstrap, &key, Duration::from_secs(2)))
            .await
            .unwrap();
    let events: Vec<_> = events
        .into_iter()
        .filter(|e| e.event.order_id() == order_id)
        .collect();
    let path: Vec<_> = events
        .iter()
        .filter_map(|e| match e.event {
            OrderEvent::OrderStatusChanged { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    use OrderStatus::*;
    assert_eq!(
        path,
        [
            (Created, Reserved),
            (Reserved, Paid),
            (Paid, Shipped),
            (Shipped, Delivered)
        ]
    );
    assert_eq!(events.len(), 5, "{events:?}");
    match &events[0].event {
        OrderEvent::OrderCreated {
            order_id: id,
            customer_id,
            items,
            ..
        } => {
            assert_eq!(id, order_id);
            assert_eq!(customer_id, &customer);
            assert_eq!(items.len(), 2);
        }
        other => panic!("expected OrderCreated, got {other:?}"),
    }
    assert_eq!(events[0].schema_version, 2);
}

/// Polls the order until it has `status`; returns it.
async fn await_status(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    order_id: &str,
    status: &str,
) -> Value {
    let api = common::OrderApi {
        http: http.clone(),
        base: base.to_owned(),
    };
    api.await_status(token, order_id, status).await
}

/// A declined card cancels the order and puts the payment request in the DLQ with headers.
async fn declined_payments_are_dead_lettered(shop: &Shop) {
    let http = reqwest::Client::new();
    let base = format!("http://{}", shop.order_api.expect("the order API runs"));
    let customer = format!("declined-{}", uuid::Uuid::new_v4().simple());
    let token = shop
        .keys
        .issue(&customer, Role::Customer, Duration::from_secs(600));
    let order: Value = http
        .post(format!("{base}/orders"))
        .bearer_auth(&token)
        .json(&json!({"items": [{"product_id": "SKU-WEBCAM", "quantity": 1}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    let cancelled = await_status(&http, &base, &token, &order_id, "CANCELLED").await;
    assert!(
        cancelled["reason"].as_str().unwrap().contains("declined"),
        "{cancelled}"
    );
    let (headers, payload) = find_record(shop, topics::PAYMENTS_DLQ, &order_id)
        .await
        .expect("the declined payment is in the dead-letter topic");
    let request = Envelope::<PaymentEvent>::from_bytes(&payload).unwrap();
    assert!(
        headers.contains(&("dlq.error.kind".into(), "declined".into())),
        "{headers:?}"
    );
    assert!(headers.contains(&("dlq.source.topic".into(), topics::PAYMENTS.into())));
    assert!(matches!(
        request.event,
        PaymentEvent::PaymentRequested { .. }
    ));
}

/// A gateway that is down for every attempt: the request goes to the DLQ as
/// `unavailable` and the order waits; once the gateway is back, `dlq-replay` moves the
/// request back to `payment-events` and the order finishes. A second replay moves nothing.
async fn unavailable_payments_are_replayed_from_the_dlq(shop: &Shop) {
    let http = reqwest::Client::new();
    let base = format!("http://{}", shop.order_api.expect("the order API runs"));
    let customer = format!("c-{}", uuid::Uuid::new_v4().simple());
    let token = shop
        .keys
        .issue(&customer, Role::Customer, Duration::from_secs(600));
    shop.gateway.reconfigure(GatewayConfig {
        failure_rate: 1.0,
        latency: Duration::ZERO,
    });
    let order: Value = http
        .post(format!("{base}/orders"))
        .bearer_auth(&token)
        .json(&json!({"items": [{"product_id": "SKU-HEADSET", "quantity": 1}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order["order_id"].as_str().unwrap().to_owned();
    let (headers, _) = find_record(shop, topics::PAYMENTS_DLQ, &order_id)
        .await
        .expect("the unavailable payment is in the dead-letter topic");
    assert!(
        headers.contains(&("dlq.error.kind".into(), "unavailable".into())),
        "{headers:?}"
    );
    let waiting: Value = http
        .get(format!("{base}/orders/{order_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        waiting["status"], "RESERVED",
        "the order waits for its payment"
    );

    shop.gateway.reconfigure(GatewayConfig {
        failure_rate: 0.0,
        latency: Duration::ZERO,
    });
    let moved = demo_app::services::payment::replay_dead_letters(&shop.client)
        .await
        .unwrap();
    assert!(moved >= 1, "moved {moved}");
    await_status(&http, &base, &token, &order_id, "DELIVERED").await;
    let again = demo_app::services::payment::replay_dead_letters(&shop.client)
        .await
        .unwrap();
    assert_eq!(again, 0, "committed offsets: nothing moves twice");
}

/// The headers and value of the first record of `topic` with `key`.
async fn find_record(
    shop: &Shop,
    topic: &'static str,
    key: &str,
) -> Option<(Vec<(String, String)>, Vec<u8>)> {
    let bootstrap = shop.bootstrap_servers.clone();
    let key = key.to_owned();
    tokio::task::spawn_blocking(move || {
        use rdkafka::message::Headers;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                if message.key() == Some(key.as_bytes()) {
                    let headers = message
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    return Some((headers, message.payload().unwrap_or_default().to_vec()));
                }
            }
        }
        None
    })
    .await
    .unwrap()
}

/// A record no service can read goes to `shop-dead-letters`, keeping its bytes, with the
/// reason in headers; the services keep going.
async fn poison_records_are_dead_lettered(shop: &Shop) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let key = format!("poison-{}", uuid::Uuid::new_v4().simple());
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &shop.bootstrap_servers)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(topics::ORDERS)
                .key(&key)
                .payload("{not json"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let (headers, payload) = find_record(shop, demo_app::consumer::DEAD_LETTERS, &key)
        .await
        .expect("the poison record is dead-lettered");
    assert_eq!(payload, b"{not json");
    assert!(headers.contains(&("dlq.source.topic".into(), topics::ORDERS.into())));
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "dlq.error.message" && v.contains("malformed")),
        "{headers:?}"
    );
}

/// Every event lands in the audit log; the chain verifies, and a changed entry is found.
async fn the_audit_log_is_tamper_evident(shop: &Shop) {
    use demo_app::services::audit::{verify, Verification};
    use sqlx::Row;
    let deadline = Instant::now() + Duration::from_secs(30);
    let entries = loop {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_log")
            .fetch_one(shop.audit_db.pool())
            .await
            .unwrap()
            .get("n");
        // At least the first order's five events.
        if n >= 5 {
            break n;
        }
        assert!(Instant::now() < deadline, "the audit log has {n} entries");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    match verify(&shop.audit_db).await.unwrap() {
        Verification::Intact(n) => assert!(n as i64 >= entries),
        broken => panic!("{broken:?}"),
    }
    sqlx::query("UPDATE audit_log SET payload = '{\"tampered\":true}' WHERE seq = 3")
        .execute(shop.audit_db.pool())
        .await
        .unwrap();
    assert!(matches!(
        verify(&shop.audit_db).await.unwrap(),
        Verification::Broken { seq: 3, .. }
    ));
}

/// The audit log's copy of `customer`'s registration.
async fn eventually_audited(shop: &Shop, customer: &str) -> String {
    use sqlx::Row;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = sqlx::query(
            "SELECT payload FROM audit_log WHERE topic = 'user-events' AND record_key = $1",
        )
        .bind(customer)
        .fetch_optional(shop.audit_db.pool())
        .await
        .unwrap();
        if let Some(row) = row {
            return row.get("payload");
        }
        assert!(
            Instant::now() < deadline,
            "the registration was never audited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Email and SMS are separate consumer groups; each sends what the customer asked for.
async fn notifications_fan_out_by_preference(shop: &Shop) {
    use sqlx::Row;
    let http = reqwest::Client::new();
    let base = format!("http://{}", shop.order_api.expect("the order API runs"));
    for (sms, expected_channels) in [(true, vec!["email", "sms"]), (false, vec!["email"])] {
        let customer = format!("c-{}", uuid::Uuid::new_v4().simple());
        let token = shop
            .keys
            .issue(&customer, Role::Customer, Duration::from_secs(600));
        let bad = http
            .post(format!("{base}/users"))
            .bearer_auth(&token)
            .json(
                &json!({"name": "Ann", "email": "nope", "phone": "+31612345678", "country": "NL"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let registered = http
            .post(format!("{base}/users"))
            .bearer_auth(&token)
            .json(&json!({
                "name": "Ann", "email": "ann@example.com", "phone": "+31612345678",
                "country": "NL", "preferences": {"email": true, "sms": sms}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), StatusCode::ACCEPTED);
        // Both channels have read the registration before the order's events arrive.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM notification_preferences WHERE customer_id = $1",
            )
            .bind(&customer)
            .fetch_one(shop.notifications_db.pool())
            .await
            .unwrap()
            .get("n");
            if n == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "preferences not seen");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let order: Value = http
            .post(format!("{base}/orders"))
            .bearer_auth(&token)
            .json(&json!({"items": [{"product_id": "SKU-HEADSET", "quantity": 1}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        await_status(
            &http,
            &base,
            &token,
            order["order_id"].as_str().unwrap(),
            "DELIVERED",
        )
        .await;
        // RESERVED, PAID, SHIPPED, DELIVERED on each wanted channel.
        let expected = 4 * expected_channels.len();
        let deadline = Instant::now() + Duration::from_secs(30);
        let sent = loop {
            let sent: Vec<Value> = http
                .get(format!("{base}/notifications?user={customer}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if sent.len() >= expected || Instant::now() > deadline {
                break sent;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(sent.len(), expected, "{sent:?}");
        for channel in &expected_channels {
            let on_channel: Vec<_> = sent.iter().filter(|m| m["channel"] == *channel).collect();
            assert_eq!(on_channel.len(), 4, "{sent:?}");
            let contact = if *channel == "sms" {
                "+31612345678"
            } else {
                "ann@example.com"
            };
            assert!(
                on_channel.iter().all(|m| m["contact"] == contact),
                "{sent:?}"
            );
        }
        // At rest the contacts are ciphertext: in the preferences, the sent messages and the
        // audit log's copy of the registration.
        for table in ["notification_preferences", "sent_notifications"] {
            let contacts: Vec<String> = sqlx::query(&format!(
                "SELECT contact FROM {table} WHERE customer_id = $1"
            ))
            .bind(&customer)
            .fetch_all(shop.notifications_db.pool())
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("contact"))
            .collect();
            assert!(!contacts.is_empty(), "{table}");
            assert!(
                contacts.iter().all(|c| c.starts_with("enc:v1:")),
                "{table}: {contacts:?}"
            );
        }
        let audit = eventually_audited(shop, &customer).await;
        assert!(
            !audit.contains("ann@example.com") && !audit.contains("+31612345678"),
            "{audit}"
        );
        assert!(audit.contains("enc:v1:"), "{audit}");
    }
}

fn test_config(dir: &std::path::Path) -> ShopConfig {
    let mut config = common::shop_config(dir);
    // The services alone: the streams apps and the operators' views have their own tests
    // (streams_apps.rs), and fraud holds would make payments here depend on scores.
    config.services.retain(|s| {
        !matches!(
            s,
            Service::Analytics
                | Service::InventoryMonitor
                | Service::Fraud
                | Service::Dashboard
                | Service::TopicView
        )
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_on_sqlite_reach_the_topic_once() {
    let dir = tempfile::tempdir().unwrap();
    let shop = Shop::start(test_config(dir.path())).await.unwrap();
    poison_records_are_dead_lettered(&shop).await;
    exercise(&shop).await;
    declined_payments_are_dead_lettered(&shop).await;
    unavailable_payments_are_replayed_from_the_dlq(&shop).await;
    notifications_fan_out_by_preference(&shop).await;
    the_audit_log_is_tamper_evident(&shop).await;
    shop.stop().await;
}

/// The simulator's customers register and order through the APIs; their orders finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_customers_place_orders_that_finish() {
    use sqlx::Row;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.simulator.orders_per_second = 20.0;
    config.simulator.customers = 100;
    let shop = Shop::start(config).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n,
                    SUM(CASE WHEN status IN ('DELIVERED', 'CANCELLED') THEN 1 ELSE 0 END) AS done,
                    SUM(CASE WHEN customer_id LIKE 'declined-%' AND status = 'CANCELLED'
                        THEN 1 ELSE 0 END) AS declined
             FROM orders",
        )
        .fetch_one(shop.db.pool())
        .await
        .unwrap();
        let n: i64 = row.get("n");
        let done: i64 = row.try_get("done").unwrap_or(0);
        let declined: i64 = row.try_get("declined").unwrap_or(0);
        if n >= 40 && done >= 30 && declined >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} simulated orders, {done} finished, {declined} declined"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_on_postgresql_reach_the_topic_once() {
    let database = common::TestDatabase::create("shop_test").await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.database_url = Some(database.url.clone());
    let shop = Shop::start(config).await.unwrap();
    assert!(shop.db.is_postgres());
    exercise(&shop).await;
    declined_payments_are_dead_lettered(&shop).await;
    the_audit_log_is_tamper_evident(&shop).await;
    shop.db.pool().close().await;
    shop.stop().await;
    database.drop_database().await;
}
