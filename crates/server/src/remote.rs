//! Remote sync, the compliance platform's side of the Reporting API: reading a remote
//! account's people, campaigns and enrolments (a KnowBe4 account, or another coachloop)
//! page by page into the store (see `coachloop_store::sync`), telling a person what is
//! wrong with a connection in words they can act on, and the runner that syncs each
//! connection when it is due, on one node of the installation at a time.
//!
//! Requests follow the reference's limits: 500 rows a page, page mode (which every
//! Reporting API serves), `Retry-After` honoured on 429. A page is parsed whole before any
//! of it is applied; a malformed one fails the run where it stands, to resume there.

use crate::outbound::{self, Client, DestinationError};
use crate::secrets::Secrets;
use chrono::DateTime;
use coachloop_core::compliance::remote::Region;
use coachloop_core::identity::Email;
use coachloop_store::Store;
use coachloop_store::sync::{
    Claimed, Connection, Position, RemoteCampaign, RemoteEnrolment, RemotePerson, Stage, SyncPage,
};
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Rows a page: the reference's most.
pub const PER_PAGE: usize = 500;
/// How long a node holds a run between two pages before another may take it over.
pub const LEASE: Duration = Duration::from_secs(120);
/// One request's limit (by default; `ServerConfig::sync_timeout`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries of one page through network errors and 5xx answers before the run fails.
const TRIES: u32 = 3;
/// Waits between those tries, doubling.
const BACKOFF: Duration = Duration::from_millis(500);
/// The longest `Retry-After` waited for within a run; longer ones end the run, which
/// resumes at that time.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// `Retry-After` when a 429 gives none.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// 429s in a row on one page before the run stops (and resumes later).
const MAX_RATE_LIMITED: u32 = 10;

/// Where each region's Reporting API answers: the reference's hosts unless configured
/// otherwise (a proxy, or a test's loopback servers).
#[derive(Debug, Clone)]
pub struct Regions(HashMap<Region, String>);

impl Default for Regions {
    fn default() -> Self {
        Self(Region::ALL.into_iter().map(|r| (r, r.base_url())).collect())
    }
}

impl Regions {
    /// The reference's hosts, with `overrides` (`region` → base URL) in their place.
    pub fn with(overrides: impl IntoIterator<Item = (Region, String)>) -> Self {
        let mut regions = Self::default();
        regions.0.extend(overrides);
        regions
    }

    pub fn base_url(&self, region: Region) -> String {
        self.0
            .get(&region)
            .cloned()
            .unwrap_or_else(|| region.base_url())
    }
}

/// What is wrong with a connection, as its status and *Test connection* say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `wrong_key`, `forbidden`, `wrong_region`, `network`, `refused` (an address
    /// coachloop may not send to), `rate_limited`, `remote_error`, `malformed`, `key`
    /// (the stored key cannot be opened).
    pub kind: &'static str,
    pub message: String,
    /// 429: when to ask again.
    pub retry_after: Option<Duration>,
}

impl Problem {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Worth another try of the same page soon.
    fn transient(&self) -> bool {
        matches!(self.kind, "network" | "remote_error")
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A base URL as a person may give it: with or without a trailing `/` or `/v1`.
pub fn normalize_base(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    url.strip_suffix("/v1").unwrap_or(url).to_owned()
}

/// A remote Reporting API and the key to it.
pub struct Remote {
    client: Client,
    base: String,
    key: String,
}

impl Remote {
    pub fn new(client: Client, base_url: &str, key: String) -> Self {
        Self {
            client,
            base: normalize_base(base_url),
            key,
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}/v1/{path_and_query}", self.base)
    }

    /// One GET, its answer judged: a success's body, or what is wrong.
    async fn get(&self, path_and_query: &str) -> Result<Vec<u8>, Problem> {
        let url = self.url(path_and_query);
        let request = self
            .client
            .request(reqwest::Method::GET, &url)
            .map_err(refused)?
            .bearer_auth(&self.key)
            .header(reqwest::header::ACCEPT, "application/json");
        let response = request.send().await.map_err(|e| network(&e, &self.base))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| network(&e, &self.base))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        let said = remote_message(&body);
        let path = path_and_query.split('?').next().unwrap_or_default();
        Err(match status {
            StatusCode::UNAUTHORIZED => Problem::new(
                "wrong_key",
                format!(
                    "{} does not accept this key (401{said}): check that it was copied whole \
                     and has not been revoked or expired",
                    self.base
                ),
            ),
            StatusCode::FORBIDDEN => Problem::new(
                "forbidden",
                format!(
                    "the key is known but may not read /v1/{path} (403{said}): give it \
                     Reporting API access with the read scopes account:read, user:read, \
                     campaign:read and enrollments:read"
                ),
            ),
            StatusCode::TOO_MANY_REQUESTS => Problem {
                retry_after: Some(retry_after.unwrap_or(DEFAULT_RETRY_AFTER)),
                ..Problem::new(
                    "rate_limited",
                    format!("the remote asks to slow down (429{said}) on /v1/{path}"),
                )
            },
            s if s.is_server_error() => Problem::new(
                "remote_error",
                format!("the remote failed on /v1/{path} ({}{said})", s.as_u16()),
            ),
            s => Problem::new(
                "remote_error",
                format!(
                    "the remote refused /v1/{path} ({}{said}): is {} a Reporting API?",
                    s.as_u16(),
                    self.base
                ),
            ),
        })
    }

    /// A GET whose body must be JSON of type `T`.
    async fn get_json<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, Problem> {
        let body = self.get(path_and_query).await?;
        let path = path_and_query.split('?').next().unwrap_or_default();
        let mut de = serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let at = e.path().to_string();
            Problem::new(
                "malformed",
                format!(
                    "the remote's answer to /v1/{path} is not what the Reporting API sends \
                     (at `{at}`: {}); nothing of it was applied",
                    e.inner()
                ),
            )
        })
    }

    /// The page of `position`, parsed whole.
    pub async fn page(&self, position: Position) -> Result<SyncPage, Problem> {
        let page = position.page;
        Ok(match position.stage {
            Stage::People | Stage::ArchivedPeople => {
                let status = if position.stage == Stage::People {
                    "active"
                } else {
                    "archived"
                };
                let rows: Vec<UserRow> = self
                    .get_json(&format!(
                        "users?status={status}&page={page}&per_page={PER_PAGE}"
                    ))
                    .await?;
                SyncPage::People(
                    rows.into_iter()
                        .enumerate()
                        .map(|(i, row)| row.parse(position.stage == Stage::ArchivedPeople, i))
                        .collect::<Result<_, _>>()?,
                )
            }
            Stage::Campaigns => {
                let rows: Vec<CampaignRow> = self
                    .get_json("training/campaigns?exclude_percentages=true")
                    .await?;
                SyncPage::Campaigns(
                    rows.into_iter()
                        .enumerate()
                        .map(|(i, row)| row.parse(i))
                        .collect::<Result<_, _>>()?,
                )
            }
            Stage::Enrollments => {
                let rows: Vec<EnrollmentRow> = self
                    .get_json(&format!(
                        "training/enrollments?include_campaign_id=true&page={page}\
                         &per_page={PER_PAGE}"
                    ))
                    .await?;
                SyncPage::Enrolments(
                    rows.into_iter()
                        .enumerate()
                        .map(|(i, row)| row.parse(i))
                        .collect::<Result<_, _>>()?,
                )
            }
        })
    }

    /// The remote account's name, and whether the key may read everything a sync reads.
    pub async fn check(&self) -> Result<String, Problem> {
        #[derive(Deserialize)]
        struct Account {
            name: String,
        }
        let account: Account = self.get_json("account").await?;
        for path in [
            "users?per_page=1",
            "training/campaigns?exclude_percentages=true",
            "training/enrollments?per_page=1",
        ] {
            self.get(path).await?;
        }
        Ok(account.name)
    }
}

/// What *Test connection* found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tested {
    pub ok: bool,
    /// The remote account's name, when the key opened it.
    pub account: Option<String>,
    pub problem: Option<Problem>,
}

/// Tests a connection: the key against every path a sync reads. A key unknown in its
/// region is tried in the other regions, to say which one it belongs to.
pub async fn test(
    client: &Client,
    regions: &Regions,
    connection: &Connection,
    key: &str,
) -> Tested {
    let remote = Remote::new(client.clone(), &connection.base_url, key.to_owned());
    match remote.check().await {
        Ok(account) => Tested {
            ok: true,
            account: Some(account),
            problem: None,
        },
        Err(problem) => {
            let region = connection.region.as_deref().and_then(Region::parse);
            let problem = match (problem.kind, region) {
                ("wrong_key", Some(region)) => wrong_region(client, regions, region, key)
                    .await
                    .unwrap_or_else(|| Problem {
                        message: format!(
                            "{} (if the account is in another region, choose that region: \
                             no other region knows this key either)",
                            problem.message
                        ),
                        ..problem
                    }),
                _ => problem,
            };
            Tested {
                ok: false,
                account: None,
                problem: Some(problem),
            }
        }
    }
}

/// The region, other than `tried`, whose Reporting API knows `key`, as a problem.
async fn wrong_region(
    client: &Client,
    regions: &Regions,
    tried: Region,
    key: &str,
) -> Option<Problem> {
    let mut probes = tokio::task::JoinSet::new();
    for region in Region::ALL.into_iter().filter(|r| *r != tried) {
        let remote = Remote::new(client.clone(), &regions.base_url(region), key.to_owned());
        probes.spawn(async move { remote.get("account").await.ok().map(|_| region) });
    }
    let mut belongs = None;
    while let Some(found) = probes.join_next().await {
        if let Ok(Some(region)) = found {
            belongs = Some(region);
            break;
        }
    }
    let belongs = belongs?;
    Some(Problem::new(
        "wrong_region",
        format!(
            "this key belongs to the {} region, not {}: choose region `{}`",
            belongs.as_str().to_uppercase(),
            tried.as_str().to_uppercase(),
            belongs.as_str()
        ),
    ))
}

fn refused(error: DestinationError) -> Problem {
    Problem::new("refused", error.to_string())
}

/// A request that got no answer, said by its cause.
fn network(error: &reqwest::Error, base: &str) -> Problem {
    let text = outbound::describe(error);
    if text.contains("coachloop sends only to public addresses") {
        return Problem::new("refused", text);
    }
    let lower = text.to_ascii_lowercase();
    let what = if error.is_timeout() {
        format!("{base} did not answer in time")
    } else if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") {
        format!("the name in {base} does not resolve: check the base URL or region")
    } else if lower.contains("refused") {
        format!("{base} refused the connection: is the server running, and is the port right?")
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        format!("the TLS handshake with {base} failed (is its certificate valid?)")
    } else {
        format!("could not reach {base}")
    };
    Problem::new("network", format!("{what}: {text}"))
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value.trim()).ok()?;
    let wait = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(wait.max(0) as u64))
}

/// `: message` from an error body (`{"message": …}`, `{"error": …}`), if any.
fn remote_message(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let message = value["message"]
        .as_str()
        .or_else(|| value["error"].as_str())
        .or_else(|| value["error"]["message"].as_str());
    match message {
        Some(m) => format!(": {}", m.chars().take(300).collect::<String>()),
        None => String::new(),
    }
}

fn malformed(what: &str, index: usize, problem: impl std::fmt::Display) -> Problem {
    Problem::new(
        "malformed",
        format!("{what} [{index}] {problem}; nothing of its page was applied"),
    )
}

/// An RFC 3339 instant as epoch milliseconds.
fn instant(text: &str, what: &str, index: usize, field: &str) -> Result<i64, Problem> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            malformed(
                what,
                index,
                format!("`{field}` {text:?} is not an RFC 3339 time"),
            )
        })
}

#[derive(Deserialize)]
struct UserRow {
    id: i64,
    email: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    job_title: Option<String>,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    employee_start_date: Option<String>,
}

impl UserRow {
    fn parse(self, archived: bool, index: usize) -> Result<RemotePerson, Problem> {
        let email = Email::parse(&self.email)
            .map_err(|e| malformed("user", index, format!("email {:?} {e}", self.email)))?;
        // A date, or the date part of a timestamp; anything else is left out.
        let start = self
            .employee_start_date
            .as_deref()
            .and_then(|d| d.get(..10))
            .filter(|d| coachloop_core::time::parse_date(d).is_some())
            .map(str::to_owned);
        Ok(RemotePerson {
            remote_id: self.id,
            email,
            first_name: self.first_name,
            last_name: self.last_name,
            job_title: self.job_title,
            department: self.department,
            employee_start_date: start,
            archived,
        })
    }
}

#[derive(Deserialize)]
struct CampaignRow {
    campaign_id: i64,
    name: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    duration_type: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
    #[serde(default)]
    relative_duration: Option<String>,
}

impl CampaignRow {
    fn parse(self, index: usize) -> Result<RemoteCampaign, Problem> {
        let end_date = match (&self.end_date, self.duration_type.as_deref()) {
            (Some(end), Some("Specific End Date") | None) => {
                Some(instant(end, "campaign", index, "end_date")?)
            }
            _ => None,
        };
        Ok(RemoteCampaign {
            remote_id: self.campaign_id,
            name: self.name,
            status: self.status.unwrap_or_default(),
            end_date,
            relative_duration: self.relative_duration,
        })
    }
}

#[derive(Deserialize)]
struct EnrollmentUser {
    id: i64,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct EnrollmentRow {
    enrollment_id: i64,
    user: EnrollmentUser,
    module_name: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    campaign_id: Option<i64>,
    #[serde(default)]
    campaign_name: Option<String>,
    enrollment_date: String,
    #[serde(default)]
    completion_date: Option<String>,
    status: String,
}

impl EnrollmentRow {
    fn parse(self, index: usize) -> Result<RemoteEnrolment, Problem> {
        let enrolled_at = instant(
            &self.enrollment_date,
            "enrollment",
            index,
            "enrollment_date",
        )?;
        let completed_at = match &self.completion_date {
            Some(at) => Some(instant(at, "enrollment", index, "completion_date")?),
            None => None,
        };
        // Only a finished status counts a completion.
        let completed_at =
            completed_at.filter(|_| matches!(self.status.as_str(), "Completed" | "Passed"));
        Ok(RemoteEnrolment {
            remote_id: self.enrollment_id,
            user_remote_id: self.user.id,
            user_email: self.user.email,
            campaign_id: self.campaign_id,
            campaign_name: self.campaign_name,
            module_name: self.module_name,
            content_type: self
                .content_type
                .unwrap_or_else(|| "Store Purchase".to_owned()),
            status: self.status,
            enrolled_at,
            completed_at,
        })
    }
}

/// What a run reports as it goes.
pub trait Progress: Send + Sync {
    /// A page of `stage` applied: `rows` of it.
    fn page(&self, stage: Stage, rows: usize);
    /// Waiting `wait` before asking again (a 429, or a retry).
    fn waiting(&self, _why: &str, _wait: Duration) {}
}

/// No report.
pub struct Quiet;

impl Progress for Quiet {
    fn page(&self, _: Stage, _: usize) {}
}

/// Everything a run needs besides the connection.
#[derive(Clone)]
pub struct Syncer {
    pub store: Store,
    pub client: Client,
    pub secret: Arc<Secrets>,
    /// Who holds runs: this node (or a CLI process).
    pub holder: String,
}

/// The context a connection's key is sealed for.
pub fn key_context(account: i64) -> String {
    format!("sync-key:{account}")
}

/// How a run ended, when it did not succeed.
#[derive(Debug)]
pub enum Failed {
    /// The remote or the key: recorded on the connection, which tries again later.
    Problem(Problem),
    /// The store failed (recorded too, if it could be).
    Store(coachloop_store::StoreError),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Problem(p) => p.fmt(f),
            Self::Store(e) => e.fmt(f),
        }
    }
}

impl Syncer {
    /// Runs a claimed connection's sync to its end (or its first failure, recorded on the
    /// connection with when to try again).
    pub async fn run(
        &self,
        claimed: Claimed,
        progress: &dyn Progress,
    ) -> Result<Connection, Failed> {
        match self.pages(&claimed, progress).await {
            Ok(()) => self
                .store
                .finish_sync(&claimed, &self.holder)
                .await
                .map_err(Failed::Store),
            Err(failed) => {
                let now = self.store.clock().now_ms();
                let (message, retry_at) = match &failed {
                    Failed::Problem(p) => {
                        let wait = match p.kind {
                            // Nothing changes by itself: at the next sync.
                            "wrong_key" | "forbidden" | "key" | "refused" => {
                                claimed.connection.interval_minutes * 60_000
                            }
                            "rate_limited" => {
                                p.retry_after.map_or(60_000, |d| d.as_millis() as i64)
                            }
                            // A minute, doubling with each failure, up to the interval.
                            _ => (60_000_i64 << claimed.connection.failures.clamp(0, 10))
                                .min(claimed.connection.interval_minutes * 60_000),
                        };
                        (p.message.clone(), now + wait)
                    }
                    Failed::Store(e) => (format!("storing the sync failed: {e}"), now + 60_000),
                };
                warn!(
                    connection = claimed.connection.id.0,
                    error = %message,
                    "remote sync failed; it resumes where it stopped"
                );
                if let Err(e) = self
                    .store
                    .fail_sync(&claimed, &self.holder, &message, retry_at)
                    .await
                {
                    warn!(error = %e, "could not record the sync's failure");
                }
                Err(failed)
            }
        }
    }

    async fn pages(&self, claimed: &Claimed, progress: &dyn Progress) -> Result<(), Failed> {
        let connection = &claimed.connection;
        let key = self
            .secret
            .key()
            .map_err(|e| {
                Failed::Problem(Problem::new(
                    "key",
                    format!("the installation's secret key cannot be read: {e:#}"),
                ))
            })?
            .open(&claimed.key_sealed, &key_context(connection.account_id.0))
            .map_err(|e| Failed::Problem(Problem::new("key", e.to_string())))?;
        let key = String::from_utf8(key)
            .map_err(|_| Failed::Problem(Problem::new("key", "the stored key is not text")))?;
        let remote = Remote::new(self.client.clone(), &connection.base_url, key);
        let mut position = claimed.position;
        loop {
            let started = std::time::Instant::now();
            let page = self.fetch(&remote, claimed, position, progress).await?;
            let fetched = started.elapsed();
            let full = page.len() >= PER_PAGE && position.stage != Stage::Campaigns;
            let next = if full {
                Some(Position {
                    stage: position.stage,
                    page: position.page + 1,
                })
            } else {
                position
                    .stage
                    .next()
                    .map(|stage| Position { stage, page: 1 })
            };
            self.store
                .apply_sync_page(claimed, &self.holder, LEASE, &page, next)
                .await
                .map_err(Failed::Store)?;
            tracing::debug!(
                connection = connection.id.0,
                stage = position.stage.as_str(),
                page = position.page,
                rows = page.len(),
                fetch_ms = fetched.as_millis() as u64,
                apply_ms = (started.elapsed() - fetched).as_millis() as u64,
                "sync page applied"
            );
            progress.page(position.stage, page.len());
            match next {
                Some(next) => position = next,
                None => return Ok(()),
            }
        }
    }

    /// One page, through transient failures and 429s (the lease renewed while waiting).
    async fn fetch(
        &self,
        remote: &Remote,
        claimed: &Claimed,
        position: Position,
        progress: &dyn Progress,
    ) -> Result<SyncPage, Failed> {
        let mut tries = 0;
        let mut limited = 0;
        loop {
            let problem = match remote.page(position).await {
                Ok(page) => return Ok(page),
                Err(problem) => problem,
            };
            let wait = match problem.retry_after {
                Some(wait) if limited < MAX_RATE_LIMITED && wait <= MAX_RETRY_AFTER => {
                    limited += 1;
                    wait
                }
                None if problem.transient() && tries + 1 < TRIES => {
                    tries += 1;
                    BACKOFF * 2u32.pow(tries - 1)
                }
                _ => return Err(Failed::Problem(problem)),
            };
            progress.waiting(&problem.message, wait);
            self.store
                .renew_sync(claimed, &self.holder, wait + LEASE)
                .await
                .map_err(Failed::Store)?;
            tokio::time::sleep(wait).await;
        }
    }
}

/// Runs due syncs, one at a time, until the task is aborted; sleeps until the next is
/// due or one is asked for.
pub async fn runner(syncer: Syncer) {
    let wake = syncer.store.sync_wake().clone();
    loop {
        let notified = wake.notified();
        match syncer.store.claim_sync(None, &syncer.holder, LEASE).await {
            Ok(Some(claimed)) => {
                let id = claimed.connection.id.0;
                match syncer.run(claimed, &Quiet).await {
                    Ok(done) => {
                        info!(
                            connection = id,
                            people = done.people,
                            enrollments = done.enrollments,
                            "remote sync done"
                        );
                        continue;
                    }
                    // Recorded on the connection; a moment before the next claim, in
                    // case the database itself is what failed.
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
                continue;
            }
            Ok(None) => {}
            Err(e) if e.is_closed() => return,
            Err(e) => {
                warn!(error = %e, "could not claim a remote sync");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        let next = syncer.store.next_sync_due().await.ok().flatten();
        wake.set_target(next);
        let ms = next.map_or(60_000, |at| {
            (at - syncer.store.clock().now_ms()).clamp(0, 60_000)
        });
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms as u64)) => {}
            () = notified => {}
        }
    }
}
