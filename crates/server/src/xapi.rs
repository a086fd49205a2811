//! Completions from another LMS: `POST /xapi/statements` takes one xAPI statement or an
//! array. A statement counts when its actor's `mbox` is a person's email, its verb is
//! `completed`, `passed` or `failed` (ADL verbs, or any IRI ending in those words), and
//! its activity id ends in a content slug (`…/activities/password-management`); it then
//! updates that person's enrolment in that content as a learner's own step would. The
//! batch is checked whole first, then applied in one transaction: one bad statement
//! rejects all, with its index named, and nothing is applied.

use crate::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody, Json};
use axum::extract::State;
use coachloop_core::FieldError;
use coachloop_core::enrolment::External;
use coachloop_core::scope::Scope;
use coachloop_core::time::{format_ms, parse_date_or_timestamp};
use coachloop_store::StoreError;
use coachloop_store::learning::{BatchError, Step};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(statements))
}

/// What one statement did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Applied {
    /// The statement's `id`, when it had one.
    pub statement_id: Option<String>,
    pub enrollment_id: i64,
    /// The enrolment's status afterwards.
    pub status: String,
}

/// A statement, understood.
struct Parsed {
    id: Option<String>,
    email: String,
    slug: String,
    at: Option<i64>,
    outcome: External,
}

fn parse(statement: &Value, path: &str) -> Result<Parsed, FieldError> {
    let bad = |field: &str, message: &str| FieldError::new(format!("{path}.{field}"), message);
    let email = statement["actor"]["mbox"]
        .as_str()
        .and_then(|m| m.strip_prefix("mailto:"))
        .filter(|m| m.contains('@'))
        .ok_or_else(|| bad("actor.mbox", "must be `mailto:` and a person's email"))?;
    let verb = statement["verb"]["id"]
        .as_str()
        .ok_or_else(|| bad("verb.id", "is required"))?;
    let score = match &statement["result"]["score"] {
        Value::Object(score) => match (score.get("scaled"), score.get("raw"), score.get("max")) {
            (Some(scaled), _, _) => scaled
                .as_f64()
                .filter(|s| (0.0..=1.0).contains(s))
                .map(|s| (s * 100.0).round() as u8)
                .ok_or_else(|| bad("result.score.scaled", "must be a number from 0 to 1"))
                .map(Some)?,
            (None, Some(raw), Some(max)) => match (raw.as_f64(), max.as_f64()) {
                (Some(raw), Some(max)) if max > 0.0 && (0.0..=max).contains(&raw) => {
                    Some((raw / max * 100.0).round() as u8)
                }
                _ => return Err(bad("result.score", "raw must be from 0 to max")),
            },
            _ => None,
        },
        _ => None,
    };
    let outcome = match verb.rsplit(['/', '#', ':']).next().unwrap_or_default() {
        "completed" => External::Completed,
        "passed" => External::Passed { score },
        "failed" => External::Failed { score },
        _ => {
            return Err(bad(
                "verb.id",
                "must be completed, passed or failed (e.g. http://adlnet.gov/expapi/verbs/passed)",
            ));
        }
    };
    let slug = statement["object"]["id"]
        .as_str()
        .map(|id| id.trim_end_matches('/'))
        .and_then(|id| id.rsplit(['/', ':']).next())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            bad(
                "object.id",
                "must be an activity IRI ending in a content slug",
            )
        })?;
    let at = match statement.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(
            parse_date_or_timestamp(t)
                .ok_or_else(|| bad("timestamp", "must be an ISO 8601 timestamp"))?
                .timestamp_millis(),
        ),
        Some(_) => return Err(bad("timestamp", "must be an ISO 8601 timestamp")),
    };
    Ok(Parsed {
        id: statement["id"].as_str().map(str::to_owned),
        email: email.to_owned(),
        slug: slug.to_owned(),
        at,
        outcome,
    })
}

/// Record completions from another LMS (xAPI statements). Needs a token with
/// `events:write` or `admin`.
#[utoipa::path(post, path = "/xapi/statements", tag = "xapi",
    request_body(content = Value, description = "one xAPI statement, or an array of them"),
    responses(
        (status = 200, description = "every statement applied", body = Vec<Applied>),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `events:write` or `admin`", body = ErrorBody),
        (status = 422, description = "a statement names no person, content or enrolment of this account, or is malformed; nothing was applied", body = ErrorBody)),
    security(("bearer" = [])))]
async fn statements(
    State(state): State<AppState>,
    auth: Auth,
    Json(body): Json<Value>,
) -> ApiResult<Json<Vec<Applied>>> {
    auth.require_any(&[Scope::EventsWrite, Scope::Admin])?;
    let list: Vec<(String, &Value)> = match &body {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("[{i}]"), s))
            .collect(),
        Value::Object(_) => vec![("statement".to_owned(), &body)],
        _ => {
            return Err(ApiError::invalid(vec![FieldError::new(
                "",
                "send one statement (an object) or an array of them",
            )]));
        }
    };
    let account = auth.account();
    let mut errors = Vec::new();
    let mut targets = Vec::new();
    for (path, statement) in &list {
        match parse(statement, path) {
            Err(e) => errors.push(e),
            Ok(parsed) => match state
                .store
                .enrollment_for(account, &parsed.email, &parsed.slug)
                .await
            {
                Ok((user, enrollment)) => targets.push((parsed, user, enrollment)),
                Err(StoreError::NotFound(what)) => errors.push(FieldError::new(
                    path.clone(),
                    format!(
                        "no {what} for {} and content `{}` in this account",
                        parsed.email, parsed.slug
                    ),
                )),
                Err(e) => return Err(e.into()),
            },
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    // Validated whole above; applied whole here, in one transaction: a statement
    // refused part-way (a date before the enrolment, say) leaves nothing applied.
    let now = state.store.clock().now_ms();
    let steps: Vec<_> = targets
        .iter()
        .map(|(parsed, user, enrollment)| {
            let step = Step::External {
                at: parsed.at.unwrap_or(now),
                outcome: parsed.outcome,
            };
            (*user, *enrollment, step)
        })
        .collect();
    let stepped = state.store.learn_all(account, &steps).await.map_err(
        |BatchError { index, error }| match (index, error) {
            (Some(i), StoreError::Conflict(detail)) => {
                let (path, _) = &list[i];
                let (parsed, _, _) = &targets[i];
                ApiError::invalid(vec![FieldError::new(
                    path.clone(),
                    format!(
                        "{} (at {})",
                        detail.message,
                        format_ms(parsed.at.unwrap_or(now))
                    ),
                )])
            }
            (_, other) => other.into(),
        },
    )?;
    let applied = targets
        .into_iter()
        .zip(stepped)
        .map(|((parsed, _, enrollment), stepped)| Applied {
            statement_id: parsed.id,
            enrollment_id: enrollment.0,
            status: stepped.enrollment.status,
        })
        .collect();
    Ok(Json(applied))
}
