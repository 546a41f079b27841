//! The data requests: Produce (idempotent and transactional), Fetch (long polling,
//! `read_committed`), ListOffsets, and TxnOffsetCommit (checked against the transaction
//! coordinator, held by the group coordinator).

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest,
    ProduceResponse, ProducerId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use crate::log::{AppendError, Appended};
use crate::records::{split_batches, InvalidBatch};
use crate::server::{wait_for_change, Shared};
use crate::txn::{fenced, FENCED_SINCE_TXN_OFFSET_COMMIT};

const READ_COMMITTED: i8 = 1;
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// Produce: each partition's batches are checked (checksum, producer epoch and sequence,
/// transaction membership) and appended; the response carries the first batch's offset.
pub(crate) fn produce(shared: &Shared, req: ProduceRequest, _version: i16) -> ProduceResponse {
    let mut response = ProduceResponse::default();
    let mut appended_any = false;
    for topic in req.topic_data {
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic.name.clone();
        for partition in topic.partition_data {
            let mut p = PartitionProduceResponse::default();
            p.index = partition.index;
            p.base_offset = -1;
            p.log_append_time_ms = -1;
            p.log_start_offset = -1;
            match produce_partition(shared, &topic.name.0, partition.index, partition.records) {
                Ok((base_offset, log_start)) => {
                    p.base_offset = base_offset;
                    p.log_start_offset = log_start;
                    appended_any = true;
                }
                Err((error, message)) => {
                    p.error_code = error.code();
                    p.error_message = Some(message.into());
                }
            }
            topic_response.partition_responses.push(p);
        }
        response.responses.push(topic_response);
    }
    if appended_any {
        shared.notify();
    }
    response
}

fn produce_partition(
    shared: &Shared,
    topic: &str,
    partition: i32,
    records: Option<bytes::Bytes>,
) -> Result<(i64, i64), (ResponseError, String)> {
    let log = shared.topics.partition(topic, partition).ok_or_else(|| {
        (
            ResponseError::UnknownTopicOrPartition,
            format!("no partition {topic}-{partition}"),
        )
    })?;
    let records = records.unwrap_or_default();
    let batches = split_batches(&records).map_err(|e| {
        let message = match e {
            InvalidBatch::Corrupt => "not a well-formed v2 record batch",
            InvalidBatch::Checksum => "record batch checksum mismatch",
        };
        (ResponseError::CorruptMessage, message.to_string())
    })?;
    for (header, _) in &batches {
        if header.is_control() {
            return Err((
                ResponseError::InvalidRecord,
                "clients may not write control batches".into(),
            ));
        }
        if header.is_transactional() {
            shared
                .txn
                .check_produce(header.producer_id, header.producer_epoch, topic, partition)
                .map_err(|e| {
                    (
                        e,
                        format!("transactional write to {topic}-{partition} refused"),
                    )
                })?;
        }
    }
    let mut log = log.lock().expect("log lock");
    let results = log.append(&batches).map_err(|e| match e {
        AppendError::ProducerFenced => (
            ResponseError::InvalidProducerEpoch,
            "the producer's epoch is older than the partition's".to_string(),
        ),
        AppendError::OutOfOrderSequence => (
            ResponseError::OutOfOrderSequenceNumber,
            "a sequence number gap: an earlier batch is missing".to_string(),
        ),
    })?;
    let base = match results[0] {
        Appended::At(offset) | Appended::Duplicate(offset) => offset,
    };
    Ok((base, log.log_start()))
}

/// Fetch: whole batches from each partition's fetch offset, up to the high watermark (or
/// the last stable offset under `read_committed`, with the aborted transactions the
/// returned range overlaps), waiting up to `max_wait_ms` for `min_bytes`.
pub(crate) async fn fetch(shared: &Shared, req: FetchRequest, _version: i16) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut changes = shared.changed.subscribe();
    loop {
        changes.mark_unchanged();
        let (response, bytes, error) = fetch_once(shared, &req);
        if bytes >= req.min_bytes.max(1) as usize || error || Instant::now() >= deadline {
            return response;
        }
        wait_for_change(&mut changes, deadline).await;
    }
}

fn fetch_once(shared: &Shared, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let read_committed = req.isolation_level == READ_COMMITTED;
    let mut remaining = if req.max_bytes > 0 {
        req.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut any_error = false;
    let mut response = FetchResponse::default();
    for topic in &req.topics {
        let mut topic_response = FetchableTopicResponse::default();
        topic_response.topic = topic.topic.clone();
        topic_response.topic_id = topic.topic_id;
        for partition in &topic.partitions {
            let mut p = PartitionData::default();
            p.partition_index = partition.partition;
            p.high_watermark = -1;
            p.last_stable_offset = -1;
            p.log_start_offset = -1;
            p.preferred_read_replica = BrokerId(-1);
            p.aborted_transactions = read_committed.then(Vec::new);
            match shared.topics.partition(&topic.topic.0, partition.partition) {
                None => {
                    p.error_code = ResponseError::UnknownTopicOrPartition.code();
                    any_error = true;
                }
                Some(log) => {
                    let log = log.lock().expect("log lock");
                    let high_watermark = log.high_watermark();
                    let stable = log.last_stable_offset();
                    p.high_watermark = high_watermark;
                    p.last_stable_offset = stable;
                    p.log_start_offset = log.log_start();
                    let offset = partition.fetch_offset;
                    if offset < log.log_start() || offset > high_watermark {
                        p.error_code = ResponseError::OffsetOutOfRange.code();
                        any_error = true;
                    } else {
                        let limit = if read_committed {
                            stable
                        } else {
                            high_watermark
                        };
                        let max = (partition.partition_max_bytes.max(0) as usize).min(remaining);
                        match log.read(offset, limit, max, total == 0) {
                            Ok(Some((records, last))) => {
                                total += records.len();
                                remaining = remaining.saturating_sub(records.len());
                                if read_committed {
                                    p.aborted_transactions = Some(
                                        log.aborted_between(offset, last)
                                            .into_iter()
                                            .map(|a| {
                                                let mut t = AbortedTransaction::default();
                                                t.producer_id = ProducerId(a.producer_id);
                                                t.first_offset = a.first_offset;
                                                t
                                            })
                                            .collect(),
                                    );
                                }
                                p.records = Some(records);
                            }
                            Ok(None) => {}
                            Err(_) => {
                                p.error_code = ResponseError::KafkaStorageError.code();
                                any_error = true;
                            }
                        }
                    }
                }
            }
            topic_response.partitions.push(p);
        }
        response.responses.push(topic_response);
    }
    (response, total, any_error)
}

/// ListOffsets: earliest, latest (the last stable offset under `read_committed`), the
/// record with the largest timestamp, or the first record at or after a timestamp.
pub(crate) fn list_offsets(
    shared: &Shared,
    req: ListOffsetsRequest,
    _version: i16,
) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == READ_COMMITTED;
    let mut response = ListOffsetsResponse::default();
    for topic in req.topics {
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name.clone();
        for partition in topic.partitions {
            let mut p = ListOffsetsPartitionResponse::default();
            p.partition_index = partition.partition_index;
            p.timestamp = -1;
            p.offset = -1;
            p.leader_epoch = 0;
            match shared
                .topics
                .partition(&topic.name.0, partition.partition_index)
            {
                None => p.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(log) => {
                    let log = log.lock().expect("log lock");
                    let found = match partition.timestamp {
                        LATEST if read_committed => Ok(Some((log.last_stable_offset(), -1))),
                        LATEST => Ok(Some((log.high_watermark(), -1))),
                        EARLIEST => Ok(Some((log.log_start(), -1))),
                        MAX_TIMESTAMP => log.max_timestamp(),
                        t => log.offset_for_timestamp(t),
                    };
                    match found {
                        Ok(Some((offset, timestamp))) => {
                            p.offset = offset;
                            p.timestamp = timestamp;
                        }
                        Ok(None) => {}
                        Err(_) => p.error_code = ResponseError::KafkaStorageError.code(),
                    }
                }
            }
            topic_response.partitions.push(p);
        }
        response.topics.push(topic_response);
    }
    response
}

/// TxnOffsetCommit: the producer must own its `transactional.id` at this epoch; the group
/// coordinator holds the offsets until the transaction ends.
pub(crate) fn txn_offset_commit(
    shared: &Shared,
    req: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    if let Err(error) = shared.txn.check(
        &req.transactional_id.0,
        req.producer_id.0,
        req.producer_epoch,
    ) {
        let error = match error {
            ResponseError::ProducerFenced => fenced(version, FENCED_SINCE_TXN_OFFSET_COMMIT),
            other => other,
        };
        let mut response = TxnOffsetCommitResponse::default();
        for topic in &req.topics {
            let mut t = TxnOffsetCommitResponseTopic::default();
            t.name = topic.name.clone();
            for partition in &topic.partitions {
                let mut p = TxnOffsetCommitResponsePartition::default();
                p.partition_index = partition.partition_index;
                p.error_code = error.code();
                t.partitions.push(p);
            }
            response.topics.push(t);
        }
        return response;
    }
    shared.groups.txn_offset_commit(req, version)
}
