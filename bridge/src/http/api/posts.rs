//! Per-post control: keep a post off the fediverse, or take it back.

use actix_web::{HttpResponse, http::StatusCode, web};
use serde_json::json;

use super::{problem, unknown_user, with_user};
use crate::{
    db::{AnyConnection, posts::FederationState, users::User},
    error::Error,
    http::{AppState, auth},
    opt_in::{
        controls::{self, Refused},
        lifecycle::Context,
    },
};

type Control = fn(
    &mut AnyConnection,
    &User,
    &str,
    Context<'_>,
) -> Result<Result<FederationState, Refused>, Error>;

async fn apply(
    state: &AppState,
    (id, post_id): (String, String),
    control: Control,
) -> Result<HttpResponse, Error> {
    let outcome = with_user(state, id, move |c, u, cx| control(c, u, &post_id, cx)).await?;
    Ok(match outcome {
        None => unknown_user(),
        Some(Ok(federation)) => HttpResponse::Ok().json(json!({ "federation": federation })),
        Some(Err(refused)) if refused.is_missing() => {
            problem(StatusCode::NOT_FOUND, "unknown_post", &refused.message())
        }
        Some(Err(refused)) => HttpResponse::Conflict().json(json!({
            "error": "refused",
            "message": refused.message(),
            "detail": refused,
        })),
    })
}

pub(super) async fn exclude(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    apply(&state, path.into_inner(), controls::exclude_post).await
}

pub(super) async fn retract(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    apply(&state, path.into_inner(), controls::retract_post).await
}
