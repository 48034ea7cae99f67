//! A fresh database per scenario run: a new PostgreSQL database (dropped afterwards) or a
//! SQLite file in a temporary directory.

use diesel::{Connection, PgConnection, RunQueryDsl};

use crate::error::Error;

/// Which storage backend a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Short name for result keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A database that exists for one run and is removed when dropped.
pub struct ScratchDatabase {
    /// URL for `database.url`.
    pub url: String,
    admin_url: String,
    postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl ScratchDatabase {
    /// Creates a fresh database on `backend`; `admin_url` is a PostgreSQL URL allowed to
    /// `CREATE DATABASE`.
    pub fn create(backend: Backend, admin_url: &str) -> Result<Self, Error> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Ok(Self {
                    url,
                    admin_url: admin_url.to_owned(),
                    postgres_name: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let mut conn = PgConnection::establish(admin_url)?;
                let name = format!("fedibridge_bench_{}", uuid::Uuid::new_v4().simple());
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
                let mut url = url::Url::parse(admin_url)
                    .map_err(|e| Error::Database(format!("admin URL: {e}")))?;
                url.set_path(&name);
                Ok(Self {
                    url: url.to_string(),
                    admin_url: admin_url.to_owned(),
                    postgres_name: Some(name),
                    _dir: None,
                })
            }
        }
    }
}

/// Writes out what earlier scenarios left dirty in PostgreSQL (`CHECKPOINT`), so that the
/// next scenario is not charged for their writes (S6 alone leaves hundreds of MB). Best
/// effort: a server that cannot be reached fails the scenario that needs it, not this.
pub fn settle(admin_url: &str) {
    if let Ok(mut conn) = PgConnection::establish(admin_url) {
        let _ = diesel::sql_query("CHECKPOINT").execute(&mut conn);
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres_name
            && let Ok(mut conn) = PgConnection::establish(&self.admin_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}
