//! Connecting to RabbitMQ, and a supervisor that keeps the bridge's view of it current.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

use crate::Error;

/// Longest wait for one connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens one AMQP connection named `name` (shown in the broker's management UI).
pub async fn connect(url: &str, name: &str) -> Result<Connection, Error> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(url, properties)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Error::ConnectTimeout(redact(url))),
    }
}

/// Connects and disconnects once: proves the URL, credentials and broker work.
pub async fn probe(url: &str) -> Result<(), Error> {
    let connection = connect(url, "fedibridge-check").await?;
    connection.close(200, "probe done".into()).await?;
    Ok(())
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Shared flag: is the broker reachable right now? Read by `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct BrokerStatus(Arc<AtomicBool>);

impl BrokerStatus {
    /// Whether the last check found the broker connected.
    pub fn is_connected(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Records the current state.
    pub fn set_connected(&self, connected: bool) {
        self.0.store(connected, Ordering::Release);
    }
}

/// Capped exponential backoff with jitter for reconnect loops.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// Starts at `base`, doubles per failure, never exceeds `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            attempt: 0,
            base,
            cap,
        }
    }

    /// The next wait: full jitter over the exponential step, so that many bridges
    /// reconnecting after a broker restart do not arrive together.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = exp.min(self.cap);
        let jitter = rand_fraction();
        ceiling.mul_f64(0.5 + 0.5 * jitter)
    }

    /// Forgets past failures after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

fn rand_fraction() -> f64 {
    // Jitter needs no cryptographic quality; the clock's low bits are enough and avoid a
    // dependency on a random number crate in the adapter.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

/// Keeps a monitoring connection open, reconnecting with backoff, and mirrors its state in
/// `status` until `shutdown` is cancelled.
pub async fn monitor(url: String, status: BrokerStatus, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while !shutdown.is_cancelled() {
        match connect(&url, "fedibridge-monitor").await {
            Ok(connection) => {
                status.set_connected(true);
                backoff.reset();
                while connection.status().connected() {
                    tokio::select! {
                        () = shutdown.cancelled() => {
                            let _ = connection.close(200, "shutting down".into()).await;
                            status.set_connected(false);
                            return;
                        }
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                status.set_connected(false);
                tracing::warn!(broker = %redact(&url), "broker connection lost; reconnecting");
            }
            Err(error) => {
                status.set_connected(false);
                tracing::warn!(broker = %redact(&url), %error, "broker unreachable");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
    }
}
