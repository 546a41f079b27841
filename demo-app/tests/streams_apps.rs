//! The three streams apps, the dashboard, the topic view, metrics and chaos, end to end on
//! the embedded broker: orders placed through the API show up enriched in the analytics
//! tables, stock levels reach the cache, a low-stock alert and a fraud alert go out, the
//! flagged payment is held until an admin releases it, and after chaos (a stopped payment
//! service, a restarted streams app) every order still finishes, exactly once.

use std::time::Duration;

use demo_app::app::{Service, Shop};
use demo_app::auth::Role;
use demo_app::events::{topics, Envelope, NotificationEvent, OrderEvent};
use demo_app::streams::analytics;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

mod common;

use common::{eventually, read_topic, shop_config, OrderApi};

struct Client {
    api: OrderApi,
}

impl std::ops::Deref for Client {
    type Target = OrderApi;
    fn deref(&self) -> &OrderApi {
        &self.api
    }
}

impl Client {
    async fn register(&self, token: &str, name: &str) {
        let response = self
            .http
            .post(format!("{}/users", self.base))
            .bearer_auth(token)
            .json(&json!({
                "name": name, "email": "ann@example.com", "phone": "+31612345678",
                "country": "NL", "preferences": {"email": true, "sms": false}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
}

async fn chaos(http: &reqwest::Client, dashboard: &str, token: &str, scenario: Value) {
    let response = http
        .post(format!("{dashboard}/api/chaos"))
        .bearer_auth(token)
        .json(&scenario)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{scenario}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_apps_dashboard_and_chaos_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = shop_config(dir.path());
    // Payments wait for the fraud score, as in the demo.
    config.payment_screening = Duration::from_secs(3);
    let shop = Shop::start(config).await.unwrap();
    let client = Client {
        api: OrderApi::at(shop.order_api.unwrap()),
    };
    let http = client.http.clone();
    let dashboard = format!("http://{}", shop.dashboard.unwrap());
    let admin = shop
        .keys
        .issue("ops", Role::Admin, Duration::from_secs(600));
    assert_eq!(
        shop.guarantee,
        kstreams::config::ProcessingGuarantee::ExactlyOnce,
        "the embedded broker runs transactions"
    );

    // A registered customer's order is enriched with the customer (stream–table join).
    let ann = format!("ann-{}", uuid::Uuid::new_v4().simple());
    let ann_token = shop
        .keys
        .issue(&ann, Role::Customer, Duration::from_secs(600));
    client.register(&ann_token, "Ann").await;
    // Let the user event reach the customers table first (a join sees the table as of now).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first = client
        .order_id(
            &ann_token,
            json!({"items": [{"product_id": "SKU-MOUSE", "quantity": 2}], "device_id": "ann-phone"}),
        )
        .await;
    client.await_status(&ann_token, &first, "DELIVERED").await;
    let enriched = eventually("the enriched order row", 60, || async {
        sqlx::query(
            "SELECT customer_name, total, variant FROM analytics_orders WHERE order_id = $1",
        )
        .bind(&first)
        .fetch_optional(shop.db.pool())
        .await
        .unwrap()
    })
    .await;
    assert_eq!(
        enriched
            .get::<Option<String>, _>("customer_name")
            .as_deref(),
        Some("Ann")
    );
    let expected_total = if demo_app::services::order::variant_of(&ann) == "A" {
        "49.98"
    } else {
        "47.48"
    };
    assert_eq!(enriched.get::<String, _>("total"), expected_total);
    // Windowed sales reach the analytics table.
    eventually("hourly sales rows", 60, || async {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM analytics_sales WHERE granularity = 'hour' \
             AND dimension = 'product:SKU-MOUSE' AND units >= 2",
        )
        .fetch_one(shop.db.pool())
        .await
        .unwrap()
        .get("n");
        (n > 0).then_some(())
    })
    .await;
    // Stock levels reach the cache.
    let mouse: Value = eventually("the mouse's stock in the cache", 60, || async {
        let text = shop.cache.get("stock:SKU-MOUSE").await.unwrap()?;
        let level: Value = serde_json::from_str(&text).unwrap();
        (level["available"].as_i64() == Some(798)).then_some(level)
    })
    .await;
    assert_eq!(mouse["low"], false);

    // A whale buys 51 of the 60 chairs: stock falls below the threshold (10) and the order
    // is flagged as fraud (over the hourly spend limit, and one very large order).
    let whale = format!("whale-{}", uuid::Uuid::new_v4().simple());
    let whale_token = shop
        .keys
        .issue(&whale, Role::Customer, Duration::from_secs(600));
    let chairs = client
        .order_id(
            &whale_token,
            json!({"items": [{"product_id": "SKU-CHAIR", "quantity": 51}], "device_id": "w-1"}),
        )
        .await;
    let bootstrap = shop.bootstrap_servers.clone();
    let notifications = tokio::task::spawn_blocking(move || {
        let parse = |records: &[(Option<String>, Vec<u8>)]| -> Vec<NotificationEvent> {
            records
                .iter()
                .filter_map(|(_, v)| Envelope::<NotificationEvent>::from_bytes(v).ok())
                .map(|e| e.event)
                .collect()
        };
        let both = |events: &[NotificationEvent]| {
            events.iter().any(|e| matches!(e, NotificationEvent::LowStockAlert { product_id, .. } if product_id == "SKU-CHAIR"))
                && events.iter().any(|e| matches!(e, NotificationEvent::FraudAlert { .. }))
        };
        parse(&read_topic(&bootstrap, topics::NOTIFICATIONS, |r| both(&parse(r))))
    })
    .await
    .unwrap();
    let low = notifications
        .iter()
        .find_map(|e| match e {
            NotificationEvent::LowStockAlert {
                product_id,
                available,
                threshold,
            } if product_id == "SKU-CHAIR" => Some((*available, *threshold)),
            _ => None,
        })
        .expect("a low-stock alert for the chairs");
    assert_eq!(low, (9, 10));
    let (score, reasons) = notifications
        .iter()
        .find_map(|e| match e {
            NotificationEvent::FraudAlert {
                order_id,
                score,
                reasons,
                ..
            } if *order_id == chairs => Some((*score, reasons.clone())),
            _ => None,
        })
        .expect("a fraud alert for the whale's order");
    assert!(score >= 50, "{score} {reasons:?}");
    assert!(
        reasons.iter().any(|r| r.starts_with("spent")),
        "{reasons:?}"
    );

    // Its payment is held: the order waits in RESERVED until an admin releases it.
    let holds = eventually("the held payment", 60, || async {
        let holds: Value = http
            .get(format!("{}/payments/holds", client.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let held = holds
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["order_id"] == chairs.as_str() && h["status"] == "HELD");
        if !held {
            eprintln!("holds so far: {holds}");
        }
        held.then_some(holds)
    })
    .await;
    assert_eq!(holds.as_array().unwrap().len(), 1, "{holds}");
    assert_eq!(client.status(&whale_token, &chairs).await, "RESERVED");
    let release = |token: String| {
        let request = http
            .post(format!("{}/payments/holds/{chairs}/release", client.base))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(release(whale_token.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(release(admin.clone()).await, StatusCode::OK);
    assert_eq!(release(admin.clone()).await, StatusCode::CONFLICT);
    client
        .await_status(&whale_token, &chairs, "DELIVERED")
        .await;

    // The dashboard's snapshot and WebSocket show the tables.
    let snapshot: Value = eventually("the dashboard to show both orders", 60, || async {
        let s: Value = http
            .get(format!("{dashboard}/api/snapshot"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let chair_low = s["stock"]
            .as_array()?
            .iter()
            .any(|p| p["product_id"] == "SKU-CHAIR" && p["low"] == true);
        let fraud = s["fraud"]
            .as_array()?
            .iter()
            .any(|a| a["order_id"] == chairs.as_str());
        let delivered = s["orders"]["by_status"]["DELIVERED"].as_i64() >= Some(2);
        (chair_low && fraud && delivered).then_some(s)
    })
    .await;
    assert!(!snapshot["sales"]["per_minute"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(snapshot["guarantee"], "exactly-once");
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws", shop.dashboard.unwrap()))
            .await
            .unwrap();
    let first_message = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let pushed: Value = serde_json::from_str(first_message.to_text().unwrap()).unwrap();
    assert!(pushed["orders"]["total"].as_i64().unwrap() >= 2);
    socket.close(None).await.unwrap();

    // /metrics: business, consumer and kstreams metrics.
    let metrics = http
        .get(format!("{}/metrics", client.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("shop_orders_created_total"), "{metrics}");
    assert!(metrics.contains("shop_records_handled_total{group=\"order-service\""));
    assert!(metrics.contains("shop_order_analytics_kstreams_records_consumed"));

    // The topic view: topics, groups, the latest messages.
    let view = format!("http://{}", shop.topic_view.unwrap());
    let cluster: Value = eventually("the topic view's sample", 30, || async {
        let c: Value = http
            .get(format!("{view}/api/cluster"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let has_group = c["groups"]
            .as_array()?
            .iter()
            .any(|g| g["group"] == "order-service");
        (has_group && c["sampled_at"].as_i64() > Some(0)).then_some(c)
    })
    .await;
    let orders_topic = cluster["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "order-events")
        .expect("order-events in the topic view")
        .clone();
    assert_eq!(orders_topic["partitions"].as_array().unwrap().len(), 4);
    let ends: i64 = orders_topic["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["high"].as_i64().unwrap())
        .sum();
    assert!(
        ends > 0,
        "the placed orders' events are counted: {orders_topic}"
    );
    assert_eq!(
        orders_topic["messages"].as_i64(),
        Some(ends),
        "nothing deleted yet"
    );
    let page = http
        .get(format!("{view}/topics/order-events?limit=50"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&chairs), "the latest messages show the order");
    let missing = http
        .get(format!("{view}/topics/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Chaos: the payment service stops for 4 s; an order placed meanwhile waits, then
    // finishes.
    let unauthorized = http
        .post(format!("{dashboard}/api/chaos"))
        .json(&json!({"kind": "clear"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    chaos(
        &http,
        &dashboard,
        &admin,
        json!({"kind": "stop", "service": "payment", "seconds": 4}),
    )
    .await;
    let during = client
        .order_id(
            &ann_token,
            json!({"items": [{"product_id": "SKU-CABLE", "quantity": 1}], "device_id": "ann-phone"}),
        )
        .await;
    // The order reaches payment, which does not take it while stopped.
    client.await_status(&ann_token, &during, "RESERVED").await;
    let payment = shop.chaos.faults(demo_app::app::Service::Payment);
    eventually("the stop's end", 10, || async {
        (!payment.is_stopped()).then_some(())
    })
    .await;
    client.await_status(&ann_token, &during, "DELIVERED").await;
    assert!(
        payment.held() > 0,
        "the payment request waited for the stop to end"
    );

    // Chaos: the analytics app is killed and started again; its tables restore from the
    // changelogs and it goes on with new orders.
    let app = shop.streams_app(analytics::APPLICATION_ID).unwrap().clone();
    chaos(
        &http,
        &dashboard,
        &admin,
        json!({"kind": "restart_streams", "application_id": analytics::APPLICATION_ID}),
    )
    .await;
    eventually("the restart", 60, || async {
        (app.restarts() == 1 && app.is_healthy()).then_some(())
    })
    .await;
    let after = client
        .order_id(
            &ann_token,
            json!({"items": [{"product_id": "SKU-WEBCAM", "quantity": 1}], "device_id": "ann-phone"}),
        )
        .await;
    client.await_status(&ann_token, &after, "DELIVERED").await;
    eventually("the post-restart order in analytics", 60, || async {
        sqlx::query("SELECT 1 AS one FROM analytics_orders WHERE order_id = $1")
            .bind(&after)
            .fetch_optional(shop.db.pool())
            .await
            .unwrap()
    })
    .await;
    let restored = eventually("the restored status counts", 60, || async {
        let app = shop.streams_app(analytics::APPLICATION_ID)?;
        let delivered = app.with(|s| {
            s.store::<String, i64>(analytics::STATUS_COUNTS_STORE)
                .and_then(|store| store.get(&"DELIVERED".to_owned()))
        })?;
        match delivered {
            Ok(Some(n)) if n >= 4 => Some(n),
            _ => None,
        }
    })
    .await;
    assert_eq!(
        restored, 4,
        "every delivered order counted once after the restore"
    );

    // Nothing lost, nothing duplicated: one OrderCreated per accepted order.
    let bootstrap = shop.bootstrap_servers.clone();
    let accepted = [first.clone(), chairs.clone(), during.clone(), after.clone()];
    let created = tokio::task::spawn_blocking(move || {
        let count = |records: &[(Option<String>, Vec<u8>)]| {
            records
                .iter()
                .filter_map(|(_, v)| Envelope::<OrderEvent>::from_bytes(v).ok())
                .filter(|e| matches!(e.event, OrderEvent::OrderCreated { .. }))
                .count()
        };
        let records = read_topic(&bootstrap, topics::ORDERS, |r| count(r) >= 4);
        records
            .iter()
            .filter_map(|(_, v)| Envelope::<OrderEvent>::from_bytes(v).ok())
            .filter_map(|e| match e.event {
                OrderEvent::OrderCreated { order_id, .. } => Some(order_id),
                _ => None,
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut sorted = created.clone();
    sorted.sort();
    let mut expected = accepted.to_vec();
    expected.sort();
    assert_eq!(sorted, expected);

    shop.stop().await;
}

/// The inventory monitor mirrors stock levels into the Redis server of this machine, and
/// the shop runs as separate roles (here: inventory and its monitor without the rest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_levels_reach_redis_from_a_process_running_two_roles() {
    let redis_url =
        std::env::var("SHOP_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("shop-test-{}:", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let mut config = shop_config(dir.path());
    config.redis_url = Some(redis_url.clone());
    config.cache_prefix = prefix.clone();
    config.services = [Service::Inventory, Service::InventoryMonitor]
        .into_iter()
        .collect();
    let shop = Shop::start(config).await.unwrap();
    assert_eq!(shop.cache.kind(), "Redis");
    assert!(shop.order_api.is_none(), "the order API is another role");
    assert_eq!(shop.streams.len(), 1);

    // Restock through the inventory API (admin): a StockLevelChanged the monitor mirrors.
    let http = reqwest::Client::new();
    let admin = shop
        .keys
        .issue("ops", Role::Admin, Duration::from_secs(600));
    let inventory = format!("http://{}", shop.inventory_api.unwrap());
    let restocked = http
        .post(format!("{inventory}/products/SKU-DOCK/restock"))
        .bearer_auth(&admin)
        .json(&json!({"quantity": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(restocked.status(), StatusCode::OK);

    // Read it back from Redis directly, as another process would.
    let redis = redis::Client::open(redis_url.as_str()).unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}stock:SKU-DOCK");
    let level: Value = eventually("the dock's level in Redis", 60, || {
        let mut connection = connection.clone();
        let key = key.clone();
        async move {
            let text: Option<String> = redis::AsyncCommands::get(&mut connection, &key)
                .await
                .unwrap();
            text.and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .filter(|l| l["available"] == 155)
        }
    })
    .await;
    assert_eq!(level["threshold"], 15);
    let all = shop.cache.scan("stock:").await.unwrap();
    assert!(all.iter().any(|(k, _)| k == "stock:SKU-DOCK"), "{all:?}");
    shop.stop().await;
    let keys: Vec<String> = redis::AsyncCommands::keys(&mut connection, format!("{prefix}*"))
        .await
        .unwrap();
    for key in keys {
        let _: () = redis::AsyncCommands::del(&mut connection, key)
            .await
            .unwrap();
    }
}
