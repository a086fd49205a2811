//! Groups: `/api/groups` — manual and smart groups, members, history, criteria
//! versions, "why", and previews of criteria before they are saved.

use crate::AppState;
use crate::auth::{Admin, Auth, GroupReader};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::paging::{DataOf, ListOf, Meta, PageParams};
use axum::extract::State;
use axum::http::StatusCode;
use coachloop_core::FieldError;
use coachloop_core::criteria::Criteria;
use coachloop_core::ids::{GroupId, UserId};
use coachloop_core::scope::Scope;
use coachloop_core::time::format_ms;
use coachloop_store::groups::{
    Backfill as BackfillRow, Group as GroupRow, GroupChanges, GroupFilter, HistoryEntry, MANUAL,
    NewGroup, PROVISIONED, SMART,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, archive_group))
        .routes(routes!(restore_group))
        .routes(routes!(list_members, add_member))
        .routes(routes!(remove_member))
        .routes(routes!(why))
        .routes(routes!(history))
        .routes(routes!(versions))
        .routes(routes!(preview))
}

/// A group, with the Reporting API's group fields and coachloop's own.
#[derive(Debug, Serialize, ToSchema)]
pub struct Group {
    pub id: i64,
    pub name: String,
    /// `console_group` (manual), `smart_group` (criteria) or `adi_managed_group` (SCIM).
    pub group_type: String,
    pub provisioning_guid: Option<String>,
    pub member_count: i64,
    /// `active` or `archived`.
    pub status: String,
    pub description: Option<String>,
    /// The current criteria of a smart group; `null` for other groups.
    pub criteria: Option<Value>,
    /// The current criteria version (0 for groups without criteria).
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
}

impl From<GroupRow> for Group {
    fn from(g: GroupRow) -> Self {
        Self {
            id: g.id.0,
            name: g.name,
            group_type: g.group_type,
            provisioning_guid: g.provisioning_guid,
            member_count: g.member_count,
            status: g.status,
            description: g.description,
            criteria: g.criteria.and_then(|c| serde_json::from_str(&c).ok()),
            version: g.version,
            created_at: format_ms(g.created_at),
            updated_at: format_ms(g.updated_at),
            archived_at: g.archived_at.map(format_ms),
        }
    }
}

/// What evaluating a smart group over the existing history did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Backfill {
    /// People evaluated.
    pub evaluated: usize,
    pub joined: usize,
    pub left: usize,
    pub took_ms: i64,
}

impl From<BackfillRow> for Backfill {
    fn from(b: BackfillRow) -> Self {
        Self {
            evaluated: b.evaluated,
            joined: b.joined,
            left: b.left,
            took_ms: b.took_ms,
        }
    }
}

/// A group and, when criteria were (re)evaluated, what that did.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupWithBackfill {
    pub data: Group,
    /// Present when smart-group criteria were evaluated over the existing history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub user_id: i64,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub joined_at: String,
    /// The criteria version that made a smart-group member join (0: added by hand).
    pub version: i64,
}

/// One join or leave.
#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    pub id: i64,
    pub group_id: i64,
    pub user_id: i64,
    /// `joined` or `left`.
    pub change: String,
    /// When membership changed (a leave by time: the exact instant the window closed).
    pub at: String,
    /// The criteria version in force (0: by hand).
    pub version: i64,
    /// The evidence that made the criteria hold (joins), or what happened (leaves).
    pub reason: Value,
    /// When coachloop recorded it.
    pub recorded_at: String,
}

impl From<HistoryEntry> for Change {
    fn from(h: HistoryEntry) -> Self {
        Self {
            id: h.id,
            group_id: h.group_id.0,
            user_id: h.user_id.0,
            change: h.change,
            at: format_ms(h.at),
            version: h.version,
            reason: serde_json::from_str(&h.reason).unwrap_or(Value::Null),
            recorded_at: format_ms(h.recorded_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    pub version: i64,
    pub criteria: Value,
    pub created_at: String,
}

/// Why a person is or is not in a group.
#[derive(Debug, Serialize, ToSchema)]
pub struct Why {
    pub group_id: i64,
    pub user_id: i64,
    pub member: bool,
    pub joined_at: Option<String>,
    /// The criteria version the person joined under.
    pub joined_version: Option<i64>,
    /// For a smart group: whether its current criteria hold for the person now.
    pub criteria_hold: Option<bool>,
    /// What makes the criteria hold: `events` (the events counted, newest first),
    /// `attribute` (the value), `member` (a group named), `not` (a criterion that fails).
    pub evidence: Vec<Value>,
    /// The person's joins and leaves in this group, newest first.
    pub history: Vec<Change>,
}

/// Criteria to try out.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PreviewRequest {
    pub criteria: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewPerson {
    pub id: i64,
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewDay {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// People the criteria would have matched at the end of that day (today: now).
    pub count: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// People the criteria match now.
    pub matching: usize,
    /// The first 100 of them, by id.
    pub people: Vec<PreviewPerson>,
    /// The last 90 days, oldest first.
    pub daily: Vec<PreviewDay>,
    pub took_ms: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupsQuery {
    /// `active` or `archived`; empty: both.
    #[param(pattern = "^(active|archived)?$")]
    pub status: Option<String>,
    /// `console_group`, `smart_group` or `adi_managed_group`; empty: every type.
    #[param(pattern = "^(console_group|smart_group|adi_managed_group)?$")]
    pub group_type: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only this person's changes.
    #[serde(default, deserialize_with = "crate::paging::integer")]
    pub user_id: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMember {
    pub user_id: i64,
}

/// Parses criteria; a bad node is reported at its path in the request body
/// (`criteria.all[1].event.count`).
fn parse_criteria(value: &Value) -> ApiResult<Criteria> {
    Criteria::parse(value).map_err(|e| {
        let field = format!("criteria{}", e.path.trim_start_matches('$'));
        ApiError::invalid(vec![FieldError::new(field, e.message)])
    })
}

fn object(body: &Value) -> ApiResult<&Map<String, Value>> {
    body.as_object()
        .ok_or_else(|| ApiError::invalid(vec![FieldError::new("", "must be a JSON object")]))
}

fn refuse_unknown(body: &Map<String, Value>, allowed: &[&str]) -> ApiResult<()> {
    let unknown: Vec<FieldError> = body
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| {
            FieldError::new(
                k.as_str(),
                format!("unknown field; expected one of: {}", allowed.join(", ")),
            )
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(unknown))
    }
}

fn name(value: &Value) -> ApiResult<String> {
    // Counted as given (before trimming), as the schema counts (`maxLength`).
    value
        .as_str()
        .filter(|n| n.chars().count() <= 255)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::invalid(vec![FieldError::new(
                "name",
                "must be a non-empty string of at most 255 characters",
            )])
        })
}

fn description(value: &Value) -> ApiResult<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.chars().count() <= 2000 => {
            Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
        }
        _ => Err(ApiError::invalid(vec![FieldError::new(
            "description",
            "must be a string of at most 2000 characters, or null",
        )])),
    }
}

fn with_backfill(group: GroupRow, backfill: Option<BackfillRow>) -> GroupWithBackfill {
    GroupWithBackfill {
        data: group.into(),
        backfill: backfill.map(Backfill::from),
    }
}

/// List groups.
#[utoipa::path(get, path = "/api/groups", tag = "groups", params(GroupsQuery, PageParams),
    responses(
        (status = 200, description = "a page of groups", body = ListOf<Group>),
        (status = 400, description = "a bad filter or page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_groups(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<GroupsQuery>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Group>>> {
    auth.require(Scope::GroupRead)?;
    let page = paging.page()?;
    let status = query.status.filter(|s| !s.is_empty());
    if status
        .as_deref()
        .is_some_and(|s| s != "active" && s != "archived")
    {
        return Err(ApiError::bad_request(
            "`status` must be `active` or `archived`",
        ));
    }
    let group_type = query.group_type.filter(|s| !s.is_empty());
    if group_type
        .as_deref()
        .is_some_and(|t| ![MANUAL, SMART, PROVISIONED].contains(&t))
    {
        return Err(ApiError::bad_request(
            "`group_type` must be `console_group`, `smart_group` or `adi_managed_group`",
        ));
    }
    let filter = GroupFilter { status, group_type };
    let (groups, count) = state
        .store
        .list_groups(auth.account(), &filter, page)
        .await?;
    Ok(Json(ListOf {
        data: groups.into_iter().map(Group::from).collect(),
        meta: Meta::new(page, count),
    }))
}

/// Create a group. With `criteria` it is a smart group: it is evaluated over the
/// existing history at once, and the answer says how many joined.
#[utoipa::path(post, path = "/api/groups", tag = "groups",
    request_body(content = crate::schemas::NewGroupInput, description = "`name` (required), `description`, and `criteria` for a smart group (`group_type` may be given and must agree)"),
    responses(
        (status = 201, description = "created", body = GroupWithBackfill),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 409, description = "an active group has this name", body = ErrorBody),
        (status = 422, description = "a bad field; bad criteria name the path of the bad node", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_group(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<GroupWithBackfill>)> {
    let body = object(&body)?;
    refuse_unknown(body, &["name", "description", "group_type", "criteria"])?;
    let name = name(body.get("name").unwrap_or(&Value::Null))?;
    let description = body
        .get("description")
        .map(description)
        .transpose()?
        .flatten();
    let criteria = match body.get("criteria").filter(|c| !c.is_null()) {
        Some(value) => Some((value.clone(), parse_criteria(value)?)),
        None => None,
    };
    let expected = if criteria.is_some() { SMART } else { MANUAL };
    let group_type = match body.get("group_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(_) => {
            return Err(ApiError::invalid(vec![FieldError::new(
                "group_type",
                "must be `console_group` or `smart_group`",
            )]));
        }
    };
    match group_type {
        None => {}
        Some(kind) if kind == expected => {}
        Some(SMART) => {
            return Err(ApiError::invalid(vec![FieldError::new(
                "criteria",
                "a smart group needs criteria",
            )]));
        }
        Some(PROVISIONED) => {
            return Err(ApiError::invalid(vec![FieldError::new(
                "group_type",
                "provisioned groups are created by the identity provider over SCIM",
            )]));
        }
        Some(_) => {
            return Err(ApiError::invalid(vec![FieldError::new(
                "group_type",
                "must be `console_group` (no criteria) or `smart_group` (with criteria)",
            )]));
        }
    }
    let new = NewGroup {
        name,
        description,
        criteria,
    };
    let (group, backfill) = state.store.create_group(auth.account(), &new).await?;
    Ok((StatusCode::CREATED, Json(with_backfill(group, backfill))))
}

/// Read one group.
#[utoipa::path(get, path = "/api/groups/{id}", tag = "groups",
    params(("id" = i64, Path, description = "group id")),
    responses(
        (status = 200, description = "the group", body = DataOf<Group>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_group(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Group>>> {
    auth.require(Scope::GroupRead)?;
    let group = state.store.group(auth.account(), GroupId(id)).await?;
    Ok(Json(DataOf { data: group.into() }))
}

/// Change a group's name, description or criteria. New criteria become a new version
/// (the old one is kept) and are evaluated over the existing history: people join and
/// leave at once, and the answer says how many.
#[utoipa::path(patch, path = "/api/groups/{id}", tag = "groups",
    params(("id" = i64, Path, description = "group id")),
    request_body(content = crate::schemas::GroupChangesInput, description = "`name`, `description`, `criteria` (smart groups)"),
    responses(
        (status = 200, description = "updated", body = GroupWithBackfill),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody),
        (status = 409, description = "the name is taken, or the group is archived", body = ErrorBody),
        (status = 422, description = "a bad field; bad criteria name the path of the bad node", body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_group(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
    Json(body): Json<Value>,
) -> ApiResult<Json<GroupWithBackfill>> {
    let body = object(&body)?;
    refuse_unknown(body, &["name", "description", "criteria"])?;
    let changes = GroupChanges {
        name: body.get("name").map(name).transpose()?,
        description: body.get("description").map(description).transpose()?,
        criteria: match body.get("criteria") {
            Some(value) => Some((value.clone(), parse_criteria(value)?)),
            None => None,
        },
    };
    let (group, backfill) = state
        .store
        .update_group(auth.account(), GroupId(id), &changes)
        .await?;
    Ok(Json(with_backfill(group, backfill)))
}

/// Archive a group: a smart group stops being evaluated; members stay for the record.
#[utoipa::path(delete, path = "/api/groups/{id}", tag = "groups",
    params(("id" = i64, Path, description = "group id")),
    responses(
        (status = 200, description = "archived", body = DataOf<Group>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody),
        (status = 409, description = "another smart group's criteria name this group", body = ErrorBody)),
    security(("bearer" = [])))]
async fn archive_group(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Group>>> {
    let group = state
        .store
        .archive_group(auth.account(), GroupId(id))
        .await?;
    Ok(Json(DataOf { data: group.into() }))
}

/// Restore an archived group; a smart group is evaluated over the history again.
#[utoipa::path(post, path = "/api/groups/{id}/restore", tag = "groups",
    params(("id" = i64, Path, description = "group id")),
    responses(
        (status = 200, description = "restored", body = GroupWithBackfill),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody),
        (status = 409, description = "an active group has this name now", body = ErrorBody)),
    security(("bearer" = [])))]
async fn restore_group(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<GroupWithBackfill>> {
    let (group, backfill) = state
        .store
        .restore_group(auth.account(), GroupId(id))
        .await?;
    Ok(Json(with_backfill(group, backfill)))
}

/// A group's current members, by user id.
#[utoipa::path(get, path = "/api/groups/{id}/members", tag = "groups",
    params(("id" = i64, Path, description = "group id"), PageParams),
    responses(
        (status = 200, description = "a page of members", body = ListOf<Member>),
        (status = 400, description = "a bad page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_members(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Member>>> {
    auth.require(Scope::GroupRead)?;
    let page = paging.page()?;
    let (members, count) = state
        .store
        .group_members(auth.account(), GroupId(id), page)
        .await?;
    Ok(Json(ListOf {
        data: members
            .into_iter()
            .map(|m| Member {
                user_id: m.user_id.0,
                email: m.email,
                first_name: m.first_name,
                last_name: m.last_name,
                joined_at: format_ms(m.joined_at),
                version: m.version,
            })
            .collect(),
        meta: Meta::new(page, count),
    }))
}

/// Add a person to a manual group (smart groups take members only from criteria).
#[utoipa::path(post, path = "/api/groups/{id}/members", tag = "groups",
    params(("id" = i64, Path, description = "group id")),
    request_body = AddMember,
    responses(
        (status = 201, description = "added"),
        (status = 204, description = "was a member already"),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody),
        (status = 409, description = "a smart or provisioned group, or archived", body = ErrorBody),
        (status = 422, description = "a bad body, or `user_id` names no person of the account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn add_member(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
    Json(body): Json<AddMember>,
) -> ApiResult<StatusCode> {
    let added = state
        .store
        .add_group_member(auth.account(), GroupId(id), UserId(body.user_id))
        .await
        .map_err(|e| match e {
            // The path names the group; a person the body names is a bad field.
            coachloop_store::StoreError::NotFound("user") => {
                ApiError::invalid(vec![FieldError::new(
                    "user_id",
                    "names no person in this account",
                )])
            }
            other => other.into(),
        })?;
    Ok(if added {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    })
}

/// Remove a person from a manual group.
#[utoipa::path(delete, path = "/api/groups/{id}/members/{user_id}", tag = "groups",
    params(("id" = i64, Path, description = "group id"), ("user_id" = i64, Path, description = "user id")),
    responses(
        (status = 204, description = "removed (or was not a member)"),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such group or person in this account", body = ErrorBody),
        (status = 409, description = "a smart or provisioned group, or archived", body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove_member(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path((id, user)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    state
        .store
        .remove_group_member(auth.account(), GroupId(id), UserId(user))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Why a person is (or is not) in a group: the events or attributes that make its
/// criteria hold now, and their joins and leaves with the criteria version of each.
#[utoipa::path(get, path = "/api/groups/{id}/members/{user_id}/why", tag = "groups",
    params(("id" = i64, Path, description = "group id"), ("user_id" = i64, Path, description = "user id")),
    responses(
        (status = 200, description = "the explanation", body = DataOf<Why>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody),
        (status = 404, description = "no such group or person in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn why(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, user)): Path<(i64, i64)>,
) -> ApiResult<Json<DataOf<Why>>> {
    auth.require(Scope::GroupRead)?;
    let why = state
        .store
        .why(auth.account(), GroupId(id), UserId(user))
        .await?;
    Ok(Json(DataOf {
        data: Why {
            group_id: id,
            user_id: user,
            member: why.member,
            joined_at: why.joined_at.map(format_ms),
            joined_version: why.joined_version,
            criteria_hold: why.holds,
            evidence: why
                .evidence
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
                .collect(),
            history: why.history.into_iter().map(Change::from).collect(),
        },
    }))
}

/// A group's joins and leaves, newest first.
#[utoipa::path(get, path = "/api/groups/{id}/history", tag = "groups",
    params(("id" = i64, Path, description = "group id"), HistoryQuery, PageParams),
    responses(
        (status = 200, description = "a page of changes", body = ListOf<Change>),
        (status = 400, description = "a bad page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn history(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    Query(query): Query<HistoryQuery>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Change>>> {
    auth.require(Scope::GroupRead)?;
    let page = paging.page()?;
    let (rows, count) = state
        .store
        .group_history(auth.account(), GroupId(id), query.user_id.map(UserId), page)
        .await?;
    Ok(Json(ListOf {
        data: rows.into_iter().map(Change::from).collect(),
        meta: Meta::new(page, count),
    }))
}

/// Every criteria version of a smart group, oldest first.
#[utoipa::path(get, path = "/api/groups/{id}/versions", tag = "groups",
    params(("id" = i64, Path, description = "group id")),
    responses(
        (status = 200, description = "the versions", body = DataOf<Vec<Version>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn versions(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Vec<Version>>>> {
    auth.require(Scope::GroupRead)?;
    let rows = state
        .store
        .group_versions(auth.account(), GroupId(id))
        .await?;
    Ok(Json(DataOf {
        data: rows
            .into_iter()
            .map(|v| Version {
                version: v.version,
                criteria: serde_json::from_str(&v.criteria).unwrap_or(Value::Null),
                created_at: format_ms(v.created_at),
            })
            .collect(),
    }))
}

/// Try criteria without saving them: who they match now, and how many they would have
/// matched at the end of each of the last 90 days (attributes as they are now).
#[utoipa::path(post, path = "/api/groups/preview", tag = "groups",
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "the preview", body = DataOf<Preview>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody),
        (status = 422, description = "bad criteria, naming the path of the bad node", body = ErrorBody)),
    security(("bearer" = [])))]
async fn preview(
    State(state): State<AppState>,
    GroupReader(auth): GroupReader,
    Json(body): Json<PreviewRequest>,
) -> ApiResult<Json<DataOf<Preview>>> {
    let criteria = parse_criteria(&body.criteria)?;
    let preview = state.store.preview_group(auth.account(), &criteria).await?;
    Ok(Json(DataOf {
        data: Preview {
            matching: preview.matching,
            people: preview
                .people
                .into_iter()
                .map(|(id, email)| PreviewPerson { id: id.0, email })
                .collect(),
            daily: preview
                .daily
                .into_iter()
                .map(|(date, count)| PreviewDay { date, count })
                .collect(),
            took_ms: preview.took_ms,
        },
    }))
}
