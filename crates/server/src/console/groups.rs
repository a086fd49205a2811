//! Groups: the list, and a group's page with its members.

use super::layout::{self, PageQuery, Section, pager, when};
use super::people::{name_of, page_of};
use super::session::Session;
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
    let body = html! {
        @if let Some(description) = &group.description { p { (description) } }
        dl.facts {
            dt { "Kind" } dd { (group.group_type) }
            dt { "Status" } dd { (group.status) }
            dt { "Criteria version" } dd { (group.version) }
            @if let Some(criteria) = &group.criteria {
                dt { "Criteria" } dd { code { (criteria) } }
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
