//! Platform → bridge: what happened on the platform.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use super::{
    ids::{PostId, ReportId, RepostId, UserId},
    limits,
    validate::{self, HANDLE_PATTERN, Validate},
};

/// A user's public profile and the facts that decide whether they may share
/// (`user.created`, `user.updated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserProfile {
    /// The user.
    pub user_id: UserId,
    /// The platform username; becomes the fediverse handle's name part.
    #[schemars(length(min = 1, max = limits::USERNAME))]
    pub username: String,
    /// Name shown beside the handle.
    #[schemars(length(max = limits::DISPLAY_NAME))]
    pub display_name: String,
    /// Biography, plain text.
    #[schemars(length(max = limits::BIO))]
    pub bio: String,
    /// Profile picture.
    #[schemars(length(max = limits::URL))]
    pub avatar_url: Option<Url>,
    /// Banner image.
    #[schemars(length(max = limits::URL))]
    pub header_url: Option<Url>,
    /// The profile page on the platform.
    #[schemars(length(max = limits::URL))]
    pub profile_url: Url,
    /// Name/value pairs shown on the profile.
    #[schemars(length(max = limits::PROFILE_FIELDS))]
    pub fields: Vec<ProfileField>,
    /// The user's main language, BCP 47.
    #[schemars(length(max = limits::LANGUAGE))]
    pub language: Option<String>,
    /// Eligibility: the profile is public on the platform.
    pub public_profile: bool,
    /// Eligibility: the user is an adult.
    pub adult: bool,
    /// Eligibility: the account is suspended.
    pub suspended: bool,
    /// When the account was created on the platform.
    pub account_created_at: Option<DateTime<Utc>>,
}

impl Validate for UserProfile {
    fn validate(&self, at: &str) -> Result<(), String> {
        validate::required_text(at, "username", &self.username, limits::USERNAME)?;
        validate::text(at, "display_name", &self.display_name, limits::DISPLAY_NAME)?;
        validate::text(at, "bio", &self.bio, limits::BIO)?;
        validate::optional_url(at, "avatar_url", self.avatar_url.as_ref())?;
        validate::optional_url(at, "header_url", self.header_url.as_ref())?;
        validate::url(at, "profile_url", &self.profile_url)?;
        validate::list(
            at,
            "fields",
            &self.fields,
            limits::PROFILE_FIELDS,
            |at, f| f.validate(at),
        )?;
        validate::optional_text(at, "language", self.language.as_ref(), limits::LANGUAGE)
    }
}

/// One name/value pair on a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileField {
    /// Label.
    #[schemars(length(max = limits::FIELD_NAME))]
    pub name: String,
    /// Value, plain text.
    #[schemars(length(max = limits::FIELD_VALUE))]
    pub value: String,
}

impl Validate for ProfileField {
    fn validate(&self, at: &str) -> Result<(), String> {
        validate::text(at, "name", &self.name, limits::FIELD_NAME)?;
        validate::text(at, "value", &self.value, limits::FIELD_VALUE)
    }
}

/// Names one user (`user.deleted`, `sharing.turned_off`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    /// The user.
    pub user_id: UserId,
}

impl Validate for UserRef {
    fn validate(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The user turned sharing on in the platform's own UI (`sharing.turned_on`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharingTurnedOn {
    /// The user.
    pub user_id: UserId,
    /// Whether the user saw and accepted the consent explanation.
    pub consent: bool,
}

impl Validate for SharingTurnedOn {
    fn validate(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Who may see a post on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Anyone, listed in public timelines.
    Public,
    /// Anyone with the link, not listed.
    Unlisted,
    /// The author's followers.
    Followers,
    /// A chosen audience.
    Private,
    /// Only the people mentioned.
    Direct,
}

/// Who may reply to or quote a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InteractionPolicy {
    /// Anyone.
    Everyone,
    /// The author's followers.
    Followers,
    /// The people mentioned in the post.
    Mentioned,
    /// Nobody.
    Nobody,
}

/// A post that a post replies to or quotes: one of the platform's posts, or a remote object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum PostRef {
    /// A post on the platform.
    Platform {
        /// The post.
        post_id: PostId,
    },
    /// A fediverse object, by its id.
    Remote {
        /// The object's ActivityPub id.
        #[schemars(length(max = limits::URL))]
        url: Url,
    },
}

impl Validate for PostRef {
    fn validate(&self, at: &str) -> Result<(), String> {
        match self {
            Self::Platform { .. } => Ok(()),
            Self::Remote { url } => validate::url(at, "url", url),
        }
    }
}

/// One attached image, video or audio file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// Where the file can be fetched.
    #[schemars(length(max = limits::URL))]
    pub url: Url,
    /// MIME type, e.g. `image/jpeg`.
    #[schemars(length(min = 1, max = limits::MEDIA_TYPE))]
    pub media_type: String,
    /// Description for people who cannot see it.
    #[schemars(length(max = limits::ALT_TEXT))]
    pub alt_text: Option<String>,
    /// Pixels.
    pub width: Option<u32>,
    /// Pixels.
    pub height: Option<u32>,
    /// File size.
    pub size_bytes: Option<u64>,
    /// Placeholder shown while loading.
    #[schemars(length(max = limits::BLURHASH))]
    pub blurhash: Option<String>,
}

impl Validate for Media {
    fn validate(&self, at: &str) -> Result<(), String> {
        validate::url(at, "url", &self.url)?;
        validate::required_text(at, "media_type", &self.media_type, limits::MEDIA_TYPE)?;
        validate::optional_text(at, "alt_text", self.alt_text.as_ref(), limits::ALT_TEXT)?;
        validate::optional_text(at, "blurhash", self.blurhash.as_ref(), limits::BLURHASH)
    }
}

/// Someone a post mentions: a platform user, or a fediverse account by handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum Mention {
    /// A user of the platform.
    User {
        /// The user.
        user_id: UserId,
        /// Their profile page.
        #[schemars(length(max = limits::URL))]
        url: Option<Url>,
    },
    /// A fediverse account.
    Remote {
        /// `@name@server`.
        #[schemars(length(max = limits::HANDLE), regex(pattern = HANDLE_PATTERN))]
        handle: String,
        /// Their profile page or actor id.
        #[schemars(length(max = limits::URL))]
        url: Option<Url>,
    },
}

impl Validate for Mention {
    fn validate(&self, at: &str) -> Result<(), String> {
        match self {
            Self::User { url, .. } => validate::optional_url(at, "url", url.as_ref()),
            Self::Remote { handle, url } => {
                validate::handle(at, "handle", handle)?;
                validate::optional_url(at, "url", url.as_ref())
            }
        }
    }
}

/// A post as the platform stores it (`post.created`, `post.updated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Post {
    /// The post.
    pub post_id: PostId,
    /// Its author.
    pub author_id: UserId,
    /// The text, plain, without the platform's markup.
    #[schemars(length(max = limits::TEXT))]
    pub text: String,
    /// Who may see it on the platform; only `public` posts ever federate.
    pub visibility: Visibility,
    /// Marked for adults only; never federates.
    pub age_restricted: bool,
    /// The post this one answers.
    pub reply_to: Option<PostRef>,
    /// The post this one quotes.
    pub quote_of: Option<PostRef>,
    /// Attachments, in display order.
    #[schemars(length(max = limits::MEDIA))]
    pub media: Vec<Media>,
    /// People mentioned.
    #[schemars(length(max = limits::MENTIONS))]
    pub mentions: Vec<Mention>,
    /// Hashtags, without `#`.
    #[schemars(length(max = limits::HASHTAGS), inner(length(min = 1, max = limits::HASHTAG)))]
    pub hashtags: Vec<String>,
    /// Warning shown before the content.
    #[schemars(length(max = limits::CONTENT_WARNING))]
    pub content_warning: Option<String>,
    /// Media hidden until clicked.
    pub sensitive: bool,
    /// BCP 47.
    #[schemars(length(max = limits::LANGUAGE))]
    pub language: Option<String>,
    /// Who may reply.
    pub reply_policy: InteractionPolicy,
    /// Who may quote.
    pub quote_policy: InteractionPolicy,
    /// Posted by an app through the platform's API rather than by the person.
    pub created_via_api: bool,
    /// When it was posted.
    pub created_at: DateTime<Utc>,
    /// When it was last edited.
    pub edited_at: Option<DateTime<Utc>>,
}

impl Validate for Post {
    fn validate(&self, at: &str) -> Result<(), String> {
        validate::text(at, "text", &self.text, limits::TEXT)?;
        if let Some(target) = &self.reply_to {
            target.validate(&format!("{at}.reply_to"))?;
        }
        if let Some(target) = &self.quote_of {
            target.validate(&format!("{at}.quote_of"))?;
        }
        validate::list(at, "media", &self.media, limits::MEDIA, |at, m| {
            m.validate(at)
        })?;
        validate::list(at, "mentions", &self.mentions, limits::MENTIONS, |at, m| {
            m.validate(at)
        })?;
        validate::list(
            at,
            "hashtags",
            &self.hashtags,
            limits::HASHTAGS,
            |at, tag| validate::required_text(at, "", tag, limits::HASHTAG),
        )?;
        validate::optional_text(
            at,
            "content_warning",
            self.content_warning.as_ref(),
            limits::CONTENT_WARNING,
        )?;
        validate::optional_text(at, "language", self.language.as_ref(), limits::LANGUAGE)
    }
}

/// A post was deleted (`post.deleted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostDeleted {
    /// The post.
    pub post_id: PostId,
    /// Its author.
    pub author_id: UserId,
}

impl Validate for PostDeleted {
    fn validate(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// A user reposted a post (`repost.created`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepostCreated {
    /// The repost itself.
    pub repost_id: RepostId,
    /// Who reposted.
    pub user_id: UserId,
    /// The post reposted.
    pub post_id: PostId,
}

impl Validate for RepostCreated {
    fn validate(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// A repost was undone (`repost.deleted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepostDeleted {
    /// The repost.
    pub repost_id: RepostId,
    /// Who had reposted.
    pub user_id: UserId,
}

impl Validate for RepostDeleted {
    fn validate(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// A user reported a fediverse account, and perhaps some of its posts, to the platform's
/// moderators (`report.created`).
///
/// With `forward`, the bridge sends the report to the account's own server as an
/// ActivityPub `Flag` from the bridge's instance actor, so that server's moderators see it
/// too, as Mastodon does when a user ticks "forward to the remote server". The reporter is
/// never named there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportCreated {
    /// The report; a second event with the same report id is ignored.
    pub report_id: ReportId,
    /// Who reported; kept by the bridge, never sent to another server.
    pub reporter_id: UserId,
    /// The reported account's ActivityPub id (actor URL), as the platform received it in
    /// `follower.added`, `reply.received` and the like.
    #[schemars(length(max = limits::URL))]
    pub target: Url,
    /// Posts of that account the report is about (ActivityPub ids, on its server).
    #[schemars(length(max = limits::REPORT_POSTS), inner(length(max = limits::URL)))]
    pub object_urls: Vec<Url>,
    /// The reporter's explanation, plain text; sent with a forwarded report.
    #[schemars(length(max = limits::COMMENT))]
    pub comment: String,
    /// Send the report to the account's server.
    pub forward: bool,
}

impl Validate for ReportCreated {
    fn validate(&self, at: &str) -> Result<(), String> {
        validate::url(at, "target", &self.target)?;
        validate::list(
            at,
            "object_urls",
            &self.object_urls,
            limits::REPORT_POSTS,
            |at, u| validate::url(at, "", u),
        )?;
        validate::text(at, "comment", &self.comment, limits::COMMENT)
    }
}
