//! NodeInfo 2.0/2.1 and host-meta: what software this is and where WebFinger lives.

use actix_web::{HttpResponse, get, http::header, web};
use serde_json::json;

use super::AppState;
use crate::{
    db::{posts, users},
    error::Error,
    federation::protocol::nodeinfo::{NodeInfo, Services, Software, Usage, UserCounts},
};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(discovery)
        .service(nodeinfo_20)
        .service(nodeinfo_21)
        .service(host_meta)
        .service(host_meta_json);
}

const REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

#[get("/.well-known/nodeinfo")]
async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    let base = state.urls.base().as_str().trim_end_matches('/').to_owned();
    HttpResponse::Ok()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(json!({
            "links": [
                { "rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": format!("{base}/nodeinfo/2.0") },
                { "rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": format!("{base}/nodeinfo/2.1") },
            ]
        }))
}

async fn document(state: &AppState, version: &'static str) -> Result<HttpResponse, Error> {
    let (sharing, local_posts) = state
        .db
        .run(|c| Ok((users::count_sharing(c)?, posts::count_all_federated(c)?)))
        .await?;
    let v21 = version == "2.1";
    let info = NodeInfo {
        version,
        software: Software {
            name: "fedibridge",
            version: env!("CARGO_PKG_VERSION"),
            repository: v21.then_some(REPOSITORY),
            homepage: v21.then_some(REPOSITORY),
        },
        protocols: vec!["activitypub"],
        services: Services::default(),
        open_registrations: false,
        usage: Usage {
            users: UserCounts {
                total: sharing,
                active_month: sharing,
                active_halfyear: sharing,
            },
            local_posts,
        },
        metadata: json!({
            "nodeName": state.urls.domain(),
            "nodeDescription": "Opt-in fediverse sharing for the users of this platform",
        }),
    };
    Ok(HttpResponse::Ok()
        .content_type(format!(
            "application/json; profile=\"http://nodeinfo.diaspora.software/ns/schema/{version}#\""
        ))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(info))
}

#[get("/nodeinfo/2.0")]
async fn nodeinfo_20(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    document(&state, "2.0").await
}

#[get("/nodeinfo/2.1")]
async fn nodeinfo_21(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    document(&state, "2.1").await
}

fn lrdd_template(state: &AppState) -> String {
    format!("{}?resource={{uri}}", state.urls.webfinger())
}

#[get("/.well-known/host-meta")]
async fn host_meta(state: web::Data<AppState>) -> HttpResponse {
    let template = crate::federation::content::escape(&lrdd_template(&state));
    HttpResponse::Ok()
        .content_type("application/xrd+xml; charset=utf-8")
        .body(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <XRD xmlns=\"http://docs.oasis-open.org/ns/xri/xrd-1.0\">\n  \
             <Link rel=\"lrdd\" template=\"{template}\"/>\n</XRD>\n"
        ))
}

#[get("/.well-known/host-meta.json")]
async fn host_meta_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "links": [{ "rel": "lrdd", "template": lrdd_template(&state) }]
    }))
}
