//! S5, catch-up after an outage with a realistic round trip: ten fake hosts answer after
//! 150 ms; posts are published at a steady rate to followers on all of them; one host goes
//! down (503) for a while, a backlog for it builds up, then it recovers. Measured: the
//! drain rate of that backlog against per-host concurrency ÷ round trip, and the healthy
//! hosts' p99 during the catch-up against their p99 before the outage.
//!
//! The drain is timed from the first successful delivery to the recovered host, not from
//! its recovery: between the two, the host's circuit breaker is open (the bridge opened it
//! during the outage) and nothing is sent there by design. That wait is reported as a
//! detail. There is no setting for the breaker or the backoff, so both run as shipped.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bridge::{
    Role,
    db::{Database, deliveries::DeliveryState, hosts, users::User},
    federation::urls::Urls,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    Env, bridge_config,
    database::{Backend, ScratchDatabase},
    error::Error,
    fixtures::{self, Running},
    latency::Summary,
    recording_sinks::{Arrival, RecordingSinks},
    report::{Direction, Gate, Results},
};

/// Remote hosts; the first one goes down.
const HOSTS: u8 = 10;
/// Every answer of every host waits this long (the AU↔EU round trip).
const RTT: Duration = Duration::from_millis(150);
/// Followers per host (sharing its inbox: one POST per host per post).
const FOLLOWERS_PER_HOST: usize = 2;
/// Posts published per second, to all hosts.
const POSTS_PER_S: f64 = 10.0;
/// How long the host is down. It must come back before the bridge's first half-open probe
/// (the circuit opens for at least 30 s at the fifth failure in a row, which comes within
/// the first second of the outage at this rate): a probe that fails reopens the circuit for
/// up to an hour, which would turn this scenario into a wait.
const OUTAGE: Duration = Duration::from_secs(20);
/// Published posts left out of the baseline at the start (connections, caches).
const WARMUP: Duration = Duration::from_secs(2);
/// A request noted just before the host was switched may be answered after the switch.
const SWITCH_SLACK: Duration = Duration::from_millis(100);
/// Goals.
const DRAIN_GOAL: f64 = 0.80;
const HEALTHY_P99_GOAL: f64 = 1.2;

/// A published post: its id and when it was due (its publish transaction started then).
type Published = Arc<Mutex<Vec<(String, Instant)>>>;

/// Runs S5 and records its two gates.
pub async fn run(env: &Env, results: &mut Results) {
    let baseline = if env.quick {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(30)
    };
    println!(
        "-- s5: {HOSTS} hosts at {} ms, one down for {} s after a {} s baseline",
        RTT.as_millis(),
        OUTAGE.as_secs(),
        baseline.as_secs()
    );
    let sinks = match RecordingSinks::start(HOSTS, RTT) {
        Ok(sinks) => sinks,
        Err(error) => {
            results
                .not_run
                .insert("s5".into(), format!("fake inboxes: {error}"));
            return;
        }
    };
    if let Err(error) = measure(env, results, &sinks, baseline).await {
        eprintln!("s5: could not run: {error}");
        results.not_run.insert("s5".into(), error.to_string());
    }
    sinks.stop().await;
}

async fn measure(
    env: &Env,
    results: &mut Results,
    sinks: &RecordingSinks,
    baseline: Duration,
) -> Result<(), Error> {
    let database = ScratchDatabase::create(Backend::Postgres, &env.postgres_admin)?;
    let settings = bridge_config::settings(
        &database.url,
        &[(
            "FEDIBRIDGE__FEDERATION__ALLOW_PRIVATE_ADDRESSES",
            "true".to_owned(),
        )],
    )?;
    let per_host = settings.delivery.per_host_concurrency;
    let configured = json!({
        "backend": "postgres",
        "hosts": HOSTS,
        "rtt_ms": RTT.as_millis(),
        "posts_per_s": POSTS_PER_S,
        "followers_per_host": FOLLOWERS_PER_HOST,
        "baseline_s": baseline.as_secs(),
        "outage_s": OUTAGE.as_secs(),
        "down_answer": "503 without Retry-After, after the same 150 ms",
        "delivery_per_host_concurrency": per_host,
        "delivery_concurrency": settings.delivery.concurrency,
        "delivery_batch_size": settings.delivery.batch_size,
        "delivery_poll_interval_ms": settings.delivery.poll_interval_ms,
        "breaker_and_backoff": "as shipped (no settings exist): circuit opens at 5 failures in a row for 30 s, doubling per further failure; retries 15 s × 3^n with jitter",
        "latency_measured": "from the start of the post's publish transaction to the fake inbox reading the POST (before its 150 ms answer delay)",
    });
    let urls = Urls::new(&settings.federation)?;
    let db = Database::new(&settings.database)?;
    db.migrate().await?;
    let (author, _) = fixtures::sharing_user(&db, "s5_author").await?;
    fixtures::follow(
        &db,
        &author,
        &sinks.authorities,
        FOLLOWERS_PER_HOST * usize::from(HOSTS),
    )
    .await?;
    let down = sinks.authorities[0].clone();
    let running = Running::start(settings, &[Role::Delivery]).await?;

    let published: Published = Arc::default();
    let stop = CancellationToken::new();
    let max_posts = (POSTS_PER_S * env.deadline.as_secs_f64() * 2.0) as usize;
    let publisher = tokio::spawn(publish_steadily(
        db.clone(),
        urls,
        author,
        Arc::clone(&running.wakeup),
        Arc::clone(&published),
        stop.clone(),
        max_posts,
    ));
    let t0 = Instant::now();
    let limit = t0 + env.deadline;

    tokio::time::sleep(baseline).await;
    let t_down = Instant::now();
    sinks.set_down(&down, true);
    tokio::time::sleep(OUTAGE).await;
    let t_up = Instant::now();
    sinks.set_down(&down, false);
    let host_at_recovery = {
        let host = down.clone();
        db.run(move |c| hosts::find(c, &host)).await?
    }
    .map(|h| {
        json!({
            "consecutive_failures": h.consecutive_failures,
            "circuit_open_for_s_after_recovery": h
                .blocked_until
                .map(|b| (b - bridge::db::now_millis()) as f64 / 1e3),
        })
    });
    let pending_at_recovery = fixtures::count(
        &fixtures::host_states(&db, &down).await?,
        DeliveryState::Pending,
    );

    // The first success after recovery, then until every post published before it reached
    // the recovered host.
    let first = loop {
        if let Some(at) = sinks
            .arrivals()
            .iter()
            .find(|a| a.authority == down && a.status == 202 && a.at >= t_up)
            .map(|a| a.at)
        {
            break Some(at);
        }
        if Instant::now() >= limit {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut drain_end = None;
    let mut backlog = 0usize;
    if let Some(first) = first {
        let before_first: HashSet<String> = snapshot(&published)
            .into_iter()
            .filter(|(_, due)| *due < first)
            .map(|(key, _)| key)
            .collect();
        let arrived_before: usize = sinks
            .arrivals()
            .iter()
            .filter(|a| a.authority == down && a.status == 202 && a.at < first)
            .count();
        backlog = before_first.len().saturating_sub(arrived_before);
        drain_end = loop {
            let arrivals = sinks.arrivals();
            let reached: Vec<&Arrival> = arrivals
                .iter()
                .filter(|a| a.authority == down && a.status == 202 && before_first.contains(&a.key))
                .collect();
            let keys: HashSet<&str> = reached.iter().map(|a| a.key.as_str()).collect();
            if keys.len() >= before_first.len() {
                break reached.iter().map(|a| a.at).max();
            }
            if Instant::now() >= limit {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
    }
    stop.cancel();
    let publish_errors = publisher.await.unwrap_or(1);
    let (_, settled) =
        fixtures::until_settled(&db, Instant::now(), Duration::from_secs(60)).await?;
    let states = fixtures::states(&db).await?;
    running.stop().await;

    let posts = snapshot(&published);
    let arrivals = sinks.arrivals();
    let due: HashMap<&str, Instant> = posts.iter().map(|(k, d)| (k.as_str(), *d)).collect();
    let healthy_latencies = |from: Instant, to: Instant| -> Vec<Duration> {
        arrivals
            .iter()
            .filter(|a| a.authority != down && a.status == 202)
            .filter_map(|a| due.get(a.key.as_str()).map(|d| (a, *d)))
            .filter(|(_, d)| *d >= from && *d < to)
            .map(|(a, d)| a.at.saturating_duration_since(d))
            .collect()
    };
    let before = Summary::of(&healthy_latencies(t0 + WARMUP, t_down));
    let during_outage = Summary::of(&healthy_latencies(t_down, t_up));
    let (drain_rate, during_catch_up, drained) = match (first, drain_end) {
        (Some(first), Some(end)) => {
            let drained = arrivals
                .iter()
                .filter(|a| a.authority == down && a.status == 202)
                .filter(|a| a.at >= first && a.at <= end)
                .count();
            let seconds = end.saturating_duration_since(first).as_secs_f64();
            (
                if seconds > 0.0 {
                    drained as f64 / seconds
                } else {
                    0.0
                },
                Summary::of(&healthy_latencies(first, end)),
                drained,
            )
        }
        _ => (0.0, Summary::default(), 0),
    };
    let since = |at: Option<Instant>, from: Instant| {
        at.map(|at| at.saturating_duration_since(from).as_secs_f64())
    };
    let ceiling = per_host as f64 / RTT.as_secs_f64();

    let mut details = configured;
    details["posts_published"] = json!(posts.len());
    details["publish_errors"] = json!(publish_errors);
    details["down_host"] = json!(down);
    details["pending_for_down_host_at_recovery"] = json!(pending_at_recovery);
    details["down_host_record_at_recovery"] = json!(host_at_recovery);
    details["seconds_from_recovery_to_first_success"] = json!(since(first, t_up));
    details["backlog_at_first_success"] = json!(backlog);
    details["drain_seconds"] = json!(match (first, drain_end) {
        (Some(f), Some(e)) => Some(e.saturating_duration_since(f).as_secs_f64()),
        _ => None,
    });
    details["delivered_to_recovered_host_while_draining"] = json!(drained);
    details["ceiling_per_s"] = json!(ceiling);
    details["healthy_before_ms"] = json!(before);
    details["healthy_during_outage_ms"] = json!(during_outage);
    details["healthy_during_catch_up_ms"] = json!(during_catch_up);
    details["delivery_states"] = json!(states);
    details["requests_503"] = json!(arrivals.iter().filter(|a| a.status == 503).count());

    let exact = exactly_once(&arrivals, &posts, &sinks.authorities, &down, t_down, t_up);
    let problem = if first.is_none() {
        Some("no successful delivery to the recovered host before the deadline".to_owned())
    } else if drain_end.is_none() {
        Some("the backlog was not drained before the deadline".to_owned())
    } else if publish_errors > 0 {
        Some(format!("{publish_errors} posts could not be published"))
    } else if let Err(why) = exact {
        Some(why)
    } else if !settled
        || fixtures::count(&states, DeliveryState::Delivered)
            != (posts.len() * usize::from(HOSTS)) as i64
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
        "s5.drain",
        with_problem(Gate::new(
            "deliveries/s to the recovered host vs per-host concurrency ÷ 150 ms",
            drain_rate,
            ceiling,
            DRAIN_GOAL,
            Direction::AtLeast,
            details.clone(),
        )),
    );
    results.record(
        "s5.healthy_p99",
        with_problem(Gate::new(
            "ms p99 to healthy hosts during the catch-up vs before the outage",
            during_catch_up.p99_ms,
            before.p99_ms,
            HEALTHY_P99_GOAL,
            Direction::AtMost,
            details,
        )),
    );
    Ok(())
}

fn snapshot(published: &Published) -> Vec<(String, Instant)> {
    published.lock().map(|p| p.clone()).unwrap_or_default()
}

/// Publishes a post every 1/`POSTS_PER_S` s until stopped (or `max` posts); returns how
/// many publishes failed.
async fn publish_steadily(
    db: Database,
    urls: Urls,
    author: User,
    wakeup: Arc<tokio::sync::Notify>,
    published: Published,
    stop: CancellationToken,
    max: usize,
) -> usize {
    let interval = Duration::from_secs_f64(1.0 / POSTS_PER_S);
    let start = Instant::now();
    let mut errors = 0;
    for n in 0..max {
        let due = start + interval.mul_f64(n as f64);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(due.into()) => {}
        }
        let key = format!("s5p{n}");
        match fixtures::publish(&db, &urls, &author, &key).await {
            Ok(_) => {
                if let Ok(mut list) = published.lock() {
                    list.push((key, due));
                }
                wakeup.notify_one();
            }
            Err(error) => {
                eprintln!("s5: publishing failed: {error}");
                errors += 1;
            }
        }
    }
    errors
}

/// Every post reached every host exactly once with a 2xx, and the only 503s were the down
/// host's during its outage.
fn exactly_once(
    arrivals: &[Arrival],
    posts: &[(String, Instant)],
    hosts: &[String],
    down: &str,
    t_down: Instant,
    t_up: Instant,
) -> Result<(), String> {
    let mut seen: HashMap<(&str, &str), u32> = HashMap::new();
    let mut stray_503 = 0usize;
    for a in arrivals {
        if a.status == 202 {
            *seen
                .entry((a.key.as_str(), a.authority.as_str()))
                .or_default() += 1;
        } else if a.authority != down || a.at + SWITCH_SLACK < t_down || a.at > t_up + SWITCH_SLACK
        {
            stray_503 += 1;
        }
    }
    let (mut missing, mut repeated) = (0usize, 0usize);
    for (key, _) in posts {
        for host in hosts {
            match seen.remove(&(key.as_str(), host.as_str())) {
                None => missing += 1,
                Some(1) => {}
                Some(_) => repeated += 1,
            }
        }
    }
    if missing > 0 || repeated > 0 || !seen.is_empty() || stray_503 > 0 {
        Err(format!(
            "{missing} (post, host) pairs missing, {repeated} delivered more than once, {} unexpected, {stray_503} 503s outside the outage",
            seen.len()
        ))
    } else {
        Ok(())
    }
}
