//! The caching layer: a bounded write cache in front of a store that collapses updates per
//! key between commits.
//!
//! Writes land in the cache; reads see them at once (the cache is merged over the store
//! below). On [`flush`](super::KeyValueBytesStore::flush) — at every commit, or earlier when
//! the cache outgrows its byte bound — the dirty entries go down in one batch, so the layers
//! below (change-logging, then RocksDB or memory) see one write per key per commit instead of
//! one per record. This is Kafka Streams' record cache for store writes; aggregations hold
//! back what they forward in step with it (see `dsl/forward.rs`).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{KeyValueBytesStore, StoreError, WindowBytesStore, WindowEntry, WindowSpec};

/// Per-entry bookkeeping cost counted on top of key and value bytes.
const ENTRY_OVERHEAD: usize = 48;

fn bound(b: Option<&[u8]>) -> Bound<&[u8]> {
    b.map_or(Bound::Unbounded, Bound::Included)
}

/// Merges dirty entries (`None`: deleted) over sorted store entries; the cache wins.
#[allow(clippy::type_complexity)]
fn merge<'a>(
    store: Vec<(Vec<u8>, Vec<u8>)>,
    dirty: impl Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(store.len());
    let mut store = store.into_iter().peekable();
    for (key, value) in dirty {
        while let Some((k, _)) = store.peek() {
            if k < key {
                out.push(store.next().expect("peeked"));
            } else {
                break;
            }
        }
        if store.peek().is_some_and(|(k, _)| k == key) {
            store.next();
        }
        if let Some(value) = value {
            out.push((key.clone(), value.clone()));
        }
    }
    out.extend(store);
    out
}

struct KeyValueCache {
    dirty: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
}

/// A write cache over a key-value store.
pub(crate) struct CachingKeyValueStore {
    inner: Arc<dyn KeyValueBytesStore>,
    max_bytes: usize,
    cache: Mutex<KeyValueCache>,
}

impl CachingKeyValueStore {
    pub(crate) fn new(inner: Arc<dyn KeyValueBytesStore>, max_bytes: usize) -> Self {
        CachingKeyValueStore {
            inner,
            max_bytes,
            cache: Mutex::new(KeyValueCache {
                dirty: BTreeMap::new(),
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, KeyValueCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        let mut cache = self.lock();
        let size = key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD;
        if let Some(old) = cache.dirty.insert(key.clone(), value) {
            let old = key.len() + old.map_or(0, |v| v.len()) + ENTRY_OVERHEAD;
            cache.bytes -= old;
        }
        cache.bytes += size;
        if cache.bytes > self.max_bytes {
            self.evict(&mut cache)?;
        }
        Ok(())
    }

    fn evict(&self, cache: &mut KeyValueCache) -> Result<(), StoreError> {
        let batch: Vec<_> = std::mem::take(&mut cache.dirty).into_iter().collect();
        cache.bytes = 0;
        if batch.is_empty() {
            return Ok(());
        }
        self.inner.apply_batch(batch)
    }
}

impl KeyValueBytesStore for CachingKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(entry) = self.lock().dirty.get(key) {
            return Ok(entry.clone());
        }
        self.inner.get(key)
    }

    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        self.write(key, Some(value))
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.get(key)?;
        if old.is_some() {
            self.write(key.to_vec(), None)?;
        }
        Ok(old)
    }

    fn range(
        &self,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Ok(Vec::new());
            }
        }
        // Hold the cache while reading below, so a concurrent flush cannot hide entries.
        let cache = self.lock();
        let store = self.inner.range(from, to)?;
        Ok(merge(
            store,
            cache.dirty.range::<[u8], _>((bound(from), bound(to))),
        ))
    }

    fn approximate_num_entries(&self) -> u64 {
        // The store's count, corrected by the cached writes that add or remove a key.
        let cache = self.lock();
        let mut count = self.inner.approximate_num_entries() as i64;
        for (key, value) in &cache.dirty {
            let stored = matches!(self.inner.get(key), Ok(Some(_)));
            match (value.is_some(), stored) {
                (true, false) => count += 1,
                (false, true) => count -= 1,
                _ => {}
            }
        }
        count.max(0) as u64
    }

    fn prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let cache = self.lock();
        let store = self.inner.prefix(prefix)?;
        let dirty = cache
            .dirty
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix));
        Ok(merge(store, dirty))
    }

    fn apply_batch(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        for (key, value) in batch {
            self.write(key, value)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        {
            let mut cache = self.lock();
            self.evict(&mut cache)?;
        }
        self.inner.flush()
    }
}

/// Dirty windows by key, then window start (`None`: deleted). Keyed by key first so that a
/// read or write of a cached key needs no copy of it.
type DirtyWindows = BTreeMap<Vec<u8>, BTreeMap<i64, Option<Vec<u8>>>>;

struct WindowCache {
    dirty: DirtyWindows,
    bytes: usize,
    observed_stream_time: i64,
}

impl WindowCache {
    /// The dirty windows, ordered by key, then start.
    fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, i64, &Option<Vec<u8>>)> {
        self.dirty
            .iter()
            .flat_map(|(key, windows)| windows.iter().map(move |(start, v)| (key, *start, v)))
    }

    fn min_live(&self, retention: i64) -> i64 {
        self.observed_stream_time
            .saturating_sub(retention)
            .saturating_add(1)
    }
}

/// A write cache over a window store that keeps one value per key and window.
pub(crate) struct CachingWindowStore {
    inner: Arc<dyn WindowBytesStore>,
    spec: WindowSpec,
    max_bytes: usize,
    cache: Mutex<WindowCache>,
}

impl CachingWindowStore {
    /// A cache over `inner`, which must not retain duplicates.
    pub(crate) fn new(
        inner: Arc<dyn WindowBytesStore>,
        spec: WindowSpec,
        max_bytes: usize,
    ) -> Self {
        debug_assert!(!spec.retain_duplicates);
        CachingWindowStore {
            inner,
            spec,
            max_bytes,
            cache: Mutex::new(WindowCache {
                dirty: BTreeMap::new(),
                bytes: 0,
                observed_stream_time: i64::MIN,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WindowCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn evict(&self, cache: &mut WindowCache) -> Result<(), StoreError> {
        let dirty = std::mem::take(&mut cache.dirty);
        cache.bytes = 0;
        if dirty.is_empty() {
            return Ok(());
        }
        // Oldest windows first, as they were written, so expiry below happens as it would
        // have without the cache.
        let mut batch: Vec<_> = dirty
            .into_iter()
            .flat_map(|(key, windows)| {
                windows
                    .into_iter()
                    .map(move |(start, value)| (key.clone(), start, value))
            })
            .collect();
        batch.sort_by_key(|(_, start, _)| *start);
        self.inner.apply_batch(batch)
    }

    /// Merges live dirty windows over store entries, ordered by start, then key.
    fn merged(
        &self,
        cache: &WindowCache,
        store: Vec<WindowEntry>,
        dirty: Vec<(&Vec<u8>, i64, &Option<Vec<u8>>)>,
    ) -> Vec<WindowEntry> {
        let min_live = cache.min_live(self.spec.retention);
        let mut all: BTreeMap<(i64, Vec<u8>), Option<Vec<u8>>> = BTreeMap::new();
        for e in store {
            if e.start >= min_live {
                all.insert((e.start, e.key), Some(e.value));
            }
        }
        for (key, start, value) in dirty {
            if start >= min_live {
                all.insert((start, key.clone()), value.clone());
            }
        }
        all.into_iter()
            .filter_map(|((start, key), value)| {
                value.map(|value| WindowEntry { key, start, value })
            })
            .collect()
    }
}

impl WindowBytesStore for CachingWindowStore {
    fn put(&self, key: &[u8], start: i64, value: Option<Vec<u8>>) -> Result<bool, StoreError> {
        let mut cache = self.lock();
        cache.observed_stream_time = cache.observed_stream_time.max(start);
        if start < cache.min_live(self.spec.retention) {
            return Ok(false);
        }
        let size = key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD;
        let replaced = match cache.dirty.get_mut(key) {
            Some(windows) => windows.insert(start, value),
            None => {
                cache
                    .dirty
                    .insert(key.to_vec(), BTreeMap::from([(start, value)]));
                None
            }
        };
        if let Some(old) = replaced {
            cache.bytes -= key.len() + old.map_or(0, |v| v.len()) + ENTRY_OVERHEAD;
        }
        cache.bytes += size;
        if cache.bytes > self.max_bytes {
            self.evict(&mut cache)?;
        }
        Ok(true)
    }

    fn fetch(&self, key: &[u8], from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        if from == to {
            return Ok(self
                .fetch_one(key, from)?
                .map(|value| WindowEntry {
                    key: key.to_vec(),
                    start: from,
                    value,
                })
                .into_iter()
                .collect());
        }
        let cache = self.lock();
        let store = self.inner.fetch(key, from, to)?;
        let dirty: Vec<_> = match cache.dirty.get_key_value(key) {
            Some((key, windows)) => windows
                .range(from..=to)
                .map(|(start, value)| (key, *start, value))
                .collect(),
            None => Vec::new(),
        };
        Ok(self.merged(&cache, store, dirty))
    }

    /// One window (a windowed aggregation's read-modify-write): a cached window is the
    /// answer, without reading the store below.
    fn fetch_one(&self, key: &[u8], start: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let cache = self.lock();
        if start < cache.min_live(self.spec.retention) {
            return Ok(None);
        }
        match cache.dirty.get(key).and_then(|w| w.get(&start)) {
            Some(value) => Ok(value.clone()),
            None => self.inner.fetch_one(key, start),
        }
    }

    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let cache = self.lock();
        let store = self.inner.fetch_all(from, to)?;
        let dirty: Vec<_> = cache
            .iter()
            .filter(|(_, start, _)| *start >= from && *start <= to)
            .collect();
        Ok(self.merged(&cache, store, dirty))
    }

    fn window_size(&self) -> i64 {
        self.spec.size
    }

    fn approximate_num_entries(&self) -> u64 {
        // The store's count, corrected by the cached writes that add or remove a window.
        let cache = self.lock();
        let mut count = self.inner.approximate_num_entries() as i64;
        for (key, start, value) in cache.iter() {
            let stored = self
                .inner
                .fetch(key, start, start)
                .is_ok_and(|found| !found.is_empty());
            match (value.is_some(), stored) {
                (true, false) => count += 1,
                (false, true) => count -= 1,
                _ => {}
            }
        }
        count.max(0) as u64
    }

    fn apply_batch(&self, batch: Vec<(Vec<u8>, i64, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        for (key, start, value) in batch {
            self.put(&key, start, value)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        {
            let mut cache = self.lock();
            self.evict(&mut cache)?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::super::in_memory::{InMemoryKeyValueStore, InMemoryWindowStore};
    use super::*;

    #[test]
    fn entry_counts_see_through_unflushed_overwrites_and_deletes() {
        let kv = CachingKeyValueStore::new(Arc::new(InMemoryKeyValueStore::new()), 1 << 20);
        kv.put(b"a".to_vec(), b"1".to_vec()).unwrap();
        kv.flush().unwrap();
        kv.put(b"a".to_vec(), b"2".to_vec()).unwrap(); // overwrite, cached
        kv.put(b"b".to_vec(), b"1".to_vec()).unwrap(); // new key, cached
        assert_eq!(kv.approximate_num_entries(), 2);
        kv.delete(b"a").unwrap(); // delete of a stored key, cached
        assert_eq!(kv.approximate_num_entries(), 1);
        kv.flush().unwrap();
        assert_eq!(kv.approximate_num_entries(), 1);

        let spec = WindowSpec {
            size: 10,
            retention: 1_000,
            retain_duplicates: false,
        };
        let windows =
            CachingWindowStore::new(Arc::new(InMemoryWindowStore::new(spec)), spec, 1 << 20);
        windows.put(b"k", 0, Some(vec![1])).unwrap();
        windows.flush().unwrap();
        windows.put(b"k", 0, Some(vec![2])).unwrap();
        windows.put(b"k", 10, Some(vec![1])).unwrap();
        assert_eq!(windows.approximate_num_entries(), 2);
        windows.put(b"k", 0, None).unwrap();
        assert_eq!(windows.approximate_num_entries(), 1);
    }

    /// A window store that counts the fetches that reach it.
    struct CountedFetches {
        inner: InMemoryWindowStore,
        fetches: std::sync::atomic::AtomicUsize,
    }

    impl WindowBytesStore for CountedFetches {
        fn put(&self, key: &[u8], start: i64, value: Option<Vec<u8>>) -> Result<bool, StoreError> {
            self.inner.put(key, start, value)
        }
        fn fetch(&self, key: &[u8], from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
            self.fetches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.fetch(key, from, to)
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
    }

    #[test]
    fn a_cached_window_is_read_from_the_cache_alone() {
        let spec = WindowSpec {
            size: 10,
            retention: 100,
            retain_duplicates: false,
        };
        let counted = Arc::new(CountedFetches {
            inner: InMemoryWindowStore::new(spec),
            fetches: Default::default(),
        });
        let reads = || counted.fetches.load(std::sync::atomic::Ordering::Relaxed);
        let windows = CachingWindowStore::new(counted.clone(), spec, 1 << 20);
        windows.put(b"k", 0, Some(vec![1])).unwrap();
        windows.flush().unwrap();
        // Not cached since the flush: read below, once.
        assert_eq!(windows.fetch(b"k", 0, 0).unwrap()[0].value, vec![1]);
        assert_eq!(reads(), 1);
        windows.put(b"k", 0, Some(vec![2])).unwrap();
        assert_eq!(windows.fetch(b"k", 0, 0).unwrap()[0].value, vec![2]);
        assert_eq!(windows.fetch_one(b"k", 0).unwrap(), Some(vec![2]));
        windows.put(b"k", 0, None).unwrap();
        assert!(windows.fetch(b"k", 0, 0).unwrap().is_empty());
        assert_eq!(windows.fetch_one(b"k", 0).unwrap(), None);
        assert_eq!(reads(), 1, "cached windows are answered by the cache");
        // An uncached window is read below, by the same one-window read.
        windows.put(b"j", 0, Some(vec![5])).unwrap();
        windows.flush().unwrap();
        assert_eq!(windows.fetch_one(b"j", 0).unwrap(), Some(vec![5]));
        assert_eq!(reads(), 2);
        // A cached window past retention is gone, as it is below.
        windows.put(b"k", 10, Some(vec![3])).unwrap();
        windows.put(b"other", 200, Some(vec![4])).unwrap();
        assert!(windows.fetch(b"k", 10, 10).unwrap().is_empty());
        assert_eq!(windows.fetch_one(b"k", 10).unwrap(), None);
        // A range of windows still merges the store's entries with the cache's.
        windows.fetch(b"k", 0, 10).unwrap();
        assert_eq!(reads(), 3);
    }
}
