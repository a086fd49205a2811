//! People: a searchable, filtered list, and a person's page — their facts, risk score,
//! groups with the why of each join and leave, enrolments, compliance standing and the
//! timeline of their events.

use super::layout::{self, Section, pager, when};
use super::session::Session;
use super::why;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use coachloop_core::ids::UserId;
use coachloop_core::user::UserStatus;
use coachloop_store::campaigns::EnrollmentFilter;
use coachloop_store::compliance::PeopleFilter;
use coachloop_store::users::{User, UserFilter};
use coachloop_store::{Page, StoreError};
use maud::{Markup, html};
use serde::Deserialize;

const PER_PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    department: String,
    page: Option<String>,
}

/// A page number from a query (anything unreadable is the first page).
pub fn page_of(text: Option<&str>, per_page: u32) -> Page {
    let page = text
        .and_then(|t| t.trim().parse::<u32>().ok())
        .unwrap_or(1)
        .clamp(1, 1_000_000);
    Page::new(page, per_page).counting_up_to(COUNT_CAP)
}

/// How far a list's total is counted: beyond it a page says "more than 10,000", which
/// is all a screen needs, and a count of a million rows would cost more than the page.
const COUNT_CAP: u32 = 10_000;

fn nonempty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

pub fn name_of(first: Option<&str>, last: Option<&str>, email: &str) -> String {
    match (first, last) {
        (Some(f), Some(l)) => format!("{f} {l}"),
        (Some(n), None) | (None, Some(n)) => n.to_owned(),
        (None, None) => email.to_owned(),
    }
}

pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Response {
    let page = page_of(query.page.as_deref(), PER_PAGE);
    let filter = UserFilter {
        status: UserStatus::parse(&query.status),
        q: nonempty(&query.q),
        department: nonempty(&query.department),
        ..UserFilter::default()
    };
    let (people, total) = match state.store.list_users(session.account, &filter, page).await {
        Ok(found) => found,
        Err(e) => return layout::store_error(e),
    };
    let status = filter.status.map(UserStatus::as_str).unwrap_or_default();
    let body = html! {
        form.inline method="get" action="/console/people" role="search" {
            label { "Search" input name="q" type="search" value=(query.q)
                placeholder="name or email"; }
            label { "Department" input name="department" value=(query.department); }
            label { "Status"
                select name="status" {
                    option value="" selected[status.is_empty()] { "Any" }
                    option value="active" selected[status == "active"] { "Active" }
                    option value="archived" selected[status == "archived"] { "Archived" }
                }
            }
            button type="submit" { "Search" }
        }
        @if people.is_empty() {
            p { "Nobody matches." }
        } @else {
            table {
                caption.muted { (layout::total_text(page, total)) " people" }
                thead { tr { th { "Name" } th { "Email" } th { "Department" } th { "Job title" } th { "Status" } } }
                tbody {
                    @for person in &people {
                        tr {
                            td { a href=(format!("/console/people/{}", person.id.0)) {
                                (name_of(person.first_name.as_deref(), person.last_name.as_deref(), &person.email)) } }
                            td { (person.email) }
                            td { (person.department.as_deref().unwrap_or("")) }
                            td { (person.job_title.as_deref().unwrap_or("")) }
                            td { (person.status) }
                        }
                    }
                }
            }
        }
        (pager("/console/people", &[("q", &query.q), ("department", &query.department), ("status", status)], page, total))
    };
    layout::respond(
        StatusCode::OK,
        layout::page(&session, Section::People, "People", body),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct PersonQuery {
    page: Option<String>,
}

pub async fn person(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<i64>,
    Query(query): Query<PersonQuery>,
) -> Response {
    match person_page(&state, &session, UserId(id), &query).await {
        Ok(markup) => layout::respond(StatusCode::OK, markup),
        Err(e) => layout::store_error(e),
    }
}

async fn person_page(
    state: &AppState,
    session: &Session,
    id: UserId,
    query: &PersonQuery,
) -> Result<Markup, StoreError> {
    let account = session.account;
    let store = &state.store;
    let person = store.user(account, id).await?;
    let page = page_of(query.page.as_deref(), 25);
    let (events, event_total) = store.timeline(account, id, page).await?;
    let changes = store.person_group_history(account, id, 20).await?;
    let group_ids = store
        .group_ids_of(&[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let groups = store.group_names(account, &group_ids).await?;
    let (enrollments, enrollment_total) = store
        .list_enrollments(
            account,
            &EnrollmentFilter {
                user_id: Some(id),
                ..EnrollmentFilter::default()
            },
            Page::new(1, 20),
        )
        .await?;
    let (standings, _) = store
        .compliance_people(
            account,
            &PeopleFilter {
                user: Some(id),
                ..PeopleFilter::default()
            },
            Page::new(1, 50),
        )
        .await?;
    let risk = store.user_risk_score(account, id).await?;
    let title = name_of(
        person.first_name.as_deref(),
        person.last_name.as_deref(),
        &person.email,
    );
    let body = html! {
        (facts(&person, risk))
        h2 { "Groups" }
        @if groups.is_empty() {
            p { "In no group." }
        } @else {
            ul {
                @for (id, name, kind) in &groups {
                    li { a href=(format!("/console/groups/{}", id.0)) { (name) }
                         " " span.muted { "(" (kind) ")" } }
                }
            }
        }
        h2 { "Joins and leaves, and why" }
        @if changes.is_empty() {
            p { "No joins or leaves yet." }
        } @else {
            table {
                thead { tr { th { "When" } th { "Group" } th { "Change" } th { "Why" } } }
                tbody {
                    @for c in &changes {
                        tr {
                            td { (when(c.at)) }
                            td { a href=(format!("/console/groups/{}", c.group_id)) { (c.group_name) } }
                            td { (c.change) " (criteria version " (c.version) ")" }
                            td { ul.why { @for line in why::words(&c.reason) { li { (line) } } } }
                        }
                    }
                }
            }
        }
        h2 { "Enrolments" }
        @if enrollments.is_empty() {
            p { "Not enrolled in any campaign." }
        } @else {
            table {
                caption.muted { (enrollment_total) " in all; the first " (enrollments.len()) }
                thead { tr { th { "Campaign" } th { "Content" } th { "Status" } th { "Enrolled" } th { "Due" } th { "Completed" } } }
                tbody {
                    @for e in &enrollments {
                        tr {
                            td { (e.campaign_name) }
                            td { (e.content_title) }
                            td { (e.status) }
                            td { (when(e.enrolled_at)) }
                            td { (e.due_at.map(when).unwrap_or_default()) }
                            td { (e.completed_at.map(when).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        h2 { "Compliance" }
        @if standings.is_empty() {
            p { "No requirement applies (no framework is enabled, or the person is out of scope)." }
        } @else {
            table {
                thead { tr { th { "Requirement" } th { "Status" } th { "Why" } th { "Deadline" } } }
                tbody {
                    @for s in &standings {
                        tr {
                            td { (s.kind) }
                            td { span class=(badge(&s.status)) { (s.status.replace('_', " ")) } }
                            td { (s.reason) }
                            td { (s.deadline.map(when).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        h2 id="timeline" { "Timeline" }
        @if events.is_empty() {
            p { "No events." }
        } @else {
            table {
                thead { tr { th { "When" } th { "Event" } th { "Description" } th.num { "Risk" } } }
                tbody {
                    @for e in &events {
                        tr {
                            td { (when(e.occurred_at)) }
                            td { (e.event_type_name) }
                            td { (e.description.as_deref().unwrap_or("")) }
                            td.num { (e.risk_level.map(|r| r.to_string()).unwrap_or_default()) }
                        }
                    }
                }
            }
            (pager(&format!("/console/people/{}", id.0), &[], page, event_total))
        }
    };
    Ok(layout::page(session, Section::People, &title, body))
}

fn badge(status: &str) -> &'static str {
    match status {
        "compliant" | "excepted" => "badge good",
        "due_soon" => "badge warn",
        _ => "badge bad",
    }
}

fn facts(person: &User, risk: f64) -> Markup {
    let row = |label: &'static str, value: Option<&str>| {
        html! { @if let Some(v) = value.filter(|v| !v.is_empty()) { dt { (label) } dd { (v) } } }
    };
    html! {
        dl.facts {
            dt { "Email" } dd { (person.email) }
            dt { "Status" } dd { (person.status) }
            dt { "Risk score" } dd { (format!("{risk:.1}")) }
            (row("Department", person.department.as_deref()))
            (row("Job title", person.job_title.as_deref()))
            (row("Location", person.location.as_deref()))
            (row("Manager", person.manager_email.as_deref()))
            (row("Language", person.language.as_deref()))
            (row("Started", person.employee_start_date.as_deref()))
            @if !person.aliases.is_empty() {
                dt { "Aliases" } dd { (person.aliases.join(", ")) }
            }
        }
    }
}
