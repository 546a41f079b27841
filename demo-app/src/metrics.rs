//! Prometheus metrics of the shop: what every service's `/metrics` serves.
//!
//! Counters that code all over the shop bumps live in one process-wide [`ShopMetrics`]
//! ([`global`]): records handled and failed per consumer group, dead-lettered records,
//! orders and revenue (orders per hour: `increase(shop_orders_created_total[1h])`). Gauges
//! the [monitor](crate::monitor) samples from the cluster
//! (consumer lag per group, dead-letter topic depth, records per second) live there too.
//! [`MetricsRegistry`] is one process's registry: the shop's metrics plus each streams app's
//! kstreams metrics (prefixed with the app's id), encoded in the text format.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};

use kstreams::prometheus_client::encoding::text::encode;
use kstreams::prometheus_client::metrics::counter::Counter;
use kstreams::prometheus_client::metrics::family::Family;
use kstreams::prometheus_client::metrics::gauge::Gauge;
use kstreams::prometheus_client::registry::Registry;

use crate::streams::StreamsApp;

/// Label pairs.
pub type Labels = Vec<(String, String)>;

/// The shop's own metrics.
#[derive(Clone, Default)]
pub struct ShopMetrics {
    /// Records a consumer group handled, by group and topic.
    pub records_handled: Family<Labels, Counter>,
    /// Failed attempts to handle a record, by group and kind (`transient`, `poison`).
    pub handle_errors: Family<Labels, Counter>,
    /// Every failed attempt, of any group (for the error-rate alert; not exported).
    pub errors_seen: Counter,
    /// Records moved to a dead-letter topic by the consumer loop, by group.
    pub dead_lettered: Family<Labels, Counter>,
    /// Orders accepted by the order API, by A/B variant.
    pub orders_created: Family<Labels, Counter>,
    /// Revenue of accepted orders in cents, by A/B variant.
    pub revenue_cents: Family<Labels, Counter>,
    /// Consumer lag by group (sampled).
    pub consumer_lag: Family<Labels, Gauge>,
    /// Consumer lag in time by group: the age of its oldest uncommitted record (sampled).
    pub consumer_lag_seconds: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Records in each dead-letter topic (sampled).
    pub dead_letter_depth: Family<Labels, Gauge>,
    /// Records written per second to the shop's topics (sampled).
    pub records_per_second: Gauge<f64, AtomicU64>,
}

/// The process-wide metrics.
pub fn global() -> &'static ShopMetrics {
    static METRICS: OnceLock<ShopMetrics> = OnceLock::new();
    METRICS.get_or_init(ShopMetrics::default)
}

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One process's metrics: the shop's and those of the streams apps running here.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    streams: Arc<RwLock<Vec<Arc<StreamsApp>>>>,
}

impl MetricsRegistry {
    /// A registry of the shop's metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a streams app's kstreams metrics (prefixed with its application id).
    pub fn register_streams(&self, app: Arc<StreamsApp>) {
        self.streams.write().expect("metrics registry").push(app);
    }

    fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        let shop = registry.sub_registry_with_prefix("shop");
        let m = global().clone();
        shop.register(
            "records_handled",
            "Records handled by a consumer group",
            m.records_handled,
        );
        shop.register(
            "handle_errors",
            "Failed attempts to handle a record",
            m.handle_errors,
        );
        shop.register(
            "dead_lettered",
            "Records moved to a dead-letter topic",
            m.dead_lettered,
        );
        shop.register(
            "orders_created",
            "Orders accepted by the order API",
            m.orders_created,
        );
        shop.register(
            "revenue_cents",
            "Revenue of accepted orders, in cents",
            m.revenue_cents,
        );
        shop.register(
            "consumer_lag",
            "Records not yet consumed, by consumer group",
            m.consumer_lag,
        );
        shop.register(
            "consumer_lag_seconds",
            "Age in seconds of the oldest record a consumer group has not committed",
            m.consumer_lag_seconds,
        );
        shop.register(
            "dead_letter_depth",
            "Records in a dead-letter topic",
            m.dead_letter_depth,
        );
        shop.register(
            "records_per_second",
            "Records written per second to the shop's topics",
            m.records_per_second,
        );
        // Built per scrape, so a restarted app's new instance is what is reported.
        for app in self.streams.read().expect("metrics registry").iter() {
            let prefix = app.application_id.replace('-', "_");
            app.with(|streams| streams.register_metrics(registry.sub_registry_with_prefix(prefix)));
        }
        registry
    }

    /// The text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry()).expect("writing to a String cannot fail");
        out
    }

    /// A `GET /metrics` route serving this registry.
    pub fn router(&self) -> axum::Router {
        let registry = self.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        registry.encode(),
                    )
                }
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_encodes_the_shop_metrics() {
        global()
            .orders_created
            .get_or_create(&labels(&[("variant", "A")]))
            .inc();
        let text = MetricsRegistry::new().encode();
        assert!(
            text.contains("shop_orders_created_total{variant=\"A\"}"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE shop_records_per_second gauge"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
