//! Fake remote inboxes that note when each request arrives: a few hosts (one loopback
//! address each), an optional answer delay standing for the network round trip, and a
//! switch that takes a host down (it answers 503). S2 and S5 read latencies and
//! exactly-once delivery from what they noted.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, TcpListener},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::ServerHandle, web};
use serde_json::Value;

use crate::error::Error;

/// One request as a fake inbox saw it.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Which post it carried: the segment after `/posts/` in the object's id (the bridge's
    /// Note URL), or the whole id when there is none.
    pub key: String,
    /// The listener (`ip:port`): the remote host.
    pub authority: String,
    /// When its body was read, before any answer delay.
    pub at: Instant,
    /// What it was answered.
    pub status: u16,
}

struct SinkState {
    delay: Duration,
    down: RwLock<HashSet<String>>,
    arrivals: Mutex<Vec<Arrival>>,
}

/// A running set of recording inboxes.
pub struct RecordingSinks {
    /// `ip:port` of every host, 127.0.0.2 upwards.
    pub authorities: Vec<String>,
    state: Arc<SinkState>,
    handle: ServerHandle,
}

impl RecordingSinks {
    /// `hosts` hosts on 127.0.0.2 upwards, each answering after `delay`.
    pub fn start(hosts: u8, delay: Duration) -> Result<Self, Error> {
        let mut listeners = Vec::new();
        let mut authorities = Vec::new();
        for a in 0..hosts {
            let listener = TcpListener::bind((Ipv4Addr::new(127, 0, 0, a.saturating_add(2)), 0))?;
            authorities.push(listener.local_addr()?.to_string());
            listeners.push(listener);
        }
        let state = Arc::new(SinkState {
            delay,
            down: RwLock::default(),
            arrivals: Mutex::default(),
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

    /// Takes `authority` down (every request answered 503) or brings it back.
    pub fn set_down(&self, authority: &str, down: bool) {
        if let Ok(mut set) = self.state.down.write() {
            if down {
                set.insert(authority.to_owned());
            } else {
                set.remove(authority);
            }
        }
    }

    /// Every request noted so far, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state
            .arrivals
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Forgets what was noted.
    pub fn reset(&self) {
        if let Ok(mut a) = self.state.arrivals.lock() {
            a.clear();
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
    let at = Instant::now();
    let authority = request.app_config().local_addr().to_string();
    let down = state
        .down
        .read()
        .map(|set| set.contains(&authority))
        .unwrap_or(false);
    let status = if down { 503 } else { 202 };
    if let Ok(mut arrivals) = state.arrivals.lock() {
        arrivals.push(Arrival {
            key: post_key(&body),
            authority,
            at,
            status,
        });
    }
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    if down {
        HttpResponse::ServiceUnavailable().finish()
    } else {
        HttpResponse::Accepted().finish()
    }
}

/// The post a request carried (see [`Arrival::key`]).
fn post_key(body: &[u8]) -> String {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let id = match json.get("object") {
        Some(Value::Object(object)) => object.get("id").and_then(Value::as_str),
        Some(Value::String(id)) => Some(id.as_str()),
        _ => None,
    }
    .unwrap_or_default();
    id.split_once("/posts/")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
        .unwrap_or(id)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_post_id_of_the_object() {
        let create =
            br#"{"type":"Create","object":{"id":"http://b.example/posts/p_7","type":"Note"}}"#;
        assert_eq!(post_key(create), "p_7");
        let by_url = br#"{"type":"Create","object":"http://b.example/posts/p_8/x"}"#;
        assert_eq!(post_key(by_url), "p_8");
        assert_eq!(post_key(b"not json"), "");
    }
}
