//! WebFinger (RFC 7033): from `acct:name@domain` or an actor URL to the actor.

use actix_web::{HttpResponse, get, http::header, web};
use serde::Deserialize;
use url::Url;

use super::{AppState, negotiate};
use crate::{
    db::users::{self, User},
    error::Error,
    federation::{
        protocol::{
            ACTIVITY_JSON,
            webfinger::{Jrd, JrdLink},
        },
        urls::LocalObject,
    },
    opt_in::SharingState,
};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(webfinger);
}

#[derive(Debug, Deserialize)]
struct Query {
    resource: Option<String>,
}

/// Who a WebFinger resource names.
enum Target {
    User(String),
    UserById(String),
    Instance,
}

fn parse_resource(state: &AppState, resource: &str) -> Option<Target> {
    let urls = &state.urls;
    if let Some(acct) = resource
        .strip_prefix("acct:")
        .or_else(|| resource.strip_prefix('@').filter(|r| r.contains('@')))
    {
        let (name, domain) = acct.trim_start_matches('@').rsplit_once('@')?;
        let domain = domain.to_lowercase();
        if domain != urls.domain() && domain != urls.base_authority().to_lowercase() {
            return None;
        }
        if name.eq_ignore_ascii_case(urls.domain())
            || name.eq_ignore_ascii_case(&urls.base_authority())
        {
            return Some(Target::Instance);
        }
        return Some(Target::User(name.to_owned()));
    }
    let url = Url::parse(resource).ok()?;
    match urls.parse_local(&url)? {
        LocalObject::Actor(uid) => Some(Target::UserById(uid)),
        LocalObject::InstanceActor => Some(Target::Instance),
        LocalObject::Note(_) | LocalObject::Activity(_) => None,
    }
}

fn jrd(state: &AppState, subject: String, actor: String, profile: Option<String>) -> HttpResponse {
    let mut links = vec![JrdLink {
        rel: "self".into(),
        media_type: Some(ACTIVITY_JSON.into()),
        href: Some(actor.clone()),
        template: None,
    }];
    if let Some(profile) = profile {
        links.push(JrdLink {
            rel: "http://webfinger.net/rel/profile-page".into(),
            media_type: Some("text/html".into()),
            href: Some(profile),
            template: None,
        });
    }
    links.push(JrdLink {
        rel: "http://ostatus.org/schema/1.0/subscribe".into(),
        media_type: None,
        href: None,
        template: Some(format!(
            "{}?uri={{uri}}",
            state.urls.authorize_interaction()
        )),
    });
    HttpResponse::Ok()
        .content_type("application/jrd+json; charset=utf-8")
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::CACHE_CONTROL, "max-age=300, public"))
        .json(Jrd {
            subject,
            aliases: vec![actor],
            links,
        })
}

/// Only sharing users are discoverable; those who turned sharing off are gone (410).
#[get("/.well-known/webfinger")]
async fn webfinger(
    state: web::Data<AppState>,
    query: web::Query<Query>,
) -> Result<HttpResponse, Error> {
    let Some(resource) = query
        .resource
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    else {
        return Ok(HttpResponse::BadRequest()
            .json(serde_json::json!({ "error": "resource parameter is required" })));
    };
    if resource.len() > 512 {
        return Ok(
            HttpResponse::BadRequest().json(serde_json::json!({ "error": "resource is too long" }))
        );
    }
    let Some(target) = parse_resource(&state, resource) else {
        return Ok(negotiate::not_found());
    };
    let urls = &state.urls;
    let user: Option<User> = match target {
        Target::Instance => {
            let subject = format!("acct:{}@{}", urls.domain(), urls.domain());
            return Ok(jrd(
                &state,
                subject,
                urls.instance_actor().to_string(),
                None,
            ));
        }
        Target::User(name) => {
            state
                .db
                .run(move |c| users::find_by_username(c, &name))
                .await?
        }
        Target::UserById(uid) => {
            state
                .db
                .run(move |c| users::find_by_platform_id(c, &uid))
                .await?
        }
    };
    Ok(match user {
        Some(user) if user.sharing() == SharingState::On => {
            let actor = urls.actor(&user.platform_user_id).to_string();
            jrd(
                &state,
                format!("acct:{}", urls.handle(&user.username)),
                actor.clone(),
                Some(actor),
            )
        }
        Some(user) if user.opted_out() => {
            HttpResponse::Gone().json(serde_json::json!({ "error": "Gone" }))
        }
        _ => negotiate::not_found(),
    })
}
