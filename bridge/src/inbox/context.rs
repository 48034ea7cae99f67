//! What every handler works with: the authenticated activity and its actor, and the lookups
//! and messages they share.

use platform_adapter::events::{OutboundPayload, RemoteAccount, RemoteContent};
use url::Url;

use super::{
    follow::{FollowCap, FollowCaps},
    note::RemoteNote,
    parse::InboundActivity,
};
use crate::{
    db::{
        AnyConnection, blocks,
        blocks::InstanceBlockSeverity,
        posts::{FederationState, Post},
        remote_actors::RemoteActor,
        users::{self, User},
    },
    error::Error,
    federation::urls::{LocalObject, Urls},
    opt_in::SharingState,
    to_platform,
};

/// What an inbound activity came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its effect is committed.
    Accepted,
    /// Already handled (a replay or redelivery): nothing was done again.
    Duplicate,
    /// Understood and authenticated, but it concerns nothing here (or nothing we act on).
    Ignored,
}

impl Outcome {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
        }
    }
}

/// A handler's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Applied {
    pub outcome: Outcome,
    /// An activity (Accept, Reject) was queued for delivery.
    pub deliveries_queued: bool,
    /// A Follow was rejected for this follow cap.
    pub over_cap: Option<FollowCap>,
}

impl Applied {
    pub fn accepted() -> Self {
        Self {
            outcome: Outcome::Accepted,
            deliveries_queued: false,
            over_cap: None,
        }
    }

    pub fn accepted_with_delivery() -> Self {
        Self {
            outcome: Outcome::Accepted,
            deliveries_queued: true,
            over_cap: None,
        }
    }

    pub fn ignored() -> Self {
        Self {
            outcome: Outcome::Ignored,
            deliveries_queued: false,
            over_cap: None,
        }
    }

    pub fn duplicate() -> Self {
        Self {
            outcome: Outcome::Duplicate,
            deliveries_queued: false,
            over_cap: None,
        }
    }

    /// `accepted` when something was done, `ignored` otherwise.
    pub fn done_if(done: bool) -> Self {
        if done {
            Self::accepted()
        } else {
            Self::ignored()
        }
    }
}

/// An authenticated activity and everything a handler needs besides the connection.
#[derive(Debug, Clone)]
pub(super) struct Cx {
    pub urls: Urls,
    pub activity: InboundActivity,
    /// The actor, whose key signed the request.
    pub actor: RemoteActor,
    pub now: i64,
    /// How many followers one remote host may have here.
    pub follow_caps: FollowCaps,
    /// The administrator's block of the actor's server, as looked up before
    /// authentication (a `Reject` never gets this far).
    pub host_block: Option<InstanceBlockSeverity>,
}

impl Cx {
    /// The actor as the platform sees it.
    pub fn account(&self) -> Result<RemoteAccount, Error> {
        to_platform::remote_account(&self.actor)
    }

    /// The local user whose actor URL is `url` (any sharing state).
    pub fn local_user(&self, conn: &mut AnyConnection, url: &Url) -> Result<Option<User>, Error> {
        match self.urls.parse_local(url) {
            Some(LocalObject::Actor(uid)) => users::find_by_platform_id(conn, &uid),
            _ => Ok(None),
        }
    }

    /// The local user whose actor URL is `url` (any sharing state), and whether they block
    /// the actor or its server.
    pub fn local_user_blocking(
        &self,
        conn: &mut AnyConnection,
        url: &Url,
    ) -> Result<Option<(User, bool)>, Error> {
        match self.urls.parse_local(url) {
            Some(LocalObject::Actor(uid)) => {
                blocks::user_with_block(conn, &uid, &self.actor.ap_id, &self.actor.host)
            }
            _ => Ok(None),
        }
    }

    /// The local post whose Note URL is `url`, with its author and whether the author
    /// blocks the actor or its server, when it is on the fediverse right now: federated,
    /// still shareable, and its author sharing.
    pub fn visible_post(
        &self,
        conn: &mut AnyConnection,
        url: &Url,
    ) -> Result<Option<(Post, User, bool)>, Error> {
        let Some(LocalObject::Note(pid)) = self.urls.parse_local(url) else {
            return Ok(None);
        };
        let Some((post, author, blocked)) =
            blocks::post_with_block(conn, &pid, &self.actor.ap_id, &self.actor.host)?
        else {
            return Ok(None);
        };
        if post.federation() != FederationState::Federated || !post.content_is_shareable() {
            return Ok(None);
        }
        Ok((author.sharing() == SharingState::On).then_some((post, author, blocked)))
    }

    /// Writes a message to the platform about `user`, unless the user turned sharing off
    /// (after an opt-out nothing from the fediverse reaches them). Returns whether written.
    pub fn notify(
        &self,
        conn: &mut AnyConnection,
        cause: &str,
        user: &User,
        payload: OutboundPayload,
    ) -> Result<bool, Error> {
        if user.sharing() == SharingState::Off {
            return Ok(false);
        }
        to_platform::enqueue(conn, cause, &user.platform_user_id, payload, self.now)
    }

    /// A received Note as platform content for `user` (and `post`, when it answers one).
    pub fn content(
        &self,
        note: &RemoteNote,
        user: &User,
        post: Option<&Post>,
    ) -> Result<RemoteContent, Error> {
        Ok(RemoteContent {
            user_id: to_platform::user_id(&user.platform_user_id)?,
            post_id: post
                .map(|p| to_platform::post_id(&p.platform_post_id))
                .transpose()?,
            remote_object_id: note.id.clone(),
            by: self.account()?,
            content_html: note.content_html.clone(),
            content_text: note.content_text.clone(),
            language: note.language.clone(),
            in_reply_to: note.in_reply_to.clone(),
            published_at: note.published,
            url: note.url.clone(),
            sensitive: note.sensitive,
            content_warning: note.content_warning.clone(),
        })
    }
}
