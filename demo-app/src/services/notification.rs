//! The notification service: email and SMS as two consumer groups over the same topics —
//! the fan-out pattern. Each channel is its own group (`notification-email`,
//! `notification-sms`), so each gets every event and keeps its own offsets: a slow SMS
//! gateway never holds up email.
//!
//! Each channel keeps its own view of the customers' preferences and contact details from
//! `user-events` (`notification_preferences`, one row per channel and customer), and for every
//! order status change on `order-events` and every `NotificationRequested` on
//! `notification-events` writes a message to `sent_notifications` (the outbox of sent messages
//! you can read, `GET /notifications` on the order API) when the customer wants that
//! channel. Customers never registered get email only. A message's key is (channel, event
//! id), so a redelivered event sends nothing twice.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use crate::consumer::{HandleError, Incoming, Tx, Writer};
use crate::crypto::FieldCipher;
use crate::db::{list, text};
use crate::events::{
    topics, Channel, Envelope, NotificationEvent, OrderEvent, Preferences, UserEvent,
};

/// The notification service for one channel.
#[derive(Clone)]
pub struct NotificationService {
    channel: Channel,
    cipher: FieldCipher,
}

impl NotificationService {
    /// The service sending on `channel` (into the consumer's database); contacts are stored
    /// encrypted with `cipher`.
    pub fn new(channel: Channel, cipher: FieldCipher) -> Self {
        NotificationService { channel, cipher }
    }

    /// The consumer group of this channel.
    pub fn group(&self) -> &'static str {
        match self.channel {
            Channel::Email => "notification-email",
            Channel::Sms => "notification-sms",
        }
    }

    fn channel_name(&self) -> &'static str {
        match self.channel {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// What `record` asks of this channel: nothing, a change of a customer's preferences, or
    /// a message.
    fn action(record: &Incoming) -> Result<Option<Action>, HandleError> {
        Ok(match record.topic.as_str() {
            topics::USERS => {
                let envelope = Envelope::<UserEvent>::from_bytes(&record.payload)?;
                Some(match envelope.event {
                    UserEvent::UserRegistered {
                        user_id,
                        email,
                        phone,
                        preferences,
                        ..
                    } => Action::Preferences {
                        customer_id: user_id,
                        email: Some(email),
                        phone: Some(phone),
                        preferences: Some(preferences),
                    },
                    UserEvent::UserUpdated {
                        user_id,
                        email,
                        phone,
                        preferences,
                    } => Action::Preferences {
                        customer_id: user_id,
                        email,
                        phone,
                        preferences,
                    },
                })
            }
            topics::ORDERS => {
                let envelope = Envelope::<OrderEvent>::from_bytes(&record.payload)?;
                let OrderEvent::OrderStatusChanged {
                    order_id,
                    customer_id,
                    to,
                    reason,
                    ..
                } = envelope.event
                else {
                    return Ok(None);
                };
                let body = match reason {
                    Some(reason) => format!("Order {order_id} is now {}: {reason}", to.as_str()),
                    None => format!("Order {order_id} is now {}", to.as_str()),
                };
                Some(Action::Send {
                    event_id: envelope.event_id.to_string(),
                    customer_id,
                    subject: format!("Your order is {}", to.as_str().to_lowercase()),
                    body,
                })
            }
            topics::NOTIFICATIONS => {
                let envelope = Envelope::<NotificationEvent>::from_bytes(&record.payload)?;
                let NotificationEvent::NotificationRequested {
                    customer_id,
                    subject,
                    body,
                    ..
                } = envelope.event
                else {
                    return Ok(None);
                };
                Some(Action::Send {
                    event_id: envelope.event_id.to_string(),
                    customer_id,
                    subject,
                    body,
                })
            }
            _ => None,
        })
    }

    /// Applies `records` in order in `tx`: one query reads the preferences of every
    /// customer they name, one upserts the changed preferences, one inserts the messages.
    async fn apply_records(
        &self,
        tx: &mut Tx<'_>,
        records: &[&Incoming],
    ) -> Result<(), HandleError> {
        let mut actions = Vec::with_capacity(records.len());
        for record in records {
            if let Some(action) = Self::action(record)? {
                actions.push(action);
            }
        }
        if actions.is_empty() {
            return Ok(());
        }
        let mut customers: Vec<&str> = actions.iter().map(Action::customer_id).collect();
        customers.sort_unstable();
        customers.dedup();
        let mut known = self.lookup(tx, &customers).await?;
        let mut changed: HashMap<String, (bool, String)> = HashMap::new();
        let mut messages: Vec<(String, String, String, String, String)> = Vec::new();
        let mut event_ids = HashSet::new();
        for action in actions {
            match action {
                Action::Preferences {
                    customer_id,
                    email,
                    phone,
                    preferences,
                } => {
                    let contact = match self.channel {
                        Channel::Email => email,
                        Channel::Sms => phone,
                    };
                    let current = known.get(&customer_id);
                    let enabled = match (&preferences, current) {
                        (Some(p), _) => self.wants(p),
                        (None, Some((enabled, _))) => *enabled,
                        (None, None) => self.wants(&Preferences::default()),
                    };
                    let contact = contact
                        .or_else(|| current.map(|(_, contact)| contact.clone()))
                        .unwrap_or_default();
                    known.insert(customer_id.clone(), (enabled, contact.clone()));
                    changed.insert(customer_id, (enabled, contact));
                }
                Action::Send {
                    event_id,
                    customer_id,
                    subject,
                    body,
                } => {
                    let (enabled, contact) = match known.get(&customer_id) {
                        Some(found) => found.clone(),
                        None => (
                            self.wants(&Preferences::default()),
                            format!("{customer_id} (not registered)"),
                        ),
                    };
                    if enabled && event_ids.insert(event_id.clone()) {
                        messages.push((event_id, customer_id, contact, subject, body));
                    }
                }
            }
        }
        let channel = self.channel_name();
        let changed: Vec<(String, (bool, String))> = changed.into_iter().collect();
        crate::db::insert_rows(
            tx,
            "INSERT INTO notification_preferences (channel, customer_id, enabled, contact)",
            " ON CONFLICT (channel, customer_id) DO UPDATE \
             SET enabled = excluded.enabled, contact = excluded.contact",
            4,
            &changed,
            |q, (customer_id, (enabled, contact))| {
                q.bind(channel)
                    .bind(customer_id)
                    .bind(i64::from(*enabled))
                    .bind(self.cipher.encrypt(contact))
            },
        )
        .await?;
        let now = chrono::Utc::now().timestamp_millis();
        crate::db::insert_rows(
            tx,
            "INSERT INTO sent_notifications (channel, event_id, customer_id, contact, subject, \
             body, sent_at)",
            " ON CONFLICT DO NOTHING",
            7,
            &messages,
            |q, (event_id, customer_id, contact, subject, body)| {
                q.bind(channel)
                    .bind(event_id)
                    .bind(customer_id)
                    .bind(self.cipher.encrypt(contact))
                    .bind(subject)
                    .bind(body)
                    .bind(now)
            },
        )
        .await?;
        Ok(())
    }

    fn wants(&self, preferences: &Preferences) -> bool {
        match self.channel {
            Channel::Email => preferences.email,
            Channel::Sms => preferences.sms,
        }
    }

    /// The stored preferences (enabled, contact) of `customers` on this channel.
    async fn lookup(
        &self,
        tx: &mut Tx<'_>,
        customers: &[&str],
    ) -> sqlx::Result<HashMap<String, (bool, String)>> {
        let sql = format!(
            "SELECT customer_id, enabled, contact FROM notification_preferences \
             WHERE channel = $1 AND customer_id IN ({})",
            list(2, customers.len())
        );
        let sql = crate::db::for_connection(tx, &sql);
        let mut query = sqlx::query(&sql).bind(self.channel_name());
        for customer in customers {
            query = query.bind(*customer);
        }
        let mut found = HashMap::new();
        for row in query.fetch_all(&mut **tx).await? {
            let customer_id = text(&row, "customer_id");
            let contact = self.cipher.decrypt(&text(&row, "contact")).map_err(|e| {
                sqlx::Error::Decode(format!("contact of {customer_id}: {e}").into())
            })?;
            let enabled = row.try_get::<i64, _>("enabled").unwrap_or(0) != 0;
            found.insert(customer_id, (enabled, contact));
        }
        Ok(found)
    }
}

/// What a record asks of a channel.
enum Action {
    Preferences {
        customer_id: String,
        email: Option<String>,
        phone: Option<String>,
        preferences: Option<Preferences>,
    },
    Send {
        event_id: String,
        customer_id: String,
        subject: String,
        body: String,
    },
}

impl Action {
    fn customer_id(&self) -> &str {
        match self {
            Action::Preferences { customer_id, .. } | Action::Send { customer_id, .. } => {
                customer_id
            }
        }
    }
}

impl Writer for NotificationService {
    const RECORDS_PER_TRANSACTION: usize = 200;

    async fn write(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        self.apply_records(tx, records).await
    }
}
