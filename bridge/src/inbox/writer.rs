//! The inbox's transactions, batched: activities whose effects are ready at the same time
//! are applied in one transaction (one connection, one `BEGIN`/`COMMIT`, one WAL flush)
//! rather than one transaction each.
//!
//! Nothing waits to fill a batch: a batch is whatever queued while the previous ones held
//! every slot, so a lone activity is applied at once and a burst shares its commits. Each
//! activity still claims its id first, and is answered only after the commit that holds
//! its effect. When a batch fails, nothing of it is kept and each of its activities is
//! applied alone, so one bad activity never costs another its answer.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::context::{Applied, Cx};
use crate::{
    db::{AnyConnection, Database, dedupe, is_unique_violation, write_transaction},
    error::Error,
};

/// Most activities applied in one transaction: a bound on how long one commit makes the
/// first of them wait.
const MAX_BATCH: usize = 64;

/// A handler: the effect of one authenticated activity, inside a transaction.
pub(super) type Handler = dyn Fn(&mut AnyConnection, &Cx) -> Result<Applied, Error> + Send + Sync;

/// One activity waiting for its transaction.
struct Work {
    cx: Cx,
    handler: Box<Handler>,
}

struct Queued {
    work: Arc<Work>,
    answer: oneshot::Sender<Result<Applied, Error>>,
}

/// Applies the effects of authenticated activities in batched transactions.
#[derive(Clone)]
pub struct InboxWriter {
    queue: mpsc::UnboundedSender<Queued>,
}

impl std::fmt::Debug for InboxWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxWriter").finish_non_exhaustive()
    }
}

impl InboxWriter {
    /// Starts the writer on the current runtime, with at most `transactions` batches in
    /// flight at once (each holds one connection of `db`'s pool). It stops when the last
    /// clone of the writer is dropped, after answering everything queued.
    pub fn start(db: Database, transactions: usize) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(run(db, jobs, transactions.max(1)));
        Self { queue }
    }

    /// Claims the activity's id and runs `handler`, in a transaction shared with other
    /// activities ready at the same time; returns once that transaction is committed.
    ///
    /// A unique violation (a concurrent request committed a row this one also meant to
    /// create) rolls the activity back and runs it once more, when it sees that row.
    pub(super) async fn apply(&self, cx: Cx, handler: Box<Handler>) -> Result<Applied, Error> {
        let (answer, answered) = oneshot::channel();
        let work = Arc::new(Work { cx, handler });
        self.queue
            .send(Queued { work, answer })
            .map_err(|_| Error::Storage("the inbox writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| Error::Storage("the inbox writer dropped an activity".into()))?
    }
}

async fn run(db: Database, mut jobs: mpsc::UnboundedReceiver<Queued>, transactions: usize) {
    let slots = Arc::new(Semaphore::new(transactions));
    while let Some(first) = jobs.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        // Everything that queued while the slots were busy goes into this batch.
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let db = db.clone();
        tokio::spawn(async move {
            commit(&db, batch).await;
            drop(slot);
        });
    }
}

async fn commit(db: &Database, batch: Vec<Queued>) {
    let works: Vec<Arc<Work>> = batch.iter().map(|q| Arc::clone(&q.work)).collect();
    let results = match db.run(move |c| Ok(apply_batch(c, &works))).await {
        Ok(results) => results,
        // No connection could be had: each activity gets its own answer (and error).
        Err(_) => {
            let alone = batch.iter().map(|q| {
                let work = Arc::clone(&q.work);
                db.run(move |c| apply_alone(c, &work))
            });
            futures_util::future::join_all(alone).await
        }
    };
    for (queued, result) in batch.into_iter().zip(results) {
        // The requester may have gone (client disconnected): its effect stands anyway.
        let _ = queued.answer.send(result);
    }
}

/// All of `works` in one transaction; if that fails, each in a transaction of its own.
fn apply_batch(conn: &mut AnyConnection, works: &[Arc<Work>]) -> Vec<Result<Applied, Error>> {
    if works.len() > 1 {
        let together = write_transaction(conn, |c| {
            // Every id of the batch is claimed in one statement, first occurrence first.
            let claims: Vec<dedupe::ActivityClaim<'_>> = works
                .iter()
                .map(|w| {
                    let activity = &w.cx.activity;
                    (
                        activity.id.as_str(),
                        activity.actor.as_str(),
                        activity.type_name.as_str(),
                        w.cx.now,
                    )
                })
                .collect();
            let mut fresh = dedupe::claim_activities(c, &claims)?;
            works
                .iter()
                .map(|w| {
                    if fresh.remove(w.cx.activity.id.as_str()) {
                        (w.handler)(c, &w.cx)
                    } else {
                        Ok(Applied::duplicate())
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        });
        match together {
            Ok(applied) => return applied.into_iter().map(Ok).collect(),
            Err(error) => {
                tracing::debug!(%error, "an inbox batch failed; applying its activities one by one");
            }
        }
    }
    works.iter().map(|w| apply_alone(conn, w)).collect()
}

/// One activity in its own transaction, run once more after a unique violation.
fn apply_alone(conn: &mut AnyConnection, work: &Work) -> Result<Applied, Error> {
    match write_transaction(conn, |c| apply_one(c, work)) {
        Err(Error::Database(e)) if is_unique_violation(&e) => {
            tracing::debug!(error = %e, "inbox: concurrent insert; running once more");
            write_transaction(conn, |c| apply_one(c, work))
        }
        other => other,
    }
}

/// Claims the activity id (a replay or redelivery changes nothing twice), then applies it.
fn apply_one(conn: &mut AnyConnection, work: &Work) -> Result<Applied, Error> {
    let cx = &work.cx;
    let fresh = dedupe::claim_activity(
        conn,
        cx.activity.id.as_str(),
        cx.activity.actor.as_str(),
        &cx.activity.type_name,
        cx.now,
    )?;
    if !fresh {
        return Ok(Applied::duplicate());
    }
    (work.handler)(conn, cx)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use diesel::prelude::*;
    use serde_json::Value;
    use url::Url;

    use super::*;
    use crate::{
        db::{remote_actors::RemoteActor, schema::inbound_activities},
        federation::urls::Urls,
        inbox::{
            context::Outcome,
            follow::FollowCaps,
            parse::{ActivityKind, InboundActivity},
        },
        settings::Settings,
    };

    fn cx(settings: &Settings, id: &str) -> Cx {
        let actor = Url::parse("https://remote.example/users/eve").expect("url");
        Cx {
            urls: Urls::new(&settings.federation).expect("urls"),
            activity: InboundActivity {
                id: Url::parse(&format!("{actor}#{id}")).expect("url"),
                kind: ActivityKind::Like,
                type_name: "Like".into(),
                actor: actor.clone(),
                object: Value::Null,
                target: Value::Null,
                content: None,
            },
            actor: RemoteActor {
                id: 1.into(),
                ap_id: actor.to_string(),
                host: "remote.example".into(),
                kind: "Person".into(),
                preferred_username: None,
                name: None,
                url: None,
                icon_url: None,
                inbox: format!("{actor}/inbox"),
                shared_inbox: None,
                public_key_id: None,
                public_key_pem: None,
                moved_to: None,
                fetched_at: 0,
                deleted_at: None,
            },
            now: 1,
            follow_caps: FollowCaps::from_settings(&settings.inbox),
            host_block: None,
        }
    }

    /// A writer with one transaction slot on a fresh SQLite database (kept while the
    /// directory lives).
    async fn writer_on_sqlite() -> (tempfile::TempDir, Settings, Database, InboxWriter) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("writer.db").display());
        let settings = Settings::load_with_env(
            None,
            Some(HashMap::from([(
                "FEDIBRIDGE__DATABASE__URL".to_owned(),
                url,
            )])),
        )
        .expect("settings");
        let db = Database::new(&settings.database).expect("pool");
        db.migrate().await.expect("migrations");
        let writer = InboxWriter::start(db.clone(), 1);
        (dir, settings, db, writer)
    }

    /// A batch claims its ids in one statement: an id claimed before, or given twice in the
    /// batch, is a replay (only its first occurrence is applied), and nothing else is.
    #[tokio::test]
    async fn a_batch_applies_each_new_id_once() {
        let (_dir, settings, _db, writer) = writer_on_sqlite().await;
        let applied = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let handler = || -> Box<Handler> {
            let applied = Arc::clone(&applied);
            Box::new(move |_: &mut AnyConnection, cx: &Cx| {
                applied
                    .lock()
                    .expect("lock")
                    .push(cx.activity.id.to_string());
                Ok(Applied::accepted())
            })
        };
        let old = writer.apply(cx(&settings, "old"), handler()).await;
        assert_eq!(old.expect("applied").outcome, Outcome::Accepted);

        // Queued before the writer runs (one thread), so they form one batch.
        let (first, old, second, again) = tokio::join!(
            writer.apply(cx(&settings, "first"), handler()),
            writer.apply(cx(&settings, "old"), handler()),
            writer.apply(cx(&settings, "second"), handler()),
            writer.apply(cx(&settings, "first"), handler()),
        );
        assert_eq!(first.expect("applied").outcome, Outcome::Accepted);
        assert_eq!(old.expect("answered").outcome, Outcome::Duplicate);
        assert_eq!(second.expect("applied").outcome, Outcome::Accepted);
        assert_eq!(again.expect("answered").outcome, Outcome::Duplicate);
        let eve = "https://remote.example/users/eve";
        assert_eq!(
            *applied.lock().expect("lock"),
            [
                format!("{eve}#old"),
                format!("{eve}#first"),
                format!("{eve}#second")
            ]
        );
    }

    /// A failing activity in a batch costs the others nothing: the batch is rolled back,
    /// each activity is applied alone, and only the failing one is refused (its id is not
    /// claimed, so its sender's retry will be applied).
    #[tokio::test]
    async fn a_failing_activity_leaves_the_rest_of_its_batch_applied() {
        let (_dir, settings, db, writer) = writer_on_sqlite().await;

        let ok = |_: &mut AnyConnection, _: &Cx| Ok(Applied::accepted());
        let failing = |_: &mut AnyConnection, _: &Cx| -> Result<Applied, Error> {
            Err(Error::Storage("this activity cannot be applied".into()))
        };
        // Queued before the writer runs (one thread), so they form one batch.
        let (first, bad, second, again) = tokio::join!(
            writer.apply(cx(&settings, "first"), Box::new(ok)),
            writer.apply(cx(&settings, "bad"), Box::new(failing)),
            writer.apply(cx(&settings, "second"), Box::new(ok)),
            writer.apply(cx(&settings, "first"), Box::new(ok)),
        );
        assert_eq!(first.expect("applied").outcome, Outcome::Accepted);
        assert!(matches!(bad, Err(Error::Storage(_))), "{bad:?}");
        assert_eq!(second.expect("applied").outcome, Outcome::Accepted);
        assert_eq!(again.expect("answered").outcome, Outcome::Duplicate);

        let mut claimed: Vec<String> = db
            .run(|c| {
                Ok(inbound_activities::table
                    .select(inbound_activities::ap_id)
                    .load(c)?)
            })
            .await
            .expect("claims");
        claimed.sort();
        assert_eq!(
            claimed,
            [
                "https://remote.example/users/eve#first",
                "https://remote.example/users/eve#second"
            ]
        );
    }
}
