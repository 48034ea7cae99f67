//! An inbox POST with arbitrary target, headers and body, through every step that runs
//! before the database or the network: the pre-body header checks, the body size cap, the
//! `Signature` header, `Host`, `Date` and `Digest` checks, the signing string, and the
//! depth-limited strict parse of the activity.
//!
//! The input is an HTTP/1.1 request as text, so that the seeds in `corpus/inbox_request`
//! are readable requests:
//!
//! ```text
//! POST /users/1/inbox HTTP/1.1
//! Host: bridge.example
//! Digest: {digest}
//! ...
//!
//! {"id": ...}
//! ```
//!
//! `{digest}` in a header value is replaced by the body's real digest (`SHA-256=…`), so
//! that mutated bodies still get past the digest check into the JSON parser. The clock is
//! fixed at [`NOW`], so a seed's `Date` stays within the signature window.
#![no_main]

use std::{
    collections::HashMap,
    str::FromStr as _,
    sync::LazyLock,
    time::{Duration, SystemTime},
};

use actix_web::http::{
    Uri,
    header::{HeaderMap, HeaderName, HeaderValue},
};
use bridge::{
    Error, Settings,
    federation::{http_signatures::digest_header, urls::Urls},
    http::inbox::{check_headers, request_headers},
    inbox::{InboundRequest, InboxTarget, Prechecked, precheck},
};
use libfuzzer_sys::fuzz_target;

/// The fuzzer's clock: Thu, 01 Jan 2026 00:00:00 GMT.
const NOW_UNIX_SECS: u64 = 1_767_225_600;
static NOW: LazyLock<SystemTime> =
    LazyLock::new(|| SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX_SECS));

/// The built-in defaults, served at `https://bridge.example`.
static SETTINGS: LazyLock<Settings> = LazyLock::new(|| {
    let env = HashMap::from([
        (
            "FEDIBRIDGE__FEDERATION__BASE_URL".to_owned(),
            "https://bridge.example".to_owned(),
        ),
        (
            "FEDIBRIDGE__FEDERATION__DOMAIN".to_owned(),
            "bridge.example".to_owned(),
        ),
    ]);
    Settings::load_with_env(None, Some(env)).expect("the default settings are valid")
});
static URLS: LazyLock<Urls> =
    LazyLock::new(|| Urls::new(&SETTINGS.federation).expect("the base URL is valid"));

fuzz_target!(|data: &[u8]| {
    let Some(request) = HttpRequest::read(data) else {
        return;
    };
    let max = SETTINGS.server.max_body_bytes;
    // http/inbox.rs: headers first, then the body, capped while it is read.
    if let Err(rejection) = check_headers(&request.headers, max) {
        assert_client_error(rejection.http_status(), &rejection.to_string());
        return;
    }
    if request.body.len() > max {
        return;
    }
    let inbound = InboundRequest {
        path_and_query: request.path_and_query,
        headers: request_headers(&request.headers),
        body: request.body.into(),
        target: request.target,
    };
    let window = Duration::from_secs(SETTINGS.federation.signature_window_secs);
    match precheck(&inbound, &URLS, *NOW, window) {
        Ok(prechecked) => check_accepted(&prechecked),
        Err(Error::Signature(rejection)) => {
            assert_client_error(rejection.http_status(), &rejection.to_string());
        }
        Err(Error::Inbox(rejection)) => {
            assert_client_error(rejection.http_status(), &rejection.to_string());
        }
        // Anything else would be answered 5xx: a pure check must never fail that way.
        Err(other) => panic!("precheck failed with a server error: {other:?}"),
    }
});

/// What actix-web would hand the inbox handler for this request, or `None` when the request
/// would not reach it (no inbox route, or bytes no HTTP parser accepts).
struct HttpRequest {
    path_and_query: String,
    target: InboxTarget,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl HttpRequest {
    fn read(data: &[u8]) -> Option<Self> {
        let (head, body) = split_head(data);
        let head = std::str::from_utf8(head).ok()?;
        let mut lines = head.lines();
        let uri = Uri::from_str(lines.next()?.split(' ').nth(1)?).ok()?;
        let target = inbox_target(uri.path())?;
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
        let digest = digest_header(body);
        let mut headers = HeaderMap::new();
        for line in lines {
            let (name, value) = line.split_once(':')?;
            let value = value.trim().replace("{digest}", &digest);
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(&value).ok()?,
            );
        }
        Some(Self {
            path_and_query,
            target,
            headers,
            body: body.to_vec(),
        })
    }
}

/// The request head and the body, split at the first empty line.
fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    for separator in [&b"\r\n\r\n"[..], b"\n\n"] {
        if let Some(at) = data.windows(separator.len()).position(|w| w == separator) {
            return (&data[..at], &data[at + separator.len()..]);
        }
    }
    (data, &[])
}

/// The two inbox routes.
fn inbox_target(path: &str) -> Option<InboxTarget> {
    if path == "/inbox" {
        return Some(InboxTarget::Shared);
    }
    let uid = path.strip_prefix("/users/")?.strip_suffix("/inbox")?;
    (!uid.is_empty() && !uid.contains('/')).then(|| InboxTarget::User(uid.to_owned()))
}

fn assert_client_error(status: u16, reason: &str) {
    assert!(
        (400..500).contains(&status),
        "refusal answered {status}: {reason}"
    );
}

/// What an accepted request guarantees to the steps after it.
fn check_accepted(prechecked: &Prechecked) {
    let activity = &prechecked.activity;
    for url in [&activity.id, &activity.actor] {
        assert!(matches!(url.scheme(), "http" | "https"), "{url}");
        assert!(!URLS.is_local(url), "{url} is ours");
    }
    assert_eq!(activity.id.origin(), activity.actor.origin());
    let key_id = &prechecked.pending.key_id;
    assert!(matches!(key_id.scheme(), "http" | "https"), "{key_id}");
    let signed: Vec<&str> = prechecked
        .pending
        .signing_string()
        .lines()
        .filter_map(|line| line.split_once(": ").map(|(name, _)| name))
        .collect();
    for required in ["(request-target)", "host", "date", "digest"] {
        assert!(signed.contains(&required), "{required} is not signed");
    }
}
