//! `/api/audit`: the audit log — every change an administrator or a token made, newest
//! first, with the resource before and after (see [`crate::audit`]).

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorBody, Json, Query};
use crate::paging::{ListOf, Meta, PageParams};
use axum::extract::State;
use coachloop_core::time::{date_start_ms, format_ms, parse_date};
use coachloop_store::audit::{AuditEntry, AuditFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DAY_MS: i64 = 86_400_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only changes by this administrator (email) or token (name), exactly.
    #[param(pattern = r"^[^\x00-\x1f\x7f]*$")]
    pub actor: Option<String>,
    /// Only changes to paths that start with this, e.g. `/api/groups`.
    #[param(pattern = r"^[^\x00-\x1f\x7f]*$")]
    pub path: Option<String>,
    /// From this UTC day on (`YYYY-MM-DD`).
    #[param(format = Date)]
    pub from: Option<String>,
    /// Up to and including this UTC day (`YYYY-MM-DD`).
    #[param(format = Date)]
    pub to: Option<String>,
}

impl AuditQuery {
    /// The filter it asks for; a bad day is a 400 naming the parameter.
    pub fn filter(&self) -> Result<AuditFilter, ApiError> {
        let day = |name: &str, text: &Option<String>| -> Result<Option<i64>, ApiError> {
            match text.as_deref() {
                None => Ok(None),
                Some(text) => parse_date(text)
                    .map(date_start_ms)
                    .map(Some)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("`{name}` must be a day written YYYY-MM-DD"))
                    }),
            }
        };
        let text = |name: &str, text: &Option<String>| -> Result<Option<String>, ApiError> {
            // As the pattern says, checked before trimming.
            if text
                .as_deref()
                .is_some_and(|t| t.chars().any(|c| c <= '\x1f' || c == '\x7f'))
            {
                return Err(ApiError::bad_request(format!(
                    "`{name}` must not hold control characters"
                )));
            }
            Ok(text
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned))
        };
        Ok(AuditFilter {
            actor: text("actor", &self.actor)?,
            path: text("path", &self.path)?,
            since: day("from", &self.from)?,
            until: day("to", &self.to)?.map(|start| start + DAY_MS),
        })
    }
}

/// Who made a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActor {
    /// `admin` (in the console) or `token`.
    #[schema(pattern = "^(admin|token)$")]
    pub kind: String,
    pub id: i64,
    /// The administrator's email or the token's name, as it was then.
    pub name: String,
}

/// One change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryBody {
    pub id: i64,
    #[schema(format = DateTime)]
    pub at: String,
    pub actor: AuditActor,
    pub method: String,
    /// The resource changed (a console form names the resource it changed).
    pub path: String,
    pub status: i64,
    /// The resource before the change, as its GET showed it (null: it did not exist, or
    /// has no GET). Secrets are replaced by `[secret]`.
    pub before: Option<Value>,
    /// The answer to the change (null: none). Secrets are replaced by `[secret]`.
    pub after: Option<Value>,
}

impl From<AuditEntry> for AuditEntryBody {
    fn from(e: AuditEntry) -> Self {
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        Self {
            id: e.id,
            at: format_ms(e.at),
            actor: AuditActor {
                kind: e.actor_kind,
                id: e.actor_id,
                name: e.actor,
            },
            method: e.method,
            path: e.path,
            status: e.status,
            before: json(e.before),
            after: json(e.after),
        }
    }
}

/// The audit log: every change made by an administrator in the console or by a token
/// (who, what, when, before and after), newest first.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditQuery, PageParams),
    responses(
        (status = 200, description = "a page of changes", body = ListOf<AuditEntryBody>),
        (status = 400, description = "a bad day or page", body = ErrorBody),
        (status = 401, description = "bad token", body = ErrorBody),
        (status = 403, description = "the token lacks `admin`", body = ErrorBody),
        (status = 429, description = "over the token's rate limit (see `Retry-After`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_audit(
    State(state): State<AppState>,
    Admin(auth): Admin,
    Query(query): Query<AuditQuery>,
    Query(paging): Query<PageParams>,
) -> ApiResult<Json<ListOf<AuditEntryBody>>> {
    let page = paging.page()?;
    let filter = query.filter()?;
    let (rows, count) = state.store.audit_log(auth.account(), &filter, page).await?;
    Ok(Json(ListOf {
        data: rows.into_iter().map(AuditEntryBody::from).collect(),
        meta: Meta::new(page, count),
    }))
}
