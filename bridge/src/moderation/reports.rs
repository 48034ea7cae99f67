//! Reports a platform user filed about a remote account (`report.created`): kept, and when
//! the platform asks, forwarded to the account's server as a `Flag` from the instance
//! actor. The reporter's identity never leaves the bridge.

use platform_adapter::{Handled, events::ReportCreated};
use url::Url;

use crate::{
    db::{
        AnyConnection, Database,
        blocks::{self, InstanceBlockSeverity},
        remote_actors::{self, RemoteActor},
        reports::{self, NewReport, ReportState},
    },
    error::Error,
    federation::{
        FederationClient, canonical_host,
        fetch::{DEFAULT_FETCH_BUDGET, FetchFailures, Fetcher},
        flag_activity,
        urls::Urls,
    },
};

/// Refuses reports that can never be forwarded as sent: about our own users (the platform
/// handles those itself), about posts on another server than the account's (that server
/// could not act on them), or with URLs that are not http(s).
pub fn check(report: &ReportCreated, urls: &Urls) -> Result<(), Error> {
    let refuse = |why: String| Err(Error::EventRefused(why));
    let target = &report.target;
    if !matches!(target.scheme(), "http" | "https") || target.host_str().is_none() {
        return refuse(format!(
            "report target {target} is not an http(s) actor URL"
        ));
    }
    if urls.is_local(target) {
        return refuse(format!(
            "report target {target} is on this bridge: platform users are reported on the \
             platform, not through the fediverse"
        ));
    }
    let host = canonical_host(target);
    for object in &report.object_urls {
        if !matches!(object.scheme(), "http" | "https") || canonical_host(object) != host {
            return refuse(format!(
                "reported post {object} is not on {host}, the server of the reported account"
            ));
        }
    }
    Ok(())
}

/// Before the report's transaction: fetches and stores the target when it must be known
/// and is not, so that the transaction itself never waits on a remote server. A server
/// the operator rejects is never contacted. A fetch that fails is the event's error
/// (transient ones are retried later; an account that does not exist is dead-lettered).
pub async fn prepare(
    db: &Database,
    report: &ReportCreated,
    urls: &Urls,
    fetch: Option<(&FederationClient, &FetchFailures)>,
) -> Result<(), Error> {
    check(report, urls)?;
    if !report.forward {
        return Ok(());
    }
    let (report_id, target) = (report.report_id.as_str().to_owned(), report.target.clone());
    let lookup = target.clone();
    let known = db
        .run(move |c| {
            Ok(reports::find(c, &report_id)?.is_some()
                || rejected(c, &lookup)?
                || remote_actors::find_by_ap_id(c, lookup.as_str())?.is_some())
        })
        .await?;
    if known {
        return Ok(());
    }
    let Some((client, failures)) = fetch else {
        return Err(Error::EventRefused(format!(
            "report target {target} is unknown and this process cannot fetch it"
        )));
    };
    let fetcher = Fetcher::new(client, db, urls, failures, DEFAULT_FETCH_BUDGET);
    let document = fetcher.refresh_actor(&target).await?;
    if document.id != target {
        return Err(Error::EventRefused(format!(
            "report target {target} is served as {}",
            document.id
        )));
    }
    Ok(())
}

/// Whether the operator rejects the server of `target`.
fn rejected(conn: &mut AnyConnection, target: &Url) -> Result<bool, Error> {
    Ok(blocks::instance_block_for(conn, &canonical_host(target))?
        == Some(InstanceBlockSeverity::Reject))
}

/// Stores the report and, when asked, queues its `Flag` (in the event's transaction).
pub fn file(
    conn: &mut AnyConnection,
    report: &ReportCreated,
    urls: &Urls,
    now: i64,
) -> Result<Handled, Error> {
    check(report, urls)?;
    if reports::find(conn, report.report_id.as_str())?.is_some() {
        return Ok(Handled::Ignored);
    }
    let objects: Vec<String> = report.object_urls.iter().map(Url::to_string).collect();
    let (state, flag) = if !report.forward {
        (ReportState::Kept, None)
    } else if rejected(conn, &report.target)? {
        (ReportState::Withheld, None)
    } else {
        let target: RemoteActor = remote_actors::find_by_ap_id(conn, report.target.as_str())?
            .ok_or_else(|| {
                Error::EventRefused(format!("report target {} is unknown", report.target))
            })?;
        let flag =
            flag_activity::forward_report(conn, &target, &objects, &report.comment, urls, now)?;
        (ReportState::Forwarded, Some(flag))
    };
    reports::insert(
        conn,
        &NewReport {
            report_id: report.report_id.as_str(),
            reporter_user_id: report.reporter_id.as_str(),
            target_actor: report.target.as_str(),
            object_urls: &objects,
            comment: &report.comment,
            state,
            flag_ap_id: flag.as_deref(),
        },
        now,
    )?;
    Ok(Handled::Applied)
}
