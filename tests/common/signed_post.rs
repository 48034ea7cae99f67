//! Signed inbox POSTs, as a remote server sends them.

use std::time::SystemTime;

use bridge::federation::{SigningKey, http_signatures::sign_request};
use serde_json::Value;
use url::Url;

/// POSTs `body` to `inbox` signed with `key` as of `date`, the `Host` header being the one
/// of `signed_url` (normally the inbox itself); returns the status.
pub async fn post_signed(
    client: &reqwest::Client,
    inbox: &Url,
    signed_url: &Url,
    body: &Value,
    key: &SigningKey,
    date: SystemTime,
) -> u16 {
    post_signed_response(client, inbox, signed_url, body, key, date)
        .await
        .status()
        .as_u16()
}

/// Like [`post_signed`], returning the whole response.
pub async fn post_signed_response(
    client: &reqwest::Client,
    inbox: &Url,
    signed_url: &Url,
    body: &Value,
    key: &SigningKey,
    date: SystemTime,
) -> reqwest::Response {
    let body = serde_json::to_vec(body).expect("json");
    let signed = sign_request(key, "POST", signed_url, Some(&body), date).expect("signed");
    let mut request = client
        .post(inbox.as_str())
        .header("content-type", "application/activity+json");
    for (name, value) in signed.iter() {
        request = request.header(name, value);
    }
    request
        .body(body)
        .send()
        .await
        .expect("request reaches the bridge")
}
