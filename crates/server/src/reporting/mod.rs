//! The Reporting API under `/v1`: the paths, query parameters and JSON shapes of
//! reference/reporting-api.md, read-only, from coachloop's own data. Lists answer in
//! page, cursor or NDJSON mode (see [`listing`]); each path needs its scope.

pub mod listing;
pub mod shapes;
mod sources;

use crate::AppState;
use crate::auth::{
    AccountReader, Auth, CampaignReader, EnrollmentsReader, GroupReader, ProgramReader, UserReader,
};
use crate::error::{ApiError, ApiResult, ErrorBody, Path, Query};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Months;
use coachloop_core::ids::{AccountId, CampaignId, ContentId, GroupId, UserId};
use coachloop_core::time::{date_of_ms, format_date};
use coachloop_core::user::UserStatus;
use coachloop_store::reporting::{EnrollmentQuery, Listing};
use coachloop_store::risk::{DailyScore, Scores};
use listing::{InMemory, ListRequest, Paging};
use serde::Deserialize;
use shapes::{Account, Admin, Includes, RiskScore, V1Enrollment};
use sources::{Campaigns, Content, Enrollments, Groups, Users};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(account))
        .routes(routes!(account_risk_history))
        .routes(routes!(users))
        .routes(routes!(user))
        .routes(routes!(user_risk_history))
        .routes(routes!(groups))
        .routes(routes!(group))
        .routes(routes!(group_members))
        .routes(routes!(group_risk_history))
        .routes(routes!(store_purchases))
        .routes(routes!(store_purchase))
        .routes(routes!(policies))
        .routes(routes!(policy))
        .routes(routes!(policies_alias))
        .routes(routes!(policy_alias))
        .routes(routes!(campaigns))
        .routes(routes!(campaign))
        .routes(routes!(enrollments))
        .routes(routes!(enrollment))
        .routes(routes!(enrollment_alias))
        .routes(routes!(phishing_campaigns))
        .routes(routes!(phishing_campaign))
        .routes(routes!(phishing_campaign_tests))
        .routes(routes!(security_tests))
        .routes(routes!(security_test))
}

/// How long a computed set of current risk scores is served: computing them reads every
/// event that still weighs, too much for every page of a list.
const RISK_TTL: Duration = Duration::from_secs(10);

/// The current risk scores of an account: people's and groups'.
pub struct RiskNow {
    pub scores: Scores,
    pub groups: HashMap<GroupId, f64>,
}

impl RiskNow {
    pub fn person(&self, user: UserId) -> f64 {
        self.scores.people.get(&user).copied().unwrap_or(0.0)
    }

    pub fn group(&self, group: GroupId) -> f64 {
        self.groups.get(&group).copied().unwrap_or(0.0)
    }
}

/// What the Reporting API keeps between requests.
#[derive(Default)]
pub struct Caches {
    pub anchors: listing::Anchors,
    risk: Mutex<HashMap<i64, (Arc<RiskNow>, Instant)>>,
}

impl Caches {
    /// The account's current scores, at most [`RISK_TTL`] old.
    pub async fn risk(&self, state: &AppState, account: AccountId) -> ApiResult<Arc<RiskNow>> {
        let cached = {
            let risk = self.risk.lock().unwrap_or_else(|e| e.into_inner());
            risk.get(&account.0)
                .filter(|(_, at)| at.elapsed() < RISK_TTL)
                .map(|(now, _)| now.clone())
        };
        if let Some(now) = cached {
            return Ok(now);
        }
        let scores = state.store.risk_scores(account).await?;
        let groups = state.store.group_scores(account, &scores).await?;
        let now = Arc::new(RiskNow { scores, groups });
        self.risk
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.0, (now.clone(), Instant::now()));
        Ok(now)
    }
}

/// `true`/`false` (also `1`/`0`); absent is false.
fn flag(value: &Option<String>, name: &str) -> ApiResult<bool> {
    match value.as_deref().map(str::trim) {
        None | Some("false" | "0" | "") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "`{name}` must be true or false; got `{other}`"
        ))),
    }
}

/// A positive id from a query parameter.
fn id_param(value: &Option<String>, name: &str) -> ApiResult<Option<i64>> {
    value
        .as_deref()
        .map(|text| {
            crate::paging::parse_integer(text)
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("`{name}` must be a positive id; got `{text}`"))
                })
        })
        .transpose()
}

// ---- account ----------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// `true`: the whole history; default: the last six months.
    #[param(pattern = r"^\s*(true|false|1|0)?\s*$")]
    pub full: Option<String>,
}

/// The first day a history shows: six months back, or everything with `full=true`.
fn history_since(state: &AppState, query: &HistoryQuery) -> ApiResult<String> {
    if flag(&query.full, "full")? {
        return Ok("0000-01-01".to_owned());
    }
    let today = date_of_ms(state.store.clock().now_ms());
    Ok(format_date(
        today.checked_sub_months(Months::new(6)).unwrap_or(today),
    ))
}

fn oldest_first(rows: Vec<DailyScore>, since: &str) -> Vec<RiskScore> {
    let mut days: Vec<RiskScore> = rows
        .into_iter()
        .filter(|d| d.day.as_str() >= since)
        .map(|d| RiskScore {
            risk_score: d.score,
            date: d.day,
        })
        .collect();
    days.sort_by(|a, b| a.date.cmp(&b.date));
    days
}

/// Every recorded day there can be (a generous bound; histories are one row a day).
const ALL_DAYS: i64 = 100_000;

async fn account_history(
    state: &AppState,
    account: AccountId,
    since: &str,
) -> ApiResult<Vec<RiskScore>> {
    let rows = state.store.risk_history(account, None, ALL_DAYS).await?;
    Ok(oldest_first(rows, since))
}

/// The account: its administrators, seats, domains and risk score.
#[utoipa::path(get, path = "/v1/account", tag = "reporting",
    responses(
        (status = 200, description = "the account", body = Account),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `account:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn account(
    State(state): State<AppState>,
    AccountReader(auth): AccountReader,
) -> ApiResult<Response> {
    let id = auth.account();
    let account = state.store.account(id).await?;
    let admins = state.store.list_admins(id).await?;
    let (seats, domains) = state.store.seats_and_domains(id).await?;
    let risk = state.reporting.risk(&state, id).await?;
    let since = history_since(&state, &HistoryQuery { full: None })?;
    Ok(axum::Json(Account {
        name: account.name,
        kind: "paid",
        domains,
        admins: admins
            .into_iter()
            .map(|a| Admin {
                id: a.id.0,
                first_name: a.first_name,
                last_name: a.last_name,
                email: a.email,
            })
            .collect(),
        subscription_level: "coachloop",
        subscription_end_date: None,
        number_of_seats: seats,
        current_risk_score: risk.scores.account,
        risk_score_history: account_history(&state, id, &since).await?,
    })
    .into_response())
}

/// The account's daily risk score, oldest first.
#[utoipa::path(get, path = "/v1/account/risk_score_history", tag = "reporting",
    params(HistoryQuery, Paging),
    responses(
        (status = 200, description = "one score a day", body = Vec<RiskScore>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `account:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn account_risk_history(
    State(state): State<AppState>,
    AccountReader(auth): AccountReader,
    list: ListRequest,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Response> {
    let since = history_since(&state, &query)?;
    let rows = account_history(&state, auth.account(), &since).await?;
    let identity = format!("account-history {since}");
    list.respond(&state, &auth, InMemory { identity, rows })
        .await
}

// ---- users ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// `active` or `archived`; default both.
    #[param(pattern = r"^\s*(active|archived)\s*$")]
    pub status: Option<String>,
    /// Only members of this group.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub group_id: Option<String>,
    /// `group`: whole groups in `groups` instead of ids.
    #[param(pattern = r"^\s*(group|groups)?\s*$")]
    pub expand: Option<String>,
}

fn expand_groups(expand: &Option<String>) -> ApiResult<bool> {
    match expand.as_deref().map(str::trim) {
        None | Some("") => Ok(false),
        Some("group" | "groups") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "`expand` takes `group`; got `{other}`"
        ))),
    }
}

/// People, in id order.
#[utoipa::path(get, path = "/v1/users", tag = "reporting",
    params(UsersQuery, Paging),
    responses(
        (status = 200, description = "a page of people (a bare array)", body = Vec<shapes::V1User>),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 404, description = "`group_id` names no group of this account", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `user:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn users(
    State(state): State<AppState>,
    UserReader(auth): UserReader,
    list: ListRequest,
    Query(query): Query<UsersQuery>,
) -> ApiResult<Response> {
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(UserStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!("`status` is `active` or `archived`; got `{text}`"))
        })?),
    };
    let group = id_param(&query.group_id, "group_id")?;
    if let Some(group) = group {
        state.store.group(auth.account(), GroupId(group)).await?;
    }
    let source = Users::new(
        &state,
        &auth,
        Listing::Users {
            status,
            group: group.map(GroupId),
        },
        expand_groups(&query.expand)?,
    )
    .await?;
    list.respond(&state, &auth, source).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExpandQuery {
    /// `group`: whole groups in `groups` instead of ids.
    #[param(pattern = r"^\s*(group|groups)?\s*$")]
    pub expand: Option<String>,
}

/// One person.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "reporting", params(("id" = i64, Path), ExpandQuery),
    responses(
        (status = 200, description = "the person", body = shapes::V1User),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `user:read`", body = ErrorBody),
        (status = 404, description = "no such person in this account", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn user(
    State(state): State<AppState>,
    UserReader(auth): UserReader,
    Path(id): Path<i64>,
    Query(query): Query<ExpandQuery>,
) -> ApiResult<Response> {
    let user = state.store.user(auth.account(), UserId(id)).await?;
    let everyone = Listing::Users {
        status: None,
        group: None,
    };
    let source = Users::new(&state, &auth, everyone, expand_groups(&query.expand)?).await?;
    let mut shown = source.show(vec![user]).await?;
    let (_, user) = shown.pop().ok_or_else(|| ApiError::not_found("user"))?;
    Ok(axum::Json(user).into_response())
}

/// A person's daily risk score, oldest first.
#[utoipa::path(get, path = "/v1/users/{id}/risk_score_history", tag = "reporting",
    params(("id" = i64, Path), HistoryQuery),
    responses(
        (status = 200, description = "one score a day", body = Vec<RiskScore>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `user:read`", body = ErrorBody),
        (status = 404, description = "no such person in this account", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn user_risk_history(
    State(state): State<AppState>,
    UserReader(auth): UserReader,
    Path(id): Path<i64>,
    list: ListRequest,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Response> {
    state.store.user(auth.account(), UserId(id)).await?;
    let since = history_since(&state, &query)?;
    let rows = state
        .store
        .risk_history(auth.account(), Some(UserId(id)), ALL_DAYS)
        .await?;
    let identity = format!("user-history {id} {since}");
    let rows = oldest_first(rows, &since);
    list.respond(&state, &auth, InMemory { identity, rows })
        .await
}

// ---- groups -----------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupsQuery {
    /// `active` or `archived`; default both.
    #[param(pattern = r"^\s*(active|archived)\s*$")]
    pub status: Option<String>,
}

/// Groups, in id order.
#[utoipa::path(get, path = "/v1/groups", tag = "reporting",
    params(GroupsQuery, Paging),
    responses(
        (status = 200, description = "a page of groups (a bare array)", body = Vec<shapes::V1Group>),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn groups(
    State(state): State<AppState>,
    GroupReader(auth): GroupReader,
    list: ListRequest,
    Query(query): Query<GroupsQuery>,
) -> ApiResult<Response> {
    let status = match query.status.as_deref().map(str::trim) {
        None => None,
        Some(status @ ("active" | "archived")) => Some(status.to_owned()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`status` is `active` or `archived`; got `{other}`"
            )));
        }
    };
    let source = Groups::new(&state, &auth, Listing::Groups { status }).await?;
    list.respond(&state, &auth, source).await
}

/// One group.
#[utoipa::path(get, path = "/v1/groups/{id}", tag = "reporting", params(("id" = i64, Path)),
    responses(
        (status = 200, description = "the group", body = shapes::V1Group),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn group(
    State(state): State<AppState>,
    GroupReader(auth): GroupReader,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let group = state.store.group(auth.account(), GroupId(id)).await?;
    let risk = state.reporting.risk(&state, auth.account()).await?;
    let score = risk.group(group.id);
    Ok(axum::Json(shapes::V1Group::new(group, score)).into_response())
}

/// A group's current members, as people, in id order.
#[utoipa::path(get, path = "/v1/groups/{id}/members", tag = "reporting",
    params(("id" = i64, Path), Paging),
    responses(
        (status = 200, description = "a page of members (a bare array)", body = Vec<shapes::V1User>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn group_members(
    State(state): State<AppState>,
    GroupReader(auth): GroupReader,
    Path(id): Path<i64>,
    list: ListRequest,
) -> ApiResult<Response> {
    state.store.group(auth.account(), GroupId(id)).await?;
    let source = Users::new(
        &state,
        &auth,
        Listing::Members { group: GroupId(id) },
        false,
    )
    .await?;
    list.respond(&state, &auth, source).await
}

/// A group's daily risk score (the mean of its members'), oldest first.
#[utoipa::path(get, path = "/v1/groups/{id}/risk_score_history", tag = "reporting",
    params(("id" = i64, Path), HistoryQuery),
    responses(
        (status = 200, description = "one score a day", body = Vec<RiskScore>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `group:read`", body = ErrorBody),
        (status = 404, description = "no such group in this account", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn group_risk_history(
    State(state): State<AppState>,
    GroupReader(auth): GroupReader,
    Path(id): Path<i64>,
    list: ListRequest,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Response> {
    state.store.group(auth.account(), GroupId(id)).await?;
    let since = history_since(&state, &query)?;
    let rows = state
        .store
        .group_risk_history(auth.account(), GroupId(id), &since)
        .await?;
    let identity = format!("group-history {id} {since}");
    let rows = oldest_first(rows, &since);
    list.respond(&state, &auth, InMemory { identity, rows })
        .await
}

// ---- training content -------------------------------------------------------------------

/// Training modules (the built-in library and the account's own), in id order.
#[utoipa::path(get, path = "/v1/training/store_purchases", tag = "reporting",
    params(Paging),
    responses(
        (status = 200, description = "a page of modules (a bare array)", body = Vec<shapes::StorePurchase>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `program:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn store_purchases(
    State(state): State<AppState>,
    ProgramReader(auth): ProgramReader,
    list: ListRequest,
) -> ApiResult<Response> {
    let source = Content::new(&state, &auth, "module");
    list.respond(&state, &auth, source).await
}

/// One training module.
#[utoipa::path(get, path = "/v1/training/store_purchases/{id}", tag = "reporting",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "the module", body = shapes::StorePurchase),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `program:read`", body = ErrorBody),
        (status = 404, description = "no such module in this account", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn store_purchase(
    State(state): State<AppState>,
    ProgramReader(auth): ProgramReader,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    Content::new(&state, &auth, "module").one(id).await
}

/// Policies, in id order.
#[utoipa::path(get, path = "/v1/training/policies", tag = "reporting",
    params(Paging),
    responses(
        (status = 200, description = "a page of policies (a bare array)", body = Vec<shapes::Policy>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `program:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn policies(
    State(state): State<AppState>,
    ProgramReader(auth): ProgramReader,
    list: ListRequest,
) -> ApiResult<Response> {
    let source = Content::new(&state, &auth, "policy");
    list.respond(&state, &auth, source).await
}

/// One policy.
#[utoipa::path(get, path = "/v1/training/policies/{id}", tag = "reporting",
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "the policy", body = shapes::Policy),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `program:read`", body = ErrorBody),
        (status = 404, description = "no such policy in this account", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn policy(
    State(state): State<AppState>,
    ProgramReader(auth): ProgramReader,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    Content::new(&state, &auth, "policy").one(id).await
}

/// Policies (the path older clients such as kb4.py call; the same as
/// `/v1/training/policies`).
#[utoipa::path(get, path = "/v1/policies", tag = "reporting",
    params(Paging),
    responses(
        (status = 200, description = "a page of policies (a bare array)", body = Vec<shapes::Policy>)),
    security(("bearer" = [])))]
async fn policies_alias(
    state: State<AppState>,
    auth: ProgramReader,
    list: ListRequest,
) -> ApiResult<Response> {
    policies(state, auth, list).await
}

/// One policy (the path older clients call; the same as `/v1/training/policies/{id}`).
#[utoipa::path(get, path = "/v1/policies/{id}", tag = "reporting",
    params(("id" = i64, Path)),
    responses((status = 200, description = "the policy", body = shapes::Policy)),
    security(("bearer" = [])))]
async fn policy_alias(
    state: State<AppState>,
    auth: ProgramReader,
    id: Path<i64>,
) -> ApiResult<Response> {
    policy(state, auth, id).await
}

// ---- campaigns and enrolments -----------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignQuery {
    /// `true`: leave `completion_percentage` out (it costs a pass over the enrolments).
    #[param(pattern = r"^\s*(true|false|1|0)?\s*$")]
    pub exclude_percentages: Option<String>,
}

/// Training campaigns, in id order.
#[utoipa::path(get, path = "/v1/training/campaigns", tag = "reporting",
    params(CampaignQuery, Paging),
    responses(
        (status = 200, description = "a page of campaigns (a bare array)", body = Vec<shapes::TrainingCampaign>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `campaign:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn campaigns(
    State(state): State<AppState>,
    CampaignReader(auth): CampaignReader,
    list: ListRequest,
    Query(query): Query<CampaignQuery>,
) -> ApiResult<Response> {
    let percentages = !flag(&query.exclude_percentages, "exclude_percentages")?;
    let source = Campaigns::new(&state, &auth, percentages);
    list.respond(&state, &auth, source).await
}

/// One training campaign.
#[utoipa::path(get, path = "/v1/training/campaigns/{id}", tag = "reporting",
    params(("id" = i64, Path), CampaignQuery),
    responses(
        (status = 200, description = "the campaign", body = shapes::TrainingCampaign),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `campaign:read`", body = ErrorBody),
        (status = 404, description = "no such campaign in this account", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn campaign(
    State(state): State<AppState>,
    CampaignReader(auth): CampaignReader,
    Path(id): Path<i64>,
    Query(query): Query<CampaignQuery>,
) -> ApiResult<Response> {
    let percentages = !flag(&query.exclude_percentages, "exclude_percentages")?;
    Campaigns::new(&state, &auth, percentages).one(id).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnrollmentsQuery {
    #[param(value_type = Option<i64>, minimum = 1)]
    pub user_id: Option<String>,
    #[param(value_type = Option<i64>, minimum = 1)]
    pub campaign_id: Option<String>,
    /// A module's (or policy's) id.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub store_purchase_id: Option<String>,
    /// `true`: leave out archived people's enrolments.
    #[param(pattern = r"^\s*(true|false|1|0)?\s*$")]
    pub exclude_archived_users: Option<String>,
}

/// What each enrolment shows besides its own fields.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncludesQuery {
    /// `true`: each enrolment shows `campaign_id`.
    #[param(pattern = r"^\s*(true|false|1|0)?\s*$")]
    pub include_campaign_id: Option<String>,
    /// `true`: each enrolment shows `store_purchase_id`.
    #[param(pattern = r"^\s*(true|false|1|0)?\s*$")]
    pub include_store_purchase_id: Option<String>,
    /// `true`: each enrolment's `user` shows `employee_number`.
    #[param(pattern = r"^\s*(true|false|1|0)?\s*$")]
    pub include_employee_number: Option<String>,
}

impl IncludesQuery {
    fn includes(&self) -> ApiResult<Includes> {
        Ok(Includes {
            campaign_id: flag(&self.include_campaign_id, "include_campaign_id")?,
            store_purchase_id: flag(&self.include_store_purchase_id, "include_store_purchase_id")?,
            employee_number: flag(&self.include_employee_number, "include_employee_number")?,
        })
    }
}

/// Enrolments, in id order.
#[utoipa::path(get, path = "/v1/training/enrollments", tag = "reporting",
    params(EnrollmentsQuery, IncludesQuery, Paging),
    responses(
        (status = 200, description = "a page of enrolments (a bare array)", body = Vec<V1Enrollment>),
        (status = 400, description = "a bad parameter", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `enrollments:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn enrollments(
    State(state): State<AppState>,
    EnrollmentsReader(auth): EnrollmentsReader,
    list: ListRequest,
    Query(query): Query<EnrollmentsQuery>,
    Query(includes): Query<IncludesQuery>,
) -> ApiResult<Response> {
    let filter = EnrollmentQuery {
        user: id_param(&query.user_id, "user_id")?.map(UserId),
        campaign: id_param(&query.campaign_id, "campaign_id")?.map(CampaignId),
        content: id_param(&query.store_purchase_id, "store_purchase_id")?.map(ContentId),
        exclude_archived_users: flag(&query.exclude_archived_users, "exclude_archived_users")?,
    };
    let source = Enrollments::new(&state, &auth, filter, includes.includes()?).await?;
    list.respond(&state, &auth, source).await
}

async fn one_enrollment(
    state: &AppState,
    auth: &Auth,
    id: i64,
    query: &IncludesQuery,
) -> ApiResult<Response> {
    let source =
        Enrollments::new(state, auth, EnrollmentQuery::default(), query.includes()?).await?;
    source.one(id).await
}

/// One enrolment.
#[utoipa::path(get, path = "/v1/training/enrollments/{id}", tag = "reporting",
    params(("id" = i64, Path), IncludesQuery),
    responses(
        (status = 200, description = "the enrolment", body = V1Enrollment),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `enrollments:read`", body = ErrorBody),
        (status = 404, description = "no such enrolment in this account", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn enrollment(
    State(state): State<AppState>,
    EnrollmentsReader(auth): EnrollmentsReader,
    Path(id): Path<i64>,
    Query(query): Query<IncludesQuery>,
) -> ApiResult<Response> {
    one_enrollment(&state, &auth, id, &query).await
}

/// One enrolment (the singular path some clients call).
#[utoipa::path(get, path = "/v1/training/enrollment/{id}", tag = "reporting",
    params(("id" = i64, Path), IncludesQuery),
    responses(
        (status = 200, description = "the enrolment", body = V1Enrollment),
        (status = 404, description = "no such enrolment in this account", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `enrollments:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn enrollment_alias(
    State(state): State<AppState>,
    EnrollmentsReader(auth): EnrollmentsReader,
    Path(id): Path<i64>,
    Query(query): Query<IncludesQuery>,
) -> ApiResult<Response> {
    one_enrollment(&state, &auth, id, &query).await
}

// ---- phishing: coachloop runs no simulations ------------------------------------------

const NO_PHISHING: &str =
    "coachloop runs no phishing simulations, so there is no such campaign or test";

async fn no_rows(
    state: &AppState,
    auth: &Auth,
    list: ListRequest,
    identity: &str,
) -> ApiResult<Response> {
    let rows: Vec<serde_json::Value> = Vec::new();
    let identity = identity.to_owned();
    list.respond(state, auth, InMemory { identity, rows }).await
}

/// Phishing campaigns: always empty.
#[utoipa::path(get, path = "/v1/phishing/campaigns", tag = "reporting",
    responses((status = 200, description = "an empty array"),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `campaign:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)), security(("bearer" = [])))]
async fn phishing_campaigns(
    State(state): State<AppState>,
    CampaignReader(auth): CampaignReader,
    list: ListRequest,
) -> ApiResult<Response> {
    no_rows(&state, &auth, list, "phishing-campaigns").await
}

/// A phishing campaign: never found.
#[utoipa::path(get, path = "/v1/phishing/campaigns/{id}", tag = "reporting",
    params(("id" = i64, Path)),
    responses((status = 404, description = "there are none", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `campaign:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn phishing_campaign(
    CampaignReader(_auth): CampaignReader,
    Path(_id): Path<i64>,
) -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", NO_PHISHING)
}

/// A phishing campaign's security tests: always empty.
#[utoipa::path(get, path = "/v1/phishing/campaigns/{id}/security_tests", tag = "reporting",
    params(("id" = i64, Path)),
    responses((status = 200, description = "an empty array"),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `campaign:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)), security(("bearer" = [])))]
async fn phishing_campaign_tests(
    State(state): State<AppState>,
    CampaignReader(auth): CampaignReader,
    Path(_id): Path<i64>,
    list: ListRequest,
) -> ApiResult<Response> {
    no_rows(&state, &auth, list, "phishing-campaign-tests").await
}

/// Phishing security tests: always empty.
#[utoipa::path(get, path = "/v1/phishing/security_tests", tag = "reporting",
    responses((status = 200, description = "an empty array"),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `campaign:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)), security(("bearer" = [])))]
async fn security_tests(
    State(state): State<AppState>,
    CampaignReader(auth): CampaignReader,
    list: ListRequest,
) -> ApiResult<Response> {
    no_rows(&state, &auth, list, "phishing-security-tests").await
}

/// A phishing security test: never found.
#[utoipa::path(get, path = "/v1/phishing/security_tests/{id}", tag = "reporting",
    params(("id" = i64, Path)),
    responses((status = 404, description = "there are none", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `campaign:read`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn security_test(CampaignReader(_auth): CampaignReader, Path(_id): Path<i64>) -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", NO_PHISHING)
}
