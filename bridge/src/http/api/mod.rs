//! The toggle API: how the platform backend turns a user's sharing on and off and manages
//! what goes with it, under `/api/v1`, authenticated with the platform's bearer token.
//!
//! Users are addressed by the platform's own user id; `/server-blocks` are instance-wide
//! (the platform's moderators blocking whole servers). Every change runs in one write
//! transaction with its audit entry (initiator `platform`). The routes are declared once, in
//! [`ROUTES`], which also feeds the check that the OpenAPI document lists each of them.

mod blocks;
mod followers;
mod openapi;
mod posts;
mod server_blocks;
mod sharing;

use actix_web::{HttpResponse, http::StatusCode, web};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::AppState;
use crate::{
    db::{AnyConnection, users},
    error::Error,
    opt_in::{Initiator, lifecycle::Context},
};

pub(crate) use blocks::parse_block_target;

/// Prefix of every API route.
pub const PREFIX: &str = "/api/v1";

macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:path;)*) => {
        /// Every route of the API as (lower-case method, path below [`PREFIX`]), exactly as
        /// registered.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        pub(super) fn configure(cfg: &mut web::ServiceConfig) {
            cfg.service(web::scope(PREFIX)$(.route($path, web::$method().to($handler)))*);
        }
    };
}

api_routes! {
    get "/openapi.yaml" => openapi::document;
    get "/users/{id}/sharing" => sharing::show;
    post "/users/{id}/sharing" => sharing::change;
    get "/users/{id}/removal" => sharing::removal;
    post "/users/{id}/settings-link" => sharing::settings_link;
    get "/users/{id}/audit" => sharing::audit;
    get "/users/{id}/followers" => followers::accepted;
    delete "/users/{id}/followers" => followers::remove;
    get "/users/{id}/followers.csv" => followers::export_csv;
    get "/users/{id}/followers/pending" => followers::pending;
    post "/users/{id}/followers/pending/approve" => followers::approve;
    post "/users/{id}/followers/pending/refuse" => followers::refuse;
    get "/users/{id}/blocks" => blocks::list;
    post "/users/{id}/blocks" => blocks::add;
    delete "/users/{id}/blocks" => blocks::remove;
    post "/users/{id}/posts/{post_id}/exclude" => posts::exclude;
    post "/users/{id}/posts/{post_id}/retract" => posts::retract;
    get "/server-blocks" => server_blocks::list;
    post "/server-blocks" => server_blocks::add;
    delete "/server-blocks" => server_blocks::remove;
    post "/server-blocks/import" => server_blocks::import;
    get "/server-blocks.csv" => server_blocks::export;
}

/// A JSON error answer.
fn problem(status: StatusCode, error: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": error, "message": message }))
}

/// Input that cannot be used: answered 400 naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BadInput {
    field: String,
    message: String,
}

impl BadInput {
    fn new(field: &str, message: &str) -> Self {
        Self {
            field: field.to_owned(),
            message: message.to_owned(),
        }
    }

    fn response(&self) -> HttpResponse {
        bad_field(&self.field, &self.message)
    }
}

/// 400 naming the offending field.
fn bad_field(field: &str, message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "error": "invalid_request",
        "field": field,
        "message": message,
    }))
}

fn unknown_user() -> HttpResponse {
    problem(
        StatusCode::NOT_FOUND,
        "unknown_user",
        "no user with this id; send user.created first",
    )
}

/// Decodes a JSON body; a failure names the field it concerns.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, BadInput> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        let field = if path == "." {
            // Missing and unknown fields are reported at the parent; serde names them
            // between backticks.
            message
                .split('`')
                .nth(1)
                .map_or_else(|| "body".to_owned(), str::to_owned)
        } else {
            path
        };
        BadInput::new(&field, &message)
    })
}

/// Runs `f` on the user `platform_user_id` in one write transaction with a platform
/// context; `None` when the user is unknown. Wakes the delivery role afterwards, since
/// most changes queue activities.
async fn with_user<T, F>(
    state: &AppState,
    platform_user_id: String,
    f: F,
) -> Result<Option<T>, Error>
where
    F: FnOnce(&mut AnyConnection, &users::User, Context<'_>) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    let settings = state.settings.clone();
    let urls = state.urls.clone();
    let result = state
        .db
        .write(move |conn| {
            let Some(user) = users::find_by_platform_id(conn, &platform_user_id)? else {
                return Ok(None);
            };
            let cx = Context {
                rules: &settings.sharing,
                urls: &urls,
                initiator: Initiator::Platform,
                now: crate::db::now_millis(),
            };
            f(conn, &user, cx).map(Some)
        })
        .await?;
    state.delivery_wakeup.notify_one();
    Ok(result)
}

/// Reads the user `platform_user_id` and runs `f`; `None` when the user is unknown.
async fn read_user<T, F>(
    state: &AppState,
    platform_user_id: String,
    f: F,
) -> Result<Option<T>, Error>
where
    F: FnOnce(&mut AnyConnection, &users::User) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    state
        .db
        .run(move |conn| {
            let Some(user) = users::find_by_platform_id(conn, &platform_user_id)? else {
                return Ok(None);
            };
            f(conn, &user).map(Some)
        })
        .await
}
