//! A PostgreSQL server of one test's own: `initdb` into a temporary directory, trust
//! authentication, a free port on 127.0.0.1, stopped and started with `pg_ctl`.

use std::{path::PathBuf, process::Command};

use diesel::{Connection, PgConnection, RunQueryDsl};

use super::{
    binaries_available, find_bin_dir, free_port, reap_after_exit, run, running_as_root,
    shell_quote, tail,
};
use crate::TestDatabase;

/// The OS user that owns the cluster when the tests run as root (PostgreSQL refuses root).
const SERVICE_USER: &str = "postgres";

/// How `pg_ctl stop` ends the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Disconnects every session, checkpoints, exits: an orderly restart.
    Fast,
    /// Every process quits at once with no checkpoint; the next start recovers from the WAL,
    /// as after a crash.
    Immediate,
}

impl StopMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

/// A running (or deliberately stopped) private PostgreSQL server; removed on drop.
pub struct DisposablePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl DisposablePostgres {
    /// Creates and starts a cluster; `None` (with a message) when PostgreSQL is not
    /// installed, except under `CI=true`, where that panics. Any other failure panics.
    /// Blocking (about a second): call it through `block_in_place` from async code.
    pub fn start() -> Option<Self> {
        let bin = find_bin_dir(&candidates(), &["initdb", "pg_ctl", "postgres"]);
        if !binaries_available("PostgreSQL", bin.is_some()) {
            return None;
        }
        let bin = bin.expect("checked above");
        let dir = tempfile::Builder::new()
            .prefix("fbtest-pg-")
            .tempdir()
            .expect("temporary directory");
        if running_as_root() {
            let owned = Command::new("chown")
                .arg(format!("{SERVICE_USER}:"))
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                owned,
                "cannot hand {} to the {SERVICE_USER} user",
                dir.path().display()
            );
        }
        let data = dir.path().join("data");
        run(
            Some(SERVICE_USER),
            dir.path(),
            &[],
            &bin.join("initdb"),
            &[
                "-D",
                &data.to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .unwrap_or_else(|e| panic!("initdb: {e}"));
        let stop = format!(
            "{} {} -D {} -m immediate stop; rm -rf {}",
            if running_as_root() {
                format!("runuser -u {SERVICE_USER} --")
            } else {
                String::new()
            },
            shell_quote(&bin.join("pg_ctl").to_string_lossy()),
            shell_quote(&data.to_string_lossy()),
            shell_quote(&dir.path().to_string_lossy()),
        );
        reap_after_exit(&stop);

        let mut server = Self { bin, dir, port: 0 };
        // A free port can be taken between the probe and the bind; try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            server.port = free_port();
            match server.pg_ctl_start() {
                Ok(()) => return Some(server),
                Err(error) => last_error = error,
            }
        }
        panic!("the disposable PostgreSQL did not start: {last_error}");
    }

    /// `postgres://postgres@127.0.0.1:PORT/{database}`
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database on this server, for [`crate::test_settings`].
    pub fn database(&self) -> TestDatabase {
        let name = format!("fedibridge_f_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&self.url("postgres")).expect("admin connection");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create database");
        TestDatabase::at(self.url(&name))
    }

    /// Stops the server (blocking until it is down).
    pub fn stop(&self, mode: StopMode) {
        self.pg_ctl(&["-m", mode.as_str(), "stop"])
            .unwrap_or_else(|e| panic!("pg_ctl stop: {e}"));
    }

    /// Starts the stopped server again on the same port (blocking until it accepts
    /// connections, crash recovery included).
    pub fn start_again(&self) {
        self.pg_ctl_start()
            .unwrap_or_else(|e| panic!("pg_ctl start: {e}"));
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        // fsync off: the faults tested are process crashes, after which the operating
        // system still holds every write; durability across power loss is not in scope.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.pg_ctl(&["-o", &options, "-l", &log.to_string_lossy(), "start"])
            .map_err(|e| format!("{e}\n--- server log ---\n{}", tail(&log)))
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let data = self.dir.path().join("data");
        let mut all = vec!["-D", data.to_str().expect("UTF-8 path"), "-w", "-t", "60"];
        all.extend_from_slice(args);
        run(
            Some(SERVICE_USER),
            self.dir.path(),
            &[],
            &self.bin.join("pg_ctl"),
            &all,
        )
        .map(|_| ())
    }
}

impl Drop for DisposablePostgres {
    fn drop(&mut self) {
        // Already stopped by the test is fine; the directory goes with `dir`.
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

/// Where PostgreSQL's server binaries may be: `FEDIBRIDGE_TEST_PG_BIN`, Debian's
/// versioned directories (newest first), then `PATH`.
fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(dir) = std::env::var("FEDIBRIDGE_TEST_PG_BIN") {
        dirs.push(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    dirs.extend(versions.into_iter().map(|(_, dir)| dir));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}
