//! Every sentence of the settings pages, keyed by id, so that a translation is one more
//! table. Placeholders are `{name}`, filled by [`fill`].

/// Identifies one string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    /// Title of every settings page.
    Title,
    /// Label of the main navigation landmark.
    PageLabel,
    /// Onboarding heading.
    IntroHeading,
    /// Heading over the explanation.
    WhatItMeans,
    /// Explanation: posts become public elsewhere.
    ExplainPublic,
    /// Explanation: other servers have their own rules.
    ExplainRules,
    /// Explanation: others can reshare.
    ExplainReshare,
    /// Explanation: deletion is a request.
    ExplainDeletion,
    /// Explanation: what is shared.
    ExplainWhat,
    /// Label before the handle.
    SharedAs,
    /// Heading over failing gates.
    GatesHeading,
    /// Consent checkbox label.
    ConsentLabel,
    /// Marks a required field.
    Required,
    /// Error: the box was not ticked.
    ConsentMissing,
    /// Turn-on button.
    TurnOn,
    /// Heading over the state.
    StatusHeading,
    /// State: on.
    StateOn,
    /// State: paused.
    StatePaused,
    /// Why paused, and that it resumes.
    PausedExplain,
    /// State: off.
    StateOff,
    /// Followers heading.
    FollowersHeading,
    /// No followers.
    NoFollowers,
    /// More followers than shown.
    MoreFollowers,
    /// Remove-follower button.
    Remove,
    /// Pending requests heading.
    PendingHeading,
    /// No pending requests.
    NoPending,
    /// Approve button.
    Approve,
    /// Refuse button.
    Refuse,
    /// Blocks heading.
    BlocksHeading,
    /// No blocks.
    NoBlocks,
    /// Unblock button.
    Unblock,
    /// Block form label.
    BlockLabel,
    /// Block form hint.
    BlockHint,
    /// Block button.
    BlockButton,
    /// Heading of the turn-off section.
    TurnOffHeading,
    /// Link to the confirmation.
    TurnOffLink,
    /// Confirmation heading.
    ConfirmHeading,
    /// Confirmation: Delete everywhere.
    ConfirmDelete,
    /// Confirmation: followers lost.
    ConfirmFollowers,
    /// Confirmation: cooldown of `{days}` days.
    ConfirmCooldown,
    /// Confirmation: posts stay on the platform.
    ConfirmStays,
    /// Confirm button.
    ConfirmButton,
    /// Cancel link.
    Cancel,
    /// Receipt heading.
    ReceiptHeading,
    /// Receipt: `{requested}`, `{acknowledged}`, `{unreachable}`, `{pending}`.
    Receipt,
    /// Receipt: `{failed}` refused.
    ReceiptFailed,
    /// Receipt: all answered.
    ReceiptComplete,
    /// Receipt: still working.
    ReceiptWorking,
    /// Cooldown: `{date}`.
    CooldownUntil,
    /// 403: link expired, heading.
    LinkExpiredHeading,
    /// 403: link expired, text.
    LinkExpired,
    /// 403: link invalid, heading.
    LinkInvalidHeading,
    /// 403: link invalid, text.
    LinkInvalid,
    /// 403: form token wrong.
    FormExpired,
    /// 503: disabled.
    Disabled,
    /// Notice after turning on.
    DoneOn,
    /// Notice after turning off.
    DoneOff,
    /// Notice after removing a follower.
    DoneRemoved,
    /// Notice after approving.
    DoneApproved,
    /// Notice after refusing.
    DoneRefused,
    /// Notice after blocking.
    DoneBlocked,
    /// Notice after unblocking.
    DoneUnblocked,
    /// Error heading.
    ErrorHeading,
    /// The account is unknown.
    UnknownAccount,
}

/// English.
pub fn en(id: Msg) -> &'static str {
    use Msg::*;
    match id {
        Title => "Fediverse sharing",
        PageLabel => "Fediverse sharing settings",
        IntroHeading => "Share your posts on the fediverse",
        WhatItMeans => "What sharing means",
        ExplainPublic => {
            "Your public posts become public on other servers of the fediverse, such as \
             Mastodon. People there can find you, follow you, reply, like and boost."
        }
        ExplainRules => {
            "Other servers have their own rules and moderators. We do not control what \
             they do with your posts."
        }
        ExplainReshare => "People on other servers can reshare your posts to their followers.",
        ExplainDeletion => {
            "When you delete a post or turn sharing off, other servers are asked to delete \
             their copies. Deletion elsewhere is a request, not a guarantee."
        }
        ExplainWhat => {
            "Only public posts you make while sharing is on are shared. Posts for followers \
             only, private or age-restricted posts are never shared, and neither are posts \
             from before you turned sharing on."
        }
        SharedAs => "Your fediverse handle",
        GatesHeading => "Before you can turn sharing on",
        ConsentLabel => {
            "I understand that my public posts will be shared with other servers, that \
             they have their own rules, and that deleting there is a request, not a guarantee."
        }
        Required => "(required)",
        ConsentMissing => {
            "Sharing was not turned on: please tick the box to confirm that you understand \
             what sharing means."
        }
        TurnOn => "Turn on fediverse sharing",
        StatusHeading => "Status",
        StateOn => "Sharing is on.",
        StatePaused => "Sharing is paused.",
        PausedExplain => {
            "Nothing new is shared while sharing is paused, and your fediverse profile shows \
             as unavailable. Sharing resumes automatically as soon as this is resolved:"
        }
        StateOff => "Sharing is off.",
        FollowersHeading => "Followers",
        NoFollowers => "No one on the fediverse follows you yet.",
        MoreFollowers => "…and {count} more.",
        Remove => "Remove",
        PendingHeading => "Follow requests",
        NoPending => "No follow requests are waiting.",
        Approve => "Approve",
        Refuse => "Refuse",
        BlocksHeading => "Blocked accounts and servers",
        NoBlocks => "You have not blocked anyone.",
        Unblock => "Unblock",
        BlockLabel => "Block an account or a server",
        BlockHint => {
            "An account's address, such as https://example.social/users/name, or a server \
             name, such as example.social."
        }
        BlockButton => "Block",
        TurnOffHeading => "Turn off sharing",
        TurnOffLink => "Turn off fediverse sharing…",
        ConfirmHeading => "Turn off fediverse sharing?",
        ConfirmDelete => {
            "Every server that received your posts or your profile will be sent a request \
             to delete them."
        }
        ConfirmFollowers => {
            "All your fediverse followers will be removed. They are not moved anywhere, and \
             they will not be restored if you turn sharing on again."
        }
        ConfirmCooldown => "You can turn sharing on again only after {days} days.",
        ConfirmStays => "Your posts stay on this platform.",
        ConfirmButton => "Yes, turn off sharing",
        Cancel => "No, keep sharing on",
        ReceiptHeading => "Removal of your content",
        Receipt => {
            "Removal requested on {requested} servers, acknowledged by {acknowledged}, \
             {unreachable} unreachable, {pending} pending."
        }
        ReceiptFailed => "{failed} servers refused the request.",
        ReceiptComplete => "Every server has answered.",
        ReceiptWorking => "We keep asking the servers that have not answered yet.",
        CooldownUntil => "You can turn sharing on again after {date}.",
        LinkExpiredHeading => "This link has expired",
        LinkExpired => {
            "For your security, links to these settings work for 15 minutes only. Please \
             open the fediverse settings again from the platform."
        }
        LinkInvalidHeading => "This link is not valid",
        LinkInvalid => {
            "We could not check this link. Please open the fediverse settings again from \
             the platform."
        }
        FormExpired => {
            "This form has expired or did not come from this page. Please open the \
             fediverse settings again from the platform and try again."
        }
        Disabled => "The fediverse settings are not available on this server.",
        DoneOn => "Sharing is on. Your public posts now reach the fediverse.",
        DoneOff => "Sharing is off. Removal has been requested from every server.",
        DoneRemoved => "The follower was removed.",
        DoneApproved => "The follow request was approved.",
        DoneRefused => "The follow request was refused.",
        DoneBlocked => "Blocked.",
        DoneUnblocked => "Unblocked.",
        ErrorHeading => "Something needs your attention",
        UnknownAccount => "This account is not known to the fediverse bridge yet.",
    }
}

/// Strings of one language.
#[derive(Debug, Clone, Copy)]
pub struct Strings {
    lang: &'static str,
}

impl Strings {
    /// The strings for `lang` (BCP 47); English until translations exist.
    pub fn for_lang(_lang: Option<&str>) -> Self {
        Self { lang: "en" }
    }

    /// Language tag of these strings (the page's `lang`).
    pub fn lang(&self) -> &'static str {
        self.lang
    }

    /// The string `id`.
    pub fn get(&self, id: Msg) -> &'static str {
        en(id)
    }
}

/// Replaces `{name}` placeholders with values (values are inserted as given; escape the
/// result for HTML).
pub fn fill(template: &str, values: &[(&str, String)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value)
        })
}
