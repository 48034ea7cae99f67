//! A user's blocks of remote accounts and servers.

use actix_web::{HttpResponse, http::StatusCode, web};
use serde::Deserialize;
use serde_json::json;

use super::{BadInput, parse_body, problem, read_user, unknown_user, with_user};
use crate::{
    db::user_blocks::{self, BlockTarget},
    error::Error,
    federation::{protocol::rfc3339, urls::Urls},
    http::{AppState, auth},
    moderation::BlockDomain,
    opt_in::controls,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    actor: Option<String>,
    domain: Option<String>,
}

/// Reads a block target from an actor URL or a server name (exactly one of them); a
/// failure names the field and says what is wrong.
pub(crate) fn parse_block_target(
    actor: Option<&str>,
    domain: Option<&str>,
    urls: &Urls,
) -> Result<BlockTarget, (&'static str, &'static str)> {
    let actor = actor.map(str::trim).filter(|s| !s.is_empty());
    let domain = domain.map(str::trim).filter(|s| !s.is_empty());
    match (actor, domain) {
        (Some(_), Some(_)) => Err(("actor", "give either actor or domain, not both")),
        (None, None) => Err(("actor", "give an actor URL or a domain")),
        (Some(actor), None) => {
            let url = url::Url::parse(actor).map_err(|_| ("actor", "must be an actor URL"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(("actor", "must be an http(s) actor URL"));
            }
            if urls.is_local(&url) {
                return Err(("actor", "accounts of this server cannot be blocked here"));
            }
            Ok(BlockTarget::Actor(actor.to_owned()))
        }
        (None, Some(domain)) => {
            // Canonical as server blocks are (case, trailing dot, IDNA to punycode), so
            // that `Exämple.COM.` and `xn--exmple-cua.com` are one block, matched against
            // hosts in that form. A block covers every port and subdomain, so none is given.
            let domain = BlockDomain::parse(domain).map_err(|_| {
                (
                    "domain",
                    "must be a server name such as example.social, without scheme, port or path",
                )
            })?;
            let url = url::Url::parse(&format!("https://{domain}/"))
                .map_err(|_| ("domain", "must be a server name such as example.social"))?;
            if urls.is_local(&url) {
                return Err(("domain", "this server cannot be blocked"));
            }
            Ok(BlockTarget::Domain(domain))
        }
    }
}

fn target_of(body: &[u8], urls: &Urls) -> Result<BlockTarget, BadInput> {
    let body: BlockBody = parse_body(body)?;
    parse_block_target(body.actor.as_deref(), body.domain.as_deref(), urls)
        .map_err(|(field, message)| BadInput::new(field, message))
}

pub(super) async fn list(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let blocks = read_user(&state, id.into_inner(), |c, u| user_blocks::list(c, u.id)).await?;
    let Some(blocks) = blocks else {
        return Ok(unknown_user());
    };
    let items: Vec<_> = blocks
        .iter()
        .map(|b| {
            json!({
                "kind": b.target_kind,
                "target": b.target,
                "created_at": rfc3339(b.created_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

pub(super) async fn add(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    let target = match target_of(&body, &state.urls) {
        Ok(target) => target,
        Err(bad) => return Ok(bad.response()),
    };
    let outcome = with_user(&state, id.into_inner(), move |c, u, cx| {
        controls::block(c, u, &target, cx)
    })
    .await?;
    Ok(match outcome {
        None => unknown_user(),
        Some(outcome) if outcome.created => HttpResponse::Created().json(outcome),
        Some(outcome) => HttpResponse::Ok().json(outcome),
    })
}

pub(super) async fn remove(
    _auth: auth::PlatformAuth,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    let target = match target_of(&body, &state.urls) {
        Ok(target) => target,
        Err(bad) => return Ok(bad.response()),
    };
    let outcome = with_user(&state, id.into_inner(), move |c, u, cx| {
        controls::unblock(c, u, &target, cx)
    })
    .await?;
    Ok(match outcome {
        None => unknown_user(),
        Some(Ok(())) => HttpResponse::Ok().json(json!({ "result": "unblocked" })),
        Some(Err(refused)) => problem(StatusCode::NOT_FOUND, "no_such_block", &refused.message()),
    })
}
