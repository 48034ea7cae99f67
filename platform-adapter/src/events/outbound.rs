//! Bridge → platform: what happened on the fediverse to a user's shared presence.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use super::{
    ids::{PostId, UserId},
    limits,
    validate::{self, HANDLE_PATTERN, Validate},
};

/// A fediverse account as the platform should show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteAccount {
    /// The ActivityPub actor id; stable, use it as the account's key.
    #[schemars(length(max = limits::URL))]
    pub actor_id: Url,
    /// `@name@server`.
    #[schemars(length(max = limits::HANDLE), regex(pattern = HANDLE_PATTERN))]
    pub handle: String,
    /// Name shown beside the handle (plain text).
    #[schemars(length(max = limits::DISPLAY_NAME))]
    pub display_name: String,
    /// Profile picture.
    #[schemars(length(max = limits::URL))]
    pub avatar_url: Option<Url>,
    /// The account's page for people.
    #[schemars(length(max = limits::URL))]
    pub profile_url: Option<Url>,
    /// The account's server (host name).
    #[schemars(length(min = 1, max = limits::SERVER))]
    pub server: String,
}

impl Validate for RemoteAccount {
    fn validate(&self, at: &str) -> Result<(), String> {
        validate::url(at, "actor_id", &self.actor_id)?;
        validate::handle(at, "handle", &self.handle)?;
        validate::text(at, "display_name", &self.display_name, limits::DISPLAY_NAME)?;
        validate::optional_url(at, "avatar_url", self.avatar_url.as_ref())?;
        validate::optional_url(at, "profile_url", self.profile_url.as_ref())?;
        validate::required_text(at, "server", &self.server, limits::SERVER)
    }
}

/// A fediverse account followed or unfollowed a user (`follower.added`, `follower.removed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowerChange {
    /// The platform user followed.
    pub user_id: UserId,
    /// Who follows.
    pub follower: RemoteAccount,
    /// The follow waits for the user's approval.
    pub pending: bool,
}

impl Validate for FollowerChange {
    fn validate(&self, at: &str) -> Result<(), String> {
        self.follower.validate(&format!("{at}.follower"))
    }
}

/// A fediverse account liked or boosted a user's post, or took it back
/// (`like.*`, `boost.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reaction {
    /// The post's author.
    pub user_id: UserId,
    /// The post.
    pub post_id: PostId,
    /// Who reacted.
    pub by: RemoteAccount,
}

impl Validate for Reaction {
    fn validate(&self, at: &str) -> Result<(), String> {
        self.by.validate(&format!("{at}.by"))
    }
}

/// A reply, mention or quote written on the fediverse
/// (`reply.received`, `mention.received`, `quote.received`, `reply.updated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteContent {
    /// The platform user replied to, mentioned or quoted.
    pub user_id: UserId,
    /// The platform post replied to or quoted, if any.
    pub post_id: Option<PostId>,
    /// The remote object's ActivityPub id; stable, use it as its key.
    #[schemars(length(max = limits::URL))]
    pub remote_object_id: Url,
    /// The author.
    pub by: RemoteAccount,
    /// The content as HTML, already sanitized by the bridge.
    #[schemars(length(max = limits::HTML))]
    pub content_html: String,
    /// The content as plain text.
    #[schemars(length(max = limits::TEXT))]
    pub content_text: String,
    /// BCP 47.
    #[schemars(length(max = limits::LANGUAGE))]
    pub language: Option<String>,
    /// The object it answers.
    #[schemars(length(max = limits::URL))]
    pub in_reply_to: Option<Url>,
    /// When its author published it.
    pub published_at: DateTime<Utc>,
    /// Its page for people.
    #[schemars(length(max = limits::URL))]
    pub url: Option<Url>,
    /// Media hidden until clicked.
    pub sensitive: bool,
    /// Warning shown before the content.
    #[schemars(length(max = limits::CONTENT_WARNING))]
    pub content_warning: Option<String>,
}

impl Validate for RemoteContent {
    fn validate(&self, at: &str) -> Result<(), String> {
        validate::url(at, "remote_object_id", &self.remote_object_id)?;
        self.by.validate(&format!("{at}.by"))?;
        validate::text(at, "content_html", &self.content_html, limits::HTML)?;
        validate::text(at, "content_text", &self.content_text, limits::TEXT)?;
        validate::optional_text(at, "language", self.language.as_ref(), limits::LANGUAGE)?;
        validate::optional_url(at, "in_reply_to", self.in_reply_to.as_ref())?;
        validate::optional_url(at, "url", self.url.as_ref())?;
        validate::optional_text(
            at,
            "content_warning",
            self.content_warning.as_ref(),
            limits::CONTENT_WARNING,
        )
    }
}

/// A remote reply was deleted by its author (`reply.deleted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteContentDeleted {
    /// The platform user it was addressed to.
    pub user_id: UserId,
    /// The remote object's ActivityPub id.
    #[schemars(length(max = limits::URL))]
    pub remote_object_id: Url,
}

impl Validate for RemoteContentDeleted {
    fn validate(&self, at: &str) -> Result<(), String> {
        validate::url(at, "remote_object_id", &self.remote_object_id)
    }
}

/// Who filed a report: an account, or a server speaking for itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Reporter {
    /// A server's moderators, anonymously (Mastodon reports come from the instance actor).
    Server(ServerRef),
    /// A named account.
    Account(Box<RemoteAccount>),
}

/// A server by host name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerRef {
    /// Host name.
    #[schemars(length(min = 1, max = limits::SERVER))]
    pub server: String,
}

/// A fediverse server reported a user or their posts (`report.received`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportReceived {
    /// The platform user reported, if the report names one.
    pub user_id: Option<UserId>,
    /// Posts named in the report.
    #[schemars(length(max = limits::REPORT_POSTS))]
    pub post_ids: Vec<PostId>,
    /// Who reported.
    pub reporter: Reporter,
    /// The reporter's explanation, plain text.
    #[schemars(length(max = limits::COMMENT))]
    pub comment: String,
    /// The server the report came from.
    #[schemars(length(min = 1, max = limits::SERVER))]
    pub server: String,
}

impl Validate for ReportReceived {
    fn validate(&self, at: &str) -> Result<(), String> {
        validate::list(
            at,
            "post_ids",
            &self.post_ids,
            limits::REPORT_POSTS,
            |_, _| Ok(()),
        )?;
        match &self.reporter {
            Reporter::Server(server) => validate::required_text(
                &format!("{at}.reporter"),
                "server",
                &server.server,
                limits::SERVER,
            )?,
            Reporter::Account(account) => account.validate(&format!("{at}.reporter"))?,
        }
        validate::text(at, "comment", &self.comment, limits::COMMENT)?;
        validate::required_text(at, "server", &self.server, limits::SERVER)
    }
}

/// A fediverse account blocked a user (`user.blocked_by_remote`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockedByRemote {
    /// The platform user blocked.
    pub user_id: UserId,
    /// Who blocked them.
    pub by: RemoteAccount,
}

impl Validate for BlockedByRemote {
    fn validate(&self, at: &str) -> Result<(), String> {
        self.by.validate(&format!("{at}.by"))
    }
}

/// Where a user's sharing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SharingState {
    /// Not shared; any earlier presence is being or has been removed.
    Off,
    /// Shared.
    On,
    /// Kept but frozen: the user no longer meets an eligibility rule.
    Paused,
}

/// Progress of removing a user's content from the fediverse after turning sharing off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovalReceipt {
    /// Servers asked to delete.
    pub requested: u32,
    /// Servers that confirmed receipt of the request.
    pub acknowledged: u32,
    /// Servers that refused.
    pub failed: u32,
    /// Servers that could not be reached in time.
    pub unreachable: u32,
    /// Every server has answered or expired.
    pub complete: bool,
}

/// A user's sharing changed state, or its removal progressed (`sharing.status_changed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharingStatusChanged {
    /// The user.
    pub user_id: UserId,
    /// The new state.
    pub state: SharingState,
    /// Why, for the user.
    #[schemars(length(max = limits::REASON))]
    pub reason: Option<String>,
    /// Eligibility rules the user does not meet (e.g. `public_profile`, `adult`).
    #[schemars(length(max = limits::GATES), inner(length(min = 1, max = limits::GATE)))]
    pub failing_gates: Vec<String>,
    /// Removal progress, after turning off.
    pub removal: Option<RemovalReceipt>,
}

impl Validate for SharingStatusChanged {
    fn validate(&self, at: &str) -> Result<(), String> {
        validate::optional_text(at, "reason", self.reason.as_ref(), limits::REASON)?;
        validate::list(
            at,
            "failing_gates",
            &self.failing_gates,
            limits::GATES,
            |at, g| validate::required_text(at, "", g, limits::GATE),
        )
    }
}
