//! Applies the platform's events: the bridge's implementation of the adapter's sink.
//!
//! Each event's whole effect — profile, sharing state, post, outbound activities, messages
//! to the platform — commits in one transaction together with its event id, so a
//! redelivered event is recognised and has no second effect.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use platform_adapter::{
    EventSink, Handled, InboundEvent, SinkError,
    events::{self as contract, InboundPayload},
};
use tokio::sync::Notify;

use crate::{
    db::{
        AnyConnection, Database, dedupe,
        posts::{
            self, FederationState, InteractionPolicy, MediaItem, MentionItem, PostInput, Visibility,
        },
        users::{self, ProfileField, ProfileInput, User},
    },
    error::Error,
    federation::{FederationClient, fetch::FetchFailures, outbound, urls::Urls},
    moderation,
    opt_in::{Initiator, SharingState, lifecycle},
    settings::Settings,
};

/// The sink that turns platform events into stored state and federation.
#[derive(Clone)]
pub struct Ingest {
    db: Database,
    urls: Urls,
    settings: Arc<Settings>,
    delivery_wakeup: Arc<Notify>,
    fetch: Option<(FederationClient, Arc<FetchFailures>)>,
}

impl Ingest {
    /// A sink writing to `db`.
    pub fn new(
        db: Database,
        urls: Urls,
        settings: Arc<Settings>,
        delivery_wakeup: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            urls,
            settings,
            delivery_wakeup,
            fetch: None,
        }
    }

    /// Lets the sink fetch remote actors it needs (the target of a forwarded report);
    /// without it, such events are refused.
    pub fn with_fetcher(mut self, client: FederationClient, failures: Arc<FetchFailures>) -> Self {
        self.fetch = Some((client, failures));
        self
    }

    /// Applies one event (also used by the HTTP ingest endpoint).
    pub async fn apply(&self, event: InboundEvent) -> Result<Handled, Error> {
        // Remote fetches happen before the transaction, which never waits on the network.
        if let InboundPayload::ReportCreated(report) = &event.payload {
            let fetch = self.fetch.as_ref().map(|(c, f)| (c, f.as_ref()));
            moderation::reports::prepare(&self.db, report, &self.urls, fetch).await?;
        }
        let urls = self.urls.clone();
        let settings = self.settings.clone();
        let handled = self
            .db
            .write(move |conn| apply_event(conn, &event, &urls, &settings))
            .await?;
        if handled == Handled::Applied {
            self.delivery_wakeup.notify_one();
        }
        Ok(handled)
    }
}

impl EventSink for Ingest {
    async fn handle(&self, event: InboundEvent) -> Result<Handled, SinkError> {
        self.apply(event).await.map_err(|error| {
            if error.is_transient() {
                SinkError::Transient(error.to_string())
            } else {
                SinkError::Permanent(error.to_string())
            }
        })
    }

    async fn handle_batch(
        &self,
        events: Arc<Vec<InboundEvent>>,
    ) -> Vec<Result<Handled, SinkError>> {
        // A report may need a remote fetch before its transaction: the batch stops short of
        // it, and the consumer hands it (and what follows) to `handle` one at a time.
        let batchable = events
            .iter()
            .take_while(|e| !matches!(e.payload, InboundPayload::ReportCreated(_)))
            .count();
        if batchable == 0 {
            return Vec::new();
        }
        let urls = self.urls.clone();
        let settings = self.settings.clone();
        match self
            .db
            .run(move |conn| apply_batch(conn, &events[..batchable], &urls, &settings))
            .await
        {
            Ok(results) => {
                if results.contains(&Handled::Applied) {
                    self.delivery_wakeup.notify_one();
                }
                results.into_iter().map(Ok).collect()
            }
            // Nothing was stored; the consumer takes the events one at a time, which
            // classifies the failure per event (retry, or dead-letter the one at fault).
            Err(error) => {
                tracing::debug!(%error, "a batch of events failed; applying them one by one");
                Vec::new()
            }
        }
    }
}

/// Applies consecutive events in one transaction, in order; all or nothing.
///
/// Posts by people who do not share are the bulk of the platform's traffic and have no
/// effect at all, so they are recognised first with two reads for the whole batch and
/// never take the write lock. That is safe to repeat: an ignored event changed nothing, so
/// seeing it again cannot cause a second effect.
fn apply_batch(
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

/// For each event: whether it is a post by someone who does not share (or is unknown) of
/// a post never stored, which [`apply_post`] would ignore. Only the posts before the
/// batch's first other event are judged: a profile or sharing event can change the answer
/// for what follows it.
fn ignorable_posts(conn: &mut AnyConnection, events: &[InboundEvent]) -> Result<Vec<bool>, Error> {
    let posts: Vec<&contract::Post> = events
        .iter()
        .map_while(|event| match &event.payload {
            InboundPayload::PostCreated(post) | InboundPayload::PostUpdated(post) => Some(post),
            _ => None,
        })
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

fn millis(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_millis()
}

fn apply_event(
    conn: &mut AnyConnection,
    event: &InboundEvent,
    urls: &Urls,
    settings: &Settings,
) -> Result<Handled, Error> {
    let now = crate::db::now_millis();
    let kind = event.payload.event_type().as_str();
    if !dedupe::claim_event(conn, event.id.as_str(), kind, now)? {
        return Ok(Handled::Duplicate);
    }
    let cx = lifecycle::Context {
        rules: &settings.sharing,
        urls,
        initiator: Initiator::Platform,
        now,
    };
    let occurred = millis(event.occurred_at);
    match &event.payload {
        InboundPayload::UserCreated(profile) | InboundPayload::UserUpdated(profile) => {
            apply_profile(conn, profile, occurred, cx)
        }
        InboundPayload::UserDeleted(r) => {
            let Some(user) = users::find_by_platform_id(conn, r.user_id.as_str())? else {
                return Ok(Handled::Ignored);
            };
            users::mark_deleted(conn, user.id, now)?;
            let system = lifecycle::Context {
                initiator: Initiator::System,
                ..cx
            };
            lifecycle::turn_off(conn, &user, system)?;
            Ok(Handled::Applied)
        }
        InboundPayload::SharingTurnedOn(on) => {
            let Some(user) = users::find_by_platform_id(conn, on.user_id.as_str())? else {
                // The profile must arrive first; retrying lets the platform's own ordering
                // catch up instead of losing the user's choice.
                return Err(Error::Storage(format!(
                    "sharing.turned_on for unknown user {}: send user.created first",
                    on.user_id.as_str()
                )));
            };
            if let Err(refusal) = lifecycle::turn_on(conn, &user, on.consent, cx)? {
                lifecycle::notify_status(
                    conn,
                    &user,
                    user.sharing(),
                    Some(refusal.message()),
                    &match &refusal {
                        lifecycle::Refusal::Ineligible { gates } => gates.clone(),
                        _ => Vec::new(),
                    },
                    now,
                )?;
            }
            Ok(Handled::Applied)
        }
        InboundPayload::SharingTurnedOff(r) => {
            let Some(user) = users::find_by_platform_id(conn, r.user_id.as_str())? else {
                return Ok(Handled::Ignored);
            };
            lifecycle::turn_off(conn, &user, cx)?;
            Ok(Handled::Applied)
        }
        InboundPayload::PostCreated(post) => apply_post(conn, post, true, urls, occurred, now),
        InboundPayload::PostUpdated(post) => apply_post(conn, post, false, urls, occurred, now),
        InboundPayload::PostDeleted(deleted) => {
            let Some(post) = posts::find_by_platform_id(conn, deleted.post_id.as_str())? else {
                // Deleted before the bridge heard of it: its creation, retried after this
                // (see `apply_post`), must find it deleted. Posts of people who do not
                // share are never stored, so neither are their deletions.
                if let Some(author) = users::find_by_platform_id(conn, deleted.author_id.as_str())?
                    .filter(|a| a.sharing() != SharingState::Off)
                {
                    posts::insert_tombstone(
                        conn,
                        author.id,
                        deleted.post_id.as_str(),
                        occurred,
                        now,
                    )?;
                    return Ok(Handled::Applied);
                }
                return Ok(Handled::Ignored);
            };
            let Some(author) = users::find(conn, post.user_id)? else {
                return Ok(Handled::Ignored);
            };
            if author.platform_user_id != deleted.author_id.as_str() {
                return Err(Error::Storage(format!(
                    "post {} does not belong to {}",
                    deleted.post_id.as_str(),
                    deleted.author_id.as_str()
                )));
            }
            posts::mark_deleted(conn, post.id, now)?;
            outbound::retract_post(conn, &post, &author, urls, FederationState::Deleted, now)?;
            Ok(Handled::Applied)
        }
        InboundPayload::ReportCreated(report) => moderation::reports::file(conn, report, urls, now),
        // Reposts of bridged posts are not federated (yet): recorded as seen, no effect.
        InboundPayload::RepostCreated(_) | InboundPayload::RepostDeleted(_) => Ok(Handled::Ignored),
    }
}

fn apply_profile(
    conn: &mut AnyConnection,
    profile: &contract::UserProfile,
    occurred: i64,
    cx: lifecycle::Context<'_>,
) -> Result<Handled, Error> {
    if let Some(existing) = users::find_by_platform_id(conn, profile.user_id.as_str())?
        && existing.last_event_at.is_some_and(|last| last > occurred)
    {
        // An older profile arriving late must not overwrite a newer one.
        return Ok(Handled::Ignored);
    }
    let input = ProfileInput {
        platform_user_id: profile.user_id.as_str().to_owned(),
        username: profile.username.clone(),
        display_name: Some(profile.display_name.clone()).filter(|n| !n.is_empty()),
        bio: Some(profile.bio.clone()).filter(|b| !b.is_empty()),
        avatar_url: profile.avatar_url.as_ref().map(ToString::to_string),
        header_url: profile.header_url.as_ref().map(ToString::to_string),
        profile_url: Some(profile.profile_url.to_string()),
        fields: profile
            .fields
            .iter()
            .map(|f| ProfileField {
                name: f.name.clone(),
                value: f.value.clone(),
            })
            .collect(),
        language: profile.language.clone(),
        is_public: profile.public_profile,
        is_adult: profile.adult,
        is_suspended: profile.suspended,
        account_created_at: profile.account_created_at.map(millis),
    };
    let (user, change) = users::upsert_profile(conn, &input, cx.now)?;
    users::set_last_event_at(conn, user.id, occurred)?;
    if user.sharing() == SharingState::Off {
        return Ok(Handled::Applied);
    }
    let system = lifecycle::Context {
        initiator: Initiator::System,
        ..cx
    };
    let before = user.sharing();
    let user = lifecycle::reevaluate(conn, &user, system)?;
    // A state change already sent the new profile; otherwise send it when it changed.
    if before == user.sharing()
        && change.public_profile_changed
        && user.sharing() == SharingState::On
    {
        outbound::update_actor(conn, &user, cx.urls, cx.now)?;
    }
    Ok(Handled::Applied)
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

fn mention(
    conn: &mut AnyConnection,
    m: &contract::Mention,
    urls: &Urls,
) -> Result<Option<MentionItem>, Error> {
    Ok(match m {
        contract::Mention::Remote { handle, url } => Some(MentionItem {
            handle: handle.clone(),
            url: url.as_ref().map(ToString::to_string),
        }),
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

/// Stores a post from `post.created` or `post.updated` and federates what changed.
///
/// One user's events arrive in order, except one retried after a later one (the contract's
/// exception, when storage kept failing). Such a late event must not undo the later one:
/// a deleted post stays deleted, and an older version never overwrites a newer one (it
/// would make a post public again that its author has made private since).
fn apply_post(
    conn: &mut AnyConnection,
    post: &contract::Post,
    created: bool,
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
    let (reply_to_platform_post_id, reply_to_url) = split_ref(post.reply_to.as_ref());
    let (quote_of_platform_post_id, quote_of_url) = split_ref(post.quote_of.as_ref());
    let mut mentions = Vec::new();
    for m in &post.mentions {
        if let Some(item) = mention(conn, m, urls)? {
            mentions.push(item);
        }
    }
    let input = PostInput {
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
    };
    let (stored, _) = posts::upsert(conn, author.id, &input, now)?;
    posts::set_last_event_at(conn, stored.id, occurred)?;
    match (created, stored.federation()) {
        (true, FederationState::Never) => {
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
