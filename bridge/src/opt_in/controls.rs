//! What a user (or the platform on their behalf) can do besides turning sharing on and off:
//! manage followers and follow requests, block accounts and servers, keep a post off the
//! fediverse or take it back. Each runs in the caller's transaction with its audit entry and,
//! where the platform must know, its message.

use platform_adapter::events::{FollowerChange, OutboundPayload};
use serde::Serialize;
use serde_json::json;

use super::lifecycle::Context;
use crate::{
    db::{
        AnyConnection, audit, follower_list,
        follows::{self, Follow},
        posts::{self, FederationState},
        remote_actors::{self, RemoteActor},
        user_blocks::{self, BlockTarget},
        users::User,
    },
    error::Error,
    federation::{block_activity, outbound},
    to_platform,
};

/// Why a control could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refused {
    /// The actor does not follow the user (or has no request waiting).
    NoSuchFollower,
    /// The user has no such post.
    NoSuchPost,
    /// The post is in a state that does not allow the change.
    PostState {
        /// Its current state.
        state: FederationState,
    },
    /// The user has no such block.
    NoSuchBlock,
}

impl Refused {
    /// Whether the thing acted on does not exist (HTTP 404) rather than being in the wrong
    /// state (HTTP 409).
    pub fn is_missing(&self) -> bool {
        !matches!(self, Self::PostState { .. })
    }

    /// A sentence for people.
    pub fn message(&self) -> String {
        match self {
            Self::NoSuchFollower => "This account does not follow you.".into(),
            Self::NoSuchPost => "There is no such post.".into(),
            Self::PostState { state } => match state {
                FederationState::Federated => {
                    "This post was already shared; take it back (retract) instead.".into()
                }
                FederationState::Never => "This post was never shared.".into(),
                other => format!("This post is {}.", other.as_str()),
            },
            Self::NoSuchBlock => "There is no such block.".into(),
        }
    }
}

/// What blocking did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockOutcome {
    /// The block is new.
    pub created: bool,
    /// A `Block` activity was queued for the actor (only for known actors).
    pub block_sent: bool,
    /// Followers and follow requests dropped because of the block.
    pub followers_removed: usize,
}

fn follower_change(
    conn: &mut AnyConnection,
    user: &User,
    follower: &RemoteActor,
    pending: bool,
    added: bool,
    cx: Context<'_>,
) -> Result<(), Error> {
    let change = FollowerChange {
        user_id: to_platform::user_id(&user.platform_user_id)?,
        follower: to_platform::remote_account(follower)?,
        pending,
    };
    let (verb, payload) = if added {
        ("added", OutboundPayload::FollowerAdded(change))
    } else {
        ("removed", OutboundPayload::FollowerRemoved(change))
    };
    to_platform::enqueue(
        conn,
        &format!(
            "follower:{verb}:{}:{}:{}",
            user.platform_user_id, follower.ap_id, cx.now
        ),
        &user.platform_user_id,
        payload,
        cx.now,
    )?;
    Ok(())
}

/// Drops a follow and tells the follower's server with `Reject(Follow)`, which is how
/// Mastodon's "remove follower" makes the remote side forget it.
pub(crate) fn drop_follow(
    conn: &mut AnyConnection,
    user: &User,
    follow: &Follow,
    follower: &RemoteActor,
    action: &str,
    cx: Context<'_>,
) -> Result<(), Error> {
    outbound::answer_follow(
        conn,
        user,
        follower,
        &follow.follow_activity_id,
        false,
        cx.urls,
        cx.now,
    )?;
    follows::remove(conn, user.id, follower.id)?;
    audit::record(
        conn,
        Some(user.id),
        action,
        cx.initiator,
        &json!({ "actor": follower.ap_id, "was_pending": !follow.is_accepted() }),
        cx.now,
    )?;
    follower_change(conn, user, follower, !follow.is_accepted(), false, cx)
}

/// Removes an accepted follower.
pub fn remove_follower(
    conn: &mut AnyConnection,
    user: &User,
    actor_url: &str,
    cx: Context<'_>,
) -> Result<Result<(), Refused>, Error> {
    match follower_list::by_actor_url(conn, user.id, actor_url)? {
        Some((follow, actor)) if follow.is_accepted() => {
            drop_follow(conn, user, &follow, &actor, "follower.removed", cx)?;
            Ok(Ok(()))
        }
        _ => Ok(Err(Refused::NoSuchFollower)),
    }
}

/// Approves (`Accept`) or refuses (`Reject`) a follow request waiting for the user.
pub fn answer_request(
    conn: &mut AnyConnection,
    user: &User,
    actor_url: &str,
    approve: bool,
    cx: Context<'_>,
) -> Result<Result<(), Refused>, Error> {
    let Some((follow, actor)) = follower_list::by_actor_url(conn, user.id, actor_url)?
        .filter(|(follow, _)| !follow.is_accepted())
    else {
        return Ok(Err(Refused::NoSuchFollower));
    };
    if !approve {
        drop_follow(conn, user, &follow, &actor, "follower.refused", cx)?;
        return Ok(Ok(()));
    }
    follows::accept(conn, follow.id, cx.now)?;
    outbound::answer_follow(
        conn,
        user,
        &actor,
        &follow.follow_activity_id,
        true,
        cx.urls,
        cx.now,
    )?;
    audit::record(
        conn,
        Some(user.id),
        "follower.approved",
        cx.initiator,
        &json!({ "actor": actor.ap_id }),
        cx.now,
    )?;
    follower_change(conn, user, &actor, false, true, cx)?;
    Ok(Ok(()))
}

/// Blocks an actor or a whole server: its followers are dropped (with `Reject(Follow)`),
/// and a known actor is sent a `Block`.
pub fn block(
    conn: &mut AnyConnection,
    user: &User,
    target: &BlockTarget,
    cx: Context<'_>,
) -> Result<BlockOutcome, Error> {
    let created = user_blocks::add(conn, user.id, target, cx.now)?;
    let affected = match target {
        BlockTarget::Actor(url) => follower_list::by_actor_url(conn, user.id, url)?
            .into_iter()
            .collect(),
        BlockTarget::Domain(domain) => follower_list::on_domain(conn, user.id, domain.as_str())?,
    };
    let followers_removed = affected.len();
    for (follow, actor) in &affected {
        drop_follow(conn, user, follow, actor, "follower.removed_by_block", cx)?;
    }
    let mut block_sent = false;
    if let BlockTarget::Actor(url) = target
        && created
        && let Some(actor) = remote_actors::find_by_ap_id(conn, url)?
    {
        block_activity::block(conn, user, &actor, cx.urls, cx.now)?;
        block_sent = true;
    }
    audit::record(
        conn,
        Some(user.id),
        "block.added",
        cx.initiator,
        &json!({
            "kind": target.kind(),
            "target": target.value(),
            "followers_removed": followers_removed,
            "block_sent": block_sent,
        }),
        cx.now,
    )?;
    Ok(BlockOutcome {
        created,
        block_sent,
        followers_removed,
    })
}

/// Lifts a block; a `Block` sent earlier is undone.
pub fn unblock(
    conn: &mut AnyConnection,
    user: &User,
    target: &BlockTarget,
    cx: Context<'_>,
) -> Result<Result<(), Refused>, Error> {
    if !user_blocks::remove(conn, user.id, target)? {
        return Ok(Err(Refused::NoSuchBlock));
    }
    if let BlockTarget::Actor(url) = target
        && let Some(block_ap_id) = user_blocks::last_block_activity(conn, user.id, url)?
        && let Some(actor) = remote_actors::find_by_ap_id(conn, url)?
    {
        block_activity::undo_block(conn, user, &actor, &block_ap_id, cx.urls, cx.now)?;
    }
    audit::record(
        conn,
        Some(user.id),
        "block.removed",
        cx.initiator,
        &json!({ "kind": target.kind(), "target": target.value() }),
        cx.now,
    )?;
    Ok(Ok(()))
}

fn own_post(
    conn: &mut AnyConnection,
    user: &User,
    platform_post_id: &str,
) -> Result<Option<posts::Post>, Error> {
    Ok(posts::find_by_platform_id(conn, platform_post_id)?.filter(|p| p.user_id == user.id))
}

/// Keeps a post that never federated off the fediverse for good.
pub fn exclude_post(
    conn: &mut AnyConnection,
    user: &User,
    platform_post_id: &str,
    cx: Context<'_>,
) -> Result<Result<FederationState, Refused>, Error> {
    let Some(post) = own_post(conn, user, platform_post_id)? else {
        return Ok(Err(Refused::NoSuchPost));
    };
    match post.federation() {
        FederationState::Excluded => return Ok(Ok(FederationState::Excluded)),
        FederationState::Never => {}
        state => return Ok(Err(Refused::PostState { state })),
    }
    posts::set_federation_state(conn, post.id, FederationState::Excluded, cx.now)?;
    audit::record(
        conn,
        Some(user.id),
        "post.excluded",
        cx.initiator,
        &json!({ "post_id": platform_post_id }),
        cx.now,
    )?;
    Ok(Ok(FederationState::Excluded))
}

/// Takes a federated post back from the fediverse (`Delete` to everyone who had it); it
/// stays on the platform.
pub fn retract_post(
    conn: &mut AnyConnection,
    user: &User,
    platform_post_id: &str,
    cx: Context<'_>,
) -> Result<Result<FederationState, Refused>, Error> {
    let Some(post) = own_post(conn, user, platform_post_id)? else {
        return Ok(Err(Refused::NoSuchPost));
    };
    match post.federation() {
        FederationState::Retracted => return Ok(Ok(FederationState::Retracted)),
        FederationState::Federated => {}
        state => return Ok(Err(Refused::PostState { state })),
    }
    outbound::retract_post(
        conn,
        &post,
        user,
        cx.urls,
        FederationState::Retracted,
        cx.now,
    )?;
    audit::record(
        conn,
        Some(user.id),
        "post.retracted",
        cx.initiator,
        &json!({ "post_id": platform_post_id }),
        cx.now,
    )?;
    Ok(Ok(FederationState::Retracted))
}
