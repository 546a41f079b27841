//! The live dashboard on :3000: one page, updated over a WebSocket.
//!
//! Its numbers come from the streams apps' tables, followed with kstreams' change
//! subscriptions ([`KafkaStreams::subscribe`](kstreams::kafka::KafkaStreams::subscribe)):
//! order states and status counts, sales per minute and per hour, A/B conversion
//! (analytics), stock levels (inventory monitor) and fraud alerts (fraud detection). Each
//! feed reads its store once, then applies every change; when an app restarts its
//! subscriptions end and the feeds subscribe to the new instance. Health (consumer lag,
//! dead-letter depth, throughput, alerts) comes from the [`ClusterMonitor`](crate::monitor).
//! Every second the server sends each connected page a snapshot when anything changed.
//!
//! Chaos scenarios are started from the page (with an admin token) or `shop chaos`, both
//! through `POST /api/chaos`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use crate::app::Service;
use crate::auth::{Authenticated, HasJwtKeys, JwtKeys};
use crate::chaos::{Chaos, Scenario};
use crate::http::{ApiError, JsonBody};
use crate::monitor::ClusterView;
use crate::streams::analytics::{
    OrderSummary, Sales, VariantStats, ORDERS_STORE, SALES_HOURLY_STORE, SALES_MINUTE_STORE,
    STATUS_COUNTS_STORE, VARIANTS_STORE,
};
use crate::streams::fraud::{FraudVerdict, ALERTS_STORE};
use crate::streams::inventory_monitor::{StockLevel, STOCK_STORE};
use crate::streams::{amount, StreamsApp};

const PAGE: &str = include_str!("../assets/dashboard.html");
const CHART_JS: &str = include_str!("../assets/vendor/chart.umd.js");

/// Orders the dashboard remembers (the most recently changed).
const ORDER_MEMORY: usize = 500;

/// What the feeds collected from the tables.
#[derive(Default)]
struct Tables {
    orders: BTreeMap<String, OrderSummary>,
    status_counts: BTreeMap<String, i64>,
    minute: BTreeMap<i64, Sales>,
    hour: BTreeMap<i64, Sales>,
    hour_products: BTreeMap<(i64, String), Sales>,
    variants: BTreeMap<String, VariantStats>,
    stock: BTreeMap<String, StockLevel>,
    fraud: BTreeMap<String, FraudVerdict>,
    changes: u64,
}

/// The dashboard of one process.
#[derive(Clone)]
pub struct Dashboard {
    tables: Arc<Mutex<Tables>>,
    cluster: Arc<RwLock<ClusterView>>,
    streams: Vec<Arc<StreamsApp>>,
    services: Vec<Service>,
    chaos: Chaos,
    keys: JwtKeys,
    guarantee: &'static str,
    snapshots: watch::Receiver<Arc<String>>,
    publish: Arc<watch::Sender<Arc<String>>>,
}

impl HasJwtKeys for Dashboard {
    fn jwt_keys(&self) -> &JwtKeys {
        &self.keys
    }
}

impl Dashboard {
    /// A dashboard over the streams apps of this process and the cluster monitor's view.
    pub fn new(
        streams: Vec<Arc<StreamsApp>>,
        cluster: Arc<RwLock<ClusterView>>,
        services: Vec<Service>,
        chaos: Chaos,
        keys: JwtKeys,
        guarantee: &'static str,
    ) -> Self {
        let (publish, snapshots) = watch::channel(Arc::new(String::from("{}")));
        Dashboard {
            tables: Arc::default(),
            cluster,
            streams,
            services,
            chaos,
            keys,
            guarantee,
            snapshots,
            publish: Arc::new(publish),
        }
    }

    /// The feeds and the publisher; run them on tasks of their own.
    pub fn tasks(&self) -> Vec<futures::future::BoxFuture<'static, ()>> {
        let mut tasks: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();
        for app in &self.streams {
            let tables = self.tables.clone();
            match app.application_id.as_str() {
                crate::streams::analytics::APPLICATION_ID => {
                    tasks.push(Box::pin(follow_kv(
                        app.clone(),
                        ORDERS_STORE,
                        tables.clone(),
                        |t, key, value: Option<OrderSummary>| {
                            upsert(&mut t.orders, key, value);
                            if t.orders.len() > 2 * ORDER_MEMORY {
                                let mut by_time: Vec<(i64, String)> = t
                                    .orders
                                    .iter()
                                    .map(|(k, o)| (o.updated_at, k.clone()))
                                    .collect();
                                by_time.sort();
                                for (_, key) in &by_time[..by_time.len() - ORDER_MEMORY] {
                                    t.orders.remove(key);
                                }
                            }
                        },
                    )));
                    tasks.push(Box::pin(follow_kv(
                        app.clone(),
                        STATUS_COUNTS_STORE,
                        tables.clone(),
                        |t, key, value: Option<i64>| {
                            t.status_counts.insert(key, value.unwrap_or(0));
                        },
                    )));
                    tasks.push(Box::pin(follow_kv(
                        app.clone(),
                        VARIANTS_STORE,
                        tables.clone(),
                        |t, key, value: Option<VariantStats>| {
                            t.variants.insert(key, value.unwrap_or_default());
                        },
                    )));
                    tasks.push(Box::pin(follow_window(
                        app.clone(),
                        SALES_MINUTE_STORE,
                        tables.clone(),
                        |t, key, start, value: Option<Sales>| {
                            if key == "total" {
                                t.minute.insert(start, value.unwrap_or_default());
                                while t.minute.len() > 60 {
                                    t.minute.pop_first();
                                }
                            }
                        },
                    )));
                    tasks.push(Box::pin(follow_window(
                        app.clone(),
                        SALES_HOURLY_STORE,
                        tables,
                        |t, key, start, value: Option<Sales>| {
                            let sales = value.unwrap_or_default();
                            if key == "total" {
                                t.hour.insert(start, sales);
                                while t.hour.len() > 24 {
                                    t.hour.pop_first();
                                }
                            } else if let Some(product) = key.strip_prefix("product:") {
                                t.hour_products.insert((start, product.to_owned()), sales);
                                let oldest = t.hour.keys().next().copied().unwrap_or(i64::MIN);
                                t.hour_products.retain(|(s, _), _| *s >= oldest);
                            }
                        },
                    )));
                }
                crate::streams::inventory_monitor::APPLICATION_ID => {
                    tasks.push(Box::pin(follow_kv(
                        app.clone(),
                        STOCK_STORE,
                        tables,
                        |t, key, value: Option<StockLevel>| upsert(&mut t.stock, key, value),
                    )));
                }
                crate::streams::fraud::APPLICATION_ID => {
                    tasks.push(Box::pin(follow_kv(
                        app.clone(),
                        ALERTS_STORE,
                        tables,
                        |t, key, value: Option<FraudVerdict>| upsert(&mut t.fraud, key, value),
                    )));
                }
                _ => {}
            }
        }
        let dashboard = self.clone();
        tasks.push(Box::pin(async move { dashboard.publish_loop().await }));
        tasks
    }

    async fn publish_loop(self) {
        let mut last = String::new();
        loop {
            let snapshot = self.snapshot().to_string();
            if snapshot != last {
                last = snapshot.clone();
                self.publish.send_replace(Arc::new(snapshot));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Everything the page shows, as JSON.
    pub fn snapshot(&self) -> serde_json::Value {
        let t = self.tables.lock().expect("dashboard tables");
        let mut recent: Vec<(&String, &OrderSummary)> = t.orders.iter().collect();
        recent.sort_by(|a, b| b.1.updated_at.cmp(&a.1.updated_at).then(a.0.cmp(b.0)));
        let recent: Vec<_> = recent
            .into_iter()
            .take(15)
            .map(|(id, o)| {
                json!({
                    "order_id": id, "customer_id": o.customer_id, "status": o.status,
                    "total": amount(o.total_cents).to_string(), "variant": o.variant,
                    "updated_at": o.updated_at,
                })
            })
            .collect();
        let series = |windows: &BTreeMap<i64, Sales>| -> Vec<serde_json::Value> {
            windows
                .iter()
                .map(|(start, s)| {
                    json!({"start": start, "orders": s.orders, "units": s.units,
                           "revenue": amount(s.revenue_cents).to_string()})
                })
                .collect()
        };
        let current_hour = t.hour.keys().next_back().copied();
        let mut products: Vec<(&String, &Sales)> = t
            .hour_products
            .iter()
            .filter(|((start, _), _)| Some(*start) == current_hour)
            .map(|((_, product), sales)| (product, sales))
            .collect();
        products.sort_by_key(|p| std::cmp::Reverse(p.1.revenue_cents));
        let top_products: Vec<_> = products
            .into_iter()
            .take(8)
            .map(|(p, s)| {
                json!({"product_id": p, "units": s.units,
                       "revenue": amount(s.revenue_cents).to_string()})
            })
            .collect();
        let stock: Vec<_> = t
            .stock
            .iter()
            .map(|(p, l)| {
                json!({"product_id": p, "available": l.available, "reserved": l.reserved,
                       "threshold": l.threshold, "low": l.low})
            })
            .collect();
        let mut fraud: Vec<(&String, &FraudVerdict)> = t.fraud.iter().collect();
        fraud.sort_by_key(|a| std::cmp::Reverse(a.1.at));
        let fraud: Vec<_> = fraud
            .into_iter()
            .take(10)
            .map(|(order, v)| {
                json!({"order_id": order, "customer_id": v.customer_id, "score": v.score,
                       "reasons": v.reasons, "at": v.at})
            })
            .collect();
        let variants: Vec<_> = t
            .variants
            .iter()
            .map(|(name, v)| {
                let conversion = if v.orders > 0 {
                    v.converted as f64 / v.orders as f64
                } else {
                    0.0
                };
                json!({"variant": name, "orders": v.orders, "converted": v.converted,
                       "conversion": conversion, "revenue": amount(v.revenue_cents).to_string()})
            })
            .collect();
        let orders_total: i64 = t.status_counts.values().sum();
        let changes = t.changes;
        let status_counts = t.status_counts.clone();
        let per_minute = series(&t.minute);
        let per_hour = series(&t.hour);
        drop(t);
        json!({
            "generated_at": chrono::Utc::now().timestamp_millis(),
            "guarantee": self.guarantee,
            "changes": changes,
            "orders": {"total": orders_total, "by_status": status_counts, "recent": recent},
            "sales": {"per_minute": per_minute, "per_hour": per_hour, "top_products": top_products},
            "stock": stock,
            "fraud": fraud,
            "variants": variants,
            "health": self.health(),
        })
    }

    fn health(&self) -> serde_json::Value {
        let cluster = self.cluster.read().expect("cluster view").clone();
        let active = self.chaos.active();
        let services: Vec<_> = self
            .services
            .iter()
            .map(|service| {
                let stopped = self.chaos.faults(*service).is_stopped();
                let app = self.streams.iter().find(|a| {
                    matches!(
                        (service, a.application_id.as_str()),
                        (
                            Service::Analytics,
                            crate::streams::analytics::APPLICATION_ID
                        ) | (
                            Service::InventoryMonitor,
                            crate::streams::inventory_monitor::APPLICATION_ID
                        ) | (Service::Fraud, crate::streams::fraud::APPLICATION_ID)
                    )
                });
                let streams_ok = app.is_none_or(|a| a.is_healthy());
                json!({
                    "name": service.name(),
                    "up": !stopped && streams_ok,
                    "detail": active.get(service.name()).cloned().or_else(|| {
                        app.and_then(|a| a.state()).map(|s| format!("{s:?}"))
                    }),
                })
            })
            .collect();
        let streams: Vec<_> = self
            .streams
            .iter()
            .map(|a| {
                json!({"application_id": a.application_id,
                       "state": a.state().map(|s| format!("{s:?}")).unwrap_or_else(|| "Restarting".into()),
                       "restarts": a.restarts()})
            })
            .collect();
        let groups: Vec<_> = cluster
            .groups
            .iter()
            .map(
                |g| json!({"group": g.group, "state": g.state, "members": g.members, "lag": g.lag}),
            )
            .collect();
        let metrics = crate::metrics::global();
        json!({
            "services": services,
            "streams": streams,
            "groups": groups,
            "dead_letters": cluster.dead_letters,
            "records_per_second": cluster.records_per_second,
            "errors": metrics.errors_seen.get(),
            "alerts": cluster.alerts,
            "chaos": active,
            "sampled_at": cluster.sampled_at,
        })
    }

    /// `/`, `/assets/chart.umd.js`, `/ws`, `/api/snapshot`, `POST /api/chaos`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(|| async { Html(PAGE) }))
            .route(
                "/assets/chart.umd.js",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                        CHART_JS,
                    )
                }),
            )
            .route("/ws", get(websocket))
            .route("/api/snapshot", get(snapshot))
            .route("/api/chaos", post(chaos))
            .route("/health", get(|| async { "ok" }))
            .with_state(self)
    }
}

async fn snapshot(State(dashboard): State<Dashboard>) -> Json<serde_json::Value> {
    Json(dashboard.snapshot())
}

async fn websocket(State(dashboard): State<Dashboard>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| serve_socket(socket, dashboard))
}

async fn serve_socket(mut socket: WebSocket, dashboard: Dashboard) {
    let mut snapshots = dashboard.snapshots.clone();
    let first = dashboard.snapshot().to_string();
    if socket.send(Message::Text(first.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    return;
                }
                let text = snapshots.borrow_and_update().as_str().to_owned();
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The answer to a chaos request.
#[derive(Debug, Serialize)]
struct ChaosAnswer {
    started: Scenario,
    active: BTreeMap<&'static str, String>,
}

async fn chaos(
    State(dashboard): State<Dashboard>,
    caller: Authenticated,
    JsonBody(scenario): JsonBody<Scenario>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let unknown = |name: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no service {name:?} runs here"),
        )
    };
    let check_seconds = |seconds: u64| {
        if (1..=600).contains(&seconds) {
            Ok(Duration::from_secs(seconds))
        } else {
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "seconds must be between 1 and 600",
            ))
        }
    };
    match &scenario {
        Scenario::Stop { service, seconds } => {
            let found = Chaos::service(service)
                .filter(|s| dashboard.services.contains(s))
                .ok_or_else(|| unknown(service))?;
            dashboard
                .chaos
                .faults(found)
                .stop_for(check_seconds(*seconds)?);
        }
        Scenario::Degrade {
            service,
            latency_ms,
            drop_rate,
            seconds,
        } => {
            let found = Chaos::service(service)
                .filter(|s| dashboard.services.contains(s))
                .ok_or_else(|| unknown(service))?;
            if !(0.0..=1.0).contains(drop_rate) || *latency_ms > 10_000 {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "drop_rate must be within 0..=1 and latency_ms at most 10000",
                ));
            }
            dashboard.chaos.faults(found).degrade_for(
                Duration::from_millis(*latency_ms),
                *drop_rate,
                check_seconds(*seconds)?,
            );
        }
        Scenario::RestartStreams { application_id } => {
            let app = dashboard
                .streams
                .iter()
                .find(|a| &a.application_id == application_id)
                .cloned()
                .ok_or_else(|| unknown(application_id))?;
            tokio::task::spawn_blocking(move || {
                if let Err(e) = app.restart() {
                    tracing::error!("restarting {}: {e}", app.application_id);
                }
            });
        }
        Scenario::Clear => dashboard.chaos.clear(),
    }
    let answer = ChaosAnswer {
        started: scenario,
        active: dashboard.chaos.active(),
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// Applies every change of key-value store `store` of `app` to the tables.
async fn follow_kv<V: 'static>(
    app: Arc<StreamsApp>,
    store: &'static str,
    tables: Arc<Mutex<Tables>>,
    apply: fn(&mut Tables, String, Option<V>),
) {
    app.follow_table(store, |key, value| {
        let mut t = tables.lock().expect("dashboard tables");
        apply(&mut t, key, value);
        t.changes += 1;
        std::future::ready(())
    })
    .await
}

/// Applies every change of window store `store` of `app` to the tables.
async fn follow_window<V: 'static>(
    app: Arc<StreamsApp>,
    store: &'static str,
    tables: Arc<Mutex<Tables>>,
    apply: fn(&mut Tables, String, i64, Option<V>),
) {
    app.follow_windows(store, |key, start, value| {
        let mut t = tables.lock().expect("dashboard tables");
        apply(&mut t, key, start, value);
        t.changes += 1;
        std::future::ready(())
    })
    .await
}

/// A table's row changed: stored, or removed when deleted.
fn upsert<V>(rows: &mut BTreeMap<String, V>, key: String, value: Option<V>) {
    match value {
        Some(value) => {
            rows.insert(key, value);
        }
        None => {
            rows.remove(&key);
        }
    }
}
