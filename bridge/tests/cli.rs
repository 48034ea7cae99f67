//! The `fedibridge` binary as an operator meets it: start-up errors, `check`, `migrate`,
//! and `serve` on its embedded defaults.

use std::{
    io::Read,
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_fedibridge");

fn fedibridge(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The developer's own overrides must not leak into these tests.
    for (key, _) in std::env::vars() {
        if key.starts_with("FEDIBRIDGE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn output_of(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().expect("process output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_bind_address_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = fedibridge(dir.path())
        .arg("serve")
        .env("FEDIBRIDGE__SERVER__BIND", "not-an-address")
        .spawn()
        .expect("spawn");
    let (code, _, stderr) = output_of(child);
    assert_ne!(code, 0);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got: {stderr}");
    assert!(
        lines[0].contains("server.bind") && lines[0].contains("not-an-address"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("fedibridge.db").exists(),
        "nothing is created before validation"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = fedibridge(dir.path())
        .args(["--config", "nope.toml", "check"])
        .spawn()
        .expect("spawn");
    let (code, _, stderr) = output_of(child);
    assert_ne!(code, 0);
    assert!(stderr.contains("nope.toml"), "{stderr}");
}

#[test]
fn a_config_file_layers_over_defaults_and_env_over_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bridge.toml"),
        "[database]\nurl = \"sqlite://from-file.db\"\n[server]\nbind = \"bad\"\n",
    )
    .expect("write config");
    // The file's bad bind is overridden from the environment; its database URL is used.
    let child = fedibridge(dir.path())
        .args(["--config", "bridge.toml", "migrate"])
        .env("FEDIBRIDGE__SERVER__BIND", "127.0.0.1:0")
        .spawn()
        .expect("spawn");
    let (code, stdout, stderr) = output_of(child);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(dir.path().join("from-file.db").exists());
    // Without the override, the file's value is refused and named.
    let child = fedibridge(dir.path())
        .args(["--config", "bridge.toml", "check"])
        .spawn()
        .expect("spawn");
    let (code, _, stderr) = output_of(child);
    assert_ne!(code, 0);
    assert!(stderr.contains("server.bind"), "{stderr}");
}

#[test]
fn check_reports_an_unreachable_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = fedibridge(dir.path())
        .arg("check")
        .env(
            "FEDIBRIDGE__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .env("FEDIBRIDGE__DATABASE__CONNECT_TIMEOUT_SECS", "1")
        .spawn()
        .expect("spawn");
    let (code, stdout, _) = output_of(child);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("database: FAILED"), "{stdout}");
    assert!(stdout.contains("127.0.0.1:1"), "{stdout}");
}

#[test]
fn check_reports_an_unreachable_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = fedibridge(dir.path())
        .arg("check")
        .env(
            "FEDIBRIDGE__BROKER__URL",
            "amqp://guest:secret@127.0.0.1:1/%2f",
        )
        .spawn()
        .expect("spawn");
    let (code, stdout, _) = output_of(child);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("database: ok"), "{stdout}");
    assert!(stdout.contains("broker: FAILED"), "{stdout}");
    assert!(
        !stdout.contains("secret"),
        "passwords stay out of output: {stdout}"
    );
}

#[test]
fn serve_runs_on_embedded_defaults_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = fedibridge(dir.path())
        .arg("serve")
        .env("FEDIBRIDGE__SERVER__BIND", format!("127.0.0.1:{port}"))
        .spawn()
        .expect("spawn");

    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
            panic!("serve exited early with {status}: {err}");
        }
        match probe(port, "/readyz") {
            Some(200) => break true,
            _ if Instant::now() > deadline => break false,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(ready, "serve became ready");
    assert_eq!(probe(port, "/healthz"), Some(200));
    assert_eq!(probe(port, "/metrics"), Some(200));
    assert!(
        dir.path().join("fedibridge.db").exists(),
        "the SQLite file is created"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let stopped_by = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < stopped_by,
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful stop exits 0, got {status}");
}

/// Minimal HTTP/1.1 GET so this test needs no HTTP client: returns the status code.
fn probe(port: u16, path: &str) -> Option<u16> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}
