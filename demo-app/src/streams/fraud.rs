//! Fraud detection: every new order is scored against the customer's recent history.
//!
//! ```text
//! order-events ─OrderCreated (keyed by customer)─▶ FraudScorer ──score ≥ alert_at──▶ FraudAlert ─▶ notification-events
//!                      │ fraud-recent-orders (window store: the customer's orders, by time)
//!                      │ fraud-customer-profiles (devices and addresses seen before)
//!                      └ fraud-alerts (order id → verdict, for the dashboard)
//! ```
//!
//! Signals, each with points and a reason a person can read: spend in the last hour over a
//! limit, too many orders in ten minutes, one very large order, a device or a shipping
//! address the customer has not used before (for customers with earlier orders). The rules
//! ([`FraudRules`]) are data: the binary reads them from a JSON file (`--fraud-rules`). The
//! payment service holds the payment of every order with an alert until an admin releases
//! it.

use std::time::Duration;

use kstreams::dsl::{Consumed, Produced, StreamsBuilder};
use kstreams::processor::{Processor, ProcessorContext, Punctuation, PunctuationType, Record};
use kstreams::serde::Serdes;
use kstreams::state::{KeyValueStore, Stores, WindowStore};
use kstreams::topology::Topology;
use kstreams::{BoxError, TopologyError};
use serde::{Deserialize, Serialize};

use super::{amount, cents, derived_event, event_time, events};
use crate::events::{topics, Address, Envelope, NotificationEvent, OrderEvent};

/// The application id.
pub const APPLICATION_ID: &str = "shop-fraud-detection";
/// Each customer's orders by time: customer id → amount in cents, at the order's time.
pub const RECENT_ORDERS_STORE: &str = "fraud-recent-orders";
/// Devices and addresses each customer used: customer id → [`CustomerProfile`].
pub const PROFILES_STORE: &str = "fraud-customer-profiles";
/// Alerts of the last day: order id → [`FraudVerdict`].
pub const ALERTS_STORE: &str = "fraud-alerts";

/// The scoring rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FraudRules {
    /// The window of the spend rule, in seconds.
    pub spend_window_secs: u64,
    /// Spend in that window above this (cents) scores `spend_points`.
    pub max_spend_cents: i64,
    /// Points of the spend rule.
    pub spend_points: u32,
    /// The window of the velocity rule, in seconds.
    pub velocity_window_secs: u64,
    /// More orders than this in that window score `velocity_points`.
    pub max_orders: u32,
    /// Points of the velocity rule.
    pub velocity_points: u32,
    /// One order above this (cents) scores `large_order_points`.
    pub large_order_cents: i64,
    /// Points of the large-order rule.
    pub large_order_points: u32,
    /// Points for a device the customer has not ordered from before.
    pub new_device_points: u32,
    /// Points for a shipping address the customer has not used before.
    pub new_address_points: u32,
    /// A score at or above this raises an alert and holds the payment.
    pub alert_at: u32,
}

impl Default for FraudRules {
    fn default() -> Self {
        FraudRules {
            spend_window_secs: 3600,
            max_spend_cents: 500_000,
            spend_points: 40,
            velocity_window_secs: 600,
            max_orders: 8,
            velocity_points: 30,
            large_order_cents: 80_000,
            large_order_points: 25,
            new_device_points: 20,
            new_address_points: 20,
            alert_at: 50,
        }
    }
}

impl FraudRules {
    fn retention(&self) -> Duration {
        Duration::from_secs(self.spend_window_secs.max(self.velocity_window_secs) + 60)
    }
}

/// What fraud detection remembers of a customer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfile {
    /// Orders seen.
    pub orders: u64,
    /// Devices ordered from (the most recent few).
    pub devices: Vec<String>,
    /// Shipping addresses used (normalized; the most recent few).
    pub addresses: Vec<String>,
}

/// An order's score and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudVerdict {
    /// Who placed it.
    pub customer_id: String,
    /// The score.
    pub score: u32,
    /// One line per signal that scored.
    pub reasons: Vec<String>,
    /// When the order was placed (ms).
    pub at: i64,
}

/// How many devices and addresses a profile remembers.
const PROFILE_MEMORY: usize = 20;
/// How long alerts stay in [`ALERTS_STORE`].
const ALERT_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// Builds the fraud detection topology.
pub fn topology(rules: FraudRules) -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    let string = Serdes::string;
    builder
        .add_state_store(Stores::window_store_builder_with(
            RECENT_ORDERS_STORE,
            Duration::from_millis(1),
            rules.retention(),
            true,
            string(),
            Serdes::i64(),
        ))
        .add_state_store(Stores::key_value_store_builder_with(
            PROFILES_STORE,
            string(),
            Serdes::postcard::<CustomerProfile>(),
        ))
        .add_state_store(Stores::key_value_store_builder_with(
            ALERTS_STORE,
            string(),
            Serdes::json::<FraudVerdict>(),
        ));
    builder
        .stream_with(
            topics::ORDERS,
            Consumed::with(string(), events::<OrderEvent>()).with_timestamp_extractor(event_time),
        )
        .process(
            move || FraudScorer {
                rules: rules.clone(),
                stores: None,
            },
            &[RECENT_ORDERS_STORE, PROFILES_STORE, ALERTS_STORE],
        )
        .to_with(
            topics::NOTIFICATIONS,
            Produced::with(string(), events::<NotificationEvent>()),
        );
    builder.build()
}

struct ScorerStores {
    recent: WindowStore<String, i64>,
    profiles: KeyValueStore<String, CustomerProfile>,
    alerts: KeyValueStore<String, FraudVerdict>,
}

struct FraudScorer {
    rules: FraudRules,
    stores: Option<ScorerStores>,
}

fn normalized(address: &Address) -> String {
    [
        &address.line1,
        &address.city,
        &address.postal_code,
        &address.country,
    ]
    .iter()
    .map(|part| part.trim().to_lowercase())
    .collect::<Vec<_>>()
    .join("|")
}

fn remember(list: &mut Vec<String>, value: String) {
    list.retain(|v| *v != value);
    list.push(value);
    if list.len() > PROFILE_MEMORY {
        list.remove(0);
    }
}

/// Scores one order. `recent` are the customer's earlier orders as `(time, cents)`.
pub fn score(
    rules: &FraudRules,
    profile: &CustomerProfile,
    recent: &[(i64, i64)],
    at: i64,
    total_cents: i64,
    device: Option<&str>,
    address: Option<&Address>,
) -> (u32, Vec<String>) {
    let mut score = 0;
    let mut reasons = Vec::new();
    let spend_from = at - rules.spend_window_secs as i64 * 1000;
    let spend: i64 = total_cents
        + recent
            .iter()
            .filter(|(t, _)| *t > spend_from)
            .map(|(_, c)| c)
            .sum::<i64>();
    if spend > rules.max_spend_cents {
        score += rules.spend_points;
        reasons.push(format!(
            "spent {} in the last {} min (limit {})",
            amount(spend),
            rules.spend_window_secs / 60,
            amount(rules.max_spend_cents)
        ));
    }
    let velocity_from = at - rules.velocity_window_secs as i64 * 1000;
    let orders = 1 + recent.iter().filter(|(t, _)| *t > velocity_from).count() as u32;
    if orders > rules.max_orders {
        score += rules.velocity_points;
        reasons.push(format!(
            "{orders} orders in {} min (limit {})",
            rules.velocity_window_secs / 60,
            rules.max_orders
        ));
    }
    if total_cents > rules.large_order_cents {
        score += rules.large_order_points;
        reasons.push(format!(
            "order of {} (large above {})",
            amount(total_cents),
            amount(rules.large_order_cents)
        ));
    }
    if profile.orders > 0 {
        if let Some(device) = device {
            if !profile.devices.iter().any(|d| d == device) {
                score += rules.new_device_points;
                reasons.push(format!("new device {device}"));
            }
        }
        if let Some(address) = address {
            if !profile.addresses.contains(&normalized(address)) {
                score += rules.new_address_points;
                reasons.push(format!(
                    "new shipping address in {}, {}",
                    address.city, address.country
                ));
            }
        }
    }
    (score, reasons)
}

impl Processor<String, Envelope<OrderEvent>, String, Envelope<NotificationEvent>> for FraudScorer {
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Envelope<NotificationEvent>>,
    ) -> Result<(), BoxError> {
        self.stores = Some(ScorerStores {
            recent: ctx.window_store(RECENT_ORDERS_STORE)?,
            profiles: ctx.key_value_store(PROFILES_STORE)?,
            alerts: ctx.key_value_store(ALERTS_STORE)?,
        });
        ctx.schedule(Duration::from_secs(60), PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Envelope<NotificationEvent>>,
        record: Record<String, Envelope<OrderEvent>>,
    ) -> Result<(), BoxError> {
        let OrderEvent::OrderCreated {
            order_id,
            customer_id,
            total,
            shipping_address,
            device_id,
            ..
        } = &record.value.event
        else {
            return Ok(());
        };
        let stores = self.stores.as_ref().ok_or("stores are not initialized")?;
        let at = record.timestamp;
        let total_cents = cents(*total);
        let from = at - self.rules.retention().as_millis() as i64;
        let recent = stores.recent.fetch_range(customer_id, from, at)?;
        let mut profile = stores.profiles.get(customer_id)?.unwrap_or_default();
        let (score, reasons) = score(
            &self.rules,
            &profile,
            &recent,
            at,
            total_cents,
            device_id.as_deref(),
            shipping_address.as_ref(),
        );

        stores.recent.put(customer_id, &total_cents, at)?;
        profile.orders += 1;
        if let Some(device) = device_id {
            remember(&mut profile.devices, device.clone());
        }
        if let Some(address) = shipping_address {
            remember(&mut profile.addresses, normalized(address));
        }
        stores.profiles.put(customer_id, &profile)?;

        if score >= self.rules.alert_at {
            let verdict = FraudVerdict {
                customer_id: customer_id.clone(),
                score,
                reasons: reasons.clone(),
                at,
            };
            stores.alerts.put(order_id, &verdict)?;
            let alert = NotificationEvent::FraudAlert {
                customer_id: customer_id.clone(),
                order_id: order_id.clone(),
                score,
                reasons,
            };
            let event = derived_event(alert, &format!("fraud:{order_id}"), at);
            ctx.forward(Record::new(customer_id.clone(), event, at))?;
        }
        Ok(())
    }

    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, Envelope<NotificationEvent>>,
        punctuation: Punctuation,
    ) -> Result<(), BoxError> {
        let stores = self.stores.as_ref().ok_or("stores are not initialized")?;
        for (order_id, verdict) in stores.alerts.all()? {
            if punctuation.timestamp - verdict.at > ALERT_RETENTION_MS {
                stores.alerts.delete(&order_id)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use kstreams::config::StreamsConfig;
    use kstreams::testing::TestDriver;
    use rust_decimal::Decimal;

    use super::*;

    fn order(
        order_id: &str,
        total: &str,
        device: Option<&str>,
        city: Option<&str>,
        at: i64,
    ) -> Envelope<OrderEvent> {
        let mut event = Envelope::new(OrderEvent::OrderCreated {
            order_id: order_id.into(),
            customer_id: "c-1".into(),
            items: vec![],
            total: Decimal::from_str(total).unwrap(),
            currency: "EUR".into(),
            variant: "A".into(),
            shipping_address: city.map(|city| Address {
                line1: "1 Main St".into(),
                city: city.into(),
                postal_code: "1000".into(),
                country: "NL".into(),
            }),
            device_id: device.map(Into::into),
        });
        event.occurred_at = chrono::DateTime::from_timestamp_millis(at).unwrap();
        event
    }

    fn alerts(driver: &TestDriver) -> Vec<(String, u32, Vec<String>)> {
        driver
            .create_output_topic_with(
                topics::NOTIFICATIONS,
                Serdes::string(),
                events::<NotificationEvent>(),
            )
            .read_values_to_list()
            .into_iter()
            .map(|e| match e.event {
                NotificationEvent::FraudAlert {
                    order_id,
                    score,
                    reasons,
                    ..
                } => (order_id, score, reasons),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn ordinary_customers_raise_no_alert() {
        let driver = TestDriver::new(
            &topology(FraudRules::default()).unwrap(),
            StreamsConfig::new(APPLICATION_ID),
        )
        .unwrap();
        let orders = driver.create_input_topic_with(topics::ORDERS, Serdes::string(), events());
        for (i, t) in [0i64, 3_600_000, 7_200_000].iter().enumerate() {
            let e = order(&format!("o-{i}"), "49.90", Some("phone"), Some("Delft"), *t);
            orders.pipe_input_at("c-1".into(), e, *t);
        }
        assert!(alerts(&driver).is_empty());
    }

    /// Tight limits, so a handful of orders reach them.
    fn tight() -> FraudRules {
        FraudRules {
            max_spend_cents: 150_000,
            max_orders: 5,
            ..FraudRules::default()
        }
    }

    #[test]
    fn spend_velocity_and_new_device_add_up_to_an_explained_alert() {
        let driver = TestDriver::new(
            &topology(tight()).unwrap(),
            StreamsConfig::new(APPLICATION_ID),
        )
        .unwrap();
        let orders = driver.create_input_topic_with(topics::ORDERS, Serdes::string(), events());
        // Five orders of 300.00 within five minutes from the usual phone and address...
        for i in 0..5i64 {
            let t = i * 60_000;
            let e = order(&format!("o-{i}"), "300.00", Some("phone"), Some("Delft"), t);
            orders.pipe_input_at("c-1".into(), e, t);
        }
        // ...reach the spend (1500.00) and velocity (5) limits without passing them.
        let first = alerts(&driver);
        assert!(first.is_empty(), "{first:?}");
        // A sixth from a new laptop to a new city: spend + velocity + device + address.
        let t = 5 * 60_000;
        orders.pipe_input_at(
            "c-1".into(),
            order("o-5", "300.00", Some("laptop"), Some("Paris"), t),
            t,
        );
        let fired = alerts(&driver);
        assert_eq!(fired.len(), 1, "{fired:?}");
        let (order_id, score, reasons) = &fired[0];
        assert_eq!(order_id, "o-5");
        assert_eq!(*score, 40 + 30 + 20 + 20);
        assert!(reasons[0].starts_with("spent 1800.00"), "{reasons:?}");
        assert!(reasons[1].starts_with("6 orders in 10 min"), "{reasons:?}");
        assert_eq!(reasons[2], "new device laptop");
        assert!(reasons[3].contains("Paris"), "{reasons:?}");

        let stored = driver
            .key_value_store::<String, FraudVerdict>(ALERTS_STORE)
            .unwrap()
            .get(&"o-5".into())
            .unwrap()
            .unwrap();
        assert_eq!(stored.score, 110);
    }

    #[test]
    fn history_leaves_the_window() {
        let rules = tight();
        let recent = vec![(0, 100_000), (1_000, 40_000)];
        // Within the hour: 1400.00 + 200.00 passes the limit.
        let (inside, _) = score(
            &rules,
            &CustomerProfile::default(),
            &recent,
            60_000,
            20_000,
            None,
            None,
        );
        assert_eq!(inside, rules.spend_points);
        // Two hours later they no longer count.
        let (outside, _) = score(
            &rules,
            &CustomerProfile::default(),
            &recent,
            7_200_000,
            20_000,
            None,
            None,
        );
        assert_eq!(outside, 0);
    }
}
