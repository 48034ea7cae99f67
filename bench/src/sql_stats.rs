//! Per-statement counts and times of every diesel connection in this process (the bridge
//! runs in it), collected during a measured phase when `FEDIBRIDGE_BENCH_SQL_STATS` is set:
//! where a phase's database time goes, statement by statement.

use std::{
    collections::HashMap,
    sync::{
        LazyLock, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use diesel::connection::{Instrumentation, InstrumentationEvent};

static COLLECTING: AtomicBool = AtomicBool::new(false);
static TOTALS: LazyLock<Mutex<HashMap<String, (u64, Duration)>>> = LazyLock::new(Mutex::default);

/// Times statements on one connection.
struct Timer {
    started: Option<Instant>,
}

impl Instrumentation for Timer {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { .. } => self.started = Some(Instant::now()),
            InstrumentationEvent::FinishQuery { query, .. } => {
                let Some(started) = self.started.take() else {
                    return;
                };
                if !COLLECTING.load(Ordering::Relaxed) {
                    return;
                }
                let text = query.to_string();
                let sql = text
                    .split(" -- binds")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
                let entry = totals.entry(sql).or_default();
                entry.0 += 1;
                entry.1 += started.elapsed();
            }
            _ => {}
        }
    }
}

/// Installs the timer on every connection opened from now on, if asked to.
pub fn install() {
    if std::env::var_os("FEDIBRIDGE_BENCH_SQL_STATS").is_none() {
        return;
    }
    let _ =
        diesel::connection::set_default_instrumentation(|| Some(Box::new(Timer { started: None })));
}

/// Starts (`true`) or stops collecting; stopping prints the statements by total time, per
/// `requests` requests of the phase.
pub fn phase(on: bool, requests: usize) {
    if std::env::var_os("FEDIBRIDGE_BENCH_SQL_STATS").is_none() {
        return;
    }
    COLLECTING.store(on, Ordering::Relaxed);
    if on {
        return;
    }
    let totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<_> = totals.iter().collect();
    rows.sort_by_key(|(_, (_, time))| std::cmp::Reverse(*time));
    let requests = requests.max(1) as f64;
    let (count, time) = rows
        .iter()
        .fold((0, Duration::ZERO), |(c, t), (_, (n, d))| (c + n, t + *d));
    eprintln!(
        "sql: {:.2} statements and {:.0} µs per request",
        count as f64 / requests,
        time.as_secs_f64() * 1e6 / requests
    );
    for (sql, (n, d)) in rows.iter().take(40) {
        eprintln!(
            "{:7.3}/req {:7.1} µs/req {:6.1} µs each  {}",
            *n as f64 / requests,
            d.as_secs_f64() * 1e6 / requests,
            d.as_secs_f64() * 1e6 / *n as f64,
            sql.chars().take(230).collect::<String>()
        );
    }
}
