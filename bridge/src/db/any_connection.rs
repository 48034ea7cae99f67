//! The run-time choice between the two backends.

// The derive generates public helper types (`MultiBackend`, …) that cannot carry docs.
#![allow(missing_docs)]

use diesel::{PgConnection, SqliteConnection};

/// A connection to either backend; queries written once run on both.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// Production backend.
    Postgresql(PgConnection),
    /// Embedded default.
    Sqlite(SqliteConnection),
}
