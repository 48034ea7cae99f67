//! Turning changes into stored outbound activities and queued deliveries.
//!
//! Everything here runs inside the caller's transaction: the change, the activity and its
//! deliveries commit together or not at all. Nothing is sent here; the delivery engine signs
//! and sends later, re-checking consent at send time.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::json;

use super::{
    notes,
    protocol::{
        PUBLIC,
        activity::{Activity, ActivityType},
        actor::Actor,
        context::Context,
        note::Tombstone,
    },
    urls::Urls,
};
use crate::{
    db::{
        AnyConnection,
        activities::{self, ActivityId, NewActivity, Priority},
        follows, keys, ledger,
        posts::{self, FederationState, Post, PostInput},
        remote_actors::RemoteActor,
        users::{User, UserId},
    },
    error::Error,
    opt_in::SharingState,
};

fn new_activity_id(urls: &Urls) -> String {
    urls.activity(&uuid::Uuid::now_v7().to_string()).to_string()
}

fn store<O: Serialize>(
    conn: &mut AnyConnection,
    activity: &Activity<O>,
    user: &User,
    object_ap_id: Option<&str>,
    priority: Priority,
    inboxes: &[String],
    now: i64,
) -> Result<ActivityId, Error> {
    let payload = serde_json::to_string(activity).map_err(|e| Error::Storage(e.to_string()))?;
    let id = activities::insert(
        conn,
        &activity.id,
        activity.kind.as_str(),
        Some(user.id),
        object_ap_id,
        priority,
        &payload,
        now,
    )?;
    activities::enqueue_deliveries(conn, id, inboxes, priority, now)?;
    Ok(id)
}

fn union(mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
    a.extend(b);
    a.sort();
    a.dedup();
    a
}

/// Whether a post that is not stored yet goes out the moment it is stored: what
/// [`publish_post`] decides for a post in its first state (never federated, not deleted).
/// The caller stores it `Federated` and queues its `Create` with [`send_creates`] in the
/// same transaction, instead of storing it and changing its state right after.
pub fn publishes_on_arrival(author: &User, input: &PostInput) -> bool {
    author.sharing() == SharingState::On && input.content_is_shareable()
}

/// Publishes a post for the first time: `Create` to every follower. Does nothing (returns
/// `None`) unless the author shares and the post may be public on the fediverse.
pub fn publish_post(
    conn: &mut AnyConnection,
    post: &Post,
    author: &User,
    urls: &Urls,
    now: i64,
) -> Result<Option<ActivityId>, Error> {
    if author.sharing() != SharingState::On
        || !post.content_is_shareable()
        || post.federation() != FederationState::Never
    {
        return Ok(None);
    }
    posts::set_federation_state(conn, post.id, FederationState::Federated, now)?;
    Ok(send_creates(conn, &[(post, author)], urls, now)?.pop())
}

/// Queues the `Create` of each post to its author's followers, for posts that are already
/// `Federated` (by [`publish_post`], or stored so after [`publishes_on_arrival`]). However
/// many posts: one statement for the activities, one for the followers, one per few
/// thousand deliveries. Returns the activities in the order of `posts`.
pub fn send_creates(
    conn: &mut AnyConnection,
    posts: &[(&Post, &User)],
    urls: &Urls,
    now: i64,
) -> Result<Vec<ActivityId>, Error> {
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    let mut creates = Vec::with_capacity(posts.len());
    for (post, author) in posts {
        let note = notes::build(conn, post, author, urls)?;
        let object_id = note.id.clone();
        let activity = Activity {
            context: Context,
            id: urls.create_activity(&post.platform_post_id).to_string(),
            kind: ActivityType::Create,
            actor: note.attributed_to.clone(),
            to: note.to.clone(),
            cc: note.cc.clone(),
            published: Some(note.published.clone()),
            target: None,
            object: note.embedded(),
        };
        let payload =
            serde_json::to_string(&activity).map_err(|e| Error::Storage(e.to_string()))?;
        creates.push((activity.id, object_id, payload, author.id));
    }
    let new: Vec<NewActivity<'_>> = creates
        .iter()
        .map(|(ap_id, object_id, payload, author)| NewActivity {
            ap_id,
            kind: ActivityType::Create.as_str(),
            user: Some(*author),
            object_ap_id: Some(object_id.as_str()),
            priority: Priority::Content,
            payload,
        })
        .collect();
    let ids = activities::insert_many(conn, &new, now)?;
    let mut seen = HashSet::new();
    let authors: Vec<UserId> = posts
        .iter()
        .map(|(_, author)| author.id)
        .filter(|id| seen.insert(*id))
        .collect();
    let inboxes = follows::follower_inboxes_of(conn, &authors)?;
    let fan_outs: Vec<(ActivityId, &[String])> = ids
        .iter()
        .zip(posts)
        .filter_map(|(id, (_, author))| inboxes.get(&author.id).map(|i| (*id, i.as_slice())))
        .collect();
    activities::enqueue_many(conn, &fan_outs, Priority::Content, now)?;
    Ok(ids)
}

/// Sends an edit of a post that already federated. An edit never federates a post for the
/// first time: a post that never went out stays home.
pub fn update_post(
    conn: &mut AnyConnection,
    post: &Post,
    author: &User,
    urls: &Urls,
    now: i64,
) -> Result<Option<ActivityId>, Error> {
    if author.sharing() != SharingState::On
        || post.federation() != FederationState::Federated
        || !post.content_is_shareable()
    {
        return Ok(None);
    }
    let note = notes::build(conn, post, author, urls)?;
    let object_id = note.id.clone();
    let activity = Activity {
        context: Context,
        id: new_activity_id(urls),
        kind: ActivityType::Update,
        actor: note.attributed_to.clone(),
        to: note.to.clone(),
        cc: note.cc.clone(),
        published: note.updated.clone(),
        target: None,
        object: note.embedded(),
    };
    let inboxes = union(
        follows::follower_inboxes(conn, author.id)?,
        ledger::inboxes_for_object(conn, &object_id)?,
    );
    store(
        conn,
        &activity,
        author,
        Some(&object_id),
        Priority::Content,
        &inboxes,
        now,
    )
    .map(Some)
}

/// Takes a federated post back: `Delete` with a Tombstone to its followers and to every
/// server that received or fetched it. `final_state` is `Deleted` (gone from the platform)
/// or `Retracted` (kept on the platform, removed from the fediverse).
pub fn retract_post(
    conn: &mut AnyConnection,
    post: &Post,
    author: &User,
    urls: &Urls,
    final_state: FederationState,
    now: i64,
) -> Result<Option<ActivityId>, Error> {
    let was_federated = post.federation() == FederationState::Federated;
    posts::set_federation_state(conn, post.id, final_state, now)?;
    if !was_federated {
        return Ok(None);
    }
    let object_id = urls.note(&post.platform_post_id).to_string();
    let actor = urls.actor(&author.platform_user_id).to_string();
    let activity = Activity {
        context: Context,
        id: new_activity_id(urls),
        kind: ActivityType::Delete,
        actor,
        to: vec![PUBLIC.to_owned()],
        cc: vec![urls.followers(&author.platform_user_id).to_string()],
        published: None,
        target: None,
        object: Tombstone::new(object_id.clone(), "Note", Some(now)).embedded(),
    };
    let inboxes = union(
        follows::follower_inboxes(conn, author.id)?,
        ledger::inboxes_for_object(conn, &object_id)?,
    );
    store(
        conn,
        &activity,
        author,
        Some(&object_id),
        Priority::Removal,
        &inboxes,
        now,
    )
    .map(Some)
}

/// Sends the user's changed profile (`Update(Person)`) to their followers.
pub fn update_actor(
    conn: &mut AnyConnection,
    user: &User,
    urls: &Urls,
    now: i64,
) -> Result<Option<ActivityId>, Error> {
    if user.sharing() == SharingState::Off {
        return Ok(None);
    }
    let Some(key) = keys::active(conn, Some(user.id))? else {
        return Ok(None);
    };
    let mut person = serde_json::to_value(Actor::person(user, &key.public_key_pem, urls))
        .map_err(|e| Error::Storage(e.to_string()))?;
    if let Some(object) = person.as_object_mut() {
        object.remove("@context");
    }
    let actor = urls.actor(&user.platform_user_id).to_string();
    let activity = Activity {
        context: Context,
        id: new_activity_id(urls),
        kind: ActivityType::Update,
        actor: actor.clone(),
        to: vec![PUBLIC.to_owned()],
        cc: vec![urls.followers(&user.platform_user_id).to_string()],
        published: None,
        target: None,
        object: person,
    };
    let inboxes = follows::follower_inboxes(conn, user.id)?;
    store(
        conn,
        &activity,
        user,
        Some(&actor),
        Priority::Content,
        &inboxes,
        now,
    )
    .map(Some)
}

/// Deletes the actor everywhere it went (opt-out): followers and every server in the ledger.
pub fn delete_actor(
    conn: &mut AnyConnection,
    user: &User,
    urls: &Urls,
    now: i64,
) -> Result<Option<ActivityId>, Error> {
    let actor = urls.actor(&user.platform_user_id).to_string();
    let activity = Activity {
        context: Context,
        id: new_activity_id(urls),
        kind: ActivityType::Delete,
        actor: actor.clone(),
        to: vec![PUBLIC.to_owned()],
        cc: Vec::new(),
        published: None,
        target: None,
        object: actor.clone(),
    };
    let inboxes = union(
        follows::follower_inboxes(conn, user.id)?,
        ledger::inboxes_for_user(conn, user.id)?,
    );
    store(
        conn,
        &activity,
        user,
        Some(&actor),
        Priority::Removal,
        &inboxes,
        now,
    )
    .map(Some)
}

/// Answers a `Follow`: `Accept` or `Reject` to the follower's own inbox.
pub fn answer_follow(
    conn: &mut AnyConnection,
    user: &User,
    follower: &RemoteActor,
    follow_activity_id: &str,
    accept: bool,
    urls: &Urls,
    now: i64,
) -> Result<ActivityId, Error> {
    let actor = urls.actor(&user.platform_user_id).to_string();
    let activity = Activity {
        context: Context,
        id: new_activity_id(urls),
        kind: if accept {
            ActivityType::Accept
        } else {
            ActivityType::Reject
        },
        actor: actor.clone(),
        to: vec![follower.ap_id.clone()],
        cc: Vec::new(),
        published: None,
        target: None,
        object: json!({
            "id": follow_activity_id,
            "type": "Follow",
            "actor": follower.ap_id,
            "object": actor,
        }),
    };
    store(
        conn,
        &activity,
        user,
        Some(follow_activity_id),
        Priority::Response,
        std::slice::from_ref(&follower.inbox),
        now,
    )
}
