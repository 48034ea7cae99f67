//! Server blocks as an operator manages them: add, lift, list and import, each in the
//! caller's transaction with an audit entry (no user; initiator `operator` or `platform`).
//!
//! A `reject` block severs every follow from the blocked server and its subdomains, as
//! Mastodon does when it suspends a domain: each follow is dropped with `Reject(Follow)`
//! so the remote server forgets it too, the platform gets `follower.removed`, and the
//! followed user's audit log says why. A `follows_only` block keeps existing followers (as
//! Mastodon's "limit" does) and refuses new follows.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::json;

use super::{
    blocklist::{self, Blocklist, ExportRow, InvalidLine, ListedSeverity},
    domain::BlockDomain,
};
use crate::{
    db::{
        AnyConnection, audit,
        blocks::{self, InstanceBlock, InstanceBlockSeverity},
        follower_list, users,
    },
    error::Error,
    federation::protocol::rfc3339,
    opt_in::{controls, lifecycle::Context},
};

/// A stored block as `fedibridge blocks list --json` and the API show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockView {
    /// The domain (covers its subdomains).
    pub domain: String,
    /// `reject` or `follows_only`.
    pub severity: &'static str,
    /// The comment kept with it.
    pub comment: Option<String>,
    /// When it was first blocked.
    pub created_at: String,
}

impl From<&InstanceBlock> for BlockView {
    fn from(b: &InstanceBlock) -> Self {
        Self {
            domain: b.domain.clone(),
            severity: b.severity().as_str(),
            comment: b.reason.clone(),
            created_at: rfc3339(b.created_at),
        }
    }
}

/// Every block, by domain.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<BlockView>, Error> {
    Ok(blocks::list_instance_blocks(conn)?
        .iter()
        .map(BlockView::from)
        .collect())
}

/// Every block as CSV in Mastodon's export format.
pub fn export(conn: &mut AnyConnection) -> Result<Vec<u8>, Error> {
    let list = blocks::list_instance_blocks(conn)?;
    blocklist::export(list.iter().map(|b| ExportRow {
        domain: &b.domain,
        severity: b.severity(),
        comment: b.reason.as_deref(),
    }))
}

/// Whether `a` blocks more than `b`.
fn stricter(a: InstanceBlockSeverity, b: InstanceBlockSeverity) -> bool {
    a == InstanceBlockSeverity::Reject && b == InstanceBlockSeverity::FollowsOnly
}

/// What a block request did (or, in a dry run, would do) to one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum BlockChange {
    /// The domain was not blocked; now it is.
    Added {
        /// The new severity.
        severity: Severity,
    },
    /// The severity or the comment changed.
    Updated {
        /// Severity before.
        from: Severity,
        /// Severity after.
        to: Severity,
    },
    /// Already blocked like this.
    Unchanged,
    /// A list asked for less than the existing block: imports never weaken a block.
    KeptStricter {
        /// What the list asked for.
        listed: Severity,
    },
    /// A list row with Mastodon's `noop` severity.
    Skipped,
}

/// [`InstanceBlockSeverity`] in its stored spelling, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Nothing accepted.
    Reject,
    /// Follows refused.
    FollowsOnly,
}

impl From<InstanceBlockSeverity> for Severity {
    fn from(s: InstanceBlockSeverity) -> Self {
        match s {
            InstanceBlockSeverity::Reject => Self::Reject,
            InstanceBlockSeverity::FollowsOnly => Self::FollowsOnly,
        }
    }
}

/// The result of one block request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockOutcome {
    /// The domain, normalized.
    pub domain: String,
    /// What changed.
    #[serde(flatten)]
    pub change: BlockChange,
    /// Follows from the domain severed (or, in a dry run, that would be).
    pub followers_removed: usize,
}

/// What an import did (or would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Domains newly blocked.
    pub added: usize,
    /// Blocks made stricter or given a new comment.
    pub updated: usize,
    /// Rows that changed nothing (already blocked so, or more strictly).
    pub unchanged: usize,
    /// `noop` rows.
    pub skipped: usize,
    /// Rows refused, with their line numbers.
    pub invalid: Vec<InvalidLine>,
    /// Follows severed by new or stricter `reject` blocks.
    pub followers_removed: usize,
    /// Each usable row's result, in file order.
    pub rows: Vec<ImportedRow>,
}

/// One usable row of an imported list and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedRow {
    /// Its line in the file.
    pub line: u64,
    /// What it did.
    #[serde(flatten)]
    pub outcome: BlockOutcome,
}

/// The stored state of a domain during a request: (severity, comment).
type Current = Option<(InstanceBlockSeverity, Option<String>)>;

fn current(conn: &mut AnyConnection, domain: &BlockDomain) -> Result<Current, Error> {
    Ok(blocks::find_instance_block(conn, domain.as_str())?.map(|b| (b.severity(), b.reason)))
}

/// Severs every follow from `domain`; in a dry run only counts them.
fn sever_follows(
    conn: &mut AnyConnection,
    domain: &BlockDomain,
    dry_run: bool,
    cx: Context<'_>,
) -> Result<usize, Error> {
    let follows = follower_list::from_domain(conn, domain.as_str())?;
    if dry_run {
        return Ok(follows.len());
    }
    for (follow, actor) in &follows {
        let Some(user) = users::find(conn, follow.user_id)? else {
            continue;
        };
        controls::drop_follow(
            conn,
            &user,
            follow,
            actor,
            "follower.removed_by_server_block",
            cx,
        )?;
    }
    Ok(follows.len())
}

/// Stores the block, severs follows for `reject`, and writes the audit entry.
fn store(
    conn: &mut AnyConnection,
    domain: &BlockDomain,
    severity: InstanceBlockSeverity,
    comment: Option<&str>,
    change: BlockChange,
    dry_run: bool,
    cx: Context<'_>,
) -> Result<BlockOutcome, Error> {
    let changed = matches!(
        change,
        BlockChange::Added { .. } | BlockChange::Updated { .. }
    );
    if changed && !dry_run {
        blocks::block_instance(conn, domain.as_str(), severity, comment, cx.now)?;
    }
    // Also run for an unchanged `reject`: a follow that slipped in before is severed now.
    let followers_removed = if severity == InstanceBlockSeverity::Reject
        && !matches!(
            change,
            BlockChange::KeptStricter { .. } | BlockChange::Skipped
        ) {
        sever_follows(conn, domain, dry_run, cx)?
    } else {
        0
    };
    if changed && !dry_run {
        audit::record(
            conn,
            None,
            if matches!(change, BlockChange::Added { .. }) {
                "server_block.added"
            } else {
                "server_block.updated"
            },
            cx.initiator,
            &json!({
                "domain": domain.as_str(),
                "severity": severity.as_str(),
                "comment": comment,
                "followers_removed": followers_removed,
            }),
            cx.now,
        )?;
    }
    Ok(BlockOutcome {
        domain: domain.as_str().to_owned(),
        change,
        followers_removed,
    })
}

/// Blocks `domain` with `severity`, as asked (an explicit request may also weaken a block).
/// `comment` `None` keeps the stored comment; an empty one clears it.
pub fn add(
    conn: &mut AnyConnection,
    domain: &BlockDomain,
    severity: InstanceBlockSeverity,
    comment: Option<&str>,
    cx: Context<'_>,
) -> Result<BlockOutcome, Error> {
    let current = current(conn, domain)?;
    let comment = match comment {
        Some(c) => Some(c.trim()).filter(|c| !c.is_empty()).map(str::to_owned),
        None => current.as_ref().and_then(|(_, c)| c.clone()),
    };
    let change = match &current {
        None => BlockChange::Added {
            severity: severity.into(),
        },
        Some((from, stored)) if *from == severity && *stored == comment => BlockChange::Unchanged,
        Some((from, _)) => BlockChange::Updated {
            from: (*from).into(),
            to: severity.into(),
        },
    };
    store(
        conn,
        domain,
        severity,
        comment.as_deref(),
        change,
        false,
        cx,
    )
}

/// Lifts the block of exactly `domain`; returns whether there was one.
pub fn remove(
    conn: &mut AnyConnection,
    domain: &BlockDomain,
    cx: Context<'_>,
) -> Result<bool, Error> {
    let Some(block) = blocks::find_instance_block(conn, domain.as_str())? else {
        return Ok(false);
    };
    blocks::unblock_instance(conn, domain.as_str())?;
    audit::record(
        conn,
        None,
        "server_block.removed",
        cx.initiator,
        &json!({ "domain": domain.as_str(), "severity": block.severity().as_str() }),
        cx.now,
    )?;
    Ok(true)
}

/// Applies a parsed blocklist row by row, in file order; with `dry_run` nothing is written
/// and the report says what would happen. Importing the same list again changes nothing.
pub fn import(
    conn: &mut AnyConnection,
    list: &Blocklist,
    dry_run: bool,
    cx: Context<'_>,
) -> Result<ImportReport, Error> {
    let mut report = ImportReport {
        invalid: list.invalid.clone(),
        ..ImportReport::default()
    };
    // What earlier rows did, so a dry run judges later rows for the same domain right.
    let mut seen: HashMap<BlockDomain, Current> = HashMap::new();
    for entry in &list.entries {
        let domain = &entry.domain;
        let now_stored = match seen.get(domain) {
            Some(state) => state.clone(),
            None => current(conn, domain)?,
        };
        let ListedSeverity::Block(listed) = entry.severity else {
            report.skipped += 1;
            report.rows.push(ImportedRow {
                line: entry.line,
                outcome: BlockOutcome {
                    domain: domain.as_str().to_owned(),
                    change: BlockChange::Skipped,
                    followers_removed: 0,
                },
            });
            continue;
        };
        let (change, severity, comment) = match &now_stored {
            None => (
                BlockChange::Added {
                    severity: listed.into(),
                },
                listed,
                entry.comment.clone(),
            ),
            Some((stored, stored_comment)) => {
                let comment = entry.comment.clone().or_else(|| stored_comment.clone());
                if stricter(*stored, listed) {
                    (
                        BlockChange::KeptStricter {
                            listed: listed.into(),
                        },
                        *stored,
                        stored_comment.clone(),
                    )
                } else if *stored != listed || comment != *stored_comment {
                    (
                        BlockChange::Updated {
                            from: (*stored).into(),
                            to: listed.into(),
                        },
                        listed,
                        comment,
                    )
                } else {
                    (BlockChange::Unchanged, listed, comment)
                }
            }
        };
        let outcome = store(
            conn,
            domain,
            severity,
            comment.as_deref(),
            change,
            dry_run,
            cx,
        )?;
        match outcome.change {
            BlockChange::Added { .. } => report.added += 1,
            BlockChange::Updated { .. } => report.updated += 1,
            BlockChange::Unchanged | BlockChange::KeptStricter { .. } => report.unchanged += 1,
            BlockChange::Skipped => report.skipped += 1,
        }
        // A dry run counts the same follows again for a repeated domain; a real run has
        // severed them already.
        if !(dry_run && seen.contains_key(domain)) {
            report.followers_removed += outcome.followers_removed;
        }
        seen.insert(domain.clone(), Some((severity, comment)));
        report.rows.push(ImportedRow {
            line: entry.line,
            outcome,
        });
    }
    Ok(report)
}
