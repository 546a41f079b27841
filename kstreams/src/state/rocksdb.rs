//! RocksDB bytes stores: key-value and window stores kept on disk under their task's
//! directory (`<state-dir>/<application-id>/<task-id>/rocksdb/<store>`), so a restarted
//! instance finds its state where it left it and restores only the changelog tail.
//!
//! Every store of a process shares one block cache and one write-buffer budget
//! ([`RocksDbShared`]), so memory is bounded by configuration however many tasks run.
//! The write-ahead log stays on (without fsync): what a store acknowledged survives a crash of
//! the process, which is what makes a checkpoint written after it trustworthy.
//!
//! Window stores keep one key space per time segment (`[segment][key length][key][window
//! start][sequence]`), so expiring a segment is one range delete.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, Direction, IteratorMode, Options, ReadOptions,
    WriteBatch, WriteBufferManager, WriteOptions, DB,
};

use super::{
    from_ordered, ordered, KeyValueBytesStore, StoreError, WindowBytesStore, WindowEntry,
    WindowSpec,
};

/// Memory shared by every RocksDB store of a process: one LRU block cache, and one budget for
/// memtables that is charged to that cache.
#[derive(Clone)]
pub(crate) struct RocksDbShared {
    cache: Cache,
    write_buffers: WriteBufferManager,
}

impl RocksDbShared {
    pub(crate) fn new(block_cache_bytes: usize, write_buffer_bytes: usize) -> Self {
        let cache = Cache::new_lru_cache(block_cache_bytes.max(1 << 20));
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(
            write_buffer_bytes.max(1 << 20),
            false,
            cache.clone(),
        );
        RocksDbShared {
            cache,
            write_buffers,
        }
    }

    fn options(&self) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_bloom_filter(10.0, false);
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_block_based_table_factory(&table);
        options.set_write_buffer_manager(&self.write_buffers);
        options.set_compression_type(DBCompressionType::Lz4);
        options.set_write_buffer_size(8 << 20);
        options.set_max_write_buffer_number(3);
        options.set_max_background_jobs(2);
        options.set_keep_log_file_num(2);
        options
    }

    /// Bytes in the block cache, memtables included.
    pub(crate) fn cache_usage(&self) -> usize {
        self.cache.get_usage()
    }
}

fn storage(store: &str) -> impl Fn(rocksdb::Error) -> StoreError + '_ {
    move |e| StoreError::Storage {
        store: store.to_string(),
        message: e.into_string(),
    }
}

fn open(name: &str, path: &Path, shared: &RocksDbShared) -> Result<DB, StoreError> {
    std::fs::create_dir_all(path).map_err(|e| StoreError::Storage {
        store: name.to_string(),
        message: format!("cannot create {}: {e}", path.display()),
    })?;
    DB::open(&shared.options(), path).map_err(storage(name))
}

/// Entries from `from` (inclusive; absent: the first key) in key order, until `past_end`
/// says a key is beyond the range.
fn scan(
    db: &DB,
    name: &str,
    from: Option<&[u8]>,
    past_end: impl Fn(&[u8]) -> bool,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
    let mut read = ReadOptions::default();
    if let Some(from) = from {
        read.set_iterate_lower_bound(from.to_vec());
    }
    let mode = match from {
        Some(from) => IteratorMode::From(from, Direction::Forward),
        None => IteratorMode::Start,
    };
    let mut out = Vec::new();
    for item in db.iterator_opt(mode, read) {
        let (k, v) = item.map_err(storage(name))?;
        if past_end(&k) {
            break;
        }
        out.push((k.into_vec(), v.into_vec()));
    }
    Ok(out)
}

/// A key-value store in its own RocksDB database.
pub(crate) struct RocksDbKeyValueStore {
    name: Arc<str>,
    db: DB,
    write: WriteOptions,
}

impl RocksDbKeyValueStore {
    pub(crate) fn open(
        name: Arc<str>,
        path: &Path,
        shared: &RocksDbShared,
    ) -> Result<Self, StoreError> {
        let db = open(&name, path, shared)?;
        Ok(RocksDbKeyValueStore {
            name,
            db,
            write: WriteOptions::default(),
        })
    }
}

impl KeyValueBytesStore for RocksDbKeyValueStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(key).map_err(storage(&self.name))
    }

    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        self.db
            .put_opt(key, value, &self.write)
            .map_err(storage(&self.name))
    }

    fn delete(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.get(key)?;
        if old.is_some() {
            self.db
                .delete_opt(key, &self.write)
                .map_err(storage(&self.name))?;
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
        scan(&self.db, &self.name, from, |k| to.is_some_and(|to| k > to))
    }

    fn approximate_num_entries(&self) -> u64 {
        self.db
            .property_int_value("rocksdb.estimate-num-keys")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    fn prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        scan(&self.db, &self.name, Some(prefix), |k| {
            !k.starts_with(prefix)
        })
    }

    fn apply_batch(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        let mut write = WriteBatch::default();
        for (key, value) in batch {
            match value {
                Some(value) => write.put(key, value),
                None => write.delete(key),
            }
        }
        self.db
            .write_opt(write, &self.write)
            .map_err(storage(&self.name))
    }
}

/// Segment bookkeeping of a window store.
struct Segments {
    /// Ids of segments that may hold entries.
    live: BTreeSet<i64>,
    observed_stream_time: i64,
    seq: u32,
}

/// A window store in its own RocksDB database, one key range per time segment.
pub(crate) struct RocksDbWindowStore {
    name: Arc<str>,
    db: DB,
    spec: WindowSpec,
    /// Width of a segment in milliseconds.
    interval: i64,
    write: WriteOptions,
    segments: Mutex<Segments>,
}

/// `[segment][key length][key][window start][sequence]`.
fn window_key(segment: i64, key: &[u8], start: i64, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + key.len());
    out.extend_from_slice(&ordered(segment));
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&ordered(start));
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

fn split_window_key(bytes: &[u8]) -> Option<(&[u8], i64)> {
    let len = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
    let key = bytes.get(12..12 + len)?;
    let start = bytes.get(12 + len..20 + len)?;
    (bytes.len() == 24 + len).then(|| (key, from_ordered(start)))
}

impl RocksDbWindowStore {
    pub(crate) fn open(
        name: Arc<str>,
        path: &Path,
        spec: WindowSpec,
        shared: &RocksDbShared,
    ) -> Result<Self, StoreError> {
        let db = open(&name, path, shared)?;
        // Kafka Streams' default: segments of half the retention, at least a minute.
        let interval = (spec.retention / 2).max(60_000);
        let mut live = BTreeSet::new();
        // Find the segments present: seek to each next segment id in turn.
        let mut next = i64::MIN;
        loop {
            let seek = ordered(next);
            let mut iter = db.iterator(IteratorMode::From(&seek, Direction::Forward));
            let Some(item) = iter.next() else { break };
            let (k, _) = item.map_err(storage(&name))?;
            if k.len() < 8 {
                break;
            }
            let segment = from_ordered(&k);
            live.insert(segment);
            if segment == i64::MAX {
                break;
            }
            next = segment + 1;
        }
        let observed_stream_time = live.last().map_or(i64::MIN, |s| s.saturating_mul(interval));
        // A reopened store continues its duplicate sequence far from the numbers it used.
        let seq = if live.is_empty() {
            0
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u32)
        };
        Ok(RocksDbWindowStore {
            name,
            db,
            spec,
            interval,
            write: WriteOptions::default(),
            segments: Mutex::new(Segments {
                live,
                observed_stream_time,
                seq,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Segments> {
        self.segments.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn segment_of(&self, start: i64) -> i64 {
        start.div_euclid(self.interval)
    }

    fn min_live(segments: &Segments, retention: i64) -> i64 {
        segments
            .observed_stream_time
            .saturating_sub(retention)
            .saturating_add(1)
    }

    /// Applies one write to `batch`; returns false when the window is past retention.
    fn stage(
        &self,
        segments: &mut Segments,
        batch: &mut WriteBatch,
        key: &[u8],
        start: i64,
        value: Option<Vec<u8>>,
    ) -> bool {
        segments.observed_stream_time = segments.observed_stream_time.max(start);
        let min_live = Self::min_live(segments, self.spec.retention);
        if start < min_live {
            return false;
        }
        // Drop whole segments that ended before the oldest live window.
        let oldest_live_segment = self.segment_of(min_live);
        let expired: Vec<i64> = segments
            .live
            .range(..oldest_live_segment)
            .copied()
            .collect();
        for segment in expired {
            batch.delete_range(ordered(segment), ordered(segment.saturating_add(1)));
            segments.live.remove(&segment);
        }
        let segment = self.segment_of(start);
        match value {
            Some(value) => {
                let seq = if self.spec.retain_duplicates {
                    segments.seq = segments.seq.wrapping_add(1);
                    segments.seq
                } else {
                    0
                };
                segments.live.insert(segment);
                batch.put(window_key(segment, key, start, seq), value);
            }
            // Duplicates are never deleted one by one; they expire with their segment.
            None if self.spec.retain_duplicates => {}
            None => batch.delete(window_key(segment, key, start, 0)),
        }
        true
    }

    /// Live entries between two store keys (inclusive) with a window start in `range`.
    fn entries(
        &self,
        from: &[u8],
        to: &[u8],
        min_live: i64,
        range: (i64, i64),
    ) -> Result<Vec<(Vec<u8>, i64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for (k, value) in scan(&self.db, &self.name, Some(from), |k| k > to)? {
            let Some((_, start)) = split_window_key(&k) else {
                continue;
            };
            if start >= min_live && start >= range.0 && start <= range.1 {
                out.push((k.clone(), start, value));
            }
        }
        Ok(out)
    }
}

fn entry(store_key: Vec<u8>, start: i64, value: Vec<u8>) -> WindowEntry {
    let key = split_window_key(&store_key).map_or_else(Vec::new, |(k, _)| k.to_vec());
    WindowEntry { key, start, value }
}

impl WindowBytesStore for RocksDbWindowStore {
    fn put(&self, key: &[u8], start: i64, value: Option<Vec<u8>>) -> Result<bool, StoreError> {
        let mut batch = WriteBatch::default();
        let accepted = {
            let mut segments = self.lock();
            self.stage(&mut segments, &mut batch, key, start, value)
        };
        if !batch.is_empty() {
            self.db
                .write_opt(batch, &self.write)
                .map_err(storage(&self.name))?;
        }
        Ok(accepted)
    }

    fn fetch(&self, key: &[u8], from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        if from == to && !self.spec.retain_duplicates {
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
        let (live, min_live) = {
            let segments = self.lock();
            let first = self.segment_of(from);
            let last = self.segment_of(to);
            let live: Vec<i64> = segments.live.range(first..=last).copied().collect();
            (live, Self::min_live(&segments, self.spec.retention))
        };
        let mut out = Vec::new();
        for segment in live {
            let lo = window_key(segment, key, from, 0);
            let hi = window_key(segment, key, to, u32::MAX);
            out.extend(
                self.entries(&lo, &hi, min_live, (from, to))?
                    .into_iter()
                    .map(|(k, start, v)| entry(k, start, v)),
            );
        }
        Ok(out)
    }

    fn fetch_one(&self, key: &[u8], start: i64) -> Result<Option<Vec<u8>>, StoreError> {
        if self.spec.retain_duplicates {
            return Ok(self
                .fetch(key, start, start)?
                .into_iter()
                .next()
                .map(|e| e.value));
        }
        // One window, so at most one entry: a point read, no iterator.
        let segment = {
            let segments = self.lock();
            let segment = self.segment_of(start);
            let live = segments.live.contains(&segment);
            (live && start >= Self::min_live(&segments, self.spec.retention)).then_some(segment)
        };
        let Some(segment) = segment else {
            return Ok(None);
        };
        let found = self
            .db
            .get_pinned(window_key(segment, key, start, 0))
            .map_err(storage(&self.name))?;
        Ok(found.map(|value| value.to_vec()))
    }

    fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let min_live = Self::min_live(&self.lock(), self.spec.retention);
        let lo = ordered(self.segment_of(from));
        let mut hi = ordered(self.segment_of(to)).to_vec();
        // Past every key of the last segment: its id followed by more than any key holds.
        hi.resize(hi.len() + 64, 0xff);
        let mut raw = self.entries(&lo, &hi, min_live, (from, to))?;
        // Segments hold keys in key order; the answer is ordered by start, then key.
        let order = |k: &[u8]| {
            let key = split_window_key(k).map_or(&[][..], |(key, _)| key);
            (key.to_vec(), k[k.len() - 4..].to_vec())
        };
        raw.sort_by_cached_key(|(k, start, _)| (*start, order(k)));
        Ok(raw
            .into_iter()
            .map(|(k, start, v)| entry(k, start, v))
            .collect())
    }

    fn window_size(&self) -> i64 {
        self.spec.size
    }

    fn approximate_num_entries(&self) -> u64 {
        self.db
            .property_int_value("rocksdb.estimate-num-keys")
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    fn apply_batch(&self, batch: Vec<(Vec<u8>, i64, Option<Vec<u8>>)>) -> Result<(), StoreError> {
        let mut write = WriteBatch::default();
        {
            let mut segments = self.lock();
            for (key, start, value) in batch {
                self.stage(&mut segments, &mut write, &key, start, value);
            }
        }
        self.db
            .write_opt(write, &self.write)
            .map_err(storage(&self.name))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::state::caching::{CachingKeyValueStore, CachingWindowStore};
    use crate::state::{InMemoryKeyValueStore, InMemoryWindowStore};

    fn shared() -> RocksDbShared {
        RocksDbShared::new(8 << 20, 8 << 20)
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "kstreams-rocksdb-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ))
    }

    #[derive(Debug, Clone)]
    enum KvOp {
        Put(Vec<u8>, Vec<u8>),
        Delete(Vec<u8>),
        Range(Option<Vec<u8>>, Option<Vec<u8>>),
        Prefix(Vec<u8>),
        Get(Vec<u8>),
        Flush,
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // Short keys from a small alphabet, with 0x00 and 0xff, so ranges, prefixes and
        // overwrites collide often.
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1), Just(0x7f), Just(0xff)],
            0..4,
        )
    }

    fn kv_op() -> impl Strategy<Value = KvOp> {
        prop_oneof![
            4 => (key(), proptest::collection::vec(any::<u8>(), 0..6)).prop_map(|(k, v)| KvOp::Put(k, v)),
            2 => key().prop_map(KvOp::Delete),
            2 => (proptest::option::of(key()), proptest::option::of(key())).prop_map(|(a, b)| KvOp::Range(a, b)),
            1 => key().prop_map(KvOp::Prefix),
            2 => key().prop_map(KvOp::Get),
            1 => Just(KvOp::Flush),
        ]
    }

    fn run_kv(
        ops: &[KvOp],
        a: &dyn KeyValueBytesStore,
        b: &dyn KeyValueBytesStore,
    ) -> Result<(), TestCaseError> {
        for op in ops {
            match op {
                KvOp::Put(k, v) => {
                    a.put(k.clone(), v.clone()).unwrap();
                    b.put(k.clone(), v.clone()).unwrap();
                }
                KvOp::Delete(k) => prop_assert_eq!(a.delete(k).unwrap(), b.delete(k).unwrap()),
                KvOp::Range(from, to) => prop_assert_eq!(
                    a.range(from.as_deref(), to.as_deref()).unwrap(),
                    b.range(from.as_deref(), to.as_deref()).unwrap()
                ),
                KvOp::Prefix(p) => prop_assert_eq!(a.prefix(p).unwrap(), b.prefix(p).unwrap()),
                KvOp::Get(k) => prop_assert_eq!(a.get(k).unwrap(), b.get(k).unwrap()),
                KvOp::Flush => {
                    a.flush().unwrap();
                    b.flush().unwrap();
                }
            }
        }
        prop_assert_eq!(a.range(None, None).unwrap(), b.range(None, None).unwrap());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn rocksdb_and_in_memory_key_value_stores_agree(ops in proptest::collection::vec(kv_op(), 1..60)) {
            let path = temp_path("kv");
            {
                let rocks = RocksDbKeyValueStore::open("s".into(), &path, &shared()).unwrap();
                let memory = InMemoryKeyValueStore::new();
                run_kv(&ops, &rocks, &memory)?;
            }
            std::fs::remove_dir_all(&path).unwrap();
        }

        #[test]
        fn a_cache_over_either_store_answers_as_the_store_alone(ops in proptest::collection::vec(kv_op(), 1..60)) {
            let path = temp_path("cached-kv");
            {
                let rocks: Arc<dyn KeyValueBytesStore> =
                    Arc::new(RocksDbKeyValueStore::open("s".into(), &path, &shared()).unwrap());
                // A tiny bound makes the cache evict in the middle of a run, too.
                let cached = CachingKeyValueStore::new(rocks, 300);
                let memory = InMemoryKeyValueStore::new();
                run_kv(&ops, &cached, &memory)?;
            }
            std::fs::remove_dir_all(&path).unwrap();
        }
    }

    #[derive(Debug, Clone)]
    enum WinOp {
        Put(Vec<u8>, i64, Option<Vec<u8>>),
        Fetch(Vec<u8>, i64, i64),
        FetchAll(i64, i64),
        Flush,
    }

    fn win_op() -> impl Strategy<Value = WinOp> {
        let time = 0i64..400;
        // Window starts on a grid of the window size, as a windowed aggregation writes
        // them, so that single-window fetches (a point read) often find their window.
        let grid = (0i64..40).prop_map(|t| t * 10);
        let value =
            || proptest::option::weighted(0.85, proptest::collection::vec(any::<u8>(), 1..4));
        prop_oneof![
            3 => (key(), time.clone(), value()).prop_map(|(k, t, v)| WinOp::Put(k, t, v)),
            2 => (key(), grid.clone(), value()).prop_map(|(k, t, v)| WinOp::Put(k, t, v)),
            2 => (key(), time.clone(), time.clone()).prop_map(|(k, a, b)| WinOp::Fetch(k, a, b)),
            2 => (key(), grid).prop_map(|(k, t)| WinOp::Fetch(k, t, t)),
            2 => (time.clone(), time).prop_map(|(a, b)| WinOp::FetchAll(a, b)),
            1 => Just(WinOp::Flush),
        ]
    }

    fn entries(e: Vec<WindowEntry>) -> Vec<(Vec<u8>, i64, Vec<u8>)> {
        e.into_iter().map(|e| (e.key, e.start, e.value)).collect()
    }

    fn run_window(
        ops: &[WinOp],
        a: &dyn WindowBytesStore,
        b: &dyn WindowBytesStore,
    ) -> Result<(), TestCaseError> {
        for op in ops {
            match op {
                WinOp::Put(k, t, v) => prop_assert_eq!(
                    a.put(k, *t, v.clone()).unwrap(),
                    b.put(k, *t, v.clone()).unwrap()
                ),
                WinOp::Fetch(k, from, to) => prop_assert_eq!(
                    entries(a.fetch(k, *from, *to).unwrap()),
                    entries(b.fetch(k, *from, *to).unwrap())
                ),
                WinOp::FetchAll(from, to) => prop_assert_eq!(
                    entries(a.fetch_all(*from, *to).unwrap()),
                    entries(b.fetch_all(*from, *to).unwrap())
                ),
                WinOp::Flush => {
                    a.flush().unwrap();
                    b.flush().unwrap();
                }
            }
        }
        prop_assert_eq!(
            entries(a.fetch_all(i64::MIN, i64::MAX).unwrap()),
            entries(b.fetch_all(i64::MIN, i64::MAX).unwrap())
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn rocksdb_and_in_memory_window_stores_agree(
            ops in proptest::collection::vec(win_op(), 1..60),
            duplicates in any::<bool>(),
        ) {
            // Retention 150 ms: with times up to 400, windows expire during a run.
            let spec = WindowSpec { size: 10, retention: 150, retain_duplicates: duplicates };
            let ops: Vec<WinOp> = ops
                .into_iter()
                .filter(|op| !(duplicates && matches!(op, WinOp::Put(_, _, None))))
                .collect();
            let path = temp_path("window");
            {
                let rocks = RocksDbWindowStore::open("w".into(), &path, spec, &shared()).unwrap();
                let memory = InMemoryWindowStore::new(spec);
                run_window(&ops, &rocks, &memory)?;
            }
            std::fs::remove_dir_all(&path).unwrap();
        }

        #[test]
        fn a_window_cache_answers_as_the_store_alone(ops in proptest::collection::vec(win_op(), 1..60)) {
            let spec = WindowSpec { size: 10, retention: 150, retain_duplicates: false };
            let path = temp_path("cached-window");
            {
                let rocks: Arc<dyn WindowBytesStore> =
                    Arc::new(RocksDbWindowStore::open("w".into(), &path, spec, &shared()).unwrap());
                let cached = CachingWindowStore::new(rocks, spec, 200);
                let memory = InMemoryWindowStore::new(spec);
                run_window(&ops, &cached, &memory)?;
            }
            std::fs::remove_dir_all(&path).unwrap();
        }
    }

    #[test]
    fn a_reopened_store_keeps_its_data() {
        let path = temp_path("reopen");
        let shared = shared();
        {
            let kv = RocksDbKeyValueStore::open("s".into(), &path.join("kv"), &shared).unwrap();
            kv.apply_batch(vec![
                (b"a".to_vec(), Some(b"1".to_vec())),
                (b"b".to_vec(), Some(b"2".to_vec())),
            ])
            .unwrap();
            let w = RocksDbWindowStore::open(
                "w".into(),
                &path.join("w"),
                WindowSpec {
                    size: 10,
                    retention: 1_000_000,
                    retain_duplicates: false,
                },
                &shared,
            )
            .unwrap();
            w.put(b"k", 120_000, Some(b"v".to_vec())).unwrap();
        }
        let kv = RocksDbKeyValueStore::open("s".into(), &path.join("kv"), &shared).unwrap();
        assert_eq!(kv.get(b"b").unwrap(), Some(b"2".to_vec()));
        let w = RocksDbWindowStore::open(
            "w".into(),
            &path.join("w"),
            WindowSpec {
                size: 10,
                retention: 1_000_000,
                retain_duplicates: false,
            },
            &shared,
        )
        .unwrap();
        assert_eq!(
            entries(w.fetch(b"k", 0, i64::MAX).unwrap()),
            vec![(b"k".to_vec(), 120_000, b"v".to_vec())]
        );
        drop((kv, w));
        std::fs::remove_dir_all(&path).unwrap();
    }
}
