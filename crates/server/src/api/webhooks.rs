//! Outbound webhooks: `/api/webhooks` — register a URL for some of coachloop's events,
//! read its delivery log, stop it.

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::paging::DataOf;
use axum::extract::State;
use axum::http::StatusCode;
use coachloop_core::FieldError;
use coachloop_core::ids::{CampaignId, WebhookId};
use coachloop_core::notice::Notice;
use coachloop_core::time::format_ms;
use coachloop_store::StoreError;
use coachloop_store::notices::{
    Delivery as DeliveryRow, FORMAT_JSON, FORMAT_SLACK, FORMAT_TEAMS, Job, WEBHOOK_EVENTS,
    Webhook as Row,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, stop_webhook))
        .routes(routes!(webhook_log))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    /// Signs every delivery: `X-Coachloop-Signature: sha256=HMAC(secret, "<timestamp>.<body>")`.
    pub secret: String,
    pub events: Vec<String>,
    pub active: bool,
    pub created_at: String,
    /// `json` (coachloop's signed fact), `slack` or `teams` (a notice's text).
    pub format: String,
    /// A chat webhook's one campaign; none: every campaign of the account.
    pub campaign_id: Option<i64>,
}

impl TryFrom<Row> for Webhook {
    type Error = StoreError;

    fn try_from(w: Row) -> Result<Self, StoreError> {
        Ok(Self {
            events: w.event_names()?,
            id: w.id.0,
            url: w.url,
            secret: w.secret,
            active: w.active,
            created_at: format_ms(w.created_at),
            format: w.format,
            campaign_id: w.campaign_id,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// `http://` or `https://`, to a public address unless the operator allows others.
    #[schema(pattern = "^https?://")]
    pub url: String,
    #[schema(schema_with = crate::schemas::webhook_events)]
    pub events: Vec<String>,
    /// `json` (the default): coachloop's signed JSON of each fact. `slack` or `teams`: an
    /// incoming webhook of the chat, sent the text of notices (never the learner's link).
    #[serde(default = "json_format")]
    #[schema(pattern = "^(json|slack|teams)$", default = "json")]
    pub format: String,
    /// For a chat webhook: only this campaign's notices.
    #[schema(minimum = 1)]
    pub campaign_id: Option<i64>,
}

fn json_format() -> String {
    FORMAT_JSON.to_owned()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    pub attempt: i64,
    pub at: String,
    pub ok: bool,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub took_ms: i64,
}

impl From<DeliveryRow> for Attempt {
    fn from(d: DeliveryRow) -> Self {
        Self {
            attempt: d.attempt,
            at: format_ms(d.at),
            ok: d.ok,
            status_code: d.status_code,
            error: d.error,
            took_ms: d.took_ms,
        }
    }
}

/// One fact sent (or being sent) to a webhook, with every attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedDelivery {
    /// The fact's id, sent as `X-Coachloop-Delivery`.
    pub id: String,
    /// `pending` (waiting for its next try), `done` or `failed` (gave up).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
    pub log: Vec<Attempt>,
}

impl LoggedDelivery {
    fn new(job: Job, log: Vec<DeliveryRow>) -> Result<Self, StoreError> {
        let payload: serde_json::Value = job.read_payload()?;
        Ok(Self {
            next_attempt_at: (job.status == "pending").then(|| format_ms(job.run_at)),
            id: job.dedupe,
            status: job.status,
            attempts: job.attempts,
            last_error: job.last_error,
            body: payload
                .get("body")
                .or_else(|| payload.get("notice"))
                .cloned()
                .unwrap_or_default(),
            log: log.into_iter().map(Attempt::from).collect(),
        })
    }
}

/// The format and the events (facts, or a chat's notices) named; the URL is checked by
/// [`create_webhook`], which may resolve it.
fn validate(input: &WebhookInput) -> ApiResult<()> {
    let notices = Notice::ALL.map(|n| n.as_str());
    let known: &[&str] = match input.format.as_str() {
        FORMAT_JSON => &WEBHOOK_EVENTS,
        FORMAT_SLACK | FORMAT_TEAMS => &notices,
        _ => {
            return Err(ApiError::invalid(vec![FieldError::new(
                "format",
                "one of json, slack, teams",
            )]));
        }
    };
    if input.format == FORMAT_JSON && input.campaign_id.is_some() {
        return Err(ApiError::invalid(vec![FieldError::new(
            "campaign_id",
            "only a chat webhook (format slack or teams) is for one campaign",
        )]));
    }
    if input.events.is_empty() {
        return Err(ApiError::invalid(vec![FieldError::new(
            "events",
            format!("name at least one of: {}", known.join(", ")),
        )]));
    }
    for (i, event) in input.events.iter().enumerate() {
        if !known.contains(&event.as_str()) {
            return Err(ApiError::invalid(vec![FieldError::new(
                format!("events[{i}]"),
                format!(
                    "unknown {} for format {}; expected one of: {}",
                    if input.format == FORMAT_JSON {
                        "event"
                    } else {
                        "notice"
                    },
                    input.format,
                    known.join(", ")
                ),
            )]));
        }
    }
    Ok(())
}

/// List webhooks.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "every webhook of the account", body = DataOf<Vec<Webhook>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_webhooks(
    State(state): State<AppState>,
    Admin(auth): Admin,
) -> ApiResult<Json<DataOf<Vec<Webhook>>>> {
    let rows = state.store.list_webhooks(auth.account()).await?;
    Ok(Json(DataOf {
        data: rows
            .into_iter()
            .map(Webhook::try_from)
            .collect::<Result<_, _>>()?,
    }))
}

/// Register a webhook for some events. Deliveries are signed with its `secret`.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = WebhookInput,
    responses(
        (status = 201, description = "registered", body = DataOf<Webhook>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 422, description = "a bad URL or event name, or a destination that is not a public address (unless `allow_private_destinations` opens it)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_webhook(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(input): Json<WebhookInput>,
) -> ApiResult<(StatusCode, Json<DataOf<Webhook>>)> {
    validate(&input)?;
    // An http(s) URL whose host is public (or allowed by the operator); its address is
    // checked again on every delivery.
    state
        .outbound
        .check_new(&input.url)
        .await
        .map_err(|e| ApiError::invalid(vec![FieldError::new("url", e.to_string())]))?;
    let mut events = input.events.clone();
    events.sort();
    events.dedup();
    let row = state
        .store
        .create_webhook(
            auth.account(),
            input.url.trim(),
            &events,
            &input.format,
            input.campaign_id.map(CampaignId),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::invalid(vec![FieldError::new(
                "campaign_id",
                "no such campaign in this account",
            )]),
            e => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(DataOf {
            data: row.try_into()?,
        }),
    ))
}

/// Read one webhook.
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "webhook id")),
    responses(
        (status = 200, description = "the webhook", body = DataOf<Webhook>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such webhook in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_webhook(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Webhook>>> {
    let row = state.store.webhook(auth.account(), WebhookId(id)).await?;
    Ok(Json(DataOf {
        data: row.try_into()?,
    }))
}

/// Stop a webhook: nothing new is queued for it (what is queued is still tried).
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks",
    params(("id" = i64, Path, description = "webhook id")),
    responses(
        (status = 200, description = "stopped", body = DataOf<Webhook>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such webhook in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn stop_webhook(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Webhook>>> {
    let row = state
        .store
        .deactivate_webhook(auth.account(), WebhookId(id))
        .await?;
    Ok(Json(DataOf {
        data: row.try_into()?,
    }))
}

/// A webhook's delivery log: its latest 100 facts, newest first, with every attempt.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path, description = "webhook id")),
    responses(
        (status = 200, description = "the log", body = DataOf<Vec<LoggedDelivery>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such webhook in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn webhook_log(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Vec<LoggedDelivery>>>> {
    let log = state
        .store
        .webhook_log(auth.account(), WebhookId(id), 100)
        .await?;
    Ok(Json(DataOf {
        data: log
            .into_iter()
            .map(|(job, attempts)| LoggedDelivery::new(job, attempts))
            .collect::<Result<_, _>>()?,
    }))
}
