//! Semantics of the core DSL operators, the Processor API and error handling, pinned through
//! the TestDriver.

use std::collections::HashMap;
use std::time::Duration;

use kstreams::config::{ErrorPolicy, StreamsConfig};
use kstreams::dead_letter;
use kstreams::dsl::*;
use kstreams::processor::{
    Headers, Processor, ProcessorContext, Punctuation, PunctuationType, Record,
};
use kstreams::serde::Serdes;
use kstreams::state::{KeyValueStore, Stores};
use kstreams::testing::{TestDriver, TestRecord};
use kstreams::topology::{InternalTopicKind, NodeType};
use kstreams::{BoxError, StreamsError, TopologyError};

fn driver(builder: &StreamsBuilder, config: StreamsConfig) -> TestDriver {
    TestDriver::new(&builder.build().expect("topology builds"), config).expect("driver starts")
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn stateless_operators_transform_filter_and_fan_out() {
    let b = StreamsBuilder::new();
    let input = b.stream::<String, i64>("in");
    input.filter(|_, v| *v > 0).to("positive");
    input.filter_not(|_, v| *v > 0).to("non-positive");
    input.map(|k, v| (v, k)).to("swapped");
    input.map_values(|v| v * 10).to("times-ten");
    input
        .map_values_with_key(|k, v| format!("{k}={v}"))
        .to("described");
    input
        .flat_map(|k, v| (0..v).map(move |i| (format!("{k}{i}"), i)))
        .to("expanded");
    input.flat_map_values(|v| vec![v; 2]).to("doubled");
    input.select_key(|k, v| format!("{k}/{v}")).to("rekeyed");
    let d = driver(&b, StreamsConfig::new("ops"));
    let i = d.create_input_topic::<String, i64>("in");
    i.pipe_input_at(s("a"), 2, 1);
    i.pipe_input_at(s("b"), -1, 2);
    let read = |t: &str| {
        d.create_output_topic::<String, i64>(t)
            .read_key_values_to_list()
    };
    assert_eq!(read("positive"), vec![(s("a"), 2)]);
    assert_eq!(read("non-positive"), vec![(s("b"), -1)]);
    assert_eq!(read("times-ten"), vec![(s("a"), 20), (s("b"), -10)]);
    assert_eq!(read("expanded"), vec![(s("a0"), 0), (s("a1"), 1)]);
    assert_eq!(
        read("doubled"),
        vec![(s("a"), 2), (s("a"), 2), (s("b"), -1), (s("b"), -1)]
    );
    assert_eq!(read("rekeyed"), vec![(s("a/2"), 2), (s("b/-1"), -1)]);
    let swapped = d
        .create_output_topic::<i64, String>("swapped")
        .read_key_values_to_list();
    assert_eq!(swapped, vec![(2, s("a")), (-1, s("b"))]);
    let described = d
        .create_output_topic::<String, String>("described")
        .read_values_to_list();
    assert_eq!(described, vec![s("a=2"), s("b=-1")]);
}

#[test]
fn records_keep_timestamp_and_headers_through_operators() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .map_values(|v| v.to_uppercase())
        .to("out");
    let d = driver(&b, StreamsConfig::new("h"));
    let mut headers = Headers::new();
    headers.add("trace", "t-1");
    let mut record = TestRecord::new(s("k"), s("v"), 42);
    record.headers = headers;
    d.create_input_topic::<String, String>("in")
        .pipe_record(record);
    let out = d
        .create_output_topic::<String, String>("out")
        .read_record()
        .unwrap();
    assert_eq!((out.value.as_str(), out.timestamp), ("V", 42));
    assert_eq!(out.headers.last_str("trace"), Some("t-1"));
}

#[test]
fn peek_sees_every_record_and_passes_it_on() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let b = StreamsBuilder::new();
    let log = seen.clone();
    b.stream::<String, i64>("in")
        .peek(move |k, v| log.lock().unwrap().push((k.clone(), *v)))
        .to("out");
    let d = driver(&b, StreamsConfig::new("peek"));
    d.create_input_topic::<String, i64>("in")
        .pipe_input_at(s("x"), 7, 0);
    assert_eq!(*seen.lock().unwrap(), vec![(s("x"), 7)]);
    assert_eq!(
        d.create_output_topic::<String, i64>("out").read_value(),
        Some(7)
    );
}

#[test]
fn split_sends_each_record_to_the_first_matching_branch() {
    let b = StreamsBuilder::new();
    let mut split = b.stream::<String, i64>("in").split();
    split.branch(|_, v| *v < 0).to("negative");
    split.branch(|_, v| *v < 10).to("small");
    split.branch(|_, v| *v < 100).to("medium");
    let b2 = StreamsBuilder::new();
    let mut split2 = b2.stream::<String, i64>("in").split();
    split2.branch(|_, v| *v < 0).to("negative");
    split2.default_branch().to("rest");
    let d = driver(&b, StreamsConfig::new("split"));
    let i = d.create_input_topic::<String, i64>("in");
    for v in [-5, 3, 50, 500] {
        i.pipe_input_at(s("k"), v, 0);
    }
    let read = |t: &str| {
        d.create_output_topic::<String, i64>(t)
            .read_values_to_list()
    };
    assert_eq!(read("negative"), vec![-5]);
    assert_eq!(read("small"), vec![3], "-5 matched an earlier branch");
    assert_eq!(read("medium"), vec![50]);
    assert!(
        d.produced_topic_names().iter().all(|t| t != "rest"),
        "500 matches nothing: dropped"
    );
    let d2 = driver(&b2, StreamsConfig::new("split2"));
    let i2 = d2.create_input_topic::<String, i64>("in");
    for v in [-5, 3, 500] {
        i2.pipe_input_at(s("k"), v, 0);
    }
    assert_eq!(
        d2.create_output_topic::<String, i64>("rest")
            .read_values_to_list(),
        vec![3, 500]
    );
}

#[test]
fn merge_interleaves_both_streams_in_arrival_order() {
    let b = StreamsBuilder::new();
    let left = b.stream::<String, String>("left");
    let right = b.stream::<String, String>("right");
    left.merge(&right).to("out");
    let d = driver(&b, StreamsConfig::new("merge"));
    d.create_input_topic::<String, String>("left")
        .pipe_input_at(s("l"), s("1"), 0);
    d.create_input_topic::<String, String>("right")
        .pipe_input_at(s("r"), s("2"), 0);
    d.create_input_topic::<String, String>("left")
        .pipe_input_at(s("l"), s("3"), 0);
    let out = d
        .create_output_topic::<String, String>("out")
        .read_values_to_list();
    assert_eq!(out, vec![s("1"), s("2"), s("3")]);
}

#[test]
fn to_dynamic_picks_the_topic_per_record() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .to_dynamic(|k, _| format!("user-{k}"), Produced::default());
    let d = driver(&b, StreamsConfig::new("dyn"));
    let i = d.create_input_topic::<String, String>("in");
    i.pipe_input_at(s("a"), s("1"), 0);
    i.pipe_input_at(s("b"), s("2"), 0);
    assert_eq!(
        d.create_output_topic::<String, String>("user-a")
            .read_values_to_list(),
        vec![s("1")]
    );
    assert_eq!(
        d.create_output_topic::<String, String>("user-b")
            .read_values_to_list(),
        vec![s("2")]
    );
}

#[test]
fn group_by_repartitions_and_counts_per_new_key() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by(|_, v| v.clone())
        .count_with(Materialized::named("by-value"))
        .to_stream()
        .to("counts");
    let topology = b.build().unwrap();
    let description = topology.describe();
    assert_eq!(description.subtopologies.len(), 2, "{description}");
    let internal: Vec<_> = description
        .internal_topics
        .iter()
        .map(|t| (t.name.as_str(), t.kind))
        .collect();
    assert_eq!(
        internal,
        vec![
            ("by-value-repartition", InternalTopicKind::Repartition),
            ("by-value-changelog", InternalTopicKind::Changelog),
        ]
    );
    let d = TestDriver::new(&topology, StreamsConfig::new("gb")).unwrap();
    let i = d.create_input_topic::<String, String>("in");
    for (k, v) in [("u1", "red"), ("u2", "red"), ("u3", "blue")] {
        i.pipe_input_at(s(k), s(v), 5);
    }
    let counts = d
        .create_output_topic::<String, Option<i64>>("counts")
        .read_key_values_to_list();
    assert_eq!(
        counts,
        vec![
            (s("red"), Some(1)),
            (s("red"), Some(2)),
            (s("blue"), Some(1))
        ]
    );
    let repartitioned = d
        .create_output_topic::<String, String>("gb-by-value-repartition")
        .read_key_values_to_list();
    assert_eq!(repartitioned.len(), 3);
    let store: KeyValueStore<String, i64> = d.key_value_store("by-value").unwrap();
    assert_eq!(store.get(&s("red")).unwrap(), Some(2));
    let changelog = d.create_output_topic::<String, Option<Vec<u8>>>("gb-by-value-changelog");
    assert_eq!(changelog.queue_size(), 3, "one changelog record per update");
}

#[test]
fn group_by_key_without_key_change_needs_no_repartition() {
    let b = StreamsBuilder::new();
    b.stream::<String, i64>("in")
        .group_by_key()
        .reduce_with(|a, b| a.max(b), Materialized::named("max"))
        .to_stream()
        .to("out");
    let topology = b.build().unwrap();
    assert_eq!(topology.describe().subtopologies.len(), 1);
    let d = TestDriver::new(&topology, StreamsConfig::new("r")).unwrap();
    let i = d.create_input_topic::<String, i64>("in");
    for v in [3, 9, 4] {
        i.pipe_input_at(s("k"), v, 0);
    }
    let out = d
        .create_output_topic::<String, Option<i64>>("out")
        .read_values_to_list();
    assert_eq!(out, vec![Some(3), Some(9), Some(9)]);
}

#[test]
fn aggregate_folds_values_and_stamps_the_latest_timestamp() {
    let b = StreamsBuilder::new();
    b.stream::<String, i64>("in")
        .group_by_key()
        .aggregate_with(
            String::new,
            |_, v, agg| format!("{agg}{v}"),
            Materialized::named("concat"),
        )
        .to_stream()
        .to("out");
    let d = driver(&b, StreamsConfig::new("agg"));
    let i = d.create_input_topic::<String, i64>("in");
    i.pipe_input_at(s("k"), 1, 10);
    i.pipe_input_at(s("k"), 2, 5);
    let out = d
        .create_output_topic::<String, Option<String>>("out")
        .read_records_to_list();
    let got: Vec<_> = out.iter().map(|r| (r.value.clone(), r.timestamp)).collect();
    assert_eq!(got, vec![(Some(s("1")), 10), (Some(s("12")), 10)]);
    let store = d
        .timestamped_key_value_store::<String, String>("concat")
        .unwrap();
    let v = store.get(&s("k")).unwrap().unwrap();
    assert_eq!((v.value.as_str(), v.timestamp), ("12", 10));
}

#[test]
fn table_keeps_the_latest_value_and_tombstones_delete() {
    let b = StreamsBuilder::new();
    let table = b.table::<String, String>("users", Materialized::named("users-store"));
    table.to_stream().to("changes");
    let d = driver(&b, StreamsConfig::new("t"));
    let users = d.create_input_topic::<String, Option<String>>("users");
    users.pipe_input_at(s("u1"), Some(s("ann")), 1);
    users.pipe_input_at(s("u1"), Some(s("anna")), 2);
    users.pipe_input_at(s("u2"), Some(s("bob")), 3);
    users.pipe_input_at(s("u2"), None, 4);
    users.pipe_input_at(s("u3"), None, 5); // deleting an absent key changes nothing
    d.pipe_raw("users", None, Some(b"no key"), 6, Headers::new())
        .unwrap();
    let store: KeyValueStore<String, String> = d.key_value_store("users-store").unwrap();
    assert_eq!(store.all().unwrap(), vec![(s("u1"), s("anna"))]);
    let changes = d
        .create_output_topic::<String, Option<String>>("changes")
        .read_key_values_to_list();
    assert_eq!(
        changes,
        vec![
            (s("u1"), Some(s("ann"))),
            (s("u1"), Some(s("anna"))),
            (s("u2"), Some(s("bob"))),
            (s("u2"), None)
        ]
    );
    assert_eq!(d.metrics().dropped_records, 1, "the keyless table record");
    // u1 twice, u2 once and its delete: the tombstone for the absent u3 is not logged.
    let changelog = d.create_output_topic::<String, Option<String>>("t-users-store-changelog");
    assert_eq!(changelog.queue_size(), 4);
}

#[test]
fn table_filter_and_map_values_emit_deletes_when_rows_stop_matching() {
    let b = StreamsBuilder::new();
    let table = b.table::<String, i64>("scores", Materialized::default());
    table
        .filter_with(|_, v| *v >= 10, Materialized::named("high"))
        .map_values(|_, v| v * 2)
        .to_stream()
        .to("high-doubled");
    let d = driver(&b, StreamsConfig::new("tf"));
    let scores = d.create_input_topic::<String, i64>("scores");
    scores.pipe_input_at(s("a"), 5, 0); // below: nothing
    scores.pipe_input_at(s("a"), 12, 1); // matches
    scores.pipe_input_at(s("a"), 3, 2); // stops matching: delete downstream
    let out = d
        .create_output_topic::<String, Option<i64>>("high-doubled")
        .read_values_to_list();
    assert_eq!(out, vec![Some(24), None]);
    let high: KeyValueStore<String, i64> = d.key_value_store("high").unwrap();
    assert_eq!(high.approximate_num_entries(), 0);
}

#[test]
fn table_group_by_moves_a_row_between_groups() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("user-region", Materialized::default());
    let grouped = users.group_by(|user, region| (region.clone(), user.clone()));
    grouped
        .count_with(Materialized::named("per-region"))
        .to_stream()
        .to("counts");
    let d = driver(&b, StreamsConfig::new("tg"));
    let input = d.create_input_topic::<String, Option<String>>("user-region");
    input.pipe_input_at(s("alice"), Some(s("eu")), 0);
    input.pipe_input_at(s("bob"), Some(s("eu")), 1);
    input.pipe_input_at(s("alice"), Some(s("us")), 2);
    input.pipe_input_at(s("bob"), None, 3);
    let counts = d
        .create_output_topic::<String, Option<i64>>("counts")
        .read_key_values_to_list();
    assert_eq!(
        counts,
        vec![
            (s("eu"), Some(1)),
            (s("eu"), Some(2)),
            (s("eu"), Some(1)), // alice left eu
            (s("us"), Some(1)), // and joined us
            (s("eu"), Some(0)), // bob deleted
        ]
    );
    let store: KeyValueStore<String, i64> = d.key_value_store("per-region").unwrap();
    let all: HashMap<_, _> = store.all().unwrap().into_iter().collect();
    assert_eq!(all, HashMap::from([(s("eu"), 0), (s("us"), 1)]));
}

/// Counts records per key in a store, forwards the running count, and on every stream-time
/// punctuation forwards a `tick` record carrying the punctuation time.
struct CountingProcessor {
    store: Option<KeyValueStore<String, i64>>,
}

impl Processor<String, String, String, i64> for CountingProcessor {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), BoxError> {
        self.store = Some(ctx.key_value_store("seen")?);
        ctx.schedule(Duration::from_millis(10), PunctuationType::StreamTime);
        ctx.schedule(Duration::from_millis(100), PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        r: Record<String, String>,
    ) -> Result<(), BoxError> {
        let store = self.store.as_ref().ok_or("no store")?;
        let count = store.get(&r.key)?.unwrap_or(0) + 1;
        store.put(&r.key, &count)?;
        let meta = ctx.record_metadata().ok_or("no metadata")?;
        assert_eq!(&*meta.topic, "in");
        ctx.forward(r.with_value(count))?;
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        p: Punctuation,
    ) -> Result<(), BoxError> {
        let key = match p.kind {
            PunctuationType::StreamTime => "stream-tick",
            PunctuationType::WallClockTime => "wall-tick",
        };
        ctx.forward(Record::new(key.to_string(), p.timestamp, p.timestamp))?;
        Ok(())
    }
}

#[test]
fn custom_processor_uses_its_store_and_punctuates_on_both_clocks() {
    let b = StreamsBuilder::new();
    b.add_state_store(Stores::key_value_store_builder::<String, i64>("seen"));
    b.stream::<String, String>("in")
        .process(|| CountingProcessor { store: None }, &["seen"])
        .to("out");
    let d = driver(&b, StreamsConfig::new("proc"));
    let i = d.create_input_topic::<String, String>("in");
    let out = d.create_output_topic::<String, i64>("out");
    i.pipe_input_at(s("a"), s("x"), 3); // first record: stream-time punctuation fires at 3
    i.pipe_input_at(s("a"), s("x"), 7); // next grid point is 10
    i.pipe_input_at(s("b"), s("x"), 25); // crosses 10 and 20: fires once, at 25
    assert_eq!(
        out.read_key_values_to_list(),
        vec![
            (s("a"), 1),
            (s("stream-tick"), 3),
            (s("a"), 2),
            (s("b"), 1),
            (s("stream-tick"), 25),
        ]
    );
    d.advance_wall_clock_time(Duration::from_millis(99))
        .unwrap();
    assert!(out.is_empty());
    d.advance_wall_clock_time(Duration::from_millis(1)).unwrap();
    assert_eq!(out.read_key_values_to_list(), vec![(s("wall-tick"), 100)]);
    assert_eq!(
        d.key_value_store::<String, i64>("seen")
            .unwrap()
            .get(&s("a"))
            .unwrap(),
        Some(2)
    );
}

#[test]
fn try_operators_dead_letter_failures_with_the_source_bytes_and_error_headers() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .try_map_values(|v| v.parse::<i64>().map_err(|e| format!("not a number: {e}")))
        .to("numbers");
    let d = driver(
        &b,
        StreamsConfig::new("try").with_dead_letter_topic("bad-input"),
    );
    let i = d.create_input_topic::<String, String>("in");
    i.pipe_input_at(s("a"), s("12"), 1);
    i.pipe_input_at(s("b"), s("twelve"), 2);
    i.pipe_input_at(s("c"), s("7"), 3);
    assert_eq!(
        d.create_output_topic::<String, i64>("numbers")
            .read_values_to_list(),
        vec![12, 7]
    );
    let dlq = d
        .create_output_topic::<String, String>("bad-input")
        .read_records_to_list();
    assert_eq!(dlq.len(), 1);
    let r = &dlq[0];
    assert_eq!(
        (r.key.as_str(), r.value.as_str(), r.timestamp),
        ("b", "twelve", 2)
    );
    assert_eq!(r.headers.last_str(dead_letter::ERROR_TOPIC), Some("in"));
    assert_eq!(r.headers.last_str(dead_letter::ERROR_PARTITION), Some("0"));
    assert_eq!(r.headers.last_str(dead_letter::ERROR_OFFSET), Some("1"));
    assert!(r
        .headers
        .last_str(dead_letter::ERROR_MESSAGE)
        .unwrap()
        .starts_with("not a number"));
    let processor = r.headers.last_str(dead_letter::ERROR_PROCESSOR).unwrap();
    assert!(
        processor.starts_with("KSTREAM-TRY-FLATMAPVALUES-"),
        "{processor}"
    );
    assert_eq!(d.metrics().dead_lettered_records, 1);
}

#[test]
fn deserialization_policies_fail_skip_or_dead_letter() {
    let topology = {
        let b = StreamsBuilder::new();
        b.stream::<String, i64>("in").to("out");
        b.build().unwrap()
    };
    let bad = |d: &TestDriver| d.pipe_raw("in", Some(b"k"), Some(b"abc"), 0, Headers::new());
    let good = |d: &TestDriver| {
        d.create_input_topic::<String, i64>("in")
            .pipe_input_at(s("k"), 1, 0)
    };

    let fail = TestDriver::new(&topology, StreamsConfig::new("f")).unwrap();
    assert!(matches!(
        bad(&fail),
        Err(StreamsError::Deserialization {
            part: "value",
            offset: 0,
            ..
        })
    ));

    let skip = TestDriver::new(
        &topology,
        StreamsConfig::new("s").deserialization_policy(ErrorPolicy::LogAndContinue),
    )
    .unwrap();
    bad(&skip).unwrap();
    good(&skip);
    assert_eq!(
        skip.create_output_topic::<String, i64>("out")
            .read_values_to_list(),
        vec![1]
    );
    assert_eq!(skip.metrics().dropped_records, 1);

    let dlq = TestDriver::new(
        &topology,
        StreamsConfig::new("d").deserialization_policy(ErrorPolicy::DeadLetter),
    )
    .unwrap();
    bad(&dlq).unwrap();
    let dead = dlq
        .create_output_topic_with("d-dlq", Serdes::bytes(), Serdes::bytes())
        .read_record()
        .unwrap();
    assert_eq!((dead.key, dead.value), (b"k".to_vec(), b"abc".to_vec()));
    assert_eq!(
        dead.headers.last_str(dead_letter::ERROR_KIND),
        Some("deserialization")
    );
}

struct Failing;
impl Processor<String, String, String, String> for Failing {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> Result<(), BoxError> {
        if r.value == "boom" {
            return Err("exploded".into());
        }
        ctx.forward(r)?;
        Ok(())
    }
}

#[test]
fn processing_policy_applies_to_processor_errors() {
    let topology = {
        let b = StreamsBuilder::new();
        b.stream::<String, String>("in")
            .process(|| Failing, &[])
            .to("out");
        b.build().unwrap()
    };
    let fail = TestDriver::new(&topology, StreamsConfig::new("f")).unwrap();
    let err = fail
        .create_input_topic::<String, String>("in")
        .try_pipe_record(TestRecord::new(s("k"), s("boom"), 0))
        .unwrap_err();
    assert!(
        matches!(&err, StreamsError::Processing { processor, .. } if processor.starts_with("KSTREAM-PROCESSOR")),
        "{err}"
    );

    let dlq = TestDriver::new(
        &topology,
        StreamsConfig::new("d").processing_policy(ErrorPolicy::DeadLetter),
    )
    .unwrap();
    let input = dlq.create_input_topic::<String, String>("in");
    input.pipe_input_at(s("k"), s("boom"), 0);
    input.pipe_input_at(s("k"), s("fine"), 0);
    assert_eq!(
        dlq.create_output_topic::<String, String>("out")
            .read_values_to_list(),
        vec![s("fine")]
    );
    let dead = dlq
        .create_output_topic::<String, String>("d-dlq")
        .read_record()
        .unwrap();
    assert_eq!(
        dead.headers.last_str(dead_letter::ERROR_MESSAGE),
        Some("exploded")
    );
}

#[test]
fn timestamp_extractor_sets_event_time_and_negative_times_are_dropped() {
    let b = StreamsBuilder::new();
    b.stream_with(
        "in",
        Consumed::with(Serdes::string(), Serdes::i64()).with_timestamp_extractor(|_, v, _| *v),
    )
    .to("out");
    let d = driver(&b, StreamsConfig::new("ts"));
    let i = d.create_input_topic::<String, i64>("in");
    i.pipe_input_at(s("k"), 500, 1);
    i.pipe_input_at(s("k"), -1, 2);
    let out = d
        .create_output_topic::<String, i64>("out")
        .read_records_to_list();
    assert_eq!(
        out.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
        vec![500]
    );
    assert_eq!(d.metrics().dropped_records, 1);
}

#[test]
fn explicit_repartition_routes_through_an_internal_topic() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .select_key(|_, v| v.clone())
        .repartition_with(Repartitioned::default().with_name("by-value"))
        .to("out");
    let d = driver(&b, StreamsConfig::new("rp"));
    d.create_input_topic::<String, String>("in")
        .pipe_input_at(s("k"), s("v"), 0);
    assert_eq!(
        d.create_output_topic::<String, String>("rp-by-value-repartition")
            .queue_size(),
        1
    );
    assert_eq!(
        d.create_output_topic::<String, String>("out")
            .read_key_value(),
        Some((s("v"), s("v")))
    );
}

#[test]
fn bad_topologies_are_rejected_with_a_clear_error() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in").to("out");
    b.stream::<String, String>("in").to("out2");
    assert_eq!(
        b.build().err(),
        Some(TopologyError::TopicAlreadyRegistered(s("in")))
    );

    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .process(|| Failing, &["missing"])
        .to("out");
    assert!(
        matches!(b.build(), Err(TopologyError::UnknownStore { store, .. }) if store == "missing")
    );

    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .count_with(Materialized::named("bad name!"));
    assert!(matches!(b.build(), Err(TopologyError::InvalidName { .. })));

    assert_eq!(
        StreamsBuilder::new().build().err(),
        Some(TopologyError::NoSources)
    );
}

#[test]
fn store_type_mismatch_is_an_error_not_a_panic() {
    let b = StreamsBuilder::new();
    b.stream::<String, i64>("in")
        .group_by_key()
        .count_with(Materialized::named("c"));
    let d = driver(&b, StreamsConfig::new("tm"));
    assert!(d.key_value_store::<String, String>("c").is_err());
    assert!(d.key_value_store::<String, i64>("nope").is_err());
    assert!(d.window_store::<String, i64>("c").is_err());
}

#[test]
fn describe_prints_nodes_like_kafka_streams() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("words")
        .group_by(|_, w| w.clone())
        .count_with(Materialized::named("counts"))
        .to_stream()
        .to("word-counts");
    let description = b.build().unwrap().describe();
    let text = description.to_string();
    assert!(text.starts_with("Topologies:\n   Sub-topology: 0\n    Source: KSTREAM-SOURCE-0000000000 (topics: [words])"), "{text}");
    assert!(text.contains("Sink: KSTREAM-SINK-"), "{text}");
    assert!(text.contains("(topic: counts-repartition)"), "{text}");
    assert!(
        text.contains("counts-changelog (changelog, sub-topology 1, cleanup.policy=compact)"),
        "{text}"
    );
    let sub1 = &description.subtopologies[1];
    assert!(
        matches!(&sub1.nodes[0].kind, NodeType::Source { topics } if topics == &vec![s("counts-repartition")])
    );
    assert!(sub1.nodes.iter().any(|n| n.stores == vec![s("counts")]));
}

/// Reports which views of the store `visits` a processor can open.
struct StoreKinds;

impl Processor<String, String, String, String> for StoreKinds {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> Result<(), BoxError> {
        let plain = ctx.session_store::<String, i64>("visits").is_ok();
        let timestamped = match ctx.timestamped_session_store::<String, i64>("visits") {
            Ok(_) => "ok".to_string(),
            Err(kstreams::state::StoreError::WrongKind { requested, .. }) => {
                format!("wrong kind ({requested})")
            }
            Err(e) => e.to_string(),
        };
        ctx.forward(record.with_value(format!("plain {plain}, timestamped {timestamped}")))
    }
}

#[test]
fn a_plain_session_store_is_not_opened_as_a_timestamped_one() {
    let builder = StreamsBuilder::new();
    builder.add_state_store(Stores::session_store_builder_with(
        "visits",
        Duration::from_secs(60),
        Serdes::string(),
        Serdes::i64(),
    ));
    builder
        .stream::<String, String>("in")
        .process(|| StoreKinds, &["visits"])
        .to("out");
    let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("kinds")).unwrap();
    driver
        .create_input_topic::<String, String>("in")
        .pipe_input_at("ann".into(), "/".into(), 0);
    let out = driver.create_output_topic::<String, String>("out");
    assert_eq!(
        out.read_value(),
        Some("plain true, timestamped wrong kind (timestamped session)".to_string())
    );
}
