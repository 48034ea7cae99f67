//! Domain blocklists in the CSV format the fediverse shares them in.
//!
//! Read:
//! - Mastodon's domain block export: a header row
//!   `#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate`
//!   (columns found by name, in any order; the same names without `#` work too);
//! - the same columns without a header, in that order (`domain[,severity]` is enough);
//! - a plain list, one domain per line; lines starting with `#` are comments.
//!
//! Mastodon's severities map onto the bridge's: `suspend` → `reject` (nothing from the
//! server is accepted), `silence` → `follows_only` (its accounts cannot follow; the
//! nearest the bridge has to "limited", whose posts only followers see), `noop` → skipped
//! (such rows only carry media or report options). A missing severity is `suspend`, as in
//! Mastodon's importer. The bridge's own names (`reject`, `follows_only`, `follows-only`)
//! are read too. Export writes Mastodon's format, so an export imports back unchanged.

use csv::{ReaderBuilder, Trim, WriterBuilder};

use super::domain::BlockDomain;
use crate::{db::blocks::InstanceBlockSeverity, error::Error};

/// Longest comment kept from a list, in characters; the rest is cut off.
pub const MAX_COMMENT: usize = 1_000;

/// Mastodon's export header.
const MASTODON_HEADER: [&str; 6] = [
    "#domain",
    "#severity",
    "#reject_media",
    "#reject_reports",
    "#public_comment",
    "#obfuscate",
];

/// What a list asks for one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedSeverity {
    /// Block with this severity.
    Block(InstanceBlockSeverity),
    /// Mastodon's `noop`: listed, but not blocked.
    Noop,
}

impl ListedSeverity {
    /// Reads a severity cell; empty is `suspend`.
    pub fn parse(cell: &str) -> Option<Self> {
        Some(match cell.trim().to_ascii_lowercase().as_str() {
            "" | "suspend" | "reject" => Self::Block(InstanceBlockSeverity::Reject),
            "silence" | "follows_only" | "follows-only" => {
                Self::Block(InstanceBlockSeverity::FollowsOnly)
            }
            "noop" => Self::Noop,
            _ => return None,
        })
    }
}

/// Mastodon's name for a bridge severity.
pub fn mastodon_severity(severity: InstanceBlockSeverity) -> &'static str {
    match severity {
        InstanceBlockSeverity::Reject => "suspend",
        InstanceBlockSeverity::FollowsOnly => "silence",
    }
}

/// One usable row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlock {
    /// Line number in the file (1-based).
    pub line: u64,
    /// The domain, normalized.
    pub domain: BlockDomain,
    /// What to do with it.
    pub severity: ListedSeverity,
    /// The list's public comment, if any.
    pub comment: Option<String>,
}

/// One row that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InvalidLine {
    /// Line number in the file (1-based).
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// A whole list: the usable rows in file order and the refused ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocklist {
    /// Usable rows.
    pub entries: Vec<ListedBlock>,
    /// Refused rows.
    pub invalid: Vec<InvalidLine>,
}

/// Where each column is.
#[derive(Debug, Clone, Copy)]
struct Columns {
    domain: usize,
    severity: Option<usize>,
    comment: Option<usize>,
}

impl Columns {
    /// Mastodon's order, for lists without a header.
    const POSITIONAL: Self = Self {
        domain: 0,
        severity: Some(1),
        comment: Some(4),
    };

    /// The columns named by a header row, if `record` is one (its first cell is `domain`).
    fn from_header(record: &csv::StringRecord) -> Option<Self> {
        let names: Vec<String> = record
            .iter()
            .map(|cell| cell.trim().trim_start_matches('#').to_ascii_lowercase())
            .collect();
        if names.first().map(String::as_str) != Some("domain") {
            return None;
        }
        let find = |name: &str| names.iter().position(|n| n == name);
        Some(Self {
            domain: 0,
            severity: find("severity"),
            comment: find("public_comment").or_else(|| find("comment")),
        })
    }
}

/// Reads a blocklist. Never fails as a whole: each row is either usable or reported with
/// its line number.
pub fn parse(input: &[u8]) -> Blocklist {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(Trim::All)
        .from_reader(input);
    // A record's position is where the reader started on it, before the blank lines (and
    // the LF of a CRLF) it skipped, so its own line count is off; the first byte after
    // them gives the record's real line.
    let newlines: Vec<usize> = input
        .iter()
        .enumerate()
        .filter_map(|(i, b)| (*b == b'\n').then_some(i))
        .collect();
    let line_at = |position: Option<&csv::Position>, fallback: u64| {
        position.map_or(fallback, |p| {
            let mut byte = usize::try_from(p.byte()).unwrap_or(usize::MAX);
            while matches!(input.get(byte), Some(b'\r' | b'\n')) {
                byte += 1;
            }
            newlines.partition_point(|&n| n < byte) as u64 + 1
        })
    };
    let mut list = Blocklist::default();
    let mut columns: Option<Columns> = None;
    let mut record = csv::StringRecord::new();
    loop {
        let line = line_at(Some(reader.position()), 0);
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => {
                let line = line_at(error.position(), line);
                let unreadable = !matches!(error.kind(), csv::ErrorKind::Utf8 { .. });
                list.invalid.push(InvalidLine {
                    line,
                    reason: format!("unreadable: {error}"),
                });
                if unreadable {
                    break;
                }
                continue;
            }
        }
        let line = line_at(record.position(), line);
        let first = record.get(0).unwrap_or_default();
        if record.iter().all(str::is_empty) {
            continue;
        }
        let cols = match columns {
            Some(cols) => cols,
            None => match Columns::from_header(&record) {
                Some(cols) => {
                    columns = Some(cols);
                    continue;
                }
                None => *columns.insert(Columns::POSITIONAL),
            },
        };
        // Plain lists use `#` for comments; a header, if any, was the first row.
        if first.starts_with('#') {
            continue;
        }
        match row(&record, cols) {
            Ok((domain, severity, comment)) => list.entries.push(ListedBlock {
                line,
                domain,
                severity,
                comment,
            }),
            Err(reason) => list.invalid.push(InvalidLine { line, reason }),
        }
    }
    list
}

fn row(
    record: &csv::StringRecord,
    cols: Columns,
) -> Result<(BlockDomain, ListedSeverity, Option<String>), String> {
    let cell = |index: Option<usize>| index.and_then(|i| record.get(i)).unwrap_or_default();
    let raw_domain = cell(Some(cols.domain));
    let domain = BlockDomain::parse(raw_domain).map_err(|e| format!("`{raw_domain}`: {e}"))?;
    let raw_severity = cell(cols.severity);
    let severity = ListedSeverity::parse(raw_severity).ok_or_else(|| {
        format!("`{domain}`: unknown severity `{raw_severity}` (expected suspend, silence or noop)")
    })?;
    let comment = Some(cell(cols.comment))
        .filter(|c| !c.is_empty())
        .map(|c| c.chars().take(MAX_COMMENT).collect());
    Ok((domain, severity, comment))
}

/// One block as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow<'a> {
    /// The domain.
    pub domain: &'a str,
    /// Its severity.
    pub severity: InstanceBlockSeverity,
    /// Its comment.
    pub comment: Option<&'a str>,
}

/// Writes blocks in Mastodon's export format.
pub fn export<'a>(rows: impl IntoIterator<Item = ExportRow<'a>>) -> Result<Vec<u8>, Error> {
    let mut writer = WriterBuilder::new().from_writer(Vec::new());
    let csv_error = |e: csv::Error| Error::Storage(format!("CSV: {e}"));
    writer.write_record(MASTODON_HEADER).map_err(csv_error)?;
    for row in rows {
        writer
            .write_record([
                row.domain,
                mastodon_severity(row.severity),
                "false",
                "false",
                row.comment.unwrap_or_default(),
                "false",
            ])
            .map_err(csv_error)?;
    }
    writer
        .into_inner()
        .map_err(|e| Error::Storage(format!("CSV: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(list: &Blocklist) -> Vec<(u64, &str, ListedSeverity, Option<&str>)> {
        list.entries
            .iter()
            .map(|e| (e.line, e.domain.as_str(), e.severity, e.comment.as_deref()))
            .collect()
    }

    const REJECT: ListedSeverity = ListedSeverity::Block(InstanceBlockSeverity::Reject);
    const FOLLOWS_ONLY: ListedSeverity = ListedSeverity::Block(InstanceBlockSeverity::FollowsOnly);

    #[test]
    fn mastodon_exports_map_suspend_silence_and_noop() {
        let list = parse(
            b"#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n\
              Spam.Example,suspend,true,true,\"Spam, lots\",false\n\
              loud.example,silence,false,false,,false\n\
              media.example,noop,true,false,Media only,false\n",
        );
        assert_eq!(list.invalid, vec![]);
        assert_eq!(
            domains(&list),
            vec![
                (2, "spam.example", REJECT, Some("Spam, lots")),
                (3, "loud.example", FOLLOWS_ONLY, None),
                (4, "media.example", ListedSeverity::Noop, Some("Media only")),
            ]
        );
    }

    #[test]
    fn headers_without_hash_in_any_order_are_read_by_name() {
        let list = parse(b"domain,public_comment,severity\nbad.example,Harassment,silence\n");
        assert_eq!(
            domains(&list),
            vec![(2, "bad.example", FOLLOWS_ONLY, Some("Harassment"))]
        );
    }

    #[test]
    fn plain_lists_default_to_reject_and_skip_comments_and_blank_lines() {
        let list =
            parse("# my list\n\nbad.example\r\nBücher.example.\n  other.example  \n\n".as_bytes());
        assert_eq!(list.invalid, vec![]);
        assert_eq!(
            domains(&list),
            vec![
                (3, "bad.example", REJECT, None),
                (4, "xn--bcher-kva.example", REJECT, None),
                (5, "other.example", REJECT, None),
            ]
        );
    }

    #[test]
    fn headerless_rows_use_mastodons_column_order() {
        let list = parse(b"a.example,silence\nb.example,suspend,false,false,Spam,false\n");
        assert_eq!(
            domains(&list),
            vec![
                (1, "a.example", FOLLOWS_ONLY, None),
                (2, "b.example", REJECT, Some("Spam")),
            ]
        );
    }

    #[test]
    fn garbage_and_wildcards_are_reported_with_their_line() {
        let list = parse(
            b"#domain,#severity\n\
              good.example,suspend\n\
              *.wild.example,suspend\n\
              ex**ple.com,silence\n\
              https://url.example/,suspend\n\
              odd.example,explode\n\
              1.2.3.4,suspend\n\
              fine.example,\n",
        );
        assert_eq!(
            domains(&list),
            vec![
                (2, "good.example", REJECT, None),
                (8, "fine.example", REJECT, None),
            ]
        );
        let lines: Vec<u64> = list.invalid.iter().map(|i| i.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 6, 7]);
        assert!(
            list.invalid[0].reason.contains("wildcard"),
            "{:?}",
            list.invalid
        );
        assert!(
            list.invalid[3].reason.contains("explode"),
            "{:?}",
            list.invalid
        );
    }

    #[test]
    fn invalid_utf8_costs_one_line_not_the_file() {
        let list = parse(b"a.example\nb\xFF.example\nc.example\n");
        assert_eq!(list.entries.len(), 2);
        assert_eq!(list.invalid.len(), 1);
        assert_eq!(list.invalid[0].line, 2);
    }

    #[test]
    fn long_comments_are_cut() {
        let input = format!("domain,public_comment\na.example,{}\n", "x".repeat(5000));
        let list = parse(input.as_bytes());
        assert_eq!(
            list.entries[0].comment.as_ref().map(|c| c.chars().count()),
            Some(MAX_COMMENT)
        );
    }

    #[test]
    fn an_export_reads_back_as_the_same_blocks() {
        let bytes = export([
            ExportRow {
                domain: "a.example",
                severity: InstanceBlockSeverity::Reject,
                comment: Some("spam, \"quoted\""),
            },
            ExportRow {
                domain: "b.example",
                severity: InstanceBlockSeverity::FollowsOnly,
                comment: None,
            },
        ])
        .expect("export");
        let text = String::from_utf8(bytes.clone()).expect("UTF-8");
        assert!(text.starts_with(
            "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n"
        ));
        let list = parse(&bytes);
        assert_eq!(
            domains(&list),
            vec![
                (2, "a.example", REJECT, Some("spam, \"quoted\"")),
                (3, "b.example", FOLLOWS_ONLY, None),
            ]
        );
    }
}
