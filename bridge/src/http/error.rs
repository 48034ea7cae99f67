//! How internal errors look to HTTP clients.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::json;

use crate::error::Error;

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        // A dependency that is down is the client's cue to retry, and the only honest
        // answer an inbox can give before its effect is durable.
        if self.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        tracing::error!(error = %self, %status, "request failed");
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", "30"));
        }
        // Internal details stay in the log.
        response.json(json!({ "error": status.canonical_reason().unwrap_or("error") }))
    }
}
