//! In-memory bytes stores: sorted maps behind a lock, so interactive queries on other threads
//! can read while the owning task writes.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, RwLock};

use super::{KeyValueBytesStore, StoreError, WindowBytesStore, WindowEntry, WindowSpec};

/// A key-value store on a `BTreeMap`.
#[derive(Default)]
pub(crate) struct InMemoryKeyValueStore {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl InMemoryKeyValueStore {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

fn bound(b: Option<&[u8]>) -> Bound<&[u8]> {
    b.map_or(Bound::Unbounded, Bound::Included)
}

impl KeyValueBytesStore for InMemoryKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        Ok(map.get(key).cloned())
    }

    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.insert(key, value);
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        Ok(map.remove(key))
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
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        Ok(map
            .range::<[u8], _>((bound(from), bound(to)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn approximate_num_entries(&self) -> u64 {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    fn prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        Ok(map
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// A window store's entries, indexed twice: by key (for `fetch`, the hot path of joins and
/// windowed aggregations, which then costs the entries of that key only) and by window start
/// (for expiry and `fetch_all`).
struct WindowState {
    /// (key, window start, sequence number) → value.
    by_key: BTreeMap<(Vec<u8>, i64, u32), Vec<u8>>,
    /// (window start, key, sequence number) of every entry.
    by_time: BTreeSet<(i64, Vec<u8>, u32)>,
    observed_stream_time: i64,
    seq: u32,
}

/// A window store on sorted maps, expiring windows older than its retention.
pub(crate) struct InMemoryWindowStore {
    spec: WindowSpec,
    state: Mutex<WindowState>,
}

impl InMemoryWindowStore {
    pub(crate) fn new(spec: WindowSpec) -> Self {
        InMemoryWindowStore {
            spec,
            state: Mutex::new(WindowState {
                by_key: BTreeMap::new(),
                by_time: BTreeSet::new(),
                observed_stream_time: i64::MIN,
                seq: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WindowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WindowBytesStore for InMemoryWindowStore {
    fn put(&self, key: &[u8], start: i64, value: Option<Vec<u8>>) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let state = &mut *state;
        state.observed_stream_time = state.observed_stream_time.max(start);
        let min_live = state
            .observed_stream_time
            .saturating_sub(self.spec.retention)
            .saturating_add(1);
        if start < min_live {
            return Ok(false);
        }
        // Expire the windows that fell out of retention, oldest first.
        while state.by_time.first().is_some_and(|(s, _, _)| *s < min_live) {
            if let Some((s, k, seq)) = state.by_time.pop_first() {
                state.by_key.remove(&(k, s, seq));
            }
        }
        match value {
            Some(value) => {
                let seq = if self.spec.retain_duplicates {
                    state.seq = state.seq.wrapping_add(1);
                    state.seq
                } else {
                    0
                };
                if state
                    .by_key
                    .insert((key.to_vec(), start, seq), value)
                    .is_none()
                {
                    state.by_time.insert((start, key.to_vec(), seq));
                }
            }
            None if self.spec.retain_duplicates => {}
            None => {
                let entry = (key.to_vec(), start, 0);
                if state.by_key.remove(&entry).is_some() {
                    let (k, s, seq) = entry;
                    state.by_time.remove(&(s, k, seq));
                }
            }
        }
        Ok(true)
    }

    fn fetch(&self, key: &[u8], from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let state = self.lock();
        let lo = (key.to_vec(), from, 0u32);
        let hi = (key.to_vec(), to, u32::MAX);
        Ok(state
            .by_key
            .range(lo..=hi)
            .map(|((k, start, _), v)| WindowEntry {
                key: k.clone(),
                start: *start,
                value: v.clone(),
            })
            .collect())
    }

    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let state = self.lock();
        let lo = (from, Vec::new(), 0u32);
        Ok(state
            .by_time
            .range(lo..)
            .take_while(|(start, _, _)| *start <= to)
            .filter_map(|(start, k, seq)| {
                let value = state.by_key.get(&(k.clone(), *start, *seq))?;
                Some(WindowEntry {
                    key: k.clone(),
                    start: *start,
                    value: value.clone(),
                })
            })
            .collect())
    }

    fn window_size(&self) -> i64 {
        self.spec.size
    }

    fn approximate_num_entries(&self) -> u64 {
        self.lock().by_key.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_range_is_inclusive_and_ordered() {
        let s = InMemoryKeyValueStore::new();
        for k in [b"a", b"c", b"b", b"d"] {
            s.put(k.to_vec(), k.to_vec()).unwrap();
        }
        let keys: Vec<_> = s
            .range(Some(b"b"), Some(b"c"))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
        assert!(s.range(Some(b"d"), Some(b"a")).unwrap().is_empty());
        assert_eq!(s.delete(b"a").unwrap(), Some(b"a".to_vec()));
        assert_eq!(s.approximate_num_entries(), 3);
    }

    #[test]
    fn window_store_expires_and_drops_writes_past_retention() {
        let s = InMemoryWindowStore::new(WindowSpec {
            size: 10,
            retention: 100,
            retain_duplicates: false,
        });
        assert!(s.put(b"k", 0, Some(vec![1])).unwrap());
        assert!(s.put(b"k", 50, Some(vec![2])).unwrap());
        assert!(s.put(b"k", 50, Some(vec![3])).unwrap());
        assert_eq!(s.approximate_num_entries(), 2);
        // Stream time 120: windows starting at or before 20 are gone.
        assert!(s.put(b"j", 120, Some(vec![4])).unwrap());
        assert!(!s.put(b"k", 10, Some(vec![5])).unwrap());
        let got: Vec<_> = s
            .fetch(b"k", 0, 200)
            .unwrap()
            .into_iter()
            .map(|e| (e.start, e.value))
            .collect();
        assert_eq!(got, vec![(50, vec![3])]);
        assert_eq!(s.fetch_all(0, 200).unwrap().len(), 2);
        s.put(b"k", 50, None).unwrap();
        assert_eq!(s.approximate_num_entries(), 1);
    }

    #[test]
    fn window_store_keeps_duplicates_when_asked() {
        let s = InMemoryWindowStore::new(WindowSpec {
            size: 10,
            retention: 100,
            retain_duplicates: true,
        });
        s.put(b"k", 5, Some(vec![1])).unwrap();
        s.put(b"k", 5, Some(vec![2])).unwrap();
        let values: Vec<_> = s
            .fetch(b"k", 5, 5)
            .unwrap()
            .into_iter()
            .map(|e| e.value)
            .collect();
        assert_eq!(values, vec![vec![1], vec![2]]);
    }
}
