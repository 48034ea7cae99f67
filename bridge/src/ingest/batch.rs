//! Applying a batch of events in one transaction, with a handful of statements for its new
//! posts rather than a handful per post.
//!
//! A batch leaves exactly what its events applied one at a time, in order, would leave.
//! Event ids are recorded together up front (the first of two events with the same id
//! wins; the second is a duplicate, as it would be one at a time). Consecutive post events
//! are read together; a post that needs nothing but its author and the knowledge that it
//! is new joins a run, stored and published with the run in a few multi-row statements.
//! Any other event first flushes the run and then takes the one-at-a-time path, so every
//! event still sees the effect of all events before it.

use std::collections::{HashMap, HashSet};

use platform_adapter::{
    Handled, InboundEvent,
    events::{self as contract, InboundPayload},
};

use super::{
    apply_claimed, millis,
    post_events::{self, Arrival, PostEvent},
};
use crate::{
    db::{
        AnyConnection, dedupe, posts,
        users::{self, User},
    },
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
        let now = crate::db::now_millis();
        let claims: Vec<(&str, &str)> = events
            .iter()
            .zip(&ignorable)
            .filter(|(_, ignored)| !**ignored)
            .map(|(event, _)| (event.id.as_str(), event.payload.event_type().as_str()))
            .collect();
        let mut claimed = dedupe::claim_events(conn, &claims, now)?;
        let mut results = Vec::with_capacity(events.len());
        let mut start = 0;
        while let Some(event) = events.get(start) {
            let posts = events[start..]
                .iter()
                .take_while(|e| post_of(e).is_some())
                .count();
            if posts == 0 {
                // Taken out of `claimed`, so a later event with the same id is a duplicate.
                results.push(if claimed.remove(event.id.as_str()) {
                    apply_claimed(conn, event, urls, settings, now)?
                } else {
                    Handled::Duplicate
                });
                start += 1;
                continue;
            }
            let end = start + posts;
            let segment = Segment {
                events: &events[start..end],
                ignorable: &ignorable[start..end],
            };
            results.extend(segment.apply(conn, &mut claimed, urls, settings, now)?);
            start = end;
        }
        Ok(results)
    })
}

/// The post of a `post.created` or `post.updated` event.
fn post_of(event: &InboundEvent) -> Option<(&contract::Post, PostEvent)> {
    match &event.payload {
        InboundPayload::PostCreated(post) => Some((post, PostEvent::Created)),
        InboundPayload::PostUpdated(post) => Some((post, PostEvent::Updated)),
        _ => None,
    }
}

/// For each event: whether it is a post by someone who does not share (or is unknown) of
/// a post never stored, which [`post_events::apply`] would ignore. Only the posts before
/// the batch's first other event are judged: a profile or sharing event can change the
/// answer for what follows it.
fn ignorable_posts(conn: &mut AnyConnection, events: &[InboundEvent]) -> Result<Vec<bool>, Error> {
    let posts: Vec<&contract::Post> = events
        .iter()
        .map_while(|event| post_of(event).map(|(post, _)| post))
        .collect();
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

/// Consecutive post events of a batch. Post events change no user, so the authors read
/// once hold for the whole segment; which posts exist is tracked as the segment goes.
struct Segment<'e> {
    events: &'e [InboundEvent],
    ignorable: &'e [bool],
}

/// What becomes of one event of a segment.
enum Step<'e> {
    /// Settled without touching storage.
    Done(Handled),
    /// Recorded as new: to apply.
    Apply {
        event: &'e InboundEvent,
        post: &'e contract::Post,
        kind: PostEvent,
    },
}

impl<'e> Segment<'e> {
    fn apply(
        &self,
        conn: &mut AnyConnection,
        claimed: &mut HashSet<String>,
        urls: &Urls,
        settings: &Settings,
        now: i64,
    ) -> Result<Vec<Handled>, Error> {
        let steps: Vec<Step<'e>> = self
            .events
            .iter()
            .zip(self.ignorable)
            .filter_map(|(event, ignored)| {
                let (post, kind) = post_of(event)?;
                Some(if *ignored {
                    Step::Done(Handled::Ignored)
                } else if claimed.remove(event.id.as_str()) {
                    Step::Apply { event, post, kind }
                } else {
                    Step::Done(Handled::Duplicate)
                })
            })
            .collect();
        let to_apply: Vec<&contract::Post> = steps
            .iter()
            .filter_map(|step| match step {
                Step::Apply { post, .. } => Some(*post),
                Step::Done(_) => None,
            })
            .collect();
        let (authors, stored) = read(conn, &to_apply)?;

        let mut results = Vec::with_capacity(steps.len());
        let mut touched: HashSet<&str> = HashSet::new();
        let mut run: Vec<Arrival<'_>> = Vec::new();
        for step in steps {
            let (event, post, kind) = match step {
                Step::Done(handled) => {
                    results.push(handled);
                    continue;
                }
                Step::Apply { event, post, kind } => (event, post, kind),
            };
            let first_touch = touched.insert(post.post_id.as_str());
            let new = first_touch && !stored.contains(post.post_id.as_str());
            match arrival(post, kind, millis(event.occurred_at), new, &authors) {
                Some(arrival) => {
                    run.push(arrival);
                    results.push(Handled::Applied);
                }
                None => {
                    flush(conn, &mut run, urls, now)?;
                    results.push(apply_claimed(conn, event, urls, settings, now)?);
                }
            }
        }
        flush(conn, &mut run, urls, now)?;
        Ok(results)
    }
}

/// The authors (by platform id) and the already stored post ids of `posts`, two reads.
///
/// Read inside the transaction rather than taken from [`ignorable_posts`]: between that
/// read and the write lock the author may have turned sharing off (on the settings page),
/// after which nothing of theirs may be stored.
fn read(
    conn: &mut AnyConnection,
    posts: &[&contract::Post],
) -> Result<(HashMap<String, User>, HashSet<String>), Error> {
    if posts.is_empty() {
        return Ok((HashMap::new(), HashSet::new()));
    }
    let author_ids: Vec<&str> = posts.iter().map(|p| p.author_id.as_str()).collect();
    let post_ids: Vec<&str> = posts.iter().map(|p| p.post_id.as_str()).collect();
    let authors = users::find_many_by_platform_ids(conn, &author_ids)?
        .into_iter()
        .map(|user| (user.platform_user_id.clone(), user))
        .collect();
    let stored = posts::existing_platform_ids(conn, &post_ids)?
        .into_iter()
        .collect();
    Ok((authors, stored))
}

/// The post as an arrival that can join a run: new (neither stored before the segment nor
/// touched earlier in it), by an author whose content is stored, and needing no other
/// read. A link to a platform post must see exactly the posts stored before it, which a
/// run stored all at once would not; a mention of a platform user needs their state.
/// `None` sends the event down the one-at-a-time path.
fn arrival<'a>(
    post: &contract::Post,
    kind: PostEvent,
    occurred: i64,
    new: bool,
    authors: &'a HashMap<String, User>,
) -> Option<Arrival<'a>> {
    if !new || post_events::targets_platform_post(post) {
        return None;
    }
    let author = authors
        .get(post.author_id.as_str())
        .filter(|author| author.sharing() != SharingState::Off)?;
    let mentions = post_events::mentions_without_lookup(post)?;
    Some(Arrival {
        author,
        input: post_events::input(post, mentions),
        event: kind,
        occurred,
    })
}

/// Stores and publishes the run so far, leaving it empty.
fn flush(
    conn: &mut AnyConnection,
    run: &mut Vec<Arrival<'_>>,
    urls: &Urls,
    now: i64,
) -> Result<(), Error> {
    if run.is_empty() {
        return Ok(());
    }
    post_events::store_new(conn, run, urls, now)?;
    run.clear();
    Ok(())
}
