//! Tokens through the API: `/api/tokens` (needs `admin`).

use crate::AppState;
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::paging::DataOf;
use axum::extract::State;
use axum::http::StatusCode;
use coachloop_core::FieldError;
use coachloop_core::scope::{Scope, Scopes};
use coachloop_core::time::{date_start_ms, format_ms, parse_date};
use coachloop_store::tokens::{NewToken, RateLimits, Token as TokenRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// A token, never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub rate_per_second: Option<u32>,
    pub rate_per_day: Option<u32>,
    /// When an event this token sent was last stored; null until the first one (a
    /// sender's integration is *Pending* until then).
    pub last_event_at: Option<String>,
    /// This token's last refused `POST /events` (or refused items of one), in words.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

impl From<TokenRow> for Token {
    fn from(t: TokenRow) -> Self {
        Self {
            id: t.id.0,
            name: t.name,
            scopes: t.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            expires_at: t.expires_at.map(format_ms),
            created_at: format_ms(t.created_at),
            last_used_at: t.last_used_at.map(format_ms),
            revoked_at: t.revoked_at.map(format_ms),
            rate_per_second: t.limits.per_second,
            rate_per_day: t.limits.per_day,
            last_event_at: t.last_event_at.map(format_ms),
            last_error_at: t.last_error.as_ref().map(|(at, _)| format_ms(*at)),
            last_error: t.last_error.map(|(_, why)| why),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenInput {
    #[schema(schema_with = crate::schemas::token_name)]
    pub name: String,
    #[schema(schema_with = crate::schemas::scopes)]
    pub scopes: Vec<String>,
    /// `YYYY-MM-DD`: the token stops working at the start of that day (UTC).
    #[schema(schema_with = crate::schemas::date_or_null)]
    pub expires: Option<String>,
    /// At most this many requests a second; beyond, 429 with `Retry-After`. Default: no limit.
    #[schema(minimum = 1, maximum = 4_294_967_295_i64)]
    pub rate_per_second: Option<i64>,
    /// At most this many requests a UTC day. Default: no limit.
    #[schema(minimum = 1, maximum = 4_294_967_295_i64)]
    pub rate_per_day: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: Token,
    /// Shown this once; only a hash is kept.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub data: Vec<Token>,
}

/// List this account's tokens (no secrets).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses(
        (status = 200, description = "tokens", body = TokenList),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_tokens(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<TokenList>> {
    auth.require(Scope::Admin)?;
    let tokens = state.store.list_tokens(auth.account()).await?;
    Ok(Json(TokenList {
        data: tokens.into_iter().map(Token::from).collect(),
    }))
}

/// Create a token; the answer holds its secret, shown this once.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = TokenInput,
    responses(
        (status = 201, description = "created", body = DataOf<CreatedToken>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 409, description = "a live token has this name", body = ErrorBody),
        (status = 422, description = "a bad name, scope or expiry", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_token(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(input): Json<TokenInput>,
) -> ApiResult<(StatusCode, Json<DataOf<CreatedToken>>)> {
    let scopes = input
        .scopes
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid(vec![FieldError::new("scopes", e.to_string())]))?;
    if scopes.is_empty() {
        return Err(ApiError::invalid(vec![FieldError::new(
            "scopes",
            "name at least one scope",
        )]));
    }
    let scopes = Scopes::new(scopes);
    let expires_at = match input.expires.as_deref() {
        Some(text) => Some(date_start_ms(parse_date(text.trim()).ok_or_else(|| {
            ApiError::invalid(vec![FieldError::new(
                "expires",
                "must be a date written YYYY-MM-DD",
            )])
        })?)),
        None => None,
    };
    let limit = |field: &str, value: Option<i64>| match value {
        Some(n) if n < 1 || n > i64::from(u32::MAX) => {
            Err(ApiError::invalid(vec![FieldError::new(
                field,
                "must be a whole number from 1 up; leave it out for no limit",
            )]))
        }
        n => Ok(n.map(|n| n as u32)),
    };
    let new = NewToken {
        name: input.name,
        scopes,
        expires_at,
        limits: RateLimits {
            per_second: limit("rate_per_second", input.rate_per_second)?,
            per_day: limit("rate_per_day", input.rate_per_day)?,
        },
        lrs: false,
    };
    let (token, secret) = state.store.create_token(auth.account(), &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(DataOf {
            data: CreatedToken {
                token: token.into(),
                secret,
            },
        }),
    ))
}

/// Revoke the live token with this name; it stops working at once.
#[utoipa::path(delete, path = "/api/tokens/{name}", tag = "tokens",
    params(("name" = String, Path, description = "the token's name")),
    responses(
        (status = 200, description = "revoked", body = DataOf<Token>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no live token of that name", body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<DataOf<Token>>> {
    auth.require(Scope::Admin)?;
    let token = state.store.revoke_token(auth.account(), &name).await?;
    state.tokens.clear();
    Ok(Json(DataOf { data: token.into() }))
}
