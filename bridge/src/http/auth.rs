//! Who may use the toggle API and the settings page.
//!
//! The platform backend presents a bearer token. A user reaches the settings page through a
//! short-lived link the platform asks for (`/settings?u=…&exp=…&sig=…`), which is exchanged
//! for a session cookie; forms carry a CSRF token derived from that session. Links, sessions
//! and CSRF tokens are HMAC-SHA256 over the user id and an expiry, each with its own purpose
//! tag so that one can never stand in for another.

use actix_web::{
    FromRequest, HttpRequest, HttpResponse,
    dev::Payload,
    error::InternalError,
    http::{StatusCode, header},
    web,
};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use super::AppState;
use crate::federation::urls::Urls;

type HmacSha256 = Hmac<Sha256>;

/// Longest validity of a settings link (seconds).
pub const LINK_TTL_SECS: i64 = 15 * 60;

/// Validity of a settings session (seconds): long enough to finish what one came to do.
pub const SESSION_TTL_SECS: i64 = 2 * 60 * 60;

/// Name of the settings session cookie.
pub const SESSION_COOKIE: &str = "fedibridge_settings";

/// What a signature vouches for.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Link,
    Session,
    Csrf,
}

impl Purpose {
    fn tag(self) -> &'static [u8] {
        match self {
            Self::Link => b"fedibridge settings link v1",
            Self::Session => b"fedibridge settings session v1",
            Self::Csrf => b"fedibridge settings csrf v1",
        }
    }
}

fn mac(secret: &str, purpose: Purpose, parts: &[&str]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(purpose.tag());
    // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    Some(mac)
}

fn sign(secret: &str, purpose: Purpose, parts: &[&str]) -> String {
    mac(secret, purpose, parts)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

fn verify(secret: &str, purpose: Purpose, parts: &[&str], signature_hex: &str) -> bool {
    let Ok(signature) = hex::decode(signature_hex) else {
        return false;
    };
    // verify_slice compares in constant time.
    mac(secret, purpose, parts).is_some_and(|m| m.verify_slice(&signature).is_ok())
}

/// Whether `presented` is the configured token, compared in constant time.
pub fn bearer_matches(configured: &str, presented: &str) -> bool {
    // Hashing first makes the comparison independent of both lengths too.
    let configured = Sha256::digest(configured.as_bytes());
    let presented = Sha256::digest(presented.as_bytes());
    configured.ct_eq(&presented).into()
}

/// Why a settings link or session was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRejection {
    /// The settings page is not configured (no secret).
    Disabled,
    /// The link is past its expiry.
    Expired,
    /// The signature does not match, or the link claims a longer life than links get.
    Forged,
}

/// A verified grant for one user until `expires_at` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The platform's user id.
    pub user_id: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Signature of a settings link for `user_id` valid until `expires_at` (unix seconds).
pub fn sign_link(secret: &str, user_id: &str, expires_at: i64) -> String {
    sign(secret, Purpose::Link, &[user_id, &expires_at.to_string()])
}

/// Checks a settings link's parameters at `now` (unix seconds).
pub fn verify_link(
    secret: &str,
    user_id: &str,
    expires_at: i64,
    signature: &str,
    now: i64,
) -> Result<Grant, LinkRejection> {
    if secret.is_empty() {
        return Err(LinkRejection::Disabled);
    }
    if !verify(
        secret,
        Purpose::Link,
        &[user_id, &expires_at.to_string()],
        signature,
    ) || expires_at > now + LINK_TTL_SECS
    {
        return Err(LinkRejection::Forged);
    }
    if expires_at <= now {
        return Err(LinkRejection::Expired);
    }
    Ok(Grant {
        user_id: user_id.to_owned(),
        expires_at,
    })
}

/// A signed settings link for `user_id`, valid for [`LINK_TTL_SECS`] from `now` (unix
/// seconds); `None` when the settings page is disabled.
pub fn settings_link(urls: &Urls, secret: &str, user_id: &str, now: i64) -> Option<(Url, i64)> {
    if secret.is_empty() {
        return None;
    }
    let expires_at = now + LINK_TTL_SECS;
    let mut url = settings_url(urls);
    url.query_pairs_mut()
        .append_pair("u", user_id)
        .append_pair("exp", &expires_at.to_string())
        .append_pair("sig", &sign_link(secret, user_id, expires_at));
    Some((url, expires_at))
}

/// The public URL of the settings page.
pub fn settings_url(urls: &Urls) -> Url {
    let mut url = urls.base().clone();
    let path = format!("{}/settings", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url
}

/// The session cookie value for `grant`: `EXPIRY.SIGNATURE.USER_ID` (the user id last, as
/// it may itself contain dots).
pub fn session_value(secret: &str, grant: &Grant) -> String {
    let expires = grant.expires_at.to_string();
    format!(
        "{expires}.{}.{}",
        sign(secret, Purpose::Session, &[&grant.user_id, &expires]),
        grant.user_id
    )
}

/// Reads and checks a session cookie value at `now` (unix seconds).
pub fn verify_session(secret: &str, value: &str, now: i64) -> Option<Grant> {
    if secret.is_empty() {
        return None;
    }
    let mut parts = value.splitn(3, '.');
    let expires = parts.next()?;
    let signature = parts.next()?;
    let user_id = parts.next()?;
    let expires_at: i64 = expires.parse().ok()?;
    if expires_at <= now
        || expires_at > now + SESSION_TTL_SECS
        || !verify(secret, Purpose::Session, &[user_id, expires], signature)
    {
        return None;
    }
    Some(Grant {
        user_id: user_id.to_owned(),
        expires_at,
    })
}

/// The CSRF token forms of `session` must carry.
pub fn csrf_token(secret: &str, session: &str) -> String {
    sign(secret, Purpose::Csrf, &[session])
}

/// Whether `token` is the CSRF token of `session`.
pub fn verify_csrf(secret: &str, session: &str, token: &str) -> bool {
    !secret.is_empty() && verify(secret, Purpose::Csrf, &[session], token)
}

/// Proof that a request carries the platform's bearer token; extracting it answers 503
/// when no token is configured and 401 when the token is missing or wrong.
#[derive(Debug, Clone, Copy)]
pub struct PlatformAuth;

fn refusal(status: StatusCode, error: &str, message: &str) -> actix_web::Error {
    let mut response = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((
            header::WWW_AUTHENTICATE,
            r#"Bearer realm="fedibridge", error="invalid_token""#,
        ));
    }
    let response = response.json(json!({ "error": error, "message": message }));
    InternalError::from_response(error.to_owned(), response).into()
}

impl FromRequest for PlatformAuth {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(check_bearer(req))
    }
}

fn check_bearer(req: &HttpRequest) -> Result<PlatformAuth, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_disabled",
            "API disabled",
        ));
    };
    let configured = state.settings.platform.api_token.as_str();
    if configured.is_empty() {
        return Err(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_disabled",
            "API disabled: platform.api_token is not configured",
        ));
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
        });
    match presented {
        Some(token) if bearer_matches(configured, token) => Ok(PlatformAuth),
        Some(_) => Err(refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not valid",
        )),
        None => Err(refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <platform.api_token>",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret";

    #[test]
    fn links_verify_until_they_expire() {
        let sig = sign_link(SECRET, "u1", 1_000);
        assert!(verify_link(SECRET, "u1", 1_000, &sig, 999).is_ok());
        assert_eq!(
            verify_link(SECRET, "u1", 1_000, &sig, 1_000),
            Err(LinkRejection::Expired)
        );
        assert_eq!(
            verify_link(SECRET, "u2", 1_000, &sig, 999),
            Err(LinkRejection::Forged)
        );
        assert_eq!(
            verify_link("other", "u1", 1_000, &sig, 999),
            Err(LinkRejection::Forged)
        );
        assert_eq!(
            verify_link(SECRET, "u1", 1_001, &sig, 999),
            Err(LinkRejection::Forged)
        );
        assert_eq!(
            verify_link("", "u1", 1_000, &sig, 999),
            Err(LinkRejection::Disabled)
        );
    }

    #[test]
    fn links_cannot_claim_a_long_life() {
        let far = 10_000 + LINK_TTL_SECS + 1;
        let sig = sign_link(SECRET, "u1", far);
        assert_eq!(
            verify_link(SECRET, "u1", far, &sig, 10_000),
            Err(LinkRejection::Forged)
        );
    }

    #[test]
    fn a_link_signature_is_not_a_session() {
        let sig = sign_link(SECRET, "u1", 1_000);
        assert_eq!(verify_session(SECRET, &format!("1000.{sig}.u1"), 999), None);
        let grant = Grant {
            user_id: "a.b".into(),
            expires_at: 1_000,
        };
        let value = session_value(SECRET, &grant);
        assert_eq!(verify_session(SECRET, &value, 999), Some(grant));
        assert_eq!(verify_session(SECRET, &value, 1_000), None);
        assert_eq!(
            verify_session(SECRET, &value.replace("a.b", "a.c"), 999),
            None
        );
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let token = csrf_token(SECRET, "session-a");
        assert!(verify_csrf(SECRET, "session-a", &token));
        assert!(!verify_csrf(SECRET, "session-b", &token));
        assert!(!verify_csrf(SECRET, "session-a", "zz"));
        assert!(!verify_csrf("", "session-a", &token));
    }

    #[test]
    fn bearer_tokens_compare_exactly() {
        assert!(bearer_matches("token", "token"));
        assert!(!bearer_matches("token", "token2"));
        assert!(!bearer_matches("token", ""));
    }
}
