//! S4, event ingest: the real consumer and sink draining a pre-loaded queue of
//! `post.created` events, against the raw lapin drain of the same messages on the same
//! broker, measured just before it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bridge::{
    db::{
        Database,
        schema::{activities, posts, processed_events},
        users,
    },
    federation::{protocol::activity::ActivityType, urls::Urls},
    ingest::Ingest,
    opt_in::SharingState,
};
use diesel::prelude::*;
use futures_util::{StreamExt, stream};
use platform_adapter::Consumer;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    Env, bridge_config, broker,
    database::{Backend, ScratchDatabase},
    error::Error,
    events::{Mix, Population},
    process,
    report::{Direction, Gate, Results},
};

/// Prefetch of the raw calibration drain (the research note's reference setting).
const RAW_PREFETCH: u16 = 500;

/// One drain: which backend, which authors, how many messages.
struct Variant {
    backend: Backend,
    mix: Mix,
    messages: u64,
}

impl Variant {
    fn name(&self) -> String {
        format!("s4.{}.{}", self.backend.name(), self.mix.name())
    }

    /// The goal as a share of the raw drain rate.
    fn goal(&self) -> f64 {
        match self.mix {
            Mix::NotSharing => 0.5,
            Mix::Sharing => 0.25,
            // Time-weighted blend of the two goals for 90% filtered and 10% stored events:
            // 1 / (0.9 / 0.5 + 0.1 / 0.25).
            Mix::Mixed => 1.0 / (0.9 / 0.5 + 0.1 / 0.25),
        }
    }
}

/// Runs every S4 variant and records one gate per variant.
pub async fn run(env: &Env, results: &mut Results) {
    let (mixed, single) = if env.quick {
        (20_000, 10_000)
    } else {
        (200_000, 50_000)
    };
    let mut variants = Vec::new();
    for backend in [Backend::Postgres, Backend::Sqlite] {
        variants.push(Variant {
            backend,
            mix: Mix::Mixed,
            messages: mixed,
        });
        for mix in [Mix::NotSharing, Mix::Sharing] {
            variants.push(Variant {
                backend,
                mix,
                messages: single,
            });
        }
    }
    for variant in variants {
        let name = variant.name();
        println!("-- {name}: {} events", variant.messages);
        match run_variant(env, &variant).await {
            Ok(gate) => results.record(&name, gate),
            Err(error) => {
                eprintln!("{name}: could not run: {error}");
                results.not_run.insert(name, error.to_string());
            }
        }
    }
}

async fn run_variant(env: &Env, variant: &Variant) -> Result<Gate, Error> {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let population = if env.quick {
        Population::new(&tag, 200, 20)
    } else {
        Population::new(&tag, 1_000, 50)
    };
    let expected = population.expected(variant.mix, variant.messages);
    let connection = broker::connect(&env.broker_url, "fedibridge-bench").await?;

    // Denominator: the same messages, same size, same broker, drained raw.
    let raw_queue = format!("bench.raw.{tag}");
    broker::declare_plain_queue(&connection, &raw_queue).await?;
    let (published, publish_time) = broker::preload(
        &connection,
        "",
        population
            .posts(variant.mix, variant.messages)
            .map(|mut m| {
                m.routing_key = raw_queue.clone();
                m
            }),
    )
    .await?;
    let (raw_acked, raw_time) = broker::drain(
        &connection,
        &raw_queue,
        published,
        RAW_PREFETCH,
        env.deadline,
    )
    .await?;
    broker::delete_queues(&connection, std::slice::from_ref(&raw_queue)).await?;
    if raw_acked != published {
        return Err(Error::Setup(format!(
            "raw drain got {raw_acked} of {published} messages before the deadline"
        )));
    }
    let raw_rate = broker::rate(raw_acked, raw_time);
    let confirmed_publish_rate = broker::rate(published, publish_time);

    // Numerator: the bridge's consumer and sink on a fresh database.
    let database = ScratchDatabase::create(variant.backend, &env.postgres_admin)?;
    let topology = bridge_config::topology(&tag)?;
    let settings = bridge_config::settings(
        &database.url,
        &bridge_config::broker(&env.broker_url, &topology),
    )?;
    let db = Database::new(&settings.database)?;
    db.migrate().await?;
    let settings = Arc::new(settings);
    let sink = Arc::new(Ingest::new(
        db.clone(),
        Urls::new(&settings.federation)?,
        settings.clone(),
        Arc::new(Notify::new()),
    ));
    setup_users(&sink, &db, &population).await?;

    topology.declare_at(&env.broker_url).await?;
    let (loaded, _) = broker::preload(
        &connection,
        &topology.events_exchange,
        population.posts(variant.mix, variant.messages),
    )
    .await?;
    let depth = broker::depth(&connection, &topology.events_queue).await?;
    if u64::from(depth) != loaded {
        return Err(Error::Setup(format!(
            "queue holds {depth} messages, {loaded} were published"
        )));
    }

    // Configured exactly as `bridge::Application` configures its consumer role.
    let config = bridge::startup::consumer_config(&settings)?;
    let (prefetch, lanes, max_batch) = (config.prefetch, config.lanes, config.max_batch);
    let consumer = Consumer::new(config, sink);
    let counters = consumer.counters();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let cpu_before = process::cpu_time();
    let task = tokio::spawn(consumer.run(shutdown.clone()));
    let limit = started + env.deadline;
    let (elapsed, finished) = loop {
        let s = counters.snapshot();
        if s.applied + s.duplicate + s.ignored + s.dead_lettered >= loaded {
            break (started.elapsed(), true);
        }
        if Instant::now() >= limit {
            break (started.elapsed(), false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let cpu = process::cpu_time().saturating_sub(cpu_before);
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(40), task).await;
    let snapshot = counters.snapshot();
    let settled = snapshot.applied + snapshot.duplicate + snapshot.ignored;

    let create = ActivityType::Create.as_str();
    let (processed, creates, created_objects, stored_posts) = db
        .run(move |conn| {
            let processed: i64 = processed_events::table
                .filter(processed_events::event_type.eq("post.created"))
                .count()
                .get_result(conn)?;
            let creates: i64 = activities::table
                .filter(activities::kind.eq(create))
                .count()
                .get_result(conn)?;
            let objects: Vec<Option<String>> = activities::table
                .filter(activities::kind.eq(create))
                .select(activities::object_ap_id)
                .load(conn)?;
            let objects = objects
                .into_iter()
                .collect::<std::collections::HashSet<_>>()
                .len() as i64;
            let posts: i64 = posts::table.count().get_result(conn)?;
            Ok((processed, creates, objects, posts))
        })
        .await?;
    let left = broker::depth(&connection, &topology.events_queue).await?;
    let channel = connection.create_channel().await?;
    topology.delete(&channel).await?;
    let _ = connection.close(200, "s4 done".into()).await;

    let rate = broker::rate(settled, elapsed);
    let gate = Gate::new(
        "events/s vs raw lapin drain (prefetch 500, ack each)",
        rate,
        raw_rate,
        variant.goal(),
        Direction::AtLeast,
        json!({
            "backend": variant.backend.name(),
            "mix": variant.mix.name(),
            "messages": loaded,
            "distinct_events": expected.distinct,
            "duplicate_messages": expected.duplicates,
            "duplicate_messages_of_opted_in_posts": expected.sharing_duplicates,
            "opted_in_posts": expected.sharing_posts,
            "users_not_sharing": population.not_sharing,
            "users_sharing": population.sharing,
            "drain_seconds": elapsed.as_secs_f64(),
            "raw_drain_seconds": raw_time.as_secs_f64(),
            "raw_confirmed_publish_per_s": confirmed_publish_rate,
            // The bridge's own CPU (consumer, sink, diesel); the database and the broker
            // run in their own processes.
            "bridge_cpu_us_per_event": cpu.as_secs_f64() * 1e6 / settled.max(1) as f64,
            "bridge_cpu_share_of_one_core": cpu.as_secs_f64() / elapsed.as_secs_f64().max(1e-9),
            "consumer_prefetch": prefetch,
            "consumer_max_batch": max_batch,
            "consumer_lanes": lanes,
            "counters": {
                "received": snapshot.received,
                "applied": snapshot.applied,
                "duplicate": snapshot.duplicate,
                "ignored": snapshot.ignored,
                "dead_lettered": snapshot.dead_lettered,
                "retried": snapshot.retried,
                "reconnects": snapshot.reconnects,
            },
            "processed_post_events": processed,
            "create_activities": creates,
            "distinct_created_objects": created_objects,
            "stored_posts": stored_posts,
            "left_in_queue": left,
        }),
    );
    let problem = if !finished {
        Some(format!(
            "did not finish within {} s ({settled} of {loaded} settled)",
            env.deadline.as_secs()
        ))
    } else if processed != expected.sharing_posts as i64 {
        Some(format!(
            "{processed} post events recorded, {} distinct ones by opted-in users were sent",
            expected.sharing_posts
        ))
    } else if creates != expected.sharing_posts as i64 || created_objects != creates {
        Some(format!(
            "{creates} Create activities for {created_objects} objects; expected exactly one \
             for each of {} opted-in posts",
            expected.sharing_posts
        ))
    } else if snapshot.duplicate != expected.sharing_duplicates {
        Some(format!(
            "{} duplicates recognised, {} of opted-in posts were sent",
            snapshot.duplicate, expected.sharing_duplicates
        ))
    } else if snapshot.dead_lettered > 0 || snapshot.retried > 0 {
        Some("events were dead-lettered or retried".to_owned())
    } else {
        None
    };
    Ok(match problem {
        Some(why) => gate.fail_because(&why),
        None => gate,
    })
}

/// Creates every user and turns sharing on for the sharing ones, through the sink itself.
async fn setup_users(sink: &Ingest, db: &Database, population: &Population) -> Result<(), Error> {
    let events = population.setup_events();
    let (created, turned_on): (Vec<_>, Vec<_>) = events
        .into_iter()
        .partition(|e| e.get("type").and_then(|t| t.as_str()) == Some("user.created"));
    // Profiles first: turning sharing on needs the user to exist.
    for batch in [created, turned_on] {
        let outcomes: Vec<Result<(), Error>> = stream::iter(batch)
            .map(|event| async move {
                let event = platform_adapter::decode_inbound(event.to_string().as_bytes())
                    .map_err(|e| Error::Setup(format!("setup event refused: {}", e.reason)))?;
                sink.apply(event).await?;
                Ok(())
            })
            // One at a time: turning sharing on generates a key inside its transaction, and
            // on SQLite concurrent set-up writers would only queue behind that lock.
            .buffer_unordered(1)
            .collect()
            .await;
        outcomes.into_iter().collect::<Result<(), Error>>()?;
    }
    let sharing = population.sharing;
    let ids: Vec<String> = population
        .setup_events()
        .iter()
        .filter(|e| e.get("type").and_then(|t| t.as_str()) == Some("sharing.turned_on"))
        .filter_map(|e| {
            e.get("order_key")
                .and_then(|k| k.as_str())
                .map(str::to_owned)
        })
        .collect();
    let on = db
        .run(move |conn| {
            let mut on = 0u64;
            for id in &ids {
                if users::find_by_platform_id(conn, id)?
                    .is_some_and(|u| u.sharing() == SharingState::On)
                {
                    on += 1;
                }
            }
            Ok(on)
        })
        .await?;
    if on != sharing {
        return Err(Error::Setup(format!(
            "only {on} of {sharing} users are sharing after set-up"
        )));
    }
    Ok(())
}
