//! ActivityPub: the URL scheme, documents, content rendering, signatures and remote access.

pub mod content;
pub mod notes;
pub mod outbound;
pub mod protocol;
pub mod urls;
