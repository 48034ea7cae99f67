//! Reports of remote accounts filed by platform users, and whether each was forwarded.

use diesel::prelude::*;

use super::{AnyConnection, schema::platform_reports};
use crate::error::Error;

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportState {
    /// The platform did not ask to forward it.
    Kept,
    /// Sent to the account's server as a `Flag`.
    Forwarded,
    /// Not sent: the operator rejects the account's server, which is never contacted.
    Withheld,
}

impl ReportState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::Forwarded => "forwarded",
            Self::Withheld => "withheld",
        }
    }
}

/// A stored report.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = platform_reports)]
pub struct StoredReport {
    /// Row id.
    pub id: i64,
    /// The platform's report id.
    pub report_id: String,
    /// The platform's reporter (never sent out).
    pub reporter_user_id: String,
    /// The reported actor.
    pub target_actor: String,
    /// JSON list of the reported posts.
    pub object_urls: String,
    /// The reporter's comment.
    pub comment: String,
    /// [`ReportState`] as stored.
    pub state: String,
    /// The `Flag` sent, when forwarded.
    pub flag_ap_id: Option<String>,
    /// When it arrived (ms).
    pub created_at: i64,
}

/// A report to store.
#[derive(Debug, Clone)]
pub struct NewReport<'a> {
    /// The platform's report id.
    pub report_id: &'a str,
    /// The platform's reporter.
    pub reporter_user_id: &'a str,
    /// The reported actor.
    pub target_actor: &'a str,
    /// The reported posts.
    pub object_urls: &'a [String],
    /// The comment.
    pub comment: &'a str,
    /// What became of it.
    pub state: ReportState,
    /// The `Flag` sent.
    pub flag_ap_id: Option<&'a str>,
}

/// Stores a report.
pub fn insert(conn: &mut AnyConnection, report: &NewReport<'_>, now: i64) -> Result<(), Error> {
    let objects =
        serde_json::to_string(report.object_urls).map_err(|e| Error::Storage(e.to_string()))?;
    diesel::insert_into(platform_reports::table)
        .values((
            platform_reports::report_id.eq(report.report_id),
            platform_reports::reporter_user_id.eq(report.reporter_user_id),
            platform_reports::target_actor.eq(report.target_actor),
            platform_reports::object_urls.eq(objects),
            platform_reports::comment.eq(report.comment),
            platform_reports::state.eq(report.state.as_str()),
            platform_reports::flag_ap_id.eq(report.flag_ap_id),
            platform_reports::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The report with the platform's id `report_id`.
pub fn find(conn: &mut AnyConnection, report_id: &str) -> Result<Option<StoredReport>, Error> {
    Ok(platform_reports::table
        .filter(platform_reports::report_id.eq(report_id))
        .select(StoredReport::as_select())
        .first(conn)
        .optional()?)
}
