//! SCIM 2.0 (RFC 7643, RFC 7644) under `/scim/v2`, for identity providers (Okta, Entra
//! ID) and conformance tools. SCIM has its own discovery (`/Schemas`, `/ResourceTypes`,
//! `/ServiceProviderConfig`), media type (`application/scim+json`) and error body, so it is
//! not part of the OpenAPI document.
//!
//! Every request needs a token with the `scim` scope; answers are SCIM's own shapes.

mod groups;
mod patch;
mod query;
mod resource;
pub mod schema;
mod users;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{CONTENT_TYPE, ETAG, IF_MATCH, LOCATION, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use coachloop_core::scope::Scope;
use coachloop_store::StoreError;
use serde_json::{Value, json};

pub const MEDIA_TYPE: &str = "application/scim+json";

/// Most resources one list answers (`count` above it is lowered to it).
pub const MAX_RESULTS: i64 = 1000;
/// Resources a list answers when `count` is not given.
pub const DEFAULT_COUNT: i64 = 100;

pub fn router() -> Router<AppState> {
    let discovery = |handler: MethodRouter<AppState>| handler.fallback(read_only);
    let scim = Router::new()
        .route(
            "/ServiceProviderConfig",
            discovery(get(service_provider_config)),
        )
        .route("/ResourceTypes", discovery(get(resource_types)))
        .route("/ResourceTypes/{id}", discovery(get(resource_type)))
        .route("/Schemas", discovery(get(schemas)))
        .route("/Schemas/{id}", discovery(get(schema_by_id)))
        .route(
            "/Users",
            get(users::list).post(users::create).fallback(not_allowed),
        )
        .route("/Users/.search", post(users::list).fallback(not_allowed))
        .route(
            "/Users/{id}",
            get(users::read)
                .put(users::replace)
                .patch(users::modify)
                .delete(users::delete)
                .fallback(not_allowed),
        )
        .route(
            "/Groups",
            get(groups::list).post(groups::create).fallback(not_allowed),
        )
        .route("/Groups/.search", post(groups::list).fallback(not_allowed))
        .route(
            "/Groups/{id}",
            get(groups::read)
                .put(groups::replace)
                .patch(groups::modify)
                .delete(groups::delete)
                .fallback(not_allowed),
        )
        .fallback(|| async { ScimError::not_found("no such SCIM endpoint") });
    Router::new().nest("/scim/v2", scim)
}

/// A SCIM error (RFC 7644 §3.12): `status` as a string, `scimType` where one applies.
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    pub retry_after: Option<u64>,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 400 with `scimType`.
    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad("invalidValue", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [schema::ERROR],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(kind) = self.scim_type {
            body["scimType"] = json!(kind);
        }
        let mut response = (self.status, scim_json(&body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<StoreError> for ScimError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Conflict(field) => {
                Self::new(StatusCode::CONFLICT, Some("uniqueness"), field.message)
            }
            StoreError::Invalid(details) => {
                let kind = if details.iter().any(|d| d.field == "filter") {
                    "invalidFilter"
                } else {
                    "invalidValue"
                };
                let detail = details.iter().map(ToString::to_string).collect::<Vec<_>>();
                Self::bad(kind, detail.join("; "))
            }
            other => ApiError::from(other).into(),
        }
    }
}

/// An error of the rest of the server (authentication, rate limits, the database), told
/// in SCIM's shape; a 5xx keeps its generic message.
impl From<ApiError> for ScimError {
    fn from(err: ApiError) -> Self {
        Self {
            status: err.status,
            scim_type: None,
            detail: err.message,
            retry_after: err.retry_after,
        }
    }
}

pub type ScimResult<T> = Result<T, ScimError>;

/// `body` as `application/scim+json`.
fn scim_json(body: &Value) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))],
        body.to_string(),
    )
        .into_response()
}

/// A SCIM answer: a status, a body, and for a single resource its `ETag` (and on 201 its
/// `Location`), taken from its `meta`.
pub struct Answer(pub StatusCode, pub Value);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let Answer(status, body) = self;
        let mut response = (status, scim_json(&body)).into_response();
        let headers = response.headers_mut();
        if let Some(version) = body["meta"]["version"].as_str()
            && let Ok(value) = HeaderValue::from_str(version)
        {
            headers.insert(ETAG, value);
        }
        if status == StatusCode::CREATED
            && let Some(location) = body["meta"]["location"].as_str()
            && let Ok(value) = HeaderValue::from_str(location)
        {
            headers.insert(LOCATION, value);
        }
        response
    }
}

/// A caller whose token has the `scim` scope.
pub struct ScimClient(pub Auth);

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ScimResult<Self> {
        let auth = Auth::from_request_parts(parts, state).await?;
        auth.require(Scope::Scim)?;
        Ok(Self(auth))
    }
}

/// A JSON body sent as `application/scim+json` or `application/json`.
pub struct Body(pub Value);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> ScimResult<Self> {
        let kind = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        if let Some(kind) = kind
            && kind != MEDIA_TYPE
            && kind != "application/json"
        {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "send the body as `application/scim+json` (or `application/json`)",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ScimError::from(ApiError::from(e)))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ScimError::bad("invalidSyntax", format!("the body is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(ScimError::bad(
                "invalidSyntax",
                "the body must be a JSON object",
            ));
        }
        Ok(Body(value))
    }
}

/// The `If-Match` of a request, when it names versions (`*` matches any).
pub fn if_match(headers: &HeaderMap) -> Option<Vec<String>> {
    let text = headers.get(IF_MATCH)?.to_str().ok()?;
    let tags: Vec<String> = text.split(',').map(|t| t.trim().to_owned()).collect();
    (!tags.iter().any(|t| t == "*")).then_some(tags)
}

/// 412 unless `version` is one of `wanted` (no `If-Match`: anything goes).
pub fn check_version(wanted: &Option<Vec<String>>, version: &str) -> ScimResult<()> {
    match wanted {
        Some(tags) if !tags.iter().any(|t| t == version) => Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!("the resource is at version {version}, not the one in If-Match; read it again"),
        )),
        _ => Ok(()),
    }
}

/// Where SCIM answers: the server's public URL and `/scim/v2`.
pub fn base_url(state: &AppState) -> String {
    let public = state
        .config
        .public_url
        .as_deref()
        .unwrap_or("http://localhost");
    format!("{}/scim/v2", public.trim_end_matches('/'))
}

async fn read_only() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "discovery endpoints are read-only: use GET",
    )
}

async fn not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "this SCIM endpoint does not take that method",
    )
}

fn list_of(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [schema::LIST_RESPONSE],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

async fn service_provider_config(State(state): State<AppState>, _: ScimClient) -> Answer {
    Answer(
        StatusCode::OK,
        schema::service_provider_config(&base_url(&state), MAX_RESULTS),
    )
}

async fn resource_types(State(state): State<AppState>, _: ScimClient) -> Answer {
    Answer(
        StatusCode::OK,
        list_of(schema::resource_types(&base_url(&state))),
    )
}

async fn resource_type(
    State(state): State<AppState>,
    _: ScimClient,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ScimResult<Answer> {
    schema::resource_types(&base_url(&state))
        .into_iter()
        .find(|t| t["id"] == id.as_str())
        .map(|t| Answer(StatusCode::OK, t))
        .ok_or_else(|| ScimError::not_found(format!("no resource type `{id}`")))
}

async fn schemas(State(state): State<AppState>, _: ScimClient) -> Answer {
    Answer(StatusCode::OK, list_of(schema::schemas(&base_url(&state))))
}

async fn schema_by_id(
    State(state): State<AppState>,
    _: ScimClient,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ScimResult<Answer> {
    schema::schemas(&base_url(&state))
        .into_iter()
        .find(|s| {
            s["id"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(&id))
        })
        .map(|s| Answer(StatusCode::OK, s))
        .ok_or_else(|| ScimError::not_found(format!("no schema `{id}`")))
}
