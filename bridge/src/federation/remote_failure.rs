//! Why a request to a remote server failed, carried by [`crate::Error::Remote`].

/// What went wrong talking to a remote server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteFailure {
    /// The URL or one of its addresses is not allowed (SSRF policy). Never retried.
    #[error("refused by the address policy: {0}")]
    Forbidden(String),
    /// Connecting, DNS, TLS or the connection itself failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The total deadline passed before the response was complete.
    #[error("no complete response within {0} ms")]
    Timeout(u128),
    /// The server answered 404.
    #[error("not found (404)")]
    NotFound,
    /// The server answered 410: the object was deleted for good.
    #[error("gone (410)")]
    Gone,
    /// Another non-success status.
    #[error("status {0}")]
    Status(u16),
    /// The body exceeded the size cap.
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    /// The response's media type is not one we accept for this request.
    #[error("unacceptable content type `{0}`")]
    ContentType(String),
    /// The body is not the JSON document expected.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// More redirects than allowed.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    /// A redirect led back to a URL already visited.
    #[error("redirect loop at {0}")]
    RedirectLoop(String),
    /// A redirect without a usable `Location`.
    #[error("bad redirect: {0}")]
    BadRedirect(String),
    /// The fetched document's `id` is not the URL it was fetched from.
    #[error("document id `{0}` differs from the URL it was fetched from")]
    IdMismatch(String),
}

impl RemoteFailure {
    /// Whether a later attempt may succeed (network trouble, overload, server errors).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) | Self::Timeout(_) => true,
            Self::Status(status) => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}
