//! The consumer-group coordinator: the classic (pre-KIP-848) group protocol — JoinGroup,
//! SyncGroup, Heartbeat and LeaveGroup with session and rebalance timeouts — and the groups'
//! committed offsets (OffsetCommit, OffsetFetch, TxnOffsetCommit), DescribeGroups, ListGroups
//! and DeleteGroups, with the semantics of Apache Kafka's `GroupCoordinator`.
//!
//! All groups live under one mutex, never held across an `.await`: a JoinGroup or SyncGroup
//! that has to wait for the rest of its group parks on a oneshot channel, answered when the
//! rebalance completes or the leader's assignment arrives. [`GroupCoordinator::run_timers`]
//! expires silent members and completes rebalances whose deadline passed.
//!
//! Committed offsets are written to the metadata log before the commit is answered, and come
//! back from it at start. Membership is not persisted: after a restart every member is unknown
//! and rejoins, as after a coordinator failover in Kafka. Static membership
//! (`group.instance.id`) is reported but not enforced: such members are ordinary members.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use tokio::time::{Instant, MissedTickBehavior};

use crate::meta::{CommittedOffset, MetaLog, MetaRecord};

/// The session timeouts a member may ask for (Kafka's `group.min.session.timeout.ms` and
/// `group.max.session.timeout.ms`, with a lower minimum so that tests expire members fast).
const SESSION_TIMEOUTS_MS: RangeInclusive<i32> = 1_000..=300_000;
/// How often the timer task looks for expired sessions and passed rebalance deadlines.
const TICK: Duration = Duration::from_millis(100);
/// The longest metadata string of a committed offset (Kafka's `offset.metadata.max.bytes`).
const MAX_OFFSET_METADATA_BYTES: usize = 4096;
/// The state DescribeGroups reports for a group that does not exist.
const DEAD: &str = "Dead";

/// A topic partition, as committed offsets are keyed.
type Partition = (String, i32);

/// The consumer groups of the broker. Cheap to clone: every clone is the same coordinator.
#[derive(Clone)]
pub(crate) struct GroupCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    groups: Mutex<BTreeMap<String, Group>>,
    meta: MetaLog,
    initial_rebalance_delay: Duration,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the members whose session expired and completes the rebalances whose time is up.
    fn expire(&self, now: Instant) {
        for group in self.lock().values_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, member)| member.expired(now))
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                group.remove_member(&id, now);
            }
            group.try_complete_join(now);
        }
    }
}

/// An answer given at once, or one to wait for.
enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

struct Group {
    state: GroupState,
    generation: i32,
    /// The members' protocol type (`consumer` for consumers), set by the first member to join
    /// an empty group and kept while the group is empty, as Kafka does.
    protocol_type: Option<String>,
    /// The protocol chosen at the last completed rebalance (`None` while empty).
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    offsets: BTreeMap<Partition, CommittedOffset>,
    /// Offsets committed in open transactions, by producer id: applied or dropped at EndTxn.
    pending_txn_offsets: BTreeMap<i64, BTreeMap<Partition, CommittedOffset>>,
    initial_rebalance_delay: Duration,
}

enum GroupState {
    Empty,
    PreparingRebalance(Rebalance),
    CompletingRebalance,
    Stable,
}

impl GroupState {
    fn name(&self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance(_) => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A rebalance waiting for the members to (re)join.
struct Rebalance {
    started: Instant,
    /// When members that have not rejoined are removed and the rebalance completes: the
    /// largest rebalance timeout of the members since it started.
    deadline: Instant,
    /// For a group that was empty: the rebalance waits until then for more members (Kafka's
    /// `group.initial.rebalance.delay.ms`), even when every member has joined.
    delay_until: Option<Instant>,
}

struct Member {
    client_id: String,
    client_host: String,
    group_instance_id: Option<String>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    /// (protocol name, metadata), in the member's order of preference.
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// The last request of the member that kept its session alive.
    last_heard: Instant,
    awaiting_join: Option<oneshot::Sender<JoinGroupResponse>>,
    awaiting_sync: Option<oneshot::Sender<SyncGroupResponse>>,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata)
    }

    fn supports(&self, protocol: &str) -> bool {
        self.metadata(protocol).is_some()
    }

    /// Whether the session timed out. A member whose JoinGroup or SyncGroup is parked is
    /// alive: the rebalance deadline deals with it.
    fn expired(&self, now: Instant) -> bool {
        self.awaiting_join.is_none()
            && self.awaiting_sync.is_none()
            && now.saturating_duration_since(self.last_heard) >= self.session_timeout
    }
}

impl Group {
    fn new(initial_rebalance_delay: Duration) -> Self {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            offsets: BTreeMap::new(),
            pending_txn_offsets: BTreeMap::new(),
            initial_rebalance_delay,
        }
    }

    /// Whether a member joining with these protocols fits the group: the same protocol type as
    /// the other members and a protocol that all of them support (Kafka's
    /// `supportsProtocols`). The caller has checked that neither is empty.
    fn supports(
        &self,
        member_id: &str,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        self.members.is_empty()
            || (self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|(name, _)| {
                    self.members
                        .iter()
                        .all(|(id, member)| id == member_id || member.supports(name))
                }))
    }

    /// A member joined or rejoined with new protocols: starts a rebalance, or extends the one
    /// under way to the member's rebalance timeout, and completes it if it can.
    fn member_joined(&mut self, now: Instant, rebalance_timeout: Duration, new_member: bool) {
        match &mut self.state {
            GroupState::PreparingRebalance(rebalance) => {
                rebalance.deadline = rebalance
                    .deadline
                    .max(rebalance.started + rebalance_timeout);
                if new_member {
                    if let Some(until) = &mut rebalance.delay_until {
                        *until = (now + self.initial_rebalance_delay).min(rebalance.deadline);
                    }
                }
                self.try_complete_join(now);
            }
            _ => self.prepare_rebalance(now),
        }
    }

    /// Moves to PreparingRebalance: members must rejoin. SyncGroups waiting for the leader's
    /// assignment are answered REBALANCE_IN_PROGRESS.
    fn prepare_rebalance(&mut self, now: Instant) {
        if matches!(self.state, GroupState::CompletingRebalance) {
            for member in self.members.values_mut() {
                if let Some(waiter) = member.awaiting_sync.take() {
                    let _ = waiter.send(sync_error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|member| member.rebalance_timeout)
            .max()
            .unwrap_or_default();
        let deadline = now + timeout;
        let delay_until = (matches!(self.state, GroupState::Empty)
            && !self.initial_rebalance_delay.is_zero())
        .then(|| (now + self.initial_rebalance_delay).min(deadline));
        self.state = GroupState::PreparingRebalance(Rebalance {
            started: now,
            deadline,
            delay_until,
        });
        self.try_complete_join(now);
    }

    /// Completes the rebalance under way once every member has rejoined (after the initial
    /// delay for a group that was empty), or once its deadline passed.
    fn try_complete_join(&mut self, now: Instant) {
        let GroupState::PreparingRebalance(rebalance) = &self.state else {
            return;
        };
        let complete = match rebalance.delay_until {
            Some(until) => now >= until,
            None => {
                now >= rebalance.deadline
                    || self
                        .members
                        .values()
                        .all(|member| member.awaiting_join.is_some())
            }
        };
        if complete {
            self.complete_join(now);
        }
    }

    /// The next generation: members that did not rejoin are removed, a protocol and a leader
    /// are chosen and every parked JoinGroup is answered.
    fn complete_join(&mut self, now: Instant) {
        self.members
            .retain(|_, member| member.awaiting_join.is_some());
        if !self
            .leader
            .as_ref()
            .is_some_and(|leader| self.members.contains_key(leader))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.generation += 1;
        self.protocol = self.select_protocol();
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::CompletingRebalance
        };
        let responses: Vec<JoinGroupResponse> = self
            .members
            .keys()
            .map(|id| self.join_response(id))
            .collect();
        for (member, response) in self.members.values_mut().zip(responses) {
            member.assignment = Bytes::new();
            member.last_heard = now;
            if let Some(waiter) = member.awaiting_join.take() {
                let _ = waiter.send(response);
            }
        }
    }

    /// The protocol of the generation, chosen as Kafka does: among the protocols every member
    /// supports, each member votes for the first in its order of preference; the most votes
    /// win, ties going to the leader's preference.
    fn select_protocol(&self) -> Option<String> {
        let leader = self.members.get(self.leader.as_ref()?)?;
        let candidates: Vec<&str> = leader
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.values().all(|member| member.supports(name)))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(&name.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut chosen: Option<(&str, usize)> = None;
        for candidate in candidates {
            let count = votes.get(candidate).copied().unwrap_or_default();
            if chosen.is_none_or(|(_, best)| count > best) {
                chosen = Some((candidate, count));
            }
        }
        chosen.map(|(name, _)| name.to_owned())
    }

    /// The JoinGroup answer of the current generation for a member: the leader also gets
    /// every member with its metadata for the chosen protocol.
    fn join_response(&self, member_id: &str) -> JoinGroupResponse {
        let members = match &self.protocol {
            Some(protocol) if self.leader.as_deref() == Some(member_id) => self
                .members
                .iter()
                .map(|(id, member)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(member.group_instance_id.as_deref().map(str_bytes))
                        .with_metadata(member.metadata(protocol).cloned().unwrap_or_default())
                })
                .collect(),
            _ => Vec::new(),
        };
        JoinGroupResponse::default()
            .with_generation_id(self.generation)
            .with_protocol_type(self.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(self.protocol.as_deref().map(str_bytes))
            .with_leader(str_bytes(self.leader.as_deref().unwrap_or_default()))
            .with_member_id(str_bytes(member_id))
            .with_members(members)
    }

    fn sync_response(&self, assignment: Bytes) -> SyncGroupResponse {
        SyncGroupResponse::default()
            .with_protocol_type(self.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(self.protocol.as_deref().map(str_bytes))
            .with_assignment(assignment)
    }

    /// The leader's SyncGroup: stores every member's assignment (empty for members it left
    /// out), makes the group Stable and answers the parked SyncGroups.
    fn assign(&mut self, assignments: Vec<SyncGroupRequestAssignment>, now: Instant) {
        for assignment in assignments {
            if let Some(member) = self.members.get_mut(assignment.member_id.as_str()) {
                member.assignment = assignment.assignment;
            }
        }
        self.state = GroupState::Stable;
        let responses: Vec<SyncGroupResponse> = self
            .members
            .values()
            .map(|member| self.sync_response(member.assignment.clone()))
            .collect();
        for (member, response) in self.members.values_mut().zip(responses) {
            if let Some(waiter) = member.awaiting_sync.take() {
                member.last_heard = now;
                let _ = waiter.send(response);
            }
        }
    }

    /// Removes a member (it left or its session expired): its parked requests are answered
    /// UNKNOWN_MEMBER_ID and the others rebalance. False when there is no such member.
    fn remove_member(&mut self, member_id: &str, now: Instant) -> bool {
        let Some(member) = self.members.remove(member_id) else {
            return false;
        };
        if let Some(waiter) = member.awaiting_join {
            let _ = waiter.send(join_error(
                str_bytes(member_id),
                ResponseError::UnknownMemberId,
            ));
        }
        if let Some(waiter) = member.awaiting_sync {
            let _ = waiter.send(sync_error(ResponseError::UnknownMemberId));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        match self.state {
            GroupState::PreparingRebalance(_) => self.try_complete_join(now),
            _ => self.prepare_rebalance(now),
        }
        true
    }

    /// DescribeGroups' view. As in Kafka, the protocol and the members' metadata and
    /// assignments are shown only when the group is Stable.
    fn describe(&self, group_id: GroupId) -> DescribedGroup {
        let stable_protocol = match self.state {
            GroupState::Stable => self.protocol.as_deref(),
            _ => None,
        };
        let members = self
            .members
            .iter()
            .map(|(id, member)| {
                let (metadata, assignment) = match stable_protocol {
                    Some(protocol) => (
                        member.metadata(protocol).cloned().unwrap_or_default(),
                        member.assignment.clone(),
                    ),
                    None => (Bytes::new(), Bytes::new()),
                };
                DescribedGroupMember::default()
                    .with_member_id(str_bytes(id))
                    .with_group_instance_id(member.group_instance_id.as_deref().map(str_bytes))
                    .with_client_id(str_bytes(&member.client_id))
                    .with_client_host(str_bytes(&member.client_host))
                    .with_member_metadata(metadata)
                    .with_member_assignment(assignment)
            })
            .collect();
        DescribedGroup::default()
            .with_group_id(group_id)
            .with_group_state(StrBytes::from_static_str(self.state.name()))
            .with_protocol_type(str_bytes(self.protocol_type.as_deref().unwrap_or_default()))
            .with_protocol_data(str_bytes(stable_protocol.unwrap_or_default()))
            .with_members(members)
    }

    /// Why a TxnOffsetCommit (v3+) naming a member and a generation is refused.
    fn txn_member_error(&self, member_id: &str, generation: i32) -> Option<ResponseError> {
        if !self.members.contains_key(member_id) {
            Some(ResponseError::UnknownMemberId)
        } else if generation != self.generation {
            Some(ResponseError::IllegalGeneration)
        } else {
            None
        }
    }
}

/// Why an OffsetCommit is refused (Kafka's `validateOffsetCommit` and the state check after
/// it); refreshes the session of the member when it is not. `group` is `None` when the group
/// does not exist.
fn commit_error(
    group: Option<&mut Group>,
    generation: i32,
    member_id: &str,
    has_instance_id: bool,
    now: Instant,
) -> Option<ResponseError> {
    let as_member = generation >= 0 || !member_id.is_empty() || has_instance_id;
    let Some(group) = group else {
        // A generation of a group that does not exist is a stale one; without one, this is a
        // client that assigns itself partitions and only stores offsets here.
        return if generation >= 0 {
            Some(ResponseError::IllegalGeneration)
        } else {
            as_member.then_some(ResponseError::UnknownMemberId)
        };
    };
    if !as_member {
        // Only members commit to a group that has members.
        return (!matches!(group.state, GroupState::Empty))
            .then_some(ResponseError::UnknownMemberId);
    }
    let Some(member) = group.members.get_mut(member_id) else {
        return Some(ResponseError::UnknownMemberId);
    };
    if generation != group.generation {
        return Some(ResponseError::IllegalGeneration);
    }
    match group.state {
        // The member has its new generation but not yet its assignment.
        GroupState::CompletingRebalance => Some(ResponseError::RebalanceInProgress),
        // Members commit while they revoke partitions (PreparingRebalance) too.
        _ => {
            member.last_heard = now;
            None
        }
    }
}

impl GroupCoordinator {
    /// A coordinator whose groups start with the committed offsets `restored` from the
    /// metadata log (as Empty groups), and which writes further commits to `meta`.
    pub fn new(
        meta: MetaLog,
        restored: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
        initial_rebalance_delay: Duration,
    ) -> Self {
        let groups = restored
            .into_iter()
            .map(|(group_id, offsets)| {
                let group = Group {
                    offsets,
                    ..Group::new(initial_rebalance_delay)
                };
                (group_id, group)
            })
            .collect();
        GroupCoordinator {
            inner: Arc::new(Inner {
                groups: Mutex::new(groups),
                meta,
                initial_rebalance_delay,
            }),
        }
    }

    /// The timer task, to spawn: every 100 ms removes the members whose session timed out
    /// and completes the rebalances whose deadline passed. Returns once every other clone of
    /// the coordinator is dropped.
    pub async fn run_timers(self) {
        let inner = Arc::downgrade(&self.inner);
        drop(self);
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            inner.expire(Instant::now());
        }
    }

    /// JoinGroup: answered when the rebalance the join starts (or joins) completes, or at
    /// once for a member rejoining unchanged while nothing needs rebalancing.
    pub async fn join_group(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinGroupResponse {
        let member_id = req.member_id.clone();
        let mut response = match self.join(req, version, client_id, client_host) {
            Reply::Now(response) => response,
            // The member sent another JoinGroup, which took this one's place.
            Reply::Later(waiter) => waiter
                .await
                .unwrap_or_else(|_| join_error(member_id, ResponseError::RebalanceInProgress)),
        };
        if version < 7 {
            // Not in the response before v7, and the protocol name not nullable: none is "".
            response.protocol_type = None;
            response.protocol_name.get_or_insert_with(StrBytes::new);
        }
        response
    }

    fn join(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> Reply<JoinGroupResponse> {
        let now = Instant::now();
        let fail = |error: ResponseError| Reply::Now(join_error(req.member_id.clone(), error));
        if req.group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        if !SESSION_TIMEOUTS_MS.contains(&req.session_timeout_ms) {
            return fail(ResponseError::InvalidSessionTimeout);
        }
        let session_timeout = millis(req.session_timeout_ms);
        let rebalance_timeout = if version >= 1 {
            millis(req.rebalance_timeout_ms)
        } else {
            session_timeout
        };
        let protocols: Vec<(String, Bytes)> = req
            .protocols
            .iter()
            .map(|protocol| (protocol.name.to_string(), protocol.metadata.clone()))
            .collect();
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();

        let mut groups = self.inner.lock();
        if !member_id.is_empty() && !groups.contains_key(group_id) {
            return fail(ResponseError::UnknownMemberId);
        }
        if req.protocol_type.is_empty()
            || protocols.is_empty()
            || !groups
                .get(group_id)
                .is_none_or(|group| group.supports(member_id, &req.protocol_type, &protocols))
        {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let group = groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(self.inner.initial_rebalance_delay));

        if member_id.is_empty() {
            let (waiter, parked) = oneshot::channel();
            let member_id = format!("{client_id}-{}", uuid::Uuid::new_v4());
            if group.members.is_empty() {
                group.protocol_type = Some(req.protocol_type.to_string());
            }
            group.leader.get_or_insert_with(|| member_id.clone());
            group.members.insert(
                member_id,
                Member {
                    client_id: client_id.to_owned(),
                    client_host: client_host.to_owned(),
                    group_instance_id: req.group_instance_id.as_deref().map(str::to_owned),
                    session_timeout,
                    rebalance_timeout,
                    protocols,
                    assignment: Bytes::new(),
                    last_heard: now,
                    awaiting_join: Some(waiter),
                    awaiting_sync: None,
                },
            );
            group.member_joined(now, rebalance_timeout, true);
            return Reply::Later(parked);
        }

        let Some(member) = group.members.get_mut(member_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        member.last_heard = now;
        let unchanged = member.protocols == protocols;
        let answer_now = match group.state {
            // A member that missed its JoinGroup answer gets it again.
            GroupState::CompletingRebalance => unchanged,
            // A follower rejoining unchanged needs no rebalance; the leader rejoins to have
            // one (say, for topic metadata the member metadata does not show).
            GroupState::Stable => unchanged && group.leader.as_deref() != Some(member_id),
            GroupState::Empty | GroupState::PreparingRebalance(_) => false,
        };
        if answer_now {
            return Reply::Now(group.join_response(member_id));
        }
        member.protocols = protocols;
        member.session_timeout = session_timeout;
        member.rebalance_timeout = rebalance_timeout;
        let (waiter, parked) = oneshot::channel();
        // A JoinGroup of the member parked before is answered REBALANCE_IN_PROGRESS.
        member.awaiting_join = Some(waiter);
        group.member_joined(now, rebalance_timeout, false);
        Reply::Later(parked)
    }

    /// SyncGroup: in CompletingRebalance waits for the leader's SyncGroup and its assignment;
    /// in Stable answers the member's assignment at once.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        match self.sync(req, version) {
            Reply::Now(response) => response,
            // The member sent another SyncGroup, which took this one's place.
            Reply::Later(waiter) => waiter
                .await
                .unwrap_or_else(|_| sync_error(ResponseError::RebalanceInProgress)),
        }
    }

    fn sync(&self, req: SyncGroupRequest, version: i16) -> Reply<SyncGroupResponse> {
        let now = Instant::now();
        let fail = |error: ResponseError| Reply::Now(sync_error(error));
        if req.group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        let mut groups = self.inner.lock();
        let Some(group) = groups.get_mut(req.group_id.as_str()) else {
            return fail(ResponseError::UnknownMemberId);
        };
        let member_id = req.member_id.as_str();
        let Some(member) = group.members.get_mut(member_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        if req.generation_id != group.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        if version >= 5
            && (mismatch(&req.protocol_type, &group.protocol_type)
                || mismatch(&req.protocol_name, &group.protocol))
        {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        match group.state {
            GroupState::Empty | GroupState::PreparingRebalance(_) => {
                fail(ResponseError::RebalanceInProgress)
            }
            GroupState::Stable => {
                member.last_heard = now;
                let assignment = member.assignment.clone();
                Reply::Now(group.sync_response(assignment))
            }
            GroupState::CompletingRebalance => {
                let (waiter, parked) = oneshot::channel();
                // A SyncGroup of the member parked before is answered REBALANCE_IN_PROGRESS.
                member.awaiting_sync = Some(waiter);
                member.last_heard = now;
                if group.leader.as_deref() == Some(member_id) {
                    group.assign(req.assignments, now);
                }
                Reply::Later(parked)
            }
        }
    }

    /// Heartbeat: keeps the member's session alive and tells it whether to rejoin.
    pub fn heartbeat(&self, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        let now = Instant::now();
        let error = if req.group_id.is_empty() {
            Some(ResponseError::InvalidGroupId)
        } else {
            let mut groups = self.inner.lock();
            match groups.get_mut(req.group_id.as_str()) {
                None => Some(ResponseError::UnknownMemberId),
                Some(group) => match group.members.get_mut(req.member_id.as_str()) {
                    None => Some(ResponseError::UnknownMemberId),
                    Some(_) if req.generation_id != group.generation => {
                        Some(ResponseError::IllegalGeneration)
                    }
                    Some(member) => {
                        member.last_heard = now;
                        matches!(group.state, GroupState::PreparingRebalance(_))
                            .then_some(ResponseError::RebalanceInProgress)
                    }
                },
            }
        };
        HeartbeatResponse::default().with_error_code(code(error))
    }

    /// LeaveGroup: removes the members (one before v3, a list from v3) and rebalances the
    /// others.
    pub fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let now = Instant::now();
        if req.group_id.is_empty() {
            return LeaveGroupResponse::default()
                .with_error_code(ResponseError::InvalidGroupId.code());
        }
        let leaving: Vec<(StrBytes, Option<StrBytes>)> = if version >= 3 {
            req.members
                .into_iter()
                .map(|member| (member.member_id, member.group_instance_id))
                .collect()
        } else {
            vec![(req.member_id, None)]
        };
        let mut groups = self.inner.lock();
        let mut group = groups.get_mut(req.group_id.as_str());
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, group_instance_id) in leaving {
            let removed = group
                .as_deref_mut()
                .is_some_and(|group| group.remove_member(&member_id, now));
            let error = (!removed).then_some(ResponseError::UnknownMemberId);
            results.push(
                MemberResponse::default()
                    .with_member_id(member_id)
                    .with_group_instance_id(group_instance_id)
                    .with_error_code(code(error)),
            );
        }
        if version >= 3 {
            LeaveGroupResponse::default().with_members(results)
        } else {
            // Before v3 the one member's error is the response's.
            let error_code = results.first().map_or(0, |result| result.error_code);
            LeaveGroupResponse::default().with_error_code(error_code)
        }
    }

    /// OffsetCommit: checks the member and its generation (a commit without them is taken
    /// for a group without members), writes the offsets to the metadata log, then applies
    /// them, creating the group when it does not exist.
    pub fn offset_commit(&self, req: OffsetCommitRequest, version: i16) -> OffsetCommitResponse {
        let now = Instant::now();
        let has_instance_id = version >= 7 && req.group_instance_id.is_some();
        let group_id = req.group_id.as_str();
        let mut groups = self.inner.lock();
        let error = commit_error(
            groups.get_mut(group_id),
            req.generation_id_or_member_epoch,
            &req.member_id,
            has_instance_id,
            now,
        );
        let mut records = Vec::new();
        let mut committed = Vec::new();
        let mut topics = Vec::with_capacity(req.topics.len());
        for topic in req.topics {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|partition| {
                    let leader_epoch = if version >= 6 {
                        partition.committed_leader_epoch
                    } else {
                        -1
                    };
                    let to_commit = offset_to_commit(
                        error,
                        partition.committed_offset,
                        partition.committed_metadata,
                        leader_epoch,
                    );
                    let error = match to_commit {
                        Ok(offset) => {
                            let index = partition.partition_index;
                            records.push(offset_record(group_id, &topic.name, index, &offset));
                            committed.push(((topic.name.to_string(), index), offset));
                            None
                        }
                        Err(error) => Some(error),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code(error))
                })
                .collect();
            topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        if self.inner.meta.append(&records).is_err() {
            for partition in topics
                .iter_mut()
                .flat_map(|topic| topic.partitions.iter_mut())
            {
                if partition.error_code == 0 {
                    partition.error_code = ResponseError::UnknownServerError.code();
                }
            }
        } else if !committed.is_empty() {
            groups
                .entry(group_id.to_owned())
                .or_insert_with(|| Group::new(self.inner.initial_rebalance_delay))
                .offsets
                .extend(committed);
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// OffsetFetch (one group, v1–7): the committed offsets of the partitions asked for, or
    /// of every partition with one when `topics` is null; -1 where there is none.
    pub fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        let require_stable = version >= 7 && req.require_stable;
        let groups = self.inner.lock();
        let group = groups.get(req.group_id.as_str());
        let wanted: Vec<(TopicName, Vec<i32>)> = match req.topics {
            Some(topics) => topics
                .into_iter()
                .map(|topic| (topic.name, topic.partition_indexes))
                .collect(),
            None => {
                let mut all: Vec<(TopicName, Vec<i32>)> = Vec::new();
                for (topic, partition) in group.iter().flat_map(|group| group.offsets.keys()) {
                    match all.last_mut() {
                        Some((name, partitions)) if name.as_str() == topic => {
                            partitions.push(*partition)
                        }
                        _ => all.push((TopicName(str_bytes(topic)), vec![*partition])),
                    }
                }
                all
            }
        };
        let topics = wanted
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|partition| fetched_offset(group, &name, partition, require_stable))
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetFetchResponse::default().with_topics(topics)
    }

    /// DescribeGroups: a group that does not exist is "Dead", without error, as in Kafka.
    pub fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        _version: i16,
    ) -> DescribeGroupsResponse {
        let groups = self.inner.lock();
        let described = req
            .groups
            .into_iter()
            .map(|group_id| match groups.get(group_id.as_str()) {
                Some(group) => group.describe(group_id),
                None => DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_group_state(StrBytes::from_static_str(DEAD)),
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(described)
    }

    /// ListGroups: every group, or (v4+) those in the states asked for.
    pub fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let states = if version >= 4 {
            req.states_filter
        } else {
            Vec::new()
        };
        let groups = self.inner.lock();
        let listed = groups
            .iter()
            .filter(|(_, group)| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|state| state.eq_ignore_ascii_case(group.state.name()))
            })
            .map(|(group_id, group)| {
                let listed = ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(group_id)))
                    .with_protocol_type(str_bytes(
                        group.protocol_type.as_deref().unwrap_or_default(),
                    ));
                if version >= 4 {
                    listed.with_group_state(StrBytes::from_static_str(group.state.name()))
                } else {
                    listed
                }
            })
            .collect();
        ListGroupsResponse::default().with_groups(listed)
    }

    /// DeleteGroups: an Empty group and its offsets are deleted (and the deletion written to
    /// the metadata log); a group with members is not.
    pub fn delete_groups(&self, req: DeleteGroupsRequest, _version: i16) -> DeleteGroupsResponse {
        let mut groups = self.inner.lock();
        let results = req
            .groups_names
            .into_iter()
            .map(|group_id| {
                let error = match groups.get(group_id.as_str()) {
                    None => Some(ResponseError::GroupIdNotFound),
                    Some(group) if !matches!(group.state, GroupState::Empty) => {
                        Some(ResponseError::NonEmptyGroup)
                    }
                    Some(_) => {
                        let deleted = MetaRecord::GroupDeleted {
                            group: group_id.to_string(),
                        };
                        match self.inner.meta.append(&[deleted]) {
                            Ok(()) => {
                                groups.remove(group_id.as_str());
                                None
                            }
                            Err(_) => Some(ResponseError::UnknownServerError),
                        }
                    }
                };
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(code(error))
            })
            .collect();
        DeleteGroupsResponse::default().with_results(results)
    }

    /// TxnOffsetCommit: the caller has checked the producer id and epoch against the
    /// transaction coordinator. The offsets are held as pending for (group, producer id), not
    /// visible to OffsetFetch until [`complete_txn_offsets`](Self::complete_txn_offsets)
    /// commits them; a later one of the same producer for the same partition replaces one
    /// before. From v3, a request naming a member (non-empty member id and a generation) is
    /// checked against the group.
    pub fn txn_offset_commit(
        &self,
        req: TxnOffsetCommitRequest,
        version: i16,
    ) -> TxnOffsetCommitResponse {
        let mut groups = self.inner.lock();
        let group = if req.group_id.is_empty() {
            None
        } else {
            Some(
                groups
                    .entry(req.group_id.to_string())
                    .or_insert_with(|| Group::new(self.inner.initial_rebalance_delay)),
            )
        };
        let error = match &group {
            None => Some(ResponseError::InvalidGroupId),
            Some(group) if version >= 3 && !req.member_id.is_empty() && req.generation_id != -1 => {
                group.txn_member_error(&req.member_id, req.generation_id)
            }
            Some(_) => None,
        };
        let mut accepted = Vec::new();
        let topics = req
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .into_iter()
                    .map(|partition| {
                        let leader_epoch = if version >= 2 {
                            partition.committed_leader_epoch
                        } else {
                            -1
                        };
                        let to_commit = offset_to_commit(
                            error,
                            partition.committed_offset,
                            partition.committed_metadata,
                            leader_epoch,
                        );
                        let error = match to_commit {
                            Ok(offset) => {
                                let index = partition.partition_index;
                                accepted.push(((topic.name.to_string(), index), offset));
                                None
                            }
                            Err(error) => Some(error),
                        };
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(partition.partition_index)
                            .with_error_code(code(error))
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect();
        if let Some(group) = group {
            if !accepted.is_empty() {
                group
                    .pending_txn_offsets
                    .entry(req.producer_id.0)
                    .or_default()
                    .extend(accepted);
            }
        }
        TxnOffsetCommitResponse::default().with_topics(topics)
    }

    /// EndTxn of a producer that committed offsets for `group`: on commit its pending offsets
    /// are written to the metadata log and applied; on abort they are dropped.
    pub fn complete_txn_offsets(&self, group: &str, producer_id: i64, commit: bool) {
        let mut groups = self.inner.lock();
        let Some(pending) = groups
            .get_mut(group)
            .and_then(|entry| entry.pending_txn_offsets.remove(&producer_id))
        else {
            return;
        };
        if !commit {
            return;
        }
        let records: Vec<MetaRecord> = pending
            .iter()
            .map(|((topic, partition), offset)| offset_record(group, topic, *partition, offset))
            .collect();
        if let Err(error) = self.inner.meta.append(&records) {
            // The transaction is committed (its markers are written) and its offsets apply all
            // the same; only a restart loses them. Nobody waits for an answer to report it in.
            eprintln!(
                "kstreams-broker: offsets of group {group} committed by producer {producer_id} \
                 not persisted: {error}"
            );
        }
        if let Some(entry) = groups.get_mut(group) {
            entry.offsets.extend(pending);
        }
    }

    /// A topic was deleted: the groups' offsets of its partitions, committed or pending, are
    /// dropped. (The metadata log's topic deletion drops the committed ones at replay.)
    pub fn topic_deleted(&self, topic: &str) {
        for group in self.inner.lock().values_mut() {
            group.offsets.retain(|(name, _), _| name != topic);
            for pending in group.pending_txn_offsets.values_mut() {
                pending.retain(|(name, _), _| name != topic);
            }
            group
                .pending_txn_offsets
                .retain(|_, pending| !pending.is_empty());
        }
    }
}

/// One partition of an OffsetFetch answer.
fn fetched_offset(
    group: Option<&Group>,
    topic: &str,
    partition: i32,
    require_stable: bool,
) -> OffsetFetchResponsePartition {
    let key = (topic.to_owned(), partition);
    let none = OffsetFetchResponsePartition::default()
        .with_partition_index(partition)
        .with_committed_offset(-1)
        .with_committed_leader_epoch(-1)
        .with_metadata(Some(StrBytes::new()));
    let Some(group) = group else {
        return none;
    };
    if require_stable
        && group
            .pending_txn_offsets
            .values()
            .any(|pending| pending.contains_key(&key))
    {
        return none.with_error_code(ResponseError::UnstableOffsetCommit.code());
    }
    match group.offsets.get(&key) {
        Some(committed) => none
            .with_committed_offset(committed.offset)
            .with_committed_leader_epoch(committed.leader_epoch)
            .with_metadata(Some(str_bytes(
                committed.metadata.as_deref().unwrap_or_default(),
            ))),
        None => none,
    }
}

fn offset_record(group: &str, topic: &str, partition: i32, offset: &CommittedOffset) -> MetaRecord {
    MetaRecord::Offset {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
        offset: offset.offset,
        metadata: offset.metadata.clone(),
        leader_epoch: offset.leader_epoch,
    }
}

/// The offset an OffsetCommit or TxnOffsetCommit stores, unless the request failed as a whole
/// (`request_error`) or the metadata is too long.
fn offset_to_commit(
    request_error: Option<ResponseError>,
    offset: i64,
    metadata: Option<StrBytes>,
    leader_epoch: i32,
) -> Result<CommittedOffset, ResponseError> {
    if let Some(error) = request_error {
        return Err(error);
    }
    match metadata {
        Some(metadata) if metadata.len() > MAX_OFFSET_METADATA_BYTES => {
            Err(ResponseError::OffsetMetadataTooLarge)
        }
        metadata => Ok(CommittedOffset {
            offset,
            metadata: metadata.map(|metadata| metadata.to_string()),
            leader_epoch,
        }),
    }
}

/// Whether a SyncGroup (v5) names a protocol type or name other than the group's.
fn mismatch(asked: &Option<StrBytes>, group: &Option<String>) -> bool {
    asked
        .as_deref()
        .is_some_and(|asked| group.as_deref() != Some(asked))
}

fn join_error(member_id: StrBytes, error: ResponseError) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error.code())
        .with_generation_id(-1)
        .with_protocol_name(None)
        .with_member_id(member_id)
}

fn sync_error(error: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error.code())
}

fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |error| error.code())
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or_default())
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{ProducerId, TransactionalId};
    use tempfile::TempDir;
    use tokio::task::JoinHandle;
    use tokio::time::sleep;

    use super::*;

    const NONE: i16 = 0;
    const GROUP: &str = "g";
    const RANGE: &[(&str, &str)] = &[("range", "meta")];
    const UNKNOWN_MEMBER_ID: i16 = ResponseError::UnknownMemberId.code();
    const ILLEGAL_GENERATION: i16 = ResponseError::IllegalGeneration.code();
    const REBALANCE_IN_PROGRESS: i16 = ResponseError::RebalanceInProgress.code();

    /// A coordinator over a fresh metadata log in a temporary directory, its timers running.
    fn coordinator(initial_rebalance_delay: Duration) -> (GroupCoordinator, TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (reopen(&dir, initial_rebalance_delay), dir)
    }

    /// A coordinator over the metadata log in `dir`, as at a broker start.
    fn reopen(dir: &TempDir, initial_rebalance_delay: Duration) -> GroupCoordinator {
        let (meta, state) = MetaLog::open(dir.path()).unwrap();
        let coordinator = GroupCoordinator::new(meta, state.offsets, initial_rebalance_delay);
        tokio::spawn(coordinator.clone().run_timers());
        coordinator
    }

    async fn within<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), future)
            .await
            .expect("answered within 5 s")
    }

    fn join_request(member_id: &str, protocols: &[(&str, &str)]) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(GROUP)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(str_bytes(member_id))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(
                protocols
                    .iter()
                    .map(|(name, metadata)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(str_bytes(name))
                            .with_metadata(Bytes::copy_from_slice(metadata.as_bytes()))
                    })
                    .collect(),
            )
    }

    fn timeouts(
        mut request: JoinGroupRequest,
        session_ms: i32,
        rebalance_ms: i32,
    ) -> JoinGroupRequest {
        request.session_timeout_ms = session_ms;
        request.rebalance_timeout_ms = rebalance_ms;
        request
    }

    /// A JoinGroup (v7) from client `client`, answered within 5 s.
    async fn join(
        c: &GroupCoordinator,
        client: &str,
        request: JoinGroupRequest,
    ) -> JoinGroupResponse {
        within(c.join_group(request, 7, client, "/127.0.0.1")).await
    }

    /// A JoinGroup sent from its own task, as from another client.
    fn spawn_join(
        c: &GroupCoordinator,
        client: &'static str,
        request: JoinGroupRequest,
    ) -> JoinHandle<JoinGroupResponse> {
        let c = c.clone();
        tokio::spawn(async move { join(&c, client, request).await })
    }

    fn sync_request(
        generation: i32,
        member_id: &str,
        assignments: &[(&str, &str)],
    ) -> SyncGroupRequest {
        SyncGroupRequest::default()
            .with_group_id(GroupId(str_bytes(GROUP)))
            .with_generation_id(generation)
            .with_member_id(str_bytes(member_id))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(member_id, assignment)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(str_bytes(member_id))
                            .with_assignment(Bytes::copy_from_slice(assignment.as_bytes()))
                    })
                    .collect(),
            )
    }

    async fn sync(c: &GroupCoordinator, request: SyncGroupRequest) -> SyncGroupResponse {
        within(c.sync_group(request, 5)).await
    }

    fn spawn_sync(
        c: &GroupCoordinator,
        request: SyncGroupRequest,
    ) -> JoinHandle<SyncGroupResponse> {
        let c = c.clone();
        tokio::spawn(async move { sync(&c, request).await })
    }

    fn heartbeat(c: &GroupCoordinator, generation: i32, member_id: &str) -> i16 {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(GROUP)))
            .with_generation_id(generation)
            .with_member_id(str_bytes(member_id));
        c.heartbeat(request, 4).error_code
    }

    fn describe(c: &GroupCoordinator, group: &str) -> DescribedGroup {
        let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
        let mut response = c.describe_groups(request, 5);
        assert_eq!(response.groups.len(), 1);
        response.groups.remove(0)
    }

    fn state(c: &GroupCoordinator) -> String {
        describe(c, GROUP).group_state.to_string()
    }

    async fn wait_for_state(c: &GroupCoordinator, wanted: &str) {
        within(async {
            while state(c) != wanted {
                sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    fn member_ids(response: &JoinGroupResponse) -> Vec<String> {
        let mut ids: Vec<String> = response
            .members
            .iter()
            .map(|m| m.member_id.to_string())
            .collect();
        ids.sort();
        ids
    }

    fn sorted(ids: &[&str]) -> Vec<String> {
        let mut ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        ids.sort();
        ids
    }

    /// Alice joins and syncs alone (generation 1); Bob joins, which makes Alice rejoin:
    /// generation 2 with Alice leading, assignments `a2` and `b2` synced.
    /// Returns (Alice's member id, Bob's, the generation).
    async fn two_member_group(
        c: &GroupCoordinator,
        session_ms: i32,
        rebalance_ms: i32,
    ) -> (String, String, i32) {
        let request =
            |member_id: &str| timeouts(join_request(member_id, RANGE), session_ms, rebalance_ms);
        let alice = join(c, "alice", request("")).await;
        assert_eq!((alice.error_code, alice.generation_id), (NONE, 1));
        let a = alice.member_id.to_string();
        assert!(a.starts_with("alice-"), "{a}");
        assert_eq!(alice.leader.as_str(), a);
        assert_eq!(member_ids(&alice), [a.as_str()]);
        let synced = sync(c, sync_request(1, &a, &[(&a, "a1")])).await;
        assert_eq!(
            (synced.error_code, synced.assignment.clone()),
            (NONE, Bytes::from("a1"))
        );
        assert_eq!(state(c), "Stable");

        let bob = spawn_join(c, "bob", request(""));
        wait_for_state(c, "PreparingRebalance").await;
        assert_eq!(heartbeat(c, 1, &a), REBALANCE_IN_PROGRESS);
        let alice = join(c, "alice", request(&a)).await;
        let bob = within(bob).await.unwrap();
        let b = bob.member_id.to_string();
        assert_eq!((alice.error_code, bob.error_code), (NONE, NONE));
        assert_eq!((alice.generation_id, bob.generation_id), (2, 2));
        assert_eq!(
            (alice.leader.as_str(), bob.leader.as_str()),
            (a.as_str(), a.as_str())
        );
        assert_eq!(member_ids(&alice), sorted(&[&a, &b]));
        assert!(bob.members.is_empty());

        let bob_sync = spawn_sync(c, sync_request(2, &b, &[]));
        let alice_sync = sync(c, sync_request(2, &a, &[(&a, "a2"), (&b, "b2")])).await;
        let bob_sync = within(bob_sync).await.unwrap();
        assert_eq!(
            (alice_sync.error_code, alice_sync.assignment),
            (NONE, Bytes::from("a2"))
        );
        assert_eq!(
            (bob_sync.error_code, bob_sync.assignment),
            (NONE, Bytes::from("b2"))
        );
        assert_eq!(state(c), "Stable");
        (a, b, 2)
    }

    fn commit_request(
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: &[(&str, i32, i64)],
    ) -> OffsetCommitRequest {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(str_bytes(member_id))
            .with_topics(
                offsets
                    .iter()
                    .map(|(topic, partition, offset)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(str_bytes(topic)))
                            .with_partitions(vec![OffsetCommitRequestPartition::default()
                                .with_partition_index(*partition)
                                .with_committed_offset(*offset)])
                    })
                    .collect(),
            )
    }

    /// The partitions' error codes of an OffsetCommit (v8).
    fn commit(c: &GroupCoordinator, request: OffsetCommitRequest) -> Vec<i16> {
        c.offset_commit(request, 8)
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|partition| partition.error_code)
            })
            .collect()
    }

    /// (topic, partition, offset, error) of an OffsetFetch (v7) of `topics`, or of all.
    fn fetch(
        c: &GroupCoordinator,
        group: &str,
        topics: Option<&[(&str, i32)]>,
        require_stable: bool,
    ) -> Vec<(String, i32, i64, i16)> {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_require_stable(require_stable)
            .with_topics(topics.map(|topics| {
                topics
                    .iter()
                    .map(|(topic, partition)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(str_bytes(topic)))
                            .with_partition_indexes(vec![*partition])
                    })
                    .collect()
            }));
        let response = c.offset_fetch(request, 7);
        assert_eq!(response.error_code, NONE);
        response
            .topics
            .iter()
            .flat_map(|topic| {
                topic.partitions.iter().map(|partition| {
                    (
                        topic.name.to_string(),
                        partition.partition_index,
                        partition.committed_offset,
                        partition.error_code,
                    )
                })
            })
            .collect()
    }

    fn fetched(topic: &str, partition: i32, offset: i64, error: i16) -> (String, i32, i64, i16) {
        (topic.to_owned(), partition, offset, error)
    }

    /// The partitions' error codes of a TxnOffsetCommit (v3).
    fn txn_commit(
        c: &GroupCoordinator,
        producer_id: i64,
        member_id: &str,
        generation: i32,
        offsets: &[(&str, i32, i64)],
    ) -> Vec<i16> {
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(str_bytes("tx")))
            .with_group_id(GroupId(str_bytes(GROUP)))
            .with_producer_id(ProducerId(producer_id))
            .with_member_id(str_bytes(member_id))
            .with_generation_id(generation)
            .with_topics(
                offsets
                    .iter()
                    .map(|(topic, partition, offset)| {
                        TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(str_bytes(topic)))
                            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(*partition)
                                .with_committed_offset(*offset)])
                    })
                    .collect(),
            );
        c.txn_offset_commit(request, 3)
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|partition| partition.error_code)
            })
            .collect()
    }

    fn listed(
        c: &GroupCoordinator,
        version: i16,
        states: &[&str],
    ) -> Vec<(String, String, String)> {
        let request = ListGroupsRequest::default()
            .with_states_filter(states.iter().map(|state| str_bytes(state)).collect());
        let response = c.list_groups(request, version);
        assert_eq!(response.error_code, NONE);
        response
            .groups
            .iter()
            .map(|group| {
                (
                    group.group_id.to_string(),
                    group.protocol_type.to_string(),
                    group.group_state.to_string(),
                )
            })
            .collect()
    }

    fn delete(c: &GroupCoordinator, groups: &[&str]) -> Vec<i16> {
        let request = DeleteGroupsRequest::default().with_groups_names(
            groups
                .iter()
                .map(|group| GroupId(str_bytes(group)))
                .collect(),
        );
        c.delete_groups(request, 2)
            .results
            .iter()
            .map(|result| result.error_code)
            .collect()
    }

    #[tokio::test]
    async fn members_joining_within_the_initial_delay_share_the_first_generation() {
        let (c, _dir) = coordinator(Duration::from_millis(500));
        let started = Instant::now();
        let alice = spawn_join(&c, "alice", join_request("", &[("range", "alice-meta")]));
        let bob = spawn_join(&c, "bob", join_request("", &[("range", "bob-meta")]));
        sleep(Duration::from_millis(100)).await;
        assert_eq!(state(&c), "PreparingRebalance");
        assert!(!alice.is_finished() && !bob.is_finished());
        let alice = within(alice).await.unwrap();
        let bob = within(bob).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(500));

        assert_eq!((alice.error_code, bob.error_code), (NONE, NONE));
        assert_eq!((alice.generation_id, bob.generation_id), (1, 1));
        assert_eq!(alice.leader, bob.leader);
        assert_eq!(alice.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(alice.protocol_name.as_deref(), Some("range"));
        let (leader, follower) = if alice.leader == alice.member_id {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        assert_eq!(leader.leader, leader.member_id);
        assert!(follower.members.is_empty());
        let mut seen: Vec<(String, Bytes)> = leader
            .members
            .iter()
            .map(|member| (member.member_id.to_string(), member.metadata.clone()))
            .collect();
        seen.sort();
        let mut expected = vec![
            (alice.member_id.to_string(), Bytes::from("alice-meta")),
            (bob.member_id.to_string(), Bytes::from("bob-meta")),
        ];
        expected.sort();
        assert_eq!(seen, expected);
        assert_eq!(state(&c), "CompletingRebalance");

        // The follower's SyncGroup waits for the leader's assignment.
        let follower_sync = spawn_sync(&c, sync_request(1, &follower.member_id, &[]));
        sleep(Duration::from_millis(50)).await;
        assert!(!follower_sync.is_finished());
        let leader_sync = sync(
            &c,
            sync_request(
                1,
                &leader.member_id,
                &[
                    (&leader.member_id, "to-leader"),
                    (&follower.member_id, "to-follower"),
                ],
            ),
        )
        .await;
        let follower_sync = within(follower_sync).await.unwrap();
        assert_eq!(
            (leader_sync.error_code, leader_sync.assignment),
            (NONE, Bytes::from("to-leader"))
        );
        assert_eq!(
            (follower_sync.error_code, follower_sync.assignment),
            (NONE, Bytes::from("to-follower"))
        );
        assert_eq!(follower_sync.protocol_name.as_deref(), Some("range"));
        assert_eq!(follower_sync.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(heartbeat(&c, 1, &alice.member_id), NONE);
        assert_eq!(heartbeat(&c, 1, &bob.member_id), NONE);
        // A late SyncGroup in Stable gets the assignment at once.
        let again = sync(&c, sync_request(1, &follower.member_id, &[])).await;
        assert_eq!(again.assignment, Bytes::from("to-follower"));
    }

    #[tokio::test]
    async fn a_member_joining_a_stable_group_makes_the_others_rejoin() {
        let (c, _dir) = coordinator(Duration::ZERO);
        let (a, b, generation) = two_member_group(&c, 10_000, 10_000).await;
        let carol = spawn_join(&c, "carol", join_request("", RANGE));
        wait_for_state(&c, "PreparingRebalance").await;
        assert_eq!(heartbeat(&c, generation, &a), REBALANCE_IN_PROGRESS);
        assert_eq!(heartbeat(&c, generation, &b), REBALANCE_IN_PROGRESS);
        let refused = sync(&c, sync_request(generation, &a, &[])).await;
        assert_eq!(refused.error_code, REBALANCE_IN_PROGRESS);
        // Two of three rejoined: not complete yet.
        let bob = spawn_join(&c, "bob", join_request(&b, RANGE));
        sleep(Duration::from_millis(50)).await;
        assert!(!bob.is_finished());
        let alice = join(&c, "alice", join_request(&a, RANGE)).await;
        let bob = within(bob).await.unwrap();
        let carol = within(carol).await.unwrap();
        for response in [&alice, &bob, &carol] {
            assert_eq!(
                (response.error_code, response.generation_id),
                (NONE, generation + 1)
            );
            assert_eq!(response.leader.as_str(), a);
        }
        assert_eq!(member_ids(&alice), sorted(&[&a, &b, &carol.member_id]));
        assert!(bob.members.is_empty() && carol.members.is_empty());
        assert_eq!(heartbeat(&c, generation, &a), ILLEGAL_GENERATION);
        assert_eq!(heartbeat(&c, generation + 1, &a), NONE);
    }

    #[tokio::test]
    async fn a_follower_rejoining_unchanged_keeps_its_generation() {
        let (c, _dir) = coordinator(Duration::ZERO);
        let (a, b, generation) = two_member_group(&c, 10_000, 10_000).await;
        let bob = join(&c, "bob", join_request(&b, RANGE)).await;
        assert_eq!((bob.error_code, bob.generation_id), (NONE, generation));
        assert_eq!(bob.leader.as_str(), a);
        assert_eq!(state(&c), "Stable");
        // New metadata: a rebalance.
        let bob = spawn_join(&c, "bob", join_request(&b, &[("range", "changed")]));
        wait_for_state(&c, "PreparingRebalance").await;
        let alice = join(&c, "alice", join_request(&a, RANGE)).await;
        let bob = within(bob).await.unwrap();
        assert_eq!(
            (alice.generation_id, bob.generation_id),
            (generation + 1, generation + 1)
        );
        let metadata: Vec<Bytes> = alice
            .members
            .iter()
            .map(|member| member.metadata.clone())
            .collect();
        assert!(metadata.contains(&Bytes::from("changed")));
        // A member that lost its JoinGroup answer gets it again in CompletingRebalance.
        let again = join(&c, "alice", join_request(&a, RANGE)).await;
        assert_eq!(again.generation_id, generation + 1);
        assert_eq!(member_ids(&again), sorted(&[&a, &b]));
        assert_eq!(state(&c), "CompletingRebalance");
    }

    #[tokio::test]
    async fn a_silent_member_expires_and_the_other_rejoins_alone() {
        let (c, _dir) = coordinator(Duration::ZERO);
        let (a, b, generation) = two_member_group(&c, 1_000, 10_000).await;
        let silent_since = Instant::now();
        let mut code = NONE;
        while code == NONE && silent_since.elapsed() < Duration::from_secs(3) {
            sleep(Duration::from_millis(100)).await;
            code = heartbeat(&c, generation, &a);
        }
        assert_eq!(code, REBALANCE_IN_PROGRESS);
        let expired_after = silent_since.elapsed();
        assert!(
            expired_after >= Duration::from_millis(900),
            "{expired_after:?}"
        );
        assert_eq!(heartbeat(&c, generation, &b), UNKNOWN_MEMBER_ID);
        let alice = join(
            &c,
            "alice",
            timeouts(join_request(&a, RANGE), 1_000, 10_000),
        )
        .await;
        assert_eq!(
            (alice.error_code, alice.generation_id),
            (NONE, generation + 1)
        );
        assert_eq!(member_ids(&alice), [a.as_str()]);
        let group = describe(&c, GROUP);
        assert_eq!(group.members.len(), 1);
        assert_eq!(group.members[0].member_id.as_str(), a);
    }

    #[tokio::test]
    async fn a_parked_join_outlives_its_session_timeout() {
        let (c, _dir) = coordinator(Duration::ZERO);
        let (a, b, generation) = two_member_group(&c, 1_000, 3_000).await;
        let request = |member_id: &str| timeouts(join_request(member_id, RANGE), 1_000, 3_000);
        let alice = spawn_join(&c, "alice", request(&a));
        wait_for_state(&c, "PreparingRebalance").await;
        // Bob keeps his session alive for longer than Alice's, then rejoins.
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(1_500) {
            assert_eq!(heartbeat(&c, generation, &b), REBALANCE_IN_PROGRESS);
            sleep(Duration::from_millis(100)).await;
        }
        let bob = join(&c, "bob", request(&b)).await;
        let alice = within(alice).await.unwrap();
        assert_eq!(
            (alice.error_code, alice.generation_id),
            (NONE, generation + 1)
        );
        assert_eq!(bob.generation_id, generation + 1);
        assert_eq!(member_ids(&alice), sorted(&[&a, &b]));
    }

    #[tokio::test]
    async fn a_member_that_does_not_rejoin_is_removed_at_the_rebalance_deadline() {
        let (c, _dir) = coordinator(Duration::ZERO);
        let (a, b, generation) = two_member_group(&c, 10_000, 500).await;
        let started = Instant::now();
        let carol = spawn_join(&c, "carol", timeouts(join_request("", RANGE), 10_000, 500));
        wait_for_state(&c, "PreparingRebalance").await;
        let alice = join(&c, "alice", timeouts(join_request(&a, RANGE), 10_000, 500)).await;
        let carol = within(carol).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            (alice.generation_id, carol.generation_id),
            (generation + 1, generation + 1)
        );
        assert_eq!(member_ids(&alice), sorted(&[&a, &carol.member_id]));
        assert_eq!(heartbeat(&c, generation, &b), UNKNOWN_MEMBER_ID);
    }

    #[tokio::test]
    async fn leaving_rebalances_the_others() {
        let (c, _dir) = coordinator(Duration::ZERO);
        let (a, b, generation) = two_member_group(&c, 10_000, 10_000).await;
        let leave = LeaveGroupRequest::default()
            .with_group_id(GroupId(str_bytes(GROUP)))
            .with_members(vec![
                MemberIdentity::default().with_member_id(str_bytes(&b)),
                MemberIdentity::default().with_member_id(str_bytes("nobody")),
            ]);
        let left = c.leave_group(leave, 3);
        assert_eq!(left.error_code, NONE);
        let codes: Vec<(String, i16)> = left
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.error_code))
            .collect();
        assert_eq!(
            codes,
            [(b.clone(), NONE), ("nobody".to_owned(), UNKNOWN_MEMBER_ID)]
        );
        assert_eq!(heartbeat(&c, generation, &a), REBALANCE_IN_PROGRESS);
        assert_eq!(heartbeat(&c, generation, &b), UNKNOWN_MEMBER_ID);
        let alice = join(&c, "alice", join_request(&a, RANGE)).await;
        assert_eq!(
            (alice.generation_id, member_ids(&alice)),
            (generation + 1, vec![a.clone()])
        );

        // Bob comes back; Alice leaves (v0) before she rejoins: Bob's parked join completes
        // at once, with Bob leading.
        let bob = spawn_join(&c, "bob", join_request("", RANGE));
        wait_for_state(&c, "PreparingRebalance").await;
        let v0 = |member_id: &str| {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(str_bytes(GROUP)))
                .with_member_id(str_bytes(member_id))
        };
        let unknown = c.leave_group(v0("nobody"), 0);
        assert_eq!(
            (unknown.error_code, unknown.members.len()),
            (UNKNOWN_MEMBER_ID, 0)
        );
        assert_eq!(c.leave_group(v0(&a), 0).error_code, NONE);
        let bob = within(bob).await.unwrap();
        assert_eq!(bob.generation_id, generation + 2);
        assert_eq!(bob.leader, bob.member_id);
        assert_eq!(member_ids(&bob), [bob.member_id.to_string()]);
        assert_eq!(c.leave_group(v0(&bob.member_id), 1).error_code, NONE);
        assert_eq!(state(&c), "Empty");
        assert_eq!(
            heartbeat(&c, generation + 2, &bob.member_id),
            UNKNOWN_MEMBER_ID
        );
    }

    #[tokio::test]
    async fn a_rebalance_answers_parked_syncs_with_rebalance_in_progress() {
        let (c, _dir) = coordinator(Duration::ZERO);
        let (a, b, generation) = two_member_group(&c, 10_000, 10_000).await;
        // Alice (the leader) rejoins: a rebalance even without changes.
        let alice = spawn_join(&c, "alice", join_request(&a, RANGE));
        wait_for_state(&c, "PreparingRebalance").await;
        let bob = join(&c, "bob", join_request(&b, RANGE)).await;
        let alice = within(alice).await.unwrap();
        let next = generation + 1;
        assert_eq!((alice.generation_id, bob.generation_id), (next, next));
        assert_eq!(state(&c), "CompletingRebalance");
        assert_eq!(
            sync(&c, sync_request(generation, &b, &[])).await.error_code,
            ILLEGAL_GENERATION
        );
        assert_eq!(
            sync(&c, sync_request(next, "nobody", &[])).await.error_code,
            UNKNOWN_MEMBER_ID
        );
        let bob_sync = spawn_sync(&c, sync_request(next, &b, &[]));
        sleep(Duration::from_millis(50)).await;
        assert!(!bob_sync.is_finished());
        assert_eq!(heartbeat(&c, next, &b), NONE);
        let carol = spawn_join(&c, "carol", join_request("", RANGE));
        let bob_sync = within(bob_sync).await.unwrap();
        assert_eq!(bob_sync.error_code, REBALANCE_IN_PROGRESS);
        assert_eq!(state(&c), "PreparingRebalance");
        assert_eq!(
            sync(&c, sync_request(next, &a, &[(&a, "x")]))
                .await
                .error_code,
            REBALANCE_IN_PROGRESS
        );
        carol.abort();
    }

    #[tokio::test]
    async fn join_checks_timeouts_protocols_and_member_ids() {
        let (c, _dir) = coordinator(Duration::ZERO);
        let code = |response: JoinGroupResponse| (response.error_code, response.generation_id);
        let invalid = ResponseError::InvalidSessionTimeout.code();
        assert_eq!(
            code(join(&c, "x", timeouts(join_request("", RANGE), 999, 1_000)).await),
            (invalid, -1)
        );
        assert_eq!(
            code(join(&c, "x", timeouts(join_request("", RANGE), 300_001, 1_000)).await),
            (invalid, -1)
        );
        let ghost = join(&c, "x", join_request("ghost", RANGE)).await;
        assert_eq!(code(ghost.clone()), (UNKNOWN_MEMBER_ID, -1));
        assert_eq!(ghost.member_id.as_str(), "ghost");
        assert!(
            listed(&c, 4, &[]).is_empty(),
            "no group made by refused joins"
        );
        let inconsistent = ResponseError::InconsistentGroupProtocol.code();
        assert_eq!(
            code(join(&c, "x", join_request("", &[])).await),
            (inconsistent, -1)
        );
        let no_type = join_request("", RANGE).with_protocol_type(StrBytes::new());
        assert_eq!(code(join(&c, "x", no_type).await), (inconsistent, -1));

        let alice = join(
            &c,
            "alice",
            join_request("", &[("range", "r"), ("roundrobin", "rr")]),
        )
        .await;
        assert_eq!(code(alice), (NONE, 1));
        let connect = join_request("", RANGE).with_protocol_type(str_bytes("connect"));
        assert_eq!(code(join(&c, "bob", connect).await), (inconsistent, -1));
        assert_eq!(
            code(join(&c, "bob", join_request("", &[("sticky", "s")])).await),
            (inconsistent, -1)
        );
        assert_eq!(
            code(join(&c, "bob", join_request("ghost", RANGE)).await),
            (UNKNOWN_MEMBER_ID, -1)
        );

        // Errors before v7 name no protocol as "", from v7 as null.
        let old = within(c.join_group(join_request("ghost", RANGE), 5, "x", "h")).await;
        assert_eq!(
            (old.protocol_type, old.protocol_name),
            (None, Some(StrBytes::new()))
        );
        let new = within(c.join_group(join_request("ghost", RANGE), 7, "x", "h")).await;
        assert_eq!((new.protocol_type, new.protocol_name), (None, None));
        // v0 has no rebalance timeout (decoded as -1): the session timeout is the member's.
        let v0 = |member_id: &str| {
            let mut request = timeouts(join_request(member_id, RANGE), 1_000, -1);
            request.group_id = GroupId(str_bytes("v0"));
            request
        };
        let first = within(c.join_group(v0(""), 0, "old", "h")).await;
        assert_eq!((first.error_code, first.generation_id), (NONE, 1));
        let started = Instant::now();
        let second = within(c.join_group(v0(""), 0, "old", "h")).await;
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        assert_eq!((second.error_code, second.generation_id), (NONE, 2));
        assert_eq!(member_ids(&second), [second.member_id.to_string()]);
    }

    #[tokio::test]
    async fn the_protocol_is_chosen_by_the_members_votes() {
        let (c, _dir) = coordinator(Duration::from_millis(500));
        let alice = spawn_join(
            &c,
            "alice",
            join_request(
                "",
                &[("range", "ra"), ("roundrobin", "rra"), ("alice-only", "")],
            ),
        );
        sleep(Duration::from_millis(20)).await;
        let bob = spawn_join(
            &c,
            "bob",
            join_request("", &[("roundrobin", "rrb"), ("range", "rb")]),
        );
        let carol = spawn_join(
            &c,
            "carol",
            join_request("", &[("roundrobin", "rrc"), ("range", "rc")]),
        );
        let alice = within(alice).await.unwrap();
        let bob = within(bob).await.unwrap();
        within(carol).await.unwrap();
        assert_eq!(alice.leader, alice.member_id);
        assert_eq!(alice.protocol_name.as_deref(), Some("roundrobin"));
        assert_eq!(bob.protocol_name.as_deref(), Some("roundrobin"));
        let mut metadata: Vec<Bytes> = alice.members.iter().map(|m| m.metadata.clone()).collect();
        metadata.sort();
        assert_eq!(
            metadata,
            [Bytes::from("rra"), Bytes::from("rrb"), Bytes::from("rrc")]
        );
    }

    #[tokio::test]
    async fn offsets_are_committed_fetched_and_survive_a_restart() {
        let (c, dir) = coordinator(Duration::ZERO);
        let mut request =
            commit_request(GROUP, -1, "", &[("t", 0, 10), ("t", 1, 20), ("u", 0, 30)]);
        request.topics[0].partitions[0].committed_metadata = Some(str_bytes("meta"));
        request.topics[0].partitions[0].committed_leader_epoch = 3;
        assert_eq!(commit(&c, request), [NONE, NONE, NONE]);
        // Before v6 there is no leader epoch in the request.
        let mut old = commit_request(GROUP, -1, "", &[("v", 0, 40)]);
        old.topics[0].partitions[0].committed_leader_epoch = 7;
        assert_eq!(
            c.offset_commit(old, 5).topics[0].partitions[0].error_code,
            NONE
        );

        let check = |c: &GroupCoordinator| {
            assert_eq!(
                fetch(
                    c,
                    GROUP,
                    Some(&[("t", 0), ("t", 1), ("t", 2), ("w", 0)]),
                    false
                ),
                [
                    fetched("t", 0, 10, NONE),
                    fetched("t", 1, 20, NONE),
                    fetched("t", 2, -1, NONE),
                    fetched("w", 0, -1, NONE)
                ]
            );
            assert_eq!(
                fetch(c, GROUP, None, false),
                [
                    fetched("t", 0, 10, NONE),
                    fetched("t", 1, 20, NONE),
                    fetched("u", 0, 30, NONE),
                    fetched("v", 0, 40, NONE)
                ]
            );
            let request = OffsetFetchRequest::default()
                .with_group_id(GroupId(str_bytes(GROUP)))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partition_indexes(vec![0, 1])]));
            let partitions = &c.offset_fetch(request.clone(), 5).topics[0].partitions;
            assert_eq!(partitions[0].metadata.as_deref(), Some("meta"));
            assert_eq!(partitions[0].committed_leader_epoch, 3);
            assert_eq!(partitions[1].metadata.as_deref(), Some(""));
            assert_eq!(partitions[1].committed_leader_epoch, -1);
            let request = request.with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(str_bytes("v")))
                .with_partition_indexes(vec![0])]));
            assert_eq!(
                c.offset_fetch(request, 5).topics[0].partitions[0].committed_leader_epoch,
                -1
            );
        };
        check(&c);
        assert_eq!(
            fetch(&c, "unknown", Some(&[("t", 0)]), false),
            [fetched("t", 0, -1, NONE)]
        );
        assert!(fetch(&c, "unknown", None, false).is_empty());
        assert_eq!(
            listed(&c, 4, &[]),
            [(GROUP.to_owned(), String::new(), "Empty".to_owned())]
        );

        drop(c);
        let c = reopen(&dir, Duration::ZERO);
        check(&c);
        assert_eq!(state(&c), "Empty");
    }

    #[tokio::test]
    async fn commits_check_the_member_and_its_generation() {
        let (c, _dir) = coordinator(Duration::ZERO);
        assert_eq!(
            commit(&c, commit_request("other", 3, "", &[("t", 0, 1)])),
            [ILLEGAL_GENERATION]
        );
        assert_eq!(
            commit(&c, commit_request("other", -1, "ghost", &[("t", 0, 1)])),
            [UNKNOWN_MEMBER_ID]
        );
        assert!(listed(&c, 4, &[]).is_empty());

        let alice = join(&c, "alice", join_request("", RANGE)).await;
        let a = alice.member_id.to_string();
        assert_eq!(
            commit(&c, commit_request(GROUP, 1, &a, &[("t", 0, 1)])),
            [REBALANCE_IN_PROGRESS]
        );
        sync(&c, sync_request(1, &a, &[(&a, "a")])).await;
        assert_eq!(
            commit(&c, commit_request(GROUP, 1, &a, &[("t", 0, 5)])),
            [NONE]
        );
        assert_eq!(
            commit(&c, commit_request(GROUP, 0, &a, &[("t", 0, 6)])),
            [ILLEGAL_GENERATION]
        );
        assert_eq!(
            commit(&c, commit_request(GROUP, 2, &a, &[("t", 0, 6)])),
            [ILLEGAL_GENERATION]
        );
        assert_eq!(
            commit(&c, commit_request(GROUP, 1, "ghost", &[("t", 0, 6)])),
            [UNKNOWN_MEMBER_ID]
        );
        // Without a generation: only into a group without members.
        assert_eq!(
            commit(&c, commit_request(GROUP, -1, "", &[("t", 0, 6)])),
            [UNKNOWN_MEMBER_ID]
        );
        let mut too_large = commit_request(GROUP, 1, &a, &[("t", 0, 6), ("t", 1, 6)]);
        too_large.topics[0].partitions[0].committed_metadata = Some(str_bytes(&"x".repeat(4097)));
        assert_eq!(
            commit(&c, too_large),
            [ResponseError::OffsetMetadataTooLarge.code(), NONE]
        );
        assert_eq!(
            fetch(&c, GROUP, Some(&[("t", 0)]), false),
            [fetched("t", 0, 5, NONE)]
        );

        // While the group prepares a rebalance, the current generation still commits.
        let bob = spawn_join(&c, "bob", join_request("", RANGE));
        wait_for_state(&c, "PreparingRebalance").await;
        assert_eq!(
            commit(&c, commit_request(GROUP, 1, &a, &[("t", 0, 7)])),
            [NONE]
        );
        assert_eq!(
            fetch(&c, GROUP, Some(&[("t", 0)]), false),
            [fetched("t", 0, 7, NONE)]
        );
        bob.abort();
    }

    #[tokio::test]
    async fn transactional_offsets_apply_only_when_the_transaction_commits() {
        let (c, dir) = coordinator(Duration::ZERO);
        assert_eq!(txn_commit(&c, 7, "", -1, &[("t", 0, 5)]), [NONE]);
        assert_eq!(
            fetch(&c, GROUP, Some(&[("t", 0)]), false),
            [fetched("t", 0, -1, NONE)]
        );
        let unstable = ResponseError::UnstableOffsetCommit.code();
        assert_eq!(unstable, 88);
        assert_eq!(
            fetch(&c, GROUP, Some(&[("t", 0)]), true),
            [fetched("t", 0, -1, unstable)]
        );
        // require_stable is a v7 field.
        let v6 = OffsetFetchRequest::default()
            .with_group_id(GroupId(str_bytes(GROUP)))
            .with_require_stable(true)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partition_indexes(vec![0])]));
        assert_eq!(
            c.offset_fetch(v6, 6).topics[0].partitions[0].error_code,
            NONE
        );

        c.complete_txn_offsets(GROUP, 7, true);
        assert_eq!(
            fetch(&c, GROUP, Some(&[("t", 0)]), true),
            [fetched("t", 0, 5, NONE)]
        );

        // Aborted: dropped. A later pending offset of the same producer replaces one before.
        assert_eq!(txn_commit(&c, 8, "", -1, &[("t", 0, 9)]), [NONE]);
        assert_eq!(txn_commit(&c, 7, "", -1, &[("t", 1, 1)]), [NONE]);
        assert_eq!(txn_commit(&c, 7, "", -1, &[("t", 1, 2)]), [NONE]);
        c.complete_txn_offsets(GROUP, 8, false);
        assert_eq!(
            fetch(&c, GROUP, Some(&[("t", 0), ("t", 1)]), true),
            [fetched("t", 0, 5, NONE), fetched("t", 1, -1, unstable)]
        );
        c.complete_txn_offsets(GROUP, 7, true);
        assert_eq!(
            fetch(&c, GROUP, None, true),
            [fetched("t", 0, 5, NONE), fetched("t", 1, 2, NONE)]
        );

        // A request naming a member is checked against the group.
        assert_eq!(
            txn_commit(&c, 9, "ghost", 1, &[("t", 0, 3)]),
            [UNKNOWN_MEMBER_ID]
        );
        let alice = join(&c, "alice", join_request("", RANGE)).await;
        let a = alice.member_id.to_string();
        assert_eq!(
            txn_commit(&c, 9, &a, 5, &[("t", 0, 3)]),
            [ILLEGAL_GENERATION]
        );
        assert_eq!(txn_commit(&c, 9, &a, 1, &[("t", 0, 3)]), [NONE]);
        assert_eq!(txn_commit(&c, 9, "ghost", -1, &[("t", 0, 4)]), [NONE]);

        drop(c);
        let c = reopen(&dir, Duration::ZERO);
        assert_eq!(
            fetch(&c, GROUP, None, true),
            [fetched("t", 0, 5, NONE), fetched("t", 1, 2, NONE)]
        );
    }

    #[tokio::test]
    async fn describe_and_list_show_states_and_members() {
        let (c, _dir) = coordinator(Duration::ZERO);
        let dead = describe(&c, "nothing");
        assert_eq!(
            (
                dead.error_code,
                dead.group_state.as_str(),
                dead.members.len()
            ),
            (NONE, "Dead", 0)
        );

        assert_eq!(
            commit(&c, commit_request("offsets-only", -1, "", &[("t", 0, 1)])),
            [NONE]
        );
        let alice = within(c.join_group(join_request("", RANGE), 7, "alice", "/10.0.0.1")).await;
        let a = alice.member_id.to_string();
        let group = describe(&c, GROUP);
        assert_eq!(group.group_state.as_str(), "CompletingRebalance");
        assert_eq!(
            (group.protocol_type.as_str(), group.protocol_data.as_str()),
            ("consumer", "")
        );
        assert_eq!(group.members.len(), 1);
        let member = &group.members[0];
        assert_eq!(
            (
                member.member_id.as_str(),
                member.client_id.as_str(),
                member.client_host.as_str()
            ),
            (a.as_str(), "alice", "/10.0.0.1")
        );
        assert!(member.member_metadata.is_empty() && member.member_assignment.is_empty());

        sync(&c, sync_request(1, &a, &[(&a, "assigned")])).await;
        let group = describe(&c, GROUP);
        assert_eq!(
            (group.group_state.as_str(), group.protocol_data.as_str()),
            ("Stable", "range")
        );
        assert_eq!(group.members[0].member_metadata, Bytes::from("meta"));
        assert_eq!(group.members[0].member_assignment, Bytes::from("assigned"));

        let entry = |group: &str, protocol_type: &str, state: &str| {
            (group.to_owned(), protocol_type.to_owned(), state.to_owned())
        };
        assert_eq!(
            listed(&c, 4, &[]),
            [
                entry(GROUP, "consumer", "Stable"),
                entry("offsets-only", "", "Empty")
            ]
        );
        assert_eq!(
            listed(&c, 4, &["stable"]),
            [entry(GROUP, "consumer", "Stable")]
        );
        assert_eq!(
            listed(&c, 4, &["Empty", "Dead"]),
            [entry("offsets-only", "", "Empty")]
        );
        assert!(listed(&c, 4, &["PreparingRebalance"]).is_empty());
        // Before v4 there is neither a filter nor a state.
        assert_eq!(
            listed(&c, 3, &["Empty"]),
            [entry(GROUP, "consumer", ""), entry("offsets-only", "", "")]
        );
    }

    #[tokio::test]
    async fn delete_refuses_groups_with_members() {
        let (c, dir) = coordinator(Duration::ZERO);
        assert_eq!(
            commit(&c, commit_request("offsets-only", -1, "", &[("t", 0, 1)])),
            [NONE]
        );
        join(&c, "alice", join_request("", RANGE)).await;
        assert_eq!(
            delete(&c, &[GROUP, "nothing", "offsets-only"]),
            [
                ResponseError::NonEmptyGroup.code(),
                ResponseError::GroupIdNotFound.code(),
                NONE
            ]
        );
        assert_eq!(describe(&c, "offsets-only").group_state.as_str(), "Dead");
        assert_eq!(
            fetch(&c, "offsets-only", Some(&[("t", 0)]), false),
            [fetched("t", 0, -1, NONE)]
        );
        drop(c);
        let c = reopen(&dir, Duration::ZERO);
        assert!(fetch(&c, "offsets-only", None, false).is_empty());
        assert!(listed(&c, 4, &[]).is_empty());
    }

    #[tokio::test]
    async fn a_deleted_topic_takes_its_offsets_with_it() {
        let (c, _dir) = coordinator(Duration::ZERO);
        assert_eq!(
            commit(
                &c,
                commit_request(GROUP, -1, "", &[("gone", 0, 1), ("kept", 0, 2)])
            ),
            [NONE, NONE]
        );
        assert_eq!(txn_commit(&c, 7, "", -1, &[("gone", 1, 3)]), [NONE]);
        c.topic_deleted("gone");
        assert_eq!(fetch(&c, GROUP, None, false), [fetched("kept", 0, 2, NONE)]);
        assert_eq!(
            fetch(&c, GROUP, Some(&[("gone", 1)]), true),
            [fetched("gone", 1, -1, NONE)]
        );
        c.complete_txn_offsets(GROUP, 7, true);
        assert_eq!(fetch(&c, GROUP, None, false), [fetched("kept", 0, 2, NONE)]);
    }

    #[tokio::test]
    async fn the_timer_task_ends_with_the_coordinator() {
        let dir = tempfile::tempdir().unwrap();
        let (meta, _) = MetaLog::open(dir.path()).unwrap();
        let c = GroupCoordinator::new(meta, BTreeMap::new(), Duration::ZERO);
        let timers = tokio::spawn(c.clone().run_timers());
        sleep(Duration::from_millis(250)).await;
        assert!(!timers.is_finished());
        drop(c);
        within(timers).await.unwrap();
    }
}
