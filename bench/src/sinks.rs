//! Fake remote inboxes: one HTTP server listening on many loopback addresses and ports
//! (each `ip:port` is a distinct remote host to the bridge), answering 202, counting every
//! request per inbox and verifying a sample of signatures as a remote server would.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, TcpListener},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::ServerHandle, web};
use bridge::federation::begin_verify;

use crate::error::Error;

/// What the sinks saw.
#[derive(Debug, Default)]
struct Counters {
    /// Requests per `authority + path`.
    per_inbox: Mutex<HashMap<String, u32>>,
    total: AtomicU64,
    /// When the first and the latest request arrived.
    arrivals: Mutex<Option<(Instant, Instant)>>,
    verified: AtomicU64,
    rejected: AtomicU64,
}

struct SinkState {
    counters: Counters,
    verify_every: u64,
    /// The author's public key, for the sampled verifications.
    public_key_pem: RwLock<Option<String>>,
}

/// A running set of fake inboxes.
pub struct Sinks {
    /// `ip:port` of every listener, one remote host each.
    pub authorities: Vec<String>,
    state: Arc<SinkState>,
    handle: ServerHandle,
}

/// Totals read from the sinks.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Requests received.
    pub total: u64,
    /// Distinct inboxes that received at least one request.
    pub inboxes: usize,
    /// Fewest requests any reached inbox received.
    pub min_per_inbox: u32,
    /// Most requests any inbox received.
    pub max_per_inbox: u32,
    /// Sampled signatures that verified.
    pub verified: u64,
    /// Sampled signatures that did not.
    pub rejected: u64,
    /// When the first and the latest request arrived.
    pub arrivals: Option<(Instant, Instant)>,
}

impl Sinks {
    /// Listens on `addresses` loopback addresses (127.0.0.2 upwards) × `ports_each` ports,
    /// verifying every `verify_every`-th request.
    pub fn start(addresses: u8, ports_each: usize, verify_every: u64) -> Result<Self, Error> {
        let mut listeners = Vec::new();
        let mut authorities = Vec::new();
        for a in 0..addresses {
            let ip = Ipv4Addr::new(127, 0, 0, a.saturating_add(2));
            for _ in 0..ports_each {
                let listener = TcpListener::bind((ip, 0))?;
                authorities.push(listener.local_addr()?.to_string());
                listeners.push(listener);
            }
        }
        let state = Arc::new(SinkState {
            counters: Counters::default(),
            verify_every: verify_every.max(1),
            public_key_pem: RwLock::new(None),
        });
        let data = web::Data::new(Arc::clone(&state));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(inbox))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(0);
        for listener in listeners {
            server = server.listen(listener)?;
        }
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            authorities,
            state,
            handle,
        })
    }

    /// Sets the key sampled signatures must verify with.
    pub fn expect_key(&self, public_key_pem: &str) {
        if let Ok(mut key) = self.state.public_key_pem.write() {
            *key = Some(public_key_pem.to_owned());
        }
    }

    /// Forgets every request counted so far.
    pub fn reset(&self) {
        let c = &self.state.counters;
        if let Ok(mut map) = c.per_inbox.lock() {
            map.clear();
        }
        if let Ok(mut arrivals) = c.arrivals.lock() {
            *arrivals = None;
        }
        for counter in [&c.total, &c.verified, &c.rejected] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// What the sinks received so far.
    pub fn tally(&self) -> Tally {
        let c = &self.state.counters;
        let (inboxes, min_per_inbox, max_per_inbox) = c
            .per_inbox
            .lock()
            .map(|map| {
                (
                    map.len(),
                    map.values().copied().min().unwrap_or(0),
                    map.values().copied().max().unwrap_or(0),
                )
            })
            .unwrap_or_default();
        Tally {
            total: c.total.load(Ordering::Relaxed),
            inboxes,
            min_per_inbox,
            max_per_inbox,
            verified: c.verified.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            arrivals: c.arrivals.lock().ok().and_then(|a| *a),
        }
    }

    /// Stops every listener.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn inbox(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<SinkState>>,
) -> HttpResponse {
    // The listener's own address, not the Host header: the signature must name this host.
    let authority = request.app_config().local_addr().to_string();
    let counters = &state.counters;
    let n = counters.total.fetch_add(1, Ordering::Relaxed) + 1;
    if let Ok(mut map) = counters.per_inbox.lock() {
        *map.entry(format!("{authority}{}", request.path()))
            .or_default() += 1;
    }
    if let Ok(mut arrivals) = counters.arrivals.lock() {
        let now = Instant::now();
        *arrivals = Some(arrivals.map_or((now, now), |(first, _)| (first, now)));
    }
    if n.is_multiple_of(state.verify_every) {
        let verified = verify(&request, &body, &authority, &state);
        let counter = if verified {
            &counters.verified
        } else {
            &counters.rejected
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    HttpResponse::Accepted().finish()
}

fn verify(request: &HttpRequest, body: &[u8], authority: &str, state: &SinkState) -> bool {
    let Some(pem) = state.public_key_pem.read().ok().and_then(|k| k.clone()) else {
        return false;
    };
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.path().to_owned(), ToString::to_string);
    begin_verify(
        "POST",
        &target,
        headers,
        body,
        &[authority],
        SystemTime::now(),
        Duration::from_secs(300),
    )
    .and_then(|pending| pending.verify(&pem))
    .is_ok()
}
