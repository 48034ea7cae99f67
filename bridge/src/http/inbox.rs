//! `POST /inbox` and `POST /users/{uid}/inbox`: the body is read here, bounded, and handed
//! to [`crate::inbox::receive`]; this module only turns its answer into a status.
//!
//! [`check_headers`] and [`request_headers`] are public so that the fuzz targets run the
//! same pre-body checks as a real request.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header, header::HeaderMap},
    post, web,
};
use bytes::BytesMut;
use futures_util::StreamExt as _;
use serde_json::json;

use super::AppState;
use crate::{
    db::is_unique_violation,
    error::Error,
    inbox::{self, InboundRequest, InboxRejection, InboxTarget},
};

/// `Retry-After` of the 503 answered when concurrent requests collided: the collision is
/// over as soon as the other request committed.
const COLLISION_RETRY_AFTER_SECS: u32 = 5;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(shared_inbox).service(user_inbox);
}

#[post("/inbox")]
async fn shared_inbox(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle(&state, &req, payload, InboxTarget::Shared).await
}

#[post("/users/{uid}/inbox")]
async fn user_inbox(
    state: web::Data<AppState>,
    req: HttpRequest,
    uid: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    handle(&state, &req, payload, InboxTarget::User(uid.into_inner())).await
}

async fn handle(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    target: InboxTarget,
) -> HttpResponse {
    let max = state.settings.server.max_body_bytes;
    let deadline = state.settings.inbox.body_timeout();
    let result = async {
        check_headers(req.headers(), max)?;
        // A total deadline, not one per read: a client dripping a byte at a time would pass
        // any per-read timeout while holding the connection.
        let body = tokio::time::timeout(deadline, read_body(payload, max))
            .await
            .map_err(|_| InboxRejection::BodyTimeout(deadline.as_secs()))??;
        let request = InboundRequest {
            path_and_query: req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| req.path().to_owned()),
            headers: request_headers(req.headers()),
            body,
            target,
        };
        inbox::receive(state, request).await
    }
    .await;
    respond(state, result)
}

/// Every header whose value is text, as the signature check reads them (others cannot
/// have been signed by a conforming signer and are dropped).
pub fn request_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// Refuses compressed bodies (their decompressed size cannot be bounded before reading),
/// non-ActivityStreams media types and announced oversized bodies, before reading any.
pub fn check_headers(headers: &HeaderMap, max: usize) -> Result<(), InboxRejection> {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let encoding = String::from_utf8_lossy(encoding.as_bytes()).into_owned();
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            return Err(InboxRejection::Compressed(encoding));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    // Mastodon reads any of these; servers in the wild send all three.
    if !matches!(
        essence.as_str(),
        "application/activity+json" | "application/ld+json" | "application/json"
    ) {
        return Err(InboxRejection::UnsupportedMediaType(content_type));
    }
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|len| len > max as u64) {
        return Err(InboxRejection::TooLarge(max));
    }
    Ok(())
}

/// Reads the body, stopping as soon as it exceeds `max`, whatever was announced.
async fn read_body(mut payload: web::Payload, max: usize) -> Result<bytes::Bytes, InboxRejection> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| InboxRejection::Malformed(format!("body: {e}")))?;
        if body.len() + chunk.len() > max {
            return Err(InboxRejection::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn respond(state: &AppState, result: Result<inbox::Outcome, Error>) -> HttpResponse {
    let (outcome, response) = match result {
        Ok(outcome) => (outcome.as_str(), HttpResponse::Accepted().finish()),
        Err(Error::Signature(rejection)) => {
            tracing::info!(reason = %rejection, "inbox: signature refused");
            (
                "rejected_signature",
                refusal(rejection.http_status(), &rejection.to_string()),
            )
        }
        Err(Error::Inbox(rejection)) => {
            // A flood must not turn into a flood of log lines: 429s are counted, not logged.
            if matches!(rejection, InboxRejection::RateLimited(_)) {
                tracing::debug!(reason = %rejection, "inbox: rate limited");
            } else {
                tracing::info!(reason = %rejection, "inbox: activity refused");
            }
            let outcome = match rejection {
                InboxRejection::KeyOwnerMismatch { .. } | InboxRejection::KeyUnavailable(_) => {
                    "rejected_signature"
                }
                InboxRejection::Blocked(_) => "blocked",
                InboxRejection::RateLimited(_) => "rate_limited",
                _ => "malformed",
            };
            let mut response = refusal(rejection.http_status(), &rejection.to_string());
            if let InboxRejection::RateLimited(limited) = rejection {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(limited.retry_after_secs()),
                );
            }
            (outcome, response)
        }
        // Two requests creating the same row at once, twice in a row: the request was valid
        // and will go through when sent again, so it is a 503, not a 500.
        Err(Error::Database(error)) if is_unique_violation(&error) => {
            tracing::warn!(%error, "inbox: concurrent requests collided; asking to retry");
            let mut response = refusal(503, "concurrent request; retry later");
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(COLLISION_RETRY_AFTER_SECS),
            );
            ("error", response)
        }
        // Storage down (503, retry later) or a bug (500): never a 2xx.
        Err(error) => ("error", error.error_response()),
    };
    state
        .metrics
        .inbox_activities
        .with_label_values(&[outcome])
        .inc();
    response
}

fn refusal(status: u16, reason: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!({ "error": reason }))
}
