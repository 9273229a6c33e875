//! What the server counts, for operators: served as Prometheus text on
//! `GET /metrics` (rendered by `metrics-exporter-prometheus`, not by hand).
//!
//! The recorder is the process's: installed by the first server started in a
//! process, shared by any later one (tests run many in one process). Every
//! metric is registered once and its handle kept, so counting on the hot path
//! is an atomic add, never a lookup.

use std::sync::OnceLock;

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Handles to every metric the server keeps.
pub struct Metrics {
    pub connections: Gauge,
    pub connections_total: Counter,
    pub auth_failures: Counter,
    pub requests: Counter,
    pub messages: Counter,
    pub deliveries: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub slow_consumer_closes: Counter,
    pub rate_limited: Counter,
    pub repairs: Counter,
    pub rooms_loaded: Gauge,
    pub journal_waiting: Gauge,
    pub commit_seconds: Histogram,
    pub deliver_seconds: Histogram,
    pub redis_up: Gauge,
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics (installing the recorder first if nobody has).
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| {
        handle();
        Metrics::register()
    })
}

/// What renders the metrics, or `None` if another recorder was installed in
/// this process first (then `/metrics` says so).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let seconds = |from: f64| (0..14).map(|i| from * 2f64.powi(i)).collect::<Vec<_>>();
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("hearth_commit_seconds".into()), &seconds(0.000_05))
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("hearth_deliver_seconds".into()), &seconds(0.000_5))
                })
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// The metrics as Prometheus text.
pub fn render() -> Option<String> {
    let handle = handle()?;
    handle.run_upkeep();
    Some(handle.render())
}

impl Metrics {
    fn register() -> Metrics {
        describe_gauge!("hearth_connections", "WebSocket connections open now");
        describe_counter!("hearth_connections_total", "WebSocket connections accepted and authenticated");
        describe_counter!("hearth_auth_failures_total", "connections closed for a missing, bad or expired token");
        describe_counter!("hearth_requests_total", "requests received");
        describe_counter!("hearth_messages_total", "messages stored (send requests that got their seq)");
        describe_counter!("hearth_deliveries_total", "timeline events queued to a receiving connection");
        describe_counter!("hearth_bytes_in_total", Unit::Bytes, "WebSocket message bytes received");
        describe_counter!("hearth_bytes_out_total", Unit::Bytes, "WebSocket message bytes written");
        describe_counter!("hearth_slow_consumer_closes_total", "connections closed because they did not read (4006)");
        describe_counter!("hearth_rate_limited_total", "requests refused with rate_limited");
        describe_counter!("hearth_repairs_total", "gaps in delivery filled from history (or told as truncated)");
        describe_gauge!("hearth_rooms_loaded", "rooms in memory on this node");
        describe_gauge!("hearth_journal_waiting", "writes waiting for the store when the last commit began");
        describe_histogram!(
            "hearth_commit_seconds",
            Unit::Seconds,
            "time to commit one group to the store (fsync included)"
        );
        describe_histogram!(
            "hearth_deliver_seconds",
            Unit::Seconds,
            "from an event's timestamp to its delivery on this node (publish to deliver)"
        );
        describe_gauge!("hearth_redis_up", "cluster mode: 1 while the Redis subscription connection is up");
        Metrics {
            connections: gauge!("hearth_connections"),
            connections_total: counter!("hearth_connections_total"),
            auth_failures: counter!("hearth_auth_failures_total"),
            requests: counter!("hearth_requests_total"),
            messages: counter!("hearth_messages_total"),
            deliveries: counter!("hearth_deliveries_total"),
            bytes_in: counter!("hearth_bytes_in_total"),
            bytes_out: counter!("hearth_bytes_out_total"),
            slow_consumer_closes: counter!("hearth_slow_consumer_closes_total"),
            rate_limited: counter!("hearth_rate_limited_total"),
            repairs: counter!("hearth_repairs_total"),
            rooms_loaded: gauge!("hearth_rooms_loaded"),
            journal_waiting: gauge!("hearth_journal_waiting"),
            commit_seconds: histogram!("hearth_commit_seconds"),
            deliver_seconds: histogram!("hearth_deliver_seconds"),
            redis_up: gauge!("hearth_redis_up"),
        }
    }
}
