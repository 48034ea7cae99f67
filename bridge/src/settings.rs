//! Layered configuration: built-in defaults, an optional file, then `FEDIBRIDGE__*` variables.
//!
//! Everything is validated once at start-up; an invalid value stops the process with a
//! [`SettingsError`] naming the key, so a misconfigured bridge never half-starts.

use std::{collections::HashMap, net::SocketAddr, path::Path, time::Duration};

use serde::Deserialize;
use url::Url;

use crate::db::DatabaseUrl;

/// The compiled-in lowest layer; the same text is the documented `config/default.toml`.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "FEDIBRIDGE";

/// A configuration value that cannot be used, with the key it belongs to.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A key holds a value of the right type that is still unusable.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// Dotted key, e.g. `server.bind`.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The file or the environment could not be read or parsed into the expected shape.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
}

impl SettingsError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// The whole configuration, validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP server.
    pub server: ServerSettings,
    /// Storage.
    pub database: DatabaseSettings,
    /// The platform's RabbitMQ.
    pub broker: BrokerSettings,
    /// ActivityPub identity and safety switches.
    pub federation: FederationSettings,
    /// Outbound delivery.
    pub delivery: DeliverySettings,
    /// Abuse limits on the ActivityPub inbox.
    pub inbox: InboxSettings,
    /// How the platform backend authenticates.
    pub platform: PlatformSettings,
    /// Opt-in rules.
    pub sharing: SharingSettings,
    /// Logging.
    pub log: LogSettings,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Listen address as written; parsed by [`ServerSettings::bind_addr`].
    pub bind: String,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Grace period for in-flight work on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Time a client has to send a request's head (request line and headers).
    pub client_request_timeout_secs: u64,
    /// Time a client has to close a connection after the response.
    pub client_disconnect_timeout_secs: u64,
}

impl ServerSettings {
    /// The validated listen address.
    pub fn bind_addr(&self) -> Result<SocketAddr, SettingsError> {
        self.bind.parse().map_err(|_| {
            SettingsError::invalid(
                "server.bind",
                format!(
                    "'{}' is not a socket address (expected HOST:PORT, e.g. 127.0.0.1:8080)",
                    self.bind
                ),
            )
        })
    }

    /// Grace period as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    /// Deadline of a request's head.
    pub fn client_request_timeout(&self) -> Duration {
        Duration::from_secs(self.client_request_timeout_secs)
    }

    /// Deadline of closing a connection.
    pub fn client_disconnect_timeout(&self) -> Duration {
        Duration::from_secs(self.client_disconnect_timeout_secs)
    }
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Pool size.
    pub pool_size: u32,
    /// Seconds to wait for a connection.
    pub connect_timeout_secs: u64,
    /// SQLite lock wait.
    pub sqlite_busy_timeout_ms: u64,
}

impl DatabaseSettings {
    /// The validated database URL.
    pub fn parsed_url(&self) -> Result<DatabaseUrl, SettingsError> {
        DatabaseUrl::parse(&self.url)
            .map_err(|message| SettingsError::invalid("database.url", message))
    }
}

/// `[broker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    /// AMQP URL; empty when no broker is used.
    pub url: String,
    /// Declare exchanges and queues at start.
    pub declare_topology: bool,
    /// Platform's event exchange.
    pub events_exchange: String,
    /// Queue the bridge consumes.
    pub events_queue: String,
    /// Exchange the bridge publishes to.
    pub outbound_exchange: String,
    /// Consumer prefetch.
    pub prefetch: u16,
    /// Most events one consumer lane stores in one transaction.
    pub max_batch: u16,
}

impl BrokerSettings {
    /// Whether a broker is configured at all.
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }
}

/// `[federation]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSettings {
    /// Public base URL of actors and inboxes.
    pub base_url: String,
    /// Handle domain (`@name@domain`).
    pub domain: String,
    /// Development switch for http and private peers.
    pub allow_private_addresses: bool,
    /// Accepted clock difference of signed requests.
    pub signature_window_secs: u64,
}

/// `[delivery]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// Requests in flight across all hosts.
    pub concurrency: usize,
    /// Requests in flight to one host.
    pub per_host_concurrency: usize,
    /// Deliveries claimed per round.
    pub batch_size: i64,
    /// Lease of a claimed delivery.
    pub lease_secs: u64,
    /// Idle poll interval.
    pub poll_interval_ms: u64,
    /// Retry window.
    pub max_age_hours: u64,
    /// Failure run after which a host is unavailable.
    pub unavailable_after_days: u64,
    /// Total time of one delivery request.
    pub request_timeout_secs: u64,
}

/// `[inbox]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxSettings {
    /// Authenticated activities one remote host may deliver per minute (0: unlimited).
    pub host_activities_per_minute: u32,
    /// Activities one remote host may deliver at once before the per-minute rate applies.
    pub host_burst: u32,
    /// Authenticated activities one remote actor may deliver per minute (0: unlimited).
    pub actor_activities_per_minute: u32,
    /// Activities one remote actor may deliver at once before the per-minute rate applies.
    pub actor_burst: u32,
    /// Accounts of one remote host that may follow one local user (0: no cap).
    pub max_followers_per_host_per_user: u64,
    /// Accounts of one remote host that may follow local users, all together (0: no cap).
    pub max_followers_per_host: u64,
    /// Time a client has to send an inbox body once its headers arrived.
    pub body_timeout_secs: u64,
}

impl InboxSettings {
    /// Deadline of an inbox body.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        for (rate, burst, key) in [
            (
                self.host_activities_per_minute,
                self.host_burst,
                "inbox.host_burst",
            ),
            (
                self.actor_activities_per_minute,
                self.actor_burst,
                "inbox.actor_burst",
            ),
        ] {
            if rate > 0 && burst == 0 {
                return Err(SettingsError::invalid(
                    key,
                    "must be at least 1 while its per-minute rate is set (0 there means unlimited)",
                ));
            }
        }
        if self.body_timeout_secs == 0 || self.body_timeout_secs > 300 {
            return Err(SettingsError::invalid(
                "inbox.body_timeout_secs",
                "must be between 1 and 300",
            ));
        }
        Ok(())
    }
}

/// `[platform]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSettings {
    /// Bearer token of the platform backend.
    pub api_token: String,
    /// HMAC secret of settings-page links.
    pub settings_link_secret: String,
}

impl std::fmt::Debug for PlatformSettings {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformSettings")
            .field("api_token", &redacted(&self.api_token))
            .field(
                "settings_link_secret",
                &redacted(&self.settings_link_secret),
            )
            .finish()
    }
}

fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() {
        "(unset)"
    } else {
        "(set)"
    }
}

/// `[sharing]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingSettings {
    /// Days between turning off and turning on again.
    pub cooldown_days: u32,
    /// Gate: the profile must be public.
    pub require_public_profile: bool,
    /// Gate: the user must be an adult.
    pub require_adult: bool,
    /// Gate: the user must not be suspended.
    pub require_not_suspended: bool,
    /// Gate: minimum account age in days.
    pub min_account_age_days: u32,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// Filter directive.
    pub level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl Settings {
    /// Loads defaults, then `file`, then the process environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with_env(file, None)
    }

    /// Like [`Settings::load`] with an explicit environment (tests use this instead of
    /// mutating the process environment).
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(SettingsError::invalid(
                    "--config",
                    format!("file '{}' does not exist", path.display()),
                ));
            }
            builder = builder.add_source(config::File::from(path).required(true));
        }
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(env);
        let settings: Settings = builder.add_source(environment).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every value that the types alone cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.server.bind_addr()?;
        if self.server.max_body_bytes < 1024 {
            return Err(SettingsError::invalid(
                "server.max_body_bytes",
                "must be at least 1024",
            ));
        }
        self.database.parsed_url()?;
        if self.database.pool_size == 0 {
            return Err(SettingsError::invalid(
                "database.pool_size",
                "must be at least 1",
            ));
        }
        if self.database.connect_timeout_secs == 0 {
            return Err(SettingsError::invalid(
                "database.connect_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.broker.enabled() {
            let url = Url::parse(self.broker.url.trim())
                .map_err(|e| SettingsError::invalid("broker.url", format!("not a URL ({e})")))?;
            if !matches!(url.scheme(), "amqp" | "amqps") {
                return Err(SettingsError::invalid(
                    "broker.url",
                    format!("scheme must be amqp or amqps, not '{}'", url.scheme()),
                ));
            }
            if self.broker.prefetch == 0 {
                return Err(SettingsError::invalid(
                    "broker.prefetch",
                    "must be at least 1",
                ));
            }
            if !(1..=1000).contains(&self.broker.max_batch) {
                return Err(SettingsError::invalid(
                    "broker.max_batch",
                    "must be between 1 and 1000",
                ));
            }
            for (key, value) in [
                ("broker.events_exchange", &self.broker.events_exchange),
                ("broker.events_queue", &self.broker.events_queue),
                ("broker.outbound_exchange", &self.broker.outbound_exchange),
            ] {
                if value.trim().is_empty() {
                    return Err(SettingsError::invalid(key, "must not be empty"));
                }
            }
        }
        for (key, value) in [
            (
                "server.client_request_timeout_secs",
                self.server.client_request_timeout_secs,
            ),
            (
                "server.client_disconnect_timeout_secs",
                self.server.client_disconnect_timeout_secs,
            ),
        ] {
            if value == 0 || value > 300 {
                return Err(SettingsError::invalid(key, "must be between 1 and 300"));
            }
        }
        self.federation.validate()?;
        self.inbox.validate()?;
        for (key, value) in [
            ("delivery.concurrency", self.delivery.concurrency as u64),
            (
                "delivery.per_host_concurrency",
                self.delivery.per_host_concurrency as u64,
            ),
            (
                "delivery.batch_size",
                self.delivery.batch_size.max(0) as u64,
            ),
            ("delivery.lease_secs", self.delivery.lease_secs),
            ("delivery.poll_interval_ms", self.delivery.poll_interval_ms),
            ("delivery.max_age_hours", self.delivery.max_age_hours),
            (
                "delivery.request_timeout_secs",
                self.delivery.request_timeout_secs,
            ),
        ] {
            if value == 0 {
                return Err(SettingsError::invalid(key, "must be at least 1"));
            }
        }
        if self.federation.signature_window_secs == 0
            || self.federation.signature_window_secs > 12 * 3600
        {
            return Err(SettingsError::invalid(
                "federation.signature_window_secs",
                "must be between 1 and 43200 (12 hours)",
            ));
        }
        Ok(())
    }
}

impl FederationSettings {
    /// The validated public base URL, without a trailing slash.
    pub fn base(&self) -> Result<Url, SettingsError> {
        let key = "federation.base_url";
        let url = Url::parse(&self.base_url).map_err(|e| {
            SettingsError::invalid(key, format!("'{}' is not a URL ({e})", self.base_url))
        })?;
        if url.cannot_be_a_base() || url.host_str().is_none() {
            return Err(SettingsError::invalid(
                key,
                "must be an absolute http(s) URL",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(SettingsError::invalid(
                key,
                "must not carry a query, a fragment or user info",
            ));
        }
        match url.scheme() {
            "https" => {}
            "http" if self.allow_private_addresses || is_loopback_host(&url) => {}
            "http" => {
                return Err(SettingsError::invalid(
                    key,
                    "must be https (http only for a loopback host or with \
                     federation.allow_private_addresses)",
                ));
            }
            other => {
                return Err(SettingsError::invalid(
                    key,
                    format!("scheme must be https, not '{other}'"),
                ));
            }
        }
        Ok(url)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.base()?;
        let domain = self.domain.trim();
        let valid = !domain.is_empty()
            && domain == self.domain
            && !domain.contains(['/', '@', '?', '#', ' '])
            && Url::parse(&format!("https://{domain}/")).is_ok_and(|u| u.host_str().is_some());
        if !valid {
            return Err(SettingsError::invalid(
                "federation.domain",
                format!(
                    "'{}' is not a host name (e.g. platform.example)",
                    self.domain
                ),
            ));
        }
        if domain.contains(':') && !self.allow_private_addresses && !domain_is_loopback(domain) {
            return Err(SettingsError::invalid(
                "federation.domain",
                "a port in the handle domain is only for local trials (loopback or \
                 federation.allow_private_addresses)",
            ));
        }
        Ok(())
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn domain_is_loopback(domain: &str) -> bool {
    Url::parse(&format!("http://{domain}/")).is_ok_and(|u| is_loopback_host(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn error_for(pairs: &[(&str, &str)]) -> String {
        match Settings::load_with_env(None, Some(env(pairs))) {
            Ok(_) => panic!("expected {pairs:?} to be refused"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_load_without_any_file() {
        let s = Settings::load_with_env(None, Some(HashMap::new())).expect("defaults are valid");
        assert_eq!(s.server.bind_addr().expect("bind").port(), 8080);
        assert!(!s.broker.enabled());
        assert!(!s.federation.allow_private_addresses);
        assert_eq!(s.log.format, LogFormat::Pretty);
    }

    #[test]
    fn environment_overrides_nested_snake_case_keys() {
        let s = Settings::load_with_env(
            None,
            Some(env(&[
                ("FEDIBRIDGE__SERVER__BIND", "127.0.0.1:9999"),
                ("FEDIBRIDGE__FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true"),
                ("FEDIBRIDGE__DATABASE__POOL_SIZE", "3"),
            ])),
        )
        .expect("valid");
        assert_eq!(s.server.bind, "127.0.0.1:9999");
        assert!(s.federation.allow_private_addresses);
        assert_eq!(s.database.pool_size, 3);
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("FEDIBRIDGE__SERVER__BIND", "not-an-address", "server.bind"),
            ("FEDIBRIDGE__DATABASE__URL", "mysql://x", "database.url"),
            ("FEDIBRIDGE__DATABASE__POOL_SIZE", "0", "database.pool_size"),
            ("FEDIBRIDGE__BROKER__URL", "http://rabbit", "broker.url"),
            (
                "FEDIBRIDGE__FEDERATION__BASE_URL",
                "http://example.com",
                "federation.base_url",
            ),
            (
                "FEDIBRIDGE__FEDERATION__BASE_URL",
                "ftp://example.com",
                "federation.base_url",
            ),
            ("FEDIBRIDGE__FEDERATION__DOMAIN", "a/b", "federation.domain"),
            (
                "FEDIBRIDGE__FEDERATION__SIGNATURE_WINDOW_SECS",
                "0",
                "federation.signature_window_secs",
            ),
            ("FEDIBRIDGE__LOG__FORMAT", "xml", "log.format"),
            (
                "FEDIBRIDGE__SERVER__CLIENT_REQUEST_TIMEOUT_SECS",
                "0",
                "server.client_request_timeout_secs",
            ),
            (
                "FEDIBRIDGE__SERVER__CLIENT_DISCONNECT_TIMEOUT_SECS",
                "0",
                "server.client_disconnect_timeout_secs",
            ),
            ("FEDIBRIDGE__INBOX__HOST_BURST", "0", "inbox.host_burst"),
            ("FEDIBRIDGE__INBOX__ACTOR_BURST", "0", "inbox.actor_burst"),
            (
                "FEDIBRIDGE__INBOX__HOST_ACTIVITIES_PER_MINUTE",
                "-1",
                "inbox.host_activities_per_minute",
            ),
            (
                "FEDIBRIDGE__INBOX__BODY_TIMEOUT_SECS",
                "0",
                "inbox.body_timeout_secs",
            ),
            ("FEDIBRIDGE__SERVER__WORKERS", "many", "server.workers"),
        ];
        for (var, value, key) in cases {
            let message = error_for(&[(var, value)]);
            assert!(
                message.contains(key),
                "{var}={value}: '{message}' does not name {key}"
            );
        }
    }

    #[test]
    fn zero_rates_switch_the_limits_off_whatever_the_burst() {
        let s = Settings::load_with_env(
            None,
            Some(env(&[
                ("FEDIBRIDGE__INBOX__HOST_ACTIVITIES_PER_MINUTE", "0"),
                ("FEDIBRIDGE__INBOX__HOST_BURST", "0"),
            ])),
        )
        .expect("valid");
        assert_eq!(s.inbox.host_activities_per_minute, 0);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let message = error_for(&[("FEDIBRIDGE__SERVER__BINDD", "127.0.0.1:1")]);
        assert!(message.contains("bindd"), "{message}");
    }

    #[test]
    fn https_base_url_and_separate_domain_are_accepted() {
        let s = Settings::load_with_env(
            None,
            Some(env(&[
                (
                    "FEDIBRIDGE__FEDERATION__BASE_URL",
                    "https://fedi.platform.example",
                ),
                ("FEDIBRIDGE__FEDERATION__DOMAIN", "platform.example"),
            ])),
        )
        .expect("valid");
        assert_eq!(s.federation.domain, "platform.example");
    }
}
