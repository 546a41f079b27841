//! The audit service: every record of every shop topic, appended to a tamper-evident log.
//!
//! Group `audit-service` reads all topics. Each record becomes one `audit_log` row whose
//! `hash` is SHA-256 over the previous row's hash and this row's fields, so changing,
//! removing or reordering any row breaks every hash after it; [`verify`] (`shop
//! audit-verify`) recomputes the chain and names the first row that does not match. A
//! redelivered record (same topic, partition and offset) is not appended twice.

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::consumer::{HandleError, Incoming, Tx, Writer};
use crate::crypto::FieldCipher;
use crate::db::{text, Database};
use crate::events::topics;

/// The consumer group of the service.
pub const GROUP: &str = "audit-service";

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry's fields, as hashed.
#[derive(Clone, Copy)]
struct Entry<'a> {
    seq: i64,
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: &'a str,
    payload: &'a str,
    prev_hash: &'a str,
}

impl Entry<'_> {
    fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        for field in [
            self.prev_hash.as_bytes(),
            &self.seq.to_be_bytes(),
            self.topic.as_bytes(),
            &self.partition.to_be_bytes(),
            &self.offset.to_be_bytes(),
            self.key.as_bytes(),
            self.payload.as_bytes(),
        ] {
            // Length-prefixed, so field boundaries cannot shift.
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field);
        }
        format!("{:x}", hasher.finalize())
    }
}

/// The audit service's state.
#[derive(Clone)]
pub struct AuditService {
    cipher: FieldCipher,
}

impl AuditService {
    /// The service (appending to the consumer's database); customers' email and phone are
    /// stored encrypted with `cipher`.
    pub fn new(cipher: FieldCipher) -> Self {
        AuditService { cipher }
    }

    /// Appends `records` (in order) in `tx`: one query finds those recorded before (a
    /// redelivery), one reads the chain's end, one inserts the rest. It reads no event
    /// type, so nothing is poison here: bytes that are not UTF-8 are stored lossily.
    async fn append(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        if records.is_empty() {
            return Ok(());
        }
        let condition = (0..records.len())
            .map(|i| {
                format!(
                    "(topic = ${} AND kafka_partition = ${} AND kafka_offset = ${})",
                    3 * i + 1,
                    3 * i + 2,
                    3 * i + 3
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql =
            format!("SELECT topic, kafka_partition, kafka_offset FROM audit_log WHERE {condition}");
        let sql = crate::db::for_connection(tx, &sql);
        let mut query = sqlx::query(&sql);
        for record in records {
            query = query
                .bind(&record.topic)
                .bind(record.partition)
                .bind(record.offset);
        }
        let recorded: HashSet<(String, i32, i64)> = query
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    text(row, "topic"),
                    row.try_get::<i32, _>("kafka_partition")?,
                    row.try_get::<i64, _>("kafka_offset")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        let mut seen = HashSet::new();
        let new: Vec<&Incoming> = records
            .iter()
            .copied()
            .filter(|r| {
                let source = (r.topic.clone(), r.partition, r.offset);
                !recorded.contains(&source) && seen.insert(source)
            })
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
        let (mut seq, mut prev_hash) = match &last {
            Some(row) => (row.try_get::<i64, _>("seq")? + 1, text(row, "hash")),
            None => (1, GENESIS.to_owned()),
        };
        let now = chrono::Utc::now().timestamp_millis();
        let mut rows = Vec::with_capacity(new.len());
        for record in new {
            let key =
                String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned();
            let mut payload = String::from_utf8_lossy(&record.payload).into_owned();
            if record.topic == topics::USERS {
                payload = self.cipher.seal_json_fields(&payload, &["email", "phone"]);
            }
            let hash = Entry {
                seq,
                topic: &record.topic,
                partition: record.partition,
                offset: record.offset,
                key: &key,
                payload: &payload,
                prev_hash: &prev_hash,
            }
            .hash();
            rows.push((seq, record, key, payload, prev_hash, hash.clone()));
            seq += 1;
            prev_hash = hash;
        }
        crate::db::insert_rows(
            tx,
            "INSERT INTO audit_log (seq, topic, kafka_partition, kafka_offset, record_key, \
             payload, prev_hash, hash, recorded_at)",
            "",
            9,
            &rows,
            |q, (seq, record, key, payload, prev_hash, hash)| {
                q.bind(*seq)
                    .bind(&record.topic)
                    .bind(record.partition)
                    .bind(record.offset)
                    .bind(key)
                    .bind(payload)
                    .bind(prev_hash)
                    .bind(hash)
                    .bind(now)
            },
        )
        .await?;
        Ok(())
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every entry's hash matches; this many entries.
    Intact(u64),
    /// The first entry that does not match.
    Broken {
        /// Its sequence number.
        seq: i64,
        /// Why.
        reason: String,
    },
}

/// Recomputes the whole chain.
pub async fn verify(db: &Database) -> sqlx::Result<Verification> {
    let rows = sqlx::query(
        "SELECT seq, topic, kafka_partition, kafka_offset, record_key, payload, prev_hash, hash
         FROM audit_log ORDER BY seq",
    )
    .fetch_all(db.pool())
    .await?;
    let mut prev = GENESIS.to_owned();
    for (expected_seq, row) in (1_i64..).zip(rows.iter()) {
        let seq: i64 = row.try_get("seq")?;
        if seq != expected_seq {
            return Ok(Verification::Broken {
                seq,
                reason: format!("entry {expected_seq} is missing"),
            });
        }
        let prev_hash = text(row, "prev_hash");
        if prev_hash != prev {
            return Ok(Verification::Broken {
                seq,
                reason: "its previous hash is not the previous entry's hash".into(),
            });
        }
        let (topic, key, payload) = (
            text(row, "topic"),
            text(row, "record_key"),
            text(row, "payload"),
        );
        let entry = Entry {
            seq,
            topic: &topic,
            partition: row.try_get::<i32, _>("kafka_partition")?,
            offset: row.try_get("kafka_offset")?,
            key: &key,
            payload: &payload,
            prev_hash: &prev_hash,
        };
        let hash = text(row, "hash");
        if entry.hash() != hash {
            return Ok(Verification::Broken {
                seq,
                reason: "its contents do not match its hash".into(),
            });
        }
        prev = hash;
    }
    Ok(Verification::Intact(rows.len() as u64))
}

impl Writer for AuditService {
    const RECORDS_PER_TRANSACTION: usize = 200;

    async fn write(&self, tx: &mut Tx<'_>, records: &[&Incoming]) -> Result<(), HandleError> {
        self.append(tx, records).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_field_changes_the_hash() {
        let base = Entry {
            seq: 1,
            topic: "order-events",
            partition: 0,
            offset: 7,
            key: "c-1",
            payload: "{}",
            prev_hash: GENESIS,
        };
        let hash = base.hash();
        assert_eq!(hash.len(), 64);
        assert_ne!(Entry { offset: 8, ..base }.hash(), hash);
        assert_ne!(
            Entry {
                payload: "{ }",
                ..base
            }
            .hash(),
            hash
        );
        assert_ne!(Entry { seq: 2, ..base }.hash(), hash);
        // Moving bytes between fields is not the same entry.
        assert_ne!(
            Entry {
                key: "c-1{",
                payload: "}",
                ..base
            }
            .hash(),
            hash
        );
    }
}
