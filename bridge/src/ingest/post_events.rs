//! `post.created` and `post.updated`: from the platform's post to a stored post and, for
//! people who share, its activities.

use platform_adapter::{Handled, events as contract};

use crate::{
    db::{
        AnyConnection,
        posts::{
            self, FederationState, InteractionPolicy, MediaItem, MentionItem, NewPost, Post,
            PostInput, Visibility,
        },
        users::{self, User},
    },
    error::Error,
    federation::{outbound, urls::Urls},
    opt_in::SharingState,
};

use super::millis;

/// Whether an event creates the post or edits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PostEvent {
    /// `post.created`: may federate it for the first time.
    Created,
    /// `post.updated`: never federates a post for the first time.
    Updated,
}

/// A post about to be stored for the first time.
pub(super) struct Arrival<'a> {
    /// Its author, as read in the same transaction.
    pub author: &'a User,
    /// What the platform says.
    pub input: PostInput,
    /// Which event brings it.
    pub event: PostEvent,
    /// When the platform says the event happened (ms), kept to recognise a late event.
    pub occurred: i64,
}

/// Applies a post event alone: reads what it needs, stores, federates.
///
/// One user's events arrive in order, except one retried after a later one (the contract's
/// exception, when storage kept failing). Such a late event must not undo the later one:
/// a deleted post stays deleted, and an older version never overwrites a newer one (it
/// would make a post public again that its author has made private since).
pub(super) fn apply(
    conn: &mut AnyConnection,
    post: &contract::Post,
    event: PostEvent,
    urls: &Urls,
    occurred: i64,
    now: i64,
) -> Result<Handled, Error> {
    let Some(author) = users::find_by_platform_id(conn, post.author_id.as_str())? else {
        return Ok(Handled::Ignored);
    };
    let existing = posts::find_by_platform_id(conn, post.post_id.as_str())?;
    if existing.as_ref().is_some_and(|p| {
        p.deleted_at.is_some() || p.last_event_at.is_some_and(|last| last > occurred)
    }) {
        return Ok(Handled::Ignored);
    }
    // Content of people who do not share is never stored: nothing to leak later.
    if author.sharing() == SharingState::Off && existing.is_none() {
        return Ok(Handled::Ignored);
    }
    let mut mentions = Vec::new();
    for m in &post.mentions {
        if let Some(item) = mention(conn, m, urls)? {
            mentions.push(item);
        }
    }
    let input = input(post, mentions);
    let Some(existing) = existing else {
        let arrival = Arrival {
            author: &author,
            input,
            event,
            occurred,
        };
        store_new(conn, std::slice::from_ref(&arrival), urls, now)?;
        return Ok(Handled::Applied);
    };
    let stored = posts::update(conn, &existing, author.id, &input, now)?;
    posts::set_last_event_at(conn, stored.id, occurred)?;
    match (event, stored.federation()) {
        // Stored earlier without federating (while paused, say): this creation sends it.
        (PostEvent::Created, FederationState::Never) => {
            outbound::publish_post(conn, &stored, &author, urls, now)?;
        }
        (_, FederationState::Federated) if !stored.content_is_shareable() => {
            // Became private, age restricted…: take it back from the fediverse.
            outbound::retract_post(
                conn,
                &stored,
                &author,
                urls,
                FederationState::Retracted,
                now,
            )?;
        }
        (_, FederationState::Federated) => {
            outbound::update_post(conn, &stored, &author, urls, now)?;
        }
        // An edit never federates a post for the first time.
        _ => {}
    }
    Ok(Handled::Applied)
}

/// Stores posts never stored before and queues the `Create` of those that go out at once,
/// with a handful of statements however many there are. The authors do not have sharing
/// off (their content would not be stored), and the posts are not stored yet.
pub(super) fn store_new(
    conn: &mut AnyConnection,
    arrivals: &[Arrival<'_>],
    urls: &Urls,
    now: i64,
) -> Result<(), Error> {
    let new: Vec<NewPost<'_>> = arrivals
        .iter()
        .map(|a| NewPost {
            author: a.author.id,
            input: &a.input,
            // Decided before storing, so the post is stored in its final state at once.
            state: if a.event == PostEvent::Created
                && outbound::publishes_on_arrival(a.author, &a.input)
            {
                FederationState::Federated
            } else {
                FederationState::Never
            },
            last_event_at: Some(a.occurred),
        })
        .collect();
    let stored = posts::insert_many(conn, &new, now)?;
    let published: Vec<(&Post, &User)> = stored
        .iter()
        .zip(arrivals)
        .filter(|(post, _)| post.federation() == FederationState::Federated)
        .map(|(post, arrival)| (post, arrival.author))
        .collect();
    outbound::send_creates(conn, &published, urls, now)?;
    Ok(())
}

/// The mentions of a post when none needs a look-up (see [`mention`]), else `None`.
pub(super) fn mentions_without_lookup(post: &contract::Post) -> Option<Vec<MentionItem>> {
    post.mentions.iter().map(remote_mention).collect()
}

/// A mention of a fediverse account, stored as the platform wrote it; `None` for a
/// platform user, whose link depends on whether they share.
fn remote_mention(m: &contract::Mention) -> Option<MentionItem> {
    match m {
        contract::Mention::Remote { handle, url } => Some(MentionItem {
            handle: handle.clone(),
            url: url.as_ref().map(ToString::to_string),
        }),
        contract::Mention::User { .. } => None,
    }
}

fn mention(
    conn: &mut AnyConnection,
    m: &contract::Mention,
    urls: &Urls,
) -> Result<Option<MentionItem>, Error> {
    Ok(match m {
        contract::Mention::Remote { .. } => remote_mention(m),
        // A platform user is only linked when they share; otherwise the mention stays text.
        contract::Mention::User { user_id, .. } => {
            users::find_by_platform_id(conn, user_id.as_str())?
                .filter(|u| u.sharing() == SharingState::On)
                .map(|u: User| MentionItem {
                    handle: format!("@{}", urls.handle(&u.username)),
                    url: Some(urls.actor(&u.platform_user_id).to_string()),
                })
        }
    })
}

/// Whether a reply or quote points at a platform post, whose link needs a look-up.
pub(super) fn targets_platform_post(post: &contract::Post) -> bool {
    [&post.reply_to, &post.quote_of]
        .into_iter()
        .any(|target| matches!(target, Some(contract::PostRef::Platform { .. })))
}

/// What is stored of a post, with its mentions already resolved.
pub(super) fn input(post: &contract::Post, mentions: Vec<MentionItem>) -> PostInput {
    let (reply_to_platform_post_id, reply_to_url) = split_ref(post.reply_to.as_ref());
    let (quote_of_platform_post_id, quote_of_url) = split_ref(post.quote_of.as_ref());
    PostInput {
        platform_post_id: post.post_id.as_str().to_owned(),
        text: post.text.clone(),
        visibility: visibility(post.visibility),
        age_restricted: post.age_restricted,
        reply_to_platform_post_id,
        reply_to_url,
        quote_of_platform_post_id,
        quote_of_url,
        media: post
            .media
            .iter()
            .map(|m| MediaItem {
                url: m.url.to_string(),
                media_type: m.media_type.clone(),
                alt_text: m.alt_text.clone(),
                width: m.width,
                height: m.height,
                size_bytes: m.size_bytes,
                blurhash: m.blurhash.clone(),
            })
            .collect(),
        mentions,
        hashtags: post.hashtags.clone(),
        content_warning: post.content_warning.clone(),
        sensitive: post.sensitive,
        language: post.language.clone(),
        reply_policy: policy(post.reply_policy),
        quote_policy: policy(post.quote_policy),
        via_api: post.created_via_api,
        published_at: millis(post.created_at),
        edited_at: post.edited_at.map(millis),
    }
}

fn visibility(v: contract::Visibility) -> Visibility {
    match v {
        contract::Visibility::Public => Visibility::Public,
        contract::Visibility::Unlisted => Visibility::Unlisted,
        contract::Visibility::Followers => Visibility::Followers,
        contract::Visibility::Private => Visibility::Private,
        contract::Visibility::Direct => Visibility::Direct,
    }
}

fn policy(p: contract::InteractionPolicy) -> InteractionPolicy {
    match p {
        contract::InteractionPolicy::Everyone => InteractionPolicy::Everyone,
        contract::InteractionPolicy::Followers => InteractionPolicy::Followers,
        contract::InteractionPolicy::Mentioned => InteractionPolicy::Mentioned,
        contract::InteractionPolicy::Nobody => InteractionPolicy::Nobody,
    }
}

fn split_ref(target: Option<&contract::PostRef>) -> (Option<String>, Option<String>) {
    match target {
        Some(contract::PostRef::Platform { post_id }) => (Some(post_id.as_str().to_owned()), None),
        Some(contract::PostRef::Remote { url }) => (None, Some(url.to_string())),
        None => (None, None),
    }
}
