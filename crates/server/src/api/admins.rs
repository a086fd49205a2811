//! `/api/admins`: the people who run an account's training, as the Reporting API's
//! `/v1/account` lists them.

use crate::AppState;
use crate::auth::Admin as AdminCaller;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path};
use crate::paging::DataOf;
use axum::extract::State;
use axum::http::StatusCode;
use coachloop_core::FieldError;
use coachloop_core::identity::Email;
use coachloop_core::ids::AdminId;
use coachloop_core::time::format_ms;
use coachloop_store::admins::{Admin as AdminRow, NewAdmin};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_admins, create_admin))
        .routes(routes!(delete_admin))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Admin {
    pub id: i64,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub created_at: String,
}

impl From<AdminRow> for Admin {
    fn from(row: AdminRow) -> Self {
        Self {
            id: row.id.0,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            created_at: format_ms(row.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AdminInput {
    #[schema(schema_with = crate::schemas::email)]
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// Trimmed, and absent when empty.
fn name(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// List the account's administrators.
#[utoipa::path(get, path = "/api/admins", tag = "admins",
    responses(
        (status = 200, description = "administrators", body = DataOf<Vec<Admin>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_admins(
    State(state): State<AppState>,
    AdminCaller(auth): AdminCaller,
) -> ApiResult<Json<DataOf<Vec<Admin>>>> {
    let rows = state.store.list_admins(auth.account()).await?;
    Ok(Json(DataOf {
        data: rows.into_iter().map(Admin::from).collect(),
    }))
}

/// Add an administrator.
#[utoipa::path(post, path = "/api/admins", tag = "admins", request_body = AdminInput,
    responses(
        (status = 201, description = "added", body = DataOf<Admin>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 409, description = "already an administrator", body = ErrorBody),
        (status = 422, description = "a bad email", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_admin(
    State(state): State<AppState>,
    AdminCaller(auth): AdminCaller,
    Json(input): Json<AdminInput>,
) -> ApiResult<(StatusCode, Json<DataOf<Admin>>)> {
    let email = Email::parse(&input.email)
        .map_err(|e| ApiError::invalid(vec![FieldError::new("email", e.to_string())]))?;
    let new = NewAdmin {
        email,
        first_name: name(input.first_name),
        last_name: name(input.last_name),
    };
    let row = state.store.create_admin(auth.account(), &new).await?;
    Ok((StatusCode::CREATED, Json(DataOf { data: row.into() })))
}

/// Remove an administrator.
#[utoipa::path(delete, path = "/api/admins/{id}", tag = "admins",
    params(("id" = i64, Path, description = "administrator id")),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such administrator in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_admin(
    State(state): State<AppState>,
    AdminCaller(auth): AdminCaller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state
        .store
        .delete_admin(auth.account(), AdminId(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
