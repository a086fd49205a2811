//! Training: `/api/content` (the built-in library and admins' own modules and policies),
//! `/api/campaigns` and `/api/enrollments`.

use crate::AppState;
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::paging::{DataOf, ListOf, Meta, PageParams};
use axum::extract::State;
use axum::http::StatusCode;
use coachloop_core::FieldError;
use coachloop_core::content::{Content as CoreContent, ContentKind, QuizQuestion};
use coachloop_core::duration::IsoDuration;
use coachloop_core::ids::{CampaignId, ContentId, EnrollmentId, GroupId, UserId};
use coachloop_core::scope::Scope;
use coachloop_core::time::{format_date, format_ms, parse_date_or_timestamp};
use coachloop_store::campaigns::{
    Campaign as CampaignRow, CampaignChanges, Due, Enrollment as EnrollmentRow, EnrollmentFilter,
    NewCampaign,
};
use coachloop_store::content::{ContentFilter, ContentRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_content, create_content))
        .routes(routes!(get_content, update_content, retire_content))
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign, update_campaign))
        .routes(routes!(close_campaign))
        .routes(routes!(list_enrollments))
        .routes(routes!(get_enrollment))
        .routes(routes!(enrollment_link))
}

// ---- content ------------------------------------------------------------------------

/// A module (lesson and quiz) or a policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct Content {
    pub id: i64,
    /// `module` or `policy`.
    pub kind: String,
    pub slug: String,
    /// Shipped with coachloop (read-only) or an admin's own.
    pub builtin: bool,
    pub title: String,
    pub summary: String,
    /// A module's reading time; a policy's minimum reading time before acknowledgement.
    pub minutes: i64,
    /// Percent of quiz answers needed to pass; `null` without a quiz.
    pub pass_mark: Option<i64>,
    #[schema(value_type = Vec<Object>)]
    pub quiz: Vec<QuizQuestion>,
    pub version: Option<String>,
    /// Markdown.
    pub body: String,
    /// `YYYY-MM-DD`.
    pub published: String,
    pub retired_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ContentRow> for Content {
    fn from(c: ContentRow) -> Self {
        Self {
            id: c.id.0,
            published: format_date(coachloop_core::time::date_of_ms(c.published_at)),
            quiz: c.quiz,
            kind: c.kind.as_str().to_owned(),
            slug: c.slug,
            builtin: c.builtin,
            title: c.title,
            summary: c.summary,
            minutes: c.minutes,
            pass_mark: c.pass_mark,
            version: c.version,
            body: c.body,
            retired_at: c.retired_at.map(format_ms),
            created_at: format_ms(c.created_at),
            updated_at: format_ms(c.updated_at),
        }
    }
}

/// An admin's module or policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentInput {
    /// `module` or `policy`.
    #[schema(value_type = String, pattern = "^(module|policy)$")]
    pub kind: ContentKind,
    /// Lower-case letters, digits and `-`; unique in the account.
    #[schema(pattern = "^[a-z0-9-]{1,80}$")]
    pub slug: String,
    #[schema(schema_with = crate::schemas::content_title)]
    pub title: String,
    #[serde(default)]
    pub summary: String,
    /// A module's reading time, or a policy's minimum reading time, in minutes.
    #[schema(minimum = 1, maximum = 240)]
    pub minutes: u32,
    /// Modules with a quiz: percent needed to pass.
    pub pass_mark: Option<u8>,
    /// Modules: `[{question, choices, answer (0-based), explanation}]`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub quiz: Vec<QuizQuestion>,
    /// Policies: a version label.
    pub version: Option<String>,
    /// Markdown.
    #[schema(pattern = "\\S")]
    pub body: String,
    /// `YYYY-MM-DD`; default today.
    pub published: Option<String>,
}

impl ContentInput {
    pub(crate) fn into_content(self, today: chrono::NaiveDate) -> ApiResult<CoreContent> {
        let published = match self.published.as_deref() {
            None => today,
            Some(text) => coachloop_core::time::parse_date(text).ok_or_else(|| {
                ApiError::invalid(vec![FieldError::new("published", "must be YYYY-MM-DD")])
            })?,
        };
        let content = CoreContent {
            slug: self.slug,
            kind: self.kind,
            title: self.title,
            summary: self.summary,
            minutes: self.minutes,
            pass_mark: self.pass_mark,
            quiz: self.quiz,
            version: self.version,
            published,
            body: self.body,
        };
        content
            .validate()
            .map_err(|e| ApiError::invalid(vec![FieldError::new(e.field, e.message)]))?;
        Ok(content)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentQuery {
    /// `module` or `policy`; empty: both.
    #[param(pattern = "^(module|policy)?$")]
    pub kind: Option<String>,
    /// Include retired content; default false.
    pub include_retired: Option<bool>,
}

/// List content: the built-in library and the account's own.
#[utoipa::path(get, path = "/api/content", tag = "training", params(ContentQuery, PageParams),
    responses(
        (status = 200, description = "a page of content", body = ListOf<Content>),
        (status = 400, description = "a bad filter or page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `program:read`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_content(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<ContentQuery>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Content>>> {
    auth.require(Scope::ProgramRead)?;
    let page = paging.page()?;
    let kind = query.kind.filter(|k| !k.is_empty());
    if kind
        .as_deref()
        .is_some_and(|k| k != "module" && k != "policy")
    {
        return Err(ApiError::bad_request("`kind` must be `module` or `policy`"));
    }
    let filter = ContentFilter {
        kind,
        include_retired: query.include_retired.unwrap_or(false),
    };
    let (rows, count) = state
        .store
        .list_content(auth.account(), &filter, page)
        .await?;
    Ok(Json(ListOf {
        data: rows.into_iter().map(Content::from).collect(),
        meta: Meta::new(page, count),
    }))
}

/// Add a module or policy (Markdown).
#[utoipa::path(post, path = "/api/content", tag = "training", request_body = ContentInput,
    responses(
        (status = 201, description = "created", body = DataOf<Content>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 409, description = "the slug is taken", body = ErrorBody),
        (status = 422, description = "a bad field, named", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_content(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(input): Json<ContentInput>,
) -> ApiResult<(StatusCode, Json<DataOf<Content>>)> {
    let today = coachloop_core::time::date_of_ms(state.store.clock().now_ms());
    let content = input.into_content(today)?;
    let row = state.store.create_content(auth.account(), &content).await?;
    Ok((StatusCode::CREATED, Json(DataOf { data: row.into() })))
}

/// Read one module or policy.
#[utoipa::path(get, path = "/api/content/{id}", tag = "training",
    params(("id" = i64, Path, description = "content id")),
    responses(
        (status = 200, description = "the content", body = DataOf<Content>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `program:read`", body = ErrorBody),
        (status = 404, description = "no such content in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_content(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Content>>> {
    auth.require(Scope::ProgramRead)?;
    let row = state.store.content(auth.account(), ContentId(id)).await?;
    Ok(Json(DataOf { data: row.into() }))
}

/// Replace an admin's module or policy (built-in content is read-only).
#[utoipa::path(put, path = "/api/content/{id}", tag = "training", request_body = ContentInput,
    params(("id" = i64, Path, description = "content id")),
    responses(
        (status = 200, description = "replaced", body = DataOf<Content>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such content in this account", body = ErrorBody),
        (status = 409, description = "built-in content, or the slug is taken", body = ErrorBody),
        (status = 422, description = "a bad field, named", body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_content(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
    Json(input): Json<ContentInput>,
) -> ApiResult<Json<DataOf<Content>>> {
    let today = coachloop_core::time::date_of_ms(state.store.clock().now_ms());
    let content = input.into_content(today)?;
    let row = state
        .store
        .update_content(auth.account(), ContentId(id), &content)
        .await?;
    Ok(Json(DataOf { data: row.into() }))
}

/// Retire a module or policy: no new campaign can use it; enrolments in it stay.
#[utoipa::path(delete, path = "/api/content/{id}", tag = "training",
    params(("id" = i64, Path, description = "content id")),
    responses(
        (status = 200, description = "retired", body = DataOf<Content>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such content in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn retire_content(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Content>>> {
    let row = state
        .store
        .retire_content(auth.account(), ContentId(id))
        .await?;
    Ok(Json(DataOf { data: row.into() }))
}

// ---- campaigns ----------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignGroup {
    /// 0: all users.
    pub group_id: i64,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Campaign {
    pub id: i64,
    pub name: String,
    /// `Created`, `In Progress`, `Completed` or `Closed`.
    pub status: String,
    pub content: Vec<i64>,
    pub groups: Vec<CampaignGroup>,
    pub all_users: bool,
    /// `Specific End Date` or `Relative Duration`.
    pub duration_type: String,
    pub start_date: String,
    pub end_date: Option<String>,
    /// ISO-8601, e.g. `P7D`.
    pub relative_duration: Option<String>,
    pub auto_enroll: bool,
    pub allow_multiple_enrollments: bool,
    /// ISO-8601: no new enrolment within it of finishing the same content.
    pub cooldown: Option<String>,
    pub enrollments: i64,
    pub completion_percentage: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<CampaignRow> for Campaign {
    fn from(c: CampaignRow) -> Self {
        let completion_percentage = c.completion_percentage();
        let mut groups: Vec<CampaignGroup> = c
            .groups
            .into_iter()
            .map(|(group_id, name)| CampaignGroup {
                group_id: group_id.0,
                name,
            })
            .collect();
        if c.all_users {
            groups.insert(
                0,
                CampaignGroup {
                    group_id: 0,
                    name: "All Users".into(),
                },
            );
        }
        Self {
            id: c.id.0,
            name: c.name,
            status: c.status,
            content: c.content.into_iter().map(|id| id.0).collect(),
            groups,
            all_users: c.all_users,
            duration_type: if c.end_at.is_some() {
                "Specific End Date"
            } else {
                "Relative Duration"
            }
            .into(),
            start_date: format_ms(c.start_at),
            end_date: c.end_at.map(format_ms),
            relative_duration: c.relative_duration,
            auto_enroll: c.auto_enroll,
            allow_multiple_enrollments: c.allow_multiple,
            cooldown: c.cooldown,
            enrollments: c.enrolled,
            completion_percentage,
            created_at: format_ms(c.created_at),
            updated_at: format_ms(c.updated_at),
        }
    }
}

/// A new campaign. Give `groups` (ids; 0 means all users) and either `end_date` or
/// `relative_duration` (default `P7D`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    #[schema(schema_with = crate::schemas::name)]
    pub name: String,
    /// Content ids, in the order learners see them.
    pub content: Vec<i64>,
    /// Group ids; `0` targets every active person.
    pub groups: Vec<i64>,
    /// RFC 3339 or `YYYY-MM-DD`; default now. A later start is scheduled.
    pub start_date: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD`: every enrolment is due then.
    pub end_date: Option<String>,
    /// ISO-8601 duration from each enrolment, e.g. `P7D`.
    pub relative_duration: Option<String>,
    /// Enrol people who join a target group later; default true.
    pub auto_enroll: Option<bool>,
    /// Enrol a person again once they finished (after the cooldown); default false.
    pub allow_multiple_enrollments: Option<bool>,
    /// ISO-8601 duration.
    pub cooldown: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub auto_enroll: Option<bool>,
    pub allow_multiple_enrollments: Option<bool>,
    /// ISO-8601 duration, or null to remove.
    #[serde(default, deserialize_with = "crate::api::training::some")]
    #[schema(value_type = Option<String>)]
    pub cooldown: Option<Option<String>>,
}

/// Present-but-null as `Some(None)`, absent as `None`.
pub(crate) fn some<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

fn instant(field: &str, text: &str) -> ApiResult<i64> {
    parse_date_or_timestamp(text)
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| {
            ApiError::invalid(vec![FieldError::new(
                field,
                "must be an RFC 3339 timestamp or YYYY-MM-DD",
            )])
        })
}

fn duration(field: &str, text: &str) -> ApiResult<IsoDuration> {
    IsoDuration::parse(text).map_err(|e| {
        ApiError::invalid(vec![FieldError::new(
            field,
            format!("must be an ISO-8601 duration such as P7D: {}", e.0),
        )])
    })
}

fn campaign_name(name: &str) -> ApiResult<String> {
    // Counted as given (before trimming), as the schema counts (`maxLength`).
    let too_long = name.chars().count() > 255;
    let name = name.trim();
    if name.is_empty() || too_long {
        return Err(ApiError::invalid(vec![FieldError::new(
            "name",
            "must be a non-empty string of at most 255 characters",
        )]));
    }
    Ok(name.to_owned())
}

impl CampaignInput {
    pub(crate) fn into_new(self, now: i64) -> ApiResult<NewCampaign> {
        let name = campaign_name(&self.name)?;
        if self.content.is_empty() {
            return Err(ApiError::invalid(vec![FieldError::new(
                "content",
                "name at least one content id",
            )]));
        }
        if self.groups.is_empty() {
            return Err(ApiError::invalid(vec![FieldError::new(
                "groups",
                "name at least one group id, or 0 for all users",
            )]));
        }
        let all_users = self.groups.contains(&0);
        let groups: Vec<GroupId> = (self.groups.into_iter())
            .filter(|g| *g != 0)
            .map(GroupId)
            .collect();
        let start_at = self
            .start_date
            .as_deref()
            .map(|t| instant("start_date", t))
            .transpose()?;
        let due = match (self.end_date.as_deref(), self.relative_duration.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(vec![FieldError::new(
                    "end_date",
                    "give either `end_date` or `relative_duration`, not both",
                )]));
            }
            (Some(end), None) => {
                let end = instant("end_date", end)?;
                if end <= start_at.unwrap_or(now) {
                    return Err(ApiError::invalid(vec![FieldError::new(
                        "end_date",
                        "must be after the start",
                    )]));
                }
                Due::At(end)
            }
            (None, Some(period)) => Due::After(duration("relative_duration", period)?),
            (None, None) => Due::After(IsoDuration::parse("P7D").expect("a valid duration")),
        };
        let cooldown = self
            .cooldown
            .as_deref()
            .map(|c| duration("cooldown", c))
            .transpose()?;
        Ok(NewCampaign {
            name,
            content: self.content.into_iter().map(ContentId).collect(),
            groups,
            all_users,
            start_at,
            due,
            auto_enroll: self.auto_enroll.unwrap_or(true),
            allow_multiple: self.allow_multiple_enrollments.unwrap_or(false),
            cooldown,
        })
    }
}

/// A campaign and how many people its start enrolled.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignCreated {
    pub data: Campaign,
    /// Enrolments made by starting it now (0 for a later start).
    pub enrolled: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignsQuery {
    /// `Created`, `In Progress`, `Completed` or `Closed`; empty: every status.
    #[param(pattern = "^(Created|In Progress|Completed|Closed)?$")]
    pub status: Option<String>,
}

/// List campaigns.
#[utoipa::path(get, path = "/api/campaigns", tag = "training", params(CampaignsQuery, PageParams),
    responses(
        (status = 200, description = "a page of campaigns", body = ListOf<Campaign>),
        (status = 400, description = "a bad filter or page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `campaign:read`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_campaigns(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<CampaignsQuery>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Campaign>>> {
    auth.require(Scope::CampaignRead)?;
    let page = paging.page()?;
    let status = query.status.filter(|s| !s.is_empty());
    if status
        .as_deref()
        .is_some_and(|s| !["Created", "In Progress", "Completed", "Closed"].contains(&s))
    {
        return Err(ApiError::bad_request(
            "`status` must be `Created`, `In Progress`, `Completed` or `Closed`",
        ));
    }
    let (rows, count) = state
        .store
        .list_campaigns(auth.account(), status.as_deref(), page)
        .await?;
    Ok(Json(ListOf {
        data: rows.into_iter().map(Campaign::from).collect(),
        meta: Meta::new(page, count),
    }))
}

/// Create a campaign. One whose start has come starts at once and enrols the current
/// members of its groups; with `auto_enroll` later joiners are enrolled as they join.
#[utoipa::path(post, path = "/api/campaigns", tag = "training", request_body = CampaignInput,
    responses(
        (status = 201, description = "created", body = CampaignCreated),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 422, description = "a bad field, named", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_campaign(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(input): Json<CampaignInput>,
) -> ApiResult<(StatusCode, Json<CampaignCreated>)> {
    let new = input.into_new(state.store.clock().now_ms())?;
    let (row, enrolled) = state.store.create_campaign(auth.account(), &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CampaignCreated {
            data: row.into(),
            enrolled,
        }),
    ))
}

/// Read one campaign.
#[utoipa::path(get, path = "/api/campaigns/{id}", tag = "training",
    params(("id" = i64, Path, description = "campaign id")),
    responses(
        (status = 200, description = "the campaign", body = DataOf<Campaign>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `campaign:read`", body = ErrorBody),
        (status = 404, description = "no such campaign in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_campaign(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Campaign>>> {
    auth.require(Scope::CampaignRead)?;
    let row = state.store.campaign(auth.account(), CampaignId(id)).await?;
    Ok(Json(DataOf { data: row.into() }))
}

/// Change a campaign's name, enrolment switches or cooldown.
#[utoipa::path(patch, path = "/api/campaigns/{id}", tag = "training", request_body = CampaignPatch,
    params(("id" = i64, Path, description = "campaign id")),
    responses(
        (status = 200, description = "changed", body = DataOf<Campaign>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such campaign in this account", body = ErrorBody),
        (status = 422, description = "a bad field, named", body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_campaign(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
    Json(patch): Json<CampaignPatch>,
) -> ApiResult<Json<DataOf<Campaign>>> {
    let changes = CampaignChanges {
        name: patch.name.as_deref().map(campaign_name).transpose()?,
        auto_enroll: patch.auto_enroll,
        allow_multiple: patch.allow_multiple_enrollments,
        cooldown: match patch.cooldown {
            None => None,
            Some(None) => Some(None),
            Some(Some(text)) => Some(Some(duration("cooldown", &text)?)),
        },
    };
    let row = state
        .store
        .update_campaign(auth.account(), CampaignId(id), &changes)
        .await?;
    Ok(Json(DataOf { data: row.into() }))
}

/// Close a campaign: nobody new is enrolled; open enrolments stay for the record.
#[utoipa::path(post, path = "/api/campaigns/{id}/close", tag = "training",
    params(("id" = i64, Path, description = "campaign id")),
    responses(
        (status = 200, description = "closed", body = DataOf<Campaign>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such campaign in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn close_campaign(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Campaign>>> {
    let row = state
        .store
        .close_campaign(auth.account(), CampaignId(id))
        .await?;
    Ok(Json(DataOf { data: row.into() }))
}

// ---- enrolments ---------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct Enrollment {
    pub id: i64,
    pub campaign_id: i64,
    pub campaign_name: String,
    pub content_id: i64,
    /// `module` or `policy`.
    pub content_kind: String,
    pub content_title: String,
    pub user_id: i64,
    pub email: String,
    /// `Not Started`, `In Progress`, `Passed`, `Completed` or `Past Due`.
    pub status: String,
    pub enrollment_date: String,
    pub due_date: Option<String>,
    pub start_date: Option<String>,
    pub completion_date: Option<String>,
    /// When it went past due (the due instant), even if completed later.
    pub past_due_date: Option<String>,
    /// Seconds.
    pub time_spent: i64,
    pub score: Option<i64>,
    pub attempts: i64,
    pub policy_acknowledged: bool,
    /// What enrolled the person: a group join with its evidence, or a campaign start.
    pub cause: Value,
}

impl From<EnrollmentRow> for Enrollment {
    fn from(e: EnrollmentRow) -> Self {
        Self {
            id: e.id.0,
            campaign_id: e.campaign_id.0,
            campaign_name: e.campaign_name,
            content_id: e.content_id.0,
            content_kind: e.content_kind,
            content_title: e.content_title,
            user_id: e.user_id.0,
            email: e.email,
            status: e.status,
            enrollment_date: format_ms(e.enrolled_at),
            due_date: e.due_at.map(format_ms),
            start_date: e.started_at.map(format_ms),
            completion_date: e.completed_at.map(format_ms),
            past_due_date: e.past_due_at.map(format_ms),
            time_spent: e.time_spent,
            score: e.score,
            attempts: e.attempts,
            policy_acknowledged: e.policy_acknowledged,
            cause: serde_json::from_str(&e.cause).unwrap_or(Value::Null),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentsQuery {
    #[serde(default, deserialize_with = "crate::paging::integer")]
    pub campaign_id: Option<i64>,
    #[serde(default, deserialize_with = "crate::paging::integer")]
    pub user_id: Option<i64>,
    #[serde(default, deserialize_with = "crate::paging::integer")]
    pub content_id: Option<i64>,
    /// `Not Started`, `In Progress`, `Passed`, `Completed` or `Past Due`; empty: every status.
    #[param(pattern = "^(Not Started|In Progress|Passed|Completed|Past Due)?$")]
    pub status: Option<String>,
}

/// List enrolments.
#[utoipa::path(get, path = "/api/enrollments", tag = "training", params(EnrollmentsQuery, PageParams),
    responses(
        (status = 200, description = "a page of enrolments", body = ListOf<Enrollment>),
        (status = 400, description = "a bad filter or page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `enrollments:read`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_enrollments(
    State(state): State<AppState>,
    auth: Auth,
    Query(query): Query<EnrollmentsQuery>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Enrollment>>> {
    auth.require(Scope::EnrollmentsRead)?;
    let page = paging.page()?;
    let status = query.status.filter(|s| !s.is_empty());
    if status
        .as_deref()
        .is_some_and(|s| coachloop_core::enrolment::EnrolmentStatus::parse(s).is_none())
    {
        return Err(ApiError::bad_request(
            "`status` must be `Not Started`, `In Progress`, `Passed`, `Completed` or `Past Due`",
        ));
    }
    let filter = EnrollmentFilter {
        campaign_id: query.campaign_id.map(CampaignId),
        user_id: query.user_id.map(UserId),
        content_id: query.content_id.map(ContentId),
        status,
    };
    let (rows, count) = state
        .store
        .list_enrollments(auth.account(), &filter, page)
        .await?;
    Ok(Json(ListOf {
        data: rows.into_iter().map(Enrollment::from).collect(),
        meta: Meta::new(page, count),
    }))
}

/// Read one enrolment.
#[utoipa::path(get, path = "/api/enrollments/{id}", tag = "training",
    params(("id" = i64, Path, description = "enrolment id")),
    responses(
        (status = 200, description = "the enrolment", body = DataOf<Enrollment>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `enrollments:read`", body = ErrorBody),
        (status = 404, description = "no such enrolment in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_enrollment(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Enrollment>>> {
    auth.require(Scope::EnrollmentsRead)?;
    let row = state
        .store
        .enrollment(auth.account(), EnrollmentId(id))
        .await?;
    Ok(Json(DataOf { data: row.into() }))
}

/// A learner's magic link.
#[derive(Debug, Serialize, ToSchema)]
pub struct Link {
    pub url: String,
    pub expires_at: String,
}

/// Make a magic link for an enrolment (the one its email carries): it opens the learner's
/// own training, without a password, until it expires (14 days).
#[utoipa::path(post, path = "/api/enrollments/{id}/link", tag = "training",
    params(("id" = i64, Path, description = "enrolment id")),
    responses(
        (status = 200, description = "the link", body = DataOf<Link>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such enrolment in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn enrollment_link(
    State(state): State<AppState>,
    Admin(auth): Admin,
    headers: axum::http::HeaderMap,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Link>>> {
    let enrollment = state
        .store
        .enrollment(auth.account(), EnrollmentId(id))
        .await?;
    let key = state.store.secret(crate::learn::KEY_NAME).await?;
    let expires_at = state.store.clock().now_ms() + crate::learn::LINK_TTL_MS;
    let path = crate::learn::link_path(&key, &enrollment, expires_at);
    Ok(Json(DataOf {
        data: Link {
            url: format!("{}{path}", crate::learn::base_url(&state, &headers)),
            expires_at: format_ms(expires_at),
        },
    }))
}
