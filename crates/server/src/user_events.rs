//! The User Event API (shared/reference/user-event-api.md): `/events`, `/event_types`,
//! `/statuses`, at the root of the listener so a sender only changes its base URL.

use crate::AppState;
use crate::auth::{Auth, EventsWriter};
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::paging::{DataOf, ListOf, Meta, PageParams};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use coachloop_core::FieldError;
use coachloop_core::event::{NewEvent, RawEvent, parse_type_name};
use coachloop_core::event_id::{EventId, unpack};
use coachloop_core::ids::EventTypeId;
use coachloop_core::scope::Scope;
use coachloop_core::time::{date_of_ms, date_start_ms, format_date, format_ms, parse_date};
use coachloop_store::event_types::EventType as EventTypeRow;
use coachloop_store::events::{EventFilter, EventOrder, EventRow};
use coachloop_store::ingest::{Failure, Submission};
use coachloop_store::statuses::StatusRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_events, list_events))
        .routes(routes!(get_event, delete_event))
        .routes(routes!(list_statuses))
        .routes(routes!(get_status))
        .routes(routes!(list_event_types, create_event_type))
        .routes(routes!(
            get_event_type,
            update_event_type,
            delete_event_type
        ))
}

// ---- shapes -------------------------------------------------------------------------

/// The person an event is about. `id` is null while the event is unmatched.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventUser {
    pub email: String,
    pub id: Option<i64>,
    pub archived: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventRisk {
    pub level: Option<i64>,
    pub decay_mode: Option<i64>,
    /// `YYYY-MM-DD`.
    pub expire_date: Option<String>,
    /// Share (0 to 1) of `level` that still counts now.
    pub factor: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeRef {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
}

/// An event as the User Event API returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: String,
    pub account_id: i64,
    pub user: EventUser,
    pub external_id: Option<String>,
    pub source: Option<String>,
    pub description: Option<String>,
    /// RFC 3339 UTC with milliseconds.
    pub occurred_date: String,
    pub risk: EventRisk,
    pub metadata: Option<Value>,
    pub event_type: EventTypeRef,
}

impl Event {
    pub fn from_row(row: EventRow, now_ms: i64) -> Self {
        let factor = row.risk_level.and_then(|level| {
            let risk = coachloop_core::event::Risk {
                level,
                decay_mode: row
                    .risk_decay_mode
                    .and_then(coachloop_core::event::DecayMode::from_i64),
                expire_date: date_of_ms(row.risk_expire_date?),
            };
            Some((risk.factor(row.occurred_at, now_ms) * 1000.0).round() / 1000.0)
        });
        Self {
            id: row.event_id().to_string(),
            account_id: row.account_id.0,
            user: EventUser {
                email: row.user_email.unwrap_or(row.target_user),
                id: row.user_id.map(|id| id.0),
                archived: row.user_archived,
            },
            external_id: row.external_id,
            source: row.source,
            description: row.description,
            occurred_date: format_ms(row.occurred_at),
            risk: EventRisk {
                level: row.risk_level,
                decay_mode: row.risk_decay_mode,
                expire_date: row.risk_expire_date.map(|ms| format_date(date_of_ms(ms))),
                factor,
            },
            metadata: row.metadata.and_then(|m| serde_json::from_str(&m).ok()),
            event_type: EventTypeRef {
                id: row.event_type_id.0,
                name: row.event_type_name,
                description: row.event_type_description,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestId {
    /// The request's id; `GET /statuses/{id}` lists the events it created.
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusDetails {
    pub events: Vec<String>,
    pub failures: Vec<Value>,
}

/// What became of one `POST /events` request.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    pub id: String,
    pub details: StatusDetails,
    /// When it was processed (RFC 3339).
    pub processed: String,
    /// The name of the token that sent it.
    pub api_key: String,
}

impl From<StatusRow> for Status {
    fn from(row: StatusRow) -> Self {
        Self {
            id: row.uuid,
            details: StatusDetails {
                events: unpack(&row.events)
                    .into_iter()
                    .map(|id| id.to_string())
                    .collect(),
                failures: serde_json::from_str(&row.failures).unwrap_or_default(),
            },
            processed: format_ms(row.processed_at),
            api_key: row.token_name,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventType {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub description: Option<String>,
}

impl From<EventTypeRow> for EventType {
    fn from(row: EventTypeRow) -> Self {
        Self {
            id: row.id.0,
            account_id: row.account_id.0,
            name: row.name,
            description: row.description,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountMeta {
    pub count: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    pub data: Vec<EventType>,
    pub meta: CountMeta,
}

// ---- POST /events ---------------------------------------------------------------------

/// Submit one event (a JSON object) or up to 1,000 (a JSON array).
///
/// The request is processed before the answer: when 201 arrives every listed event is
/// durably stored. In a bulk request invalid items are listed in the status's `failures`.
#[utoipa::path(post, path = "/events", tag = "user events",
    request_body(content = crate::schemas::EventsInput, description = "an event object, or an array of them"),
    responses(
        (status = 201, description = "stored", body = DataOf<RequestId>),
        (status = 400, description = "not JSON, or not an object/array", body = crate::error::ErrorBody),
        (status = 401, description = "missing, unknown, expired or revoked token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:write`", body = crate::error::ErrorBody),
        (status = 413, description = "body over the size limit, or more than 1,000 events", body = crate::error::ErrorBody),
        (status = 422, description = "a single event failed validation", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn post_events(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<DataOf<RequestId>>)> {
    // A token without the scope is refused too, and the refusal shown with it: a
    // Reporting key pasted into a sender is the commonest such mistake.
    let result = match auth.require(Scope::EventsWrite) {
        Ok(()) => submit(&state, &auth, &headers, body).await,
        Err(e) => Err(e),
    };
    // The sender's status: its last stored event, and its last refused request or items.
    let now = state.store.clock().now_ms();
    let (stored, error) = match &result {
        Ok((stored, refused, _)) => (*stored > 0, refused_items(refused, *stored)),
        Err(e) if e.status.is_client_error() => (false, Some(e.message.clone())),
        Err(_) => (false, None),
    };
    if stored || error.is_some() {
        state.activity.record(
            &state.store,
            auth.token.id,
            stored.then_some(now),
            error.map(|why| (now, why)),
        );
    }
    let request_id = result?.2;
    Ok((
        StatusCode::CREATED,
        Json(DataOf {
            data: RequestId {
                id: request_id.to_string(),
            },
        }),
    ))
}

/// Parses and stores one `POST /events`: events stored, the refused items, the request id.
async fn submit(
    state: &AppState,
    auth: &Auth,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(usize, Vec<String>, Uuid)> {
    let body = body?;
    let now = state.store.clock().now();
    let (events, failures) = parse_submission(&body, now, state.config.max_bulk_events)?;
    let stored = events.len();
    let refused = failures
        .iter()
        .map(|f| format!("item {}: {}", f.index, f.reason))
        .collect();
    let request_id = Uuid::now_v7();
    state
        .ingest
        .submit(Submission {
            account: auth.account(),
            request_id,
            token_name: auth.token.name.clone(),
            integration: headers
                .get("x-kb4-integration")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(100).collect()),
            events,
            failures,
        })
        .await?;
    Ok((stored, refused, request_id))
}

/// A bulk request's refused items in words ("2 of 50 events refused, e.g. item 3: …").
fn refused_items(refused: &[String], stored: usize) -> Option<String> {
    let first = refused.first()?;
    Some(format!(
        "{} of {} events refused, e.g. {first}",
        refused.len(),
        refused.len() + stored
    ))
}

/// Parses a `POST /events` body: one object, or an array of them whose bad items become
/// failures. Values are parsed field by field into [`RawEvent`], never into a whole
/// `serde_json::Value` tree.
fn parse_submission(
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
    max: usize,
) -> ApiResult<(Vec<NewEvent>, Vec<Failure>)> {
    let not_json =
        |e: serde_json::Error| ApiError::bad_request(format!("the body is not valid JSON: {e}"));
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {
            let raw: RawEvent = serde_json::from_slice(body).map_err(not_json)?;
            let event = NewEvent::parse(&raw, now).map_err(ApiError::invalid)?;
            Ok((vec![event], Vec::new()))
        }
        Some(b'[') => {
            // Raw items are skipped over without serde_json's depth limit: check it here.
            if nesting_depth(body) > MAX_DEPTH {
                return Err(ApiError::bad_request(format!(
                    "the body is not valid JSON: nested more than {MAX_DEPTH} levels deep"
                )));
            }
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(not_json)?;
            if items.is_empty() {
                return Err(ApiError::invalid(vec![FieldError::new(
                    "",
                    "the array holds no events",
                )]));
            }
            if items.len() > max {
                return Err(ApiError::too_large(format!(
                    "a bulk request holds at most {max} events; this one has {}: split it",
                    items.len()
                )));
            }
            let mut events = Vec::with_capacity(items.len());
            let mut failures = Vec::new();
            for (index, item) in items.iter().enumerate() {
                match parse_item(item) {
                    Ok(raw) => match NewEvent::parse(&raw, now) {
                        Ok(event) => events.push(event),
                        Err(errors) => failures.push(Failure::new(index, errors)),
                    },
                    Err(error) => failures.push(Failure::new(index, vec![error])),
                }
            }
            Ok((events, failures))
        }
        _ => {
            // Not an object or array: say whether it is JSON at all.
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(not_json)?;
            Err(ApiError::bad_request(
                "the body must be a JSON object (one event) or an array of them (bulk)",
            ))
        }
    }
}

/// As deep as serde_json nests before it refuses.
const MAX_DEPTH: usize = 128;

/// The deepest nesting of arrays and objects in `json` (strings skipped).
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn parse_item(item: &RawValue) -> Result<RawEvent, FieldError> {
    if !item.get().trim_start().starts_with('{') {
        return Err(FieldError::new("", "an event must be a JSON object"));
    }
    serde_json::from_str(item.get()).map_err(|e| FieldError::new("", e.to_string()))
}

// ---- GET /events ----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    Id,
    EventType,
    OccurredDate,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderDirection {
    Asc,
    Desc,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Event type name.
    pub event_type: Option<String>,
    /// Email or alias of the person (matched case-insensitively).
    pub target_user: Option<String>,
    pub external_id: Option<String>,
    pub source: Option<String>,
    /// `YYYY-MM-DD`: events that occurred on that UTC day.
    #[param(format = Date)]
    pub occurred_date: Option<String>,
    #[serde(default, deserialize_with = "crate::paging::integer")]
    pub risk_level: Option<i64>,
    /// `id`, `event_type` or `occurred_date` (default).
    #[param(inline)]
    pub order_by: Option<OrderBy>,
    /// `asc` or `desc` (default: newest first).
    #[param(inline)]
    pub order_direction: Option<OrderDirection>,
}

/// List events, newest first, with filters.
#[utoipa::path(get, path = "/events", tag = "user events", params(EventsQuery, PageParams),
    responses(
        (status = 200, description = "a page of events", body = ListOf<Event>),
        (status = 400, description = "a bad filter or page", body = crate::error::ErrorBody),
        (status = 401, description = "bad token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:read`", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn list_events(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<EventsQuery>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Event>>> {
    auth.require(Scope::EventsRead)?;
    let page = paging.page()?;
    let occurred_between = match &query.occurred_date {
        Some(text) => {
            let day = parse_date(text.trim()).ok_or_else(|| {
                ApiError::bad_request("`occurred_date` must be a date written YYYY-MM-DD")
            })?;
            let start = date_start_ms(day);
            Some((start, start + 86_400_000))
        }
        None => None,
    };
    let filter = EventFilter {
        event_type: query.event_type,
        target_user: query.target_user,
        external_id: query.external_id,
        source: query.source,
        occurred_between,
        risk_level: query.risk_level,
        order_by: match query.order_by {
            Some(OrderBy::Id) => EventOrder::Id,
            Some(OrderBy::EventType) => EventOrder::EventType,
            Some(OrderBy::OccurredDate) | None => EventOrder::OccurredDate,
        },
        ascending: matches!(query.order_direction, Some(OrderDirection::Asc)),
    };
    let (rows, count) = state
        .store
        .list_events(auth.account(), &filter, page)
        .await?;
    Ok(Json(event_list(&state, rows, page, count)))
}

/// Wraps event rows in the list envelope (shared with the user timeline).
pub fn event_list(
    state: &AppState,
    rows: Vec<EventRow>,
    page: coachloop_store::Page,
    count: i64,
) -> ListOf<Event> {
    let now = state.store.clock().now_ms();
    ListOf {
        data: rows.into_iter().map(|r| Event::from_row(r, now)).collect(),
        meta: Meta::new(page, count),
    }
}

/// An event id from a path: anything that is not a UUID names no event.
fn event_id(text: &str) -> ApiResult<EventId> {
    Uuid::parse_str(text.trim())
        .map(EventId::from_uuid)
        .map_err(|_| ApiError::not_found("event"))
}

/// Read one event.
#[utoipa::path(get, path = "/events/{id}", tag = "user events",
    params(("id" = String, Path, description = "event id (UUID)")),
    responses(
        (status = 200, description = "the event", body = DataOf<Event>),
        (status = 401, description = "bad token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:read`", body = crate::error::ErrorBody),
        (status = 404, description = "no such event in this account", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn get_event(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<DataOf<Event>>> {
    auth.require(Scope::EventsRead)?;
    let row = state.store.event(auth.account(), event_id(&id)?).await?;
    let now = state.store.clock().now_ms();
    Ok(Json(DataOf {
        data: Event::from_row(row, now),
    }))
}

/// Delete one event; it stops counting at once.
#[utoipa::path(delete, path = "/events/{id}", tag = "user events",
    params(("id" = String, Path, description = "event id (UUID)")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "bad token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:write`", body = crate::error::ErrorBody),
        (status = 404, description = "no such event in this account", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn delete_event(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.require(Scope::EventsWrite)?;
    state
        .store
        .delete_event(auth.account(), event_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- /statuses ------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusesQuery {
    /// `true` or `false`; every stored request is processed before it is answered.
    pub processed: Option<bool>,
}

/// List request statuses, newest first.
#[utoipa::path(get, path = "/statuses", tag = "user events", params(StatusesQuery, PageParams),
    responses(
        (status = 200, description = "a page of statuses", body = ListOf<Status>),
        (status = 400, description = "a bad filter or page", body = crate::error::ErrorBody),
        (status = 401, description = "bad token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:read` and `events:write`", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn list_statuses(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<StatusesQuery>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Status>>> {
    auth.require_any(&[Scope::EventsRead, Scope::EventsWrite])?;
    let page = paging.page()?;
    let (rows, count) = state
        .store
        .list_statuses(auth.account(), query.processed, page)
        .await?;
    Ok(Json(ListOf {
        data: rows.into_iter().map(Status::from).collect(),
        meta: Meta::new(page, count),
    }))
}

/// What became of one request: the events it stored and the items that failed.
#[utoipa::path(get, path = "/statuses/{id}", tag = "user events",
    params(("id" = String, Path, description = "the request id POST /events answered")),
    responses(
        (status = 200, description = "the status", body = DataOf<Status>),
        (status = 401, description = "bad token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:read` and `events:write`", body = crate::error::ErrorBody),
        (status = 404, description = "no such request in this account", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn get_status(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<DataOf<Status>>> {
    auth.require_any(&[Scope::EventsRead, Scope::EventsWrite])?;
    let row = state.store.status(auth.account(), &id).await?;
    Ok(Json(DataOf { data: row.into() }))
}

// ---- /event_types ---------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventTypesQuery {
    /// Exact name.
    pub name: Option<String>,
}

/// `{"name", "description"}` of a new event type.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewEventTypeInput {
    #[schema(schema_with = crate::schemas::event_type_name)]
    pub name: String,
    /// At most 255 characters; empty or null: none.
    #[schema(max_length = 255)]
    pub description: Option<String>,
}

/// `{"name", "description"}`; an absent (or null) name is kept, a null description cleared.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EventTypeInput {
    #[schema(schema_with = crate::schemas::event_type_name_or_null)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 255)]
    pub description: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit null (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn parse_description(text: Option<Option<String>>) -> ApiResult<Option<Option<String>>> {
    match text {
        Some(Some(text)) if text.chars().count() > 255 => {
            Err(ApiError::invalid(vec![FieldError::new(
                "description",
                "must be at most 255 characters",
            )]))
        }
        Some(Some(text)) if text.trim().is_empty() => Ok(Some(None)),
        other => Ok(other),
    }
}

fn parse_name(name: &str) -> ApiResult<String> {
    parse_type_name(name).map_err(|e| ApiError::invalid(vec![e]))
}

/// List event types (the built-in catalog and those senders created).
#[utoipa::path(get, path = "/event_types", tag = "user events", params(EventTypesQuery),
    responses(
        (status = 200, description = "event types", body = EventTypeList),
        (status = 401, description = "bad token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:read` and `events:write`", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn list_event_types(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<EventTypesQuery>,
) -> ApiResult<Json<EventTypeList>> {
    auth.require_any(&[Scope::EventsRead, Scope::EventsWrite])?;
    let rows = state
        .store
        .list_event_types(
            auth.account(),
            query.name.as_deref().filter(|n| !n.trim().is_empty()),
        )
        .await?;
    let data: Vec<EventType> = rows.into_iter().map(EventType::from).collect();
    Ok(Json(EventTypeList {
        meta: CountMeta { count: data.len() },
        data,
    }))
}

/// Create an event type.
#[utoipa::path(post, path = "/event_types", tag = "user events", request_body = NewEventTypeInput,
    responses(
        (status = 201, description = "created", body = DataOf<EventType>),
        (status = 401, description = "bad token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:write`", body = crate::error::ErrorBody),
        (status = 409, description = "the name is taken", body = crate::error::ErrorBody),
        (status = 422, description = "a bad name or description", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn create_event_type(
    State(state): State<AppState>,
    EventsWriter(auth): EventsWriter,
    Json(input): Json<NewEventTypeInput>,
) -> ApiResult<(StatusCode, Json<DataOf<EventType>>)> {
    let name = parse_name(&input.name)?;
    let description = parse_description(Some(input.description))?.flatten();
    let row = state
        .store
        .create_event_type(auth.account(), &name, description.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(DataOf { data: row.into() })))
}

/// Read one event type.
#[utoipa::path(get, path = "/event_types/{id}", tag = "user events",
    params(("id" = i64, Path, description = "event type id")),
    responses(
        (status = 200, description = "the event type", body = DataOf<EventType>),
        (status = 401, description = "bad token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:read` and `events:write`", body = crate::error::ErrorBody),
        (status = 404, description = "no such type in this account", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn get_event_type(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<EventType>>> {
    auth.require_any(&[Scope::EventsRead, Scope::EventsWrite])?;
    let row = state
        .store
        .event_type(auth.account(), EventTypeId(id))
        .await?;
    Ok(Json(DataOf { data: row.into() }))
}

/// Rename or re-describe an event type.
#[utoipa::path(put, path = "/event_types/{id}", tag = "user events", request_body = EventTypeInput,
    params(("id" = i64, Path, description = "event type id")),
    responses(
        (status = 200, description = "updated", body = DataOf<EventType>),
        (status = 401, description = "bad token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:write`", body = crate::error::ErrorBody),
        (status = 404, description = "no such type in this account", body = crate::error::ErrorBody),
        (status = 409, description = "the name is taken", body = crate::error::ErrorBody),
        (status = 422, description = "a bad name or description", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn update_event_type(
    State(state): State<AppState>,
    EventsWriter(auth): EventsWriter,
    Path(id): Path<i64>,
    Json(input): Json<EventTypeInput>,
) -> ApiResult<Json<DataOf<EventType>>> {
    let name = input.name.as_deref().map(parse_name).transpose()?;
    let description = parse_description(input.description)?;
    let row = state
        .store
        .update_event_type(
            auth.account(),
            EventTypeId(id),
            name.as_deref(),
            description.as_ref().map(|d| d.as_deref()),
        )
        .await?;
    Ok(Json(DataOf { data: row.into() }))
}

/// Delete an event type that no event uses.
#[utoipa::path(delete, path = "/event_types/{id}", tag = "user events",
    params(("id" = i64, Path, description = "event type id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, description = "bad token", body = crate::error::ErrorBody),
        (status = 403, description = "the token lacks `events:write`", body = crate::error::ErrorBody),
        (status = 404, description = "no such type in this account", body = crate::error::ErrorBody),
        (status = 409, description = "events of this type exist", body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
async fn delete_event_type(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    auth.require(Scope::EventsWrite)?;
    state
        .store
        .delete_event_type(auth.account(), EventTypeId(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::nesting_depth;

    #[test]
    fn measures_nesting_outside_strings() {
        assert_eq!(nesting_depth(br#"[{"a":[1]}]"#), 3);
        assert_eq!(nesting_depth(br#"[{"a":"[[[[\"]]"}]"#), 2);
        assert_eq!(nesting_depth(b"17"), 0);
    }
}
