//! Content negotiation: ActivityStreams JSON for servers, HTML for browsers, same URL.

use actix_web::{HttpRequest, HttpResponse, http::header};
use serde::Serialize;

use crate::federation::protocol::{ACTIVITY_JSON, note::Tombstone};

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// ActivityStreams JSON.
    ActivityJson,
    /// A web page.
    Html,
}

/// Reads `Accept`: HTML only when a browser asks for it and not for ActivityStreams.
pub fn wants(req: &HttpRequest) -> Wants {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let activity =
        accept.contains("application/activity+json") || accept.contains("application/ld+json");
    if !activity && accept.contains("text/html") {
        Wants::Html
    } else {
        Wants::ActivityJson
    }
}

/// 200 with an ActivityStreams document.
pub fn activity_json<T: Serialize>(document: &T) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ACTIVITY_JSON)
        .insert_header((header::VARY, "Accept"))
        .insert_header((header::CACHE_CONTROL, "max-age=60, public"))
        .json(document)
}

/// 410 with a Tombstone: the object existed and was taken back.
pub fn gone(tombstone: &Tombstone) -> HttpResponse {
    HttpResponse::Gone()
        .content_type(ACTIVITY_JSON)
        .insert_header((header::VARY, "Accept"))
        .json(tombstone)
}

/// 404 with a small JSON body.
pub fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header((header::VARY, "Accept"))
        .json(serde_json::json!({ "error": "Not Found" }))
}

/// 200 with an HTML page.
pub fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::VARY, "Accept"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; form-action 'self'",
        ))
        .body(body)
}
