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

use sqlx::Row;

use crate::consumer::{HandleError, Handler, Incoming};
use crate::crypto::FieldCipher;
use crate::db::{text, Database};
use crate::events::{
    topics, Channel, Envelope, NotificationEvent, OrderEvent, Preferences, UserEvent,
};

/// The notification service for one channel.
#[derive(Clone)]
pub struct NotificationService {
    db: Database,
    channel: Channel,
    cipher: FieldCipher,
}

impl NotificationService {
    /// The service sending on `channel`; contacts are stored encrypted with `cipher`.
    pub fn new(db: Database, channel: Channel, cipher: FieldCipher) -> Self {
        NotificationService {
            db,
            channel,
            cipher,
        }
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

    /// Handles one record of `user-events`, `order-events` or `notification-events`.
    pub async fn handle(&self, record: Incoming) -> Result<(), HandleError> {
        match record.topic.as_str() {
            topics::USERS => self.preferences(&record.payload).await,
            topics::ORDERS => {
                let envelope = Envelope::<OrderEvent>::from_bytes(&record.payload)?;
                let OrderEvent::OrderStatusChanged {
                    order_id,
                    customer_id,
                    to,
                    reason,
                    ..
                } = &envelope.event
                else {
                    return Ok(());
                };
                let body = match reason {
                    Some(reason) => format!("Order {order_id} is now {}: {reason}", to.as_str()),
                    None => format!("Order {order_id} is now {}", to.as_str()),
                };
                self.send(
                    &envelope.event_id.to_string(),
                    customer_id,
                    &format!("Your order is {}", to.as_str().to_lowercase()),
                    &body,
                )
                .await
            }
            topics::NOTIFICATIONS => {
                let envelope = Envelope::<NotificationEvent>::from_bytes(&record.payload)?;
                let NotificationEvent::NotificationRequested {
                    customer_id,
                    subject,
                    body,
                    ..
                } = &envelope.event
                else {
                    return Ok(());
                };
                self.send(&envelope.event_id.to_string(), customer_id, subject, body)
                    .await
            }
            _ => Ok(()),
        }
    }

    async fn preferences(&self, payload: &[u8]) -> Result<(), HandleError> {
        let envelope = Envelope::<UserEvent>::from_bytes(payload)?;
        let (user_id, contact, preferences) = match &envelope.event {
            UserEvent::UserRegistered {
                user_id,
                email,
                phone,
                preferences,
                ..
            } => (
                user_id,
                Some(match self.channel {
                    Channel::Email => email.clone(),
                    Channel::Sms => phone.clone(),
                }),
                Some(preferences.clone()),
            ),
            UserEvent::UserUpdated {
                user_id,
                email,
                phone,
                preferences,
            } => (
                user_id,
                match self.channel {
                    Channel::Email => email.clone(),
                    Channel::Sms => phone.clone(),
                },
                preferences.clone(),
            ),
        };
        let current = self.lookup(user_id).await?;
        let enabled = match (&preferences, &current) {
            (Some(p), _) => self.wants(p),
            (None, Some((enabled, _))) => *enabled,
            (None, None) => self.wants(&Preferences::default()),
        };
        let contact = contact
            .or_else(|| current.map(|(_, contact)| contact))
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO notification_preferences (channel, customer_id, enabled, contact)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (channel, customer_id) DO UPDATE
             SET enabled = excluded.enabled, contact = excluded.contact",
        )
        .bind(self.channel_name())
        .bind(user_id)
        .bind(i64::from(enabled))
        .bind(self.cipher.encrypt(&contact))
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    fn wants(&self, preferences: &Preferences) -> bool {
        match self.channel {
            Channel::Email => preferences.email,
            Channel::Sms => preferences.sms,
        }
    }

    async fn lookup(&self, customer_id: &str) -> sqlx::Result<Option<(bool, String)>> {
        let row = sqlx::query(
            "SELECT enabled, contact FROM notification_preferences
             WHERE channel = $1 AND customer_id = $2",
        )
        .bind(self.channel_name())
        .bind(customer_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let contact = self
            .cipher
            .decrypt(&text(&row, "contact"))
            .map_err(|e| sqlx::Error::Decode(format!("contact of {customer_id}: {e}").into()))?;
        Ok(Some((
            row.try_get::<i64, _>("enabled").unwrap_or(0) != 0,
            contact,
        )))
    }

    async fn send(
        &self,
        event_id: &str,
        customer_id: &str,
        subject: &str,
        body: &str,
    ) -> Result<(), HandleError> {
        let (enabled, contact) = match self.lookup(customer_id).await? {
            Some(found) => found,
            None => (
                self.wants(&Preferences::default()),
                format!("{customer_id} (not registered)"),
            ),
        };
        if !enabled {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO sent_notifications (channel, event_id, customer_id, contact, subject,
                                             body, sent_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(self.channel_name())
        .bind(event_id)
        .bind(customer_id)
        .bind(self.cipher.encrypt(&contact))
        .bind(subject)
        .bind(body)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

impl Handler for NotificationService {
    fn handle(
        &self,
        record: Incoming,
    ) -> impl std::future::Future<Output = Result<(), HandleError>> + Send {
        NotificationService::handle(self, record)
    }
}
