//! In-memory bytes stores: sorted maps behind a lock, so interactive queries on other threads
//! can read while the owning task writes.

use std::collections::BTreeMap;
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

/// Segments of a window store: window start → (key, sequence number) → value.
struct WindowState {
    segments: BTreeMap<i64, BTreeMap<(Vec<u8>, u32), Vec<u8>>>,
    observed_stream_time: i64,
    seq: u32,
    entries: u64,
}

/// A window store on nested sorted maps, expiring windows older than its retention.
pub(crate) struct InMemoryWindowStore {
    spec: WindowSpec,
    state: Mutex<WindowState>,
}

impl InMemoryWindowStore {
    pub(crate) fn new(spec: WindowSpec) -> Self {
        InMemoryWindowStore {
            spec,
            state: Mutex::new(WindowState {
                segments: BTreeMap::new(),
                observed_stream_time: i64::MIN,
                seq: 0,
                entries: 0,
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
        state.observed_stream_time = state.observed_stream_time.max(start);
        let min_live = state
            .observed_stream_time
            .saturating_sub(self.spec.retention)
            .saturating_add(1);
        if start < min_live {
            return Ok(false);
        }
        // Expire whole segments that fell out of retention.
        let live = state.segments.split_off(&min_live);
        let expired: u64 = state.segments.values().map(|s| s.len() as u64).sum();
        state.segments = live;
        state.entries -= expired;
        match value {
            Some(value) => {
                let seq = if self.spec.retain_duplicates {
                    state.seq = state.seq.wrapping_add(1);
                    state.seq
                } else {
                    0
                };
                let previous = state
                    .segments
                    .entry(start)
                    .or_default()
                    .insert((key.to_vec(), seq), value);
                if previous.is_none() {
                    state.entries += 1;
                }
            }
            None if self.spec.retain_duplicates => {}
            None => {
                let state = &mut *state;
                if let Some(segment) = state.segments.get_mut(&start) {
                    if segment.remove(&(key.to_vec(), 0)).is_some() {
                        state.entries -= 1;
                    }
                    if segment.is_empty() {
                        state.segments.remove(&start);
                    }
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
        let lo = (key.to_vec(), 0u32);
        let hi = (key.to_vec(), u32::MAX);
        let mut out = Vec::new();
        for (start, segment) in state.segments.range(from..=to) {
            for ((k, _), v) in segment.range(lo.clone()..=hi.clone()) {
                out.push(WindowEntry {
                    key: k.clone(),
                    start: *start,
                    value: v.clone(),
                });
            }
        }
        Ok(out)
    }

    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let state = self.lock();
        Ok(state
            .segments
            .range(from..=to)
            .flat_map(|(start, segment)| {
                segment.iter().map(move |((k, _), v)| WindowEntry {
                    key: k.clone(),
                    start: *start,
                    value: v.clone(),
                })
            })
            .collect())
    }

    fn window_size(&self) -> i64 {
        self.spec.size
    }

    fn approximate_num_entries(&self) -> u64 {
        self.lock().entries
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
