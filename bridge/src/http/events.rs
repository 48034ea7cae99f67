//! The platform contract over HTTP, for platforms without a broker (and the embedded
//! default): POST events to the same sink the consumer uses, read outgoing messages from a
//! feed with a cursor.

use actix_web::{HttpResponse, get, post, web};
use platform_adapter::{Handled, decode_inbound};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, auth::PlatformAuth};
use crate::{db::outbox, error::Error, ingest::Ingest};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(ingest).service(feed);
}

/// Largest feed page.
const MAX_FEED_PAGE: i64 = 1000;

/// One platform event, the same envelope as on the broker. 200 once its effect is stored
/// (or recognised as a duplicate); 400 with the reason for a bad event; 503 when storage is
/// down (send it again later).
#[post("/api/v1/events")]
async fn ingest(
    state: web::Data<AppState>,
    _auth: PlatformAuth,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    let event = match decode_inbound(&body) {
        Ok(event) => event,
        Err(error) => {
            return Ok(HttpResponse::BadRequest().json(json!({
                "error": error.kind.as_str(),
                "reason": error.reason,
            })));
        }
    };
    let sink = Ingest::new(
        state.db.clone(),
        state.urls.clone(),
        state.settings.clone(),
        state.delivery_wakeup.clone(),
    )
    .with_fetcher(state.client.clone(), state.fetch_failures.clone());
    let id = event.id.as_str().to_owned();
    let result = match sink.apply(event).await {
        Ok(handled) => handled,
        Err(error) if error.is_transient() => return Err(error),
        Err(error) => {
            return Ok(HttpResponse::UnprocessableEntity().json(json!({
                "error": "not_applicable",
                "reason": error.to_string(),
            })));
        }
    };
    let result = match result {
        Handled::Applied => "applied",
        Handled::Duplicate => "duplicate",
        Handled::Ignored => "ignored",
    };
    Ok(HttpResponse::Ok().json(json!({ "id": id, "result": result })))
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// Messages for the platform after the cursor `after`, oldest first. The platform stores
/// `next` and asks again from there; message ids stay the same if it asks twice.
#[get("/api/v1/feed")]
async fn feed(
    state: web::Data<AppState>,
    _auth: PlatformAuth,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, Error> {
    let after = query.after.unwrap_or(0).max(0);
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_FEED_PAGE);
    let page = state
        .db
        .run(move |c| outbox::after(c, after, limit))
        .await?;
    let next = page.last().map_or(after, |m| m.id);
    let messages: Vec<Value> = page
        .iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap_or(Value::Null))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "messages": messages, "next": next })))
}
