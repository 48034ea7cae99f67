//! A user's followers and follow requests: listing, exporting, removing, approving.

use std::collections::HashMap;

use actix_web::{HttpResponse, http::header, web};
use serde::Deserialize;
use serde_json::json;

use super::{BadInput, parse_body, problem, read_user, unknown_user, with_user};
use crate::{
    db::{
        follower_list,
        follows::{self, Follow, FollowState},
        remote_actors::RemoteActor,
    },
    error::Error,
    federation::protocol::rfc3339,
    http::{AppState, auth},
    opt_in::controls::{self, Refused},
};

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorBody {
    actor: String,
}

fn item(follow: &Follow, actor: &RemoteActor) -> serde_json::Value {
    json!({
        "actor": actor.ap_id,
        "handle": actor.handle(),
        "name": actor.name,
        "server": actor.host,
        "requested_at": rfc3339(follow.created_at),
        "followed_since": follow.accepted_at.map(rfc3339),
    })
}

fn page_params(query: &HashMap<String, String>) -> Result<(Option<i64>, i64), BadInput> {
    let limit = match query.get("limit").map(|v| v.parse::<i64>()) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return Err(BadInput::new(
                "limit",
                &format!("must be an integer from 1 to {MAX_PAGE}"),
            ));
        }
    };
    let after = match query.get("after").map(|v| v.parse::<i64>()) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => {
            return Err(BadInput::new(
                "after",
                "must be a cursor from a previous page",
            ));
        }
    };
    Ok((after, limit))
}

async fn list(
    state: &AppState,
    id: String,
    query: &HashMap<String, String>,
    follow_state: FollowState,
) -> Result<HttpResponse, Error> {
    let (after, limit) = match page_params(query) {
        Ok(p) => p,
        Err(bad) => return Ok(bad.response()),
    };
    let page = read_user(state, id, move |c, u| {
        follower_list::page(c, u.id, follow_state, after, limit)
    })
    .await?;
    let Some(page) = page else {
        return Ok(unknown_user());
    };
    let next = (page.len() as i64 == limit)
        .then(|| page.last().map(|(f, _)| f.id.to_string()))
        .flatten();
    let items: Vec<_> = page.iter().map(|(f, a)| item(f, a)).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next": next })))
}

pub(super) async fn accepted(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    list(&state, id.into_inner(), &query, FollowState::Accepted).await
}

pub(super) async fn pending(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    list(&state, id.into_inner(), &query, FollowState::Pending).await
}

pub(super) async fn export_csv(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let rows = read_user(&state, id.into_inner(), |c, u| {
        follows::followers(c, u.id, FollowState::Accepted)
    })
    .await?;
    let Some(rows) = rows else {
        return Ok(unknown_user());
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut write = |record: [&str; 3]| {
        writer
            .write_record(record)
            .map_err(|e| Error::Storage(format!("CSV: {e}")))
    };
    write(["actor", "handle", "followed_since"])?;
    for (follow, actor) in &rows {
        let since = rfc3339(follow.accepted_at.unwrap_or(follow.created_at));
        write([&actor.ap_id, &actor.handle(), &since])?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| Error::Storage(format!("CSV: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            r#"attachment; filename="followers.csv""#,
        ))
        .body(bytes))
}

fn actor_param(raw: Option<&String>) -> Result<String, BadInput> {
    let raw = raw.map(|v| v.trim());
    match raw.map(|v| (v, url::Url::parse(v))) {
        // The stored actor id is matched exactly, so the URL is kept as sent.
        Some((v, Ok(url))) if matches!(url.scheme(), "http" | "https") => Ok(v.to_owned()),
        Some(_) => Err(BadInput::new("actor", "must be the follower's actor URL")),
        None => Err(BadInput::new("actor", "is required")),
    }
}

fn control_answer(outcome: Option<Result<(), Refused>>, done: &str) -> HttpResponse {
    match outcome {
        None => unknown_user(),
        Some(Ok(())) => HttpResponse::Ok().json(json!({ "result": done })),
        Some(Err(refused)) => problem(
            actix_web::http::StatusCode::NOT_FOUND,
            "no_such_follower",
            &refused.message(),
        ),
    }
}

pub(super) async fn remove(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    let actor = match actor_param(query.get("actor")) {
        Ok(actor) => actor,
        Err(bad) => return Ok(bad.response()),
    };
    let outcome = with_user(&state, id.into_inner(), move |c, u, cx| {
        controls::remove_follower(c, u, &actor, cx)
    })
    .await?;
    Ok(control_answer(outcome, "removed"))
}

async fn answer(
    state: &AppState,
    id: String,
    body: &[u8],
    approve: bool,
) -> Result<HttpResponse, Error> {
    let actor = match parse_body::<ActorBody>(body).and_then(|b| actor_param(Some(&b.actor))) {
        Ok(actor) => actor,
        Err(bad) => return Ok(bad.response()),
    };
    let outcome = with_user(state, id, move |c, u, cx| {
        controls::answer_request(c, u, &actor, approve, cx)
    })
    .await?;
    Ok(control_answer(
        outcome,
        if approve { "approved" } else { "refused" },
    ))
}

pub(super) async fn approve(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    answer(&state, id.into_inner(), &body, true).await
}

pub(super) async fn refuse(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    answer(&state, id.into_inner(), &body, false).await
}
