//! Actor documents and their collections: outbox, followers, following, featured.

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Deserialize;

use super::{AppState, negotiate, negotiate::Wants, pages};
use crate::{
    db::{follows, keys, posts, users},
    error::Error,
    federation::{
        notes,
        protocol::{
            activity::{Activity, ActivityType},
            actor::Actor,
            collection::{OrderedCollection, OrderedCollectionPage},
            context::Context,
            note::{Note, Tombstone},
        },
    },
    opt_in::SharingState,
};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(actor)
        .service(outbox)
        .service(followers)
        .service(following)
        .service(featured)
        .service(instance_actor);
}

/// Outbox page size.
const PAGE_SIZE: i64 = 20;

/// A user as their actor URL sees them.
pub(super) enum Lookup {
    /// Sharing: everything is served.
    Sharing(users::User),
    /// Paused: the actor is served as unavailable, its content is not.
    Paused(users::User),
    /// Turned off: 410 from now on.
    Gone(users::User),
    /// Never shared, or unknown: 404.
    Missing,
}

pub(super) async fn lookup(state: &AppState, uid: String) -> Result<Lookup, Error> {
    let user = state
        .db
        .run(move |c| users::find_by_platform_id(c, &uid))
        .await?;
    Ok(match user {
        Some(u) if u.sharing() == SharingState::On => Lookup::Sharing(u),
        Some(u) if u.sharing() == SharingState::Paused => Lookup::Paused(u),
        Some(u) if u.opted_out() => Lookup::Gone(u),
        _ => Lookup::Missing,
    })
}

fn actor_gone(state: &AppState, user: &users::User) -> HttpResponse {
    negotiate::gone(&Tombstone::new(
        state.urls.actor(&user.platform_user_id).to_string(),
        "Person",
        user.opted_out_at,
    ))
}

/// The user whose collections are served: only while sharing. Otherwise the answer to
/// give: 410 after opt-out, 404 while paused (their content is withheld) or unknown.
async fn sharing_user(
    state: &AppState,
    uid: String,
) -> Result<Result<users::User, HttpResponse>, Error> {
    Ok(match lookup(state, uid).await? {
        Lookup::Sharing(u) => Ok(u),
        Lookup::Gone(u) => Err(actor_gone(state, &u)),
        Lookup::Paused(_) | Lookup::Missing => Err(negotiate::not_found()),
    })
}

#[get("/users/{uid}")]
async fn actor(
    state: web::Data<AppState>,
    req: HttpRequest,
    uid: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let user = match lookup(&state, uid.into_inner()).await? {
        Lookup::Sharing(u) | Lookup::Paused(u) => u,
        Lookup::Gone(u) => return Ok(actor_gone(&state, &u)),
        Lookup::Missing => return Ok(negotiate::not_found()),
    };
    let urls = state.urls.clone();
    if negotiate::wants(&req) == Wants::Html {
        if user.sharing() == SharingState::Paused {
            return Ok(negotiate::not_found());
        }
        let id = user.id;
        let notes = state
            .db
            .run(move |c| {
                let author =
                    users::find(c, id)?.ok_or_else(|| Error::Storage("user vanished".into()))?;
                posts::federated_page(c, id, None, PAGE_SIZE)?
                    .iter()
                    .map(|p| notes::build(c, p, &author, &urls))
                    .collect::<Result<Vec<Note>, Error>>()
            })
            .await?;
        return Ok(negotiate::html(pages::profile(&user, &notes, &state.urls)));
    }
    let id = user.id;
    let key = state.db.run(move |c| keys::active(c, Some(id))).await?;
    let key = key.ok_or_else(|| {
        Error::Storage(format!(
            "user {} shares but has no key",
            user.platform_user_id
        ))
    })?;
    Ok(negotiate::activity_json(&Actor::person(
        &user,
        &key.public_key_pem,
        &state.urls,
    )))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    page: Option<bool>,
    before: Option<i64>,
}

#[get("/users/{uid}/outbox")]
async fn outbox(
    state: web::Data<AppState>,
    uid: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, Error> {
    let user = match sharing_user(&state, uid.into_inner()).await? {
        Ok(user) => user,
        Err(answer) => return Ok(answer),
    };
    let urls = state.urls.clone();
    let outbox_url = urls.outbox(&user.platform_user_id).to_string();
    let id = user.id;
    if query.page != Some(true) {
        let total = state.db.run(move |c| posts::count_federated(c, id)).await?;
        return Ok(negotiate::activity_json(&OrderedCollection::<()> {
            context: Context,
            id: outbox_url.clone(),
            kind: "OrderedCollection",
            total_items: total,
            first: Some(format!("{outbox_url}?page=true")),
            ordered_items: None,
        }));
    }
    let before = query.before;
    let page_url = match before {
        Some(b) => format!("{outbox_url}?page=true&before={b}"),
        None => format!("{outbox_url}?page=true"),
    };
    let (items, next) = state
        .db
        .run(move |c| {
            let author =
                users::find(c, id)?.ok_or_else(|| Error::Storage("user vanished".into()))?;
            let page = posts::federated_page(c, id, before, PAGE_SIZE)?;
            let next = (page.len() as i64 == PAGE_SIZE)
                .then(|| page.last().map(|p| p.published_at))
                .flatten();
            let items = page
                .iter()
                .map(|p| {
                    let note = notes::build(c, p, &author, &urls)?;
                    Ok(Activity {
                        context: Context,
                        id: urls.create_activity(&p.platform_post_id).to_string(),
                        kind: ActivityType::Create,
                        actor: note.attributed_to.clone(),
                        to: note.to.clone(),
                        cc: note.cc.clone(),
                        published: Some(note.published.clone()),
                        target: None,
                        object: note.embedded(),
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            Ok((items, next))
        })
        .await?;
    Ok(negotiate::activity_json(&OrderedCollectionPage {
        context: Context,
        id: page_url,
        kind: "OrderedCollectionPage",
        part_of: outbox_url.clone(),
        next: next.map(|b| format!("{outbox_url}?page=true&before={b}")),
        ordered_items: items,
    }))
}

/// Followers are counted, not listed: the list would expose who follows whom across
/// servers, which the user never chose to publish.
#[get("/users/{uid}/followers")]
async fn followers(
    state: web::Data<AppState>,
    uid: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let user = match sharing_user(&state, uid.into_inner()).await? {
        Ok(user) => user,
        Err(answer) => return Ok(answer),
    };
    let id = user.id;
    let total = state
        .db
        .run(move |c| follows::count_accepted(c, id))
        .await?;
    Ok(negotiate::activity_json(&OrderedCollection::<String> {
        context: Context,
        id: state.urls.followers(&user.platform_user_id).to_string(),
        kind: "OrderedCollection",
        total_items: total,
        first: None,
        ordered_items: None,
    }))
}

#[get("/users/{uid}/following")]
async fn following(
    state: web::Data<AppState>,
    uid: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let user = match sharing_user(&state, uid.into_inner()).await? {
        Ok(user) => user,
        Err(answer) => return Ok(answer),
    };
    Ok(negotiate::activity_json(&OrderedCollection::<String> {
        context: Context,
        id: state.urls.following(&user.platform_user_id).to_string(),
        kind: "OrderedCollection",
        total_items: 0,
        first: None,
        ordered_items: Some(Vec::new()),
    }))
}

#[get("/users/{uid}/featured")]
async fn featured(
    state: web::Data<AppState>,
    uid: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let user = match sharing_user(&state, uid.into_inner()).await? {
        Ok(user) => user,
        Err(answer) => return Ok(answer),
    };
    let urls = state.urls.clone();
    let id = user.id;
    let items = state
        .db
        .run(move |c| {
            let author =
                users::find(c, id)?.ok_or_else(|| Error::Storage("user vanished".into()))?;
            posts::featured(c, id)?
                .iter()
                .map(|p| notes::build(c, p, &author, &urls).map(Note::embedded))
                .collect::<Result<Vec<_>, Error>>()
        })
        .await?;
    Ok(negotiate::activity_json(&OrderedCollection {
        context: Context,
        id: state.urls.featured(&user.platform_user_id).to_string(),
        kind: "OrderedCollection",
        total_items: items.len() as i64,
        first: None,
        ordered_items: Some(items),
    }))
}

#[get("/actor")]
async fn instance_actor(state: web::Data<AppState>) -> Result<HttpResponse, Error> {
    let key = state.db.run(|c| keys::active(c, None)).await?;
    let key = key.ok_or_else(|| Error::Storage("the instance actor has no key".into()))?;
    Ok(negotiate::activity_json(&Actor::instance(
        &key.public_key_pem,
        &state.urls,
    )))
}
