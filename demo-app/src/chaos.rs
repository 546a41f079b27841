//! Chaos: faults injected into running services, to watch the shop recover.
//!
//! Every consumer loop ([`crate::consumer::run`]) asks its service's [`Faults`] before each
//! record: a stopped service waits (its lag grows, nothing is consumed); added latency delays
//! each record; a drop rate makes that fraction of deliveries fail as if the broker's
//! response was lost, so the record is fetched again (it is not committed). The dashboard
//! and `shop chaos` switch faults on through [`Chaos`]; every fault ends by itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::app::Service;

/// The faults of one service.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
    /// Records that waited out a stop, were delayed, were dropped (so tests and the
    /// dashboard can see that a fault had its effect).
    held: AtomicU64,
    delayed: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct FaultState {
    stopped_until: Option<Instant>,
    latency: Duration,
    drop_rate: f64,
    degraded_until: Option<Instant>,
}

/// What a consumer loop does with the next record.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Handle it.
    Deliver,
    /// Lost in transit: do not handle it, fetch it again.
    Drop,
}

impl Faults {
    /// Stops the service for `duration`.
    pub fn stop_for(&self, duration: Duration) {
        self.state.lock().expect("faults").stopped_until = Some(Instant::now() + duration);
    }

    /// Adds `latency` per record and drops `drop_rate` of deliveries, for `duration`.
    pub fn degrade_for(&self, latency: Duration, drop_rate: f64, duration: Duration) {
        let mut state = self.state.lock().expect("faults");
        state.latency = latency;
        state.drop_rate = drop_rate.clamp(0.0, 1.0);
        state.degraded_until = Some(Instant::now() + duration);
    }

    /// Ends every fault now.
    pub fn clear(&self) {
        *self.state.lock().expect("faults") = FaultState::default();
    }

    /// Whether the service is stopped now.
    pub fn is_stopped(&self) -> bool {
        let state = self.state.lock().expect("faults");
        state.stopped_until.is_some_and(|t| t > Instant::now())
    }

    /// Whether latency or drops are injected now (consumers then take one record at a
    /// time, so the added latency shows as slower progress, not a long stall per batch).
    pub fn is_degraded(&self) -> bool {
        let state = self.state.lock().expect("faults");
        state.degraded_until.is_some_and(|t| t > Instant::now())
    }

    /// The faults in effect, for display.
    pub fn describe(&self) -> Option<String> {
        let state = self.state.lock().expect("faults").clone();
        let now = Instant::now();
        let mut parts = Vec::new();
        if let Some(until) = state.stopped_until.filter(|t| *t > now) {
            parts.push(format!("stopped for {}s more", (until - now).as_secs() + 1));
        }
        if let Some(until) = state.degraded_until.filter(|t| *t > now) {
            parts.push(format!(
                "+{} ms latency, {:.0}% dropped for {}s more",
                state.latency.as_millis(),
                state.drop_rate * 100.0,
                (until - now).as_secs() + 1
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Records that waited for a stop to end, so far.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Records delayed by added latency, so far.
    pub fn delayed(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }

    /// Deliveries dropped, so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Called before each record: waits while stopped, adds latency, decides drops.
    pub async fn before_record(&self) -> Delivery {
        let mut held = false;
        loop {
            let stopped = {
                let state = self.state.lock().expect("faults");
                state
                    .stopped_until
                    .map(|t| t.saturating_duration_since(Instant::now()))
            };
            match stopped {
                Some(wait) if !wait.is_zero() => {
                    held = true;
                    tokio::time::sleep(wait.min(Duration::from_millis(200))).await
                }
                _ => break,
            }
        }
        if held {
            self.held.fetch_add(1, Ordering::Relaxed);
        }
        let (latency, drop_rate) = {
            let mut state = self.state.lock().expect("faults");
            if state.degraded_until.is_some_and(|t| t <= Instant::now()) {
                state.latency = Duration::ZERO;
                state.drop_rate = 0.0;
                state.degraded_until = None;
            }
            (state.latency, state.drop_rate)
        };
        if !latency.is_zero() {
            self.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(latency).await;
        }
        if drop_rate > 0.0 && self.roll() < drop_rate {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            Delivery::Drop
        } else {
            Delivery::Deliver
        }
    }

    fn roll(&self) -> f64 {
        rand::random()
    }
}

/// A chaos scenario, as the dashboard and the CLI name them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scenario {
    /// Stop a service for some seconds.
    Stop {
        /// The service (`payment`, ...).
        service: String,
        /// How long.
        seconds: u64,
    },
    /// Slow a service's broker traffic and drop part of it.
    Degrade {
        /// The service.
        service: String,
        /// Added latency per record.
        latency_ms: u64,
        /// Fraction of deliveries dropped, 0..=1.
        drop_rate: f64,
        /// How long.
        seconds: u64,
    },
    /// Kill a streams app instance and start it again (its state restores from the
    /// changelogs).
    RestartStreams {
        /// The application id (`shop-order-analytics`, ...).
        application_id: String,
    },
    /// End every fault.
    Clear,
}

/// The faults of every service of a process.
#[derive(Debug, Clone, Default)]
pub struct Chaos {
    faults: Arc<BTreeMap<Service, Arc<Faults>>>,
}

impl Chaos {
    /// Faults for every service (all off).
    pub fn new() -> Self {
        Chaos {
            faults: Arc::new(
                Service::ALL
                    .into_iter()
                    .map(|s| (s, Arc::new(Faults::default())))
                    .collect(),
            ),
        }
    }

    /// The faults of `service`.
    pub fn faults(&self, service: Service) -> Arc<Faults> {
        self.faults
            .get(&service)
            .cloned()
            .expect("every service has faults")
    }

    /// The service called `name`.
    pub fn service(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Ends every fault.
    pub fn clear(&self) {
        for faults in self.faults.values() {
            faults.clear();
        }
    }

    /// The faults in effect, by service.
    pub fn active(&self) -> BTreeMap<&'static str, String> {
        self.faults
            .iter()
            .filter_map(|(service, faults)| faults.describe().map(|d| (service.name(), d)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopped_service_waits_until_the_stop_ends() {
        let faults = Faults::default();
        faults.stop_for(Duration::from_millis(500));
        assert!(faults.is_stopped());
        let started = Instant::now();
        assert_eq!(faults.before_record().await, Delivery::Deliver);
        assert!(
            started.elapsed() >= Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
        assert!(!faults.is_stopped());
    }

    #[tokio::test]
    async fn a_drop_rate_drops_about_that_fraction() {
        let faults = Faults::default();
        faults.degrade_for(Duration::ZERO, 0.3, Duration::from_secs(60));
        let mut dropped = 0;
        for _ in 0..2000 {
            if faults.before_record().await == Delivery::Drop {
                dropped += 1;
            }
        }
        assert!((450..750).contains(&dropped), "{dropped} of 2000");
        faults.clear();
        assert_eq!(faults.before_record().await, Delivery::Deliver);
        assert_eq!(faults.describe(), None);
    }
}
