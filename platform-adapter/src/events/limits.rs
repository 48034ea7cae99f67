//! Upper bounds on field lengths (in Unicode characters) and list sizes.
//!
//! The same constants feed the JSON Schema (`maxLength`, `maxItems`) and the Rust checks in
//! [`super::validate`], so the two cannot drift apart.

/// Post text and received plain text.
pub const TEXT: usize = 50_000;
/// Received sanitized HTML (markup makes it longer than its text).
pub const HTML: usize = 100_000;
/// A platform username.
pub const USERNAME: usize = 128;
/// A display name.
pub const DISPLAY_NAME: usize = 200;
/// A profile biography.
pub const BIO: usize = 10_000;
/// Profile fields per user.
pub const PROFILE_FIELDS: usize = 16;
/// A profile field's name.
pub const FIELD_NAME: usize = 255;
/// A profile field's value.
pub const FIELD_VALUE: usize = 2_048;
/// Any URL.
pub const URL: usize = 2_048;
/// A BCP 47 language tag.
pub const LANGUAGE: usize = 35;
/// Media attachments per post.
pub const MEDIA: usize = 20;
/// A MIME type.
pub const MEDIA_TYPE: usize = 255;
/// A media description.
pub const ALT_TEXT: usize = 5_000;
/// A blurhash string.
pub const BLURHASH: usize = 128;
/// Mentions per post.
pub const MENTIONS: usize = 100;
/// Hashtags per post.
pub const HASHTAGS: usize = 100;
/// One hashtag, without `#`.
pub const HASHTAG: usize = 100;
/// A content warning.
pub const CONTENT_WARNING: usize = 1_000;
/// A fediverse handle `@name@server`.
pub const HANDLE: usize = 512;
/// A server's host name.
pub const SERVER: usize = 253;
/// A human-readable reason.
pub const REASON: usize = 1_000;
/// Failing eligibility gates listed in a status change.
pub const GATES: usize = 32;
/// One gate's name.
pub const GATE: usize = 64;
/// Posts named in one report.
pub const REPORT_POSTS: usize = 100;
/// A report's comment.
pub const COMMENT: usize = 5_000;
