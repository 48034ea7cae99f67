//! Instance-wide server blocks for the platform's moderators: the same operations as
//! `fedibridge blocks`, with audit entries whose initiator is `platform`.

use std::collections::HashMap;

use actix_web::{HttpResponse, http::StatusCode, http::header, web};
use serde::Deserialize;
use serde_json::json;

use super::{BadInput, parse_body, problem};
use crate::{
    db::{AnyConnection, blocks::InstanceBlockSeverity},
    error::Error,
    http::{AppState, auth},
    moderation::{
        BlockDomain, blocklist,
        domain_blocks::{self, BlockChange},
    },
    opt_in::{Initiator, lifecycle::Context},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    domain: String,
    #[serde(default)]
    severity: Option<SeverityName>,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SeverityName {
    Reject,
    FollowsOnly,
}

impl From<SeverityName> for InstanceBlockSeverity {
    fn from(s: SeverityName) -> Self {
        match s {
            SeverityName::Reject => Self::Reject,
            SeverityName::FollowsOnly => Self::FollowsOnly,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainBody {
    domain: String,
}

fn domain(raw: &str) -> Result<BlockDomain, BadInput> {
    BlockDomain::parse(raw).map_err(|e| BadInput::new("domain", &e.to_string()))
}

/// Runs `f` with the platform's context, in a write transaction unless `read_only`.
async fn in_context<T, F>(state: &AppState, read_only: bool, f: F) -> Result<T, Error>
where
    F: FnOnce(&mut AnyConnection, Context<'_>) -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    let (settings, urls) = (state.settings.clone(), state.urls.clone());
    let run = move |conn: &mut AnyConnection| {
        let cx = Context {
            rules: &settings.sharing,
            urls: &urls,
            initiator: Initiator::Platform,
            now: crate::db::now_millis(),
        };
        f(conn, cx)
    };
    let result = if read_only {
        state.db.run(run).await?
    } else {
        state.db.write(run).await?
    };
    // A reject block queues Reject(Follow) for the severed follows.
    state.delivery_wakeup.notify_one();
    Ok(result)
}

pub(super) async fn list(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let items = state.db.run(domain_blocks::list).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

pub(super) async fn add(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    let (domain, body) =
        match parse_body::<AddBody>(&body).and_then(|b| Ok((domain(&b.domain)?, b))) {
            Ok(parsed) => parsed,
            Err(bad) => return Ok(bad.response()),
        };
    let severity = body.severity.unwrap_or(SeverityName::Reject).into();
    let outcome = in_context(&state, false, move |c, cx| {
        domain_blocks::add(c, &domain, severity, body.comment.as_deref(), cx)
    })
    .await?;
    Ok(match outcome.change {
        BlockChange::Added { .. } => HttpResponse::Created().json(outcome),
        _ => HttpResponse::Ok().json(outcome),
    })
}

pub(super) async fn remove(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    let domain = match parse_body::<DomainBody>(&body).and_then(|b| domain(&b.domain)) {
        Ok(domain) => domain,
        Err(bad) => return Ok(bad.response()),
    };
    let removed = in_context(&state, false, move |c, cx| {
        domain_blocks::remove(c, &domain, cx)
    })
    .await?;
    Ok(if removed {
        HttpResponse::Ok().json(json!({ "result": "unblocked" }))
    } else {
        problem(
            StatusCode::NOT_FOUND,
            "no_such_block",
            "This server is not blocked.",
        )
    })
}

/// A blocklist as the request body (any content type); `?dry_run=true` only reports.
pub(super) async fn import(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    let dry_run = match query.get("dry_run").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Ok(BadInput::new("dry_run", "must be true or false").response()),
    };
    let list = blocklist::parse(&body);
    let report = in_context(&state, dry_run, move |c, cx| {
        domain_blocks::import(c, &list, dry_run, cx)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "dry_run": dry_run, "report": report })))
}

pub(super) async fn export(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let bytes = state.db.run(domain_blocks::export).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            r#"attachment; filename="server_blocks.csv""#,
        ))
        .body(bytes))
}
