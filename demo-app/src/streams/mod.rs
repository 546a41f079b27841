//! The shop's three kstreams applications and what they share.
//!
//! * [`analytics`]: orders enriched with their customer (stream–table join), sales per hour
//!   (tumbling windows) and per minute (hopping windows) per product and A/B variant, order
//!   states and variant conversion; written to the analytics tables of the database.
//! * [`inventory_monitor`]: stock levels per product as a table mirrored to the cache
//!   (Redis or in-process), low-stock alerts, reservations pending for too long.
//! * [`fraud`]: per-customer spend and order velocity in a window store, new device and new
//!   address signals, a score with reasons; alerts to `notification-events`.
//!
//! Each is an ordinary kstreams topology, built by a function that tests run on the
//! in-memory [`TestDriver`](kstreams::testing::TestDriver), and run here by
//! [`StreamsApp::start`] on the shop's cluster. They read the shop's JSON events through
//! [`EventSerde`] (which upcasts old schema versions) and send records they cannot read to
//! their dead-letter topic with the reason in its headers.

pub mod analytics;
pub mod fraud;
pub mod inventory_monitor;

use std::future::Future;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kstreams::config::{ErrorPolicy, ProcessingGuarantee, StreamsConfig};
use kstreams::kafka::{KafkaStreams, State};
use kstreams::serde::{Serde, SerdeError, SerdeRef};
use kstreams::state::StoreError;
use kstreams::topology::Topology;
use kstreams::StreamsError;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;
use uuid::Uuid;

use crate::events::{Envelope, Event};

/// Reads and writes shop events ([`Envelope`]s) as the services do: JSON, any known schema
/// version, old versions upcast.
pub struct EventSerde<E>(PhantomData<fn() -> E>);

impl<E: Event + 'static> Serde<Envelope<E>> for EventSerde<E> {
    fn serialize(&self, value: &Envelope<E>) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(value.to_bytes()))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Envelope<E>, SerdeError> {
        let bytes = bytes.ok_or(SerdeError::UnexpectedNull)?;
        Envelope::from_bytes(bytes).map_err(|e| SerdeError::Custom(e.to_string()))
    }
}

/// The serde of a topic of `E` events.
pub fn events<E: Event + 'static>() -> SerdeRef<Envelope<E>> {
    Arc::new(EventSerde::<E>(PhantomData))
}

/// The event time of an event: when it happened, not when it was written.
pub fn event_time<K, E>(_: &K, event: &Envelope<E>, _record_time: i64) -> i64 {
    event.occurred_at.timestamp_millis()
}

/// An event derived from an input record, with an id that depends only on `seed`: when a
/// streams app reprocesses the record (at-least-once after a crash) it writes the same event
/// id again, and idempotent consumers drop the copy.
pub fn derived_event<E: Event>(event: E, seed: &str, at_millis: i64) -> Envelope<E> {
    let mut envelope = Envelope::new(event);
    envelope.event_id = Uuid::new_v5(&Uuid::NAMESPACE_OID, seed.as_bytes());
    if let Some(at) = chrono::DateTime::from_timestamp_millis(at_millis) {
        envelope.occurred_at = at;
    }
    envelope
}

/// Money in cents: exact, and compact in stores.
pub fn cents(amount: rust_decimal::Decimal) -> i64 {
    use rust_decimal::prelude::ToPrimitive;
    (amount * rust_decimal::Decimal::ONE_HUNDRED)
        .round()
        .to_i64()
        .unwrap_or(i64::MAX)
}

/// Cents as a decimal amount.
pub fn amount(cents: i64) -> rust_decimal::Decimal {
    rust_decimal::Decimal::new(cents, 2)
}

/// Where and how the streams apps run.
#[derive(Clone, Debug)]
pub struct StreamsSettings {
    /// The cluster.
    pub bootstrap_servers: String,
    /// State stores live under `<state_dir>/<application id>`.
    pub state_dir: PathBuf,
    /// Exactly-once when the cluster has transactions, at-least-once otherwise.
    pub guarantee: ProcessingGuarantee,
    /// librdkafka settings for every client (security, timeouts).
    pub client_overrides: Vec<(String, String)>,
    /// How often results are committed (and forwarded out of the store caches).
    pub commit_interval: Duration,
}

impl StreamsSettings {
    /// The kstreams configuration of application `application_id`.
    pub fn config(&self, application_id: &str) -> StreamsConfig {
        let mut config = StreamsConfig::new(application_id)
            .with_bootstrap_servers(&self.bootstrap_servers)
            .with_state_dir(&self.state_dir)
            .with_processing_guarantee(self.guarantee)
            .with_commit_interval(self.commit_interval)
            .deserialization_policy(ErrorPolicy::DeadLetter)
            .processing_policy(ErrorPolicy::DeadLetter);
        for (key, value) in &self.client_overrides {
            config = config.with_client_override(key, value);
        }
        config
    }
}

/// Whether the cluster at `client` runs transactions: a transactional producer initializes,
/// begins and commits an empty transaction. Blocks up to `timeout` (call it from a blocking
/// task).
pub fn supports_transactions(client: &ClientConfig, timeout: Duration) -> bool {
    let producer: BaseProducer = match client
        .clone()
        .set(
            "transactional.id",
            format!("shop-transaction-probe-{}", Uuid::new_v4()),
        )
        .create()
    {
        Ok(producer) => producer,
        Err(_) => return false,
    };
    producer.init_transactions(timeout).is_ok()
        && producer.begin_transaction().is_ok()
        && producer.commit_transaction(timeout).is_ok()
}

/// The guarantee the shop's streams apps run with on `client`'s cluster.
pub fn detect_guarantee(client: &ClientConfig) -> ProcessingGuarantee {
    if supports_transactions(client, Duration::from_secs(10)) {
        ProcessingGuarantee::ExactlyOnce
    } else {
        ProcessingGuarantee::AtLeastOnce
    }
}

/// A running streams application that can be killed and started again (chaos), its state
/// restored from its changelog topics.
pub struct StreamsApp {
    /// Its application id (also its consumer group).
    pub application_id: String,
    topology: Topology,
    settings: StreamsSettings,
    streams: Mutex<Option<KafkaStreams>>,
    restarts: AtomicU64,
}

impl StreamsApp {
    /// Starts `topology` as `application_id`. Blocks while it checks and creates topics
    /// (call it from a blocking task).
    pub fn start(
        application_id: &str,
        topology: Topology,
        settings: &StreamsSettings,
    ) -> Result<StreamsApp, StreamsError> {
        let streams = Self::launch(application_id, &topology, settings)?;
        Ok(StreamsApp {
            application_id: application_id.to_owned(),
            topology,
            settings: settings.clone(),
            streams: Mutex::new(Some(streams)),
            restarts: AtomicU64::new(0),
        })
    }

    fn launch(
        application_id: &str,
        topology: &Topology,
        settings: &StreamsSettings,
    ) -> Result<KafkaStreams, StreamsError> {
        let mut streams = KafkaStreams::new(topology, settings.config(application_id));
        streams.start()?;
        Ok(streams)
    }

    /// Runs `f` on the running instance (stores, subscriptions, metrics); `None` while it
    /// restarts or after it was closed. Keep `f` short: it holds the app's lock.
    pub fn with<R>(&self, f: impl FnOnce(&KafkaStreams) -> R) -> Option<R> {
        self.streams.lock().expect("streams app").as_ref().map(f)
    }

    /// Its state, `None` when not running.
    pub fn state(&self) -> Option<State> {
        self.with(|s| s.state())
    }

    /// Whether it is processing (or restoring), as opposed to failed or stopped.
    pub fn is_healthy(&self) -> bool {
        matches!(self.state(), Some(State::Running | State::Rebalancing))
    }

    /// How often it was restarted.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Stops the instance and starts a new one with the same application id, which restores
    /// its stores from their changelog topics (in-memory stores in full). Blocks.
    pub fn restart(&self) -> Result<(), StreamsError> {
        self.close();
        let streams = Self::launch(&self.application_id, &self.topology, &self.settings)?;
        *self.streams.lock().expect("streams app") = Some(streams);
        self.restarts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Follows key-value store `store`: `on_change(key, Some(value))` for every entry once
    /// the store answers (its tasks restored), then for every change as it happens (`None`
    /// for a delete); after a restart the same again on the new instance. Runs until the
    /// task is dropped.
    pub async fn follow_table<V: 'static, F, Fut>(&self, store: &str, mut on_change: F)
    where
        F: FnMut(String, Option<V>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let load = |s: &KafkaStreams| {
            s.store::<String, V>(store)
                .and_then(|st| st.all())
                .map(|all| all.into_iter().map(|(k, v)| (k, None, v)).collect())
        };
        self.follow(store, load, |key, _, value| on_change(key, value))
            .await
    }

    /// Follows window store `store` like [`follow_table`](Self::follow_table), with each
    /// entry's window start; the first read covers windows starting in the last 26 hours.
    pub async fn follow_windows<V: 'static, F, Fut>(&self, store: &str, mut on_change: F)
    where
        F: FnMut(String, i64, Option<V>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let load = |s: &KafkaStreams| {
            let now = chrono::Utc::now().timestamp_millis();
            s.window_store::<String, V>(store)
                .and_then(|st| st.fetch_all(now - 26 * 3_600_000, now + 3_600_000))
                .map(|all| {
                    all.into_iter()
                        .map(|(k, start, v)| (k, Some(start), v))
                        .collect()
                })
        };
        self.follow(store, load, |key, start, value| {
            let call = start.map(|start| on_change(key, start, value));
            async move {
                if let Some(call) = call {
                    call.await;
                }
            }
        })
        .await
    }

    async fn follow<V: 'static, L, F, Fut>(&self, store: &str, load: L, mut on_change: F)
    where
        L: Fn(&KafkaStreams) -> Result<Vec<(String, Option<i64>, V)>, StoreError>,
        F: FnMut(String, Option<i64>, Option<V>) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            // Subscribe first, then read: nothing written in between is missed (a change
            // seen twice is applied twice, which upserts allow).
            if let Some(Ok(mut changes)) = self.with(|s| s.subscribe::<String, V>(store)) {
                loop {
                    match self.with(&load) {
                        Some(Ok(all)) => {
                            for (key, window, value) in all {
                                on_change(key, window, Some(value)).await;
                            }
                            break;
                        }
                        // Not restored yet.
                        Some(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                        None => break,
                    }
                }
                // Ends when the instance closes.
                while let Some(change) = changes.next().await {
                    match change {
                        Ok(change) => {
                            on_change(change.key, change.window_start, change.value).await
                        }
                        Err(e) => tracing::warn!(
                            "{}: unreadable change of {store}: {e}",
                            self.application_id
                        ),
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops it: commits, closes the stores, ends subscriptions. Blocks (call it from a
    /// blocking task).
    pub fn close(&self) {
        let taken = self.streams.lock().expect("streams app").take();
        if let Some(mut streams) = taken {
            streams.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{OrderEvent, OrderStatus};

    #[test]
    fn event_serde_reads_what_services_write_and_rejects_garbage() {
        let serde = events::<OrderEvent>();
        let event = Envelope::new(OrderEvent::OrderStatusChanged {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            from: OrderStatus::Created,
            to: OrderStatus::Reserved,
            reason: None,
        });
        let bytes = serde.serialize(&event).unwrap().unwrap();
        assert_eq!(serde.deserialize(Some(&bytes)).unwrap(), event);
        assert!(serde.deserialize(Some(b"{}")).is_err());
        assert!(serde.deserialize(None).is_err());
    }

    #[test]
    fn derived_events_have_stable_ids() {
        let event = || crate::events::NotificationEvent::LowStockAlert {
            product_id: "SKU-1".into(),
            available: 1,
            threshold: 5,
        };
        let a = derived_event(event(), "low-stock:SKU-1:42", 42);
        let b = derived_event(event(), "low-stock:SKU-1:42", 42);
        let c = derived_event(event(), "low-stock:SKU-1:43", 43);
        assert_eq!(a.event_id, b.event_id);
        assert_ne!(a.event_id, c.event_id);
        assert_eq!(a.occurred_at.timestamp_millis(), 42);
    }

    #[test]
    fn cents_are_exact() {
        use std::str::FromStr;
        let d = rust_decimal::Decimal::from_str("19.99").unwrap();
        assert_eq!(cents(d), 1999);
        assert_eq!(amount(1999), d);
    }
}
