//! Foreign-key table joins: each row of the left table joins the right table's row whose key
//! it names (`foreign_key(value)`), with neither table repartitioned by the other's key.
//!
//! As in Kafka Streams, the two sides talk through two internal topics:
//!
//! ```text
//! left change ──(foreign key, subscribe|unsubscribe, hash of left value)──▶ subscription topic
//!     right side: keeps subscriptions per foreign key; answers each, and every right change,
//!     with the right row
//! ◀──(left key, hash, right row)── response topic ── left side: drops answers whose hash no
//!     longer matches the left row (stale), joins the rest
//! ```

use std::sync::Arc;

use crate::error::BoxError;
use crate::processor::{Processor, ProcessorContext, Record};
use crate::serde::{DefaultSerde, SerdeRef, Serdes};
use crate::state::{KeyValueStore, Stores, TimestampedKeyValueStore};
use crate::topology::NodeKind;

use super::kgrouped::materialize;
use super::ktable::KTable;
use super::ops::Change;
use super::{Data, Materialized};

const SUBSCRIBE: u8 = 0;
const UNSUBSCRIBE: u8 = 1;
/// Unsubscribe and answer with no row: the left row was deleted.
const UNSUBSCRIBE_AND_ANSWER: u8 = 2;

/// FNV-1a: a hash of the left value that is the same in every process and version.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn subscription(instruction: u8, hash: u64, primary_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + primary_key.len());
    out.push(instruction);
    out.extend_from_slice(&hash.to_be_bytes());
    out.extend_from_slice(primary_key);
    out
}

fn response(hash: u64, row: Option<&[u8]>) -> Vec<u8> {
    let mut out = hash.to_be_bytes().to_vec();
    if let Some(row) = row {
        out.push(1);
        out.extend_from_slice(row);
    } else {
        out.push(0);
    }
    out
}

fn read_u64(bytes: &[u8]) -> Result<u64, BoxError> {
    Ok(u64::from_be_bytes(
        bytes.get(..8).ok_or("truncated hash")?.try_into()?,
    ))
}

/// Subscription store key: the foreign key's bytes, length-prefixed, then the primary key's.
fn subscription_key(foreign: &[u8], primary: &[u8]) -> Vec<u8> {
    let mut out = (foreign.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(foreign);
    out.extend_from_slice(primary);
    out
}

fn encode<T: 'static>(serde: &SerdeRef<T>, value: &T) -> Result<Vec<u8>, BoxError> {
    serde
        .serialize(value)?
        .ok_or_else(|| "null key or value in a foreign-key join".into())
}

/// Left side: turns left changes into subscriptions by foreign key.
struct SubscriptionSender<K, V, KO> {
    foreign_key: Arc<dyn Fn(&V) -> KO + Send + Sync>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
}

impl<K: Data, V: Data, KO: Data + PartialEq> Processor<K, Change<V>, KO, Vec<u8>>
    for SubscriptionSender<K, V, KO>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KO, Vec<u8>>,
        r: Record<K, Change<V>>,
    ) -> Result<(), BoxError> {
        let primary = encode(&self.key_serde, &r.key)?;
        let new_fk = r.value.new.as_ref().map(|v| (self.foreign_key)(v));
        let old_fk = r.value.old.as_ref().map(|v| (self.foreign_key)(v));
        if let Some(old_fk) = old_fk {
            if new_fk.as_ref() != Some(&old_fk) {
                let instruction = if new_fk.is_none() {
                    UNSUBSCRIBE_AND_ANSWER
                } else {
                    UNSUBSCRIBE
                };
                ctx.forward(Record::new(
                    old_fk,
                    subscription(instruction, 0, &primary),
                    r.timestamp,
                ))?;
            }
        }
        if let (Some(fk), Some(value)) = (new_fk, &r.value.new) {
            let hash = fnv1a(&encode(&self.value_serde, value)?);
            ctx.forward(Record::new(
                fk,
                subscription(SUBSCRIBE, hash, &primary),
                r.timestamp,
            ))?;
        }
        Ok(())
    }
}

/// Right side: records subscriptions and answers them with the current right row.
struct SubscriptionReceiver<KO, VO, K> {
    subscriptions: String,
    right_store: String,
    foreign_serde: SerdeRef<KO>,
    right_value_serde: SerdeRef<VO>,
    key_serde: SerdeRef<K>,
    stores: Option<(
        KeyValueStore<Vec<u8>, Vec<u8>>,
        TimestampedKeyValueStore<KO, VO>,
    )>,
}

impl<KO: Data, VO: Data, K: Data> Processor<KO, Vec<u8>, K, Vec<u8>>
    for SubscriptionReceiver<KO, VO, K>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Vec<u8>>) -> Result<(), BoxError> {
        self.stores = Some((
            ctx.key_value_store(&self.subscriptions)?,
            ctx.timestamped_key_value_store(&self.right_store)?,
        ));
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Vec<u8>>,
        r: Record<KO, Vec<u8>>,
    ) -> Result<(), BoxError> {
        let (subscriptions, right) = self.stores.as_ref().ok_or("stores not initialized")?;
        let (&instruction, rest) = r.value.split_first().ok_or("empty subscription")?;
        let hash = read_u64(rest)?;
        let primary = rest.get(8..).ok_or("truncated subscription")?;
        let key = subscription_key(&encode(&self.foreign_serde, &r.key)?, primary);
        let primary_key = self.key_serde.deserialize(Some(primary))?;
        match instruction {
            SUBSCRIBE => {
                subscriptions.put(&key, &hash.to_be_bytes().to_vec())?;
                let row = right.get(&r.key)?;
                let row = row
                    .map(|row| encode(&self.right_value_serde, &row.value))
                    .transpose()?;
                ctx.forward(Record::new(
                    primary_key,
                    response(hash, row.as_deref()),
                    r.timestamp,
                ))
            }
            UNSUBSCRIBE => subscriptions.delete(&key).map(|_| ()).map_err(Into::into),
            UNSUBSCRIBE_AND_ANSWER => {
                subscriptions.delete(&key)?;
                ctx.forward(Record::new(primary_key, response(0, None), r.timestamp))
            }
            other => Err(format!("unknown subscription instruction {other}").into()),
        }
    }
}

/// Right side: answers every subscription of a right key when its row changes.
struct RightChangeNotifier<KO, VO, K> {
    subscriptions: String,
    foreign_serde: SerdeRef<KO>,
    right_value_serde: SerdeRef<VO>,
    key_serde: SerdeRef<K>,
    store: Option<KeyValueStore<Vec<u8>, Vec<u8>>>,
}

impl<KO: Data, VO: Data, K: Data> Processor<KO, Change<VO>, K, Vec<u8>>
    for RightChangeNotifier<KO, VO, K>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Vec<u8>>) -> Result<(), BoxError> {
        self.store = Some(ctx.key_value_store(&self.subscriptions)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Vec<u8>>,
        r: Record<KO, Change<VO>>,
    ) -> Result<(), BoxError> {
        let store = self.store.as_ref().ok_or("store not initialized")?;
        let foreign = encode(&self.foreign_serde, &r.key)?;
        let prefix = subscription_key(&foreign, &[]);
        let row = r
            .value
            .new
            .as_ref()
            .map(|v| encode(&self.right_value_serde, v))
            .transpose()?;
        for (key, hash) in store.prefix_scan(&prefix)? {
            let primary_key = self.key_serde.deserialize(Some(&key[prefix.len()..]))?;
            ctx.forward(Record::new(
                primary_key,
                response(read_u64(&hash)?, row.as_deref()),
                r.timestamp,
            ))?;
        }
        Ok(())
    }
}

type FkJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;

/// Left side: joins answers that still match the left row.
struct ResponseJoiner<K, V, VO, VR> {
    left_store: String,
    result_store: String,
    value_serde: SerdeRef<V>,
    right_value_serde: SerdeRef<VO>,
    joiner: FkJoiner<V, VO, VR>,
    stores: Option<(
        TimestampedKeyValueStore<K, V>,
        TimestampedKeyValueStore<K, VR>,
    )>,
}

impl<K: Data, V: Data, VO: Data, VR: Data> Processor<K, Vec<u8>, K, Change<VR>>
    for ResponseJoiner<K, V, VO, VR>
{
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), BoxError> {
        self.stores = Some((
            ctx.timestamped_key_value_store(&self.left_store)?,
            ctx.timestamped_key_value_store(&self.result_store)?,
        ));
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        r: Record<K, Vec<u8>>,
    ) -> Result<(), BoxError> {
        let (left, results) = self.stores.as_ref().ok_or("stores not initialized")?;
        let hash = read_u64(&r.value)?;
        let row = match r.value.get(8) {
            Some(1) => Some(self.right_value_serde.deserialize(Some(&r.value[9..]))?),
            Some(0) => None,
            _ => return Err("corrupt foreign-key join response".into()),
        };
        let new = match left.get(&r.key)? {
            None => None,
            Some(current) => {
                if fnv1a(&encode(&self.value_serde, &current.value)?) != hash {
                    return Ok(()); // answers a left value that has changed since: stale
                }
                (self.joiner)(&current.value, row.as_ref())
            }
        };
        let old = results.get(&r.key)?.map(|v| v.value);
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        match &new {
            Some(v) => results.put(
                &r.key,
                &crate::state::ValueAndTimestamp {
                    value: v.clone(),
                    timestamp: r.timestamp,
                },
            )?,
            None => {
                results.delete(&r.key)?;
            }
        }
        ctx.forward(Record::new(r.key, Change { new, old }, r.timestamp))
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    fn foreign_key_join<KO: Data + PartialEq, VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: Arc<dyn Fn(&V) -> KO + Send + Sync>,
        joiner: FkJoiner<V, VO, VR>,
        prefix: &str,
    ) -> KTable<K, VR> {
        let mut graph = self.graph.borrow_mut();
        let left_store = self.ensure_store(&mut graph);
        let right_store = other.ensure_store(&mut graph);
        let name = graph.next_name(prefix);
        let subscriptions = format!("{name}-subscription-store");
        graph.add_store(
            Stores::key_value_store_builder_with(
                subscriptions.clone(),
                Serdes::bytes(),
                Serdes::bytes(),
            )
            .into_def(false),
        );

        let (key_serde, value_serde) = (self.key_serde.clone(), self.value_serde.clone());
        let (foreign_serde, right_value_serde) =
            (other.key_serde.clone(), other.value_serde.clone());

        let (k, v) = (key_serde.clone(), value_serde.clone());
        let sender = graph.add_processor(
            format!("{name}-SUBSCRIPTION-SEND"),
            NodeKind::Processor,
            &[self.node],
            Vec::new(),
            move || SubscriptionSender {
                foreign_key: foreign_key.clone(),
                key_serde: k.clone(),
                value_serde: v.clone(),
            },
        );
        let registration = graph.add_repartition(
            sender,
            &format!("{name}-subscription-registration"),
            foreign_serde.clone(),
            Serdes::bytes(),
        );
        let (subs, right, fs, rvs, ks) = (
            subscriptions.clone(),
            right_store.clone(),
            foreign_serde.clone(),
            right_value_serde.clone(),
            key_serde.clone(),
        );
        let receiver = graph.add_processor(
            format!("{name}-SUBSCRIPTION-RECEIVE"),
            NodeKind::Processor,
            &[registration],
            vec![subscriptions.clone(), right_store.clone()],
            move || SubscriptionReceiver {
                subscriptions: subs.clone(),
                right_store: right.clone(),
                foreign_serde: fs.clone(),
                right_value_serde: rvs.clone(),
                key_serde: ks.clone(),
                stores: None,
            },
        );
        let (subs, fs, rvs, ks) = (
            subscriptions.clone(),
            foreign_serde.clone(),
            right_value_serde.clone(),
            key_serde.clone(),
        );
        let notifier = graph.add_processor(
            format!("{name}-RIGHT-CHANGES"),
            NodeKind::Processor,
            &[other.node],
            vec![subscriptions],
            move || RightChangeNotifier {
                subscriptions: subs.clone(),
                foreign_serde: fs.clone(),
                right_value_serde: rvs.clone(),
                key_serde: ks.clone(),
                store: None,
            },
        );
        let answers = graph.add_fn(
            "KTABLE-FK-JOIN-MERGE",
            &[receiver, notifier],
            |ctx, r: Record<K, Vec<u8>>| ctx.forward(r),
        );
        let responses = graph.add_repartition(
            answers,
            &format!("{name}-subscription-response"),
            key_serde.clone(),
            Serdes::bytes(),
        );
        let result_store = materialize(
            &mut graph,
            Materialized::with(key_serde.clone(), VR::default_serde()),
            "KTABLE-FK-JOIN-OUTPUT-STATE-STORE",
        );
        let (ls, rs, vs, rvs) = (
            left_store.clone(),
            result_store.clone(),
            value_serde,
            right_value_serde,
        );
        let output = graph.add_processor(
            format!("{name}-OUTPUT"),
            NodeKind::Processor,
            &[responses],
            vec![left_store, result_store.clone()],
            move || ResponseJoiner::<K, V, VO, VR> {
                left_store: ls.clone(),
                result_store: rs.clone(),
                value_serde: vs.clone(),
                right_value_serde: rvs.clone(),
                joiner: joiner.clone(),
                stores: None,
            },
        );
        drop(graph);
        KTable::new(
            self.graph.clone(),
            output,
            Some(result_store),
            key_serde,
            VR::default_serde(),
        )
    }

    /// Joins each row with the row of `other` whose key is `foreign_key(value)`; rows whose
    /// foreign key has no row in `other` are not in the result.
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.table::<String, String>("orders", Materialized::default()); // order -> customer
    /// let customers = builder.table::<String, String>("customers", Materialized::default());
    /// orders
    ///     .join_on_foreign_key(&customers, |customer| customer.clone(), |customer, name| format!("{customer}:{name}"))
    ///     .to_stream()
    ///     .to("orders-with-names");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("fk")).unwrap();
    /// driver.create_input_topic::<String, Option<String>>("customers").pipe_input_at("c1".into(), Some("Ann".into()), 0);
    /// driver.create_input_topic::<String, Option<String>>("orders").pipe_input_at("o1".into(), Some("c1".into()), 1);
    /// let out = driver.create_output_topic::<String, Option<String>>("orders-with-names");
    /// assert_eq!(out.read_key_value(), Some(("o1".to_string(), Some("c1:Ann".to_string()))));
    /// ```
    pub fn join_on_foreign_key<KO: Data + PartialEq, VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: FkJoiner<V, VO, VR> = Arc::new(move |v, row| row.map(|row| joiner(v, row)));
        self.foreign_key_join(other, Arc::new(foreign_key), joiner, "KTABLE-FK-JOIN")
    }

    /// Like [`join_on_foreign_key`](Self::join_on_foreign_key), keeping rows whose foreign
    /// key has no row in `other` (joined with `None`).
    ///
    /// ```
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.table::<String, String>("orders", Materialized::default()); // order -> customer
    /// let customers = builder.table::<String, String>("customers", Materialized::default());
    /// orders
    ///     .left_join_on_foreign_key(&customers, |customer| customer.clone(), |customer, name| {
    ///         format!("{customer}:{}", name.map_or("?", String::as_str))
    ///     })
    ///     .to_stream()
    ///     .to("orders-with-names");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("fk")).unwrap();
    /// driver.create_input_topic::<String, Option<String>>("orders").pipe_input_at("o1".into(), Some("c9".into()), 0);
    /// driver.create_input_topic::<String, Option<String>>("customers").pipe_input_at("c9".into(), Some("Zed".into()), 1);
    /// let out = driver.create_output_topic::<String, Option<String>>("orders-with-names");
    /// assert_eq!(out.read_values_to_list(), vec![Some("c9:?".to_string()), Some("c9:Zed".to_string())]);
    /// ```
    pub fn left_join_on_foreign_key<KO: Data + PartialEq, VO: Data, VR: Data + DefaultSerde>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: FkJoiner<V, VO, VR> = Arc::new(move |v, row| Some(joiner(v, row)));
        self.foreign_key_join(other, Arc::new(foreign_key), joiner, "KTABLE-FK-LEFTJOIN")
    }
}
