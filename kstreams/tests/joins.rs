//! Stream–table joins, following the result table of the Kafka Streams DSL documentation
//! (KStream–KTable join: one key, events in timestamp order; stream records with a null value
//! are not representable in a typed stream and are left out).

use std::collections::HashMap;

use kstreams::config::StreamsConfig;
use kstreams::dsl::*;
use kstreams::testing::TestDriver;
use proptest::prelude::*;

enum Event {
    Stream(&'static str),
    Table(Option<&'static str>),
}

fn run(events: &[(i64, Event)], left: bool) -> Vec<(String, i64)> {
    let builder = StreamsBuilder::new();
    let table = builder.table::<String, String>("right", Materialized::default());
    let stream = builder.stream::<String, String>("left");
    if left {
        stream
            .left_join(&table, |l, r| {
                format!("[{l}, {}]", r.map_or("null", String::as_str))
            })
            .to("out");
    } else {
        stream.join(&table, |l, r| format!("[{l}, {r}]")).to("out");
    }
    let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("join")).unwrap();
    let l = driver.create_input_topic::<String, String>("left");
    let r = driver.create_input_topic::<String, Option<String>>("right");
    for (ts, event) in events {
        match event {
            Event::Stream(v) => l.pipe_input_at("k".into(), v.to_string(), *ts),
            Event::Table(v) => r.pipe_input_at("k".into(), v.map(str::to_string), *ts),
        }
    }
    driver
        .create_output_topic::<String, String>("out")
        .read_records_to_list()
        .into_iter()
        .map(|r| (r.value, r.timestamp))
        .collect()
}

fn documented_events() -> Vec<(i64, Event)> {
    use Event::*;
    vec![
        (2, Table(None)),
        (3, Stream("A")),
        (4, Table(Some("a"))),
        (5, Stream("B")),
        (6, Table(Some("b"))),
        (8, Table(None)),
        (9, Stream("C")),
        (10, Table(Some("c"))),
        (11, Table(None)),
        (12, Table(None)),
        (13, Table(Some("d"))),
        (14, Stream("D")),
    ]
}

#[test]
fn stream_table_inner_join_matches_the_documented_results() {
    let expected = vec![("[B, a]".to_string(), 5), ("[D, d]".to_string(), 14)];
    assert_eq!(run(&documented_events(), false), expected);
}

#[test]
fn stream_table_left_join_matches_the_documented_results() {
    let expected: Vec<(String, i64)> = [
        ("[A, null]", 3),
        ("[B, a]", 5),
        ("[C, null]", 9),
        ("[D, d]", 14),
    ]
    .into_iter()
    .map(|(v, t)| (v.to_string(), t))
    .collect();
    assert_eq!(run(&documented_events(), true), expected);
}

#[test]
fn a_rekeyed_stream_is_repartitioned_before_the_join_and_filtered_tables_are_materialized() {
    let builder = StreamsBuilder::new();
    let vip = builder
        .table::<String, String>("customers", Materialized::default())
        .filter(|_, tier| tier == "vip");
    builder
        .stream::<String, String>("orders") // keyed by order id, value = customer id
        .select_key(|_, customer| customer.clone())
        .join(&vip, |customer, tier| format!("{customer}:{tier}"))
        .to("vip-orders");
    let topology = builder.build().unwrap();
    let description = topology.describe().to_string();
    assert!(
        description.contains("KSTREAM-JOIN-REPARTITION"),
        "{description}"
    );
    assert!(
        description.contains("KTABLE-JOIN-STATE-STORE"),
        "{description}"
    );
    let driver = TestDriver::new(&topology, StreamsConfig::new("vip")).unwrap();
    let customers = driver.create_input_topic::<String, Option<String>>("customers");
    customers.pipe_input_at("c1".into(), Some("vip".into()), 0);
    customers.pipe_input_at("c2".into(), Some("basic".into()), 0);
    let orders = driver.create_input_topic::<String, String>("orders");
    orders.pipe_input_at("o1".into(), "c1".into(), 1);
    orders.pipe_input_at("o2".into(), "c2".into(), 2);
    customers.pipe_input_at("c1".into(), Some("basic".into()), 3);
    orders.pipe_input_at("o3".into(), "c1".into(), 4);
    let out = driver
        .create_output_topic::<String, String>("vip-orders")
        .read_key_values_to_list();
    assert_eq!(out, vec![("c1".to_string(), "c1:vip".to_string())]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A left join emits, for every stream record, the table row its key had at that moment.
    #[test]
    fn stream_table_left_join_matches_a_model(
        events in prop::collection::vec(
            (any::<bool>(), 0u8..4, prop::option::weighted(0.7, 0u8..10)), 0..80),
    ) {
        let builder = StreamsBuilder::new();
        let table = builder.table::<String, i64>("table", Materialized::default());
        builder
            .stream::<String, i64>("stream")
            .left_join(&table, |v, row| (v, row.copied()))
            .map_values(|(v, row)| format!("{v}/{row:?}"))
            .to("out");
        let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("p")).unwrap();
        let stream = driver.create_input_topic::<String, i64>("stream");
        let table_in = driver.create_input_topic::<String, Option<i64>>("table");
        let mut model: HashMap<String, i64> = HashMap::new();
        let mut expected = Vec::new();
        for (i, (is_stream, key, value)) in events.iter().enumerate() {
            let key = format!("k{key}");
            let value = value.map(i64::from);
            if *is_stream {
                let v = value.unwrap_or(-1);
                stream.pipe_input_at(key.clone(), v, i as i64);
                expected.push((key.clone(), format!("{v}/{:?}", model.get(&key).copied())));
            } else {
                table_in.pipe_input_at(key.clone(), value, i as i64);
                match value {
                    Some(v) => { model.insert(key, v); }
                    None => { model.remove(&key); }
                }
            }
        }
        let out = driver.create_output_topic::<String, String>("out").read_key_values_to_list();
        prop_assert_eq!(out, expected);
    }
}

mod stream_stream {
    use std::time::Duration;

    use kstreams::config::StreamsConfig;
    use kstreams::dsl::*;
    use kstreams::testing::TestDriver;

    #[derive(Clone, Copy)]
    enum Kind {
        Inner,
        Left,
        Outer,
    }

    /// Pipes `(timestamp, side, value)` with one key; returns (value, timestamp) outputs.
    fn run(
        kind: Kind,
        windows: JoinWindows,
        events: &[(i64, char, &str)],
    ) -> (Vec<(String, i64)>, u64) {
        let builder = StreamsBuilder::new();
        let left = builder.stream::<String, String>("left");
        let right = builder.stream::<String, String>("right");
        let show = |v: Option<&String>| v.map_or("null".to_string(), Clone::clone);
        let joined = match kind {
            Kind::Inner => left.join_stream(&right, |l, r| format!("[{l}, {r}]"), windows),
            Kind::Left => {
                left.left_join_stream(&right, move |l, r| format!("[{l}, {}]", show(r)), windows)
            }
            Kind::Outer => left.outer_join_stream(
                &right,
                move |l, r| format!("[{}, {}]", show(l), show(r)),
                windows,
            ),
        };
        joined.to("out");
        let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("ss")).unwrap();
        let l = driver.create_input_topic::<String, String>("left");
        let r = driver.create_input_topic::<String, String>("right");
        for (ts, side, v) in events {
            match side {
                'L' => l.pipe_input_at("k".into(), v.to_string(), *ts),
                _ => r.pipe_input_at("k".into(), v.to_string(), *ts),
            }
        }
        let out = driver
            .create_output_topic::<String, String>("out")
            .read_records_to_list()
            .into_iter()
            .map(|r| (r.value, r.timestamp))
            .collect();
        (out, driver.metrics().late_records_dropped)
    }

    fn expect(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(v, t)| (v.to_string(), *t)).collect()
    }

    /// The Kafka Streams docs' KStream–KStream join table (one key, a window covering every
    /// record; null-valued records left out).
    const DOCUMENTED: &[(i64, char, &str)] = &[
        (3, 'L', "A"),
        (4, 'R', "a"),
        (5, 'L', "B"),
        (6, 'R', "b"),
        (9, 'L', "C"),
        (10, 'R', "c"),
        (14, 'R', "d"),
        (15, 'L', "D"),
    ];

    fn documented_inner() -> Vec<(String, i64)> {
        expect(&[
            ("[A, a]", 4),
            ("[B, a]", 5),
            ("[A, b]", 6),
            ("[B, b]", 6),
            ("[C, a]", 9),
            ("[C, b]", 9),
            ("[A, c]", 10),
            ("[B, c]", 10),
            ("[C, c]", 10),
            ("[A, d]", 14),
            ("[B, d]", 14),
            ("[C, d]", 14),
            ("[D, a]", 15),
            ("[D, b]", 15),
            ("[D, c]", 15),
            ("[D, d]", 15),
        ])
    }

    #[test]
    fn inner_left_and_outer_joins_match_the_documented_table() {
        let w = JoinWindows::of_time_difference_without_grace(Duration::from_millis(20));
        for kind in [Kind::Inner, Kind::Left, Kind::Outer] {
            // Every record finds a partner, so no join type adds null results.
            assert_eq!(run(kind, w, DOCUMENTED).0, documented_inner());
        }
    }

    #[test]
    fn records_join_only_within_the_window() {
        let w = JoinWindows::of_time_difference_without_grace(Duration::from_millis(5));
        let (out, _) = run(
            Kind::Inner,
            w,
            &[
                (10, 'L', "A"),
                (15, 'R', "a"),
                (16, 'R', "b"),
                (4, 'R', "late-but-in-window"),
            ],
        );
        // b is 6 after A: outside. The record at 4 is 6 before A: outside as well.
        assert_eq!(out, expect(&[("[A, a]", 15)]));
    }

    #[test]
    fn asymmetric_windows_use_before_and_after() {
        let w = JoinWindows::of_time_difference_without_grace(Duration::ZERO)
            .before(Duration::ZERO)
            .after(Duration::from_millis(10));
        // Right records may be up to 10 later than the left record, never earlier.
        let (out, _) = run(
            Kind::Inner,
            w,
            &[
                (5, 'R', "early"),
                (10, 'L', "A"),
                (20, 'R', "a"),
                (21, 'R', "b"),
            ],
        );
        assert_eq!(out, expect(&[("[A, a]", 20)]));
    }

    #[test]
    fn left_join_emits_unmatched_records_only_after_their_window_closes() {
        let w = JoinWindows::of_time_difference_and_grace(
            Duration::from_millis(5),
            Duration::from_millis(2),
        );
        // A (t=10) can match right records in [5, 15]; it closes when stream time passes
        // 10 + 5 + 5 + 2 = 22.
        let events = [
            (10, 'L', "A"),
            (12, 'L', "B"),
            (14, 'R', "b"),
            (22, 'R', "x"),
            (23, 'R', "y"),
        ];
        let (out, _) = run(Kind::Left, w, &events);
        assert_eq!(
            out,
            expect(&[("[A, b]", 14), ("[B, b]", 14)]),
            "both matched: no null result"
        );
        let events = [(10, 'L', "A"), (20, 'R', "x"), (22, 'R', "y")];
        let (out, _) = run(Kind::Left, w, &events);
        assert!(
            out.is_empty(),
            "A's window has not closed at stream time 22: {out:?}"
        );
        let events = [(10, 'L', "A"), (20, 'R', "x"), (23, 'R', "y")];
        let (out, _) = run(Kind::Left, w, &events);
        assert_eq!(out, expect(&[("[A, null]", 10)]));
    }

    #[test]
    fn outer_join_emits_unmatched_records_of_both_sides() {
        let w = JoinWindows::of_time_difference_without_grace(Duration::from_millis(1));
        let events = [(10, 'L', "A"), (20, 'R', "a"), (40, 'L', "B")];
        let (out, _) = run(Kind::Outer, w, &events);
        // A closes after 12, a after 22: both emitted when stream time reaches 40.
        assert_eq!(out, expect(&[("[A, null]", 10), ("[null, a]", 20)]));
    }

    #[test]
    fn late_records_are_dropped_and_counted() {
        let w = JoinWindows::of_time_difference_without_grace(Duration::from_millis(5));
        let (out, late) = run(Kind::Inner, w, &[(100, 'L', "A"), (90, 'R', "old")]);
        assert!(out.is_empty());
        assert_eq!(late, 1);
    }
}

mod table_table {
    use kstreams::config::StreamsConfig;
    use kstreams::dsl::*;
    use kstreams::state::KeyValueStore;
    use kstreams::testing::TestDriver;

    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Inner,
        Left,
        Outer,
    }

    /// The Kafka Streams docs' KTable–KTable join table: (timestamp, side, value or tombstone).
    const EVENTS: &[(i64, char, Option<&str>)] = &[
        (1, 'L', None),
        (2, 'R', None),
        (3, 'L', Some("A")),
        (4, 'R', Some("a")),
        (5, 'L', Some("B")),
        (6, 'R', Some("b")),
        (7, 'L', None),
        (8, 'R', None),
        (9, 'L', Some("C")),
        (10, 'R', Some("c")),
        (11, 'R', None),
        (12, 'L', None),
        (13, 'R', None),
        (14, 'R', Some("d")),
        (15, 'L', Some("D")),
    ];

    fn run(kind: Kind) -> (Vec<(i64, Option<String>)>, Vec<(String, String)>) {
        let builder = StreamsBuilder::new();
        let left = builder.table::<String, String>("left", Materialized::default());
        let right = builder.table::<String, String>("right", Materialized::default());
        let show = |v: Option<&String>| v.map_or("null".to_string(), Clone::clone);
        let m = Materialized::named("joined");
        let joined = match kind {
            Kind::Inner => left.join_with(&right, |l, r| format!("[{l}, {r}]"), m),
            Kind::Left => left.left_join_with(&right, move |l, r| format!("[{l}, {}]", show(r)), m),
            Kind::Outer => {
                left.outer_join_with(&right, move |l, r| format!("[{}, {}]", show(l), show(r)), m)
            }
        };
        joined.to_stream().to("out");
        let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("tt")).unwrap();
        let l = driver.create_input_topic::<String, Option<String>>("left");
        let r = driver.create_input_topic::<String, Option<String>>("right");
        for (ts, side, v) in EVENTS {
            let topic = if *side == 'L' { &l } else { &r };
            topic.pipe_input_at("k".into(), v.map(str::to_string), *ts);
        }
        let out = driver
            .create_output_topic::<String, Option<String>>("out")
            .read_records_to_list()
            .into_iter()
            .map(|r| (r.timestamp, r.value))
            .collect();
        let store: KeyValueStore<String, String> = driver.key_value_store("joined").unwrap();
        (out, store.all().unwrap())
    }

    fn expect(rows: &[(i64, Option<&str>)]) -> Vec<(i64, Option<String>)> {
        rows.iter()
            .map(|(t, v)| (*t, v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn inner_join_matches_the_documented_table() {
        let (out, store) = run(Kind::Inner);
        assert_eq!(
            out,
            expect(&[
                (4, Some("[A, a]")),
                (5, Some("[B, a]")),
                (6, Some("[B, b]")),
                (7, None),
                (10, Some("[C, c]")),
                (11, None),
                (15, Some("[D, d]"))
            ])
        );
        assert_eq!(store, vec![("k".to_string(), "[D, d]".to_string())]);
    }

    #[test]
    fn left_join_matches_the_documented_table() {
        let (out, _) = run(Kind::Left);
        assert_eq!(
            out,
            expect(&[
                (3, Some("[A, null]")),
                (4, Some("[A, a]")),
                (5, Some("[B, a]")),
                (6, Some("[B, b]")),
                (7, None),
                (9, Some("[C, null]")),
                (10, Some("[C, c]")),
                (11, Some("[C, null]")),
                (12, None),
                (15, Some("[D, d]")),
            ])
        );
    }

    #[test]
    fn outer_join_matches_the_documented_table() {
        let (out, _) = run(Kind::Outer);
        assert_eq!(
            out,
            expect(&[
                (3, Some("[A, null]")),
                (4, Some("[A, a]")),
                (5, Some("[B, a]")),
                (6, Some("[B, b]")),
                (7, Some("[null, b]")),
                (8, None),
                (9, Some("[C, null]")),
                (10, Some("[C, c]")),
                (11, Some("[C, null]")),
                (12, None),
                (14, Some("[null, d]")),
                (15, Some("[D, d]")),
            ])
        );
    }

    #[test]
    fn an_aggregation_over_a_join_subtracts_retracted_results() {
        // Orders per customer tier: when a customer's tier changes, the order moves.
        let builder = StreamsBuilder::new();
        let orders = builder.table::<String, String>("orders", Materialized::default()); // order -> customer
        let customers = builder.table::<String, String>("tiers", Materialized::default()); // customer -> tier
        let by_customer = orders
            .group_by(|order, customer| (customer.clone(), order.clone()))
            .count();
        by_customer
            .join(&customers, |count, tier| format!("{tier}:{count}"))
            .to_stream()
            .to("out");
        let driver =
            TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("agg-join")).unwrap();
        let o = driver.create_input_topic::<String, Option<String>>("orders");
        let t = driver.create_input_topic::<String, Option<String>>("tiers");
        t.pipe_input_at("c1".into(), Some("gold".into()), 0);
        o.pipe_input_at("o1".into(), Some("c1".into()), 1);
        o.pipe_input_at("o2".into(), Some("c1".into()), 2);
        t.pipe_input_at("c1".into(), Some("silver".into()), 3);
        let out = driver
            .create_output_topic::<String, Option<String>>("out")
            .read_values_to_list();
        assert_eq!(
            out,
            vec![
                Some("gold:1".into()),
                Some("gold:2".into()),
                Some("silver:2".into())
            ]
        );
    }
}

mod global {
    use kstreams::config::StreamsConfig;
    use kstreams::dsl::*;
    use kstreams::state::KeyValueStore;
    use kstreams::testing::TestDriver;

    #[test]
    fn global_tables_join_by_a_mapped_key_without_repartitioning() {
        let builder = StreamsBuilder::new();
        let products = builder
            .global_table::<String, String>("products", Materialized::named("products-store"));
        let lines = builder.stream::<String, String>("lines"); // order id -> product id
        lines
            .left_join_global(
                &products,
                |_, product| product.clone(),
                |p, name| format!("{p}:{}", name.map_or("?", String::as_str)),
            )
            .to("named");
        lines
            .join_global(
                &products,
                |_, product| product.clone(),
                |p, name| format!("{p}:{name}"),
            )
            .to("inner");
        let topology = builder.build().unwrap();
        let description = topology.describe();
        let text = description.to_string();
        assert!(
            text.contains("Sub-topology: 1 for global store (will not generate tasks)"),
            "{text}"
        );
        assert_eq!(description.global_subtopology, Some(1));
        assert!(
            description.internal_topics.is_empty(),
            "no repartition, no changelog: {text}"
        );

        let driver = TestDriver::new(&topology, StreamsConfig::new("g")).unwrap();
        let products_in = driver.create_input_topic::<String, Option<String>>("products");
        let lines_in = driver.create_input_topic::<String, String>("lines");
        products_in.pipe_input_at("p1".into(), Some("kettle".into()), 0);
        lines_in.pipe_input_at("o1".into(), "p1".into(), 1);
        lines_in.pipe_input_at("o2".into(), "p2".into(), 2);
        products_in.pipe_input_at("p1".into(), None, 3);
        lines_in.pipe_input_at("o3".into(), "p1".into(), 4);
        let named = driver
            .create_output_topic::<String, String>("named")
            .read_key_values_to_list();
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            named,
            pairs(&[("o1", "p1:kettle"), ("o2", "p2:?"), ("o3", "p1:?")])
        );
        let inner = driver
            .create_output_topic::<String, String>("inner")
            .read_key_values_to_list();
        assert_eq!(inner, pairs(&[("o1", "p1:kettle")]));
        let store: KeyValueStore<String, String> =
            driver.key_value_store("products-store").unwrap();
        assert_eq!(store.approximate_num_entries(), 0);
    }
}

mod copartitioning {
    use std::time::Duration;

    use kstreams::dsl::*;
    use kstreams::TopologyError;

    #[test]
    fn joined_topics_form_copartition_groups_checked_against_partition_counts() {
        let builder = StreamsBuilder::new();
        let views = builder.stream::<String, String>("views");
        let clicks = builder.stream::<String, String>("clicks");
        let window = JoinWindows::of_time_difference_without_grace(Duration::from_secs(1));
        views
            .join_stream(&clicks, |v, c| format!("{v}{c}"), window)
            .to("out");
        // A rekeyed stream joins through a repartition topic that kstreams sizes itself.
        let users = builder.table::<String, String>("users", Materialized::default());
        builder
            .stream::<String, String>("orders")
            .select_key(|_, user| user.clone())
            .join(&users, |o, u| format!("{o}{u}"))
            .to("enriched");
        // No join: no group.
        builder.stream::<String, String>("other").to("copy");
        let topology = builder.build().unwrap();
        let mut groups = topology.copartition_groups("app");
        groups.iter_mut().for_each(|g| g.sort());
        groups.sort();
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[1], vec!["clicks".to_string(), "views".to_string()]);
        assert!(groups[0].contains(&"users".to_string()));
        assert!(groups[0]
            .iter()
            .any(|t| t.starts_with("app-") && t.ends_with("-repartition")));

        let counts = |t: &str| match t {
            "views" => Some(6),
            "clicks" => Some(3),
            "missing" => None,
            _ => Some(6),
        };
        assert_eq!(
            topology.check_copartitioning(counts),
            Err(TopologyError::NotCopartitioned(vec![
                ("views".into(), 6),
                ("clicks".into(), 3)
            ]))
        );
        assert!(topology.check_copartitioning(|_| Some(6)).is_ok());
        assert_eq!(
            topology.check_copartitioning(|t| (t != "users").then_some(6)),
            Err(TopologyError::MissingSourceTopic("users".into()))
        );
    }
}

mod foreign_key {
    use std::collections::BTreeMap;

    use kstreams::config::StreamsConfig;
    use kstreams::dsl::*;
    use kstreams::state::KeyValueStore;
    use kstreams::testing::{TestDriver, TestInputTopic, TestOutputTopic};
    use proptest::prelude::*;

    struct Fixture {
        driver: TestDriver,
        orders: TestInputTopic<String, Option<String>>,
        customers: TestInputTopic<String, Option<String>>,
        out: TestOutputTopic<String, Option<String>>,
        store: String,
    }

    /// orders: order -> customer id; customers: customer id -> name.
    fn fixture(left: bool) -> Fixture {
        let builder = StreamsBuilder::new();
        let orders = builder.table::<String, String>("orders", Materialized::default());
        let customers = builder.table::<String, String>("customers", Materialized::default());
        let joined = if left {
            orders.left_join_on_foreign_key(
                &customers,
                |c| c.clone(),
                |c, name| format!("{c}:{}", name.map_or("?", String::as_str)),
            )
        } else {
            orders.join_on_foreign_key(&customers, |c| c.clone(), |c, name| format!("{c}:{name}"))
        };
        joined.to_stream().to("out");
        let store = joined
            .queryable_store_name()
            .expect("results are materialized")
            .to_string();
        let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("fk")).unwrap();
        Fixture {
            store,
            orders: driver.create_input_topic("orders"),
            customers: driver.create_input_topic("customers"),
            out: driver.create_output_topic("out"),
            driver,
        }
    }

    fn some(k: &str, v: &str) -> (String, Option<String>) {
        (k.to_string(), Some(v.to_string()))
    }

    #[test]
    fn rows_follow_foreign_key_changes_and_right_updates() {
        let f = fixture(false);
        f.customers
            .pipe_input_at("c1".into(), Some("Ann".into()), 0);
        f.customers
            .pipe_input_at("c2".into(), Some("Bob".into()), 0);
        f.orders.pipe_input_at("o1".into(), Some("c1".into()), 1);
        f.orders.pipe_input_at("o2".into(), Some("c1".into()), 2);
        assert_eq!(
            f.out.read_key_values_to_list(),
            vec![some("o1", "c1:Ann"), some("o2", "c1:Ann")]
        );
        // A right update reaches every row that references it.
        f.customers
            .pipe_input_at("c1".into(), Some("Anna".into()), 3);
        assert_eq!(
            f.out.read_key_values_to_list(),
            vec![some("o1", "c1:Anna"), some("o2", "c1:Anna")]
        );
        // o1 moves to c2; c1's later updates no longer reach it.
        f.orders.pipe_input_at("o1".into(), Some("c2".into()), 4);
        f.customers
            .pipe_input_at("c1".into(), Some("Annie".into()), 5);
        assert_eq!(
            f.out.read_key_values_to_list(),
            vec![some("o1", "c2:Bob"), some("o2", "c1:Annie")]
        );
        // Deleting the right row removes inner-join rows; deleting a left row removes its row.
        f.customers.pipe_input_at("c2".into(), None, 6);
        f.orders.pipe_input_at("o2".into(), None, 7);
        assert_eq!(
            f.out.read_key_values_to_list(),
            vec![("o1".to_string(), None), ("o2".to_string(), None)]
        );
    }

    #[test]
    fn left_foreign_key_join_keeps_rows_without_a_right_row() {
        let f = fixture(true);
        f.orders.pipe_input_at("o1".into(), Some("c9".into()), 1);
        f.customers
            .pipe_input_at("c9".into(), Some("Zed".into()), 2);
        f.customers.pipe_input_at("c9".into(), None, 3);
        assert_eq!(
            f.out.read_key_values_to_list(),
            vec![some("o1", "c9:?"), some("o1", "c9:Zed"), some("o1", "c9:?")]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn foreign_key_join_matches_a_model(
            events in prop::collection::vec(
                (any::<bool>(), 0u8..5, prop::option::weighted(0.75, 0u8..4)), 0..60),
            left in any::<bool>(),
        ) {
            let f = fixture(left);
            let mut orders: BTreeMap<String, String> = BTreeMap::new();
            let mut customers: BTreeMap<String, String> = BTreeMap::new();
            for (i, (is_order, id, value)) in events.iter().enumerate() {
                if *is_order {
                    let (key, value) = (format!("o{id}"), value.map(|c| format!("c{c}")));
                    f.orders.pipe_input_at(key.clone(), value.clone(), i as i64);
                    match value { Some(v) => { orders.insert(key, v); } None => { orders.remove(&key); } }
                } else {
                    let (key, value) = (format!("c{}", id % 4), value.map(|n| format!("name{n}")));
                    f.customers.pipe_input_at(key.clone(), value.clone(), i as i64);
                    match value { Some(v) => { customers.insert(key, v); } None => { customers.remove(&key); } }
                }
            }
            let expected: BTreeMap<String, String> = orders
                .iter()
                .filter_map(|(o, c)| match customers.get(c) {
                    Some(name) => Some((o.clone(), format!("{c}:{name}"))),
                    None if left => Some((o.clone(), format!("{c}:?"))),
                    None => None,
                })
                .collect();
            let store: KeyValueStore<String, String> = f.driver.key_value_store(&f.store).unwrap();
            let actual: BTreeMap<String, String> = store.all().unwrap().into_iter().collect();
            prop_assert_eq!(&actual, &expected);
            // The last emitted value per key agrees with the result table.
            let emitted: BTreeMap<String, Option<String>> = f.out.read_key_values_to_list().into_iter().collect();
            for (key, value) in emitted {
                prop_assert_eq!(value.as_ref(), expected.get(&key), "key {}", key);
            }
        }
    }
}
