//! The API's OpenAPI 3.1 document, kept in the repository and served as is.

use actix_web::HttpResponse;

/// The document (`bridge/openapi.yaml`).
pub const DOCUMENT: &str = include_str!("../../../openapi.yaml");

pub(super) async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml; charset=utf-8")
        .body(DOCUMENT)
}
