//! S2, latency from a platform event to the remote POST: `post.created` events of an
//! opted-in user with followers on a few fake inbox hosts, published to RabbitMQ at a
//! steady rate, through the bridge's real consumer, delivery and relay roles, to the moment
//! each inbox receives its POST; against a bare pipeline on the same broker and the same
//! inboxes (lapin publish → consume → one reqwest POST), measured in the same run.
//!
//! Both sides are open loop: event `n` is due at `start + n / rate` and its latency is
//! counted from that due time, so a publisher that falls behind cannot hide a stall
//! (coordinated omission).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bridge::{
    Role,
    db::{Database, schema::activities},
    settings::Settings,
};
use diesel::prelude::*;
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions,
    },
    types::FieldTable,
};
use serde_json::json;

use crate::{
    Env, bridge_config, broker,
    database::{Backend, ScratchDatabase},
    error::Error,
    events,
    fixtures::{self, Running},
    latency::Summary,
    process,
    recording_sinks::{Arrival, RecordingSinks},
    report::{Direction, Gate, Results},
    sql_stats,
};

/// Remote hosts the author's followers live on (one shared inbox each).
const HOSTS: u8 = 5;
/// Followers per host: they share the host's inbox, so each event is one POST per host.
const FOLLOWERS_PER_HOST: usize = 4;
/// Deliveries/s when S1 did not run in this invocation (a modest rate every build of the
/// bridge so far sustains).
const FALLBACK_DELIVERIES_PER_S: f64 = 100.0;
/// Events sent first and left out of the statistics (connections, caches, JIT of the
/// database's plans); they are still checked for exactly-once delivery.
const WARMUP_EVENTS: usize = 10;
/// Absolute bound of the bridge's p99, ms.
const P99_BOUND_MS: f64 = 50.0;
/// Allowance over the bare pipeline's p99, ms.
const OVER_BARE_MS: f64 = 20.0;
/// How long the last POSTs may take to arrive after the last publish.
const SETTLE: Duration = Duration::from_secs(60);

/// The rate of one run and where it came from.
struct Rate {
    events_per_s: f64,
    source: String,
}

/// Runs S2; `s1_deliveries_per_s` is S1's measured throughput when S1 ran before it.
pub async fn run(env: &Env, results: &mut Results, s1_deliveries_per_s: Option<f64>) {
    let rate = match s1_deliveries_per_s.filter(|r| *r > 0.0) {
        Some(s1) => Rate {
            events_per_s: s1 / 2.0 / f64::from(HOSTS),
            source: format!(
                "half of S1's throughput ({s1:.1} deliveries/s, measured by S1 in this invocation or given by --s1-rate) over {HOSTS} inboxes per event"
            ),
        },
        None => Rate {
            events_per_s: FALLBACK_DELIVERIES_PER_S / f64::from(HOSTS),
            source: format!(
                "fixed: S1 did not run in this invocation; {FALLBACK_DELIVERIES_PER_S} deliveries/s over {HOSTS} inboxes per event"
            ),
        },
    };
    let seconds = if env.quick { 15.0 } else { 60.0 };
    let events = ((rate.events_per_s * seconds).round() as usize).clamp(50, 10_000);
    println!(
        "-- s2: {events} events at {:.1}/s, {HOSTS} inboxes each",
        rate.events_per_s
    );
    if let Err(error) = measure(env, results, &rate, events).await {
        eprintln!("s2: could not run: {error}");
        results.not_run.insert("s2".into(), error.to_string());
    }
}

async fn measure(
    env: &Env,
    results: &mut Results,
    rate: &Rate,
    events: usize,
) -> Result<(), Error> {
    let sinks = RecordingSinks::start(HOSTS, Duration::ZERO)?;
    let outcome = measure_with(env, results, rate, events, &sinks).await;
    sinks.stop().await;
    outcome
}

async fn measure_with(
    env: &Env,
    results: &mut Results,
    rate: &Rate,
    events: usize,
    sinks: &RecordingSinks,
) -> Result<(), Error> {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let interval = Duration::from_secs_f64(1.0 / rate.events_per_s);
    let connection = broker::connect(&env.broker_url, "fedibridge-bench-s2").await?;

    // The limit: a bare pipeline, same broker, same inboxes, same rate and count.
    let bare = bare_pipeline(env, &connection, sinks, &tag, interval, events).await?;
    sinks.reset();

    // The bridge: consumer, delivery and relay roles, as `fedibridge serve` runs them.
    let database = ScratchDatabase::create(Backend::Postgres, &env.postgres_admin)?;
    let topology = bridge_config::topology(&tag)?;
    let mut overrides = bridge_config::broker(&env.broker_url, &topology);
    overrides.push((
        "FEDIBRIDGE__FEDERATION__ALLOW_PRIVATE_ADDRESSES",
        "true".to_owned(),
    ));
    let settings = bridge_config::settings(&database.url, &overrides)?;
    let configured = configured(&settings);
    let db = Database::new(&settings.database)?;
    db.migrate().await?;
    let author_id = format!("s2_{tag}");
    let (author, _) = fixtures::sharing_user(&db, &author_id).await?;
    fixtures::follow(
        &db,
        &author,
        &sinks.authorities,
        FOLLOWERS_PER_HOST * usize::from(HOSTS),
    )
    .await?;
    topology.declare_at(&env.broker_url).await?;
    let running = Running::start(settings, &[Role::Consumer, Role::Delivery, Role::Relay]).await?;

    let cpu_before = process::cpu_time();
    sql_stats::phase(true, 0);
    // Relates due instants to the database's wall-clock milliseconds (for the breakdown).
    let clock = (Instant::now(), SystemTime::now());
    let channel = confirmed_channel(&connection).await?;
    let warmup: Vec<String> = (0..WARMUP_EVENTS)
        .map(|n| format!("s2w{tag}n{n}"))
        .collect();
    let measured: Vec<String> = (0..events).map(|n| format!("s2{tag}n{n}")).collect();
    let keys: Vec<&String> = warmup.iter().chain(&measured).collect();
    let (due, publish_lag) = publish_on_schedule(&channel, interval, keys.len(), |n| {
        let pid = keys[n];
        let event = events::post_created(&format!("e_{pid}"), &author_id, pid);
        (topology.events_exchange.clone(), events::message(&event))
    })
    .await?;
    let due: HashMap<String, Instant> = keys
        .iter()
        .zip(due)
        .map(|(key, at)| ((*key).clone(), at))
        .collect();
    let expected = keys.len() * usize::from(HOSTS);
    let arrived = wait_for(sinks, expected, SETTLE.min(env.deadline)).await;
    let cpu = process::cpu_time().saturating_sub(cpu_before);
    sql_stats::phase(false, keys.len());
    let (_, settled) =
        fixtures::until_settled(&db, Instant::now(), Duration::from_secs(30)).await?;
    let states = fixtures::states(&db).await?;
    let stored_at = create_times(&db).await?;
    running.stop().await;
    let _ = channel.close(200, "s2 done".into()).await;
    let cleanup = connection.create_channel().await?;
    topology.delete(&cleanup).await?;
    let _ = connection.close(200, "s2 done".into()).await;

    let arrivals = sinks.arrivals();
    let measured_set: HashSet<&str> = measured.iter().map(String::as_str).collect();
    let latencies: Vec<Duration> = arrivals
        .iter()
        .filter(|a| a.status == 202 && measured_set.contains(a.key.as_str()))
        .filter_map(|a| due.get(&a.key).map(|d| a.at.saturating_duration_since(*d)))
        .collect();
    let per_event_last = last_arrival_per_event(&arrivals, &due, &measured_set);
    let bridge = Summary::of(&latencies);
    let (to_stored, stored_to_post) = breakdown(&arrivals, &due, &measured_set, &stored_at, clock);
    let exact = exactly_once(&arrivals, &keys, &sinks.authorities);

    let mut details = configured;
    details["rate_events_per_s"] = json!(rate.events_per_s);
    details["rate_deliveries_per_s"] = json!(rate.events_per_s * f64::from(HOSTS));
    details["rate_source"] = json!(rate.source);
    details["events"] = json!(events);
    details["warmup_events_not_counted"] = json!(WARMUP_EVENTS);
    details["inboxes_per_event"] = json!(HOSTS);
    details["followers_per_inbox"] = json!(FOLLOWERS_PER_HOST);
    details["bridge_ms"] = json!(bridge);
    details["bridge_last_inbox_per_event_ms"] = json!(Summary::of(&per_event_last));
    details["breakdown_ms"] = json!({
        "due_to_create_stored": Summary::of(&to_stored),
        "create_stored_to_post": Summary::of(&stored_to_post),
        "note": "split at the Create's created_at (wall-clock ms, taken in the ingest transaction): the first part is broker + consumer + ingest, the second claim + send-time checks + signing + POST",
    });
    details["bare_ms"] = json!(bare.summary);
    details["bare_details"] = bare.details.clone();
    details["publish_lag_max_ms"] = json!(publish_lag.as_secs_f64() * 1e3);
    details["requests_received"] = json!(arrivals.len());
    details["requests_expected"] = json!(expected);
    details["delivery_states"] = json!(states);
    details["bench_process_cpu_share_of_one_core"] =
        json!(cpu.as_secs_f64() / (events as f64 * interval.as_secs_f64()).max(1e-9));
    details["measured_from"] =
        json!("the event's due time on the open-loop schedule (its publish follows at once)");
    details["measured_to"] = json!("the fake inbox has read the POST's body");

    let problem = if !arrived {
        Some(format!(
            "{} of {expected} POSTs arrived within {} s of the last publish",
            arrivals.len(),
            SETTLE.as_secs()
        ))
    } else if let Err(why) = exact {
        Some(why)
    } else if !settled
        || fixtures::count(&states, bridge::db::deliveries::DeliveryState::Delivered)
            != expected as i64
    {
        Some(format!("deliveries not all recorded delivered: {states:?}"))
    } else {
        None
    };
    let with_problem = |gate: Gate| match &problem {
        Some(why) => gate.fail_because(why),
        None => gate,
    };
    results.record(
        "s2.p99_vs_bare",
        with_problem(Gate::new(
            "ms p99 event→remote POST vs bare publish→consume→POST p99 + 20 ms",
            bridge.p99_ms,
            bare.summary.p99_ms + OVER_BARE_MS,
            1.0,
            Direction::AtMost,
            details.clone(),
        )),
    );
    results.record(
        "s2.p99",
        with_problem(Gate::new(
            "ms p99 event→remote POST (bound 50 ms)",
            bridge.p99_ms,
            P99_BOUND_MS,
            1.0,
            Direction::AtMost,
            details,
        )),
    );
    Ok(())
}

fn configured(settings: &Settings) -> serde_json::Value {
    json!({
        "backend": "postgres",
        "roles": ["consumer", "delivery", "relay"],
        "delivery_poll_interval_ms": settings.delivery.poll_interval_ms,
        "delivery_per_host_concurrency": settings.delivery.per_host_concurrency,
        "delivery_concurrency": settings.delivery.concurrency,
        "delivery_batch_size": settings.delivery.batch_size,
        "consumer_prefetch": settings.broker.prefetch,
        "consumer_max_batch": settings.broker.max_batch,
        "wakeup": "ingest notifies the delivery role (state.delivery_wakeup) after each stored Create",
    })
}

/// What the bare pipeline measured.
struct Bare {
    summary: Summary,
    details: serde_json::Value,
}

/// lapin publish → consume → one reqwest POST to one of the same inboxes (round robin),
/// at the same rate and count as the bridge's run; latency from the due time to the POST's
/// arrival.
async fn bare_pipeline(
    env: &Env,
    connection: &Connection,
    sinks: &RecordingSinks,
    tag: &str,
    interval: Duration,
    events: usize,
) -> Result<Bare, Error> {
    let queue = format!("bench.s2bare.{tag}");
    broker::declare_plain_queue(connection, &queue).await?;
    let consume = connection.create_channel().await?;
    consume.basic_qos(64, BasicQosOptions::default()).await?;
    let mut consumer = consume
        .basic_consume(
            queue.as_str().into(),
            "bench-s2-bare".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let client = reqwest::Client::new();
    let inboxes: Arc<Vec<String>> = Arc::new(
        sinks
            .authorities
            .iter()
            .map(|a| format!("http://{a}/inbox"))
            .collect(),
    );
    let forward = tokio::spawn(async move {
        let mut n = 0usize;
        let mut failures = 0u64;
        let mut consumed = HashMap::new();
        while let Some(Ok(delivery)) = consumer.next().await {
            if let Some(id) = delivery.properties.message_id() {
                consumed.insert(id.to_string(), Instant::now());
            }
            let body = delivery.data.clone();
            let inbox = inboxes[n % inboxes.len()].clone();
            n += 1;
            let client = client.clone();
            tokio::spawn(async move {
                let _ = client
                    .post(inbox)
                    .header("content-type", "application/activity+json")
                    .body(body)
                    .send()
                    .await;
            });
            if delivery.ack(BasicAckOptions::default()).await.is_err() {
                failures += 1;
            }
        }
        (failures, consumed)
    });
    let channel = confirmed_channel(connection).await?;
    let keys: Vec<String> = (0..WARMUP_EVENTS + events)
        .map(|n| format!("s2bare{tag}n{n}"))
        .collect();
    let (due, publish_lag) = publish_on_schedule(&channel, interval, keys.len(), |n| {
        // The same size as a `post.created` envelope, carrying its key where the sink
        // looks for it.
        let mut event = events::post_created(&format!("e_{}", keys[n]), "bare", &keys[n]);
        event["object"] = json!({ "id": format!("http://bare.invalid/posts/{}", keys[n]) });
        let mut message = events::message(&event);
        message.routing_key = queue.clone();
        (String::new(), message)
    })
    .await?;
    let arrived = wait_for(sinks, keys.len(), SETTLE.min(env.deadline)).await;
    let _ = channel.close(200, "s2 bare done".into()).await;
    let _ = consume.close(200, "s2 bare done".into()).await;
    let (ack_failures, consumed) = tokio::time::timeout(Duration::from_secs(5), forward)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    broker::delete_queues(connection, std::slice::from_ref(&queue)).await?;
    // The warm-up messages are left out, as on the bridge's side.
    let due: HashMap<&str, Instant> = keys
        .iter()
        .map(String::as_str)
        .zip(due)
        .skip(WARMUP_EVENTS)
        .collect();
    let latencies: Vec<Duration> = sinks
        .arrivals()
        .iter()
        .filter_map(|a| {
            due.get(a.key.as_str())
                .map(|d| a.at.saturating_duration_since(*d))
        })
        .collect();
    // The broker's part alone: due time to the consumer holding the message.
    let consume_latencies: Vec<Duration> = due
        .iter()
        .filter_map(|(key, at)| {
            consumed
                .get(&format!("e_{key}"))
                .map(|c| c.saturating_duration_since(*at))
        })
        .collect();
    if !arrived {
        return Err(Error::Setup(format!(
            "the bare pipeline delivered {} of {} POSTs",
            sinks.arrivals().len(),
            keys.len()
        )));
    }
    Ok(Bare {
        summary: Summary::of(&latencies),
        details: json!({
            "prefetch": 64,
            "publish_to_consume_ms": Summary::of(&consume_latencies),
            "ack_failures": ack_failures,
            "publish_lag_max_ms": publish_lag.as_secs_f64() * 1e3,
            "publish": "persistent, publisher confirms awaited at the end (not on the schedule)",
        }),
    })
}

async fn confirmed_channel(connection: &Connection) -> Result<Channel, Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Publishes `count` messages persistently, message `n` at `start + n × interval`; returns
/// the due times and the largest lag of an actual publish behind its due time. Confirms
/// are awaited after the last publish, so a slow confirm never delays the schedule.
async fn publish_on_schedule(
    channel: &Channel,
    interval: Duration,
    count: usize,
    message: impl Fn(usize) -> (String, broker::Message),
) -> Result<(Vec<Instant>, Duration), Error> {
    let start = Instant::now() + Duration::from_millis(100);
    let mut due = Vec::with_capacity(count);
    let mut confirms = Vec::with_capacity(count);
    let mut lag = Duration::ZERO;
    for n in 0..count {
        let at = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(at.into()).await;
        lag = lag.max(at.elapsed());
        let (exchange, message) = message(n);
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message.message_id.into());
        confirms.push(
            channel
                .basic_publish(
                    exchange.into(),
                    message.routing_key.into(),
                    BasicPublishOptions::default(),
                    &message.body,
                    properties,
                )
                .await?,
        );
        due.push(at);
    }
    for confirm in confirms {
        confirm.await?;
    }
    Ok((due, lag))
}

/// Waits until the sinks noted `expected` requests (or more), for at most `limit`.
async fn wait_for(sinks: &RecordingSinks, expected: usize, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if sinks.arrivals().len() >= expected {
            // A little longer, so that a duplicate right behind the last one is seen.
            tokio::time::sleep(Duration::from_millis(500)).await;
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Per measured event, the latency to the last of its inboxes.
fn last_arrival_per_event(
    arrivals: &[Arrival],
    due: &HashMap<String, Instant>,
    measured: &HashSet<&str>,
) -> Vec<Duration> {
    let mut last: HashMap<&str, Instant> = HashMap::new();
    for a in arrivals
        .iter()
        .filter(|a| measured.contains(a.key.as_str()))
    {
        let entry = last.entry(a.key.as_str()).or_insert(a.at);
        *entry = (*entry).max(a.at);
    }
    last.iter()
        .filter_map(|(key, at)| due.get(*key).map(|d| at.saturating_duration_since(*d)))
        .collect()
}

/// Every event reached every host exactly once, with a 2xx, and nothing else arrived.
fn exactly_once(arrivals: &[Arrival], keys: &[&String], hosts: &[String]) -> Result<(), String> {
    let mut seen: HashMap<(&str, &str), u32> = HashMap::new();
    for a in arrivals {
        *seen
            .entry((a.key.as_str(), a.authority.as_str()))
            .or_default() += 1;
    }
    let mut missing = 0usize;
    let mut repeated = 0usize;
    for key in keys {
        for host in hosts {
            match seen.remove(&(key.as_str(), host.as_str())) {
                None => missing += 1,
                Some(1) => {}
                Some(_) => repeated += 1,
            }
        }
    }
    if missing > 0 || repeated > 0 || !seen.is_empty() {
        Err(format!(
            "{missing} (event, inbox) pairs missing, {repeated} received more than once, {} unexpected requests",
            seen.len()
        ))
    } else {
        Ok(())
    }
}

/// When each post's `Create` was stored (wall-clock ms), by post id.
async fn create_times(db: &Database) -> Result<HashMap<String, i64>, Error> {
    let rows: Vec<(Option<String>, i64)> = db
        .run(|c| {
            Ok(activities::table
                .filter(activities::kind.eq("Create"))
                .select((activities::object_ap_id, activities::created_at))
                .load(c)?)
        })
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(object, at)| {
            let object = object?;
            let (_, pid) = object.split_once("/posts/")?;
            Some((pid.split('/').next().unwrap_or(pid).to_owned(), at))
        })
        .collect())
}

/// Each measured delivery's latency split at its Create's storage time: (due → stored,
/// stored → POST arrival). `clock` pairs an instant with the wall clock read at once.
fn breakdown(
    arrivals: &[Arrival],
    due: &HashMap<String, Instant>,
    measured: &HashSet<&str>,
    stored_at: &HashMap<String, i64>,
    clock: (Instant, SystemTime),
) -> (Vec<Duration>, Vec<Duration>) {
    let wall_ms = |at: Instant| {
        let since = at.saturating_duration_since(clock.0);
        (clock.1 + since)
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let mut to_stored = Vec::new();
    let mut to_post = Vec::new();
    for a in arrivals
        .iter()
        .filter(|a| measured.contains(a.key.as_str()))
    {
        let (Some(due), Some(stored)) = (due.get(&a.key), stored_at.get(&a.key)) else {
            continue;
        };
        let (due_ms, arrived_ms) = (wall_ms(*due), wall_ms(a.at));
        let stored = *stored as f64;
        to_stored.push(Duration::from_secs_f64((stored - due_ms).max(0.0) / 1e3));
        to_post.push(Duration::from_secs_f64(
            (arrived_ms - stored).max(0.0) / 1e3,
        ));
    }
    (to_stored, to_post)
}
