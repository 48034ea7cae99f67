//! Remote follow: a visitor of a bridged profile names their own account (`you@server`);
//! we look up their server's `subscribe` template with WebFinger and send them there with
//! our handle, so they can follow with one click. When that fails, a page explains how to
//! follow by searching the handle on their server.

use std::collections::HashMap;

use actix_web::{HttpResponse, http::StatusCode, http::header, web};
use url::Url;

use super::{AppState, pages::layout};
use crate::{
    db::users,
    error::Error,
    federation::{FederationClient, content::escape},
    opt_in::SharingState,
};

/// The link relation of a server's remote-follow template (OStatus, kept by Mastodon and
/// most others).
const SUBSCRIBE_REL: &str = "http://ostatus.org/schema/1.0/subscribe";

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/authorize_interaction", web::get().to(authorize));
}

fn page(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ))
        .body(layout(title, "en", body))
}

/// `name@domain` of a local sharing user named by `uri` (a handle or an actor URL).
async fn local_handle(state: &AppState, uri: &str) -> Result<Option<String>, Error> {
    let uri = uri.trim();
    let by_handle = uri
        .trim_start_matches("acct:")
        .trim_start_matches('@')
        .rsplit_once('@')
        .filter(|(_, domain)| domain.eq_ignore_ascii_case(state.urls.domain()))
        .map(|(name, _)| name.to_owned());
    let by_actor = Url::parse(uri)
        .ok()
        .and_then(|url| match state.urls.parse_local(&url) {
            Some(crate::federation::urls::LocalObject::Actor(id)) => Some(id),
            _ => None,
        });
    let user = state
        .db
        .run(move |c| match (by_handle, by_actor) {
            (Some(name), _) => users::find_by_username(c, &name),
            (None, Some(id)) => users::find_by_platform_id(c, &id),
            (None, None) => Ok(None),
        })
        .await?;
    Ok(user
        .filter(|u| u.sharing() == SharingState::On)
        .map(|u| state.urls.handle(&u.username)))
}

/// The visitor's `(name, domain)` from `you@server` (a leading `@` or `acct:` allowed).
fn visitor(acct: &str) -> Option<(String, String)> {
    let acct = acct
        .trim()
        .trim_start_matches("acct:")
        .trim_start_matches('@');
    let (name, domain) = acct.rsplit_once('@')?;
    if name.is_empty() || name.contains(['/', '?', '#', ' ']) {
        return None;
    }
    let domain = domain.trim_end_matches('.').to_lowercase();
    let parsed = Url::parse(&format!("https://{domain}/")).ok()?;
    let host = parsed.host_str()?;
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    (authority == domain).then(|| (name.to_owned(), domain))
}

/// Looks up the visitor's `subscribe` template and fills in our handle.
async fn subscribe_url(
    client: &FederationClient,
    name: &str,
    domain: &str,
    handle: &str,
) -> Option<Url> {
    // https first; plain http only where the development switch allows private peers.
    let schemes: &[&str] = if client.config().policy.allow_private {
        &["https", "http"]
    } else {
        &["https"]
    };
    for scheme in schemes {
        let mut url = Url::parse(&format!("{scheme}://{domain}/.well-known/webfinger")).ok()?;
        url.query_pairs_mut()
            .append_pair("resource", &format!("acct:{name}@{domain}"));
        let Ok(fetched) = client.fetch_jrd(&url).await else {
            continue;
        };
        let template = fetched
            .json
            .get("links")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
            .find(|link| link.get("rel").and_then(|r| r.as_str()) == Some(SUBSCRIBE_REL))
            .and_then(|link| link.get("template"))
            .and_then(|t| t.as_str())
            .filter(|t| t.contains("{uri}"))?;
        let encoded: String = url::form_urlencoded::byte_serialize(handle.as_bytes()).collect();
        let target = Url::parse(&template.replace("{uri}", &encoded)).ok()?;
        return matches!(target.scheme(), "https" | "http").then_some(target);
    }
    None
}

fn ask_page(handle: &str, acct: &str, failed: bool) -> HttpResponse {
    let failure = if failed {
        format!(
            r#"<div role="alert"><p>We could not reach <strong>{acct}</strong>'s server to follow from there.</p>
<p>To follow, open your fediverse app or website, search for <strong class="handle">@{handle}</strong>, and press Follow.</p></div>"#,
            acct = escape(acct),
            handle = escape(handle),
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<header><h1>Follow @{handle}</h1></header>
<main id="main">
{failure}
<form method="get" action="authorize_interaction">
<input type="hidden" name="uri" value="{handle}">
<label for="acct">Your fediverse account</label>
<input type="text" id="acct" name="acct" value="{acct}" placeholder="you@your.server" autocomplete="username">
<button type="submit">Follow</button>
</form>
<p>You can also search for <strong class="handle">@{handle}</strong> on your own server and follow from there.</p>
</main>"#,
        handle = escape(handle),
        acct = escape(acct),
    );
    page(
        if failed {
            StatusCode::BAD_GATEWAY
        } else {
            StatusCode::OK
        },
        &format!("Follow @{handle}"),
        &body,
    )
}

async fn authorize(
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, Error> {
    let uri = query.get("uri").map(String::as_str).unwrap_or_default();
    let Some(handle) = local_handle(&state, uri).await? else {
        return Ok(page(
            StatusCode::NOT_FOUND,
            "Not found",
            r#"<main id="main"><h1>Not found</h1><p>This account does not share on the fediverse.</p></main>"#,
        ));
    };
    let acct = query
        .get("acct")
        .map(|a| a.trim().to_owned())
        .unwrap_or_default();
    if acct.is_empty() {
        return Ok(ask_page(&handle, "", false));
    }
    let Some((name, domain)) = visitor(&acct) else {
        return Ok(ask_page(&handle, &acct, true));
    };
    match subscribe_url(&state.client, &name, &domain, &handle).await {
        Some(target) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, target.as_str()))
            .finish()),
        None => Ok(ask_page(&handle, &acct, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::visitor;

    #[test]
    fn visitors_are_name_at_server() {
        assert_eq!(
            visitor("@alice@Example.Social"),
            Some(("alice".into(), "example.social".into()))
        );
        assert_eq!(
            visitor("acct:bob@host:8443"),
            Some(("bob".into(), "host:8443".into()))
        );
        assert_eq!(visitor("alice"), None);
        assert_eq!(visitor("alice@exa mple"), None);
        assert_eq!(visitor("a/b@example.social"), None);
        assert_eq!(visitor("alice@example.social/path"), None);
    }
}
