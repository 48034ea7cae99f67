//! Why an inbound activity was refused, carried by [`crate::Error::Inbox`].

use super::rate_limit::RateLimited;

/// A reason to refuse an inbox POST before any effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboxRejection {
    /// The body is compressed; decompressed sizes cannot be bounded up front.
    #[error("Content-Encoding `{0}` is not accepted")]
    Compressed(String),
    /// Not an ActivityStreams JSON media type.
    #[error("Content-Type `{0}` is not an ActivityStreams JSON type")]
    UnsupportedMediaType(String),
    /// The body exceeds `server.max_body_bytes`.
    #[error("the body exceeds {0} bytes")]
    TooLarge(usize),
    /// Not the activity JSON expected.
    #[error("malformed activity: {0}")]
    Malformed(String),
    /// An id on our own domain arrived from outside.
    #[error("`{0}` is on this server's domain and cannot come from outside")]
    LocalId(String),
    /// The key that signed the request does not belong to the activity's actor.
    #[error("the request is signed by `{key_owner}`, not by the activity's actor `{actor}`")]
    KeyOwnerMismatch {
        /// Whoever the key belongs to (or the key id, when it was not fetched).
        key_owner: String,
        /// The activity's `actor`.
        actor: String,
    },
    /// The signing key could not be obtained or confirmed.
    #[error("the signing key cannot be obtained: {0}")]
    KeyUnavailable(String),
    /// The actor's server is blocked.
    #[error("the server `{0}` is blocked")]
    Blocked(String),
    /// A per-user inbox of a user who has no actor.
    #[error("no such inbox")]
    NoSuchInbox,
    /// The remote host or actor is over its budget.
    #[error("too many activities from this {}; retry in {} s", .0.scope.as_str(), .0.retry_after_secs())]
    RateLimited(RateLimited),
    /// The body did not arrive within `inbox.body_timeout_secs`.
    #[error("the body did not arrive within {0} s")]
    BodyTimeout(u64),
}

impl InboxRejection {
    /// The HTTP status the inbox answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Compressed(_) | Self::UnsupportedMediaType(_) => 415,
            Self::TooLarge(_) => 413,
            Self::Malformed(_) | Self::LocalId(_) => 400,
            Self::KeyOwnerMismatch { .. } | Self::KeyUnavailable(_) => 401,
            Self::Blocked(_) => 403,
            Self::NoSuchInbox => 404,
            Self::RateLimited(_) => 429,
            Self::BodyTimeout(_) => 408,
        }
    }
}
