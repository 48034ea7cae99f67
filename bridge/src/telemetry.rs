//! Logs (tracing) and metrics (Prometheus text exposition).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::{
    error::Error,
    settings::{LogFormat, LogSettings},
};

/// Installs the global tracing subscriber. `RUST_LOG`, when set, wins over `log.level`.
/// Calling it twice (tests start many apps in one process) keeps the first subscriber.
pub fn init_tracing(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match settings.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    // An error only means a subscriber is already installed, which is fine.
    drop(result);
}

/// The bridge's metrics, one registry per running application.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by method, route pattern and status.
    pub http_requests: IntCounterVec,
    /// HTTP latency by method and route pattern.
    pub http_duration: HistogramVec,
    /// Database pool connections, `state` = open | idle.
    pub db_pool: IntGaugeVec,
    /// 1 while the broker is connected, 0 otherwise (absent when none is configured).
    pub broker_connected: IntGauge,
    /// The delivery engine.
    pub delivery: DeliveryMetrics,
    /// Inbox POSTs by outcome: accepted, duplicate, ignored, rejected_signature, malformed,
    /// blocked, rate_limited, error.
    pub inbox_activities: IntCounterVec,
    /// Inbox requests refused for a spent budget, by `scope`: host, actor, key_fetch.
    pub inbox_rate_limited: IntCounterVec,
    /// Keys held by each inbox budget after its last pruning, by `scope`.
    pub inbox_rate_limit_keys: IntGaugeVec,
    /// Follows answered with Reject for a follow cap, by `cap`: per_user, per_host.
    pub inbox_follows_over_cap: IntCounterVec,
}

/// Metrics of the delivery engine. No metric is labelled by remote host: hosts are chosen by
/// remote servers, and one series per host would grow without bound.
#[derive(Clone)]
pub struct DeliveryMetrics {
    /// Deliveries by `outcome`: delivered, refused, gone, retry, expired, dropped, blocked,
    /// deferred.
    pub outcomes: IntCounterVec,
    /// Failed attempts by `reason`: timeout, transport, status_408, status_429, status_5xx.
    pub failures: IntCounterVec,
    /// Time of one delivery request (signing included) by `result`: 2xx, 3xx, 4xx, 5xx, error.
    pub request_duration: HistogramVec,
    /// Deliveries being prepared or sent by this process.
    pub in_flight: IntGauge,
    /// Pending deliveries in the whole queue, refreshed periodically.
    pub queue_depth: IntGauge,
    /// Outcomes written per transaction.
    pub outcome_batch: Histogram,
}

impl DeliveryMetrics {
    fn new(registry: &Registry) -> Result<Self, Error> {
        let outcomes = IntCounterVec::new(
            Opts::new("deliveries_total", "Delivery attempts by outcome"),
            &["outcome"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "delivery_failures_total",
                "Delivery attempts that will be retried, by reason",
            ),
            &["reason"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "delivery_request_duration_seconds",
                "Time of one signed delivery request",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["result"],
        )?;
        let in_flight = IntGauge::new("deliveries_in_flight", "Deliveries being sent")?;
        let queue_depth = IntGauge::new("delivery_queue_depth", "Pending deliveries")?;
        let outcome_batch = Histogram::with_opts(
            HistogramOpts::new(
                "delivery_outcome_batch_size",
                "Delivery outcomes written per transaction",
            )
            .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0]),
        )?;
        registry.register(Box::new(outcomes.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(outcome_batch.clone()))?;
        Ok(Self {
            outcomes,
            failures,
            request_duration,
            in_flight,
            queue_depth,
            outcome_batch,
        })
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, Error> {
        let registry = Registry::new_custom(Some("fedibridge".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests handled"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ],
            ),
            &["method", "route"],
        )?;
        let db_pool = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database pool connections"),
            &["state"],
        )?;
        let broker_connected =
            IntGauge::new("broker_connected", "1 while the broker is connected")?;
        let inbox_activities = IntCounterVec::new(
            Opts::new("inbox_activities_total", "Inbox POSTs by outcome"),
            &["outcome"],
        )?;
        let inbox_rate_limited = IntCounterVec::new(
            Opts::new(
                "inbox_rate_limited_total",
                "Inbox requests refused with 429, by spent budget",
            ),
            &["scope"],
        )?;
        let inbox_rate_limit_keys = IntGaugeVec::new(
            Opts::new(
                "inbox_rate_limit_keys",
                "Hosts or actors an inbox budget holds state for",
            ),
            &["scope"],
        )?;
        let inbox_follows_over_cap = IntCounterVec::new(
            Opts::new(
                "inbox_follows_over_cap_total",
                "Follows rejected for a per-host follow cap",
            ),
            &["cap"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Version of the running fedibridge"),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(db_pool.clone()))?;
        registry.register(Box::new(broker_connected.clone()))?;
        registry.register(Box::new(inbox_activities.clone()))?;
        registry.register(Box::new(inbox_rate_limited.clone()))?;
        registry.register(Box::new(inbox_rate_limit_keys.clone()))?;
        registry.register(Box::new(inbox_follows_over_cap.clone()))?;
        registry.register(Box::new(build_info))?;
        let delivery = DeliveryMetrics::new(&registry)?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            db_pool,
            broker_connected,
            delivery,
            inbox_activities,
            inbox_rate_limited,
            inbox_rate_limit_keys,
            inbox_follows_over_cap,
        })
    }

    /// Lets other modules add their own metrics to this registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
