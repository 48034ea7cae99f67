//! HTTP signatures: round trips, every rejection reason, and interoperability with an
//! independent implementation (openssl by hand, and http-signature-normalization).

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bridge::Error;
use bridge::federation::http_signatures::{digest_header, sign_request};
use bridge::federation::{
    KeyPair, PendingSignature, SignatureRejection, SignedHeaders, SigningKey, begin_verify,
    generate_rsa_keypair, sign_get, sign_post, sign_post_async,
};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::{Signer, Verifier};
use url::Url;

static ALICE: LazyLock<KeyPair> = LazyLock::new(|| generate_rsa_keypair().expect("keypair"));
static MALLORY: LazyLock<KeyPair> = LazyLock::new(|| generate_rsa_keypair().expect("keypair"));

const KEY_ID: &str = "https://bridge.example/users/1#main-key";
const HOSTS: &[&str] = &["remote.example"];
const WINDOW: Duration = Duration::from_secs(3600);
const BODY: &[u8] = br#"{"type":"Create","id":"https://bridge.example/activities/1"}"#;

fn alice() -> SigningKey {
    SigningKey::from_pem(Url::parse(KEY_ID).expect("url"), &ALICE.private_key_pem).expect("key")
}

fn inbox() -> Url {
    Url::parse("https://remote.example/users/bob/inbox?page=1").expect("url")
}

/// The request as the inbox would see it: signed headers plus unrelated ones.
fn request_headers(signed: &SignedHeaders) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = signed
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    headers.push(("Content-Type".into(), "application/activity+json".into()));
    headers.push(("User-Agent".into(), "Mastodon/4.3".into()));
    headers
}

fn check(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<PendingSignature, Error> {
    begin_verify(
        method,
        path,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
        HOSTS,
        SystemTime::now(),
        WINDOW,
    )
}

fn rejection(result: Result<PendingSignature, Error>) -> SignatureRejection {
    match result {
        Err(Error::Signature(r)) => r,
        Err(other) => panic!("expected a signature rejection, got {other}"),
        Ok(p) => panic!("accepted: {}", p.signing_string()),
    }
}

fn replace(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    headers.push((name.to_owned(), value.to_owned()));
}

/// Signs an arbitrary header list by hand (openssl, no bridge code) to build requests that
/// are validly signed yet break one rule.
fn hand_signed(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    names: &str,
    algorithm: Option<&str>,
) -> String {
    let lines: Vec<String> = names
        .split(' ')
        .map(|name| {
            let value = if name == "(request-target)" {
                format!("{} {path}", method.to_lowercase())
            } else {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
                    .expect("header to sign")
            };
            format!("{name}: {value}")
        })
        .collect();
    let private = PKey::private_key_from_pem(ALICE.private_key_pem.as_bytes()).expect("pem");
    let mut signer = Signer::new(MessageDigest::sha256(), &private).expect("signer");
    signer.update(lines.join("\n").as_bytes()).expect("update");
    let signature = BASE64.encode(signer.sign_to_vec().expect("sign"));
    let algorithm = algorithm
        .map(|a| format!(r#"algorithm="{a}","#))
        .unwrap_or_default();
    format!(r#"keyId="{KEY_ID}",{algorithm}headers="{names}",signature="{signature}""#)
}

fn base_headers(body: &[u8], date: SystemTime) -> Vec<(String, String)> {
    vec![
        ("Host".into(), "remote.example".into()),
        ("Date".into(), httpdate::fmt_http_date(date)),
        ("Digest".into(), digest_header(body)),
    ]
}

#[test]
fn signed_post_verifies_with_the_signers_public_key() {
    let signed = sign_post(&alice(), &inbox(), BODY).expect("sign");
    assert_eq!(signed.host, "remote.example");
    assert_eq!(signed.digest.as_deref(), Some(digest_header(BODY).as_str()));
    assert!(signed.signature.contains(r#"algorithm="rsa-sha256""#));
    assert!(
        signed
            .signature
            .contains(r#"headers="(request-target) host date digest""#)
    );

    let pending = check(
        "POST",
        "/users/bob/inbox?page=1",
        &request_headers(&signed),
        BODY,
    )
    .expect("checks pass");
    assert_eq!(pending.key_id.as_str(), KEY_ID);
    pending.verify(&ALICE.public_key_pem).expect("verifies");
}

#[test]
fn signed_get_verifies_and_needs_no_digest() {
    let url = Url::parse("https://remote.example/users/bob").expect("url");
    let signed = sign_get(&alice(), &url).expect("sign");
    assert_eq!(signed.digest, None);
    assert!(
        signed
            .signature
            .contains(r#"headers="(request-target) host date""#)
    );
    let pending = check("GET", "/users/bob", &request_headers(&signed), b"").expect("checks");
    pending.verify(&ALICE.public_key_pem).expect("verifies");
}

#[test]
fn authorization_signature_form_is_accepted() {
    let signed = sign_post(&alice(), &inbox(), BODY).expect("sign");
    let mut headers = request_headers(&signed);
    headers.retain(|(n, _)| n != "Signature");
    headers.push((
        "Authorization".into(),
        format!("Signature {}", signed.signature),
    ));
    check("POST", "/users/bob/inbox?page=1", &headers, BODY)
        .expect("checks")
        .verify(&ALICE.public_key_pem)
        .expect("verifies");
}

#[tokio::test]
async fn async_sign_and_verify_round_trip() {
    let signed = sign_post_async(&alice(), &inbox(), bytes::Bytes::from_static(BODY))
        .await
        .expect("sign");
    let pending = check(
        "POST",
        "/users/bob/inbox?page=1",
        &request_headers(&signed),
        BODY,
    )
    .expect("checks");
    pending
        .verify_async(&ALICE.public_key_pem)
        .await
        .expect("verifies");
}

#[test]
fn missing_signature_is_refused() {
    let signed = sign_post(&alice(), &inbox(), BODY).expect("sign");
    let mut headers = request_headers(&signed);
    headers.retain(|(n, _)| n != "Signature");
    assert_eq!(
        rejection(check("POST", "/users/bob/inbox?page=1", &headers, BODY)),
        SignatureRejection::MissingSignature
    );
    headers.push(("Authorization".into(), "Bearer abc".into()));
    assert_eq!(
        rejection(check("POST", "/users/bob/inbox?page=1", &headers, BODY)),
        SignatureRejection::MissingSignature
    );
}

#[test]
fn garbage_signature_header_is_unparsable_and_a_400() {
    let signed = sign_post(&alice(), &inbox(), BODY).expect("sign");
    for garbage in [
        "nonsense",
        r#"keyId="not a url",signature="YWJj""#,
        r#"keyId="https://a.example/k",signature="***""#,
    ] {
        let mut headers = request_headers(&signed);
        replace(&mut headers, "Signature", garbage);
        let r = rejection(check("POST", "/users/bob/inbox?page=1", &headers, BODY));
        assert!(
            matches!(r, SignatureRejection::Unparsable(_)),
            "{garbage}: {r}"
        );
        assert_eq!(r.http_status(), 400);
    }
}

#[test]
fn tampered_body_is_a_digest_mismatch() {
    let signed = sign_post(&alice(), &inbox(), BODY).expect("sign");
    let r = rejection(check(
        "POST",
        "/users/bob/inbox?page=1",
        &request_headers(&signed),
        br#"{"type":"Delete"}"#,
    ));
    assert_eq!(r, SignatureRejection::DigestMismatch);
    assert_eq!(r.http_status(), 401);
}

#[test]
fn digest_may_be_multi_valued_but_needs_a_matching_sha256() {
    let path = "/inbox";
    let now = SystemTime::now();
    let names = "(request-target) host date digest";

    let mut headers = base_headers(BODY, now);
    let multi = format!("SHA-512=AAAA, {}", digest_header(BODY));
    replace(&mut headers, "Digest", &multi);
    let sig = hand_signed("POST", path, &headers, names, Some("hs2019"));
    headers.push(("Signature".into(), sig));
    check("POST", path, &headers, BODY)
        .expect("multi-valued digest accepted")
        .verify(&ALICE.public_key_pem)
        .expect("verifies");

    let mut headers = base_headers(BODY, now);
    replace(&mut headers, "Digest", "SHA-512=AAAA");
    let sig = hand_signed("POST", path, &headers, names, None);
    headers.push(("Signature".into(), sig));
    assert_eq!(
        rejection(check("POST", path, &headers, BODY)),
        SignatureRejection::MissingDigest
    );

    let mut headers = base_headers(BODY, now);
    headers.retain(|(n, _)| n != "Digest");
    let sig = hand_signed("POST", path, &headers, "(request-target) host date", None);
    headers.push(("Signature".into(), sig));
    assert_eq!(
        rejection(check("POST", path, &headers, BODY)),
        SignatureRejection::MissingSignedHeader("digest".into())
    );
}

#[test]
fn each_required_header_must_be_signed() {
    let path = "/inbox";
    for (names, missing) in [
        ("(request-target) host date", "digest"),
        ("(request-target) date digest", "host"),
        ("(request-target) host digest", "date"),
        ("host date digest", "(request-target)"),
    ] {
        let mut headers = base_headers(BODY, SystemTime::now());
        let sig = hand_signed("POST", path, &headers, names, Some("rsa-sha256"));
        headers.push(("Signature".into(), sig));
        assert_eq!(
            rejection(check("POST", path, &headers, BODY)),
            SignatureRejection::MissingSignedHeader(missing.into()),
            "{names}"
        );
    }
}

#[test]
fn a_signed_header_the_request_lacks_is_refused() {
    let path = "/inbox";
    let mut headers = base_headers(BODY, SystemTime::now());
    headers.push(("Content-Type".into(), "application/activity+json".into()));
    let sig = hand_signed(
        "POST",
        path,
        &headers,
        "(request-target) host date digest content-type",
        None,
    );
    headers.retain(|(n, _)| n != "Content-Type");
    headers.push(("Signature".into(), sig));
    assert_eq!(
        rejection(check("POST", path, &headers, BODY)),
        SignatureRejection::AbsentHeader("content-type".into())
    );
}

#[test]
fn dates_outside_the_window_are_refused() {
    let two_hours = Duration::from_secs(2 * 3600);
    for date in [SystemTime::now() - two_hours, SystemTime::now() + two_hours] {
        let signed = sign_request(&alice(), "POST", &inbox(), Some(BODY), date).expect("sign");
        let r = rejection(check(
            "POST",
            "/users/bob/inbox?page=1",
            &request_headers(&signed),
            BODY,
        ));
        assert!(
            matches!(r, SignatureRejection::DateOutOfWindow { skew_secs, window_secs: 3600 } if skew_secs.abs() >= 7199),
            "{r}"
        );
    }
    // Inside the window, a little clock skew either way is fine.
    let skewed = SystemTime::now() - Duration::from_secs(600);
    let signed = sign_request(&alice(), "POST", &inbox(), Some(BODY), skewed).expect("sign");
    check(
        "POST",
        "/users/bob/inbox?page=1",
        &request_headers(&signed),
        BODY,
    )
    .expect("10 minutes old is within the window");
}

#[test]
fn unparsable_date_is_a_400() {
    let path = "/inbox";
    let mut headers = base_headers(BODY, SystemTime::now());
    replace(&mut headers, "Date", "yesterday");
    let sig = hand_signed(
        "POST",
        path,
        &headers,
        "(request-target) host date digest",
        None,
    );
    headers.push(("Signature".into(), sig));
    let r = rejection(check("POST", path, &headers, BODY));
    assert_eq!(r, SignatureRejection::UnparsableDate("yesterday".into()));
    assert_eq!(r.http_status(), 400);
}

#[test]
fn wrong_host_is_refused_and_host_matching_is_case_and_port_aware() {
    let elsewhere = Url::parse("https://other.example/users/bob/inbox?page=1").expect("url");
    let signed = sign_post(&alice(), &elsewhere, BODY).expect("sign");
    assert_eq!(
        rejection(check(
            "POST",
            "/users/bob/inbox?page=1",
            &request_headers(&signed),
            BODY
        )),
        SignatureRejection::WrongHost("other.example".into())
    );

    let verify_with = |url: &str, hosts: &[&str]| {
        let url = Url::parse(url).expect("url");
        let signed = sign_post(&alice(), &url, BODY).expect("sign");
        let headers = request_headers(&signed);
        begin_verify(
            "POST",
            "/inbox",
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            BODY,
            hosts,
            SystemTime::now(),
            WINDOW,
        )
    };
    verify_with("http://LOCALHOST:8080/inbox", &["localhost:8080"]).expect("same host and port");
    verify_with("https://Remote.Example./inbox", &["remote.example"]).expect("trailing dot");
    assert_eq!(
        rejection(verify_with(
            "http://localhost:8081/inbox",
            &["localhost:8080"]
        )),
        SignatureRejection::WrongHost("localhost:8081".into())
    );
    assert_eq!(
        rejection(verify_with("http://localhost:8080/inbox", &["localhost"])),
        SignatureRejection::WrongHost("localhost:8080".into())
    );
}

#[test]
fn a_signature_by_another_key_is_bad() {
    let mallory = SigningKey::from_pem(Url::parse(KEY_ID).expect("url"), &MALLORY.private_key_pem)
        .expect("key");
    let signed = sign_post(&mallory, &inbox(), BODY).expect("sign");
    let pending = check(
        "POST",
        "/users/bob/inbox?page=1",
        &request_headers(&signed),
        BODY,
    )
    .expect("key-independent checks pass");
    let err = pending
        .verify(&ALICE.public_key_pem)
        .expect_err("wrong key");
    assert!(
        matches!(err, Error::Signature(SignatureRejection::BadSignature)),
        "{err}"
    );
}

#[test]
fn a_changed_path_query_or_method_breaks_the_signature() {
    let signed = sign_post(&alice(), &inbox(), BODY).expect("sign");
    for (method, path) in [
        ("POST", "/users/eve/inbox?page=1"),
        ("POST", "/users/bob/inbox?page=2"),
        ("POST", "/users/bob/inbox"),
        ("PUT", "/users/bob/inbox?page=1"),
    ] {
        let pending = check(method, path, &request_headers(&signed), BODY).expect("checks");
        let err = pending.verify(&ALICE.public_key_pem).expect_err(path);
        assert!(
            matches!(err, Error::Signature(SignatureRejection::BadSignature)),
            "{err}"
        );
    }
}

#[test]
fn only_rsa_sha256_and_hs2019_are_accepted() {
    let path = "/inbox";
    for (algorithm, accepted) in [
        (Some("rsa-sha256"), true),
        (Some("hs2019"), true),
        (None, true),
        (Some("hmac-sha256"), false),
        (Some("rsa-sha1"), false),
        (Some("ed25519"), false),
    ] {
        let mut headers = base_headers(BODY, SystemTime::now());
        let sig = hand_signed(
            "POST",
            path,
            &headers,
            "(request-target) host date digest",
            algorithm,
        );
        headers.push(("Signature".into(), sig));
        let result = check("POST", path, &headers, BODY);
        if accepted {
            result
                .expect("accepted")
                .verify(&ALICE.public_key_pem)
                .expect("verifies");
        } else {
            assert_eq!(
                rejection(result),
                SignatureRejection::UnsupportedAlgorithm(algorithm.expect("named").into())
            );
        }
    }
}

#[test]
fn short_and_non_rsa_keys_are_refused() {
    let signed = sign_post(&alice(), &inbox(), BODY).expect("sign");
    let pending = check(
        "POST",
        "/users/bob/inbox?page=1",
        &request_headers(&signed),
        BODY,
    )
    .expect("checks");

    let short = openssl::rsa::Rsa::generate(1024).expect("rsa");
    let short_pem = String::from_utf8(
        PKey::from_rsa(short)
            .expect("pkey")
            .public_key_to_pem()
            .expect("pem"),
    )
    .expect("utf8");
    let err = pending.verify(&short_pem).expect_err("weak");
    assert!(
        matches!(err, Error::Signature(SignatureRejection::WeakKey(1024))),
        "{err}"
    );

    let ed = PKey::generate_ed25519().expect("ed25519");
    let ed_pem = String::from_utf8(ed.public_key_to_pem().expect("pem")).expect("utf8");
    let err = pending.verify(&ed_pem).expect_err("not rsa");
    assert!(
        matches!(err, Error::Signature(SignatureRejection::UnsupportedKey)),
        "{err}"
    );
}

/// Our signature checked without any bridge code: the signing string is rebuilt from the
/// headers by hand and verified with openssl directly.
#[test]
fn our_signature_verifies_with_a_hand_built_signing_string() {
    let signed = sign_post(&alice(), &inbox(), BODY).expect("sign");
    let signing_string = format!(
        "(request-target): post /users/bob/inbox?page=1\nhost: remote.example\ndate: {}\ndigest: SHA-256={}",
        signed.date,
        BASE64.encode(openssl::sha::sha256(BODY))
    );
    let b64 = signed
        .signature
        .split(r#"signature=""#)
        .nth(1)
        .and_then(|s| s.strip_suffix('"'))
        .expect("signature field");
    let raw = BASE64.decode(b64).expect("base64");
    let public = PKey::public_key_from_pem(ALICE.public_key_pem.as_bytes()).expect("pem");
    let mut verifier = Verifier::new(MessageDigest::sha256(), &public).expect("verifier");
    verifier.update(signing_string.as_bytes()).expect("update");
    assert!(verifier.verify(&raw).expect("verify"));
    assert!(
        signed
            .signature
            .starts_with(&format!(r#"keyId="{KEY_ID}",algorithm="rsa-sha256","#))
    );
}

/// Our signature accepted by http-signature-normalization's verifier (Mastodon-compat).
#[test]
fn our_signature_verifies_with_http_signature_normalization() {
    let signed = sign_post(&alice(), &inbox(), BODY).expect("sign");
    let headers: BTreeMap<String, String> = signed
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let config = http_signature_normalization::Config::new()
        .mastodon_compat()
        .require_digest()
        .set_expiration(WINDOW);
    let unverified = config
        .begin_verify("POST", "/users/bob/inbox?page=1", headers)
        .expect("their checks pass");
    assert_eq!(unverified.key_id(), KEY_ID);
    let public = PKey::public_key_from_pem(ALICE.public_key_pem.as_bytes()).expect("pem");
    let valid = unverified.verify(|signature, signing_string| {
        let raw = BASE64.decode(signature).expect("base64");
        let mut verifier = Verifier::new(MessageDigest::sha256(), &public).expect("verifier");
        verifier.update(signing_string.as_bytes()).expect("update");
        verifier.verify(&raw).expect("verify")
    });
    assert!(valid);
}

/// A signature made by http-signature-normalization's signer (hs2019, its header order)
/// passes our verifier.
#[test]
fn their_signature_verifies_with_ours() {
    let path = "/users/bob/inbox?page=1";
    let mut headers = BTreeMap::new();
    headers.insert("Host".to_owned(), "remote.example".to_owned());
    headers.insert(
        "Date".to_owned(),
        httpdate::fmt_http_date(SystemTime::now()),
    );
    headers.insert("Digest".to_owned(), digest_header(BODY));
    let private = PKey::private_key_from_pem(ALICE.private_key_pem.as_bytes()).expect("pem");
    let signature = http_signature_normalization::Config::new()
        .mastodon_compat()
        .begin_sign("POST", path, headers.clone())
        .expect("begin")
        .sign(KEY_ID.to_owned(), |signing_string| {
            let mut signer = Signer::new(MessageDigest::sha256(), &private)?;
            signer.update(signing_string.as_bytes())?;
            Ok::<_, openssl::error::ErrorStack>(BASE64.encode(signer.sign_to_vec()?))
        })
        .expect("sign")
        .signature_header();
    assert!(signature.contains(r#"algorithm="hs2019""#));
    let mut request: Vec<(String, String)> = headers.into_iter().collect();
    request.push(("Signature".into(), signature));
    check("POST", path, &request, BODY)
        .expect("checks")
        .verify(&ALICE.public_key_pem)
        .expect("verifies");
}

#[test]
fn host_header_case_and_explicit_default_port_still_match() {
    let path = "/inbox";
    for host in ["REMOTE.example", "remote.example:443", "Remote.Example."] {
        let mut headers = base_headers(BODY, SystemTime::now());
        replace(&mut headers, "Host", host);
        let sig = hand_signed(
            "POST",
            path,
            &headers,
            "(request-target) host date digest",
            None,
        );
        headers.push(("Signature".into(), sig));
        check("POST", path, &headers, BODY)
            .unwrap_or_else(|e| panic!("{host}: {e}"))
            .verify(&ALICE.public_key_pem)
            .expect("verifies");
    }
}
