//! Risk scores: `/api/account/risk` and `/api/users/{id}/risk` (current score and the
//! daily history; formula in the README).

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiResult, ErrorBody, Json, Path};
use crate::paging::DataOf;
use axum::extract::State;
use coachloop_core::ids::UserId;
use coachloop_core::scope::Scope;
use coachloop_store::risk::DailyScore;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Days of history returned.
const HISTORY_DAYS: i64 = 366;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(account_risk))
        .routes(routes!(user_risk))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RiskDay {
    pub risk_score: f64,
    /// `YYYY-MM-DD`.
    pub date: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Risk {
    /// 0–100.
    pub current_risk_score: f64,
    /// One score a day, newest first (recorded at start-up and hourly; the last record
    /// of a day stands).
    pub risk_score_history: Vec<RiskDay>,
}

fn days(rows: Vec<DailyScore>) -> Vec<RiskDay> {
    rows.into_iter()
        .map(|d| RiskDay {
            risk_score: d.score,
            date: d.day,
        })
        .collect()
}

/// The account's risk score: the mean of its active people's scores.
#[utoipa::path(get, path = "/api/account/risk", tag = "risk",
    responses(
        (status = 200, description = "current score and daily history", body = DataOf<Risk>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `account:read`", body = ErrorBody)),
    security(("bearer" = [])))]
async fn account_risk(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<DataOf<Risk>>> {
    auth.require(Scope::AccountRead)?;
    let scores = state.store.risk_scores(auth.account()).await?;
    let history = state
        .store
        .risk_history(auth.account(), None, HISTORY_DAYS)
        .await?;
    Ok(Json(DataOf {
        data: Risk {
            current_risk_score: scores.account,
            risk_score_history: days(history),
        },
    }))
}

/// A person's risk score.
#[utoipa::path(get, path = "/api/users/{id}/risk", tag = "risk",
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 200, description = "current score and daily history", body = DataOf<Risk>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `user:read`", body = ErrorBody),
        (status = 404, description = "no such person in this account", body = ErrorBody)),
    security(("bearer" = [])))]
async fn user_risk(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<DataOf<Risk>>> {
    auth.require(Scope::UserRead)?;
    let current = state
        .store
        .user_risk_score(auth.account(), UserId(id))
        .await?;
    let history = state
        .store
        .risk_history(auth.account(), Some(UserId(id)), HISTORY_DAYS)
        .await?;
    Ok(Json(DataOf {
        data: Risk {
            current_risk_score: current,
            risk_score_history: days(history),
        },
    }))
}
