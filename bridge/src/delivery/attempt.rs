//! One delivery attempt: the checks at send time (order, consent, blocks), then the signed
//! POST, then its verdict.

use std::{
    collections::{BTreeSet, HashSet},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use url::Url;

use super::{
    blocks::{self, Blocked},
    cache::{ActivityContext, Caches},
    consent::{self, Consent},
    outcome::{LedgerEntry, Outcome},
    policy::{self, Verdict},
};
use crate::{
    db::{
        AnyConnection, Database,
        activities::{self, ActivityId},
        deliveries::{self, ClaimedDelivery},
        keys,
        users::{self, UserId},
    },
    error::Error,
    federation::{
        FederationClient, PostOutcome, RemoteFailure, SigningKey, protocol::activity::ActivityType,
        urls::Urls,
    },
    telemetry::DeliveryMetrics,
};

/// How long a later activity waits, at least, behind an older one about the same object.
const ORDER_WAIT: Duration = Duration::from_secs(1);
/// How long a delivery waits when our own database failed while preparing it.
const STORAGE_WAIT: Duration = Duration::from_secs(5);

/// What a send task needs; shared by all of them.
pub struct Sender {
    /// Storage.
    pub db: Database,
    /// The SSRF-safe client.
    pub client: FederationClient,
    /// Our URL scheme.
    pub urls: Urls,
    /// Payloads, keys, consent.
    pub caches: Caches,
    /// Metrics.
    pub metrics: DeliveryMetrics,
    /// Deadline of one request.
    pub request_timeout: Duration,
}

/// What the checks decided.
enum Prepared {
    Send {
        payload: Bytes,
        key: SigningKey,
        ledger: Option<LedgerEntry>,
    },
    Wait(i64),
    Withhold(consent::Withheld),
    Blocked(Blocked),
    Broken(String),
}

/// Runs one delivery to its outcome; never fails (a storage failure is a retry).
pub async fn run(sender: Arc<Sender>, delivery: ClaimedDelivery) -> Outcome {
    // In a fan-out every delivery after the first finds its activity, consent verdict and
    // key cached; those skip the blocking pool and the database entirely.
    let prepared = match prepare_cached(&sender, &delivery) {
        Some(prepared) => Ok(prepared),
        None if needs_order_check(&delivery) => prepare_stored(&sender, &delivery).await,
        None => {
            // One read refreshes what every delivery of the activity shares: the others
            // find it cached once they get the lock.
            let _refreshing = sender.caches.refresh_lock(delivery.activity_id).await;
            match prepare_cached(&sender, &delivery) {
                Some(prepared) => Ok(prepared),
                None => prepare_stored(&sender, &delivery).await,
            }
        }
    };
    match prepared {
        Ok(Prepared::Send {
            payload,
            key,
            ledger,
        }) => send(&sender, &delivery, payload, &key, ledger).await,
        Ok(Prepared::Wait(until)) => Outcome::Deferred {
            id: delivery.id,
            until,
        },
        Ok(Prepared::Withhold(why)) => {
            tracing::info!(
                activity = delivery.activity_id.0,
                reason = why.as_str(),
                "consent withdrawn before send time; activity dropped"
            );
            Outcome::Dropped {
                activity: delivery.activity_id,
            }
        }
        Ok(Prepared::Blocked(why)) => {
            tracing::info!(
                delivery = delivery.id,
                inbox = %delivery.inbox,
                reason = why.as_str(),
                "inbox blocked since the delivery was queued; not sent"
            );
            Outcome::Blocked {
                id: delivery.id,
                why,
            }
        }
        Ok(Prepared::Broken(error)) => Outcome::Refused {
            id: delivery.id,
            status: None,
            error,
        },
        // Our own database failed before anything was sent: nothing was attempted and the
        // remote host did nothing wrong, so no attempt and no host failure are counted (a
        // database restart must not open the circuit of healthy hosts). While the database
        // is down no claim succeeds either, so this cannot spin.
        Err(error) if error.is_transient() => {
            tracing::warn!(%error, delivery = delivery.id, "preparing a delivery failed; it is due again shortly");
            Outcome::Deferred {
                id: delivery.id,
                until: crate::db::now_millis().saturating_add(millis(STORAGE_WAIT)),
            }
        }
        Err(error) => retry(&delivery, None, format!("preparing: {error}"), None, false),
    }
}

/// [`prepare`] on a pooled connection.
async fn prepare_stored(
    sender: &Arc<Sender>,
    delivery: &ClaimedDelivery,
) -> Result<Prepared, Error> {
    let shared = Arc::clone(sender);
    let delivery = delivery.clone();
    sender.db.run(move |c| prepare(c, &shared, &delivery)).await
}

/// Loads what the sends of a claim round will need (activity, consent verdict, key) for
/// every activity not yet cached, and the blocks when their snapshot is getting old, in one
/// database call, before the sends start: otherwise the first few hundred sends of a
/// fan-out all miss the caches at once and queue for the connection pool to load the same
/// rows.
pub async fn warm(sender: &Arc<Sender>, claimed: &[ClaimedDelivery]) {
    let mut seen = HashSet::new();
    let cold: Vec<ClaimedDelivery> = claimed
        .iter()
        .filter(|d| {
            seen.insert(d.activity_id)
                && (sender.caches.activity(d.activity_id).is_none()
                    || sender.caches.consent(d.activity_id).is_none())
        })
        .cloned()
        .collect();
    // Activities whose deliveries here are checked against blocks (retractions are not).
    let mut seen = HashSet::new();
    let checked: Vec<ActivityId> = claimed
        .iter()
        .filter(|d| !blocks::retracts(&d.kind) && seen.insert(d.activity_id))
        .map(|d| d.activity_id)
        .collect();
    let servers_due = !checked.is_empty() && sender.caches.blocks.servers_due();
    if cold.is_empty() && !servers_due && authors_due(&sender.caches, &checked).is_empty() {
        return;
    }
    let warmed = Arc::clone(sender);
    let result = sender
        .db
        .run(move |c| {
            for delivery in &cold {
                // Only the caches matter here; each send reads its verdict from them.
                let _verdict = load_shared(c, &warmed, delivery)?;
            }
            if servers_due {
                warmed.caches.blocks.load_servers(c)?;
            }
            // Authors of the activities just loaded are known only now.
            let authors = authors_due(&warmed.caches, &checked);
            warmed.caches.blocks.load_authors(c, &authors)?;
            Ok(())
        })
        .await;
    if let Err(error) = result {
        // Each send loads what it needs itself, and reports the failure there.
        tracing::debug!(%error, "warming the delivery caches failed");
    }
}

/// The authors of `activities` (those cached) whose blocks a claim round should reload.
fn authors_due(caches: &Caches, activities: &[ActivityId]) -> Vec<i64> {
    let authors: BTreeSet<i64> = activities
        .iter()
        .filter_map(|id| caches.activity(*id)?.user_id)
        .filter(|user| caches.blocks.author_due(*user))
        .collect();
    authors.into_iter().collect()
}

/// Whether this delivery must wait for an older activity about the same object.
fn needs_order_check(delivery: &ClaimedDelivery) -> bool {
    matches!(
        consent::activity_type(&delivery.kind),
        Some(ActivityType::Update | ActivityType::Delete)
    ) && delivery.object_ap_id.is_some()
}

/// The checks of [`prepare`] answered from the caches alone, when they can be.
fn prepare_cached(sender: &Sender, delivery: &ClaimedDelivery) -> Option<Prepared> {
    if needs_order_check(delivery) {
        return None;
    }
    let context = sender.caches.activity(delivery.activity_id)?;
    let verdict = sender.caches.consent(delivery.activity_id)?;
    if let Consent::Withhold(why) = verdict {
        return Some(Prepared::Withhold(why));
    }
    let key = sender.caches.key(context.user_id)?;
    if let Some(why) = cached_block(sender, delivery, context.user_id)? {
        return Some(Prepared::Blocked(why));
    }
    Some(Prepared::Send {
        payload: context.payload.clone(),
        key,
        ledger: ledger_entry(sender, delivery, context.user_id.map(UserId)),
    })
}

/// Whether the inbox is blocked for this delivery, from the block snapshots alone; `None`
/// when one it needs is missing or too old.
fn cached_block(
    sender: &Sender,
    delivery: &ClaimedDelivery,
    user: Option<i64>,
) -> Option<Option<Blocked>> {
    if blocks::retracts(&delivery.kind) {
        return Some(None);
    }
    let servers = sender.caches.blocks.servers()?;
    let author = match user {
        Some(user) => Some(sender.caches.blocks.author(user)?),
        None => None,
    };
    Some(blocks::check(
        &delivery.kind,
        &delivery.inbox,
        &delivery.host,
        &servers,
        author.as_deref(),
    ))
}

/// [`cached_block`], reading from the database what the snapshots lack.
fn loaded_block(
    conn: &mut AnyConnection,
    sender: &Sender,
    delivery: &ClaimedDelivery,
    user: Option<i64>,
) -> Result<Option<Blocked>, Error> {
    if blocks::retracts(&delivery.kind) {
        return Ok(None);
    }
    let cache = &sender.caches.blocks;
    let servers = match cache.servers() {
        Some(servers) => servers,
        None => cache.load_servers(conn)?,
    };
    let author = match user {
        Some(user) => Some(match cache.author(user) {
            Some(author) => author,
            None => cache
                .load_authors(conn, &[user])?
                .remove(&user)
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(blocks::check(
        &delivery.kind,
        &delivery.inbox,
        &delivery.host,
        &servers,
        author.as_deref(),
    ))
}

/// Where a successful delivery of our own Note is recorded, for opt-out.
fn ledger_entry(
    sender: &Sender,
    delivery: &ClaimedDelivery,
    user: Option<UserId>,
) -> Option<LedgerEntry> {
    match (consent::activity_type(&delivery.kind), user) {
        (Some(ActivityType::Create | ActivityType::Update), Some(user))
            if consent::local_note(&sender.urls, delivery.object_ap_id.as_deref()).is_some() =>
        {
            delivery
                .object_ap_id
                .clone()
                .map(|object_ap_id| LedgerEntry {
                    user,
                    object_ap_id,
                    inbox: delivery.inbox.clone(),
                })
        }
        _ => None,
    }
}

fn prepare(
    conn: &mut AnyConnection,
    sender: &Sender,
    delivery: &ClaimedDelivery,
) -> Result<Prepared, Error> {
    let now = crate::db::now_millis();
    if needs_order_check(delivery)
        && let Some(object) = delivery.object_ap_id.as_deref()
        && let Some(due) =
            deliveries::older_pending_due(conn, &delivery.inbox, object, delivery.activity_id)?
    {
        let earliest = now.saturating_add(millis(ORDER_WAIT));
        return Ok(Prepared::Wait(
            due.saturating_add(millis(ORDER_WAIT)).max(earliest),
        ));
    }
    load(conn, sender, delivery)
}

/// The activity, the consent verdict, the key and the blocks, from the caches or the
/// database (and then cached).
fn load(
    conn: &mut AnyConnection,
    sender: &Sender,
    delivery: &ClaimedDelivery,
) -> Result<Prepared, Error> {
    let (context, key) = match load_shared(conn, sender, delivery)? {
        Ok(shared) => shared,
        Err(verdict) => return Ok(verdict),
    };
    if let Some(why) = loaded_block(conn, sender, delivery, context.user_id)? {
        return Ok(Prepared::Blocked(why));
    }
    Ok(Prepared::Send {
        payload: context.payload.clone(),
        key,
        ledger: ledger_entry(sender, delivery, context.user_id.map(UserId)),
    })
}

/// What every delivery of the activity shares (the activity, the consent verdict and the
/// key), from the caches or the database (and then cached); or why none is sent.
fn load_shared(
    conn: &mut AnyConnection,
    sender: &Sender,
    delivery: &ClaimedDelivery,
) -> Result<Result<(Arc<ActivityContext>, SigningKey), Prepared>, Error> {
    let context = match sender.caches.activity(delivery.activity_id) {
        Some(context) => context,
        None => {
            let Some(stored) = activities::find(conn, delivery.activity_id)? else {
                return Ok(Err(Prepared::Broken("activity vanished".into())));
            };
            let context = Arc::new(ActivityContext {
                payload: Bytes::from(stored.payload),
                user_id: stored.user_id,
            });
            sender
                .caches
                .put_activity(delivery.activity_id, Arc::clone(&context));
            context
        }
    };
    let user = context.user_id.map(UserId);

    let verdict = match sender.caches.consent(delivery.activity_id) {
        Some(verdict) => verdict,
        None => {
            let verdict = consent::check(
                conn,
                &sender.urls,
                &delivery.kind,
                user,
                delivery.object_ap_id.as_deref(),
            )?;
            sender.caches.put_consent(delivery.activity_id, verdict);
            verdict
        }
    };
    if let Consent::Withhold(why) = verdict {
        return Ok(Err(Prepared::Withhold(why)));
    }

    let key = match sender.caches.key(context.user_id) {
        Some(key) => key,
        None => {
            let key_id = match user {
                Some(user) => match users::find(conn, user)? {
                    Some(found) => sender.urls.key_id(&found.platform_user_id),
                    None => return Ok(Err(Prepared::Broken("author vanished".into()))),
                },
                None => sender.urls.instance_key_id(),
            };
            let Some(stored) = keys::active(conn, user)? else {
                return Ok(Err(Prepared::Broken("the author has no key".into())));
            };
            let key = SigningKey::from_pem(key_id, &stored.private_key_pem)?;
            sender.caches.put_key(context.user_id, key.clone());
            key
        }
    };
    Ok(Ok((context, key)))
}

async fn send(
    sender: &Sender,
    delivery: &ClaimedDelivery,
    payload: Bytes,
    key: &SigningKey,
    ledger: Option<LedgerEntry>,
) -> Outcome {
    let Ok(inbox) = Url::parse(&delivery.inbox) else {
        return Outcome::Refused {
            id: delivery.id,
            status: None,
            error: "inbox is not a URL".into(),
        };
    };
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        sender.request_timeout,
        sender.client.post_activity(&inbox, payload, key),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let metrics = &sender.metrics;
    match result {
        Ok(Ok(answer)) => {
            metrics
                .request_duration
                .with_label_values(&[status_class(answer.status)])
                .observe(elapsed);
            classify(delivery, answer, ledger, metrics)
        }
        Ok(Err(error)) => {
            metrics
                .request_duration
                .with_label_values(&["error"])
                .observe(elapsed);
            if error.is_transient() {
                let reason = match &error {
                    Error::Remote {
                        failure: RemoteFailure::Timeout(_),
                        ..
                    } => "timeout",
                    _ => "transport",
                };
                metrics.failures.with_label_values(&[reason]).inc();
                retry(delivery, None, error.to_string(), None, false)
            } else {
                // Refused by policy (a private address, a bad scheme): it will never work.
                Outcome::Refused {
                    id: delivery.id,
                    status: None,
                    error: error.to_string(),
                }
            }
        }
        Err(_) => {
            metrics
                .request_duration
                .with_label_values(&["error"])
                .observe(elapsed);
            metrics.failures.with_label_values(&["timeout"]).inc();
            retry(
                delivery,
                None,
                format!("no answer within {:?}", sender.request_timeout),
                None,
                false,
            )
        }
    }
}

fn classify(
    delivery: &ClaimedDelivery,
    answer: PostOutcome,
    ledger: Option<LedgerEntry>,
    metrics: &DeliveryMetrics,
) -> Outcome {
    match policy::classify(answer.status) {
        Verdict::Delivered => Outcome::Delivered {
            id: delivery.id,
            host: delivery.host.clone(),
            status: answer.status,
            ledger,
        },
        Verdict::Gone => Outcome::Gone {
            id: delivery.id,
            inbox: delivery.inbox.clone(),
        },
        Verdict::Refused => Outcome::Refused {
            id: delivery.id,
            status: Some(answer.status),
            error: answer.body_excerpt,
        },
        Verdict::Retry => {
            let reason = match answer.status {
                408 => "status_408",
                429 => "status_429",
                _ => "status_5xx",
            };
            metrics.failures.with_label_values(&[reason]).inc();
            let block_host = matches!(answer.status, 429 | 503) && answer.retry_after.is_some();
            retry(
                delivery,
                Some(answer.status),
                format!("HTTP {}: {}", answer.status, answer.body_excerpt),
                answer.retry_after,
                block_host,
            )
        }
    }
}

fn retry(
    delivery: &ClaimedDelivery,
    status: Option<u16>,
    error: String,
    retry_after: Option<Duration>,
    block_host: bool,
) -> Outcome {
    Outcome::Retry {
        id: delivery.id,
        host: delivery.host.clone(),
        attempts: delivery.attempts,
        created_at: delivery.created_at,
        status,
        error,
        retry_after,
        block_host,
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::{federation::ClientConfig, settings::Settings, telemetry::Metrics};

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn our_database_down_defers_the_delivery_without_blaming_the_host() {
        // Nothing listens on port 1: every connection is refused, as during a restart.
        let env = HashMap::from([
            (
                "FEDIBRIDGE__DATABASE__URL".to_owned(),
                "postgres://nobody@127.0.0.1:1/none".to_owned(),
            ),
            (
                "FEDIBRIDGE__DATABASE__CONNECT_TIMEOUT_SECS".to_owned(),
                "1".to_owned(),
            ),
        ]);
        let settings = Settings::load_with_env(None, Some(env)).expect("settings");
        let sender = Arc::new(Sender {
            db: Database::new(&settings.database).expect("pool"),
            client: FederationClient::new(
                ClientConfig::from_settings(&settings.federation).expect("client settings"),
            )
            .expect("client"),
            urls: Urls::new(&settings.federation).expect("urls"),
            caches: Caches::default(),
            metrics: Metrics::new().expect("metrics").delivery,
            request_timeout: Duration::from_secs(1),
        });
        let delivery = ClaimedDelivery {
            id: 7,
            activity_id: ActivityId(1),
            inbox: "https://remote.example/inbox".into(),
            host: "remote.example".into(),
            attempts: 0,
            created_at: 0,
            kind: "Create".into(),
            object_ap_id: Some("http://localhost:8080/posts/p1".into()),
        };
        let outcome = run(sender, delivery).await;
        assert!(
            matches!(outcome, Outcome::Deferred { id: 7, .. }),
            "not attempted, so neither an attempt nor a host failure: {outcome:?}"
        );
    }
}
