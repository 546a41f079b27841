//! One partition's log: record batches appended to segment files as producers sent them,
//! an in-memory index of every batch (offsets, file position, timestamps), and what
//! transactions and idempotent producers need of it (open transactions, the last stable
//! offset, aborted transactions, each producer's last sequence numbers).
//!
//! A segment is a file `<base offset, 20 digits>.log` of batches back to back, in Kafka's
//! own on-disk format. Opening a partition reads every batch header once to rebuild the
//! index and the transaction and producer state; a batch cut short by a crash mid-write is
//! cut off (it was never acknowledged).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::records::{self, BatchHeader, HEADER_LEN};

/// Batches an idempotent producer may retry (Kafka keeps the last five per partition).
const RECENT_BATCHES: usize = 5;

/// One batch in the index.
#[derive(Debug, Clone, Copy)]
struct Entry {
    base_offset: i64,
    last_offset: i64,
    segment: usize,
    position: u64,
    size: u32,
    /// The largest record timestamp in this batch or any before it: non-decreasing, so
    /// the first batch holding a timestamp at or past `t` is found by binary search.
    max_timestamp_so_far: i64,
    control: bool,
}

struct Segment {
    base_offset: i64,
    path: PathBuf,
    file: File,
    len: u64,
}

/// A transaction aborted on this partition: its records lie in `first_offset..=last_offset`
/// (the last being the abort marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerState {
    epoch: i16,
    /// (first sequence, last sequence, base offset) of the latest batches.
    recent: VecDeque<(i32, i32, i64)>,
}

/// What became of a produced batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Written at this base offset.
    At(i64),
    /// A retry of a batch already written at this base offset: not written again.
    Duplicate(i64),
}

/// Why a produced batch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendError {
    /// The producer's epoch is older than one already seen: a fenced zombie.
    ProducerFenced,
    /// A sequence number gap: an earlier batch was lost.
    OutOfOrderSequence,
}

/// A partition's log.
pub(crate) struct PartitionLog {
    dir: PathBuf,
    segment_bytes: u64,
    segments: Vec<Segment>,
    index: Vec<Entry>,
    log_start: i64,
    next_offset: i64,
    /// Open transactions: producer id → offset of its first record here.
    ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions, in the order of their markers.
    aborted: Vec<AbortedTxn>,
    producers: HashMap<i64, ProducerState>,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, rebuilding its index from the segment files.
    pub fn open(dir: &Path, segment_bytes: u64, log_start: i64) -> io::Result<PartitionLog> {
        std::fs::create_dir_all(dir)?;
        let mut bases: Vec<(i64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let base = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<i64>().ok());
            if let Some(base) = base {
                bases.push((base, path));
            }
        }
        bases.sort();
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments: Vec::new(),
            index: Vec::new(),
            log_start,
            next_offset: log_start,
            ongoing: BTreeMap::new(),
            aborted: Vec::new(),
            producers: HashMap::new(),
        };
        for (base, path) in bases {
            let file = OpenOptions::new().read(true).append(true).open(&path)?;
            let segment = log.segments.len();
            log.segments.push(Segment {
                base_offset: base,
                path,
                file,
                len: 0,
            });
            log.load_segment(segment)?;
        }
        if log.next_offset < log_start {
            log.next_offset = log_start;
        }
        Ok(log)
    }

    fn load_segment(&mut self, segment: usize) -> io::Result<()> {
        let file_len = self.segments[segment].file.metadata()?.len();
        let mut position = 0u64;
        let mut header_buf = [0u8; HEADER_LEN];
        while position + HEADER_LEN as u64 <= file_len {
            self.segments[segment]
                .file
                .read_exact_at(&mut header_buf, position)?;
            let Some(header) = BatchHeader::parse(&header_buf) else {
                break;
            };
            if position + header.size as u64 > file_len {
                break;
            }
            let marker = if header.is_control() {
                let mut batch = vec![0u8; header.size];
                self.segments[segment]
                    .file
                    .read_exact_at(&mut batch, position)?;
                records::marker_kind(&batch)
            } else {
                None
            };
            self.index_batch(&header, segment, position, marker);
            position += header.size as u64;
        }
        if position < file_len {
            // A batch cut short by a crash: never acknowledged, so cut it off.
            self.segments[segment].file.set_len(position)?;
        }
        self.segments[segment].len = position;
        Ok(())
    }

    /// Adds a written batch to the index and the transaction and producer state.
    fn index_batch(
        &mut self,
        header: &BatchHeader,
        segment: usize,
        position: u64,
        marker: Option<bool>,
    ) {
        let previous_max = self
            .index
            .last()
            .map_or(i64::MIN, |e| e.max_timestamp_so_far);
        let timestamp = if header.is_control() {
            i64::MIN
        } else {
            header.max_timestamp
        };
        self.index.push(Entry {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            segment,
            position,
            size: header.size as u32,
            max_timestamp_so_far: previous_max.max(timestamp),
            control: header.is_control(),
        });
        self.next_offset = header.last_offset() + 1;
        if header.producer_id < 0 {
            return;
        }
        if let Some(commit) = marker {
            let first = self.ongoing.remove(&header.producer_id);
            if let (Some(first_offset), false) = (first, commit) {
                self.aborted.push(AbortedTxn {
                    producer_id: header.producer_id,
                    first_offset,
                    last_offset: header.base_offset,
                });
            }
            let state = self.producers.entry(header.producer_id).or_default();
            if header.producer_epoch > state.epoch {
                state.epoch = header.producer_epoch;
                state.recent.clear();
            }
            return;
        }
        if header.is_transactional() {
            self.ongoing
                .entry(header.producer_id)
                .or_insert(header.base_offset);
        }
        if header.base_sequence >= 0 {
            let state = self.producers.entry(header.producer_id).or_default();
            if header.producer_epoch != state.epoch {
                state.epoch = header.producer_epoch;
                state.recent.clear();
            }
            state.recent.push_back((
                header.base_sequence,
                header.last_sequence(),
                header.base_offset,
            ));
            if state.recent.len() > RECENT_BATCHES {
                state.recent.pop_front();
            }
        }
    }

    /// Appends batches a producer sent (already checked with [`records::split_batches`]).
    pub fn append(
        &mut self,
        batches: &[(BatchHeader, Bytes)],
    ) -> Result<Vec<Appended>, AppendError> {
        let mut results = Vec::with_capacity(batches.len());
        for (header, batch) in batches {
            if let Some(result) = self.check_sequence(header)? {
                results.push(result);
                continue;
            }
            let base = self.next_offset;
            let bytes = records::assign_offset(batch, base, 0);
            let mut header = *header;
            header.base_offset = base;
            self.write(&header, &bytes, None)
                .map_err(|_| AppendError::OutOfOrderSequence)?;
            results.push(Appended::At(base));
        }
        Ok(results)
    }

    /// Checks an idempotent batch's epoch and sequence: `Some` for a duplicate.
    fn check_sequence(&self, header: &BatchHeader) -> Result<Option<Appended>, AppendError> {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return Ok(None);
        }
        let Some(state) = self.producers.get(&header.producer_id) else {
            return Ok(None);
        };
        if header.producer_epoch < state.epoch {
            return Err(AppendError::ProducerFenced);
        }
        if header.producer_epoch > state.epoch {
            // A new epoch starts its sequences at zero.
            return if header.base_sequence == 0 {
                Ok(None)
            } else {
                Err(AppendError::OutOfOrderSequence)
            };
        }
        let last = header.last_sequence();
        if let Some(&(_, _, offset)) = state
            .recent
            .iter()
            .find(|(first, end, _)| *first == header.base_sequence && *end == last)
        {
            return Ok(Some(Appended::Duplicate(offset)));
        }
        match state.recent.back() {
            Some(&(_, previous, _)) => {
                let expected = if previous == i32::MAX {
                    0
                } else {
                    previous + 1
                };
                if header.base_sequence == expected {
                    Ok(None)
                } else {
                    Err(AppendError::OutOfOrderSequence)
                }
            }
            None => Ok(None),
        }
    }

    /// Writes a batch whose base offset is already assigned.
    fn write(
        &mut self,
        header: &BatchHeader,
        bytes: &[u8],
        marker: Option<bool>,
    ) -> io::Result<()> {
        let roll = match self.segments.last() {
            None => true,
            Some(s) => s.len >= self.segment_bytes,
        };
        if roll {
            let path = self.dir.join(format!("{:020}.log", header.base_offset));
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&path)?;
            self.segments.push(Segment {
                base_offset: header.base_offset,
                path,
                file,
                len: 0,
            });
        }
        let segment = self.segments.len() - 1;
        let active = &mut self.segments[segment];
        let position = active.len;
        if let Err(e) = active.file.write_all(bytes) {
            // Leave no partial batch behind.
            let _ = active.file.set_len(position);
            return Err(e);
        }
        active.len += bytes.len() as u64;
        self.index_batch(header, segment, position, marker);
        Ok(())
    }

    /// Ends `producer_id`'s transaction on this partition with a commit or abort marker.
    pub fn write_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        timestamp: i64,
    ) -> io::Result<i64> {
        let base = self.next_offset;
        let bytes = records::transaction_marker(base, producer_id, epoch, commit, timestamp);
        let header = BatchHeader::parse(&bytes).expect("a marker has a header");
        self.write(&header, &bytes, Some(commit))?;
        Ok(base)
    }

    /// The first offset not yet written (the high watermark: there are no replicas).
    pub fn high_watermark(&self) -> i64 {
        self.next_offset
    }

    /// The first offset still kept.
    pub fn log_start(&self) -> i64 {
        self.log_start
    }

    /// The offset `read_committed` readers stop before: the first record of the oldest
    /// open transaction, or the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        self.ongoing
            .values()
            .copied()
            .min()
            .unwrap_or(self.next_offset)
    }

    /// Producers with an open transaction here.
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.ongoing.iter().map(|(p, o)| (*p, *o)).collect()
    }

    /// The last epoch seen of each producer, for aborting transactions left open by a
    /// previous run.
    pub fn producer_epoch(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|s| s.epoch)
    }

    /// Reads whole batches from the one holding `offset`, below `limit`, at most
    /// `max_bytes` unless the first batch alone is larger and `at_least_one` is set.
    /// Returns the bytes and the last offset they hold.
    pub fn read(
        &self,
        offset: i64,
        limit: i64,
        max_bytes: usize,
        at_least_one: bool,
    ) -> io::Result<Option<(Bytes, i64)>> {
        let first = self.index.partition_point(|e| e.last_offset < offset);
        let Some(start) = self.index.get(first) else {
            return Ok(None);
        };
        if start.base_offset >= limit {
            return Ok(None);
        }
        let mut size = 0usize;
        let mut last = start.last_offset;
        for entry in &self.index[first..] {
            if entry.segment != start.segment || entry.base_offset >= limit {
                break;
            }
            let next = size + entry.size as usize;
            if next > max_bytes && !(size == 0 && at_least_one) {
                break;
            }
            size = next;
            last = entry.last_offset;
        }
        if size == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; size];
        self.segments[start.segment]
            .file
            .read_exact_at(&mut buf, start.position)?;
        Ok(Some((Bytes::from(buf), last)))
    }

    /// Transactions aborted on this partition that overlap `from..=to`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted[start..]
            .iter()
            .filter(|a| a.first_offset <= to)
            .copied()
            .collect()
    }

    /// The first offset whose record timestamp is at least `timestamp`, with that timestamp.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> io::Result<Option<(i64, i64)>> {
        let mut at = self
            .index
            .partition_point(|e| e.max_timestamp_so_far < timestamp);
        while let Some(entry) = self.index.get(at) {
            if !entry.control && entry.base_offset >= self.log_start {
                let mut buf = vec![0u8; entry.size as usize];
                self.segments[entry.segment]
                    .file
                    .read_exact_at(&mut buf, entry.position)?;
                if let Some(found) = records::first_offset_at_or_after(&Bytes::from(buf), timestamp)
                {
                    return Ok(Some(found));
                }
            }
            at += 1;
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp.
    pub fn max_timestamp(&self) -> io::Result<Option<(i64, i64)>> {
        let Some(max) = self.index.last().map(|e| e.max_timestamp_so_far) else {
            return Ok(None);
        };
        if max == i64::MIN {
            return Ok(None);
        }
        // The first batch reaching the maximum holds it; its record with that timestamp.
        self.offset_for_timestamp(max)
    }

    /// Moves the log start to `offset` (DeleteRecords), deleting segments wholly below it.
    pub fn delete_before(&mut self, offset: i64) -> io::Result<()> {
        let offset = offset.min(self.next_offset);
        if offset <= self.log_start {
            return Ok(());
        }
        self.log_start = offset;
        // A segment can go when the next one starts at or below the new log start.
        let mut remove = 0;
        while remove + 1 < self.segments.len() && self.segments[remove + 1].base_offset <= offset {
            remove += 1;
        }
        if remove > 0 {
            for segment in self.segments.drain(..remove) {
                std::fs::remove_file(&segment.path)?;
            }
            self.index.retain(|e| e.segment >= remove);
            for entry in &mut self.index {
                entry.segment -= remove;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::split_batches;

    /// An uncompressed v2 batch of `count` records with timestamps from `first_ts`.
    pub(crate) fn batch(
        count: i32,
        first_ts: i64,
        producer: Option<(i64, i16, i32)>,
        transactional: bool,
    ) -> Bytes {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let (producer_id, producer_epoch, sequence) = producer.unwrap_or((-1, -1, -1));
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder batches records whose offset minus sequence is constant.
                sequence: sequence + i,
                timestamp: first_ts + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    }

    fn append(log: &mut PartitionLog, bytes: Bytes) -> Result<Vec<Appended>, AppendError> {
        let batches = split_batches(&bytes).unwrap();
        log.append(&batches)
    }

    #[test]
    fn offsets_are_assigned_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(
            append(&mut log, batch(3, 100, None, false)).unwrap(),
            [Appended::At(0)]
        );
        assert_eq!(
            append(&mut log, batch(2, 200, None, false)).unwrap(),
            [Appended::At(3)]
        );
        assert_eq!(log.high_watermark(), 5);
        drop(log);
        let log = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(log.high_watermark(), 5);
        // Offset 4 is in the second batch: the read starts there.
        let (bytes, last) = log.read(4, 5, 1 << 20, true).unwrap().unwrap();
        assert_eq!(BatchHeader::parse(&bytes).unwrap().base_offset, 3);
        assert_eq!(last, 4);
        assert!(log.read(5, 5, 1 << 20, true).unwrap().is_none());
    }

    #[test]
    fn a_batch_cut_short_by_a_crash_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        append(&mut log, batch(3, 100, None, false)).unwrap();
        let path = log.segments[0].path.clone();
        drop(log);
        let whole = std::fs::metadata(&path).unwrap().len();
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&batch(2, 100, None, false)[..30]).unwrap();
        let log = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(log.high_watermark(), 3);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
    }

    #[test]
    fn reads_stop_at_the_byte_limit_and_segments_roll() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(1, 0, None, false).len() as u64;
        let mut log = PartitionLog::open(dir.path(), one * 3, 0).unwrap();
        for i in 0..10 {
            append(&mut log, batch(1, i, None, false)).unwrap();
        }
        assert_eq!(log.segments.len(), 4);
        let (bytes, last) = log.read(0, 10, one as usize * 2, true).unwrap().unwrap();
        assert_eq!((bytes.len() as u64, last), (one * 2, 1));
        // A read ends at its segment's end; the next read goes on from there.
        let (_, last) = log.read(0, 10, 1 << 20, true).unwrap().unwrap();
        assert_eq!(last, 2);
        // One batch larger than the limit still comes back when at least one must.
        let (bytes, _) = log.read(0, 10, 1, true).unwrap().unwrap();
        assert_eq!(bytes.len() as u64, one);
        assert!(log.read(0, 10, 1, false).unwrap().is_none());
        log.delete_before(7).unwrap();
        assert_eq!(log.segments.len(), 2);
        assert_eq!(log.log_start(), 7);
        let (bytes, _) = log.read(7, 10, 1 << 20, true).unwrap().unwrap();
        assert_eq!(BatchHeader::parse(&bytes).unwrap().base_offset, 7);
    }

    #[test]
    fn idempotent_retries_are_duplicates_and_gaps_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(
            append(&mut log, batch(2, 0, Some((9, 0, 0)), false)).unwrap(),
            [Appended::At(0)]
        );
        assert_eq!(
            append(&mut log, batch(2, 0, Some((9, 0, 2)), false)).unwrap(),
            [Appended::At(2)]
        );
        assert_eq!(
            append(&mut log, batch(2, 0, Some((9, 0, 0)), false)).unwrap(),
            [Appended::Duplicate(0)]
        );
        assert_eq!(
            append(&mut log, batch(1, 0, Some((9, 0, 7)), false)),
            Err(AppendError::OutOfOrderSequence)
        );
        // A new epoch starts again at zero; the old one is fenced.
        assert_eq!(
            append(&mut log, batch(1, 0, Some((9, 1, 0)), false)).unwrap(),
            [Appended::At(4)]
        );
        assert_eq!(
            append(&mut log, batch(1, 0, Some((9, 0, 4)), false)),
            Err(AppendError::ProducerFenced)
        );
        assert_eq!(log.high_watermark(), 5);
        // The producer state is rebuilt from the log.
        drop(log);
        let mut log = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(
            append(&mut log, batch(1, 0, Some((9, 1, 0)), false)).unwrap(),
            [Appended::Duplicate(4)]
        );
    }

    #[test]
    fn transactions_hold_back_the_stable_offset_and_aborts_are_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        append(&mut log, batch(1, 0, None, false)).unwrap(); // 0
        append(&mut log, batch(2, 0, Some((5, 0, 0)), true)).unwrap(); // 1, 2
        append(&mut log, batch(1, 0, Some((6, 0, 0)), true)).unwrap(); // 3
        assert_eq!(log.last_stable_offset(), 1);
        assert_eq!(log.write_marker(5, 0, false, 0).unwrap(), 4);
        assert_eq!(log.last_stable_offset(), 3);
        assert_eq!(log.write_marker(6, 0, true, 0).unwrap(), 5);
        assert_eq!(log.last_stable_offset(), 6);
        let aborted = AbortedTxn {
            producer_id: 5,
            first_offset: 1,
            last_offset: 4,
        };
        assert_eq!(log.aborted_between(0, 10), [aborted]);
        assert_eq!(log.aborted_between(5, 10), []);
        assert_eq!(log.aborted_between(0, 0), []);
        drop(log);
        let log = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        assert_eq!(log.aborted_between(0, 10), [aborted]);
        assert_eq!(log.last_stable_offset(), 6);
        assert!(log.open_transactions().is_empty());
    }

    #[test]
    fn offsets_are_found_by_record_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), 1 << 20, 0).unwrap();
        append(&mut log, batch(3, 100, None, false)).unwrap(); // 0..=2 at 100..=102
        append(&mut log, batch(3, 50, None, false)).unwrap(); // 3..=5 at 50..=52
        append(&mut log, batch(3, 200, None, false)).unwrap(); // 6..=8 at 200..=202
        assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 100)));
        assert_eq!(log.offset_for_timestamp(101).unwrap(), Some((1, 101)));
        assert_eq!(log.offset_for_timestamp(150).unwrap(), Some((6, 200)));
        assert_eq!(log.offset_for_timestamp(203).unwrap(), None);
        assert_eq!(log.max_timestamp().unwrap(), Some((8, 202)));
    }
}
