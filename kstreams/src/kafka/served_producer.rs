//! A producer whose delivery reports are served by a thread that sleeps until librdkafka
//! has something for it.
//!
//! rdkafka 0.39's `ThreadedProducer` (and the `FutureProducer` built on it) serves its event
//! queue with `BaseProducer::poll(100 ms)` in a loop. That call returns only when its deadline
//! has passed, and turns the time left into whole milliseconds for librdkafka, so the last
//! fraction of a millisecond of every call is a non-blocking poll repeated until the deadline:
//! a producer that has nothing to do spins about 1% of a core. The same loop makes
//! `BaseProducer::flush` wait in steps of 100 ms.
//!
//! [`ServedProducer`] asks librdkafka to call back when an event is queued
//! (`rd_kafka_queue_cb_event_enable`); the callback unparks the serving thread, which takes
//! every queued event with non-blocking polls and parks again. Idle, the thread wakes once a
//! second; a delivery report is served as soon as it arrives. [`ServedProducer::flush`] waits
//! on librdkafka's own message count (`rd_kafka_flush`), which the serving thread brings to
//! zero.

use std::ffi::c_void;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// How long the serving thread sleeps when librdkafka does not wake it.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// The producer's main queue (where delivery reports and errors arrive), owned.
struct Queue(*mut rdsys::rd_kafka_queue_t);

// SAFETY: librdkafka queue handles are thread-safe; the pointer is only read.
unsafe impl Send for Queue {}
unsafe impl Sync for Queue {}

impl Queue {
    fn len(&self) -> usize {
        // SAFETY: the handle is valid until `Drop` destroys it.
        unsafe { rdsys::rd_kafka_queue_length(self.0) }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_queue_get_main` and is destroyed once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0) }
    }
}

/// Called by librdkafka (on its own threads, with the queue locked) whenever an event is
/// queued: wakes the serving thread.
unsafe extern "C" fn wake(_rk: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Thread` boxed in `ServedProducer::new`, which outlives the
    // callback's registration (`Drop` unregisters it before freeing the box).
    let thread = unsafe { &*(opaque as *const Thread) };
    thread.unpark();
}

/// A [`BaseProducer`] with a thread that serves its delivery reports (the context's
/// [`delivery`](ProducerContext::delivery) calls) as they arrive, without polling on a timer.
///
/// It stands in for rdkafka's `ThreadedProducer`: every stream thread produces through one,
/// and services around a streams application can build their own producers on it (the shop's
/// `demo-app/src/producer.rs` builds a future per record on it). Other [`BaseProducer`]
/// methods (`send`, the transaction calls) are reached through `Deref`; use
/// [`flush`](Self::flush) rather than the `Producer` trait's.
///
/// ```no_run
/// use rdkafka::config::ClientConfig;
/// use rdkafka::producer::{BaseRecord, DefaultProducerContext};
/// use kstreams::kafka::ServedProducer;
/// use std::time::Duration;
/// let mut config = ClientConfig::new();
/// config.set("bootstrap.servers", "127.0.0.1:9092");
/// let producer = ServedProducer::new(&config, DefaultProducerContext).unwrap();
/// producer.send(BaseRecord::<str, str>::to("events").key("k").payload("v")).unwrap();
/// producer.flush(Duration::from_secs(10)).unwrap();
/// ```
pub struct ServedProducer<C: ProducerContext + 'static> {
    /// Declared before the producer: a queue handle must be destroyed before its client.
    queue: Arc<Queue>,
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The serving thread's handle, given to librdkafka as the callback's opaque.
    waker: *mut Thread,
}

// SAFETY: `waker` is only dereferenced by the callback and freed in `Drop`; the other fields
// are `Send + Sync` (a `ProducerContext` is `Send + Sync`, so is a `BaseProducer` of it).
unsafe impl<C: ProducerContext + 'static> Send for ServedProducer<C> {}
unsafe impl<C: ProducerContext + 'static> Sync for ServedProducer<C> {}

impl<C: ProducerContext + 'static> ServedProducer<C> {
    /// Creates the producer for `config` and starts the thread that serves it.
    pub fn new(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        Self::with_idle_wake(config, context, IDLE_WAKE)
    }

    /// [`new`](Self::new) with the serving thread waking on its own every `idle_wake`.
    fn with_idle_wake(config: &ClientConfig, context: C, idle_wake: Duration) -> KafkaResult<Self> {
        let producer = Arc::new(BaseProducer::from_config_and_context(config, context)?);
        // SAFETY: the client is alive; the returned handle is owned by `Queue`.
        let queue = Arc::new(Queue(unsafe {
            rdsys::rd_kafka_queue_get_main(producer.client().native_ptr())
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let producer = producer.clone();
            let queue = queue.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("producer delivery reports".into())
                .spawn(move || loop {
                    while queue.len() > 0 {
                        // A zero timeout takes at most one event and never blocks.
                        producer.poll(Duration::ZERO);
                    }
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    std::thread::park_timeout(idle_wake);
                })
                .map_err(|e| {
                    KafkaError::ClientCreation(format!("cannot start the delivery thread: {e}"))
                })?
        };
        let waker = Box::into_raw(Box::new(thread.thread().clone()));
        // SAFETY: `waker` stays valid until `Drop` unregisters the callback.
        unsafe { rdsys::rd_kafka_queue_cb_event_enable(queue.0, Some(wake), waker.cast()) };
        // An event queued before the callback was registered is served now.
        thread.thread().unpark();
        Ok(ServedProducer {
            queue,
            producer,
            stop,
            thread: Some(thread),
            waker,
        })
    }

    /// Waits until librdkafka holds no record of this producer (each acknowledged or
    /// failed, and its delivery report served), up to `timeout`. Queued records are sent
    /// at once, whatever `linger.ms` says.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Rounded up, so that the last wait of a deadline is never a zero-timeout spin.
            let ms = left.as_micros().div_ceil(1000).min(100) as i32;
            // SAFETY: the client is alive for as long as `self`.
            let err = unsafe { rdsys::rd_kafka_flush(self.producer.client().native_ptr(), ms) };
            match RDKafkaErrorCode::from(err) {
                RDKafkaErrorCode::NoError => return Ok(()),
                RDKafkaErrorCode::OperationTimedOut if !left.is_zero() => continue,
                code => return Err(KafkaError::Flush(code)),
            }
        }
    }
}

impl<C: ProducerContext + 'static> Deref for ServedProducer<C> {
    type Target = BaseProducer<C>;

    fn deref(&self) -> &BaseProducer<C> {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> Drop for ServedProducer<C> {
    fn drop(&mut self) {
        // SAFETY: unregistering takes the queue's lock, so no callback runs after it returns
        // and `waker` can be freed.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.0, None, std::ptr::null_mut());
            drop(Box::from_raw(self.waker));
        }
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use rdkafka::client::ClientContext;
    use rdkafka::message::DeliveryResult;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::BaseRecord;

    use super::*;

    #[derive(Default)]
    struct Counting {
        delivered: AtomicUsize,
    }

    impl ClientContext for Counting {}

    impl ProducerContext for Counting {
        type DeliveryOpaque = ();

        fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
            if result.is_ok() {
                self.delivered.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn send(producer: &ServedProducer<Counting>, n: usize) {
        for i in 0..n {
            let key = i.to_string();
            producer
                .send(BaseRecord::to("t").key(&key).payload("v"))
                .expect("queued");
        }
    }

    #[test]
    fn delivery_reports_are_served_when_they_arrive_and_flush_waits_for_them() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 1, 1).expect("topic");
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", cluster.bootstrap_servers());
        config.set("linger.ms", "0");
        // The thread's own wake-up never comes within the test: only librdkafka's callback
        // can make it serve the reports.
        let producer =
            ServedProducer::with_idle_wake(&config, Counting::default(), Duration::from_secs(3600))
                .expect("producer");
        send(&producer, 10);
        let deadline = Instant::now() + Duration::from_secs(30);
        while producer.context().delivered.load(Ordering::SeqCst) < 10 && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(producer.context().delivered.load(Ordering::SeqCst), 10);

        // With a linger far beyond the test, only flush sends the records; it returns once
        // every report has been served.
        config.set("linger.ms", "200000");
        let lingering =
            ServedProducer::with_idle_wake(&config, Counting::default(), Duration::from_secs(3600))
                .expect("producer");
        send(&lingering, 1000);
        lingering.flush(Duration::from_secs(30)).expect("flushed");
        assert_eq!(lingering.context().delivered.load(Ordering::SeqCst), 1000);
    }
}
