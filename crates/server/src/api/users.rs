//! People: `/api/users` and a person's event timeline.

use crate::AppState;
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::paging::{DataOf, ListOf, Meta, PageParams};
use crate::user_events::{Event, event_list};
use axum::extract::State;
use axum::http::StatusCode;
use coachloop_core::ids::UserId;
use coachloop_core::scope::Scope;
use coachloop_core::time::format_ms;
use coachloop_core::user::{UserChanges, UserStatus};
use coachloop_store::users::{User as UserRow, UserFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, archive_user))
        .routes(routes!(timeline))
}

/// A person, with the field names of the Reporting API's user record.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub employee_number: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub job_title: Option<String>,
    pub email: String,
    pub phone_number: Option<String>,
    pub extension: Option<String>,
    pub mobile_phone_number: Option<String>,
    pub location: Option<String>,
    pub division: Option<String>,
    pub manager_name: Option<String>,
    pub manager_email: Option<String>,
    pub provisioning_managed: bool,
    pub provisioning_guid: Option<String>,
    pub aliases: Vec<String>,
    /// RFC 3339.
    pub joined_on: String,
    pub last_sign_in: Option<String>,
    /// `active` or `archived`.
    pub status: String,
    pub organization: Option<String>,
    pub department: Option<String>,
    pub language: Option<String>,
    pub comment: Option<String>,
    /// `YYYY-MM-DD`.
    pub employee_start_date: Option<String>,
    pub archived_at: Option<String>,
    pub custom_field_1: Option<String>,
    pub custom_field_2: Option<String>,
    pub custom_field_3: Option<String>,
    pub custom_field_4: Option<String>,
    pub custom_date_1: Option<String>,
    pub custom_date_2: Option<String>,
}

impl From<UserRow> for User {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id.0,
            employee_number: u.employee_number,
            first_name: u.first_name,
            last_name: u.last_name,
            job_title: u.job_title,
            email: u.email,
            phone_number: u.phone_number,
            extension: u.extension,
            mobile_phone_number: u.mobile_phone_number,
            location: u.location,
            division: u.division,
            manager_name: u.manager_name,
            manager_email: u.manager_email,
            provisioning_managed: u.provisioning_managed,
            provisioning_guid: u.provisioning_guid,
            aliases: u.aliases,
            joined_on: format_ms(u.joined_on),
            last_sign_in: u.last_sign_in.map(format_ms),
            status: u.status,
            organization: u.organization,
            department: u.department,
            language: u.language,
            comment: u.comment,
            employee_start_date: u.employee_start_date,
            archived_at: u.archived_at.map(format_ms),
            custom_field_1: u.custom_field_1,
            custom_field_2: u.custom_field_2,
            custom_field_3: u.custom_field_3,
            custom_field_4: u.custom_field_4,
            custom_date_1: u.custom_date_1,
            custom_date_2: u.custom_date_2,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// `active` or `archived`; empty: both.
    #[param(pattern = r"^\s*(active|archived)?\s*$")]
    pub status: Option<String>,
    /// Part of an email, first or last name, in any case; or of them together, in that
    /// order ("kim lee").
    pub q: Option<String>,
    pub department: Option<String>,
    pub division: Option<String>,
    pub location: Option<String>,
    pub job_title: Option<String>,
    pub manager_email: Option<String>,
}

fn changes(body: &Value) -> ApiResult<UserChanges> {
    UserChanges::from_json(body).map_err(ApiError::invalid)
}

fn nonempty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// List people, with filters.
#[utoipa::path(get, path = "/api/users", tag = "people", params(UsersQuery, PageParams),
    responses(
        (status = 200, description = "a page of people", body = ListOf<User>),
        (status = 400, description = "a bad filter or page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `user:read`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_users(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<UsersQuery>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<User>>> {
    auth.require(Scope::UserRead)?;
    let page = paging.page()?;
    let status = match nonempty(query.status) {
        Some(text) => Some(
            UserStatus::parse(&text)
                .ok_or_else(|| ApiError::bad_request("`status` must be `active` or `archived`"))?,
        ),
        None => None,
    };
    let filter = UserFilter {
        status,
        q: nonempty(query.q),
        department: nonempty(query.department),
        division: nonempty(query.division),
        location: nonempty(query.location),
        job_title: nonempty(query.job_title),
        manager_email: nonempty(query.manager_email),
    };
    let (users, count) = state
        .store
        .list_users(auth.account(), &filter, page)
        .await?;
    Ok(Json(ListOf {
        data: users.into_iter().map(User::from).collect(),
        meta: Meta::new(page, count),
    }))
}

/// Add a person. Unmatched events that named their email or an alias become theirs.
#[utoipa::path(post, path = "/api/users", tag = "people",
    request_body(content = crate::schemas::NewUserInput, description = "user fields as in the Reporting API's user record; `email` required; `aliases` an array"),
    responses(
        (status = 201, description = "created", body = DataOf<User>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 409, description = "the email or an alias belongs to another person", body = ErrorBody),
        (status = 422, description = "a bad field", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_user(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<DataOf<User>>)> {
    let changes = changes(&body)?;
    changes
        .require_email()
        .map_err(|e| ApiError::invalid(vec![e]))?;
    let user = state.store.create_user(auth.account(), &changes).await?;
    Ok((StatusCode::CREATED, Json(DataOf { data: user.into() })))
}

/// Read one person.
#[utoipa::path(get, path = "/api/users/{id}", tag = "people",
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 200, description = "the person", body = DataOf<User>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `user:read`", body = ErrorBody),
        (status = 404, description = "no such person in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<User>>> {
    auth.require(Scope::UserRead)?;
    let user = state.store.user(auth.account(), UserId(id)).await?;
    Ok(Json(DataOf { data: user.into() }))
}

/// Change a person: fields present are set (null clears), absent ones kept; `aliases`
/// replaces the list; `status` archives or restores.
#[utoipa::path(patch, path = "/api/users/{id}", tag = "people",
    params(("id" = i64, Path, description = "user id")),
    request_body(content = crate::schemas::UserChangesInput, description = "the fields to change"),
    responses(
        (status = 200, description = "updated", body = DataOf<User>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such person in this account", body = ErrorBody),
        (status = 409, description = "the email or an alias belongs to another person", body = ErrorBody),
        (status = 422, description = "a bad field", body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_user(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
    Json(body): Json<Value>,
) -> ApiResult<Json<DataOf<User>>> {
    let changes = changes(&body)?;
    let user = state
        .store
        .update_user(auth.account(), UserId(id), &changes)
        .await?;
    Ok(Json(DataOf { data: user.into() }))
}

/// Archive a person: their history stays; `PATCH` with `"status":"active"` restores.
#[utoipa::path(delete, path = "/api/users/{id}", tag = "people",
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 200, description = "archived", body = DataOf<User>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such person in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn archive_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<User>>> {
    auth.require(Scope::Admin)?;
    let user = state.store.archive_user(auth.account(), UserId(id)).await?;
    Ok(Json(DataOf { data: user.into() }))
}

/// A person's events, newest first.
#[utoipa::path(get, path = "/api/users/{id}/timeline", tag = "people",
    params(("id" = i64, Path, description = "user id"), PageParams),
    responses(
        (status = 200, description = "a page of the person's events", body = ListOf<Event>),
        (status = 400, description = "a bad page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `user:read` or `events:read`", body = ErrorBody),
        (status = 404, description = "no such person in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn timeline(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Event>>> {
    auth.require(Scope::UserRead)?;
    auth.require(Scope::EventsRead)?;
    let page = paging.page()?;
    let (rows, count) = state
        .store
        .timeline(auth.account(), UserId(id), page)
        .await?;
    Ok(Json(event_list(&state, rows, page, count)))
}
