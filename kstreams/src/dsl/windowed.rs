//! Windowed aggregation: time windows (tumbling, hopping), sliding windows and session
//! windows, with grace periods, late-record accounting and final-only emission.
//!
//! `group_by_key().windowed_by(TimeWindows::…)` (or `windowed_by_sliding`,
//! `windowed_by_session`) gives a windowed stream whose `count` / `reduce` / `aggregate`
//! produce a `KTable<Windowed<K>, V>` backed by a window (or session) store. Updates are
//! emitted by default (for time windows with caching on, one per window per commit);
//! [`KTable::suppress`] with [`Suppressed::until_window_closes`] emits one final result per
//! window instead.
//!
//! A window closes when the stream time its aggregation has observed passes the window's end
//! plus the grace period. Records for closed windows are dropped and counted in
//! [`TaskMetrics::late_records_dropped`](crate::TaskMetrics), never folded in silently.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::error::BoxError;
use crate::processor::{Processor, ProcessorContext, Punctuation, PunctuationType, Record};
use crate::serde::{DefaultSerde, Serde, SerdeError, SerdeRef, Serdes};
use crate::state::{
    from_ordered, ordered, KeyValueStore, SessionStore, Stores, ValueAndTimestamp, WindowStore,
};
use crate::topology::NodeKind;

use super::forward::ForwardCache;
use super::kgrouped::KGroupedStream;
use super::ktable::KTable;
use super::ops::{Adder, Change, ChangeSerde};
use super::{Data, GraphBuilder, Materialized};

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A time interval. Time windows are `[start, end)`; sliding and session windows include
/// their end.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder.stream::<String, String>("clicks").group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
///     .count().to_stream().to("clicks-per-window");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
/// let clicks = driver.create_input_topic::<String, String>("clicks");
/// clicks.pipe_input_at("ann".into(), "/".into(), 13);
/// let out = driver.create_output_topic::<Windowed<String>, Option<i64>>("clicks-per-window");
/// let (key, _count) = out.read_key_value().unwrap();
/// assert_eq!(key.window, Window { start: 10, end: 20 }); // 13 is in [10, 20)
/// assert!(Window { start: 0, end: 10 } < key.window); // windows order by start, then end
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First millisecond of the window.
    pub start: i64,
    /// End of the window (exclusive for time windows, inclusive for sliding and sessions).
    pub end: i64,
}

/// A key together with the window it was aggregated in (Kafka Streams' `Windowed`): the key
/// of every windowed table.
///
/// ```
/// use kstreams::dsl::{Window, Windowed};
/// use kstreams::serde::{Serdes, Serde};
/// let key = Windowed::new("ann".to_string(), 0, 60_000);
/// assert_eq!(key.window, Window { start: 0, end: 60_000 });
/// // On a topic: the inner key's bytes, then start and end as 8-byte big-endian numbers.
/// let bytes = Serdes::windowed(Serdes::string()).serialize(&key).unwrap().unwrap();
/// assert_eq!(bytes.len(), 3 + 16);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// A windowed key.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count().to_stream().to("clicks-per-window");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 3);
    /// let out = driver.create_output_topic::<Windowed<String>, Option<i64>>("clicks-per-window");
    /// assert_eq!(out.read_key_value(), Some((Windowed::new("ann".to_string(), 0, 10), Some(1))));
    /// ```
    pub fn new(key: K, start: i64, end: i64) -> Self {
        Windowed {
            key,
            window: Window { start, end },
        }
    }
}

/// Encodes a windowed key as the inner key's bytes followed by start and end (8 bytes each,
/// big-endian).
struct WindowedSerde<K>(SerdeRef<K>);

impl<K: 'static> Serde<Windowed<K>> for WindowedSerde<K> {
    fn serialize(&self, value: &Windowed<K>) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = self.0.serialize(&value.key)?.unwrap_or_default();
        out.extend_from_slice(&value.window.start.to_be_bytes());
        out.extend_from_slice(&value.window.end.to_be_bytes());
        Ok(Some(out))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let bytes = bytes.ok_or(SerdeError::UnexpectedNull)?;
        if bytes.len() < 16 {
            return Err(SerdeError::WrongLength {
                expected: 16,
                actual: bytes.len(),
            });
        }
        let (key, times) = bytes.split_at(bytes.len() - 16);
        let time = |b: &[u8]| i64::from_be_bytes(b.try_into().expect("8 bytes"));
        Ok(Windowed {
            key: self.0.deserialize(Some(key))?,
            window: Window {
                start: time(&times[..8]),
                end: time(&times[8..]),
            },
        })
    }
}

impl Serdes {
    /// Windowed keys: the inner key's bytes, then window start and end.
    ///
    /// ```
    /// use kstreams::dsl::Windowed;
    /// use kstreams::serde::{Serde, Serdes};
    /// let serde = Serdes::windowed(Serdes::string());
    /// let key = Windowed::new("ann".to_string(), 10, 20);
    /// let bytes = serde.serialize(&key).unwrap().unwrap();
    /// assert_eq!(&bytes[..3], b"ann");
    /// assert_eq!(bytes[3..11], 10i64.to_be_bytes());
    /// assert_eq!(bytes[11..], 20i64.to_be_bytes());
    /// assert_eq!(serde.deserialize(Some(&bytes)).unwrap(), key);
    /// assert!(serde.deserialize(Some(b"short")).is_err()); // no room for the window
    /// ```
    pub fn windowed<K: 'static>(inner: SerdeRef<K>) -> SerdeRef<Windowed<K>> {
        Arc::new(WindowedSerde(inner))
    }
}

impl<K: DefaultSerde> DefaultSerde for Windowed<K> {
    fn default_serde() -> SerdeRef<Self> {
        Serdes::windowed(K::default_serde())
    }
}

/// Fixed-size windows aligned to the epoch: tumbling, or hopping with
/// [`advance_by`](Self::advance_by) (Kafka Streams' `TimeWindows`). A window is
/// `[start, start + size)`; it closes when the aggregation's stream time reaches its end plus
/// the grace period, and later records for it are dropped as late.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
///         .advance_by(Duration::from_millis(5)))
///     .count()
///     .to_stream()
///     .map(|w, count| (format!("{}@{}-{}", w.key, w.window.start, w.window.end), count))
///     .to("clicks-per-window");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("h")).unwrap();
/// driver.create_input_topic::<String, String>("clicks").pipe_input_at("u".into(), "a".into(), 7);
/// let out = driver.create_output_topic::<String, Option<i64>>("clicks-per-window");
/// assert_eq!(out.read_key_values_to_list(), vec![
///     ("u@0-10".to_string(), Some(1)), ("u@5-15".to_string(), Some(1))]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    size: i64,
    advance: i64,
    grace: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` that close as soon as stream time passes their end.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::dsl::TimeWindows;
    /// let minutes = TimeWindows::of_size_with_no_grace(Duration::from_secs(60));
    /// assert_eq!((minutes.size_ms(), minutes.grace_ms()), (60_000, 0));
    /// assert_eq!(minutes.window_starts(125_000), vec![120_000]);
    /// ```
    ///
    /// # Panics
    /// If `size` is zero.
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` that accept out-of-order records until stream time passes
    /// their end plus `grace`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_and_grace(Duration::from_millis(10), Duration::from_millis(5)))
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, count| (format!("{}@{}", w.key, w.window.start), count))
    ///     .to("clicks-per-10ms");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("u".into(), "a".into(), 12);
    /// clicks.pipe_input_at("u".into(), "b".into(), 8); // out of order, within grace: counted
    /// clicks.pipe_input_at("u".into(), "c".into(), 30);
    /// clicks.pipe_input_at("u".into(), "d".into(), 9); // [0,10) closed at 15: late, dropped
    /// let out = driver.create_output_topic::<String, Option<i64>>("clicks-per-10ms");
    /// assert_eq!(out.read_key_values_to_list(), vec![
    ///     ("u@10".to_string(), Some(1)), ("u@0".to_string(), Some(1)), ("u@30".to_string(), Some(1))]);
    /// assert_eq!(driver.metrics().late_records_dropped, 1);
    /// ```
    ///
    /// # Panics
    /// If `size` is zero.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size = millis(size);
        assert!(size > 0, "window size must be positive");
        TimeWindows {
            size,
            advance: size,
            grace: millis(grace),
        }
    }

    /// Hopping windows: a new window every `advance` (overlapping when smaller than the size).
    /// See [`TimeWindows`] for an example.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::dsl::TimeWindows;
    /// // One-minute windows, a new one every 15 s: each record falls in four of them.
    /// let hopping = TimeWindows::of_size_with_no_grace(Duration::from_secs(60))
    ///     .advance_by(Duration::from_secs(15));
    /// assert_eq!(hopping.window_starts(70_000), vec![15_000, 30_000, 45_000, 60_000]);
    /// ```
    ///
    /// # Panics
    /// If `advance` is zero or larger than the size.
    pub fn advance_by(mut self, advance: Duration) -> Self {
        let advance = millis(advance);
        assert!(
            advance > 0 && advance <= self.size,
            "advance must be in (0, size]"
        );
        self.advance = advance;
        self
    }

    /// Window size in milliseconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::dsl::TimeWindows;
    /// let windows = TimeWindows::of_size_with_no_grace(Duration::from_secs(60));
    /// assert_eq!(windows.size_ms(), 60_000);
    /// ```
    pub fn size_ms(&self) -> i64 {
        self.size
    }

    /// Grace period in milliseconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::dsl::TimeWindows;
    /// let minute = Duration::from_secs(60);
    /// let windows = TimeWindows::of_size_and_grace(minute, Duration::from_secs(10));
    /// assert_eq!(windows.grace_ms(), 10_000);
    /// assert_eq!(TimeWindows::of_size_with_no_grace(minute).grace_ms(), 0);
    /// ```
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }

    /// Starts of the windows that contain `timestamp`, oldest first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::dsl::TimeWindows;
    /// let hopping = TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
    ///     .advance_by(Duration::from_millis(5));
    /// assert_eq!(hopping.window_starts(12), vec![5, 10]);
    /// ```
    pub fn window_starts(&self, timestamp: i64) -> Vec<i64> {
        let first = ((timestamp - self.size + self.advance).max(0) / self.advance) * self.advance;
        (0..)
            .map(|i| first + i * self.advance)
            .take_while(|start| *start <= timestamp)
            .collect()
    }
}

/// Windows of a fixed maximum time difference that slide with the records: two records fall
/// in one window when their timestamps differ by at most the time difference (Kafka Streams'
/// `SlidingWindows`). Windows include both ends. Each record updates the windows that contain
/// it and creates the window that ends at it and the one that starts just after it (when not
/// empty).
///
/// As in Kafka Streams, windows never start before 0: a record earlier than the time
/// difference goes into the window `[0, difference]`.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("logins")
///     .group_by_key()
///     .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(10)))
///     .count()
///     .to_stream()
///     .map(|w, count| (format!("{}@{}-{}", w.key, w.window.start, w.window.end), count))
///     .to("logins-within-10ms");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("sl")).unwrap();
/// let logins = driver.create_input_topic::<String, String>("logins");
/// logins.pipe_input_at("ann".into(), "web".into(), 100);
/// logins.pipe_input_at("ann".into(), "app".into(), 105);
/// let out = driver.create_output_topic::<String, Option<i64>>("logins-within-10ms");
/// assert_eq!(out.read_key_values_to_list(), vec![
///     ("ann@90-100".to_string(), Some(1)),
///     ("ann@95-105".to_string(), Some(2)),  // both records
///     ("ann@101-111".to_string(), Some(1)), // the window right after the first record
/// ]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    difference: i64,
    grace: i64,
}

impl SlidingWindows {
    /// Sliding windows with no grace period (see [`SlidingWindows`] for an example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("logins").group_by_key()
    ///     .windowed_by_sliding(windows)
    ///     .count();
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("sl")).unwrap();
    /// let logins = driver.create_input_topic::<String, String>("logins");
    /// logins.pipe_input_at("ann".into(), "web".into(), 100);
    /// logins.pipe_input_at("ann".into(), "web".into(), 200);
    /// logins.pipe_input_at("ann".into(), "app".into(), 95); // its windows ended by 105: late
    /// assert_eq!(driver.metrics().late_records_dropped, 1);
    /// ```
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Sliding windows that accept out-of-order records for `grace` after their end: a
    /// window is closed once stream time passes its end plus `grace`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let windows = SlidingWindows::of_time_difference_and_grace(
    ///     Duration::from_millis(10), Duration::from_millis(100));
    /// builder.stream::<String, String>("logins").group_by_key()
    ///     .windowed_by_sliding(windows)
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, count| (format!("{}-{}", w.window.start, w.window.end), count))
    ///     .to("logins-within-10ms");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("sl")).unwrap();
    /// let logins = driver.create_input_topic::<String, String>("logins");
    /// logins.pipe_input_at("ann".into(), "web".into(), 100);
    /// logins.pipe_input_at("ann".into(), "web".into(), 200);
    /// logins.pipe_input_at("ann".into(), "app".into(), 95); // out of order, within grace
    /// let out = driver.create_output_topic::<String, Option<i64>>("logins-within-10ms");
    /// assert_eq!(out.read_key_values_to_map()["90-100"], Some(2));
    /// assert_eq!(driver.metrics().late_records_dropped, 0);
    /// ```
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows {
            difference: millis(difference),
            grace: millis(grace),
        }
    }
}

/// Sessions: records of a key closer than the inactivity gap belong to one session; a record
/// that bridges two sessions merges them (Kafka Streams' `SessionWindows`). A session's
/// window runs from its first to its last record, both included. When sessions merge, the
/// old ones are forwarded as deletes, then the merged one.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10)))
///     .count()
///     .to_stream()
///     .map(|w, count| (format!("{}@{}-{}", w.key, w.window.start, w.window.end), count))
///     .to("sessions");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("se")).unwrap();
/// let clicks = driver.create_input_topic::<String, String>("clicks");
/// clicks.pipe_input_at("ann".into(), "/".into(), 0);
/// clicks.pipe_input_at("ann".into(), "/cart".into(), 5); // within the gap: same session
/// clicks.pipe_input_at("ann".into(), "/".into(), 30); // a new session
/// let out = driver.create_output_topic::<String, Option<i64>>("sessions");
/// assert_eq!(out.read_key_values_to_list(), vec![
///     ("ann@0-0".to_string(), Some(1)),
///     ("ann@0-0".to_string(), None), // replaced by the grown session
///     ("ann@0-5".to_string(), Some(2)),
///     ("ann@30-30".to_string(), Some(1)),
/// ]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    gap: i64,
    grace: i64,
}

impl SessionWindows {
    /// Sessions with this inactivity gap and no grace period (see [`SessionWindows`] for an
    /// example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by_session(windows)
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, count| (format!("{}-{}", w.window.start, w.window.end), count))
    ///     .to("sessions");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("se")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 0);
    /// clicks.pipe_input_at("ann".into(), "/".into(), 100);
    /// clicks.pipe_input_at("ann".into(), "/cart".into(), 5); // session 0-0 can no longer grow
    /// let out = driver.create_output_topic::<String, Option<i64>>("sessions");
    /// assert_eq!(out.read_key_values_to_list(), vec![
    ///     ("0-0".to_string(), Some(1)), ("100-100".to_string(), Some(1))]);
    /// assert_eq!(driver.metrics().late_records_dropped, 1);
    /// ```
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions with this inactivity gap that accept out-of-order records for `grace`: a
    /// record is dropped as late when the session it would belong to ended before stream
    /// time minus `grace` (Kafka Streams also subtracts the gap).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let windows = SessionWindows::of_inactivity_gap_and_grace(
    ///     Duration::from_millis(10), Duration::from_millis(100));
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by_session(windows)
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, count| (format!("{}-{}", w.window.start, w.window.end), count))
    ///     .to("sessions");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("se")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 0);
    /// clicks.pipe_input_at("ann".into(), "/".into(), 100);
    /// clicks.pipe_input_at("ann".into(), "/cart".into(), 5); // within grace: joins 0-0
    /// let out = driver.create_output_topic::<String, Option<i64>>("sessions");
    /// assert_eq!(out.read_key_values_to_map()["0-5"], Some(2));
    /// assert_eq!(driver.metrics().late_records_dropped, 0);
    /// ```
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap: millis(gap),
            grace: millis(grace),
        }
    }
}

/// When a windowed table emits: Kafka Streams' `Suppressed`. Used with
/// [`KTable::suppress`] on a windowed table.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
///     .count()
///     .suppress(Suppressed::until_window_closes())
///     .to_stream()
///     .map(|w, count| (w.window.start, count))
///     .to("final-counts");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
/// let clicks = driver.create_input_topic::<String, String>("clicks");
/// let out = driver.create_output_topic::<i64, Option<i64>>("final-counts");
/// clicks.pipe_input_at("u".into(), "a".into(), 1);
/// clicks.pipe_input_at("u".into(), "b".into(), 2);
/// assert!(out.is_empty()); // window [0,10) still open
/// clicks.pipe_input_at("u".into(), "c".into(), 10); // stream time 10 closes it
/// assert_eq!(out.read_key_values_to_list(), vec![(0, Some(2))]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    wall_clock_close: Option<i64>,
}

impl Suppressed {
    /// One final result per window, when the window closes (stream time past end + grace;
    /// see [`Suppressed`] for an example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// let windows = TimeWindows::of_size_and_grace(
    ///     Duration::from_millis(10), Duration::from_millis(5));
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(windows)
    ///     .count()
    ///     .suppress(Suppressed::until_window_closes())
    ///     .to_stream()
    ///     .map(|w, count| (w.window.start, count))
    ///     .to("final-counts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// let out = driver.create_output_topic::<i64, Option<i64>>("final-counts");
    /// clicks.pipe_input_at("u".into(), "a".into(), 1);
    /// clicks.pipe_input_at("u".into(), "b".into(), 12);
    /// clicks.pipe_input_at("u".into(), "c".into(), 9); // out of order, within grace
    /// assert!(out.is_empty()); // [0,10) closes at 10 + 5
    /// clicks.pipe_input_at("u".into(), "d".into(), 15);
    /// assert_eq!(out.read_key_values_to_list(), vec![(0, Some(2))]);
    /// ```
    pub fn until_window_closes() -> Self {
        Suppressed {
            wall_clock_close: None,
        }
    }

    /// Also close windows on the wall clock while no records arrive: from the last record
    /// on, stream time is taken to move with the wall clock (checked every `check_interval`),
    /// so the final result of the last windows comes out even when the partition goes idle.
    /// Records that arrive later for a window already emitted this way are dropped as late.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(1)))
    ///     .count()
    ///     .suppress(Suppressed::until_window_closes().with_wall_clock_close(Duration::from_millis(100)))
    ///     .to_stream()
    ///     .to("final-counts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("u".into(), "a".into(), 100);
    /// clicks.pipe_input_at("u".into(), "b".into(), 200);
    /// let out = driver.create_output_topic::<Windowed<String>, Option<i64>>("final-counts");
    /// // No more records: 900 ms of wall-clock time later, stream time counts as 1100.
    /// driver.advance_wall_clock_time(Duration::from_millis(900)).unwrap();
    /// let (window, count) = out.read_key_value().unwrap();
    /// assert_eq!((window.window.start, window.window.end, count), (0, 1000, Some(2)));
    /// ```
    pub fn with_wall_clock_close(mut self, check_interval: Duration) -> Self {
        self.wall_clock_close = Some(millis(check_interval).max(1));
        self
    }
}

/// Adds a windowed store and returns its name.
fn window_store<K: 'static, VA: 'static>(
    graph: &mut GraphBuilder,
    materialized: Materialized<K, VA>,
    size: i64,
    min_retention: i64,
    retain_duplicates: bool,
) -> (String, SerdeRef<K>, SerdeRef<VA>) {
    let name = materialized
        .name
        .clone()
        .unwrap_or_else(|| graph.next_name("KSTREAM-AGGREGATE-STATE-STORE"));
    let retention = materialized
        .retention
        .map_or(min_retention, millis)
        .max(min_retention);
    let mut builder = Stores::window_store_builder_with(
        name.clone(),
        Duration::from_millis(size.max(0) as u64),
        Duration::from_millis(retention.max(0) as u64),
        retain_duplicates,
        materialized.key_serde.clone(),
        materialized.value_serde.clone(),
    );
    if !materialized.logging {
        builder = builder.with_logging_disabled();
    }
    builder.store_type = materialized.store_type;
    builder.caching = materialized.caching;
    graph.add_store(builder.into_def(true));
    (name, materialized.key_serde, materialized.value_serde)
}

/// A grouped stream in time windows (Kafka Streams' `TimeWindowedKStream`), from
/// [`KGroupedStream::windowed_by`]. Its aggregations make a `KTable<Windowed<K>, _>` backed
/// by a window store that keeps windows for at least size plus grace (or the
/// [`Materialized::with_retention`] given).
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let builder = StreamsBuilder::new();
/// let per_minute: TimeWindowedKStream<String, i64> = builder
///     .stream::<String, i64>("payments")
///     .group_by_key()
///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)));
/// // One windowed stream can feed several aggregations, each with its own window store.
/// per_minute.count_with(Materialized::named("payments-per-minute"));
/// per_minute.reduce_with(|total, cents| total + cents, Materialized::named("cents-per-minute"));
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
/// let payments = driver.create_input_topic::<String, i64>("payments");
/// payments.pipe_input_at("ann".into(), 250, 1_000);
/// payments.pipe_input_at("ann".into(), 100, 59_000);
/// let (count, cents) = (driver.window_store::<String, i64>("payments-per-minute").unwrap(),
///     driver.window_store::<String, i64>("cents-per-minute").unwrap());
/// assert_eq!(count.fetch(&"ann".to_string(), 0).unwrap(), Some(2));
/// assert_eq!(cents.fetch(&"ann".to_string(), 0).unwrap(), Some(350));
/// ```
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Aggregates in tumbling or hopping time windows (see [`TimeWindows`] for an example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count().to_stream().to("clicks-per-10ms");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for t in [3, 7, 12] {
    ///     clicks.pipe_input_at("ann".into(), "/".into(), t);
    /// }
    /// let out = driver.create_output_topic::<Windowed<String>, Option<i64>>("clicks-per-10ms");
    /// let latest = out.read_key_values_to_map();
    /// assert_eq!(latest[&Windowed::new("ann".to_string(), 0, 10)], Some(2));
    /// assert_eq!(latest[&Windowed::new("ann".to_string(), 10, 20)], Some(1));
    /// ```
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: self.clone(),
            windows,
        }
    }

    /// Aggregates in sliding windows (see [`SlidingWindows`] for an example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").group_by_key()
    ///     .windowed_by_sliding(windows)
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, count| (format!("{}-{}", w.window.start, w.window.end), count))
    ///     .to("counts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("sl")).unwrap();
    /// let amounts = driver.create_input_topic::<String, i64>("amounts");
    /// amounts.pipe_input_at("k".into(), 1, 100);
    /// amounts.pipe_input_at("k".into(), 1, 108);
    /// let counts = driver.create_output_topic::<String, Option<i64>>("counts");
    /// let latest = counts.read_key_values_to_map();
    /// assert_eq!(latest["98-108"], Some(2)); // the window ending at the second record
    /// assert_eq!(latest["101-111"], Some(1)); // the window just after the first one
    /// ```
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream {
            grouped: self.clone(),
            windows,
        }
    }

    /// Aggregates in session windows (see [`SessionWindows`] for an example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(1800));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by_session(windows)
    ///     .count()
    ///     .to_stream()
    ///     .to("clicks-per-visit");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("se")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 0);
    /// clicks.pipe_input_at("ann".into(), "/cart".into(), 60_000); // a minute later: same visit
    /// let out = driver.create_output_topic::<Windowed<String>, Option<i64>>("clicks-per-visit");
    /// let last = out.read_key_values_to_list().pop();
    /// assert_eq!(last, Some((Windowed::new("ann".to_string(), 0, 60_000), Some(2))));
    /// ```
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: self.clone(),
            windows,
        }
    }
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    fn aggregate_internal<VA: Data>(
        &self,
        adder: Adder<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let w = self.windows;
        let graph_rc = self.grouped.graph.clone();
        let mut graph = graph_rc.borrow_mut();
        let (store, key_serde, value_serde) =
            window_store(&mut graph, materialized, w.size, w.size + w.grace, false);
        let input = self.grouped.partitioned_input(&mut graph, &store);
        let name = graph.next_name("KSTREAM-WINDOWED-AGGREGATE");
        let store_name = store.clone();
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[input],
            vec![store.clone()],
            move || TimeWindowAggregate {
                store_name: store_name.clone(),
                windows: w,
                adder: adder.clone(),
                store: None,
                observed: i64::MIN,
                forward: ForwardCache::new(0),
                id: Vec::new(),
            },
        );
        graph.set_window_close(node, w.grace);
        drop(graph);
        KTable::new(
            graph_rc,
            node,
            Some(store),
            Serdes::windowed(key_serde),
            value_serde,
        )
    }

    /// Counts records per key and window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, c| (format!("{}@{}", w.key, w.window.start), c))
    ///     .to("counts");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("w")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// let counts = driver.create_output_topic::<String, Option<i64>>("counts");
    /// clicks.pipe_input_at("a".into(), "x".into(), 3);
    /// clicks.pipe_input_at("a".into(), "x".into(), 12);
    /// clicks.pipe_input_at("a".into(), "x".into(), 15);
    /// assert_eq!(counts.read_key_values_to_list(), vec![
    ///     ("a@0".into(), Some(1)), ("a@10".into(), Some(1)), ("a@10".into(), Some(2))]);
    /// ```
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::with(
            self.grouped.key_serde.clone(),
            Serdes::i64(),
        ))
    }

    /// Counts into the store `materialized` describes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
    ///     .count_with(Materialized::named("clicks-per-minute").with_retention(Duration::from_secs(3600)));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("c")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 1_000);
    /// clicks.pipe_input_at("ann".into(), "/".into(), 61_000);
    /// let store = driver.window_store::<String, i64>("clicks-per-minute").unwrap();
    /// assert_eq!(store.fetch_range(&"ann".to_string(), 0, 60_000).unwrap(), vec![(0, 1), (60_000, 1)]);
    /// ```
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate_internal(
            Arc::new(|_, _, c: Option<i64>| c.unwrap_or(0) + 1),
            materialized,
        )
    }

    /// Combines the values of each key and window; a window's first value is its first
    /// aggregate.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("prices")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
    ///     .reduce(|high, price| high.max(price))
    ///     .to_stream()
    ///     .map(|w, high| (w.key, high))
    ///     .to("highs");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let prices = driver.create_input_topic::<String, i64>("prices");
    /// prices.pipe_input_at("acme".into(), -3, 1);
    /// prices.pipe_input_at("acme".into(), -7, 2);
    /// let highs = driver.create_output_topic::<String, Option<i64>>("highs");
    /// assert_eq!(highs.read_values_to_list(), vec![Some(-3), Some(-3)]);
    /// ```
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V> {
        let m = Materialized::with(
            self.grouped.key_serde.clone(),
            self.grouped.value_serde.clone(),
        );
        self.reduce_with(reducer, m)
    }

    /// Like [`reduce`](Self::reduce), into the store `materialized` describes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("temperatures").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(3600)))
    ///     .reduce_with(|high, t| high.max(t), Materialized::named("hourly-highs"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let temperatures = driver.create_input_topic::<String, i64>("temperatures");
    /// for (t, celsius) in [(0, 17), (60_000, 21), (120_000, 19)] {
    ///     temperatures.pipe_input_at("oslo".into(), celsius, t);
    /// }
    /// let highs = driver.window_store::<String, i64>("hourly-highs").unwrap();
    /// assert_eq!(highs.fetch(&"oslo".to_string(), 0).unwrap(), Some(21));
    /// ```
    pub fn reduce_with(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        self.aggregate_internal(
            Arc::new(move |_, v, agg: Option<V>| match agg {
                Some(agg) => reducer(agg, v),
                None => v,
            }),
            materialized,
        )
    }

    /// Folds the values of each key and window into an aggregate.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("payments")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(100)))
    ///     .aggregate(|| 0i64, |_customer, cents, total| total + cents)
    ///     .to_stream()
    ///     .map(|w, total| (format!("{}@{}", w.key, w.window.start), total))
    ///     .to("totals");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("a")).unwrap();
    /// let payments = driver.create_input_topic::<String, i64>("payments");
    /// payments.pipe_input_at("ann".into(), 250, 10);
    /// payments.pipe_input_at("ann".into(), 100, 20);
    /// payments.pipe_input_at("ann".into(), 5, 120);
    /// let totals = driver.create_output_topic::<String, Option<i64>>("totals");
    /// let latest = totals.read_key_values_to_map();
    /// assert_eq!((latest["ann@0"], latest["ann@100"]), (Some(350), Some(5)));
    /// ```
    pub fn aggregate<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA> {
        let m = Materialized::with(self.grouped.key_serde.clone(), VA::default_serde());
        self.aggregate_with(initializer, aggregator, m)
    }

    /// Like [`aggregate`](Self::aggregate), into the store `materialized` describes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, serde::Serdes, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("page-views").group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
    ///     .aggregate_with(
    ///         Vec::new,
    ///         |_user, page, mut pages: Vec<String>| {
    ///             pages.push(page);
    ///             pages
    ///         },
    ///         Materialized::with(Serdes::string(), Serdes::json()).with_name("pages-per-minute"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("a")).unwrap();
    /// let views = driver.create_input_topic::<String, String>("page-views");
    /// views.pipe_input_at("ann".into(), "/".into(), 1_000);
    /// views.pipe_input_at("ann".into(), "/cart".into(), 2_000);
    /// let pages = driver.window_store::<String, Vec<String>>("pages-per-minute").unwrap();
    /// let ann = pages.fetch(&"ann".to_string(), 0).unwrap();
    /// assert_eq!(ann, Some(vec!["/".to_string(), "/cart".to_string()]));
    /// ```
    pub fn aggregate_with<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_internal(
            Arc::new(move |k, v, agg: Option<VA>| {
                aggregator(k, v, agg.unwrap_or_else(&initializer))
            }),
            materialized,
        )
    }
}

struct TimeWindowAggregate<K, V, VA> {
    store_name: String,
    windows: TimeWindows,
    adder: Adder<K, V, VA>,
    store: Option<WindowStore<K, ValueAndTimestamp<VA>>>,
    observed: i64,
    /// Updates held back until the next commit (see `forward.rs`).
    forward: ForwardCache<Windowed<K>, VA>,
    /// The id of a window's update: encoded key, then window start.
    id: Vec<u8>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>>
    for TimeWindowAggregate<K, V, VA>
{
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), BoxError> {
        self.store = Some(ctx.timestamped_window_store(&self.store_name)?);
        self.forward = ForwardCache::new(ctx.store_cache_bytes(&self.store_name)?);
        Ok(())
    }

    fn flush(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), BoxError> {
        self.forward.flush(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: Record<K, V>,
    ) -> Result<(), BoxError> {
        let store = self.store.as_ref().ok_or("store not initialized")?;
        self.observed = self.observed.max(r.timestamp);
        let close = self.observed - self.windows.grace;
        let mut accepted = false;
        let mut key = None;
        for start in self.windows.window_starts(r.timestamp) {
            let end = start + self.windows.size;
            if end <= close {
                continue;
            }
            accepted = true;
            let key = match &key {
                Some(key) => key,
                None => key.insert(store.encode_key(&r.key)?),
            };
            let old = store.fetch_encoded(key, start)?;
            let (old_value, old_ts) = match old {
                Some(v) => (Some(v.value), v.timestamp),
                None => (None, i64::MIN),
            };
            let new = (self.adder)(&r.key, r.value.clone(), old_value.clone());
            let timestamp = r.timestamp.max(old_ts);
            store.put_encoded(
                key,
                &ValueAndTimestamp {
                    value: new.clone(),
                    timestamp,
                },
                start,
            )?;
            self.id.clear();
            self.id.extend_from_slice(key);
            self.id.extend_from_slice(&start.to_be_bytes());
            self.forward.forward(
                ctx,
                &self.id,
                || Windowed::new(r.key.clone(), start, end),
                Change {
                    new: Some(new),
                    old: old_value,
                },
                timestamp,
                r.headers.clone(),
            )?;
        }
        if !accepted {
            ctx.record_late();
        }
        Ok(())
    }
}

/// A grouped stream in sliding windows (Kafka Streams' `TimeWindowedKStream` over
/// `SlidingWindows`), from [`KGroupedStream::windowed_by_sliding`]; see [`SlidingWindows`]
/// for an example.
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let windows = SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(10));
/// let builder = StreamsBuilder::new();
/// let sliding: SlidingWindowedKStream<String, i64> = builder
///     .stream::<String, i64>("amounts")
///     .group_by_key()
///     .windowed_by_sliding(windows);
/// // Several aggregations of one windowed stream, each with its own stores.
/// sliding.count().to_stream().map(|w, n| (w.window.end, n)).to("counts");
/// sliding.reduce(|sum, amount| sum + amount).to_stream().map(|w, s| (w.window.end, s)).to("sums");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("sl")).unwrap();
/// let amounts = driver.create_input_topic::<String, i64>("amounts");
/// amounts.pipe_input_at("k".into(), 3, 100);
/// amounts.pipe_input_at("k".into(), 4, 105);
/// let (counts, sums) = (driver.create_output_topic::<i64, Option<i64>>("counts"),
///     driver.create_output_topic::<i64, Option<i64>>("sums"));
/// assert_eq!(counts.read_key_values_to_map()[&105], Some(2)); // the window ending at 105
/// assert_eq!(sums.read_key_values_to_map()[&105], Some(7));
/// ```
pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
}

impl<K: Data, V: Data> SlidingWindowedKStream<K, V> {
    fn aggregate_internal<VA: Data>(
        &self,
        fold: WindowFold<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let w = self.windows;
        let graph_rc = self.grouped.graph.clone();
        let mut graph = graph_rc.borrow_mut();
        let retention = 2 * w.difference + w.grace + 1;
        let (store, key_serde, value_serde) =
            window_store(&mut graph, materialized, w.difference, retention, false);
        // The records of the last 2 × difference + grace, to recompute the windows they touch.
        let records = format!("{store}-records");
        let records_store = Stores::window_store_builder_with(
            records.clone(),
            Duration::from_millis(1),
            Duration::from_millis(retention as u64),
            true,
            key_serde.clone(),
            self.grouped.value_serde.clone(),
        );
        graph.add_store(records_store.into_def(false));
        let input = self.grouped.partitioned_input(&mut graph, &store);
        let name = graph.next_name("KSTREAM-SLIDINGWINDOWED-AGGREGATE");
        let (store_name, records_name) = (store.clone(), records.clone());
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[input],
            vec![store.clone(), records],
            move || SlidingWindowAggregate {
                store_name: store_name.clone(),
                records_name: records_name.clone(),
                windows: w,
                fold: fold.clone(),
                store: None,
                records: None,
                observed: i64::MIN,
            },
        );
        // Sliding windows include their end: closed once stream time > end + grace.
        graph.set_window_close(node, w.grace + 1);
        drop(graph);
        KTable::new(
            graph_rc,
            node,
            Some(store),
            Serdes::windowed(key_serde),
            value_serde,
        )
    }

    /// Counts records per key and sliding window (see [`SlidingWindows`] for an example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("logins").group_by_key()
    ///     .windowed_by_sliding(windows)
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, count| (w.window.end, count))
    ///     .to("logins-in-last-10ms");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("sl")).unwrap();
    /// let logins = driver.create_input_topic::<String, String>("logins");
    /// for t in [100, 105, 112] {
    ///     logins.pipe_input_at("ann".into(), "web".into(), t);
    /// }
    /// let counts = driver.create_output_topic::<i64, Option<i64>>("logins-in-last-10ms");
    /// let by_end = counts.read_key_values_to_map();
    /// assert_eq!((by_end[&100], by_end[&105], by_end[&112]), (Some(1), Some(2), Some(2)));
    /// ```
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::with(
            self.grouped.key_serde.clone(),
            Serdes::i64(),
        ))
    }

    /// Counts into the store `materialized` describes (a name to query it by, RocksDB,
    /// retention).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("logins")
    ///     .group_by_key()
    ///     .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("recent-logins"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let logins = driver.create_input_topic::<String, String>("logins");
    /// logins.pipe_input_at("ann".into(), "ok".into(), 100);
    /// logins.pipe_input_at("ann".into(), "ok".into(), 105);
    /// let store = driver.window_store::<String, i64>("recent-logins").unwrap();
    /// // The window [95, 105] holds both logins.
    /// assert_eq!(store.fetch(&"ann".to_string(), 95).unwrap(), Some(2));
    /// ```
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate_with(|| 0, |_, _, c| c + 1, materialized)
    }

    /// Combines the values of each key and window in timestamp order: the first value is
    /// the window's start, `reducer(aggregate, value)` adds each further one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("amounts")
    ///     .group_by_key()
    ///     .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(10)))
    ///     .reduce(|sum, amount| sum + amount)
    ///     .to_stream()
    ///     .map(|w, sum| (w.window.end, sum))
    ///     .to("sums");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let amounts = driver.create_input_topic::<String, i64>("amounts");
    /// amounts.pipe_input_at("k".into(), 3, 100);
    /// amounts.pipe_input_at("k".into(), 4, 105);
    /// let sums = driver.create_output_topic::<i64, Option<i64>>("sums");
    /// // The window ending at 105 holds both records.
    /// assert_eq!(sums.read_key_values_to_map()[&105], Some(7));
    /// ```
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V> {
        let m = Materialized::with(
            self.grouped.key_serde.clone(),
            self.grouped.value_serde.clone(),
        );
        self.aggregate_internal(
            Arc::new(move |_, values: Vec<V>| values.into_iter().reduce(&reducer)),
            m,
        )
    }

    /// Folds the values of each key and window into an aggregate, in timestamp order. Each
    /// affected window is recomputed from the buffered records, so no subtractor is needed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("readings")
    ///     .group_by_key()
    ///     .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(10)))
    ///     .aggregate(|| i64::MIN, |_sensor, reading, high| high.max(reading))
    ///     .to_stream()
    ///     .map(|w, high| (w.window.end, high))
    ///     .to("highs");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("a")).unwrap();
    /// let readings = driver.create_input_topic::<String, i64>("readings");
    /// readings.pipe_input_at("s".into(), -4, 100);
    /// readings.pipe_input_at("s".into(), -9, 105);
    /// let highs = driver.create_output_topic::<i64, Option<i64>>("highs");
    /// assert_eq!(highs.read_key_values_to_map()[&105], Some(-4));
    /// ```
    pub fn aggregate<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA> {
        let m = Materialized::with(self.grouped.key_serde.clone(), VA::default_serde());
        self.aggregate_with(initializer, aggregator, m)
    }

    /// Like [`aggregate`](Self::aggregate), into the store `materialized` describes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SlidingWindows::of_time_difference_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("amounts").group_by_key()
    ///     .windowed_by_sliding(windows)
    ///     .aggregate_with(|| 0i64, |_, amount, sum| sum + amount, Materialized::named("sums"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("a")).unwrap();
    /// let amounts = driver.create_input_topic::<String, i64>("amounts");
    /// amounts.pipe_input_at("k".into(), 3, 100);
    /// amounts.pipe_input_at("k".into(), 4, 105);
    /// let sums = driver.window_store::<String, i64>("sums").unwrap();
    /// let k = "k".to_string();
    /// assert_eq!(sums.fetch(&k, 90).unwrap(), Some(3)); // [90, 100]
    /// assert_eq!(sums.fetch(&k, 95).unwrap(), Some(7)); // [95, 105]
    /// ```
    pub fn aggregate_with<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_internal(
            Arc::new(move |key, values: Vec<V>| {
                Some(
                    values
                        .into_iter()
                        .fold(initializer(), |agg, v| aggregator(key, v, agg)),
                )
            }),
            materialized,
        )
    }
}

/// Computes a window's aggregate from its values in timestamp order (never empty); `None`
/// only when there is nothing to aggregate.
type WindowFold<K, V, VA> = Arc<dyn Fn(&K, Vec<V>) -> Option<VA> + Send + Sync>;

/// Sliding-window aggregation. The windows are those of Kafka Streams: for each record, the
/// window that ends at it and the window that starts just after it, when not empty. Each
/// record updates every window that contains it and creates its own; the affected windows
/// are recomputed from the buffered records, so the aggregator needs no subtractor. A
/// record earlier than the time difference (whose window would start before 0) goes into
/// the window `[0, difference]`, as in Kafka Streams.
struct SlidingWindowAggregate<K, V, VA> {
    store_name: String,
    records_name: String,
    windows: SlidingWindows,
    fold: WindowFold<K, V, VA>,
    store: Option<WindowStore<K, ValueAndTimestamp<VA>>>,
    records: Option<WindowStore<K, V>>,
    observed: i64,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>>
    for SlidingWindowAggregate<K, V, VA>
{
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), BoxError> {
        self.store = Some(ctx.timestamped_window_store(&self.store_name)?);
        self.records = Some(ctx.window_store(&self.records_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: Record<K, V>,
    ) -> Result<(), BoxError> {
        let (store, records) = match (&self.store, &self.records) {
            (Some(s), Some(r)) => (s, r),
            _ => return Err("stores not initialized".into()),
        };
        let diff = self.windows.difference;
        let t = r.timestamp;
        self.observed = self.observed.max(t);
        let close = self.observed - self.windows.grace;
        if t + diff < close {
            ctx.record_late();
            return Ok(());
        }
        records.put(&r.key, &r.value, t)?;
        let buffered = records.fetch_range(&r.key, t - 2 * diff - 1, t + 2 * diff + 1)?;
        let mut starts: Vec<i64> = buffered
            .iter()
            .flat_map(|(ts, _)| [ts - diff, ts + 1])
            .filter(|s| (t - diff..=t + 1).contains(s))
            .map(|s| s.max(0))
            .collect();
        starts.sort_unstable();
        starts.dedup();
        for start in starts {
            let end = start + diff;
            if end < close {
                continue;
            }
            let members: Vec<&(i64, V)> = buffered
                .iter()
                .filter(|(ts, _)| (start..=end).contains(ts))
                .collect();
            let Some(last) = members.iter().map(|(ts, _)| *ts).max() else {
                continue;
            };
            let old = store.fetch(&r.key, start)?;
            if old.is_some() && !(start..=end).contains(&t) {
                continue;
            }
            let values = members.iter().map(|(_, v)| v.clone()).collect();
            let Some(agg) = (self.fold)(&r.key, values) else {
                continue;
            };
            store.put(
                &r.key,
                &ValueAndTimestamp {
                    value: agg.clone(),
                    timestamp: last,
                },
                start,
            )?;
            ctx.forward(Record {
                key: Windowed::new(r.key.clone(), start, end),
                value: Change {
                    new: Some(agg),
                    old: old.map(|o| o.value),
                },
                timestamp: last,
                headers: r.headers.clone(),
            })?;
        }
        Ok(())
    }
}

/// A grouped stream in session windows (Kafka Streams' `SessionWindowedKStream`), from
/// [`KGroupedStream::windowed_by_session`]; see [`SessionWindows`] for an example. Its
/// aggregations keep sessions in a session store
/// ([`TestDriver::session_store`](crate::testing::TestDriver::session_store)).
///
/// ```
/// use std::time::Duration;
/// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
/// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
/// let builder = StreamsBuilder::new();
/// let sessions: SessionWindowedKStream<String, String> = builder
///     .stream::<String, String>("clicks")
///     .group_by_key()
///     .windowed_by_session(windows);
/// sessions.count().to_stream().to("clicks-per-session");
/// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("se")).unwrap();
/// let clicks = driver.create_input_topic::<String, String>("clicks");
/// for t in [0, 4, 30] {
///     clicks.pipe_input_at("ann".into(), "/".into(), t);
/// }
/// let out = driver.create_output_topic::<Windowed<String>, Option<i64>>("clicks-per-session");
/// let latest = out.read_key_values_to_map();
/// let session = |start, end| Windowed::new("ann".to_string(), start, end);
/// assert_eq!(latest[&session(0, 0)], None); // grown into 0-4
/// assert_eq!(latest[&session(0, 4)], Some(2));
/// assert_eq!(latest[&session(30, 30)], Some(1));
/// ```
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Counts records per key and session (see [`SessionWindows`] for an example).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by_session(windows)
    ///     .count()
    ///     .to_stream()
    ///     .map(|w, count| (format!("{}-{}", w.window.start, w.window.end), count))
    ///     .to("sessions");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("se")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for t in [0, 20, 10] { // 10 is within the gap of both sessions: merges them
    ///     clicks.pipe_input_at("ann".into(), "/".into(), t);
    /// }
    /// let out = driver.create_output_topic::<String, Option<i64>>("sessions");
    /// assert_eq!(out.read_key_values_to_list(), vec![
    ///     ("0-0".to_string(), Some(1)), ("20-20".to_string(), Some(1)),
    ///     ("0-0".to_string(), None), ("20-20".to_string(), None), ("0-20".to_string(), Some(3))]);
    /// ```
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::with(
            self.grouped.key_serde.clone(),
            Serdes::i64(),
        ))
    }

    /// Counts into the store `materialized` describes (a name to query it by, RocksDB,
    /// retention).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10)))
    ///     .count_with(Materialized::named("visits"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("v")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// for t in [0, 4, 30] {
    ///     clicks.pipe_input_at("ann".into(), "/".into(), t);
    /// }
    /// let visits = driver.session_store::<String, i64>("visits").unwrap();
    /// let sessions: Vec<_> = visits.fetch(&"ann".into()).unwrap().iter()
    ///     .map(|s| (s.start, s.end, s.value)).collect();
    /// assert_eq!(sessions, vec![(0, 4, 2), (30, 30, 1)]);
    /// ```
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate_with(|| 0, |_, _, c| c + 1, |_, a, b| a + b, materialized)
    }

    /// Combines the values of each session: a session's first value is its start,
    /// `reducer(aggregate, value)` adds each further one, and two sessions that a record
    /// joins are combined with `reducer` too.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, i64>("watch-seconds")
    ///     .group_by_key()
    ///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10)))
    ///     .reduce(|total, seconds| total + seconds)
    ///     .to_stream()
    ///     .map(|w, total| (w.key, total))
    ///     .to("session-totals");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("r")).unwrap();
    /// let watched = driver.create_input_topic::<String, i64>("watch-seconds");
    /// watched.pipe_input_at("ann".into(), 30, 0);
    /// watched.pipe_input_at("ann".into(), 12, 4);
    /// let totals = driver.create_output_topic::<String, Option<i64>>("session-totals");
    /// assert_eq!(totals.read_values_to_list().pop(), Some(Some(42)));
    /// ```
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V> {
        let m = Materialized::with(
            self.grouped.key_serde.clone(),
            self.grouped.value_serde.clone(),
        );
        let reducer = Arc::new(reducer);
        let merge = reducer.clone();
        self.aggregate_internal(
            Arc::new(|| None),
            Arc::new(move |_, v, agg: Option<V>| match agg {
                Some(agg) => reducer(agg, v),
                None => v,
            }),
            Arc::new(move |_, a: Option<V>, b| match a {
                Some(a) => merge(a, b),
                None => b,
            }),
            m,
        )
    }

    /// Folds the values of each session; `merger` combines two sessions that a record joins.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("page-views")
    ///     .group_by_key()
    ///     .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10)))
    ///     .aggregate(
    ///         String::new,
    ///         |_user, page, pages| if pages.is_empty() { page } else { format!("{pages} {page}") },
    ///         |_user, a, b| if a.is_empty() { b } else { format!("{a} {b}") },
    ///     )
    ///     .to_stream()
    ///     .map(|w, pages| (format!("{}-{}", w.window.start, w.window.end), pages))
    ///     .to("sessions");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("a")).unwrap();
    /// let views = driver.create_input_topic::<String, String>("page-views");
    /// views.pipe_input_at("ann".into(), "/a".into(), 0);
    /// views.pipe_input_at("ann".into(), "/b".into(), 20);
    /// views.pipe_input_at("ann".into(), "/c".into(), 10); // bridges both sessions: merges them
    /// let sessions = driver.create_output_topic::<String, Option<String>>("sessions");
    /// let latest = sessions.read_key_values_to_map();
    /// assert_eq!(latest["0-20"], Some("/a /b /c".to_string()));
    /// ```
    pub fn aggregate<VA: Data + DefaultSerde>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA> {
        let m = Materialized::with(self.grouped.key_serde.clone(), VA::default_serde());
        self.aggregate_with(initializer, aggregator, merger, m)
    }

    /// Like [`aggregate`](Self::aggregate), into the store `materialized` describes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, i64>("watch-seconds").group_by_key()
    ///     .windowed_by_session(windows)
    ///     .aggregate_with(|| 0i64, |_, seconds, total| total + seconds, |_, a, b| a + b,
    ///         Materialized::named("watch-time"));
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("a")).unwrap();
    /// let watched = driver.create_input_topic::<String, i64>("watch-seconds");
    /// for (t, seconds) in [(0, 30), (4, 12), (100, 5)] {
    ///     watched.pipe_input_at("ann".into(), seconds, t);
    /// }
    /// let store = driver.session_store::<String, i64>("watch-time").unwrap();
    /// let sessions: Vec<(i64, i64, i64)> = store.fetch(&"ann".to_string()).unwrap()
    ///     .into_iter().map(|s| (s.start, s.end, s.value)).collect();
    /// assert_eq!(sessions, vec![(0, 4, 42), (100, 100, 5)]);
    /// ```
    pub fn aggregate_with<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let initializer = Arc::new(initializer);
        let init = initializer.clone();
        self.aggregate_internal(
            Arc::new(move || Some(init())),
            Arc::new(move |k, v, agg: Option<VA>| {
                aggregator(k, v, agg.unwrap_or_else(|| initializer()))
            }),
            Arc::new(move |k, a: Option<VA>, b| match a {
                Some(a) => merger(k, a, b),
                None => b,
            }),
            materialized,
        )
    }

    fn aggregate_internal<VA: Data>(
        &self,
        initializer: Arc<dyn Fn() -> Option<VA> + Send + Sync>,
        aggregator: Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>,
        merger: Arc<dyn Fn(&K, Option<VA>, VA) -> VA + Send + Sync>,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let w = self.windows;
        let graph_rc = self.grouped.graph.clone();
        let mut graph = graph_rc.borrow_mut();
        let name = materialized
            .name
            .clone()
            .unwrap_or_else(|| graph.next_name("KSTREAM-AGGREGATE-STATE-STORE"));
        let retention = materialized
            .retention
            .map_or(0, millis)
            .max(w.gap + w.grace);
        let mut builder = Stores::session_store_builder_with(
            name.clone(),
            Duration::from_millis(retention as u64),
            materialized.key_serde.clone(),
            materialized.value_serde.clone(),
        );
        if !materialized.logging {
            builder = builder.with_logging_disabled();
        }
        builder.store_type = materialized.store_type;
        builder.caching = materialized.caching;
        graph.add_store(builder.into_def(true));
        let input = self.grouped.partitioned_input(&mut graph, &name);
        let node_name = graph.next_name("KSTREAM-SESSION-WINDOWED-AGGREGATE");
        let store_name = name.clone();
        let node = graph.add_processor(
            node_name,
            NodeKind::Processor,
            &[input],
            vec![name.clone()],
            move || SessionAggregate {
                store_name: store_name.clone(),
                windows: w,
                retention,
                initializer: initializer.clone(),
                aggregator: aggregator.clone(),
                merger: merger.clone(),
                store: None,
                observed: i64::MIN,
            },
        );
        // A session can still grow until stream time passes end + gap + grace.
        graph.set_window_close(node, w.gap + w.grace + 1);
        drop(graph);
        KTable::new(
            graph_rc,
            node,
            Some(name),
            Serdes::windowed(materialized.key_serde),
            materialized.value_serde,
        )
    }
}

/// Session-window aggregation. The aggregate is optional until the first value (`None` for
/// `reduce`, which starts from a session's first value); a record merges every session
/// within the gap of it and extends the merged session.
#[allow(clippy::type_complexity)]
struct SessionAggregate<K, V, VA> {
    store_name: String,
    windows: SessionWindows,
    retention: i64,
    initializer: Arc<dyn Fn() -> Option<VA> + Send + Sync>,
    aggregator: Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>,
    merger: Arc<dyn Fn(&K, Option<VA>, VA) -> VA + Send + Sync>,
    store: Option<SessionStore<K, ValueAndTimestamp<VA>>>,
    observed: i64,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>>
    for SessionAggregate<K, V, VA>
{
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), BoxError> {
        self.store = Some(ctx.timestamped_session_store(&self.store_name)?);
        let interval = self.windows.gap.max(1000) as u64;
        ctx.schedule(Duration::from_millis(interval), PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: Record<K, V>,
    ) -> Result<(), BoxError> {
        let store = self.store.as_ref().ok_or("store not initialized")?;
        let (t, gap) = (r.timestamp, self.windows.gap);
        self.observed = self.observed.max(t);
        // As in Kafka Streams, a session may still grow until stream time passes its end
        // plus the gap plus the grace period.
        let close = self.observed - self.windows.grace - gap;
        let sessions = store.find_sessions(&r.key, t - gap, t + gap)?;
        let (mut start, mut end) = (t, t);
        let mut agg = (self.initializer)();
        let mut timestamp = t;
        for s in &sessions {
            agg = Some((self.merger)(&r.key, agg, s.value.value.clone()));
            start = start.min(s.start);
            end = end.max(s.end);
            timestamp = timestamp.max(s.value.timestamp);
        }
        if end < close {
            ctx.record_late();
            return Ok(());
        }
        if (start, end) != (t, t) {
            for s in sessions {
                store.remove(&r.key, s.start, s.end)?;
                ctx.forward(Record {
                    key: Windowed::new(r.key.clone(), s.start, s.end),
                    value: Change {
                        new: None,
                        old: Some(s.value.value),
                    },
                    timestamp: r.timestamp,
                    headers: r.headers.clone(),
                })?;
            }
        }
        let agg = (self.aggregator)(&r.key, r.value, agg);
        store.put(
            &r.key,
            start,
            end,
            &ValueAndTimestamp {
                value: agg.clone(),
                timestamp,
            },
        )?;
        ctx.forward(Record {
            key: Windowed::new(r.key, start, end),
            value: Change {
                new: Some(agg),
                old: None,
            },
            timestamp,
            headers: r.headers,
        })
    }

    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        p: Punctuation,
    ) -> Result<(), BoxError> {
        if let Some(store) = &self.store {
            store.remove_ended_before(p.timestamp - self.retention)?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> KTable<Windowed<K>, V> {
    /// Holds back updates of each window and emits only its final result, once the window
    /// has closed (Kafka Streams' `suppress(untilWindowCloses(...))`). See [`Suppressed`] for
    /// examples.
    ///
    /// The buffer is a changelogged store, so pending results survive a restart. It is not
    /// bounded: it holds the latest change of every window that has not closed yet.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kstreams::{config::StreamsConfig, dsl::*, testing::TestDriver};
    /// let windows = SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_millis(10));
    /// let builder = StreamsBuilder::new();
    /// builder.stream::<String, String>("clicks").group_by_key()
    ///     .windowed_by_session(windows)
    ///     .count()
    ///     .suppress(Suppressed::until_window_closes())
    ///     .to_stream()
    ///     .map(|w, count| (format!("{}-{}", w.window.start, w.window.end), count))
    ///     .to("final-sessions");
    /// let driver = TestDriver::new(&builder.build().unwrap(), StreamsConfig::new("s")).unwrap();
    /// let clicks = driver.create_input_topic::<String, String>("clicks");
    /// let out = driver.create_output_topic::<String, Option<i64>>("final-sessions");
    /// clicks.pipe_input_at("ann".into(), "/".into(), 0);
    /// clicks.pipe_input_at("ann".into(), "/cart".into(), 5);
    /// assert!(out.is_empty()); // the session may still grow
    /// clicks.pipe_input_at("ann".into(), "/".into(), 30); // closes 0-5 (end + gap passed)
    /// // Only the final session: neither the intermediate 0-0 nor its deletion.
    /// assert_eq!(out.read_key_values_to_list(), vec![("0-5".to_string(), Some(2))]);
    /// ```
    pub fn suppress(&self, suppressed: Suppressed) -> KTable<Windowed<K>, V> {
        let mut graph = self.graph.borrow_mut();
        let close_after = graph.window_close_of(self.node).unwrap_or(0);
        let name = graph.next_name("KTABLE-SUPPRESS");
        let buffer = format!("{name}-buffer");
        graph.add_store(
            Stores::key_value_store_builder_with(buffer.clone(), Serdes::bytes(), Serdes::bytes())
                .into_def(false),
        );
        let (key_serde, value_serde) = (self.key_serde.clone(), self.value_serde.clone());
        let change_serde: SerdeRef<Change<V>> = Arc::new(ChangeSerde(value_serde.clone()));
        let buffer_name = buffer.clone();
        let key_codec = key_serde.clone();
        let node = graph.add_processor(
            name,
            NodeKind::Processor,
            &[self.node],
            vec![buffer],
            move || SuppressProcessor {
                buffer_name: buffer_name.clone(),
                close_after,
                wall_clock_check: suppressed.wall_clock_close,
                key_serde: key_codec.clone(),
                change_serde: change_serde.clone(),
                buffer: None,
                emitted_until: i64::MIN,
                last_stream_time: -1,
                wall_at_last_advance: 0,
                close_times: None,
            },
        );
        if let Some(close) = graph.window_close_of(self.node) {
            graph.set_window_close(node, close);
        }
        drop(graph);
        KTable::new(self.graph.clone(), node, None, key_serde, value_serde)
    }
}

/// Buffers windowed changes by window end; emits those whose window closed.
struct SuppressProcessor<K, V> {
    buffer_name: String,
    close_after: i64,
    wall_clock_check: Option<i64>,
    key_serde: SerdeRef<Windowed<K>>,
    change_serde: SerdeRef<Change<V>>,
    buffer: Option<KeyValueStore<Vec<u8>, Vec<u8>>>,
    /// Windows closing at or before this were emitted by the wall-clock close.
    emitted_until: i64,
    last_stream_time: i64,
    wall_at_last_advance: i64,
    /// The close times of the buffered windows, so eviction reads the buffer only once the
    /// earliest has come (a range read per record cost more than the aggregation). Built
    /// from the buffer on first use: processing starts after the buffer's restore, which
    /// runs after `init`.
    close_times: Option<BTreeSet<i64>>,
}

impl<K: Data, V: Data> SuppressProcessor<K, V> {
    /// Emits every buffered window that is closed at `now`, oldest window end first.
    fn evict(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        now: i64,
    ) -> Result<(), BoxError> {
        let buffer = self.buffer.as_ref().ok_or("buffer not initialized")?;
        let close_times = match &mut self.close_times {
            Some(times) => times,
            None => {
                let times = buffer
                    .all()?
                    .into_iter()
                    .filter(|(key, _)| key.len() >= 8)
                    .map(|(key, _)| from_ordered(&key))
                    .collect();
                self.close_times.insert(times)
            }
        };
        if close_times.first().is_none_or(|first| *first > now) {
            return Ok(());
        }
        // Buffer keys start with the close time, so closed windows come first.
        let upper = ordered(now.saturating_add(1)).to_vec();
        for (key, value) in buffer.range(&Vec::new(), &upper)? {
            buffer.delete(&key)?;
            let windowed = self.key_serde.deserialize(Some(&key[8..]))?;
            if value.len() < 8 {
                return Err("corrupt suppression buffer entry".into());
            }
            let timestamp = i64::from_be_bytes(value[..8].try_into()?);
            let change = self.change_serde.deserialize(Some(&value[8..]))?;
            // Final results drop tombstones: a window that was merged away or deleted
            // before it closed was never emitted, so there is nothing to retract.
            if change.new.is_none() {
                continue;
            }
            ctx.forward(Record::new(windowed, change, timestamp))?;
        }
        // Only once every closed window is out: after a failure they are looked for again.
        if let Some(times) = &mut self.close_times {
            *times = times.split_off(&now.saturating_add(1));
        }
        Ok(())
    }
}

impl<K: Data, V: Data> Processor<Windowed<K>, Change<V>, Windowed<K>, Change<V>>
    for SuppressProcessor<K, V>
{
    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
    ) -> Result<(), BoxError> {
        self.buffer = Some(ctx.key_value_store(&self.buffer_name)?);
        self.wall_at_last_advance = ctx.wall_clock_time();
        if let Some(interval) = self.wall_clock_check {
            ctx.schedule(
                Duration::from_millis(interval as u64),
                PunctuationType::WallClockTime,
            );
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        r: Record<Windowed<K>, Change<V>>,
    ) -> Result<(), BoxError> {
        let timestamp = r.timestamp;
        let close_at = r.key.window.end.saturating_add(self.close_after);
        if close_at <= self.emitted_until {
            // Already emitted as final by the wall-clock close.
            ctx.record_late();
            return Ok(());
        }
        let buffer = self.buffer.as_ref().ok_or("buffer not initialized")?;
        let windowed = self.key_serde.serialize(&r.key)?.unwrap_or_default();
        let mut key = ordered(close_at).to_vec();
        key.extend_from_slice(&windowed);
        // Keep the oldest `old` value of the window, so the emitted change spans all updates.
        let old = match buffer.get(&key)? {
            Some(prev) if prev.len() >= 8 => self.change_serde.deserialize(Some(&prev[8..]))?.old,
            _ => r.value.old.clone(),
        };
        let change = Change {
            new: r.value.new,
            old,
        };
        let mut value = r.timestamp.to_be_bytes().to_vec();
        value.extend_from_slice(&self.change_serde.serialize(&change)?.unwrap_or_default());
        buffer.put(&key, &value)?;
        if let Some(times) = &mut self.close_times {
            times.insert(close_at);
        }
        // As in Kafka Streams, suppression keeps its own stream time: the largest timestamp
        // it has received. An aggregation forwards its held updates least recently updated
        // first, so each window's last update is buffered before a later window's update
        // moves this time past the window's close (the task's stream time is already there).
        if timestamp > self.last_stream_time {
            self.last_stream_time = timestamp;
            self.wall_at_last_advance = ctx.wall_clock_time();
        }
        self.evict(ctx, self.last_stream_time)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        p: Punctuation,
    ) -> Result<(), BoxError> {
        if self.last_stream_time < 0 {
            return Ok(());
        }
        let idle = (p.timestamp - self.wall_at_last_advance).max(0);
        let effective = self.last_stream_time.saturating_add(idle);
        if effective > self.last_stream_time {
            self.emitted_until = self.emitted_until.max(effective);
            self.evict(ctx, effective)?;
        }
        Ok(())
    }
}
