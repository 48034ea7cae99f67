//! `fedibridge blocks …`: the operator's server blocks. Part of the binary (declared in
//! main.rs), not of the library; the work is done by `bridge::moderation`.

use std::{
    io::{Read, Write},
    path::PathBuf,
    process::ExitCode,
};

use bridge::{
    Settings,
    db::{Database, blocks::InstanceBlockSeverity, now_millis},
    federation::urls::Urls,
    moderation::{
        BlockDomain, blocklist,
        domain_blocks::{self, BlockChange, BlockOutcome, BlockView, ImportReport, Severity},
    },
    opt_in::{Initiator, lifecycle::Context},
};
use clap::{Subcommand, ValueEnum};

/// How hard to block, as typed on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    /// Nothing from the server is accepted (403); its follows are severed.
    Reject,
    /// Its accounts cannot follow; everything else is accepted.
    FollowsOnly,
}

impl From<SeverityArg> for InstanceBlockSeverity {
    fn from(s: SeverityArg) -> Self {
        match s {
            SeverityArg::Reject => Self::Reject,
            SeverityArg::FollowsOnly => Self::FollowsOnly,
        }
    }
}

/// The `blocks` subcommands.
#[derive(Debug, Subcommand)]
pub enum BlocksCommand {
    /// Block a server and its subdomains (`reject` also severs its follows, with
    /// Reject(Follow), as Mastodon does on suspend).
    Add {
        /// The domain; internationalized names are stored as punycode.
        domain: String,
        /// How hard.
        #[arg(long, value_enum, default_value_t = SeverityArg::Reject)]
        severity: SeverityArg,
        /// Why; kept with the block and exported as its public comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Lift the block of a domain.
    Remove {
        /// The domain as blocked.
        domain: String,
    },
    /// Show every server block.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Import a blocklist: Mastodon's domain block CSV export (suspend → reject, silence →
    /// follows-only, noop skipped), with or without its header, or one domain per line
    /// (reject). Never weakens an existing block; exits 1 when some lines were refused.
    Import {
        /// The file (`-` for standard input).
        file: PathBuf,
        /// Only report what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write every server block to standard output as CSV in Mastodon's format.
    Export,
}

/// Runs one `blocks` subcommand.
pub async fn run(settings: &Settings, command: BlocksCommand) -> anyhow::Result<ExitCode> {
    let db = Database::new(&settings.database)?;
    db.migrate().await?;
    let domain_of =
        |raw: &str| BlockDomain::parse(raw).map_err(|e| anyhow::anyhow!("`{raw}`: {e}"));
    match command {
        BlocksCommand::Add {
            domain,
            severity,
            comment,
        } => {
            let domain = domain_of(&domain)?;
            let outcome = with_context(settings, &db, false, move |c, cx| {
                domain_blocks::add(c, &domain, severity.into(), comment.as_deref(), cx)
            })
            .await?;
            println!("{}", describe(&outcome, false));
            Ok(ExitCode::SUCCESS)
        }
        BlocksCommand::Remove { domain } => {
            let domain = domain_of(&domain)?;
            let shown = domain.to_string();
            let removed = with_context(settings, &db, false, move |c, cx| {
                domain_blocks::remove(c, &domain, cx)
            })
            .await?;
            if removed {
                println!("{shown}: block lifted");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{shown}: not blocked");
                Ok(ExitCode::FAILURE)
            }
        }
        BlocksCommand::List { json } => {
            let list = db.run(domain_blocks::list).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_table(&list);
            }
            Ok(ExitCode::SUCCESS)
        }
        BlocksCommand::Import { file, dry_run } => {
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes)?;
                bytes
            } else {
                std::fs::read(&file)
                    .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", file.display()))?
            };
            let list = blocklist::parse(&bytes);
            let report = with_context(settings, &db, dry_run, move |c, cx| {
                domain_blocks::import(c, &list, dry_run, cx)
            })
            .await?;
            print_import(&report, dry_run);
            Ok(if report.invalid.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        BlocksCommand::Export => {
            let bytes = db.run(domain_blocks::export).await?;
            std::io::stdout().write_all(&bytes)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `f` with the operator's context: in one write transaction, or read-only for a
/// dry run.
async fn with_context<T, F>(
    settings: &Settings,
    db: &Database,
    read_only: bool,
    f: F,
) -> anyhow::Result<T>
where
    F: FnOnce(&mut bridge::db::AnyConnection, Context<'_>) -> Result<T, bridge::Error>
        + Send
        + 'static,
    T: Send + 'static,
{
    let (rules, urls) = (settings.sharing.clone(), Urls::new(&settings.federation)?);
    let run = move |c: &mut bridge::db::AnyConnection| f(c, operator(&rules, &urls));
    Ok(if read_only {
        db.run(run).await?
    } else {
        db.write(run).await?
    })
}

fn operator<'a>(rules: &'a bridge::settings::SharingSettings, urls: &'a Urls) -> Context<'a> {
    Context {
        rules,
        urls,
        initiator: Initiator::Operator,
        now: now_millis(),
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Reject => "reject",
        Severity::FollowsOnly => "follows_only",
    }
}

/// One line about one domain.
fn describe(outcome: &BlockOutcome, dry_run: bool) -> String {
    let domain = &outcome.domain;
    let verb = |done: &'static str, planned: &'static str| if dry_run { planned } else { done };
    let mut line = match outcome.change {
        BlockChange::Added { severity } => format!(
            "{domain}: {} ({})",
            verb("blocked", "would block"),
            severity_name(severity)
        ),
        BlockChange::Updated { from, to } if from == to => format!(
            "{domain}: {} ({})",
            verb("comment updated", "would update the comment"),
            severity_name(to)
        ),
        BlockChange::Updated { from, to } => format!(
            "{domain}: {} {} → {}",
            verb("changed", "would change"),
            severity_name(from),
            severity_name(to)
        ),
        BlockChange::Unchanged => format!("{domain}: already blocked so"),
        BlockChange::KeptStricter { listed } => format!(
            "{domain}: kept the stricter existing block (the list says {})",
            severity_name(listed)
        ),
        BlockChange::Skipped => format!("{domain}: skipped (noop)"),
    };
    if outcome.followers_removed > 0 {
        line.push_str(&format!(
            "; {} {} follow(s) from it",
            verb("severed", "would sever"),
            outcome.followers_removed
        ));
    }
    line
}

fn print_import(report: &ImportReport, dry_run: bool) {
    for row in &report.rows {
        let (line, outcome) = (row.line, &row.outcome);
        // Rows that change nothing would drown the ones that do in a long list.
        if !matches!(
            outcome.change,
            BlockChange::Unchanged | BlockChange::Skipped
        ) || outcome.followers_removed > 0
        {
            println!("line {line}: {}", describe(outcome, dry_run));
        }
    }
    for invalid in &report.invalid {
        eprintln!("line {}: refused: {}", invalid.line, invalid.reason);
    }
    println!(
        "{}added {}, updated {}, unchanged {}, skipped {}, invalid {}; {} follow(s) severed",
        if dry_run {
            "dry run, nothing changed: "
        } else {
            ""
        },
        report.added,
        report.updated,
        report.unchanged,
        report.skipped,
        report.invalid.len(),
        report.followers_removed,
    );
}

fn print_table(list: &[BlockView]) {
    if list.is_empty() {
        println!("no server blocks");
        return;
    }
    let width = list
        .iter()
        .map(|b| b.domain.chars().count())
        .max()
        .unwrap_or(0)
        .max("DOMAIN".len());
    println!(
        "{:<width$}  {:<12}  {:<20}  COMMENT",
        "DOMAIN", "SEVERITY", "SINCE"
    );
    for b in list {
        println!(
            "{:<width$}  {:<12}  {:<20}  {}",
            b.domain,
            b.severity,
            b.created_at,
            b.comment.as_deref().unwrap_or("")
        );
    }
}
