//! `Follow` of a local actor.

use platform_adapter::events::{FollowerChange, OutboundPayload};

use super::context::{Applied, Cx};
use crate::{
    db::{
        AnyConnection,
        blocks::InstanceBlockSeverity,
        follows::{self, FollowState},
        users::{User, UserId},
    },
    error::Error,
    federation::outbound,
    opt_in::SharingState,
    settings::InboxSettings,
    to_platform,
};

/// How many accounts of one remote host may follow local users (`[inbox]`; 0: no cap).
///
/// Both caps bound what one server's accounts can make us store and tell the platform: the
/// per-user cap stops a server's bot accounts from piling follows (and follow
/// notifications) onto one person; the per-host cap stops them from following everybody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FollowCaps {
    per_user: u64,
    per_host: u64,
}

impl FollowCaps {
    pub fn from_settings(settings: &InboxSettings) -> Self {
        Self {
            per_user: settings.max_followers_per_host_per_user,
            per_host: settings.max_followers_per_host,
        }
    }

    /// The cap that the follows of `user` from `host`, a new one already counted, go
    /// beyond, if any.
    fn exceeded(
        self,
        conn: &mut AnyConnection,
        user: UserId,
        host: &str,
    ) -> Result<Option<FollowCap>, Error> {
        let beyond = |cap: u64| cap.saturating_add(1);
        let (per_user, per_host) = match (self.per_user, self.per_host) {
            (0, 0) => return Ok(None),
            (0, cap) => (
                false,
                follows::from_host_at_least(conn, host, None, beyond(cap))?,
            ),
            (cap, 0) => (
                follows::from_host_at_least(conn, host, Some(user), beyond(cap))?,
                false,
            ),
            (user_cap, host_cap) => follows::from_host_at_least_both(
                conn,
                host,
                user,
                beyond(user_cap),
                beyond(host_cap),
            )?,
        };
        Ok(if per_user {
            Some(FollowCap::PerUser)
        } else if per_host {
            Some(FollowCap::PerHost)
        } else {
            None
        })
    }
}

/// The follow cap a Follow was rejected for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FollowCap {
    /// `inbox.max_followers_per_host_per_user`.
    PerUser,
    /// `inbox.max_followers_per_host`.
    PerHost,
}

impl FollowCap {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerUser => "per_user",
            Self::PerHost => "per_host",
        }
    }
}

/// Records the follow and answers it: Accept at once, or later when the user approves
/// (locked accounts); Reject when the user or the administrator blocks the follower, or when
/// a new follower would take its host beyond a follow cap.
pub(super) fn apply(conn: &mut AnyConnection, cx: &Cx) -> Result<Applied, Error> {
    let Some(target) = cx.activity.object_id() else {
        return Ok(Applied::ignored());
    };
    let Some((user, blocks_actor)) = cx.local_user_blocking(conn, &target)? else {
        return Ok(Applied::ignored());
    };
    // Paused or off: the actor is unavailable, so there is no one to follow.
    if user.sharing() != SharingState::On {
        return Ok(Applied::ignored());
    }
    let follows_refused = cx.host_block == Some(InstanceBlockSeverity::FollowsOnly);
    if follows_refused || blocks_actor {
        return reject(conn, cx, &user);
    }
    let state = if user.manually_approves_followers {
        FollowState::Pending
    } else {
        FollowState::Accepted
    };
    let (follow, created) = follows::upsert(
        conn,
        user.id,
        cx.actor.id,
        cx.activity.id.as_str(),
        state,
        cx.now,
    )?;
    // Only a new follower counts against a cap (it is checked once stored, counted with the
    // others): a repeated Follow of an existing one is answered as before, and lowering a
    // cap never drops followers.
    if created && let Some(cap) = cx.follow_caps.exceeded(conn, user.id, &cx.actor.host)? {
        tracing::info!(
            host = %cx.actor.host,
            cap = cap.as_str(),
            "follow rejected: the host is at its follow cap"
        );
        // Taken back before anyone heard of it, so `reject` finds no follow to announce.
        follows::remove(conn, user.id, cx.actor.id)?;
        let mut applied = reject(conn, cx, &user)?;
        applied.over_cap = Some(cap);
        return Ok(applied);
    }
    // A repeated Follow (new id) of an accepted follow is accepted again, as Mastodon
    // does, so that a follower who lost our Accept recovers.
    let accepted = follow.is_accepted();
    if accepted {
        outbound::answer_follow(
            conn,
            &user,
            &cx.actor,
            cx.activity.id.as_str(),
            true,
            &cx.urls,
            cx.now,
        )?;
    }
    if created {
        let change = FollowerChange {
            user_id: to_platform::user_id(&user.platform_user_id)?,
            follower: cx.account()?,
            pending: !accepted,
        };
        cx.notify(
            conn,
            &format!("follower.added:{}", cx.activity.id),
            &user,
            OutboundPayload::FollowerAdded(change),
        )?;
    }
    Ok(if accepted {
        Applied::accepted_with_delivery()
    } else {
        Applied::accepted()
    })
}

fn reject(conn: &mut AnyConnection, cx: &Cx, user: &User) -> Result<Applied, Error> {
    outbound::answer_follow(
        conn,
        user,
        &cx.actor,
        cx.activity.id.as_str(),
        false,
        &cx.urls,
        cx.now,
    )?;
    if let Some(existing) = follows::find(conn, user.id, cx.actor.id)? {
        follows::remove(conn, user.id, cx.actor.id)?;
        let change = FollowerChange {
            user_id: to_platform::user_id(&user.platform_user_id)?,
            follower: cx.account()?,
            pending: !existing.is_accepted(),
        };
        cx.notify(
            conn,
            &format!("follower.removed:{}", cx.activity.id),
            user,
            OutboundPayload::FollowerRemoved(change),
        )?;
    }
    Ok(Applied::accepted_with_delivery())
}
