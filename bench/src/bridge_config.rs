//! The bridge's settings for a scenario: the built-in defaults, with only what the
//! scenario must change (database, broker names, loopback switches) overridden.

use std::collections::HashMap;

use bridge::Settings;

use crate::error::Error;

/// Settings on `database_url`, with `overrides` as `FEDIBRIDGE__…` variables.
///
/// The process environment is not read: a run measures the defaults the README documents,
/// whatever the shell happens to export.
pub fn settings(database_url: &str, overrides: &[(&str, String)]) -> Result<Settings, Error> {
    let mut env: HashMap<String, String> = HashMap::from([
        ("FEDIBRIDGE__DATABASE__URL".into(), database_url.to_owned()),
        ("FEDIBRIDGE__LOG__LEVEL".into(), "warn".into()),
        ("FEDIBRIDGE__SERVER__BIND".into(), "127.0.0.1:0".into()),
    ]);
    for (key, value) in overrides {
        env.insert((*key).to_owned(), value.clone());
    }
    Ok(Settings::load_with_env(None, Some(env))?)
}

/// The overrides that point the bridge at `broker_url` with the names of `topology`.
pub fn broker(
    broker_url: &str,
    topology: &platform_adapter::Topology,
) -> Vec<(&'static str, String)> {
    vec![
        ("FEDIBRIDGE__BROKER__URL", broker_url.to_owned()),
        (
            "FEDIBRIDGE__BROKER__EVENTS_EXCHANGE",
            topology.events_exchange.clone(),
        ),
        (
            "FEDIBRIDGE__BROKER__EVENTS_QUEUE",
            topology.events_queue.clone(),
        ),
        (
            "FEDIBRIDGE__BROKER__OUTBOUND_EXCHANGE",
            topology.outbound_exchange.clone(),
        ),
    ]
}

/// A topology whose exchanges and queues carry `tag` (unique per run), so a scenario never
/// touches the names of anything else on the broker.
pub fn topology(tag: &str) -> Result<platform_adapter::Topology, Error> {
    Ok(platform_adapter::Topology::new(
        format!("bench.{tag}.events"),
        format!("bench.{tag}.events"),
        format!("bench.{tag}.out"),
    )?)
}
