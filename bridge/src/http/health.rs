//! Liveness and readiness probes.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use super::AppState;

/// Longest a readiness probe waits for the database.
const DB_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// Alive: the process answers HTTP. Says nothing about its dependencies.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready: the database answers, the broker (when configured) is connected, and the process
/// is not shutting down. Load balancers stop routing here when this fails.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = match tokio::time::timeout(DB_PROBE_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {}s", DB_PROBE_TIMEOUT.as_secs())),
    };
    let broker = match &state.broker {
        None => Ok("not configured"),
        Some(status) if status.is_connected() => Ok("ok"),
        Some(_) => Err("disconnected".to_owned()),
    };
    let shutting_down = state.shutdown.is_cancelled();
    let ready = database.is_ok() && broker.is_ok() && !shutting_down;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "database": database.map_or_else(|e| format!("error: {e}"), |()| "ok".to_owned()),
            "broker": broker.unwrap_or_else(|e| if e == "disconnected" { "disconnected" } else { "error" }),
            "shutting_down": shutting_down,
        }
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
