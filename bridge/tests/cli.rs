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

/// Runs `fedibridge ARGS` in `dir` on its SQLite file; returns (exit code, stdout, stderr).
fn run_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let child = fedibridge(dir).args(args).spawn().expect("spawn");
    output_of(child)
}

#[test]
fn server_blocks_are_added_listed_exported_and_lifted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, stdout, stderr) = run_in(
        dir.path(),
        &[
            "blocks",
            "add",
            "Evil.Example.",
            "--comment",
            "spam, mostly",
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("evil.example: blocked (reject)"),
        "{stdout}"
    );
    let (code, stdout, _) = run_in(
        dir.path(),
        &[
            "blocks",
            "add",
            "bücher.example",
            "--severity",
            "follows-only",
        ],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("xn--bcher-kva.example"), "{stdout}");

    // Wildcards and URLs are refused, and nothing is stored for them.
    for bad in ["*.evil.example", "https://evil.example/"] {
        let (code, _, stderr) = run_in(dir.path(), &["blocks", "add", bad]);
        assert_ne!(code, 0, "{bad} accepted");
        assert!(stderr.contains(bad), "{stderr}");
    }

    let (code, stdout, _) = run_in(dir.path(), &["blocks", "list"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("DOMAIN"), "{stdout}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let (_, stdout, _) = run_in(dir.path(), &["blocks", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout).expect("JSON list");
    let rows: Vec<(&str, &str, Option<&str>)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|b| {
            (
                b["domain"].as_str().expect("domain"),
                b["severity"].as_str().expect("severity"),
                b["comment"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("evil.example", "reject", Some("spam, mostly")),
            ("xn--bcher-kva.example", "follows_only", None),
        ]
    );

    let (code, stdout, _) = run_in(dir.path(), &["blocks", "export"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n\
         evil.example,suspend,false,false,\"spam, mostly\",false\n\
         xn--bcher-kva.example,silence,false,false,,false\n"
    );

    let (code, stdout, _) = run_in(dir.path(), &["blocks", "remove", "EVIL.example"]);
    assert_eq!(code, 0, "{stdout}");
    let (code, stdout, _) = run_in(dir.path(), &["blocks", "remove", "evil.example"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("not blocked"), "{stdout}");
}

const MASTODON_EXPORT: &str = "\
#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate
spam.example,suspend,true,true,Spam farm,false
loud.example,silence,false,false,,false
*.wild.example,suspend,false,false,,false
media.example,noop,true,false,,false
not a domain,suspend,false,false,,false
";

#[test]
fn a_mastodon_blocklist_imports_once_and_names_its_bad_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("blocks.csv"), MASTODON_EXPORT).expect("write list");

    // A dry run reports and changes nothing.
    let (code, stdout, stderr) =
        run_in(dir.path(), &["blocks", "import", "blocks.csv", "--dry-run"]);
    assert_eq!(code, 1, "bad lines make the exit code 1: {stdout}{stderr}");
    assert!(
        stdout.contains(
            "dry run, nothing changed: added 2, updated 0, unchanged 0, skipped 1, invalid 2"
        ),
        "{stdout}"
    );
    let (_, stdout, _) = run_in(dir.path(), &["blocks", "list"]);
    assert!(stdout.contains("no server blocks"), "{stdout}");

    let (code, stdout, stderr) = run_in(dir.path(), &["blocks", "import", "blocks.csv"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("added 2, updated 0, unchanged 0, skipped 1, invalid 2"),
        "{stdout}"
    );
    assert!(stderr.contains("line 4: refused"), "{stderr}");
    assert!(stderr.contains("line 6: refused"), "{stderr}");
    let (_, stdout, _) = run_in(dir.path(), &["blocks", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let severities: Vec<(&str, &str)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|b| {
            (
                b["domain"].as_str().expect("d"),
                b["severity"].as_str().expect("s"),
            )
        })
        .collect();
    assert_eq!(
        severities,
        vec![("loud.example", "follows_only"), ("spam.example", "reject")]
    );

    // Again: nothing changes.
    let (_, stdout, _) = run_in(dir.path(), &["blocks", "import", "blocks.csv"]);
    assert!(
        stdout.contains("added 0, updated 0, unchanged 2, skipped 1, invalid 2"),
        "{stdout}"
    );

    // A list never weakens a block, but makes a weaker one stricter.
    std::fs::write(dir.path().join("plain.txt"), "# plain list\nloud.example\n")
        .expect("write list");
    std::fs::write(
        dir.path().join("weaker.csv"),
        "domain,severity\nspam.example,silence\n",
    )
    .expect("write list");
    let (code, stdout, _) = run_in(dir.path(), &["blocks", "import", "plain.txt"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("follows_only → reject"), "{stdout}");
    let (code, stdout, _) = run_in(dir.path(), &["blocks", "import", "weaker.csv"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("kept the stricter"), "{stdout}");

    // An export imports into another bridge as the same blocks.
    let (_, exported, _) = run_in(dir.path(), &["blocks", "export"]);
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("export.csv"), &exported).expect("write export");
    let (code, stdout, _) = run_in(other.path(), &["blocks", "import", "export.csv"]);
    assert_eq!(code, 0, "{stdout}");
    let (_, again, _) = run_in(other.path(), &["blocks", "export"]);
    assert_eq!(again, exported);
}

#[test]
fn a_reject_block_severs_follows_from_the_server_and_follows_only_keeps_them() {
    use bridge::db::{Database, audit, follows, keys, now_millis, remote_actors, schema, users};
    use diesel::prelude::*;

    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("fedibridge.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let settings = bridge::Settings::load_with_env(
        None,
        Some(std::collections::HashMap::from([(
            "FEDIBRIDGE__DATABASE__URL".to_owned(),
            url,
        )])),
    )
    .expect("settings");
    let db = Database::new(&settings.database).expect("database");
    let user = runtime.block_on(async {
        db.migrate().await.expect("migrate");
        db.write(|c| {
            let now = now_millis();
            let (user, _) = users::upsert_profile(
                c,
                &users::ProfileInput {
                    platform_user_id: "u1".into(),
                    username: "ada".into(),
                    display_name: None,
                    bio: None,
                    avatar_url: None,
                    header_url: None,
                    profile_url: None,
                    fields: Vec::new(),
                    language: None,
                    is_public: true,
                    is_adult: true,
                    is_suspended: false,
                    account_created_at: None,
                },
                now,
            )?;
            keys::ensure(c, Some(user.id), now)?;
            users::set_sharing_state(c, user.id, bridge::opt_in::SharingState::On, "[]", now)?;
            for (name, host) in [("eve", "social.evil.example"), ("bob", "good.example")] {
                let actor = remote_actors::upsert(
                    c,
                    &remote_actors::RemoteActorInput {
                        ap_id: format!("https://{host}/users/{name}"),
                        host: host.to_owned(),
                        kind: "Person".into(),
                        preferred_username: Some(name.into()),
                        name: None,
                        url: None,
                        icon_url: None,
                        inbox: format!("https://{host}/users/{name}/inbox"),
                        shared_inbox: None,
                        public_key_id: None,
                        public_key_pem: None,
                        moved_to: None,
                    },
                    now,
                )?;
                follows::upsert(
                    c,
                    user.id,
                    actor.id,
                    &format!("https://{host}/follows/1"),
                    follows::FollowState::Accepted,
                    now,
                )?;
            }
            Ok(user.id)
        })
        .await
        .expect("fixtures")
    });
    let follower_hosts = || {
        runtime
            .block_on(db.run(|c| {
                Ok(schema::follows::table
                    .inner_join(schema::remote_actors::table)
                    .select(schema::remote_actors::host)
                    .order(schema::remote_actors::host.asc())
                    .load::<String>(c)?)
            }))
            .expect("query")
    };

    let (code, stdout, _) = run_in(
        dir.path(),
        &[
            "blocks",
            "add",
            "evil.example",
            "--severity",
            "follows-only",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(
        follower_hosts(),
        vec!["good.example", "social.evil.example"]
    );

    let (code, stdout, _) = run_in(dir.path(), &["blocks", "add", "evil.example"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("severed 1 follow(s)"), "{stdout}");
    assert_eq!(follower_hosts(), vec!["good.example"]);

    // The remote server is told (Reject of its Follow), the platform too, and the audit
    // log names the operator.
    let (kinds, messages) = runtime
        .block_on(db.run(|c| {
            Ok((
                schema::activities::table
                    .select(schema::activities::kind)
                    .load::<String>(c)?,
                schema::platform_outbox::table
                    .select(schema::platform_outbox::message_type)
                    .load::<String>(c)?,
            ))
        }))
        .expect("query");
    assert_eq!(kinds, vec!["Reject"]);
    assert_eq!(messages, vec!["follower.removed"]);
    let entries = runtime
        .block_on(db.run(move |c| audit::for_user(c, user, 10)))
        .expect("audit");
    assert!(
        entries
            .iter()
            .any(|e| e.action == "follower.removed_by_server_block" && e.initiator == "operator"),
        "{entries:?}"
    );
}
