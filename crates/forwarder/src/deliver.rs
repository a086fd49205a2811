//! Delivery: queued events go to the target's `POST /events` as arrays of up to 1,000,
//! several requests in flight. Network errors and 5xx are retried with exponential
//! backoff and jitter, 429 waits as long as `Retry-After` says, 401/403 stop the
//! forwarder with the likely cause, and a record the target refuses is dead-lettered.

use crate::Shared;
use crate::outbox::Queued;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use tokio::task::JoinSet;

/// The most events one request carries (the User Event API's bulk limit).
pub const MAX_BATCH: usize = 1_000;
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
/// Short enough that a target back from an outage is found within seconds.
const BACKOFF_MOST: Duration = Duration::from_secs(10);
/// When a 429 names no wait.
const RATE_LIMITED_WAIT: Duration = Duration::from_secs(1);

/// The regions of the reference service, by the name `--region` takes.
pub const REGIONS: &[(&str, &str)] = &[
    ("us", "https://api.events.knowbe4.com"),
    ("eu", "https://api-eu.events.knowbe4.com"),
    ("ca", "https://api-ca.events.knowbe4.com"),
    ("uk", "https://api-uk.events.knowbe4.com"),
    ("de", "https://api-de.events.knowbe4.com"),
];

/// Where events go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The base URL; requests go to `{base}/events`.
    pub base: String,
    /// The region it was picked by, if it was.
    pub region: Option<String>,
    pub token: String,
}

impl Target {
    /// The target of `--target URL` or `--region NAME`.
    pub fn new(url: Option<&str>, region: Option<&str>, token: String) -> anyhow::Result<Self> {
        let (base, region) = match (url, region) {
            (Some(url), None) => {
                let parsed = reqwest::Url::parse(url).map_err(|e| {
                    anyhow::anyhow!(
                        "--target `{url}` is not a URL ({e}); e.g. https://coachloop.example.com"
                    )
                })?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    anyhow::bail!("--target `{url}` must be an http:// or https:// URL");
                }
                (url.trim_end_matches('/').to_owned(), None)
            }
            (None, Some(name)) => {
                let name = name.trim().to_ascii_lowercase();
                let (_, base) = REGIONS.iter().find(|(r, _)| *r == name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--region `{name}` is not one of {}",
                        REGIONS
                            .iter()
                            .map(|(r, _)| *r)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
                ((*base).to_owned(), Some(name))
            }
            _ => anyhow::bail!(
                "name where events go: --target URL (e.g. your coachloop) or --region us|eu|ca|uk|de"
            ),
        };
        let token = token.trim().to_owned();
        if token.is_empty() || token.contains(char::is_whitespace) {
            anyhow::bail!("the token file must hold the User Event API key alone, on one line");
        }
        Ok(Self {
            base,
            region,
            token,
        })
    }

    pub fn events_url(&self) -> String {
        format!("{}/events", self.base)
    }
}

/// What one request came to.
enum Posted {
    /// Stored, but for these items (index in the batch, the target's reason).
    Stored(Vec<(usize, String)>),
    /// The target refuses the request's content (400, 413, 422): split it or, for one
    /// record, dead-letter it.
    Refused(String),
    /// Try again later: after this long, if the target said.
    Later(Option<Duration>, String),
    /// Nothing sent will work until someone changes something.
    Stop(String),
}

/// Delivers queued events until the outbox is empty and `done` says no more will come
/// (then `Ok`), or until the target refuses the key (`Err`, the reason in words).
pub(crate) async fn run(
    shared: &Shared,
    parallel: usize,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut cursor = 0i64;
    let mut in_flight = JoinSet::new();
    loop {
        let mut claimed = false;
        if in_flight.len() < parallel.max(1) {
            let batch = shared.outbox.next_batch(cursor, MAX_BATCH).await?;
            if let Some(last) = batch.last() {
                cursor = last.seq;
                let shared = shared.clone();
                in_flight.spawn(async move { deliver(&shared, batch).await });
                claimed = true;
            }
        }
        if claimed {
            continue;
        }
        if in_flight.is_empty() && *done.borrow() {
            // The input ended before this look at the outbox: nothing more will come.
            if shared.outbox.next_batch(cursor, 1).await?.is_empty() {
                return Ok(());
            }
            continue;
        }
        tokio::select! {
            _ = shared.wake.notified() => {}
            finished = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Some(finished) = finished {
                    finished??;
                }
            }
            _ = done.changed(), if !*done.borrow() => {}
        }
    }
}

/// Delivers one batch, however long it takes; splits it while the target refuses its
/// content, down to the record it refuses.
async fn deliver(shared: &Shared, batch: Vec<Queued>) -> anyhow::Result<()> {
    let mut parts = vec![batch];
    let mut failures = 0u32;
    while let Some(part) = parts.pop() {
        loop {
            match post(shared, &part).await {
                Posted::Stored(rejected) => {
                    for (index, reason) in &rejected {
                        tracing::warn!(
                            "the target refused an event: {reason}: {}",
                            part[*index].event
                        );
                    }
                    shared
                        .outbox
                        .delivered(&part, &rejected, shared.now_ms())
                        .await?;
                    failures = 0;
                    break;
                }
                Posted::Refused(why) if part.len() > 1 => {
                    let mut first = part;
                    let second = first.split_off(first.len() / 2);
                    tracing::debug!("the target refused a batch ({why}): trying its halves");
                    parts.push(second);
                    parts.push(first);
                    break;
                }
                Posted::Refused(why) => {
                    let why = format!("the target refused it: {why}");
                    tracing::warn!("{why}: {}", part[0].event);
                    shared
                        .outbox
                        .delivered(&part, &[(0, why)], shared.now_ms())
                        .await?;
                    break;
                }
                Posted::Later(after, why) => {
                    let wait = after.unwrap_or_else(|| backoff(failures));
                    failures = failures.saturating_add(1);
                    tracing::warn!("{why}; trying again in {:.1} s", wait.as_secs_f64());
                    shared.outbox.set_error(&why, shared.now_ms()).await?;
                    tokio::time::sleep(wait).await;
                }
                Posted::Stop(why) => {
                    shared.outbox.set_error(&why, shared.now_ms()).await?;
                    anyhow::bail!("{why}");
                }
            }
        }
    }
    Ok(())
}

/// Exponential, with jitter so that many senders back from one outage do not return in
/// step: between half and all of 250 ms × 2^failures, at most 10 s.
fn backoff(failures: u32) -> Duration {
    let full = BACKOFF_FIRST
        .saturating_mul(1 << failures.min(16))
        .min(BACKOFF_MOST);
    full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

async fn post(shared: &Shared, part: &[Queued]) -> Posted {
    let target = &shared.target;
    let url = target.events_url();
    let mut body = String::with_capacity(part.iter().map(|q| q.event.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, queued) in part.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&queued.event);
    }
    body.push(']');
    let response = shared
        .client
        .post(&url)
        .bearer_auth(&target.token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/json")
        .header("X-KB4-Integration", "coachloop-forward")
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(e) => return Posted::Later(None, format!("cannot reach {url}: {}", cause(&e))),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = response.text().await.unwrap_or_default();
    let message = message_of(&text);
    match status {
        s if s.is_success() => {
            let id = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["data"]["id"].as_str().map(str::to_owned));
            Posted::Stored(match id {
                Some(id) => failures(shared, &id).await,
                None => Vec::new(),
            })
        }
        StatusCode::TOO_MANY_REQUESTS => Posted::Later(
            Some(retry_after.unwrap_or(RATE_LIMITED_WAIT)),
            format!("the target is limiting the rate (429: {message}); waiting as it asks"),
        ),
        StatusCode::UNAUTHORIZED => Posted::Stop(unauthorized(target, &message)),
        StatusCode::FORBIDDEN => Posted::Stop(format!(
            "the target knows the key but does not let it send events (403: {message}): it is \
             not a User Event API key with the events:write scope (a Reporting key, say); put \
             such a key in the token file"
        )),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Posted::Stop(format!(
            "{url} is not a User Event API ({status}): --target is the base URL, to which \
             /events is added"
        )),
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNPROCESSABLE_ENTITY => {
            Posted::Refused(format!("{}: {message}", status.as_u16()))
        }
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => Posted::Later(
            retry_after,
            format!("the target failed ({}: {message})", s.as_u16()),
        ),
        s => Posted::Refused(format!("{}: {message}", s.as_u16())),
    }
}

/// 401 in words: a wrong key and a key of another region look the same from here (the
/// other region is not asked), so say both when a region was picked.
fn unauthorized(target: &Target, message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("revoked") || lower.contains("expired") {
        return format!(
            "the target refused the key (401: {message}): create a new User Event API key and \
             put it in the token file"
        );
    }
    match &target.region {
        Some(region) => format!(
            "the {region} region refused the key (401: {message}). Either the key is wrong (the \
             token file must hold the User Event API key exactly) or it belongs to another \
             region: a key works only in the region of the console it was created in; pass that \
             one with --region"
        ),
        None => format!(
            "{} refused the key (401: {message}): the token file does not hold a key this \
             target issued; check the key, and that --target is the installation that issued it",
            target.base
        ),
    }
}

/// The items of request `id` the target did not store, from `GET /statuses/{id}` (an
/// empty list when the key may not read statuses: then nothing more can be known).
/// coachloop's status is final when the 201 arrives; a target that processes later
/// lists no failures yet, and its refusals go unseen here.
async fn failures(shared: &Shared, id: &str) -> Vec<(usize, String)> {
    let url = format!("{}/statuses/{id}", shared.target.base);
    let response = shared
        .client
        .get(&url)
        .bearer_auth(&shared.target.token)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await;
    let body: Value = match response {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        Ok(r) => {
            if !shared
                .warned_statuses
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    "cannot read {url} ({}): items the target refuses in a batch are not known; \
                     give the key the events:read scope too",
                    r.status().as_u16()
                );
            }
            return Vec::new();
        }
        Err(_) => return Vec::new(),
    };
    body["data"]["details"]["failures"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|f| {
                    let index = usize::try_from(f["index"].as_u64()?).ok()?;
                    let reason = f["reason"].as_str().unwrap_or("refused").to_owned();
                    Some((index, format!("the target refused it: {reason}")))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `message` of an error body, or the body's start.
fn message_of(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(200).collect::<String>().trim().to_owned())
}

/// The innermost cause of a request error ("connection refused"), which says the most.
fn cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    if e.is_timeout() {
        "no answer in time".to_owned()
    } else {
        source.to_string()
    }
}
