//! `Flag` from the instance actor: a platform user's report forwarded to the reported
//! account's server, stored and queued like every other outbound activity (in the
//! caller's transaction).
//!
//! Shaped as Mastodon forwards reports: the instance actor (never the reporter) as
//! `actor`, the account followed by the reported posts as `object`, the comment as
//! `content`. Delivered to the account's shared inbox when it has one.

use serde::Serialize;

use super::{
    protocol::{activity::ActivityType, context::Context},
    urls::Urls,
};
use crate::{
    db::{
        AnyConnection,
        activities::{self, Priority},
        remote_actors::RemoteActor,
    },
    error::Error,
};

/// The document sent.
#[derive(Debug, Serialize)]
struct Flag<'a> {
    #[serde(rename = "@context")]
    context: Context,
    id: &'a str,
    #[serde(rename = "type")]
    kind: ActivityType,
    actor: &'a str,
    object: Vec<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    content: &'a str,
    to: [&'a str; 1],
}

/// Queues a `Flag` of `target` (and its `objects`) to the target's server; returns the
/// Flag's ActivityPub id.
pub fn forward_report(
    conn: &mut AnyConnection,
    target: &RemoteActor,
    objects: &[String],
    comment: &str,
    urls: &Urls,
    now: i64,
) -> Result<String, Error> {
    let ap_id = urls.activity(&uuid::Uuid::now_v7().to_string()).to_string();
    let actor = urls.instance_actor().to_string();
    let flag = Flag {
        context: Context,
        id: &ap_id,
        kind: ActivityType::Flag,
        actor: &actor,
        object: std::iter::once(target.ap_id.as_str())
            .chain(objects.iter().map(String::as_str))
            .collect(),
        content: comment,
        to: [&target.ap_id],
    };
    let payload = serde_json::to_string(&flag).map_err(|e| Error::Storage(e.to_string()))?;
    let id = activities::insert(
        conn,
        &ap_id,
        ActivityType::Flag.as_str(),
        None,
        Some(&target.ap_id),
        Priority::Response,
        &payload,
        now,
    )?;
    activities::enqueue_deliveries(
        conn,
        id,
        &[target.delivery_inbox().to_owned()],
        Priority::Response,
        now,
    )?;
    Ok(ap_id)
}
