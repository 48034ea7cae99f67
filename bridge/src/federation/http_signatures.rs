//! Mastodon-compatible draft-cavage HTTP signatures (RSA-SHA256, PKCS#1 v1.5).
//!
//! Signing produces `Date`, `Host`, `Digest` and `Signature` exactly as Mastodon sends them
//! (`algorithm="rsa-sha256"`, `headers="(request-target) host date digest"`). The signing
//! string is built here rather than by http-signature-normalization because that crate
//! always writes `algorithm="hs2019"` and orders the signed headers alphabetically; its
//! verifier is used in the tests as an independent check that our output is standard.
//!
//! Verification is split in two so that everything that needs no key (header presence,
//! host, date window, digest) is checked before the inbox spends a key lookup:
//! [`begin_verify`] returns a [`PendingSignature`], whose [`PendingSignature::verify`]
//! does the RSA check once the key is known.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use openssl::hash::MessageDigest;
use openssl::pkey::Id;
use openssl::sign::{Signer, Verifier};
use sha2::{Digest as _, Sha256};
use url::Url;

use super::address_policy::canonical_host;
use super::keys::{KeyCache, SigningKey};
use super::signature_header::parse_signature_params;
use super::signature_rejection::SignatureRejection;
use crate::Error;

/// The algorithm name we write, as Mastodon does.
pub const SIGNATURE_ALGORITHM: &str = "rsa-sha256";

/// Smallest RSA modulus we accept from remote keys.
const MIN_RSA_BITS: u32 = 2048;

/// Longest decoded signature we accept (an RSA-8192 signature is 1024 bytes).
const MAX_SIGNATURE_BYTES: usize = 1024;

/// The headers a signer produced, to be set on the outgoing request as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `Date`, an IMF-fixdate.
    pub date: String,
    /// `Host`, `host[:port]` of the target URL (port only when not the default).
    pub host: String,
    /// `Digest` (`SHA-256=…`), for requests with a body.
    pub digest: Option<String>,
    /// `Signature`.
    pub signature: String,
}

impl SignedHeaders {
    /// The headers as `(name, value)` pairs, in the order they were signed.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            Some(("Host", self.host.as_str())),
            Some(("Date", self.date.as_str())),
            self.digest.as_deref().map(|d| ("Digest", d)),
            Some(("Signature", self.signature.as_str())),
        ]
        .into_iter()
        .flatten()
    }
}

/// Signs a POST of `body` to `url` (`(request-target) host date digest`), dated now.
pub fn sign_post(key: &SigningKey, url: &Url, body: &[u8]) -> Result<SignedHeaders, Error> {
    sign_request(key, "POST", url, Some(body), SystemTime::now())
}

/// Signs a GET of `url` (`(request-target) host date`), dated now.
pub fn sign_get(key: &SigningKey, url: &Url) -> Result<SignedHeaders, Error> {
    sign_request(key, "GET", url, None, SystemTime::now())
}

/// [`sign_post`] on the blocking pool, so RSA work never stalls the async I/O threads.
pub async fn sign_post_async(
    key: &SigningKey,
    url: &Url,
    body: bytes::Bytes,
) -> Result<SignedHeaders, Error> {
    let (key, url) = (key.clone(), url.clone());
    run_blocking(move || sign_post(&key, &url, &body)).await
}

/// [`sign_get`] on the blocking pool.
pub async fn sign_get_async(key: &SigningKey, url: &Url) -> Result<SignedHeaders, Error> {
    let (key, url) = (key.clone(), url.clone());
    run_blocking(move || sign_get(&key, &url)).await
}

/// Signs a request with an explicit date; `body` is `Some` for requests that carry one (a
/// `Digest` is then added and signed). Exposed for replays and tests of the date window.
pub fn sign_request(
    key: &SigningKey,
    method: &str,
    url: &Url,
    body: Option<&[u8]>,
    date: SystemTime,
) -> Result<SignedHeaders, Error> {
    let date = httpdate::fmt_http_date(date);
    let host = canonical_host(url);
    let digest = body.map(digest_header);
    let mut signed_names = vec!["(request-target)", "host", "date"];
    let mut lines = vec![
        format!("(request-target): {}", request_target(method, url)),
        format!("host: {host}"),
        format!("date: {date}"),
    ];
    if let Some(digest) = &digest {
        signed_names.push("digest");
        lines.push(format!("digest: {digest}"));
    }
    let signing_string = lines.join("\n");

    let mut signer = Signer::new(MessageDigest::sha256(), &key.private)
        .map_err(|e| Error::Key(format!("preparing to sign: {e}")))?;
    signer
        .update(signing_string.as_bytes())
        .map_err(|e| Error::Key(format!("signing: {e}")))?;
    let signature = signer
        .sign_to_vec()
        .map_err(|e| Error::Key(format!("signing: {e}")))?;

    // A serialized Url percent-encodes `"`, so the key id cannot break out of its quotes.
    let signature = format!(
        r#"keyId="{}",algorithm="{SIGNATURE_ALGORITHM}",headers="{}",signature="{}""#,
        key.key_id,
        signed_names.join(" "),
        BASE64.encode(signature)
    );
    Ok(SignedHeaders {
        date,
        host,
        digest,
        signature,
    })
}

/// The `Digest` header value of `body`: `SHA-256=` and the base64 of its SHA-256.
pub fn digest_header(body: &[u8]) -> String {
    format!("SHA-256={}", BASE64.encode(Sha256::digest(body)))
}

/// `(request-target)` of a URL: lowercase method, path and query (never the fragment).
fn request_target(method: &str, url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{} {}?{query}", method.to_lowercase(), url.path()),
        None => format!("{} {}", method.to_lowercase(), url.path()),
    }
}

/// A signature whose request passed every key-independent check; verify it once the public
/// key of [`PendingSignature::key_id`] is known.
#[derive(Debug, Clone)]
pub struct PendingSignature {
    /// The key the request claims to be signed with (the inbox fetches its owner).
    pub key_id: Url,
    signature: Vec<u8>,
    signing_string: String,
}

impl PendingSignature {
    /// Checks the RSA-SHA256 signature with a PEM public key (parsed once, then cached).
    pub fn verify(&self, public_key_pem: &str) -> Result<(), Error> {
        let key = KeyCache::global().public_key(public_key_pem)?;
        if key.id() != Id::RSA {
            return Err(SignatureRejection::UnsupportedKey.into());
        }
        if key.bits() < MIN_RSA_BITS {
            return Err(SignatureRejection::WeakKey(key.bits()).into());
        }
        let mut verifier = Verifier::new(MessageDigest::sha256(), &key)
            .map_err(|e| Error::Key(format!("preparing to verify: {e}")))?;
        // openssl reports a malformed signature as an error stack rather than `false`;
        // either way the signature is not valid for this key.
        let valid = verifier
            .update(self.signing_string.as_bytes())
            .and_then(|()| verifier.verify(&self.signature))
            .unwrap_or(false);
        if valid {
            Ok(())
        } else {
            Err(SignatureRejection::BadSignature.into())
        }
    }

    /// [`PendingSignature::verify`] on the blocking pool.
    pub async fn verify_async(&self, public_key_pem: &str) -> Result<(), Error> {
        let (pending, pem) = (self.clone(), public_key_pem.to_owned());
        run_blocking(move || pending.verify(&pem)).await
    }

    /// The string that was signed, for debugging failed verifications.
    pub fn signing_string(&self) -> &str {
        &self.signing_string
    }
}

/// Runs every check of an inbound signed request that needs no key: a parsable signature
/// (also as `Authorization: Signature …`) with algorithm absent, `rsa-sha256` or `hs2019`;
/// `(request-target)`, `host`, `date` (and `digest` for requests with a body) signed;
/// `Host` one of `expected_hosts` (e.g. `bridge.example` or `localhost:8080`); `Date`
/// within ±`window` of `now`; and every SHA-256 `Digest` equal to that of `body`.
///
/// `path_and_query` is the request target as received (`/inbox?x=1`); `headers` are all
/// request headers, repeated names allowed.
pub fn begin_verify<'a, H>(
    method: &str,
    path_and_query: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    expected_hosts: &[H],
    now: SystemTime,
    window: Duration,
) -> Result<PendingSignature, Error>
where
    H: AsRef<str>,
{
    check_request(
        method,
        path_and_query,
        headers,
        body,
        expected_hosts,
        now,
        window,
    )
    .map_err(Error::Signature)
}

fn check_request<'a, H: AsRef<str>>(
    method: &str,
    path_and_query: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    expected_hosts: &[H],
    now: SystemTime,
    window: Duration,
) -> Result<PendingSignature, SignatureRejection> {
    let headers = collect_headers(headers);
    let params = parse_signature_params(find_signature(&headers)?)?;

    if let Some(algorithm) = &params.algorithm
        && !["rsa-sha256", "hs2019"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(algorithm))
    {
        return Err(SignatureRejection::UnsupportedAlgorithm(algorithm.clone()));
    }
    let key_id = Url::parse(&params.key_id)
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.has_host())
        .ok_or_else(|| SignatureRejection::Unparsable("keyId is not an http(s) URL".into()))?;
    let signature = BASE64
        .decode(params.signature.as_bytes())
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= MAX_SIGNATURE_BYTES)
        .ok_or_else(|| SignatureRejection::Unparsable("signature is not base64".into()))?;

    // Per draft-cavage, an absent list means `(created)`, which is not enough for us.
    let signed: Vec<String> = params
        .headers
        .as_deref()
        .unwrap_or("(created)")
        .split_ascii_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let carries_body = method.eq_ignore_ascii_case("POST") || !body.is_empty();
    let mut required = vec!["(request-target)", "host", "date"];
    if carries_body {
        required.push("digest");
    }
    if let Some(missing) = required.iter().find(|r| !signed.iter().any(|s| s == *r)) {
        return Err(SignatureRejection::MissingSignedHeader(
            (*missing).to_owned(),
        ));
    }

    let header = |name: &str| {
        headers
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| SignatureRejection::AbsentHeader(name.to_owned()))
    };
    check_host(header("host")?, expected_hosts)?;
    check_date(header("date")?, now, window)?;
    check_timestamps(&params.created, &params.expires, now, window)?;
    if carries_body || signed.iter().any(|s| s == "digest") {
        check_digest(headers.get("digest").map(String::as_str), body)?;
    }

    let mut lines = Vec::with_capacity(signed.len());
    for name in &signed {
        let value = match name.as_str() {
            "(request-target)" => format!("{} {path_and_query}", method.to_ascii_lowercase()),
            "(created)" => params
                .created
                .clone()
                .ok_or_else(|| SignatureRejection::AbsentHeader(name.clone()))?,
            "(expires)" => params
                .expires
                .clone()
                .ok_or_else(|| SignatureRejection::AbsentHeader(name.clone()))?,
            other => header(other)?.to_owned(),
        };
        lines.push(format!("{name}: {value}"));
    }
    Ok(PendingSignature {
        key_id,
        signature,
        signing_string: lines.join("\n"),
    })
}

/// Lowercases names, trims values and joins repeated headers with `, ` (draft-cavage §2.3).
fn collect_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = value.trim();
        map.entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    map
}

fn find_signature(headers: &BTreeMap<String, String>) -> Result<&str, SignatureRejection> {
    if let Some(value) = headers.get("signature") {
        return Ok(value);
    }
    headers
        .get("authorization")
        .and_then(|value| {
            let (scheme, rest) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("Signature").then_some(rest)
        })
        .ok_or(SignatureRejection::MissingSignature)
}

fn check_host<H: AsRef<str>>(host: &str, expected: &[H]) -> Result<(), SignatureRejection> {
    let received = normalize_host(host);
    let matches = expected.iter().any(|e| {
        let e = normalize_host(e.as_ref());
        // A default port written out still names the same server.
        e == received
            || received
                .strip_suffix(":443")
                .or_else(|| received.strip_suffix(":80"))
                .is_some_and(|r| r == e)
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureRejection::WrongHost(host.to_owned()))
    }
}

/// Lowercase, without trailing dots on the name (`Example.COM.:8080` → `example.com:8080`).
/// Every trailing dot goes, not just one: the signer's [`canonical_host`] already drops one,
/// so `a.example..` must compare equal to `a.example.`.
fn normalize_host(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            (name, Some(port))
        }
        _ => (host.as_str(), None),
    };
    let name = name.trim_end_matches('.');
    match port {
        Some(port) => format!("{name}:{port}"),
        None => name.to_owned(),
    }
}

fn check_date(date: &str, now: SystemTime, window: Duration) -> Result<(), SignatureRejection> {
    let parsed = httpdate::parse_http_date(date)
        .map_err(|_| SignatureRejection::UnparsableDate(date.to_owned()))?;
    check_skew(parsed, now, window)
}

/// `created`/`expires` parameters, when a signer sends them, as Unix seconds.
fn check_timestamps(
    created: &Option<String>,
    expires: &Option<String>,
    now: SystemTime,
    window: Duration,
) -> Result<(), SignatureRejection> {
    if let Some(created) = created {
        let created = unix_seconds(created)?;
        // Only the future side: `created` of a long-expiring signature may be old.
        if now.checked_add(window).is_some_and(|limit| created > limit) {
            return Err(out_of_window(created, now, window));
        }
    }
    if let Some(expires) = expires {
        let expires = unix_seconds(expires)?;
        if expires.checked_add(window).is_some_and(|limit| limit < now) {
            return Err(out_of_window(expires, now, window));
        }
    }
    Ok(())
}

fn unix_seconds(value: &str) -> Result<SystemTime, SignatureRejection> {
    // Bounded so that adding it to the epoch cannot overflow (year ~2^40 is far enough).
    value
        .parse::<u64>()
        .ok()
        .filter(|s| *s < 1 << 40)
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        .ok_or_else(|| SignatureRejection::UnparsableDate(value.to_owned()))
}

fn check_skew(
    date: SystemTime,
    now: SystemTime,
    window: Duration,
) -> Result<(), SignatureRejection> {
    let skew = match date.duration_since(now) {
        Ok(ahead) => ahead,
        Err(behind) => behind.duration(),
    };
    if skew <= window {
        Ok(())
    } else {
        Err(out_of_window(date, now, window))
    }
}

fn out_of_window(date: SystemTime, now: SystemTime, window: Duration) -> SignatureRejection {
    let skew_secs = match date.duration_since(now) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
        Err(behind) => -i64::try_from(behind.duration().as_secs()).unwrap_or(i64::MAX),
    };
    SignatureRejection::DateOutOfWindow {
        skew_secs,
        window_secs: window.as_secs(),
    }
}

/// Every SHA-256 value of a (possibly multi-valued) `Digest` must match; at least one is
/// required. Other algorithms are ignored, as Mastodon does.
fn check_digest(header: Option<&str>, body: &[u8]) -> Result<(), SignatureRejection> {
    let expected = Sha256::digest(body);
    let mut found = false;
    for entry in header.unwrap_or_default().split(',') {
        let Some((algorithm, value)) = entry.trim().split_once('=') else {
            continue;
        };
        if !algorithm.trim().eq_ignore_ascii_case("SHA-256") {
            continue;
        }
        found = true;
        let decoded = BASE64.decode(value.trim().as_bytes());
        if decoded.as_deref() != Ok(expected.as_slice()) {
            return Err(SignatureRejection::DigestMismatch);
        }
    }
    if found {
        Ok(())
    } else {
        Err(SignatureRejection::MissingDigest)
    }
}

async fn run_blocking<T, F>(work: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Key(format!("signature task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{federation::urls::Urls, settings::FederationSettings};

    /// Found by the signature_header fuzz target: with `base_url = "https://bridge.example.."`
    /// our signer wrote `Host: bridge.example.` and our own inbox refused it.
    #[test]
    fn the_host_we_sign_is_the_host_we_expect() {
        for base_url in [
            "https://bridge.example",
            "https://Bridge.Example.:8443",
            "https://bridge.example..",
            "https://..",
            "https://[::1]:8443",
        ] {
            let urls = Urls::new(&FederationSettings {
                base_url: base_url.into(),
                domain: "bridge.example".into(),
                allow_private_addresses: false,
                signature_window_secs: 3600,
            })
            .expect("a valid base URL");
            let signed = canonical_host(&urls.shared_inbox());
            assert_eq!(
                check_host(&signed, &[urls.base_authority()]),
                Ok(()),
                "{base_url}"
            );
        }
    }
}
