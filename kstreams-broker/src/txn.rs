//! The transaction coordinator: producer ids and epochs, each `transactional.id`'s open
//! transaction (its partitions and consumer groups), commit and abort markers, fencing, and
//! transactions aborted when they outlive their timeout.
//!
//! Unlike Kafka, which keeps transaction state in `__transaction_state`, only the
//! `transactional.id` → producer id and epoch mapping is durable (in the meta log). A
//! transaction open when the broker stops is aborted when it starts again, and its producer
//! fenced (epoch bumped): it re-initialises, as after any fencing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId,
};

use crate::groups::GroupCoordinator;
use crate::meta::{MetaLog, MetaRecord, MetaState};
use crate::topics::Topics;
use crate::BrokerError;

/// Versions below which `PRODUCER_FENCED` is reported as `INVALID_PRODUCER_EPOCH` (KIP-588).
const FENCED_SINCE_INIT: i16 = 4;
const FENCED_SINCE_ADD: i16 = 2;
const FENCED_SINCE_END: i16 = 2;
/// TxnOffsetCommit reports `PRODUCER_FENCED` from this version on.
pub(crate) const FENCED_SINCE_TXN_OFFSET_COMMIT: i16 = 3;

/// `PRODUCER_FENCED`, or `INVALID_PRODUCER_EPOCH` for clients that predate it.
pub(crate) fn fenced(version: i16, since: i16) -> ResponseError {
    if version >= since {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Ongoing {
    started: Instant,
    partitions: BTreeSet<(String, i32)>,
    groups: BTreeSet<String>,
}

struct Txn {
    producer_id: i64,
    epoch: i16,
    timeout: Duration,
    /// The epoch the broker fenced when it aborted a timed-out transaction: that producer
    /// may still re-initialise with it (KIP-360), a zombie of an older epoch may not.
    timed_out_epoch: Option<i16>,
    ongoing: Option<Ongoing>,
}

struct Inner {
    next_producer_id: i64,
    by_id: HashMap<String, Txn>,
    by_producer: HashMap<i64, String>,
}

/// The transaction coordinator of the broker.
#[derive(Clone)]
pub(crate) struct TxnCoordinator {
    inner: Arc<Mutex<Inner>>,
    meta: MetaLog,
    topics: Arc<Topics>,
    groups: GroupCoordinator,
    max_timeout: Duration,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl TxnCoordinator {
    /// The coordinator over `state`'s transactional ids; aborts the transactions a previous
    /// run left open in the logs and fences their producers.
    pub fn open(
        state: &MetaState,
        meta: MetaLog,
        topics: Arc<Topics>,
        groups: GroupCoordinator,
        max_timeout: Duration,
        changed: Arc<tokio::sync::watch::Sender<u64>>,
    ) -> Result<TxnCoordinator, BrokerError> {
        let mut inner = Inner {
            next_producer_id: state.next_producer_id.max(1),
            by_id: HashMap::new(),
            by_producer: HashMap::new(),
        };
        for (id, (producer_id, epoch, timeout_ms)) in &state.transactional_ids {
            inner.by_id.insert(
                id.clone(),
                Txn {
                    producer_id: *producer_id,
                    epoch: *epoch,
                    timeout: Duration::from_millis((*timeout_ms).max(1) as u64),
                    timed_out_epoch: None,
                    ongoing: None,
                },
            );
            inner.by_producer.insert(*producer_id, id.clone());
        }
        let coordinator = TxnCoordinator {
            inner: Arc::new(Mutex::new(inner)),
            meta,
            topics,
            groups,
            max_timeout,
            changed,
        };
        coordinator.abort_left_open()?;
        Ok(coordinator)
    }

    fn abort_left_open(&self) -> Result<(), BrokerError> {
        let mut fenced = Vec::new();
        for (_, topic) in self.topics.all() {
            for partition in &topic.partitions {
                let mut log = partition.lock().expect("log lock");
                for (producer_id, _) in log.open_transactions() {
                    let epoch = log.producer_epoch(producer_id).unwrap_or(0);
                    log.write_marker(producer_id, epoch, false, now_ms())?;
                    fenced.push(producer_id);
                }
            }
        }
        let mut inner = self.inner.lock().expect("txn lock");
        let mut records = Vec::new();
        for producer_id in fenced {
            let Some(id) = inner.by_producer.get(&producer_id).cloned() else {
                continue;
            };
            let txn = inner.by_id.get_mut(&id).expect("indexed");
            if txn.epoch < i16::MAX - 1 {
                txn.epoch += 1;
            }
            records.push(MetaRecord::TransactionalId {
                id,
                producer_id,
                epoch: txn.epoch,
                timeout_ms: txn.timeout.as_millis() as i32,
            });
        }
        self.meta.append(&records)
    }

    fn allocate_producer_id(&self, inner: &mut Inner) -> Result<i64, BrokerError> {
        let id = inner.next_producer_id;
        inner.next_producer_id += 1;
        self.meta
            .append(&[MetaRecord::NextProducerId { next: id + 1 }])?;
        Ok(id)
    }

    /// InitProducerId: a new producer id for an idempotent producer, or the next epoch of a
    /// `transactional.id` (aborting its open transaction and fencing the previous epoch).
    pub fn init_producer_id(
        &self,
        req: InitProducerIdRequest,
        version: i16,
    ) -> InitProducerIdResponse {
        let mut response = InitProducerIdResponse::default();
        match self.init(&req, version) {
            Ok((producer_id, epoch)) => {
                response.producer_id = ProducerId(producer_id);
                response.producer_epoch = epoch;
            }
            Err(error) => {
                response.error_code = error.code();
                response.producer_id = ProducerId(-1);
                response.producer_epoch = -1;
            }
        }
        response
    }

    fn init(&self, req: &InitProducerIdRequest, version: i16) -> Result<(i64, i16), ResponseError> {
        let internal = |_| ResponseError::UnknownServerError;
        let mut inner = self.inner.lock().expect("txn lock");
        let Some(id) = req.transactional_id.as_ref().map(|id| id.0.to_string()) else {
            // Idempotent only: KIP-360 bumps the epoch of a producer id it already has.
            if req.producer_id.0 >= 0
                && req.producer_epoch >= 0
                && req.producer_epoch < i16::MAX - 1
            {
                return Ok((req.producer_id.0, req.producer_epoch + 1));
            }
            let producer_id = self.allocate_producer_id(&mut inner).map_err(internal)?;
            return Ok((producer_id, 0));
        };
        let timeout_ms = req.transaction_timeout_ms;
        if timeout_ms <= 0 || timeout_ms as u128 > self.max_timeout.as_millis() {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let timeout = Duration::from_millis(timeout_ms as u64);
        let existing = inner
            .by_id
            .get(&id)
            .map(|t| (t.producer_id, t.epoch, t.timed_out_epoch));
        let (producer_id, epoch) = match existing {
            None => (self.allocate_producer_id(&mut inner).map_err(internal)?, 0),
            Some((producer_id, epoch, timed_out)) => {
                if req.producer_id.0 >= 0 {
                    // KIP-360: the producer names the id and epoch it had.
                    let own = req.producer_id.0 == producer_id
                        && (req.producer_epoch == epoch || Some(req.producer_epoch) == timed_out);
                    if !own {
                        return Err(fenced(version, FENCED_SINCE_INIT));
                    }
                }
                if let Some(ongoing) = inner.by_id.get_mut(&id).and_then(|t| t.ongoing.take()) {
                    let next = epoch.saturating_add(1);
                    drop(inner);
                    self.finish(&id, producer_id, next, ongoing, false)
                        .map_err(internal)?;
                    inner = self.inner.lock().expect("txn lock");
                }
                if epoch >= i16::MAX - 2 {
                    inner.by_producer.remove(&producer_id);
                    (self.allocate_producer_id(&mut inner).map_err(internal)?, 0)
                } else {
                    (producer_id, epoch + 1)
                }
            }
        };
        self.meta
            .append(&[MetaRecord::TransactionalId {
                id: id.clone(),
                producer_id,
                epoch,
                timeout_ms,
            }])
            .map_err(internal)?;
        inner.by_producer.insert(producer_id, id.clone());
        inner.by_id.insert(
            id,
            Txn {
                producer_id,
                epoch,
                timeout,
                timed_out_epoch: None,
                ongoing: None,
            },
        );
        Ok((producer_id, epoch))
    }

    /// Checks that `producer_id` at `epoch` is the current producer of `transactional_id`.
    pub fn check(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(), ResponseError> {
        let inner = self.inner.lock().expect("txn lock");
        match inner.by_id.get(transactional_id) {
            None => Err(ResponseError::InvalidProducerIdMapping),
            Some(txn) if txn.producer_id != producer_id => {
                Err(ResponseError::InvalidProducerIdMapping)
            }
            Some(txn) if txn.epoch != epoch => Err(ResponseError::ProducerFenced),
            Some(_) => Ok(()),
        }
    }

    /// Checks a transactional produce: refused when the producer's epoch was fenced, or
    /// when the partition was not added to its transaction.
    pub fn check_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        let inner = self.inner.lock().expect("txn lock");
        let Some(txn) = inner
            .by_producer
            .get(&producer_id)
            .and_then(|id| inner.by_id.get(id))
        else {
            return Err(ResponseError::InvalidProducerIdMapping);
        };
        if epoch < txn.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        match &txn.ongoing {
            Some(ongoing) if ongoing.partitions.contains(&(topic.to_string(), partition)) => Ok(()),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    fn with_txn<T>(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        fenced_error: ResponseError,
        body: impl FnOnce(&mut Txn) -> T,
    ) -> Result<T, ResponseError> {
        let mut inner = self.inner.lock().expect("txn lock");
        let txn = inner
            .by_id
            .get_mut(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if txn.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if txn.epoch != epoch {
            return Err(fenced_error);
        }
        Ok(body(txn))
    }

    /// AddPartitionsToTxn (v0–3): the partitions join the producer's transaction.
    pub fn add_partitions(
        &self,
        req: AddPartitionsToTxnRequest,
        version: i16,
    ) -> AddPartitionsToTxnResponse {
        let id = req.v3_and_below_transactional_id.0.to_string();
        let mut unknown = BTreeSet::new();
        for topic in &req.v3_and_below_topics {
            for partition in &topic.partitions {
                if self.topics.partition(&topic.name.0, *partition).is_none() {
                    unknown.insert((topic.name.0.to_string(), *partition));
                }
            }
        }
        let outcome: Result<(), ResponseError> = if !unknown.is_empty() {
            Err(ResponseError::UnknownTopicOrPartition)
        } else {
            self.with_txn(
                &id,
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                fenced(version, FENCED_SINCE_ADD),
                |txn| {
                    let ongoing = txn.ongoing.get_or_insert_with(|| Ongoing {
                        started: Instant::now(),
                        partitions: BTreeSet::new(),
                        groups: BTreeSet::new(),
                    });
                    for topic in &req.v3_and_below_topics {
                        for partition in &topic.partitions {
                            ongoing
                                .partitions
                                .insert((topic.name.0.to_string(), *partition));
                        }
                    }
                },
            )
        };
        let mut response = AddPartitionsToTxnResponse::default();
        for topic in &req.v3_and_below_topics {
            let mut result = AddPartitionsToTxnTopicResult::default();
            result.name = topic.name.clone();
            for partition in &topic.partitions {
                let code = match &outcome {
                    Ok(()) => 0,
                    // Kafka fails the known partitions of such a request as well.
                    Err(ResponseError::UnknownTopicOrPartition)
                        if !unknown.contains(&(topic.name.0.to_string(), *partition)) =>
                    {
                        ResponseError::OperationNotAttempted.code()
                    }
                    Err(e) => e.code(),
                };
                let mut p = AddPartitionsToTxnPartitionResult::default();
                p.partition_index = *partition;
                p.partition_error_code = code;
                result.results_by_partition.push(p);
            }
            response.results_by_topic_v3_and_below.push(result);
        }
        response
    }

    /// AddOffsetsToTxn: the group's offsets will commit with the transaction.
    pub fn add_offsets(
        &self,
        req: AddOffsetsToTxnRequest,
        version: i16,
    ) -> AddOffsetsToTxnResponse {
        let outcome = self.with_txn(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            fenced(version, FENCED_SINCE_ADD),
            |txn| {
                txn.ongoing
                    .get_or_insert_with(|| Ongoing {
                        started: Instant::now(),
                        partitions: BTreeSet::new(),
                        groups: BTreeSet::new(),
                    })
                    .groups
                    .insert(req.group_id.0.to_string());
            },
        );
        let mut response = AddOffsetsToTxnResponse::default();
        response.error_code = outcome.err().map_or(0, |e| e.code());
        response
    }

    /// EndTxn: writes the commit or abort marker to every partition of the transaction and
    /// applies or drops its consumer offsets.
    pub fn end_txn(&self, req: EndTxnRequest, version: i16) -> EndTxnResponse {
        let id = req.transactional_id.0.to_string();
        let outcome = self
            .with_txn(
                &id,
                req.producer_id.0,
                req.producer_epoch,
                fenced(version, FENCED_SINCE_END),
                |txn| txn.ongoing.take(),
            )
            .and_then(|ongoing| match ongoing {
                // Nothing was added, or this is the retry of an end already done.
                None => Ok(()),
                Some(ongoing) => self
                    .finish(
                        &id,
                        req.producer_id.0,
                        req.producer_epoch,
                        ongoing,
                        req.committed,
                    )
                    .map_err(|_| ResponseError::UnknownServerError),
            });
        let mut response = EndTxnResponse::default();
        response.error_code = outcome.err().map_or(0, |e| e.code());
        response.producer_id = req.producer_id;
        response.producer_epoch = req.producer_epoch;
        response
    }

    /// Writes the markers and completes the offsets of a transaction already taken out of
    /// its [`Txn`].
    fn finish(
        &self,
        _id: &str,
        producer_id: i64,
        epoch: i16,
        ongoing: Ongoing,
        commit: bool,
    ) -> Result<(), BrokerError> {
        let timestamp = now_ms();
        for (topic, partition) in &ongoing.partitions {
            if let Some(log) = self.topics.partition(topic, *partition) {
                log.lock().expect("log lock").write_marker(
                    producer_id,
                    epoch,
                    commit,
                    timestamp,
                )?;
            }
        }
        for group in &ongoing.groups {
            self.groups.complete_txn_offsets(group, producer_id, commit);
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Aborts transactions open longer than their timeout and fences their producers.
    pub fn abort_expired(&self) -> Result<(), BrokerError> {
        let expired: Vec<(String, i64, i16, Ongoing)> = {
            let mut inner = self.inner.lock().expect("txn lock");
            let mut expired = Vec::new();
            for (id, txn) in inner.by_id.iter_mut() {
                let late = txn
                    .ongoing
                    .as_ref()
                    .is_some_and(|o| o.started.elapsed() > txn.timeout);
                if late && txn.epoch < i16::MAX - 2 {
                    let ongoing = txn.ongoing.take().expect("checked");
                    txn.timed_out_epoch = Some(txn.epoch);
                    txn.epoch += 1;
                    expired.push((id.clone(), txn.producer_id, txn.epoch, ongoing));
                }
            }
            expired
        };
        for (id, producer_id, epoch, ongoing) in expired {
            let timeout_ms = {
                let inner = self.inner.lock().expect("txn lock");
                inner
                    .by_id
                    .get(&id)
                    .map_or(0, |t| t.timeout.as_millis() as i32)
            };
            self.meta.append(&[MetaRecord::TransactionalId {
                id: id.clone(),
                producer_id,
                epoch,
                timeout_ms,
            }])?;
            self.finish(&id, producer_id, epoch, ongoing, false)?;
        }
        Ok(())
    }

    /// Runs [`abort_expired`](Self::abort_expired) every 100 ms.
    pub async fn run_timeouts(self) {
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        loop {
            interval.tick().await;
            if let Err(e) = self.abort_expired() {
                eprintln!("kstreams-broker: aborting timed-out transactions: {e}");
            }
        }
    }
}
