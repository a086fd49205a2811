//! Compliance: `/api/compliance/…` — frameworks an account enables, the requirements its
//! controls ask of people, controls with their verdicts and history, people with their
//! status and its reason, and exceptions.

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Path, Query};
use crate::paging::{DataOf, ListOf, Meta, PageParams, integer};
use axum::extract::State;
use axum::http::StatusCode;
use coachloop_core::FieldError;
use coachloop_core::compliance::{Recurrence, Requirement as Settings, Scope, Status};
use coachloop_core::ids::{ExceptionId, RequirementId, UserId};
use coachloop_core::time::{format_ms, parse_date_or_timestamp};
use coachloop_store::compliance::{
    ControlState, Counts, Exception as ExceptionRow, FrameworkState, HistoryEntry, NewException,
    PeopleFilter, PersonStanding, RequirementState,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_frameworks))
        .routes(routes!(enable_framework, disable_framework))
        .routes(routes!(list_requirements))
        .routes(routes!(get_requirement, update_requirement))
        .routes(routes!(list_controls))
        .routes(routes!(control_history))
        .routes(routes!(list_people))
        .routes(routes!(non_compliant))
        .routes(routes!(list_exceptions, grant_exception))
        .routes(routes!(revoke_exception))
        .routes(routes!(evaluate))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Framework {
    /// `soc2`, `iso27001`, `nist-800-53`, `nist-csf`, `hipaa`, `pci-dss`.
    pub id: String,
    pub title: String,
    pub enabled: bool,
    pub enabled_at: Option<String>,
    /// How many of its controls training satisfies.
    pub controls: usize,
}

impl From<FrameworkState> for Framework {
    fn from(f: FrameworkState) -> Self {
        Self {
            id: f.framework.id.to_owned(),
            title: f.framework.title.to_owned(),
            enabled: f.enabled_at.is_some(),
            enabled_at: f.enabled_at.map(format_ms),
            controls: coachloop_core::compliance::catalog::controls_of(f.framework.id).count(),
        }
    }
}

/// People in scope by status.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusCounts {
    pub compliant: i64,
    pub at_risk: i64,
    pub non_compliant: i64,
    pub excepted: i64,
    pub in_scope: i64,
}

impl From<Counts> for StatusCounts {
    fn from(c: Counts) -> Self {
        Self {
            compliant: c.compliant,
            at_risk: c.at_risk,
            non_compliant: c.non_compliant,
            excepted: c.excepted,
            in_scope: c.in_scope(),
        }
    }
}

/// When a completion stops counting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceBody {
    /// `rolling` (a completion counts for `months`), `fixed` (every completion stops
    /// counting on `month`-`day` each year, UTC) or `once`.
    #[schema(pattern = "^(rolling|fixed|once)$")]
    pub kind: String,
    #[schema(minimum = 1, maximum = 120)]
    pub months: Option<u32>,
    #[schema(minimum = 1, maximum = 12)]
    pub month: Option<u32>,
    #[schema(minimum = 1, maximum = 31)]
    pub day: Option<u32>,
}

impl From<Recurrence> for RecurrenceBody {
    fn from(r: Recurrence) -> Self {
        let (kind, months, month, day) = match r {
            Recurrence::Rolling { months } => ("rolling", Some(months), None, None),
            Recurrence::Fixed { month, day } => ("fixed", None, Some(month), Some(day)),
            Recurrence::Once => ("once", None, None, None),
        };
        Self {
            kind: kind.to_owned(),
            months,
            month,
            day,
        }
    }
}

impl RecurrenceBody {
    fn parse(&self) -> Result<Recurrence, FieldError> {
        // Every field given is checked against its bounds, whether the kind reads it or not.
        for (field, value, max) in [
            ("months", self.months, 120),
            ("month", self.month, 12),
            ("day", self.day, 31),
        ] {
            if value.is_some_and(|v| !(1..=max).contains(&v)) {
                return Err(FieldError::new(
                    format!("recurrence.{field}"),
                    format!("between 1 and {max}"),
                ));
            }
        }
        let missing = |field: &str| FieldError::new(format!("recurrence.{field}"), "required");
        match self.kind.as_str() {
            "rolling" => Ok(Recurrence::Rolling {
                months: self.months.ok_or_else(|| missing("months"))?,
            }),
            "fixed" => Ok(Recurrence::Fixed {
                month: self.month.ok_or_else(|| missing("month"))?,
                day: self.day.ok_or_else(|| missing("day"))?,
            }),
            "once" => Ok(Recurrence::Once),
            _ => Err(FieldError::new(
                "recurrence.kind",
                "one of: rolling, fixed, once",
            )),
        }
    }
}

/// Who a requirement applies to (active people only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeBody {
    /// `all` or `group`.
    #[schema(pattern = "^(all|group)$")]
    pub kind: String,
    #[schema(minimum = 1)]
    pub group_id: Option<i64>,
}

impl From<Scope> for ScopeBody {
    fn from(s: Scope) -> Self {
        match s {
            Scope::All => Self {
                kind: "all".into(),
                group_id: None,
            },
            Scope::Group { group_id } => Self {
                kind: "group".into(),
                group_id: Some(group_id),
            },
        }
    }
}

impl ScopeBody {
    fn parse(&self) -> Result<Scope, FieldError> {
        if self.group_id.is_some_and(|id| id < 1) {
            return Err(FieldError::new("scope.group_id", "a positive integer"));
        }
        match (self.kind.as_str(), self.group_id) {
            ("all", _) => Ok(Scope::All),
            ("group", Some(group_id)) => Ok(Scope::Group { group_id }),
            ("group", None) => Err(FieldError::new("scope.group_id", "required for a group")),
            _ => Err(FieldError::new("scope.kind", "one of: all, group")),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequirementBody {
    pub id: i64,
    /// `awareness`, `phishing`, `policy`, `event_triggered` or `role_based`.
    pub kind: String,
    pub title: String,
    /// Content ids that count; with `campaigns` empty too, the kind's default (every
    /// module; the phishing modules; the acceptable use policy; every enrolment a smart
    /// group made).
    pub content: Vec<i64>,
    /// Campaign ids whose enrolments count.
    pub campaigns: Vec<i64>,
    pub recurrence: RecurrenceBody,
    pub new_hire_days: u32,
    pub scope: ScopeBody,
    pub tolerance_days: u32,
    pub due_soon_days: u32,
    pub completion_days: u32,
    /// `pass`, `at_risk` or `fail`.
    pub status: String,
    pub counts: StatusCounts,
    pub updated_at: String,
}

impl From<RequirementState> for RequirementBody {
    fn from(r: RequirementState) -> Self {
        let s = r.settings;
        Self {
            id: r.id.0,
            kind: s.kind.as_str().to_owned(),
            title: s.title,
            content: s.content,
            campaigns: s.campaigns,
            recurrence: s.recurrence.into(),
            new_hire_days: s.new_hire_days,
            scope: s.scope.into(),
            tolerance_days: s.tolerance_days,
            due_soon_days: s.due_soon_days,
            completion_days: s.completion_days,
            status: r.verdict.as_str().to_owned(),
            counts: r.counts.into(),
            updated_at: format_ms(r.updated_at),
        }
    }
}

/// Changes to a requirement: what is left out stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequirementChanges {
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(max_items = 1000)]
    pub content: Option<Vec<i64>>,
    #[schema(max_items = 1000)]
    pub campaigns: Option<Vec<i64>>,
    pub recurrence: Option<RecurrenceBody>,
    #[schema(minimum = 0, maximum = 3650)]
    pub new_hire_days: Option<u32>,
    pub scope: Option<ScopeBody>,
    #[schema(minimum = 0, maximum = 3650)]
    pub tolerance_days: Option<u32>,
    #[schema(minimum = 0, maximum = 3650)]
    pub due_soon_days: Option<u32>,
    #[schema(minimum = 0, maximum = 3650)]
    pub completion_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Control {
    pub framework: String,
    /// As the standard writes it (`CC1.4`, `12.6.3.1`).
    pub id: String,
    pub title: String,
    pub requirement_id: i64,
    pub requirement_kind: String,
    /// `pass`, `at_risk` or `fail`: its requirement's.
    pub status: String,
    pub counts: StatusCounts,
}

impl From<ControlState> for Control {
    fn from(c: ControlState) -> Self {
        Self {
            framework: c.control.framework.to_owned(),
            id: c.control.id.to_owned(),
            title: c.control.title.to_owned(),
            requirement_id: c.requirement.0,
            requirement_kind: c.control.requirement.as_str().to_owned(),
            status: c.verdict.as_str().to_owned(),
            counts: c.counts.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryBody {
    /// `pass`, `at_risk` or `fail` from `at` on.
    pub status: String,
    pub counts: StatusCounts,
    pub at: String,
}

impl From<HistoryEntry> for HistoryBody {
    fn from(h: HistoryEntry) -> Self {
        Self {
            status: h.status,
            counts: Counts {
                compliant: h.compliant,
                at_risk: h.at_risk,
                non_compliant: h.non_compliant,
                excepted: h.excepted,
            }
            .into(),
            at: format_ms(h.at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Standing {
    pub requirement_id: i64,
    pub requirement_kind: String,
    pub user_id: i64,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `compliant`, `at_risk`, `non_compliant` or `excepted`.
    pub status: String,
    /// Why, in words.
    pub reason: String,
    /// When the person's obligation ends (none: never).
    pub due: Option<String>,
    pub last_completed: Option<String>,
    pub since: String,
    /// When the status changes by itself unless something else changes first.
    pub changes_at: Option<String>,
    /// The sync connection that added this person (null: a person of this account).
    pub source: Option<String>,
}

impl From<PersonStanding> for Standing {
    fn from(p: PersonStanding) -> Self {
        Self {
            requirement_id: p.requirement_id,
            requirement_kind: p.kind,
            user_id: p.user_id,
            email: p.email,
            first_name: p.first_name,
            last_name: p.last_name,
            status: p.status,
            reason: p.reason,
            due: p.deadline.map(format_ms),
            last_completed: p.last_completed.map(format_ms),
            since: format_ms(p.since),
            changes_at: p.changes_at.map(format_ms),
            source: p.source,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PeopleQuery {
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "integer")]
    pub requirement_id: Option<i64>,
    /// `compliant`, `at_risk`, `non_compliant` or `excepted`.
    #[param(pattern = r"^\s*(compliant|at_risk|non_compliant|excepted)?\s*$")]
    pub status: Option<String>,
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "integer")]
    pub user_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionBody {
    pub id: i64,
    pub requirement_id: i64,
    pub user_id: i64,
    pub reason: String,
    /// The token (or admin) that granted it.
    pub granted_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<ExceptionRow> for ExceptionBody {
    fn from(e: ExceptionRow) -> Self {
        Self {
            id: e.id,
            requirement_id: e.requirement_id,
            user_id: e.user_id,
            reason: e.reason,
            granted_by: e.granted_by,
            created_at: format_ms(e.created_at),
            expires_at: e.expires_at.map(format_ms),
            revoked_at: e.revoked_at.map(format_ms),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionInput {
    #[schema(minimum = 1)]
    pub requirement_id: i64,
    #[schema(minimum = 1)]
    pub user_id: i64,
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
    /// `YYYY-MM-DD` (midnight UTC) or an RFC 3339 instant in the future; none: for good.
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Evaluated {
    /// People's rows written or removed.
    pub changed: usize,
    pub took_ms: u64,
}

fn framework_id(id: &str) -> ApiResult<&'static str> {
    coachloop_core::compliance::catalog::framework(id)
        .map(|f| f.id)
        .ok_or_else(|| ApiError::not_found("framework"))
}

/// The catalog's frameworks, with which the account enabled.
#[utoipa::path(get, path = "/api/compliance/frameworks", tag = "compliance",
    responses(
        (status = 200, description = "every framework", body = DataOf<Vec<Framework>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_frameworks(
    State(state): State<AppState>,
    Admin(auth): Admin,
) -> ApiResult<Json<DataOf<Vec<Framework>>>> {
    let frameworks = state.store.compliance_frameworks(auth.account()).await?;
    Ok(Json(DataOf {
        data: frameworks.into_iter().map(Framework::from).collect(),
    }))
}

async fn one_framework(
    state: &AppState,
    auth: &crate::auth::Auth,
    id: &str,
) -> ApiResult<Framework> {
    let frameworks = state.store.compliance_frameworks(auth.account()).await?;
    frameworks
        .into_iter()
        .find(|f| f.framework.id == id)
        .map(Framework::from)
        .ok_or_else(|| ApiError::not_found("framework"))
}

/// Enable a framework: its controls' requirements are made with their defaults (unless
/// the account has them) and everyone is evaluated at once.
#[utoipa::path(put, path = "/api/compliance/frameworks/{framework}", tag = "compliance",
    params(("framework" = String, Path, description = "framework id, e.g. `soc2`")),
    responses(
        (status = 200, description = "enabled", body = DataOf<Framework>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such framework", body = ErrorBody)),
    security(("bearer" = [])))]
async fn enable_framework(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(framework): Path<String>,
) -> ApiResult<Json<DataOf<Framework>>> {
    let id = framework_id(&framework)?;
    state.store.enable_framework(auth.account(), id).await?;
    Ok(Json(DataOf {
        data: one_framework(&state, &auth, id).await?,
    }))
}

/// Disable a framework: its controls are no longer listed (requirements stay).
#[utoipa::path(delete, path = "/api/compliance/frameworks/{framework}", tag = "compliance",
    params(("framework" = String, Path, description = "framework id, e.g. `soc2`")),
    responses(
        (status = 200, description = "disabled", body = DataOf<Framework>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such framework", body = ErrorBody)),
    security(("bearer" = [])))]
async fn disable_framework(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(framework): Path<String>,
) -> ApiResult<Json<DataOf<Framework>>> {
    let id = framework_id(&framework)?;
    state.store.disable_framework(auth.account(), id).await?;
    Ok(Json(DataOf {
        data: one_framework(&state, &auth, id).await?,
    }))
}

/// The account's requirements, with their verdicts and counts.
#[utoipa::path(get, path = "/api/compliance/requirements", tag = "compliance",
    responses(
        (status = 200, description = "every requirement", body = DataOf<Vec<RequirementBody>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_requirements(
    State(state): State<AppState>,
    Admin(auth): Admin,
) -> ApiResult<Json<DataOf<Vec<RequirementBody>>>> {
    let rows = state.store.compliance_requirements(auth.account()).await?;
    Ok(Json(DataOf {
        data: rows.into_iter().map(RequirementBody::from).collect(),
    }))
}

/// Read one requirement.
#[utoipa::path(get, path = "/api/compliance/requirements/{id}", tag = "compliance",
    params(("id" = i64, Path, description = "requirement id", minimum = 1)),
    responses(
        (status = 200, description = "the requirement", body = DataOf<RequirementBody>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such requirement in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_requirement(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<RequirementBody>>> {
    let row = state
        .store
        .compliance_requirement(auth.account(), RequirementId(id))
        .await?;
    Ok(Json(DataOf { data: row.into() }))
}

/// Edit a requirement; everyone in its scope is evaluated again in the same transaction.
#[utoipa::path(patch, path = "/api/compliance/requirements/{id}", tag = "compliance",
    request_body = RequirementChanges,
    params(("id" = i64, Path, description = "requirement id", minimum = 1)),
    responses(
        (status = 200, description = "changed and evaluated", body = DataOf<RequirementBody>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such requirement in this account", body = ErrorBody),
        (status = 422, description = "a bad setting, or content, a campaign or a group not in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_requirement(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
    Json(changes): Json<RequirementChanges>,
) -> ApiResult<Json<DataOf<RequirementBody>>> {
    let current = state
        .store
        .compliance_requirement(auth.account(), RequirementId(id))
        .await?;
    let mut settings: Settings = current.settings;
    let mut errors = Vec::new();
    if let Some(title) = changes.title {
        settings.title = title;
    }
    if let Some(content) = changes.content {
        settings.content = content;
    }
    if let Some(campaigns) = changes.campaigns {
        settings.campaigns = campaigns;
    }
    if let Some(r) = &changes.recurrence {
        match r.parse() {
            Ok(r) => settings.recurrence = r,
            Err(e) => errors.push(e),
        }
    }
    if let Some(s) = &changes.scope {
        match s.parse() {
            Ok(s) => settings.scope = s,
            Err(e) => errors.push(e),
        }
    }
    settings.new_hire_days = changes.new_hire_days.unwrap_or(settings.new_hire_days);
    settings.tolerance_days = changes.tolerance_days.unwrap_or(settings.tolerance_days);
    settings.due_soon_days = changes.due_soon_days.unwrap_or(settings.due_soon_days);
    settings.completion_days = changes.completion_days.unwrap_or(settings.completion_days);
    if let Err(mut more) = settings.validate() {
        errors.append(&mut more);
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let row = state
        .store
        .update_requirement(auth.account(), RequirementId(id), &settings)
        .await?;
    Ok(Json(DataOf { data: row.into() }))
}

/// The enabled frameworks' controls, each with its requirement's verdict and counts.
#[utoipa::path(get, path = "/api/compliance/controls", tag = "compliance",
    responses(
        (status = 200, description = "every control of the enabled frameworks", body = DataOf<Vec<Control>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_controls(
    State(state): State<AppState>,
    Admin(auth): Admin,
) -> ApiResult<Json<DataOf<Vec<Control>>>> {
    let controls = state.store.compliance_controls(auth.account()).await?;
    Ok(Json(DataOf {
        data: controls.into_iter().map(Control::from).collect(),
    }))
}

/// A control's verdicts over time, oldest first: each entry holds from its `at` until
/// the next ("when did CC1.4 start failing").
#[utoipa::path(get, path = "/api/compliance/controls/{framework}/{control}/history",
    tag = "compliance",
    params(
        ("framework" = String, Path, description = "framework id, e.g. `soc2`"),
        ("control" = String, Path, description = "control id as the standard writes it, e.g. `CC1.4`")),
    responses(
        (status = 200, description = "the history", body = DataOf<Vec<HistoryBody>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such control", body = ErrorBody)),
    security(("bearer" = [])))]
async fn control_history(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path((framework, control)): Path<(String, String)>,
) -> ApiResult<Json<DataOf<Vec<HistoryBody>>>> {
    let history = state
        .store
        .compliance_history(auth.account(), &framework, &control)
        .await?;
    Ok(Json(DataOf {
        data: history.into_iter().map(HistoryBody::from).collect(),
    }))
}

fn people_filter(query: &PeopleQuery) -> ApiResult<PeopleFilter> {
    let status = match query.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "`status` must be `compliant`, `at_risk`, `non_compliant` or `excepted`",
            )
        })?),
    };
    for (name, value) in [
        ("requirement_id", query.requirement_id),
        ("user_id", query.user_id),
    ] {
        if value.is_some_and(|v| v < 1) {
            return Err(ApiError::bad_request(format!("`{name}` must be 1 or more")));
        }
    }
    Ok(PeopleFilter {
        requirement: query.requirement_id.map(RequirementId),
        status,
        user: query.user_id.map(UserId),
    })
}

async fn people_page(
    state: &AppState,
    auth: &crate::auth::Auth,
    filter: &PeopleFilter,
    paging: &PageParams,
) -> ApiResult<ListOf<Standing>> {
    let page = paging.page()?;
    let (rows, count) = state
        .store
        .compliance_people(auth.account(), filter, page)
        .await?;
    Ok(ListOf {
        data: rows.into_iter().map(Standing::from).collect(),
        meta: Meta::new(page, count),
    })
}

/// People's status against each requirement, with the reason in words.
#[utoipa::path(get, path = "/api/compliance/people", tag = "compliance",
    params(PeopleQuery, PageParams),
    responses(
        (status = 200, description = "a page of people's standings", body = ListOf<Standing>),
        (status = 400, description = "a bad filter or page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_people(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Query(query): Query<PeopleQuery>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Standing>>> {
    let filter = people_filter(&query)?;
    Ok(Json(people_page(&state, &auth, &filter, &paging).await?))
}

/// Everyone who is not compliant with a requirement, and why.
#[utoipa::path(get, path = "/api/compliance/non-compliant", tag = "compliance",
    params(PageParams),
    responses(
        (status = 200, description = "a page of non-compliant people", body = ListOf<Standing>),
        (status = 400, description = "a bad page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn non_compliant(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<Standing>>> {
    let filter = PeopleFilter {
        status: Some(Status::NonCompliant),
        ..PeopleFilter::default()
    };
    Ok(Json(people_page(&state, &auth, &filter, &paging).await?))
}

/// Every exception, newest first (revoked and expired ones included).
#[utoipa::path(get, path = "/api/compliance/exceptions", tag = "compliance",
    responses(
        (status = 200, description = "every exception", body = DataOf<Vec<ExceptionBody>>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_exceptions(
    State(state): State<AppState>,
    Admin(auth): Admin,
) -> ApiResult<Json<DataOf<Vec<ExceptionBody>>>> {
    let rows = state.store.compliance_exceptions(auth.account()).await?;
    Ok(Json(DataOf {
        data: rows.into_iter().map(ExceptionBody::from).collect(),
    }))
}

/// Except a person from a requirement, with a reason, until a date or for good.
#[utoipa::path(post, path = "/api/compliance/exceptions", tag = "compliance",
    request_body = ExceptionInput,
    responses(
        (status = 201, description = "granted; the person's status is `excepted` at once", body = DataOf<ExceptionBody>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 422, description = "no such requirement or person, no reason, or an expiry not in the future", body = ErrorBody)),
    security(("bearer" = [])))]
async fn grant_exception(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Json(input): Json<ExceptionInput>,
) -> ApiResult<(StatusCode, Json<DataOf<ExceptionBody>>)> {
    let expires_at = match input.expires_at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            parse_date_or_timestamp(text)
                .ok_or_else(|| {
                    ApiError::invalid(vec![FieldError::new(
                        "expires_at",
                        "a date (YYYY-MM-DD) or an RFC 3339 instant",
                    )])
                })?
                .timestamp_millis(),
        ),
    };
    let row = state
        .store
        .grant_exception(
            auth.account(),
            &NewException {
                requirement: RequirementId(input.requirement_id),
                user: UserId(input.user_id),
                reason: input.reason,
                granted_by: auth.who(),
                expires_at,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(DataOf { data: row.into() })))
}

/// End an exception now; the person is evaluated again at once.
#[utoipa::path(delete, path = "/api/compliance/exceptions/{id}", tag = "compliance",
    params(("id" = i64, Path, description = "exception id", minimum = 1)),
    responses(
        (status = 200, description = "revoked (or revoked already)", body = DataOf<ExceptionBody>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 404, description = "no such exception in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn revoke_exception(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<ExceptionBody>>> {
    let row = state
        .store
        .revoke_exception(auth.account(), ExceptionId(id))
        .await?;
    Ok(Json(DataOf { data: row.into() }))
}

/// Evaluate everyone against every requirement again (what is stored is kept current by
/// every change; this is a full check).
#[utoipa::path(post, path = "/api/compliance/evaluate", tag = "compliance",
    responses(
        (status = 200, description = "evaluated", body = DataOf<Evaluated>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn evaluate(
    State(state): State<AppState>,
    Admin(auth): Admin,
) -> ApiResult<Json<DataOf<Evaluated>>> {
    let started = std::time::Instant::now();
    let changed = state.store.evaluate_compliance(auth.account()).await?;
    Ok(Json(DataOf {
        data: Evaluated {
            changed,
            took_ms: started.elapsed().as_millis() as u64,
        },
    }))
}
