//! Applying a batch of events in one transaction, in order; all or nothing.

use std::collections::{HashMap, HashSet};

use platform_adapter::{
    Handled, InboundEvent,
    events::{self as contract, InboundPayload},
};

use super::apply_event;
use crate::{
    db::{AnyConnection, posts, users},
    error::Error,
    federation::urls::Urls,
    opt_in::SharingState,
    settings::Settings,
};

/// Applies consecutive events in one transaction, in order; all or nothing.
///
/// Posts by people who do not share are the bulk of the platform's traffic and have no
/// effect at all, so they are recognised first with two reads for the whole batch and
/// never take the write lock. That is safe to repeat: an ignored event changed nothing, so
/// seeing it again cannot cause a second effect.
pub(super) fn apply(
    conn: &mut AnyConnection,
    events: &[InboundEvent],
    urls: &Urls,
    settings: &Settings,
) -> Result<Vec<Handled>, Error> {
    let ignorable = ignorable_posts(conn, events)?;
    if ignorable.iter().all(|ignored| *ignored) {
        return Ok(vec![Handled::Ignored; events.len()]);
    }
    crate::db::write_transaction(conn, |conn| {
        events
            .iter()
            .zip(&ignorable)
            .map(|(event, ignored)| {
                if *ignored {
                    Ok(Handled::Ignored)
                } else {
                    apply_event(conn, event, urls, settings)
                }
            })
            .collect()
    })
}

/// The post of a `post.created` or `post.updated` event.
fn post_of(event: &InboundEvent) -> Option<&contract::Post> {
    match &event.payload {
        InboundPayload::PostCreated(post) | InboundPayload::PostUpdated(post) => Some(post),
        _ => None,
    }
}

/// For each event: whether it is a post by someone who does not share (or is unknown) of
/// a post never stored, which [`super::post_events::apply`] would ignore. Only the posts before
/// the batch's first other event are judged: a profile or sharing event can change the
/// answer for what follows it.
fn ignorable_posts(conn: &mut AnyConnection, events: &[InboundEvent]) -> Result<Vec<bool>, Error> {
    let posts: Vec<&contract::Post> = events.iter().map_while(post_of).collect();
    let mut ignorable = vec![false; events.len()];
    if posts.is_empty() {
        return Ok(ignorable);
    }
    let author_ids: Vec<&str> = posts.iter().map(|p| p.author_id.as_str()).collect();
    let post_ids: Vec<&str> = posts.iter().map(|p| p.post_id.as_str()).collect();
    let sharing: HashMap<String, SharingState> =
        users::find_many_by_platform_ids(conn, &author_ids)?
            .into_iter()
            .map(|user| {
                let state = user.sharing();
                (user.platform_user_id, state)
            })
            .collect();
    let stored: HashSet<String> = posts::existing_platform_ids(conn, &post_ids)?
        .into_iter()
        .collect();
    for (slot, post) in ignorable.iter_mut().zip(&posts) {
        *slot = match sharing.get(post.author_id.as_str()) {
            None => true,
            Some(state) => *state == SharingState::Off && !stored.contains(post.post_id.as_str()),
        };
    }
    Ok(ignorable)
}
