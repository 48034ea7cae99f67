//! The consent check at send time: an activity queued while a user shared, or while a post
//! was public, must not leave once that is no longer true (DESIGN §6, "Nothing leaves that
//! should not"). Taking things back (Delete, Undo, Block, Reject) always goes.

use url::Url;

use crate::{
    db::{AnyConnection, posts, users},
    error::Error,
    federation::{
        protocol::activity::ActivityType,
        urls::{LocalObject, Urls},
    },
    opt_in::SharingState,
};

/// Whether a queued activity may still be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// Send it.
    Send,
    /// Do not send it to anyone; why.
    Withhold(Withheld),
}

/// Why an activity is withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// The post is no longer public, was deleted, excluded or retracted.
    PostNotShareable,
    /// The author no longer shares (`off` or `paused`).
    NotSharing,
    /// The user turned sharing off or is gone.
    UserOff,
    /// The stored type is not one the bridge sends.
    UnknownKind,
}

impl Withheld {
    /// Short reason for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PostNotShareable => "post not shareable",
            Self::NotSharing => "author not sharing",
            Self::UserOff => "user off",
            Self::UnknownKind => "unknown activity type",
        }
    }
}

/// The activity type of a stored `kind`.
pub fn activity_type(kind: &str) -> Option<ActivityType> {
    serde_json::from_value(serde_json::Value::String(kind.to_owned())).ok()
}

/// Whether `object` is a Note of ours, by platform post id.
pub fn local_note(urls: &Urls, object: Option<&str>) -> Option<String> {
    let url = Url::parse(object?).ok()?;
    match urls.parse_local(&url)? {
        LocalObject::Note(id) => Some(id),
        _ => None,
    }
}

/// Decides whether an activity of `user` (`None` = the instance actor) about `object` may
/// be sent now.
pub fn check(
    conn: &mut AnyConnection,
    urls: &Urls,
    kind: &str,
    user: Option<users::UserId>,
    object: Option<&str>,
) -> Result<Consent, Error> {
    let Some(kind) = activity_type(kind) else {
        return Ok(Consent::Withhold(Withheld::UnknownKind));
    };
    let Some(user_id) = user else {
        // The instance actor speaks for the server, not for a user who could withdraw.
        return Ok(Consent::Send);
    };
    if matches!(
        kind,
        ActivityType::Delete
            | ActivityType::Undo
            | ActivityType::Block
            | ActivityType::Reject
            | ActivityType::Flag
    ) {
        return Ok(Consent::Send);
    }
    let sharing = match users::find(conn, user_id)? {
        Some(user) if user.deleted_at.is_none() => user.sharing(),
        _ => return Ok(Consent::Withhold(Withheld::UserOff)),
    };
    let allowed = |ok: bool, why: Withheld| {
        if ok {
            Consent::Send
        } else {
            Consent::Withhold(why)
        }
    };
    let on = sharing == SharingState::On;
    let not_off = sharing != SharingState::Off;
    Ok(match kind {
        // A follower waiting for an answer gets it while the actor exists at all.
        ActivityType::Accept | ActivityType::Move => allowed(not_off, Withheld::UserOff),
        ActivityType::Create | ActivityType::Update => {
            if let Some(post_id) = local_note(urls, object) {
                let shareable = posts::find_by_platform_id(conn, &post_id)?
                    .is_some_and(|p| p.user_id == user_id && p.content_is_shareable());
                if !shareable {
                    Consent::Withhold(Withheld::PostNotShareable)
                } else {
                    allowed(on, Withheld::NotSharing)
                }
            } else if kind == ActivityType::Update && is_local_actor(urls, object) {
                // Profile updates keep followers' copies right while paused too.
                allowed(not_off, Withheld::UserOff)
            } else {
                allowed(on, Withheld::NotSharing)
            }
        }
        _ => allowed(on, Withheld::NotSharing),
    })
}

fn is_local_actor(urls: &Urls, object: Option<&str>) -> bool {
    object
        .and_then(|o| Url::parse(o).ok())
        .and_then(|u| urls.parse_local(&u))
        .is_some_and(|o| matches!(o, LocalObject::Actor(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_kinds_parse_to_activity_types() {
        assert_eq!(activity_type("Create"), Some(ActivityType::Create));
        assert_eq!(activity_type("Delete"), Some(ActivityType::Delete));
        assert_eq!(activity_type("Accept"), Some(ActivityType::Accept));
        assert_eq!(activity_type("create"), None);
        assert_eq!(activity_type("Explode"), None);
    }
}
