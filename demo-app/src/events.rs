//! The events of shop: one enum per topic, JSON on the wire, every event versioned.
//!
//! Every record value is an [`Envelope`]: an event id (consumers that write to a database
//! deduplicate on it), the schema version of the payload, when it happened, and the payload
//! itself, tagged by `type`. Readers accept every version they know and upcast older ones:
//! `OrderCreated` v1 (items and total) becomes v2 (currency, A/B variant, shipping address,
//! device) with the defaults v1 writers implied. Writers always write the newest version.
//!
//! Keys: order events are keyed by customer id (all of a customer's orders land on one
//! partition, in order), user events by user id, inventory events by product id, payment and
//! shipping events by order id, notifications by customer id.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The shop's topics.
pub mod topics {
    /// [`UserEvent`](super::UserEvent)s, keyed by user id.
    pub const USERS: &str = "user-events";
    /// [`OrderEvent`](super::OrderEvent)s, keyed by customer id.
    pub const ORDERS: &str = "order-events";
    /// [`InventoryEvent`](super::InventoryEvent)s, keyed by product id.
    pub const INVENTORY: &str = "inventory-events";
    /// [`PaymentEvent`](super::PaymentEvent)s, keyed by order id.
    pub const PAYMENTS: &str = "payment-events";
    /// Payment requests that failed for good, with the reason in headers.
    pub const PAYMENTS_DLQ: &str = "payment-events-dlq";
    /// [`ShippingEvent`](super::ShippingEvent)s, keyed by order id.
    pub const SHIPPING: &str = "shipping-events";
    /// [`NotificationEvent`](super::NotificationEvent)s, keyed by customer id.
    pub const NOTIFICATIONS: &str = "notification-events";

    /// Every topic of the shop, with its partition count.
    pub const ALL: [(&str, i32); 7] = [
        (USERS, 4),
        (ORDERS, 4),
        (INVENTORY, 4),
        (PAYMENTS, 4),
        (PAYMENTS_DLQ, 1),
        (SHIPPING, 4),
        (NOTIFICATIONS, 4),
    ];
}

/// An event with its id, schema version and time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<E> {
    /// Unique per event; the deduplication key of idempotent consumers.
    pub event_id: Uuid,
    /// The schema version of `event`.
    pub schema_version: u16,
    /// When the event happened (also the record timestamp).
    pub occurred_at: DateTime<Utc>,
    /// The payload.
    #[serde(flatten)]
    pub event: E,
}

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or not the shape of any known version.
    #[error("malformed event: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A version newer than this reader knows.
    #[error("unsupported schema version {version} of {kind}")]
    UnsupportedVersion {
        /// The event type.
        kind: String,
        /// Its schema version.
        version: u64,
    },
}

/// A topic's event type: knows its schema versions and how to upcast old ones.
pub trait Event: Serialize + DeserializeOwned + Clone {
    /// The version writers write.
    fn current_version(&self) -> u16 {
        1
    }

    /// Rewrites a payload of an older `version` (as JSON, `type` included) into the current
    /// shape; the default accepts only version 1.
    fn upcast(
        kind: &str,
        version: u64,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, EventError> {
        if version == 1 {
            Ok(payload)
        } else {
            Err(EventError::UnsupportedVersion {
                kind: kind.to_owned(),
                version,
            })
        }
    }
}

impl<E: Event> Envelope<E> {
    /// A new event happening now.
    pub fn new(event: E) -> Self {
        Envelope {
            event_id: Uuid::new_v4(),
            schema_version: event.current_version(),
            occurred_at: Utc::now(),
            event,
        }
    }

    /// JSON bytes for a topic.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("events serialize to JSON")
    }

    /// Reads any known version of the event, upcasting old ones.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EventError> {
        let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
        let object = value.as_object_mut().ok_or_else(|| {
            EventError::Malformed(serde::de::Error::custom("an event is a JSON object"))
        })?;
        let version = object
            .get("schema_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| {
                EventError::Malformed(serde::de::Error::custom("missing schema_version"))
            })?;
        let kind = object
            .get("type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let event_id = object.remove("event_id").unwrap_or_default();
        let occurred_at = object.remove("occurred_at").unwrap_or_default();
        object.remove("schema_version");
        let payload = E::upcast(&kind, version, value)?;
        let event: E = serde_json::from_value(payload)?;
        Ok(Envelope {
            event_id: serde_json::from_value(event_id)?,
            schema_version: event.current_version(),
            occurred_at: serde_json::from_value(occurred_at)?,
            event,
        })
    }
}

/// A customer's contact preferences.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    /// Send email notifications.
    pub email: bool,
    /// Send SMS notifications.
    pub sms: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            email: true,
            sms: false,
        }
    }
}

/// Events of `user-events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum UserEvent {
    /// A customer signed up.
    UserRegistered {
        /// The user id.
        user_id: String,
        /// Display name.
        name: String,
        /// Email address.
        email: String,
        /// Phone number.
        phone: String,
        /// Country code (ISO 3166-1 alpha-2).
        country: String,
        /// Notification preferences.
        #[serde(default)]
        preferences: Preferences,
    },
    /// A customer changed their details.
    UserUpdated {
        /// The user id.
        user_id: String,
        /// New email, if changed.
        email: Option<String>,
        /// New phone, if changed.
        phone: Option<String>,
        /// New preferences, if changed.
        preferences: Option<Preferences>,
    },
}

impl Event for UserEvent {}

impl UserEvent {
    /// The user the event is about (the record key).
    pub fn user_id(&self) -> &str {
        match self {
            UserEvent::UserRegistered { user_id, .. } | UserEvent::UserUpdated { user_id, .. } => {
                user_id
            }
        }
    }
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Product id (SKU).
    pub product_id: String,
    /// Units ordered, at least 1.
    pub quantity: u32,
    /// Price of one unit, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
}

/// Where an order goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Street and number.
    pub line1: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// Country code (ISO 3166-1 alpha-2).
    pub country: String,
}

/// The states of an order; final ones are [`Delivered`](OrderStatus::Delivered),
/// [`Cancelled`](OrderStatus::Cancelled) and [`Rejected`](OrderStatus::Rejected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Accepted, waiting for stock.
    Created,
    /// Stock reserved, waiting for payment.
    Reserved,
    /// Paid, waiting for shipment.
    Paid,
    /// Handed to the carrier.
    Shipped,
    /// Delivered (final).
    Delivered,
    /// Out of stock or payment failed (final).
    Cancelled,
    /// Held by fraud detection and refused (final).
    Rejected,
}

impl OrderStatus {
    /// Whether the order can change no more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Delivered | OrderStatus::Cancelled | OrderStatus::Rejected
        )
    }

    /// Whether the state machine allows `self → next`.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Created, Reserved | Cancelled | Rejected)
                | (Reserved, Paid | Cancelled | Rejected)
                | (Paid, Shipped)
                | (Shipped, Delivered)
        )
    }

    /// The name on the wire (`"PAID"`).
    pub fn as_str(self) -> &'static str {
        use OrderStatus::*;
        match self {
            Created => "CREATED",
            Reserved => "RESERVED",
            Paid => "PAID",
            Shipped => "SHIPPED",
            Delivered => "DELIVERED",
            Cancelled => "CANCELLED",
            Rejected => "REJECTED",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(name: &str) -> Option<Self> {
        use OrderStatus::*;
        [
            Created, Reserved, Paid, Shipped, Delivered, Cancelled, Rejected,
        ]
        .into_iter()
        .find(|status| status.as_str() == name)
    }
}

/// Events of `order-events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OrderEvent {
    /// A customer placed an order (schema v2; v1 had no currency, variant, address or
    /// device).
    OrderCreated {
        /// The order id.
        order_id: String,
        /// Who ordered (the record key).
        customer_id: String,
        /// What was ordered.
        items: Vec<OrderItem>,
        /// Sum of the items, exact.
        #[serde(with = "rust_decimal::serde::str")]
        total: Decimal,
        /// ISO 4217 currency of the amounts (v2; v1 implied `"EUR"`).
        currency: String,
        /// A/B checkout variant the customer was in (v2; v1 implied `"A"`).
        variant: String,
        /// Shipping address (v2; absent in v1).
        shipping_address: Option<Address>,
        /// Device fingerprint the order came from (v2; absent in v1).
        device_id: Option<String>,
    },
    /// The order moved through its state machine.
    OrderStatusChanged {
        /// The order id.
        order_id: String,
        /// Who ordered (the record key).
        customer_id: String,
        /// The previous status.
        from: OrderStatus,
        /// The new status.
        to: OrderStatus,
        /// Why, for cancellations and rejections.
        reason: Option<String>,
    },
}

impl Event for OrderEvent {
    fn current_version(&self) -> u16 {
        match self {
            OrderEvent::OrderCreated { .. } => 2,
            OrderEvent::OrderStatusChanged { .. } => 1,
        }
    }

    fn upcast(
        kind: &str,
        version: u64,
        mut payload: serde_json::Value,
    ) -> Result<serde_json::Value, EventError> {
        match (kind, version) {
            ("OrderCreated", 1) => {
                let object = payload.as_object_mut().expect("checked by from_bytes");
                object.insert("currency".into(), "EUR".into());
                object.insert("variant".into(), "A".into());
                object.insert("shipping_address".into(), serde_json::Value::Null);
                object.insert("device_id".into(), serde_json::Value::Null);
                Ok(payload)
            }
            ("OrderCreated", 2) | (_, 1) => Ok(payload),
            _ => Err(EventError::UnsupportedVersion {
                kind: kind.to_owned(),
                version,
            }),
        }
    }
}

impl OrderEvent {
    /// The order the event is about.
    pub fn order_id(&self) -> &str {
        match self {
            OrderEvent::OrderCreated { order_id, .. }
            | OrderEvent::OrderStatusChanged { order_id, .. } => order_id,
        }
    }

    /// The customer (the record key).
    pub fn customer_id(&self) -> &str {
        match self {
            OrderEvent::OrderCreated { customer_id, .. }
            | OrderEvent::OrderStatusChanged { customer_id, .. } => customer_id,
        }
    }
}

/// Events of `inventory-events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum InventoryEvent {
    /// Stock was set aside for every line of an order.
    InventoryReserved {
        /// The order.
        order_id: String,
        /// Its customer.
        customer_id: String,
        /// What was reserved.
        items: Vec<OrderItem>,
    },
    /// An order could not be reserved (unknown product or not enough stock).
    ReservationFailed {
        /// The order.
        order_id: String,
        /// Its customer.
        customer_id: String,
        /// Why.
        reason: String,
    },
    /// The reservation of a failed order went back to stock.
    ReservationReleased {
        /// The order.
        order_id: String,
        /// Its customer.
        customer_id: String,
    },
    /// A product's available stock changed.
    StockLevelChanged {
        /// The product (the record key).
        product_id: String,
        /// Units available now.
        available: i64,
        /// Units reserved by open orders.
        reserved: i64,
        /// The low-stock threshold.
        threshold: i64,
    },
}

impl Event for InventoryEvent {}

/// Events of `payment-events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PaymentEvent {
    /// Inventory is reserved: take the payment (emitted by the order service).
    PaymentRequested {
        /// The order (the record key).
        order_id: String,
        /// Its customer.
        customer_id: String,
        /// How much, exact.
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        /// Currency.
        currency: String,
    },
    /// The gateway accepted the payment.
    PaymentAuthorized {
        /// The order.
        order_id: String,
        /// Its customer.
        customer_id: String,
        /// How much, exact.
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
        /// Attempts it took.
        attempts: u32,
    },
    /// The payment failed for good (the request also went to the dead-letter topic).
    PaymentFailed {
        /// The order.
        order_id: String,
        /// Its customer.
        customer_id: String,
        /// The last error.
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl Event for PaymentEvent {}

/// Events of `shipping-events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ShippingEvent {
    /// Handed to a carrier.
    ShipmentCreated {
        /// The order (the record key).
        order_id: String,
        /// Its customer.
        customer_id: String,
        /// The carrier chosen.
        carrier: String,
        /// Shipping cost, exact.
        #[serde(with = "rust_decimal::serde::str")]
        cost: Decimal,
        /// Tracking number.
        tracking: String,
    },
    /// The carrier delivered it.
    ShipmentDelivered {
        /// The order.
        order_id: String,
        /// Its customer.
        customer_id: String,
    },
}

impl Event for ShippingEvent {}

/// The channels notifications go out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Email.
    Email,
    /// SMS.
    Sms,
}

/// Events of `notification-events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum NotificationEvent {
    /// Tell a customer something (each channel's sender decides from the preferences).
    NotificationRequested {
        /// Who to tell (the record key).
        customer_id: String,
        /// Order it is about, if any.
        order_id: Option<String>,
        /// Short subject.
        subject: String,
        /// Text.
        body: String,
    },
    /// Stock of a product fell below its threshold.
    LowStockAlert {
        /// The product.
        product_id: String,
        /// Units available.
        available: i64,
        /// The threshold.
        threshold: i64,
    },
    /// A reservation stayed pending too long.
    StaleReservation {
        /// The order.
        order_id: String,
        /// For how long, in seconds.
        pending_secs: i64,
    },
    /// Fraud detection flagged an order.
    FraudAlert {
        /// The customer.
        customer_id: String,
        /// The order.
        order_id: String,
        /// Score 0–100.
        score: u32,
        /// Why, one line per rule that fired.
        reasons: Vec<String>,
    },
}

impl Event for NotificationEvent {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn item() -> OrderItem {
        OrderItem {
            product_id: "SKU-1".into(),
            quantity: 2,
            unit_price: Decimal::from_str("19.99").unwrap(),
        }
    }

    #[test]
    fn order_created_v1_is_upcast_to_v2() {
        let v1 = br#"{"event_id":"6f1c3c52-3f38-4a43-9d0a-6c86cbd1b7a1","schema_version":1,
            "occurred_at":"2026-12-01T10:00:00Z","type":"OrderCreated","order_id":"o-1",
            "customer_id":"c-1","items":[{"product_id":"SKU-1","quantity":2,"unit_price":"19.99"}],
            "total":"39.98"}"#;
        let read = Envelope::<OrderEvent>::from_bytes(v1).unwrap();
        assert_eq!(read.schema_version, 2);
        assert_eq!(
            read.event,
            OrderEvent::OrderCreated {
                order_id: "o-1".into(),
                customer_id: "c-1".into(),
                items: vec![item()],
                total: Decimal::from_str("39.98").unwrap(),
                currency: "EUR".into(),
                variant: "A".into(),
                shipping_address: None,
                device_id: None,
            }
        );
    }

    #[test]
    fn v2_round_trips_and_keeps_exact_amounts() {
        let event = Envelope::new(OrderEvent::OrderCreated {
            order_id: "o-2".into(),
            customer_id: "c-2".into(),
            items: vec![item()],
            total: Decimal::from_str("39.98").unwrap(),
            currency: "USD".into(),
            variant: "B".into(),
            shipping_address: Some(Address {
                line1: "1 Main St".into(),
                city: "Springfield".into(),
                postal_code: "12345".into(),
                country: "US".into(),
            }),
            device_id: Some("dev-9".into()),
        });
        let bytes = event.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains(r#""schema_version":2"#), "{text}");
        assert!(text.contains(r#""total":"39.98""#), "{text}");
        assert_eq!(Envelope::<OrderEvent>::from_bytes(&bytes).unwrap(), event);
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        let v3 = br#"{"event_id":"6f1c3c52-3f38-4a43-9d0a-6c86cbd1b7a1","schema_version":3,
            "occurred_at":"2026-12-01T10:00:00Z","type":"OrderCreated"}"#;
        assert!(matches!(
            Envelope::<OrderEvent>::from_bytes(v3),
            Err(EventError::UnsupportedVersion { version: 3, .. })
        ));
        assert!(matches!(
            Envelope::<OrderEvent>::from_bytes(b"not json"),
            Err(EventError::Malformed(_))
        ));
        assert!(matches!(
            Envelope::<OrderEvent>::from_bytes(br#"{"schema_version":1}"#),
            Err(EventError::Malformed(_))
        ));
    }

    #[test]
    fn the_state_machine_only_moves_forward() {
        use OrderStatus::*;
        assert!(Created.can_become(Reserved));
        assert!(Reserved.can_become(Paid));
        assert!(Paid.can_become(Shipped));
        assert!(Shipped.can_become(Delivered));
        assert!(!Delivered.can_become(Shipped));
        assert!(!Paid.can_become(Cancelled));
        assert!(!Created.can_become(Paid));
        for status in [Delivered, Cancelled, Rejected] {
            assert!(status.is_final());
        }
        assert_eq!(OrderStatus::parse("PAID"), Some(Paid));
        assert_eq!(OrderStatus::parse("nope"), None);
    }
}
