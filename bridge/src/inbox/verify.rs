//! Who signed: from a signature's key id to a verified remote actor.

use super::{
    parse::{ActivityKind, InboundActivity},
    rate_limit::InboxRateLimits,
    rejection::InboxRejection,
};
use crate::{
    db::{now_millis, remote_actors::RemoteActor},
    error::Error,
    federation::{
        RemoteFailure, SignatureRejection, canonical_host, fetch::Fetcher,
        http_signatures::PendingSignature,
    },
};

/// A stored key is trusted without refetching for this long; after that it is refetched,
/// and still used if the refetch fails for a reason other than the actor being gone.
const KEY_FRESH_MS: i64 = 24 * 3600 * 1000;

/// The result of authenticating a request.
#[derive(Debug)]
pub(super) enum Authenticated {
    /// The signature verifies with a key of the activity's actor.
    Actor(Box<RemoteActor>),
    /// A deleted actor's own `Delete`, whose key can no longer be had (410): accepted
    /// without effect, as Mastodon does, so its server stops retrying.
    GoneActorDelete,
}

/// Refuses a key id on another origin than the activity's actor, before anything is looked
/// up or fetched for it, so a key id elsewhere cannot be used to make us fetch.
pub(super) fn key_on_actor_origin(
    pending: &PendingSignature,
    activity: &InboundActivity,
) -> Result<(), Error> {
    if pending.key_id.origin() != activity.actor.origin() {
        return Err(mismatch(pending.key_id.as_str(), activity));
    }
    Ok(())
}

/// Authenticates `activity`: its actor must own the key that signed the request (`stored`
/// is the actor holding that key id here, if any; the key is fetched when unknown or
/// stale), and the signature must verify. A signature that fails with a cached key is
/// retried once with a refetched key, since the actor may have rotated it. Every key fetch
/// is charged to the host's key-fetch budget. [`key_on_actor_origin`] must have passed.
pub(super) async fn authenticate(
    fetcher: &Fetcher<'_>,
    limits: &InboxRateLimits,
    pending: &PendingSignature,
    activity: &InboundActivity,
    stored: Option<RemoteActor>,
) -> Result<Authenticated, Error> {
    let key_id = pending.key_id.clone();
    let usable = stored.filter(|a| a.deleted_at.is_none() && a.public_key_pem.is_some());
    let charge_fetch = || {
        limits
            .charge_key_fetch(&canonical_host(&key_id))
            .map_err(InboxRejection::RateLimited)
    };
    let (actor, cached) = match usable {
        Some(actor) if now_millis() - actor.fetched_at < KEY_FRESH_MS => (actor, true),
        stale => match (charge_fetch(), stale) {
            // Over the key-fetch budget, a stale key still serves, as when a refetch fails.
            (Err(_), Some(actor)) => (actor, true),
            (Err(limited), None) => return Err(limited.into()),
            (Ok(()), stale) => match fetcher.actor_for_key(&key_id).await {
                Ok(actor) => (actor, false),
                Err(e) if is_gone(&e) => {
                    return if deletes_itself(activity) {
                        Ok(Authenticated::GoneActorDelete)
                    } else {
                        Err(unavailable(e))
                    };
                }
                Err(e) => match stale {
                    Some(actor) if !is_database(&e) => (actor, true),
                    _ => return Err(unavailable(e)),
                },
            },
        },
    };
    if actor.ap_id != activity.actor.as_str() {
        return Err(mismatch(&actor.ap_id, activity));
    }
    let pem = actor.public_key_pem.clone().unwrap_or_default();
    // On this thread: one RSA verification (tens of µs) costs less than handing it to the
    // blocking pool and back.
    match pending.verify(&pem) {
        Ok(()) => Ok(Authenticated::Actor(Box::new(actor))),
        Err(Error::Signature(SignatureRejection::BadSignature)) if cached => {
            // Forged signatures with a real key id must not make us refetch without bound.
            charge_fetch()?;
            let refreshed = fetcher.actor_for_key(&key_id).await.map_err(unavailable)?;
            if refreshed.ap_id != activity.actor.as_str() {
                return Err(mismatch(&refreshed.ap_id, activity));
            }
            if refreshed.public_key_pem == actor.public_key_pem {
                return Err(SignatureRejection::BadSignature.into());
            }
            pending.verify(refreshed.public_key_pem.as_deref().unwrap_or_default())?;
            Ok(Authenticated::Actor(Box::new(refreshed)))
        }
        Err(e) => Err(e),
    }
}

fn deletes_itself(activity: &InboundActivity) -> bool {
    activity.kind == ActivityKind::Delete && activity.object_id().as_ref() == Some(&activity.actor)
}

fn is_gone(error: &Error) -> bool {
    matches!(
        error,
        Error::Remote {
            failure: RemoteFailure::Gone,
            ..
        }
    )
}

fn is_database(error: &Error) -> bool {
    matches!(error, Error::Database(_) | Error::Pool(_))
}

/// A key that cannot be had is the sender's problem (401), unless our own database failed.
fn unavailable(error: Error) -> Error {
    if is_database(&error) {
        error
    } else {
        InboxRejection::KeyUnavailable(error.to_string()).into()
    }
}

fn mismatch(key_owner: &str, activity: &InboundActivity) -> Error {
    InboxRejection::KeyOwnerMismatch {
        key_owner: key_owner.to_owned(),
        actor: activity.actor.to_string(),
    }
    .into()
}
