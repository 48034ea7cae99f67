//! The ActivityPub inbox: authenticate an inbound activity, then apply its effect.
//!
//! The order is fixed and nothing has a side effect before authentication:
//! 1. the signature's key-independent checks (signed headers, `Host`, date window, digest);
//! 2. the envelope (`id`, `type`, `actor`: ours never, same origin);
//! 3. a host or actor still inside the `Retry-After` of an earlier 429 is refused at once;
//! 4. the administrator's domain blocks, before anything is fetched for the actor;
//! 5. the key: stored, or fetched (signed, id-checked, budgeted, and charged to the host's
//!    key-fetch budget); its owner must be the activity's actor; then the RSA check (once
//!    more after a refetch, for rotated keys);
//! 6. the actor's and the host's rate budgets (429 with `Retry-After` when spent): charged
//!    only now, so that forged requests cannot spend a real server's budget;
//! 7. the effect, in one transaction that first claims the activity id, so a replay or
//!    redelivery changes nothing twice. 2xx is answered only after that commit.

mod block;
mod context;
mod create;
mod delete;
mod flag;
mod follow;
mod moves;
pub mod note;
pub mod parse;
pub mod rate_limit;
mod reaction;
pub mod rejection;
pub mod sanitize;
mod undo;
mod update;
mod verify;
mod writer;

use std::time::{Duration, SystemTime};

use bytes::Bytes;

pub use context::Outcome;
pub use rate_limit::InboxRateLimits;
pub use rejection::InboxRejection;
pub use writer::InboxWriter;

use context::{Applied, Cx};
use follow::FollowCaps;
use parse::{ActivityKind, InboundActivity};
use verify::Authenticated;

use crate::{
    db::{
        AnyConnection,
        blocks::{self, InstanceBlockSeverity},
        interactions::InteractionKind,
        now_millis,
        remote_actors::RemoteActor,
        users,
    },
    error::Error,
    federation::{
        canonical_host,
        fetch::{DEFAULT_FETCH_BUDGET, Fetcher, parse_actor},
        http_signatures::{self, PendingSignature},
        urls::Urls,
    },
    http::AppState,
    opt_in::SharingState,
};

/// Which inbox a request was posted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxTarget {
    /// `/inbox`.
    Shared,
    /// `/users/{platform_user_id}/inbox`.
    User(String),
}

/// An inbox POST as received.
#[derive(Debug, Clone)]
pub struct InboundRequest {
    /// `/inbox?…` as received: the signed `(request-target)`.
    pub path_and_query: String,
    /// Every header, names as received, repeats allowed.
    pub headers: Vec<(String, String)>,
    /// The raw body (already size-capped).
    pub body: Bytes,
    /// Which inbox.
    pub target: InboxTarget,
}

/// An inbound request that passed every check needing neither storage nor the network.
#[derive(Debug, Clone)]
pub struct Prechecked {
    /// The signature, still to be verified against its key.
    pub pending: PendingSignature,
    /// The activity, whose envelope is well formed.
    pub activity: InboundActivity,
}

/// Steps 1 and 2 of [`receive`]: the signature's key-independent checks against our
/// `Host` and a `window` around `now`, then the envelope. Pure, so it can be fuzzed.
pub fn precheck(
    request: &InboundRequest,
    urls: &Urls,
    now: SystemTime,
    window: Duration,
) -> Result<Prechecked, Error> {
    let pending = http_signatures::begin_verify(
        "POST",
        &request.path_and_query,
        request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
        &request.body,
        &[urls.base_authority()],
        now,
        window,
    )?;
    let activity = parse::parse(&request.body, urls)?;
    Ok(Prechecked { pending, activity })
}

/// Authenticates and applies one inbound activity; `Ok` only once its effect (if any) is
/// committed.
pub async fn receive(state: &AppState, request: InboundRequest) -> Result<Outcome, Error> {
    let window = Duration::from_secs(state.settings.federation.signature_window_secs);
    let Prechecked { pending, activity } =
        precheck(&request, &state.urls, SystemTime::now(), window)?;
    let origin = canonical_host(&activity.actor);
    state
        .inbox_limits
        .check_not_refused(&origin, &activity.actor)
        .map_err(InboxRejection::RateLimited)?;

    let host = activity.actor.host_str().unwrap_or_default().to_owned();
    let known = {
        let host = host.clone();
        let user = match request.target {
            InboxTarget::User(uid) => Some(uid),
            InboxTarget::Shared => None,
        };
        // Only a key id on the actor's origin is looked up (the others are refused below).
        let key = (pending.key_id.origin() == activity.actor.origin())
            .then(|| pending.key_id.to_string());
        // One trip to the database for every lookup before authentication.
        state
            .db
            .run(move |c| Known::look_up(c, user, &host, key))
            .await?
    };
    // An inbox exists for as long as the actor does or did (opted out: 410 actor,
    // activities still verified and then dropped).
    if !known.inbox_exists {
        return Err(InboxRejection::NoSuchInbox.into());
    }
    if known.blocked == Some(InstanceBlockSeverity::Reject) {
        return Err(InboxRejection::Blocked(host).into());
    }
    verify::key_on_actor_origin(&pending, &activity)?;

    let fetcher = Fetcher::new(
        &state.client,
        &state.db,
        &state.urls,
        &state.fetch_failures,
        DEFAULT_FETCH_BUDGET,
    );
    let actor = match verify::authenticate(
        &fetcher,
        &state.inbox_limits,
        &pending,
        &activity,
        known.key_owner,
    )
    .await?
    {
        Authenticated::Actor(actor) => *actor,
        Authenticated::GoneActorDelete => return Ok(Outcome::Ignored),
    };
    state
        .inbox_limits
        .charge_activity(&origin, &activity.actor)
        .map_err(InboxRejection::RateLimited)?;

    let applied = dispatch(state, &fetcher, activity, actor, known.blocked).await?;
    if applied.deliveries_queued {
        state.delivery_wakeup.notify_one();
    }
    if let Some(cap) = applied.over_cap {
        state
            .metrics
            .inbox_follows_over_cap
            .with_label_values(&[cap.as_str()])
            .inc();
    }
    Ok(applied.outcome)
}

/// What the database knows that matters before authentication.
struct Known {
    /// The target inbox exists (always, for the shared inbox).
    inbox_exists: bool,
    /// The administrator's block of the actor's host, if any.
    blocked: Option<InstanceBlockSeverity>,
    /// The stored actor holding the signature's key id.
    key_owner: Option<RemoteActor>,
}

impl Known {
    fn look_up(
        conn: &mut AnyConnection,
        user: Option<String>,
        host: &str,
        key_id: Option<String>,
    ) -> Result<Self, Error> {
        let inbox_exists = match user {
            Some(uid) => users::find_by_platform_id(conn, &uid)?
                .is_some_and(|u| u.sharing() != SharingState::Off || u.opted_out()),
            None => true,
        };
        if !inbox_exists {
            return Ok(Self {
                inbox_exists,
                blocked: None,
                key_owner: None,
            });
        }
        // The common case, a known key, is one query; an unknown key one more.
        let (key_owner, blocked) = match key_id {
            Some(key_id) => match blocks::key_owner_with_block(conn, &key_id, host)? {
                Some((actor, blocked)) => (Some(actor), blocked),
                None => (None, blocks::instance_block_for(conn, host)?),
            },
            None => (None, blocks::instance_block_for(conn, host)?),
        };
        // A rejected server's actor is not used for anything, not even a key check.
        let key_owner = key_owner.filter(|_| blocked != Some(InstanceBlockSeverity::Reject));
        Ok(Self {
            inbox_exists,
            blocked,
            key_owner,
        })
    }
}

async fn dispatch(
    state: &AppState,
    fetcher: &Fetcher<'_>,
    activity: InboundActivity,
    actor: RemoteActor,
    host_block: Option<InstanceBlockSeverity>,
) -> Result<Applied, Error> {
    let cx = Cx {
        urls: state.urls.clone(),
        activity,
        actor,
        now: now_millis(),
        follow_caps: FollowCaps::from_settings(&state.settings.inbox),
        host_block,
    };
    match cx.activity.kind {
        ActivityKind::Follow => in_transaction(state, cx, follow::apply).await,
        ActivityKind::Undo => in_transaction(state, cx, undo::apply).await,
        ActivityKind::Like => {
            in_transaction(state, cx, |c, cx| {
                reaction::apply(c, cx, InteractionKind::Like)
            })
            .await
        }
        ActivityKind::Announce => {
            in_transaction(state, cx, |c, cx| {
                reaction::apply(c, cx, InteractionKind::Boost)
            })
            .await
        }
        ActivityKind::Create => match create::resolve(fetcher, &cx.activity).await? {
            Some(note) if create::concerns_us(&note, &cx.urls) => {
                in_transaction(state, cx, move |c, cx| create::apply(c, cx, &note)).await
            }
            _ => Ok(Applied::ignored()),
        },
        ActivityKind::Update => update(state, fetcher, cx).await,
        ActivityKind::Delete => in_transaction(state, cx, delete::apply).await,
        ActivityKind::Block => in_transaction(state, cx, block::apply).await,
        ActivityKind::Flag => in_transaction(state, cx, flag::apply).await,
        ActivityKind::Move => {
            match moves::confirmed_target(fetcher, &state.urls, &cx.activity).await? {
                Some(target) => {
                    in_transaction(state, cx, move |c, cx| moves::apply(c, cx, &target)).await
                }
                None => Ok(Applied::ignored()),
            }
        }
        ActivityKind::Other => Ok(Applied::ignored()),
    }
}

/// `Update` of the actor itself (embedded, same id) or of a Note.
async fn update(state: &AppState, fetcher: &Fetcher<'_>, cx: Cx) -> Result<Applied, Error> {
    if cx.activity.object_id().as_ref() == Some(&cx.activity.actor)
        && cx.activity.embedded_object().is_some()
    {
        let doc = parse_actor(&cx.activity.object, &cx.activity.actor)
            .map_err(|e| InboxRejection::Malformed(e.to_string()))?;
        if doc.id != cx.activity.actor {
            return Ok(Applied::ignored());
        }
        return in_transaction(state, cx, move |c, cx| update::apply_actor(c, cx, &doc)).await;
    }
    match create::resolve(fetcher, &cx.activity).await? {
        Some(note) => {
            in_transaction(state, cx, move |c, cx| update::apply_note(c, cx, &note)).await
        }
        None => Ok(Applied::ignored()),
    }
}

/// Runs a handler in a write transaction that first claims the activity id (shared with
/// the other activities ready at the same time; see [`writer`]).
async fn in_transaction<F>(state: &AppState, cx: Cx, handler: F) -> Result<Applied, Error>
where
    F: Fn(&mut AnyConnection, &Cx) -> Result<Applied, Error> + Send + Sync + 'static,
{
    state.inbox_writer.apply(cx, Box::new(handler)).await
}
