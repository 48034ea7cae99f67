//! The HTTP surface: routes, shared state and the middleware around them.

mod actors;
pub mod api;
pub mod auth;
mod authorize_interaction;
mod error;
mod events;
mod health;
pub mod inbox;
mod metrics;
mod negotiate;
mod nodeinfo;
mod objects;
mod pages;
mod settings_page;
mod webfinger;

use std::{sync::Arc, time::Instant};

use actix_web::{
    HttpMessage,
    dev::{Service, ServiceRequest},
    web,
};
use platform_adapter::connection::BrokerStatus;
use tokio_util::sync::CancellationToken;

use tokio::sync::Notify;

use crate::{
    db::Database,
    federation::{FederationClient, fetch::FetchFailures, urls::Urls},
    inbox::{InboxRateLimits, InboxWriter},
    settings::Settings,
    telemetry::Metrics,
};

/// Everything a request handler may need, built once per application.
#[derive(Clone)]
pub struct AppState {
    /// Validated configuration.
    pub settings: Arc<Settings>,
    /// Storage.
    pub db: Database,
    /// The URL scheme.
    pub urls: Urls,
    /// The only door to remote servers.
    pub client: FederationClient,
    /// Remote fetches that failed recently, shared by every inbox request.
    pub fetch_failures: Arc<FetchFailures>,
    /// The inbox's budgets per remote host and actor, shared by every inbox request.
    pub inbox_limits: Arc<InboxRateLimits>,
    /// Applies inbox activities' effects, batching their transactions.
    pub inbox_writer: InboxWriter,
    /// Notified when deliveries were queued, so the delivery role starts at once.
    pub delivery_wakeup: Arc<Notify>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Broker reachability, when a broker is configured.
    pub broker: Option<BrokerStatus>,
    /// Cancelled when the process starts shutting down.
    pub shutdown: CancellationToken,
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .configure(metrics::configure)
        .configure(webfinger::configure)
        .configure(nodeinfo::configure)
        .configure(actors::configure)
        .configure(objects::configure)
        .configure(events::configure)
        .configure(api::configure)
        .configure(settings_page::configure)
        .configure(authorize_interaction::configure)
        .configure(inbox::configure);
}

/// Records request counts and latency by route pattern (never by raw path, which an
/// attacker controls and which would blow up the number of series).
pub fn record_metrics<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: Service<
            ServiceRequest,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
{
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = req.method().as_str().to_owned();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    req.extensions_mut().insert(started);
    let fut = srv.call(req);
    async move {
        let response = fut.await?;
        if let Some(metrics) = metrics {
            let status = response.status().as_u16().to_string();
            metrics
                .http_requests
                .with_label_values(&[method.as_str(), route.as_str(), status.as_str()])
                .inc();
            metrics
                .http_duration
                .with_label_values(&[method.as_str(), route.as_str()])
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(response)
    }
}
