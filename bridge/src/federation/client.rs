//! `FederationClient`: the only way the bridge talks to remote servers.
//!
//! Every request is checked against the [`AddressPolicy`] before it is sent and, through
//! [`GuardedResolver`], at connect time; redirects are followed by hand (at most
//! [`ClientConfig::max_redirects`], each hop re-validated and re-signed, loops refused);
//! every request has a connect timeout, a total deadline covering the body, and a body cap
//! enforced while reading.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HOST, LOCATION, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use url::Url;

use super::address_policy::{AddressPolicy, validate_remote_url};
use super::http_signatures::{SignedHeaders, sign_get_async, sign_post_async};
use super::keys::SigningKey;
use super::media_type::{
    ACTIVITY_ACCEPT, ACTIVITY_CONTENT_TYPE, JRD_ACCEPT, is_activity_json, is_jrd_json,
};
use super::remote_failure::RemoteFailure;
use super::resolver::{GuardedResolver, ResolveError};
use super::retry_after::parse_retry_after;
use crate::Error;
use crate::settings::FederationSettings;

/// Bytes of a delivery response kept for the logs.
const EXCERPT_BYTES: usize = 512;

/// Limits and identity of a [`FederationClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Which addresses may be contacted.
    pub policy: AddressPolicy,
    /// `User-Agent`, `fedibridge/VERSION (+base_url)`.
    pub user_agent: String,
    /// Limit for establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Deadline for a whole operation: every redirect hop, headers and body.
    pub total_timeout: Duration,
    /// Largest response body read.
    pub max_body_bytes: usize,
    /// Redirects followed at most.
    pub max_redirects: usize,
}

impl ClientConfig {
    /// Defaults: 5 s connect, 10 s total, 1 MiB bodies, 3 redirects.
    pub fn new(base_url: &Url, policy: AddressPolicy) -> Self {
        Self {
            policy,
            user_agent: format!(
                "fedibridge/{} (+{})",
                env!("CARGO_PKG_VERSION"),
                base_url.as_str().trim_end_matches('/')
            ),
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            max_redirects: 3,
        }
    }

    /// Defaults for the configured base URL and `allow_private_addresses`.
    pub fn from_settings(settings: &FederationSettings) -> Result<Self, Error> {
        let base_url = Url::parse(&settings.base_url)
            .map_err(|e| Error::HttpClient(format!("federation.base_url: {e}")))?;
        Ok(Self::new(
            &base_url,
            AddressPolicy {
                allow_private: settings.allow_private_addresses,
            },
        ))
    }
}

/// A fetched ActivityPub (or JRD) document.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// The URL the document was finally served from, after redirects, without fragment.
    pub final_url: Url,
    /// The parsed JSON object.
    pub json: serde_json::Value,
}

/// What a remote inbox answered to a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostOutcome {
    /// HTTP status (redirects are not followed for deliveries and appear here).
    pub status: u16,
    /// The parsed `Retry-After`, if any.
    pub retry_after: Option<Duration>,
    /// The first 512 bytes of the body, lossily decoded, for logs.
    pub body_excerpt: String,
}

impl PostOutcome {
    /// Whether the inbox accepted the activity (2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// SSRF-safe HTTP client for fetches and deliveries; cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct FederationClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
}

#[derive(Debug, Clone, Copy)]
enum DocumentKind {
    Activity,
    Jrd,
}

impl FederationClient {
    /// Builds the client and its connection pool.
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            // Redirects are followed by hand so that each hop is validated and re-signed.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve names itself, bypassing the guarded resolver.
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .timeout(config.total_timeout)
            .https_only(!config.policy.allow_private)
            .dns_resolver(GuardedResolver::new(config.policy))
            .build()
            .map_err(|e| Error::HttpClient(error_chain(&e)))?;
        Ok(Self {
            http,
            config: Arc::new(config),
        })
    }

    /// The limits in force.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Fetches an ActivityPub document, signed when `signer` is given (authorized fetch).
    /// Only `application/activity+json` and `application/ld+json` with the ActivityStreams
    /// profile are accepted. The caller must still check the document's `id` against
    /// [`Fetched::final_url`] ([`ensure_id_matches`]).
    pub async fn fetch_activity_json(
        &self,
        url: &Url,
        signer: Option<&SigningKey>,
    ) -> Result<Fetched, Error> {
        self.with_deadline(url, self.fetch(url, signer, DocumentKind::Activity))
            .await
    }

    /// Fetches a WebFinger (JRD) document, unsigned; `application/json` is accepted too.
    pub async fn fetch_jrd(&self, url: &Url) -> Result<Fetched, Error> {
        self.with_deadline(url, self.fetch(url, None, DocumentKind::Jrd))
            .await
    }

    /// Delivers an activity to an inbox with a signed POST. A non-2xx answer is an `Ok`
    /// outcome for the delivery engine to classify; connection, DNS and timeout failures are
    /// `Err` ([`crate::Error::is_transient`] tells whether to retry).
    pub async fn post_activity(
        &self,
        inbox: &Url,
        body: Bytes,
        signer: &SigningKey,
    ) -> Result<PostOutcome, Error> {
        self.with_deadline(inbox, async {
            validate_remote_url(inbox, self.config.policy)?;
            let signed = sign_post_async(signer, inbox, body.clone()).await?;
            let request = self
                .http
                .post(inbox.clone())
                .header(CONTENT_TYPE, ACTIVITY_CONTENT_TYPE)
                .header(ACCEPT, ACTIVITY_ACCEPT);
            let mut response = with_signature(request, &signed)
                .body(body)
                .send()
                .await
                .map_err(|e| transport_error(inbox, &e, &self.config))?;
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            let status = response.status().as_u16();
            let body_excerpt = read_excerpt(&mut response, inbox, &self.config).await?;
            Ok(PostOutcome {
                status,
                retry_after,
                body_excerpt,
            })
        })
        .await
    }

    async fn with_deadline<T>(
        &self,
        url: &Url,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(self.config.total_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(remote(
                    url,
                    RemoteFailure::Timeout(self.config.total_timeout.as_millis()),
                ))
            })
    }

    async fn fetch(
        &self,
        url: &Url,
        signer: Option<&SigningKey>,
        kind: DocumentKind,
    ) -> Result<Fetched, Error> {
        let mut current = without_fragment(url);
        let mut visited = HashSet::from([current.clone()]);
        let mut redirects = 0;
        loop {
            validate_remote_url(&current, self.config.policy)?;
            let accept = match kind {
                DocumentKind::Activity => ACTIVITY_ACCEPT,
                DocumentKind::Jrd => JRD_ACCEPT,
            };
            let mut request = self.http.get(current.clone()).header(ACCEPT, accept);
            if let Some(key) = signer {
                request = with_signature(request, &sign_get_async(key, &current).await?);
            }
            let mut response = request
                .send()
                .await
                .map_err(|e| transport_error(&current, &e, &self.config))?;
            let status = response.status();

            if status.is_redirection() {
                let next = redirect_target(&current, &response)?;
                redirects += 1;
                if redirects > self.config.max_redirects {
                    return Err(remote(
                        url,
                        RemoteFailure::TooManyRedirects(self.config.max_redirects),
                    ));
                }
                if !visited.insert(next.clone()) {
                    return Err(remote(url, RemoteFailure::RedirectLoop(next.to_string())));
                }
                current = next;
                continue;
            }
            match status {
                StatusCode::NOT_FOUND => return Err(remote(&current, RemoteFailure::NotFound)),
                StatusCode::GONE => return Err(remote(&current, RemoteFailure::Gone)),
                s if !s.is_success() => {
                    return Err(remote(&current, RemoteFailure::Status(s.as_u16())));
                }
                _ => {}
            }

            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            let acceptable = match kind {
                DocumentKind::Activity => is_activity_json(&content_type),
                DocumentKind::Jrd => is_jrd_json(&content_type),
            };
            if !acceptable {
                return Err(remote(&current, RemoteFailure::ContentType(content_type)));
            }

            let body = read_capped(&mut response, &current, &self.config).await?;
            let json: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| remote(&current, RemoteFailure::InvalidJson(e.to_string())))?;
            if !json.is_object() {
                return Err(remote(
                    &current,
                    RemoteFailure::InvalidJson("not a JSON object".into()),
                ));
            }
            return Ok(Fetched {
                final_url: current,
                json,
            });
        }
    }
}

/// Requires the fetched document's `id` to be exactly the URL it was served from, so that a
/// document cannot speak for another URL (Mastodon CVE-2024-23832, Misskey CVE-2024-52591).
pub fn ensure_id_matches(fetched: &Fetched) -> Result<(), Error> {
    let id = fetched
        .json
        .get("id")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            remote(
                &fetched.final_url,
                RemoteFailure::IdMismatch("(none)".into()),
            )
        })?;
    match Url::parse(id) {
        Ok(parsed) if parsed == fetched.final_url => Ok(()),
        _ => Err(remote(
            &fetched.final_url,
            RemoteFailure::IdMismatch(id.to_owned()),
        )),
    }
}

fn with_signature(mut request: RequestBuilder, signed: &SignedHeaders) -> RequestBuilder {
    // Host is set explicitly so that the value sent is byte for byte the value signed.
    for (name, value) in signed.iter() {
        request = if name == "Host" {
            request.header(HOST, value)
        } else {
            request.header(name, value)
        };
    }
    request
}

fn redirect_target(current: &Url, response: &Response) -> Result<Url, Error> {
    let location = response
        .headers()
        .get(LOCATION)
        .ok_or_else(|| {
            remote(
                current,
                RemoteFailure::BadRedirect(format!("{} without Location", response.status())),
            )
        })?
        .to_str()
        .map_err(|_| {
            remote(
                current,
                RemoteFailure::BadRedirect("Location is not text".into()),
            )
        })?;
    current
        .join(location)
        .map(|next| without_fragment(&next))
        .map_err(|e| {
            remote(
                current,
                RemoteFailure::BadRedirect(format!("{location}: {e}")),
            )
        })
}

/// Reads the whole body, refusing it as soon as it exceeds the cap, whatever
/// `Content-Length` claims.
async fn read_capped(
    response: &mut Response,
    url: &Url,
    config: &ClientConfig,
) -> Result<Vec<u8>, Error> {
    let cap = config.max_body_bytes;
    let too_large = || remote(url, RemoteFailure::TooLarge(cap));
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(too_large());
    }
    let expected = response.content_length().unwrap_or(0) as usize;
    let mut body = Vec::with_capacity(expected.min(cap));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(url, &e, config))?
    {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the start of a delivery answer; the rest is drained only while it is small, so
/// the connection can be reused without reading a huge body.
async fn read_excerpt(
    response: &mut Response,
    url: &Url,
    config: &ClientConfig,
) -> Result<String, Error> {
    const DRAIN_LIMIT: usize = 64 * 1024;
    let mut head = Vec::with_capacity(EXCERPT_BYTES);
    let mut seen = 0usize;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(url, &e, config))?
    {
        let room = EXCERPT_BYTES.saturating_sub(head.len());
        head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        seen += chunk.len();
        if seen > DRAIN_LIMIT {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn without_fragment(url: &Url) -> Url {
    let mut url = url.clone();
    url.set_fragment(None);
    url
}

fn remote(url: &Url, failure: RemoteFailure) -> Error {
    Error::Remote {
        url: url.to_string(),
        failure,
    }
}

fn transport_error(url: &Url, error: &reqwest::Error, config: &ClientConfig) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(ResolveError::Forbidden { .. }) = e.downcast_ref::<ResolveError>() {
            return remote(url, RemoteFailure::Forbidden(e.to_string()));
        }
        source = e.source();
    }
    if error.is_timeout() {
        return remote(
            url,
            RemoteFailure::Timeout(config.total_timeout.as_millis()),
        );
    }
    remote(url, RemoteFailure::Transport(error_chain(error)))
}

/// `error: cause: cause`, since reqwest's own message hides the useful part.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
