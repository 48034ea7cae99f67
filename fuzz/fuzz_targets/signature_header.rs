//! The `Signature` header: the parser never panics on any text, what it accepts re-renders
//! to the same parameters, and whatever our signer produces (any URL, body and date) parses
//! back, passes the inbox's key-independent checks on the receiving server and verifies.
#![no_main]

use std::{
    sync::LazyLock,
    time::{Duration, SystemTime},
};

use bridge::{
    federation::{
        SigningKey, begin_verify, generate_rsa_keypair,
        http_signatures::sign_request,
        signature_header::{SignatureParams, parse_signature_params},
        urls::Urls,
    },
    settings::FederationSettings,
};
use libfuzzer_sys::{
    arbitrary::{self, Arbitrary},
    fuzz_target,
};
use url::Url;

/// One RSA key for the whole run: generating one per input would drown the fuzzer.
static KEY: LazyLock<(SigningKey, String)> = LazyLock::new(|| {
    let pair = generate_rsa_keypair().expect("an RSA key");
    let key_id = Url::parse("https://bridge.example/users/1#main-key").expect("a URL");
    let signing = SigningKey::from_pem(key_id, &pair.private_key_pem).expect("a signing key");
    (signing, pair.public_key_pem)
});

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    /// Any header value.
    Parse(&'a str),
    /// A request our signer signs.
    Sign(Signed<'a>),
}

#[derive(Arbitrary, Debug)]
struct Signed<'a> {
    /// The receiving server's host (and port), as in its `federation.base_url`.
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    /// `Some` for a POST (with this body), `None` for a GET.
    body: Option<&'a [u8]>,
    /// Unix seconds; `u32` keeps it within what HTTP dates can express.
    date: u32,
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Parse(value) => parse(value),
    Input::Sign(signed) => sign(&signed),
});

fn parse(value: &str) {
    let Ok(params) = parse_signature_params(value) else {
        return;
    };
    let rendered = render(&params);
    assert_eq!(
        parse_signature_params(&rendered).as_ref(),
        Ok(&params),
        "{rendered:?} does not read back as {value:?} did"
    );
}

/// The parameters as a signer would write them: every value quoted, `"` and `\` escaped.
fn render(params: &SignatureParams) -> String {
    let quoted = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    [
        Some(("keyId", &params.key_id)),
        params.algorithm.as_ref().map(|v| ("algorithm", v)),
        params.headers.as_ref().map(|v| ("headers", v)),
        params.created.as_ref().map(|v| ("created", v)),
        params.expires.as_ref().map(|v| ("expires", v)),
        Some(("signature", &params.signature)),
    ]
    .into_iter()
    .flatten()
    .map(|(name, value)| format!("{name}={}", quoted(value)))
    .collect::<Vec<_>>()
    .join(",")
}

fn sign(input: &Signed<'_>) {
    // The receiving server: only a base URL its settings would accept.
    let Ok(urls) = Urls::new(&FederationSettings {
        base_url: format!("https://{}", input.authority),
        domain: "bridge.example".into(),
        allow_private_addresses: false,
        signature_window_secs: 3600,
    }) else {
        return;
    };
    let mut url = urls.base().clone();
    url.set_path(input.path);
    url.set_query(input.query);
    let (key, public_key_pem) = &*KEY;
    let method = if input.body.is_some() { "POST" } else { "GET" };
    let date = SystemTime::UNIX_EPOCH + Duration::from_secs(input.date.into());
    let headers = sign_request(key, method, &url, input.body, date).expect("signing works");

    let params = parse_signature_params(&headers.signature).expect("our header parses");
    assert_eq!(params.key_id, key.key_id.as_str());
    assert_eq!(params.algorithm.as_deref(), Some("rsa-sha256"));

    // What the HTTP client puts on the request line.
    let path_and_query = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    // The receiver's clock is one minute off, well within its window.
    // The map is not the identity clippy takes it for: it shortens the names' `'static`
    // lifetime to the values' one, the single lifetime `begin_verify` takes.
    #[allow(clippy::map_identity)]
    let pending = begin_verify(
        method,
        &path_and_query,
        headers.iter().map(|(name, value)| (name, value)),
        input.body.unwrap_or_default(),
        &[urls.base_authority()],
        date + Duration::from_secs(60),
        Duration::from_secs(3600),
    )
    .unwrap_or_else(|e| panic!("our own {headers:?} for {url} is refused: {e}"));
    assert_eq!(&pending.key_id, &key.key_id);
    pending
        .verify(public_key_pem)
        .unwrap_or_else(|e| panic!("our own signature of {url} does not verify: {e}"));
}
