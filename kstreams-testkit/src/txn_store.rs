//! A [`Storage`] wrapper that repairs the transaction bookkeeping of tansu 0.6's SQLite engine.
//!
//! Every call goes to tansu's own engine ([`StorageContainer`]); a second SQLite connection to
//! the same file (WAL mode) reads what tansu does not expose and writes the repairs. tansu's
//! engine runs one request at a time and sets no busy timeout on its connections, so a write
//! of ours while it is writing would fail its request: every delegated call therefore holds a
//! shared gate, and our writes (and the tansu calls they belong to) hold it exclusively.
//!
//! What this adds to tansu 0.6:
//!
//! * **Statuses reset after every transaction.** tansu keeps one `txn_detail` row per producer
//!   *epoch* and sets it to `BEGIN` only while its status is NULL
//!   (`txn_detail_update_started_at.sql`). librdkafka keeps its epoch across transactions, so
//!   from the second transaction of an epoch on tansu saw no open transaction: the last stable
//!   offset ignored it, a re-initialising producer did not abort it (its records stayed with no
//!   marker) and later transactions were deferred forever. After each `EndTxn` and
//!   `InitProducerId` we set finished (`COMMITTED`/`ABORTED`) rows back to NULL.
//! * **Deferred transactions finished at once.** When another open transaction overlaps the same
//!   partition, tansu writes the markers but only marks the ending one `PREPARE_COMMIT`/
//!   `PREPARE_ABORT`, finishing it when the other ends. With two producers on one partition that
//!   applied pending consumer offsets late (including those of the producer's *next*
//!   transaction) and dropped the next transaction's markers. The last stable offset does not
//!   need the deferral (it is the first offset of the earliest open transaction either way), so
//!   we finish such transactions immediately: apply (commit) or drop (abort) their offsets and
//!   clear their partitions.
//! * **Stale epochs fenced.** tansu's `EndTxn` and `AddPartitionsToTxn` do not compare the epoch
//!   with the current one, so a fenced zombie could "commit". We answer `PRODUCER_FENCED`
//!   (librdkafka treats it, like `INVALID_PRODUCER_EPOCH`, as fatal).
//! * **No `todo!()` panics.** tansu's engine is a single task serving every connection; a panic
//!   in it (as `init_producer` does for anything but `(-1, -1)`, and `delete_records` and
//!   `AddPartitionsToTxn` v4+ always do) stops the whole broker, not just one connection.
//!   librdkafka advertises KIP-360 and sends `InitProducerId` with its current producer id and
//!   epoch to bump the epoch after abortable errors that need it (message timeouts, sequence
//!   errors inside a transaction), so we implement that bump: for the current `(id, epoch)` the
//!   open transaction is aborted and the epoch incremented, an older epoch is fenced, and an
//!   idempotent (non-transactional) producer gets a fresh producer id. The others answer with
//!   an error instead of panicking.
//! * **Transaction timeouts.** tansu never aborts an abandoned transaction, so a producer that
//!   died and never came back held back `read_committed` readers forever. [`TxnStore::abort_expired`]
//!   (run every second) aborts transactions open longer than their `transaction.timeout.ms`
//!   and bumps the epoch, fencing the old producer, as Kafka's coordinator does.
//! * **The read_committed view** used by our Fetch route (see `routes.rs`): the last stable
//!   offset, the aborted transactions of a range, and topic lookup.
//! * **Group descriptions.** tansu's `describe_groups` reads the stored group as a JSON
//!   *string* value, so it fails for every group that exists; we parse the stored detail
//!   ourselves ([`TxnStore::group_detail`]) and keep the client id each member joined with
//!   ([`TxnStore::record_member`]), for the DescribeGroups route in `routes.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tansu_sans_io::{
    add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
    },
    create_topics_request::CreatableTopic,
    delete_groups_response::DeletableGroupResult,
    delete_records_request::DeleteRecordsTopic,
    delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult},
    describe_cluster_response::DescribeClusterBroker,
    describe_configs_response::DescribeConfigsResult,
    describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic,
    incremental_alter_configs_request::AlterConfigsResource,
    incremental_alter_configs_response::AlterConfigsResourceResponse,
    list_groups_response::ListedGroup,
    record::deflated,
    txn_offset_commit_response::TxnOffsetCommitResponseTopic,
    ConfigResource, ErrorCode, IsolationLevel, ListOffset, ScramMechanism,
};
use tansu_storage::{
    BrokerRegistrationRequest, Error, GroupDetail, ListOffsetResponse, MetadataResponse,
    NamedGroupDetail, OffsetCommitRequest, OffsetStage, ProducerIdResponse, Result,
    ScramCredential, Storage, StorageContainer, TopicId, Topition, TxnAddPartitionsRequest,
    TxnAddPartitionsResponse, TxnOffsetCommitRequest, UpdateError, Version,
};
use tokio::sync::{Mutex, RwLock};
use url::Url;
use uuid::Uuid;

/// tansu's storage engine plus our repairs; see the module docs.
#[derive(Clone)]
pub(crate) struct TxnStore {
    inner: StorageContainer,
    shared: Arc<Shared>,
}

struct Shared {
    cluster: String,
    /// Shared by every call into tansu, exclusive for our writes.
    gate: RwLock<()>,
    /// Our own connection to tansu's SQLite file.
    sql: Mutex<libsql::Connection>,
    _db: libsql::Database,
    /// `(group, member) -> client id` from the members' JoinGroup requests.
    clients: std::sync::Mutex<HashMap<(String, String), String>>,
}

impl fmt::Debug for TxnStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxnStore")
            .field("cluster", &self.shared.cluster)
            .finish_non_exhaustive()
    }
}

/// A topic as our Fetch route needs it.
pub(crate) struct TopicRow {
    pub name: String,
    pub id: [u8; 16],
    pub partitions: i32,
}

/// How a request's producer id and epoch compare with the transactional id's current ones.
fn producer_check(current: Option<(i64, i16)>, producer_id: i64, epoch: i16) -> ErrorCode {
    match current {
        Some((id, current)) if id == producer_id => match epoch.cmp(&current) {
            std::cmp::Ordering::Equal => ErrorCode::None,
            std::cmp::Ordering::Less => ErrorCode::ProducerFenced,
            std::cmp::Ordering::Greater => ErrorCode::InvalidProducerEpoch,
        },
        _ => ErrorCode::InvalidProducerIdMapping,
    }
}

// The SQL below reads and writes tansu 0.6's schema (tansu-storage-0.6.0/src/ddl/*.sql).

const CURRENT_PRODUCER: &str = "
select p.id, max(pe.epoch)
from txn
join cluster c on c.id = txn.cluster
join producer p on p.id = txn.producer
join producer_epoch pe on pe.producer = p.id
where c.name = ?1 and txn.name = ?2
group by p.id";

/// The first offset of the earliest unfinished transaction on a partition. tansu keeps a
/// `txn_produce_offset` row per partition a transaction wrote to until it is finished.
const FIRST_UNSTABLE: &str = "
select min(po.offset_start)
from txn_produce_offset po
join txn_topition tt on tt.id = po.txn_topition
join topition tp on tp.id = tt.topition
join topic t on t.id = tp.topic
join cluster c on c.id = t.cluster
where c.name = ?1 and t.name = ?2 and tp.partition = ?3";

/// `(producer id, first offset)` of each aborted transaction whose ABORT marker is at or after
/// `?4`: the marker's producer's first transactional data record after its previous marker.
/// Attributes: 0x10 transactional, 0x20 control; a control key is version (i16) + type (i16),
/// type 0 = abort.
const ABORTED_TXNS: &str = "
select m.producer_id,
  (select min(d.offset_id) from record d
   where d.topition = m.topition and d.producer_id = m.producer_id
     and (d.attributes & 48) = 16
     and d.offset_id < m.offset_id
     and d.offset_id > coalesce(
       (select max(p.offset_id) from record p
        where p.topition = m.topition and p.producer_id = m.producer_id
          and (p.attributes & 32) = 32 and p.offset_id < m.offset_id), -1)) as first_offset
from record m
join topition tp on tp.id = m.topition
join topic t on t.id = tp.topic
join cluster c on c.id = t.cluster
where c.name = ?1 and t.name = ?2 and tp.partition = ?3
  and (m.attributes & 32) = 32 and m.offset_id >= ?4
  and length(m.k) = 4 and hex(substr(m.k, 3, 2)) = '0000'
order by m.offset_id";

const TOPIC: &str = "
select t.name, t.uuid, t.partitions
from topic t join cluster c on c.id = t.cluster
where c.name = ?1 and (t.name = ?2 or t.uuid = ?3)";

const DEFERRED: &str =
    "select id, status from txn_detail where status in ('PREPARE_COMMIT', 'PREPARE_ABORT')";

const APPLY_OFFSETS: &str = "
insert into consumer_offset
  (consumer_group, topition, committed_offset, leader_epoch, timestamp, metadata)
select oc.consumer_group, tp.topition, tp.committed_offset, tp.leader_epoch, tp.created_at,
  tp.metadata
from txn_offset_commit oc join txn_offset_commit_tp tp on tp.offset_commit = oc.id
where oc.txn_detail = ?1
on conflict (consumer_group, topition) do update set
  committed_offset = excluded.committed_offset,
  leader_epoch = excluded.leader_epoch,
  timestamp = excluded.timestamp,
  last_updated = excluded.last_updated,
  metadata = excluded.metadata";

const FINISH: [&str; 5] = [
    "delete from txn_offset_commit_tp where offset_commit in
       (select id from txn_offset_commit where txn_detail = ?1)",
    "delete from txn_offset_commit where txn_detail = ?1",
    "delete from txn_produce_offset where txn_topition in
       (select id from txn_topition where txn_detail = ?1)",
    "delete from txn_topition where txn_detail = ?1",
    "update txn_detail set status = null, started_at = null, last_updated = current_timestamp
     where id = ?1",
];

/// The workaround for `txn_detail_update_started_at.sql`: a finished row becomes idle again,
/// so the next AddPartitionsToTxn of the epoch sets it to BEGIN.
const RESET_FINISHED: &str = "
update txn_detail set status = null, started_at = null
where status in ('COMMITTED', 'ABORTED')";

/// Pending transactional offsets of epochs that are no longer current can never be committed
/// (a new epoch aborts the old one's transaction); tansu leaves them behind.
const DROP_STALE_OFFSETS: [&str; 2] = [
    "delete from txn_offset_commit_tp where offset_commit in (
       select oc.id from txn_offset_commit oc
       join txn_detail d on d.id = oc.txn_detail
       join producer_epoch pe on pe.id = d.producer_epoch
       where pe.epoch < (select max(e.epoch) from producer_epoch e where e.producer = pe.producer))",
    "delete from txn_offset_commit where txn_detail in (
       select d.id from txn_detail d
       join producer_epoch pe on pe.id = d.producer_epoch
       where pe.epoch < (select max(e.epoch) from producer_epoch e where e.producer = pe.producer))",
];

/// Transactions of a current epoch open longer than their timeout: since their first
/// AddPartitionsToTxn, or (offsets only) since their first TxnOffsetCommit.
const EXPIRED: &str = "
select txn.name, d.transaction_timeout_ms
from txn_detail d
join txn on txn.id = d.\"transaction\"
join cluster c on c.id = txn.cluster
join producer_epoch pe on pe.id = d.producer_epoch
where c.name = ?1
  and pe.epoch = (select max(e.epoch) from producer_epoch e where e.producer = pe.producer)
  and ((d.status = 'BEGIN' and d.started_at is not null
        and (julianday('now') - julianday(d.started_at)) * 86400000.0 > d.transaction_timeout_ms)
    or exists (select 1 from txn_offset_commit oc
               join txn_offset_commit_tp tp on tp.offset_commit = oc.id
               where oc.txn_detail = d.id
                 and (julianday('now') - julianday(tp.created_at)) * 86400000.0
                     > d.transaction_timeout_ms))";

const GROUP_DETAIL: &str = "\
select cgd.detail
from cluster c
join consumer_group cg on cg.cluster = c.id
join consumer_group_detail cgd on cgd.consumer_group = cg.id
where c.name = ?1 and cg.name = ?2";

/// The index tansu's `header_fetch.sql` needs (see [`TxnStore::open`]).
const HEADER_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS kstreams_testkit_header_record ON header (topition, offset_id)";

impl TxnStore {
    /// The stored state of group `group_id`, `None` when there is no such group.
    pub(crate) async fn group_detail(&self, group_id: &str) -> Result<Option<GroupDetail>> {
        let _open = self.shared.gate.read().await;
        let sql = self.shared.sql.lock().await;
        let mut rows = sql
            .query(GROUP_DETAIL, (self.shared.cluster.as_str(), group_id))
            .await?;
        let Some(row) = rows.next().await? else {
            return Ok(None);
        };
        let text = row.get::<String>(0)?;
        Ok(Some(serde_json::from_str::<GroupDetail>(&text)?))
    }

    /// Remembers that `member_id` joined `group_id` as client `client_id`.
    pub(crate) fn record_member(&self, group_id: &str, member_id: &str, client_id: &str) {
        let mut clients = self.shared.clients.lock().expect("client ids");
        clients.insert(
            (group_id.to_owned(), member_id.to_owned()),
            client_id.to_owned(),
        );
    }

    /// The client id `member_id` of `group_id` joined with, empty when unknown.
    pub(crate) fn member_client(&self, group_id: &str, member_id: &str) -> String {
        let clients = self.shared.clients.lock().expect("client ids");
        clients
            .get(&(group_id.to_owned(), member_id.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Wraps tansu's engine for the SQLite file `data_file` of cluster `cluster`.
    pub(crate) async fn open(
        inner: StorageContainer,
        data_file: &Path,
        cluster: &str,
    ) -> Result<Self> {
        let db = libsql::Builder::new_local(data_file).build().await?;
        let connection = db.connect()?;
        connection.busy_timeout(Duration::from_secs(5))?;
        // tansu 0.6 looks up each fetched record's headers by (partition, offset) in a table
        // without an index: every fetched record scanned every header ever written, so a
        // topic with headers (changelogs of some clients, dead-letter records) made each
        // fetch slower than the last, until the broker stalled.
        connection.execute(HEADER_INDEX, ()).await?;
        Ok(TxnStore {
            inner,
            shared: Arc::new(Shared {
                cluster: cluster.to_owned(),
                gate: RwLock::new(()),
                sql: Mutex::new(connection),
                _db: db,
                clients: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    async fn current_producer(&self, transaction_id: &str) -> Result<Option<(i64, i16)>> {
        let sql = self.shared.sql.lock().await;
        let mut rows = sql
            .query(
                CURRENT_PRODUCER,
                (self.shared.cluster.as_str(), transaction_id),
            )
            .await?;
        Ok(match rows.next().await? {
            Some(row) => Some((row.get::<i64>(0)?, row.get::<i64>(1)? as i16)),
            None => None,
        })
    }

    /// Finishes deferred transactions and resets finished ones; call with the gate held
    /// exclusively, right after the tansu call that ended a transaction.
    async fn repair(&self) -> Result<()> {
        let sql = self.shared.sql.lock().await;
        let tx = sql
            .transaction_with_behavior(libsql::TransactionBehavior::Immediate)
            .await?;
        let mut deferred = Vec::new();
        let mut rows = tx.query(DEFERRED, ()).await?;
        while let Some(row) = rows.next().await? {
            deferred.push((row.get::<i64>(0)?, row.get::<String>(1)?));
        }
        drop(rows);
        for (id, status) in deferred {
            if status == "PREPARE_COMMIT" {
                tx.execute(APPLY_OFFSETS, [id]).await?;
            }
            for statement in FINISH {
                tx.execute(statement, [id]).await?;
            }
        }
        tx.execute(RESET_FINISHED, ()).await?;
        for statement in DROP_STALE_OFFSETS {
            tx.execute(statement, ()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The last stable offset of a partition whose high watermark is `high`.
    pub(crate) async fn last_stable_offset(
        &self,
        topic: &str,
        partition: i32,
        high: i64,
    ) -> Result<i64> {
        let sql = self.shared.sql.lock().await;
        let mut rows = sql
            .query(
                FIRST_UNSTABLE,
                (self.shared.cluster.as_str(), topic, partition),
            )
            .await?;
        let first_unstable = match rows.next().await? {
            Some(row) => row.get::<Option<i64>>(0)?,
            None => None,
        };
        Ok(first_unstable.map_or(high, |first| first.min(high)))
    }

    /// `(producer id, first offset)` of the aborted transactions with records in `from..=to`.
    pub(crate) async fn aborted_transactions(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let sql = self.shared.sql.lock().await;
        let mut rows = sql
            .query(
                ABORTED_TXNS,
                (self.shared.cluster.as_str(), topic, partition, from),
            )
            .await?;
        let mut aborted = Vec::new();
        while let Some(row) = rows.next().await? {
            let producer_id = row.get::<Option<i64>>(0)?;
            let first = row.get::<Option<i64>>(1)?;
            if let (Some(producer_id), Some(first)) = (producer_id, first) {
                if first <= to {
                    aborted.push((producer_id, first));
                }
            }
        }
        Ok(aborted)
    }

    /// A topic by name or id.
    pub(crate) async fn topic(
        &self,
        name: Option<&str>,
        id: Option<[u8; 16]>,
    ) -> Result<Option<TopicRow>> {
        let uuid = id.map(|id| Uuid::from_bytes(id).to_string());
        let sql = self.shared.sql.lock().await;
        let mut rows = sql
            .query(TOPIC, (self.shared.cluster.as_str(), name, uuid.as_deref()))
            .await?;
        Ok(match rows.next().await? {
            Some(row) => {
                let id = Uuid::parse_str(&row.get::<String>(1)?)
                    .map_err(|e| Error::Message(format!("topic uuid: {e}")))?;
                Some(TopicRow {
                    name: row.get::<String>(0)?,
                    id: id.into_bytes(),
                    partitions: row.get::<i64>(2)? as i32,
                })
            }
            None => None,
        })
    }

    /// Aborts transactions open longer than their timeout and bumps their epoch (fencing the
    /// producer that abandoned them), as Kafka's transaction coordinator does.
    pub(crate) async fn abort_expired(&self) -> Result<usize> {
        if self.expired().await?.is_empty() {
            return Ok(0);
        }
        let _exclusive = self.shared.gate.write().await;
        let expired = self.expired().await?;
        for (transaction_id, timeout_ms) in &expired {
            let response = self
                .inner
                .init_producer(
                    Some(transaction_id.as_str()),
                    *timeout_ms,
                    Some(-1),
                    Some(-1),
                )
                .await?;
            if response.error != ErrorCode::None {
                return Err(Error::Api(response.error));
            }
            self.repair().await?;
        }
        Ok(expired.len())
    }

    async fn expired(&self) -> Result<Vec<(String, i32)>> {
        let sql = self.shared.sql.lock().await;
        let mut rows = sql.query(EXPIRED, [self.shared.cluster.as_str()]).await?;
        let mut expired = Vec::new();
        while let Some(row) = rows.next().await? {
            expired.push((row.get::<String>(0)?, row.get::<i64>(1)? as i32));
        }
        Ok(expired)
    }

    /// KIP-360: `InitProducerId` with a producer id and epoch (tansu has `todo!()` there).
    async fn bump_epoch(
        &self,
        transaction_id: Option<&str>,
        transaction_timeout_ms: i32,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<ProducerIdResponse> {
        let refuse = |error| ProducerIdResponse {
            error,
            id: -1,
            epoch: -1,
        };
        let Some(transaction_id) = transaction_id else {
            // An idempotent producer asking for a new epoch: a fresh producer id serves the
            // same purpose (its sequence numbers start again).
            let _open = self.shared.gate.read().await;
            return self
                .inner
                .init_producer(None, transaction_timeout_ms, Some(-1), Some(-1))
                .await;
        };
        let _exclusive = self.shared.gate.write().await;
        let check = producer_check(
            self.current_producer(transaction_id).await?,
            producer_id,
            producer_epoch,
        );
        if check != ErrorCode::None {
            return Ok(refuse(check));
        }
        // For the current id and epoch tansu's (-1, -1) path does exactly the bump: it aborts
        // the open transaction and increments the epoch of the same producer id.
        let response = self
            .inner
            .init_producer(
                Some(transaction_id),
                transaction_timeout_ms,
                Some(-1),
                Some(-1),
            )
            .await?;
        self.repair().await?;
        Ok(response)
    }
}

#[async_trait]
impl Storage for TxnStore {
    async fn delete_records(
        &self,
        topics: &[DeleteRecordsTopic],
    ) -> Result<Vec<DeleteRecordsTopicResult>> {
        // tansu 0.6's SQLite engine has `todo!()` here, which would stop the whole broker.
        Ok(topics
            .iter()
            .map(|topic| {
                let partitions = topic.partitions.as_deref().unwrap_or_default().iter();
                DeleteRecordsTopicResult::default()
                    .name(topic.name.clone())
                    .partitions(Some(
                        partitions
                            .map(|p| {
                                DeleteRecordsPartitionResult::default()
                                    .partition_index(p.partition_index)
                                    .low_watermark(-1)
                                    .error_code(ErrorCode::UnsupportedVersion.into())
                            })
                            .collect(),
                    ))
            })
            .collect())
    }

    async fn list_offsets(
        &self,
        isolation_level: IsolationLevel,
        offsets: &[(Topition, ListOffset)],
    ) -> Result<Vec<(Topition, ListOffsetResponse)>> {
        let mut listed = {
            let _open = self.shared.gate.read().await;
            self.inner.list_offsets(isolation_level, offsets).await?
        };
        if isolation_level == IsolationLevel::ReadCommitted {
            // The same last stable offset as our read_committed Fetch reports. (tansu's own
            // `list_latest_offset_committed.sql` agrees once statuses are reset, but answers 0
            // for a partition whose last record is gone.)
            for (topition, response) in &mut listed {
                let latest = offsets
                    .iter()
                    .any(|(t, o)| t == topition && matches!(o, ListOffset::Latest));
                if latest && response.error_code == ErrorCode::None {
                    let high = self.offset_stage(topition).await?.high_watermark();
                    response.offset = Some(
                        self.last_stable_offset(topition.topic(), topition.partition(), high)
                            .await?,
                    );
                }
            }
        }
        Ok(listed)
    }

    async fn init_producer(
        &self,
        transaction_id: Option<&str>,
        transaction_timeout_ms: i32,
        producer_id: Option<i64>,
        producer_epoch: Option<i16>,
    ) -> Result<ProducerIdResponse> {
        // InitProducerId v0-2 has no producer id and epoch: the same as (-1, -1).
        match (producer_id.unwrap_or(-1), producer_epoch.unwrap_or(-1)) {
            (-1, -1) => {
                let _exclusive = self.shared.gate.write().await;
                let response = self
                    .inner
                    .init_producer(transaction_id, transaction_timeout_ms, Some(-1), Some(-1))
                    .await?;
                if transaction_id.is_some() {
                    // tansu aborted the previous epoch's open transaction (if BEGIN).
                    self.repair().await?;
                }
                Ok(response)
            }
            (id, epoch) if id >= 0 && epoch >= 0 => {
                self.bump_epoch(transaction_id, transaction_timeout_ms, id, epoch)
                    .await
            }
            _ => Ok(ProducerIdResponse {
                error: ErrorCode::InvalidRequest,
                id: -1,
                epoch: -1,
            }),
        }
    }

    async fn txn_add_offsets(
        &self,
        transaction_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
    ) -> Result<ErrorCode> {
        let _open = self.shared.gate.read().await;
        let check = producer_check(
            self.current_producer(transaction_id).await?,
            producer_id,
            producer_epoch,
        );
        if check != ErrorCode::None {
            return Ok(check);
        }
        self.inner
            .txn_add_offsets(transaction_id, producer_id, producer_epoch, group_id)
            .await
    }

    async fn txn_add_partitions(
        &self,
        partitions: TxnAddPartitionsRequest,
    ) -> Result<TxnAddPartitionsResponse> {
        let _open = self.shared.gate.read().await;
        match partitions {
            TxnAddPartitionsRequest::VersionZeroToThree {
                ref transaction_id,
                producer_id,
                producer_epoch,
                ref topics,
            } => {
                let check = producer_check(
                    self.current_producer(transaction_id).await?,
                    producer_id,
                    producer_epoch,
                );
                if check != ErrorCode::None {
                    return Ok(TxnAddPartitionsResponse::VersionZeroToThree(
                        topics
                            .iter()
                            .map(|topic| {
                                let partitions = topic.partitions.as_deref().unwrap_or_default();
                                AddPartitionsToTxnTopicResult::default()
                                    .name(topic.name.clone())
                                    .results_by_partition(Some(
                                        partitions
                                            .iter()
                                            .map(|&partition_index| {
                                                AddPartitionsToTxnPartitionResult::default()
                                                    .partition_index(partition_index)
                                                    .partition_error_code(check.into())
                                            })
                                            .collect(),
                                    ))
                            })
                            .collect(),
                    ));
                }
                self.inner.txn_add_partitions(partitions).await
            }
            // Brokers' own batched requests (KIP-890); tansu has `todo!()` here and no client
            // sends it (librdkafka uses v0).
            TxnAddPartitionsRequest::VersionFourPlus { .. } => {
                Err(Error::Api(ErrorCode::UnsupportedVersion))
            }
        }
    }

    async fn txn_end(
        &self,
        transaction_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        committed: bool,
    ) -> Result<ErrorCode> {
        let _exclusive = self.shared.gate.write().await;
        let check = producer_check(
            self.current_producer(transaction_id).await?,
            producer_id,
            producer_epoch,
        );
        if check != ErrorCode::None {
            return Ok(check);
        }
        let code = self
            .inner
            .txn_end(transaction_id, producer_id, producer_epoch, committed)
            .await?;
        self.repair().await?;
        Ok(code)
    }

    async fn register_broker(&self, broker_registration: BrokerRegistrationRequest) -> Result<()> {
        let _open = self.shared.gate.read().await;
        self.inner.register_broker(broker_registration).await
    }

    async fn create_topic(&self, topic: CreatableTopic, validate_only: bool) -> Result<Uuid> {
        let _open = self.shared.gate.read().await;
        self.inner.create_topic(topic, validate_only).await
    }

    async fn incremental_alter_resource(
        &self,
        resource: AlterConfigsResource,
    ) -> Result<AlterConfigsResourceResponse> {
        let _open = self.shared.gate.read().await;
        self.inner.incremental_alter_resource(resource).await
    }

    async fn delete_topic(&self, topic: &TopicId) -> Result<ErrorCode> {
        let _open = self.shared.gate.read().await;
        self.inner.delete_topic(topic).await
    }

    async fn brokers(&self) -> Result<Vec<DescribeClusterBroker>> {
        let _open = self.shared.gate.read().await;
        self.inner.brokers().await
    }

    async fn produce(
        &self,
        transaction_id: Option<&str>,
        topition: &Topition,
        batch: deflated::Batch,
    ) -> Result<i64> {
        let _open = self.shared.gate.read().await;
        self.inner.produce(transaction_id, topition, batch).await
    }

    async fn fetch(
        &self,
        topition: &'_ Topition,
        offset: i64,
        min_bytes: u32,
        max_bytes: u32,
        isolation: IsolationLevel,
    ) -> Result<Vec<deflated::Batch>> {
        let _open = self.shared.gate.read().await;
        self.inner
            .fetch(topition, offset, min_bytes, max_bytes, isolation)
            .await
    }

    async fn offset_stage(&self, topition: &Topition) -> Result<OffsetStage> {
        let _open = self.shared.gate.read().await;
        self.inner.offset_stage(topition).await
    }

    async fn offset_commit(
        &self,
        group_id: &str,
        retention_time_ms: Option<Duration>,
        offsets: &[(Topition, OffsetCommitRequest)],
    ) -> Result<Vec<(Topition, ErrorCode)>> {
        let _open = self.shared.gate.read().await;
        self.inner
            .offset_commit(group_id, retention_time_ms, offsets)
            .await
    }

    async fn offset_fetch(
        &self,
        group_id: Option<&str>,
        topics: &[Topition],
        require_stable: Option<bool>,
    ) -> Result<BTreeMap<Topition, i64>> {
        let _open = self.shared.gate.read().await;
        self.inner
            .offset_fetch(group_id, topics, require_stable)
            .await
    }

    async fn committed_offset_topitions(&self, group_id: &str) -> Result<BTreeMap<Topition, i64>> {
        let _open = self.shared.gate.read().await;
        self.inner.committed_offset_topitions(group_id).await
    }

    async fn metadata(&self, topics: Option<&[TopicId]>) -> Result<MetadataResponse> {
        let _open = self.shared.gate.read().await;
        self.inner.metadata(topics).await
    }

    async fn upsert_user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    ) -> Result<()> {
        let _open = self.shared.gate.read().await;
        self.inner
            .upsert_user_scram_credential(user, mechanism, credential)
            .await
    }

    async fn delete_user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<()> {
        let _open = self.shared.gate.read().await;
        self.inner
            .delete_user_scram_credential(user, mechanism)
            .await
    }

    async fn user_scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>> {
        let _open = self.shared.gate.read().await;
        self.inner.user_scram_credential(user, mechanism).await
    }

    async fn describe_config(
        &self,
        name: &str,
        resource: ConfigResource,
        keys: Option<&[String]>,
    ) -> Result<DescribeConfigsResult> {
        let _open = self.shared.gate.read().await;
        self.inner.describe_config(name, resource, keys).await
    }

    async fn list_groups(&self, states_filter: Option<&[String]>) -> Result<Vec<ListedGroup>> {
        let _open = self.shared.gate.read().await;
        self.inner.list_groups(states_filter).await
    }

    async fn delete_groups(
        &self,
        group_ids: Option<&[String]>,
    ) -> Result<Vec<DeletableGroupResult>> {
        let _open = self.shared.gate.read().await;
        self.inner.delete_groups(group_ids).await
    }

    async fn describe_groups(
        &self,
        group_ids: Option<&[String]>,
        include_authorized_operations: bool,
    ) -> Result<Vec<NamedGroupDetail>> {
        let _ = include_authorized_operations;
        let mut described = Vec::new();
        for group_id in group_ids.unwrap_or_default() {
            described.push(match self.group_detail(group_id).await? {
                Some(detail) => NamedGroupDetail::found(group_id.clone(), detail),
                None => NamedGroupDetail::error_code(group_id.clone(), ErrorCode::GroupIdNotFound),
            });
        }
        Ok(described)
    }

    async fn describe_topic_partitions(
        &self,
        topics: Option<&[TopicId]>,
        partition_limit: i32,
        cursor: Option<Topition>,
    ) -> Result<Vec<DescribeTopicPartitionsResponseTopic>> {
        let _open = self.shared.gate.read().await;
        self.inner
            .describe_topic_partitions(topics, partition_limit, cursor)
            .await
    }

    async fn update_group(
        &self,
        group_id: &str,
        detail: GroupDetail,
        version: Option<Version>,
    ) -> Result<Version, UpdateError<GroupDetail>> {
        let _open = self.shared.gate.read().await;
        self.inner.update_group(group_id, detail, version).await
    }

    async fn txn_offset_commit(
        &self,
        offsets: TxnOffsetCommitRequest,
    ) -> Result<Vec<TxnOffsetCommitResponseTopic>> {
        let _open = self.shared.gate.read().await;
        self.inner.txn_offset_commit(offsets).await
    }

    async fn maintain(&self, now: SystemTime) -> Result<()> {
        let _open = self.shared.gate.read().await;
        self.inner.maintain(now).await
    }

    async fn cluster_id(&self) -> Result<String> {
        let _open = self.shared.gate.read().await;
        self.inner.cluster_id().await
    }

    async fn node(&self) -> Result<i32> {
        let _open = self.shared.gate.read().await;
        self.inner.node().await
    }

    async fn advertised_listener(&self) -> Result<Url> {
        let _open = self.shared.gate.read().await;
        self.inner.advertised_listener().await
    }

    async fn ping(&self) -> Result<()> {
        let _open = self.shared.gate.read().await;
        self.inner.ping().await
    }
}
