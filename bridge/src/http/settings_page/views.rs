//! HTML of the settings pages: server-rendered, usable without JavaScript, with landmarks,
//! headings, labelled controls and real buttons.

use super::strings::{Msg, Strings, fill};
use crate::{
    db::{follows::Follow, remote_actors::RemoteActor, user_blocks::UserBlock},
    federation::content::escape,
    http::pages::layout,
    opt_in::{SharingState, receipt::Receipt, status::SharingStatus},
};

/// Everything the main page shows.
pub struct Overview {
    /// Path of the settings page (`/settings`); forms post below it. Absolute, because
    /// a refused form is answered at the form's own address.
    pub root: String,
    /// Sharing status.
    pub status: SharingStatus,
    /// Accepted followers (at most a page).
    pub followers: Vec<(Follow, RemoteActor)>,
    /// Pending requests.
    pub pending: Vec<(Follow, RemoteActor)>,
    /// Blocks.
    pub blocks: Vec<UserBlock>,
}

/// A notice or an error shown at the top of the page.
pub enum Notice {
    /// Something worked.
    Done(String),
    /// Turning on failed because the box was not ticked.
    ConsentMissing,
    /// Something was refused.
    Refused(String),
}

fn date(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|d| d.format("%-d %B %Y, %H:%M UTC").to_string())
        .unwrap_or_else(|_| rfc3339.to_owned())
}

fn page(t: Strings, heading_extra: &str, main: &str) -> String {
    let body = format!(
        r#"<header><h1>{title}</h1>{heading_extra}</header>
<main id="main" aria-label="{label}">
{main}
</main>"#,
        title = escape(t.get(Msg::Title)),
        label = escape(t.get(Msg::PageLabel)),
    );
    layout(t.get(Msg::Title), t.lang(), &body)
}

fn csrf_field(csrf: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        escape(csrf)
    )
}

fn notice_html(t: Strings, notice: Option<&Notice>) -> String {
    match notice {
        None => r#"<div role="status"></div>"#.to_owned(),
        Some(Notice::Done(text)) => {
            format!(
                r#"<div role="status" class="notice"><p>{}</p></div>"#,
                escape(text)
            )
        }
        Some(Notice::ConsentMissing) => String::new(),
        Some(Notice::Refused(text)) => format!(
            r#"<div role="alert" class="error" id="error-summary"><h2>{}</h2><p>{}</p></div>"#,
            escape(t.get(Msg::ErrorHeading)),
            escape(text)
        ),
    }
}

fn receipt_html(t: Strings, receipt: &Receipt, cooldown_until: Option<&str>) -> String {
    let mut lines = vec![fill(
        t.get(Msg::Receipt),
        &[
            ("requested", receipt.requested.to_string()),
            ("acknowledged", receipt.acknowledged.to_string()),
            ("unreachable", receipt.unreachable.to_string()),
            ("pending", receipt.pending.to_string()),
        ],
    )];
    if receipt.failed > 0 {
        lines.push(fill(
            t.get(Msg::ReceiptFailed),
            &[("failed", receipt.failed.to_string())],
        ));
    }
    lines.push(
        t.get(if receipt.complete {
            Msg::ReceiptComplete
        } else {
            Msg::ReceiptWorking
        })
        .to_owned(),
    );
    if let Some(until) = cooldown_until {
        lines.push(fill(t.get(Msg::CooldownUntil), &[("date", date(until))]));
    }
    let items: String = lines
        .iter()
        .map(|l| format!("<p>{}</p>", escape(l)))
        .collect();
    format!(
        r#"<section aria-labelledby="receipt-heading" id="receipt"><h2 id="receipt-heading">{}</h2>{items}</section>"#,
        escape(t.get(Msg::ReceiptHeading))
    )
}

fn gates_html(t: Strings, status: &SharingStatus) -> String {
    if status.failing_gates.is_empty() {
        return String::new();
    }
    let items: String = status
        .failing_gates
        .iter()
        .map(|g| format!("<li>{}</li>", escape(g.explanation)))
        .collect();
    format!(
        r#"<section aria-labelledby="gates-heading" id="gates"><h2 id="gates-heading">{}</h2><ul>{items}</ul></section>"#,
        escape(t.get(Msg::GatesHeading))
    )
}

fn handle_html(t: Strings, handle: &str) -> String {
    format!(
        r#"<p>{}: <strong class="handle" id="handle">{}</strong></p>"#,
        escape(t.get(Msg::SharedAs)),
        escape(handle)
    )
}

fn onboarding(t: Strings, o: &Overview, csrf: &str, consent_missing: bool) -> String {
    let explain: String = [
        Msg::ExplainPublic,
        Msg::ExplainRules,
        Msg::ExplainReshare,
        Msg::ExplainDeletion,
        Msg::ExplainWhat,
    ]
    .iter()
    .map(|m| format!("<li>{}</li>", escape(t.get(*m))))
    .collect();
    let error = if consent_missing {
        format!(
            r#"<p class="error" id="consent-error" role="alert">{}</p>"#,
            escape(t.get(Msg::ConsentMissing))
        )
    } else {
        String::new()
    };
    let described = if consent_missing {
        r#" aria-describedby="consent-error" aria-invalid="true""#
    } else {
        ""
    };
    let eligible = o.status.failing_gates.is_empty() && o.status.cooldown_until.is_none();
    let form = if eligible {
        format!(
            r#"<form method="post" action="{root}/on" id="turn-on-form">
{csrf}
{error}
<p><input type="checkbox" id="consent" name="consent" value="yes" aria-required="true"{described}>
<label for="consent">{consent} <span>{required}</span></label></p>
<button type="submit" id="turn-on">{turn_on}</button>
</form>"#,
            csrf = csrf_field(csrf),
            consent = escape(t.get(Msg::ConsentLabel)),
            required = escape(t.get(Msg::Required)),
            turn_on = escape(t.get(Msg::TurnOn)),
            root = escape(&o.root),
        )
    } else {
        String::new()
    };
    format!(
        r#"<section aria-labelledby="intro-heading" id="onboarding">
<h2 id="intro-heading">{intro}</h2>
<h3>{what}</h3>
<ul id="explanation">{explain}</ul>
{handle}
</section>
{gates}
{form}"#,
        intro = escape(t.get(Msg::IntroHeading)),
        what = escape(t.get(Msg::WhatItMeans)),
        handle = handle_html(t, &o.status.handle),
        gates = gates_html(t, &o.status),
    )
}

fn actor_form(action: &str, actor: &str, csrf: &str, label: &str, who: &str) -> String {
    format!(
        r#"<form method="post" action="{action}" class="inline"><input type="hidden" name="actor" value="{actor}">{csrf}<button type="submit" aria-label="{label} {who}">{label}</button></form>"#,
        action = escape(action),
        actor = escape(actor),
        csrf = csrf_field(csrf),
        label = escape(label),
        who = escape(who),
    )
}

fn account(actor: &RemoteActor) -> String {
    format!(
        r#"<a href="{}">{}</a>"#,
        escape(actor.url.as_deref().unwrap_or(&actor.ap_id)),
        escape(&actor.handle())
    )
}

fn sharing_sections(t: Strings, o: &Overview, csrf: &str) -> String {
    let followers = if o.followers.is_empty() {
        format!("<p>{}</p>", escape(t.get(Msg::NoFollowers)))
    } else {
        let items: String = o
            .followers
            .iter()
            .map(|(_, a)| {
                format!(
                    "<li>{} {}</li>",
                    account(a),
                    actor_form(
                        &format!("{}/followers/remove", o.root),
                        &a.ap_id,
                        csrf,
                        t.get(Msg::Remove),
                        &a.handle()
                    )
                )
            })
            .collect();
        let more = o.status.followers - o.followers.len() as i64;
        let more = if more > 0 {
            format!(
                "<p>{}</p>",
                escape(&fill(
                    t.get(Msg::MoreFollowers),
                    &[("count", more.to_string())]
                ))
            )
        } else {
            String::new()
        };
        format!(r#"<ul id="followers">{items}</ul>{more}"#)
    };
    let pending = if o.pending.is_empty() {
        format!("<p>{}</p>", escape(t.get(Msg::NoPending)))
    } else {
        let items: String = o
            .pending
            .iter()
            .map(|(_, a)| {
                format!(
                    "<li>{} {} {}</li>",
                    account(a),
                    actor_form(
                        &format!("{}/followers/approve", o.root),
                        &a.ap_id,
                        csrf,
                        t.get(Msg::Approve),
                        &a.handle()
                    ),
                    actor_form(
                        &format!("{}/followers/refuse", o.root),
                        &a.ap_id,
                        csrf,
                        t.get(Msg::Refuse),
                        &a.handle()
                    ),
                )
            })
            .collect();
        format!(r#"<ul id="pending">{items}</ul>"#)
    };
    let blocks = if o.blocks.is_empty() {
        format!("<p>{}</p>", escape(t.get(Msg::NoBlocks)))
    } else {
        let items: String = o
            .blocks
            .iter()
            .map(|b| {
                let field = if b.target_kind == "domain" {
                    "domain"
                } else {
                    "actor"
                };
                let value = &b.target;
                format!(
                    r#"<li>{shown} <form method="post" action="{root}/blocks/remove" class="inline"><input type="hidden" name="{field}" value="{value}">{csrf}<button type="submit" aria-label="{label} {value}">{label}</button></form></li>"#,
                    shown = escape(value),
                    value = escape(value),
                    csrf = csrf_field(csrf),
                    label = escape(t.get(Msg::Unblock)),
                    root = escape(&o.root),
                )
            })
            .collect();
        format!(r#"<ul id="blocks">{items}</ul>"#)
    };
    format!(
        r#"<section aria-labelledby="followers-heading"><h2 id="followers-heading">{fh} ({count})</h2>{followers}</section>
<section aria-labelledby="pending-heading"><h2 id="pending-heading">{ph}</h2>{pending}</section>
<section aria-labelledby="blocks-heading"><h2 id="blocks-heading">{bh}</h2>{blocks}
<form method="post" action="{root}/blocks" id="block-form">{csrf}
<label for="block-target">{bl}</label>
<p id="block-hint">{hint}</p>
<input type="text" id="block-target" name="target" aria-describedby="block-hint" autocomplete="off">
<button type="submit">{bb}</button>
</form></section>
<section aria-labelledby="off-heading"><h2 id="off-heading">{oh}</h2><p><a href="{root}/off" id="turn-off-link">{ol}</a></p></section>"#,
        fh = escape(t.get(Msg::FollowersHeading)),
        count = o.status.followers,
        ph = escape(t.get(Msg::PendingHeading)),
        bh = escape(t.get(Msg::BlocksHeading)),
        csrf = csrf_field(csrf),
        bl = escape(t.get(Msg::BlockLabel)),
        hint = escape(t.get(Msg::BlockHint)),
        bb = escape(t.get(Msg::BlockButton)),
        oh = escape(t.get(Msg::TurnOffHeading)),
        ol = escape(t.get(Msg::TurnOffLink)),
        root = escape(&o.root),
    )
}

/// The main settings page, shaped by the user's state.
pub fn overview(t: Strings, o: &Overview, csrf: &str, notice: Option<&Notice>) -> String {
    let consent_missing = matches!(notice, Some(Notice::ConsentMissing));
    let notice = notice_html(t, notice);
    let main = match o.status.state {
        SharingState::Off => {
            let receipt = o
                .status
                .removal
                .as_ref()
                .map(|r| receipt_html(t, r, o.status.cooldown_until.as_deref()))
                .unwrap_or_default();
            let cooldown = match (&o.status.removal, &o.status.cooldown_until) {
                (None, Some(until)) => format!(
                    "<p>{}</p>",
                    escape(&fill(t.get(Msg::CooldownUntil), &[("date", date(until))]))
                ),
                _ => String::new(),
            };
            format!(
                r#"{notice}<section aria-labelledby="status-heading"><h2 id="status-heading">{sh}</h2><p id="state" data-state="off">{state}</p>{cooldown}</section>{receipt}{onboarding}"#,
                sh = escape(t.get(Msg::StatusHeading)),
                state = escape(t.get(Msg::StateOff)),
                onboarding = onboarding(t, o, csrf, consent_missing),
            )
        }
        SharingState::On | SharingState::Paused => {
            let state = if o.status.state == SharingState::On {
                format!(
                    r#"<p id="state" data-state="on">{}</p>"#,
                    escape(t.get(Msg::StateOn))
                )
            } else {
                let gates: String = o
                    .status
                    .failing_gates
                    .iter()
                    .map(|g| format!("<li>{}</li>", escape(g.explanation)))
                    .collect();
                format!(
                    r#"<p id="state" data-state="paused">{}</p><p>{}</p><ul id="pause-reasons">{gates}</ul>"#,
                    escape(t.get(Msg::StatePaused)),
                    escape(t.get(Msg::PausedExplain)),
                )
            };
            format!(
                r#"{notice}<section aria-labelledby="status-heading"><h2 id="status-heading">{sh}</h2>{state}{handle}</section>{rest}"#,
                sh = escape(t.get(Msg::StatusHeading)),
                handle = handle_html(t, &o.status.handle),
                rest = sharing_sections(t, o, csrf),
            )
        }
    };
    page(t, "", &main)
}

/// The confirmation before turning off.
pub fn confirm_off(t: Strings, root: &str, cooldown_days: u32, csrf: &str) -> String {
    let items: String = [
        t.get(Msg::ConfirmDelete).to_owned(),
        t.get(Msg::ConfirmFollowers).to_owned(),
        fill(
            t.get(Msg::ConfirmCooldown),
            &[("days", cooldown_days.to_string())],
        ),
        t.get(Msg::ConfirmStays).to_owned(),
    ]
    .iter()
    .map(|l| format!("<li>{}</li>", escape(l)))
    .collect();
    let main = format!(
        r#"<section aria-labelledby="confirm-heading"><h2 id="confirm-heading">{heading}</h2>
<ul id="consequences">{items}</ul>
<form method="post" action="{root}/off">{csrf}<button type="submit" id="confirm-off">{confirm}</button></form>
<p><a href="{root}">{cancel}</a></p></section>"#,
        heading = escape(t.get(Msg::ConfirmHeading)),
        csrf = csrf_field(csrf),
        confirm = escape(t.get(Msg::ConfirmButton)),
        cancel = escape(t.get(Msg::Cancel)),
        root = escape(root),
    );
    page(t, "", &main)
}

/// A page that only explains (expired links, refused forms, errors).
pub fn message(t: Strings, heading: Msg, text: Msg) -> String {
    let main = format!(
        r#"<section aria-labelledby="message-heading"><h2 id="message-heading">{}</h2><p id="message">{}</p></section>"#,
        escape(t.get(heading)),
        escape(t.get(text))
    );
    page(t, "", &main)
}
