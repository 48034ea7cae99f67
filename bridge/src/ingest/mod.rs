//! Applies the platform's events: the bridge's implementation of the adapter's sink.
//!
//! Each event's whole effect — profile, sharing state, post, outbound activities, messages
//! to the platform — commits in one transaction together with its event id, so a
//! redelivered event is recognised and has no second effect.

mod batch;
mod post_events;

use std::sync::Arc;

use platform_adapter::{
    EventSink, Handled, InboundEvent, SinkError,
    events::{self as contract, InboundPayload},
};
use tokio::sync::Notify;

use self::post_events::PostEvent;
use crate::{
    db::{
        AnyConnection, Database, dedupe,
        posts::{self, FederationState},
        users::{self, ProfileField, ProfileInput},
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
            .run(move |conn| batch::apply(conn, &events[..batchable], &urls, &settings))
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

fn millis(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_millis()
}

/// Applies one event, recording its id first: a duplicate has no effect.
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
    apply_claimed(conn, event, urls, settings, now)
}

/// Applies one event whose id was just recorded in this transaction.
fn apply_claimed(
    conn: &mut AnyConnection,
    event: &InboundEvent,
    urls: &Urls,
    settings: &Settings,
    now: i64,
) -> Result<Handled, Error> {
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
        InboundPayload::PostCreated(post) => {
            post_events::apply(conn, post, PostEvent::Created, urls, occurred, now)
        }
        InboundPayload::PostUpdated(post) => {
            post_events::apply(conn, post, PostEvent::Updated, urls, occurred, now)
        }
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
