//! Disposable PostgreSQL servers and RabbitMQ nodes that fault-injection tests may stop,
//! crash, block and restart, without ever touching the shared services on 5432 and 5672
//! that other tests (and people) use at the same time.
//!
//! Each is started from the installed binaries into a temporary directory, on free ports.
//! When the binaries are missing a test skips with a message, except under `CI=true`, where
//! it fails. Everything is removed on drop, and a small reaper process removes it too if
//! the test process dies without unwinding (aborted, killed by a timeout).

mod postgres;
mod rabbitmq;

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

pub use postgres::{DisposablePostgres, StopMode};
pub use rabbitmq::{RabbitLease, RabbitNode};

use crate::services_required;

/// Longest any one control command (initdb, pg_ctl, rabbitmqctl) may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(90);

/// Returns `true` when `binary` was found; otherwise skips (locally) or panics (CI).
fn binaries_available(service: &str, found: bool) -> bool {
    if found {
        return true;
    }
    assert!(
        !services_required(),
        "{service} binaries are required under CI=true but were not found"
    );
    eprintln!("SKIPPED: {service} binaries not found (set CI=true to make this a failure)");
    false
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Whether this process runs as root (then servers run as their own service users).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user of the process that looks at it.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `program args…` in `cwd`, bounded by [`COMMAND_LIMIT`] (through coreutils'
/// `timeout`), with `env` added, optionally as `user` (through `runuser` when we are root).
fn run(
    user: Option<&str>,
    cwd: &Path,
    env: &[(String, String)],
    program: &Path,
    args: &[&str],
) -> Result<Output, String> {
    let limit = COMMAND_LIMIT.as_secs().to_string();
    let mut command = match user.filter(|_| running_as_root()) {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--", "timeout", &limit]);
            c
        }
        None => {
            let mut c = Command::new("timeout");
            c.arg(&limit);
            c
        }
    };
    command
        .arg(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null());
    let output = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{} {} failed ({}): {}{}",
            program.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Starts a detached shell that waits for this test process to end and then runs
/// `cleanup`: the last line of defence when a test is killed before its drops run.
fn reap_after_exit(cleanup: &str) {
    let pid = std::process::id();
    let script = format!("while kill -0 {pid} 2>/dev/null; do sleep 1; done; {cleanup}");
    // setsid: a signal to the test's process group (Ctrl-C, a CI timeout) spares it.
    let spawned = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        // Not waited for: it outlives this process on purpose, and init reaps it.
        Ok(child) => drop(child),
        Err(error) => eprintln!("note: no reaper for disposable services ({error})"),
    }
}

/// The first directory among `candidates` that holds every one of `binaries`.
fn find_bin_dir(candidates: &[PathBuf], binaries: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .find(|dir| binaries.iter().all(|b| dir.join(b).is_file()))
        .cloned()
}

/// Single-quotes `text` for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The last lines of a log file, for failure messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
