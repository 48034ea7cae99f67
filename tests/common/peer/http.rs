//! The peer's HTTP side, Mastodon-shaped: WebFinger, the actor document, its collections,
//! its posts, and the personal and shared inboxes (verified by the crate).

use activitypub_federation::{
    actix_web::inbox::receive_activity,
    config::Data,
    error::Error as FederationError,
    fetch::webfinger::{WEBFINGER_CONTENT_TYPE, build_webfinger_response, extract_webfinger_name},
    protocol::context::WithContext,
};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::{
    activities::InboxActivity,
    actor::DbActor,
    state::{ActivityKind, PeerData, ReceivedActivity, StoredNote},
};

/// What Mastodon answers fetches with; one of the three types the crate accepts.
const ACTIVITY_JSON: &str = "application/activity+json; charset=utf-8";

/// The contexts Mastodon puts on actor documents (the security one defines publicKey).
fn actor_context() -> Value {
    json!([
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1"
    ])
}

/// Mounts every route.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/.well-known/webfinger", web::get().to(webfinger))
        .route("/users/{name}", web::get().to(actor))
        .route("/users/{name}/inbox", web::post().to(inbox))
        .route("/inbox", web::post().to(inbox))
        .route("/users/{name}/followers", web::get().to(followers))
        .route("/users/{name}/outbox", web::get().to(outbox))
        .route("/users/{name}/statuses/{id}", web::get().to(note));
}

#[derive(Deserialize)]
struct WebfingerQuery {
    resource: String,
}

async fn webfinger(query: web::Query<WebfingerQuery>, data: Data<PeerData>) -> HttpResponse {
    match extract_webfinger_name(&query.resource, &data) {
        Ok(name) if name == data.local.json.preferred_username => HttpResponse::Ok()
            .content_type(
                WEBFINGER_CONTENT_TYPE
                    .to_str()
                    .unwrap_or("application/jrd+json"),
            )
            .json(build_webfinger_response(
                query.resource.clone(),
                data.local.id.clone(),
            )),
        _ => HttpResponse::NotFound().finish(),
    }
}

fn is_local_name(name: &str, data: &Data<PeerData>) -> bool {
    name == data.local.json.preferred_username
}

async fn actor(name: web::Path<String>, data: Data<PeerData>) -> HttpResponse {
    if !is_local_name(&name, &data) {
        return HttpResponse::NotFound().finish();
    }
    data.count_actor_fetch();
    HttpResponse::Ok()
        .content_type(ACTIVITY_JSON)
        .json(WithContext::new(data.local.json.clone(), actor_context()))
}

async fn followers(name: web::Path<String>, data: Data<PeerData>) -> HttpResponse {
    if !is_local_name(&name, &data) {
        return HttpResponse::NotFound().finish();
    }
    let id = data.local.followers_url().ok();
    HttpResponse::Ok().content_type(ACTIVITY_JSON).json(json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": id,
        "type": "OrderedCollection",
        "totalItems": data.followers().len(),
    }))
}

async fn outbox(name: web::Path<String>, data: Data<PeerData>) -> HttpResponse {
    if !is_local_name(&name, &data) {
        return HttpResponse::NotFound().finish();
    }
    HttpResponse::Ok().content_type(ACTIVITY_JSON).json(json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": data.local.json.outbox,
        "type": "OrderedCollection",
        "totalItems": 0,
    }))
}

async fn note(request: HttpRequest, data: Data<PeerData>) -> HttpResponse {
    let Ok(id) = Url::parse(&format!("http://{}{}", data.domain(), request.path())) else {
        return HttpResponse::BadRequest().finish();
    };
    match data.note(&id) {
        Some(StoredNote::Live(note)) => HttpResponse::Ok()
            .content_type(ACTIVITY_JSON)
            .json(WithContext::new_default(note)),
        Some(StoredNote::Deleted) => HttpResponse::Gone()
            .content_type(ACTIVITY_JSON)
            .json(json!({
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": id,
                "type": "Tombstone",
            })),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Hands the request to the crate; records what it accepted and counts what it refused
/// (401 for a bad digest or signature, as Mastodon answers, 400 for anything else).
async fn inbox(request: HttpRequest, body: web::Bytes, data: Data<PeerData>) -> HttpResponse {
    let verified = receive_activity::<WithContext<InboxActivity>, DbActor, PeerData>(
        request,
        body.clone(),
        &data,
    )
    .await;
    match verified {
        Ok(_) => match received_from(&body) {
            Some(activity) => {
                data.record_received(activity);
                HttpResponse::Accepted().finish()
            }
            None => {
                data.record_rejection("accepted by the crate but not readable".to_owned());
                HttpResponse::BadRequest().finish()
            }
        },
        Err(e) => {
            let reason = format!("{e:#}");
            let unauthorized = matches!(
                e.downcast_ref::<FederationError>(),
                Some(
                    FederationError::ActivitySignatureInvalid
                        | FederationError::ActivityBodyDigestInvalid
                )
            );
            data.record_rejection(reason.clone());
            if unauthorized {
                HttpResponse::Unauthorized().body(reason)
            } else {
                HttpResponse::BadRequest().body(reason)
            }
        }
    }
}

fn received_from(body: &[u8]) -> Option<ReceivedActivity> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let kind: ActivityKind = serde_json::from_value(json.get("type")?.clone()).ok()?;
    let id = Url::parse(json.get("id")?.as_str()?).ok()?;
    let actor = Url::parse(json.get("actor")?.as_str()?).ok()?;
    let object = json.get("object").cloned().unwrap_or(Value::Null);
    Some(ReceivedActivity {
        kind,
        id,
        actor,
        object,
        json,
    })
}
