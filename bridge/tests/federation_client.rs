//! FederationClient against real local servers (raw tokio sockets, so that they can lie,
//! stall and drip): SSRF refusals, redirects, body cap, deadline, media types, signing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bridge::Error;
use bridge::federation::resolver::{GuardedResolver, ResolveError};
use bridge::federation::{
    AddressPolicy, ClientConfig, FederationClient, KeyPair, RemoteFailure, SigningKey,
    begin_verify, ensure_id_matches, generate_rsa_keypair,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

static KEYS: LazyLock<KeyPair> = LazyLock::new(|| generate_rsa_keypair().expect("keypair"));

const LAX: AddressPolicy = AddressPolicy {
    allow_private: true,
};
const STRICT: AddressPolicy = AddressPolicy {
    allow_private: false,
};

/// What the test server does with a request.
enum Reply {
    /// Sends these bytes and closes.
    Full(Vec<u8>),
    /// Sends the head, then body bytes forever.
    Forever(String),
    /// Sends the head, then 16 KiB chunks forever (chunked encoding).
    ForeverChunked(String),
    /// Sends the head, then one body byte per interval.
    Drip(String, Duration),
    /// Never answers.
    Silent,
}

fn respond(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    Reply::Full(bytes)
}

fn activity(id: &str) -> Vec<u8> {
    format!(r#"{{"@context":"https://www.w3.org/ns/activitystreams","id":"{id}","type":"Person"}}"#)
        .into_bytes()
}

struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl TestServer {
    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).expect("url")
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

/// Serves `handler(path, base_url)` on 127.0.0.1, one connection per request.
async fn serve<F>(handler: F) -> TestServer
where
    F: Fn(&str, &str) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let (log, count) = (Arc::clone(&requests), Arc::clone(&connections));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let (handler, log) = (Arc::clone(&handler), Arc::clone(&log));
            let base = format!("http://{addr}");
            tokio::spawn(async move {
                let _ = handle(stream, &*handler, &log, &base).await;
            });
        }
    });
    TestServer {
        addr,
        requests,
        connections,
    }
}

async fn handle<F>(
    mut stream: TcpStream,
    handler: &F,
    log: &Mutex<Vec<String>>,
    base: &str,
) -> std::io::Result<()>
where
    F: Fn(&str, &str) -> Reply,
{
    let request = read_request(&mut stream).await?;
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    log.lock().expect("lock").push(request);
    match handler(&path, base) {
        Reply::Full(bytes) => stream.write_all(&bytes).await?,
        Reply::Forever(head) => {
            stream.write_all(head.as_bytes()).await?;
            let chunk = vec![b' '; 16 * 1024];
            loop {
                stream.write_all(&chunk).await?;
            }
        }
        Reply::ForeverChunked(head) => {
            stream.write_all(head.as_bytes()).await?;
            let chunk = [b"4000\r\n".as_slice(), &[b' '; 16 * 1024], b"\r\n"].concat();
            loop {
                stream.write_all(&chunk).await?;
            }
        }
        Reply::Drip(head, interval) => {
            stream.write_all(head.as_bytes()).await?;
            loop {
                stream.write_all(b" ").await?;
                tokio::time::sleep(interval).await;
            }
        }
        Reply::Silent => tokio::time::sleep(Duration::from_secs(60)).await,
    }
    stream.shutdown().await
}

/// Reads the head and a Content-Length body; returns them as text.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = header(&text, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}

fn header(request: &str, name: &str) -> Option<String> {
    request
        .split("\r\n\r\n")
        .next()?
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}

fn request_headers(request: &str) -> Vec<(String, String)> {
    request
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn client(policy: AddressPolicy) -> FederationClient {
    client_with(policy, |_| {})
}

fn client_with(policy: AddressPolicy, tweak: impl FnOnce(&mut ClientConfig)) -> FederationClient {
    let mut config = ClientConfig::new(&Url::parse("https://bridge.example").expect("url"), policy);
    tweak(&mut config);
    FederationClient::new(config).expect("client")
}

fn signer() -> SigningKey {
    SigningKey::from_pem(
        Url::parse("https://bridge.example/users/1#main-key").expect("url"),
        &KEYS.private_key_pem,
    )
    .expect("key")
}

fn failure(result: Result<impl std::fmt::Debug, Error>) -> RemoteFailure {
    match result {
        Err(Error::Remote { failure, .. }) => failure,
        other => panic!("expected a remote failure, got {other:?}"),
    }
}

#[tokio::test]
async fn signed_fetch_sends_a_verifiable_signature_and_the_user_agent() {
    let server = serve(|path, base| {
        respond(
            "200 OK",
            &[("Content-Type", "application/activity+json; charset=utf-8")],
            &activity(&format!("{base}{path}")),
        )
    })
    .await;
    let url = server.url("/users/bob?x=1");
    let fetched = client(LAX)
        .fetch_activity_json(&url, Some(&signer()))
        .await
        .expect("fetched");
    assert_eq!(fetched.final_url, url);
    assert_eq!(fetched.json["type"], "Person");
    ensure_id_matches(&fetched).expect("id matches");

    let request = server.requests().pop().expect("one request");
    assert!(request.starts_with("GET /users/bob?x=1 HTTP/1.1"));
    let agent = header(&request, "user-agent").expect("user agent");
    assert_eq!(
        agent,
        format!(
            "fedibridge/{} (+https://bridge.example)",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert!(
        header(&request, "accept")
            .expect("accept")
            .contains("application/activity+json")
    );
    let headers = request_headers(&request);
    let pending = begin_verify(
        "GET",
        "/users/bob?x=1",
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        b"",
        &[server.host()],
        SystemTime::now(),
        Duration::from_secs(60),
    )
    .expect("the server-side checks pass");
    pending
        .verify(&KEYS.public_key_pem)
        .expect("signature verifies");
}

#[tokio::test]
async fn unsigned_fetch_sends_no_signature() {
    let server = serve(|path, base| {
        respond(
            "200 OK",
            &[(
                "Content-Type",
                r#"application/ld+json; profile="https://www.w3.org/ns/activitystreams""#,
            )],
            &activity(&format!("{base}{path}")),
        )
    })
    .await;
    client(LAX)
        .fetch_activity_json(&server.url("/note/1"), None)
        .await
        .expect("fetched");
    assert_eq!(header(&server.requests()[0], "signature"), None);
}

#[tokio::test]
async fn documents_with_a_foreign_id_are_caught_by_ensure_id_matches() {
    let server = serve(|_, _| {
        respond(
            "200 OK",
            &[("Content-Type", "application/activity+json")],
            &activity("https://victim.example/users/admin"),
        )
    })
    .await;
    let fetched = client(LAX)
        .fetch_activity_json(&server.url("/users/mallory"), None)
        .await
        .expect("fetched");
    assert!(matches!(
        failure(ensure_id_matches(&fetched)),
        RemoteFailure::IdMismatch(id) if id == "https://victim.example/users/admin"
    ));
}

#[tokio::test]
async fn non_activity_content_types_are_refused() {
    let server = serve(|path, base| {
        let content_type = match path {
            "/json" => "application/json",
            "/ld" => "application/ld+json",
            "/html" => "text/html",
            _ => "",
        };
        respond(
            "200 OK",
            &[("Content-Type", content_type)],
            &activity(&format!("{base}{path}")),
        )
    })
    .await;
    let client = client(LAX);
    for path in ["/json", "/ld", "/html", "/none"] {
        let result = client.fetch_activity_json(&server.url(path), None).await;
        assert!(
            matches!(failure(result), RemoteFailure::ContentType(_)),
            "{path}"
        );
    }
    // WebFinger allows plain JSON but still not HTML.
    let jrd = client.fetch_jrd(&server.url("/json")).await.expect("jrd");
    assert!(
        header(server.requests().last().expect("req"), "accept")
            .expect("accept")
            .contains("application/jrd+json")
    );
    assert!(jrd.json.is_object());
    assert!(matches!(
        failure(client.fetch_jrd(&server.url("/html")).await),
        RemoteFailure::ContentType(_)
    ));
}

#[tokio::test]
async fn statuses_map_to_distinct_failures() {
    let server = serve(|path, _| match path {
        "/gone" => respond("410 Gone", &[], b""),
        "/missing" => respond("404 Not Found", &[], b""),
        "/broken" => respond("503 Service Unavailable", &[], b""),
        _ => respond("403 Forbidden", &[], b""),
    })
    .await;
    let client = client(LAX);
    let gone = client.fetch_activity_json(&server.url("/gone"), None).await;
    assert_eq!(failure(gone), RemoteFailure::Gone);
    let missing = client
        .fetch_activity_json(&server.url("/missing"), None)
        .await;
    assert_eq!(failure(missing), RemoteFailure::NotFound);
    let broken = client
        .fetch_activity_json(&server.url("/broken"), None)
        .await;
    let err = broken.expect_err("503");
    assert!(err.is_transient());
    assert!(matches!(
        err,
        Error::Remote {
            failure: RemoteFailure::Status(503),
            ..
        }
    ));
    let forbidden = client
        .fetch_activity_json(&server.url("/other"), None)
        .await;
    let err = forbidden.expect_err("403");
    assert!(!err.is_transient());
}

fn redirect(to: &str) -> Reply {
    respond("302 Found", &[("Location", to)], b"")
}

#[tokio::test]
async fn redirects_are_followed_re_signed_and_reported_as_final_url() {
    let server = serve(|path, base| match path {
        "/a" => redirect("/b"),
        "/b" => redirect(&format!("{base}/c")),
        "/c" => redirect("/d#frag"),
        _ => respond(
            "200 OK",
            &[("Content-Type", "application/activity+json")],
            &activity(&format!("{base}{path}")),
        ),
    })
    .await;
    let fetched = client(LAX)
        .fetch_activity_json(&server.url("/a"), Some(&signer()))
        .await
        .expect("three redirects are fine");
    assert_eq!(fetched.final_url, server.url("/d"));
    ensure_id_matches(&fetched).expect("id is the final url");
    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    let last = requests.last().expect("last");
    assert!(last.starts_with("GET /d "));
    let headers = request_headers(last);
    begin_verify(
        "GET",
        "/d",
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        b"",
        &[server.host()],
        SystemTime::now(),
        Duration::from_secs(60),
    )
    .expect("the last hop is signed for its own URL")
    .verify(&KEYS.public_key_pem)
    .expect("verifies");
}

#[tokio::test]
async fn too_many_redirects_and_loops_are_refused() {
    let server = serve(|path, _| match path {
        "/1" => redirect("/2"),
        "/2" => redirect("/3"),
        "/3" => redirect("/4"),
        "/4" => redirect("/5"),
        "/x" => redirect("/y"),
        "/y" => redirect("/x?"),
        "/x?" => redirect("/x"),
        _ => respond(
            "200 OK",
            &[("Content-Type", "application/activity+json")],
            b"{}",
        ),
    })
    .await;
    let client = client(LAX);
    let result = client.fetch_activity_json(&server.url("/1"), None).await;
    assert_eq!(failure(result), RemoteFailure::TooManyRedirects(3));
    assert_eq!(server.requests().len(), 4, "stops after the 4th answer");

    let result = client.fetch_activity_json(&server.url("/x"), None).await;
    assert!(matches!(failure(result), RemoteFailure::RedirectLoop(_)));
}

#[tokio::test]
async fn each_redirect_hop_is_validated() {
    let server = serve(|path, _| match path {
        "/to-file" => redirect("file:///etc/passwd"),
        "/to-creds" => redirect("http://user:secret@127.0.0.1/"),
        "/no-location" => respond("302 Found", &[], b""),
        _ => respond("200 OK", &[], b""),
    })
    .await;
    let client = client(LAX);
    for path in ["/to-file", "/to-creds"] {
        let result = client.fetch_activity_json(&server.url(path), None).await;
        assert!(
            matches!(failure(result), RemoteFailure::Forbidden(_)),
            "{path}"
        );
    }
    let result = client
        .fetch_activity_json(&server.url("/no-location"), None)
        .await;
    assert!(matches!(failure(result), RemoteFailure::BadRedirect(_)));
}

#[tokio::test]
async fn strict_policy_refuses_local_targets_without_connecting() {
    let server = serve(|_, _| respond("200 OK", &[], b"{}")).await;
    let port = server.addr.port();
    let client = client(STRICT);
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        format!("https://localhost:{port}/"),
        format!("https://[::1]:{port}/"),
        format!("https://[::ffff:127.0.0.1]:{port}/"),
        format!("https://[::ffff:7f00:1]:{port}/"),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        "https://10.0.0.1/".to_owned(),
    ] {
        let url = Url::parse(&url).expect("url");
        let result = client.fetch_activity_json(&url, Some(&signer())).await;
        assert!(
            matches!(failure(result), RemoteFailure::Forbidden(_)),
            "{url}"
        );
        let result = client
            .post_activity(&url, b"{}".to_vec().into(), &signer())
            .await;
        assert!(
            matches!(failure(result), RemoteFailure::Forbidden(_)),
            "{url}"
        );
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

/// The resolver is what reqwest connects through: a name that passes the URL check but
/// resolves to loopback is refused at connect time. (`localhost` stands in for a public
/// name rebound to 127.0.0.1; the strict URL check would refuse it by name first, so the
/// resolver is exercised through reqwest directly.)
#[tokio::test]
async fn the_guarded_resolver_refuses_loopback_at_connect_time() {
    let server = serve(|_, _| respond("200 OK", &[], b"ok")).await;
    let url = format!("http://localhost:{}/", server.addr.port());

    let guarded = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(GuardedResolver::new(STRICT))
        .build()
        .expect("client");
    let err = guarded.get(&url).send().await.expect_err("refused");
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut found = false;
    while let Some(e) = source {
        found |= matches!(
            e.downcast_ref::<ResolveError>(),
            Some(ResolveError::Forbidden { .. })
        );
        source = e.source();
    }
    assert!(found, "{err:?}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);

    let lax = reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(GuardedResolver::new(LAX))
        .build()
        .expect("client");
    assert_eq!(
        lax.get(&url).send().await.expect("lax connects").status(),
        200
    );
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused_whatever_content_length_says() {
    let server = serve(|path, _| match path {
        "/claims-huge" => Reply::Full(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\nContent-Length: 50000000\r\n\r\n{}"
                .to_vec(),
        ),
        "/no-length" => Reply::Forever(
            "HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\nConnection: close\r\n\r\n{\"a\":\""
                .into(),
        ),
        "/chunked" => Reply::ForeverChunked(
            "HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\nTransfer-Encoding: chunked\r\n\r\n"
                .into(),
        ),
        _ => Reply::Full(
            // Claims 2 bytes, sends far more: only the claimed 2 are read.
            [
                b"HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\nContent-Length: 2\r\n\r\n{}"
                    .as_slice(),
                &vec![b'x'; 200_000],
            ]
            .concat(),
        ),
    })
    .await;
    let client = client_with(LAX, |c| c.max_body_bytes = 64 * 1024);
    for path in ["/claims-huge", "/no-length", "/chunked"] {
        let started = Instant::now();
        let result = client.fetch_activity_json(&server.url(path), None).await;
        assert_eq!(
            failure(result),
            RemoteFailure::TooLarge(64 * 1024),
            "{path}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");
    }
    let small = client
        .fetch_activity_json(&server.url("/claims-small"), None)
        .await
        .expect("the 2 claimed bytes are a document");
    assert_eq!(small.json, serde_json::json!({}));
}

#[tokio::test]
async fn the_total_deadline_bounds_dripping_and_silent_servers() {
    let server = serve(|path, _| match path {
        "/drip" => Reply::Drip(
            "HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\nContent-Length: 100000\r\n\r\n".into(),
            Duration::from_millis(50),
        ),
        _ => Reply::Silent,
    })
    .await;
    let client = client_with(LAX, |c| c.total_timeout = Duration::from_millis(800));
    for path in ["/drip", "/silent"] {
        let started = Instant::now();
        let result = client.fetch_activity_json(&server.url(path), None).await;
        assert!(
            matches!(failure(result), RemoteFailure::Timeout(800)),
            "{path}"
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(700) && elapsed < Duration::from_secs(3),
            "{path}: {elapsed:?}"
        );
    }
    let started = Instant::now();
    let result = client
        .post_activity(&server.url("/silent"), b"{}".to_vec().into(), &signer())
        .await;
    let err = result.expect_err("times out");
    assert!(err.is_transient());
    assert!(matches!(
        err,
        Error::Remote {
            failure: RemoteFailure::Timeout(_),
            ..
        }
    ));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn post_activity_signs_the_body_and_reports_the_answer() {
    let long_body = "e".repeat(2000);
    let server = serve(move |path, _| match path {
        "/busy" => respond(
            "429 Too Many Requests",
            &[("Retry-After", "30")],
            long_body.as_bytes(),
        ),
        "/later" => respond(
            "503 Service Unavailable",
            &[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")],
            b"",
        ),
        _ => respond("202 Accepted", &[], b""),
    })
    .await;
    let client = client(LAX);
    let body = br#"{"type":"Create"}"#.to_vec();

    let outcome = client
        .post_activity(&server.url("/inbox"), body.clone().into(), &signer())
        .await
        .expect("delivered");
    assert_eq!(outcome.status, 202);
    assert!(outcome.is_success());
    assert_eq!(outcome.retry_after, None);

    let request = server.requests().pop().expect("request");
    assert!(request.starts_with("POST /inbox HTTP/1.1"));
    assert!(request.ends_with(r#"{"type":"Create"}"#));
    assert_eq!(
        header(&request, "content-type").as_deref(),
        Some("application/activity+json")
    );
    let headers = request_headers(&request);
    begin_verify(
        "POST",
        "/inbox",
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        &body,
        &[server.host()],
        SystemTime::now(),
        Duration::from_secs(60),
    )
    .expect("the inbox checks pass")
    .verify(&KEYS.public_key_pem)
    .expect("verifies");

    let busy = client
        .post_activity(&server.url("/busy"), body.clone().into(), &signer())
        .await
        .expect("answered");
    assert_eq!(busy.status, 429);
    assert_eq!(busy.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(busy.body_excerpt, "e".repeat(512));

    let later = client
        .post_activity(&server.url("/later"), body.into(), &signer())
        .await
        .expect("answered");
    assert_eq!(later.status, 503);
    assert_eq!(
        later.retry_after,
        Some(Duration::ZERO),
        "a past date means now"
    );
}

#[tokio::test]
async fn connection_refused_is_a_transient_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let url = Url::parse(&format!("http://{addr}/inbox")).expect("url");
    let err = client(LAX)
        .post_activity(&url, b"{}".to_vec().into(), &signer())
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            Error::Remote {
                failure: RemoteFailure::Transport(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
}
