//! Why an inbound HTTP signature was refused.

/// A reason to refuse a signed request, carried by [`crate::Error::Signature`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRejection {
    /// Neither a `Signature` header nor an `Authorization: Signature …` header.
    #[error("the request carries no Signature header")]
    MissingSignature,
    /// The signature header is not a well-formed parameter list.
    #[error("the Signature header cannot be parsed: {0}")]
    Unparsable(String),
    /// An `algorithm` other than `rsa-sha256` or `hs2019`.
    #[error("signature algorithm `{0}` is not supported (rsa-sha256 or hs2019 only)")]
    UnsupportedAlgorithm(String),
    /// The signed header list lacks a header we require to be signed.
    #[error("the signature does not cover `{0}`")]
    MissingSignedHeader(String),
    /// The signature covers a header that the request does not have.
    #[error("the signature covers `{0}`, which the request does not carry")]
    AbsentHeader(String),
    /// The `Host` header names another server.
    #[error("Host `{0}` is not this server")]
    WrongHost(String),
    /// The `Date` header (or a `created`/`expires` parameter) cannot be parsed.
    #[error("the Date cannot be parsed: {0}")]
    UnparsableDate(String),
    /// The request's date is too far from our clock (or its `expires` has passed).
    #[error(
        "the request is dated {skew_secs} s from our clock, outside the ±{window_secs} s window"
    )]
    DateOutOfWindow {
        /// Signed seconds from our clock to the request's date (negative: in the past).
        skew_secs: i64,
        /// The accepted window in seconds.
        window_secs: u64,
    },
    /// A body-carrying request without a SHA-256 `Digest`.
    #[error("the request has no SHA-256 Digest header")]
    MissingDigest,
    /// The `Digest` does not match the body received.
    #[error("the Digest header does not match the body")]
    DigestMismatch,
    /// The RSA signature does not verify with the key.
    #[error("the signature does not verify with the key of its keyId")]
    BadSignature,
    /// The key is not an RSA key.
    #[error("the signing key is not an RSA key")]
    UnsupportedKey,
    /// The RSA key is too short to be trusted.
    #[error("the signing key has {0} bits, fewer than the 2048 required")]
    WeakKey(u32),
}

impl SignatureRejection {
    /// The HTTP status an inbox answers with: 400 for a malformed request, 401 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Unparsable(_) | Self::UnparsableDate(_) => 400,
            _ => 401,
        }
    }
}
