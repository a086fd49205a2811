//! Remote sync connections: `/api/compliance/connections/…` — Reporting APIs whose people
//! and enrolments compliance evaluates beside the account's own (see [`crate::remote`]).

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::paging::DataOf;
use crate::remote::{self, key_context, normalize_base};
use axum::extract::State;
use axum::http::StatusCode;
use coachloop_core::FieldError;
use coachloop_core::compliance::remote::{Counting, Region};
use coachloop_core::ids::{AccountId, ConnectionId};
use coachloop_core::time::format_ms;
use coachloop_store::sync::{Connection, ConnectionChanges, NewConnection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(
            get_connection,
            update_connection,
            delete_connection
        ))
        .routes(routes!(test_connection))
        .routes(routes!(sync_connection))
        .routes(routes!(connection_campaigns))
}

/// An optional field that, when given, is a value: `null` is refused like any other
/// wrong type (the schema does not allow it).
fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The reference service's regions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegionName {
    Us,
    Eu,
    Ca,
    Uk,
    De,
}

impl From<RegionName> for Region {
    fn from(r: RegionName) -> Self {
        match r {
            RegionName::Us => Region::Us,
            RegionName::Eu => Region::Eu,
            RegionName::Ca => Region::Ca,
            RegionName::Uk => Region::Uk,
            RegionName::De => Region::De,
        }
    }
}

/// Which remote campaigns count for which requirement, by requirement kind. Empty: every
/// remote enrolment counts for security awareness training.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    #[schema(schema_with = crate::schemas::remote_campaign_ids)]
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub awareness: Option<Vec<i64>>,
    #[schema(schema_with = crate::schemas::remote_campaign_ids)]
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub phishing: Option<Vec<i64>>,
    #[schema(schema_with = crate::schemas::remote_campaign_ids)]
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub policy: Option<Vec<i64>>,
    #[schema(schema_with = crate::schemas::remote_campaign_ids)]
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub role_based: Option<Vec<i64>>,
}

impl Counts {
    fn counting(&self) -> Result<Counting, ApiError> {
        let value = serde_json::to_value(self).unwrap_or_default();
        Counting::from_json(&value, "requirements").map_err(ApiError::invalid)
    }

    fn of(counting: &Counting) -> Self {
        serde_json::from_value(counting.to_json()).unwrap_or_default()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    #[schema(schema_with = crate::schemas::connection_name)]
    pub name: String,
    /// The reference service's region (its host); or give `base_url` instead.
    pub region: Option<RegionName>,
    /// Another Reporting API (e.g. another coachloop): `https://host` (with or without
    /// `/v1`). Only to public addresses unless the operator allows more.
    #[schema(max_length = 2000)]
    pub base_url: Option<String>,
    /// The Reporting API key; stored sealed, never shown again.
    #[schema(schema_with = crate::schemas::api_key)]
    pub key: String,
    pub requirements: Option<Counts>,
    /// Minutes between scheduled syncs (default 60).
    #[schema(minimum = 5, maximum = 10080)]
    pub interval_minutes: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionUpdate {
    #[schema(schema_with = crate::schemas::connection_name)]
    #[serde(default, deserialize_with = "not_null")]
    pub name: Option<String>,
    /// A new region (replaces a base URL).
    pub region: Option<RegionName>,
    /// A new base URL (replaces a region).
    #[schema(max_length = 2000)]
    pub base_url: Option<String>,
    /// A new key.
    #[schema(schema_with = crate::schemas::api_key)]
    #[serde(default, deserialize_with = "not_null")]
    pub key: Option<String>,
    pub requirements: Option<Counts>,
    #[schema(minimum = 5, maximum = 10080)]
    pub interval_minutes: Option<u32>,
}

/// Where a sync under way (or interrupted) stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncProgress {
    /// `people`, `archived_people`, `campaigns` or `enrollments`.
    pub stage: String,
    /// The next page it reads (1-based, 500 rows a page).
    pub page: i64,
    pub started_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionBody {
    pub id: i64,
    pub name: String,
    pub region: Option<String>,
    pub base_url: String,
    /// The key's last characters.
    pub key_hint: String,
    pub requirements: Counts,
    pub interval_minutes: i64,
    /// `pending` until the first sync succeeds; then `ok`, or `failing` while syncs fail.
    pub status: String,
    /// A sync runs now.
    pub syncing: bool,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub next_sync_at: String,
    pub progress: Option<SyncProgress>,
    /// As of the last success: remote people and campaigns read, enrolments kept, and
    /// enrolments skipped because their person is neither listed by the remote nor here.
    pub people: i64,
    pub campaigns: i64,
    pub enrollments: i64,
    pub skipped: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl ConnectionBody {
    fn of(c: Connection, now: i64) -> Self {
        let status = if c.last_success_at.is_none() {
            "pending"
        } else if c.failures > 0 {
            "failing"
        } else {
            "ok"
        };
        Self {
            id: c.id.0,
            syncing: c.syncing(now),
            status: status.to_owned(),
            progress: c
                .position
                .zip(c.run_started_at)
                .map(|(p, at)| SyncProgress {
                    stage: p.stage.as_str().to_owned(),
                    page: p.page,
                    started_at: format_ms(at),
                }),
            name: c.name,
            region: c.region,
            base_url: c.base_url,
            key_hint: c.key_hint,
            requirements: Counts::of(&c.requirements),
            interval_minutes: c.interval_minutes,
            last_success_at: c.last_success_at.map(format_ms),
            last_error: c.last_error,
            last_error_at: c.last_error_at.map(format_ms),
            next_sync_at: format_ms(c.next_sync_at),
            people: c.people,
            campaigns: c.campaigns,
            enrollments: c.enrollments,
            skipped: c.skipped,
            created_at: format_ms(c.created_at),
            updated_at: format_ms(c.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `wrong_key` (401), `forbidden` (403: no API access or a scope missing),
    /// `wrong_region` (the key belongs to another region), `network` (name, refused,
    /// timeout, TLS), `refused` (an address coachloop may not send to), `rate_limited`,
    /// `remote_error`, `malformed`, `key` (the stored key cannot be opened).
    pub kind: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub ok: bool,
    /// The remote account's name, when the key opened it.
    pub account: Option<String>,
    pub problem: Option<ProblemBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemoteCampaign {
    pub id: i64,
    pub name: String,
    pub status: String,
}

/// A key sealed for the account with the installation's secret key.
fn seal(state: &AppState, account: AccountId, key: &str) -> Result<Vec<u8>, ApiError> {
    let secret = state
        .config
        .secret_key
        .key()
        .map_err(|e| ApiError::internal(format!("the installation's secret key: {e:#}")))?;
    Ok(secret.seal(key.as_bytes(), &key_context(account.0)))
}

/// The last characters of a key, for people to tell keys apart.
fn hint(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

fn key_of(key: &str, field: &str) -> Result<String, ApiError> {
    let key = key.trim();
    if key.is_empty()
        || key.chars().count() > 4096
        || key.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::invalid(vec![FieldError::new(
            field,
            "a Reporting API key: one word of at most 4096 characters",
        )]));
    }
    Ok(key.to_owned())
}

/// The place a connection reads from: a region's host, or a base URL the outbound rule
/// allows.
async fn place(
    state: &AppState,
    region: Option<RegionName>,
    base_url: Option<&str>,
) -> Result<(Option<String>, String), ApiError> {
    match (region, base_url) {
        (Some(region), None) => {
            let region = Region::from(region);
            Ok((
                Some(region.as_str().to_owned()),
                state.config.regions.base_url(region),
            ))
        }
        (None, Some(url)) => {
            let url = normalize_base(url);
            state
                .outbound
                .check_new(&url)
                .await
                .map_err(|e| ApiError::invalid(vec![FieldError::new("base_url", e.to_string())]))?;
            Ok((None, url))
        }
        _ => Err(ApiError::invalid(vec![FieldError::new(
            "region",
            "give either a region (us, eu, ca, uk, de) or a base_url, not both",
        )])),
    }
}

/// The minutes between scheduled syncs, within the bounds the document gives.
fn interval_of(minutes: u32) -> Result<i64, ApiError> {
    if !(5..=10_080).contains(&minutes) {
        return Err(ApiError::invalid(vec![FieldError::new(
            "interval_minutes",
            "5 to 10080 minutes (one week)",
        )]));
    }
    Ok(i64::from(minutes))
}

fn name_of(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(ApiError::invalid(vec![FieldError::new(
            "name",
            "1 to 255 characters",
        )]));
    }
    Ok(name.to_owned())
}

/// Every sync connection of the account.
#[utoipa::path(get, path = "/api/compliance/connections", tag = "compliance",
    responses(
        (status = 200, description = "the connections", body = DataOf<Vec<ConnectionBody>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_connections(
    State(state): State<AppState>,
    Admin(auth): Admin,
) -> ApiResult<Json<DataOf<Vec<ConnectionBody>>>> {
    let now = state.store.clock().now_ms();
    let rows = state.store.sync_connections(auth.account()).await?;
    Ok(Json(DataOf {
        data: rows
            .into_iter()
            .map(|c| ConnectionBody::of(c, now))
            .collect(),
    }))
}

/// Connect a remote Reporting API. Its first sync starts at once; it shows `pending`
/// until that succeeds.
#[utoipa::path(post, path = "/api/compliance/connections", tag = "compliance",
    request_body = ConnectionInput,
    responses(
        (status = 201, description = "connected; the first sync is due now", body = DataOf<ConnectionBody>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 409, description = "a connection of that name exists", body = ErrorBody),
        (status = 422, description = "neither or both of region and base_url, a base URL that is not http(s) or not allowed, a bad key or mapping", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_connection(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(input): Json<ConnectionInput>,
) -> ApiResult<(StatusCode, Json<DataOf<ConnectionBody>>)> {
    let name = name_of(&input.name)?;
    let key = key_of(&input.key, "key")?;
    let requirements = input.requirements.unwrap_or_default().counting()?;
    let (region, base_url) = place(&state, input.region, input.base_url.as_deref()).await?;
    let account = auth.account();
    let new = NewConnection {
        name,
        region,
        base_url,
        key_sealed: seal(&state, account, &key)?,
        key_hint: hint(&key),
        requirements,
        interval_minutes: interval_of(input.interval_minutes.unwrap_or(60))?,
    };
    let row = state.store.create_sync_connection(account, &new).await?;
    let now = state.store.clock().now_ms();
    Ok((
        StatusCode::CREATED,
        Json(DataOf {
            data: ConnectionBody::of(row, now),
        }),
    ))
}

/// One connection with its sync status: `pending` until the first success, then the
/// last success, last error and counts.
#[utoipa::path(get, path = "/api/compliance/connections/{id}", tag = "compliance",
    params(("id" = i64, Path, description = "connection id", minimum = 1)),
    responses(
        (status = 200, description = "the connection", body = DataOf<ConnectionBody>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such connection in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_connection(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<ConnectionBody>>> {
    let row = state
        .store
        .sync_connection(auth.account(), ConnectionId(id))
        .await?;
    let now = state.store.clock().now_ms();
    Ok(Json(DataOf {
        data: ConnectionBody::of(row, now),
    }))
}

/// Change a connection: its name, place, key, what counts (people with enrolments from
/// it are evaluated again at once) or interval.
#[utoipa::path(patch, path = "/api/compliance/connections/{id}", tag = "compliance",
    request_body = ConnectionUpdate,
    params(("id" = i64, Path, description = "connection id", minimum = 1)),
    responses(
        (status = 200, description = "changed", body = DataOf<ConnectionBody>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such connection in this account", body = ErrorBody),
        (status = 409, description = "a connection of that name exists", body = ErrorBody),
        (status = 422, description = "both region and base_url, a base URL not allowed, a bad key or mapping", body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_connection(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
    Json(input): Json<ConnectionUpdate>,
) -> ApiResult<Json<DataOf<ConnectionBody>>> {
    let account = auth.account();
    let changes = ConnectionChanges {
        name: input.name.as_deref().map(name_of).transpose()?,
        place: match (input.region, input.base_url.as_deref()) {
            (None, None) => None,
            (region, url) => Some(place(&state, region, url).await?),
        },
        key: match input.key.as_deref() {
            Some(key) => {
                let key = key_of(key, "key")?;
                Some((seal(&state, account, &key)?, hint(&key)))
            }
            None => None,
        },
        requirements: input.requirements.map(|r| r.counting()).transpose()?,
        interval_minutes: input.interval_minutes.map(interval_of).transpose()?,
    };
    let row = state
        .store
        .update_sync_connection(account, ConnectionId(id), &changes)
        .await?;
    let now = state.store.clock().now_ms();
    Ok(Json(DataOf {
        data: ConnectionBody::of(row, now),
    }))
}

/// Remove a connection: its enrolments stop counting (people are evaluated again at
/// once) and the people it added are archived.
#[utoipa::path(delete, path = "/api/compliance/connections/{id}", tag = "compliance",
    params(("id" = i64, Path, description = "connection id", minimum = 1)),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such connection in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_connection(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_sync_connection(auth.account(), ConnectionId(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// *Test connection*: the key against every path a sync reads, and what is wrong in
/// words a person can act on (a wrong key, a key without access or a scope, the wrong
/// region, the network).
#[utoipa::path(post, path = "/api/compliance/connections/{id}/test", tag = "compliance",
    params(("id" = i64, Path, description = "connection id", minimum = 1)),
    responses(
        (status = 200, description = "tested (`ok` says how it went)", body = DataOf<TestResult>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such connection in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn test_connection(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<TestResult>>> {
    let account = auth.account();
    let id = ConnectionId(id);
    let connection = state.store.sync_connection(account, id).await?;
    let sealed = state.store.sync_key(account, id).await?;
    let key = state
        .config
        .secret_key
        .key()
        .ok()
        .and_then(|secret| secret.open(&sealed, &key_context(account.0)).ok())
        .and_then(|k| String::from_utf8(k).ok());
    let tested = match key {
        Some(key) => {
            remote::test(
                &state.syncer.client,
                &state.config.regions,
                &connection,
                &key,
            )
            .await
        }
        None => remote::Tested {
            ok: false,
            account: None,
            problem: Some(remote::Problem {
                kind: "key",
                message: "the stored key cannot be opened with this node's secret key: give \
                          every node the same secret_key_file, or set the key again"
                    .to_owned(),
                retry_after: None,
            }),
        },
    };
    Ok(Json(DataOf {
        data: TestResult {
            ok: tested.ok,
            account: tested.account,
            problem: tested.problem.map(|p| ProblemBody {
                kind: p.kind.to_owned(),
                message: p.message,
            }),
        },
    }))
}

/// *Sync now*: the connection's next sync is due at once (a node of the installation
/// starts it; an interrupted one resumes where it stopped). Follow it with `GET`.
#[utoipa::path(post, path = "/api/compliance/connections/{id}/sync", tag = "compliance",
    params(("id" = i64, Path, description = "connection id", minimum = 1)),
    responses(
        (status = 202, description = "due now", body = DataOf<ConnectionBody>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such connection in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn sync_connection(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<DataOf<ConnectionBody>>)> {
    let row = state
        .store
        .request_sync(auth.account(), ConnectionId(id))
        .await?;
    let now = state.store.clock().now_ms();
    Ok((
        StatusCode::ACCEPTED,
        Json(DataOf {
            data: ConnectionBody::of(row, now),
        }),
    ))
}

/// The remote campaigns the last sync read, to choose which count for which requirement.
#[utoipa::path(get, path = "/api/compliance/connections/{id}/campaigns", tag = "compliance",
    params(("id" = i64, Path, description = "connection id", minimum = 1)),
    responses(
        (status = 200, description = "the remote campaigns", body = DataOf<Vec<RemoteCampaign>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such connection in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn connection_campaigns(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Vec<RemoteCampaign>>>> {
    let rows = state
        .store
        .synced_campaigns(auth.account(), ConnectionId(id))
        .await?;
    Ok(Json(DataOf {
        data: rows
            .into_iter()
            .map(|(id, name, status)| RemoteCampaign { id, name, status })
            .collect(),
    }))
}
