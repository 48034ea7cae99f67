//! Sending: activities go through the crate's `SendActivityTask` (its signing, headers and
//! HTTP client); a middleware on that client records each response, because the crate
//! treats a 4xx answer as delivered and never reports it.

use std::{fmt::Debug, time::Duration};

use activitypub_federation::{
    FEDERATION_CONTENT_TYPE, activity_sending::SendActivityTask, config::Data,
    protocol::context::WithContext, traits::ActivityHandler,
};
use anyhow::{Context as _, bail, ensure};
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use reqwest_middleware::{
    ClientWithMiddleware, Middleware, Next,
    reqwest::{self, Request, Response, redirect::Policy},
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use url::Url;

use super::state::{Delivery, PeerData};

/// Records every request the crate's client makes and the status it got.
struct RecordResponses(PeerData);

#[async_trait::async_trait]
impl Middleware for RecordResponses {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let method = req.method().to_string();
        let url = req.url().clone();
        let activity_id = req
            .body()
            .and_then(reqwest::Body::as_bytes)
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|v| v.get("id")?.as_str().and_then(|s| Url::parse(s).ok()));
        let res = next.run(req, extensions).await;
        self.0.record_delivery(Delivery {
            method,
            url,
            activity_id,
            status: res.as_ref().ok().map(|r| r.status().as_u16()),
        });
        res
    }
}

/// The HTTP client handed to the crate: its defaults (no redirects, 10 s timeout) plus the
/// recorder. Idle connections are not pooled, because the peer's calls run on the test's
/// runtime and on actix's worker runtimes, and a pooled connection dies with its runtime.
pub(crate) fn client(state: PeerData) -> anyhow::Result<ClientWithMiddleware> {
    let inner = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()?;
    Ok(reqwest_middleware::ClientBuilder::new(inner)
        .with(RecordResponses(state))
        .build())
}

/// Signs and sends `activity` (with `@context`) from the peer's actor to each inbox, and
/// fails unless every inbox answered 2xx.
pub(crate) async fn send<A>(
    data: &Data<PeerData>,
    activity: A,
    inboxes: Vec<Url>,
) -> anyhow::Result<()>
where
    A: ActivityHandler + Serialize + Debug + Send + Sync,
{
    let statuses = send_for_status(data, activity, inboxes).await?;
    let failed: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| !(200..300).contains(s))
        .collect();
    ensure!(failed.is_empty(), "delivery refused: {failed:?}");
    Ok(())
}

/// Like [`send`], but returns each inbox's status instead of judging it.
pub(crate) async fn send_for_status<A>(
    data: &Data<PeerData>,
    activity: A,
    mut inboxes: Vec<Url>,
) -> anyhow::Result<Vec<(Url, u16)>>
where
    A: ActivityHandler + Serialize + Debug + Send + Sync,
{
    inboxes.sort();
    inboxes.dedup();
    let activity = WithContext::new_default(activity);
    let id = activity.id().clone();
    let tasks = SendActivityTask::prepare(&activity, &data.local, inboxes.clone(), data).await?;
    // The crate silently drops inboxes it refuses (IP-literal hosts, its own domain).
    ensure!(
        tasks.len() == inboxes.len(),
        "the crate refused some of the inboxes {inboxes:?} (hosts must be DNS names, e.g. localhost)"
    );
    for task in tasks {
        // A 5xx is an error here; the status is read from the record below in any case.
        let _ = task.sign_and_send(data).await;
    }
    let deliveries = data.deliveries();
    inboxes
        .into_iter()
        .map(|inbox| {
            deliveries
                .iter()
                .rev()
                .find(|d| d.url == inbox && d.activity_id.as_ref() == Some(&id))
                .and_then(|d| d.status)
                .map(|s| (inbox.clone(), s))
                .with_context(|| format!("no response from {inbox} for {id}"))
        })
        .collect()
}

/// How to spoil a signed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Send another body than the one signed; the Digest no longer matches it.
    Body,
    /// Send another body with a correct Digest for it; only the signature (which covers
    /// the old Digest) can catch it.
    BodyAndDigest,
}

/// POSTs `sent` to `inbox` with the peer's signature over `signed`, using the crate's
/// `Data::sign_request` (so signing is the crate's) and then altering the request.
pub(crate) async fn send_tampered(
    data: &Data<PeerData>,
    client: &ClientWithMiddleware,
    inbox: &Url,
    signed: Vec<u8>,
    sent: Vec<u8>,
    tamper: Tamper,
) -> anyhow::Result<u16> {
    let host = match (inbox.host_str(), inbox.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => bail!("inbox {inbox} has no host"),
    };
    let builder = client
        .post(inbox.as_str())
        .header("content-type", FEDERATION_CONTENT_TYPE)
        .header("host", host)
        .header(
            "date",
            chrono::Utc::now()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
        );
    let mut request = data.sign_request(builder, signed.into()).await?;
    if tamper == Tamper::BodyAndDigest {
        let digest = format!("SHA-256={}", BASE64.encode(Sha256::digest(&sent)));
        request.headers_mut().insert("digest", digest.parse()?);
    }
    *request.body_mut() = Some(sent.into());
    let response = client.execute(request).await?;
    Ok(response.status().as_u16())
}
