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
