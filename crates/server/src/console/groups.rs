//! Groups: the list, a group's page with its criteria versions and members, and its
//! history of joins and leaves with why.

use super::layout::{self, PageQuery, Section, pager, when};
use super::people::{name_of, page_of};
use super::session::Session;
use super::why;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use coachloop_core::ids::GroupId;
use coachloop_store::StoreError;
use coachloop_store::groups::GroupFilter;
use maud::{Markup, html};

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<PageQuery>,
) -> Response {
    let page = page_of(query.page.as_deref(), 50);
    let filter = GroupFilter {
        status: Some("active".to_owned()),
        group_type: None,
    };
    let (groups, total) = match state
        .store
        .list_groups(session.account, &filter, page)
        .await
    {
        Ok(found) => found,
        Err(e) => return layout::store_error(e),
    };
    let body = html! {
        p { a href="/console/groups/new" { "New smart group" } }
        table {
            thead { tr { th { "Name" } th { "Kind" } th.num { "Members" } th { "Changed" } } }
            tbody {
                @for g in &groups {
                    tr {
                        td { a href=(format!("/console/groups/{}", g.id.0)) { (g.name) } }
                        td { (g.group_type) }
                        td.num { (g.member_count) }
                        td { (when(g.updated_at)) }
                    }
                }
            }
        }
        (pager("/console/groups", &[], page, total))
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Groups, "Groups", body),
    )
}

pub async fn group(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> Response {
    match group_page(&state, &session, GroupId(id), &query).await {
        Ok(markup) => layout::respond(StatusCode::OK, markup),
        Err(e) => layout::store_error(e),
    }
}

async fn group_page(
    state: &AppState,
    session: &Session,
    id: GroupId,
    query: &PageQuery,
) -> Result<Markup, StoreError> {
    let group = state.store.group(session.account, id).await?;
    let page = page_of(query.page.as_deref(), 50);
    let (members, total) = state.store.group_members(session.account, id, page).await?;
    let versions = if group.criteria.is_some() {
        state.store.group_versions(session.account, id).await?
    } else {
        Vec::new()
    };
    let body = html! {
        @if let Some(description) = &group.description { p { (description) } }
        dl.facts {
            dt { "Kind" } dd { (group.group_type) }
            dt { "Status" } dd { (group.status) }
            dt { "Criteria version" } dd { (group.version) }
        }
        p { a href=(format!("/console/groups/{}/history", id.0)) { "History: who joined and left, and why" } }
        @if !versions.is_empty() {
            h2 { "Criteria versions" }
            table {
                thead { tr { th.num { "Version" } th { "From" } th { "Criteria" } } }
                tbody {
                    @for v in versions.iter().rev() {
                        tr {
                            td.num { (v.version) }
                            td { (when(v.created_at)) }
                            td { pre { (pretty(&v.criteria)) } }
                        }
                    }
                }
            }
        }
        h2 { "Members" }
        @if members.is_empty() {
            p { "No members." }
        } @else {
            table {
                thead { tr { th { "Person" } th { "Email" } th { "Since" } } }
                tbody {
                    @for m in &members {
                        tr {
                            td { a href=(format!("/console/people/{}", m.user_id.0)) {
                                (name_of(m.first_name.as_deref(), m.last_name.as_deref(), &m.email)) } }
                            td { (m.email) }
                            td { (when(m.joined_at)) }
                        }
                    }
                }
            }
            (pager(&format!("/console/groups/{}", id.0), &[], page, total))
        }
    };
    Ok(layout::page(session, Section::Groups, &group.name, body))
}

/// Stored criteria JSON, indented for reading.
fn pretty(criteria: &str) -> String {
    serde_json::from_str::<serde_json::Value>(criteria)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| criteria.to_owned())
}

/// A group's joins and leaves, newest first, each with why in words.
pub async fn history(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> Response {
    let id = GroupId(id);
    let page = page_of(query.page.as_deref(), 50);
    let found = tokio::try_join!(
        state.store.group(session.account, id),
        state.store.group_changes(session.account, id, page)
    );
    let (group, (changes, total)) = match found {
        Ok(found) => found,
        Err(e) => return layout::store_error(e),
    };
    let body = html! {
        p { a href=(format!("/console/groups/{}", id.0)) { "Back to the group" } }
        @if changes.is_empty() {
            p { "Nobody has joined or left yet." }
        } @else {
            table {
                thead { tr { th { "When" } th { "Person" } th { "Change" } th.num { "Version" } th { "Why" } } }
                tbody {
                    @for c in &changes {
                        tr {
                            td { (when(c.at)) }
                            td { a href=(format!("/console/people/{}", c.user_id)) {
                                (name_of(c.first_name.as_deref(), c.last_name.as_deref(), &c.email)) } }
                            td { (c.change) }
                            td.num { (c.version) }
                            td { ul.why { @for line in why::words(&c.reason) { li { (line) } } } }
                        }
                    }
                }
            }
            (pager(&format!("/console/groups/{}/history", id.0), &[], page, total))
        }
    };
    let title = format!("{}: history", group.name);
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::Groups, &title, body),
    )
}
