//! S3, the inbox: signed `Follow`, `Like` and reply (`Create` of a Note) from 1,000 remote
//! actors POSTed to the bridge's HTTP inbox; activities/s answered 2xx with their effect
//! committed, against the raw lapin confirmed-publish rate on the same broker, measured in
//! the same run; and the p99 of the inbox's answer at a steady rate.
//!
//! Phases: a warm-up (each actor's first activity, which makes the bridge fetch and store
//! its key), then a closed-loop throughput phase (a fixed number of requests in flight),
//! then an open-loop latency phase at half the throughput measured (latency counted from
//! each request's due time). Requests are signed before each phase starts, so the load
//! generator spends no RSA time while the bridge is measured. Every 50th request repeats an
//! earlier one byte for byte (a redelivery): it must be answered 2xx and change nothing.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use bridge::{
    Role,
    db::{
        AnyConnection, Database,
        schema::{activities, follows, inbound_activities, platform_outbox, remote_interactions},
    },
    federation::{http_signatures::sign_request, urls::Urls},
};
use bytes::Bytes;
use diesel::prelude::*;
use futures_util::{StreamExt, stream};
use lapin::{
    options::{QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use serde_json::{Value, json};
use url::Url;

use crate::{
    Env, bridge_config, broker,
    database::{Backend, ScratchDatabase},
    error::Error,
    fake_actors::{Actor, FakeActors},
    fixtures::{self, Running},
    latency::Summary,
    process,
    report::{Direction, Gate, Results},
    sql_stats,
};

/// Remote actors sending.
const ACTORS: usize = 1_000;
/// Remote hosts they live on.
const REMOTE_HOSTS: u8 = 10;
/// Requests in flight in the throughput phase.
const CONCURRENCY: usize = 32;
/// Every `REPLAY_EVERY`-th request repeats an earlier one of its phase.
const REPLAY_EVERY: usize = 50;
/// Messages of the confirmed-publish calibration.
const CALIBRATION_MESSAGES: usize = 20_000;
/// Goals.
const THROUGHPUT_GOAL: f64 = 0.10;
const P99_BOUND_MS: f64 = 25.0;

/// What an activity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Follow,
    Like,
    Reply,
}

/// One request, signed and ready to send.
#[derive(Clone)]
struct Signed {
    url: Url,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    kind: Kind,
    /// A byte-for-byte repeat of an earlier request.
    replay: bool,
}

/// What a request came to.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: u16,
    latency: Duration,
    kind: Kind,
    replay: bool,
}

/// Counts of a phase.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// First-time activities answered 2xx, by kind.
    follows: u64,
    likes: u64,
    replies: u64,
    /// Repeats answered 2xx.
    replays_ok: u64,
    /// Anything answered otherwise.
    refused: u64,
}

impl Tally {
    fn of(answers: &[Answer]) -> Self {
        let mut t = Self::default();
        for a in answers {
            let ok = (200..300).contains(&a.status);
            match (ok, a.replay, a.kind) {
                (false, _, _) => t.refused += 1,
                (true, true, _) => t.replays_ok += 1,
                (true, false, Kind::Follow) => t.follows += 1,
                (true, false, Kind::Like) => t.likes += 1,
                (true, false, Kind::Reply) => t.replies += 1,
            }
        }
        t
    }

    fn accepted(&self) -> u64 {
        self.follows + self.likes + self.replies
    }

    fn json(&self, answers: &[Answer]) -> Value {
        let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
        for a in answers {
            *statuses.entry(a.status).or_default() += 1;
        }
        json!({
            "requests": answers.len(),
            "accepted_first_time": self.accepted(),
            "follows": self.follows,
            "likes": self.likes,
            "replies": self.replies,
            "replays_answered_2xx": self.replays_ok,
            "refused": self.refused,
            "statuses": statuses,
        })
    }
}

/// Runs S3 and records its two gates.
pub async fn run(env: &Env, results: &mut Results) {
    let (throughput, latency) = if env.quick {
        (1_500, 900)
    } else {
        (6_000, 3_000)
    };
    println!(
        "-- s3: {ACTORS} remote actors, {throughput} activities closed loop, then {latency} open loop"
    );
    if let Err(error) = measure(env, results, throughput, latency).await {
        eprintln!("s3: could not run: {error}");
        results.not_run.insert("s3".into(), error.to_string());
    }
}

/// The local side: users who share, each with one federated post.
struct Local {
    urls: Urls,
    /// `(platform user id, its post's Note URL)`; the first is the warm-up target.
    targets: Vec<(String, Url)>,
}

async fn measure(
    env: &Env,
    results: &mut Results,
    throughput_requests: usize,
    latency_requests: usize,
) -> Result<(), Error> {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let connection = broker::connect(&env.broker_url, "fedibridge-bench-s3").await?;

    // The limit: raw confirmed publishes, same broker, just before (and again just after).
    let confirmed_per_s =
        confirmed_publish_rate(&connection, &format!("bench.s3raw.{tag}")).await?;

    let key_pool = if env.quick { 20 } else { 50 };
    let remote = FakeActors::start(REMOTE_HOSTS, ACTORS, key_pool).await?;
    let outcome = with_remote(
        env,
        results,
        &connection,
        &remote,
        &tag,
        confirmed_per_s,
        (throughput_requests, latency_requests, key_pool),
    )
    .await;
    remote.stop().await;
    let _ = connection.close(200, "s3 done".into()).await;
    outcome
}

/// Raw confirmed publishes/s of 1 KiB persistent messages into a fresh durable queue.
async fn confirmed_publish_rate(connection: &lapin::Connection, queue: &str) -> Result<f64, Error> {
    broker::declare_plain_queue(connection, queue).await?;
    let body = vec![b'x'; 1024];
    let (published, publish_time) = broker::preload(
        connection,
        "",
        (0..CALIBRATION_MESSAGES).map(|n| broker::Message {
            routing_key: queue.to_owned(),
            message_id: format!("m{n}"),
            body: body.clone(),
        }),
    )
    .await?;
    broker::delete_queues(connection, &[queue.to_owned()]).await?;
    Ok(broker::rate(published, publish_time))
}

async fn with_remote(
    env: &Env,
    results: &mut Results,
    connection: &lapin::Connection,
    remote: &FakeActors,
    tag: &str,
    confirmed_per_s: f64,
    (throughput_requests, latency_requests, key_pool): (usize, usize, usize),
) -> Result<(), Error> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let database = ScratchDatabase::create(Backend::Postgres, &env.postgres_admin)?;
    let topology = bridge_config::topology(tag)?;
    let mut overrides = bridge_config::broker(&env.broker_url, &topology);
    overrides.extend([
        ("FEDIBRIDGE__SERVER__BIND", format!("127.0.0.1:{port}")),
        ("FEDIBRIDGE__FEDERATION__BASE_URL", base.clone()),
        (
            "FEDIBRIDGE__FEDERATION__DOMAIN",
            format!("127.0.0.1:{port}"),
        ),
        (
            "FEDIBRIDGE__FEDERATION__ALLOW_PRIVATE_ADDRESSES",
            "true".to_owned(),
        ),
        // Off for this scenario: 1,000 actors on 10 hosts sending as fast as they can would
        // otherwise be refused 429 by design (the limits are measured by the abuse tests).
        (
            "FEDIBRIDGE__INBOX__HOST_ACTIVITIES_PER_MINUTE",
            "0".to_owned(),
        ),
        (
            "FEDIBRIDGE__INBOX__ACTOR_ACTIVITIES_PER_MINUTE",
            "0".to_owned(),
        ),
    ]);
    let settings = bridge_config::settings(&database.url, &overrides)?;
    let configured = json!({
        "backend": "postgres",
        "roles": ["http", "relay"],
        "actors": ACTORS,
        "remote_hosts": REMOTE_HOSTS,
        "distinct_key_pairs": key_pool,
        "inbox.host_activities_per_minute": 0,
        "inbox.actor_activities_per_minute": 0,
        "rate_limits": "off (both set to 0 for this scenario)",
        "http_workers": settings.server.workers,
        "database_pool_size": settings.database.pool_size,
        "throughput_concurrency": CONCURRENCY,
        "replay_every": REPLAY_EVERY,
        "mix": "Follow (user inbox), Like and reply Create (shared inbox) in equal thirds",
        "confirmed_publish_calibration": {
            "messages": CALIBRATION_MESSAGES,
            "bytes": 1024,
            "confirm_window": 1000,
        },
        "load_generator": "reqwest in the bench process, requests signed before each phase",
    });
    let urls = Urls::new(&settings.federation)?;
    let db = Database::new(&settings.database)?;
    db.migrate().await?;
    let first_time = throughput_requests + latency_requests;
    // One target for the warm-up, then one per round of the actors.
    let rounds = first_time.div_ceil(3 * ACTORS).max(1);
    let local = local_side(&db, urls, 1 + rounds).await?;

    topology.declare_at(&env.broker_url).await?;
    // Counts what the relay hands to the platform.
    let counted = format!("bench.s3count.{tag}");
    let channel = connection.create_channel().await?;
    channel
        .queue_declare(
            counted.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            counted.as_str().into(),
            topology.outbound_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let running = Running::start(settings, &[Role::Http, Role::Relay]).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .map_err(|e| Error::Setup(format!("HTTP client: {e}")))?;
    let shared_inbox = local.urls.shared_inbox();

    // Warm-up: every actor's first activity (a Like of the first post) fetches its key.
    let warmup: Vec<Signed> = sign_all(
        (0..ACTORS)
            .map(|a| {
                activity(
                    &local,
                    &remote.actors[a],
                    Kind::Like,
                    &format!("w{a}"),
                    0,
                    &shared_inbox,
                )
            })
            .collect(),
    )
    .await?;
    let started = Instant::now();
    let warm_answers = closed_loop(&client, warmup, CONCURRENCY).await;
    let warm_elapsed = started.elapsed();
    let fetches_after_warmup = remote.fetches();

    // Throughput, closed loop.
    let throughput_plan = plan(&local, remote, 0, throughput_requests, &shared_inbox);
    let signed = sign_all(throughput_plan).await?;
    let cpu_before = process::cpu_time();
    let requests = signed.len();
    process::profile_phase(true);
    sql_stats::phase(true, requests);
    let started = Instant::now();
    let answers = closed_loop(&client, signed, CONCURRENCY).await;
    let elapsed = started.elapsed();
    sql_stats::phase(false, requests);
    process::profile_phase(false);
    let cpu = process::cpu_time().saturating_sub(cpu_before);
    let tally = Tally::of(&answers);
    let rate = broker::rate(tally.accepted(), elapsed);

    // Latency, open loop at half that rate.
    let latency_rate = (rate / 2.0).max(1.0);
    let latency_plan = plan(
        &local,
        remote,
        throughput_requests,
        latency_requests,
        &shared_inbox,
    );
    let signed = sign_all(latency_plan).await?;
    let latency_answers = open_loop(&client, signed, latency_rate).await;
    let latency_tally = Tally::of(&latency_answers);
    let latency = Summary::of(
        &latency_answers
            .iter()
            .map(|a| a.latency)
            .collect::<Vec<_>>(),
    );

    // Effects: committed once each, and handed to the platform once each.
    let warm_tally = Tally::of(&warm_answers);
    let expected = Expected {
        follows: tally.follows + latency_tally.follows,
        likes: warm_tally.likes + tally.likes + latency_tally.likes,
        replies: tally.replies + latency_tally.replies,
    };
    let relayed = wait_for_relay(&db, Duration::from_secs(60).min(env.deadline)).await?;
    let stored = stored(&db).await?;
    let on_broker = broker::depth(connection, &counted).await?;
    running.stop().await;
    broker::delete_queues(connection, std::slice::from_ref(&counted)).await?;
    topology.delete(&channel).await?;
    // The limit again, now that the bridge is stopped; the two are averaged (the median of
    // two): one 20,000-message calibration alone moved by almost 2x between runs here.
    let confirmed_after =
        confirmed_publish_rate(connection, &format!("bench.s3raw.{tag}.after")).await?;
    let confirmed_before = confirmed_per_s;
    let confirmed_per_s = (confirmed_before + confirmed_after) / 2.0;

    let mut details = configured;
    details["confirmed_publish_per_s"] = json!(confirmed_per_s);
    details["confirmed_publish_per_s_before"] = json!(confirmed_before);
    details["confirmed_publish_per_s_after"] = json!(confirmed_after);
    details["warmup"] = json!({
        "activities": ACTORS,
        "per_s": broker::rate(warm_tally.accepted(), warm_elapsed),
        "latency_ms": Summary::of(&warm_answers.iter().map(|a| a.latency).collect::<Vec<_>>()),
        "key_fetches": fetches_after_warmup,
        "answers": warm_tally.json(&warm_answers),
    });
    details["throughput_phase"] = json!({
        "seconds": elapsed.as_secs_f64(),
        "accepted_per_s": rate,
        "latency_ms_closed_loop": Summary::of(&answers.iter().map(|a| a.latency).collect::<Vec<_>>()),
        "bench_process_cpu_us_per_request": cpu.as_secs_f64() * 1e6 / answers.len().max(1) as f64,
        "answers": tally.json(&answers),
    });
    details["latency_phase"] = json!({
        "rate_per_s": latency_rate,
        "latency_ms": latency,
        "measured_from": "each request's due time on the open-loop schedule",
        "answers": latency_tally.json(&latency_answers),
    });
    details["key_fetches_total"] = json!(remote.fetches());
    details["stored"] = json!({
        "follows": stored.follows,
        "likes": stored.likes,
        "replies": stored.replies,
        "inbound_activities": stored.inbound,
        "accept_activities": stored.accepts,
        "platform_messages": stored.outbox,
        "platform_messages_unpublished": stored.unpublished,
        "messages_on_the_broker": on_broker,
    });

    let refused = warm_tally.refused + tally.refused + latency_tally.refused;
    let total = expected.follows + expected.likes + expected.replies;
    let problem = if refused > 0 {
        let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
        for a in warm_answers.iter().chain(&answers).chain(&latency_answers) {
            if !(200..300).contains(&a.status) {
                *statuses.entry(a.status).or_default() += 1;
            }
        }
        Some(format!(
            "{refused} valid requests were not answered 2xx (by status: {statuses:?}; 0 = no answer)"
        ))
    } else if stored.follows != expected.follows as i64
        || stored.likes != expected.likes as i64
        || stored.replies != expected.replies as i64
    {
        Some(format!(
            "stored {} follows, {} likes, {} replies for {} / {} / {} accepted",
            stored.follows,
            stored.likes,
            stored.replies,
            expected.follows,
            expected.likes,
            expected.replies
        ))
    } else if stored.inbound != total as i64 || stored.outbox != total as i64 {
        Some(format!(
            "{} activity ids recorded and {} platform messages for {total} accepted activities",
            stored.inbound, stored.outbox
        ))
    } else if !relayed || u64::from(on_broker) != total {
        Some(format!(
            "{on_broker} messages reached the broker for {total} accepted activities"
        ))
    } else {
        None
    };
    let with_problem = |gate: Gate| match &problem {
        Some(why) => gate.fail_because(why),
        None => gate,
    };
    results.record(
        "s3.throughput",
        with_problem(Gate::new(
            "inbox activities/s accepted (2xx, committed) vs lapin confirmed publishes/s",
            rate,
            confirmed_per_s,
            THROUGHPUT_GOAL,
            Direction::AtLeast,
            details.clone(),
        )),
    );
    results.record(
        "s3.p99",
        with_problem(Gate::new(
            "ms p99 of the inbox's answer at half the throughput (bound 25 ms)",
            latency.p99_ms,
            P99_BOUND_MS,
            1.0,
            Direction::AtMost,
            details,
        )),
    );
    Ok(())
}

/// `count` local users with one published post each.
async fn local_side(db: &Database, urls: Urls, count: usize) -> Result<Local, Error> {
    let mut targets = Vec::new();
    for r in 0..count {
        let uid = format!("s3u{r}");
        let (user, _) = fixtures::sharing_user(db, &uid).await?;
        let pid = format!("s3p{r}");
        fixtures::publish(db, &urls, &user, &pid).await?;
        targets.push((uid, urls.note(&pid)));
    }
    Ok(Local { urls, targets })
}

/// Activities `first..first + count` of the run: kind by `i % 3`, actor by `i / 3`, and the
/// target (which local user or post; the first is the warm-up's) by how many times the
/// actors have gone round, so that no actor follows or likes the same thing twice.
fn plan(
    local: &Local,
    remote: &FakeActors,
    first: usize,
    count: usize,
    shared_inbox: &Url,
) -> Vec<(Url, Value, Actor, Kind)> {
    (first..first + count)
        .map(|i| {
            let kind = match i % 3 {
                0 => Kind::Follow,
                1 => Kind::Like,
                _ => Kind::Reply,
            };
            let actor = &remote.actors[(i / 3) % ACTORS];
            let round = 1 + i / (3 * ACTORS);
            activity(local, actor, kind, &i.to_string(), round, shared_inbox)
        })
        .collect()
}

/// One activity of `actor` about round `round`'s user or post, and where it is posted.
fn activity(
    local: &Local,
    actor: &Actor,
    kind: Kind,
    n: &str,
    round: usize,
    shared_inbox: &Url,
) -> (Url, Value, Actor, Kind) {
    let (uid, note) = &local.targets[round.min(local.targets.len() - 1)];
    let id = &actor.id;
    let (inbox, body) = match kind {
        Kind::Follow => (
            local.urls.inbox(uid),
            json!({
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": format!("{id}/follows/{n}"),
                "type": "Follow",
                "actor": id,
                "object": local.urls.actor(uid),
            }),
        ),
        Kind::Like => (
            shared_inbox.clone(),
            json!({
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": format!("{id}/likes/{n}"),
                "type": "Like",
                "actor": id,
                "object": note,
            }),
        ),
        Kind::Reply => (
            shared_inbox.clone(),
            json!({
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": format!("{id}/statuses/{n}/activity"),
                "type": "Create",
                "actor": id,
                "to": ["https://www.w3.org/ns/activitystreams#Public"],
                "cc": [local.urls.actor(uid)],
                "object": {
                    "id": format!("{id}/statuses/{n}"),
                    "type": "Note",
                    "attributedTo": id,
                    "inReplyTo": note,
                    "content": format!("<p>Reply {n}: a fine table of Bernoulli numbers, though the seventh looks off by one.</p>"),
                    "to": ["https://www.w3.org/ns/activitystreams#Public"],
                    "cc": [local.urls.actor(uid)],
                    "published": "2026-01-01T00:00:00Z",
                },
            }),
        ),
    };
    (inbox, body, actor.clone(), kind)
}

/// Signs every request on the blocking pool, then inserts a byte-for-byte repeat of an
/// earlier one after every `REPLAY_EVERY - 1` of them.
async fn sign_all(plan: Vec<(Url, Value, Actor, Kind)>) -> Result<Vec<Signed>, Error> {
    let signed = tokio::task::spawn_blocking(move || {
        let now = SystemTime::now();
        plan.into_iter()
            .map(|(url, body, actor, kind)| {
                let body = serde_json::to_vec(&body)?;
                let headers = sign_request(&actor.key, "POST", &url, Some(&body), now)?;
                Ok(Signed {
                    headers: headers
                        .iter()
                        .map(|(name, value)| (name, value.to_owned()))
                        .collect(),
                    url,
                    body: Bytes::from(body),
                    kind,
                    replay: false,
                })
            })
            .collect::<Result<Vec<_>, Error>>()
    })
    .await
    .map_err(|e| Error::Setup(format!("signing: {e}")))??;
    let mut with_replays = Vec::with_capacity(signed.len() + signed.len() / REPLAY_EVERY);
    for (n, request) in signed.into_iter().enumerate() {
        with_replays.push(request);
        if (n + 1) % (REPLAY_EVERY - 1) == 0 {
            // Ten requests back, so it is usually committed already (a redelivery).
            let earlier = with_replays.len().saturating_sub(10);
            let mut again = with_replays[earlier].clone();
            if !again.replay {
                again.replay = true;
                with_replays.push(again);
            }
        }
    }
    Ok(with_replays)
}

async fn send(client: &reqwest::Client, request: &Signed, from: Instant) -> Answer {
    let mut builder = client
        .post(request.url.as_str())
        .header("content-type", "application/activity+json");
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    let status = match builder.body(request.body.clone()).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the (small) answer, so the connection goes back to the pool.
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    };
    Answer {
        status,
        latency: from.elapsed(),
        kind: request.kind,
        replay: request.replay,
    }
}

/// `concurrency` requests in flight until all are answered.
async fn closed_loop(
    client: &reqwest::Client,
    requests: Vec<Signed>,
    concurrency: usize,
) -> Vec<Answer> {
    stream::iter(requests)
        .map(|request| async move { send(client, &request, Instant::now()).await })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// Request `n` sent at `start + n / rate`, whatever the answers before it; latency from
/// that due time.
async fn open_loop(client: &reqwest::Client, requests: Vec<Signed>, rate: f64) -> Vec<Answer> {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let client = Arc::new(client.clone());
    let mut tasks = Vec::with_capacity(requests.len());
    for (n, request) in requests.into_iter().enumerate() {
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(
            async move { send(&client, &request, due).await },
        ));
    }
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(answer) = task.await {
            answers.push(answer);
        }
    }
    answers
}

/// First-time activities answered 2xx, by kind, over every phase.
struct Expected {
    follows: u64,
    likes: u64,
    replies: u64,
}

/// What the database holds afterwards.
struct Stored {
    follows: i64,
    likes: i64,
    replies: i64,
    inbound: i64,
    accepts: i64,
    outbox: i64,
    unpublished: i64,
}

async fn stored(db: &Database) -> Result<Stored, Error> {
    Ok(db
        .run(|c| {
            let interactions = |kind: &str, c: &mut AnyConnection| {
                remote_interactions::table
                    .filter(remote_interactions::kind.eq(kind.to_owned()))
                    .count()
                    .get_result::<i64>(c)
            };
            Ok(Stored {
                follows: follows::table.count().get_result(c)?,
                likes: interactions("like", c)?,
                replies: interactions("reply", c)?,
                inbound: inbound_activities::table.count().get_result(c)?,
                accepts: activities::table
                    .filter(activities::kind.eq("Accept"))
                    .count()
                    .get_result(c)?,
                outbox: platform_outbox::table.count().get_result(c)?,
                unpublished: platform_outbox::table
                    .filter(platform_outbox::published_at.is_null())
                    .count()
                    .get_result(c)?,
            })
        })
        .await?)
}

/// Waits until the relay has published every platform message; whether it did in `limit`.
async fn wait_for_relay(db: &Database, limit: Duration) -> Result<bool, Error> {
    let until = Instant::now() + limit;
    loop {
        let left: i64 = db
            .run(|c| {
                Ok(platform_outbox::table
                    .filter(platform_outbox::published_at.is_null())
                    .count()
                    .get_result(c)?)
            })
            .await?;
        if left == 0 {
            // The last confirms may still be on their way to the counting queue.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
