//! The change-logging layer: records every write of a store so the task can send it to the
//! store's changelog topic (`<application-id>-<store>-changelog`), partition = task partition.
//!
//! Writes are buffered here and drained by the task after each record or punctuation, which
//! stamps them with that record's timestamp. The buffer is shared with the task, not owned by
//! it, because store handles live in processors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{KeyValueBytesStore, StoreError, WindowBytesStore, WindowEntry};

/// Pending changelog writes of one store.
pub(crate) struct ChangelogBuffer {
    pub topic: Arc<str>,
    pub partition: i32,
    pending: Mutex<Vec<(Vec<u8>, Option<Vec<u8>>)>>,
    /// Set after a push: the task drains every buffer after every record, and most have
    /// nothing (their store's cache holds the writes until the commit).
    dirty: AtomicBool,
}

impl ChangelogBuffer {
    pub(crate) fn new(topic: Arc<str>, partition: i32) -> Self {
        ChangelogBuffer {
            topic,
            partition,
            pending: Mutex::new(Vec::new()),
            dirty: AtomicBool::new(false),
        }
    }

    fn push(&self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, value));
        self.dirty.store(true, Ordering::Release);
    }

    /// Takes every pending write, oldest first.
    pub(crate) fn drain(&self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        // A push that has not set the flag yet is taken by the next drain.
        if !self.dirty.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A key-value store that logs every put and delete.
pub(crate) struct LoggedKeyValueStore {
    pub inner: Arc<dyn KeyValueBytesStore>,
    pub log: Arc<ChangelogBuffer>,
}

impl KeyValueBytesStore for LoggedKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        self.log.push(key.clone(), Some(value.clone()));
        self.inner.put(key, value)
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.inner.delete(key)?;
        self.log.push(key.to_vec(), None);
        Ok(old)
    }

    fn range(
        &self,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.inner.range(from, to)
    }

    fn approximate_num_entries(&self) -> u64 {
        self.inner.approximate_num_entries()
    }

    fn prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.inner.prefix(prefix)
    }

    fn apply_batch(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        for (key, value) in &batch {
            self.log.push(key.clone(), value.clone());
        }
        self.inner.apply_batch(batch)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

/// The changelog key of a window store entry: key bytes, then the window start and a
/// sequence number, both big-endian.
pub(crate) fn window_changelog_key(key: &[u8], start: i64, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 12);
    out.extend_from_slice(key);
    out.extend_from_slice(&start.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// A window store that logs every accepted write.
pub(crate) struct LoggedWindowStore {
    pub inner: Arc<dyn WindowBytesStore>,
    pub log: Arc<ChangelogBuffer>,
    pub retain_duplicates: bool,
    pub seq: Mutex<u32>,
}

impl WindowBytesStore for LoggedWindowStore {
    fn put(&self, key: &[u8], start: i64, value: Option<Vec<u8>>) -> Result<bool, StoreError> {
        let logged = value.clone();
        let accepted = self.inner.put(key, start, value)?;
        if accepted {
            let seq = if self.retain_duplicates {
                let mut seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
                *seq = seq.wrapping_add(1);
                *seq
            } else {
                0
            };
            self.log.push(window_changelog_key(key, start, seq), logged);
        }
        Ok(accepted)
    }

    fn fetch(&self, key: &[u8], from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        self.inner.fetch(key, from, to)
    }

    fn fetch_one(&self, key: &[u8], start: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.fetch_one(key, start)
    }

    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        self.inner.fetch_all(from, to)
    }

    fn window_size(&self) -> i64 {
        self.inner.window_size()
    }

    fn approximate_num_entries(&self) -> u64 {
        self.inner.approximate_num_entries()
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}
