//! Prometheus scrape endpoint.

use actix_web::{HttpResponse, get, web};

use super::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(metrics);
}

/// Current metrics in the Prometheus text format.
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (open, idle) = state.db.pool_state();
    state
        .metrics
        .db_pool
        .with_label_values(&["open"])
        .set(i64::from(open));
    state
        .metrics
        .db_pool
        .with_label_values(&["idle"])
        .set(i64::from(idle));
    if let Some(broker) = &state.broker {
        state
            .metrics
            .broker_connected
            .set(i64::from(broker.is_connected()));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
