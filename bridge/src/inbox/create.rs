//! `Create` of a Note that replies to, quotes or mentions local users.

use platform_adapter::events::OutboundPayload;
use serde_json::Value;

use super::{
    context::{Applied, Cx},
    note::{RemoteNote, read_note},
    parse::InboundActivity,
    rejection::InboxRejection,
};
use crate::{
    db::{
        AnyConnection,
        interactions::{self, InteractionKind, NewInteraction},
        posts::Post,
        users::User,
    },
    error::Error,
    federation::{fetch::Fetcher, urls::Urls},
    opt_in::SharingState,
};

/// The Note of a Create (or Update): embedded, or fetched from its own origin when only
/// its URL was sent. `None` when it is not a post.
pub(super) async fn resolve(
    fetcher: &Fetcher<'_>,
    activity: &InboundActivity,
) -> Result<Option<RemoteNote>, Error> {
    let json = match &activity.object {
        Value::Object(_) => activity.object.clone(),
        Value::String(_) => {
            let Some(url) = activity.object_id() else {
                return Err(InboxRejection::Malformed("the object is not a URL".into()).into());
            };
            if url.origin() != activity.actor.origin() {
                return Err(InboxRejection::Malformed(
                    "the object is not on its actor's origin".into(),
                )
                .into());
            }
            match fetcher.fetch(&url).await {
                Ok(fetched) => fetched.json,
                Err(e) if matches!(e, Error::Remote { .. } | Error::FetchBudgetExhausted(_)) => {
                    tracing::info!(object = %url, error = %e, "object of an inbound activity cannot be fetched");
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        _ => return Err(InboxRejection::Malformed("the activity has no object".into()).into()),
    };
    Ok(read_note(&json, &activity.actor)?)
}

/// Whether the Note names anything on this server at all (so most posts of the people
/// followed by nobody here cost no query).
pub(super) fn concerns_us(note: &RemoteNote, urls: &Urls) -> bool {
    note.in_reply_to
        .iter()
        .chain(note.quote.iter())
        .chain(note.mentions.iter())
        .any(|url| urls.parse_local(url).is_some())
}

/// One local user the Note is for, and why.
struct Addressee {
    user: User,
    post: Option<Post>,
    kind: InteractionKind,
    /// The user blocks the Note's author or its server: nothing reaches them.
    blocked: bool,
}

/// Stores the Note once per addressee and tells each of them: the author of the post it
/// answers, of the post it quotes, then each mentioned user, each user once.
pub(super) fn apply(
    conn: &mut AnyConnection,
    cx: &Cx,
    note: &RemoteNote,
) -> Result<Applied, Error> {
    let mut addressees: Vec<Addressee> = Vec::new();
    let targets = [
        (note.in_reply_to.as_ref(), InteractionKind::Reply),
        (note.quote.as_ref(), InteractionKind::Quote),
    ];
    for (url, kind) in targets {
        if let Some(url) = url
            && let Some((post, author, blocked)) = cx.visible_post(conn, url)?
            && !addressees.iter().any(|a| a.user.id == author.id)
        {
            addressees.push(Addressee {
                user: author,
                post: Some(post),
                kind,
                blocked,
            });
        }
    }
    for mention in &note.mentions {
        if let Some((user, blocked)) = cx.local_user_blocking(conn, mention)?
            && user.sharing() == SharingState::On
            && !addressees.iter().any(|a| a.user.id == user.id)
        {
            addressees.push(Addressee {
                user,
                post: None,
                kind: InteractionKind::Mention,
                blocked,
            });
        }
    }

    let mut delivered = false;
    for (index, addressee) in addressees.iter().enumerate() {
        if addressee.blocked {
            continue;
        }
        // `ap_id` is unique, so addressees after the first get a key of their own.
        let key = if index == 0 {
            note.id.to_string()
        } else {
            format!("{}#to={}", note.id, addressee.user.platform_user_id)
        };
        let inserted = interactions::insert(
            conn,
            &NewInteraction {
                ap_id: &key,
                kind: addressee.kind,
                remote_actor: cx.actor.id,
                post: addressee.post.as_ref().map(|p| p.id),
                user: addressee.user.id,
                object_ap_id: Some(note.id.as_str()),
            },
            cx.now,
        )?;
        if !inserted {
            continue;
        }
        let content = cx.content(note, &addressee.user, addressee.post.as_ref())?;
        let payload = match addressee.kind {
            InteractionKind::Reply => OutboundPayload::ReplyReceived(content),
            InteractionKind::Quote => OutboundPayload::QuoteReceived(content),
            _ => OutboundPayload::MentionReceived(content),
        };
        delivered |= cx.notify(
            conn,
            &format!("create:{}:{}", note.id, addressee.user.platform_user_id),
            &addressee.user,
            payload,
        )?;
    }
    Ok(Applied::done_if(delivered))
}
