//! The audit log in the console: every change, newest first, filtered by who, what and
//! when, each with its before and after.

use super::layout::{self, Section, pager, when};
use super::people::page_of;
use super::session::Session;
use crate::AppState;
use crate::api::audit::AuditQuery;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    page: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<LogQuery>,
) -> Response {
    let given = |text: &str| Some(text.trim().to_owned()).filter(|t| !t.is_empty());
    let asked = AuditQuery {
        actor: given(&query.actor),
        path: given(&query.path),
        from: given(&query.from),
        to: given(&query.to),
    };
    let filter = match asked.filter() {
        Ok(filter) => filter,
        Err(e) => {
            return layout::problem(
                Some(&session),
                StatusCode::BAD_REQUEST,
                "The filter could not be read",
                &e.message,
            );
        }
    };
    let page = page_of(query.page.as_deref(), 50);
    let (entries, total) = match state.store.audit_log(session.account, &filter, page).await {
        Ok(found) => found,
        Err(e) => return layout::store_error(e),
    };
    let body = html! {
        form.inline method="get" action="/console/audit" role="search" {
            label { "Who" input name="actor" value=(query.actor) placeholder="email or token name"; }
            label { "Path starts with" input name="path" value=(query.path) placeholder="/api/groups"; }
            label { "From" input name="from" type="date" value=(query.from); }
            label { "To" input name="to" type="date" value=(query.to); }
            button type="submit" { "Filter" }
        }
        @if entries.is_empty() {
            p { "No change matches." }
        } @else {
            table {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Before and after" } } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (when(e.at)) }
                            td { (e.actor) br; span.muted { (e.actor_kind) } }
                            td { code { (e.method) " " (e.path) } br; span.muted { (e.status) } }
                            td {
                                details {
                                    summary { "Show" }
                                    p { strong { "Before" } }
                                    pre { (e.before.as_deref().unwrap_or("—")) }
                                    p { strong { "After" } }
                                    pre { (e.after.as_deref().unwrap_or("—")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        (pager("/console/audit", &[("actor", &query.actor), ("path", &query.path),
            ("from", &query.from), ("to", &query.to)], page, total))
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Audit, "Audit log", body),
    )
}
