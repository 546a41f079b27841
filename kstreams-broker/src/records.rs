//! Kafka record batches (format v2) as the broker sees them: a header to read and two fields
//! to assign (base offset and leader epoch, both outside the checksum), the records left as
//! the producer encoded and compressed them. Also the one batch the broker writes itself,
//! the transaction marker.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of a batch header: the fields up to and including the record count.
pub(crate) const HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s count starts: base offset and the length itself.
pub(crate) const LOG_OVERHEAD: usize = 12;

const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// A batch's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub base_offset: i64,
    /// Bytes of the whole batch, header included.
    pub size: usize,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `buf`; `None` when `buf` holds less than a header,
    /// the magic is not 2 or the length is impossible.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        let mut b = buf;
        let base_offset = b.get_i64();
        let length = b.get_i32();
        let _leader_epoch = b.get_i32();
        let magic = b.get_i8();
        if magic != 2 || length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return None;
        }
        let _crc = b.get_u32();
        Some(BatchHeader {
            base_offset,
            size: length as usize + LOG_OVERHEAD,
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            record_count: b.get_i32(),
        })
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// The last sequence number of an idempotent batch (sequences wrap at `i32::MAX`).
    pub fn last_sequence(&self) -> i32 {
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Why a produced batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvalidBatch {
    /// Not a v2 batch, or its length does not fit.
    Corrupt,
    /// The checksum does not match.
    Checksum,
}

/// Splits a produce request's records into batches, checking each one's checksum.
pub(crate) fn split_batches(records: &Bytes) -> Result<Vec<(BatchHeader, Bytes)>, InvalidBatch> {
    let mut batches = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let header = BatchHeader::parse(&records[at..]).ok_or(InvalidBatch::Corrupt)?;
        if at + header.size > records.len() || header.record_count < 0 {
            return Err(InvalidBatch::Corrupt);
        }
        let batch = records.slice(at..at + header.size);
        let stored_crc = u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes"));
        if crc32c::crc32c(&batch[21..]) != stored_crc {
            return Err(InvalidBatch::Checksum);
        }
        batches.push((header, batch));
        at += header.size;
    }
    if batches.is_empty() {
        return Err(InvalidBatch::Corrupt);
    }
    Ok(batches)
}

/// A copy of `batch` with its base offset and partition leader epoch set: the fields a
/// broker assigns, both outside the checksum.
pub(crate) fn assign_offset(batch: &[u8], base_offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut out = batch.to_vec();
    out[0..8].copy_from_slice(&base_offset.to_be_bytes());
    out[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    out
}

/// The control batch that ends a transaction on one partition (Kafka's `EndTransactionMarker`).
pub(crate) fn transaction_marker(
    base_offset: i64,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    timestamp: i64,
) -> Vec<u8> {
    // One record: key = (version 0, type 0 abort / 1 commit), value = (version 0,
    // coordinator epoch 0).
    let mut record = BytesMut::new();
    record.put_i8(0); // attributes
    put_varint(&mut record, 0); // timestamp delta
    put_varint(&mut record, 0); // offset delta
    put_varint(&mut record, 4); // key length
    record.put_i16(0);
    record.put_i16(if commit { 1 } else { 0 });
    put_varint(&mut record, 6); // value length
    record.put_i16(0);
    record.put_i32(0);
    put_varint(&mut record, 0); // headers
    let mut body = BytesMut::new();
    body.put_i16(ATTR_TRANSACTIONAL | ATTR_CONTROL);
    body.put_i32(0); // last offset delta
    body.put_i64(timestamp);
    body.put_i64(timestamp);
    body.put_i64(producer_id);
    body.put_i16(producer_epoch);
    body.put_i32(-1); // base sequence
    body.put_i32(1); // record count
    put_varint(&mut body, record.len() as i64);
    body.put_slice(&record);
    let mut batch = BytesMut::with_capacity(21 + body.len());
    batch.put_i64(base_offset);
    batch.put_i32((body.len() + 9) as i32); // leader epoch, magic and crc, then the body
    batch.put_i32(0);
    batch.put_i8(2);
    batch.put_u32(crc32c::crc32c(&body));
    batch.put_slice(&body);
    batch.to_vec()
}

/// Whether a control batch is a commit marker (`Some(true)`), an abort marker
/// (`Some(false)`), or something else.
pub(crate) fn marker_kind(batch: &[u8]) -> Option<bool> {
    let header = BatchHeader::parse(batch)?;
    if !header.is_control() || batch.len() < header.size {
        return None;
    }
    let mut b = &batch[HEADER_LEN..header.size];
    let _length = get_varint(&mut b)?;
    let _attributes = b.try_get_i8().ok()?;
    let _timestamp_delta = get_varint(&mut b)?;
    let _offset_delta = get_varint(&mut b)?;
    let key_length = get_varint(&mut b)?;
    if key_length < 4 {
        return None;
    }
    let _version = b.try_get_i16().ok()?;
    match b.try_get_i16().ok()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// The first offset in `batch` whose record timestamp is at least `timestamp`, decoding the
/// records (decompressing them if needed); `None` when none is.
pub(crate) fn first_offset_at_or_after(batch: &Bytes, timestamp: i64) -> Option<(i64, i64)> {
    use kafka_protocol::records::RecordBatchDecoder;
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).ok()?;
    set.records
        .iter()
        .filter(|r| r.timestamp >= timestamp)
        .map(|r| (r.offset, r.timestamp))
        .min_by_key(|(offset, _)| *offset)
}

fn put_varint(buf: &mut BytesMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = buf.try_get_u8().ok()?;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((value >> 1) as i64) ^ -((value & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_reads_back_with_its_kind_and_a_valid_checksum() {
        for commit in [true, false] {
            let marker = transaction_marker(42, 7, 3, commit, 1_000);
            let batches = split_batches(&Bytes::from(marker.clone())).unwrap();
            assert_eq!(batches.len(), 1);
            let header = batches[0].0;
            assert_eq!(header.base_offset, 42);
            assert_eq!(header.producer_id, 7);
            assert_eq!(header.producer_epoch, 3);
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(header.record_count, 1);
            assert_eq!(marker_kind(&marker), Some(commit));
        }
    }

    #[test]
    fn a_changed_byte_fails_the_checksum() {
        let mut marker = transaction_marker(0, 1, 0, true, 5);
        let last = marker.len() - 1;
        marker[last] ^= 1;
        assert_eq!(
            split_batches(&Bytes::from(marker)),
            Err(InvalidBatch::Checksum)
        );
    }

    #[test]
    fn assigning_an_offset_keeps_the_checksum() {
        let marker = transaction_marker(0, 1, 0, true, 5);
        let moved = assign_offset(&marker, 1_000, 0);
        let batches = split_batches(&Bytes::from(moved)).unwrap();
        assert_eq!(batches[0].0.base_offset, 1_000);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut header = BatchHeader::parse(&transaction_marker(0, 1, 0, true, 5)).unwrap();
        header.base_sequence = i32::MAX - 1;
        header.last_offset_delta = 3;
        assert_eq!(header.last_sequence(), 1);
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN / 2,
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v);
            let mut slice = &buf[..];
            assert_eq!(get_varint(&mut slice), Some(v));
        }
    }
}
