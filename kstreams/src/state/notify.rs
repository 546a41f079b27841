//! The notifying layer: the top of every store stack, which tells subscribers about each write
//! as it happens, for change feeds such as
//! [`KafkaStreams::subscribe`](crate::kafka::KafkaStreams::subscribe).
//!
//! With no subscriber the layer costs one atomic load per write. Subscribers get bytes and
//! decode them with the store's serdes; each has a bounded queue, and a subscriber that falls
//! behind loses changes (counted) rather than holding memory without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::channel::mpsc;

use super::{KeyValueBytesStore, StoreError, WindowBytesStore, WindowEntry};

/// One write of a store, in bytes: key, window start (window stores), value or `None`.
#[derive(Debug, Clone)]
pub(crate) struct RawChange {
    pub key: Vec<u8>,
    pub window_start: Option<i64>,
    pub value: Option<Vec<u8>>,
}

/// Queue size of each subscriber.
pub(crate) const SUBSCRIBER_QUEUE: usize = 10_000;

struct Subscriber {
    sender: mpsc::Sender<RawChange>,
    dropped: Arc<AtomicU64>,
}

/// The subscribers of every store of a process.
#[derive(Default)]
pub(crate) struct ChangeHub {
    active: AtomicUsize,
    subscribers: Mutex<HashMap<String, Vec<Subscriber>>>,
}

impl ChangeHub {
    /// A new subscription to the writes of `store`; `dropped` counts changes it missed.
    pub(crate) fn subscribe(&self, store: &str) -> (mpsc::Receiver<RawChange>, Arc<AtomicU64>) {
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers
            .entry(store.to_string())
            .or_default()
            .push(Subscriber {
                sender,
                dropped: dropped.clone(),
            });
        self.active.fetch_add(1, Ordering::SeqCst);
        (receiver, dropped)
    }

    /// Ends every subscription (the application closed).
    pub(crate) fn close_all(&self) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        let gone: usize = subscribers.values().map(Vec::len).sum();
        subscribers.clear();
        self.active.fetch_sub(gone, Ordering::SeqCst);
    }

    fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    fn publish(&self, store: &str, change: impl FnOnce() -> RawChange) {
        if !self.is_active() {
            return;
        }
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = subscribers.get_mut(store) else {
            return;
        };
        let change = change();
        let before = list.len();
        list.retain_mut(|s| match s.sender.try_send(change.clone()) {
            Ok(()) => true,
            Err(e) if e.is_full() => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            // The subscription was dropped.
            Err(_) => false,
        });
        let gone = before - list.len();
        if gone > 0 {
            self.active.fetch_sub(gone, Ordering::SeqCst);
        }
    }
}

/// Publishes every write of a key-value store.
pub(crate) struct NotifyingKeyValueStore {
    pub inner: Arc<dyn KeyValueBytesStore>,
    pub name: Arc<str>,
    pub hub: Arc<ChangeHub>,
}

impl KeyValueBytesStore for NotifyingKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        self.hub.publish(&self.name, || RawChange {
            key: key.clone(),
            window_start: None,
            value: Some(value.clone()),
        });
        self.inner.put(key, value)
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.inner.delete(key)?;
        if old.is_some() {
            self.hub.publish(&self.name, || RawChange {
                key: key.to_vec(),
                window_start: None,
                value: None,
            });
        }
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
            self.hub.publish(&self.name, || RawChange {
                key: key.clone(),
                window_start: None,
                value: value.clone(),
            });
        }
        self.inner.apply_batch(batch)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

/// Publishes every accepted write of a window store.
pub(crate) struct NotifyingWindowStore {
    pub inner: Arc<dyn WindowBytesStore>,
    pub name: Arc<str>,
    pub hub: Arc<ChangeHub>,
}

impl WindowBytesStore for NotifyingWindowStore {
    fn put(&self, key: &[u8], start: i64, value: Option<Vec<u8>>) -> Result<bool, StoreError> {
        let published = self.hub.is_active().then(|| value.clone());
        let accepted = self.inner.put(key, start, value)?;
        if let (true, Some(value)) = (accepted, published) {
            self.hub.publish(&self.name, || RawChange {
                key: key.to_vec(),
                window_start: Some(start),
                value,
            });
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
