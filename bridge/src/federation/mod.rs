//! ActivityPub: the URL scheme, documents and content rendering; keys, HTTP signatures and
//! the SSRF-safe client; and turning changes into outbound activities.

pub mod address_policy;
pub mod block_activity;
pub mod client;
pub mod content;
pub mod fetch;
pub mod flag_activity;
pub mod http_signatures;
pub mod keys;
pub mod media_type;
pub mod notes;
pub mod outbound;
pub mod protocol;
pub mod remote_failure;
pub mod resolver;
pub mod retry_after;
pub mod signature_header;
pub mod signature_rejection;
pub mod urls;

pub use address_policy::{AddressPolicy, canonical_host, is_public_ip, validate_remote_url};
pub use client::{ClientConfig, FederationClient, Fetched, PostOutcome, ensure_id_matches};
pub use http_signatures::{
    PendingSignature, SignedHeaders, begin_verify, sign_get, sign_get_async, sign_post,
    sign_post_async,
};
pub use keys::{KeyCache, KeyPair, SigningKey, generate_rsa_keypair};
pub use remote_failure::RemoteFailure;
pub use signature_rejection::SignatureRejection;
