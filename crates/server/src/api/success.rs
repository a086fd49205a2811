//! `/api/metrics/success`: the success metrics of the credential-risk integration, each a
//! daily series with its baseline, 3-month target and change since going live (computed
//! in `coachloop_core::success`; the README's *Success metrics* defines them).

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Query};
use crate::paging::DataOf;
use axum::extract::State;
use coachloop_core::FieldError;
use coachloop_core::success::{self, Range, Report, Source, Window};
use coachloop_core::time::{date_of_ms, format_date, format_ms};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(success_metrics))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuccessQuery {
    /// The first day of the series (`YYYY-MM-DD`, a UTC day, 1970-01-01 or later); default:
    /// 89 days before `to`. Not after `to`, and at most 366 days up to it, both counted.
    #[param(format = Date)]
    pub from: Option<String>,
    /// The last day of the series (`YYYY-MM-DD`); default: today (UTC, by the server's
    /// clock). Days after today are left out of the series.
    #[param(format = Date)]
    pub to: Option<String>,
}

/// The success metrics of the integration guide (reference/dashlane-events.md).
#[derive(Debug, Serialize, ToSchema)]
pub struct SuccessMetrics {
    /// The first day asked for (`from`, or its default).
    #[schema(format = Date)]
    pub from: String,
    /// The last day asked for (`to`, or its default).
    #[schema(format = Date)]
    pub to: String,
    /// When the integration went live: the instant the account's first event of a
    /// `dashlane_` type occurred. Null while it has none; every series is then empty.
    #[schema(value_type = Option<String>, format = DateTime, required = true)]
    pub live_since: Option<String>,
    /// The days the baseline is measured over: the first 7 from the go-live day (those
    /// so far while they last). Null before going live.
    #[schema(required = true)]
    pub baseline_period: Option<SuccessPeriod>,
    /// The days `current` is measured over: the last 7 days of the series (all of it when
    /// shorter). Null when the series is empty.
    #[schema(required = true)]
    pub current_period: Option<SuccessPeriod>,
    /// When the 3-month targets are due: 3 calendar months after the go-live day.
    #[schema(value_type = Option<String>, format = Date, required = true)]
    pub target_date: Option<String>,
    /// `dashlane_user_typed_compromised_password` events a day (people's and unmatched).
    /// Target: 20 % fewer.
    pub compromised_passwords: SuccessMetric,
    /// Days from a person's first compromised password after their last change to their
    /// next `dashlane_user_changed_at_risk_password`: each day, the mean over the
    /// exposures closed that day (null when none closed). Target: 20 % shorter.
    pub time_to_remediate: SuccessMetric,
    /// `dashlane_user_dismissed_ai_phishing_alert` and
    /// `dashlane_user_dismissed_vault_phishing_alert` events a day. Target: 20 % fewer.
    pub dismissed_phishing_alerts: SuccessMetric,
    /// 0–100 at the end of each day: a figure a sender pushed
    /// (`dashlane_password_health_score`, the description a number 0–100) in the day's
    /// last 7 days, or else the proxy `100 × (1 − at risk / people)` (see the README).
    /// Target: 20 % higher, at most 100.
    pub password_health: SuccessMetric,
}

/// Consecutive days, both included.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuccessPeriod {
    #[schema(format = Date)]
    pub from: String,
    #[schema(format = Date)]
    pub to: String,
    /// Every day of it is over (the baseline: all 7 of them).
    pub complete: bool,
}

/// One metric: its daily series and how it compares with the baseline.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuccessMetric {
    /// Its value over the baseline period: the mean a day (for time to remediate, the
    /// mean over the exposures that began in the baseline period and are closed, whenever
    /// they closed). Null when there is nothing to measure.
    #[schema(required = true)]
    pub baseline: Option<f64>,
    /// The baseline changed by `target_change_percent` (password health at most 100).
    #[schema(required = true)]
    pub target: Option<f64>,
    /// −20 (fewer or shorter is better) or +20 (password health: higher is better).
    pub target_change_percent: f64,
    /// Its value over the current period, computed as the baseline is (time to
    /// remediate: the exposures closed in the period).
    #[schema(required = true)]
    pub current: Option<f64>,
    /// `100 × (current − baseline) / baseline`; null when either is null or the baseline
    /// is 0.
    #[schema(required = true)]
    pub change_percent: Option<f64>,
    /// Whether `current` has reached `target`; null when either is null.
    #[schema(required = true)]
    pub target_met: Option<bool>,
    /// One entry a day from the later of `from` and the go-live day to the earlier of
    /// `to` and today, oldest first.
    pub series: Vec<SuccessDay>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuccessDay {
    #[schema(format = Date)]
    pub date: String,
    /// Null when there is nothing to measure that day.
    #[schema(required = true)]
    pub value: Option<f64>,
    /// What the value is computed from: the events counted, the exposures averaged, the
    /// people assessed (`proxy`) or the figures pushed that day (`pushed`; 0 when one
    /// pushed on an earlier day still stands).
    pub samples: i64,
    pub source: SuccessSource,
}

/// Where a day's value comes from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuccessSource {
    /// Counted or measured from events.
    Events,
    /// Password health computed from events.
    Proxy,
    /// Password health pushed by a sender.
    Pushed,
}

impl From<Source> for SuccessSource {
    fn from(source: Source) -> Self {
        match source {
            Source::Events => Self::Events,
            Source::Proxy => Self::Proxy,
            Source::Pushed => Self::Pushed,
        }
    }
}

impl From<success::Metric> for SuccessMetric {
    fn from(m: success::Metric) -> Self {
        Self {
            baseline: m.baseline,
            target: m.target,
            target_change_percent: m.target_change_percent,
            current: m.current,
            change_percent: m.change_percent,
            target_met: m.target_met,
            series: m
                .series
                .into_iter()
                .map(|p| SuccessDay {
                    date: format_date(p.date),
                    value: p.value,
                    samples: p.samples,
                    source: p.source.into(),
                })
                .collect(),
        }
    }
}

fn period(window: Option<Window>, complete: bool) -> Option<SuccessPeriod> {
    window.map(|w| SuccessPeriod {
        from: format_date(w.first),
        to: format_date(w.last),
        complete,
    })
}

impl From<Report> for SuccessMetrics {
    fn from(report: Report) -> Self {
        let plan = report.plan;
        Self {
            from: format_date(plan.range.from),
            to: format_date(plan.range.to),
            live_since: plan.live_since.map(format_ms),
            baseline_period: period(plan.baseline, plan.baseline_complete()),
            current_period: period(plan.current, plan.current_complete()),
            target_date: plan.target_date().map(format_date),
            compromised_passwords: report.compromised_passwords.into(),
            time_to_remediate: report.time_to_remediate.into(),
            dismissed_phishing_alerts: report.dismissed_phishing_alerts.into(),
            password_health: report.password_health.into(),
        }
    }
}

/// A bad query parameter: 400, naming it.
fn bad_parameter(error: FieldError) -> ApiError {
    ApiError {
        details: vec![error.clone()],
        ..ApiError::bad_request(format!("`{}` {}", error.field, error.message))
    }
}

/// The success metrics of the credential-risk integration.
///
/// Compromised passwords, time to remediate, dismissed phishing alerts and password
/// health, each a daily series (UTC days) with its baseline (the first 7 days after going
/// live), 3-month target, current value (the last 7 days) and change. Definitions: the
/// README's *Success metrics*.
#[utoipa::path(get, path = "/api/metrics/success", tag = "metrics", params(SuccessQuery),
    responses(
        (status = 200, description = "the metrics; empty series and `live_since` null before the integration's first event", body = DataOf<SuccessMetrics>),
        (status = 400, description = "a bad `from` or `to` (not a date, `from` after `to`, or over 366 days); `details` names it", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn success_metrics(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Query(query): Query<SuccessQuery>,
) -> ApiResult<Json<DataOf<SuccessMetrics>>> {
    let today = date_of_ms(state.store.clock().now_ms());
    let range =
        Range::parse(query.from.as_deref(), query.to.as_deref(), today).map_err(bad_parameter)?;
    let report = state.store.success_metrics(auth.account(), range).await?;
    Ok(Json(DataOf {
        data: report.into(),
    }))
}
