//! Storage: one diesel code base on SQLite (embedded default) and PostgreSQL (production).
//!
//! The backend is chosen at run time from `database.url`. Diesel is synchronous, so every
//! query runs on tokio's blocking pool through [`Database::run`] and [`Database::write`];
//! async I/O threads never wait on the database.

/// Runs the same diesel expression on whichever backend `conn` is, for the few query
/// fragments (`ON CONFLICT`, …) that diesel cannot express for both at once.
macro_rules! with_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::AnyConnection::Postgresql($c) => $body,
            $crate::db::AnyConnection::Sqlite($c) => $body,
        }
    };
}

pub mod activities;
mod any_connection;
pub mod audit;
pub mod blocks;
pub mod dedupe;
pub mod deliveries;
pub mod follower_list;
pub mod follows;
pub mod hosts;
pub mod interactions;
pub mod keys;
pub mod ledger;
pub mod outbox;
pub mod posts;
pub mod remote_actors;
mod replanned;
pub mod reports;
pub mod schema;
pub mod user_blocks;
pub mod users;

pub use any_connection::AnyConnection;

use std::time::{Duration, Instant};

use diesel::{
    Connection, PgConnection, SqliteConnection,
    connection::{AnsiTransactionManager, SimpleConnection, TransactionManager},
    r2d2::{self, ManageConnection},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::{error::Error, settings::DatabaseSettings};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A validated `database.url`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// Path of the SQLite file.
    Sqlite(String),
    /// libpq connection URL.
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH`, `sqlite:PATH`, `postgres://…` or `postgresql://…`.
    ///
    /// The scheme decides the backend: diesel's own fallback would open any string as a
    /// SQLite file, so a mistyped PostgreSQL URL must never reach it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Some(rest) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                return Err("sqlite URL needs a file path, e.g. sqlite://fedibridge.db".into());
            }
            return Ok(Self::Sqlite(rest.to_owned()));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let parsed =
                url::Url::parse(raw).map_err(|e| format!("not a valid PostgreSQL URL ({e})"))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err("PostgreSQL URL needs a host".into());
            }
            return Ok(Self::Postgres(raw.to_owned()));
        }
        Err(format!(
            "'{}' is not supported: use sqlite://PATH or postgres://USER@HOST/DB",
            Self::redact(raw)
        ))
    }

    /// The engine behind this URL.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL without its password, for logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{path}"),
            Self::Postgres(url) => Self::redact(url),
        }
    }

    fn redact(raw: &str) -> String {
        match url::Url::parse(raw) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => raw.to_owned(),
        }
    }
}

/// A connection used within this long is not tested (`SELECT 1`) when checked out again:
/// that test was one more round trip for every query. A connection that failed because it
/// is gone is not reused either way (see [`ConnectionManager::has_broken`]).
const TRUSTED_FOR: Duration = Duration::from_secs(2);

/// A pooled connection, with what the pool needs to decide whether to reuse it.
pub struct PooledConnection {
    conn: AnyConnection,
    last_used: Instant,
    broken: bool,
}

impl PooledConnection {
    /// Runs `f` on the connection and remembers the outcome: used now, and broken when the
    /// error says the connection itself is gone.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let result = f(&mut self.conn);
        if let Err(Error::Database(error)) = &result
            && connection_lost(error)
        {
            self.broken = true;
        }
        self.last_used = Instant::now();
        result
    }
}

/// Whether a failed statement means the connection is unusable.
fn connection_lost(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ClosedConnection,
            _
        ) | diesel::result::Error::BrokenTransactionManager
    )
}

/// Opens connections for the pool, applying per-connection settings.
#[derive(Debug)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    sqlite_busy_timeout_ms: u64,
    connect_timeout_secs: u64,
}

impl ConnectionManager {
    fn open(&self) -> Result<AnyConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let url = with_connect_timeout(url, self.connect_timeout_secs);
                PgConnection::establish(&url)
                    .map(AnyConnection::Postgresql)
                    .map_err(r2d2::Error::ConnectionError)
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn =
                    SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
                // busy_timeout first, so that switching to WAL waits for other writers.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                    self.sqlite_busy_timeout_ms
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = PooledConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<PooledConnection, r2d2::Error> {
        Ok(PooledConnection {
            conn: self.open()?,
            last_used: Instant::now(),
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut PooledConnection) -> Result<(), r2d2::Error> {
        if conn.last_used.elapsed() < TRUSTED_FOR {
            return Ok(());
        }
        // Idle for a while: the server may have closed it meanwhile (restart, idle timeout).
        conn.conn
            .batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)?;
        conn.last_used = Instant::now();
        Ok(())
    }

    /// A connection that lost its server, or was handed back inside a transaction (a
    /// panic), is dropped rather than reused.
    fn has_broken(&self, conn: &mut PooledConnection) -> bool {
        conn.broken
            || std::thread::panicking()
            || diesel::r2d2::R2D2Connection::is_broken(&mut conn.conn)
    }
}

fn with_connect_timeout(url: &str, secs: u64) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={secs}")
}

/// The connection pool and the only door to it from async code.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<ConnectionManager>,
    url: DatabaseUrl,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("url", &self.url).finish()
    }
}

impl Database {
    /// Builds the pool without connecting: an unreachable database is reported by
    /// [`Database::ping`] and by the first query, not by construction.
    pub fn new(settings: &DatabaseSettings) -> Result<Self, Error> {
        let url = settings
            .parsed_url()
            .map_err(|e| Error::Storage(e.to_string()))?;
        let manager = ConnectionManager {
            url: url.clone(),
            sqlite_busy_timeout_ms: settings.sqlite_busy_timeout_ms,
            connect_timeout_secs: settings.connect_timeout_secs,
        };
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .test_on_check_out(true)
            .build_unchecked(manager);
        Ok(Self { pool, url })
    }

    /// The engine in use.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The URL, password removed.
    pub fn redacted_url(&self) -> String {
        self.url.redacted()
    }

    /// Pool occupancy: (open connections, idle connections).
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            conn.with(f)
        })
        .await
        .map_err(|e| {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic())
            }
            Error::Storage("database task was cancelled".into())
        })?
    }

    /// Runs `f` inside one write transaction on the blocking pool: all or nothing.
    pub async fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |conn| write_transaction(conn, f)).await
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), Error> {
        self.run(|conn| Ok(conn.batch_execute("SELECT 1")?)).await
    }

    /// Applies pending migrations; returns how many ran. Blocking: call before serving.
    pub fn migrate_blocking(&self) -> Result<usize, Error> {
        let mut conn = self.pool.get()?;
        conn.with(run_migrations)
    }

    /// Applies pending migrations on the blocking pool.
    pub async fn migrate(&self) -> Result<usize, Error> {
        self.run(run_migrations).await
    }

    /// Versions of migrations not yet applied.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, Error> {
        self.run(|conn| {
            let versions = match conn {
                AnyConnection::Sqlite(c) => c
                    .pending_migrations(SQLITE_MIGRATIONS)
                    .map(|p| p.iter().map(|m| m.name().version().to_string()).collect()),
                AnyConnection::Postgresql(c) => c
                    .pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|p| p.iter().map(|m| m.name().version().to_string()).collect()),
            };
            versions.map_err(|e| Error::Migration(e.to_string()))
        })
        .await
    }

    /// Reverts every migration (tests check that down migrations are sound).
    pub async fn revert_all_migrations(&self) -> Result<usize, Error> {
        self.run(|conn| {
            let reverted = match conn {
                AnyConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS),
                AnyConnection::Postgresql(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS),
            }
            .map_err(|e| Error::Migration(e.to_string()))?;
            Ok(reverted.len())
        })
        .await
    }
}

fn run_migrations(conn: &mut AnyConnection) -> Result<usize, Error> {
    let applied = match conn {
        AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        AnyConnection::Postgresql(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
    }
    .map_err(|e| Error::Migration(e.to_string()))?;
    Ok(applied.len())
}

/// Runs `f` in a transaction that holds the write lock from its first statement.
///
/// On SQLite a deferred transaction that reads and then writes can fail with `SQLITE_BUSY`
/// when another writer got in between; `BEGIN IMMEDIATE` takes the lock up front and waits
/// for it under `busy_timeout` instead.
pub fn write_transaction<T, F>(conn: &mut AnyConnection, f: F) -> Result<T, Error>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, Error>,
{
    match conn {
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        AnyConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            <AnyConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            // The original error matters more than a failed rollback; a connection left in a
            // transaction is dropped by the pool when handed back (`has_broken`).
            let _ = <AnyConnection as Connection>::TransactionManager::rollback_transaction(conn);
            Err(error)
        }
    }
}

/// Whether a diesel error is a unique-constraint violation (an idempotent duplicate).
pub fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Bound parameters one statement may carry on both backends: PostgreSQL's protocol allows
/// 65,535 and the bundled SQLite 32,766; multi-row statements are cut to stay under this.
const MAX_BIND_PARAMS: usize = 30_000;

/// How many rows of `columns` bound values one multi-row statement may hold.
pub(crate) fn rows_per_statement(columns: usize) -> usize {
    (MAX_BIND_PARAMS / columns.max(1)).max(1)
}

/// Current time in UTC milliseconds, the unit of every time column.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend_by_scheme() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://fedibridge.db"),
            Ok(DatabaseUrl::Sqlite("fedibridge.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:/tmp/x.db"),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://root@127.0.0.1/test").map(|u| u.backend()),
            Ok(Backend::Postgres)
        );
        assert!(DatabaseUrl::parse("fedibridge.db").is_err());
        assert!(DatabaseUrl::parse("mysql://x/y").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn passwords_never_reach_messages() {
        let url = DatabaseUrl::parse("postgres://u:secret@db/x").expect("valid");
        assert!(!url.redacted().contains("secret"));
        assert!(!format!("{url:?}").contains("secret"));
        let err = DatabaseUrl::parse("mysql://u:secret@db/x").expect_err("refused");
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn connect_timeout_is_added_once() {
        assert_eq!(
            with_connect_timeout("postgres://h/d", 5),
            "postgres://h/d?connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/d?sslmode=disable", 5),
            "postgres://h/d?sslmode=disable&connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://h/d?connect_timeout=1", 5),
            "postgres://h/d?connect_timeout=1"
        );
    }
}
