//! The embedded broker's request routes: tansu 0.6's own, plus what it lacks for transactions.
//!
//! tansu 0.6 does not route `EndTxn` (API key 26), so librdkafka, which only sends what
//! `ApiVersions` advertises, failed every commit and abort with "EndTxnRequest (KIP-98) not
//! supported by broker". Its Fetch ignores `read_committed`: it reports the high watermark as
//! the last stable offset and never lists aborted transactions, so a `read_committed` consumer
//! saw open and aborted transactions' records. `Broker::listen` hard-wires its router, so we
//! build the same route table from tansu's public route functions, over our [`TxnStore`]
//! (which repairs tansu's transaction bookkeeping), and run our own accept loop:
//!
//! * every storage route but Fetch, the group coordinator and SASL routes, as tansu has them;
//! * [`EndTxn`], which ends the transaction through [`Storage::txn_end`] (tansu writes the
//!   commit or abort markers and applies or drops the transaction's offsets). `ApiVersions` is
//!   generated from the routes, so it now advertises `EndTxn`;
//! * [`Fetch`], which serves `read_uncommitted` as tansu does and `read_committed` itself;
//! * [`DescribeGroups`], with each member's client id, metadata and assignment (tansu's
//!   leaves them empty, and fails to read any stored group); the client ids come from
//!   [`Members`], a coordinator wrapper that notes them as members join.

use std::time::{Duration, Instant};

use rama::layer::{MapErrLayer, MapStateLayer};
use rama::{Context, Layer as _, Service};
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_broker::coordinator::group::{Coordinator, OffsetCommit};
use tansu_broker::service::{auth, coordinator, storage as storage_routes};
use tansu_broker::Error as BrokerError;
use tansu_sans_io::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use tansu_sans_io::fetch_request::{FetchPartition, FetchTopic};
use tansu_sans_io::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, PartitionData,
    SnapshotId,
};
use tansu_sans_io::join_group_request::JoinGroupRequestProtocol;
use tansu_sans_io::leave_group_request::MemberIdentity;
use tansu_sans_io::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic};
use tansu_sans_io::record::deflated::Frame;
use tansu_sans_io::sync_group_request::SyncGroupRequestAssignment;
use tansu_sans_io::{
    ApiKey as _, Body, DescribeGroupsRequest, DescribeGroupsResponse, EndTxnRequest,
    EndTxnResponse, ErrorCode, FetchRequest, FetchResponse, IsolationLevel,
};
use tansu_service::{
    BytesFrameLayer, FrameRequestLayer, FrameRouteBuilder, FrameRouteService, TcpBytesLayer,
    TcpContext, TcpContextLayer,
};
use tansu_storage::{
    ConsumerGroupState, FetchService, GroupDetail, GroupState, Result, Storage, Topition,
};

use crate::txn_store::TxnStore;

type Builder = FrameRouteBuilder<(), BrokerError>;
type Route = fn(Builder, TxnStore) -> std::result::Result<Builder, BrokerError>;

/// tansu's storage routes (`tansu_broker::service::storage::services`) less Fetch and
/// DescribeGroups.
const STORAGE_ROUTES: [Route; 24] = [
    storage_routes::add_offsets_to_txn,
    storage_routes::add_partitions_to_txn,
    storage_routes::alter_user_scram_credentials,
    storage_routes::consumer_group_describe,
    storage_routes::create_acls,
    storage_routes::create_topics,
    storage_routes::delete_groups,
    storage_routes::delete_records,
    storage_routes::delete_topics,
    storage_routes::describe_acls,
    storage_routes::describe_cluster,
    storage_routes::describe_configs,
    storage_routes::describe_topic_partitions,
    storage_routes::describe_user_scram_credentials,
    storage_routes::find_coordinator,
    storage_routes::get_telemetry_subscriptions,
    storage_routes::incremental_alter_configs,
    storage_routes::init_producer_id,
    storage_routes::list_groups,
    storage_routes::list_offsets,
    storage_routes::list_partition_reassignments,
    storage_routes::metadata,
    storage_routes::produce,
    storage_routes::txn_offset_commit_request,
];

/// Serves Kafka clients on `listener` until the runtime stops.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    store: TxnStore,
    cluster_id: String,
) -> std::result::Result<(), BrokerError> {
    let service = (
        TcpContextLayer::new(TcpContext::default().cluster_id(Some(cluster_id))),
        TcpBytesLayer::<()>::default(),
        BytesFrameLayer::default(),
    )
        .into_layer(route_table(store)?);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, a connection reset before accept, ...
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            // A protocol error ends that connection only, as in tansu's own loop.
            let _ = service.serve(Context::<()>::default(), stream).await;
        });
    }
}

fn route_table(
    store: TxnStore,
) -> std::result::Result<FrameRouteService<(), BrokerError>, BrokerError> {
    let mut builder = FrameRouteService::<(), BrokerError>::builder();
    for route in STORAGE_ROUTES {
        builder = route(builder, store.clone())?;
    }
    let members = Members {
        inner: Controller::with_storage(store.clone())?,
        store: store.clone(),
    };
    builder = coordinator::services(builder, members)?;
    let state = store.clone();
    builder = builder.with_route(
        DescribeGroupsRequest::KEY,
        (
            MapErrLayer::new(BrokerError::from),
            MapStateLayer::new(move |_| state.clone()),
            FrameRequestLayer::<DescribeGroupsRequest>::new(),
        )
            .into_layer(DescribeGroups)
            .boxed(),
    )?;
    builder = auth::services(builder)?;
    let state = store.clone();
    builder = builder.with_route(
        EndTxnRequest::KEY,
        (
            MapErrLayer::new(BrokerError::from),
            MapStateLayer::new(move |_| state.clone()),
            FrameRequestLayer::<EndTxnRequest>::new(),
        )
            .into_layer(EndTxn)
            .boxed(),
    )?;
    builder = builder.with_route(
        FetchRequest::KEY,
        (
            MapErrLayer::new(BrokerError::from),
            MapStateLayer::new(move |_| store.clone()),
            FrameRequestLayer::<FetchRequest>::new(),
        )
            .into_layer(Fetch)
            .boxed(),
    )?;
    Ok(builder.build()?)
}

/// tansu's group coordinator, noting the client id of each member that joins.
#[derive(Clone, Debug)]
struct Members {
    inner: Controller<TxnStore>,
    store: TxnStore,
}

#[async_trait::async_trait]
impl Coordinator for Members {
    async fn join(
        &mut self,
        client_id: Option<&str>,
        group_id: &str,
        session_timeout_ms: i32,
        rebalance_timeout_ms: Option<i32>,
        member_id: &str,
        group_instance_id: Option<&str>,
        protocol_type: &str,
        protocols: Option<&[JoinGroupRequestProtocol]>,
        reason: Option<&str>,
    ) -> std::result::Result<Body, BrokerError> {
        let body = self
            .inner
            .join(
                client_id,
                group_id,
                session_timeout_ms,
                rebalance_timeout_ms,
                member_id,
                group_instance_id,
                protocol_type,
                protocols,
                reason,
            )
            .await?;
        if let (Body::JoinGroupResponse(response), Some(client_id)) = (&body, client_id) {
            if !response.member_id.is_empty() {
                self.store
                    .record_member(group_id, &response.member_id, client_id);
            }
        }
        Ok(body)
    }

    async fn sync(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Option<&[SyncGroupRequestAssignment]>,
    ) -> std::result::Result<Body, BrokerError> {
        self.inner
            .sync(
                group_id,
                generation_id,
                member_id,
                group_instance_id,
                protocol_type,
                protocol_name,
                assignments,
            )
            .await
    }

    async fn heartbeat(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> std::result::Result<Body, BrokerError> {
        self.inner
            .heartbeat(group_id, generation_id, member_id, group_instance_id)
            .await
    }

    async fn leave(
        &mut self,
        group_id: &str,
        member_id: Option<&str>,
        members: Option<&[MemberIdentity]>,
    ) -> std::result::Result<Body, BrokerError> {
        self.inner.leave(group_id, member_id, members).await
    }

    async fn offset_commit(
        &mut self,
        detail: OffsetCommit<'_>,
    ) -> std::result::Result<Body, BrokerError> {
        self.inner.offset_commit(detail).await
    }

    async fn offset_fetch(
        &mut self,
        group_id: Option<&str>,
        topics: Option<&[OffsetFetchRequestTopic]>,
        groups: Option<&[OffsetFetchRequestGroup]>,
        require_stable: Option<bool>,
    ) -> std::result::Result<Body, BrokerError> {
        self.inner
            .offset_fetch(group_id, topics, groups, require_stable)
            .await
    }
}

/// `DescribeGroups`: state, protocol and members (client id, metadata, assignment).
#[derive(Clone, Copy, Debug, Default)]
struct DescribeGroups;

impl Service<TxnStore, DescribeGroupsRequest> for DescribeGroups {
    type Response = DescribeGroupsResponse;
    type Error = tansu_storage::Error;

    async fn serve(
        &self,
        ctx: Context<TxnStore>,
        req: DescribeGroupsRequest,
    ) -> Result<DescribeGroupsResponse> {
        let store = ctx.state();
        let mut groups = Vec::new();
        for group_id in req.groups.unwrap_or_default() {
            groups.push(match store.group_detail(&group_id).await? {
                Some(detail) => described_group(store, group_id, &detail),
                None => DescribedGroup::default()
                    .error_code(ErrorCode::GroupIdNotFound.into())
                    .group_id(group_id)
                    .group_state("Dead".into())
                    .protocol_type(String::new())
                    .protocol_data(String::new())
                    .members(Some(Vec::new()))
                    .authorized_operations(Some(-2_147_483_648)),
            });
        }
        Ok(DescribeGroupsResponse::default()
            .throttle_time_ms(Some(0))
            .groups(Some(groups)))
    }
}

fn described_group(store: &TxnStore, group_id: String, detail: &GroupDetail) -> DescribedGroup {
    let (protocol_name, assignments) = match &detail.state {
        GroupState::Formed {
            protocol_name,
            assignments,
            ..
        } => (protocol_name.clone(), Some(assignments)),
        GroupState::Forming { protocol_name, .. } => {
            (protocol_name.clone().unwrap_or_default(), None)
        }
    };
    let members = detail
        .members
        .iter()
        .map(|(member_id, member)| {
            DescribedGroupMember::default()
                .member_id(member_id.clone())
                .group_instance_id(member.join_response.group_instance_id.clone())
                .client_id(store.member_client(&group_id, member_id))
                .client_host("/127.0.0.1".into())
                .member_metadata(member.join_response.metadata.clone())
                .member_assignment(
                    assignments
                        .and_then(|assignments| assignments.get(member_id).cloned())
                        .unwrap_or_default(),
                )
        })
        .collect();
    DescribedGroup::default()
        .error_code(ErrorCode::None.into())
        .group_state(ConsumerGroupState::from(detail).to_string())
        .group_id(group_id)
        .protocol_type(detail.state.protocol_type().unwrap_or_default())
        .protocol_data(protocol_name)
        .members(Some(members))
        .authorized_operations(Some(-2_147_483_648))
}

/// `EndTxn`: commit or abort the producer's transaction.
#[derive(Clone, Copy, Debug, Default)]
struct EndTxn;

impl Service<TxnStore, EndTxnRequest> for EndTxn {
    type Response = EndTxnResponse;
    type Error = tansu_storage::Error;

    async fn serve(&self, ctx: Context<TxnStore>, req: EndTxnRequest) -> Result<EndTxnResponse> {
        let code = ctx
            .state()
            .txn_end(
                &req.transactional_id,
                req.producer_id,
                req.producer_epoch,
                req.committed,
            )
            .await?;
        Ok(EndTxnResponse::default()
            .throttle_time_ms(0)
            .error_code(i16::from(code)))
    }
}

/// tansu's cap on one Fetch response.
const DEFAULT_MAX_BYTES: usize = 5 * 1024 * 1024;

/// How often a waiting `read_committed` Fetch looks for newly stable records.
const POLL: Duration = Duration::from_millis(20);

/// Fetch: `read_uncommitted` (isolation level 0) as tansu serves it; `read_committed` (1)
/// capped at the last stable offset, with the aborted transactions listed.
///
/// Two ways make aborted records invisible: list them in `aborted_transactions`, or drop their
/// batches from the response. We list them, as Kafka does, because that is robust with
/// librdkafka 2.12.1: its reader skips each transactional batch of a listed producer from the
/// listed first offset until that producer's ABORT marker (`rdkafka_msgset_reader.c`,
/// `rd_kafka_msgset_reader_msgs_v2` and the control-record handling), and a skipped batch still
/// advances the fetch position (`msetr_next_offset` is taken from the batch header), so a
/// response of aborted batches alone moves the consumer on. Dropping batches instead leaves
/// offset gaps the consumer only crosses if something after them is returned: a response
/// holding nothing but aborted records (say, cut by `max_bytes` before the marker) would come
/// back empty and the consumer would ask for the same offset forever. The list must hold
/// exactly the aborted transactions whose ABORT marker is at or after the fetch offset (an
/// older one would make librdkafka skip a later committed transaction of the same producer),
/// which the log itself tells us (see [`TxnStore::aborted_transactions`]).
#[derive(Clone, Copy, Debug, Default)]
struct Fetch;

impl Service<TxnStore, FetchRequest> for Fetch {
    type Response = FetchResponse;
    type Error = tansu_storage::Error;

    async fn serve(&self, ctx: Context<TxnStore>, req: FetchRequest) -> Result<FetchResponse> {
        if req.isolation_level != Some(1) {
            return FetchService.serve(ctx, req).await;
        }
        let store = ctx.state();
        let max_wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
        let deadline = Instant::now() + max_wait;
        let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
        let max_bytes = req.max_bytes.map_or(DEFAULT_MAX_BYTES, |max| {
            usize::try_from(max).unwrap_or(0).min(DEFAULT_MAX_BYTES)
        });
        let topics = req.topics.unwrap_or_default();
        loop {
            let mut budget = max_bytes;
            let mut responses = Vec::with_capacity(topics.len());
            for topic in &topics {
                responses.push(fetch_topic(store, topic, &mut budget).await?);
            }
            let now = Instant::now();
            if max_bytes - budget >= min_bytes || now >= deadline {
                return Ok(FetchResponse::default()
                    .throttle_time_ms(Some(0))
                    .error_code(Some(ErrorCode::None.into()))
                    .session_id(Some(0))
                    .node_endpoints(Some([].into()))
                    .responses(Some(responses)));
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }
}

async fn fetch_topic(
    store: &TxnStore,
    fetch: &FetchTopic,
    budget: &mut usize,
) -> Result<FetchableTopicResponse> {
    let partitions = fetch.partitions.as_deref().unwrap_or_default();
    let Some(topic) = store.topic(fetch.topic.as_deref(), fetch.topic_id).await? else {
        return Ok(FetchableTopicResponse::default()
            .topic(fetch.topic.clone())
            .topic_id(Some([0; 16]))
            .partitions(Some(
                partitions
                    .iter()
                    .map(|p| unknown_partition(p.partition))
                    .collect(),
            )));
    };
    let mut responses = Vec::with_capacity(partitions.len());
    for partition in partitions {
        responses.push(if (0..topic.partitions).contains(&partition.partition) {
            fetch_partition(store, &topic.name, partition, budget).await?
        } else {
            unknown_partition(partition.partition)
        });
    }
    Ok(FetchableTopicResponse::default()
        .topic(fetch.topic.clone())
        .topic_id(Some(topic.id))
        .partitions(Some(responses)))
}

/// The partition's records from the fetch offset up to (not including) the last stable offset.
async fn fetch_partition(
    store: &TxnStore,
    topic: &str,
    fetch: &FetchPartition,
    budget: &mut usize,
) -> Result<PartitionData> {
    let topition = Topition::new(topic, fetch.partition);
    let stage = store.offset_stage(&topition).await?;
    let high = stage.high_watermark();
    let stable = store
        .last_stable_offset(topic, fetch.partition, high)
        .await?;
    let limit = match usize::try_from(fetch.partition_max_bytes) {
        Ok(max) if max > 0 => max.min(*budget),
        _ => *budget,
    };
    let mut offset = fetch.fetch_offset;
    let mut used = 0;
    let mut batches = Vec::new();
    'fetch: while offset < stable && used < limit {
        let max_bytes = u32::try_from(limit - used).unwrap_or(u32::MAX);
        let fetched = store
            .fetch(
                &topition,
                offset,
                0,
                max_bytes,
                IsolationLevel::ReadUncommitted,
            )
            .await?;
        let progress = batches.len();
        for batch in fetched {
            let last = batch.base_offset + i64::from(batch.last_offset_delta);
            if batch.record_count == 0 || batch.base_offset < offset {
                break;
            }
            if last >= stable {
                // tansu groups consecutive records of one producer, epoch and attribute set,
                // so a batch never mixes a stable transaction with an open one; an unstable
                // batch waits whole.
                break 'fetch;
            }
            used += batch.record_data.len();
            offset = last + 1;
            batches.push(batch);
        }
        if batches.len() == progress {
            break;
        }
    }
    *budget = budget.saturating_sub(used);
    let aborted = if batches.is_empty() {
        Vec::new()
    } else {
        store
            .aborted_transactions(topic, fetch.partition, fetch.fetch_offset, offset - 1)
            .await?
            .into_iter()
            .map(|(producer_id, first_offset)| {
                AbortedTransaction::default()
                    .producer_id(producer_id)
                    .first_offset(first_offset)
            })
            .collect()
    };
    Ok(PartitionData::default()
        .partition_index(fetch.partition)
        .error_code(ErrorCode::None.into())
        .high_watermark(high)
        .last_stable_offset(Some(stable))
        .log_start_offset(Some(stage.log_start()))
        .diverging_epoch(None)
        .current_leader(None)
        .snapshot_id(None)
        .aborted_transactions(Some(aborted))
        .preferred_read_replica(Some(-1))
        .records((!batches.is_empty()).then_some(Frame { batches })))
}

/// What tansu answers for a partition it does not have.
fn unknown_partition(partition: i32) -> PartitionData {
    PartitionData::default()
        .partition_index(partition)
        .error_code(ErrorCode::UnknownTopicOrPartition.into())
        .high_watermark(0)
        .last_stable_offset(Some(0))
        .log_start_offset(Some(-1))
        .diverging_epoch(Some(EpochEndOffset::default().epoch(-1).end_offset(-1)))
        .current_leader(Some(
            LeaderIdAndEpoch::default().leader_id(0).leader_epoch(0),
        ))
        .snapshot_id(Some(SnapshotId::default().end_offset(-1).epoch(-1)))
        .aborted_transactions(Some([].into()))
        .preferred_read_replica(Some(-1))
        .records(None)
}
