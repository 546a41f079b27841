//! Inventory monitoring: stock levels as a table, low-stock alerts, stale reservations.
//!
//! ```text
//! inventory-events ─StockLevelChanged─▶ group_by_key ─aggregate─▶ stock-levels (table)
//!                                          └─ crossed its threshold ─▶ LowStockAlert ─▶ notification-events
//! inventory-events ─InventoryReserved / ReservationReleased─┐ (keyed by order id)
//! order-events ─PAID / CANCELLED / REJECTED─select_key─▶ repartition ─┴─merge─▶ StaleReservations
//!                                      (pending-reservations store, wall-clock punctuation)
//!                                          └─ pending longer than the limit ─▶ StaleReservation ─▶ notification-events
//! ```
//!
//! A low-stock alert goes out once when a product's available stock falls to or below its
//! threshold, and again only after a restock lifted it above. [`mirror_to_cache`] copies
//! every change of the stock table into the [`Cache`] (Redis or in-process).

use std::time::Duration;

use kstreams::dsl::{Consumed, Grouped, Materialized, Produced, Repartitioned, StreamsBuilder};
use kstreams::processor::{Processor, ProcessorContext, Punctuation, PunctuationType, Record};
use kstreams::serde::Serdes;
use kstreams::state::{KeyValueStore, Stores};
use kstreams::topology::Topology;
use kstreams::{BoxError, TopologyError};
use serde::{Deserialize, Serialize};

use super::{derived_event, event_time, events, StreamsApp};
use crate::cache::Cache;
use crate::events::{topics, Envelope, InventoryEvent, NotificationEvent, OrderEvent, OrderStatus};

/// The application id.
pub const APPLICATION_ID: &str = "shop-inventory-monitor";
/// Stock level per product: product id → [`StockLevel`].
pub const STOCK_STORE: &str = "inventory-stock-levels";
/// Reservations not yet settled: order id → [`PendingReservation`].
pub const PENDING_STORE: &str = "inventory-pending-reservations";

/// A product's stock as the monitor sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// Units that can be sold.
    pub available: i64,
    /// Units held by reservations.
    pub reserved: i64,
    /// At or below this, stock is low.
    pub threshold: i64,
    /// Whether stock is low now.
    pub low: bool,
    /// Whether this update made it low (an alert went out).
    pub became_low: bool,
    /// Event time of the update (ms).
    pub updated_at: i64,
}

/// A reservation the monitor watches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReservation {
    /// When stock was reserved (ms), once seen.
    pub reserved_at: Option<i64>,
    /// When the order was paid, cancelled or rejected, or the reservation released (ms).
    pub settled_at: Option<i64>,
    /// Whether the stale alert went out.
    pub alerted: bool,
}

/// What happened to a reservation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationSignal {
    /// Stock was reserved for the order.
    Reserved {
        /// When (ms).
        at: i64,
    },
    /// The order no longer holds a pending reservation.
    Settled {
        /// When (ms).
        at: i64,
    },
}

/// How the monitor judges reservations.
#[derive(Clone, Copy, Debug)]
pub struct MonitorRules {
    /// A reservation pending longer than this is stale.
    pub stale_after: Duration,
    /// How often pending reservations are checked (wall clock).
    pub check_every: Duration,
}

impl Default for MonitorRules {
    fn default() -> Self {
        MonitorRules {
            stale_after: Duration::from_secs(120),
            check_every: Duration::from_secs(5),
        }
    }
}

/// Builds the inventory monitoring topology.
pub fn topology(rules: MonitorRules) -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    let string = Serdes::string;
    let inventory = builder.stream_with(
        topics::INVENTORY,
        Consumed::with(string(), events::<InventoryEvent>()).with_timestamp_extractor(event_time),
    );

    // Stock levels, and the moment each product runs low.
    let levels = inventory
        .flat_map_values(|event| match event.event {
            InventoryEvent::StockLevelChanged {
                available,
                reserved,
                threshold,
                ..
            } => Some(StockLevel {
                available,
                reserved,
                threshold,
                updated_at: event.occurred_at.timestamp_millis(),
                ..StockLevel::default()
            }),
            _ => None,
        })
        .group_by_key_with(Grouped::with(string(), Serdes::postcard::<StockLevel>()))
        .aggregate_with(
            StockLevel::default,
            |_, update, previous| {
                let low = update.available <= update.threshold;
                StockLevel {
                    low,
                    became_low: low && !previous.low,
                    ..update
                }
            },
            Materialized::with(string(), Serdes::postcard()).with_name(STOCK_STORE),
        );
    levels
        .to_stream()
        .flat_map(|product: String, level: Option<StockLevel>| {
            level.filter(|l| l.became_low).map(|level| {
                let alert = NotificationEvent::LowStockAlert {
                    product_id: product.clone(),
                    available: level.available,
                    threshold: level.threshold,
                };
                let seed = format!("low-stock:{product}:{}", level.updated_at);
                (product, derived_event(alert, &seed, level.updated_at))
            })
        })
        .to_with(
            topics::NOTIFICATIONS,
            Produced::with(string(), events::<NotificationEvent>()),
        );

    // Reservations: reserved (inventory events, keyed by order id) until settled.
    let reservations = inventory.flat_map_values(|event| {
        let at = event.occurred_at.timestamp_millis();
        match event.event {
            InventoryEvent::InventoryReserved { .. } => Some(ReservationSignal::Reserved { at }),
            InventoryEvent::ReservationReleased { .. } => Some(ReservationSignal::Settled { at }),
            _ => None,
        }
    });
    let settlements = builder
        .stream_with(
            topics::ORDERS,
            Consumed::with(string(), events::<OrderEvent>()).with_timestamp_extractor(event_time),
        )
        .flat_map(|_, event: Envelope<OrderEvent>| match &event.event {
            OrderEvent::OrderStatusChanged {
                order_id,
                to: OrderStatus::Paid | OrderStatus::Cancelled | OrderStatus::Rejected,
                ..
            } => Some((
                order_id.clone(),
                ReservationSignal::Settled {
                    at: event.occurred_at.timestamp_millis(),
                },
            )),
            _ => None,
        })
        .repartition_with(
            Repartitioned::with(string(), Serdes::postcard()).with_name("settlements-by-order"),
        );
    builder.add_state_store(Stores::key_value_store_builder_with(
        PENDING_STORE,
        string(),
        Serdes::postcard::<PendingReservation>(),
    ));
    reservations
        .merge(&settlements)
        .process(
            move || StaleReservations { rules, store: None },
            &[PENDING_STORE],
        )
        .to_with(
            topics::NOTIFICATIONS,
            Produced::with(string(), events::<NotificationEvent>()),
        );

    builder.build()
}

/// Watches reservations and reports those pending longer than the rules allow.
struct StaleReservations {
    rules: MonitorRules,
    store: Option<KeyValueStore<String, PendingReservation>>,
}

impl StaleReservations {
    fn store(&self) -> Result<&KeyValueStore<String, PendingReservation>, BoxError> {
        self.store
            .as_ref()
            .ok_or_else(|| "the pending-reservations store is not initialized".into())
    }
}

impl Processor<String, ReservationSignal, String, Envelope<NotificationEvent>>
    for StaleReservations
{
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Envelope<NotificationEvent>>,
    ) -> Result<(), BoxError> {
        self.store = Some(ctx.key_value_store(PENDING_STORE)?);
        ctx.schedule(self.rules.check_every, PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, Envelope<NotificationEvent>>,
        record: Record<String, ReservationSignal>,
    ) -> Result<(), BoxError> {
        let store = self.store()?;
        let mut pending = store.get(&record.key)?.unwrap_or_default();
        match record.value {
            ReservationSignal::Reserved { at } => pending.reserved_at = Some(at),
            // A settlement may overtake its reservation (they come from different topics):
            // keep it, so the late reservation is known to be settled.
            ReservationSignal::Settled { at } => pending.settled_at = Some(at),
        }
        store.put(&record.key, &pending)?;
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Envelope<NotificationEvent>>,
        punctuation: Punctuation,
    ) -> Result<(), BoxError> {
        let now = punctuation.timestamp;
        let limit = self.rules.stale_after.as_millis() as i64;
        let store = self.store()?;
        for (order_id, mut pending) in store.all()? {
            match (pending.reserved_at, pending.settled_at) {
                // Settled: forget it once a late reservation can no longer be expected.
                (_, Some(settled)) if now - settled > limit => {
                    store.delete(&order_id)?;
                }
                (_, Some(_)) => {}
                (Some(reserved), None) if !pending.alerted && now - reserved >= limit => {
                    let alert = NotificationEvent::StaleReservation {
                        order_id: order_id.clone(),
                        pending_secs: (now - reserved) / 1000,
                    };
                    let event = derived_event(alert, &format!("stale:{order_id}"), now);
                    ctx.forward(Record::new(order_id.clone(), event, now))?;
                    pending.alerted = true;
                    store.put(&order_id, &pending)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The cache key of a product's stock level.
pub fn cache_key(product_id: &str) -> String {
    format!("stock:{product_id}")
}

/// Copies the stock table into `cache`: everything the app holds once it runs, then every
/// change as it happens; again after the app restarts. Runs until the task is dropped.
pub async fn mirror_to_cache(app: std::sync::Arc<StreamsApp>, cache: Cache) {
    app.follow_table(STOCK_STORE, |product, level: Option<StockLevel>| {
        let cache = cache.clone();
        async move { write_level(&cache, &product, level.as_ref()).await }
    })
    .await
}

async fn write_level(cache: &Cache, product: &str, level: Option<&StockLevel>) {
    let key = cache_key(product);
    let result = match level {
        Some(level) => {
            let json = serde_json::json!({
                "product_id": product,
                "available": level.available,
                "reserved": level.reserved,
                "threshold": level.threshold,
                "low": level.low,
                "updated_at": level.updated_at,
            });
            cache.set(&key, &json.to_string()).await
        }
        None => cache.delete(&key).await,
    };
    if let Err(e) = result {
        tracing::warn!("inventory monitor: cannot write {key} to the cache: {e}");
    }
}

#[cfg(test)]
mod tests {
    use kstreams::config::StreamsConfig;
    use kstreams::testing::TestDriver;

    use super::*;

    fn level(product: &str, available: i64, threshold: i64) -> Envelope<InventoryEvent> {
        Envelope::new(InventoryEvent::StockLevelChanged {
            product_id: product.into(),
            available,
            reserved: 0,
            threshold,
        })
    }

    fn setup(rules: MonitorRules) -> TestDriver {
        TestDriver::new(
            &topology(rules).unwrap(),
            StreamsConfig::new(APPLICATION_ID),
        )
        .unwrap()
    }

    #[test]
    fn low_stock_alerts_fire_once_per_crossing() {
        let driver = setup(MonitorRules::default());
        let inventory =
            driver.create_input_topic_with(topics::INVENTORY, Serdes::string(), events());
        let alerts = driver.create_output_topic_with(
            topics::NOTIFICATIONS,
            Serdes::string(),
            events::<NotificationEvent>(),
        );
        for (available, t) in [(20, 1), (6, 2), (5, 3), (3, 4), (50, 5), (4, 6)] {
            inventory.pipe_input_at("SKU-1".into(), level("SKU-1", available, 5), t);
        }
        let fired: Vec<i64> = alerts
            .read_values_to_list()
            .into_iter()
            .map(|e| match e.event {
                NotificationEvent::LowStockAlert { available, .. } => available,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(fired, vec![5, 4], "at the crossing, and after the restock");
        let stock = driver
            .timestamped_key_value_store::<String, StockLevel>(STOCK_STORE)
            .unwrap();
        let now = stock.get(&"SKU-1".into()).unwrap().unwrap().value;
        assert_eq!(now.available, 4);
        assert!(now.low);
    }

    fn reserved(order: &str) -> Envelope<InventoryEvent> {
        Envelope::new(InventoryEvent::InventoryReserved {
            order_id: order.into(),
            customer_id: "c-1".into(),
            items: vec![],
        })
    }

    #[test]
    fn reservations_pending_too_long_are_reported_once() {
        let rules = MonitorRules {
            stale_after: Duration::from_secs(60),
            check_every: Duration::from_secs(5),
        };
        let driver = setup(rules);
        let start = driver.wall_clock_time();
        let inventory =
            driver.create_input_topic_with(topics::INVENTORY, Serdes::string(), events());
        let orders = driver.create_input_topic_with(topics::ORDERS, Serdes::string(), events());
        let alerts = driver.create_output_topic_with(
            topics::NOTIFICATIONS,
            Serdes::string(),
            events::<NotificationEvent>(),
        );
        let with_time = |mut e: Envelope<InventoryEvent>| {
            e.occurred_at = chrono::DateTime::from_timestamp_millis(start).unwrap();
            e
        };
        inventory.pipe_input_at("o-stale".into(), with_time(reserved("o-stale")), start);
        inventory.pipe_input_at("o-paid".into(), with_time(reserved("o-paid")), start);
        let mut paid = Envelope::new(OrderEvent::OrderStatusChanged {
            order_id: "o-paid".into(),
            customer_id: "c-1".into(),
            from: OrderStatus::Reserved,
            to: OrderStatus::Paid,
            reason: None,
        });
        paid.occurred_at = chrono::DateTime::from_timestamp_millis(start + 1).unwrap();
        orders.pipe_input_at("c-1".into(), paid, start + 1);

        driver
            .advance_wall_clock_time(Duration::from_secs(30))
            .unwrap();
        assert!(alerts.is_empty(), "not stale yet");
        driver
            .advance_wall_clock_time(Duration::from_secs(35))
            .unwrap();
        let fired: Vec<String> = alerts
            .read_values_to_list()
            .into_iter()
            .map(|e| match e.event {
                NotificationEvent::StaleReservation {
                    order_id,
                    pending_secs,
                } => {
                    assert!(pending_secs >= 60);
                    order_id
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(fired, vec!["o-stale".to_owned()]);
        driver
            .advance_wall_clock_time(Duration::from_secs(60))
            .unwrap();
        assert!(alerts.is_empty(), "reported once");
    }
}
