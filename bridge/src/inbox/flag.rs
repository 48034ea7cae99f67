//! `Flag`: a remote server reports local users or posts.

use std::collections::BTreeMap;

use platform_adapter::events::{OutboundPayload, PostId, ReportReceived, Reporter, ServerRef};
use serde_json::Value;

use super::{
    context::{Applied, Cx},
    parse::value_id,
    sanitize::{plain_text, sanitize_html},
};
use crate::{
    db::{AnyConnection, posts, users::User},
    error::Error,
    federation::urls::LocalObject,
    opt_in::SharingState,
    to_platform,
};

/// Objects of a report looked at, at most.
const MAX_OBJECTS: usize = 200;
/// Contract limits.
const MAX_POSTS: usize = 100;
const MAX_COMMENT: usize = 5_000;

/// One report per reported user, naming that user's reported posts.
pub(super) fn apply(conn: &mut AnyConnection, cx: &Cx) -> Result<Applied, Error> {
    let urls: Vec<url::Url> = match &cx.activity.object {
        Value::Array(items) => items
            .iter()
            .take(MAX_OBJECTS)
            .filter_map(value_id)
            .collect(),
        other => value_id(other).into_iter().collect(),
    };
    let mut reported: BTreeMap<i64, (User, Vec<PostId>)> = BTreeMap::new();
    for url in &urls {
        match cx.urls.parse_local(url) {
            Some(LocalObject::Actor(_)) => {
                if let Some(user) = cx.local_user(conn, url)? {
                    reported
                        .entry(user.id.0)
                        .or_insert_with(|| (user, Vec::new()));
                }
            }
            Some(LocalObject::Note(pid)) => {
                let Some(post) = posts::find_by_platform_id(conn, &pid)? else {
                    continue;
                };
                let Some(author) = crate::db::users::find(conn, post.user_id)? else {
                    continue;
                };
                let entry = reported
                    .entry(author.id.0)
                    .or_insert_with(|| (author, Vec::new()));
                if entry.1.len() < MAX_POSTS {
                    entry.1.push(to_platform::post_id(&post.platform_post_id)?);
                }
            }
            _ => {}
        }
    }

    let comment: String = plain_text(&sanitize_html(cx.activity.content.as_deref().unwrap_or("")))
        .chars()
        .take(MAX_COMMENT)
        .collect();
    // Mastodon files reports as its instance actor (an Application), anonymously.
    let reporter = if cx.actor.kind == "Application" {
        Reporter::Server(ServerRef {
            server: cx.actor.host.clone(),
        })
    } else {
        Reporter::Account(Box::new(cx.account()?))
    };
    let mut filed = false;
    for (user, post_ids) in reported.into_values() {
        if user.sharing() == SharingState::Off {
            continue;
        }
        let report = ReportReceived {
            user_id: Some(to_platform::user_id(&user.platform_user_id)?),
            post_ids,
            reporter: reporter.clone(),
            comment: comment.clone(),
            server: cx.actor.host.clone(),
        };
        filed |= cx.notify(
            conn,
            &format!("flag:{}:{}", cx.activity.id, user.platform_user_id),
            &user,
            OutboundPayload::ReportReceived(report),
        )?;
    }
    Ok(Applied::done_if(filed))
}
