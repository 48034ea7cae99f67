//! A user's sharing: its status, turning it on and off, the removal receipt, the audit log
//! and signed links to the settings page.

use actix_web::{HttpResponse, http::StatusCode, web};
use serde::Deserialize;
use serde_json::json;

use super::{bad_field, parse_body, problem, read_user, unknown_user, with_user};
use crate::{
    db::{audit, users::User},
    error::Error,
    federation::protocol::rfc3339,
    http::{AppState, auth},
    opt_in::{
        Gate,
        lifecycle::{self, Refusal},
        receipt,
        status::{self, GateStatus},
    },
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    enabled: bool,
    #[serde(default)]
    consent: bool,
}

fn status_of(
    state: &AppState,
) -> impl Fn(&mut crate::db::AnyConnection, &User) -> Result<status::SharingStatus, Error> + use<> {
    let settings = state.settings.clone();
    let urls = state.urls.clone();
    move |conn, user| {
        status::load(
            conn,
            user,
            &settings.sharing,
            &urls,
            crate::db::now_millis(),
        )
    }
}

pub(super) async fn show(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let load = status_of(&state);
    Ok(
        match read_user(&state, id.into_inner(), move |c, u| load(c, u)).await? {
            Some(status) => HttpResponse::Ok().json(status),
            None => unknown_user(),
        },
    )
}

fn gate_list(gates: &[Gate]) -> Vec<GateStatus> {
    gates
        .iter()
        .map(|gate| GateStatus {
            gate: *gate,
            explanation: gate.explanation(),
        })
        .collect()
}

fn refused(refusal: &Refusal) -> HttpResponse {
    let (gates, until) = match refusal {
        Refusal::Ineligible { gates } => (gate_list(gates), None),
        Refusal::CoolingDown { until } => (Vec::new(), Some(rfc3339(*until))),
        Refusal::ConsentRequired => (Vec::new(), None),
    };
    let reason = serde_json::to_value(refusal)
        .ok()
        .and_then(|v| v.get("reason").cloned())
        .unwrap_or_default();
    HttpResponse::Conflict().json(json!({
        "error": "refused",
        "reason": reason,
        "message": refusal.message(),
        "gates": gates,
        "until": until,
    }))
}

pub(super) async fn change(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    let change: Change = match parse_body(&body) {
        Ok(change) => change,
        Err(bad) => return Ok(bad.response()),
    };
    let load = status_of(&state);
    let outcome = with_user(&state, id.into_inner(), move |conn, user, cx| {
        let user = if change.enabled {
            match lifecycle::turn_on(conn, user, change.consent, cx)? {
                Ok(user) => user,
                Err(refusal) => return Ok(Err(refusal)),
            }
        } else {
            lifecycle::turn_off(conn, user, cx)?
        };
        load(conn, &user).map(Ok)
    })
    .await?;
    Ok(match outcome {
        None => unknown_user(),
        Some(Ok(status)) => HttpResponse::Ok().json(status),
        Some(Err(refusal)) => refused(&refusal),
    })
}

pub(super) async fn removal(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let found = read_user(&state, id.into_inner(), |c, u| {
        receipt::removal_receipt(c, u.id)
    })
    .await?;
    Ok(match found {
        None => unknown_user(),
        Some(None) => problem(
            StatusCode::NOT_FOUND,
            "no_removal",
            "this user never turned sharing off",
        ),
        Some(Some(receipt)) => HttpResponse::Ok().json(receipt),
    })
}

pub(super) async fn settings_link(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let secret = state.settings.platform.settings_link_secret.clone();
    if secret.is_empty() {
        return Ok(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "settings_disabled",
            "the settings page is disabled: platform.settings_link_secret is not configured",
        ));
    }
    let Some(user) = read_user(&state, id.into_inner(), |_, u| Ok(u.clone())).await? else {
        return Ok(unknown_user());
    };
    let now = crate::db::now_millis() / 1000;
    Ok(
        match auth::settings_link(&state.urls, &secret, &user.platform_user_id, now) {
            Some((url, expires_at)) => HttpResponse::Ok().json(json!({
                "url": url.as_str(),
                "expires_at": rfc3339(expires_at * 1000),
            })),
            None => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "settings_disabled",
                "the settings page is disabled",
            ),
        },
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    limit: Option<String>,
}

pub(super) async fn audit(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, Error> {
    let limit = match query.limit.as_deref().map(str::parse::<i64>) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return Ok(bad_field("limit", "must be an integer from 1 to 1000")),
    };
    let entries = read_user(&state, id.into_inner(), move |c, u| {
        audit::for_user(c, u.id, limit)
    })
    .await?;
    let Some(entries) = entries else {
        return Ok(unknown_user());
    };
    let items: Vec<_> = entries
        .into_iter()
        .map(|e| {
            json!({
                "action": e.action,
                "initiator": e.initiator,
                "detail": serde_json::from_str::<serde_json::Value>(&e.detail)
                    .unwrap_or(serde_json::Value::Null),
                "at": rfc3339(e.created_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}
