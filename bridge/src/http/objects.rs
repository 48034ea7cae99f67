//! Posts as Notes (or Tombstones), their Create activities and replies, and stored activities.

use actix_web::{HttpRequest, HttpResponse, get, web};
use diesel::prelude::*;

use super::{AppState, negotiate, negotiate::Wants, pages};
use crate::{
    db::{
        activities,
        posts::{self, FederationState, Post},
        schema::remote_interactions,
        users::{self, User},
    },
    error::Error,
    federation::{
        notes,
        protocol::{
            activity::{Activity, ActivityType},
            collection::OrderedCollection,
            context::Context,
            note::{Note, Tombstone},
        },
    },
    opt_in::SharingState,
};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(post_note)
        .service(create_activity)
        .service(replies)
        .service(stored_activity);
}

enum Lookup {
    Visible(Box<(Post, User, Note)>),
    Gone(Box<Post>),
    Missing,
}

/// Decides, at request time, whether a post may be shown: the same rule as at send time.
async fn lookup(state: &AppState, pid: String) -> Result<Lookup, Error> {
    let urls = state.urls.clone();
    state
        .db
        .run(move |c| {
            let Some(post) = posts::find_by_platform_id(c, &pid)? else {
                return Ok(Lookup::Missing);
            };
            let Some(author) = users::find(c, post.user_id)? else {
                return Ok(Lookup::Missing);
            };
            let was_out = post.federated_at.is_some();
            match post.federation() {
                FederationState::Deleted | FederationState::Retracted if was_out => {
                    return Ok(Lookup::Gone(Box::new(post)));
                }
                _ if was_out && author.opted_out() => return Ok(Lookup::Gone(Box::new(post))),
                _ => {}
            }
            let shareable = post.federation() == FederationState::Federated
                && post.content_is_shareable()
                && author.sharing() == SharingState::On;
            if !shareable {
                return Ok(Lookup::Missing);
            }
            let note = notes::build(c, &post, &author, &urls)?;
            Ok(Lookup::Visible(Box::new((post, author, note))))
        })
        .await
}

fn tombstone(state: &AppState, post: &Post) -> HttpResponse {
    negotiate::gone(&Tombstone::new(
        state.urls.note(&post.platform_post_id).to_string(),
        "Note",
        post.deleted_at.or(Some(post.updated_at)),
    ))
}

#[get("/posts/{pid}")]
async fn post_note(
    state: web::Data<AppState>,
    req: HttpRequest,
    pid: web::Path<String>,
) -> Result<HttpResponse, Error> {
    Ok(match lookup(&state, pid.into_inner()).await? {
        Lookup::Visible(found) => {
            let (post, author, note) = *found;
            if negotiate::wants(&req) == Wants::Html {
                negotiate::html(pages::post(&author, &post, &note, &state.urls))
            } else {
                negotiate::activity_json(&note)
            }
        }
        Lookup::Gone(post) => tombstone(&state, &post),
        Lookup::Missing => negotiate::not_found(),
    })
}

#[get("/posts/{pid}/activity")]
async fn create_activity(
    state: web::Data<AppState>,
    pid: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let pid = pid.into_inner();
    Ok(match lookup(&state, pid.clone()).await? {
        Lookup::Visible(found) => {
            let (_, _, note) = *found;
            negotiate::activity_json(&Activity {
                context: Context,
                id: state.urls.create_activity(&pid).to_string(),
                kind: ActivityType::Create,
                actor: note.attributed_to.clone(),
                to: note.to.clone(),
                cc: note.cc.clone(),
                published: Some(note.published.clone()),
                target: None,
                object: note.embedded(),
            })
        }
        Lookup::Gone(post) => tombstone(&state, &post),
        Lookup::Missing => negotiate::not_found(),
    })
}

/// Replies we know of, so remote servers can rebuild the thread.
#[get("/posts/{pid}/replies")]
async fn replies(
    state: web::Data<AppState>,
    pid: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let pid = pid.into_inner();
    let (post, _, _) = match lookup(&state, pid.clone()).await? {
        Lookup::Visible(found) => *found,
        Lookup::Gone(post) => return Ok(tombstone(&state, &post)),
        Lookup::Missing => return Ok(negotiate::not_found()),
    };
    let post_id = post.id;
    let items: Vec<String> = state
        .db
        .run(move |c| {
            Ok(remote_interactions::table
                .filter(remote_interactions::post_id.eq(post_id.0))
                .filter(remote_interactions::kind.eq("reply"))
                .filter(remote_interactions::undone_at.is_null())
                .order(remote_interactions::id.asc())
                .limit(200)
                .select(remote_interactions::ap_id)
                .load(c)?)
        })
        .await?;
    Ok(negotiate::activity_json(&OrderedCollection {
        context: Context,
        id: state.urls.replies(&pid).to_string(),
        kind: "OrderedCollection",
        total_items: items.len() as i64,
        first: None,
        ordered_items: Some(items),
    }))
}

/// Stored activities (Update, Delete, Accept, …) are served while their actor shares.
/// Reports (`Flag`) never are: they are for the reported server's moderators only.
#[get("/activities/{uuid}")]
async fn stored_activity(
    state: web::Data<AppState>,
    uuid: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let ap_id = state.urls.activity(&uuid.into_inner()).to_string();
    let found = state
        .db
        .run(move |c| {
            let Some(activity) = activities::find_by_ap_id(c, &ap_id)? else {
                return Ok(None);
            };
            if activity.kind == ActivityType::Flag.as_str() {
                return Ok(None);
            }
            let sharing = match activity.user_id {
                Some(id) => users::find(c, users::UserId(id))?
                    .is_some_and(|u| u.sharing() == SharingState::On),
                None => true,
            };
            Ok(sharing.then_some(activity))
        })
        .await?;
    Ok(match found {
        Some(activity) => HttpResponse::Ok()
            .content_type(crate::federation::protocol::ACTIVITY_JSON)
            .body(activity.payload),
        None => negotiate::not_found(),
    })
}
