//! The LRS through the admin API (needs `admin`): `/api/xapi/credentials` (key and secret
//! pairs an LMS uses with HTTP Basic auth), `/api/xapi/unmapped` (statements whose person
//! or activity matched nothing) and `/api/xapi/activities` (an activity IRI mapped to
//! content, which applies the statements that were waiting for it).

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Query};
use crate::paging::{DataOf, ListOf, Meta, PageParams};
use axum::extract::State;
use axum::http::StatusCode;
use coachloop_core::FieldError;
use coachloop_core::ids::ContentId;
use coachloop_core::scope::{Scope, Scopes};
use coachloop_core::time::format_ms;
use coachloop_core::xapi::is_iri;
use coachloop_store::tokens::{NewToken, Token};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_credentials, create_credential))
        .routes(routes!(revoke_credential))
        .routes(routes!(unmapped))
        .routes(routes!(list_activities, map_activity, unmap_activity))
}

/// An LRS credential, never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct Credential {
    /// The user name of HTTP Basic auth.
    pub key: String,
    pub name: String,
    /// `read` and/or `write`.
    pub scopes: Vec<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl Credential {
    fn of(token: Token) -> Option<Self> {
        Some(Self {
            key: token.lrs_key?,
            scopes: token
                .scopes
                .iter()
                .filter_map(|s| match s {
                    Scope::XapiRead => Some("read".to_owned()),
                    Scope::XapiWrite => Some("write".to_owned()),
                    _ => None,
                })
                .collect(),
            name: token.name,
            created_at: format_ms(token.created_at),
            last_used_at: token.last_used_at.map(format_ms),
            revoked_at: token.revoked_at.map(format_ms),
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CredentialInput {
    /// What the credential is for (the LMS), unique among the account's live tokens.
    #[schema(schema_with = crate::schemas::token_name)]
    pub name: String,
    /// `read`, `write` or both; left out: both.
    #[schema(schema_with = lrs_scopes)]
    #[serde(default, deserialize_with = "given")]
    pub scopes: Option<Option<Vec<String>>>,
}

/// Tells a field left out (`None`) from one sent as `null` (`Some(None)`).
fn given<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Vec<String>>>, D::Error> {
    Option::<Vec<String>>::deserialize(d).map(Some)
}

fn lrs_scopes() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .min_items(Some(1))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["read", "write"])),
        )
        .build()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedCredential {
    pub credential: Credential,
    /// The password of HTTP Basic auth: shown this once; only a hash is kept.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialList {
    pub data: Vec<Credential>,
}

/// List the account's LRS credentials (no secrets).
#[utoipa::path(get, path = "/api/xapi/credentials", tag = "xapi",
    responses(
        (status = 200, description = "credentials", body = CredentialList),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_credentials(
    State(state): State<AppState>,
    Admin(auth): Admin,
) -> ApiResult<Json<CredentialList>> {
    let tokens = state.store.list_tokens(auth.account()).await?;
    Ok(Json(CredentialList {
        data: tokens.into_iter().filter_map(Credential::of).collect(),
    }))
}

/// Create an LRS credential: a key and a secret for an LMS to send (`write`) or read
/// back (`read`) statements with HTTP Basic auth. The secret is shown this once.
#[utoipa::path(post, path = "/api/xapi/credentials", tag = "xapi", request_body = CredentialInput,
    responses(
        (status = 201, description = "created", body = DataOf<CreatedCredential>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 409, description = "a live token has this name", body = ErrorBody),
        (status = 422, description = "a bad name or scope", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_credential(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(input): Json<CredentialInput>,
) -> ApiResult<(StatusCode, Json<DataOf<CreatedCredential>>)> {
    let scopes = match &input.scopes {
        Some(None) => Err("must be a list of read and write; leave it out for both".to_owned()),
        Some(Some(names)) => lrs_scope_list(Some(names)),
        None => lrs_scope_list(None),
    }
    .map_err(|message| ApiError::invalid(vec![FieldError::new("scopes", message)]))?;
    let new = NewToken {
        name: input.name,
        scopes,
        expires_at: None,
        limits: Default::default(),
        lrs: true,
    };
    let (token, secret) = state.store.create_token(auth.account(), &new).await?;
    let credential = Credential::of(token).ok_or_else(|| ApiError::internal("no key"))?;
    Ok((
        StatusCode::CREATED,
        Json(DataOf {
            data: CreatedCredential { credential, secret },
        }),
    ))
}

/// The scopes of an LRS credential from `read`/`write` (not given: both).
pub fn lrs_scope_list(names: Option<&[String]>) -> Result<Scopes, String> {
    let Some(names) = names else {
        return Ok(Scopes::new(vec![Scope::XapiRead, Scope::XapiWrite]));
    };
    if names.is_empty() {
        return Err("name read, write or both (leave `scopes` out for both)".into());
    }
    names
        .iter()
        .map(|n| match n.trim() {
            "read" => Ok(Scope::XapiRead),
            "write" => Ok(Scope::XapiWrite),
            other => Err(format!("`{other}` is not read or write")),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Scopes::new)
}

/// Revoke the live LRS credential with this key; it stops working at once.
#[utoipa::path(delete, path = "/api/xapi/credentials/{key}", tag = "xapi",
    params(("key" = String, Path, description = "the credential's key")),
    responses(
        (status = 200, description = "revoked", body = DataOf<Credential>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no live credential with that key", body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke_credential(
    State(state): State<AppState>,
    Admin(auth): Admin,
    crate::error::Path(key): crate::error::Path<String>,
) -> ApiResult<Json<DataOf<Credential>>> {
    let token = state
        .store
        .revoke_lrs_credential(auth.account(), &key)
        .await?;
    state.tokens.clear();
    let credential = Credential::of(token).ok_or_else(|| ApiError::internal("no key"))?;
    Ok(Json(DataOf { data: credential }))
}

/// A statement that moves an enrolment but whose person or activity matched nothing.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnmappedStatement {
    pub statement_id: String,
    pub stored: String,
    pub verb: String,
    /// The actor's email, if it has one.
    pub actor: Option<String>,
    pub activity: Option<String>,
    /// What matched nothing, in words.
    pub reason: Option<String>,
}

/// Statements kept but not applied because their person or activity matched nothing,
/// newest first. Mapping the activity (`PUT /api/xapi/activities`) applies them.
#[utoipa::path(get, path = "/api/xapi/unmapped", tag = "xapi", params(PageParams),
    responses(
        (status = 200, description = "a page of them", body = ListOf<UnmappedStatement>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn unmapped(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<UnmappedStatement>>> {
    let page = paging.page()?;
    let (rows, count) = state
        .store
        .unmapped_statements(auth.account(), page)
        .await?;
    Ok(Json(ListOf {
        data: rows
            .into_iter()
            .map(|r| UnmappedStatement {
                statement_id: r.statement_id,
                stored: format_ms(r.stored_at),
                verb: r.verb,
                actor: r.actor,
                activity: r.activity,
                reason: r.note,
            })
            .collect(),
        meta: Meta::new(page, count),
    }))
}

/// An activity IRI mapped to content.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityMapping {
    pub activity: String,
    pub content_id: i64,
    pub content_title: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityMappingList {
    pub data: Vec<ActivityMapping>,
}

/// The account's activity mappings. Without one, an activity whose IRI ends in a
/// content slug (`…/activities/password-management`) counts for that content.
#[utoipa::path(get, path = "/api/xapi/activities", tag = "xapi",
    responses(
        (status = 200, description = "mappings", body = ActivityMappingList),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_activities(
    State(state): State<AppState>,
    Admin(auth): Admin,
) -> ApiResult<Json<ActivityMappingList>> {
    let rows = state.store.activity_mappings(auth.account()).await?;
    Ok(Json(ActivityMappingList {
        data: rows
            .into_iter()
            .map(|m| ActivityMapping {
                activity: m.activity,
                content_id: m.content_id,
                content_title: m.content_title,
                created_at: format_ms(m.created_at),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MappingInput {
    /// The activity's IRI, as statements name it.
    #[schema(max_length = 2000, pattern = r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s]+$")]
    pub activity: String,
    /// The content it counts for.
    #[schema(minimum = 1)]
    pub content_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Mapped {
    pub activity: String,
    pub content_id: i64,
    /// How many waiting statements about the activity moved an enrolment now.
    pub applied: u64,
}

/// Map an activity to content (replacing an earlier mapping) and apply the statements
/// about it that were waiting, in the order they were stored.
#[utoipa::path(put, path = "/api/xapi/activities", tag = "xapi", request_body = MappingInput,
    responses(
        (status = 200, description = "mapped", body = DataOf<Mapped>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such content in this account", body = ErrorBody),
        (status = 422, description = "the activity is not an IRI", body = ErrorBody)),
    security(("bearer" = [])))]
async fn map_activity(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(input): Json<MappingInput>,
) -> ApiResult<Json<DataOf<Mapped>>> {
    let activity = input.activity.trim();
    if !is_iri(activity) || activity.len() > 2000 {
        return Err(ApiError::invalid(vec![FieldError::new(
            "activity",
            "must be the activity's IRI (such as https://lms.example/activities/phishing-101)",
        )]));
    }
    if input.content_id < 1 {
        return Err(ApiError::invalid(vec![FieldError::new(
            "content_id",
            "must be a content id of this account",
        )]));
    }
    let applied = state
        .store
        .map_activity(auth.account(), activity, ContentId(input.content_id))
        .await?;
    Ok(Json(DataOf {
        data: Mapped {
            activity: activity.to_owned(),
            content_id: input.content_id,
            applied,
        },
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ActivityParam {
    /// The activity's IRI.
    #[param(min_length = 1)]
    pub activity: String,
}

/// Remove an activity's mapping (what it applied stays applied).
#[utoipa::path(delete, path = "/api/xapi/activities", tag = "xapi", params(ActivityParam),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "the activity is not mapped", body = ErrorBody)),
    security(("bearer" = [])))]
async fn unmap_activity(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Query(param): Query<ActivityParam>,
) -> ApiResult<StatusCode> {
    state
        .store
        .unmap_activity(auth.account(), param.activity.trim())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
